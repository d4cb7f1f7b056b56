//! The demo: N nodes on this machine (directories with real releases, a real `current` link,
//! a file-backed load balancer and a real health check), set up with v1.0 live, so that a
//! first-time user can watch a rolling deployment of v1.1 without any SSH setup.
//!
//! It only writes files under its directory and builds an ordinary inventory there; the
//! deployment itself is the normal engine, unchanged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::engine::{self, Outcome, RunOptions};
use crate::inventory::{self, Inventory};
use crate::util::sh_quote;

pub const ENV: &str = "demo";
pub const FROM: &str = "v1.0";
pub const TO: &str = "v1.1";

pub struct Demo {
    pub dir: PathBuf,
    pub inventory: PathBuf,
    pub nodes: Vec<String>,
}

pub fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("web-{i}")).collect()
}

/// The demo's inventory text (also shipped, with a placeholder directory, as inventory/demo.toml).
pub fn inventory_text(dir: &Path, nodes: &[String]) -> String {
    let d = dir.display().to_string();
    let q = |s: &str| sh_quote(s).replace('\\', "\\\\").replace('"', "\\\"");
    let pace = q(&format!("{d}/pace"));
    let lb = |node_expr: &str| format!("{}{node_expr}", q(&format!("{d}/lb/")));
    let mut s = format!(
        r#"# deckhand demo: {n} nodes on this machine, each a directory under {d}/nodes.
# Every step is real: releases are built, `current` is switched atomically, the load balancer
# is a state file per node, and the health check reads the live release.

[app]
name = "demo-shop"
deploy_path = "{d}/nodes/default"
keep_releases = 3
shared_files = [".env"]
shared_dirs = ["storage"]

"#,
        n = nodes.len()
    );
    for (i, n) in nodes.iter().enumerate() {
        let roles = if i == 0 {
            r#"["app", "migrator"]"#
        } else {
            r#"["app"]"#
        };
        s.push_str(&format!(
            "[nodes.{n}]\ntransport = \"local\"\ndeploy_path = \"{d}/nodes/{n}\"\nroles = {roles}\n\n"
        ));
    }
    let list = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sleep = format!("sleep \\\"$(cat {pace})\\\"");
    s.push_str(&format!(
        r#"[environments.demo]
nodes = [{list}]
strategy = "rolling"
batches = [1, "50%", "100%"]
max_fail = "0%"
on_failure = "pause"
pause_after_first = true
health = {{ run = "test -f {{release_path}}/public/up && grep -qx {{release}} {{deploy_path}}/current/REVISION", timeout = "2s", interval = "300ms", retries = 3 }}

[environments.demo.load_balancer]
drain = "printf 'drain\\n' > {lb_node}.new && mv -f {lb_node}.new {lb_node}"
enable = "printf 'ready\\n' > {lb_node}.new && mv -f {lb_node}.new {lb_node}"
state = "cat {lb_node}"
timeout = "5s"

[[phases]]
name = "create_deployment_tag"
stage = "before"
where = "local"
run = "printf 'deploy-%s-%s\\n' {{env}} {{release}} >> {tags}; echo tagged deploy-{{env}}-{{release}}"

[[phases]]
name = "release"
builtin = "release"

[[phases]]
name = "pull_latest_code"
run = "{sleep}; mkdir -p {{release_path}}/public && printf '%s\\n' {{release}} > {{release_path}}/REVISION && echo checked out {{release}}"
timeout = "1m"

[[phases]]
name = "install_dependencies"
run = "{sleep}; echo installed 42 packages"
timeout = "1m"

[[phases]]
name = "run_migrations"
once = true
roles = ["migrator"]
run = "{sleep}; echo ran 2 migrations"
timeout = "1m"

[[phases]]
name = "build_assets"
run = "{sleep}; if [ -e {{deploy_path}}/shared/FAULT ]; then echo 'asset build produced no public/up' >&2; else echo ok > {{release_path}}/public/up; echo built assets; fi"
timeout = "1m"

[[phases]]
name = "switch"
builtin = "switch"

[[phases]]
name = "restart_services"
run = "printf '%s\\n' {{release}} > {{deploy_path}}/shared/running && echo restarted app server"
timeout = "1m"

[[phases]]
name = "cleanup"
stage = "after"
builtin = "cleanup"

# The post-deploy checklist: each window repeats its checks every interval, and the decision
# tree rolls back when health or the error rate fails.
[checklist]
immediate = "8s"
short = "6s"
long = "0s"
interval = "2s"

[[checks]]
name = "Health endpoint responding"
window = "immediate"
kind = "health"
per_node = true
run = "test -f {{deploy_path}}/current/public/up"

[[checks]]
name = "Response times < 500ms"
window = "immediate"
kind = "performance"
per_node = true
run = "s=$(date +%s%N); cat {{deploy_path}}/current/public/up > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))"
max = 500
unit = "ms"

[[checks]]
name = "Queue workers processing"
window = "immediate"
kind = "critical"
per_node = true
run = "grep -qx {{release}} {{deploy_path}}/shared/running"

[[checks]]
name = "No 500 errors in logs"
window = "short"
kind = "errors"
per_node = true
run = "cat {{deploy_path}}/shared/storage/access.log 2>/dev/null | grep -c ' 500 ' || true"
max = 0

[[checks]]
name = "All critical paths tested"
window = "short"
kind = "critical"
manual = true
"#,
        lb_node = lb("{node}"),
        tags = q(&format!("{d}/tags.log")),
    ));
    s
}

/// Create the demo directory with its inventory, and v1.0 live on every node.
pub async fn prepare(dir: &Path, n: usize, fail_node: Option<&str>, fast: bool) -> Result<Demo> {
    if n == 0 || n > 500 {
        bail!("--nodes must be between 1 and 500");
    }
    let nodes = node_names(n);
    if let Some(f) = fail_node {
        if !nodes.iter().any(|x| x == f) {
            bail!("--fail-node {f}: the demo has nodes web-1 … web-{n}");
        }
    }
    std::fs::create_dir_all(dir.join("lb"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    for node in &nodes {
        let dp = dir.join("nodes").join(node);
        std::fs::create_dir_all(dp.join("shared/storage"))?;
        std::fs::write(dp.join("shared/.env"), "APP_ENV=demo\n")?;
        let _ = std::fs::remove_file(dp.join("shared/FAULT"));
        std::fs::write(dir.join("lb").join(node), "ready\n")?;
    }
    let inventory = dir.join("deckhand.toml");
    std::fs::write(&inventory, inventory_text(&dir, &nodes))?;
    std::fs::write(dir.join("pace"), "0\n")?;

    // v1.0 goes live through the engine itself, quickly and quietly, unless it already is.
    let inv = Arc::new(load(&inventory)?);
    let already = nodes.iter().all(|node| {
        std::fs::read_link(dir.join("nodes").join(node).join("current"))
            .map(|t| t.ends_with(FROM))
            .unwrap_or(false)
    });
    if !already {
        let plan = crate::plan::build(&inv, ENV, FROM)?;
        let opts = RunOptions {
            auto_promote: true,
            headless: true,
            journal_dir: None,
            who: crate::util::whoami(),
            watch: Some(std::time::Duration::ZERO),
            ..RunOptions::default()
        };
        let mut h = engine::spawn_deploy(inv, plan, opts)?;
        let mut last = None;
        while let Some(e) = h.events.recv().await {
            if let engine::EventKind::Finished { message, .. } = &e.kind {
                last = Some(message.clone());
            }
        }
        let outcome = h.done.await?;
        if outcome != Outcome::Deployed {
            bail!(
                "could not set up {FROM} on the demo nodes: {}",
                last.unwrap_or_default()
            );
        }
    }
    if let Some(f) = fail_node {
        std::fs::write(
            dir.join("nodes").join(f).join("shared/FAULT"),
            "health check will fail\n",
        )?;
    }
    std::fs::write(dir.join("pace"), if fast { "0\n" } else { "1\n" })?;
    Ok(Demo {
        dir,
        inventory,
        nodes,
    })
}

pub fn load(path: &Path) -> Result<Inventory> {
    inventory::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}
