//! Nodes from an OpenSSH client configuration: one node per `Host` alias that is not a pattern.
//!
//! The node's host is the alias itself, and the inventory names the file as `[ssh] ssh_config`,
//! so ssh goes on applying everything the user configured for it (HostName, User, Port,
//! ProxyJump, IdentityAgent, certificates) instead of deckhand copying a part of it. This module
//! only reads the file (and the files it includes) to find the aliases; it never interprets the
//! settings beyond a comment that shows them.

use crate::util::{glob_match, split_keyword};
use std::path::{Path, PathBuf};

use super::{ImportError, ImportedEnvironment, ImportedNode, NameMap, Servers};

/// One `Host` alias and the settings its block states (for the comment beside the node).
#[derive(Debug, Clone, PartialEq)]
pub struct HostEntry {
    pub alias: String,
    /// (keyword as written, value), in file order.
    pub settings: Vec<(String, String)>,
}

/// Read `path` (and what it includes) and build the nodes; `hosts` keeps only the aliases that
/// match one of its comma-separated patterns (`*` and `?` as in ssh, `!` to exclude).
/// `shown_path` is how the inventory refers to the file (`~/.ssh/config` or an absolute path).
pub fn import(path: &Path, shown_path: &str, hosts: Option<&str>) -> Result<Servers, ImportError> {
    let entries = read(path)?;
    let picked: Vec<&HostEntry> = entries
        .iter()
        .filter(|e| hosts.is_none_or(|p| matches_list(p, &e.alias)))
        .collect();
    if picked.is_empty() {
        let listed: Vec<&str> = entries.iter().map(|e| e.alias.as_str()).collect();
        return Err(ImportError::Unusable {
            path: path.to_path_buf(),
            message: match hosts {
                Some(p) => format!("no Host alias matches --hosts {p:?}"),
                None => "no Host entry names a single host (only patterns such as `Host *`)".into(),
            },
            help: if listed.is_empty() {
                "add `Host NAME` entries with a HostName, or import from another source".into()
            } else {
                format!("aliases found: {}", listed.join(", "))
            },
        });
    }
    let mut names = NameMap::new("host");
    let mut servers = Servers {
        source: format!("the ssh config {}", path.display()),
        ssh_config: Some(shown_path.to_string()),
        ..Servers::default()
    };
    let mut envs: Vec<ImportedEnvironment> = Vec::new();
    for e in picked {
        let name = names.name(&e.alias);
        let env = environment_of(&e.alias).unwrap_or_else(|| "production".to_string());
        let shown: Vec<String> = e
            .settings
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.to_ascii_lowercase().as_str(),
                    "hostname" | "user" | "port" | "proxyjump" | "identityfile"
                )
            })
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        servers.nodes.push(ImportedNode {
            name: name.clone(),
            host: e.alias.clone(),
            roles: vec![role_of(&e.alias)],
            note: Some(if shown.is_empty() {
                format!("Host {}: ssh applies its config", e.alias)
            } else {
                format!("Host {}: {} (ssh applies these)", e.alias, shown.join(", "))
            }),
            ..ImportedNode::default()
        });
        match envs.iter_mut().find(|x| x.name == env) {
            Some(x) => x.nodes.push(name),
            None => envs.push(ImportedEnvironment {
                name: env.clone(),
                nodes: vec![name],
                from: String::new(),
            }),
        }
    }
    let single = envs.len() == 1;
    for e in &mut envs {
        e.from = if single && e.name == "production" {
            "every imported host".into()
        } else if e.name == "production" {
            "hosts whose alias names no other environment".into()
        } else {
            format!("hosts whose alias says {}", e.name)
        };
    }
    servers.environments = envs;
    servers.environment_note = vec![
        "Environments: a host whose alias contains an environment word (prod, staging, dev, ...)"
            .into(),
        "belongs to that environment; every other host is in production. Move nodes between the"
            .into(),
        "`nodes` lists below to change it. Roles are the aliases' leading letters (web1 -> web)."
            .into(),
    ];
    servers.renamed = names.renamed;
    Ok(servers)
}

/// The environment an alias names in one of its parts (`web1.staging`, `prod-db-1`).
fn environment_of(alias: &str) -> Option<String> {
    alias
        .split(['.', '-', '_'])
        .find(|part| super::is_environment_word(part))
        .map(|w| {
            let w = w.to_ascii_lowercase();
            if super::is_production(&w) {
                "production".to_string()
            } else if super::is_staging(&w) {
                "staging".to_string()
            } else {
                w
            }
        })
}

/// A role from the alias: its leading letters (`web01.example.com` -> `web`), else `app`.
fn role_of(alias: &str) -> String {
    let lead: String = alias
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if lead.is_empty() || super::is_environment_word(&lead) {
        "app".into()
    } else {
        lead.to_ascii_lowercase()
    }
}

/// Every `Host` alias of the file (patterns left out), with the settings of its blocks.
pub fn read(path: &Path) -> Result<Vec<HostEntry>, ImportError> {
    let mut entries = Vec::new();
    read_into(path, &mut entries, 0)?;
    Ok(entries)
}

fn read_into(path: &Path, entries: &mut Vec<HostEntry>, depth: usize) -> Result<(), ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: path.to_path_buf(),
        source: e,
        hint: "give the ssh config file with --from-ssh-config FILE (default ~/.ssh/config)".into(),
    })?;
    // The aliases the current block applies to (indices into `entries`); None inside `Match`.
    let mut current: Option<Vec<usize>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, value) = split_keyword(line);
        if keyword.is_empty() {
            return Err(ImportError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("cannot read this line: {line:?}"),
                help: "ssh config lines are `Keyword value`".into(),
            });
        }
        match keyword.to_ascii_lowercase().as_str() {
            "host" => {
                let mut idx = Vec::new();
                for alias in words(value) {
                    if alias.contains(['*', '?', '!']) {
                        continue;
                    }
                    let at = match entries.iter().position(|e| e.alias == alias) {
                        Some(at) => at,
                        None => {
                            entries.push(HostEntry {
                                alias: alias.clone(),
                                settings: Vec::new(),
                            });
                            entries.len() - 1
                        }
                    };
                    idx.push(at);
                }
                current = Some(idx);
            }
            "match" => current = None,
            "include" if depth < 8 => {
                for pattern in words(value) {
                    for file in expand_include(path, &pattern) {
                        read_into(&file, entries, depth + 1)?;
                    }
                }
            }
            _ => {
                if let Some(idx) = &current {
                    for &at in idx {
                        // ssh keeps the first value it reads for a keyword.
                        let e = &mut entries[at];
                        if !e
                            .settings
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case(keyword))
                        {
                            e.settings.push((keyword.to_string(), unquote(value)));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn unquote(v: &str) -> String {
    v.trim().trim_matches('"').to_string()
}

/// Words of a value, `"quoted words"` kept together.
fn words(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The files an `Include` names: `~` expanded, relative paths under `~/.ssh` (as ssh does for
/// the user's config) or beside `from`, and `*`/`?` in the last part matched against the
/// directory.
fn expand_include(from: &Path, pattern: &str) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let p = if let Some(rest) = pattern.strip_prefix("~/") {
        match &home {
            Some(h) => h.join(rest),
            None => return Vec::new(),
        }
    } else if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        let base = from.parent().unwrap_or(Path::new("."));
        base.join(pattern)
    };
    let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if p.is_file() { vec![p] } else { Vec::new() };
    }
    let dir = p.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// ssh's pattern lists: comma-separated patterns, `!pattern` excludes; true when one pattern
/// matches and no excluding one does.
pub(crate) fn matches_list(list: &str, name: &str) -> bool {
    let mut hit = false;
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(neg) = p.strip_prefix('!') {
            if glob_match(neg, name) {
                return false;
            }
        } else if glob_match(p, name) {
            hit = true;
        }
    }
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_ssh() {
        assert!(glob_match("web*", "web1"));
        assert!(glob_match("web?", "web1"));
        assert!(!glob_match("web?", "web10"));
        assert!(glob_match("*.example.com", "a.example.com"));
        assert!(matches_list("web*,db1", "db1"));
        assert!(!matches_list("web*,!web2", "web2"));
        assert!(matches_list("web*,!web2", "web3"));
    }

    #[test]
    fn aliases_settings_and_includes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("extra.conf"),
            "Host db1\n  HostName 10.0.0.5\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("config"),
            "# fleet\nHost *\n  User nobody\nHost web1 web2 !web3 web-*\n  HostName=10.0.0.1\n  Port 2222\n\
             Match host web1\n  User ignored\nHost web1\n  Port 22\n  User deploy\nInclude extra.conf\n",
        )
        .unwrap();
        let e = read(&d.path().join("config")).unwrap();
        let aliases: Vec<&str> = e.iter().map(|e| e.alias.as_str()).collect();
        assert_eq!(aliases, ["web1", "web2", "db1"]);
        assert_eq!(
            e[0].settings,
            vec![
                ("HostName".to_string(), "10.0.0.1".to_string()),
                ("Port".to_string(), "2222".to_string()),
                ("User".to_string(), "deploy".to_string()),
            ]
        );
    }

    #[test]
    fn roles_and_environments_from_aliases() {
        assert_eq!(role_of("web01.example.com"), "web");
        assert_eq!(role_of("10.0.0.1"), "app");
        assert_eq!(
            environment_of("web1.staging.example.com").as_deref(),
            Some("staging")
        );
        assert_eq!(environment_of("prod-db-1").as_deref(), Some("production"));
        assert_eq!(environment_of("web1"), None);
    }
}
