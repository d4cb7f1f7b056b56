//! Bringing servers described elsewhere into a deckhand inventory: one intermediate model of
//! nodes, roles and environments ([`Servers`]) that every reader fills (`ansible`, `deployer`,
//! `ssh_config`), and one writer that turns it, together with a template's phases and checklist
//! ([`Scaffold`], from `init`), into a commented TOML file.
//!
//! The readers only read files: they never run anything on the servers, never contact them,
//! and never carry a password over (they name the hosts that had one instead). The writer only
//! produces text; writing it to disk and validating it is `init`'s job.

pub mod ansible;
pub mod deployer;
pub mod ssh_config;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

/// A file an import could not read or understand.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}\n  = help: check the path; {hint}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    #[error("{}:{line}: {message}\n  = help: {help}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
        help: String,
    },
    #[error("{}: {message}\n  = help: {help}", path.display())]
    Unusable {
        path: PathBuf,
        message: String,
        help: String,
    },
}

/// Everything an import found: the nodes, their roles, the environments, and what it had to
/// leave behind or rename. Readers fill it; [`write_toml`] writes it.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    /// Where the servers came from, for the file's header ("Ansible inventory hosts.ini").
    pub source: String,
    pub app: AppHints,
    /// `[ssh] ssh_config`: the file ssh reads for these nodes (an ssh_config import).
    pub ssh_config: Option<String>,
    pub nodes: Vec<ImportedNode>,
    pub environments: Vec<ImportedEnvironment>,
    /// How the environments were chosen and how to change that, one comment line each.
    pub environment_note: Vec<String>,
    /// Names that were not valid deckhand names: (what, original, new), e.g. ("host", "web_1", "web-1").
    pub renamed: Vec<(String, String, String)>,
    /// Hosts that carried a password, and the variables that held it. The values are never kept.
    pub passwords: Vec<(String, Vec<String>)>,
    /// What could not be carried over, one line each, naming the host or group and the setting.
    pub left_out: Vec<String>,
}

/// Application settings an import may know (a Deployer recipe does).
#[derive(Debug, Clone, Default)]
pub struct AppHints {
    pub name: Option<String>,
    pub deploy_path: Option<String>,
    pub keep_releases: Option<u32>,
    pub shared_files: Option<Vec<String>>,
    pub shared_dirs: Option<Vec<String>>,
    /// The source says the app is a Laravel app (a Deployer recipe importing Laravel's).
    pub laravel: bool,
}

/// One server, as it will become a `[nodes.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportedNode {
    /// A valid deckhand node name (see [`NameMap`]).
    pub name: String,
    /// The address ssh connects to (or the ssh_config alias).
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    /// ProxyJump hops, `user@host:port`, in order.
    pub jump: Vec<String>,
    pub roles: Vec<String>,
    pub deploy_path: Option<String>,
    /// A comment for the node's table (where it came from, what was special about it).
    pub note: Option<String>,
}

/// One environment: a name and its nodes, in deployment order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportedEnvironment {
    pub name: String,
    pub nodes: Vec<String>,
    /// Where it came from, as a comment ("Ansible group `production`").
    pub from: String,
}

/// What a template puts around the imported servers: the app's defaults, the settings of each
/// environment, and the phases and checklist. `init` provides it.
pub struct Scaffold {
    /// The first comment lines of the file.
    pub title: Vec<String>,
    /// "What to edit next", numbered in the file and printed by `init`.
    pub next_steps: Vec<String>,
    pub app_name: String,
    pub deploy_path: String,
    pub keep_releases: u32,
    pub shared_files: Vec<String>,
    pub shared_dirs: Vec<String>,
    /// TOML lines (with comments) for `[ssh]` after what the import decided, e.g. timeouts.
    pub ssh_extra: String,
    /// TOML lines for one environment after its `nodes`; gets the environment's name and
    /// whether the inventory has a staging environment for production to require.
    pub environment: fn(&str, &EnvContext) -> String,
    /// Everything after the environments: phases, checklist, checks, notify.
    pub body: String,
}

/// What a template may want to know about the environments while writing one of them.
pub struct EnvContext {
    /// The environment a release must pass first, if this one is production-like and there is
    /// a staging-like one.
    pub requires: Option<String>,
}

/// Whether an environment's name says it serves real users (so it gets the careful settings).
pub(crate) fn is_production(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "production" | "prod" | "live" | "prd")
        || n.starts_with("prod-")
        || n.starts_with("prod_")
        || n.starts_with("production-")
        || n.starts_with("production_")
}

/// Whether an environment's name says it is the rehearsal before production.
pub(crate) fn is_staging(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "staging" | "stage" | "stg" | "preprod" | "pre-prod" | "preproduction" | "uat"
    )
}

/// Words that, as a whole group, label or directory name, mean an environment.
pub(crate) fn is_environment_word(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "production"
            | "prod"
            | "live"
            | "prd"
            | "staging"
            | "stage"
            | "stg"
            | "preprod"
            | "pre-prod"
            | "preproduction"
            | "uat"
            | "development"
            | "dev"
            | "test"
            | "testing"
            | "qa"
            | "sandbox"
            | "demo"
            | "integration"
    )
}

/// Turns outside names (host names, group names) into valid, unique deckhand names
/// (`[A-Za-z0-9][A-Za-z0-9._+-]*`), remembering every change so it can be written down.
#[derive(Debug, Default)]
pub struct NameMap {
    what: String,
    given: BTreeMap<String, String>,
    taken: BTreeSet<String>,
    pub renamed: Vec<(String, String, String)>,
}

impl NameMap {
    /// `what` names the kind of name in messages: "host", "group", "label".
    pub fn new(what: &str) -> Self {
        NameMap {
            what: what.to_string(),
            ..NameMap::default()
        }
    }

    /// The deckhand name for `raw`; the same `raw` always gets the same name.
    pub fn name(&mut self, raw: &str) -> String {
        if let Some(n) = self.given.get(raw) {
            return n.clone();
        }
        let base = plain_name(raw);
        let mut name = base.clone();
        let mut i = 2;
        while self.taken.contains(&name) {
            name = format!("{base}-{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        self.given.insert(raw.to_string(), name.clone());
        if name != raw {
            self.renamed
                .push((self.what.clone(), raw.to_string(), name.clone()));
        }
        name
    }
}

/// `raw` with every character deckhand does not allow in a name replaced by `-`, starting with
/// a letter or digit, at most 128 characters ("node" when nothing is left).
pub(crate) fn plain_name(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut out: String = trimmed.chars().take(128).collect();
    if out.is_empty() {
        out = "node".into();
    }
    debug_assert!(crate::util::valid_name(&out));
    out
}

/// A TOML basic string for `value`, with `${` written as `$${` so the loader takes it literally.
pub(crate) fn toml_string(value: &str) -> String {
    toml::Value::String(value.replace("${", "$${")).to_string()
}

/// A TOML array of strings.
pub(crate) fn toml_strings(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
    format!("[{}]", items.join(", "))
}

/// A table key: bare when TOML allows it, quoted otherwise (`web1.example.com`).
pub(crate) fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        toml_string(key)
    }
}

/// Text safe inside a `#` comment: one line, no control characters.
pub(crate) fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `key = value` padded so that the comment starts in column 42, as in deckhand's examples.
fn line_with_comment(out: &mut String, setting: &str, comment: &str) {
    if comment.is_empty() {
        let _ = writeln!(out, "{setting}");
    } else if setting.len() < 41 {
        let _ = writeln!(out, "{setting:<41}# {}", comment_text(comment));
    } else {
        let _ = writeln!(out, "{setting}  # {}", comment_text(comment));
    }
}

/// The value every node shares for one setting, if they all have the same one.
fn shared<T: Clone + PartialEq>(
    nodes: &[ImportedNode],
    get: impl Fn(&ImportedNode) -> &T,
) -> Option<T> {
    let first = get(nodes.first()?);
    nodes.iter().all(|n| get(n) == first).then(|| first.clone())
}

/// Write the whole inventory: header, `[app]`, `[ssh]`, nodes, environments, then the template's
/// phases and checklist. The result is meant to pass `deckhand validate` as written.
pub(crate) fn write_toml(servers: &Servers, scaffold: &Scaffold) -> String {
    let mut out = String::new();
    for l in &scaffold.title {
        let _ = writeln!(out, "# {}", comment_text(l));
    }
    out.push_str("#\n# What to edit next:\n");
    for (i, step) in scaffold.next_steps.iter().enumerate() {
        let _ = writeln!(out, "#   {}. {}", i + 1, comment_text(step));
    }
    out.push_str(
        "# Then check it with `deckhand validate` and look at the steps with `deckhand plan ENV`.\n\
         # Every key is explained in the \"Inventory reference\" of deckhand's README.\n",
    );
    write_import_notes(&mut out, servers);

    // [app]
    let hints = &servers.app;
    out.push_str("\n[app]\n");
    let name = hints
        .name
        .clone()
        .unwrap_or_else(|| scaffold.app_name.clone());
    line_with_comment(
        &mut out,
        &format!("name = {}", toml_string(&name)),
        "used in journals and as {app} in commands",
    );
    let deploy_path = hints
        .deploy_path
        .clone()
        .unwrap_or_else(|| scaffold.deploy_path.clone());
    line_with_comment(
        &mut out,
        &format!("deploy_path = {}", toml_string(&deploy_path)),
        "on every node: releases/<release>, shared/, current -> releases/<release>",
    );
    line_with_comment(
        &mut out,
        &format!(
            "keep_releases = {}",
            hints.keep_releases.unwrap_or(scaffold.keep_releases)
        ),
        "cleanup keeps this many; never the live, previous or new one",
    );
    let files = hints
        .shared_files
        .clone()
        .unwrap_or_else(|| scaffold.shared_files.clone());
    line_with_comment(
        &mut out,
        &format!("shared_files = {}", toml_strings(&files)),
        "linked from shared/ into every release (kept across releases)",
    );
    let dirs = hints
        .shared_dirs
        .clone()
        .unwrap_or_else(|| scaffold.shared_dirs.clone());
    line_with_comment(
        &mut out,
        &format!("shared_dirs = {}", toml_strings(&dirs)),
        "likewise, for directories",
    );

    // [ssh]: what every node shares goes here, the rest stays with the node.
    let nodes = &servers.nodes;
    let user = shared(nodes, |n| &n.user).flatten();
    let port = shared(nodes, |n| &n.port).flatten();
    let key = shared(nodes, |n| &n.identity_file).flatten();
    let jump = shared(nodes, |n| &n.jump).filter(|j| !j.is_empty());
    out.push('\n');
    line_with_comment(
        &mut out,
        "[ssh]",
        "defaults for every node; each may override them",
    );
    match &user {
        Some(u) => line_with_comment(&mut out, &format!("user = {}", toml_string(u)), ""),
        None if nodes.iter().all(|n| n.user.is_none()) && servers.ssh_config.is_none() => {
            line_with_comment(
                &mut out,
                "# user = \"deploy\"",
                "default: your ssh config, else your local user name",
            )
        }
        None => {}
    }
    if let Some(p) = port {
        let _ = writeln!(out, "port = {p}");
    }
    match &key {
        Some(k) => line_with_comment(&mut out, &format!("identity_file = {}", toml_string(k)), ""),
        None if nodes.iter().all(|n| n.identity_file.is_none()) => line_with_comment(
            &mut out,
            "# identity_file = \"~/.ssh/id_ed25519\"",
            "default: ssh-agent and your ssh config",
        ),
        None => {}
    }
    match &jump {
        Some(j) => line_with_comment(
            &mut out,
            &format!("jump = {}", toml_strings(j)),
            "ProxyJump, in order",
        ),
        None if nodes.iter().all(|n| n.jump.is_empty()) && servers.ssh_config.is_none() => {
            line_with_comment(
                &mut out,
                "# jump = \"ops@bastion.example.com:22\"",
                "ProxyJump, when the nodes are behind a bastion",
            )
        }
        None => {}
    }
    if let Some(c) = &servers.ssh_config {
        line_with_comment(
            &mut out,
            &format!("ssh_config = {}", toml_string(c)),
            "ssh reads its Host entries: ProxyJump, keys, agents, certificates",
        );
    }
    out.push_str(&scaffold.ssh_extra);

    // Nodes.
    for n in nodes {
        out.push('\n');
        if let Some(note) = &n.note {
            let _ = writeln!(out, "# {}", comment_text(note));
        }
        let _ = writeln!(out, "[nodes.{}]", toml_key(&n.name));
        line_with_comment(&mut out, &format!("host = {}", toml_string(&n.host)), "");
        if port.is_none() {
            if let Some(p) = n.port {
                let _ = writeln!(out, "port = {p}");
            }
        }
        if user.is_none() {
            if let Some(u) = &n.user {
                let _ = writeln!(out, "user = {}", toml_string(u));
            }
        }
        if key.is_none() {
            if let Some(k) = &n.identity_file {
                let _ = writeln!(out, "identity_file = {}", toml_string(k));
            }
        }
        if jump.is_none() && !n.jump.is_empty() {
            let _ = writeln!(out, "jump = {}", toml_strings(&n.jump));
        }
        if let Some(d) = &n.deploy_path {
            let _ = writeln!(out, "deploy_path = {}", toml_string(d));
        }
        let _ = writeln!(out, "roles = {}", toml_strings(&n.roles));
    }

    // Environments.
    if !servers.environment_note.is_empty() {
        out.push('\n');
        for l in &servers.environment_note {
            let _ = writeln!(out, "# {}", comment_text(l));
        }
    }
    let staging = servers
        .environments
        .iter()
        .find(|e| is_staging(&e.name))
        .map(|e| e.name.clone());
    for e in &servers.environments {
        out.push('\n');
        let _ = writeln!(out, "[environments.{}]", toml_key(&e.name));
        line_with_comment(
            &mut out,
            &format!("nodes = {}", toml_strings(&e.nodes)),
            &e.from,
        );
        let cx = EnvContext {
            requires: staging.clone().filter(|_| is_production(&e.name)),
        };
        out.push_str(&(scaffold.environment)(&e.name, &cx));
    }

    out.push('\n');
    out.push_str(&scaffold.body);
    out
}

/// The header's account of the import: renamed names, passwords left behind, what was not
/// carried over.
fn write_import_notes(out: &mut String, servers: &Servers) {
    if servers.source.is_empty() {
        return;
    }
    let _ = writeln!(out, "#\n# Imported from {}.", comment_text(&servers.source));
    if !servers.renamed.is_empty() {
        out.push_str(
            "# Names changed to valid deckhand names (letters, digits, '.', '_', '+', '-'):\n",
        );
        for (what, from, to) in &servers.renamed {
            let _ = writeln!(
                out,
                "#   {what} {} -> {}",
                comment_text(from),
                comment_text(to)
            );
        }
    }
    if !servers.passwords.is_empty() {
        out.push_str(
            "# Passwords were NOT copied (deckhand logs in with keys and ssh-agent, and runs no sudo\n\
             # password prompt); set up a key for these hosts:\n",
        );
        for (host, vars) in &servers.passwords {
            let _ = writeln!(
                out,
                "#   {} ({})",
                comment_text(host),
                comment_text(&vars.join(", "))
            );
        }
    }
    if !servers.left_out.is_empty() {
        out.push_str("# Not carried over (set these up by hand if deckhand needs them):\n");
        for l in &servers.left_out {
            let _ = writeln!(out, "#   - {}", comment_text(l));
        }
    }
}

/// Lines for `init` to print about an import: what it found and what needs attention.
pub(crate) fn summary(servers: &Servers) -> Vec<String> {
    let mut out = vec![format!(
        "imported {} and {} from {}",
        crate::util::count(servers.nodes.len(), "node", "nodes"),
        crate::util::count(servers.environments.len(), "environment", "environments"),
        servers.source
    )];
    if !servers.renamed.is_empty() {
        out.push(format!(
            "{} renamed to valid deckhand names (listed at the top of the file)",
            crate::util::count(servers.renamed.len(), "name", "names")
        ));
    }
    if !servers.passwords.is_empty() {
        let hosts: Vec<&str> = servers.passwords.iter().map(|(h, _)| h.as_str()).collect();
        out.push(format!(
            "passwords were not copied: {} had one; deckhand logs in with keys and ssh-agent, so give {} a key",
            hosts.join(", "),
            if hosts.len() == 1 { "it" } else { "them" }
        ));
    }
    for l in &servers.left_out {
        out.push(format!("not carried over: {l}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_and_stay_unique() {
        let mut m = NameMap::new("host");
        assert_eq!(m.name("web-1"), "web-1");
        assert_eq!(m.name("web_1"), "web_1");
        assert_eq!(m.name("db 1"), "db-1");
        assert_eq!(m.name("db/1"), "db-1-2");
        assert_eq!(m.name("_hidden"), "hidden");
        assert_eq!(m.name("db 1"), "db-1", "the same raw name keeps its name");
        assert_eq!(m.name("web1.example.com"), "web1.example.com");
        assert_eq!(m.name("🙂"), "node");
        assert_eq!(
            m.renamed,
            vec![
                ("host".into(), "db 1".into(), "db-1".into()),
                ("host".into(), "db/1".into(), "db-1-2".into()),
                ("host".into(), "_hidden".into(), "hidden".into()),
                ("host".into(), "🙂".into(), "node".into()),
            ]
        );
    }

    #[test]
    fn strings_keep_dollar_braces_literal_and_keys_are_quoted_when_needed() {
        for raw in ["a${B}c", "say \"hi\"", "it's", "back\\slash", "tab\there"] {
            let doc: toml::Table = format!("x = {}", toml_string(raw)).parse().unwrap();
            assert_eq!(doc["x"].as_str(), Some(raw.replace("${", "$${").as_str()));
        }
        assert_eq!(toml_key("web-1"), "web-1");
        assert_eq!(toml_key("web1.example.com"), "\"web1.example.com\"");
        assert_eq!(comment_text("a\nb"), "a b");
    }

    #[test]
    fn environment_words() {
        assert!(is_production("production") && is_production("prod") && is_production("prod_eu"));
        assert!(is_staging("staging") && is_staging("stage"));
        assert!(is_environment_word("dev") && !is_environment_word("webservers"));
        assert!(
            !is_environment_word("prod_eu"),
            "only whole words name an environment"
        );
    }
}
