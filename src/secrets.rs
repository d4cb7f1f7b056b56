//! Secret values and their masking. Values interpolated from the environment (`${VAR}`), and the
//! values of environment variables whose names say they are secret (`*_PASSWORD`, `*_TOKEN`,
//! `*_SECRET`, `*_WEBHOOK_URL`), are replaced by `****` wherever text leaves the engine: events,
//! the journal, the screen and notifications.

use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: Arc<Vec<String>>,
}

const SECRET_SUFFIXES: &[&str] = &["_PASSWORD", "_TOKEN", "_SECRET", "_WEBHOOK_URL", "_API_KEY"];

/// Values shorter than this are not masked: masking `1` or `on` everywhere would garble output.
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut v: Vec<String> = values
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret that contains another is masked whole; equal values end up
        // side by side, so dedup drops every repeat.
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        Secrets {
            values: Arc::new(v),
        }
    }

    /// Secret-looking variables of this process's environment.
    pub(crate) fn from_process_env() -> Vec<String> {
        std::env::vars()
            .filter(|(k, _)| SECRET_SUFFIXES.iter().any(|s| k.ends_with(s)))
            .map(|(_, v)| v)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "****");
            }
        }
        out
    }

    /// Mask every string inside a JSON value, in place.
    pub(crate) fn mask_json(&self, value: &mut serde_json::Value) {
        if self.values.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                let masked = self.mask(s);
                if masked != *s {
                    *s = masked;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.mask_json(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_longest_first() {
        let s = Secrets::new([
            "hunter22".to_string(),
            "hunter22-extra".to_string(),
            "ab".to_string(),
        ]);
        assert_eq!(
            s.mask("pw=hunter22-extra and hunter22, ab"),
            "pw=**** and ****, ab"
        );
    }

    #[test]
    fn each_value_is_kept_once() {
        let s = Secrets::new(["aaaa", "bbbb", "aaaa", "cccc", "bbbb"].map(String::from));
        assert_eq!(*s.values, ["aaaa", "bbbb", "cccc"]);
    }

    #[test]
    fn masks_inside_json() {
        let s = Secrets::new(["s3cr3t-value".to_string()]);
        let mut v = serde_json::json!({"a": ["x s3cr3t-value y"], "b": {"c": "s3cr3t-value"}});
        s.mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["x **** y"], "b": {"c": "****"}})
        );
    }
}
