//! Going back: a node rolled back to the release it had (drain, switch back, the node phases
//! after `switch`, health, enable), a node caught mid-way undone, the whole run rolled back in
//! the ledger's order, an abort's cleanup, and the `deckhand rollback` command.

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::{Ended, Run};
use crate::engine::error::StepError;
use crate::engine::ledger::{recovery, Recovery};
use crate::engine::policy::{plan_rollback, RollbackTarget};
use crate::engine::remote;
use crate::event::{EventKind, Level, NodeState, Outcome, RunKind};
use crate::inventory::{Action, Stage};
use crate::plan::NodeStep;

impl Run {
    /// Remove the release this run built on `node`, if it is not live there.
    async fn remove_built_release(&self, node: &str) -> Result<(), String> {
        let never = CancellationToken::new();
        let script =
            remote::remove_release_script(&self.steps.nodes.deploy_path(node), &self.plan.release);
        self.steps
            .internal(node, script, &never)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Put a failed or stopped node on a whole, known release: roll it back if it switched,
    /// else remove the release we built there and put it back into rotation.
    pub(super) async fn recover_node(&self, node: &str) {
        let facts = self.ledger.facts(node);
        match recovery(&facts, !self.plan.groups.is_empty()) {
            Recovery::RollBack => {
                self.rollback_node(node, None).await;
            }
            Recovery::Undo {
                remove_release,
                enable,
            } => {
                if remove_release {
                    match self.remove_built_release(node).await {
                        Ok(()) => self.ledger.set_created(node, false),
                        Err(e) => self.em.notice(
                            Level::Warn,
                            format!("{node}: could not remove the unfinished release: {e}"),
                        ),
                    }
                }
                if enable {
                    let never = CancellationToken::new();
                    let _ = self.lb.step(node, false, &never).await;
                }
            }
        }
    }

    /// Put one node back on `to` (default: the release it had before this run).
    pub(super) async fn rollback_node(&self, node: &str, to: Option<String>) -> bool {
        let bad = self.ledger.current(node);
        let Some(target) = to.or(self.ledger.live_before(node)) else {
            self.em.notice(
                Level::Error,
                format!(
                    "{node}: no previous release to go back to; it stays on {}",
                    bad.clone().unwrap_or_else(|| "nothing".into())
                ),
            );
            self.set_state(node, NodeState::Failed);
            return false;
        };
        let cancel = self.ctl.all.clone();
        if let Some(t) = self.steps.nodes.node(node) {
            t.prepare();
        }
        self.set_state(node, NodeState::RollingBack);
        let result = async {
            // Blue-green nodes are out of rotation while they change: no balancer step.
            let with_lb = self.lb.any() && self.plan.groups.is_empty();
            if with_lb {
                self.lb.step(node, true, &cancel).await?;
            }
            self.switch_node(node, &target, "switch", &cancel).await?;
            // The node phases after `switch` (restart and the like), now for the old release.
            if let (Some(si), Some(np)) = (
                crate::plan::switch_index(&self.inv),
                self.plan.node_plan(node),
            ) {
                for step in &np.steps {
                    if let NodeStep::Phase {
                        index, target: t, ..
                    } = step
                    {
                        let p = &self.inv.phases[*index];
                        if *index > si
                            && p.stage == Stage::Node
                            && !matches!(p.action, Action::Builtin(_))
                        {
                            self.run_phase(*index, Some(node), t, &target, bad.as_deref(), &cancel)
                                .await?;
                        }
                    }
                }
            }
            self.set_state(node, NodeState::Checking);
            self.health(node, &target, &cancel).await?;
            if with_lb {
                self.lb.step(node, false, &cancel).await?;
            }
            Ok::<(), StepError>(())
        }
        .await;
        // Whatever happened after it, the switch decides which release the node is on.
        let facts = self.ledger.facts(node);
        if facts.created && facts.current.as_deref() == Some(target.as_str()) {
            let _ = self.remove_built_release(node).await;
        }
        match result {
            Ok(()) => {
                self.write_history(node, "rollback", &target, bad, true);
                self.ledger.mark_rolled_back(node);
                self.set_state(node, NodeState::RolledBack);
                true
            }
            Err(e) => {
                self.write_history(node, "rollback", &target, bad, false);
                self.em.notice(
                    Level::Error,
                    format!("{node}: rollback to {target} failed: {e}"),
                );
                self.set_state(node, NodeState::Failed);
                false
            }
        }
    }

    /// Roll back every node that switched, newest first, then undo nodes that were mid-way.
    pub(super) async fn rollback_all(&self, reason: String) -> Outcome {
        let swapped = self.switched_groups.lock().ok().and_then(|g| g.clone());
        if let Some((old_live, new_live)) = swapped {
            return self.switch_back(&old_live, &new_live, reason).await;
        }
        let order = self.ledger.rollback_order();
        let nodes = order.nodes();
        self.em.emit(EventKind::RollbackStarted {
            reason,
            nodes: nodes.clone(),
        });
        let mut ok = true;
        for n in &order.switched {
            if self.ctl.snapshot().abort {
                ok = false;
                break;
            }
            ok &= self.rollback_node(n, None).await;
        }
        for n in &order.midway {
            self.recover_node(n).await;
            self.set_state(n, NodeState::RolledBack);
        }
        if !ok {
            return Outcome::Failed;
        }
        let untouched = self.plan.nodes.len() - nodes.len();
        self.em.notice(
            Level::Info,
            format!(
                "rolled back {}; {untouched} never changed",
                crate::util::count(nodes.len(), "node", "nodes")
            ),
        );
        Outcome::RolledBack
    }

    /// Abort: nothing more runs; releases built but not switched to are removed; nodes drained
    /// but never switched go back into rotation. Switched nodes stay on the new release.
    pub(super) async fn abort_cleanup(&self) -> String {
        let plan = self.ledger.abort_plan();
        for n in &plan.undo {
            self.recover_node(n).await;
            self.set_state(n, NodeState::Waiting);
        }
        if plan.left.is_empty() {
            "no node was left mid-way".into()
        } else {
            let left: Vec<String> = plan
                .left
                .iter()
                .map(|(n, out)| {
                    format!(
                        "{n} on {}{}",
                        self.plan.release,
                        if *out { " (out of rotation)" } else { "" }
                    )
                })
                .collect();
            format!("switched but unverified: {}", left.join(", "))
        }
    }

    /// `deckhand rollback` (and `resume --rollback`): every node back to its target, batch by
    /// batch, after checking that every node has somewhere to go.
    pub(super) async fn rollback_command(
        self: std::sync::Arc<Self>,
        target: RollbackTarget,
    ) -> Result<Ended, Ended> {
        let label = target.label();
        self.announce(RunKind::Rollback, &label);
        if let Err(failures) =
            crate::engine::preflight::read_nodes(&self.steps, &self.ledger, &self.plan.nodes).await
        {
            return Err(self.end(
                Outcome::PreflightFailed,
                format!(
                    "preflight failed, nothing was changed:\n  {}",
                    failures.join("\n  ")
                ),
            ));
        }
        if !self.plan.groups.is_empty() {
            return self.clone().blue_green_rollback().await;
        }
        let snapshots: Vec<_> = self
            .ledger
            .all()
            .into_iter()
            .map(|(n, f)| (n, f.snapshot))
            .collect();
        let moves = plan_rollback(&target, &snapshots).map_err(|problems| {
            self.end(
                Outcome::PreflightFailed,
                format!(
                    "cannot roll back, nothing was changed:\n  {}",
                    problems.join("\n  ")
                ),
            )
        })?;
        self.lock(&label).await?;
        // Nodes already where they should be: back into rotation if a crash left them out.
        for (n, to) in &moves.in_place {
            self.ledger.mark_skipped(n);
            if let Err(e) = self.ensure_in_rotation(n, to).await {
                self.em.notice(Level::Error, format!("{n}: {e}"));
            }
            self.set_state(n, NodeState::Skipped);
        }
        self.em.emit(EventKind::RollbackStarted {
            reason: format!("rollback to {label} requested"),
            nodes: moves.moves.iter().map(|(n, _)| n.clone()).collect(),
        });
        let mut ok = true;
        for (i, batch) in self.plan.batches.iter().enumerate() {
            let batch: Vec<&(String, String)> = moves
                .moves
                .iter()
                .filter(|(n, _)| batch.contains(n))
                .collect();
            if batch.is_empty() {
                continue;
            }
            if self.ctl.boundary().await.is_err() && self.ctl.snapshot().abort {
                ok = false;
                break;
            }
            self.em.emit(EventKind::BatchStarted {
                index: i,
                nodes: batch.iter().map(|(n, _)| n.clone()).collect(),
            });
            let results = join_all(
                batch
                    .iter()
                    .map(|(n, to)| self.rollback_node(n, Some(to.clone()))),
            )
            .await;
            ok &= results.iter().all(|r| *r);
            if !ok {
                break;
            }
        }
        if let RollbackTarget::Resume { abandon, .. } = &target {
            let never = CancellationToken::new();
            for n in self.plan.nodes.clone() {
                let script =
                    remote::remove_release_script(&self.steps.nodes.deploy_path(&n), abandon);
                let _ = self.steps.internal(&n, script, &never).await;
            }
        }
        self.locks.release().await;
        let summary = self.ledger.release_summary();
        Ok(if ok {
            self.end(Outcome::RolledBack, format!("rolled back; {summary}"))
        } else {
            self.end(
                Outcome::Failed,
                format!("rollback did not complete; {summary}"),
            )
        })
    }
}
