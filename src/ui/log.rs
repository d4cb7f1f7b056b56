//! The log pane: engine and node events as timestamped lines (tui-logger), filterable to one
//! node, shown or hidden with `l`.
//!
//! Each event is written under the node it concerns (or `deckhand` when it concerns the run),
//! so the per-node filter is tui-logger's own target filter. While the console runs it is also
//! the process's `log` logger, so nothing the program logs scribbles over the screen. It never
//! writes to the terminal itself.

use log::{Level, LevelFilter, Log, Metadata, Record};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Widget};
use tui_logger::{TuiLoggerWidget, TuiWidgetState};

use crate::event::{Event, EventKind, Level as EventLevel};

use super::app::App;
use super::model::{verdict_level, LogScroll};

const RUN_TARGET: &str = "deckhand";

/// Forwards every `log` record to tui-logger's buffer (no background thread: the pane moves
/// records into view when it draws).
struct PaneLogger {
    drain: tui_logger::Drain,
}

impl Log for PaneLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= Level::Info
    }
    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            self.drain.log(record);
        }
    }
    fn flush(&self) {}
}

/// Make the log pane the process's logger. Harmless when a logger is already installed: the
/// pane still receives every event through [`LogPane::record`].
pub(crate) fn install() {
    tui_logger::set_default_level(LevelFilter::Info);
    let logger = PaneLogger {
        drain: tui_logger::Drain::new(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

pub struct LogPane {
    drain: tui_logger::Drain,
    state: TuiWidgetState,
}

impl Default for LogPane {
    fn default() -> Self {
        LogPane::new()
    }
}

impl LogPane {
    pub fn new() -> LogPane {
        LogPane {
            drain: tui_logger::Drain::new(),
            state: TuiWidgetState::new().set_default_display_level(LevelFilter::Info),
        }
    }

    /// Show only one node's lines (`None`: every line).
    pub(crate) fn set_filter(&mut self, node: Option<&str>) {
        self.state = match node {
            Some(n) => TuiWidgetState::new()
                .set_default_display_level(LevelFilter::Off)
                .set_level_for_target(n, LevelFilter::Info),
            None => TuiWidgetState::new().set_default_display_level(LevelFilter::Info),
        };
    }

    /// Page through the history (tui-logger's page mode), or back to the newest lines.
    pub(crate) fn scroll(&self, dir: LogScroll) {
        use tui_logger::TuiWidgetEvent as W;
        self.state.transition(match dir {
            LogScroll::Older => W::PrevPageKey,
            LogScroll::Newer => W::NextPageKey,
            LogScroll::Newest => W::EscapeKey,
        });
    }

    /// Write one engine event as a log line under its node.
    pub fn record(&self, event: &Event) {
        let Some((target, level, text)) = describe(event) else {
            return;
        };
        self.drain.log(
            &Record::builder()
                .target(&target)
                .level(level)
                .args(format_args!("{text}"))
                .build(),
        );
    }

    pub(crate) fn render(&self, app: &App, area: Rect, buf: &mut Buffer, focused: bool) {
        tui_logger::move_events();
        let th = &app.theme;
        let border = if focused {
            th.get("border_focus")
        } else {
            th.get("border")
        };
        let title = match &app.log_filter {
            Some(n) => format!(" Log {} {n} only (f: all) ", app.glyphs.dot),
            None => format!(" Log {} every node (f: selected only) ", app.glyphs.dot),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_set(app.glyphs.border)
            .border_style(border)
            .title(Span::styled(title, th.get("title")));
        TuiLoggerWidget::default()
            .block(block)
            .output_separator(' ')
            .output_timestamp(Some("%H:%M:%S".into()))
            .output_level(None)
            .output_target(true)
            .output_file(false)
            .output_line(false)
            .style(th.get("text"))
            .style_warn(th.get("flash_warn"))
            .style_error(th.get("flash_error"))
            .state(&self.state)
            .render(area, buf);
    }
}

fn log_level(level: EventLevel) -> Level {
    match level {
        EventLevel::Info => Level::Info,
        EventLevel::Warn => Level::Warn,
        EventLevel::Error => Level::Error,
    }
}

/// The log line for an event: target (node or run), level and text. `None` for events that
/// add nothing a reader of the log needs.
pub(crate) fn describe(event: &Event) -> Option<(String, Level, String)> {
    let run = RUN_TARGET.to_string();
    let at_node = |n: &Option<String>| n.clone().unwrap_or_else(|| run.clone());
    Some(match &event.kind {
        EventKind::Started {
            app,
            env,
            release,
            strategy,
            who,
            from_host,
            nodes,
            ..
        } => (
            run.clone(),
            Level::Info,
            format!(
                "started: {app} {release} to {env} ({strategy}, {}) by {who}@{from_host}",
                crate::util::count(nodes.len(), "node", "nodes")
            ),
        ),
        EventKind::Preflight {
            node,
            ok,
            live_release,
            message,
            ..
        } => (
            node.clone(),
            if *ok { Level::Info } else { Level::Error },
            format!(
                "preflight {}: live {}{}",
                if *ok { "ok" } else { "failed" },
                live_release.as_deref().unwrap_or("none"),
                message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        ),
        EventKind::Locked { .. } => (run.clone(), Level::Info, "lock taken".into()),
        EventKind::Unlocked { .. } => (run.clone(), Level::Info, "lock released".into()),
        EventKind::BatchStarted { index, nodes } => (
            run.clone(),
            Level::Info,
            format!("batch {}: {}", index + 1, nodes.join(", ")),
        ),
        EventKind::NodeState { node, state } => (
            node.clone(),
            Level::Info,
            format!("state: {}", state.word()),
        ),
        EventKind::NodeRelease { node, release } => (
            node.clone(),
            Level::Info,
            format!("current -> {}", release.as_deref().unwrap_or("none")),
        ),
        EventKind::Rotation { node, in_rotation } => (
            node.clone(),
            Level::Info,
            if *in_rotation {
                "in rotation"
            } else {
                "drained"
            }
            .into(),
        ),
        EventKind::StepStarted { node, phase, .. } => {
            (at_node(node), Level::Info, format!("{phase}: started"))
        }
        EventKind::Output {
            node, phase, line, ..
        } => (at_node(node), Level::Info, format!("{phase} | {line}")),
        EventKind::StepFinished {
            node,
            phase,
            result,
            duration_ms,
            message,
        } => (
            at_node(node),
            if result.failed() {
                Level::Error
            } else {
                Level::Info
            },
            format!(
                "{phase}: {} in {}{}",
                result.word(),
                super::phases::duration(*duration_ms),
                message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        ),
        EventKind::Gate { reason, .. } => (run.clone(), Level::Warn, format!("gate: {reason}")),
        EventKind::Groups { live, idle } => (
            run.clone(),
            Level::Info,
            format!(
                "groups: {} serves, {idle} gets the release",
                live.as_deref().unwrap_or("none")
            ),
        ),
        EventKind::Promoted => (run.clone(), Level::Info, "promoted".into()),
        EventKind::Pausing => (run.clone(), Level::Info, "pausing".into()),
        EventKind::Paused => (run.clone(), Level::Info, "paused".into()),
        EventKind::Stepping => (
            run.clone(),
            Level::Info,
            "step: the next step of each node".into(),
        ),
        EventKind::Resumed => (run.clone(), Level::Info, "resumed".into()),
        EventKind::RollbackStarted { reason, nodes } => (
            run.clone(),
            Level::Warn,
            format!("rollback: {reason} ({})", nodes.join(", ")),
        ),
        EventKind::Aborting { reason } => (run.clone(), Level::Warn, format!("aborting: {reason}")),
        EventKind::Notice { level, message } => (run.clone(), log_level(*level), message.clone()),
        EventKind::Check {
            name,
            node,
            status,
            value,
        } => (
            at_node(node),
            Level::Info,
            format!(
                "check {name}: {}{}",
                status.word(),
                value
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            ),
        ),
        EventKind::Monitoring { window, ends_at_ms } => (
            run.clone(),
            Level::Info,
            format!(
                "checklist: watching the {window} window for {}",
                super::phases::duration((ends_at_ms - event.at_ms).max(0) as u64)
            ),
        ),
        EventKind::Decision { verdict, reason } => (
            run.clone(),
            log_level(verdict_level(verdict)),
            format!("checklist decision: {verdict} ({reason})"),
        ),
        EventKind::Timing(t) => (run, Level::Info, format!("time: {}", t.summary())),
        EventKind::Finished {
            outcome, message, ..
        } => (
            run,
            if *outcome == crate::event::Outcome::Deployed {
                Level::Info
            } else {
                Level::Warn
            },
            format!("finished: {}: {message}", outcome.word()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CheckStatus, NodeState, StepResult};

    fn text(kind: EventKind) -> String {
        let event = Event {
            seq: 1,
            at_ms: 0,
            kind,
        };
        describe(&event).expect("a log line").2
    }

    #[test]
    fn log_lines_use_the_operators_words() {
        let step = |result| {
            text(EventKind::StepFinished {
                node: Some("web-3".into()),
                phase: "health".into(),
                result,
                duration_ms: 30_000,
                message: None,
            })
        };
        assert_eq!(step(StepResult::TimedOut), "health: timed out in 30s");
        assert_eq!(step(StepResult::Ok), "health: ok in 30s");
        let state = |state| {
            text(EventKind::NodeState {
                node: "web-3".into(),
                state,
            })
        };
        assert_eq!(state(NodeState::RollingBack), "state: rolling back");
        assert_eq!(state(NodeState::RolledBack), "state: rolled back");
        assert_eq!(state(NodeState::Checking), "state: checking health");
        let check = text(EventKind::Check {
            name: "All critical paths tested".into(),
            node: None,
            status: CheckStatus::NeedsConfirmation,
            value: None,
        });
        assert_eq!(check, "check All critical paths tested: needs confirmation");
    }

    #[test]
    fn the_start_line_counts_in_words() {
        let one = text(crate::ui::fixtures::started(1, false, false));
        assert!(
            one.contains("(rolling, 1 node) by maria@ops-laptop"),
            "{one}"
        );
    }
}
