//! The shell text of a step, built by pure functions from the phase, the placeholder values and
//! the target: the `{release}`-style values a phase may use, the prologue that exports them as
//! `DECKHAND_*` and enters the deploy path, and the call of a `deploy.sh` function.
//!
//! Every value is shell-quoted here; nothing in this module runs anything, so what a step will
//! send is unit-tested as text.

use std::collections::BTreeMap;
use std::path::Path;

use super::remote;
use crate::inventory::Inventory;
use crate::plan::Target;
use crate::util::sh_quote;

/// Placeholder values for one step (`release`, `release_path`, `deploy_path`, `node`, ...).
pub(crate) type Vars = BTreeMap<&'static str, String>;

/// The deploy path of `node` (the app's, when the node is unknown).
pub(crate) fn deploy_path(inv: &Inventory, node: &str) -> String {
    inv.node(node)
        .map(|n| n.deploy_path.clone())
        .unwrap_or_else(|| inv.app.deploy_path.clone())
}

/// The placeholder values for a step on `node` (None: a stage step on this machine).
pub(crate) fn vars(
    inv: &Inventory,
    env: &str,
    node: Option<&str>,
    release: &str,
    previous: Option<&str>,
) -> Vars {
    let dp = node
        .map(|n| deploy_path(inv, n))
        .unwrap_or_else(|| inv.app.deploy_path.clone());
    let mut v = BTreeMap::new();
    v.insert("release", release.to_string());
    v.insert("release_path", remote::release_path(&dp, release));
    v.insert("previous_release", previous.unwrap_or("").to_string());
    v.insert("deploy_path", dp);
    v.insert("node", node.unwrap_or("").to_string());
    v.insert(
        "host",
        node.and_then(|n| inv.node(n))
            .map(|n| n.host.clone())
            .unwrap_or_default(),
    );
    v.insert("env", env.to_string());
    v.insert("app", inv.app.name.clone());
    v
}

/// The script prologue: `DECKHAND_*` variables, and on a node its deploy path as the working
/// directory.
pub(crate) fn prologue(vars: &Vars, target: &Target) -> String {
    let mut s = String::from("export");
    for (k, v) in vars {
        s.push_str(&format!(
            " DECKHAND_{}={}",
            k.to_ascii_uppercase(),
            sh_quote(v)
        ));
    }
    s.push('\n');
    if let Target::Node(_) = target {
        s.push_str(&format!(
            "cd {} 2>/dev/null || cd /\n",
            sh_quote(&vars["deploy_path"])
        ));
    }
    s
}

/// A whole script: the prologue, then `body`.
pub(crate) fn with_prologue(vars: &Vars, target: &Target, body: &str) -> String {
    format!("{}{body}", prologue(vars, target))
}

/// Where the app's `deploy.sh` is for a step: uploaded under the node's deploy path, or the
/// inventory's own file for a step on this machine.
pub(crate) fn deploy_script_path(inv: &Inventory, target: &Target) -> String {
    match target {
        Target::Node(n) => format!("{}/.deckhand/deploy.sh", deploy_path(inv, n)),
        Target::Local => local_deploy_script(&inv.base_dir(), inv.app.script.as_deref()),
    }
}

fn local_deploy_script(base_dir: &Path, script: Option<&str>) -> String {
    base_dir
        .join(script.unwrap_or_default())
        .display()
        .to_string()
}

/// Call function `f` of the deploy script at `path`: under bash when the node has it (the
/// seed's deploy.sh is a bash script), else with `sh`.
pub(crate) fn function_call(path: &str, f: &str) -> String {
    format!(
        "DECKHAND_FUNCTION={f}; export DECKHAND_FUNCTION\n\
         if command -v bash >/dev/null 2>&1; then exec bash -c '. \"$1\" && \"$2\"' deckhand {p} {f}; \
         else . {p} && {f}; fi\n",
        f = sh_quote(f),
        p = sh_quote(path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars_of(pairs: &[(&'static str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn the_prologue_exports_every_value_quoted_and_enters_the_deploy_path_on_a_node() {
        let v = vars_of(&[("deploy_path", "/srv/my app"), ("release", "v1'1")]);
        let on_node = prologue(&v, &Target::Node("web-1".into()));
        assert_eq!(
            on_node,
            "export DECKHAND_DEPLOY_PATH='/srv/my app' DECKHAND_RELEASE='v1'\\''1'\n\
             cd '/srv/my app' 2>/dev/null || cd /\n"
        );
        let local = prologue(&v, &Target::Local);
        assert!(!local.contains("cd "), "{local}");
    }

    #[test]
    fn a_function_call_quotes_path_and_name_and_prefers_bash() {
        let s = function_call("/srv/app/.deckhand/deploy.sh", "migrate");
        assert!(s.starts_with("DECKHAND_FUNCTION='migrate'; export DECKHAND_FUNCTION\n"));
        assert!(s.contains(
            "exec bash -c '. \"$1\" && \"$2\"' deckhand '/srv/app/.deckhand/deploy.sh' 'migrate'"
        ));
        assert!(s.contains("else . '/srv/app/.deckhand/deploy.sh' && 'migrate'; fi"));
    }

    #[test]
    fn a_local_deploy_script_is_found_beside_the_inventory() {
        assert_eq!(
            local_deploy_script(Path::new("/etc/deckhand"), Some("deploy.sh")),
            "/etc/deckhand/deploy.sh"
        );
    }
}
