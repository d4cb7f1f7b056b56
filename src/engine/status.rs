//! Reading an environment's live state without changing it (`status`), and removing a lock the
//! operator has confirmed is dead (`unlock`). Both go through the same transports and scripts
//! as a deployment, so what they show is what a deployment would see.

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::remote::{self, LockInfo, NodeSnapshot};
use crate::inventory::Inventory;
use crate::transport;

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
}

async fn read_one(inv: &Inventory, name: &str) -> NodeStatus {
    let node = inv.node(name);
    let host = node.map(|n| n.host.clone()).unwrap_or_default();
    let mut st = NodeStatus {
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
    };
    let Some(node) = node else {
        st.error = Some("not defined in the inventory".into());
        return st;
    };
    let result: Result<NodeSnapshot, String> = async {
        let t = transport::for_node(node, &inv.base_dir()).map_err(|e| e.to_string())?;
        t.connect().await.map_err(|e| e.to_string())?;
        remote::read_snapshot(&*t, &node.deploy_path, &CancellationToken::new())
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(s) => {
            st.reachable = true;
            st.previous_release = s.previous();
            st.live_release = s.current;
            st.releases = s.releases;
            st.lock = s.lock;
            st.locked = s.locked;
            st.lock_age_s = s.lock_age_s;
            st.free_kb = s.free_kb;
            st.verified = s
                .history
                .iter()
                .filter(|h| h.kind == "verified" && h.result == "ok")
                .map(|h| h.release.clone())
                .collect();
        }
        Err(e) => st.error = Some(e),
    }
    st
}

/// Every node of the environment, read concurrently, in plan order.
pub async fn read_status(inv: &Inventory, nodes: &[String]) -> Vec<NodeStatus> {
    let owned: Vec<(usize, String)> = nodes.iter().cloned().enumerate().collect();
    let mut out: Vec<(usize, NodeStatus)> = stream::iter(owned)
        .map(move |(i, n)| async move { (i, read_one(inv, &n).await) })
        .buffer_unordered(32)
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
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
