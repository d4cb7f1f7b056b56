//! The run's policy decisions, as pure functions: what a node's failure leads to (`max_fail`,
//! `on_failure`, headless), and where a rollback sends each node (`deckhand rollback`, `--to`,
//! `resume --rollback`). The run loop acts on the answers; nothing here touches a node.

use std::collections::BTreeMap;

use super::remote::NodeSnapshot;
use crate::inventory::OnFailure;

/// What a run does after a node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Within `max_fail`: recover the node and go on.
    Tolerate,
    /// Roll back the run. `headless_pause`: `on_failure` said pause, but nobody is there.
    RollBack {
        headless_pause: bool,
    },
    Abort,
    /// Open a gate after the batch: the operator promotes (go on without it), rolls back or
    /// aborts.
    Gate,
}

/// Decide what the `failed`-th failure of `total` nodes leads to.
pub(crate) fn after_failure(
    failed: usize,
    total: usize,
    max_fail: f64,
    on_failure: OnFailure,
    headless: bool,
) -> AfterFailure {
    if super::ledger::within_max_fail(failed, total, max_fail) {
        return AfterFailure::Tolerate;
    }
    match on_failure {
        OnFailure::Pause if headless => AfterFailure::RollBack {
            headless_pause: true,
        },
        OnFailure::Pause => AfterFailure::Gate,
        OnFailure::Rollback => AfterFailure::RollBack {
            headless_pause: false,
        },
        OnFailure::Abort => AfterFailure::Abort,
    }
}

/// What a rollback run puts each node back on.
#[derive(Debug, Clone)]
pub enum RollbackTarget {
    /// Each node's previous release (from its history).
    Previous,
    /// This release, on every node.
    Release(String),
    /// After a crash: each node back to the release it had before the interrupted run; the
    /// release that run was deploying is removed where it is not live.
    Resume {
        to: BTreeMap<String, String>,
        abandon: String,
    },
}

impl RollbackTarget {
    /// The target in words, as the run's `Started` event names it.
    pub fn label(&self) -> String {
        match self {
            RollbackTarget::Previous => "previous".to_string(),
            RollbackTarget::Release(r) => r.clone(),
            RollbackTarget::Resume { .. } => {
                "the releases live before the interrupted run".to_string()
            }
        }
    }
}

/// Where a rollback sends each node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RollbackMoves {
    /// (node, release) for nodes that must switch back.
    pub moves: Vec<(String, String)>,
    /// (node, release) for nodes already on their target: left alone (but put back into
    /// rotation if a crash left them out).
    pub in_place: Vec<(String, String)>,
}

/// The release a node ran before the last run that switched it to its current release, whatever
/// that run's outcome (a run whose rollback failed records its deploy as failed).
fn came_from(s: &NodeSnapshot) -> Option<String> {
    let current = s.current.as_ref()?;
    s.history
        .iter()
        .rev()
        .find(|h| h.kind == "deploy" && &h.release == current)
        .and_then(|h| h.from.clone())
        .filter(|f| f != current && s.releases.contains(f))
}

/// Resolve a rollback target against what each node holds. Every node must have somewhere to go
/// before anything changes: Err lists every node that has not.
pub(crate) fn plan_rollback(
    target: &RollbackTarget,
    nodes: &[(String, NodeSnapshot)],
) -> Result<RollbackMoves, Vec<String>> {
    let mut out = RollbackMoves::default();
    let mut problems = Vec::new();
    // Nodes on different releases (a run whose own rollback could not finish left one node on
    // the new release): "previous" is then one release for all of them, the one every node runs
    // or ran just before, not each node's own previous (which would split them further).
    let currents: std::collections::BTreeSet<&str> = nodes
        .iter()
        .filter_map(|(_, s)| s.current.as_deref())
        .collect();
    let common = match target {
        RollbackTarget::Previous if currents.len() > 1 => {
            let fits: Vec<&str> = currents
                .iter()
                .copied()
                .filter(|t| {
                    nodes.iter().all(|(_, s)| {
                        s.current.as_deref() == Some(*t)
                            || s.previous().as_deref() == Some(*t)
                            || came_from(s).as_deref() == Some(*t)
                    })
                })
                .collect();
            match fits.as_slice() {
                [t] => Some(t.to_string()),
                _ => {
                    let on: Vec<String> = nodes
                        .iter()
                        .map(|(n, s)| {
                            format!("{n} on {}", s.current.as_deref().unwrap_or("nothing"))
                        })
                        .collect();
                    return Err(vec![format!(
                        "the nodes run different releases ({}) and no release is live or previous on every one of them; roll back with --to RELEASE",
                        on.join(", ")
                    )]);
                }
            }
        }
        RollbackTarget::Previous => {
            // One release everywhere, but each node came to it from its own (a node left behind
            // by an earlier run that could not finish): going back to each one's own previous
            // would split the environment. Which one is right is the operator's call.
            let before: std::collections::BTreeSet<String> =
                nodes.iter().filter_map(|(_, s)| s.previous()).collect();
            if before.len() > 1 {
                let each: Vec<String> = nodes
                    .iter()
                    .map(|(n, s)| format!("{n} {}", s.previous().as_deref().unwrap_or("none")))
                    .collect();
                return Err(vec![format!(
                    "the nodes run {} but ran different releases before it ({}); roll back with --to RELEASE",
                    currents.iter().next().copied().unwrap_or("nothing"),
                    each.join(", ")
                )]);
            }
            None
        }
        _ => None,
    };
    for (n, snap) in nodes {
        let to = match target {
            RollbackTarget::Previous if common.is_some() => common.clone(),
            RollbackTarget::Release(r) if snap.releases.contains(r) => Some(r.clone()),
            RollbackTarget::Release(r) => {
                problems.push(format!(
                    "{n}: release {r} is not on the node (has: {})",
                    snap.releases.join(", ")
                ));
                None
            }
            RollbackTarget::Previous => match snap.previous() {
                Some(p) => Some(p),
                None => {
                    problems.push(format!("{n}: no previous release to go back to"));
                    None
                }
            },
            RollbackTarget::Resume { to, .. } => match to.get(n) {
                Some(r) if snap.releases.contains(r) => Some(r.clone()),
                Some(r) => {
                    problems.push(format!(
                        "{n}: release {r}, live before the interrupted run, is gone from the node"
                    ));
                    None
                }
                None => None,
            },
        };
        if let Some(to) = to {
            if snap.current.as_deref() == Some(to.as_str()) {
                out.in_place.push((n.clone(), to));
            } else {
                out.moves.push((n.clone(), to));
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_within_max_fail_are_tolerated_whatever_on_failure_says() {
        for on in [OnFailure::Pause, OnFailure::Rollback, OnFailure::Abort] {
            assert_eq!(after_failure(1, 10, 0.1, on, false), AfterFailure::Tolerate);
        }
    }

    #[test]
    fn beyond_max_fail_on_failure_decides_and_a_headless_pause_rolls_back() {
        assert_eq!(
            after_failure(1, 5, 0.0, OnFailure::Pause, false),
            AfterFailure::Gate
        );
        assert_eq!(
            after_failure(1, 5, 0.0, OnFailure::Pause, true),
            AfterFailure::RollBack {
                headless_pause: true
            }
        );
        assert_eq!(
            after_failure(2, 5, 0.2, OnFailure::Rollback, false),
            AfterFailure::RollBack {
                headless_pause: false
            }
        );
        assert_eq!(
            after_failure(2, 5, 0.2, OnFailure::Abort, true),
            AfterFailure::Abort
        );
    }

    fn snap(current: &str, releases: &[&str]) -> NodeSnapshot {
        NodeSnapshot {
            current: Some(current.into()),
            releases: releases.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_rollback_to_a_release_needs_it_on_every_node_and_leaves_nodes_already_there() {
        let nodes = vec![
            ("web-1".to_string(), snap("v3", &["v3", "v2", "v1"])),
            ("web-2".to_string(), snap("v2", &["v3", "v2"])),
        ];
        let m = plan_rollback(&RollbackTarget::Release("v2".into()), &nodes).unwrap();
        assert_eq!(m.moves, vec![("web-1".to_string(), "v2".to_string())]);
        assert_eq!(m.in_place, vec![("web-2".to_string(), "v2".to_string())]);
        let err = plan_rollback(&RollbackTarget::Release("v1".into()), &nodes).unwrap_err();
        assert_eq!(
            err,
            vec!["web-2: release v1 is not on the node (has: v3, v2)"]
        );
    }

    /// A run whose rollback could not finish left web-1 on v3 and web-2 on v2: a rollback to
    /// previous brings web-1 back to v2 and leaves web-2 there, instead of sending web-2 on to v1.
    #[test]
    fn a_rollback_to_previous_of_nodes_that_disagree_brings_them_to_one_release() {
        let nodes = vec![
            ("web-1".to_string(), snap("v3", &["v3", "v2", "v1"])),
            ("web-2".to_string(), snap("v2", &["v3", "v2", "v1"])),
            ("web-3".to_string(), snap("v2", &["v3", "v2", "v1"])),
        ];
        let m = plan_rollback(&RollbackTarget::Previous, &nodes).unwrap();
        assert_eq!(m.moves, vec![("web-1".to_string(), "v2".to_string())]);
        assert_eq!(
            m.in_place,
            vec![
                ("web-2".to_string(), "v2".to_string()),
                ("web-3".to_string(), "v2".to_string())
            ]
        );
        // The run that left web-1 and web-2 on v4 recorded its deploy there as failed (its
        // rollback could not finish); their directories say v3 came before (left by an earlier
        // failed run), their history says v2: the history decides.
        let mut failed_run = snap("v4", &["v4", "v3", "v2"]);
        failed_run.history = vec![crate::engine::remote::HistoryEntry {
            from: Some("v2".into()),
            ..crate::engine::remote::HistoryEntry::new("d9", "deploy", "v4", "ann", "t", "failed")
        }];
        let nodes = vec![
            ("web-1".to_string(), failed_run.clone()),
            ("web-2".to_string(), failed_run),
            ("web-3".to_string(), snap("v2", &["v4", "v3", "v2"])),
        ];
        let m = plan_rollback(&RollbackTarget::Previous, &nodes).unwrap();
        assert_eq!(
            m.moves,
            vec![
                ("web-1".to_string(), "v2".to_string()),
                ("web-2".to_string(), "v2".to_string())
            ]
        );
        // No release every node runs or ran just before: refused, nothing planned.
        let nodes = vec![
            ("web-1".to_string(), snap("v3", &["v3", "v2", "v1"])),
            ("web-2".to_string(), snap("v1", &["v1"])),
        ];
        let err = plan_rollback(&RollbackTarget::Previous, &nodes).unwrap_err();
        assert!(
            err[0].contains("web-1 on v3, web-2 on v1") && err[0].contains("--to"),
            "{err:?}"
        );
    }

    /// Every node on v4, but web-3 came to it from v3 and the others from v2 (web-3 was left
    /// behind on v3 by an earlier run): "previous" would split them; refused, nothing planned.
    #[test]
    fn a_rollback_to_previous_of_nodes_that_came_from_different_releases_is_refused() {
        let came = |from: &str| {
            let mut s = snap("v4", &["v4", "v3", "v2"]);
            s.history = vec![crate::engine::remote::HistoryEntry {
                from: Some(from.into()),
                ..crate::engine::remote::HistoryEntry::new("d9", "deploy", "v4", "ann", "t", "ok")
            }];
            s
        };
        let nodes = vec![
            ("web-1".to_string(), came("v2")),
            ("web-2".to_string(), came("v2")),
            ("web-3".to_string(), came("v3")),
        ];
        let err = plan_rollback(&RollbackTarget::Previous, &nodes).unwrap_err();
        assert!(
            err[0].contains("run v4")
                && err[0].contains("web-1 v2, web-2 v2, web-3 v3")
                && err[0].contains("--to RELEASE"),
            "{err:?}"
        );
        // Came from the same release: a rollback like any other.
        let nodes = vec![
            ("web-1".to_string(), came("v2")),
            ("web-2".to_string(), came("v2")),
        ];
        let m = plan_rollback(&RollbackTarget::Previous, &nodes).unwrap();
        assert_eq!(m.moves.len(), 2);
        // An explicit release is the operator's choice: planned as asked.
        let nodes = vec![
            ("web-1".to_string(), came("v2")),
            ("web-3".to_string(), came("v3")),
        ];
        let m = plan_rollback(&RollbackTarget::Release("v3".into()), &nodes).unwrap();
        assert_eq!(
            m.moves,
            vec![
                ("web-1".to_string(), "v3".to_string()),
                ("web-3".to_string(), "v3".to_string())
            ]
        );
    }

    #[test]
    fn a_rollback_to_previous_needs_a_previous_release_everywhere() {
        let nodes = vec![
            ("web-1".to_string(), snap("v3", &["v3", "v2"])),
            ("web-2".to_string(), snap("v3", &["v3"])),
        ];
        let err = plan_rollback(&RollbackTarget::Previous, &nodes).unwrap_err();
        assert_eq!(err, vec!["web-2: no previous release to go back to"]);
    }

    #[test]
    fn a_resume_rollback_sends_each_node_to_its_release_before_the_run() {
        let to: BTreeMap<String, String> = [
            ("web-1".to_string(), "v1".to_string()),
            ("web-2".to_string(), "v1".to_string()),
        ]
        .into();
        let target = RollbackTarget::Resume {
            to,
            abandon: "v2".into(),
        };
        let nodes = vec![
            ("web-1".to_string(), snap("v2", &["v2", "v1"])),
            ("web-2".to_string(), snap("v1", &["v2", "v1"])),
            // Not in the interrupted run's record: left alone.
            ("web-3".to_string(), snap("v2", &["v2"])),
        ];
        let m = plan_rollback(&target, &nodes).unwrap();
        assert_eq!(m.moves, vec![("web-1".to_string(), "v1".to_string())]);
        assert_eq!(m.in_place, vec![("web-2".to_string(), "v1".to_string())]);
        let gone = vec![("web-1".to_string(), snap("v2", &["v2"]))];
        assert_eq!(
            plan_rollback(&target, &gone).unwrap_err(),
            vec!["web-1: release v1, live before the interrupted run, is gone from the node"]
        );
    }
}
