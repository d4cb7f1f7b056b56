//! The run loop: preflight, lock, before-steps, batches of nodes (drain → phases → health →
//! enable), gates, failure policy, rollback, abort, after-steps, unlock.
//!
//! Invariants kept here, whatever happens: a node is always on one whole release (`current` is
//! switched by rename, and a release this run built but never switched to is removed on abort
//! or rollback); the lock is released on every exit path once taken; every step has a timeout
//! and runs under a cancel token, so abort and rollback kill what is running.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod balance;
mod bluegreen;
mod lock;
mod monitor;

use super::control::{Ctl, Stop};
use super::emit::Emitter;
use crate::journal::{create_journal, journal_name, new_deployment_id};
use crate::event::*;
use super::remote::{self, HistoryEntry, LockInfo, NodeSnapshot, ScriptError};
use super::RunHandle;
use crate::inventory::{
    Action, Builtin, Environment, HealthProbe, Inventory, OnFailure, Stage, TransportKind,
};
use crate::plan::{NodeStep, Plan, Target};
use crate::transport::local::LocalTransport;
use crate::transport::{self, ExecOutcome, ExecRequest, Transport};
use crate::util::{expand, sh_quote};

/// Default limits for steps that do not set their own.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const BUILTIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Nodes contacted at once during preflight (state, configuration, deploy script upload).
const PREFLIGHT_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Pass gates without waiting (`--yes`).
    pub auto_promote: bool,
    /// Nobody is watching: a failure that would pause rolls back instead.
    pub headless: bool,
    /// Where the journal goes; None writes none.
    pub journal_dir: Option<PathBuf>,
    pub who: String,
    /// Cap on the monitoring window (`--watch`); None runs the checklist's windows in full.
    pub watch: Option<Duration>,
    /// Wait this long for a live lock to be released (`--lock-wait`).
    pub lock_wait: Option<Duration>,
    /// Take over locks whose heartbeat is older than `stale_after` (the operator confirmed).
    pub take_over_stale: bool,
    /// A lock whose heartbeat is older than this is stale.
    pub stale_after: Duration,
    /// Resume: run under this deployment id and take over its own lock.
    pub resume_id: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            auto_promote: false,
            headless: false,
            journal_dir: Some(crate::journal::default_journal_dir()),
            who: crate::util::whoami(),
            watch: None,
            lock_wait: None,
            take_over_stale: false,
            stale_after: DEFAULT_STALE_AFTER,
            resume_id: None,
        }
    }
}

/// How often a running console refreshes its locks' heartbeat, and when a lock counts as stale.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// What a rollback run puts each node back on.
#[derive(Debug, Clone)]
pub enum RollbackTarget {
    /// Each node's previous release (from its history).
    Previous,
    /// This release, on every node.
    Release(String),
    /// After a crash: each node back to the release it had before the interrupted run; the
    /// release that run was deploying is removed where it is not live.
    Resume {
        to: BTreeMap<String, String>,
        abandon: String,
    },
}

#[derive(Debug, Default, Clone)]
struct NodeRec {
    /// The node as preflight read it.
    snapshot: NodeSnapshot,
    /// The release live when this run started.
    live_before: Option<String>,
    /// The release `current` points at now (measured after every switch).
    current: Option<String>,
    /// This run created `releases/<release>` on the node.
    created: bool,
    /// Order in which the node switched (for newest-first rollback).
    switched: Option<u64>,
    drained: bool,
    done: bool,
    failed: bool,
    skipped: bool,
    rolled_back: bool,
}

struct Run {
    inv: Arc<Inventory>,
    env: Environment,
    plan: Plan,
    opts: RunOptions,
    id: String,
    em: Arc<Emitter>,
    ctl: Arc<Ctl>,
    transports: HashMap<String, Arc<dyn Transport>>,
    local: Arc<LocalTransport>,
    lbs: Vec<crate::lb::Configured>,
    /// Blue-green, once traffic moved: (group that served before, group that serves now).
    switched_groups: Mutex<Option<(String, String)>>,
    recs: Mutex<HashMap<String, NodeRec>>,
    switches: AtomicU64,
    /// Set when a failure beyond `max_fail` asks for a pause gate after the batch.
    failure_gate: Mutex<Option<String>>,
    locked: Mutex<bool>,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn start(
    inv: Arc<Inventory>,
    plan: Plan,
    opts: RunOptions,
) -> Result<(Arc<Run>, RunHandle, mpsc::UnboundedReceiver<Control>), String> {
    let env = inv
        .environment(&plan.env)
        .cloned()
        .ok_or_else(|| format!("environment `{}` is not defined", plan.env))?;
    let id = opts.resume_id.clone().unwrap_or_else(new_deployment_id);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let journal = match &opts.journal_dir {
        Some(dir) => Some(
            create_journal(dir, &journal_name(&inv.app.name, &env.name, &id))
                .map_err(|e| format!("cannot create the journal in {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let notifier = crate::notify::Notifier::start(&inv.notify).map(Arc::new);
    let em = Arc::new(Emitter::new(ev_tx, inv.secrets.clone(), journal, notifier));
    let ctl = Ctl::new(em.clone());
    let mut transports = HashMap::new();
    for name in &plan.nodes {
        let node = inv
            .node(name)
            .ok_or_else(|| format!("node `{name}` is not defined"))?;
        let t =
            transport::for_node(node, &inv.base_dir()).map_err(|e| format!("node {name}: {e}"))?;
        transports.insert(name.clone(), t);
    }
    let lbs = {
        let lookup = |name: &str| -> Option<Arc<dyn Transport>> {
            transports.get(name).cloned().or_else(|| {
                inv.node(name)
                    .and_then(|n| transport::for_node(n, &inv.base_dir()).ok())
            })
        };
        crate::lb::build(&inv, &env.load_balancers, &lookup)?
    };
    let run = Arc::new(Run {
        local: Arc::new(LocalTransport::new(inv.base_dir())),
        inv,
        env,
        plan,
        opts,
        id,
        em,
        ctl,
        transports,
        lbs,
        switched_groups: Mutex::new(None),
        recs: Mutex::new(HashMap::new()),
        switches: AtomicU64::new(0),
        failure_gate: Mutex::new(None),
        locked: Mutex::new(false),
        heartbeat: Mutex::new(None),
    });
    // The join handle is filled in by the caller.
    let handle = RunHandle {
        events: ev_rx,
        controls: ctl_tx,
        done: tokio::spawn(async { Outcome::Failed }),
    };
    Ok((run, handle, ctl_rx))
}

/// Start a deployment of `plan`. Errors here are about this machine (journal, transports), before
/// any node is contacted.
pub fn spawn_deploy(
    inv: Arc<Inventory>,
    plan: Plan,
    opts: RunOptions,
) -> Result<RunHandle, String> {
    let (run, mut handle, ctl_rx) = start(inv, plan, opts)?;
    handle.done = tokio::spawn(async move {
        let listener = run.ctl.listen(ctl_rx);
        let outcome = run.clone().deploy().await;
        listener.abort();
        if let Some(n) = run.em.notifier() {
            n.finish().await;
        }
        outcome
    });
    Ok(handle)
}

/// Start a rollback of every node of the plan's environment.
pub fn spawn_rollback(
    inv: Arc<Inventory>,
    plan: Plan,
    target: RollbackTarget,
    opts: RunOptions,
) -> Result<RunHandle, String> {
    let (run, mut handle, ctl_rx) = start(inv, plan, opts)?;
    handle.done = tokio::spawn(async move {
        let listener = run.ctl.listen(ctl_rx);
        let outcome = run.clone().rollback_run(target).await;
        listener.abort();
        if let Some(n) = run.em.notifier() {
            n.finish().await;
        }
        outcome
    });
    Ok(handle)
}

impl Run {
    fn rec<R>(&self, node: &str, f: impl FnOnce(&mut NodeRec) -> R) -> R {
        let mut g = match self.recs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(g.entry(node.to_string()).or_default())
    }

    fn transport(&self, target: &Target) -> Arc<dyn Transport> {
        match target {
            Target::Local => self.local.clone(),
            Target::Node(n) => self
                .transports
                .get(n)
                .cloned()
                .unwrap_or_else(|| self.local.clone()),
        }
    }

    fn deploy_path(&self, node: &str) -> String {
        self.inv
            .node(node)
            .map(|n| n.deploy_path.clone())
            .unwrap_or_else(|| self.inv.app.deploy_path.clone())
    }

    /// Placeholder values for a step on `node` (None: a stage step on this machine).
    fn vars(
        &self,
        node: Option<&str>,
        release: &str,
        previous: Option<&str>,
    ) -> BTreeMap<&'static str, String> {
        let dp = node
            .map(|n| self.deploy_path(n))
            .unwrap_or_else(|| self.inv.app.deploy_path.clone());
        let mut v = BTreeMap::new();
        v.insert("release", release.to_string());
        v.insert("release_path", remote::release_path(&dp, release));
        v.insert("previous_release", previous.unwrap_or("").to_string());
        v.insert("deploy_path", dp);
        v.insert("node", node.unwrap_or("").to_string());
        v.insert(
            "host",
            node.and_then(|n| self.inv.node(n))
                .map(|n| n.host.clone())
                .unwrap_or_default(),
        );
        v.insert("env", self.env.name.clone());
        v.insert("app", self.inv.app.name.clone());
        v
    }

    /// The script prologue: DECKHAND_* variables and a working directory.
    fn prologue(vars: &BTreeMap<&'static str, String>, target: &Target) -> String {
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

    /// One step as the operator sees it: counted as running (a pause waits for it), then
    /// `StepStarted`, the work, and `StepFinished` with the work's result, its duration and, on
    /// failure, its message. `work` answers with the step's result and what the caller gets.
    async fn step<T>(
        &self,
        node: Option<&str>,
        phase: &str,
        command: Option<String>,
        work: impl std::future::Future<Output = (StepResult, Result<T, String>)>,
    ) -> Result<T, String> {
        self.ctl.step_started();
        let started = Instant::now();
        self.em.emit(EventKind::StepStarted {
            node: node.map(String::from),
            phase: phase.to_string(),
            command,
        });
        let (result, out) = work.await;
        self.em.emit(EventKind::StepFinished {
            node: node.map(String::from),
            phase: phase.to_string(),
            result,
            duration_ms: started.elapsed().as_millis() as u64,
            message: out.as_ref().err().cloned(),
        });
        self.ctl.step_ended();
        out
    }

    /// Run one step: events around it, output streamed, timeout and cancel honoured.
    async fn exec_step(
        &self,
        node: Option<&str>,
        phase: &str,
        shown: Option<String>,
        target: &Target,
        req: ExecRequest,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, String> {
        self.step(node, phase, shown, async {
            let (result, message) = self.exec_quiet(node, phase, target, &req, cancel).await;
            let step_result = match &result {
                Ok(o) if o.success() => StepResult::Ok,
                Ok(o) if o.ended == transport::Ended::TimedOut => StepResult::TimedOut,
                Ok(o) if o.ended == transport::Ended::Cancelled => StepResult::Killed,
                _ => StepResult::Failed,
            };
            let out = match result {
                Ok(o) if o.success() => Ok(o),
                Ok(_) | Err(_) => Err(message.unwrap_or_else(|| "failed".into())),
            };
            (step_result, out)
        })
        .await
    }

    /// Execute with output forwarded as events, without step events. Returns the outcome and a
    /// failure message, if any.
    async fn exec_quiet(
        &self,
        node: Option<&str>,
        phase: &str,
        target: &Target,
        req: &ExecRequest,
        cancel: &CancellationToken,
    ) -> (Result<ExecOutcome, String>, Option<String>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Stream, String)>();
        let em = self.em.clone();
        let (n, p) = (node.map(String::from), phase.to_string());
        let forward = tokio::spawn(async move {
            while let Some((stream, line)) = rx.recv().await {
                em.emit(EventKind::Output {
                    node: n.clone(),
                    phase: p.clone(),
                    stream,
                    line,
                });
            }
        });
        let t = self.transport(target);
        let result = t.exec(req, Some(&tx), cancel).await;
        drop(tx);
        let _ = forward.await;
        match result {
            Ok(o) if o.success() => (Ok(o), None),
            Ok(o) => {
                let m = o.describe_failure(req.timeout);
                (Ok(o), Some(m))
            }
            Err(e) => {
                let m = e.to_string();
                (Err(m.clone()), Some(m))
            }
        }
    }

    /// Run a script on a node for the engine's own bookkeeping (no step events).
    async fn internal(
        &self,
        node: &str,
        script: String,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, String> {
        let t = self.transport(&Target::Node(node.to_string()));
        remote::exec_checked(&*t, script, cancel)
            .await
            .map_err(|e| e.to_string())
    }

    /// Read a node's state now, for the engine's own decisions (no step events).
    async fn read_node(
        &self,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<NodeSnapshot, String> {
        let t = self.transport(&Target::Node(node.to_string()));
        remote::read_snapshot(&*t, &self.deploy_path(node), cancel)
            .await
            .map_err(|e| e.to_string())
    }

    fn node_info(&self) -> Vec<NodeInfo> {
        self.plan
            .nodes
            .iter()
            .filter_map(|n| self.inv.node(n))
            .map(|n| NodeInfo {
                name: n.name.clone(),
                host: n.host.clone(),
                transport: match n.transport {
                    TransportKind::Local => "local".into(),
                    TransportKind::Ssh => "ssh".into(),
                },
                roles: n.roles.clone(),
            })
            .collect()
    }

    fn emit_started(&self, kind: RunKind, release: &str) {
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
            balancer: !self.lbs.is_empty(),
            journal: self.em.journal_path().map(|p| p.display().to_string()),
            checks: self
                .inv
                .checks
                .iter()
                .map(|c| CheckInfo {
                    name: c.name.clone(),
                    window: c.window.word().into(),
                    kind: c.kind.word().into(),
                    manual: matches!(c.probe, crate::inventory::Probe::Manual),
                    per_node: c.per_node,
                })
                .collect(),
            windows: if self.inv.checks.is_empty() {
                vec![]
            } else {
                let cl = &self.inv.checklist;
                vec![
                    ("immediate".into(), cl.immediate.as_millis() as u64),
                    ("short".into(), cl.short.as_millis() as u64),
                    ("long".into(), cl.long.as_millis() as u64),
                ]
            },
        });
    }

    fn finish(&self, outcome: Outcome, message: String) -> Outcome {
        let out = self.out_of_rotation();
        let message = if out.is_empty() {
            message
        } else {
            format!(
                "{message}; OUT OF ROTATION: {} (put back with the balancer, or re-run)",
                out.join(", ")
            )
        };
        let nodes = self
            .plan
            .nodes
            .iter()
            .map(|n| NodeRelease {
                node: n.clone(),
                release: self.rec(n, |r| r.current.clone()),
            })
            .collect();
        self.em.emit(EventKind::Finished {
            outcome,
            message,
            nodes,
        });
        outcome
    }

    // ---------------------------------------------------------------- preflight and lock

    /// Connect to every node and read its state. Err: one line per node that failed.
    async fn preflight(&self) -> Result<(), Vec<String>> {
        let never = CancellationToken::new();
        let results: Vec<(String, Result<NodeSnapshot, String>)> =
            stream::iter(self.plan.nodes.clone())
                .map(|name| {
                    let t = self.transports.get(&name).cloned();
                    let dp = self.deploy_path(&name);
                    let never = never.clone();
                    async move {
                        let Some(t) = t else {
                            return (name, Err("no transport".to_string()));
                        };
                        let r = async {
                            t.connect().await.map_err(|e| e.to_string())?;
                            remote::read_snapshot(&*t, &dp, &never)
                                .await
                                .map_err(|e| match e {
                                    ScriptError::Failed(m) => format!("cannot read {dp}: {m}"),
                                    ScriptError::Transport(m) => m,
                                })
                        }
                        .await;
                        (name, r)
                    }
                })
                .buffer_unordered(PREFLIGHT_CONCURRENCY)
                .collect()
                .await;
        let mut failures = Vec::new();
        let mut by_name: HashMap<String, Result<NodeSnapshot, String>> =
            results.into_iter().collect();
        for name in &self.plan.nodes {
            let host = self
                .inv
                .node(name)
                .map(|n| n.host.clone())
                .unwrap_or_default();
            match by_name.remove(name) {
                Some(Ok(snap)) => {
                    self.em.emit(EventKind::Preflight {
                        node: name.clone(),
                        ok: true,
                        live_release: snap.current.clone(),
                        previous_release: snap.previous(),
                        message: snap
                            .lock
                            .as_ref()
                            .map(|l| format!("locked by {}", l.describe())),
                    });
                    self.rec(name, |r| {
                        r.live_before = snap.current.clone();
                        r.current = snap.current.clone();
                        r.snapshot = snap;
                    });
                }
                other => {
                    let e = match other {
                        Some(Err(e)) => e,
                        _ => "not reached".to_string(),
                    };
                    self.em.emit(EventKind::Preflight {
                        node: name.clone(),
                        ok: false,
                        live_release: None,
                        previous_release: None,
                        message: Some(e.clone()),
                    });
                    failures.push(format!("{name} ({host}): {e}"));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// Take the lock on every node, in plan order; where `replace` names a deployment id for a
    /// node, a lock held by exactly that deployment is taken over. Err: the holder, after
    /// releasing what we took. Runs take their locks through `acquire`, which calls this.
    async fn lock_all_replacing(
        &self,
        release: &str,
        replace: &HashMap<String, String>,
    ) -> Result<(), String> {
        let info = LockInfo {
            id: self.id.clone(),
            who: self.opts.who.clone(),
            host: crate::util::hostname(),
            pid: std::process::id(),
            at: chrono::Utc::now().to_rfc3339(),
            env: self.env.name.clone(),
            release: release.to_string(),
        };
        let never = CancellationToken::new();
        let mut taken = Vec::new();
        for name in &self.plan.nodes {
            let dp = self.deploy_path(name);
            let out = self
                .internal(
                    name,
                    remote::lock_script(&dp, &info, replace.get(name).map(|s| s.as_str())),
                    &never,
                )
                .await;
            let held = match out {
                Ok(o) if o.stdout.starts_with("acquired") => None,
                Ok(o) => {
                    let holder = o.stdout.lines().nth(1).unwrap_or("").to_string();
                    Some(match serde_json::from_str::<LockInfo>(&holder) {
                        Ok(l) => format!("{name} is locked by {}", l.describe()),
                        Err(_) => format!("{name} is locked ({dp}/.deckhand/lock exists but its holder is unreadable)"),
                    })
                }
                Err(e) => Some(format!("cannot take the lock on {name}: {e}")),
            };
            match held {
                None => taken.push(name.clone()),
                Some(msg) => {
                    for t in &taken {
                        let _ = self
                            .internal(
                                t,
                                remote::unlock_script(&self.deploy_path(t), &self.id),
                                &never,
                            )
                            .await;
                    }
                    return Err(msg);
                }
            }
        }
        if let Ok(mut l) = self.locked.lock() {
            *l = true;
        }
        self.em.emit(EventKind::Locked {
            deployment: self.id.clone(),
        });
        self.start_heartbeat();
        Ok(())
    }

    async fn unlock_all(&self) {
        self.stop_heartbeat();
        let locked = self
            .locked
            .lock()
            .map(|mut l| std::mem::replace(&mut *l, false))
            .unwrap_or(false);
        if !locked {
            return;
        }
        let never = CancellationToken::new();
        let mut problems = Vec::new();
        for name in &self.plan.nodes {
            if let Err(e) = self
                .internal(
                    name,
                    remote::unlock_script(&self.deploy_path(name), &self.id),
                    &never,
                )
                .await
            {
                problems.push(format!("{name}: {e}"));
            }
        }
        if problems.is_empty() {
            self.em.emit(EventKind::Unlocked {
                deployment: self.id.clone(),
            });
        } else {
            self.em.notice(
                Level::Error,
                format!(
                    "could not release the lock on {}; run `deckhand unlock {}` once you checked",
                    problems.join("; "),
                    self.env.name
                ),
            );
        }
    }

    // ---------------------------------------------------------------- steps

    fn phase_timeout(&self, index: usize) -> Duration {
        let p = &self.inv.phases[index];
        p.timeout.unwrap_or(match p.action {
            Action::Builtin(_) => BUILTIN_TIMEOUT,
            _ => PHASE_TIMEOUT,
        })
    }

    /// Run inventory phase `index` on `target` for `node` (None: a stage step on this machine).
    async fn run_phase(
        &self,
        index: usize,
        node: Option<&str>,
        target: &Target,
        release: &str,
        previous: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let phase = &self.inv.phases[index];
        let vars = self.vars(node, release, previous);
        let timeout = self.phase_timeout(index);
        let shown_node = match target {
            Target::Local => node,
            Target::Node(n) => Some(n.as_str()),
        };
        let script_node = match target {
            Target::Node(n) => Some(n.clone()),
            Target::Local => None,
        };
        match &phase.action {
            Action::Run(cmd) => {
                let body = expand(cmd, &vars, true);
                let script = format!("{}{}", Self::prologue(&vars, target), body);
                self.exec_step(
                    shown_node,
                    &phase.name,
                    Some(body),
                    target,
                    ExecRequest::new(script).timeout(timeout),
                    cancel,
                )
                .await
                .map(|_| ())
            }
            Action::Function(f) => {
                let path = match &script_node {
                    Some(n) => format!("{}/.deckhand/deploy.sh", self.deploy_path(n)),
                    None => self
                        .inv
                        .base_dir()
                        .join(self.inv.app.script.clone().unwrap_or_default())
                        .display()
                        .to_string(),
                };
                let body = format!(
                    "DECKHAND_FUNCTION={f}; export DECKHAND_FUNCTION\n\
                     if command -v bash >/dev/null 2>&1; then exec bash -c '. \"$1\" && \"$2\"' deckhand {p} {f}; \
                     else . {p} && {f}; fi\n",
                    f = sh_quote(f),
                    p = sh_quote(&path)
                );
                let script = format!("{}{}", Self::prologue(&vars, target), body);
                self.exec_step(
                    shown_node,
                    &phase.name,
                    Some(format!("deploy.sh: {f}")),
                    target,
                    ExecRequest::new(script).timeout(timeout),
                    cancel,
                )
                .await
                .map(|_| ())
            }
            Action::Upload { from, to } => {
                let from_path = self.inv.base_dir().join(expand(from, &vars, false));
                let to_path = expand(to, &vars, false);
                let shown = format!("upload {} → {}", from_path.display(), to_path);
                self.step(shown_node, &phase.name, Some(shown), async {
                    let t = self.transport(target);
                    let r = tokio::select! {
                        r = t.upload(&from_path, &to_path) => r.map_err(|e| e.to_string()),
                        _ = tokio::time::sleep(timeout) => Err(format!("upload timed out after {}", crate::util::format_duration(timeout))),
                        _ = cancel.cancelled() => Err("upload cancelled".to_string()),
                    };
                    let result = if r.is_ok() {
                        StepResult::Ok
                    } else {
                        StepResult::Failed
                    };
                    (result, r)
                })
                .await
            }
            Action::Builtin(Builtin::Release) => {
                let n = script_node.ok_or("the release builtin needs a node")?;
                let dp = self.deploy_path(&n);
                let script = remote::release_script(
                    &dp,
                    release,
                    &self.inv.app.shared_files,
                    &self.inv.app.shared_dirs,
                );
                self.rec(&n, |r| r.created = true);
                self.exec_step(
                    Some(&n),
                    &phase.name,
                    Some(format!("make releases/{release}, link shared")),
                    target,
                    ExecRequest::new(script).timeout(timeout),
                    cancel,
                )
                .await
                .map(|_| ())
            }
            Action::Builtin(Builtin::Switch) => {
                let n = script_node.ok_or("the switch builtin needs a node")?;
                self.switch_node(&n, release, &phase.name, cancel).await
            }
            Action::Builtin(Builtin::Cleanup) => {
                let n = script_node.ok_or("the cleanup builtin needs a node")?;
                let dp = self.deploy_path(&n);
                let snap = self.read_node(&n, cancel).await?;
                let before = self.rec(&n, |r| r.live_before.clone());
                let live = snap.current.clone();
                let prev = before.or(snap.previous());
                let victims = remote::cleanup_victims(
                    &snap.releases,
                    self.inv.app.keep_releases as usize,
                    &[live.as_deref(), prev.as_deref(), Some(release)],
                );
                let shown = format!(
                    "keep {} releases; remove {}",
                    self.inv.app.keep_releases,
                    if victims.is_empty() {
                        "none".to_string()
                    } else {
                        victims.join(", ")
                    }
                );
                self.exec_step(
                    Some(&n),
                    &phase.name,
                    Some(shown),
                    target,
                    ExecRequest::new(remote::cleanup_script(&dp, &victims)).timeout(timeout),
                    cancel,
                )
                .await
                .map(|_| ())
            }
        }
    }

    /// Switch `current` to `release` and read it back.
    async fn switch_node(
        &self,
        node: &str,
        release: &str,
        phase: &str,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let dp = self.deploy_path(node);
        let tag = format!("{}-{}", self.id, node);
        let target = Target::Node(node.to_string());
        let out = self
            .exec_step(
                Some(node),
                phase,
                Some(format!("current → releases/{release}")),
                &target,
                ExecRequest::new(remote::switch_script(&dp, release, &tag))
                    .timeout(BUILTIN_TIMEOUT),
                cancel,
            )
            .await?;
        let now = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("current="))
            .and_then(remote::release_of_link);
        let order = self.switches.fetch_add(1, Ordering::SeqCst) + 1;
        self.rec(node, |r| {
            r.current = now.clone();
            if r.switched.is_none() {
                r.switched = Some(order);
            }
        });
        self.em.emit(EventKind::NodeRelease {
            node: node.to_string(),
            release: now.clone(),
        });
        if now.as_deref() != Some(release) {
            return Err(format!(
                "after the switch, current points at {:?}, not {release}",
                now
            ));
        }
        Ok(())
    }

    async fn health(
        &self,
        node: &str,
        release: &str,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let Some(h) = self.env.health.clone() else {
            self.em.emit(EventKind::StepFinished {
                node: Some(node.to_string()),
                phase: "health".into(),
                result: StepResult::Skipped,
                duration_ms: 0,
                message: Some("no health check configured for this environment".into()),
            });
            return Ok(());
        };
        let previous = self.rec(node, |r| r.live_before.clone());
        let vars = self.vars(Some(node), release, previous.as_deref());
        let target = Target::Node(node.to_string());
        let attempts = h.retries + 1;
        let shown = match &h.probe {
            HealthProbe::Run(c) => expand(c, &vars, true),
            HealthProbe::Url { url, expect } => {
                format!("GET {} expecting {expect}", expand(url, &vars, false))
            }
        };
        self.step(Some(node), "health", Some(shown), async {
            let mut last = String::new();
            let mut ok = false;
            let mut killed = false;
            for attempt in 1..=attempts {
                let r = match &h.probe {
                    HealthProbe::Run(c) => {
                        let script = format!(
                            "{}{}",
                            Self::prologue(&vars, &target),
                            expand(c, &vars, true)
                        );
                        match self
                            .exec_quiet(
                                Some(node),
                                "health",
                                &target,
                                &ExecRequest::new(script).timeout(h.timeout),
                                cancel,
                            )
                            .await
                        {
                            (Ok(o), _) if o.success() => Ok(()),
                            (_, m) => Err(m.unwrap_or_else(|| "failed".into())),
                        }
                    }
                    HealthProbe::Url { url, expect } => {
                        {
                            // The checklist's HTTP probe, with only the status to meet.
                            let r = crate::checks::http(
                                &expand(url, &vars, false),
                                *expect,
                                None,
                                None,
                                h.timeout,
                            )
                            .await;
                            match r.status {
                                crate::event::CheckStatus::Pass => Ok(()),
                                _ => Err(r.detail.unwrap_or_else(|| "failed".into())),
                            }
                        }
                    }
                };
                match r {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) => {
                        last = e;
                        self.em.emit(EventKind::Output {
                            node: Some(node.to_string()),
                            phase: "health".into(),
                            stream: Stream::Stderr,
                            line: format!("attempt {attempt}/{attempts}: {last}"),
                        });
                    }
                }
                if attempt < attempts {
                    tokio::select! {
                        _ = tokio::time::sleep(h.interval) => {}
                        _ = cancel.cancelled() => { killed = true; break; }
                    }
                }
                if cancel.is_cancelled() {
                    killed = true;
                    break;
                }
            }
            if ok {
                (StepResult::Ok, Ok(()))
            } else if killed {
                (
                    StepResult::Killed,
                    Err("health check cancelled".to_string()),
                )
            } else {
                (
                    StepResult::Failed,
                    Err(format!("unhealthy after {attempts} attempts: {last}")),
                )
            }
        })
        .await
    }

    async fn write_history(
        &self,
        node: &str,
        kind: &str,
        release: &str,
        from: Option<String>,
        ok: bool,
    ) {
        let entry = HistoryEntry {
            id: self.id.clone(),
            kind: kind.into(),
            release: release.into(),
            from,
            who: self.opts.who.clone(),
            at: chrono::Utc::now().to_rfc3339(),
            result: if ok { "ok" } else { "failed" }.into(),
        };
        let never = CancellationToken::new();
        if let Err(e) = self
            .internal(
                node,
                remote::history_script(&self.deploy_path(node), &entry),
                &never,
            )
            .await
        {
            self.em.notice(
                Level::Warn,
                format!("{node}: could not append to history: {e}"),
            );
        }
    }

    fn set_state(&self, node: &str, state: NodeState) {
        self.em.emit(EventKind::NodeState {
            node: node.to_string(),
            state,
        });
    }

    // ---------------------------------------------------------------- one node's turn

    /// Drain → phases → health → enable. Ok(true) done, Ok(false) skipped, Err failure message
    /// or a stop.
    async fn node_forward(&self, node: &str) -> Result<bool, NodeStop> {
        let release = self.plan.release.clone();
        let (current, previous) = self.rec(node, |r| (r.current.clone(), r.live_before.clone()));
        if current.as_deref() == Some(release.as_str()) {
            self.rec(node, |r| r.skipped = true);
            // A node a crashed run left switched but drained goes back in, once healthy.
            if let Err(e) = self.ensure_in_rotation(node, &release).await {
                return Err(NodeStop::Failed(format!("{node}: {e}")));
            }
            self.set_state(node, NodeState::Skipped);
            self.em.notice(
                Level::Info,
                format!("{node} is already on {release}; left as it is"),
            );
            return Ok(false);
        }
        let steps = self
            .plan
            .node_plan(node)
            .map(|p| p.steps.clone())
            .unwrap_or_default();
        // Phases of the run that do not apply here are shown as skipped, with the reason.
        let here: Vec<&str> = steps.iter().map(|st| st.label()).collect();
        let in_run = self.plan.phase_names();
        for p in self.inv.phases.iter().filter(|p| p.stage == Stage::Node) {
            if here.contains(&p.name.as_str()) || !in_run.contains(&p.name) {
                continue;
            }
            let why = if p.once {
                match crate::plan::once_node(&self.inv, &self.env, p) {
                    Some(n) => format!("runs once, on {n}"),
                    None => "runs once, on no node of this environment".into(),
                }
            } else {
                format!("only for nodes with role {}", p.roles.join(" or "))
            };
            self.em.emit(EventKind::StepFinished {
                node: Some(node.to_string()),
                phase: p.name.clone(),
                result: StepResult::Skipped,
                duration_ms: 0,
                message: Some(why),
            });
        }
        let cancel = self.ctl.forward.clone();
        let mut updating = false;
        for step in steps {
            if !self.plan.groups.is_empty() && matches!(step, NodeStep::Drain | NodeStep::Enable) {
                continue;
            }
            self.ctl.boundary().await.map_err(|_| NodeStop::Stopped)?;
            let r = match &step {
                NodeStep::Drain => {
                    self.set_state(node, NodeState::Draining);
                    self.balancer(node, true, &cancel).await
                }
                NodeStep::Phase { index, target, .. } => {
                    if !updating {
                        updating = true;
                        self.set_state(node, NodeState::Updating);
                    }
                    self.run_phase(
                        *index,
                        Some(node),
                        target,
                        &release,
                        previous.as_deref(),
                        &cancel,
                    )
                    .await
                }
                NodeStep::Health => {
                    self.set_state(node, NodeState::Checking);
                    self.health(node, &release, &cancel).await
                }
                NodeStep::Enable => {
                    self.set_state(node, NodeState::Enabling);
                    self.balancer(node, false, &cancel).await
                }
            };
            if let Err(e) = r {
                if self.ctl.stop_reason().is_some() {
                    return Err(NodeStop::Stopped);
                }
                return Err(NodeStop::Failed(format!(
                    "{node}: {} failed: {e}",
                    step.label()
                )));
            }
        }
        self.write_history(node, "deploy", &release, previous, true)
            .await;
        self.rec(node, |r| r.done = true);
        self.set_state(node, NodeState::Done);
        Ok(true)
    }

    /// A node failed. Decide per `max_fail` and `on_failure`; returns true when the failure is
    /// tolerated (the node is recovered and the run goes on).
    async fn on_node_failed(&self, node: &str, message: &str) -> bool {
        self.rec(node, |r| r.failed = true);
        self.set_state(node, NodeState::Failed);
        let release = self.plan.release.clone();
        let from = self.rec(node, |r| r.live_before.clone());
        self.write_history(node, "deploy", &release, from, false)
            .await;
        let failed = self
            .recs
            .lock()
            .map(|g| g.values().filter(|r| r.failed).count())
            .unwrap_or(1);
        let total = self.plan.nodes.len().max(1);
        let tolerated = (failed as f64) / (total as f64) <= self.env.max_fail + 1e-9;
        if tolerated {
            self.em.notice(
                Level::Warn,
                format!("{message}; {failed} of {total} nodes failed, within max_fail: recovering {node} and going on"),
            );
            self.recover_node(node).await;
            return true;
        }
        match self.env.on_failure {
            OnFailure::Pause if self.opts.headless => {
                self.em.notice(
                    Level::Warn,
                    format!("{message}; on_failure is pause, but nobody is there to decide (headless): rolling back"),
                );
                self.ctl.request_rollback(message);
            }
            OnFailure::Rollback => {
                self.em
                    .notice(Level::Error, format!("{message}; on_failure = rollback"));
                self.ctl.request_rollback(message);
            }
            OnFailure::Abort => {
                self.ctl
                    .request_abort(&format!("{message}; on_failure = abort"));
            }
            OnFailure::Pause => {
                if let Ok(mut g) = self.failure_gate.lock() {
                    g.get_or_insert_with(|| format!("{message}; on_failure = pause: promote to go on without it, R to roll back, a to abort"));
                }
            }
        }
        false
    }

    /// Put a failed or stopped node on a whole, known release: roll it back if it switched,
    /// else remove the release we built there and put it back into rotation.
    async fn recover_node(&self, node: &str) {
        let (switched, created, drained) =
            self.rec(node, |r| (r.switched.is_some(), r.created, r.drained));
        if switched {
            self.rollback_node(node, None).await;
            return;
        }
        let never = CancellationToken::new();
        if created {
            let dp = self.deploy_path(node);
            if let Err(e) = self
                .internal(
                    node,
                    remote::remove_release_script(&dp, &self.plan.release),
                    &never,
                )
                .await
            {
                self.em.notice(
                    Level::Warn,
                    format!("{node}: could not remove the unfinished release: {e}"),
                );
            } else {
                self.rec(node, |r| r.created = false);
            }
        }
        // A blue-green node stays out: its group is not the one serving.
        if drained && self.plan.groups.is_empty() {
            let _ = self.balancer(node, false, &never).await;
        }
    }

    /// Put one node back on `to` (default: the release it had before this run).
    async fn rollback_node(&self, node: &str, to: Option<String>) -> bool {
        let (before, bad) = self.rec(node, |r| (r.live_before.clone(), r.current.clone()));
        let target = to.or(before);
        let Some(target) = target else {
            self.em.notice(
                Level::Error,
                format!(
                    "{node}: no previous release to go back to; it stays on {}",
                    bad.clone().unwrap_or_else(|| "nothing".into())
                ),
            );
            self.set_state(node, NodeState::Failed);
            return false;
        };
        let cancel = self.ctl.all.clone();
        self.set_state(node, NodeState::RollingBack);
        let result = async {
            // Blue-green nodes are out of rotation while they change: no balancer step.
            let with_lb = !self.lbs.is_empty() && self.plan.groups.is_empty();
            if with_lb {
                self.balancer(node, true, &cancel).await?;
            }
            self.switch_node(node, &target, "switch", &cancel).await?;
            // The node phases after `switch` (restart and the like), now for the old release.
            if let (Some(si), Some(np)) = (
                crate::plan::switch_index(&self.inv),
                self.plan.node_plan(node),
            ) {
                for step in &np.steps {
                    if let NodeStep::Phase {
                        index, target: t, ..
                    } = step
                    {
                        let p = &self.inv.phases[*index];
                        if *index > si
                            && p.stage == Stage::Node
                            && !matches!(p.action, Action::Builtin(_))
                        {
                            self.run_phase(*index, Some(node), t, &target, bad.as_deref(), &cancel)
                                .await?;
                        }
                    }
                }
            }
            self.set_state(node, NodeState::Checking);
            self.health(node, &target, &cancel).await?;
            if with_lb {
                self.balancer(node, false, &cancel).await?;
            }
            Ok::<(), String>(())
        }
        .await;
        // Whatever happened after it, the switch decides which release the node is on.
        let created = self.rec(node, |r| r.created);
        if created && self.rec(node, |r| r.current.as_deref() == Some(target.as_str())) {
            let never = CancellationToken::new();
            let dp = self.deploy_path(node);
            let _ = self
                .internal(
                    node,
                    remote::remove_release_script(&dp, &self.plan.release),
                    &never,
                )
                .await;
        }
        match result {
            Ok(()) => {
                self.write_history(node, "rollback", &target, bad, true)
                    .await;
                self.rec(node, |r| r.rolled_back = true);
                self.set_state(node, NodeState::RolledBack);
                true
            }
            Err(e) => {
                self.write_history(node, "rollback", &target, bad, false)
                    .await;
                self.em.notice(
                    Level::Error,
                    format!("{node}: rollback to {target} failed: {e}"),
                );
                self.set_state(node, NodeState::Failed);
                false
            }
        }
    }

    /// Roll back every node that switched, newest first, then undo nodes that were mid-way.
    async fn rollback_all(&self, reason: String) -> Outcome {
        let swapped = self.switched_groups.lock().ok().and_then(|g| g.clone());
        if let Some((old_live, new_live)) = swapped {
            return self.switch_back(&old_live, &new_live, reason).await;
        }
        let mut switched: Vec<(u64, String)> = Vec::new();
        let mut midway: Vec<String> = Vec::new();
        for n in &self.plan.nodes {
            let (s, created, drained, rolled) =
                self.rec(n, |r| (r.switched, r.created, r.drained, r.rolled_back));
            if rolled {
                continue;
            }
            match s {
                Some(order) => switched.push((order, n.clone())),
                None if created || drained => midway.push(n.clone()),
                None => {}
            }
        }
        switched.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
        let nodes: Vec<String> = switched
            .iter()
            .map(|(_, n)| n.clone())
            .chain(midway.iter().cloned())
            .collect();
        self.em.emit(EventKind::RollbackStarted {
            reason: reason.clone(),
            nodes: nodes.clone(),
        });
        let mut ok = true;
        for (_, n) in &switched {
            if self.ctl.snapshot().abort {
                ok = false;
                break;
            }
            ok &= self.rollback_node(n, None).await;
        }
        for n in &midway {
            self.recover_node(n).await;
            self.set_state(n, NodeState::RolledBack);
        }
        let untouched = self.plan.nodes.len() - nodes.len();
        if !ok {
            return Outcome::Failed;
        }
        self.em.notice(
            Level::Info,
            format!(
                "rolled back {}; {untouched} never changed",
                crate::util::count(nodes.len(), "node", "nodes")
            ),
        );
        Outcome::RolledBack
    }

    /// Abort: nothing more runs; releases built but not switched to are removed; nodes drained
    /// but never switched go back into rotation. Switched nodes stay on the new release.
    async fn abort_cleanup(&self) -> String {
        let mut left = Vec::new();
        for n in &self.plan.nodes {
            let (switched, created, drained, done) =
                self.rec(n, |r| (r.switched.is_some(), r.created, r.drained, r.done));
            if !switched && (created || drained) {
                self.recover_node(n).await;
                self.set_state(n, NodeState::Waiting);
            } else if switched && !done {
                left.push(format!(
                    "{n} on {}{}",
                    self.plan.release,
                    if drained { " (out of rotation)" } else { "" }
                ));
            }
        }
        if left.is_empty() {
            "no node was left mid-way".into()
        } else {
            format!("switched but unverified: {}", left.join(", "))
        }
    }

    async fn stop(&self, stop: Stop) -> Outcome {
        match stop {
            Stop::Abort => {
                let detail = self.abort_cleanup().await;
                self.unlock_all().await;
                self.finish(
                    Outcome::Aborted,
                    format!("aborted; {detail}; {}", self.release_summary()),
                )
            }
            Stop::Rollback => {
                let reason = self
                    .ctl
                    .snapshot()
                    .reason
                    .unwrap_or_else(|| "rollback requested".into());
                let outcome = self.rollback_all(reason).await;
                self.unlock_all().await;
                let msg = match outcome {
                    Outcome::RolledBack => format!("rolled back; {}", self.release_summary()),
                    _ => format!("rollback did not complete; {}", self.release_summary()),
                };
                self.finish(outcome, msg)
            }
        }
    }

    fn release_summary(&self) -> String {
        let mut by_release: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in &self.plan.nodes {
            let r = self
                .rec(n, |r| r.current.clone())
                .unwrap_or_else(|| "no release".into());
            by_release.entry(r).or_default().push(n.clone());
        }
        by_release
            .into_iter()
            .map(|(r, ns)| format!("{} on {r}", ns.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Run a before/after stage step on all its targets (nodes concurrently).
    async fn stage_step(&self, index: usize, targets: &[Target]) -> Result<(), String> {
        let release = self.plan.release.clone();
        let cancel = self.ctl.forward.clone();
        let futs = targets.iter().map(|t| {
            let release = release.clone();
            let cancel = cancel.clone();
            async move {
                let node = match t {
                    Target::Node(n) => Some(n.as_str()),
                    Target::Local => None,
                };
                let previous = node.and_then(|n| self.rec(n, |r| r.live_before.clone()));
                self.run_phase(index, node, t, &release, previous.as_deref(), &cancel)
                    .await
            }
        });
        let errors: Vec<String> = join_all(futs)
            .await
            .into_iter()
            .filter_map(|r| r.err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}",
                self.inv.phases[index].name,
                errors.join("; ")
            ))
        }
    }

    /// Every node's `shared/.env` must have the keys of the environment's `.env.example`.
    async fn config_preflight(&self) -> Result<(), Vec<String>> {
        let Some(example) = self.env.config_example.clone() else {
            return Ok(());
        };
        let path = self.inv.base_dir().join(&example);
        let wanted = match std::fs::read_to_string(&path) {
            Ok(t) => crate::config::keys(&t),
            Err(e) => return Err(vec![format!("cannot read {}: {e}", path.display())]),
        };
        let never = CancellationToken::new();
        // Read every node at once; the answers come back in plan order.
        let answers: Vec<Result<ExecOutcome, String>> = stream::iter(self.plan.nodes.clone())
            .map(|n| {
                let script = crate::config::node_keys_script(&self.deploy_path(&n));
                let never = never.clone();
                async move { self.internal(&n, script, &never).await }
            })
            .buffered(PREFLIGHT_CONCURRENCY)
            .collect()
            .await;
        let mut problems = Vec::new();
        for (n, answer) in self.plan.nodes.iter().zip(answers) {
            let dp = self.deploy_path(n);
            match answer {
                Ok(o) => {
                    let (exists, have) = crate::config::parse_node_keys(&o.stdout);
                    if !exists {
                        problems.push(format!(
                            "{n}: {dp}/shared/.env does not exist (it needs the keys of {example})"
                        ));
                        continue;
                    }
                    let missing: Vec<&String> =
                        wanted.iter().filter(|k| !have.contains(k)).collect();
                    if !missing.is_empty() {
                        problems.push(format!(
                            "{n}: {dp}/shared/.env lacks {} (listed in {example})",
                            missing
                                .iter()
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
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
    async fn promotion_preflight(&self, release: &str) -> Result<(), String> {
        let Some(req) = self.env.requires.clone() else {
            return Ok(());
        };
        let Some(req_env) = self.inv.environment(&req) else {
            return Err(format!(
                "environment `{req}` (required by {}) is not defined",
                self.env.name
            ));
        };
        let statuses = super::status::read_status(&self.inv, &req_env.nodes).await;
        let mut unverified = Vec::new();
        for s in &statuses {
            if !s.reachable {
                unverified.push(format!(
                    "{} (unreachable: {})",
                    s.node,
                    s.error.clone().unwrap_or_default()
                ));
            } else if !s.verified.contains(&release.to_string()) {
                unverified.push(s.node.clone());
            }
        }
        if unverified.is_empty() {
            self.em.notice(
                Level::Info,
                format!("{release} passed {req}'s checklist on every {req} node"),
            );
            Ok(())
        } else {
            Err(format!(
                "{release} has not passed {req}'s checklist (not verified on {}): deploy it to {req} first, or use `deckhand promote {req} {}` to ship what {req} verified",
                unverified.join(", "),
                self.env.name
            ))
        }
    }

    async fn upload_script(&self) -> Result<(), String> {
        let Some(script) = self.inv.app.script.clone() else {
            return Ok(());
        };
        if !self
            .inv
            .phases
            .iter()
            .any(|p| matches!(p.action, Action::Function(_)))
        {
            return Ok(());
        }
        let local = self.inv.base_dir().join(&script);
        if !local.is_file() {
            return Err(format!(
                "deploy script {} does not exist (app.script)",
                local.display()
            ));
        }
        // Every node at once; the first failure in plan order is the one reported.
        let results: Vec<Result<(), String>> = stream::iter(self.plan.nodes.clone())
            .map(|n| {
                let to = format!("{}/.deckhand/deploy.sh", self.deploy_path(&n));
                let t = self.transports.get(&n).cloned();
                let local = local.clone();
                async move {
                    match t {
                        Some(t) => t.upload(&local, &to).await.map_err(|e| format!("{n}: {e}")),
                        None => Ok(()),
                    }
                }
            })
            .buffered(PREFLIGHT_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
        self.em.notice(
            Level::Info,
            format!(
                "uploaded {script} to {}",
                crate::util::count(self.plan.nodes.len(), "node", "nodes")
            ),
        );
        Ok(())
    }

    // ---------------------------------------------------------------- the deployment

    async fn deploy(self: Arc<Self>) -> Outcome {
        let release = self.plan.release.clone();
        self.emit_started(RunKind::Deploy, &release);
        if let Err(failures) = self.preflight().await {
            let msg = format!(
                "preflight failed on {}, nothing was changed:\n  {}",
                crate::util::count(failures.len(), "node", "nodes"),
                failures.join("\n  ")
            );
            return self.finish(Outcome::PreflightFailed, msg);
        }
        if let Err(problems) = self.balancer_preflight().await {
            return self.finish(
                Outcome::PreflightFailed,
                format!(
                    "the load balancer is not ready, nothing was changed:\n  {}",
                    problems.join("\n  ")
                ),
            );
        }
        if let Err(problems) = self.config_preflight().await {
            return self.finish(
                Outcome::PreflightFailed,
                format!(
                    "configuration check failed, nothing was changed:\n  {}",
                    problems.join("\n  ")
                ),
            );
        }
        if let Err(why) = self.promotion_preflight(&release).await {
            return self.finish(
                Outcome::PreflightFailed,
                format!("{why}; nothing was changed"),
            );
        }
        if let Err(m) = self.acquire(&release).await {
            return self.finish(Outcome::LockHeld, m);
        }
        if let Err(e) = self.upload_script().await {
            self.unlock_all().await;
            return self.finish(Outcome::Failed, format!("{e}; nothing was changed"));
        }

        // Before the batches: nothing has switched, so a failure simply stops the run.
        for st in self.plan.before.clone() {
            if let Err(stop) = self.ctl.boundary().await {
                return self.stop(stop).await;
            }
            if let Err(e) = self.stage_step(st.index, &st.targets).await {
                if let Some(stop) = self.ctl.stop_reason() {
                    return self.stop(stop).await;
                }
                self.unlock_all().await;
                return self.finish(Outcome::Halted, format!("{e}; no node was changed"));
            }
        }

        if !self.plan.groups.is_empty() {
            return self.clone().blue_green().await;
        }
        let batches = self.plan.batches.clone();
        let mut tolerated = 0usize;
        for (i, batch) in batches.iter().enumerate() {
            if let Err(stop) = self.ctl.boundary().await {
                return self.stop(stop).await;
            }
            self.em.emit(EventKind::BatchStarted {
                index: i,
                nodes: batch.clone(),
            });
            let results = join_all(batch.iter().map(|n| {
                let me = self.clone();
                let n = n.clone();
                async move {
                    let r = me.node_forward(&n).await;
                    if let Err(NodeStop::Failed(m)) = &r {
                        let ok = me.on_node_failed(&n, m).await;
                        return (n, r, ok);
                    }
                    (n, r, false)
                }
            }))
            .await;
            tolerated += results.iter().filter(|(_, _, t)| *t).count();
            if let Some(stop) = self.ctl.stop_reason() {
                return self.stop(stop).await;
            }
            let gate = self.failure_gate.lock().ok().and_then(|mut g| g.take());
            if let Some(reason) = gate {
                match self.ctl.gate(reason, false).await {
                    Ok(()) => {
                        for (n, r, _) in &results {
                            if matches!(r, Err(NodeStop::Failed(_))) {
                                self.recover_node(n).await;
                                tolerated += 1;
                            }
                        }
                    }
                    Err(stop) => return self.stop(stop).await,
                }
            }
            if self.plan.gates.contains(&i) && i + 1 < batches.len() {
                let reason = format!(
                    "batch {} of {} done ({}); promote to continue with {}",
                    i + 1,
                    batches.len(),
                    batch.join(", "),
                    batches[i + 1].join(", ")
                );
                let wait = self
                    .plan
                    .gate_waits
                    .iter()
                    .find(|(g, _)| *g == i)
                    .map(|(_, ms)| Duration::from_millis(*ms));
                if let Err(stop) = self
                    .ctl
                    .gate_for(reason, self.opts.auto_promote, wait)
                    .await
                {
                    return self.stop(stop).await;
                }
            }
        }

        for st in self.plan.after.clone() {
            if let Err(stop) = self.ctl.boundary().await {
                return self.stop(stop).await;
            }
            // Cleanup and friends run only where the deployment landed.
            let targets: Vec<Target> = st
                .targets
                .iter()
                .filter(|t| match t {
                    Target::Node(n) => self.rec(n, |r| r.done || r.skipped),
                    Target::Local => true,
                })
                .cloned()
                .collect();
            if let Err(e) = self.stage_step(st.index, &targets).await {
                if let Some(stop) = self.ctl.stop_reason() {
                    return self.stop(stop).await;
                }
                self.em.notice(
                    Level::Warn,
                    format!("{e}; the release is live, check the after-steps by hand"),
                );
            }
        }
        // The post-deploy checklist decides whether the release stays.
        match self.monitor().await {
            Err(stop) => return self.stop(stop).await,
            Ok(monitor::Monitored::RollBack(reason)) => {
                let outcome = self.rollback_all(reason.clone()).await;
                self.unlock_all().await;
                let msg = match outcome {
                    Outcome::RolledBack => format!(
                        "rolled back after the checklist: {reason}; {}",
                        self.release_summary()
                    ),
                    _ => format!(
                        "rollback after the checklist did not complete ({reason}); {}",
                        self.release_summary()
                    ),
                };
                return self.finish(outcome, msg);
            }
            Ok(monitor::Monitored::Kept { note }) => {
                if tolerated == 0 {
                    for n in self.plan.nodes.clone() {
                        if self.rec(&n, |r| r.done || r.skipped) {
                            self.write_history(&n, "verified", &release, None, true)
                                .await;
                        }
                    }
                }
                if let Some(note) = note {
                    self.em
                        .notice(Level::Warn, format!("the release stays: {note}"));
                }
            }
        }
        self.unlock_all().await;
        if tolerated > 0 {
            self.finish(
                Outcome::Partial,
                format!(
                    "{release} deployed except on {} (within max_fail); {}",
                    crate::util::count(tolerated, "failed node", "failed nodes"),
                    self.release_summary()
                ),
            )
        } else {
            self.finish(
                Outcome::Deployed,
                format!(
                    "{release} is live on every node; {}",
                    self.release_summary()
                ),
            )
        }
    }

    // ---------------------------------------------------------------- the rollback command

    async fn rollback_run(self: Arc<Self>, target: RollbackTarget) -> Outcome {
        let label = match &target {
            RollbackTarget::Previous => "previous".to_string(),
            RollbackTarget::Release(r) => r.clone(),
            RollbackTarget::Resume { .. } => {
                "the releases live before the interrupted run".to_string()
            }
        };
        self.emit_started(RunKind::Rollback, &label);
        if let Err(failures) = self.preflight().await {
            return self.finish(
                Outcome::PreflightFailed,
                format!(
                    "preflight failed, nothing was changed:\n  {}",
                    failures.join("\n  ")
                ),
            );
        }
        if !self.plan.groups.is_empty() {
            return self.clone().blue_green_rollback().await;
        }
        // Every node must have somewhere to go before anything changes.
        let mut plan: Vec<(String, String)> = Vec::new();
        let mut problems = Vec::new();
        let mut skipped: Vec<(String, String)> = Vec::new();
        for n in &self.plan.nodes {
            let snap = self.rec(n, |r| r.snapshot.clone());
            let to = match &target {
                RollbackTarget::Release(r) if snap.releases.contains(r) => Some(r.clone()),
                RollbackTarget::Release(r) => {
                    problems.push(format!(
                        "{n}: release {r} is not on the node (has: {})",
                        snap.releases.join(", ")
                    ));
                    None
                }
                RollbackTarget::Previous => match snap.previous() {
                    Some(p) => Some(p),
                    None => {
                        problems.push(format!("{n}: no previous release to go back to"));
                        None
                    }
                },
                RollbackTarget::Resume { to, .. } => match to.get(n) {
                    Some(r) if snap.releases.contains(r) => Some(r.clone()),
                    Some(r) => {
                        problems.push(format!("{n}: release {r}, live before the interrupted run, is gone from the node"));
                        None
                    }
                    None => None,
                },
            };
            if let Some(to) = to {
                if snap.current.as_deref() == Some(to.as_str()) {
                    self.rec(n, |r| r.skipped = true);
                    skipped.push((n.clone(), to));
                } else {
                    plan.push((n.clone(), to));
                }
            }
        }
        if !problems.is_empty() {
            return self.finish(
                Outcome::PreflightFailed,
                format!(
                    "cannot roll back, nothing was changed:\n  {}",
                    problems.join("\n  ")
                ),
            );
        }
        if let Err(m) = self.acquire(&label).await {
            return self.finish(Outcome::LockHeld, m);
        }
        // Nodes already where they should be: back into rotation if a crash left them out.
        for (n, to) in &skipped {
            if let Err(e) = self.ensure_in_rotation(n, to).await {
                self.em.notice(Level::Error, format!("{n}: {e}"));
            }
            self.set_state(n, NodeState::Skipped);
        }
        self.em.emit(EventKind::RollbackStarted {
            reason: format!("rollback to {label} requested"),
            nodes: plan.iter().map(|(n, _)| n.clone()).collect(),
        });
        let mut ok = true;
        for (i, batch) in self.plan.batches.iter().enumerate() {
            let batch: Vec<&(String, String)> =
                plan.iter().filter(|(n, _)| batch.contains(n)).collect();
            if batch.is_empty() {
                continue;
            }
            if self.ctl.boundary().await.is_err() && self.ctl.snapshot().abort {
                ok = false;
                break;
            }
            self.em.emit(EventKind::BatchStarted {
                index: i,
                nodes: batch.iter().map(|(n, _)| n.clone()).collect(),
            });
            let results = join_all(
                batch
                    .iter()
                    .map(|(n, to)| self.rollback_node(n, Some(to.clone()))),
            )
            .await;
            ok &= results.iter().all(|r| *r);
            if !ok {
                break;
            }
        }
        if let RollbackTarget::Resume { abandon, .. } = &target {
            let never = CancellationToken::new();
            for n in self.plan.nodes.clone() {
                let _ = self
                    .internal(
                        &n,
                        remote::remove_release_script(&self.deploy_path(&n), abandon),
                        &never,
                    )
                    .await;
            }
        }
        self.unlock_all().await;
        if ok {
            self.finish(
                Outcome::RolledBack,
                format!("rolled back; {}", self.release_summary()),
            )
        } else {
            self.finish(
                Outcome::Failed,
                format!("rollback did not complete; {}", self.release_summary()),
            )
        }
    }
}

#[derive(Debug)]
enum NodeStop {
    Failed(String),
    Stopped,
}
