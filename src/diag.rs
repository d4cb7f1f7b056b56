//! Diagnostics for files a person wrote: each error names the file, line and column, shows the
//! offending line with a caret under the exact span, and says how to fix it.
//!
//! This module only formats; it never decides what is wrong. Loaders collect every
//! [`Diagnostic`] they find and hand the whole list over, so a person fixes all problems in one go.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a file, with the byte range it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Range<usize>>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A set of diagnostics for one file, ready to print.
#[derive(Debug, Clone)]
pub struct Report {
    pub file: PathBuf,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// 1-based line and column of a byte offset (columns count characters, not bytes).
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn render_one(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    source: &str,
    d: &Diagnostic,
) -> fmt::Result {
    writeln!(f, "error: {}", d.message)?;
    let mut gutter = 1;
    match &d.span {
        Some(span) => {
            let (line, col) = line_col(source, span.start);
            let text = source.lines().nth(line - 1).unwrap_or("");
            gutter = line.to_string().len();
            writeln!(f, "{:gutter$}--> {}:{}:{}", "", file.display(), line, col)?;
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {text}")?;
            // Underline the span on this line only; a multi-line span is marked to the line's end.
            let start = floor_char_boundary(source, span.start.min(source.len()));
            let end = floor_char_boundary(source, span.end.min(source.len()));
            let rest_of_line = source[start..].split('\n').next().unwrap_or("");
            let len = source[start..end.max(start)]
                .split('\n')
                .next()
                .unwrap_or("")
                .chars()
                .count()
                .clamp(1, rest_of_line.chars().count().max(1));
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(col - 1),
                "^".repeat(len)
            )?;
        }
        None => writeln!(f, " --> {}", file.display())?,
    }
    if let Some(help) = &d.help {
        writeln!(f, "{:gutter$} = help: {help}", "")?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            render_one(f, &self.file, &self.source, d)?;
        }
        let n = self.diagnostics.len();
        if n > 1 {
            writeln!(f)?;
            writeln!(f, "{n} errors in {}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 8), (2, 3));
    }

    #[test]
    fn report_shows_line_and_caret() {
        let r = Report {
            file: "x.toml".into(),
            source: "[app]\nnmae = \"x\"\n".into(),
            diagnostics: vec![
                Diagnostic::new("unknown key `nmae`", Some(6..10)).help("did you mean `name`?")
            ],
        };
        let text = r.to_string();
        assert!(text.contains("x.toml:2:1"), "{text}");
        assert!(text.contains("2 | nmae = \"x\""), "{text}");
        assert!(text.contains("  | ^^^^\n"), "{text}");
        assert!(text.contains("help: did you mean `name`?"), "{text}");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("hots", &["host", "roles"]), Some("host"));
        assert_eq!(did_you_mean("zzzzzz", &["host", "roles"]), None);
    }
}
