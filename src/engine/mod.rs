//! The engine: executes a [`crate::plan::Plan`] against nodes through transports, emitting
//! [`event::Event`]s and obeying [`event::Control`]s. It never touches the terminal.

pub mod event;

use tokio::sync::mpsc;

pub use event::{Control, Event, EventKind, Outcome};

/// A running deployment, as seen from the outside: its events, its control channel, and the
/// task that ends with the outcome.
pub struct RunHandle {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub controls: mpsc::UnboundedSender<Control>,
    pub done: tokio::task::JoinHandle<Outcome>,
}
