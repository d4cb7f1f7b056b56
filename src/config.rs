//! Configuration checks against `.env` files: which keys a node's `shared/.env` has, compared
//! with the app's `.env.example`, and where each value comes from (environment > .env >
//! .env.example, as Laravel and most dotenv loaders resolve them).
//!
//! Only key names leave a node for the preflight; `deckhand config` also reads values, and masks
//! those whose names say they are secret.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::inventory::{Environment, Inventory};
use crate::transport::{self, ExecRequest};
use crate::util::sh_quote;

/// Keys defined in a dotenv text (`KEY=value`, `export KEY=value`; comments and blanks skipped).
pub fn keys(text: &str) -> Vec<String> {
    entries(text).into_iter().map(|(k, _)| k).collect()
}

/// `(key, value)` pairs of a dotenv text, values unquoted.
pub(crate) fn entries(text: &str) -> Vec<(String, String)> {
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
pub(crate) fn node_keys_script(dp: &str) -> String {
    format!(
        "f={}/shared/.env\nif [ -f \"$f\" ]; then echo present; sed -n 's/^[[:space:]]*\\(export[[:space:]][[:space:]]*\\)\\{{0,1\\}}\\([A-Za-z_][A-Za-z0-9_]*\\)[[:space:]]*=.*/key=\\2/p' \"$f\"; else echo missing; fi\n",
        sh_quote(dp.trim_end_matches('/'))
    )
}

pub(crate) fn parse_node_keys(out: &str) -> (bool, Vec<String>) {
    let exists = out.lines().next() == Some("present");
    let keys = out
        .lines()
        .filter_map(|l| l.strip_prefix("key="))
        .map(String::from)
        .collect();
    (exists, keys)
}

/// The line between the node's `.env` and its environment's variable names.
const ENVIRONMENT_MARKER: &str = "__deckhand_environment__";

/// Print the node's `.env` whole, then the names of its login environment's variables.
pub(crate) fn node_config_script(dp: &str) -> String {
    format!(
        "f={}/shared/.env\nif [ -f \"$f\" ]; then cat \"$f\"; fi\necho {ENVIRONMENT_MARKER}\nenv | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'\n",
        sh_quote(dp.trim_end_matches('/'))
    )
}

/// Split what [`node_config_script`] printed: the `.env` text, and the environment's names.
pub(crate) fn parse_node_config(out: &str) -> (&str, Vec<String>) {
    let (dotenv, names) = out
        .split_once(&format!("{ENVIRONMENT_MARKER}\n"))
        .unwrap_or((out, ""));
    (dotenv, names.lines().map(String::from).collect())
}

/// One node's configuration as `deckhand config` shows it, or why it could not be read.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node: String,
    pub keys: Result<Vec<Resolved>, String>,
}

/// Read every node of `env`: each key of its `shared/.env` and of the environment's
/// `.env.example`, where its value comes from, values masked where secret (by key name, and
/// the inventory's own secrets). Nodes are read concurrently; answers come in plan order.
pub async fn read(inv: &Inventory, env: &Environment) -> Vec<NodeConfig> {
    let example = match &env.config_example {
        Some(x) => std::fs::read_to_string(inv.base_dir().join(x)).unwrap_or_default(),
        None => String::new(),
    };
    let example = &example;
    stream::iter(env.nodes.iter())
        .map(|n| async move {
            let keys = async {
                let node = inv
                    .node(n)
                    .ok_or_else(|| "not defined in the inventory".to_string())?;
                let t = transport::for_node(node, &inv.base_dir()).map_err(|e| e.to_string())?;
                let o = t
                    .exec(
                        &ExecRequest::new(node_config_script(&node.deploy_path))
                            .timeout(READ_TIMEOUT),
                        None,
                        &CancellationToken::new(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if !o.success() {
                    return Err(o.describe_failure(Some(READ_TIMEOUT)));
                }
                let (dotenv, names) = parse_node_config(&o.stdout);
                let mut resolved = resolve(example, dotenv, &names);
                for r in resolved.iter_mut() {
                    r.value = inv.secrets.mask(&r.value);
                }
                Ok(resolved)
            }
            .await;
            NodeConfig {
                node: n.clone(),
                keys,
            }
        })
        .buffered(32)
        .collect()
        .await
}

/// How long reading one node's configuration may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Does a key name say its value is secret?
pub(crate) fn secret_key(k: &str) -> bool {
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
pub(crate) fn resolve(example: &str, node_env: &str, env_names: &[String]) -> Vec<Resolved> {
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
    fn the_node_config_splits_at_its_marker() {
        let out = "A=1\nB=2\n__deckhand_environment__\nPATH\nHOME\n";
        let (dotenv, names) = parse_node_config(out);
        assert_eq!(dotenv, "A=1\nB=2\n");
        assert_eq!(names, vec!["PATH", "HOME"]);
        assert_eq!(parse_node_config("A=1\n"), ("A=1\n", vec![]));
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
