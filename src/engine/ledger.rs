//! The ledger: what this run knows about each node, and the decisions that follow from it alone.
//!
//! Every fact is recorded here as it becomes true (preflight read the node, this run created its
//! release directory, drained it, switched it, finished it, failed it, rolled it back); the
//! questions the run asks later (which nodes to roll back and in which order, what an abort must
//! undo, who is out of rotation, which release each node ended on) are answered by pure
//! functions over those facts. Nothing here runs a command or emits an event, so every decision
//! is unit-tested without a node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::remote::NodeSnapshot;
use crate::event::NodeRelease;

/// One node's facts, as this run recorded them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct NodeFacts {
    /// The node as preflight read it.
    pub snapshot: NodeSnapshot,
    /// The release live when this run started.
    pub live_before: Option<String>,
    /// The release `current` points at now (measured after every switch).
    pub current: Option<String>,
    /// This run created `releases/<release>` on the node.
    pub created: bool,
    /// Order in which the node first switched (for newest-first rollback).
    pub switched: Option<u64>,
    /// This run took the node out of rotation and has not put it back.
    pub drained: bool,
    /// The node went through its whole turn.
    pub done: bool,
    pub failed: bool,
    /// Left alone: it was already where this run wanted it.
    pub skipped: bool,
    pub rolled_back: bool,
}

/// The nodes a rollback touches, in the order it touches them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RollbackOrder {
    /// Nodes that switched, newest switch first: each goes back to its release before the run.
    pub switched: Vec<String>,
    /// Nodes caught mid-way (release built or node drained, never switched): undone in place.
    pub midway: Vec<String>,
}

impl RollbackOrder {
    /// Every node the rollback names, in order.
    pub fn nodes(&self) -> Vec<String> {
        self.switched
            .iter()
            .chain(self.midway.iter())
            .cloned()
            .collect()
    }
}

/// What an abort leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AbortPlan {
    /// Nodes that never switched but were touched: their unfinished release is removed and they
    /// go back into rotation.
    pub undo: Vec<String>,
    /// Nodes that switched but did not finish their turn: they stay on the new release, and are
    /// named (with whether they are still out of rotation).
    pub left: Vec<(String, bool)>,
}

/// How a failed or stopped node is put back on a whole release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// It switched: roll it back to its release before the run.
    RollBack,
    /// It never switched: remove what the run built (`remove_release`) and put it back into
    /// rotation where it was drained (`enable`).
    Undo { remove_release: bool, enable: bool },
}

/// Whether a node on `release` got there through a turn that never finished: the run that
/// switched it was stopped (its console killed) before the node's turn wrote its history line,
/// so the phases after `switch` (restart, ...) may never have run. A node whose newest deploy
/// or rollback line is a finished turn to `release` (a deploy of it, or a rollback to it) is
/// where that turn left it.
pub(crate) fn turn_unfinished(snap: &NodeSnapshot, release: &str) -> bool {
    if snap.current.as_deref() != Some(release) {
        return false;
    }
    let last = snap
        .history
        .iter()
        .rev()
        .find(|h| h.kind == "deploy" || h.kind == "rollback");
    !last.is_some_and(|h| h.result == "ok" && h.release == release)
}

/// The rollback order over `nodes` (plan order) and their facts.
pub(crate) fn rollback_order(nodes: &[(String, NodeFacts)]) -> RollbackOrder {
    let mut switched: Vec<(u64, String)> = Vec::new();
    let mut midway = Vec::new();
    for (n, f) in nodes {
        if f.rolled_back {
            continue;
        }
        match f.switched {
            Some(order) => switched.push((order, n.clone())),
            None if f.created || f.drained => midway.push(n.clone()),
            None => {}
        }
    }
    switched.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
    RollbackOrder {
        switched: switched.into_iter().map(|(_, n)| n).collect(),
        midway,
    }
}

/// What an abort must undo and what it leaves switched.
pub(crate) fn abort_plan(nodes: &[(String, NodeFacts)]) -> AbortPlan {
    let mut plan = AbortPlan::default();
    for (n, f) in nodes {
        let switched = f.switched.is_some();
        if !switched && (f.created || f.drained) {
            plan.undo.push(n.clone());
        } else if switched && !f.done {
            plan.left.push((n.clone(), f.drained));
        }
    }
    plan
}

/// How to recover one node from its facts. `keeps_out`: the node stays out of rotation by
/// design (a blue-green group that is not serving), so it is never put back.
pub(crate) fn recovery(f: &NodeFacts, keeps_out: bool) -> Recovery {
    if f.switched.is_some() {
        Recovery::RollBack
    } else {
        Recovery::Undo {
            remove_release: f.created,
            enable: f.drained && !keeps_out,
        }
    }
}

/// Which release each node is on, grouped: `web-1, web-2 on v1.1; web-3 on v1.0`.
pub(crate) fn release_summary(nodes: &[(String, NodeFacts)]) -> String {
    let mut by_release: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, f) in nodes {
        let r = f.current.clone().unwrap_or_else(|| "no release".into());
        by_release.entry(r).or_default().push(n.clone());
    }
    by_release
        .into_iter()
        .map(|(r, ns)| format!("{} on {r}", ns.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A failure is tolerated while the share of failed nodes stays within `max_fail`.
pub(crate) fn within_max_fail(failed: usize, total: usize, max_fail: f64) -> bool {
    (failed as f64) / (total.max(1) as f64) <= max_fail + 1e-9
}

/// The facts of every node of a run, behind one lock. Nodes are kept in plan order.
pub(crate) struct Ledger {
    order: Vec<String>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    facts: HashMap<String, NodeFacts>,
    switches: u64,
}

impl Ledger {
    pub fn new(nodes: &[String]) -> Self {
        Ledger {
            order: nodes.to_vec(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn with<R>(&self, node: &str, f: impl FnOnce(&mut NodeFacts) -> R) -> R {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(g.facts.entry(node.to_string()).or_default())
    }

    /// A copy of one node's facts.
    pub(crate) fn facts(&self, node: &str) -> NodeFacts {
        self.with(node, |f| f.clone())
    }

    /// Every node's facts, in plan order.
    pub fn all(&self) -> Vec<(String, NodeFacts)> {
        let g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.order
            .iter()
            .map(|n| (n.clone(), g.facts.get(n).cloned().unwrap_or_default()))
            .collect()
    }

    // ------------------------------------------------------------ facts as they become true

    /// Preflight read the node: its live release is the one before this run.
    pub(crate) fn read_at_start(&self, node: &str, snap: NodeSnapshot) {
        self.with(node, |f| {
            f.live_before = snap.current.clone();
            f.current = snap.current.clone();
            f.snapshot = snap;
        });
    }

    /// A later read of the node's lock (while waiting for a lock to be released).
    pub(crate) fn reread_lock(&self, node: &str, snap: &NodeSnapshot) {
        self.with(node, |f| {
            f.snapshot.locked = snap.locked;
            f.snapshot.lock = snap.lock.clone();
            f.snapshot.lock_age_s = snap.lock_age_s;
        });
    }

    /// A resumed run finds `node` switched to `release` by the interrupted one, its turn
    /// unfinished (see [`turn_unfinished`]): its release before that run is the one before
    /// `release`, not `release` itself. Answers whether that is so.
    pub(crate) fn resumed_after_switch(&self, node: &str, release: &str) -> bool {
        self.with(node, |f| {
            let unfinished = turn_unfinished(&f.snapshot, release);
            if unfinished {
                f.live_before = f.snapshot.previous();
            }
            unfinished
        })
    }

    pub(crate) fn set_created(&self, node: &str, created: bool) {
        self.with(node, |f| f.created = created);
    }

    pub(crate) fn set_drained(&self, node: &str, drained: bool) {
        self.with(node, |f| f.drained = drained);
    }

    /// `current` was switched and now points at `now`; the first switch takes the next place
    /// in the rollback order.
    pub fn switched(&self, node: &str, now: Option<String>) {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.switches += 1;
        let order = g.switches;
        let f = g.facts.entry(node.to_string()).or_default();
        f.current = now;
        if f.switched.is_none() {
            f.switched = Some(order);
        }
    }

    pub(crate) fn mark_done(&self, node: &str) {
        self.with(node, |f| f.done = true);
    }

    /// Records the failure; answers how many nodes of the run have failed so far.
    pub(crate) fn mark_failed(&self, node: &str) -> usize {
        self.with(node, |f| f.failed = true);
        self.all().iter().filter(|(_, f)| f.failed).count()
    }

    pub(crate) fn mark_skipped(&self, node: &str) {
        self.with(node, |f| f.skipped = true);
    }

    pub(crate) fn mark_rolled_back(&self, node: &str) {
        self.with(node, |f| f.rolled_back = true);
    }

    // ------------------------------------------------------------ questions

    pub(crate) fn live_before(&self, node: &str) -> Option<String> {
        self.with(node, |f| f.live_before.clone())
    }

    pub fn current(&self, node: &str) -> Option<String> {
        self.with(node, |f| f.current.clone())
    }

    /// The node's turn is over with the release on it (deployed, or already there).
    pub(crate) fn landed(&self, node: &str) -> bool {
        self.with(node, |f| f.done || f.skipped)
    }

    /// Nodes that finished their turn in this run.
    pub(crate) fn done_nodes(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(_, f)| f.done)
            .map(|(n, _)| n)
            .collect()
    }

    /// Nodes this run took out of rotation and has not put back.
    pub(crate) fn out_of_rotation(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|(_, f)| f.drained)
            .map(|(n, _)| n)
            .collect()
    }

    pub(crate) fn rollback_order(&self) -> RollbackOrder {
        rollback_order(&self.all())
    }

    pub(crate) fn abort_plan(&self) -> AbortPlan {
        abort_plan(&self.all())
    }

    pub(crate) fn release_summary(&self) -> String {
        release_summary(&self.all())
    }

    /// Each node and the release it is on now, for the run's last event.
    pub fn releases(&self) -> Vec<NodeRelease> {
        self.all()
            .into_iter()
            .map(|(node, f)| NodeRelease {
                node,
                release: f.current,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, f: NodeFacts) -> (String, NodeFacts) {
        (name.to_string(), f)
    }

    fn switched(order: u64) -> NodeFacts {
        NodeFacts {
            switched: Some(order),
            created: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_node_switched_by_a_run_that_never_finished_its_turn_is_unfinished() {
        use crate::engine::remote::HistoryEntry;
        let line = |kind: &str, release: &str, result: &str| {
            HistoryEntry::new("d-1", kind, release, "ops", "2026-12-02T10:00:00Z", result)
        };
        let snap = |current: &str, history: Vec<HistoryEntry>| NodeSnapshot {
            current: Some(current.into()),
            history,
            releases: vec!["v2".into(), "v1".into()],
            ..Default::default()
        };
        // Switched to v2, killed before the turn's history line: unfinished.
        let cut = snap("v2", vec![line("deploy", "v1", "ok")]);
        assert!(turn_unfinished(&cut, "v2"));
        // Its turn finished (a run's end line after it changes nothing).
        let whole = snap(
            "v2",
            vec![
                line("deploy", "v1", "ok"),
                line("deploy", "v2", "ok"),
                line("finished", "v2", "deployed"),
            ],
        );
        assert!(!turn_unfinished(&whole, "v2"));
        // Not on the release: a turn like any other.
        assert!(!turn_unfinished(&cut, "v3"));
        // Back on v2 by a rollback's finished turn: where that rollback left it.
        let rolled = snap(
            "v2",
            vec![line("deploy", "v3", "ok"), line("rollback", "v2", "ok")],
        );
        assert!(!turn_unfinished(&rolled, "v2"));
        // A failed turn of v2 that left it switched.
        let failed = snap(
            "v2",
            vec![line("deploy", "v1", "ok"), line("deploy", "v2", "failed")],
        );
        assert!(turn_unfinished(&failed, "v2"));

        let ledger = Ledger::new(&["web-1".into()]);
        ledger.read_at_start("web-1", cut);
        assert_eq!(ledger.live_before("web-1").as_deref(), Some("v2"));
        assert!(ledger.resumed_after_switch("web-1", "v2"));
        assert_eq!(ledger.live_before("web-1").as_deref(), Some("v1"));
    }

    #[test]
    fn rollback_goes_newest_switch_first_then_the_nodes_caught_midway() {
        let nodes = vec![
            node("web-1", switched(1)),
            node("web-2", switched(3)),
            node(
                "web-3",
                NodeFacts {
                    created: true,
                    ..Default::default()
                },
            ),
            node("web-4", switched(2)),
            node(
                "web-5",
                NodeFacts {
                    drained: true,
                    ..Default::default()
                },
            ),
            node("web-6", NodeFacts::default()),
        ];
        let order = rollback_order(&nodes);
        assert_eq!(order.switched, vec!["web-2", "web-4", "web-1"]);
        assert_eq!(order.midway, vec!["web-3", "web-5"]);
        assert_eq!(
            order.nodes(),
            vec!["web-2", "web-4", "web-1", "web-3", "web-5"]
        );
    }

    #[test]
    fn a_node_already_rolled_back_is_not_rolled_back_twice() {
        let mut f = switched(1);
        f.rolled_back = true;
        let order = rollback_order(&[node("web-1", f), node("web-2", switched(2))]);
        assert_eq!(order.switched, vec!["web-2"]);
        assert!(order.midway.is_empty());
    }

    #[test]
    fn abort_undoes_unswitched_work_and_names_switched_unfinished_nodes() {
        let mut left_out = switched(1);
        left_out.drained = true;
        let mut finished = switched(2);
        finished.done = true;
        let plan = abort_plan(&[
            node("web-1", left_out),
            node("web-2", finished),
            node(
                "web-3",
                NodeFacts {
                    created: true,
                    drained: true,
                    ..Default::default()
                },
            ),
            node("web-4", NodeFacts::default()),
            node("web-5", switched(3)),
        ]);
        assert_eq!(plan.undo, vec!["web-3"]);
        assert_eq!(
            plan.left,
            vec![("web-1".to_string(), true), ("web-5".to_string(), false)]
        );
    }

    #[test]
    fn recovery_rolls_back_a_switched_node_and_undoes_the_rest() {
        assert_eq!(recovery(&switched(1), false), Recovery::RollBack);
        let midway = NodeFacts {
            created: true,
            drained: true,
            ..Default::default()
        };
        assert_eq!(
            recovery(&midway, false),
            Recovery::Undo {
                remove_release: true,
                enable: true
            }
        );
        // A blue-green node that is not serving stays out.
        assert_eq!(
            recovery(&midway, true),
            Recovery::Undo {
                remove_release: true,
                enable: false
            }
        );
    }

    #[test]
    fn the_summary_groups_nodes_by_release() {
        let on = |r: Option<&str>| NodeFacts {
            current: r.map(String::from),
            ..Default::default()
        };
        let s = release_summary(&[
            node("web-1", on(Some("v1.1"))),
            node("web-2", on(Some("v1.0"))),
            node("web-3", on(Some("v1.1"))),
            node("web-4", on(None)),
        ]);
        assert_eq!(
            s,
            "web-4 on no release; web-2 on v1.0; web-1, web-3 on v1.1"
        );
    }

    #[test]
    fn max_fail_is_a_share_of_the_nodes_with_its_boundary_included() {
        assert!(within_max_fail(0, 5, 0.0));
        assert!(!within_max_fail(1, 5, 0.0));
        assert!(within_max_fail(1, 5, 0.2));
        assert!(!within_max_fail(2, 5, 0.2));
        assert!(within_max_fail(1, 3, 1.0 / 3.0));
        assert!(within_max_fail(0, 0, 0.0));
    }

    #[test]
    fn the_ledger_keeps_the_first_switch_order_and_the_live_release() {
        let l = Ledger::new(&["a".into(), "b".into()]);
        l.read_at_start(
            "a",
            NodeSnapshot {
                current: Some("v1".into()),
                ..Default::default()
            },
        );
        l.switched("b", Some("v2".into()));
        l.switched("a", Some("v2".into()));
        l.switched("b", Some("v1".into())); // a rollback switch keeps b's place
        assert_eq!(l.facts("a").switched, Some(2));
        assert_eq!(l.facts("b").switched, Some(1));
        assert_eq!(l.live_before("a").as_deref(), Some("v1"));
        assert_eq!(l.current("b").as_deref(), Some("v1"));
        assert_eq!(l.rollback_order().switched, vec!["a", "b"]);
        assert_eq!(l.mark_failed("a"), 1);
        assert_eq!(l.mark_failed("b"), 2);
    }
}
