//! The engine: executes a [`crate::plan::Plan`] against nodes through transports, emitting
//! [`crate::event::Event`]s and obeying [`crate::event::Control`]s. It never touches the
//! terminal; whoever starts a run gets a [`RunHandle`] and decides how to show it.
//!
//! The run (`run.rs` and its folder) is written against parts with their own state:
//! - `steps`: the step runner (the one step bracket, output forwarding, the way to each node);
//! - `script`: the shell text of a step, built by pure functions;
//! - `ledger`: what the run knows about each node, and the decisions that follow (rollback
//!   order, what an abort undoes); pure;
//! - `policy`: what a failure leads to, where a rollback sends each node; pure;
//! - `preflight`, `health`, `lock`, `balance`: the checks before a change, the health check,
//!   the locks with their heartbeat, the balancers around a node's turn;
//! - `control` (pause, gates, stops), `emit` (the single exit of every event) and `timing`
//!   (where the time went);
//! - `remote`: the on-node layout and the scripts that read and change it; `status` reads an
//!   environment without changing it; `promote` says what may be promoted.

pub(crate) mod balance;
pub(crate) mod control;
pub(crate) mod emit;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod ledger;
pub(crate) mod lock;
pub(crate) mod policy;
pub(crate) mod preflight;
pub mod promote;
pub mod remote;
mod run;
pub(crate) mod script;
pub mod status;
pub(crate) mod steps;
pub(crate) mod timing;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use crate::event::{Control, Event, EventKind, Outcome};
pub use error::StartError;
pub use policy::RollbackTarget;
pub use run::{spawn_deploy, spawn_rollback};

/// How often a running console refreshes its locks' heartbeat, and when a lock counts as stale.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// How a run behaves: who runs it, whether anybody watches, and how it treats locks.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Pass gates without waiting (`--yes`).
    pub auto_promote: bool,
    /// Nobody is watching: a failure that would pause rolls back instead.
    pub headless: bool,
    /// Where the journal goes; None writes none.
    pub journal_dir: Option<PathBuf>,
    pub who: String,
    /// Cap on the monitoring window (`--watch`); None runs the checklist's windows in full.
    pub watch: Option<Duration>,
    /// Wait this long for a live lock to be released (`--lock-wait`).
    pub lock_wait: Option<Duration>,
    /// Take over locks whose heartbeat is older than `stale_after` (the operator confirmed).
    pub take_over_stale: bool,
    /// A lock whose heartbeat is older than this is stale.
    pub stale_after: Duration,
    /// Resume: run under this deployment id and take over its own lock.
    pub resume_id: Option<String>,
    /// Step mode from the start (`--step`): pause before the first step.
    pub step: bool,
    /// A promotion: the environment whose verified release this run deploys (recorded in the
    /// nodes' history as a `promote`).
    pub promote_from: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            auto_promote: false,
            headless: false,
            journal_dir: Some(crate::journal::default_journal_dir()),
            who: crate::util::whoami(),
            watch: None,
            lock_wait: None,
            take_over_stale: false,
            stale_after: DEFAULT_STALE_AFTER,
            resume_id: None,
            step: false,
            promote_from: None,
        }
    }
}

/// A running deployment, as seen from the outside: its events, its control channel, and the
/// task that ends with the outcome.
pub struct RunHandle {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub controls: mpsc::UnboundedSender<Control>,
    pub done: tokio::task::JoinHandle<Outcome>,
}
