//! Headless output: one line per event for people reading CI logs, or one JSON object per line
//! (`--output json`) for machines. Reads events only; decides nothing.

use std::io::Write;

use crate::event::*;
use crate::util::{count, format_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Printer<W: Write> {
    out: W,
    format: Format,
    batches: usize,
}

fn clock(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "--:--:--".into())
}

/// A step's result, upper-cased when it failed or timed out so that it stands out in a CI log.
fn result_word(r: StepResult) -> String {
    match r {
        StepResult::Failed | StepResult::TimedOut => r.word().to_uppercase(),
        _ => r.word().to_string(),
    }
}

/// A node's state, upper-cased when it failed.
fn state_word(s: NodeState) -> String {
    match s {
        NodeState::Failed => s.word().to_uppercase(),
        _ => s.word().to_string(),
    }
}

/// A checklist result, upper-cased when it failed.
fn check_word(s: CheckStatus) -> String {
    match s {
        CheckStatus::Fail => s.word().to_uppercase(),
        _ => s.word().to_string(),
    }
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: Format) -> Self {
        Printer {
            out,
            format,
            batches: 0,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Print one event. Errors writing (a closed pipe) are ignored: the run must go on.
    pub fn print(&mut self, e: &Event) {
        if self.format == Format::Json {
            if let Ok(line) = serde_json::to_string(e) {
                let _ = writeln!(self.out, "{line}");
            }
            let _ = self.out.flush();
            return;
        }
        if let Some(line) = self.text(e) {
            let _ = writeln!(self.out, "{} {line}", clock(e.at_ms));
            let _ = self.out.flush();
        }
    }

    fn text(&mut self, e: &Event) -> Option<String> {
        let who = |n: &Option<String>| n.clone().unwrap_or_else(|| "(local)".into());
        Some(match &e.kind {
            EventKind::Started {
                kind,
                app,
                env,
                release,
                nodes,
                batches,
                journal,
                who,
                deployment,
                ..
            } => {
                self.batches = batches.len();
                let verb = match kind {
                    RunKind::Deploy => format!("deploying {app} {release} to {env}"),
                    RunKind::Rollback => format!("rolling back {app} in {env} to {release}"),
                };
                let shape = batches
                    .iter()
                    .map(|b| b.join(", "))
                    .collect::<Vec<_>>()
                    .join(" | ");
                let j = journal
                    .as_ref()
                    .map(|j| format!("\n         journal: {j}"))
                    .unwrap_or_default();
                format!(
                    "{verb}: {} in {} ({shape}) as {who}, deployment {deployment}{j}",
                    count(nodes.len(), "node", "nodes"),
                    count(batches.len(), "batch", "batches")
                )
            }
            EventKind::Preflight {
                node,
                ok: true,
                live_release,
                ..
            } => format!(
                "{node:<12} preflight             ok        live {}",
                live_release.as_deref().unwrap_or("(none)")
            ),
            EventKind::Preflight { node, message, .. } => format!(
                "{node:<12} preflight             FAILED    {}",
                message.as_deref().unwrap_or("")
            ),
            EventKind::Locked { .. } => "lock taken on every node".into(),
            EventKind::Unlocked { .. } => "lock released".into(),
            EventKind::BatchStarted { index, nodes } => {
                format!(
                    "── batch {}/{}: {}",
                    index + 1,
                    self.batches.max(index + 1),
                    nodes.join(", ")
                )
            }
            EventKind::NodeState { node, state } => match state {
                NodeState::Done
                | NodeState::Failed
                | NodeState::RolledBack
                | NodeState::RollingBack
                | NodeState::Skipped => {
                    format!("{node:<12} {:<21} {}", "node", state_word(*state))
                }
                _ => return None,
            },
            EventKind::NodeRelease { node, release } => format!(
                "{node:<12} {:<21} → {}",
                "current",
                release.as_deref().unwrap_or("(none)")
            ),
            EventKind::Rotation { node, in_rotation } => format!(
                "{node:<12} {:<21} {}",
                "balancer",
                if *in_rotation {
                    "in rotation"
                } else {
                    "out of rotation"
                }
            ),
            EventKind::StepStarted { .. } => return None,
            EventKind::Output {
                node, phase, line, ..
            } => format!("{:<12} {phase:<21} │ {line}", who(node)),
            EventKind::StepFinished {
                node,
                phase,
                result,
                duration_ms,
                message,
            } => {
                let m = message
                    .as_ref()
                    .map(|m| format!("  {m}"))
                    .unwrap_or_default();
                format!(
                    "{:<12} {phase:<21} {:<9} {}{m}",
                    who(node),
                    result_word(*result),
                    format_duration(std::time::Duration::from_millis(*duration_ms))
                )
            }
            EventKind::Gate {
                reason,
                until_ms: None,
            } => format!("gate: {reason}"),
            EventKind::Gate {
                reason,
                until_ms: Some(t),
            } => format!(
                "pause ({} left; promote to go on sooner): {reason}",
                format_duration(std::time::Duration::from_millis(
                    (*t - e.at_ms).max(0) as u64
                ))
            ),
            EventKind::Groups { live, idle } => match live {
                Some(l) => format!("blue-green: {l} serves; deploying to {idle}"),
                None => format!("blue-green: deploying to {idle}"),
            },
            EventKind::Promoted => "promoted".into(),
            EventKind::Pausing => "pausing: running steps finish first".into(),
            EventKind::Paused => "paused".into(),
            EventKind::Stepping => {
                "step: each node in flight runs its next step, then the run pauses again".into()
            }
            EventKind::Resumed => "resumed".into(),
            EventKind::RollbackStarted { reason, nodes } => {
                format!(
                    "ROLLING BACK ({reason}): {}",
                    if nodes.is_empty() {
                        "no node had changed".into()
                    } else {
                        nodes.join(", ")
                    }
                )
            }
            EventKind::Aborting { reason } => format!("ABORTING: {reason}"),
            EventKind::Notice { level, message } => match level {
                Level::Info => format!("note: {message}"),
                Level::Warn => format!("warning: {message}"),
                Level::Error => format!("error: {message}"),
            },
            EventKind::Check {
                name,
                node,
                status,
                value,
            } => format!(
                "{:<12} check {name}: {}{}",
                node.clone().unwrap_or_else(|| "checklist".into()),
                check_word(*status),
                value
                    .as_ref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            ),
            EventKind::Monitoring { window, ends_at_ms } => {
                let left = (*ends_at_ms - e.at_ms).max(0) as u64;
                format!(
                    "── checklist: {window} window, {} (promote or --watch ends it sooner)",
                    format_duration(std::time::Duration::from_millis(left))
                )
            }
            EventKind::Decision { verdict, reason } => match verdict.as_str() {
                "rollback" => format!("DECISION: roll back — {reason}"),
                "alert" => format!("DECISION: keep, alert — {reason}"),
                "all_normal" => format!("DECISION: all systems normal — {reason}"),
                "unconfirmed" => format!("DECISION: keep, unconfirmed — {reason}"),
                other => format!("DECISION: {other} — {reason}"),
            },
            EventKind::Timing(t) => format!("time: {}", t.summary()),
            EventKind::Finished {
                outcome, message, ..
            } => format!("{}: {message}", outcome.word().to_uppercase()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: EventKind) -> String {
        let mut p = Printer::new(Vec::new(), Format::Text);
        p.text(&Event {
            seq: 1,
            at_ms: 0,
            kind,
        })
        .expect("a line")
    }

    #[test]
    fn the_opening_line_counts_in_words() {
        let one = line(crate::ui::fixtures::started(1, false, false));
        assert_eq!(
            one,
            "deploying askproai v1.1 to staging: 1 node in 1 batch (web-1) as maria, \
             deployment 20260101-090000-a1b2"
        );
        let five = line(crate::ui::fixtures::started(5, false, false));
        assert!(
            five.contains(": 5 nodes in 3 batches (web-1 | web-2, web-3 | web-4, web-5)"),
            "{five}"
        );
    }

    #[test]
    fn checklist_results_read_as_words() {
        let check = |status, value: Option<&str>| {
            line(EventKind::Check {
                name: "All critical paths tested".into(),
                node: None,
                status,
                value: value.map(String::from),
            })
        };
        assert_eq!(
            check(CheckStatus::NeedsConfirmation, None),
            "checklist    check All critical paths tested: needs confirmation"
        );
        assert_eq!(
            check(CheckStatus::Pass, Some("confirmed")),
            "checklist    check All critical paths tested: pass (confirmed)"
        );
        assert_eq!(
            check(CheckStatus::Fail, Some("503")),
            "checklist    check All critical paths tested: FAIL (503)"
        );
    }
}
