//! Reading an environment's live state without changing it (`status`, the home screen, `watch`,
//! `history`), and removing a lock the operator has confirmed is dead (`unlock`). Both go
//! through the same transports and scripts as a deployment, so what they show is what a
//! deployment would see. A [`Reader`] keeps one transport per node between reads (a watcher
//! reads every second), drops one that failed, and reads the balancers' own view of each node.

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::remote::{self, HistoryEntry, LockInfo, NodeSnapshot, Progress};
use crate::inventory::{Environment, Inventory};
use crate::transport::{self, Transport};

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub host: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub live_release: Option<String>,
    pub previous_release: Option<String>,
    pub releases: Vec<String>,
    pub lock: Option<LockInfo>,
    pub locked: bool,
    /// Seconds since the lock's heartbeat was refreshed.
    pub lock_age_s: Option<u64>,
    pub free_kb: Option<u64>,
    /// Releases that passed this environment's checklist on this node.
    pub verified: Vec<String>,
    /// How far the lock holder's run is, as it records it beside the lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The node's history lines (newest last), for the history pane; not printed by `status`.
    #[serde(skip)]
    pub history: Vec<HistoryEntry>,
}

impl NodeStatus {
    /// A node not read yet (nothing known, not reachable).
    pub fn new(name: &str, host: String) -> Self {
        NodeStatus {
            node: name.to_string(),
            host,
            reachable: false,
            error: None,
            live_release: None,
            previous_release: None,
            releases: vec![],
            lock: None,
            locked: false,
            lock_age_s: None,
            free_kb: None,
            verified: vec![],
            progress: None,
            history: vec![],
        }
    }

    fn fill(&mut self, s: NodeSnapshot) {
        self.reachable = true;
        self.error = None;
        self.previous_release = s.previous();
        self.live_release = s.current;
        self.releases = s.releases;
        self.lock = s.lock;
        self.locked = s.locked;
        self.lock_age_s = s.lock_age_s;
        self.free_kb = s.free_kb;
        self.verified = s
            .history
            .iter()
            .filter(|h| h.kind == "verified" && h.result == "ok")
            .map(|h| h.release.clone())
            .collect();
        // Progress left by a run whose lock is gone means nothing.
        self.progress = s
            .progress
            .filter(|p| self.lock.as_ref().is_some_and(|l| l.id == p.id));
        self.history = s.history;
    }
}

/// Reads nodes and balancers again and again, keeping one transport per node.
#[derive(Clone)]
pub struct Reader {
    inv: Arc<Inventory>,
    transports: Arc<Mutex<HashMap<String, Arc<dyn Transport>>>>,
}

impl Reader {
    pub fn new(inv: Arc<Inventory>) -> Self {
        Reader {
            inv,
            transports: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inv
    }

    fn transport(&self, name: &str) -> Result<Arc<dyn Transport>, String> {
        if let Some(t) = self
            .transports
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(t);
        }
        let node = self
            .inv
            .node(name)
            .ok_or_else(|| "not defined in the inventory".to_string())?;
        let t = transport::for_node(node, &self.inv.base_dir()).map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.transports.lock() {
            m.insert(name.to_string(), t.clone());
        }
        Ok(t)
    }

    fn forget(&self, name: &str) {
        if let Ok(mut m) = self.transports.lock() {
            m.remove(name);
        }
    }

    /// One node, now. An unreachable node says why, never a guess.
    pub async fn node(&self, name: &str) -> NodeStatus {
        let host = self
            .inv
            .node(name)
            .map(|n| n.host.clone())
            .unwrap_or_default();
        let mut st = NodeStatus::new(name, host);
        let Some(node) = self.inv.node(name) else {
            st.error = Some("not defined in the inventory".into());
            return st;
        };
        let result: Result<NodeSnapshot, String> = async {
            let t = self.transport(name)?;
            t.connect().await.map_err(|e| e.to_string())?;
            remote::read_snapshot(&*t, &node.deploy_path, &CancellationToken::new())
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(s) => st.fill(s),
            Err(e) => {
                self.forget(name);
                st.error = Some(e);
            }
        }
        st
    }

    /// Which nodes of `env` the balancers have in rotation, by their own answer: node → in
    /// rotation (a node missing from the answer: the balancer cannot say). None when the
    /// environment has no balancer.
    pub async fn rotation(
        &self,
        env: &Environment,
    ) -> Option<Result<BTreeMap<String, bool>, String>> {
        if env.load_balancers.is_empty() {
            return None;
        }
        let me = self.clone();
        let lbs = match crate::lb::build(&self.inv, &env.load_balancers, &|n| me.transport(n).ok())
        {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        let servers: Vec<(String, String, BTreeMap<&'static str, String>)> = env
            .nodes
            .iter()
            .map(|n| {
                let name = self
                    .inv
                    .node(n)
                    .map(|x| x.lb_server.clone())
                    .unwrap_or_else(|| n.clone());
                let vars = super::script::vars(&self.inv, &env.name, Some(n), "", None);
                (n.clone(), name, vars)
            })
            .collect();
        let asked: Vec<(String, BTreeMap<&'static str, String>)> = servers
            .iter()
            .map(|(_, s, v)| (s.clone(), v.clone()))
            .collect();
        let never = CancellationToken::new();
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for lb in &lbs {
            let st = match lb.driver.states(&asked, &never).await {
                Ok(s) => s,
                Err(e) => return Some(Err(format!("{}: {e}", lb.driver.describe()))),
            };
            for (node, server, _) in &servers {
                if let Some(s) = st.get(server) {
                    let here = s.in_rotation();
                    let e = out.entry(node.clone()).or_insert(true);
                    *e = *e && here;
                }
            }
        }
        Some(Ok(out))
    }
}

/// Every node of the environment, read concurrently, in plan order.
pub async fn read_status(inv: &Inventory, nodes: &[String]) -> Vec<NodeStatus> {
    let reader = Reader::new(Arc::new(inv.clone()));
    let reader = &reader;
    let owned: Vec<(usize, String)> = nodes.iter().cloned().enumerate().collect();
    let mut out: Vec<(usize, NodeStatus)> = stream::iter(owned)
        .map(move |(i, n)| async move { (i, reader.node(&n).await) })
        .buffer_unordered(32)
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

/// One node of a rollback's confirmation: where it is, and where the rollback puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRow {
    pub node: String,
    pub from: String,
    pub to: String,
}

/// What a rollback to `to` (None: each node's previous release) would do to each node, as the
/// command line's question and the home screen's dialog name it.
pub fn rollback_preview(statuses: &[NodeStatus], to: Option<&str>) -> Vec<RollbackRow> {
    statuses
        .iter()
        .map(|s| RollbackRow {
            node: s.node.clone(),
            from: s.live_release.clone().unwrap_or_else(|| "(none)".into()),
            to: to
                .map(String::from)
                .or(s.previous_release.clone())
                .unwrap_or_else(|| "(none)".into()),
        })
        .collect()
}

/// What removing one deployment's stale lock did, node by node.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StaleUnlock {
    /// Nodes whose lock was removed.
    pub removed: Vec<String>,
    /// Nodes whose lock was left, and why (live again, another deployment's, unreadable), and
    /// nodes that could not be read.
    pub left: Vec<String>,
    /// Nodes where the removal failed.
    pub errors: Vec<String>,
}

/// Remove deployment `id`'s lock where it is still that deployment's and still stale (no
/// heartbeat for `stale_after`), read again just before: a lock that came back to life, or that
/// another deployment holds now, is never removed. The removal itself checks the holder again
/// on the node.
pub async fn unlock_stale(
    inv: &Inventory,
    nodes: &[String],
    id: &str,
    stale_after: std::time::Duration,
) -> StaleUnlock {
    let mut out = StaleUnlock::default();
    // One connection per node for the read and the removal; the reads side by side, as
    // `read_status` does them.
    let reader = Reader::new(Arc::new(inv.clone()));
    let r = &reader;
    let read: Vec<NodeStatus> = stream::iter(nodes)
        .map(|n| async move { r.node(n).await })
        .buffered(32)
        .collect()
        .await;
    for s in read {
        let name = &s.node;
        match &s.lock {
            Some(l) if l.id == id && remote::lock_is_stale(s.lock_age_s, stale_after) => {
                let Some(node) = inv.node(&s.node) else {
                    continue;
                };
                let r: Result<(), String> = async {
                    let t = reader.transport(name)?;
                    remote::exec_checked(
                        &*t,
                        remote::unlock_script(&node.deploy_path, id),
                        &CancellationToken::new(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                }
                .await;
                match r {
                    Ok(()) => out.removed.push(s.node.clone()),
                    Err(e) => out.errors.push(format!("{}: {e}", s.node)),
                }
            }
            Some(l) if l.id == id => out.left.push(format!(
                "{}: its lock is alive again{}",
                s.node,
                remote::lock_age_note(s.lock_age_s, stale_after)
            )),
            Some(l) => out.left.push(format!(
                "{}: locked by another deployment ({})",
                s.node,
                l.describe()
            )),
            None if s.locked => out
                .left
                .push(format!("{}: locked, its holder unreadable", s.node)),
            None if !s.reachable => out.left.push(format!(
                "{}: unreachable ({}), not checked",
                s.node,
                s.error.as_deref().unwrap_or("no answer")
            )),
            None => {}
        }
    }
    out
}

/// Remove the lock on the given nodes, whoever holds it. Returns per-node errors.
pub async fn force_unlock(inv: &Inventory, nodes: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    for name in nodes {
        let Some(node) = inv.node(name) else { continue };
        let r: Result<(), String> = async {
            let t = transport::for_node(node, &inv.base_dir()).map_err(|e| e.to_string())?;
            remote::exec_checked(
                &*t,
                remote::force_unlock_script(&node.deploy_path),
                &CancellationToken::new(),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = r {
            errors.push(format!("{name}: {e}"));
        }
    }
    errors
}
