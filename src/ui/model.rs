//! The run as the console knows it: a pure reducer over engine [`Event`]s
//! (`RunState::apply`) into what every node, phase and checklist item is doing, as the engine
//! measured and reported it. The same reducer replays a journal into the very same state.
//!
//! Only events change it: nothing here knows the screen (selection, focus, dialogs, the flash
//! line), the clock, the terminal or the network. What an event should tell the operator comes
//! back as `News` for the screen to show.

use std::collections::{BTreeMap, HashMap};

use crate::event::{
    CheckInfo, CheckStatus, Event, EventKind, Level, NodeState, Outcome, RunKind, StepResult,
    Stream,
};

/// Lines of output kept per node (older lines are dropped, newest kept).
pub(crate) const OUTPUT_KEEP: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhaseStatus {
    Pending,
    Running,
    /// The step ended, this way.
    Ended(StepResult),
}

impl PhaseStatus {
    /// The step ended badly (failed, timed out or was killed).
    pub(crate) fn failed(self) -> bool {
        matches!(self, PhaseStatus::Ended(r) if r.failed())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PhaseView {
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
pub(crate) struct OutputLine {
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
    pub(crate) phases: Vec<PhaseView>,
    /// The phase running now, if any.
    pub phase: Option<String>,
    pub(crate) output: Vec<OutputLine>,
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
    pub(crate) fn in_flight(&self) -> bool {
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
    pub(crate) fn drained(&self) -> bool {
        self.in_rotation == Some(false)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CheckView {
    pub info: CheckInfo,
    pub status: CheckStatus,
    pub value: Option<String>,
    /// Per-node results of a per-node check.
    pub nodes: BTreeMap<String, (CheckStatus, Option<String>)>,
}

/// How serious a verdict of the rollback tree is: `rollback` an error, `alert` and
/// `unconfirmed` (manual items left open) a warning, anything else news.
pub(crate) fn verdict_level(verdict: &str) -> Level {
    match verdict {
        "rollback" => Level::Error,
        "alert" | "unconfirmed" => Level::Warn,
        _ => Level::Info,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunInfo {
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

/// What an event should tell the operator: a line for the flash, at the event's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct News {
    pub level: Level,
    pub text: String,
}

impl News {
    fn new(level: Level, text: String) -> News {
        News { level, text }
    }
}

/// The checklist window a check belongs to, in the seed's order: 0 immediate, 1 short-term,
/// 2 long-term (an unknown name counts as immediate).
pub(crate) fn window_index(window: &str) -> usize {
    match window {
        "immediate" => 0,
        "short" | "short-term" | "short_term" => 1,
        "long" | "long-term" | "long_term" => 2,
        _ => 0,
    }
}

/// Where the engine's pause stands, by its own events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    Running,
    Pausing,
    Paused,
    /// Step mode: one step per node in flight is running; paused again after it.
    Stepping,
}

/// Everything the engine's events said about the run. Changed only by [`RunState::apply`].
#[derive(Debug, Clone)]
pub(crate) struct RunState {
    /// What the run is (from its `Started` event); `None` before it starts.
    pub info: Option<RunInfo>,
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
    pub pause: Pause,
    /// Steps asked for in step mode (`s`), for the header.
    pub steps_taken: u32,
    pub rolling_back: bool,
    pub aborting: bool,
    pub outcome: Option<Outcome>,
    pub finish_message: Option<String>,
    /// Where the run's time went (its last but one event).
    pub timing: Option<crate::event::TimeReport>,
    pub finished_ms: Option<i64>,
    pub last_event_ms: i64,
    pub events_seen: u64,
}

impl Default for RunState {
    fn default() -> Self {
        RunState::new()
    }
}

impl RunState {
    pub(crate) fn new() -> RunState {
        RunState {
            info: None,
            nodes: Vec::new(),
            index: HashMap::new(),
            checks: Vec::new(),
            local: Vec::new(),
            local_output: Vec::new(),
            batch: None,
            steps_taken: 0,
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
            timing: None,
            finished_ms: None,
            last_event_ms: 0,
            events_seen: 0,
        }
    }

    /// Fold one engine event into the run state, and say what the operator should be told of
    /// it (a failure, a gate, a pause, the end...). Pure: the same events give the same state.
    pub(crate) fn apply(&mut self, event: &Event) -> Option<News> {
        let mut news = None;
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
                self.info = Some(RunInfo {
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
                    news = Some(News::new(Level::Error, text));
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
                    news = Some(News::new(Level::Error, text));
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
                    news = Some(News::new(Level::Error, text));
                }
            }
            EventKind::Gate { reason, until_ms } => {
                self.gate = Some(reason.clone());
                self.gate_until = *until_ms;
                news = Some(News::new(
                    Level::Warn,
                    format!("waiting: {reason} — enter to promote, R to roll back"),
                ));
            }
            EventKind::Promoted => {
                self.gate = None;
                news = Some(News::new(Level::Info, "promoted: going on".to_string()));
            }
            EventKind::Pausing => {
                self.pause = Pause::Pausing;
            }
            EventKind::Paused => {
                self.pause = Pause::Paused;
                news = Some(News::new(
                    Level::Info,
                    "paused: no new step will start — p to resume, s for one step".to_string(),
                ));
            }
            EventKind::Stepping => {
                self.pause = Pause::Stepping;
                self.steps_taken += 1;
                news = Some(News::new(
                    Level::Info,
                    "step: each node in flight runs its next step, then the run pauses again"
                        .to_string(),
                ));
            }
            EventKind::Resumed => {
                self.pause = Pause::Running;
                news = Some(News::new(Level::Info, "resumed".to_string()));
            }
            EventKind::RollbackStarted { reason, nodes } => {
                self.rolling_back = true;
                self.gate = None;
                self.pause = Pause::Running;
                let text = if nodes.is_empty() {
                    format!("rolling back ({reason}): no node was switched")
                } else {
                    format!("rolling back ({reason}): {}", nodes.join(", "))
                };
                news = Some(News::new(Level::Warn, text));
            }
            EventKind::Aborting { reason } => {
                self.aborting = true;
                news = Some(News::new(Level::Warn, format!("aborting: {reason}")));
            }
            EventKind::Notice { level, message } => {
                news = Some(News::new(*level, message.clone()));
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
                news = Some(News::new(
                    verdict_level(verdict),
                    format!("checklist decision: {verdict} — {reason}"),
                ));
            }
            EventKind::Timing(t) => self.timing = Some(t.clone()),
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
                self.pause = Pause::Running;
                for nr in nodes {
                    if let Some(n) = self.node_mut(&nr.node) {
                        n.release = nr.release.clone();
                    }
                }
                let level = match outcome {
                    Outcome::Deployed => Level::Info,
                    Outcome::RolledBack => Level::Warn,
                    _ => Level::Error,
                };
                let word = outcome.word();
                let text = if message.starts_with(word) {
                    message.clone()
                } else {
                    format!("{word}: {message}")
                };
                news = Some(News::new(level, text));
            }
        }
        news
    }

    pub(crate) fn node(&self, name: &str) -> Option<&NodeView> {
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

    /// The run has ended (its `Finished` event was seen).
    pub(crate) fn finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// Nodes in rotation, by the balancer's answer (unknown counts as in rotation).
    pub(crate) fn in_rotation(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.in_rotation != Some(false))
            .count()
    }

    /// The release a node is heading to while in flight.
    pub(crate) fn target_release(&self, node: &NodeView) -> Option<String> {
        let run = self.info.as_ref()?;
        if node.state == NodeState::RollingBack
            || (self.rolling_back && run.kind == RunKind::Deploy)
        {
            return node.start_release.clone();
        }
        Some(run.release.clone())
    }

    /// The checklist's items in display order (by window), as positions into `checks`.
    pub(crate) fn checklist_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.checks.len()).collect();
        order.sort_by_key(|&i| window_index(&self.checks[i].info.window));
        order
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

/// What a frame laid out that key handling needs (television's render task sends its `UiState`
/// back the same way): returned by [`draw`](super::view::draw), kept by the console loop and handed to
/// [`handle_key`](super::input::handle_key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drawn {
    /// How many nodes a row of the grid holds; `None` when no grid was drawn (the terminal is
    /// too small).
    pub(crate) grid_columns: Option<usize>,
}

impl Drawn {
    /// How many nodes `↑`/`↓` move the selection by: a row of the grid (one before any grid was
    /// drawn).
    pub(crate) fn grid_columns(&self) -> usize {
        self.grid_columns.unwrap_or(1)
    }

    /// This frame's layout, keeping what an earlier frame knew where this one drew less (a
    /// too-small terminal draws no grid: the last grid's rows still hold).
    pub(crate) fn or(self, earlier: Drawn) -> Drawn {
        Drawn {
            grid_columns: self.grid_columns.or(earlier.grid_columns),
        }
    }
}

/// `00:42`, `1:02:03`.
pub(crate) fn clock(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Which way the log pane scrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogScroll {
    Older,
    Newer,
    Newest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{self, Script};

    /// The run state after a scene's events.
    fn replay(s: &Script) -> RunState {
        let mut run = RunState::new();
        for e in &s.events {
            run.apply(e);
        }
        run
    }

    #[test]
    fn measured_release_and_rotation_drive_the_grid() {
        let mut s = Script::new();
        s.push(fixtures::started(2, false, false));
        s.preflight("web-1");
        s.rotation("web-1", false);
        s.state("web-1", NodeState::Updating);
        s.release("web-1", "v1.1");
        let run = replay(&s);
        let n = &run.nodes[0];
        assert!(n.drained());
        assert_eq!(n.release.as_deref(), Some("v1.1"));
        assert_eq!(n.start_release.as_deref(), Some("v1.0"));
        assert_eq!(run.in_rotation(), 1);
    }

    #[test]
    fn a_per_node_check_shows_the_worst_node() {
        let run = replay(&fixtures::failed_node());
        let c = &run.checks[0];
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
        let mut run = RunState::new();
        run.apply(&event);
        assert_eq!(run.nodes.len(), 2);
        assert_eq!(run.info.as_ref().map(|r| r.release.as_str()), Some("v1.1"));
    }

    #[test]
    fn the_checklist_reads_window_by_window_whatever_the_declared_order() {
        let mut started = fixtures::started(1, false, true);
        if let EventKind::Started { checks, .. } = &mut started {
            checks.reverse();
        }
        let mut s = Script::new();
        s.push(started);
        let run = replay(&s);
        let order = run.checklist_order();
        assert_eq!(order.len(), run.checks.len());
        let windows: Vec<usize> = order
            .iter()
            .map(|&i| window_index(&run.checks[i].info.window))
            .collect();
        assert!(windows.windows(2).all(|w| w[0] <= w[1]), "{windows:?}");
        assert_eq!(windows.first(), Some(&0), "immediate first");
        assert_eq!(windows.last(), Some(&2), "long-term last");
    }

    #[test]
    fn each_event_says_what_the_operator_should_read() {
        let mut s = Script::new();
        s.push(fixtures::started(2, false, false));
        s.step(
            "web-1",
            "health",
            StepResult::TimedOut,
            30_000,
            Some("GET /health answered 503 for 30s"),
        );
        let mut run = replay(&s);
        let at = |kind: EventKind| Event {
            seq: 99,
            at_ms: fixtures::T0,
            kind,
        };
        let news = run.apply(&at(EventKind::NodeState {
            node: "web-1".into(),
            state: NodeState::Failed,
        }));
        assert_eq!(
            news,
            Some(News::new(
                Level::Error,
                "web-1 failed: health timed out: no answer after 30s".into()
            ))
        );
        let news = run.apply(&at(EventKind::Gate {
            reason: "after batch 1 of 2".into(),
            until_ms: None,
        }));
        assert_eq!(news.map(|n| n.level), Some(Level::Warn));
        // Measurements are shown where they belong, not on the flash line.
        let news = run.apply(&at(EventKind::Rotation {
            node: "web-2".into(),
            in_rotation: false,
        }));
        assert_eq!(news, None);
        assert_eq!(run.in_rotation(), 1);
    }

    #[test]
    fn a_rollback_heads_switched_nodes_back_to_where_they_started() {
        let run = replay(&fixtures::rolling_back());
        let info = run.info.as_ref().expect("started");
        for n in run.nodes.iter().filter(|n| n.in_flight()) {
            assert_eq!(run.target_release(n), n.start_release.clone(), "{}", n.name);
        }
        let mid = replay(&fixtures::mid_rollout());
        let n = mid
            .nodes
            .iter()
            .find(|n| n.in_flight())
            .expect("a node in flight");
        assert_eq!(mid.target_release(n), Some(info.release.clone()));
    }
}
