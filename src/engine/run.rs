//! The run: one deployment or rollback, written against the engine's parts. It holds what the
//! run is (inventory, environment, plan, options, deployment id) and the parts that do the work:
//! the step runner, the ledger of node facts, the locks, the balancers. Its top reads like the
//! README's "How a deployment runs"; the details live beside it: a node's phases (`phase.rs`),
//! a node's turn and failure policy (`turn.rs`), batches (`rolling.rs`), blue-green
//! (`bluegreen.rs`), rollback and abort (`rollback.rs`), the checklist window (`monitor.rs`).
//!
//! Invariants kept here, whatever happens: a node is always on one whole release (`current` is
//! switched by rename, and a release this run built but never switched to is removed on abort
//! or rollback); the lock is released on every exit path once taken; every step has a time
//! limit and runs under a cancel token, so abort and rollback kill what is running.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

mod bluegreen;
mod monitor;
mod phase;
mod rollback;
mod rolling;
mod turn;

use super::balance::{Balancing, Server};
use super::control::{Ctl, Stop};
use super::emit::Emitter;
use super::error::StartError;
use super::ledger::Ledger;
use super::lock::{LockPolicy, Locks};
use super::policy::RollbackTarget;
use super::preflight;
use super::script::{self, Vars};
use super::steps::{Nodes, StepRunner};
use super::timing::Timing;
use super::{RunHandle, RunOptions};
use crate::event::*;
use crate::inventory::{Environment, Inventory, Probe};
use crate::journal::{create_journal, journal_name, new_deployment_id};
use crate::plan::{Plan, Target};

/// The run is over: its last event is out, with this outcome.
pub(super) struct Ended(pub Outcome);

pub(super) struct Run {
    inv: Arc<Inventory>,
    env: Environment,
    plan: Plan,
    opts: RunOptions,
    id: String,
    em: Arc<Emitter>,
    ctl: Arc<Ctl>,
    steps: Arc<StepRunner>,
    ledger: Arc<Ledger>,
    locks: Locks,
    lb: Balancing,
    /// Blue-green, once traffic moved: (group that served before, group that serves now).
    switched_groups: Mutex<Option<(String, String)>>,
    /// Set when a failure beyond `max_fail` asks for a pause gate after the batch.
    failure_gate: Mutex<Option<String>>,
    /// What the run is (set by its first event) and when it started, for the nodes' history.
    kind: Mutex<Option<RunKind>>,
    started_at: String,
}

/// Set up a run: its journal, its transports, its balancers, its parts. Errors here are about
/// this machine, before any node is contacted.
fn start(
    inv: Arc<Inventory>,
    plan: Plan,
    opts: RunOptions,
) -> Result<(Arc<Run>, RunHandle, mpsc::UnboundedReceiver<Control>), StartError> {
    let env = inv
        .environment(&plan.env)
        .cloned()
        .ok_or_else(|| StartError::UnknownEnvironment(plan.env.clone()))?;
    let id = opts.resume_id.clone().unwrap_or_else(new_deployment_id);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let journal = match &opts.journal_dir {
        Some(dir) => Some(
            create_journal(dir, &journal_name(&inv.app.name, &env.name, &id)).map_err(
                |source| StartError::Journal {
                    dir: dir.display().to_string(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    let notifier = crate::notify::Notifier::start(&inv.notify).map(Arc::new);
    let em = Arc::new(Emitter::new(ev_tx, inv.secrets.clone(), journal, notifier));
    let timing = Arc::new(Timing::new());
    let ctl = Ctl::new(em.clone(), timing.clone());
    if opts.step {
        ctl.start_paused();
    }
    let nodes = Arc::new(Nodes::new(inv.clone(), &plan.nodes).map_err(StartError::Node)?);
    let lbs = crate::lb::build(&inv, &env.load_balancers, &|name| nodes.any(name))
        .map_err(StartError::Balancer)?;
    let steps = Arc::new(StepRunner {
        em: em.clone(),
        ctl: ctl.clone(),
        nodes,
        timing,
        background: Default::default(),
    });
    let ledger = Arc::new(Ledger::new(&plan.nodes));
    let locks = Locks::new(
        steps.clone(),
        ledger.clone(),
        plan.nodes.clone(),
        id.clone(),
        env.name.clone(),
        opts.who.clone(),
        LockPolicy {
            lock_wait: opts.lock_wait,
            take_over_stale: opts.take_over_stale,
            stale_after: opts.stale_after,
            resume_id: opts.resume_id.clone(),
        },
    );
    let servers = plan
        .nodes
        .iter()
        .map(|n| Server {
            node: n.clone(),
            name: inv
                .node(n)
                .map(|x| x.lb_server.clone())
                .unwrap_or_else(|| n.clone()),
            vars: script::vars(&inv, &env.name, Some(n), &plan.release, None),
        })
        .collect();
    let lb = Balancing::new(
        lbs,
        servers,
        steps.clone(),
        ledger.clone(),
        opts.headless,
        !plan.groups.is_empty(),
    );
    let run = Arc::new(Run {
        inv,
        env,
        plan,
        opts,
        id,
        em,
        ctl,
        steps,
        ledger,
        locks,
        lb,
        switched_groups: Mutex::new(None),
        failure_gate: Mutex::new(None),
        kind: Mutex::new(None),
        started_at: chrono::Utc::now().to_rfc3339(),
    });
    // The join handle is filled in by the caller.
    let handle = RunHandle {
        events: ev_rx,
        controls: ctl_tx,
        done: tokio::spawn(async { Outcome::Failed }),
    };
    Ok((run, handle, ctl_rx))
}

/// Start the run's task: controls are applied while `work` runs; notifications are delivered
/// (within their bounded wait) before the outcome is handed back.
fn launch<F, Fut>(
    inv: Arc<Inventory>,
    plan: Plan,
    opts: RunOptions,
    work: F,
) -> Result<RunHandle, StartError>
where
    F: FnOnce(Arc<Run>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Outcome> + Send,
{
    let (run, mut handle, ctl_rx) = start(inv, plan, opts)?;
    handle.done = tokio::spawn(async move {
        let listener = run.ctl.listen(ctl_rx);
        let outcome = work(run.clone()).await;
        listener.abort();
        run.steps.settle().await;
        run.record_finished(outcome).await;
        run.steps.nodes.close().await;
        if let Some(n) = run.em.notifier() {
            n.finish().await;
        }
        outcome
    });
    Ok(handle)
}

/// Start a deployment of `plan`. Errors here are about this machine (journal, transports), before
/// any node is contacted.
pub fn spawn_deploy(
    inv: Arc<Inventory>,
    plan: Plan,
    opts: RunOptions,
) -> Result<RunHandle, StartError> {
    launch(inv, plan, opts, |run| async move {
        match run.deploy().await {
            Ok(e) | Err(e) => e.0,
        }
    })
}

/// Start a rollback of every node of the plan's environment.
pub fn spawn_rollback(
    inv: Arc<Inventory>,
    plan: Plan,
    target: RollbackTarget,
    opts: RunOptions,
) -> Result<RunHandle, StartError> {
    launch(inv, plan, opts, |run| async move {
        match run.rollback_command(target).await {
            Ok(e) | Err(e) => e.0,
        }
    })
}

impl Run {
    // ---------------------------------------------------------------- a deployment

    /// A deployment, in the order the README tells it.
    async fn deploy(self: Arc<Self>) -> Result<Ended, Ended> {
        let release = self.plan.release.clone();
        self.announce(RunKind::Deploy, &release);
        // 1. Preflight: every node reached and read, balancers, configuration, promotion.
        self.preflight(&release).await?;
        // 2. Lock every node.
        self.lock(&release).await?;
        self.upload_script().await?;
        // 3. Before-steps: nothing has switched yet, so a failure simply stops the run.
        self.before_steps().await?;
        // 4. Batches: drain → phases → health → enable on each node of a batch, gates between.
        if !self.plan.groups.is_empty() {
            return self.clone().blue_green().await;
        }
        let tolerated = self.clone().batches().await?;
        // 5. After-steps, on the nodes where the release landed.
        self.after_steps().await?;
        // The post-deploy checklist decides whether the release stays.
        self.checklist(&release, tolerated).await?;
        // 6. Unlock.
        self.locks.release().await;
        Ok(self.deployed(&release, tolerated))
    }

    /// Preflight, in order; any failure ends the run before a single change.
    async fn preflight(&self, release: &str) -> Result<(), Ended> {
        if let Err(failures) =
            preflight::read_nodes(&self.steps, &self.ledger, &self.plan.nodes).await
        {
            return Err(self.end(
                Outcome::PreflightFailed,
                format!(
                    "preflight failed on {}, nothing was changed:\n  {}",
                    crate::util::count(failures.len(), "node", "nodes"),
                    failures.join("\n  ")
                ),
            ));
        }
        if let Err(problems) = self.lb.preflight().await {
            return Err(self.end(
                Outcome::PreflightFailed,
                format!(
                    "the load balancer is not ready, nothing was changed:\n  {}",
                    problems.join("\n  ")
                ),
            ));
        }
        if let Err(problems) =
            preflight::config(&self.steps, &self.inv, &self.env, &self.plan.nodes).await
        {
            return Err(self.end(
                Outcome::PreflightFailed,
                format!(
                    "configuration check failed, nothing was changed:\n  {}",
                    problems.join("\n  ")
                ),
            ));
        }
        if let Err(why) = preflight::promotion(&self.steps, &self.inv, &self.env, release).await {
            return Err(self.end(
                Outcome::PreflightFailed,
                format!("{why}; nothing was changed"),
            ));
        }
        Ok(())
    }

    async fn lock(&self, label: &str) -> Result<(), Ended> {
        self.locks.acquire(label).await.map_err(|e| {
            let outcome = match e {
                super::lock::LockError::Failed(_) => Outcome::PreflightFailed,
                _ => Outcome::LockHeld,
            };
            self.end(outcome, e.to_string())
        })
    }

    async fn upload_script(&self) -> Result<(), Ended> {
        if let Err(e) = preflight::upload_script(&self.steps, &self.inv, &self.plan.nodes).await {
            self.locks.release().await;
            return Err(self.end(Outcome::Failed, format!("{e}; nothing was changed")));
        }
        Ok(())
    }

    async fn before_steps(&self) -> Result<(), Ended> {
        for st in self.plan.before.clone() {
            self.boundary().await?;
            if let Err(e) = self.stage_step(st.index, &st.targets).await {
                self.stopped().await?;
                self.locks.release().await;
                return Err(self.end(Outcome::Halted, format!("{e}; no node was changed")));
            }
        }
        Ok(())
    }

    /// After-steps (cleanup and the like) run only where the deployment landed; a failure there
    /// does not undo a live release, it is reported.
    async fn after_steps(&self) -> Result<(), Ended> {
        for st in self.plan.after.clone() {
            self.boundary().await?;
            let targets: Vec<Target> = st
                .targets
                .iter()
                .filter(|t| match t {
                    Target::Node(n) => self.ledger.landed(n),
                    Target::Local => true,
                })
                .cloned()
                .collect();
            if let Err(e) = self.stage_step(st.index, &targets).await {
                self.stopped().await?;
                self.em.notice(
                    Level::Warn,
                    format!("{e}; the release is live, check the after-steps by hand"),
                );
            }
        }
        Ok(())
    }

    /// The checklist's verdict: keep the release (recorded as verified on every node when no
    /// node failed), or roll it back.
    async fn checklist(&self, release: &str, tolerated: usize) -> Result<(), Ended> {
        match self.monitor_timed().await {
            Err(stop) => Err(self.stop(stop).await),
            Ok(monitor::Monitored::RollBack(reason)) => {
                let outcome = self.rollback_all(reason.clone()).await;
                self.locks.release().await;
                let msg = match outcome {
                    Outcome::RolledBack => format!(
                        "rolled back after the checklist: {reason}; {}",
                        self.ledger.release_summary()
                    ),
                    _ => format!(
                        "rollback after the checklist did not complete ({reason}); {}",
                        self.ledger.release_summary()
                    ),
                };
                Err(self.end(outcome, msg))
            }
            Ok(monitor::Monitored::Kept { note }) => {
                if tolerated == 0 {
                    for n in self.plan.nodes.clone() {
                        if self.ledger.landed(&n) {
                            self.write_history(&n, "verified", release, None, true);
                        }
                    }
                }
                if let Some(note) = note {
                    self.em
                        .notice(Level::Warn, format!("the release stays: {note}"));
                }
                Ok(())
            }
        }
    }

    fn deployed(&self, release: &str, tolerated: usize) -> Ended {
        if tolerated > 0 {
            self.end(
                Outcome::Partial,
                format!(
                    "{release} deployed except on {} (within max_fail); {}",
                    crate::util::count(tolerated, "failed node", "failed nodes"),
                    self.ledger.release_summary()
                ),
            )
        } else {
            self.end(
                Outcome::Deployed,
                format!(
                    "{release} is live on every node; {}",
                    self.ledger.release_summary()
                ),
            )
        }
    }

    // ---------------------------------------------------------------- the run's edges

    /// Wait at a step boundary (pause); a stop ends the run its way.
    async fn boundary(&self) -> Result<(), Ended> {
        match self.ctl.boundary().await {
            Ok(()) => Ok(()),
            Err(stop) => Err(self.stop(stop).await),
        }
    }

    /// After a failed step: if the operator (or the failure policy) stopped the run, end it.
    async fn stopped(&self) -> Result<(), Ended> {
        match self.ctl.stop_reason() {
            Some(stop) => Err(self.stop(stop).await),
            None => Ok(()),
        }
    }

    fn node_info(&self) -> Vec<NodeInfo> {
        self.plan
            .nodes
            .iter()
            .filter_map(|n| self.inv.node(n))
            .map(|n| n.info())
            .collect()
    }

    /// The run's first event: what is about to happen.
    fn announce(&self, kind: RunKind, release: &str) {
        if let Ok(mut k) = self.kind.lock() {
            *k = Some(kind);
        }
        let checks = &self.inv.checks;
        let cl = &self.inv.checklist;
        self.em.emit(EventKind::Started {
            deployment: self.id.clone(),
            kind,
            app: self.inv.app.name.clone(),
            env: self.env.name.clone(),
            release: release.to_string(),
            strategy: self.plan.strategy.clone(),
            who: self.opts.who.clone(),
            from_host: crate::util::hostname(),
            nodes: self.node_info(),
            batches: self.plan.batches.clone(),
            gates: if kind == RunKind::Deploy {
                self.plan.gates.clone()
            } else {
                vec![]
            },
            phases: self.plan.phase_names(),
            protected: self.env.protected,
            balancer: self.lb.any(),
            journal: self.em.journal_path().map(|p| p.display().to_string()),
            checks: checks
                .iter()
                .map(|c| CheckInfo {
                    name: c.name.clone(),
                    window: c.window.word().into(),
                    kind: c.kind.word().into(),
                    manual: matches!(c.probe, Probe::Manual),
                    per_node: c.per_node,
                })
                .collect(),
            windows: if checks.is_empty() {
                vec![]
            } else {
                vec![
                    ("immediate".into(), cl.immediate.as_millis() as u64),
                    ("short".into(), cl.short.as_millis() as u64),
                    ("long".into(), cl.long.as_millis() as u64),
                ]
            },
        });
    }

    /// The run's last event. Nodes this run left out of rotation are named in the message.
    fn end(&self, outcome: Outcome, message: String) -> Ended {
        let out = self.lb.out_of_rotation();
        let message = if out.is_empty() {
            message
        } else {
            format!(
                "{message}; OUT OF ROTATION: {} (put back with the balancer, or re-run)",
                out.join(", ")
            )
        };
        let nodes = &self.steps.nodes;
        let floor = |node: Option<&str>| {
            node.and_then(|n| nodes.node(n))
                .map(|t| t.floor())
                .unwrap_or_default()
        };
        self.em
            .emit(EventKind::Timing(self.steps.timing.report(&floor)));
        self.em.emit(EventKind::Finished {
            outcome,
            message,
            nodes: self.ledger.releases(),
        });
        Ended(outcome)
    }

    fn set_state(&self, node: &str, state: NodeState) {
        self.em.emit(EventKind::NodeState {
            node: node.to_string(),
            state,
        });
    }

    /// The placeholder values for a step on `node` (None: on this machine).
    fn vars(&self, node: Option<&str>, release: &str, previous: Option<&str>) -> Vars {
        script::vars(&self.inv, &self.env.name, node, release, previous)
    }

    /// Append one line to a node's `history.jsonl`, beside the steps (off the run's critical
    /// path; a node's lines keep their order, and the run waits for them before it unlocks).
    fn write_history(&self, node: &str, kind: &str, release: &str, from: Option<String>, ok: bool) {
        let entry = super::remote::HistoryEntry {
            from,
            ..self.history_entry(kind, release, if ok { "ok" } else { "failed" })
        };
        let script = super::remote::history_script(&self.steps.nodes.deploy_path(node), &entry);
        self.steps
            .in_background(node, script, "append to its history");
    }

    /// A history line of this run, with who ran it, from where, and what the run is.
    fn history_entry(
        &self,
        kind: &str,
        release: &str,
        result: &str,
    ) -> super::remote::HistoryEntry {
        let run_kind = self.kind.lock().ok().and_then(|k| *k);
        let run = match run_kind {
            Some(RunKind::Rollback) => "rollback",
            _ if self.opts.resume_id.is_some() => "resume",
            _ if self.opts.promote_from.is_some() => "promote",
            _ => "deploy",
        };
        super::remote::HistoryEntry {
            host: Some(crate::util::hostname()),
            env: Some(self.env.name.clone()),
            run: Some(run.into()),
            ..super::remote::HistoryEntry::new(
                &self.id,
                kind,
                release,
                &self.opts.who,
                &chrono::Utc::now().to_rfc3339(),
                result,
            )
        }
    }

    /// The run's end in the history of every node it changed (or tried to): its outcome, failed
    /// nodes, and when it started, so that any console reading the nodes tells the same story.
    /// A run that changed nothing (the lock was held, preflight failed) leaves no line.
    async fn record_finished(&self, outcome: Outcome) {
        if matches!(outcome, Outcome::LockHeld | Outcome::PreflightFailed) {
            return;
        }
        let facts = self.ledger.all();
        let failed: Vec<String> = facts
            .iter()
            .filter(|(_, f)| f.failed)
            .map(|(n, _)| n.clone())
            .collect();
        // Only the nodes this run changed or tried to: the others' history stays as it was.
        let touched: Vec<String> = facts
            .into_iter()
            .filter(|(_, f)| {
                f.done || f.failed || f.rolled_back || f.created || f.switched.is_some()
            })
            .map(|(n, _)| n)
            .collect();
        let entry = super::remote::HistoryEntry {
            started: Some(self.started_at.clone()),
            failed,
            ..self.history_entry("finished", &self.plan.release, outcome.word())
        };
        let never = tokio_util::sync::CancellationToken::new();
        let writes = touched.iter().map(|node| {
            let script = super::remote::history_script(&self.steps.nodes.deploy_path(node), &entry);
            let never = &never;
            async move {
                if let Err(e) = self.steps.internal(node, script, never).await {
                    log::warn!("{node}: could not record the run's end in its history: {e}");
                }
            }
        });
        futures::future::join_all(writes).await;
    }

    /// End the run the way the operator (or the failure policy) asked.
    async fn stop(&self, stop: Stop) -> Ended {
        match stop {
            Stop::Abort => {
                let detail = self.abort_cleanup().await;
                self.locks.release().await;
                self.end(
                    Outcome::Aborted,
                    format!("aborted; {detail}; {}", self.ledger.release_summary()),
                )
            }
            Stop::Rollback => {
                let reason = self
                    .ctl
                    .snapshot()
                    .reason
                    .unwrap_or_else(|| "rollback requested".into());
                let outcome = self.rollback_all(reason).await;
                self.locks.release().await;
                let msg = match outcome {
                    Outcome::RolledBack => {
                        format!("rolled back; {}", self.ledger.release_summary())
                    }
                    _ => format!(
                        "rollback did not complete; {}",
                        self.ledger.release_summary()
                    ),
                };
                self.end(outcome, msg)
            }
        }
    }
}
