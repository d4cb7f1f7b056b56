//! Lock hygiene: a live lock is never taken; a stale one (its heartbeat older than
//! `stale_after`) is reported with holder and age and taken over only when the operator said so;
//! `--lock-wait` queues behind a live lock; a resumed run takes over its own lock by deployment
//! id. While a run holds its locks, a heartbeat refreshes them.

use std::collections::HashMap;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Run, HEARTBEAT_EVERY};
use crate::event::Level;
use crate::engine::remote::{self, LockInfo};

/// A lock found on a node at preflight.
struct Held {
    node: String,
    info: Option<LockInfo>,
    age_s: Option<u64>,
}

impl Run {
    fn held_locks(&self) -> Vec<Held> {
        self.plan
            .nodes
            .iter()
            .filter_map(|n| {
                self.rec(n, |r| {
                    r.snapshot.locked.then(|| Held {
                        node: n.clone(),
                        info: r.snapshot.lock.clone(),
                        age_s: r.snapshot.lock_age_s,
                    })
                })
            })
            .collect()
    }

    /// The lock's heartbeat is older than `stale_after`.
    fn stale(&self, h: &Held) -> bool {
        remote::lock_is_stale(h.age_s, self.opts.stale_after)
    }

    fn describe_held(&self, h: &Held) -> String {
        let who = match &h.info {
            Some(l) => format!("{} is locked by {}", h.node, l.describe()),
            None => format!("{} is locked (holder unreadable)", h.node),
        };
        let age = remote::lock_age_note(h.age_s, self.opts.stale_after);
        if self.stale(h) {
            format!("{who}{age} (take it over with --take-over-stale once you know that console is gone)")
        } else {
            format!("{who}{age}")
        }
    }

    async fn reread_locks(&self) {
        let never = CancellationToken::new();
        for n in self.plan.nodes.clone() {
            if let Ok(snap) = self.read_node(&n, &never).await {
                self.rec(&n, |r| {
                    r.snapshot.locked = snap.locked;
                    r.snapshot.lock = snap.lock;
                    r.snapshot.lock_age_s = snap.lock_age_s;
                });
            }
        }
    }

    /// Take every node's lock, or say why not (holders, ages, what to do).
    pub(super) async fn acquire(&self, release: &str) -> Result<(), String> {
        let started = Instant::now();
        let mut waited_notice = false;
        loop {
            let held = self.held_locks();
            let mut replace: HashMap<String, String> = HashMap::new();
            let mut blocking = Vec::new();
            for h in &held {
                let id = h.info.as_ref().map(|l| l.id.clone());
                let stale = self.stale(h);
                match id {
                    // Our own lock (a resumed run): ours to take over.
                    Some(id) if self.opts.resume_id.as_deref() == Some(id.as_str()) => {
                        replace.insert(h.node.clone(), id);
                    }
                    Some(id) if stale && self.opts.take_over_stale => {
                        self.em.notice(
                            Level::Warn,
                            format!("taking over the stale lock: {}", self.describe_held(h)),
                        );
                        replace.insert(h.node.clone(), id);
                    }
                    _ => blocking.push(self.describe_held(h)),
                }
            }
            if blocking.is_empty() {
                return self.lock_all_replacing(release, &replace).await;
            }
            let all_stale = held.iter().all(|h| self.stale(h));
            match self.opts.lock_wait {
                Some(w) if started.elapsed() < w && !all_stale => {
                    if !waited_notice {
                        waited_notice = true;
                        self.em.notice(
                            Level::Info,
                            format!(
                                "waiting up to {} for the lock: {}",
                                crate::util::format_duration(w),
                                blocking.join("; ")
                            ),
                        );
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    self.reread_locks().await;
                }
                _ => {
                    let waited = if self.opts.lock_wait.is_some() {
                        format!(
                            " (waited {})",
                            crate::util::format_duration(started.elapsed())
                        )
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "another deployment holds the lock{waited}; nothing was changed:\n  {}",
                        blocking.join("\n  ")
                    ));
                }
            }
        }
    }

    pub(super) fn start_heartbeat(&self) {
        let targets: Vec<(std::sync::Arc<dyn crate::transport::Transport>, String)> = self
            .plan
            .nodes
            .iter()
            .filter_map(|n| {
                self.transports.get(n).map(|t| {
                    (
                        t.clone(),
                        remote::heartbeat_script(&self.deploy_path(n), &self.id),
                    )
                })
            })
            .collect();
        let task = tokio::spawn(async move {
            let never = CancellationToken::new();
            loop {
                tokio::time::sleep(HEARTBEAT_EVERY).await;
                for (t, script) in &targets {
                    let _ = t
                        .exec(
                            &crate::transport::ExecRequest::new(script.clone())
                                .timeout(std::time::Duration::from_secs(10)),
                            None,
                            &never,
                        )
                        .await;
                }
            }
        });
        if let Ok(mut h) = self.heartbeat.lock() {
            if let Some(old) = h.replace(task) {
                old.abort();
            }
        }
    }

    pub(super) fn stop_heartbeat(&self) {
        if let Ok(mut h) = self.heartbeat.lock() {
            if let Some(t) = h.take() {
                t.abort();
            }
        }
    }
}
