//! `${VAR}` in inventory values: filled in from the environment when the file is read, and
//! every value filled in this way is remembered as a secret, to be masked wherever it is shown.
//!
//! Only strings are filled in, and only here; nothing downstream sees a `${`.

use super::Cx;
use crate::inventory::model::Span;

impl Cx<'_> {
    /// Replace `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`. `span` is the
    /// string's, for messages about a reference that is malformed or unset.
    pub(super) fn interpolate(&mut self, text: &str, span: &Span) -> String {
        if !text.contains("${") {
            return text.to_string();
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                self.error(
                    "unterminated `${` in a value",
                    span.clone(),
                    "close it as ${NAME}, or write $${ for a literal ${",
                );
                return text.to_string();
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                self.error(
                    format!("`${{{inner}}}` is not a valid environment variable reference"),
                    span.clone(),
                    "use ${NAME} or ${NAME:-default}, NAME made of letters, digits and _",
                );
            } else {
                match (self.env)(name) {
                    Some(v) => {
                        self.secrets.push(v.clone());
                        out.push_str(&v);
                    }
                    None => match default {
                        Some(d) => out.push_str(d),
                        None => self.error(
                            format!("environment variable `{name}` is not set"),
                            span.clone(),
                            format!("export {name}=… before running deckhand, or give a default: ${{{name}:-value}}"),
                        ),
                    },
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(text: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>, usize) {
        let mut cx = Cx::new(env);
        let out = cx.interpolate(text, &(0..text.len()));
        (out, cx.secrets, cx.diags.len())
    }

    #[test]
    fn values_come_from_the_environment_and_are_kept_as_secrets() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret".to_string());
        let (out, secrets, errors) = fill("Bearer ${TOKEN}", &env);
        assert_eq!(out, "Bearer s3cret");
        assert_eq!(secrets, ["s3cret"]);
        assert_eq!(errors, 0);
    }

    #[test]
    fn defaults_and_literal_dollars() {
        let env = |_: &str| None;
        assert_eq!(fill("${A:-x}/$${B}", &env), ("x/${B}".into(), vec![], 0));
    }

    #[test]
    fn unset_malformed_and_unterminated_references_are_reported() {
        let env = |_: &str| None;
        assert_eq!(fill("${UNSET}", &env).2, 1);
        assert_eq!(fill("${1BAD}", &env).2, 1);
        assert_eq!(fill("${OPEN", &env).2, 1);
    }
}
