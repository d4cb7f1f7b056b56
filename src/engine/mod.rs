//! The engine.
pub mod event;
