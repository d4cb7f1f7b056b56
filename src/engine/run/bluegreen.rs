//! Blue-green: the group the balancer does not serve gets the release (all its nodes in
//! parallel, out of rotation), is health-checked, then traffic moves to it in one step (enable
//! the new group, drain the old one). The old group stays on standby with the old release, so a
//! rollback is the same step backwards.

use std::sync::Arc;

use futures::future::join_all;

use super::turn::NodeStop;
use super::{Ended, Run};
use crate::event::{EventKind, Level, NodeState, Outcome};

impl Run {
    fn group(&self, name: &str) -> Vec<String> {
        self.plan
            .groups
            .iter()
            .find(|(g, _)| g == name)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Put `enable` into rotation, then take `drain` out; Err names what failed.
    async fn move_traffic(
        &self,
        enable: &str,
        drain: &str,
    ) -> Result<(), crate::engine::error::StepError> {
        let cancel = self.ctl.all.clone();
        for n in self.group(enable) {
            self.lb.step(&n, false, &cancel).await?;
        }
        for n in self.group(drain) {
            self.lb.step(&n, true, &cancel).await?;
        }
        Ok(())
    }

    /// Rollback after the switch: traffic goes back to the old group in one step.
    pub(super) async fn switch_back(
        &self,
        old_live: &str,
        new_live: &str,
        reason: String,
    ) -> Outcome {
        self.em.emit(EventKind::RollbackStarted {
            reason,
            nodes: self.group(old_live),
        });
        match self.move_traffic(old_live, new_live).await {
            Ok(()) => {
                if let Ok(mut g) = self.switched_groups.lock() {
                    *g = None;
                }
                self.em.emit(EventKind::Groups {
                    live: Some(old_live.to_string()),
                    idle: new_live.to_string(),
                });
                self.em.notice(
                    Level::Info,
                    format!(
                        "traffic is back on {old_live}; {new_live} keeps {} on standby",
                        self.plan.release
                    ),
                );
                Outcome::RolledBack
            }
            Err(e) => {
                self.em.notice(
                    Level::Error,
                    format!("switching traffic back to {old_live} failed: {e}"),
                );
                Outcome::Failed
            }
        }
    }

    pub(super) async fn blue_green(self: Arc<Self>) -> Result<Ended, Ended> {
        let release = self.plan.release.clone();
        let (a, b) = (self.plan.groups[0].0.clone(), self.plan.groups[1].0.clone());
        let serving = match self.lb.rotation_now().await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.locks.release().await;
                return Err(self.end(
                    Outcome::PreflightFailed,
                    "blue-green needs a balancer that reports each node's state (HAProxy, or a `state` command); nothing was changed".into(),
                ));
            }
            Err(e) => {
                self.locks.release().await;
                return Err(self.end(
                    Outcome::PreflightFailed,
                    format!("cannot read the balancer: {e}; nothing was changed"),
                ));
            }
        };
        let full = |g: &str| self.group(g).iter().all(|n| serving.contains(n));
        let empty = |g: &str| self.group(g).iter().all(|n| !serving.contains(n));
        let (live, idle) = if full(&a) && empty(&b) {
            (Some(a.clone()), b.clone())
        } else if full(&b) && empty(&a) {
            (Some(b.clone()), a.clone())
        } else if full(&a) && full(&b) {
            self.em.notice(
                Level::Info,
                format!("both groups serve; {b} is taken out to receive {release}"),
            );
            (Some(a.clone()), b.clone())
        } else {
            self.locks.release().await;
            return Err(self.end(
                Outcome::PreflightFailed,
                format!(
                    "blue-green cannot tell which group serves (in rotation now: {}); put one whole group in rotation and the other out; nothing was changed",
                    if serving.is_empty() { "none".to_string() } else { serving.join(", ") }
                ),
            ));
        };
        self.em.emit(EventKind::Groups {
            live: live.clone(),
            idle: idle.clone(),
        });
        let idle_nodes = self.group(&idle);
        // Take the idle group out if it still serves (first run, both groups in rotation).
        let cancel = self.ctl.forward.clone();
        for n in &idle_nodes {
            if serving.contains(n) {
                if let Err(e) = self.lb.step(n, true, &cancel).await {
                    return Err(self
                        .halt_blue_green(format!("{n}: drain failed: {e}"))
                        .await);
                }
            }
        }
        self.em.emit(EventKind::BatchStarted {
            index: 0,
            nodes: idle_nodes.clone(),
        });
        let results = join_all(idle_nodes.iter().map(|n| {
            let me = self.clone();
            let n = n.clone();
            async move { (n.clone(), me.node_forward(&n).await) }
        }))
        .await;
        self.stopped().await?;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(_, r)| match r {
                Err(NodeStop::Failed(f)) => Some(f.to_string()),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            for (n, r) in &results {
                if matches!(r, Err(NodeStop::Failed(_))) {
                    self.ledger.mark_failed(n);
                    self.set_state(n, NodeState::Failed);
                }
            }
            return Err(self.halt_blue_green(failed.join("; ")).await);
        }
        if self.env.pause_after_first {
            let reason = format!(
                "{idle} is ready on {release} and healthy; promote to move traffic from {} to {idle}",
                live.clone().unwrap_or_default()
            );
            if let Err(stop) = self.ctl.gate(reason, self.opts.auto_promote).await {
                return Err(self.stop(stop).await);
            }
        }
        // The switch: one step, new group in, old group out.
        let old = live
            .clone()
            .unwrap_or_else(|| if idle == a { b.clone() } else { a.clone() });
        if let Err(e) = self.move_traffic(&idle, &old).await {
            self.em.notice(
                Level::Error,
                format!("moving traffic to {idle} failed: {e}; moving it back"),
            );
            let _ = self.move_traffic(&old, &idle).await;
            return Err(self
                .halt_blue_green(format!("the switch to {idle} failed: {e}"))
                .await);
        }
        if let Ok(mut g) = self.switched_groups.lock() {
            *g = Some((old.clone(), idle.clone()));
        }
        self.em.emit(EventKind::Groups {
            live: Some(idle.clone()),
            idle: old.clone(),
        });
        self.em.notice(
            Level::Info,
            format!("traffic moved to {idle}; {old} stays on standby with its release"),
        );

        for st in self.plan.after.clone() {
            let targets: Vec<_> = st
                .targets
                .iter()
                .filter(|t| match t {
                    crate::plan::Target::Node(n) => idle_nodes.contains(n),
                    crate::plan::Target::Local => true,
                })
                .cloned()
                .collect();
            if let Err(e) = self.stage_step(st.index, &targets).await {
                self.em.notice(
                    Level::Warn,
                    format!("{e}; the release is live, check the after-steps by hand"),
                );
            }
        }
        Ok(match self.monitor_timed().await {
            Err(stop) => self.stop(stop).await,
            Ok(super::monitor::Monitored::RollBack(reason)) => {
                let outcome = self.switch_back(&old, &idle, reason.clone()).await;
                self.locks.release().await;
                self.end(
                    outcome,
                    format!("traffic moved back to {old} after the checklist: {reason}"),
                )
            }
            Ok(super::monitor::Monitored::Kept { note }) => {
                for n in &idle_nodes {
                    self.write_history(n, "verified", &release, None, true);
                }
                if let Some(note) = note {
                    self.em
                        .notice(Level::Warn, format!("the release stays: {note}"));
                }
                self.locks.release().await;
                self.end(
                    Outcome::Deployed,
                    format!(
                        "{idle} serves {release}; {old} is on standby; {}",
                        self.ledger.release_summary()
                    ),
                )
            }
        })
    }

    /// Before the switch, a failure leaves traffic where it was: the idle nodes go back to their
    /// release, out of rotation.
    async fn halt_blue_green(&self, why: String) -> Ended {
        let outcome = self
            .rollback_all(format!("blue-green stopped before the switch: {why}"))
            .await;
        self.locks.release().await;
        let msg = format!(
            "traffic never moved ({why}); {}",
            self.ledger.release_summary()
        );
        self.end(
            if outcome == Outcome::RolledBack {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            },
            msg,
        )
    }

    /// `deckhand rollback` on a blue-green environment: traffic goes back to the standby group.
    pub(super) async fn blue_green_rollback(self: Arc<Self>) -> Result<Ended, Ended> {
        let (a, b) = (self.plan.groups[0].0.clone(), self.plan.groups[1].0.clone());
        let serving = match self.lb.rotation_now().await {
            Ok(Some(s)) => s,
            _ => {
                return Err(self.end(
                    Outcome::PreflightFailed,
                    "cannot read which group serves; nothing was changed".into(),
                ));
            }
        };
        let full = |g: &str| self.group(g).iter().all(|n| serving.contains(n));
        let (live, standby) = if full(&a) && !full(&b) {
            (a, b)
        } else if full(&b) && !full(&a) {
            (b, a)
        } else {
            return Err(self.end(
                Outcome::PreflightFailed,
                format!(
                    "cannot tell which group serves (in rotation: {}); nothing was changed",
                    serving.join(", ")
                ),
            ));
        };
        self.lock("rollback").await?;
        self.em.emit(EventKind::Groups {
            live: Some(live.clone()),
            idle: standby.clone(),
        });
        let outcome = self
            .switch_back(
                &standby,
                &live,
                format!("rollback requested: traffic back to {standby}"),
            )
            .await;
        self.locks.release().await;
        let msg = match outcome {
            Outcome::RolledBack => format!(
                "{standby} serves again; {live} is on standby; {}",
                self.ledger.release_summary()
            ),
            _ => format!(
                "the switch back to {standby} did not complete; {}",
                self.ledger.release_summary()
            ),
        };
        Ok(self.end(outcome, msg))
    }
}
