//! The console's state: a pure reducer over engine [`Event`]s ([`App::apply`]) plus what only
//! the screen cares about (selection, focus, flash messages, dialogs, overlays).
//!
//! Everything here is plain data changed by events and key presses; nothing reads the clock,
//! the terminal or the network. A key press never changes the deployment directly: it returns
//! an [`Effect`] (for instance "send this [`Control`]") that the run loop carries out. That is
//! what lets a journal be replayed into the very same screen and every screen be tested.

use std::collections::{BTreeMap, HashMap};

use crate::event::{
    CheckInfo, CheckStatus, Control, Event, EventKind, Level, NodeState, Outcome, RunKind,
    StepResult, Stream,
};

use super::keys::{self, Action, Key, Scope};
use super::theme::{Glyphs, Theme};

/// How long a flash message stays on screen.
pub const FLASH_MS: i64 = 6_000;
/// Lines of output kept per node (older lines are dropped, newest kept).
pub const OUTPUT_KEEP: usize = 5_000;

/// What the header's pill says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ready,
    Deploying,
    Pausing,
    Paused,
    Waiting,
    RollingBack,
    Aborting,
    Failed,
    Done,
    RolledBack,
    Aborted,
    Halted,
    /// Deployed except the failed nodes (within the inventory's `max_fail`).
    Partial,
    /// Another deployment holds the lock; nothing changed.
    LockHeld,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Ready => "READY",
            Mode::Deploying => "DEPLOYING",
            Mode::Pausing => "PAUSING…",
            Mode::Paused => "PAUSED",
            Mode::Waiting => "WAITING",
            Mode::RollingBack => "ROLLING BACK",
            Mode::Aborting => "ABORTING",
            Mode::Failed => "FAILED",
            Mode::Done => "DONE",
            Mode::RolledBack => "ROLLED BACK",
            Mode::Aborted => "ABORTED",
            Mode::Halted => "HALTED",
            Mode::Partial => "PARTIAL",
            Mode::LockHeld => "LOCK HELD",
        }
    }
    /// The theme key of the pill's colour.
    pub fn style_key(self) -> &'static str {
        match self {
            Mode::Ready => "mode_ready",
            Mode::Deploying => "mode_deploying",
            Mode::Pausing => "mode_pausing",
            Mode::Paused => "mode_paused",
            Mode::Waiting => "mode_waiting",
            Mode::RollingBack | Mode::RolledBack => "mode_rolling_back",
            Mode::Aborting
            | Mode::Failed
            | Mode::Aborted
            | Mode::Halted
            | Mode::Partial
            | Mode::LockHeld => "mode_failed",
            Mode::Done => "mode_done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Grid,
    Phases,
    Checklist,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseStatus {
    Pending,
    Running,
    /// The step ended, this way.
    Ended(StepResult),
}

impl PhaseStatus {
    /// The step ended badly (failed, timed out or was killed).
    pub fn failed(self) -> bool {
        matches!(self, PhaseStatus::Ended(r) if r.failed())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhaseView {
    pub name: String,
    pub status: PhaseStatus,
    pub started_ms: Option<i64>,
    pub duration_ms: Option<u64>,
    pub last_line: Option<String>,
    pub message: Option<String>,
}

impl PhaseView {
    fn new(name: &str) -> PhaseView {
        PhaseView {
            name: name.to_string(),
            status: PhaseStatus::Pending,
            started_ms: None,
            duration_ms: None,
            last_line: None,
            message: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputLine {
    pub phase: String,
    pub stderr: bool,
    pub line: String,
}

/// One node as the grid shows it: everything measured, nothing assumed.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub host: String,
    pub state: NodeState,
    /// The release its `current` link points at, as last read.
    pub release: Option<String>,
    /// The release it served when the run started (where a rollback puts it back).
    pub start_release: Option<String>,
    /// The balancer's own answer; `None` until it has been asked.
    pub in_rotation: Option<bool>,
    pub phases: Vec<PhaseView>,
    /// The phase running now, if any.
    pub phase: Option<String>,
    pub output: Vec<OutputLine>,
    /// Why it failed (from the failing step), if it did.
    pub problem: Option<String>,
}

impl NodeView {
    fn new(name: &str, host: &str, phases: &[String]) -> NodeView {
        NodeView {
            name: name.to_string(),
            host: host.to_string(),
            state: NodeState::Waiting,
            release: None,
            start_release: None,
            in_rotation: None,
            phases: phases.iter().map(|p| PhaseView::new(p)).collect(),
            phase: None,
            output: Vec::new(),
            problem: None,
        }
    }

    /// True while the node is between drain and enable: the release shown is "from → to".
    pub fn in_flight(&self) -> bool {
        matches!(
            self.state,
            NodeState::Draining
                | NodeState::Updating
                | NodeState::Checking
                | NodeState::Enabling
                | NodeState::RollingBack
        )
    }

    /// Cut off from the balancer, by the balancer's own answer.
    pub fn drained(&self) -> bool {
        self.in_rotation == Some(false)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckView {
    pub info: CheckInfo,
    pub status: CheckStatus,
    pub value: Option<String>,
    /// Per-node results of a per-node check.
    pub nodes: BTreeMap<String, (CheckStatus, Option<String>)>,
}

/// A flash message's level: the engine's own [`Level`], so a notice keeps its level.
pub use crate::event::Level as FlashLevel;

/// How serious a verdict of the rollback tree is: `rollback` an error, `alert` and
/// `unconfirmed` (manual items left open) a warning, anything else news.
pub fn verdict_level(verdict: &str) -> Level {
    match verdict {
        "rollback" => Level::Error,
        "alert" | "unconfirmed" => Level::Warn,
        _ => Level::Info,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub level: FlashLevel,
    pub text: String,
    pub until_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmKind {
    Rollback,
    Abort,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    Confirm {
        kind: ConfirmKind,
        title: String,
        lines: Vec<String>,
        /// In a protected environment: the name the operator must type.
        typed_needed: Option<String>,
        typed: String,
    },
    Quit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputView {
    /// `None`: the steps run on this machine.
    pub node: Option<String>,
    /// First line shown.
    pub top: usize,
    /// Stay at the bottom as lines arrive.
    pub follow: bool,
    pub search: String,
    /// Typing a search after `/`.
    pub typing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogScroll {
    Older,
    Newer,
    Newest,
}

/// What the run loop must do after a key press.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(Control),
    Quit,
    /// Pause, wait for the running step to end, stop cleanly, then leave.
    PauseAndLeave,
    ReplayPause,
    ReplayStep,
    /// The log pane's filter changed (`None`: every line).
    LogFilter(Option<String>),
    /// Page through the log pane's history.
    LogScroll(LogScroll),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub deployment: String,
    pub kind: RunKind,
    pub app: String,
    pub env: String,
    pub release: String,
    pub strategy: String,
    pub who: String,
    pub from_host: String,
    pub batches: Vec<Vec<String>>,
    pub gates: Vec<usize>,
    pub phases: Vec<String>,
    pub protected: bool,
    pub balancer: bool,
    pub started_ms: i64,
    /// Checklist window lengths from the inventory (ms; empty: the seed's headings).
    pub windows: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    Running,
    Pausing,
    Paused,
}

/// The whole console state.
pub struct App {
    // --- from events
    pub run: Option<RunInfo>,
    pub nodes: Vec<NodeView>,
    index: HashMap<String, usize>,
    pub checks: Vec<CheckView>,
    /// Steps run on this machine (node = None).
    pub local: Vec<PhaseView>,
    pub local_output: Vec<OutputLine>,
    pub batch: Option<usize>,
    pub gate: Option<String>,
    /// A timed gate passes by itself at this time.
    pub gate_until: Option<i64>,
    /// Blue-green: the group serving now and the one this run deploys.
    pub groups: Option<(Option<String>, String)>,
    /// The checklist window being watched and when it ends.
    pub monitoring: Option<(String, i64)>,
    /// The rollback tree's latest verdict and reason.
    pub decision: Option<(String, String)>,
    pub locked: bool,
    pause: Pause,
    pub rolling_back: bool,
    pub aborting: bool,
    pub outcome: Option<Outcome>,
    pub finish_message: Option<String>,
    pub finished_ms: Option<i64>,
    pub last_event_ms: i64,
    pub events_seen: u64,
    // --- screen only
    pub now_ms: i64,
    pub frame: usize,
    pub selected: usize,
    pub selected_check: usize,
    pub focus: Focus,
    pub flash: Option<Flash>,
    pub dialog: Option<Dialog>,
    pub output: Option<OutputView>,
    pub show_help: bool,
    pub show_log: bool,
    pub log_filter: Option<String>,
    pub theme: Theme,
    pub glyphs: Glyphs,
    /// The grid's columns at the last draw (for up/down selection).
    pub grid_columns: usize,
    /// Playing a journal: controls are not sent anywhere.
    pub replay: bool,
    pub replay_paused: bool,
    pub replay_speed: f64,
    /// A control sent but not yet answered by an event (shown optimistically).
    pending: Option<Control>,
}

impl App {
    pub fn new(theme: Theme, glyphs: Glyphs) -> App {
        App {
            run: None,
            nodes: Vec::new(),
            index: HashMap::new(),
            checks: Vec::new(),
            local: Vec::new(),
            local_output: Vec::new(),
            batch: None,
            gate: None,
            gate_until: None,
            groups: None,
            monitoring: None,
            decision: None,
            locked: false,
            pause: Pause::Running,
            rolling_back: false,
            aborting: false,
            outcome: None,
            finish_message: None,
            finished_ms: None,
            last_event_ms: 0,
            events_seen: 0,
            now_ms: 0,
            frame: 0,
            selected: 0,
            selected_check: 0,
            focus: Focus::Grid,
            flash: None,
            dialog: None,
            output: None,
            show_help: false,
            show_log: false,
            log_filter: None,
            theme,
            glyphs,
            grid_columns: 1,
            replay: false,
            replay_paused: false,
            replay_speed: 1.0,
            pending: None,
        }
    }

    // ------------------------------------------------------------------ reducer

    /// Fold one engine event into the state. Pure: the same events give the same screen.
    pub fn apply(&mut self, event: &Event) {
        self.events_seen += 1;
        self.last_event_ms = event.at_ms;
        let at = event.at_ms;
        match &event.kind {
            EventKind::Started {
                deployment,
                kind,
                app,
                env,
                release,
                strategy,
                who,
                from_host,
                nodes,
                batches,
                gates,
                phases,
                protected,
                balancer,
                checks,
                windows,
                ..
            } => {
                self.run = Some(RunInfo {
                    deployment: deployment.clone(),
                    kind: *kind,
                    app: app.clone(),
                    env: env.clone(),
                    release: release.clone(),
                    strategy: strategy.clone(),
                    who: who.clone(),
                    from_host: from_host.clone(),
                    batches: batches.clone(),
                    gates: gates.clone(),
                    phases: phases.clone(),
                    protected: *protected,
                    balancer: *balancer,
                    started_ms: at,
                    windows: windows.clone(),
                });
                self.nodes = nodes
                    .iter()
                    .map(|n| NodeView::new(&n.name, &n.host, phases))
                    .collect();
                self.index = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.name.clone(), i))
                    .collect();
                self.checks = checks
                    .iter()
                    .map(|c| CheckView {
                        status: if c.manual {
                            CheckStatus::NeedsConfirmation
                        } else {
                            CheckStatus::Pending
                        },
                        info: c.clone(),
                        value: None,
                        nodes: BTreeMap::new(),
                    })
                    .collect();
                self.rolling_back = *kind == RunKind::Rollback;
                self.selected = 0;
                self.selected_check = super::checklist::display_order(self)
                    .first()
                    .copied()
                    .unwrap_or(0);
            }
            EventKind::Preflight {
                node,
                ok,
                live_release,
                message,
                ..
            } => {
                if let Some(n) = self.node_mut(node) {
                    n.release = live_release.clone();
                    if n.start_release.is_none() {
                        n.start_release = live_release.clone();
                    }
                    if !ok {
                        n.problem = message.clone();
                    }
                }
                if !ok {
                    let text = format!(
                        "preflight failed on {node}: {}",
                        message.as_deref().unwrap_or("no reason given")
                    );
                    self.flash_at(FlashLevel::Error, text, at);
                }
            }
            EventKind::Locked { .. } => self.locked = true,
            EventKind::Unlocked { .. } => self.locked = false,
            EventKind::BatchStarted { index, .. } => {
                self.batch = Some(*index);
                self.gate = None;
            }
            EventKind::NodeState { node, state } => {
                let state = *state;
                if let Some(n) = self.node_mut(node) {
                    n.state = state;
                    if !matches!(state, NodeState::Updating | NodeState::RollingBack) {
                        n.phase = None;
                    }
                }
                if state == NodeState::Failed {
                    let why = self
                        .node(node)
                        .and_then(|n| n.problem.clone())
                        .unwrap_or_default();
                    let text = if why.is_empty() {
                        format!("{node} failed")
                    } else {
                        format!("{node} failed: {why}")
                    };
                    self.flash_at(FlashLevel::Error, text, at);
                }
            }
            EventKind::NodeRelease { node, release } => {
                if let Some(n) = self.node_mut(node) {
                    n.release = release.clone();
                }
            }
            EventKind::Rotation { node, in_rotation } => {
                if let Some(n) = self.node_mut(node) {
                    n.in_rotation = Some(*in_rotation);
                }
            }
            EventKind::StepStarted { node, phase, .. } => {
                let phase_view = self.phase_mut(node.as_deref(), phase);
                phase_view.status = PhaseStatus::Running;
                phase_view.started_ms = Some(at);
                phase_view.duration_ms = None;
                phase_view.message = None;
                // A re-run (a rollback's switch or health) must not show the last run's output.
                phase_view.last_line = None;
                if let Some(n) = node.as_deref().and_then(|n| self.node_mut(n)) {
                    n.phase = Some(phase.clone());
                }
            }
            EventKind::Output {
                node,
                phase,
                stream,
                line,
            } => {
                let out = OutputLine {
                    phase: phase.clone(),
                    stderr: *stream == Stream::Stderr,
                    line: line.clone(),
                };
                // Output of a phase row that exists updates its last line; output that belongs
                // to no step (a probe's complaint) is kept in the log and the full output only.
                if let Some(p) = self.phase_find(node.as_deref(), phase) {
                    p.last_line = Some(line.clone());
                }
                let buf = match node.as_deref().and_then(|n| self.index.get(n).copied()) {
                    Some(i) => &mut self.nodes[i].output,
                    None => &mut self.local_output,
                };
                buf.push(out);
                if buf.len() > OUTPUT_KEEP + OUTPUT_KEEP / 10 {
                    let drop = buf.len() - OUTPUT_KEEP;
                    buf.drain(..drop);
                }
            }
            EventKind::StepFinished {
                node,
                phase,
                result,
                duration_ms,
                message,
            } => {
                let p = self.phase_mut(node.as_deref(), phase);
                p.status = PhaseStatus::Ended(*result);
                p.duration_ms = Some(*duration_ms);
                p.message = message.clone();
                let failed = result.failed();
                if let Some(n) = node.as_deref().and_then(|n| self.node_mut(n)) {
                    if n.phase.as_deref() == Some(phase) {
                        n.phase = None;
                    }
                    if failed {
                        let word = result.word();
                        n.problem = Some(match message {
                            Some(m) => format!("{phase} {word}: {m}"),
                            None => format!("{phase} {word}"),
                        });
                    }
                } else if failed {
                    let text = format!(
                        "{phase} {} on this machine{}",
                        result.word(),
                        message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                    self.flash_at(FlashLevel::Error, text, at);
                }
            }
            EventKind::Gate { reason, until_ms } => {
                self.gate = Some(reason.clone());
                self.gate_until = *until_ms;
                self.pending = None;
                self.flash_at(
                    FlashLevel::Warn,
                    format!("waiting: {reason} — enter to promote, R to roll back"),
                    at,
                );
            }
            EventKind::Promoted => {
                self.gate = None;
                self.pending = None;
                self.flash_at(FlashLevel::Info, "promoted: going on".to_string(), at);
            }
            EventKind::Pausing => {
                self.pause = Pause::Pausing;
                self.pending = None;
            }
            EventKind::Paused => {
                self.pause = Pause::Paused;
                self.pending = None;
                self.flash_at(
                    FlashLevel::Info,
                    "paused: no new step will start — p to resume".to_string(),
                    at,
                );
            }
            EventKind::Resumed => {
                self.pause = Pause::Running;
                self.pending = None;
                self.flash_at(FlashLevel::Info, "resumed".to_string(), at);
            }
            EventKind::RollbackStarted { reason, nodes } => {
                self.rolling_back = true;
                self.gate = None;
                self.pause = Pause::Running;
                self.pending = None;
                let text = if nodes.is_empty() {
                    format!("rolling back ({reason}): no node was switched")
                } else {
                    format!("rolling back ({reason}): {}", nodes.join(", "))
                };
                self.flash_at(FlashLevel::Warn, text, at);
            }
            EventKind::Aborting { reason } => {
                self.aborting = true;
                self.pending = None;
                self.flash_at(FlashLevel::Warn, format!("aborting: {reason}"), at);
            }
            EventKind::Notice { level, message } => {
                self.flash_at(*level, message.clone(), at);
            }
            EventKind::Check {
                name,
                node,
                status,
                value,
            } => {
                if let Some(pos) = self.checks.iter().position(|c| &c.info.name == name) {
                    let c = &mut self.checks[pos];
                    match node {
                        Some(n) if c.info.per_node => {
                            c.nodes.insert(n.clone(), (*status, value.clone()));
                            let (s, v) = summarize(&c.nodes, self.nodes.len());
                            c.status = s;
                            c.value = v;
                        }
                        _ => {
                            c.status = *status;
                            c.value = value.clone();
                        }
                    }
                }
            }
            EventKind::Groups { live, idle } => {
                self.groups = Some((live.clone(), idle.clone()));
            }
            EventKind::Monitoring { window, ends_at_ms } => {
                self.monitoring = Some((window.clone(), *ends_at_ms));
            }
            EventKind::Decision { verdict, reason } => {
                self.decision = Some((verdict.clone(), reason.clone()));
                self.flash_at(
                    verdict_level(verdict),
                    format!("checklist decision: {verdict} — {reason}"),
                    at,
                );
            }
            EventKind::Finished {
                outcome,
                message,
                nodes,
            } => {
                self.outcome = Some(*outcome);
                self.finish_message = Some(message.clone());
                self.finished_ms = Some(at);
                self.gate = None;
                self.monitoring = None;
                self.pending = None;
                self.pause = Pause::Running;
                for nr in nodes {
                    if let Some(n) = self.node_mut(&nr.node) {
                        n.release = nr.release.clone();
                    }
                }
                let level = match outcome {
                    Outcome::Deployed => FlashLevel::Info,
                    Outcome::RolledBack => FlashLevel::Warn,
                    _ => FlashLevel::Error,
                };
                let word = outcome.word();
                let text = if message.starts_with(word) {
                    message.clone()
                } else {
                    format!("{word}: {message}")
                };
                self.flash_at(level, text, at);
                if self.dialog.is_some() {
                    self.dialog = None;
                }
            }
        }
    }

    fn node(&self, name: &str) -> Option<&NodeView> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeView> {
        match self.index.get(name) {
            Some(&i) => Some(&mut self.nodes[i]),
            None => None,
        }
    }

    fn phase_find(&mut self, node: Option<&str>, phase: &str) -> Option<&mut PhaseView> {
        let list = match node.and_then(|n| self.index.get(n).copied()) {
            Some(i) => &mut self.nodes[i].phases,
            None => &mut self.local,
        };
        list.iter_mut().find(|p| p.name == phase)
    }

    /// The phase row for a step, created on first sight when the plan did not list it.
    fn phase_mut(&mut self, node: Option<&str>, phase: &str) -> &mut PhaseView {
        let list = match node.and_then(|n| self.index.get(n).copied()) {
            Some(i) => &mut self.nodes[i].phases,
            None => &mut self.local,
        };
        let pos = match list.iter().position(|p| p.name == phase) {
            Some(p) => p,
            None => {
                list.push(PhaseView::new(phase));
                list.len() - 1
            }
        };
        &mut list[pos]
    }

    // ------------------------------------------------------------------ derived

    pub fn finished(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn mode(&self) -> Mode {
        if let Some(o) = self.outcome {
            return match o {
                Outcome::Deployed => Mode::Done,
                Outcome::RolledBack => Mode::RolledBack,
                Outcome::Aborted => Mode::Aborted,
                Outcome::Halted => Mode::Halted,
                Outcome::Partial => Mode::Partial,
                Outcome::LockHeld => Mode::LockHeld,
                Outcome::Failed | Outcome::PreflightFailed => Mode::Failed,
            };
        }
        if self.run.is_none() {
            return Mode::Ready;
        }
        if self.aborting || self.pending == Some(Control::Abort) {
            return Mode::Aborting;
        }
        match self.pause {
            Pause::Paused => return Mode::Paused,
            Pause::Pausing => return Mode::Pausing,
            Pause::Running => {}
        }
        if self.pending == Some(Control::Pause) {
            return Mode::Pausing;
        }
        if self.rolling_back || self.pending == Some(Control::Rollback) {
            return Mode::RollingBack;
        }
        let failed = self.nodes.iter().any(|n| n.state == NodeState::Failed);
        if failed {
            return Mode::Failed;
        }
        if self.gate.is_some() {
            return Mode::Waiting;
        }
        let moving =
            self.batch.is_some() || self.nodes.iter().any(|n| n.state != NodeState::Waiting);
        if moving {
            Mode::Deploying
        } else {
            Mode::Ready
        }
    }

    pub fn is_paused_or_pausing(&self) -> bool {
        matches!(self.mode(), Mode::Paused | Mode::Pausing)
    }

    pub fn can_pause(&self) -> bool {
        !self.replay
            && self.run.is_some()
            && !self.finished()
            && !self.aborting
            && !self.rolling_back
            && matches!(
                self.mode(),
                Mode::Deploying | Mode::Paused | Mode::Pausing | Mode::Ready
            )
    }

    pub fn can_rollback(&self) -> bool {
        !self.replay
            && !self.finished()
            && !self.aborting
            && !self.rolling_back
            && self.run.as_ref().is_some_and(|r| r.kind == RunKind::Deploy)
    }

    pub fn can_abort(&self) -> bool {
        !self.replay && self.run.is_some() && !self.finished() && !self.aborting
    }

    pub fn selected_check_needs_tick(&self) -> bool {
        self.checks.get(self.selected_check).is_some_and(|c| {
            c.info.manual && c.status == CheckStatus::NeedsConfirmation && !self.replay
        })
    }

    pub fn selected_node(&self) -> Option<&NodeView> {
        self.nodes.get(self.selected)
    }

    /// Nodes in rotation, by the balancer's answer (unknown counts as in rotation).
    pub fn in_rotation(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.in_rotation != Some(false))
            .count()
    }

    /// The screen's clock: the wall clock, but never before the last event seen (a replay, or
    /// an event stamped a little ahead of this machine's clock).
    pub fn now(&self) -> i64 {
        self.now_ms.max(self.last_event_ms)
    }

    pub fn elapsed_ms(&self) -> Option<i64> {
        let start = self.run.as_ref()?.started_ms;
        let end = self.finished_ms.unwrap_or(self.now());
        Some((end - start).max(0))
    }

    /// The release a node is heading to while in flight.
    pub fn target_release(&self, node: &NodeView) -> Option<String> {
        let run = self.run.as_ref()?;
        if node.state == NodeState::RollingBack
            || (self.rolling_back && run.kind == RunKind::Deploy)
        {
            return node.start_release.clone();
        }
        Some(run.release.clone())
    }

    pub fn flash_now(&self) -> Option<&Flash> {
        self.flash.as_ref().filter(|f| f.until_ms > self.now())
    }

    fn flash_at(&mut self, level: FlashLevel, text: String, at: i64) {
        let base = at.max(self.now_ms);
        self.flash = Some(Flash {
            level,
            text,
            until_ms: base + FLASH_MS,
        });
    }

    pub fn flash(&mut self, level: FlashLevel, text: impl Into<String>) {
        let at = self.now();
        self.flash_at(level, text.into(), at);
    }

    /// Anything animating (a spinner) that needs the slow tick to redraw.
    pub fn animating(&self) -> bool {
        !self.finished()
            && (self.nodes.iter().any(|n| n.phase.is_some())
                || self.local.iter().any(|p| p.status == PhaseStatus::Running)
                || matches!(self.mode(), Mode::Pausing | Mode::Aborting))
    }

    // ------------------------------------------------------------------ keys

    /// Which layer hears keys now.
    pub fn scope(&self) -> Scope {
        match &self.dialog {
            Some(Dialog::Confirm { .. }) => Scope::Confirm,
            Some(Dialog::Quit) => Scope::QuitDialog,
            None if self.show_help => Scope::Help,
            None if self.output.is_some() => Scope::Output,
            None => Scope::Main,
        }
    }

    /// Handle one key press; returns what the run loop must do.
    pub fn handle_key(&mut self, key: Key) -> Vec<Effect> {
        // Text entry first: a protected environment's name, or a search.
        if let Some(Dialog::Confirm {
            typed_needed: Some(_),
            typed,
            ..
        }) = &mut self.dialog
        {
            match key.code {
                crossterm::event::KeyCode::Char(c) if !key.ctrl => {
                    typed.push(c);
                    return vec![];
                }
                crossterm::event::KeyCode::Backspace => {
                    typed.pop();
                    return vec![];
                }
                _ => {}
            }
        }
        if let Some(view) = self.output.as_mut().filter(|v| v.typing) {
            match key.code {
                crossterm::event::KeyCode::Char(c) if !key.ctrl => view.search.push(c),
                crossterm::event::KeyCode::Backspace => {
                    view.search.pop();
                }
                crossterm::event::KeyCode::Enter => {
                    view.typing = false;
                    self.next_match(true);
                }
                crossterm::event::KeyCode::Esc => {
                    view.typing = false;
                    view.search.clear();
                }
                _ => {}
            }
            return vec![];
        }
        let scope = self.scope();
        match keys::lookup(self, scope, key) {
            Some(b) => self.perform(b.action),
            None => vec![],
        }
    }

    /// Carry out an action from the key table.
    pub fn perform(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::PauseResume => {
                if self.is_paused_or_pausing() {
                    self.pending = Some(Control::Resume);
                    self.flash(FlashLevel::Info, "resume asked");
                    vec![Effect::Send(Control::Resume)]
                } else {
                    self.pending = Some(Control::Pause);
                    self.flash(
                        FlashLevel::Info,
                        "pause asked: the running step ends first, no new step starts",
                    );
                    vec![Effect::Send(Control::Pause)]
                }
            }
            Action::Promote => {
                self.pending = Some(Control::Promote);
                self.flash(FlashLevel::Info, "promote asked");
                vec![Effect::Send(Control::Promote)]
            }
            Action::OpenOutput => {
                let node = match self.focus {
                    Focus::Phases if self.nodes.is_empty() => None,
                    _ => self.selected_node().map(|n| n.name.clone()),
                };
                if node.is_none() && self.local_output.is_empty() && self.nodes.is_empty() {
                    return vec![];
                }
                self.output = Some(OutputView {
                    node,
                    top: 0,
                    follow: true,
                    search: String::new(),
                    typing: false,
                });
                vec![]
            }
            Action::TickCheck => self.tick_check(),
            Action::Rollback => {
                self.dialog = Some(self.rollback_dialog());
                vec![]
            }
            Action::Abort => {
                self.dialog = Some(self.abort_dialog());
                vec![]
            }
            Action::Prev => self.move_selection(-1, false),
            Action::Next => self.move_selection(1, false),
            Action::Up => self.move_selection(-1, true),
            Action::Down => self.move_selection(1, true),
            Action::FocusNext | Action::FocusPrev => {
                let mut order = vec![Focus::Grid, Focus::Phases, Focus::Checklist];
                if self.show_log {
                    order.push(Focus::Log);
                }
                let pos = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let len = order.len();
                let next = if action == Action::FocusNext {
                    (pos + 1) % len
                } else {
                    (pos + len - 1) % len
                };
                self.focus = order[next];
                vec![]
            }
            Action::ToggleLog => {
                self.show_log = !self.show_log;
                if !self.show_log && self.focus == Focus::Log {
                    self.focus = Focus::Grid;
                }
                vec![]
            }
            Action::LogFilter => {
                self.log_filter = match self.log_filter {
                    Some(_) => None,
                    None => self.selected_node().map(|n| n.name.clone()),
                };
                let text = match &self.log_filter {
                    Some(n) => format!("log: only {n}"),
                    None => "log: every node".to_string(),
                };
                self.flash(FlashLevel::Info, text);
                vec![Effect::LogFilter(self.log_filter.clone())]
            }
            Action::LogPageUp => vec![Effect::LogScroll(LogScroll::Older)],
            Action::LogPageDown => vec![Effect::LogScroll(LogScroll::Newer)],
            Action::LogFollow => vec![Effect::LogScroll(LogScroll::Newest)],
            Action::NextTheme => {
                self.theme = self.theme.next_builtin();
                let text = format!("theme: {}", self.theme.name);
                self.flash(FlashLevel::Info, text);
                vec![]
            }
            Action::Help => {
                self.show_help = !self.show_help;
                vec![]
            }
            Action::Quit => {
                if self.replay || self.run.is_none() || self.finished() {
                    vec![Effect::Quit]
                } else {
                    self.dialog = Some(Dialog::Quit);
                    vec![]
                }
            }
            Action::Confirm => self.confirm(),
            Action::Cancel | Action::KeepGoing => {
                self.dialog = None;
                if action == Action::KeepGoing {
                    self.flash(FlashLevel::Info, "staying: the deployment keeps going");
                }
                vec![]
            }
            Action::PauseAndLeave => {
                self.dialog = None;
                if self.rolling_back {
                    self.flash(FlashLevel::Warn, "leaving once the rollback has finished");
                } else {
                    self.pending = Some(Control::Pause);
                    self.flash(
                        FlashLevel::Warn,
                        "leaving: pausing after the running step; the lock stays held for resume",
                    );
                }
                vec![Effect::PauseAndLeave]
            }
            Action::ScrollUp => self.scroll(-1),
            Action::ScrollDown => self.scroll(1),
            Action::PageUp => self.scroll(-20),
            Action::PageDown => self.scroll(20),
            Action::Top => {
                if let Some(v) = &mut self.output {
                    v.top = 0;
                    v.follow = false;
                }
                vec![]
            }
            Action::Bottom => {
                if let Some(v) = &mut self.output {
                    v.follow = true;
                }
                vec![]
            }
            Action::Search => {
                if let Some(v) = &mut self.output {
                    v.typing = true;
                    v.search.clear();
                }
                vec![]
            }
            Action::NextMatch => {
                self.next_match(false);
                vec![]
            }
            Action::Close => {
                if self.show_help {
                    self.show_help = false;
                } else {
                    self.output = None;
                }
                vec![]
            }
            Action::ReplayPause => {
                self.replay_paused = !self.replay_paused;
                vec![Effect::ReplayPause]
            }
            Action::ReplayStep => vec![Effect::ReplayStep],
            Action::ReplayFaster | Action::ReplaySlower => {
                let s = if action == Action::ReplayFaster {
                    (self.replay_speed * 2.0).min(64.0)
                } else {
                    (self.replay_speed / 2.0).max(0.25)
                };
                self.replay_speed = s;
                // The replay loop reads the speed from here when it schedules the next event.
                self.flash(FlashLevel::Info, format!("replay speed ×{s}"));
                vec![]
            }
        }
    }

    fn move_selection(&mut self, delta: i64, by_row: bool) -> Vec<Effect> {
        match self.focus {
            Focus::Checklist => {
                let order = super::checklist::display_order(self);
                if !order.is_empty() {
                    let at = order
                        .iter()
                        .position(|&i| i == self.selected_check)
                        .unwrap_or(0);
                    let pos = (at as i64 + delta).clamp(0, order.len() as i64 - 1);
                    self.selected_check = order[pos as usize];
                }
            }
            _ => {
                let len = self.nodes.len();
                if len > 0 {
                    let step = if by_row {
                        self.grid_columns.max(1) as i64
                    } else {
                        1
                    };
                    let pos = self.selected as i64 + delta * step;
                    if (0..len as i64).contains(&pos) {
                        self.selected = pos as usize;
                    }
                }
                if let (Some(f), Some(n)) = (&self.log_filter, self.selected_node()) {
                    if f != &n.name {
                        let name = n.name.clone();
                        self.log_filter = Some(name.clone());
                        return vec![Effect::LogFilter(Some(name))];
                    }
                }
            }
        }
        vec![]
    }

    fn tick_check(&mut self) -> Vec<Effect> {
        let pos = self.selected_check;
        let Some(c) = self.checks.get_mut(pos) else {
            return vec![];
        };
        if !c.info.manual {
            return vec![];
        }
        c.status = CheckStatus::Pass;
        c.value = Some("confirmed".into());
        let name = c.info.name.clone();
        self.flash(FlashLevel::Info, format!("ticked: {name}"));
        vec![Effect::Send(Control::Confirm { check: name })]
    }

    fn rollback_dialog(&self) -> Dialog {
        let mut lines = Vec::new();
        let arrow = self.glyphs.arrow;
        let mut touched = 0;
        for n in &self.nodes {
            let switched = n.release.is_some() && n.release != n.start_release;
            let back = n.start_release.as_deref().unwrap_or("(none)");
            if switched {
                touched += 1;
                lines.push(format!(
                    "  {:<14} {} {arrow} {back}",
                    n.name,
                    n.release.as_deref().unwrap_or("?")
                ));
            } else if n.in_flight() {
                touched += 1;
                lines.push(format!("  {:<14} stopped, stays on {back}", n.name));
            }
        }
        let untouched = self.nodes.len() - touched;
        let mut head = vec![if touched == 0 {
            "No node has been switched yet: rolling back stops the run here.".to_string()
        } else {
            "These nodes go back to the release they served before:".to_string()
        }];
        head.append(&mut lines);
        if untouched > 0 {
            let others = crate::util::count(untouched, "other node is", "other nodes are");
            head.push(format!("  {others} not touched."));
        }
        let run = self.run.as_ref();
        let typed_needed = run.filter(|r| r.protected).map(|r| r.env.clone());
        let title = match run {
            Some(r) => format!("Roll back {} in {}?", r.app, r.env),
            None => "Roll back?".into(),
        };
        Dialog::Confirm {
            kind: ConfirmKind::Rollback,
            title,
            lines: head,
            typed_needed,
            typed: String::new(),
        }
    }

    fn abort_dialog(&self) -> Dialog {
        let running: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.in_flight())
            .map(|n| n.name.as_str())
            .collect();
        let mut lines = vec![
            "Running steps are stopped; no further node is touched.".to_string(),
            "Every node is left on a whole release and the lock is released.".to_string(),
        ];
        if !running.is_empty() {
            lines.push(format!("In flight now: {}", running.join(", ")));
        }
        let run = self.run.as_ref();
        Dialog::Confirm {
            kind: ConfirmKind::Abort,
            title: match run {
                Some(r) => format!("Abort the deployment of {} to {}?", r.release, r.env),
                None => "Abort?".into(),
            },
            lines,
            // An abort is the emergency stop: one key to confirm, even when protected.
            typed_needed: None,
            typed: String::new(),
        }
    }

    fn confirm(&mut self) -> Vec<Effect> {
        let Some(Dialog::Confirm {
            kind,
            typed_needed,
            typed,
            ..
        }) = &self.dialog
        else {
            return vec![];
        };
        if let Some(need) = typed_needed {
            if typed.trim() != need {
                let text = format!("type `{need}` to confirm (esc to cancel)");
                self.flash(FlashLevel::Warn, text);
                return vec![];
            }
        }
        let kind = *kind;
        self.dialog = None;
        match kind {
            ConfirmKind::Rollback => {
                self.pending = Some(Control::Rollback);
                self.flash(FlashLevel::Warn, "roll back asked");
                vec![Effect::Send(Control::Rollback)]
            }
            ConfirmKind::Abort => {
                self.pending = Some(Control::Abort);
                self.flash(FlashLevel::Warn, "abort asked");
                vec![Effect::Send(Control::Abort)]
            }
        }
    }

    /// The output lines the output view shows.
    pub fn output_lines(&self) -> &[OutputLine] {
        match self.output.as_ref().and_then(|v| v.node.as_deref()) {
            Some(n) => self.node(n).map(|n| n.output.as_slice()).unwrap_or(&[]),
            None => &self.local_output,
        }
    }

    fn scroll(&mut self, delta: i64) -> Vec<Effect> {
        let len = self.output_lines().len() as i64;
        if let Some(v) = &mut self.output {
            let top = if v.follow {
                (len - 20).max(0)
            } else {
                v.top as i64
            };
            v.top = (top + delta).clamp(0, (len - 1).max(0)) as usize;
            v.follow = false;
        }
        vec![]
    }

    fn next_match(&mut self, from_top: bool) {
        let Some(view) = self.output.as_ref() else {
            return;
        };
        if view.search.is_empty() {
            return;
        }
        let needle = view.search.to_lowercase();
        let start = if from_top { 0 } else { view.top + 1 };
        let lines = self.output_lines();
        let found = lines
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, l)| l.line.to_lowercase().contains(&needle))
            .or_else(|| {
                lines
                    .iter()
                    .enumerate()
                    .find(|(_, l)| l.line.to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i);
        match found {
            Some(i) => {
                if let Some(v) = &mut self.output {
                    v.top = i;
                    v.follow = false;
                }
            }
            None => {
                let text = format!("no line matches `{}`", needle);
                self.flash(FlashLevel::Warn, text);
            }
        }
    }
}

/// A per-node check's overall state: the worst node wins; the value says how many passed.
fn summarize(
    nodes: &BTreeMap<String, (CheckStatus, Option<String>)>,
    total: usize,
) -> (CheckStatus, Option<String>) {
    let rank = |s: CheckStatus| match s {
        CheckStatus::Fail => 5,
        CheckStatus::Unknown => 4,
        CheckStatus::Running => 3,
        CheckStatus::NeedsConfirmation => 2,
        CheckStatus::Pending => 1,
        CheckStatus::Pass => 0,
    };
    let worst = nodes
        .values()
        .map(|(s, _)| *s)
        .max_by_key(|s| rank(*s))
        .unwrap_or(CheckStatus::Pending);
    let passed = nodes
        .values()
        .filter(|(s, _)| *s == CheckStatus::Pass)
        .count();
    let status = if worst == CheckStatus::Pass && nodes.len() < total {
        CheckStatus::Running
    } else {
        worst
    };
    let single = if total == 1 {
        nodes.values().next().and_then(|(_, v)| v.clone())
    } else {
        None
    };
    let failing: Vec<&str> = nodes
        .iter()
        .filter(|(_, (s, _))| *s == CheckStatus::Fail)
        .map(|(n, _)| n.as_str())
        .collect();
    let value = if !failing.is_empty() {
        Some(format!(
            "{passed}/{total} nodes, {} failing",
            failing.join(", ")
        ))
    } else {
        single.or(Some(format!("{passed}/{total} nodes")))
    };
    (status, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Control;
    use crate::ui::fixtures::{self, Script};
    use crossterm::event::KeyCode;

    fn key(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            ctrl: false,
        }
    }
    fn code(code: KeyCode) -> Key {
        Key { code, ctrl: false }
    }

    fn protected_mid_rollout() -> App {
        fixtures::protected_mid_rollout().into_app(6)
    }

    #[test]
    fn a_protected_rollback_needs_the_environment_typed() {
        let mut app = protected_mid_rollout();
        assert!(app.handle_key(key('R')).is_empty());
        // y is typed into the box, not taken as a confirmation
        assert!(app.handle_key(key('y')).is_empty());
        assert!(
            app.handle_key(code(KeyCode::Enter)).is_empty(),
            "wrong name confirms"
        );
        assert!(app.dialog.is_some());
        app.handle_key(code(KeyCode::Backspace));
        for c in "production".chars() {
            app.handle_key(key(c));
        }
        assert_eq!(
            app.handle_key(code(KeyCode::Enter)),
            vec![Effect::Send(Control::Rollback)]
        );
        assert!(app.dialog.is_none());
        assert_eq!(app.mode(), Mode::RollingBack);
    }

    #[test]
    fn escape_cancels_a_rollback_and_nothing_is_sent() {
        let mut app = fixtures::mid_rollout().into_app(6);
        app.handle_key(key('R'));
        assert!(app.handle_key(code(KeyCode::Esc)).is_empty());
        assert!(app.dialog.is_none());
        assert_eq!(app.mode(), Mode::Deploying);
    }

    #[test]
    fn abort_is_one_key_to_confirm_even_when_protected() {
        let mut app = protected_mid_rollout();
        app.handle_key(key('a'));
        assert_eq!(app.handle_key(key('y')), vec![Effect::Send(Control::Abort)]);
    }

    #[test]
    fn abort_asks_first() {
        let mut app = fixtures::mid_rollout().into_app(6);
        assert!(app.handle_key(key('a')).is_empty());
        assert_eq!(app.handle_key(key('y')), vec![Effect::Send(Control::Abort)]);
        assert_eq!(app.mode(), Mode::Aborting);
    }

    #[test]
    fn quitting_while_deploying_asks_and_can_pause_and_leave() {
        let mut app = fixtures::mid_rollout().into_app(6);
        assert!(app.handle_key(key('q')).is_empty());
        assert_eq!(app.dialog, Some(Dialog::Quit));
        assert!(app.handle_key(key('k')).is_empty(), "keep going");
        assert!(app.dialog.is_none());
        app.handle_key(key('q'));
        assert_eq!(app.handle_key(key('p')), vec![Effect::PauseAndLeave]);
        assert!(app.flash_now().is_some_and(|f| f
            .text
            .starts_with("leaving: pausing after the running step")));
        assert_eq!(app.mode(), Mode::Pausing);
    }

    #[test]
    fn quitting_after_the_run_leaves_at_once() {
        let mut app = fixtures::rolled_back().into_app(6);
        assert_eq!(app.handle_key(key('q')), vec![Effect::Quit]);
    }

    #[test]
    fn enter_promotes_at_a_gate_and_opens_output_otherwise() {
        let mut app = fixtures::gate().into_app(6);
        assert_eq!(
            app.handle_key(code(KeyCode::Enter)),
            vec![Effect::Send(Control::Promote)]
        );
        let mut app = fixtures::mid_rollout().into_app(6);
        app.selected = 1;
        assert!(app.handle_key(code(KeyCode::Enter)).is_empty());
        assert_eq!(
            app.output.as_ref().and_then(|o| o.node.clone()),
            Some("web-2".into())
        );
        assert!(app
            .output_lines()
            .iter()
            .any(|l| l.line.contains("112 packages")));
    }

    #[test]
    fn output_search_jumps_to_the_matching_line() {
        let mut app = fixtures::failed_node().into_app(6);
        app.selected = 2;
        app.perform(Action::OpenOutput);
        app.handle_key(key('/'));
        for c in "php-fpm".chars() {
            app.handle_key(key(c));
        }
        app.handle_key(code(KeyCode::Enter));
        let view = app.output.as_ref().expect("output open");
        assert!(app.output_lines()[view.top]
            .line
            .contains("php-fpm reloaded"));
        assert!(!view.follow);
    }

    #[test]
    fn arrows_move_the_selection_by_box_and_by_row() {
        let mut app = fixtures::mid_rollout().into_app(3);
        app.handle_key(code(KeyCode::Right));
        assert_eq!(app.selected, 1);
        app.handle_key(key('j'));
        assert_eq!(app.selected, 4);
        app.handle_key(key('j'));
        assert_eq!(app.selected, 4, "no row below: the selection stays");
        app.handle_key(key('h'));
        assert_eq!(app.selected, 3);
    }

    #[test]
    fn the_footer_only_offers_keys_that_work_now() {
        let app = fixtures::gate().into_app(6);
        let words: Vec<String> = keys::footer(&app, app.scope())
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert!(words.contains(&"promote".to_string()));
        assert!(!words.contains(&"output".to_string()));
        assert!(!words.contains(&"pause".to_string()), "no pause at a gate");
        let app = fixtures::rolled_back().into_app(6);
        let words: Vec<String> = keys::footer(&app, app.scope())
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert!(!words
            .iter()
            .any(|w| w == "roll back" || w == "abort" || w == "pause"));
    }

    #[test]
    fn every_key_in_the_footer_does_what_it_says() {
        // For each footer entry on the main screen, pressing its first key performs its action.
        let app = fixtures::mid_rollout().into_app(6);
        for b in keys::BINDINGS
            .iter()
            .filter(|b| b.scope == Scope::Main && b.footer.is_some())
        {
            if !keys::applies(&app, b.when) {
                continue;
            }
            let found = keys::lookup(&app, Scope::Main, b.keys[0]).map(|f| f.action);
            assert_eq!(found, Some(b.action), "key {} in the footer", b.shown);
        }
    }

    #[test]
    fn measured_release_and_rotation_drive_the_grid() {
        let mut s = Script::new();
        s.push(fixtures::started(2, false, false));
        s.preflight("web-1");
        s.rotation("web-1", false);
        s.state("web-1", crate::event::NodeState::Updating);
        s.release("web-1", "v1.1");
        let app = s.into_app(6);
        let n = &app.nodes[0];
        assert!(n.drained());
        assert_eq!(n.release.as_deref(), Some("v1.1"));
        assert_eq!(n.start_release.as_deref(), Some("v1.0"));
        assert_eq!(app.in_rotation(), 1);
    }

    #[test]
    fn a_per_node_check_shows_the_worst_node() {
        let app = fixtures::failed_node().into_app(6);
        let c = &app.checks[0];
        assert_eq!(c.status, CheckStatus::Fail);
        assert_eq!(c.value.as_deref(), Some("2/5 nodes, web-3 failing"));
    }

    #[test]
    fn a_journal_with_the_old_live_field_still_replays() {
        // Journals written before `Started.live` was dropped carry it; it is ignored.
        let mut started = serde_json::to_value(Event {
            seq: 1,
            at_ms: fixtures::T0,
            kind: fixtures::started(2, false, false),
        })
        .expect("an event serialises");
        started["live"] = serde_json::json!([{"node": "web-1", "release": "v1.0"}]);
        let line = serde_json::to_string(&started).expect("json");
        let event: Event = serde_json::from_str(&line).expect("an old journal line parses");
        let mut app = App::new(Theme::default_theme(), Glyphs::UNICODE);
        app.apply(&event);
        assert_eq!(app.nodes.len(), 2);
        assert_eq!(app.run.as_ref().map(|r| r.release.as_str()), Some("v1.1"));
    }

    #[test]
    fn replay_never_sends_controls() {
        let mut app = fixtures::mid_rollout().into_app(6);
        app.replay = true;
        assert_eq!(app.handle_key(key('p')), vec![Effect::ReplayPause]);
        assert!(app.handle_key(key('R')).is_empty());
        assert!(app.handle_key(key('a')).is_empty());
        assert_eq!(app.handle_key(key('q')), vec![Effect::Quit]);
    }
}
