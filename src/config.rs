//! Configuration checks against `.env` files: which keys a node's `shared/.env` has, compared
//! with the app's `.env.example`, and where each value comes from (environment > .env >
//! .env.example, as Laravel and most dotenv loaders resolve them).
//!
//! Only key names leave a node for the preflight; `deckhand config` also reads values, and masks
//! those whose names say they are secret.

use crate::util::sh_quote;

/// Keys defined in a dotenv text (`KEY=value`, `export KEY=value`; comments and blanks skipped).
pub fn keys(text: &str) -> Vec<String> {
    entries(text).into_iter().map(|(k, _)| k).collect()
}

/// `(key, value)` pairs of a dotenv text, values unquoted.
pub fn entries(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let valid = !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        out.retain(|(x, _)| x != k);
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// Print the key names of `{dp}/shared/.env` (values stay on the node), or `missing`.
pub fn node_keys_script(dp: &str) -> String {
    format!(
        "f={}/shared/.env\nif [ -f \"$f\" ]; then echo present; sed -n 's/^[[:space:]]*\\(export[[:space:]][[:space:]]*\\)\\{{0,1\\}}\\([A-Za-z_][A-Za-z0-9_]*\\)[[:space:]]*=.*/key=\\2/p' \"$f\"; else echo missing; fi\n",
        sh_quote(dp.trim_end_matches('/'))
    )
}

pub fn parse_node_keys(out: &str) -> (bool, Vec<String>) {
    let exists = out.lines().next() == Some("present");
    let keys = out
        .lines()
        .filter_map(|l| l.strip_prefix("key="))
        .map(String::from)
        .collect();
    (exists, keys)
}

/// Print the node's `.env` whole, then the names of its login environment's variables.
pub fn node_config_script(dp: &str) -> String {
    format!(
        "f={}/shared/.env\nif [ -f \"$f\" ]; then cat \"$f\"; fi\necho __deckhand_environment__\nenv | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'\n",
        sh_quote(dp.trim_end_matches('/'))
    )
}

/// Does a key name say its value is secret?
pub fn secret_key(k: &str) -> bool {
    let u = k.to_ascii_uppercase();
    [
        "PASSWORD",
        "SECRET",
        "TOKEN",
        "KEY",
        "PASS",
        "CREDENTIAL",
        "PRIVATE",
        "DSN",
        "WEBHOOK",
    ]
    .iter()
    .any(|w| u.contains(w))
}

#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Resolved {
    pub key: String,
    /// `environment`, `.env` or `.env.example`; `missing` when only the example has no value either.
    pub source: String,
    pub value: String,
}

/// Resolve every key of the example and of the node's `.env`, by the dotenv priority.
pub fn resolve(example: &str, node_env: &str, env_names: &[String]) -> Vec<Resolved> {
    let ex = entries(example);
    let ne = entries(node_env);
    let mut keys: Vec<String> = ex.iter().map(|(k, _)| k.clone()).collect();
    for (k, _) in &ne {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys.into_iter()
        .map(|k| {
            let (source, value) = if env_names.contains(&k) {
                (
                    "environment".to_string(),
                    "(set in the node's environment)".to_string(),
                )
            } else if let Some((_, v)) = ne.iter().find(|(x, _)| x == &k) {
                (".env".to_string(), v.clone())
            } else if let Some((_, v)) = ex.iter().find(|(x, _)| x == &k) {
                (".env.example".to_string(), v.clone())
            } else {
                ("missing".to_string(), String::new())
            };
            let value = if secret_key(&k) && source != "environment" && !value.is_empty() {
                "****".to_string()
            } else {
                value
            };
            Resolved {
                key: k,
                source,
                value,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_keys_and_values() {
        let t = "# comment\nAPP_NAME=AskProAI\nexport DB_HOST=db\nDB_PASSWORD=\"p w\"\n\nbad line\n9X=1\n";
        assert_eq!(keys(t), vec!["APP_NAME", "DB_HOST", "DB_PASSWORD"]);
        assert_eq!(entries(t)[2].1, "p w");
    }

    #[test]
    fn priority_environment_then_env_then_example() {
        let ex = "APP_NAME=AskProAI\nAPP_DEBUG=false\nDB_PASSWORD=\nAPP_URL=\n";
        let ne = "APP_DEBUG=false\nDB_PASSWORD=hunter22\n";
        let r = resolve(ex, ne, &["APP_URL".to_string()]);
        let get = |k: &str| r.iter().find(|x| x.key == k).unwrap().clone();
        assert_eq!(get("APP_NAME").source, ".env.example");
        assert_eq!(get("APP_DEBUG").source, ".env");
        assert_eq!(get("DB_PASSWORD").value, "****");
        assert_eq!(get("APP_URL").source, "environment");
    }
}
