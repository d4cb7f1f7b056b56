//! The console's state: the run as its events told it (`RunState`, changed only by
//! [`App::apply`], the same pure reducer that replays a journal) and, apart from it, what only the
//! screen cares about: selection, focus, the flash line, dialogs, the output view and its search,
//! overlays, the theme, the clock a frame is drawn at, and the controls sent but not yet answered.
//!
//! Everything here is plain data; nothing reads the clock, the terminal or the network, and
//! nothing here handles a key (that is `input.rs`) or draws (the views). A key press never
//! changes the run state: it changes screen state and asks the run loop to send a [`Control`].

use crate::event::{CheckStatus, Control, Event, EventKind, NodeState, Outcome, RunKind};

use super::model::{CheckView, NodeView, OutputLine, Pause, PhaseStatus, RunState};
use super::theme::{Glyphs, Theme};

/// How long a flash message stays on screen.
pub(crate) const FLASH_MS: i64 = 6_000;

/// What the header's pill says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Ready,
    Deploying,
    Pausing,
    Paused,
    /// Step mode: the next step of each node in flight runs, then the run is paused again.
    Stepping,
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
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::Ready => "READY",
            Mode::Deploying => "DEPLOYING",
            Mode::Pausing => "PAUSING…",
            Mode::Paused => "PAUSED",
            Mode::Stepping => "STEPPING",
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
    pub(crate) fn style_key(self) -> &'static str {
        match self {
            Mode::Ready => "mode_ready",
            Mode::Deploying => "mode_deploying",
            Mode::Pausing | Mode::Stepping => "mode_pausing",
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
pub(crate) enum Focus {
    Grid,
    Phases,
    Checklist,
    Log,
}

/// A flash message's level: the engine's own [`Level`](crate::event::Level), so a notice keeps
/// its level.
pub(crate) use crate::event::Level as FlashLevel;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flash {
    pub level: FlashLevel,
    pub text: String,
    pub until_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfirmKind {
    Rollback,
    Abort,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dialog {
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
pub(crate) struct OutputView {
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

/// The whole console state: the run state, and the screen state around it.
pub struct App {
    /// What the events said; changed only by [`App::apply`] (read it with [`App::run`]).
    run: RunState,
    // --- screen only
    pub(crate) now_ms: i64,
    pub(crate) frame: usize,
    pub(crate) selected: usize,
    pub(crate) selected_check: usize,
    pub(crate) focus: Focus,
    pub(crate) flash: Option<Flash>,
    pub(crate) dialog: Option<Dialog>,
    pub(crate) output: Option<OutputView>,
    pub(crate) show_help: bool,
    pub(crate) show_log: bool,
    pub(crate) log_filter: Option<String>,
    pub(crate) theme: Theme,
    pub(crate) glyphs: Glyphs,
    /// Playing a journal: controls are not sent anywhere.
    pub(crate) replay: bool,
    pub(crate) replay_paused: bool,
    pub(crate) replay_speed: f64,
    /// A control sent but not yet answered by an event (shown optimistically).
    pub(crate) pending: Option<Control>,
    /// Manual checklist items the operator ticked that the engine has not confirmed yet (shown
    /// as passed meanwhile).
    pub(crate) ticked: Vec<String>,
    /// Watching a run another console drives (whose it is, in words): read-only.
    pub(crate) watch: Option<String>,
    /// Opened from the home screen: at the run's end, `esc` goes back there.
    pub(crate) from_home: bool,
}

impl App {
    pub fn new(theme: Theme, glyphs: Glyphs) -> App {
        App {
            run: RunState::new(),
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
            replay: false,
            replay_paused: false,
            replay_speed: 1.0,
            pending: None,
            ticked: Vec::new(),
            watch: None,
            from_home: false,
        }
    }

    /// Fold one engine event into the run state, then let the screen follow it: show what it
    /// says on the flash line, forget a control it answers, reset the selection for a new run,
    /// close a dialog the run's end made moot. Pure: the same events give the same screen.
    pub fn apply(&mut self, event: &Event) {
        let mut news = self.run.apply(event);
        if let (Some(n), true) = (news.as_mut(), self.watch.is_some()) {
            // A watcher's keys do nothing to the run: leave out what they would do.
            if let Some((said, _keys)) = n.text.split_once(" — ") {
                n.text = said.to_string();
            }
        }
        if let Some(n) = news {
            self.flash_at(n.level, n.text, event.at_ms);
        }
        match &event.kind {
            EventKind::Started {
                who,
                from_host,
                kind,
                release,
                ..
            } => {
                if self.watch.is_some() {
                    let what = match kind {
                        RunKind::Deploy => "deployment",
                        RunKind::Rollback => "rollback",
                    };
                    self.watch = Some(format!("{who}@{from_host}'s {what} of {release}"));
                }
                self.selected = 0;
                self.selected_check = self.run.checklist_order().first().copied().unwrap_or(0);
            }
            EventKind::Check { name, .. } => self.ticked.retain(|t| t != name),
            EventKind::Gate { .. }
            | EventKind::Promoted
            | EventKind::Pausing
            | EventKind::Paused
            | EventKind::Stepping
            | EventKind::Resumed
            | EventKind::RollbackStarted { .. }
            | EventKind::Aborting { .. } => self.pending = None,
            EventKind::Finished { .. } => {
                self.pending = None;
                self.dialog = None;
            }
            _ => {}
        }
    }

    /// The run as its events told it.
    pub(crate) fn run(&self) -> &RunState {
        &self.run
    }

    // ------------------------------------------------------------------ set up a screen
    // For the snapshot tests, the screenshots and the benchmark, which build a screen from
    // events and then choose what it shows.

    /// Select the node at this position in the grid.
    pub fn select(&mut self, node: usize) {
        self.selected = node;
    }

    /// The nodes, in the grid's order.
    pub fn nodes(&self) -> &[NodeView] {
        &self.run.nodes
    }

    pub fn theme(&self) -> &Theme {
        &self.theme
    }

    pub fn set_theme(&mut self, theme: Theme) {
        self.theme = theme;
    }

    pub fn set_glyphs(&mut self, glyphs: Glyphs) {
        self.glyphs = glyphs;
    }

    /// Show or hide the log pane.
    pub fn show_log(&mut self, shown: bool) {
        self.show_log = shown;
    }

    /// The wall clock a frame is drawn at, and the spinners' frame.
    pub fn set_clock(&mut self, now_ms: i64, frame: usize) {
        self.now_ms = now_ms;
        self.frame = frame;
    }

    /// Move the spinners on by one frame.
    pub fn next_frame(&mut self) {
        self.frame = self.frame.wrapping_add(1);
    }

    /// How many events have been folded in.
    pub fn events_seen(&self) -> u64 {
        self.run.events_seen
    }

    // ------------------------------------------------------------------ derived

    /// The run has ended.
    pub(crate) fn finished(&self) -> bool {
        self.run.finished()
    }

    /// What the header's pill says: the run's state, with a control sent but not yet answered
    /// shown as if it had been (pressing `p` reads PAUSING… at once).
    pub(crate) fn mode(&self) -> Mode {
        let run = &self.run;
        if let Some(o) = run.outcome {
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
        if run.info.is_none() {
            return Mode::Ready;
        }
        if run.aborting || self.pending == Some(Control::Abort) {
            return Mode::Aborting;
        }
        match run.pause {
            Pause::Paused => return Mode::Paused,
            Pause::Pausing => return Mode::Pausing,
            Pause::Stepping => return Mode::Stepping,
            Pause::Running => {}
        }
        if self.pending == Some(Control::Pause) {
            return Mode::Pausing;
        }
        if run.rolling_back || self.pending == Some(Control::Rollback) {
            return Mode::RollingBack;
        }
        let failed = run.nodes.iter().any(|n| n.state == NodeState::Failed);
        if failed {
            return Mode::Failed;
        }
        if run.gate.is_some() {
            return Mode::Waiting;
        }
        let moving = run.batch.is_some() || run.nodes.iter().any(|n| n.state != NodeState::Waiting);
        if moving {
            Mode::Deploying
        } else {
            Mode::Ready
        }
    }

    pub(crate) fn is_paused_or_pausing(&self) -> bool {
        matches!(self.mode(), Mode::Paused | Mode::Pausing | Mode::Stepping)
    }

    pub(crate) fn can_pause(&self) -> bool {
        !self.replay
            && self.run.info.is_some()
            && !self.finished()
            && !self.run.aborting
            && !self.run.rolling_back
            && matches!(
                self.mode(),
                Mode::Deploying | Mode::Paused | Mode::Pausing | Mode::Stepping | Mode::Ready
            )
            && !self.watching()
    }

    /// Step mode: paused with nothing running, a live run of this console.
    pub(crate) fn can_step(&self) -> bool {
        !self.replay
            && !self.watching()
            && !self.finished()
            && self.mode() == Mode::Paused
            && self.pending.is_none()
    }

    /// This console watches a run another console drives: its keys send nothing.
    pub(crate) fn watching(&self) -> bool {
        self.watch.is_some()
    }

    pub(crate) fn can_rollback(&self) -> bool {
        !self.replay
            && !self.watching()
            && !self.finished()
            && !self.run.aborting
            && !self.run.rolling_back
            && self
                .run
                .info
                .as_ref()
                .is_some_and(|r| r.kind == RunKind::Deploy)
    }

    pub(crate) fn can_abort(&self) -> bool {
        !self.replay
            && !self.watching()
            && self.run.info.is_some()
            && !self.finished()
            && !self.run.aborting
    }

    /// A checklist item's status and value as shown: the engine's, except that a manual item
    /// the operator ticked reads as passed until the engine's confirmation arrives.
    pub(crate) fn check_shown<'a>(&self, c: &'a CheckView) -> (CheckStatus, Option<&'a str>) {
        if c.info.manual && self.ticked.contains(&c.info.name) {
            (CheckStatus::Pass, Some("confirmed"))
        } else {
            (c.status, c.value.as_deref())
        }
    }

    pub(crate) fn selected_check_needs_tick(&self) -> bool {
        self.run.checks.get(self.selected_check).is_some_and(|c| {
            c.info.manual && self.check_shown(c).0 == CheckStatus::NeedsConfirmation && !self.replay
        })
    }

    pub(crate) fn selected_node(&self) -> Option<&NodeView> {
        self.run.nodes.get(self.selected)
    }

    /// The output lines the output view shows: the selected node's, or this machine's.
    pub(crate) fn output_lines(&self) -> &[OutputLine] {
        match self.output.as_ref().and_then(|v| v.node.as_deref()) {
            Some(n) => self.run.node(n).map(|n| n.output.as_slice()).unwrap_or(&[]),
            None => &self.run.local_output,
        }
    }

    /// The screen's clock: the wall clock, but never before the last event seen (a replay, or
    /// an event stamped a little ahead of this machine's clock).
    pub(crate) fn now(&self) -> i64 {
        self.now_ms.max(self.run.last_event_ms)
    }

    pub(crate) fn elapsed_ms(&self) -> Option<i64> {
        let start = self.run.info.as_ref()?.started_ms;
        let end = self.run.finished_ms.unwrap_or(self.now());
        Some((end - start).max(0))
    }

    pub(crate) fn flash_now(&self) -> Option<&Flash> {
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

    /// Show a line on the flash line, from now.
    pub(crate) fn flash(&mut self, level: FlashLevel, text: impl Into<String>) {
        let at = self.now();
        self.flash_at(level, text.into(), at);
    }

    /// Anything animating (a spinner) that needs the slow tick to redraw.
    pub(crate) fn animating(&self) -> bool {
        !self.finished()
            && (self.run.nodes.iter().any(|n| n.phase.is_some())
                || self
                    .run
                    .local
                    .iter()
                    .any(|p| p.status == PhaseStatus::Running)
                || matches!(self.mode(), Mode::Pausing | Mode::Stepping | Mode::Aborting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;
    use crate::ui::fixtures;

    fn event(kind: EventKind) -> Event {
        Event {
            seq: 99,
            at_ms: fixtures::T0 + 60_000,
            kind,
        }
    }

    #[test]
    fn the_runs_end_closes_a_dialog_and_answers_what_was_asked() {
        let mut app = fixtures::mid_rollout().into_app();
        app.dialog = Some(Dialog::Quit);
        app.pending = Some(Control::Pause);
        assert_eq!(app.mode(), Mode::Pausing, "shown as asked");
        app.apply(&event(EventKind::Finished {
            outcome: Outcome::Aborted,
            message: "aborted by the operator".into(),
            nodes: vec![],
        }));
        assert_eq!(app.dialog, None);
        assert_eq!(app.pending, None);
        assert_eq!(app.mode(), Mode::Aborted);
        let flash = app.flash_now().expect("the end is on the flash line");
        assert_eq!(flash.text, "aborted by the operator");
        assert_eq!(flash.level, FlashLevel::Error);
    }

    #[test]
    fn the_events_news_goes_to_the_flash_line_for_six_seconds() {
        let mut app = fixtures::mid_rollout().into_app();
        let ev = event(EventKind::Paused);
        app.apply(&ev);
        let flash = app.flash_now().expect("a flash");
        assert!(flash.text.starts_with("paused: no new step will start"));
        assert_eq!(flash.until_ms, ev.at_ms + FLASH_MS);
        app.now_ms = ev.at_ms + FLASH_MS;
        assert!(app.flash_now().is_none(), "gone after FLASH_MS");
    }

    #[test]
    fn a_new_run_starts_on_the_first_node_and_the_first_checklist_item() {
        let mut app = fixtures::checklist_mixed().into_app();
        app.selected = 3;
        app.selected_check = 9;
        app.apply(&event(fixtures::started(3, false, true)));
        assert_eq!(app.selected, 0);
        assert_eq!(
            Some(app.selected_check),
            app.run().checklist_order().first().copied()
        );
    }

    #[test]
    fn the_screen_clock_never_runs_behind_the_last_event() {
        let mut app = fixtures::mid_rollout().into_app();
        let last = app.run().last_event_ms;
        app.now_ms = last - 5_000;
        assert_eq!(app.now(), last);
        app.now_ms = last + 5_000;
        assert_eq!(app.now(), last + 5_000);
    }
}
