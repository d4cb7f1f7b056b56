//! Reading every environment of an inventory at once, for the home screen: each node once (a
//! node in several environments is read once), at most [`AT_ONCE`] at a time, each result sent
//! over a channel the moment it arrives so the screen fills in as nodes answer; then each
//! balancer's own view of its environment. The reads go through [`crate::engine::status`], the
//! same scripts a deployment uses; nothing here changes a node, and nothing here draws.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;

use crate::engine::status::{NodeStatus, Reader};

/// How many nodes are read at the same time.
pub const AT_ONCE: usize = 32;

/// One answer of a fleet read.
#[derive(Debug, Clone)]
pub enum FleetNews {
    /// A node answered (or could not be reached: its status says why).
    Node(Box<NodeStatus>),
    /// An environment's balancers answered: node → in rotation; or why they could not.
    Rotation {
        env: String,
        result: Result<BTreeMap<String, bool>, String>,
    },
    /// Every node and balancer has answered.
    Done,
}

/// Read every node of every environment, and every environment's balancers, sending each
/// answer as it comes. Stops early when the receiver is dropped.
pub fn spawn_read(reader: Reader) -> mpsc::UnboundedReceiver<FleetNews> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let inv = reader.inventory().clone();
        let mut names: Vec<String> = Vec::new();
        for e in &inv.environments {
            for n in &e.nodes {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let r = &reader;
        let mut answers = stream::iter(names)
            .map(|n| async move { r.node(&n).await })
            .buffer_unordered(AT_ONCE);
        while let Some(st) = answers.next().await {
            if tx.send(FleetNews::Node(Box::new(st))).is_err() {
                return;
            }
        }
        for e in &inv.environments {
            if let Some(result) = reader.rotation(e).await {
                let news = FleetNews::Rotation {
                    env: e.name.clone(),
                    result,
                };
                if tx.send(news).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(FleetNews::Done);
    });
    rx
}
