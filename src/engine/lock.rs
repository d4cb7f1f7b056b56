//! The run's locks, one per node: taken in plan order with an atomic `mkdir`, refreshed by a
//! heartbeat while the run holds them, released on every way out.
//!
//! Lock hygiene: a live lock is never taken; a stale one (its heartbeat older than
//! `stale_after`) is reported with holder and age and taken over only when the operator said so
//! (`--take-over-stale`); `--lock-wait` queues behind a live lock; a resumed run takes over its
//! own lock by deployment id. Which found locks block and which may be taken over is decided by
//! [`sort_held`], a pure function.
//!
//! While the run holds its locks, the heartbeat also records how far the run is beside each
//! lock (`progress.json`: state, batch, the nodes in flight and their phase), so that `status`,
//! the home screen and a watching console on any machine that reaches the nodes can say it. The
//! progress follows the run's own events ([`Tracker`], pure) and is written, when it changed,
//! at most twice a second to the first two nodes of the plan, and to every node with the
//! heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use super::remote::{self, LockInfo, NodeProgress, Progress};
use super::steps::StepRunner;
use super::HEARTBEAT_EVERY;
use crate::event::{Event, EventKind, Level, NodeState};
use crate::util::format_duration;

/// How the run treats locks it finds (from the command line).
#[derive(Debug, Clone)]
pub(crate) struct LockPolicy {
    pub lock_wait: Option<Duration>,
    pub take_over_stale: bool,
    pub stale_after: Duration,
    /// A resumed run: its own deployment id, whose locks it takes over.
    pub resume_id: Option<String>,
}

/// A lock found on a node at preflight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Held {
    pub node: String,
    pub info: Option<LockInfo>,
    pub age_s: Option<u64>,
}

/// Found locks, sorted by what the run may do with them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Sorted {
    /// Node → deployment id whose lock this run takes over.
    pub replace: HashMap<String, String>,
    /// Stale locks taken over because the operator said so (announced).
    pub taken_over: Vec<Held>,
    /// Locks that stop the run.
    pub blocking: Vec<Held>,
}

/// Decide, for every found lock, whether it blocks the run or may be taken over.
pub(crate) fn sort_held(held: &[Held], policy: &LockPolicy) -> Sorted {
    let mut s = Sorted::default();
    for h in held {
        let stale = remote::lock_is_stale(h.age_s, policy.stale_after);
        match h.info.as_ref().map(|l| l.id.clone()) {
            // Our own lock (a resumed run): ours to take over.
            Some(id) if policy.resume_id.as_deref() == Some(id.as_str()) => {
                s.replace.insert(h.node.clone(), id);
            }
            Some(id) if stale && policy.take_over_stale => {
                s.replace.insert(h.node.clone(), id);
                s.taken_over.push(h.clone());
            }
            _ => s.blocking.push(h.clone()),
        }
    }
    s
}

/// One found lock in words: holder, age, and what to do when it is stale.
pub(crate) fn describe_held(h: &Held, stale_after: Duration) -> String {
    let who = match &h.info {
        Some(l) => format!("{} is locked by {}", h.node, l.describe()),
        None => format!("{} is locked (holder unreadable)", h.node),
    };
    let age = remote::lock_age_note(h.age_s, stale_after);
    if remote::lock_is_stale(h.age_s, stale_after) {
        format!(
            "{who}{age} (take it over with --take-over-stale once you know that console is gone)"
        )
    } else {
        format!("{who}{age}")
    }
}

/// Why the run could not take its locks; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("another deployment holds the lock{}; nothing was changed:\n  {}", .waited.map(|w| format!(" (waited {})", format_duration(w))).unwrap_or_default(), .holders.join("\n  "))]
    Held {
        holders: Vec<String>,
        waited: Option<Duration>,
    },
    /// Another run took the lock on a node meanwhile.
    #[error("{0}")]
    Node(String),
    /// The lock could not be taken on a node for another reason than a holder (its disk is full,
    /// it did not answer): nothing was changed, and it is not another deployment's doing.
    #[error("{0}")]
    Failed(String),
}

pub(crate) struct Locks {
    steps: Arc<StepRunner>,
    ledger: Arc<Ledger>,
    nodes: Vec<String>,
    id: String,
    env: String,
    who: String,
    policy: LockPolicy,
    state: Mutex<State>,
    tracker: Arc<Mutex<Tracker>>,
}

#[derive(Default)]
struct State {
    locked: bool,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

/// How often the heartbeat looks whether the progress changed (and writes it when it did).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How many nodes (the first of the plan) get each change of the progress at once; the others
/// get it with the heartbeat, so that the writes stay off the nodes the run is busy with.
const PROGRESS_NODES: usize = 2;

/// The run's progress as its events tell it: a pure reducer, unit-tested.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tracker {
    pub progress: Progress,
    /// Bumped on every change, so the heartbeat writes only what is new.
    pub version: u64,
}

impl Tracker {
    pub fn observe(&mut self, ev: &Event) {
        let before = self.progress.clone();
        let p = &mut self.progress;
        match &ev.kind {
            EventKind::Started {
                deployment,
                nodes,
                batches,
                kind,
                ..
            } => {
                p.id = deployment.clone();
                p.total = nodes.len();
                p.batches = batches.len();
                p.kind = match kind {
                    crate::event::RunKind::Deploy => "deploy".into(),
                    crate::event::RunKind::Rollback => "rollback".into(),
                };
                p.state = match kind {
                    crate::event::RunKind::Deploy => "preflight".into(),
                    crate::event::RunKind::Rollback => "rolling back".into(),
                };
            }
            EventKind::Locked { .. } if p.state == "preflight" => p.state = "deploying".into(),
            EventKind::BatchStarted { index, .. } => p.batch = Some(index + 1),
            EventKind::NodeState { node, state } => {
                p.nodes.retain(|n| &n.node != node);
                match state {
                    NodeState::Draining
                    | NodeState::Updating
                    | NodeState::Checking
                    | NodeState::Enabling
                    | NodeState::RollingBack => p.nodes.push(NodeProgress {
                        node: node.clone(),
                        state: state.word().into(),
                        phase: None,
                    }),
                    NodeState::Done => p.done += 1,
                    _ => {}
                }
            }
            EventKind::StepStarted {
                node: Some(node),
                phase,
                ..
            } => {
                if let Some(n) = p.nodes.iter_mut().find(|n| &n.node == node) {
                    n.phase = Some(phase.clone());
                }
            }
            EventKind::StepFinished {
                node: Some(node), ..
            } => {
                if let Some(n) = p.nodes.iter_mut().find(|n| &n.node == node) {
                    n.phase = None;
                }
            }
            EventKind::Pausing => p.state = "pausing".into(),
            EventKind::Paused => p.state = "paused".into(),
            EventKind::Stepping => p.state = "stepping".into(),
            EventKind::Gate { .. } => p.state = "waiting".into(),
            EventKind::Resumed | EventKind::Promoted => p.state = "deploying".into(),
            EventKind::RollbackStarted { .. } => p.state = "rolling back".into(),
            EventKind::Aborting { .. } => p.state = "aborting".into(),
            EventKind::Monitoring { window, .. } => p.state = format!("checklist ({window})"),
            EventKind::Finished { outcome, .. } => {
                p.state = outcome.word().into();
                p.nodes.clear();
            }
            _ => {}
        }
        if self.progress != before {
            self.version += 1;
            self.progress.at_ms = ev.at_ms;
        }
    }
}

impl Locks {
    pub fn new(
        steps: Arc<StepRunner>,
        ledger: Arc<Ledger>,
        nodes: Vec<String>,
        id: String,
        env: String,
        who: String,
        policy: LockPolicy,
    ) -> Self {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let t = tracker.clone();
        steps.em.observe(move |ev| {
            if let Ok(mut t) = t.lock() {
                t.observe(ev);
            }
        });
        Locks {
            steps,
            ledger,
            nodes,
            id,
            env,
            who,
            policy,
            state: Mutex::new(State::default()),
            tracker,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The locks preflight found (the ledger holds each node's snapshot).
    fn held(&self) -> Vec<Held> {
        self.ledger
            .all()
            .into_iter()
            .filter(|(_, f)| f.snapshot.locked)
            .map(|(node, f)| Held {
                node,
                info: f.snapshot.lock,
                age_s: f.snapshot.lock_age_s,
            })
            .collect()
    }

    async fn reread(&self) {
        let never = CancellationToken::new();
        for n in &self.nodes {
            if let Ok(snap) = self.steps.read_node(n, &never).await {
                self.ledger.reread_lock(n, &snap);
            }
        }
    }

    /// Take every node's lock for a run of `release`, or say why not (holders, ages, what to do).
    pub(crate) async fn acquire(&self, release: &str) -> Result<(), LockError> {
        let started = Instant::now();
        let mut waited_notice = false;
        loop {
            let held = self.held();
            let sorted = sort_held(&held, &self.policy);
            let describe = |h: &Held| describe_held(h, self.policy.stale_after);
            if sorted.blocking.is_empty() {
                for h in &sorted.taken_over {
                    self.steps.em.notice(
                        Level::Warn,
                        format!("taking over the stale lock: {}", describe(h)),
                    );
                }
                return self.take(release, &sorted.replace).await;
            }
            let blocking: Vec<String> = sorted.blocking.iter().map(describe).collect();
            let all_stale = held
                .iter()
                .all(|h| remote::lock_is_stale(h.age_s, self.policy.stale_after));
            match self.policy.lock_wait {
                Some(w) if started.elapsed() < w && !all_stale => {
                    if !waited_notice {
                        waited_notice = true;
                        self.steps.em.notice(
                            Level::Info,
                            format!(
                                "waiting up to {} for the lock: {}",
                                format_duration(w),
                                blocking.join("; ")
                            ),
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.reread().await;
                }
                _ => {
                    return Err(LockError::Held {
                        holders: blocking,
                        waited: self.policy.lock_wait.map(|_| started.elapsed()),
                    })
                }
            }
        }
    }

    /// Take the lock on one node: None when taken, else why not.
    async fn take_one(
        &self,
        name: &str,
        info: &LockInfo,
        replace: &HashMap<String, String>,
    ) -> Option<LockError> {
        let never = CancellationToken::new();
        let dp = self.steps.nodes.deploy_path(name);
        let script = remote::lock_script(&dp, info, replace.get(name).map(|s| s.as_str()));
        match self.steps.internal(name, script, &never).await {
            Ok(o) if o.stdout.starts_with("acquired") => None,
            Ok(o) => {
                let holder = o.stdout.lines().nth(1).unwrap_or("").to_string();
                Some(LockError::Node(
                    match serde_json::from_str::<LockInfo>(&holder) {
                        Ok(l) => format!("{name} is locked by {}", l.describe()),
                        Err(_) => format!(
                        "{name} is locked ({dp}/.deckhand/lock exists but its holder is unreadable)"
                    ),
                    },
                ))
            }
            Err(e) => Some(LockError::Failed(format!(
                "cannot take the lock on {name}: {e}"
            ))),
        }
    }

    /// After a take that failed without a holder's answer: release this run's lock where it
    /// may have been taken (the removal checks the holder on the node).
    async fn release_unsure(&self, names: &[String], e: &LockError) {
        if matches!(e, LockError::Failed(_)) {
            self.unlock_twice(names).await;
        }
    }

    /// Release, and once more where that failed: a connection that dropped as the lock was
    /// taken or released (the node's sessions killed, sshd restarted) is opened again, and the
    /// removal only ever takes this run's own lock. What still failed, per node.
    async fn unlock_twice(&self, names: &[String]) -> Vec<(String, String)> {
        let failed = self.unlock(names).await;
        if failed.is_empty() {
            return failed;
        }
        let again: Vec<String> = failed.into_iter().map(|(n, _)| n).collect();
        self.unlock(&again).await
    }

    /// Release this run's lock on these nodes, all at once (32 at a time). Err: per node.
    async fn unlock(&self, names: &[String]) -> Vec<(String, String)> {
        use futures::stream::{self, StreamExt};
        let unlocks: Vec<_> = names.iter().map(|name| self.unlock_one(name)).collect();
        let answers: Vec<Option<(String, String)>> = stream::iter(unlocks)
            .buffer_unordered(super::preflight::CONCURRENCY)
            .collect()
            .await;
        answers.into_iter().flatten().collect()
    }

    async fn unlock_one(&self, name: &str) -> Option<(String, String)> {
        let never = CancellationToken::new();
        let script = remote::unlock_script(&self.steps.nodes.deploy_path(name), &self.id);
        self.steps
            .internal(name, script, &never)
            .await
            .err()
            .map(|e| (name.to_string(), e.to_string()))
    }

    /// Take the lock on every node. The first node of the plan is taken alone, first: of two
    /// runs racing for one environment, the one that gets it runs and the other stops there,
    /// having touched nothing else. The others are then taken all at once (32 at a time). Where
    /// `replace` names a deployment id for a node, a lock held by exactly that deployment is
    /// taken over. On failure, what was taken is released again.
    async fn take(
        &self,
        release: &str,
        replace: &HashMap<String, String>,
    ) -> Result<(), LockError> {
        use futures::stream::{self, StreamExt};
        let info = LockInfo {
            id: self.id.clone(),
            who: self.who.clone(),
            host: crate::util::hostname(),
            pid: std::process::id(),
            at: chrono::Utc::now().to_rfc3339(),
            env: self.env.clone(),
            release: release.to_string(),
        };
        let Some((first, rest)) = self.nodes.split_first() else {
            return Ok(());
        };
        if let Some(e) = self.take_one(first, &info, replace).await {
            // An answer lost on the way (the connection dropped) may hide a lock that was
            // taken: release it, as every release here, only where it is this run's own.
            self.release_unsure(std::slice::from_ref(first), &e).await;
            return Err(e);
        }
        let takes: Vec<_> = rest
            .iter()
            .map(|name| self.take_one(name, &info, replace))
            .collect();
        let answers: Vec<(String, Option<LockError>)> = rest
            .iter()
            .cloned()
            .zip(
                stream::iter(takes)
                    .buffered(super::preflight::CONCURRENCY)
                    .collect::<Vec<_>>()
                    .await,
            )
            .collect();
        if answers.iter().any(|(_, r)| r.is_some()) {
            let mut taken: Vec<String> = vec![first.clone()];
            let mut refused = None;
            for (n, r) in answers {
                match r {
                    None => taken.push(n),
                    // Taken or not, the answer did not say: this run's lock may be there.
                    Some(e @ LockError::Failed(_)) => {
                        taken.push(n);
                        refused.get_or_insert(e);
                    }
                    // Another deployment's lock says more than a failure: it decides.
                    Some(e) => {
                        if !matches!(refused, Some(LockError::Node(_))) {
                            refused = Some(e);
                        }
                    }
                }
            }
            let left = self.unlock_twice(&taken).await;
            if !left.is_empty() {
                let names: Vec<&str> = left.iter().map(|(n, _)| n.as_str()).collect();
                self.steps.em.notice(
                    Level::Error,
                    format!(
                        "could not release this run's lock on {}; run `deckhand unlock {}` once you checked",
                        names.join(", "),
                        self.env
                    ),
                );
            }
            if let Some(e) = refused {
                return Err(e);
            }
        }
        self.state().locked = true;
        self.steps.timing.locked();
        self.steps.em.emit(EventKind::Locked {
            deployment: self.id.clone(),
        });
        self.start_heartbeat();
        Ok(())
    }

    /// Release every lock this run holds (only locks that are still its own).
    pub async fn release(&self) {
        let locked = {
            let mut s = self.state();
            if let Some(t) = s.heartbeat.take() {
                t.abort();
            }
            std::mem::replace(&mut s.locked, false)
        };
        // History lines still being written go first: the lock covers them.
        self.steps.settle().await;
        if !locked {
            return;
        }
        let mut problems: Vec<String> = self
            .unlock_twice(&self.nodes)
            .await
            .into_iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect();
        problems.sort();
        if problems.is_empty() {
            self.steps.em.emit(EventKind::Unlocked {
                deployment: self.id.clone(),
            });
        } else {
            self.steps.em.notice(
                Level::Error,
                format!(
                    "could not release the lock on {}; run `deckhand unlock {}` once you checked",
                    problems.join("; "),
                    self.env
                ),
            );
        }
    }

    /// Refresh the heartbeat every [`HEARTBEAT_EVERY`], and record the progress beside the lock
    /// within a second of each change (32 nodes at a time, each write bounded in time).
    fn start_heartbeat(&self) {
        let targets: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| {
                self.steps
                    .nodes
                    .node(n)
                    .map(|t| (t, self.steps.nodes.deploy_path(n)))
            })
            .collect();
        let tracker = self.tracker.clone();
        let id = self.id.clone();
        let task = tokio::spawn(async move {
            let never = CancellationToken::new();
            let mut written = 0u64;
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let (version, progress) = match tracker.lock() {
                    Ok(t) => (t.version, t.progress.clone()),
                    Err(_) => continue,
                };
                let beat = last.elapsed() >= HEARTBEAT_EVERY;
                if version == written && !beat {
                    continue;
                }
                written = version;
                // A change goes to the first nodes of the plan at once (a watcher takes the
                // freshest progress of any node); every node gets it with the heartbeat.
                let now_to = if beat {
                    last = Instant::now();
                    &targets[..]
                } else {
                    &targets[..targets.len().min(PROGRESS_NODES)]
                };
                let writes: Vec<_> = now_to
                    .iter()
                    .map(|(t, dp)| {
                        let req = crate::transport::ExecRequest::new(remote::progress_script(
                            dp, &id, &progress,
                        ))
                        .timeout(Duration::from_secs(10));
                        let (t, never) = (t.clone(), never.clone());
                        async move {
                            let _ = t.exec(&req, None, &never).await;
                        }
                    })
                    .collect();
                // At most 32 nodes at once, like every other read or write of the fleet.
                use futures::stream::StreamExt;
                futures::stream::iter(writes)
                    .buffer_unordered(32)
                    .collect::<Vec<()>>()
                    .await;
            }
        });
        if let Some(old) = self.state().heartbeat.replace(task) {
            old.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(node: &str, id: &str, age: u64) -> Held {
        Held {
            node: node.into(),
            info: Some(LockInfo {
                id: id.into(),
                who: "ann".into(),
                host: "jump-1".into(),
                pid: 42,
                at: "2026-01-01T00:00:00Z".into(),
                env: "prod".into(),
                release: "v2".into(),
            }),
            age_s: Some(age),
        }
    }

    fn policy(resume: Option<&str>, take_over_stale: bool) -> LockPolicy {
        LockPolicy {
            lock_wait: None,
            take_over_stale,
            stale_after: Duration::from_secs(60),
            resume_id: resume.map(String::from),
        }
    }

    #[test]
    fn a_live_lock_blocks_and_a_stale_one_only_with_the_operators_word() {
        let found = [held("web-1", "d1", 5), held("web-2", "d1", 600)];
        let s = sort_held(&found, &policy(None, false));
        assert_eq!(s.blocking.len(), 2);
        assert!(s.replace.is_empty());
        let s = sort_held(&found, &policy(None, true));
        assert_eq!(s.blocking, vec![found[0].clone()]);
        assert_eq!(s.taken_over, vec![found[1].clone()]);
        assert_eq!(s.replace.get("web-2").map(String::as_str), Some("d1"));
    }

    #[test]
    fn a_resumed_run_takes_over_its_own_locks_only() {
        let found = [held("web-1", "mine", 5), held("web-2", "theirs", 5)];
        let s = sort_held(&found, &policy(Some("mine"), false));
        assert_eq!(s.replace.get("web-1").map(String::as_str), Some("mine"));
        assert!(s.taken_over.is_empty(), "its own lock is not announced");
        assert_eq!(s.blocking, vec![found[1].clone()]);
    }

    #[test]
    fn an_unreadable_lock_always_blocks() {
        let h = Held {
            node: "web-1".into(),
            info: None,
            age_s: Some(9999),
        };
        let s = sort_held(std::slice::from_ref(&h), &policy(Some("x"), true));
        assert_eq!(s.blocking, vec![h.clone()]);
        assert_eq!(
            describe_held(&h, Duration::from_secs(60)),
            "web-1 is locked (holder unreadable) — STALE: no heartbeat for 9999s (take it over with --take-over-stale once you know that console is gone)"
        );
    }

    fn ev(kind: EventKind) -> Event {
        Event {
            seq: 1,
            at_ms: 7,
            kind,
        }
    }

    #[test]
    fn the_progress_follows_the_runs_events() {
        let mut t = Tracker::default();
        t.observe(&ev(EventKind::BatchStarted {
            index: 1,
            nodes: vec!["web-2".into()],
        }));
        t.observe(&ev(EventKind::NodeState {
            node: "web-2".into(),
            state: NodeState::Updating,
        }));
        t.observe(&ev(EventKind::StepStarted {
            node: Some("web-2".into()),
            phase: "switch".into(),
            command: None,
        }));
        let v = t.version;
        assert_eq!(t.progress.batch, Some(2));
        assert_eq!(
            t.progress.nodes,
            vec![NodeProgress {
                node: "web-2".into(),
                state: "updating".into(),
                phase: Some("switch".into())
            }]
        );
        // Output changes nothing: no new write.
        t.observe(&ev(EventKind::Output {
            node: Some("web-2".into()),
            phase: "switch".into(),
            stream: crate::event::Stream::Stdout,
            line: "x".into(),
        }));
        assert_eq!(t.version, v);
        t.observe(&ev(EventKind::NodeState {
            node: "web-2".into(),
            state: NodeState::Done,
        }));
        t.observe(&ev(EventKind::Paused));
        assert!(t.progress.nodes.is_empty());
        assert_eq!(t.progress.done, 1);
        assert_eq!(t.progress.state, "paused");
        assert!(t.version > v);
    }

    #[test]
    fn a_held_lock_error_says_how_long_it_waited() {
        let e = LockError::Held {
            holders: vec!["web-1 is locked by ann".into()],
            waited: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            e.to_string(),
            "another deployment holds the lock (waited 3.0s); nothing was changed:\n  web-1 is locked by ann"
        );
    }
}
