//! The inventory: which app, which nodes, which environments and which phases. `load` reads and
//! checks a file; everything downstream gets a typed, validated [`Inventory`].
//!
//! Inside, one direction: `load` (the entry) → `syntax` (every TOML syntax error at once) →
//! `read` (one file per section: the shape of every table, `${VAR}`) → `validate` (how the parts
//! refer to each other) → the `model`. Only `load` and the model are public.

mod load;
mod model;
mod read;
mod syntax;
mod validate;

pub use load::{load, load_str, LoadError};
pub use model::*;
