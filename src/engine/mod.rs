//! The engine: executes a [`crate::plan::Plan`] against nodes through transports, emitting
//! [`crate::event::Event`]s and obeying [`crate::event::Control`]s. It never touches the terminal; whoever
//! starts a run gets a [`RunHandle`] and decides how to show it.

pub mod control;
pub mod emit;
pub mod remote;
pub mod run;
pub mod status;

use tokio::sync::mpsc;

pub use crate::event::{Control, Event, EventKind, Outcome};
pub use run::{spawn_deploy, spawn_rollback, RollbackTarget, RunOptions};

/// A running deployment, as seen from the outside: its events, its control channel, and the
/// task that ends with the outcome.
pub struct RunHandle {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub controls: mpsc::UnboundedSender<Control>,
    pub done: tokio::task::JoinHandle<Outcome>,
}
