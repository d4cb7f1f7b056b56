//! The typed inventory: what the operator declared, after loading and validation.
//!
//! These types hold no I/O and no defaults logic beyond plain values; `read` fills them from
//! TOML and `validate` checks how they refer to each other. Byte spans (crate-private, never
//! serialized) are kept where those checks need to point back into the file.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::secrets::Secrets;

pub(crate) type Span = Range<usize>;

/// A name as the file wrote it, and where: kept where `validate` may have to point at a name
/// that refers to nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) name: String,
    pub(crate) span: Span,
}

impl Written {
    pub(crate) fn new(name: &str, span: &Span) -> Self {
        Written {
            name: name.to_string(),
            span: span.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// The file it came from (for messages) and its directory (where `local` steps run).
    pub file: PathBuf,
    pub app: App,
    pub nodes: Vec<Node>,
    pub environments: Vec<Environment>,
    pub phases: Vec<Phase>,
    pub theme: Option<String>,
    /// The post-deploy checklist, in file order.
    pub checks: Vec<Check>,
    pub checklist: Checklist,
    pub notify: Notify,
    #[serde(skip)]
    pub secrets: Secrets,
}

impl Inventory {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }
    /// Directory of the inventory file: local steps and relative paths start there.
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub name: String,
    pub deploy_path: String,
    pub keep_releases: u32,
    pub shared_files: Vec<String>,
    pub shared_dirs: Vec<String>,
    pub script: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    Strict,
    AcceptNew,
}

/// Which key exchange deckhand asks OpenSSH to prefer (`ssh.key_exchange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyExchange {
    /// Post-quantum ML-KEM where the local OpenSSH has it (9.9+); where its only post-quantum
    /// exchange is the slow sntrup761, classic curve25519 first (sntrup761 stays as a
    /// fallback). A `KexAlgorithms` in the user's own ssh_config wins.
    Auto,
    /// Whatever OpenSSH and the user's ssh_config choose; deckhand says nothing.
    Openssh,
    /// Post-quantum hybrids only; a server without one is refused.
    PostQuantum,
}

/// SSH settings of one node: the `[ssh]` defaults with the node's own keys laid over them.
#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<String>,
    /// ProxyJump hops, in order (`user@host:port`).
    pub jump: Vec<String>,
    pub known_hosts: Option<String>,
    pub host_key_checking: HostKeyChecking,
    #[serde(with = "crate::util::duration_serde")]
    pub connect_timeout: Duration,
    pub ssh_config: Option<String>,
    pub key_exchange: KeyExchange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Ssh,
    Local,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// Address for SSH and for `{host}`; local nodes default to `127.0.0.1`.
    pub host: String,
    pub roles: Vec<String>,
    pub transport: TransportKind,
    pub deploy_path: String,
    pub ssh: SshSettings,
    /// The node's server name in the load balancer (default: its name).
    pub lb_server: String,
    /// Its name in `[nodes.NAME]`, and its `lb_server` value when it has one.
    #[serde(skip)]
    pub(crate) span: Span,
    #[serde(skip)]
    pub(crate) lb_server_span: Option<Span>,
}

impl Node {
    /// What a run's first event says of this node.
    pub fn info(&self) -> crate::event::NodeInfo {
        crate::event::NodeInfo {
            name: self.name.clone(),
            host: self.host.clone(),
            transport: match self.transport {
                TransportKind::Local => "local".into(),
                TransportKind::Ssh => "ssh".into(),
            },
            roles: self.roles.clone(),
        }
    }
}

/// How nodes take their turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Strategy {
    /// Batch by batch along `batches`.
    Rolling,
    /// Deploy the idle group in parallel, then switch the balancer to it in one step.
    BlueGreen { groups: Vec<(String, Vec<String>)> },
    /// Growing steps of nodes with pauses between them.
    Canary { steps: Vec<CanaryStep> },
}

impl Strategy {
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::BlueGreen { .. } => "blue-green",
            Strategy::Canary { .. } => "canary",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryStep {
    /// Bring the total of deployed nodes up to this (a count or a share of the environment).
    Nodes(BatchSize),
    /// Wait for a promote (None) or for this long (a promote ends it sooner).
    Pause(#[serde(with = "crate::util::opt_duration_serde")] Option<Duration>),
}

/// One entry of a batch ramp: a node count or a share of the environment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSize {
    Count(u32),
    Percent(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    Pause,
    Rollback,
    Abort,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthProbe {
    /// A command run on the node; exit 0 means healthy.
    Run(String),
    /// An HTTP GET from this machine; `{host}` and friends are filled in.
    Url { url: String, expect: u16 },
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub probe: HealthProbe,
    #[serde(with = "crate::util::duration_serde")]
    pub timeout: Duration,
    #[serde(with = "crate::util::duration_serde")]
    pub interval: Duration,
    pub retries: u32,
}

/// A load balancer driven by commands run on this machine (HAProxy comes with its own driver).
#[derive(Debug, Clone, Serialize)]
pub struct CommandBalancer {
    pub drain: String,
    pub enable: String,
    pub state: Option<String>,
}

/// HAProxy through its runtime API (`stats socket … level admin`).
#[derive(Debug, Clone, Serialize)]
pub struct HaproxyBalancer {
    pub socket: String,
    pub backend: String,
    /// `local` (this machine) or the node whose connection reaches the socket (with socat).
    pub via: String,
    /// Where `via` is written, when it is.
    #[serde(skip)]
    pub(crate) via_span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BalancerKind {
    Command(CommandBalancer),
    Haproxy(HaproxyBalancer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainTimeoutAction {
    Proceed,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Balancer {
    pub kind: BalancerKind,
    /// Per command sent to the balancer.
    #[serde(with = "crate::util::duration_serde")]
    pub timeout: Duration,
    /// How long a drained node may keep sessions before `drain_timeout_action`.
    #[serde(with = "crate::util::duration_serde")]
    pub drain_timeout: Duration,
    pub drain_timeout_action: DrainTimeoutAction,
    /// How long a node must stay healthy before it goes back into rotation.
    #[serde(with = "crate::util::duration_serde")]
    pub min_healthy: Duration,
    /// Never drain a node if fewer than this many would stay in rotation.
    pub min_in_rotation: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    /// Node names, in plan order.
    pub nodes: Vec<String>,
    pub strategy: Strategy,
    pub batches: Vec<BatchSize>,
    /// Failed nodes tolerated, as a fraction of the environment (0.0 ..= 1.0).
    pub max_fail: f64,
    pub on_failure: OnFailure,
    pub pause_after_first: bool,
    pub protected: bool,
    pub health: Option<Health>,
    pub load_balancers: Vec<Balancer>,
    /// Another environment a release must have passed (its checklist) before it may come here.
    pub requires: Option<String>,
    /// `.env.example` (relative to the inventory) whose keys every node's `shared/.env` must have.
    pub config_example: Option<String>,
    pub allow_migrate_without_backup: bool,
    /// Its name in `[environments.NAME]`.
    #[serde(skip)]
    pub(crate) span: Span,
    /// Its lists as written, for `validate`.
    #[serde(skip)]
    pub(crate) written: WrittenLists,
}

/// What an environment's `nodes`, `roles` and `groups` said, name by name with spans. The
/// resolved members (`Environment::nodes`) and the strategy's groups are what deckhand uses;
/// `validate` checks these against the inventory and points at a name that refers to nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct WrittenLists {
    /// `nodes`, each name once.
    pub(crate) nodes: Vec<Written>,
    pub(crate) roles: Vec<Written>,
    /// Blue-green only.
    pub(crate) groups: Option<WrittenGroups>,
}

/// A blue-green environment's `groups`: where it is written, and each group's members.
#[derive(Debug, Clone)]
pub(crate) struct WrittenGroups {
    pub(crate) span: Span,
    pub(crate) groups: Vec<(String, Vec<Written>)>,
}

/// Which checklist window a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Immediate,
    Short,
    Long,
}

impl Window {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Window::Immediate => "immediate",
            Window::Short => "short",
            Window::Long => "long",
        }
    }
}

/// A check's place in the rollback decision tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Health,
    Errors,
    Performance,
    Critical,
    Info,
}

impl CheckKind {
    pub(crate) fn word(self) -> &'static str {
        match self {
            CheckKind::Health => "health",
            CheckKind::Errors => "errors",
            CheckKind::Performance => "performance",
            CheckKind::Critical => "critical",
            CheckKind::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Http {
        url: String,
        expect: u16,
        #[serde(with = "crate::util::opt_duration_serde")]
        max_latency: Option<Duration>,
        body: Option<String>,
    },
    /// A command; `on` is a node name, a role, or "local". Exit 0 passes, unless `min`/`max`
    /// are set: then the last number it prints is compared.
    Command {
        run: String,
        on: Option<String>,
        min: Option<f64>,
        max: Option<f64>,
    },
    Prometheus {
        url: String,
        query: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    Manual,
}

/// What happens when a check fails, besides the decision tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFail {
    /// Decide by the tree (the default).
    Tree,
    Alert,
    Rollback,
    Run(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    /// Shown after a measured number ("ms", "%").
    pub unit: Option<String>,
    pub window: Window,
    pub kind: CheckKind,
    pub per_node: bool,
    pub probe: Probe,
    #[serde(with = "crate::util::duration_serde")]
    pub timeout: Duration,
    pub on_fail: OnFail,
    #[serde(skip)]
    pub(crate) span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checklist {
    #[serde(with = "crate::util::duration_serde")]
    pub immediate: Duration,
    #[serde(with = "crate::util::duration_serde")]
    pub short: Duration,
    #[serde(with = "crate::util::duration_serde")]
    pub long: Duration,
    #[serde(with = "crate::util::duration_serde")]
    pub interval: Duration,
    pub auto_rollback: bool,
}

impl Default for Checklist {
    fn default() -> Self {
        Checklist {
            immediate: Duration::from_secs(5 * 60),
            short: Duration::from_secs(30 * 60),
            long: Duration::from_secs(2 * 3600),
            interval: Duration::from_secs(30),
            auto_rollback: true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Notify {
    #[serde(skip)]
    pub slack: Option<String>,
    #[serde(skip)]
    pub teams: Option<String>,
    #[serde(skip)]
    pub webhook: Option<String>,
    #[serde(with = "crate::util::duration_serde")]
    pub timeout: Duration,
    pub retries: u32,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            slack: None,
            teams: None,
            webhook: None,
            timeout: Duration::from_secs(5),
            retries: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Before,
    Node,
    After,
}

impl Stage {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Stage::Before => "before",
            Stage::Node => "node",
            Stage::After => "after",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Where {
    Node,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builtin {
    Release,
    Switch,
    Cleanup,
}

impl Builtin {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Builtin::Release => "release",
            Builtin::Switch => "switch",
            Builtin::Cleanup => "cleanup",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Run(String),
    Function(String),
    Builtin(Builtin),
    Upload { from: String, to: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub stage: Stage,
    pub once: bool,
    pub roles: Vec<String>,
    #[serde(rename = "where")]
    pub where_: Where,
    pub action: Action,
    #[serde(with = "crate::util::opt_duration_serde")]
    pub timeout: Option<Duration>,
    /// The `[[phases]]` table, its `roles` and its `name`.
    #[serde(skip)]
    pub(crate) span: Span,
    #[serde(skip)]
    pub(crate) roles_span: Option<Span>,
    #[serde(skip)]
    pub(crate) name_span: Span,
}
