//! The inventory: which app, which nodes, which environments and which phases. `load` reads and
//! checks a file; everything downstream gets a typed, validated [`Inventory`].

pub mod load;
pub mod model;
pub mod validate;

pub use load::{load, load_str, LoadError};
pub use model::*;
