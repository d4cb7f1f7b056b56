//! Load balancers: take a node out of rotation before it changes and put it back when healthy,
//! and report the balancer's own view of each server (admin state, up or down, sessions).
//! Drivers: HAProxy over its runtime API (`haproxy.rs`) and user-given commands (`command.rs`).
//!
//! A driver only talks to its balancer; when to drain or enable, how long to wait for sessions
//! and how many nodes must stay in rotation are the engine's decisions.
//!
//! ## When is a drained HAProxy server really idle?
//! After `set server B/S state drain` returns, HAProxy's load balancing hands the server no new
//! request: the admin state is applied under the server's lock before the command answers, and
//! every later dispatch decision reads it. Two kinds of request can still reach it: requests
//! already *queued* for that server (`qcur`: it was at `maxconn`, they wait for one of its slots),
//! and requests that *persistence* pins to it (a stickiness cookie or a stick-table entry; a
//! draining server keeps accepting those, which is the point of drain over maint). Requests
//! already *dispatched* are counted in its current sessions (`scur`) from the moment they are
//! assigned. So the server is idle when one `show stat` read after the `set` shows `scur = 0`
//! and `qcur = 0`: nothing runs there, nothing waits for it, and only a persistent client can
//! bring a new session, which the next read sees (and `drain_timeout` bounds). The runtime API
//! runs the commands of one connection in order, so `set …; show stat` in one request is that
//! read: an idle node is drained in one round trip (two when `min_in_rotation` must first be
//! checked against every server's state). While sessions remain, the engine asks again at once
//! and backs off gently (a few milliseconds, doubling up to 250 ms).

pub mod command;
pub mod haproxy;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::inventory::{Balancer, BalancerKind, Inventory};
use crate::transport::Transport;

/// What the operator sets on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

/// The balancer's own answer for one server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerState {
    pub admin: Admin,
    /// Health as the balancer sees it (None: it does not check).
    pub up: Option<bool>,
    pub sessions: u64,
    /// Requests waiting in the server's own queue (they will be served there).
    pub queued: u64,
    /// The balancer's own word, for the screen.
    pub word: String,
}

impl ServerState {
    /// In rotation: the balancer sends it new traffic.
    pub fn in_rotation(&self) -> bool {
        self.admin == Admin::Ready && self.up != Some(false)
    }
    /// Nothing is served there and nothing waits for it.
    pub fn idle(&self) -> bool {
        self.sessions == 0 && self.queued == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LbError {
    /// The balancer could not be reached at all (socket gone, connection refused, timeout).
    #[error("{0}")]
    Unreachable(String),
    /// It answered, but refused or answered something unexpected.
    #[error("{0}")]
    Refused(String),
}

#[async_trait]
pub trait LoadBalancer: Send + Sync {
    /// A short name for messages (`haproxy app@/run/haproxy/admin.sock via lb-1`).
    fn describe(&self) -> String;
    /// Whether [`states`](Self::states) always answers for every server the balancer has, so a
    /// server missing from the answer is one it does not know (HAProxy). When false, a missing
    /// server only means the driver cannot say (a command balancer without a `state` command).
    fn reports_every_server(&self) -> bool {
        false
    }
    /// Set a server's admin state. `vars` are the node's placeholder values.
    async fn set(
        &self,
        server: &str,
        vars: &BTreeMap<&str, String>,
        want: Admin,
        cancel: &CancellationToken,
    ) -> Result<(), LbError>;
    /// The state of these servers (name → vars), as the balancer reports it. A server it does
    /// not know is missing from the answer.
    async fn states(
        &self,
        servers: &[(String, BTreeMap<&'static str, String>)],
        cancel: &CancellationToken,
    ) -> Result<BTreeMap<String, ServerState>, LbError>;
    /// Set a server's admin state, then read its state as the balancer reports it after the
    /// change (None: the balancer cannot say). Drivers that can do both in one request do.
    async fn set_and_read(
        &self,
        server: &str,
        vars: &BTreeMap<&'static str, String>,
        want: Admin,
        cancel: &CancellationToken,
    ) -> Result<Option<ServerState>, LbError> {
        self.set(server, vars, want, cancel).await?;
        let st = self
            .states(&[(server.to_string(), vars.clone())], cancel)
            .await?;
        Ok(st.get(server).cloned())
    }
}

/// A configured balancer with the engine's policy around it.
pub struct Configured {
    pub driver: Arc<dyn LoadBalancer>,
    pub cfg: Balancer,
}

/// Build the drivers of an environment. `transports` reaches nodes named in `via`.
pub fn build(
    inv: &Inventory,
    balancers: &[Balancer],
    transport_for: &dyn Fn(&str) -> Option<Arc<dyn Transport>>,
) -> Result<Vec<Configured>, String> {
    balancers
        .iter()
        .map(|b| {
            let driver: Arc<dyn LoadBalancer> = match &b.kind {
                BalancerKind::Command(c) => Arc::new(command::CommandDriver::new(c.clone(), inv.base_dir(), b.timeout)),
                BalancerKind::Haproxy(h) => {
                    let via = if h.via == "local" {
                        haproxy::Via::Local
                    } else {
                        let t = transport_for(&h.via).ok_or_else(|| {
                            format!("the HAProxy balancer is reached via `{}`, which is not a node of the inventory", h.via)
                        })?;
                        haproxy::Via::Node(h.via.clone(), t)
                    };
                    Arc::new(haproxy::Haproxy::new(h.clone(), via, b.timeout))
                }
            };
            Ok(Configured { driver, cfg: b.clone() })
        })
        .collect()
}

/// Read a balancer's word for a node's state (command driver `state` output).
pub(crate) fn parse_word(word: &str) -> Option<ServerState> {
    let w = word.trim().to_ascii_lowercase();
    let (admin, up) = match w.split_whitespace().next().unwrap_or("") {
        "ready" | "up" | "enabled" | "enable" | "in" | "active" | "healthy" => {
            (Admin::Ready, Some(true))
        }
        "down" => (Admin::Ready, Some(false)),
        "drain" | "drained" | "draining" | "out" | "disabled" | "disable" | "inactive" => {
            (Admin::Drain, None)
        }
        "maint" | "maintenance" => (Admin::Maint, None),
        _ => return None,
    };
    Some(ServerState {
        admin,
        up,
        sessions: 0,
        queued: 0,
        word: word.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancer_words() {
        assert!(parse_word("READY\n").unwrap().in_rotation());
        assert_eq!(parse_word("drain").unwrap().admin, Admin::Drain);
        assert!(!parse_word("down").unwrap().in_rotation());
        assert_eq!(parse_word("weird"), None);
    }
}
