//! The monitoring window after the last node: the post-deploy checklist runs window by window
//! (immediate, short, long), each check repeating every `interval`, and after each round the
//! decision tree says keep, alert or roll back. Manual items wait for the operator.
//!
//! This part of the run only measures and decides; rolling back is the run loop's job.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Run;
use crate::checks::decision::{decide, fold, Observation, Verdict};
use crate::checks::{self, last_number, within, ProbeResult};
use crate::engine::control::Stop;
use crate::engine::script::with_prologue;
use crate::event::{CheckStatus, EventKind, Level};
use crate::inventory::{Check, OnFail, Probe, Window};
use crate::plan::Target;
use crate::transport::ExecRequest;
use crate::util::expand;

#[derive(Debug)]
pub(super) enum Monitored {
    /// The release stays. `note` sums up what is not fully green.
    Kept {
        note: Option<String>,
    },
    RollBack(String),
}

impl Run {
    /// Nodes where the release landed (checks run there).
    fn landed(&self) -> Vec<String> {
        self.ledger.done_nodes()
    }

    /// Where a check runs: per node, on a named node, a role, locally, or on the first node.
    fn check_targets(&self, c: &Check) -> Vec<Target> {
        let landed = self.landed();
        if let Probe::Command { on: Some(on), .. } = &c.probe {
            if on == "local" {
                return vec![Target::Local];
            }
            if self.inv.node(on).is_some() {
                return vec![Target::Node(on.clone())];
            }
            return landed
                .iter()
                .filter(|n| {
                    self.inv
                        .node(n)
                        .map(|x| x.roles.contains(on))
                        .unwrap_or(false)
                })
                .map(|n| Target::Node(n.clone()))
                .collect();
        }
        if c.per_node {
            landed.into_iter().map(Target::Node).collect()
        } else {
            landed.into_iter().take(1).map(Target::Node).collect()
        }
    }

    async fn probe(&self, c: &Check, target: &Target) -> ProbeResult {
        let node = match target {
            Target::Node(n) => Some(n.as_str()),
            Target::Local => None,
        };
        let previous = node.and_then(|n| self.ledger.live_before(n));
        let vars = self.vars(node, &self.plan.release, previous.as_deref());
        match &c.probe {
            Probe::Http {
                url,
                expect,
                max_latency,
                body,
            } => {
                checks::http(
                    &expand(url, &vars, false),
                    *expect,
                    *max_latency,
                    body.as_deref(),
                    c.timeout,
                )
                .await
            }
            Probe::Prometheus {
                url,
                query,
                min,
                max,
            } => checks::prometheus(url, query, *min, *max, c.timeout).await,
            Probe::Command { run, min, max, .. } => {
                let script = with_prologue(&vars, target, &expand(run, &vars, true));
                let t = self.steps.nodes.transport(target);
                let cancel = self.ctl.all.clone();
                match t
                    .exec(&ExecRequest::new(script).timeout(c.timeout), None, &cancel)
                    .await
                {
                    Err(e) => ProbeResult::unknown(e.to_string()),
                    Ok(o) if o.ended == crate::transport::Ended::TimedOut => {
                        ProbeResult::unknown(format!(
                            "did not answer within {}",
                            crate::util::format_duration(c.timeout)
                        ))
                    }
                    Ok(o) if min.is_some() || max.is_some() => match last_number(&o.stdout) {
                        None => ProbeResult::unknown("printed no number to compare"),
                        Some(v) => match within(v, *min, *max) {
                            Ok(()) => ProbeResult::pass(Some(checks::format_number(v))),
                            Err(e) => ProbeResult::fail(Some(checks::format_number(v)), e),
                        },
                    },
                    Ok(o) if o.success() => ProbeResult::pass(
                        o.stdout
                            .lines()
                            .last()
                            .map(|l| l.chars().take(40).collect::<String>()),
                    ),
                    Ok(o) => ProbeResult::fail(None, o.describe_failure(Some(c.timeout))),
                }
            }
            Probe::Manual => ProbeResult {
                status: CheckStatus::NeedsConfirmation,
                value: None,
                detail: None,
            },
        }
    }

    /// Run one check everywhere it applies; emit its results; return the folded status.
    async fn run_check(&self, c: &Check) -> (CheckStatus, Option<String>) {
        let targets = self.check_targets(c);
        if targets.is_empty() {
            let r = ProbeResult::unknown("no node to run it on");
            self.em.emit(EventKind::Check {
                name: c.name.clone(),
                node: None,
                status: r.status,
                value: r.detail.clone(),
            });
            return (r.status, r.detail);
        }
        let results = futures::future::join_all(targets.iter().map(|t| self.probe(c, t))).await;
        // Measured numbers carry the check's unit ("7 ms").
        let with_unit = |v: Option<String>| match (&c.unit, v) {
            (Some(u), Some(v)) if v.parse::<f64>().is_ok() => Some(format!("{v} {u}")),
            (_, v) => v,
        };
        let mut statuses = Vec::new();
        let mut detail = None;
        for (t, r) in targets.iter().zip(results.iter()) {
            statuses.push(r.status);
            if r.status != CheckStatus::Pass && detail.is_none() {
                detail = r.detail.clone();
            }
            if let (true, Target::Node(n)) = (targets.len() > 1 || c.per_node, t) {
                self.em.emit(EventKind::Check {
                    name: c.name.clone(),
                    node: Some(n.clone()),
                    status: r.status,
                    value: with_unit(r.value.clone()).or(r.detail.clone()),
                });
            }
        }
        let folded = fold(&statuses);
        let shown = if folded == CheckStatus::Pass {
            with_unit(results.iter().find_map(|r| r.value.clone()))
        } else {
            results
                .iter()
                .find(|r| r.status == folded)
                .and_then(|r| r.value.clone().or(r.detail.clone()))
        };
        self.em.emit(EventKind::Check {
            name: c.name.clone(),
            node: None,
            status: folded,
            value: shown,
        });
        if let Some(d) = &detail {
            if folded != CheckStatus::Pass {
                self.em.emit(EventKind::Output {
                    node: None,
                    phase: format!("check: {}", c.name),
                    stream: crate::event::Stream::Stderr,
                    line: d.clone(),
                });
            }
        }
        (folded, detail)
    }

    /// The monitoring window, counted as waiting in the time report.
    pub(super) async fn monitor_timed(&self) -> Result<Monitored, Stop> {
        let started = std::time::Instant::now();
        let r = self.monitor().await;
        if !self.inv.checks.is_empty() {
            self.steps.timing.waited(started, std::time::Instant::now());
        }
        r
    }

    /// The monitoring window. Err when the operator aborts or rolls back meanwhile.
    pub(super) async fn monitor(&self) -> Result<Monitored, Stop> {
        let checks = self.inv.checks.clone();
        if checks.is_empty() {
            return Ok(Monitored::Kept { note: None });
        }
        let cl = self.inv.checklist.clone();
        let mut latest: BTreeMap<String, CheckStatus> = BTreeMap::new();
        for c in &checks {
            let s = if matches!(c.probe, Probe::Manual) {
                CheckStatus::NeedsConfirmation
            } else {
                CheckStatus::Pending
            };
            latest.insert(c.name.clone(), s);
            self.em.emit(EventKind::Check {
                name: c.name.clone(),
                node: None,
                status: s,
                value: None,
            });
        }
        let started = tokio::time::Instant::now();
        let hard_end = self.opts.watch.map(|w| started + w);
        let mut alerted: Vec<String> = Vec::new();
        let mut overridden: Option<String> = None;
        let mut failing_before: Vec<String> = Vec::new();
        self.ctl.set_monitoring(true);
        let mut ended_early = false;
        'windows: for (window, length) in [
            (Window::Immediate, cl.immediate),
            (Window::Short, cl.short),
            (Window::Long, cl.long),
        ] {
            let mine: Vec<&Check> = checks
                .iter()
                .filter(|c| c.window == window && !matches!(c.probe, Probe::Manual))
                .collect();
            if length.is_zero() {
                continue;
            }
            let mut ends = tokio::time::Instant::now() + length;
            if let Some(h) = hard_end {
                ends = ends.min(h);
            }
            let ends_ms = chrono::Utc::now().timestamp_millis()
                + (ends - tokio::time::Instant::now()).as_millis() as i64;
            self.em.emit(EventKind::Monitoring {
                window: window.word().into(),
                ends_at_ms: ends_ms,
            });
            loop {
                let results =
                    futures::future::join_all(mine.iter().map(|c| self.run_check(c))).await;
                for (c, (status, detail)) in mine.iter().zip(results) {
                    latest.insert(c.name.clone(), status);
                    let newly_failing =
                        status == CheckStatus::Fail && !failing_before.contains(&c.name);
                    if status == CheckStatus::Fail && newly_failing {
                        failing_before.push(c.name.clone());
                        let why = detail.unwrap_or_default();
                        match &c.on_fail {
                            OnFail::Tree => {}
                            OnFail::Alert => {
                                self.em.emit(EventKind::Decision {
                                    verdict: "alert".into(),
                                    reason: format!("{} failed ({why}); on_fail = alert", c.name),
                                });
                            }
                            OnFail::Rollback => {
                                let reason =
                                    format!("{} failed ({why}); on_fail = rollback", c.name);
                                self.em.emit(EventKind::Decision {
                                    verdict: "rollback".into(),
                                    reason: reason.clone(),
                                });
                                self.ctl.set_monitoring(false);
                                return Ok(Monitored::RollBack(reason));
                            }
                            OnFail::Run(cmd) => {
                                let vars = self.vars(None, &self.plan.release, None);
                                let script = expand(cmd, &vars, true);
                                self.em.emit(EventKind::Decision {
                                    verdict: "alert".into(),
                                    reason: format!(
                                        "{} failed ({why}); running its on_fail command",
                                        c.name
                                    ),
                                });
                                let never = CancellationToken::new();
                                let _ = self
                                    .steps
                                    .exec(
                                        None,
                                        &format!("on_fail: {}", c.name),
                                        Some(script.clone()),
                                        &Target::Local,
                                        ExecRequest::new(script)
                                            .timeout(c.timeout.max(Duration::from_secs(60))),
                                        &never,
                                    )
                                    .await;
                            }
                        }
                    } else if status != CheckStatus::Fail {
                        failing_before.retain(|n| n != &c.name);
                    }
                }
                let obs: Vec<Observation> = checks
                    .iter()
                    .map(|c| Observation {
                        name: &c.name,
                        kind: c.kind,
                        status: latest.get(&c.name).copied().unwrap_or(CheckStatus::Pending),
                    })
                    .collect();
                match decide(&obs) {
                    Verdict::Keep => {}
                    Verdict::KeepAndAlert(reason) => {
                        if !alerted.contains(&reason) {
                            alerted.push(reason.clone());
                            self.em.emit(EventKind::Decision {
                                verdict: "alert".into(),
                                reason,
                            });
                        }
                    }
                    Verdict::RollBack(reason) => {
                        if overridden.as_deref() != Some(reason.as_str()) {
                            if cl.auto_rollback {
                                self.em.emit(EventKind::Decision {
                                    verdict: "rollback".into(),
                                    reason: reason.clone(),
                                });
                                self.ctl.set_monitoring(false);
                                return Ok(Monitored::RollBack(reason));
                            }
                            self.em.emit(EventKind::Decision {
                                verdict: "ask".into(),
                                reason: format!(
                                    "{reason}; auto_rollback is off, so the operator decides"
                                ),
                            });
                            if self.opts.headless {
                                self.em.notice(Level::Warn, "headless: nobody to decide, keeping the release as auto_rollback = false asks");
                            } else {
                                self.ctl.set_monitoring(false);
                                self.ctl
                                    .gate(format!("the decision tree says roll back: {reason}. R rolls back, promote keeps the release"), false)
                                    .await?;
                                self.ctl.set_monitoring(true);
                            }
                            overridden = Some(reason);
                        }
                    }
                }
                let next = (tokio::time::Instant::now() + cl.interval).min(ends);
                // `--watch` ends the whole checklist once each started window had a round.
                if hard_end
                    .map(|h| tokio::time::Instant::now() >= h)
                    .unwrap_or(false)
                {
                    ended_early = true;
                    break 'windows;
                }
                if tokio::time::Instant::now() >= ends {
                    break;
                }
                if self.ctl.monitor_wait(next).await? {
                    ended_early = true;
                    break 'windows;
                }
                if tokio::time::Instant::now() >= ends {
                    break;
                }
            }
        }
        self.ctl.set_monitoring(false);

        // Manual items block DONE until the operator confirms them (headless: reported).
        let manual: Vec<String> = checks
            .iter()
            .filter(|c| matches!(c.probe, Probe::Manual))
            .map(|c| c.name.clone())
            .collect();
        let open = |me: &Self| -> Vec<String> {
            let done = me.ctl.snapshot().confirmed;
            manual
                .iter()
                .filter(|m| !done.contains(m))
                .cloned()
                .collect()
        };
        if !open(self).is_empty() && !self.opts.headless && !ended_early {
            self.ctl
                .gate(
                    format!(
                        "confirm the manual checklist items ({}), then promote to finish",
                        open(self).join(", ")
                    ),
                    false,
                )
                .await?;
        }
        let unconfirmed = open(self);
        let unknown: Vec<String> = latest
            .iter()
            .filter(|(_, s)| matches!(s, CheckStatus::Unknown | CheckStatus::Fail))
            .map(|(n, s)| {
                format!(
                    "{n} ({})",
                    if *s == CheckStatus::Fail {
                        "failing"
                    } else {
                        "unknown"
                    }
                )
            })
            .collect();
        let mut notes = Vec::new();
        if !unconfirmed.is_empty() {
            let reason = format!(
                "{} manual item(s) unconfirmed: {}",
                unconfirmed.len(),
                unconfirmed.join(", ")
            );
            self.em.emit(EventKind::Decision {
                verdict: "unconfirmed".into(),
                reason: reason.clone(),
            });
            notes.push(reason);
        }
        if !unknown.is_empty() {
            notes.push(format!("not green: {}", unknown.join(", ")));
        }
        notes.extend(alerted.iter().cloned());
        if notes.is_empty() {
            let measured = checks
                .iter()
                .filter(|c| !matches!(c.probe, Probe::Manual))
                .count();
            self.em.emit(EventKind::Decision {
                verdict: "all_normal".into(),
                reason: format!("{measured} checks passed, {} confirmed", manual.len()),
            });
            Ok(Monitored::Kept { note: None })
        } else {
            self.em.emit(EventKind::Decision {
                verdict: "keep".into(),
                reason: notes.join("; "),
            });
            Ok(Monitored::Kept {
                note: Some(notes.join("; ")),
            })
        }
    }
}
