//! From inventory, environment and release to an ordered [`Plan`]: which steps run where, in
//! which batches, with which gates. Pure: no I/O, so every ordering rule is unit-testable.
//!
//! Batch ramp: each entry of `batches` is the size of one batch; a percentage is of the
//! environment's node count, rounded down but never below one node; the last entry repeats
//! until every node has had its turn. `[1, "50%", "100%"]` over 5 nodes gives 1, 2, 2.

use serde::Serialize;

use crate::inventory::{
    Action, BatchSize, Builtin, CanaryStep, Environment, Inventory, Phase, Stage, Strategy, Where,
};

/// Where a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "on", content = "node")]
pub enum Target {
    /// On the machine running deckhand.
    Local,
    /// On one node.
    Node(String),
}

/// One step of a node's turn.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum NodeStep {
    /// Take the node out of the load balancer.
    Drain,
    /// Run an inventory phase (index into `Inventory::phases`).
    Phase {
        name: String,
        index: usize,
        target: Target,
    },
    /// Wait for the environment's health check.
    Health,
    /// Put the node back into the load balancer.
    Enable,
}

impl NodeStep {
    pub fn label(&self) -> &str {
        match self {
            NodeStep::Drain => "drain",
            NodeStep::Phase { name, .. } => name,
            NodeStep::Health => "health",
            NodeStep::Enable => "enable",
        }
    }
}

/// A stage-wide step (before or after the batches).
#[derive(Debug, Clone, Serialize)]
pub struct StageStep {
    pub name: String,
    pub index: usize,
    /// Every target this phase runs on, in order.
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    pub node: String,
    pub steps: Vec<NodeStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub app: String,
    pub env: String,
    pub release: String,
    pub strategy: String,
    /// The environment's nodes in plan order.
    pub nodes: Vec<String>,
    pub before: Vec<StageStep>,
    pub batches: Vec<Vec<String>>,
    /// Batch indexes after which the run waits for a promote.
    pub gates: Vec<usize>,
    /// Gates that pass by themselves after this many milliseconds (canary timed pauses).
    pub gate_waits: Vec<(usize, u64)>,
    /// Blue-green: the two groups (the idle one is deployed; known once the balancer is read).
    pub groups: Vec<(String, Vec<String>)>,
    /// Adjustments the operator should know about (narrowed batches, ignored pauses).
    pub notes: Vec<String>,
    pub node_plans: Vec<NodePlan>,
    pub after: Vec<StageStep>,
    pub balancer: bool,
    pub health: bool,
}

impl Plan {
    pub(crate) fn node_plan(&self, node: &str) -> Option<&NodePlan> {
        self.node_plans.iter().find(|p| p.node == node)
    }
    /// Node phase names in order, as the phases pane lists them.
    pub(crate) fn phase_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for np in &self.node_plans {
            for s in &np.steps {
                let l = s.label().to_string();
                if !names.contains(&l) {
                    names.push(l);
                }
            }
        }
        names
    }
}

/// Sizes of consecutive batches for `total` nodes under a ramp (see the module docs).
pub(crate) fn batch_sizes(ramp: &[BatchSize], total: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let spec = ramp
            .get(i)
            .or(ramp.last())
            .copied()
            .unwrap_or(BatchSize::Count(1));
        let want = node_count(spec, total).max(1);
        let n = want.min(left);
        sizes.push(n);
        left -= n;
        i += 1;
    }
    sizes
}

/// How many of `total` nodes a size means: a count as it is, a percentage rounded down.
fn node_count(size: BatchSize, total: usize) -> usize {
    match size {
        BatchSize::Count(n) => n as usize,
        BatchSize::Percent(p) => ((total as f64) * p / 100.0).floor() as usize,
    }
}

/// The node a `once` phase runs on: the first in plan order with one of its roles (or simply
/// the first node when it names no roles).
pub(crate) fn once_node<'a>(
    inv: &Inventory,
    env: &'a Environment,
    phase: &Phase,
) -> Option<&'a String> {
    env.nodes.iter().find(|n| phase_applies(inv, phase, n))
}

fn phase_applies(inv: &Inventory, phase: &Phase, node: &str) -> bool {
    phase.roles.is_empty()
        || inv
            .node(node)
            .map(|n| n.roles.iter().any(|r| phase.roles.contains(r)))
            .unwrap_or(false)
}

fn stage_targets(inv: &Inventory, env: &Environment, phase: &Phase) -> Vec<Target> {
    if phase.where_ == Where::Local {
        return vec![Target::Local];
    }
    if phase.once {
        return once_node(inv, env, phase)
            .map(|n| vec![Target::Node(n.clone())])
            .unwrap_or_default();
    }
    env.nodes
        .iter()
        .filter(|n| phase_applies(inv, phase, n))
        .map(|n| Target::Node(n.clone()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("environment `{0}` is not defined in the inventory (defined: {1})")]
    UnknownEnvironment(String, String),
    #[error("cannot deploy `{env}`: it has {} and min_in_rotation = {keep}, so no node may leave the balancer\n  = help: lower min_in_rotation, or add nodes", crate::util::count(*total, "node", "nodes"))]
    NoRoomToDrain {
        env: String,
        total: usize,
        keep: usize,
    },
}

pub fn build(inv: &Inventory, env_name: &str, release: &str) -> Result<Plan, PlanError> {
    let env = inv.environment(env_name).ok_or_else(|| {
        PlanError::UnknownEnvironment(
            env_name.to_string(),
            inv.environments
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (index, p) in inv.phases.iter().enumerate() {
        let step = || StageStep {
            name: p.name.clone(),
            index,
            targets: stage_targets(inv, env, p),
        };
        match p.stage {
            Stage::Before => before.push(step()),
            Stage::After => after.push(step()),
            Stage::Node => {}
        }
    }

    let balancer = !env.load_balancers.is_empty();
    let node_plans = env
        .nodes
        .iter()
        .map(|node| {
            let mut steps = Vec::new();
            if balancer {
                steps.push(NodeStep::Drain);
            }
            for (index, p) in inv.phases.iter().enumerate() {
                if p.stage != Stage::Node {
                    continue;
                }
                let runs_here = if p.once {
                    once_node(inv, env, p) == Some(node)
                } else {
                    phase_applies(inv, p, node)
                };
                if !runs_here {
                    continue;
                }
                let target = if p.where_ == Where::Local {
                    Target::Local
                } else {
                    Target::Node(node.clone())
                };
                steps.push(NodeStep::Phase {
                    name: p.name.clone(),
                    index,
                    target,
                });
            }
            steps.push(NodeStep::Health);
            if balancer {
                steps.push(NodeStep::Enable);
            }
            NodePlan {
                node: node.clone(),
                steps,
            }
        })
        .collect();

    let total = env.nodes.len();
    let mut notes = Vec::new();
    // (size, gate after it: None = no gate, Some(None) = manual, Some(Some(d)) = timed)
    let mut shape: Vec<(usize, Option<Option<std::time::Duration>>)> = Vec::new();
    let mut groups = Vec::new();
    match &env.strategy {
        Strategy::Rolling => {
            for (i, size) in batch_sizes(&env.batches, total).into_iter().enumerate() {
                let gate = (i == 0 && env.pause_after_first).then_some(None);
                shape.push((size, gate));
            }
        }
        Strategy::Canary { steps } => {
            let mut done = 0usize;
            for step in steps {
                match step {
                    CanaryStep::Nodes(b) => {
                        let target = node_count(*b, total).clamp(done.min(total), total);
                        if target > done {
                            shape.push((target - done, None));
                            done = target;
                        }
                    }
                    CanaryStep::Pause(wait) => match shape.last_mut() {
                        Some(last) if last.1.is_none() => last.1 = Some(*wait),
                        Some(_) => {}
                        None => notes.push("a canary pause before any node is ignored".to_string()),
                    },
                }
            }
            if done < total {
                notes.push(format!("the canary steps stop at {done} of {total} nodes; the last {} follow in one batch", total - done));
                shape.push((total - done, None));
            }
        }
        Strategy::BlueGreen { groups: g } => {
            // The idle group is known only once the balancer is read; the plan lists both.
            groups = g.clone();
            for (_, members) in g {
                shape.push((members.len(), None));
            }
        }
    }
    // min_in_rotation: a batch may not take more nodes out than the balancer can spare.
    if balancer && !matches!(env.strategy, Strategy::BlueGreen { .. }) {
        let keep = env
            .load_balancers
            .iter()
            .map(|b| b.min_in_rotation)
            .max()
            .unwrap_or(0);
        if keep >= total {
            return Err(PlanError::NoRoomToDrain {
                env: env.name.clone(),
                total,
                keep,
            });
        }
        shape = narrow(shape, total - keep, keep, &mut notes);
    }
    let mut batches = Vec::new();
    let mut gates = Vec::new();
    let mut gate_waits = Vec::new();
    if let Strategy::BlueGreen { groups: g } = &env.strategy {
        batches = g.iter().map(|(_, m)| m.clone()).collect();
    } else {
        let mut rest = env.nodes.iter();
        let count = shape.len();
        for (i, (size, gate)) in shape.into_iter().enumerate() {
            batches.push(rest.by_ref().take(size).cloned().collect::<Vec<_>>());
            if let Some(wait) = gate {
                if i + 1 < count {
                    gates.push(i);
                    if let Some(d) = wait {
                        gate_waits.push((i, d.as_millis() as u64));
                    }
                }
            }
        }
    }

    Ok(Plan {
        app: inv.app.name.clone(),
        env: env.name.clone(),
        release: release.to_string(),
        strategy: env.strategy.word().into(),
        nodes: env.nodes.clone(),
        before,
        batches,
        gates,
        gate_waits,
        groups,
        notes,
        node_plans,
        after,
        balancer,
        health: env.health.is_some(),
    })
}

/// Index of the `switch` phase in the inventory, if any.
pub(crate) fn switch_index(inv: &Inventory) -> Option<usize> {
    inv.phases
        .iter()
        .position(|p| matches!(p.action, Action::Builtin(Builtin::Switch)))
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Local => "this machine".into(),
        Target::Node(n) => n.clone(),
    }
}

/// The plan as a person reads it.
pub fn render_text(plan: &Plan, inv: &Inventory) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan: deploy {} {} to {} ({}, {} nodes, {} batches)",
        plan.app,
        plan.release,
        plan.env,
        plan.strategy,
        plan.nodes.len(),
        plan.batches.len()
    );
    let stage = |s: &mut String, title: &str, steps: &[StageStep]| {
        if steps.is_empty() {
            return;
        }
        let _ = writeln!(s, "\n{title}:");
        for (i, st) in steps.iter().enumerate() {
            let p = &inv.phases[st.index];
            let mut how = st
                .targets
                .iter()
                .map(target_text)
                .collect::<Vec<_>>()
                .join(", ");
            if p.once {
                how.push_str(" (once");
                if !p.roles.is_empty() {
                    how.push_str(&format!(", first node with role {}", p.roles.join("|")));
                }
                how.push(')');
            }
            if st.targets.is_empty() {
                how = "no node matches; skipped".into();
            }
            let _ = writeln!(s, "  {}. {:<24} on {}", i + 1, st.name, how);
        }
    };
    for n in &plan.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if !plan.groups.is_empty() {
        let _ = writeln!(
            s,
            "\nBlue-green: {}. The group the balancer does not serve is deployed in parallel, checked, then the balancer switches to it in one step; the other group stays on standby.",
            plan.groups.iter().map(|(g, m)| format!("{g} = {}", m.join(", "))).collect::<Vec<_>>().join("; ")
        );
    }
    stage(&mut s, "Before the batches", &plan.before);
    for (i, batch) in plan.batches.iter().enumerate() {
        let _ = writeln!(
            s,
            "\nBatch {} of {}: {}",
            i + 1,
            plan.batches.len(),
            batch.join(", ")
        );
        for node in batch {
            if let Some(np) = plan.node_plan(node) {
                let steps: Vec<String> = np
                    .steps
                    .iter()
                    .map(|st| match st {
                        NodeStep::Phase {
                            name,
                            target: Target::Local,
                            ..
                        } => format!("{name} (local)"),
                        NodeStep::Phase { name, index, .. } if inv.phases[*index].once => {
                            format!("{name} (once)")
                        }
                        NodeStep::Health if !plan.health => "health (none configured)".into(),
                        other => other.label().to_string(),
                    })
                    .collect();
                let _ = writeln!(s, "  {node}: {}", steps.join(" → "));
            }
        }
        if plan.gates.contains(&i) {
            let _ = writeln!(
                s,
                "  ── gate: waits for the operator to promote (pause_after_first) ──"
            );
        }
    }
    stage(&mut s, "After the batches", &plan.after);
    if !inv.checks.is_empty() {
        let cl = &inv.checklist;
        let _ = writeln!(
            s,
            "\nChecklist (every {}; {}):",
            humantime::format_duration(cl.interval),
            if cl.auto_rollback {
                "the decision tree rolls back by itself"
            } else {
                "the decision tree asks the operator"
            }
        );
        for (w, d) in [
            (crate::inventory::Window::Immediate, cl.immediate),
            (crate::inventory::Window::Short, cl.short),
            (crate::inventory::Window::Long, cl.long),
        ] {
            let names: Vec<String> = inv
                .checks
                .iter()
                .filter(|c| c.window == w)
                .map(|c| format!("{} [{}]", c.name, c.kind.word()))
                .collect();
            if names.is_empty() {
                continue;
            }
            let how_long = if d.is_zero() {
                "skipped".to_string()
            } else {
                humantime::format_duration(d).to_string()
            };
            let _ = writeln!(s, "  {} ({how_long}): {}", w.word(), names.join(", "));
        }
    }
    s
}

/// Batches of at most `max` nodes (the nodes a balancer can spare while `keep` stay in
/// rotation): a larger batch is split in order, and its gate (a pause after it) goes with its
/// last part. Each split is said in `notes`.
fn narrow<G>(
    shape: Vec<(usize, Option<G>)>,
    max: usize,
    keep: usize,
    notes: &mut Vec<String>,
) -> Vec<(usize, Option<G>)> {
    let mut narrowed = Vec::new();
    for (size, gate) in shape {
        if size > max {
            notes.push(format!(
                "a batch of {size} is narrowed to {max} so that {} in rotation (min_in_rotation = {keep})",
                if keep == 1 { "1 node stays".to_string() } else { format!("{keep} nodes stay") }
            ));
            let mut left = size;
            let mut gate = Some(gate);
            while left > 0 {
                let n = left.min(max);
                left -= n;
                narrowed.push((
                    n,
                    if left == 0 {
                        gate.take().flatten()
                    } else {
                        None
                    },
                ));
            }
        } else {
            narrowed.push((size, gate));
        }
    }
    narrowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_larger_than_the_balancer_can_spare_are_split_and_keep_their_gate_last() {
        let mut notes = Vec::new();
        // 6 nodes, min_in_rotation 2: at most 4 out at once.
        let shape = vec![(1, Some("canary")), (5, Some("half")), (0, None)];
        let out = narrow(shape, 4, 2, &mut notes);
        assert_eq!(
            out,
            vec![(1, Some("canary")), (4, None), (1, Some("half")), (0, None)]
        );
        assert_eq!(
            notes,
            vec!["a batch of 5 is narrowed to 4 so that 2 nodes stay in rotation (min_in_rotation = 2)"]
        );
        // A batch of exactly the limit is left as it is; a limit of 1 goes node by node.
        let mut notes = Vec::new();
        assert_eq!(
            narrow(vec![(4, None::<()>)], 4, 2, &mut notes),
            vec![(4, None)]
        );
        assert!(notes.is_empty());
        assert_eq!(
            narrow(vec![(3, Some(()))], 1, 1, &mut notes),
            vec![(1, None), (1, None), (1, Some(()))]
        );
        assert_eq!(
            notes[0],
            "a batch of 3 is narrowed to 1 so that 1 node stays in rotation (min_in_rotation = 1)"
        );
    }

    #[test]
    fn ramp_of_five_is_one_two_two() {
        let ramp = [
            BatchSize::Count(1),
            BatchSize::Percent(50.0),
            BatchSize::Percent(100.0),
        ];
        assert_eq!(batch_sizes(&ramp, 5), vec![1, 2, 2]);
    }

    #[test]
    fn last_entry_repeats_and_percent_never_below_one() {
        assert_eq!(
            batch_sizes(&[BatchSize::Percent(25.0)], 10),
            vec![2, 2, 2, 2, 2]
        );
        assert_eq!(batch_sizes(&[BatchSize::Percent(10.0)], 3), vec![1, 1, 1]);
        assert_eq!(batch_sizes(&[BatchSize::Count(2)], 5), vec![2, 2, 1]);
        assert_eq!(
            batch_sizes(&[BatchSize::Count(1), BatchSize::Percent(100.0)], 4),
            vec![1, 3]
        );
        assert_eq!(batch_sizes(&[BatchSize::Count(3)], 0), Vec::<usize>::new());
    }
}
