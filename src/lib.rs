//! deckhand: a terminal console for rolling deployments.
//!
//! Data flows one way: an inventory file is loaded and validated (`inventory`), turned into an
//! ordered plan for one environment and release (`plan`), and executed by the engine (`engine`),
//! which reaches nodes through a `transport` and reports everything as events. The headless
//! printer, the journal and the console screen only consume those events.

pub(crate) mod checks; // post-deploy probes (http, command, prometheus, manual) and the decision tree
pub mod config; // .env keys against .env.example: preflight and `deckhand config`
pub mod demo; // the local demo: nodes on this machine with v1.0 live, ready for v1.1
pub mod diag; // file:line:col diagnostics with a caret and a fix
pub mod engine; // the run loop: locks, phases, health, gates, pause, abort, rollback
pub mod event; // the protocol: Event out of the engine, Control into it (plain serde data)
pub mod exit; // the exit codes, and the one conversion of a run's outcome into one
pub mod fleet; // every environment read at once, answers sent as they come (the home screen)
pub mod headless; // line and JSON output of events for CI
pub mod history; // an environment's deployments and rollbacks, from the nodes' own history
pub(crate) mod import; // servers from Ansible, Deployer and ssh_config into one model and a commented TOML file
pub mod init; // `deckhand init`: templates (generic, laravel), imports, write once and validate
pub mod inventory; // TOML inventory: model, loading with ${VAR}, validation
pub mod journal; // the journal: names, ids, writing and reading JSONL files of events
pub(crate) mod lb; // load balancers: drain, enable, measured rotation state
pub mod leave; // the leave policy: first signal pauses and leaves, second aborts, grace then abort
pub mod manual; // shell completions and the man page, from the command line's definition
pub(crate) mod notify; // Slack, Teams and generic webhooks, in the background
pub mod plan; // inventory + environment + release -> ordered steps, batches and gates
pub mod resume; // finding an interrupted deployment in the journals
pub(crate) mod secrets; // masking of secret values in everything that leaves the engine
pub mod transport; // running scripts on nodes: local and ssh
pub mod ui; // the console: node grid, phases, checklist, log, keys, themes, replay
pub mod util; // quoting, placeholders, names, durations
pub mod watch; // following another console's deployment from what the nodes and balancers say
