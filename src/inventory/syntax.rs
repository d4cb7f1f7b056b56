//! TOML syntax errors, all of a file's at once: the parser recovers after each, and this module
//! turns its list into diagnostics a person can act on, without the echoes one mistake causes.
//!
//! Three kinds of echo are folded into their cause:
//! - an array or inline table that is never closed swallows the rest of the file as its items,
//!   and each following line then reads as an error: it is reported once, where it opens;
//! - a table header written twice makes each of its keys a duplicate too: only the header counts;
//! - a line with several errors shows its first (the others usually follow from it).
//!
//! This module only words what the parser found; it never reads the inventory's meaning.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::model::Span;
use crate::diag::Diagnostic;

const HELP: &str = "fix the syntax at this spot; see the inventory reference in README.md";

/// The diagnostics for `errors`, the parser's findings in `source`; `root` is what it made of
/// the file (where an unclosed array or table starts is read from it).
pub(super) fn diagnostics(
    source: &str,
    root: &Spanned<DeTable<'_>>,
    errors: &[toml::de::Error],
) -> Vec<Diagnostic> {
    let mut found: Vec<Found> = errors
        .iter()
        .map(|e| Found {
            message: e.message().trim().to_string(),
            span: e.span(),
            help: HELP.to_string(),
        })
        .collect();
    fold_unclosed(&mut found, root);
    fold_duplicate_tables(&mut found, source);
    found.sort_by_key(|f| f.span.as_ref().map(|s| s.start).unwrap_or(usize::MAX));
    let mut lines_seen = Vec::new();
    found.retain(|f| match &f.span {
        Some(s) => {
            let line = line_of(source, s.start).start;
            let first = !lines_seen.contains(&line);
            lines_seen.push(line);
            first
        }
        None => true,
    });
    found
        .into_iter()
        .map(|f| Diagnostic::new(format!("invalid TOML: {}", f.message), f.span).help(f.help))
        .collect()
}

struct Found {
    message: String,
    span: Option<Span>,
    help: String,
}

/// An unclosed array or inline table: point at its opening bracket, say why the rest of the
/// file went wrong, and drop the errors inside it.
fn fold_unclosed(found: &mut Vec<Found>, root: &Spanned<DeTable<'_>>) {
    let mut opened: Vec<(Span, bool)> = Vec::new();
    containers(root.get_ref(), &mut opened);
    let mut swallowed: Vec<Span> = Vec::new();
    for f in found.iter_mut() {
        let (is_array, close) = if f.message.starts_with("unclosed array,") {
            (true, ']')
        } else if f.message.starts_with("unclosed inline table,") {
            (false, '}')
        } else {
            continue;
        };
        let Some(at) = f.span.as_ref().map(|s| s.start) else {
            continue;
        };
        // The parser ends an unclosed container where its error is; the innermost one (the
        // latest to open) is the one this error is about.
        let Some(i) = opened
            .iter()
            .enumerate()
            .filter(|(_, (s, array))| s.end == at && *array == is_array)
            .max_by_key(|(_, (s, _))| s.start)
            .map(|(i, _)| i)
        else {
            continue;
        };
        let (open, _) = opened.swap_remove(i);
        let what = if is_array { "array" } else { "inline table" };
        f.help = format!(
            "close it with `{close}`: an {what} may run over several lines, so everything after this was read as part of it"
        );
        f.span = Some(open.start..open.start + 1);
        swallowed.push(open.start + 1..at);
    }
    found.retain(|f| match &f.span {
        Some(s) => !swallowed
            .iter()
            .any(|w| w.start <= s.start && s.start <= w.end && !is_unclosed(f)),
        None => true,
    });
}

fn is_unclosed(f: &Found) -> bool {
    f.message.starts_with("unclosed array,") || f.message.starts_with("unclosed inline table,")
}

/// Every array and inline table of the tree with its span (`true` for an array).
fn containers(table: &DeTable<'_>, out: &mut Vec<(Span, bool)>) {
    fn value(v: &Spanned<DeValue<'_>>, out: &mut Vec<(Span, bool)>) {
        match v.get_ref() {
            DeValue::Array(items) => {
                out.push((v.span(), true));
                for item in items.iter() {
                    value(item, out);
                }
            }
            DeValue::Table(t) => {
                out.push((v.span(), false));
                containers(t, out);
            }
            _ => {}
        }
    }
    for (_, v) in table.iter() {
        value(v, out);
    }
}

/// A table header given twice (`[nodes.web-1]` again): its keys are duplicates only because
/// the header is; keep the header's error and drop theirs, up to the next header.
fn fold_duplicate_tables(found: &mut Vec<Found>, source: &str) {
    let line_of = |at: usize| line_of(source, at);
    let is_header = |line: &Span| source[line.clone()].trim_start().starts_with('[');
    // Where each twice-given header's keys run: from its line to the next header.
    let mut echoes: Vec<Span> = Vec::new();
    for f in found.iter() {
        let Some(s) = &f.span else { continue };
        let line = line_of(s.start);
        if f.message.starts_with("duplicate key") && is_header(&line) {
            let mut end = line.end;
            while end < source.len() {
                let next = line_of(end + 1);
                if is_header(&next) {
                    break;
                }
                end = next.end;
            }
            echoes.push(line.end..end);
        }
    }
    found.retain(|f| match &f.span {
        Some(s) if f.message.starts_with("duplicate key") => {
            !echoes.iter().any(|e| e.start < s.start && s.start <= e.end)
        }
        _ => true,
    });
}

/// The bytes of the line `at` is on, without its newline (byte-wise: a parser's offset need not
/// fall on a character boundary of a broken file).
fn line_of(source: &str, at: usize) -> Span {
    let bytes = source.as_bytes();
    let at = at.min(bytes.len());
    let start = bytes[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let end = bytes[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| at + i)
        .unwrap_or(bytes.len());
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, column, message) of each diagnostic for `source`.
    fn found(source: &str) -> Vec<(usize, usize, String)> {
        let (root, errors) = DeTable::parse_recoverable(source);
        diagnostics(source, &root, &errors)
            .into_iter()
            .map(|d| {
                let (line, col) = crate::diag::line_col(source, d.span.unwrap_or(0..0).start);
                (line, col, d.message)
            })
            .collect()
    }

    #[test]
    fn independent_errors_are_all_reported_in_file_order() {
        let f = found("a = 1\nb = x\nc = 2\nd = \"open\ne = 3\n");
        let lines: Vec<usize> = f.iter().map(|(l, _, _)| *l).collect();
        assert_eq!(lines, [2, 4], "{f:?}");
    }

    #[test]
    fn an_unclosed_inline_table_is_shown_where_it_opens_and_swallows_the_rest() {
        let f = found("[app]\nh = { a = 1, b = 2\n\n[nodes.web-1]\nhost = \"x\"\nport = 22\n");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].0, f[0].1), (2, 5), "{f:?}");
        assert!(f[0].2.contains("unclosed inline table"), "{f:?}");
    }

    #[test]
    fn nested_unclosed_arrays_each_point_at_their_own_bracket() {
        let f = found("a = [1,\n  [2, 3\n\nb = 4\n");
        let places: Vec<(usize, usize)> = f.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(places, [(1, 5), (2, 3)], "{f:?}");
    }

    #[test]
    fn a_table_given_twice_is_one_error_at_its_header() {
        let f = found("[a]\nx = 1\ny = 2\n\n[a]\nx = 1\ny = 2\n\n[b]\nz = 1\nz = 2\n");
        let lines: Vec<usize> = f.iter().map(|(l, _, _)| *l).collect();
        // The second [a] (line 5) counts; its keys do not; [b]'s own duplicate (line 11) does.
        assert_eq!(lines, [5, 11], "{f:?}");
    }

    #[test]
    fn offsets_inside_multibyte_text_do_not_break_the_report() {
        let f = found("a = \"é\nb = ü\n");
        assert!(!f.is_empty());
    }
}
