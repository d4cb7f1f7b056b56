//! Preflight: everything checked before the first change, so that a run which cannot finish
//! does not start. Every node is reached and read (live release, previous release, lock, disk),
//! each `shared/.env` has the keys of the environment's `.env.example`, a release bound for an
//! environment that `requires` another has passed that one's checklist, and the deploy script
//! is on every node. Nodes are contacted [`CONCURRENCY`] at a time; answers are reported in plan
//! order. A failure is one line per node, and nothing was changed.

use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use super::remote::{self, NodeSnapshot, ScriptError};
use super::steps::StepRunner;
use crate::event::{EventKind, Level};
use crate::inventory::{Action, Environment, Inventory};
use crate::transport::ExecOutcome;
use crate::util::count;

/// Nodes contacted at once during preflight (state, configuration, deploy script upload).
pub(crate) const CONCURRENCY: usize = 32;

/// Connect to every node and read its state into the ledger, emitting one `Preflight` event per
/// node. Err: one line per node that failed.
pub(crate) async fn read_nodes(
    steps: &StepRunner,
    ledger: &Ledger,
    names: &[String],
) -> Result<(), Vec<String>> {
    let never = CancellationToken::new();
    let answers: Vec<Result<NodeSnapshot, String>> = stream::iter(names.to_vec())
        .map(|name| {
            let t = steps.nodes.node(&name);
            let dp = steps.nodes.deploy_path(&name);
            let never = never.clone();
            async move {
                let Some(t) = t else {
                    return Err("no transport".to_string());
                };
                t.connect().await.map_err(|e| e.to_string())?;
                remote::read_snapshot(&*t, &dp, &never)
                    .await
                    .map_err(|e| match e {
                        ScriptError::Transport(e) => e.to_string(),
                        other => format!("cannot read {dp}: {other}"),
                    })
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (name, answer) in names.iter().zip(answers) {
        match answer {
            Ok(snap) => {
                steps.em.emit(EventKind::Preflight {
                    node: name.clone(),
                    ok: true,
                    live_release: snap.current.clone(),
                    previous_release: snap.previous(),
                    message: snap
                        .lock
                        .as_ref()
                        .map(|l| format!("locked by {}", l.describe())),
                });
                ledger.read_at_start(name, snap);
            }
            Err(e) => {
                steps.em.emit(EventKind::Preflight {
                    node: name.clone(),
                    ok: false,
                    live_release: None,
                    previous_release: None,
                    message: Some(e.clone()),
                });
                failures.push(format!("{name} ({}): {e}", steps.nodes.host(name)));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Every node's `shared/.env` must have the keys of the environment's `.env.example`.
pub(crate) async fn config(
    steps: &StepRunner,
    inv: &Inventory,
    env: &Environment,
    names: &[String],
) -> Result<(), Vec<String>> {
    let Some(example) = env.config_example.clone() else {
        return Ok(());
    };
    let path = inv.base_dir().join(&example);
    let wanted = match std::fs::read_to_string(&path) {
        Ok(t) => crate::config::keys(&t),
        Err(e) => return Err(vec![format!("cannot read {}: {e}", path.display())]),
    };
    let never = CancellationToken::new();
    let answers: Vec<Result<ExecOutcome, ScriptError>> = stream::iter(names.to_vec())
        .map(|n| {
            let script = crate::config::node_keys_script(&steps.nodes.deploy_path(&n));
            let never = never.clone();
            async move { steps.internal(&n, script, &never).await }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut problems = Vec::new();
    for (n, answer) in names.iter().zip(answers) {
        let dp = steps.nodes.deploy_path(n);
        match answer {
            Ok(o) => {
                let (exists, have) = crate::config::parse_node_keys(&o.stdout);
                if !exists {
                    problems.push(format!(
                        "{n}: {dp}/shared/.env does not exist (it needs the keys of {example})"
                    ));
                    continue;
                }
                let missing: Vec<&str> = wanted
                    .iter()
                    .filter(|k| !have.contains(k))
                    .map(|k| k.as_str())
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{n}: {dp}/shared/.env lacks {} (listed in {example})",
                        missing.join(", ")
                    ));
                }
            }
            Err(e) => problems.push(format!("{n}: cannot read shared/.env: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// With `requires = "staging"`, the release must have passed staging's checklist: every
/// staging node's history has a `verified` line for it.
pub(crate) async fn promotion(
    steps: &StepRunner,
    inv: &Inventory,
    env: &Environment,
    release: &str,
) -> Result<(), String> {
    let Some(req) = env.requires.clone() else {
        return Ok(());
    };
    let Some(req_env) = inv.environment(&req) else {
        return Err(format!(
            "environment `{req}` (required by {}) is not defined",
            env.name
        ));
    };
    let statuses = super::status::read_status(inv, &req_env.nodes).await;
    let unverified = super::promote::unverified_on(release, &statuses);
    if unverified.is_empty() {
        steps.em.notice(
            Level::Info,
            format!("{release} passed {req}'s checklist on every {req} node"),
        );
        Ok(())
    } else {
        Err(format!(
            "{release} has not passed {req}'s checklist (not verified on {}): deploy it to {req} first, or use `deckhand promote {req} {}` to ship what {req} verified",
            unverified.join(", "),
            env.name
        ))
    }
}

/// Put the app's `deploy.sh` on every node, when a phase calls one of its functions. The first
/// failure in plan order is the one reported.
pub(crate) async fn upload_script(
    steps: &StepRunner,
    inv: &Inventory,
    names: &[String],
) -> Result<(), String> {
    let Some(script) = inv.app.script.clone() else {
        return Ok(());
    };
    if !inv
        .phases
        .iter()
        .any(|p| matches!(p.action, Action::Function(_)))
    {
        return Ok(());
    }
    let local = inv.base_dir().join(&script);
    if !local.is_file() {
        return Err(format!(
            "deploy script {} does not exist (app.script)",
            local.display()
        ));
    }
    let results: Vec<Result<(), String>> = stream::iter(names.to_vec())
        .map(|n| {
            let to = format!("{}/.deckhand/deploy.sh", steps.nodes.deploy_path(&n));
            let t = steps.nodes.node(&n);
            let local = local.clone();
            async move {
                match t {
                    Some(t) => t.upload(&local, &to).await.map_err(|e| format!("{n}: {e}")),
                    None => Ok(()),
                }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    steps.em.notice(
        Level::Info,
        format!(
            "uploaded {script} to {}",
            count(names.len(), "node", "nodes")
        ),
    );
    Ok(())
}
