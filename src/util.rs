//! Small pure helpers shared across the crate: shell quoting, placeholder expansion, name rules,
//! durations and who/where the console runs. Nothing here does I/O beyond reading the host name.

use std::collections::BTreeMap;
use std::time::Duration;

/// Quote a value for a POSIX shell, always (even when it looks safe), so that no value can
/// change the command it is put into.
pub fn sh_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The placeholders a `run` command may use.
pub(crate) const PLACEHOLDERS: &[&str] = &[
    "release",
    "release_path",
    "previous_release",
    "deploy_path",
    "node",
    "host",
    "env",
    "app",
];

/// A piece of a command template: literal text or a `{name}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(String),
    Placeholder { name: &'a str, offset: usize },
}

/// Split a template into text and placeholders. `{{` and `}}` stand for literal braces; a brace
/// group that is not an identifier (`{print $1}`, `${HOME}` already expanded) stays literal.
pub(crate) fn template_pieces(template: &str) -> Vec<Piece<'_>> {
    let bytes = template.as_bytes();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'{' && bytes.get(i + 1) == Some(&b'{') {
            text.push('{');
            i += 2;
            continue;
        }
        if c == b'}' && bytes.get(i + 1) == Some(&b'}') {
            text.push('}');
            i += 2;
            continue;
        }
        if c == b'{' {
            let rest = &template[i + 1..];
            let ident_len = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_' || b.is_ascii_digit())
                .count();
            if ident_len > 0 && rest.as_bytes().get(ident_len) == Some(&b'}') {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Placeholder {
                    name: &rest[..ident_len],
                    offset: i,
                });
                i += ident_len + 2;
                continue;
            }
        }
        // Push the whole UTF-8 character starting here.
        let ch = template[i..].chars().next().unwrap_or('\u{fffd}');
        text.push(ch);
        i += ch.len_utf8().max(1);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// Placeholders in `template` that are not known, with their byte offsets.
pub(crate) fn unknown_placeholders(template: &str) -> Vec<(String, usize)> {
    template_pieces(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder { name, offset } if !PLACEHOLDERS.contains(&name) => {
                Some((name.to_string(), offset))
            }
            _ => None,
        })
        .collect()
}

/// Fill a template. With `quote`, every value is shell-quoted (for commands); without, values
/// go in as they are (for URLs, whose parts are validated names).
pub fn expand(template: &str, vars: &BTreeMap<&str, String>, quote: bool) -> String {
    let mut out = String::new();
    for piece in template_pieces(template) {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Placeholder { name, .. } => match vars.get(name) {
                Some(v) if quote => out.push_str(&sh_quote(v)),
                Some(v) => out.push_str(v),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        }
    }
    out
}

/// Release names become directory names and command arguments: `[A-Za-z0-9][A-Za-z0-9._+-]*`.
pub fn valid_release(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

/// Node, environment and role names: the same rule as releases, so they are safe in paths.
pub(crate) fn valid_name(name: &str) -> bool {
    valid_release(name)
}

/// A ProxyJump hop (`user@host:port`) that can go into an ssh command line and an ssh config
/// unchanged: not empty, no leading `-` (an option), no blank or control character, and none
/// of `,` (the hop separator), quotes or `%` (ssh's token escape).
pub fn valid_jump_hop(hop: &str) -> bool {
    !hop.is_empty()
        && !hop.starts_with('-')
        && !hop
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '\'' | '"' | '%'))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| e.to_string())
}

pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// A count with its noun in the right number: `1 node`, `3 nodes`, `0 nodes`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The operator's name for locks and history.
pub(crate) fn whoami() -> String {
    std::env::var("DECKHAND_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|p| {
                    p.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
                    })
                })
                .unwrap_or_else(|| format!("uid{uid}"))
        })
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

pub mod duration_serde {
    use serde::Serializer;
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

pub mod opt_duration_serde {
    use serde::Serializer;
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// An ssh configuration line's keyword and value: `Keyword value` or `Keyword=value`.
pub(crate) fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = &line[..end];
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (keyword, rest)
}

/// `*` (any run) and `?` (one character) matching of a whole name, as ssh's host patterns
/// and `Include` globs use them.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_neutralises_shell_syntax() {
        assert_eq!(sh_quote("v1.1"), "'v1.1'");
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn templates_fill_known_placeholders_quoted() {
        let mut vars = BTreeMap::new();
        vars.insert("release", "v1; rm -rf /".to_string());
        let out = expand("echo {release} {{literal}} awk '{print $1}'", &vars, true);
        assert_eq!(out, "echo 'v1; rm -rf /' {literal} awk '{print $1}'");
    }

    #[test]
    fn unknown_placeholders_are_found_with_offsets() {
        assert_eq!(
            unknown_placeholders("cd {release_path} && {oops}"),
            vec![("oops".to_string(), 21)]
        );
    }

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(count(1, "node", "nodes"), "1 node");
        assert_eq!(count(0, "node", "nodes"), "0 nodes");
        assert_eq!(count(2, "batch", "batches"), "2 batches");
    }

    #[test]
    fn release_names_follow_the_rule() {
        for ok in ["v1.1", "2024-01-01", "a+b_c", "R"] {
            assert!(valid_release(ok), "{ok}");
        }
        for bad in [
            "", "-x", ".hidden", "../etc", "a b", "a;b", "v1/2", "$(x)", "a\nb",
        ] {
            assert!(!valid_release(bad), "{bad:?}");
        }
    }
}
