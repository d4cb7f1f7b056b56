//! One node's turn: drain → its phases → health → enable, each at a step boundary; and what a
//! failed turn leads to (the failure policy decides, see `policy::after_failure`).

use super::Run;
use crate::engine::error::{NodeFailure, StepError};
use crate::engine::health;
use crate::engine::policy::{after_failure, AfterFailure};
use crate::event::{Level, NodeState};
use crate::inventory::Stage;
use crate::plan::NodeStep;

/// Why a node's turn did not finish.
#[derive(Debug)]
pub(super) enum NodeStop {
    Failed(NodeFailure),
    /// The operator (or the failure policy) stopped forward work.
    Stopped,
}

impl Run {
    /// A node's turn. Ok(true) done, Ok(false) left alone (already on the release).
    pub(super) async fn node_forward(&self, node: &str) -> Result<bool, NodeStop> {
        let release = self.plan.release.clone();
        let failed = |step: Option<&str>, error: StepError| {
            NodeStop::Failed(NodeFailure {
                node: node.to_string(),
                step: step.map(String::from),
                error,
            })
        };
        // A node on the release whose history does not say a run finished its turn there (a
        // run interrupted, or failed between `switch` and its end with a rollback that could
        // not run, or a node set up by other means): its phases from `switch` on run again
        // (the release is built; what follows the switch, a restart above all, may never have
        // run). Whether this run resumes that one or is a new deployment of the same release.
        let switch_at = crate::plan::switch_index(&self.inv);
        let resume_from = switch_at.filter(|_| self.ledger.resumed_after_switch(node, &release));
        if let Some(si) = resume_from {
            // Switched, by the run before: a rollback of this run takes it back too.
            self.ledger.switched(node, Some(release.clone()));
            self.em.notice(
                Level::Warn,
                format!(
                    "{node} is on {release} but the run that switched it did not finish its turn there; running its phases again from {}",
                    self.inv.phases[si].name
                ),
            );
        } else if self.ledger.current(node).as_deref() == Some(release.as_str()) {
            self.ledger.mark_skipped(node);
            // A node a crashed run left switched but drained goes back in, once healthy.
            if let Err(e) = self.ensure_in_rotation(node, &release).await {
                return Err(failed(None, e));
            }
            self.set_state(node, NodeState::Skipped);
            self.em.notice(
                Level::Info,
                format!("{node} is already on {release}; left as it is"),
            );
            return Ok(false);
        }
        if let Some(t) = self.steps.nodes.node(node) {
            t.prepare();
        }
        let previous = self.ledger.live_before(node);
        let steps = self
            .plan
            .node_plan(node)
            .map(|p| p.steps.clone())
            .unwrap_or_default();
        self.show_phases_that_do_not_apply(node, &steps);
        let cancel = self.ctl.forward.clone();
        let mut updating = false;
        // From `switch` on, a node's phases disrupt what it serves: it must be out of rotation.
        let disruptive_from = switch_at;
        let drained = steps.iter().any(|s| matches!(s, NodeStep::Drain));
        for step in steps {
            if !self.plan.groups.is_empty() && matches!(step, NodeStep::Drain | NodeStep::Enable) {
                continue;
            }
            if let (Some(si), NodeStep::Phase { index, .. }) = (resume_from, &step) {
                if *index < si {
                    continue;
                }
            }
            self.ctl.boundary().await.map_err(|_| NodeStop::Stopped)?;
            let r = match &step {
                NodeStep::Drain => {
                    self.set_state(node, NodeState::Draining);
                    self.lb.step(node, true, &cancel).await
                }
                NodeStep::Phase { index, target, .. } => {
                    if !updating {
                        updating = true;
                        self.set_state(node, NodeState::Updating);
                    }
                    if drained && disruptive_from.is_some_and(|si| *index >= si) {
                        let phase = &self.inv.phases[*index].name;
                        if let Err(e) = self.lb.still_out(node, phase, &cancel).await {
                            if self.ctl.stop_reason().is_some() {
                                return Err(NodeStop::Stopped);
                            }
                            return Err(failed(Some("drain"), e));
                        }
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
                    self.lb.step(node, false, &cancel).await
                }
            };
            if let Err(e) = r {
                if self.ctl.stop_reason().is_some() {
                    return Err(NodeStop::Stopped);
                }
                return Err(failed(Some(step.label()), e));
            }
        }
        self.write_history(node, "deploy", &release, previous, true);
        self.ledger.mark_done(node);
        self.set_state(node, NodeState::Done);
        if let Some(t) = self.steps.nodes.node(node) {
            t.settle();
        }
        Ok(true)
    }

    /// Phases of the run that do not apply to this node are shown as skipped, with the reason.
    fn show_phases_that_do_not_apply(&self, node: &str, steps: &[NodeStep]) {
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
            self.steps.skipped(node, &p.name, why);
        }
    }

    /// The environment's health check on `node`, for `release`.
    pub(super) async fn health(
        &self,
        node: &str,
        release: &str,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), StepError> {
        let previous = self.ledger.live_before(node);
        let vars = self.vars(Some(node), release, previous.as_deref());
        health::check(&self.steps, self.env.health.as_ref(), node, &vars, cancel).await
    }

    /// A node failed. The failure policy decides; returns true when the failure is tolerated
    /// (the node is recovered and the run goes on).
    pub(super) async fn on_node_failed(&self, node: &str, failure: &NodeFailure) -> bool {
        let failed = self.ledger.mark_failed(node);
        self.set_state(node, NodeState::Failed);
        let release = self.plan.release.clone();
        let from = self.ledger.live_before(node);
        self.write_history(node, "deploy", &release, from, false);
        let total = self.plan.nodes.len().max(1);
        let message = failure.to_string();
        match after_failure(
            failed,
            total,
            self.env.max_fail,
            self.env.on_failure,
            self.opts.headless,
        ) {
            AfterFailure::Tolerate => {
                self.em.notice(
                    Level::Warn,
                    format!("{message}; {failed} of {total} nodes failed, within max_fail: recovering {node} and going on"),
                );
                self.recover_node(node).await;
                return true;
            }
            AfterFailure::RollBack {
                headless_pause: true,
            } => {
                self.em.notice(
                    Level::Warn,
                    format!("{message}; on_failure is pause, but nobody is there to decide (headless): rolling back"),
                );
                self.ctl.request_rollback(&message);
            }
            AfterFailure::RollBack {
                headless_pause: false,
            } => {
                self.em
                    .notice(Level::Error, format!("{message}; on_failure = rollback"));
                self.ctl.request_rollback(&message);
            }
            AfterFailure::Abort => {
                self.ctl
                    .request_abort(&format!("{message}; on_failure = abort"));
            }
            AfterFailure::Gate => {
                if let Ok(mut g) = self.failure_gate.lock() {
                    g.get_or_insert_with(|| format!("{message}; on_failure = pause: promote to go on without it, R to roll back, a to abort"));
                }
            }
        }
        false
    }

    /// If a balancer has this node out of rotation, check its health and put it back.
    pub(super) async fn ensure_in_rotation(
        &self,
        node: &str,
        release: &str,
    ) -> Result<(), StepError> {
        if !self.lb.any() || !self.plan.groups.is_empty() || !self.lb.is_out(node).await {
            return Ok(());
        }
        self.em.notice(
            Level::Warn,
            format!("{node} is on {release} but out of rotation; checking it and putting it back"),
        );
        self.ledger.set_drained(node, true);
        let cancel = self.ctl.forward.clone();
        self.health(node, release, &cancel).await?;
        self.lb.step(node, false, &cancel).await
    }
}
