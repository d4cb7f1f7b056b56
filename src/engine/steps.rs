//! The step runner: the one bracket every step of a run goes through, and the way to the nodes.
//!
//! A step is counted as running (so a pause waits for it), announced (`StepStarted`), run, and
//! closed (`StepFinished` with how it ended, its duration and, on failure, why). Script output
//! is forwarded line by line as `Output` events. The engine's own bookkeeping scripts (lock,
//! history, state reads) go through [`StepRunner::internal`] and [`StepRunner::read_node`]:
//! no events, a short time limit.
//!
//! This part knows nothing of releases, batches or policy: callers decide what a step is.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::control::Ctl;
use super::emit::Emitter;
use super::error::StepError;
use super::remote::{self, NodeSnapshot, ScriptError};
use super::timing::{Span, Timing};
use crate::event::{EventKind, StepResult, Stream};
use crate::inventory::Inventory;
use crate::plan::Target;
use crate::transport::local::LocalTransport;
use crate::transport::{self, ExecOutcome, ExecRequest, Transport};

/// How the run reaches its nodes: one transport per node of the plan, and this machine.
pub(crate) struct Nodes {
    inv: Arc<Inventory>,
    transports: HashMap<String, Arc<dyn Transport>>,
    local: Arc<LocalTransport>,
}

impl Nodes {
    /// A transport for every node in `names`. Errors name the node.
    pub fn new(inv: Arc<Inventory>, names: &[String]) -> Result<Self, String> {
        let mut transports = HashMap::new();
        for name in names {
            let node = inv
                .node(name)
                .ok_or_else(|| format!("node `{name}` is not defined"))?;
            let t = transport::for_node(node, &inv.base_dir())
                .map_err(|e| format!("node {name}: {e}"))?;
            transports.insert(name.clone(), t);
        }
        Ok(Nodes {
            local: Arc::new(LocalTransport::new(inv.base_dir())),
            inv,
            transports,
        })
    }

    pub fn transport(&self, target: &Target) -> Arc<dyn Transport> {
        match target {
            Target::Local => self.local.clone(),
            Target::Node(n) => self.node(n).unwrap_or_else(|| self.local.clone()),
        }
    }

    /// Close every node's connection (the run is over): each master is told to exit now, not
    /// when the process ends or its idle limit passes.
    pub async fn close(&self) {
        futures::future::join_all(self.transports.values().map(|t| t.close())).await;
    }

    /// The transport of a node of the run.
    pub fn node(&self, name: &str) -> Option<Arc<dyn Transport>> {
        self.transports.get(name).cloned()
    }

    /// A transport for any node of the inventory (a balancer reached through a node outside
    /// the run).
    pub fn any(&self, name: &str) -> Option<Arc<dyn Transport>> {
        self.node(name).or_else(|| {
            self.inv
                .node(name)
                .and_then(|n| transport::for_node(n, &self.inv.base_dir()).ok())
        })
    }

    pub fn deploy_path(&self, node: &str) -> String {
        super::script::deploy_path(&self.inv, node)
    }

    pub fn host(&self, node: &str) -> String {
        self.inv
            .node(node)
            .map(|n| n.host.clone())
            .unwrap_or_default()
    }
}

/// Runs steps: the bracket, output forwarding, the engine's own scripts.
pub(crate) struct StepRunner {
    pub em: Arc<Emitter>,
    pub ctl: Arc<Ctl>,
    pub nodes: Arc<Nodes>,
    pub timing: Arc<Timing>,
    /// Bookkeeping writes that run beside the steps (history lines), the last one per node: a
    /// node's writes happen in the order they were asked for.
    pub background: std::sync::Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl StepRunner {
    /// One step as the operator sees it: counted as running, then `StepStarted`, the work, and
    /// `StepFinished` with how it ended (from the work's error), its duration and message.
    pub async fn step<T>(
        &self,
        node: Option<&str>,
        phase: &str,
        command: Option<String>,
        work: impl Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        self.ctl.step_started();
        let started = Instant::now();
        self.em.emit(EventKind::StepStarted {
            node: node.map(String::from),
            phase: phase.to_string(),
            command,
        });
        let out = work.await;
        self.timing.step(Span {
            node: node.map(String::from),
            phase: phase.to_string(),
            start: started,
            end: Instant::now(),
        });
        self.em.emit(EventKind::StepFinished {
            node: node.map(String::from),
            phase: phase.to_string(),
            result: match &out {
                Ok(_) => StepResult::Ok,
                Err(e) => e.result(),
            },
            duration_ms: started.elapsed().as_millis() as u64,
            message: out.as_ref().err().map(|e| e.to_string()),
        });
        self.ctl.step_ended();
        out
    }

    /// A step that does not apply: shown as skipped, with the reason.
    pub fn skipped(&self, node: &str, phase: &str, why: String) {
        self.em.emit(EventKind::StepFinished {
            node: Some(node.to_string()),
            phase: phase.to_string(),
            result: StepResult::Skipped,
            duration_ms: 0,
            message: Some(why),
        });
    }

    /// Run a script as one step: events around it, output streamed, time limit and cancel
    /// honoured.
    pub async fn exec(
        &self,
        node: Option<&str>,
        phase: &str,
        shown: Option<String>,
        target: &Target,
        req: ExecRequest,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, StepError> {
        self.step(
            node,
            phase,
            shown,
            self.exec_quiet(node, phase, target, &req, cancel),
        )
        .await
    }

    /// Run a script with its output forwarded as events, but no step events of its own (a part
    /// of a larger step, such as one attempt of a health check).
    pub(crate) async fn exec_quiet(
        &self,
        node: Option<&str>,
        phase: &str,
        target: &Target,
        req: &ExecRequest,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, StepError> {
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
        let transport = self.nodes.transport(target);
        let started = Instant::now();
        let result = transport.exec(req, Some(&tx), cancel).await;
        self.timing.script(node, started, started.elapsed());
        drop(tx);
        let _ = forward.await;
        match result? {
            o if o.success() => Ok(o),
            o => Err(StepError::script(o, req.timeout)),
        }
    }

    /// Run one of the engine's own scripts on a node (no step events).
    pub async fn internal(
        &self,
        node: &str,
        script: String,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, ScriptError> {
        let t = self.nodes.transport(&Target::Node(node.to_string()));
        remote::exec_checked(&*t, script, cancel).await
    }

    /// Run one of the engine's own scripts on a node beside the steps, after the node's earlier
    /// background scripts; a failure becomes a warning with `what` it was for. [`Self::settle`]
    /// waits for all of them.
    pub fn in_background(self: &Arc<Self>, node: &str, script: String, what: &'static str) {
        let me = self.clone();
        let n = node.to_string();
        let mut pending = match self.background.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let before = pending.remove(node);
        let task = tokio::spawn(async move {
            if let Some(b) = before {
                let _ = b.await;
            }
            let never = CancellationToken::new();
            if let Err(e) = me.internal(&n, script, &never).await {
                me.em.notice(
                    crate::event::Level::Warn,
                    format!("{n}: could not {what}: {e}"),
                );
            }
        });
        pending.insert(node.to_string(), task);
    }

    /// Wait until every background script has run.
    pub async fn settle(&self) {
        let tasks: Vec<_> = match self.background.lock() {
            Ok(mut g) => g.drain().map(|(_, t)| t).collect(),
            Err(p) => p.into_inner().drain().map(|(_, t)| t).collect(),
        };
        futures::future::join_all(tasks).await;
    }

    /// Read a node's state now (no step events).
    pub(crate) async fn read_node(
        &self,
        node: &str,
        cancel: &CancellationToken,
    ) -> Result<NodeSnapshot, ScriptError> {
        let t = self.nodes.transport(&Target::Node(node.to_string()));
        remote::read_snapshot(&*t, &self.nodes.deploy_path(node), cancel).await
    }
}
