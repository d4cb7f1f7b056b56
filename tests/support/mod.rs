//! The one harness of deckhand's integration tests. A test file says `mod support;` and uses the
//! parts it needs:
//!
//! - `ssh`: a fleet of real OpenSSH servers, one per node, with a bastion, a client key, a strict
//!   known_hosts and an HTTP app per node; driven through the `deckhand` binary or the transport.
//!   Its `Fleet`, `FleetSpec` and `InventorySpec` are also here at `support::` (the sshd fleet is
//!   the one most tests mean by "the fleet").
//! - `local`: a fleet of local nodes (directories on this machine) driven through the engine in
//!   the test's own process, with per-node failures and holds; `local::Fleet`, `local::FleetSpec`.
//! - `balanced`: local nodes with real HTTP apps behind a real HAProxy (`LbFleet`).
//! - `haproxy`, `http`, `prometheus`: real servers in front of or beside the nodes, a plain GET
//!   and a load loop.
//! - `faults`: the random campaign's fault kinds, its seeded generator, and the means of
//!   injecting each fault (signals, a frozen sshd, killed sessions, a tmpfs filled or read-only).
//! - `delay`: a slow link on loopback, a TCP proxy that delays each direction (for benchmarks
//!   that count round trips).
//! - `node`: what a node's deploy path holds, and the node app (`app.py`) both kinds of fleet run.
//! - `output`, `ports`, `procs`, `tmux`, `tools`, `wait`: what a `deckhand` process said, ports
//!   for test servers, this machine's processes, a real terminal for the console, where the
//!   outside programs are, and polling with a deadline.
//!
//! Every server binds 127.0.0.1 only, and every process the harness starts is stopped when the
//! value that owns it is dropped, also when a test panics. A tool that is missing fails the test
//! with a message naming the package to install. The harness touches nothing outside the
//! temporary directories it creates, except the test login user of the sshd fleet (see `ssh`).
//! It asserts nothing about deckhand itself: that is the tests' job.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

pub mod balanced;
pub mod delay;
pub mod faults;
pub mod haproxy;
pub mod http;
pub mod local;
pub mod node;
pub mod output;
pub mod ports;
pub mod procs;
pub mod prometheus;
pub mod ssh;
pub mod tmux;
pub mod tools;
pub mod wait;

#[allow(unused_imports)]
pub use http::http_get;
#[allow(unused_imports)]
pub use output::{assert_exit, text};
#[allow(unused_imports)]
pub use ports::free_port;
#[allow(unused_imports)]
pub use procs::{processes, Proc};
#[allow(unused_imports)]
pub use ssh::{Fleet, FleetNode, FleetSpec, InventorySpec, Server, FLEET_USER, SSHD};
