//! Watching a deployment that another console runs (another terminal, another unix user on this
//! host, another machine that reaches the nodes), read-only, in the same grid.
//!
//! What a watcher shows is read from the nodes and the balancers, never taken on trust: each
//! node's `current` link, its lock with the progress its holder records beside it (state, batch,
//! the nodes in flight and their phase), its history lines of the run, and each balancer's own
//! answer. A [`Watcher`] turns successive reads into the same [`Event`]s a run emits (a pure
//! function of what it read, unit-tested), so the console's reducer and screen are the very same;
//! [`spawn`] reads every [`POLL`] on a task of its own and sends the events over a channel.
//! Nothing here changes a node, and nothing here can reach the run's controls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::status::{NodeStatus, Reader};
use crate::event::{Event, EventKind, Level, NodeState, Outcome, RunKind, StepResult};
use crate::inventory::Environment;

/// How often a watcher reads the nodes: a switch shows within this plus one read.
pub const POLL: Duration = Duration::from_millis(500);

/// What the watcher knows of the run it follows.
#[derive(Debug, Clone, Default)]
struct Seen {
    id: String,
    release: String,
    current: HashMap<String, Option<String>>,
    state: HashMap<String, (NodeState, Option<String>)>,
    rotation: HashMap<String, bool>,
    batch: Option<usize>,
    run_state: String,
    problems: HashMap<String, String>,
    /// When the lock was first seen gone without the run's end recorded yet (the holder writes
    /// the end just after it releases the lock).
    gone_since: Option<i64>,
}

/// How long a watcher waits, once the lock is gone, for the run's recorded end.
const END_GRACE_MS: i64 = 5_000;

/// Turns reads of an environment into the events of the run that holds its lock.
pub struct Watcher {
    inv: Arc<crate::inventory::Inventory>,
    env: Environment,
    seq: u64,
    seen: Option<Seen>,
    /// The run ended (its lock is gone): nothing more is sent.
    pub ended: bool,
}

fn node_state(word: &str) -> Option<NodeState> {
    Some(match word {
        "draining" => NodeState::Draining,
        "updating" => NodeState::Updating,
        "checking health" => NodeState::Checking,
        "enabling" => NodeState::Enabling,
        "rolling back" => NodeState::RollingBack,
        _ => return None,
    })
}

fn outcome_of(word: &str) -> Option<Outcome> {
    [
        Outcome::Deployed,
        Outcome::RolledBack,
        Outcome::Halted,
        Outcome::Aborted,
        Outcome::Partial,
        Outcome::LockHeld,
        Outcome::PreflightFailed,
        Outcome::Failed,
    ]
    .into_iter()
    .find(|o| o.word() == word)
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Watcher {
    pub fn new(inv: Arc<crate::inventory::Inventory>, env: Environment) -> Self {
        Watcher {
            inv,
            env,
            seq: 0,
            seen: None,
            ended: false,
        }
    }

    fn push(&mut self, out: &mut Vec<Event>, at_ms: i64, kind: EventKind) {
        self.seq += 1;
        out.push(Event {
            seq: self.seq,
            at_ms,
            kind,
        });
    }

    /// The events that take the screen from the last read to this one. `rotation` is the
    /// balancers' answer (node → in rotation), when the environment has one and it answered.
    pub fn update(
        &mut self,
        reads: &[NodeStatus],
        rotation: Option<&BTreeMap<String, bool>>,
        now_ms: i64,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if self.seen.is_none() {
            self.start(reads, now_ms, &mut out);
        }
        let Some(mut seen) = self.seen.take() else {
            return out;
        };
        let id = seen.id.clone();
        let progress = reads
            .iter()
            .filter_map(|r| r.progress.as_ref())
            .filter(|p| p.id == id)
            .max_by_key(|p| p.at_ms)
            .cloned();
        // Unreachable nodes say so, once per reason.
        for r in reads {
            match &r.error {
                Some(e) if seen.problems.get(&r.node) != Some(e) => {
                    seen.problems.insert(r.node.clone(), e.clone());
                    self.push(
                        &mut out,
                        now_ms,
                        EventKind::Notice {
                            level: Level::Warn,
                            message: format!("{} cannot be read: {e}", r.node),
                        },
                    );
                }
                None => {
                    seen.problems.remove(&r.node);
                }
                _ => {}
            }
        }
        // The run's own state: pause, gate, rollback.
        if let Some(p) = &progress {
            if let Some(b) = p.batch.filter(|b| Some(*b) != seen.batch) {
                seen.batch = Some(b);
                let nodes = self
                    .plan_batches(&seen.release)
                    .get(b.saturating_sub(1))
                    .cloned()
                    .unwrap_or_default();
                self.push(
                    &mut out,
                    now_ms,
                    EventKind::BatchStarted {
                        index: b.saturating_sub(1),
                        nodes,
                    },
                );
            }
            if p.state != seen.run_state {
                let was = std::mem::replace(&mut seen.run_state, p.state.clone());
                let kind = match (was.as_str(), p.state.as_str()) {
                    (_, "pausing") => Some(EventKind::Pausing),
                    (_, "paused") => Some(EventKind::Paused),
                    (_, "waiting") => Some(EventKind::Gate {
                        reason: "waiting for its operator to promote".into(),
                        until_ms: None,
                    }),
                    (_, "rolling back") => Some(EventKind::RollbackStarted {
                        reason: "its operator or its failure policy asked".into(),
                        nodes: vec![],
                    }),
                    (_, "aborting") => Some(EventKind::Aborting {
                        reason: "its operator aborted".into(),
                    }),
                    ("waiting", _) => Some(EventKind::Promoted),
                    (_, "stepping") => Some(EventKind::Stepping),
                    ("paused" | "pausing" | "stepping", "deploying") => Some(EventKind::Resumed),
                    _ => None,
                };
                if let Some(k) = kind {
                    self.push(&mut out, now_ms, k);
                }
            }
        }
        for r in reads.iter().filter(|r| r.reachable) {
            // The release the node serves, as its `current` link says.
            if seen.current.get(&r.node) != Some(&r.live_release) {
                seen.current.insert(r.node.clone(), r.live_release.clone());
                self.push(
                    &mut out,
                    now_ms,
                    EventKind::NodeRelease {
                        node: r.node.clone(),
                        release: r.live_release.clone(),
                    },
                );
            }
            // What it is doing: in flight by the progress, else by its history lines of the run.
            let in_flight = progress
                .as_ref()
                .and_then(|p| p.nodes.iter().find(|n| n.node == r.node));
            let now = match in_flight {
                Some(n) => (
                    node_state(&n.state).unwrap_or(NodeState::Updating),
                    n.phase.clone(),
                ),
                None => {
                    let last = r
                        .history
                        .iter()
                        .rfind(|h| h.id == id && (h.kind == "deploy" || h.kind == "rollback"));
                    let st = match last.map(|h| (h.kind.as_str(), h.result.as_str())) {
                        Some(("deploy", "ok")) => NodeState::Done,
                        Some(("rollback", "ok")) => NodeState::RolledBack,
                        Some(_) => NodeState::Failed,
                        None => NodeState::Waiting,
                    };
                    (st, None)
                }
            };
            let before = seen
                .state
                .get(&r.node)
                .cloned()
                .unwrap_or((NodeState::Waiting, None));
            if before.1 != now.1 {
                if let Some(p) = &before.1 {
                    self.push(
                        &mut out,
                        now_ms,
                        EventKind::StepFinished {
                            node: Some(r.node.clone()),
                            phase: p.clone(),
                            result: StepResult::Ok,
                            duration_ms: 0,
                            message: None,
                        },
                    );
                }
            }
            if before.0 != now.0 {
                self.push(
                    &mut out,
                    now_ms,
                    EventKind::NodeState {
                        node: r.node.clone(),
                        state: now.0,
                    },
                );
            }
            if before.1 != now.1 {
                if let Some(p) = &now.1 {
                    self.push(
                        &mut out,
                        now_ms,
                        EventKind::StepStarted {
                            node: Some(r.node.clone()),
                            phase: p.clone(),
                            command: None,
                        },
                    );
                }
            }
            seen.state.insert(r.node.clone(), now);
        }
        if let Some(rot) = rotation {
            for (node, &in_rotation) in rot {
                if seen.rotation.get(node) != Some(&in_rotation) {
                    seen.rotation.insert(node.clone(), in_rotation);
                    self.push(
                        &mut out,
                        now_ms,
                        EventKind::Rotation {
                            node: node.clone(),
                            in_rotation,
                        },
                    );
                }
            }
        }
        // The lock is gone from every node that answered: the run is over.
        let answered = reads.iter().filter(|r| r.reachable).count();
        let still_locked = reads
            .iter()
            .any(|r| r.lock.as_ref().is_some_and(|l| l.id == id) || (r.locked && r.lock.is_none()));
        let finished = reads
            .iter()
            .flat_map(|r| r.history.iter())
            .find(|h| h.id == id && h.kind == "finished");
        let waiting_for_end =
            finished.is_none() && now_ms - *seen.gone_since.get_or_insert(now_ms) < END_GRACE_MS;
        if still_locked {
            seen.gone_since = None;
        }
        if answered > 0 && !still_locked && !waiting_for_end {
            let (outcome, message) = match finished {
                Some(f) => (
                    outcome_of(&f.result).unwrap_or(Outcome::Failed),
                    if f.failed.is_empty() {
                        format!("the deployment ended: {}", f.result)
                    } else {
                        format!(
                            "the deployment ended: {}; failed: {}",
                            f.result,
                            f.failed.join(", ")
                        )
                    },
                ),
                None => (
                    Outcome::Failed,
                    "the lock was released without a recorded end (unlocked by hand?)".into(),
                ),
            };
            let nodes = reads
                .iter()
                .filter(|r| r.reachable)
                .map(|r| crate::event::NodeRelease {
                    node: r.node.clone(),
                    release: r.live_release.clone(),
                })
                .collect();
            self.push(
                &mut out,
                now_ms,
                EventKind::Finished {
                    outcome,
                    message,
                    nodes,
                },
            );
            self.ended = true;
        }
        self.seen = Some(seen);
        out
    }

    fn plan_batches(&self, release: &str) -> Vec<Vec<String>> {
        crate::plan::build(&self.inv, &self.env.name, release)
            .map(|p| p.batches)
            .unwrap_or_else(|_| vec![self.env.nodes.clone()])
    }

    /// A lock appeared: the run's first events (what it is, each node as it was found).
    fn start(&mut self, reads: &[NodeStatus], now_ms: i64, out: &mut Vec<Event>) {
        let Some((lock, progress)) = reads.iter().find_map(|r| {
            r.lock
                .as_ref()
                .map(|l| (l.clone(), r.progress.clone().filter(|p| p.id == l.id)))
        }) else {
            return;
        };
        let kind = match progress.as_ref().map(|p| p.kind.as_str()) {
            Some("rollback") => RunKind::Rollback,
            _ => RunKind::Deploy,
        };
        let plan = crate::plan::build(&self.inv, &self.env.name, &lock.release).ok();
        let nodes = self
            .env
            .nodes
            .iter()
            .filter_map(|n| self.inv.node(n))
            .map(|n| n.info())
            .collect();
        let started_ms = rfc3339_ms(&lock.at).unwrap_or(now_ms);
        self.push(
            out,
            started_ms,
            EventKind::Started {
                deployment: lock.id.clone(),
                kind,
                app: self.inv.app.name.clone(),
                env: self.env.name.clone(),
                release: lock.release.clone(),
                strategy: plan
                    .as_ref()
                    .map(|p| p.strategy.clone())
                    .unwrap_or_default(),
                who: lock.who.clone(),
                from_host: lock.host.clone(),
                nodes,
                batches: plan
                    .as_ref()
                    .map(|p| p.batches.clone())
                    .unwrap_or_else(|| vec![self.env.nodes.clone()]),
                gates: plan.as_ref().map(|p| p.gates.clone()).unwrap_or_default(),
                phases: plan.as_ref().map(|p| p.phase_names()).unwrap_or_default(),
                protected: self.env.protected,
                balancer: !self.env.load_balancers.is_empty(),
                journal: None,
                checks: vec![],
                windows: vec![],
            },
        );
        // Where each node started: the release it served before this run.
        for r in reads {
            let before = r
                .history
                .iter()
                .find(|h| h.id == lock.id && h.kind == "deploy")
                .and_then(|h| h.from.clone())
                .or_else(|| {
                    if r.live_release.as_deref() == Some(lock.release.as_str()) {
                        r.previous_release.clone()
                    } else {
                        r.live_release.clone()
                    }
                });
            self.push(
                out,
                now_ms,
                EventKind::Preflight {
                    node: r.node.clone(),
                    ok: r.reachable,
                    live_release: before,
                    previous_release: r.previous_release.clone(),
                    message: r.error.clone(),
                },
            );
        }
        self.push(
            out,
            now_ms,
            EventKind::Locked {
                deployment: lock.id.clone(),
            },
        );
        self.seen = Some(Seen {
            id: lock.id.clone(),
            release: lock.release.clone(),
            ..Seen::default()
        });
    }
}

/// Who holds the environment's lock, in words (`ann@jump-1`), if anybody.
pub fn holder(reads: &[NodeStatus]) -> Option<String> {
    reads
        .iter()
        .find_map(|r| r.lock.as_ref())
        .map(|l| format!("{}@{}", l.who, l.host))
}

/// Read `env` every [`POLL`] and send what changed as events, until the run ends or the
/// receiver is dropped. Nodes are read concurrently (at most 32 at once).
pub fn spawn(reader: Reader, env: Environment) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut w = Watcher::new(reader.inventory().clone(), env.clone());
        let mut waiting_said = false;
        loop {
            let reads = read_all(&reader, &env.nodes).await;
            let rotation = match reader.rotation(&env).await {
                Some(Ok(r)) => Some(r),
                _ => None,
            };
            let now = chrono::Utc::now().timestamp_millis();
            let events = w.update(&reads, rotation.as_ref(), now);
            if w.seen.is_none() && !waiting_said {
                waiting_said = true;
                let _ = tx.send(Event {
                    seq: 0,
                    at_ms: now,
                    kind: EventKind::Notice {
                        level: Level::Info,
                        message: format!(
                            "no deployment holds {}'s lock now; watching for one",
                            env.name
                        ),
                    },
                });
            }
            for e in events {
                if tx.send(e).is_err() {
                    return;
                }
            }
            if w.ended || tx.is_closed() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    });
    rx
}

/// Every node of the list, read concurrently, in the list's order.
pub async fn read_all(reader: &Reader, nodes: &[String]) -> Vec<NodeStatus> {
    use futures::stream::{self, StreamExt};
    let mut out: Vec<(usize, NodeStatus)> = stream::iter(nodes.iter().cloned().enumerate())
        .map(|(i, n)| async move { (i, reader.node(&n).await) })
        .buffer_unordered(32)
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::remote::{HistoryEntry, LockInfo, NodeProgress, Progress};

    fn inv() -> Arc<crate::inventory::Inventory> {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("deckhand.toml");
        std::fs::write(
            &p,
            "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\n\n\
             [nodes.web-1]\nhost = \"10.0.0.1\"\n[nodes.web-2]\nhost = \"10.0.0.2\"\n\n\
             [environments.prod]\nnodes = [\"web-1\", \"web-2\"]\nbatches = [1]\n\n\
             [[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
             [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n",
        )
        .expect("write");
        Arc::new(crate::inventory::load(&p).expect("inventory"))
    }

    fn read(
        node: &str,
        current: &str,
        lock: Option<&Progress>,
        history: Vec<HistoryEntry>,
    ) -> NodeStatus {
        let mut s = NodeStatus::new(node, "h".into());
        s.reachable = true;
        s.live_release = Some(current.into());
        s.previous_release = Some("v1".into());
        if let Some(p) = lock {
            s.locked = true;
            s.lock = Some(LockInfo {
                id: p.id.clone(),
                who: "ann".into(),
                host: "jump-1".into(),
                pid: 1,
                at: "2026-01-01T10:00:00+00:00".into(),
                env: "prod".into(),
                release: "v2".into(),
            });
            s.progress = Some(p.clone());
        }
        s.history = history;
        s
    }

    fn progress(state: &str, batch: usize, busy: &[(&str, &str)]) -> Progress {
        Progress {
            id: "d1".into(),
            kind: "deploy".into(),
            state: state.into(),
            batch: Some(batch),
            batches: 2,
            done: 0,
            total: 2,
            nodes: busy
                .iter()
                .map(|(n, p)| NodeProgress {
                    node: n.to_string(),
                    state: "updating".into(),
                    phase: Some(p.to_string()),
                })
                .collect(),
            at_ms: 1,
        }
    }

    fn kinds(ev: &[Event]) -> Vec<String> {
        ev.iter()
            .map(|e| {
                let v = serde_json::to_value(&e.kind).unwrap();
                let t = v["type"].as_str().unwrap_or("?").to_string();
                match v.get("node").and_then(|n| n.as_str()) {
                    Some(n) => format!("{t}:{n}"),
                    None => t,
                }
            })
            .collect()
    }

    #[test]
    fn a_watcher_tells_the_run_from_what_the_nodes_say() {
        let inv = inv();
        let env = inv.environment("prod").cloned().expect("prod");
        let mut w = Watcher::new(inv, env);
        // Nobody deploys: nothing to show.
        assert!(w
            .update(&[read("web-1", "v1", None, vec![])], None, 0)
            .is_empty());
        // web-1 is being switched.
        let p = progress("deploying", 1, &[("web-1", "switch")]);
        let ev = w.update(
            &[
                read("web-1", "v1", Some(&p), vec![]),
                read("web-2", "v1", Some(&p), vec![]),
            ],
            None,
            10,
        );
        let k = kinds(&ev);
        assert_eq!(
            &k[..4],
            ["started", "preflight:web-1", "preflight:web-2", "locked"]
        );
        assert!(k.contains(&"batch_started".to_string()), "{k:?}");
        assert!(k.contains(&"step_started:web-1".to_string()), "{k:?}");
        // web-1 switched, then finished its turn; web-2 is paused at its boundary.
        let ok = HistoryEntry::new("d1", "deploy", "v2", "ann", "t", "ok");
        let p = progress("paused", 2, &[]);
        let ev = w.update(
            &[
                read("web-1", "v2", Some(&p), vec![ok.clone()]),
                read("web-2", "v1", Some(&p), vec![]),
            ],
            Some(&BTreeMap::from([
                ("web-1".to_string(), true),
                ("web-2".to_string(), true),
            ])),
            20,
        );
        let k = kinds(&ev);
        for want in [
            "paused",
            "node_release:web-1",
            "node_state:web-1",
            "rotation:web-2",
        ] {
            assert!(k.contains(&want.to_string()), "{want} in {k:?}");
        }
        // The same read again changes nothing.
        assert!(w
            .update(
                &[
                    read("web-1", "v2", Some(&p), vec![ok.clone()]),
                    read("web-2", "v1", Some(&p), vec![]),
                ],
                None,
                30
            )
            .is_empty());
        // The lock is gone and the run's end is recorded: the watch ends with its outcome.
        let fin = HistoryEntry {
            failed: vec!["web-2".into()],
            ..HistoryEntry::new("d1", "finished", "v2", "ann", "t", "rolled back")
        };
        let ev = w.update(
            &[
                read("web-1", "v1", None, vec![fin]),
                read("web-2", "v1", None, vec![]),
            ],
            None,
            40,
        );
        match &ev.last().map(|e| &e.kind) {
            Some(EventKind::Finished {
                outcome, message, ..
            }) => {
                assert_eq!(*outcome, Outcome::RolledBack);
                assert!(message.contains("web-2"), "{message}");
            }
            other => panic!("no end: {other:?}"),
        }
        assert!(w.ended);
    }

    #[test]
    fn a_lock_gone_without_a_recorded_end_is_said_so_after_a_grace() {
        let inv = inv();
        let env = inv.environment("prod").cloned().expect("prod");
        let mut w = Watcher::new(inv, env);
        let p = progress("deploying", 1, &[]);
        assert!(!w
            .update(&[read("web-1", "v1", Some(&p), vec![])], None, 0)
            .is_empty());
        // The holder releases its lock a moment before it records the end: wait for it.
        assert!(w
            .update(&[read("web-1", "v2", None, vec![])], None, 1_000)
            .iter()
            .all(|e| !matches!(e.kind, EventKind::Finished { .. })));
        assert!(!w.ended);
        let ev = w.update(
            &[read("web-1", "v2", None, vec![])],
            None,
            1_000 + END_GRACE_MS,
        );
        match ev.last().map(|e| &e.kind) {
            Some(EventKind::Finished {
                outcome, message, ..
            }) => {
                assert_eq!(*outcome, Outcome::Failed);
                assert!(message.contains("without a recorded end"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_holder_is_named() {
        let p = progress("deploying", 1, &[]);
        assert_eq!(
            holder(&[read("web-1", "v1", Some(&p), vec![])]).as_deref(),
            Some("ann@jump-1")
        );
    }
}
