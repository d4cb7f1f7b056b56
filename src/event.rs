//! The protocol between the engine and everything else: [`Event`]s out, [`Control`]s in.
//!
//! Events are plain serde data so the same stream feeds the screen, the headless printer and the
//! JSONL journal, and a journal read back yields exactly the events a live run produced. Nothing
//! here knows about terminals or networks.

use serde::{Deserialize, Serialize};

/// What the operator (or CI) asks of a running deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Stop starting new steps once the running ones end.
    Pause,
    /// Undo a pause.
    Resume,
    /// Pass a gate (after the first batch, or after a failure paused the run).
    Promote,
    /// Stop now: kill running steps, leave every node on a whole release, release the lock.
    Abort,
    /// Stop forward work and put every switched node back on its previous release.
    Rollback,
    /// While paused: let each node in flight (or the run between batches) start exactly its next
    /// step, then stay paused.
    Step,
    /// Tick a manual checklist item: the operator confirms it by name.
    Confirm { check: String },
    /// The console is going away (a signal): pause at the next step boundary and record why;
    /// the lock stays held for `deckhand resume`.
    Interrupt { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Position in the deployment's stream, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Deploy,
    Rollback,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub host: String,
    pub transport: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where a node stands, as the grid shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Not reached yet; serving its live release.
    Waiting,
    /// Being taken out of the load balancer.
    Draining,
    /// Running its phases (see `StepStarted` for which).
    Updating,
    /// Waiting for its health check to pass.
    Checking,
    /// Being put back into the load balancer.
    Enabling,
    /// On the new release, healthy, back in rotation.
    Done,
    /// A step failed; see the last `StepFinished`.
    Failed,
    /// Being put back on its previous release.
    RollingBack,
    /// Back on its previous release.
    RolledBack,
    /// Left alone (already on the release, or outside the run).
    Skipped,
}

impl NodeState {
    /// The state in the operator's words (`rolling back`, not `RollingBack`).
    pub fn word(self) -> &'static str {
        match self {
            NodeState::Waiting => "waiting",
            NodeState::Draining => "draining",
            NodeState::Updating => "updating",
            NodeState::Checking => "checking health",
            NodeState::Enabling => "enabling",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
            NodeState::RollingBack => "rolling back",
            NodeState::RolledBack => "rolled back",
            NodeState::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    Ok,
    Failed,
    TimedOut,
    Killed,
    Skipped,
}

impl StepResult {
    /// How a step ended, in the operator's words (`timed out`, not `TimedOut`).
    pub fn word(self) -> &'static str {
        match self {
            StepResult::Ok => "ok",
            StepResult::Failed => "failed",
            StepResult::TimedOut => "timed out",
            StepResult::Killed => "killed",
            StepResult::Skipped => "skipped",
        }
    }
    /// The step did not do its work: it failed, timed out or was killed.
    pub fn failed(self) -> bool {
        !matches!(self, StepResult::Ok | StepResult::Skipped)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every node is on the new release.
    Deployed,
    /// The run stopped and switched nodes went back to their previous release.
    RolledBack,
    /// The run stopped after a failure; nodes stay where they are (each on a whole release).
    Halted,
    /// The operator aborted; nodes stay where they are (each on a whole release).
    Aborted,
    /// Every node except the failed ones (within `max_fail`) is on the new release.
    Partial,
    /// Another deployment holds the lock; nothing changed.
    LockHeld,
    /// A node could not be reached or read before the start; nothing changed.
    PreflightFailed,
    /// The run could not start or could not finish its rollback.
    Failed,
}

impl Outcome {
    /// The outcome in the operator's words.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::RolledBack => "rolled back",
            Outcome::Halted => "halted",
            Outcome::Aborted => "aborted",
            Outcome::Partial => "deployed with failed nodes",
            Outcome::LockHeld => "locked by another deployment",
            Outcome::PreflightFailed => "stopped at preflight",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One item of the post-deploy checklist, as declared in the inventory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckInfo {
    pub name: String,
    /// `immediate`, `short` or `long`.
    pub window: String,
    /// Its place in the rollback decision tree: `health`, `errors`, `performance`, `critical`, `info`.
    pub kind: String,
    pub manual: bool,
    pub per_node: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pending,
    Running,
    Pass,
    Fail,
    /// The probe could not run (timeout, unreachable): never counted as a pass.
    Unknown,
    /// A manual item waiting for the operator.
    NeedsConfirmation,
}

impl CheckStatus {
    /// A checklist item's state in the operator's words (`needs confirmation`).
    pub fn word(self) -> &'static str {
        match self {
            CheckStatus::Pending => "pending",
            CheckStatus::Running => "running",
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Unknown => "unknown",
            CheckStatus::NeedsConfirmation => "needs confirmation",
        }
    }
}

/// Where a run's time went: did deckhand or the steps take it?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TimeReport {
    /// From the first event to the last.
    pub wall_ms: u64,
    /// From the start until the lock was held on every node (preflight and locks).
    pub preflight_ms: u64,
    /// Time during which at least one step was running: the work's critical path.
    pub steps_ms: u64,
    /// Time spent waiting for the operator (gates, pauses) or the checklist's windows.
    pub waiting_ms: u64,
    /// Wall minus steps minus waiting: deckhand's own time, preflight and locks included.
    pub overhead_ms: u64,
    /// Of that, the steps' time on the way to the nodes and back (requests, starting each
    /// script, answers): what the links and jump hosts cost. Older journals lack it.
    #[serde(default)]
    pub link_ms: u64,
    /// The phases that took longest, summed over nodes.
    #[serde(default)]
    pub slowest_phases: Vec<Slow>,
    /// The nodes whose steps took longest.
    #[serde(default)]
    pub slowest_nodes: Vec<Slow>,
}

impl TimeReport {
    /// One line for people: does deckhand or do the steps take the time?
    pub fn summary(&self) -> String {
        let d = |ms: u64| crate::util::format_duration(std::time::Duration::from_millis(ms));
        let list = |v: &[Slow]| {
            v.iter()
                .map(|s| format!("{} {}", s.name, d(s.ms)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut line = format!(
            "wall {} = steps {} (critical path) + waiting {} + deckhand {} (preflight and locks {}, round trips to the nodes {})",
            d(self.wall_ms),
            d(self.steps_ms),
            d(self.waiting_ms),
            d(self.overhead_ms),
            d(self.preflight_ms),
            d(self.link_ms)
        );
        if !self.slowest_phases.is_empty() {
            line.push_str(&format!("; slowest phases: {}", list(&self.slowest_phases)));
        }
        if !self.slowest_nodes.is_empty() {
            line.push_str(&format!("; slowest nodes: {}", list(&self.slowest_nodes)));
        }
        line
    }
}

/// A phase or a node and how long its steps took.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Slow {
    pub name: String,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeRelease {
    pub node: String,
    pub release: Option<String>,
}

// `Started` is much larger than the rest, but it is sent once per run: boxing it would buy
// nothing and cost every reader a deref.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The first event of every run: what is about to happen.
    Started {
        deployment: String,
        kind: RunKind,
        app: String,
        env: String,
        release: String,
        strategy: String,
        who: String,
        from_host: String,
        nodes: Vec<NodeInfo>,
        batches: Vec<Vec<String>>,
        /// Batch indexes after which the run waits for a promote.
        gates: Vec<usize>,
        /// Node phase names, in order (what the phases pane lists per node).
        phases: Vec<String>,
        protected: bool,
        balancer: bool,
        journal: Option<String>,
        /// The post-deploy checklist (empty when the inventory declares none).
        #[serde(default)]
        checks: Vec<CheckInfo>,
        /// How long each checklist window watches, in milliseconds (0: skipped).
        #[serde(default)]
        windows: Vec<(String, u64)>,
    },
    /// One node's state read before anything changes.
    Preflight {
        node: String,
        ok: bool,
        live_release: Option<String>,
        previous_release: Option<String>,
        message: Option<String>,
    },
    /// The lock is held on every node of the run.
    Locked {
        deployment: String,
    },
    Unlocked {
        deployment: String,
    },
    BatchStarted {
        index: usize,
        nodes: Vec<String>,
    },
    NodeState {
        node: String,
        state: NodeState,
    },
    /// The node's `current` link, read back after a switch.
    NodeRelease {
        node: String,
        release: Option<String>,
    },
    /// The balancer's own answer for a node (true = in rotation).
    Rotation {
        node: String,
        in_rotation: bool,
    },
    StepStarted {
        node: Option<String>,
        phase: String,
        command: Option<String>,
    },
    Output {
        node: Option<String>,
        phase: String,
        stream: Stream,
        line: String,
    },
    StepFinished {
        node: Option<String>,
        phase: String,
        result: StepResult,
        duration_ms: u64,
        message: Option<String>,
    },
    /// Waiting for a promote. A timed pause passes by itself at `until_ms`.
    Gate {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<i64>,
    },
    /// Blue-green: which group serves now, and which one this run deploys (or has switched from).
    Groups {
        live: Option<String>,
        idle: String,
    },
    Promoted,
    /// A pause was asked for; running steps are finishing.
    Pausing,
    Paused,
    /// Step mode: the operator let each waiting node start its next step; the run stays paused
    /// and says `Paused` again once those steps ended.
    Stepping,
    Resumed,
    RollbackStarted {
        reason: String,
        nodes: Vec<String>,
    },
    Aborting {
        reason: String,
    },
    Notice {
        level: Level,
        message: String,
    },
    /// A checklist item's latest result; `value` is what was measured ("182 ms", "0.02 %").
    Check {
        name: String,
        node: Option<String>,
        status: CheckStatus,
        value: Option<String>,
    },
    /// A checklist window opened; its checks repeat until `ends_at_ms` (or the operator ends it).
    Monitoring {
        window: String,
        ends_at_ms: i64,
    },
    /// A decision of the rollback tree, with its reason: `keep`, `alert`, `rollback`, `all_normal`,
    /// `unconfirmed` (manual items left open).
    Decision {
        verdict: String,
        reason: String,
    },
    /// Where the run's time went, just before its last event.
    Timing(TimeReport),
    /// The last event of every run.
    Finished {
        outcome: Outcome,
        message: String,
        nodes: Vec<NodeRelease>,
    },
}

impl EventKind {
    pub fn node(&self) -> Option<&str> {
        match self {
            EventKind::Preflight { node, .. }
            | EventKind::NodeState { node, .. }
            | EventKind::NodeRelease { node, .. }
            | EventKind::Rotation { node, .. } => Some(node),
            EventKind::StepStarted { node, .. }
            | EventKind::Output { node, .. }
            | EventKind::StepFinished { node, .. } => node.as_deref(),
            _ => None,
        }
    }
}
