//! The SSH transport: one multiplexed OpenSSH connection per node (the `openssh` crate's native
//! mux), opened on first use, and on it a few long-lived shells that run the steps, so a step
//! costs one round trip, not a channel and a login shell.
//!
//! It owns how a node is reached (user, port, key, known_hosts, host-key policy, jump hosts,
//! an optional ssh_config, timeouts, an idle limit on the master), the pool of shells on that
//! connection and how a step is run, stopped and read through one of them (the protocol and the
//! node-side program are in `shell.rs`), how a file is copied there, and how ssh's own
//! complaints become one plain sentence for the operator. It must not decide what runs: scripts
//! come from the engine, already quoted; every value this module adds is quoted here.
//!
//! A shell runs one step at a time; steps at the same time on one node (a step, the lock's
//! heartbeat, a balancer command, a probe) each take a shell of the pool, which grows to
//! [`MAX_SHELLS`] and keeps them for the next steps: SSH already multiplexes channels, and a
//! shell's own stdout and stderr then carry one step's output with no interleaving to untangle.
//! A shell is given back only when its step ended cleanly; one that died, was cut off or can no
//! longer be trusted is closed, and the next step opens a new one. A step whose shell died is
//! reported as lost, never as passed, and what is left of it is stopped through a channel of its
//! own. The console going away (or dropping a step) closes the channel, and the shell then stops
//! the step it was running.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::kex::KexLine;
use super::shell::{self, Greeting, Hello, Record};
use super::{
    cut_note, sanitize, Collector, Ended, ExecOutcome, ExecRequest, LineSender, Stream, Transport,
    TransportError, CAPTURE_LIMIT,
};
use crate::inventory::{HostKeyChecking, KeyExchange, Node, SshSettings};
use crate::util::{format_duration, sh_quote};

/// The master connection exits after this long without any channel open; the next step then
/// opens a new one. Never "forever": a console that dies must not leave masters behind for good.
pub const MASTER_IDLE: Duration = Duration::from_secs(120);
/// Keepalive probes, so a dead server is noticed within about 3 × this.
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long stopping a step may take on the node before deckhand gives up waiting: 2 s between
/// SIGTERM and SIGKILL, and the time to find the processes.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most shells kept on one node's connection: as many steps can run there at once (sshd allows
/// 10 sessions per connection by default; uploads and stops need a few more).
pub const MAX_SHELLS: usize = 6;
/// How long connecting waits for its `exit 0` channel (see [`Link::nudge`]).
const NUDGE_LIMIT: Duration = Duration::from_secs(1);
/// How long a new shell may take to say it is ready.
const SHELL_START: Duration = Duration::from_secs(30);
/// When a running step is first asked for an early exit status (see [`shell::tick_request`]),
/// and how often after that: a step whose script is done while a process it started (started
/// in the background without its own output) still holds the step's output is only known to be
/// done at the next ask. A step done sooner is never asked.
const FIRST_TICK: Duration = Duration::from_millis(50);
fn next_tick_after(running: Duration) -> Duration {
    match running.as_millis() {
        0..=999 => Duration::from_millis(50),
        1000..=9999 => Duration::from_millis(250),
        _ => Duration::from_millis(500),
    }
}
/// Once the node said a step's status early (its output closed and a process it started still
/// holds only the end-of-step marker: an app a `restart` put in the background), deckhand asks
/// at once, which ends the step, then this often for a while should the answer be held up: a
/// restart costs a round trip more than its script instead of up to the next slow ask.
const QUICK_TICK: Duration = Duration::from_millis(5);
const QUICK_TICKS_FOR: Duration = Duration::from_millis(200);
/// How long output may pause before deckhand answers it (see the nudge in `exec`): at once, as
/// soon as nothing more is waiting from the shell.
const NUDGE: Duration = Duration::ZERO;

/// Through a jump host, how often an opening shell is sent an empty line, and how many at
/// most (see `open_shell`): about as long as a shell takes to start on a busy node.
const RELAY_ANSWER_EVERY: Duration = Duration::from_millis(3);
const RELAY_ANSWERS: u32 = 40;

/// How one node is reached over SSH, resolved from the inventory.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The node's name, for messages.
    pub node: String,
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub jump: Vec<String>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    pub connect_timeout: Duration,
    pub ssh_config: Option<PathBuf>,
    pub key_exchange: KeyExchange,
}

impl SshTarget {
    /// Resolve a node's settings; relative paths start at `base_dir` (the inventory's directory).
    pub fn from_node(node: &Node, base_dir: &Path) -> Result<Self, TransportError> {
        let s: &SshSettings = &node.ssh;
        let path = |p: &Option<String>| p.as_deref().map(|p| resolve_path(p, base_dir));
        let target = SshTarget {
            node: node.name.clone(),
            host: node.host.clone(),
            user: s.user.clone(),
            port: s.port,
            identity_file: path(&s.identity_file),
            jump: s.jump.clone(),
            known_hosts: path(&s.known_hosts),
            host_key_checking: s.host_key_checking,
            connect_timeout: s.connect_timeout,
            ssh_config: path(&s.ssh_config),
            key_exchange: s.key_exchange,
        };
        target.check()?;
        Ok(target)
    }

    fn check(&self) -> Result<(), TransportError> {
        let bad = |what: &str, value: &str, why: &str| {
            TransportError::Connect(format!("node {}: {what} `{value}` {why}", self.node))
        };
        if self.host.is_empty()
            || self.host.starts_with('-')
            || self
                .host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("host", &self.host, "is not a host name or address"));
        }
        if let Some(u) = &self.user {
            if u.is_empty()
                || u.starts_with('-')
                || u.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '@')
            {
                return Err(bad("user", u, "is not a user name"));
            }
        }
        for hop in &self.jump {
            if !crate::util::valid_jump_hop(hop) {
                return Err(bad("jump host", hop, "is not of the form user@host:port"));
            }
        }
        for p in [&self.identity_file, &self.known_hosts, &self.ssh_config]
            .into_iter()
            .flatten()
        {
            let text = p.display().to_string();
            if text.contains('"') || text.contains('\n') || text.contains('\r') {
                return Err(bad(
                    "path",
                    &text,
                    "cannot be written into an ssh config (it contains a quote or a line break)",
                ));
            }
        }
        Ok(())
    }

    /// `user@host:port` as the operator would write it.
    pub fn destination(&self) -> String {
        let mut d = String::new();
        if let Some(u) = &self.user {
            d.push_str(u);
            d.push('@');
        }
        d.push_str(&self.host);
        if let Some(p) = self.port {
            let _ = write!(d, ":{p}");
        }
        d
    }

    /// `host:port` (or just the host), for sentences that name the user separately.
    pub fn address(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The known_hosts file ssh checks, for messages.
    fn known_hosts_display(&self) -> String {
        self.known_hosts
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".into())
    }

    /// The ssh configuration files that apply to the node: the inventory's `ssh_config`, or the
    /// user's and the system's where they exist.
    fn config_files(&self) -> Vec<PathBuf> {
        match &self.ssh_config {
            Some(f) => vec![f.clone()],
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".ssh/config"))
                .into_iter()
                .chain([PathBuf::from("/etc/ssh/ssh_config")])
                .filter(|f| f.is_file())
                .collect(),
        }
    }

    /// Options every hop shares (the node and each jump host): what the inventory says first, then
    /// the user's own ssh configuration for everything it does not say, then deckhand's own
    /// preferences (`kex`, unless the inventory insists on it) for what neither says.
    fn common_config(&self, kex: Option<&KexLine>) -> String {
        let mut c = String::from(
            "# Written by deckhand for one node's connection; removed when it closes.\n",
        );
        c.push_str("BatchMode yes\n");
        let _ = writeln!(
            c,
            "StrictHostKeyChecking {}",
            match self.host_key_checking {
                HostKeyChecking::Strict => "yes",
                HostKeyChecking::AcceptNew => "accept-new",
            }
        );
        if let Some(k) = &self.known_hosts {
            let _ = writeln!(c, "UserKnownHostsFile {}", config_path(k));
        }
        if let Some(i) = &self.identity_file {
            let _ = writeln!(c, "IdentityFile {}", config_path(i));
            c.push_str("IdentitiesOnly yes\n");
        }
        let _ = writeln!(
            c,
            "ConnectTimeout {}",
            self.connect_timeout.as_secs().max(1)
        );
        let _ = writeln!(c, "ServerAliveInterval {}", SERVER_ALIVE_INTERVAL.as_secs());
        c.push_str("ServerAliveCountMax 3\n");
        if let Some(k) = kex.filter(|k| k.overrides_user_config) {
            let _ = writeln!(c, "KexAlgorithms {}", k.value);
        }
        for f in self.config_files() {
            let _ = writeln!(c, "Include {}", config_path(&f));
        }
        if let Some(k) = kex.filter(|k| !k.overrides_user_config) {
            // ssh keeps the first value it reads, so this applies only where the files
            // included above say nothing about the key exchange.
            let _ = writeln!(c, "KexAlgorithms {}", k.value);
        }
        c
    }

    /// The node's own config: the common options, plus the way through the jump hosts. The last
    /// hop is a ProxyCommand (rather than `-J`) so that its complaints land in `jump_log`
    /// instead of being lost with the master's stderr.
    fn node_config(&self, common: &Path, jump_log: &Path, helper: Option<&str>) -> String {
        let mut c = String::from(
            "# Written by deckhand for one node's connection; removed when it closes.\n",
        );
        if let Some(lines) = helper.filter(|_| self.jump.is_empty()) {
            c.push_str(lines);
        }
        if let Some((last, before)) = self.jump.split_last() {
            let mut cmd = format!("ssh -F {}", sh_quote(&common.display().to_string()));
            if !before.is_empty() {
                let _ = write!(cmd, " -J {}", sh_quote(&before.join(",")));
            }
            let _ = write!(
                cmd,
                " -W '[%h]:%p' {} 2>>{}",
                sh_quote(&format!("ssh://{last}")),
                sh_quote(&jump_log.display().to_string())
            );
            // `%` is ssh's token character; the only tokens meant here are %h and %p.
            let cmd = cmd
                .replace('%', "%%")
                .replace("%%h", "%h")
                .replace("%%p", "%p");
            let _ = writeln!(c, "ProxyCommand {cmd}");
        }
        let _ = writeln!(c, "Include {}", config_path(common));
        c
    }
}

fn resolve_path(p: &str, base_dir: &Path) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base_dir.join(path)
    }
}

/// A path as an ssh_config value: double-quoted, `%` escaped (checked free of quotes earlier).
fn config_path(p: &Path) -> String {
    format!("\"{}\"", p.display().to_string().replace('%', "%%"))
}

/// The short, private directory that holds control sockets and generated configs: socket paths
/// must stay under ~100 bytes, so not under a long `$TMPDIR`.
fn control_root() -> Result<PathBuf, TransportError> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = PathBuf::from(format!("/tmp/dh-{uid}"));
    let fail = |why: String| {
        TransportError::Connect(format!(
            "cannot use {} for SSH control sockets: {why}; remove it or fix its owner and mode (0700)",
            dir.display()
        ))
    };
    match std::fs::symlink_metadata(&dir) {
        Err(_) => {
            use std::os::unix::fs::DirBuilderExt;
            if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(fail(e.to_string()));
                }
            }
        }
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            if !meta.is_dir() {
                return Err(fail("it is not a directory".into()));
            }
            if meta.uid() != uid {
                return Err(fail(format!("it belongs to uid {}", meta.uid())));
            }
            if meta.mode() & 0o077 != 0 {
                return Err(fail("others can read or write it".into()));
            }
        }
    }
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep_stale(&dir, STALE_AFTER));
    Ok(dir)
}

/// How many times the link's cost is sampled after a node's turn (see `Link::measure`).
const MEASURE_ROUNDS: usize = 3;

/// A connection's directory left this long with no master answering on its socket is stale.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Remove the directories of connections whose console was killed outright (no `Drop` ran):
/// older than `age`, and no master answering on a control socket inside. Once per process, so
/// `/tmp/dh-UID` does not fill up with them.
pub(crate) fn sweep_stale(root: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > age);
        if !old || !e.file_name().to_string_lossy().starts_with('n') {
            continue;
        }
        let live = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|c| {
                c.file_name()
                    .to_string_lossy()
                    .starts_with(".ssh-connection")
            })
            .any(|c| std::os::unix::net::UnixStream::connect(c.path().join("master")).is_ok());
        if !live {
            log::debug!(
                "removing {}, left by a console that was killed",
                path.display()
            );
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Turn what ssh wrote when a connection failed into one plain sentence: what went wrong, with
/// the facts needed to fix it (fingerprint and file, user and key, how long it waited).
pub fn explain_connect_failure(target: &SshTarget, ssh_log: &str, jump_log: &str) -> String {
    // A failing jump host makes the node's own log say little ("connection closed"); its own
    // log says why.
    if let Some(hop) = target.jump.last() {
        if let Some(why) = classify(target, jump_log, Some(hop)) {
            return format!("through jump host {hop}: {why}");
        }
    }
    if let Some(why) = classify(target, ssh_log, None) {
        return why;
    }
    let last = last_line(ssh_log)
        .or_else(|| last_line(jump_log))
        .unwrap_or_else(|| "ssh gave no reason".into());
    format!("cannot connect to {}: {last}", target.destination())
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(|l| sanitize(l.trim()))
        .rfind(|l| !l.is_empty())
}

fn classify(target: &SshTarget, log: &str, hop: Option<&str>) -> Option<String> {
    let dest = hop
        .map(|h| h.rsplit_once('@').map(|(_, a)| a).unwrap_or(h).to_string())
        .unwrap_or_else(|| target.address());
    if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || log.contains("has changed and you have requested strict checking")
    {
        let mut fingerprint = None;
        let mut key_type = None;
        let mut lines = log.lines();
        while let Some(l) = lines.next() {
            if let Some(rest) = l.trim().strip_prefix("The fingerprint for the ") {
                key_type = rest.split_whitespace().next().map(str::to_string);
                fingerprint = lines
                    .next()
                    .map(|f| f.trim().trim_end_matches('.').to_string());
            }
        }
        let offending = log.lines().find_map(|l| {
            l.trim()
                .strip_prefix("Offending ")
                .and_then(|r| r.split_once(" key in "))
                .map(|(_, at)| at.trim().to_string())
        });
        let file = offending
            .as_deref()
            .map(|at| {
                at.rsplit_once(':')
                    .map(|(f, _)| f.to_string())
                    .unwrap_or_else(|| at.to_string())
            })
            .unwrap_or_else(|| target.known_hosts_display());
        let host_key = log
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Host key for ")
                    .and_then(|r| r.split_once(" has changed"))
                    .map(|(h, _)| h.to_string())
            })
            .unwrap_or_else(|| dest.clone());
        return Some(sanitize(&format!(
            "host key mismatch: {dest} offered {} key {}, which is not the key recorded for {host_key} in {}. \
             If the server was rebuilt on purpose, remove the old entry (ssh-keygen -f \"{file}\" -R \"{host_key}\") and add the new key after checking it; \
             otherwise do not deploy: someone may be intercepting the connection",
            key_type.as_deref().unwrap_or("a"),
            fingerprint.as_deref().unwrap_or("(fingerprint not shown)"),
            offending.as_deref().unwrap_or(&file),
        )));
    }
    if let Some(l) = log
        .lines()
        .find(|l| l.contains("host key is known for") && l.contains("strict checking"))
    {
        let host_key = l
            .split_once("known for ")
            .and_then(|(_, r)| r.split_once(" and you"))
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| dest.clone());
        return Some(sanitize(&format!(
            "unknown host key: {host_key} is not in {} and host_key_checking is strict. \
             Add its key after checking the fingerprint (ssh-keyscan), or set host_key_checking = \"accept-new\"",
            target.known_hosts_display()
        )));
    }
    if log.contains("Host key verification failed") {
        return Some(format!(
            "host key verification failed for {dest} (known_hosts: {})",
            target.known_hosts_display()
        ));
    }
    if log.contains("Permission denied (") || log.contains("Too many authentication failures") {
        let user = hop
            .and_then(|h| h.split_once('@').map(|(u, _)| u.to_string()))
            .or_else(|| target.user.clone())
            .unwrap_or_else(crate::util::whoami);
        let key = match &target.identity_file {
            Some(k) => format!("the key {}", k.display()),
            None => "the keys of ssh-agent and ~/.ssh (no identity_file set)".into(),
        };
        return Some(format!(
            "authentication failed: {dest} refused user {user} with {key}; check that its public key is in ~{user}/.ssh/authorized_keys there"
        ));
    }
    if let Some(l) = log
        .lines()
        .find(|l| l.contains("no matching key exchange method found"))
    {
        let offer = l
            .split_once("Their offer:")
            .map(|(_, o)| o.trim().to_string())
            .unwrap_or_else(|| "not shown".into());
        let hint = match target.key_exchange {
            KeyExchange::PostQuantum => {
                "key_exchange = \"post-quantum\" accepts only mlkem768x25519 or sntrup761x25519; \
                 upgrade OpenSSH on that server (9.0 or newer), or set key_exchange = \"auto\" for it"
            }
            _ => "allow a common key exchange in the server's sshd_config (KexAlgorithms), or in the ssh_config the inventory names",
        };
        return Some(sanitize(&format!(
            "no key exchange in common with {dest}: it offers {offer}; {hint}"
        )));
    }
    if log.contains("Connection refused") {
        return Some(format!(
            "connection refused by {dest}: is sshd running and listening on that port?"
        ));
    }
    if log.contains("timed out") || log.contains("Timeout, server") {
        return Some(format!(
            "timed out: {dest} did not answer within {} (connect_timeout)",
            format_duration(target.connect_timeout)
        ));
    }
    if let Some(l) = log
        .lines()
        .find(|l| l.contains("Could not resolve hostname"))
    {
        return Some(format!(
            "cannot resolve the host name: {}",
            sanitize(l.trim())
        ));
    }
    if log.contains("No route to host") || log.contains("Network is unreachable") {
        return Some(format!("{dest} is unreachable (no route to it)"));
    }
    if log.contains("Connection closed by")
        || log.contains("Connection reset")
        || log.contains("kex_exchange_identification")
    {
        return Some(format!(
            "{dest} closed the connection before login ({}); is it an SSH server, and does it accept this machine?",
            last_line(log).unwrap_or_default()
        ));
    }
    None
}

/// A master connection and the private directory of its configs and control socket. The shells'
/// channels hold it too, so it may outlive the transport a little: whoever lets go of it last
/// drops the session first, which tells the master to exit through the socket while the
/// directory still exists (field order matters).
struct Master {
    session: Session,
    _dir: tempfile::TempDir,
}

/// A shared hold on a [`Master`], usable wherever the `openssh` crate wants a session.
#[derive(Clone)]
struct MasterRef(Arc<Master>);

impl std::ops::Deref for MasterRef {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.0.session
    }
}

/// The live master connection, if any.
struct Conn {
    master: Option<MasterRef>,
}

/// Reaches one node over SSH. Cheap to create; connects on first use.
pub struct SshTransport {
    link: Arc<Link>,
}

/// The node's connection, its shells and what they share; held by the transport and, while it
/// opens a shell in reserve, by that task.
struct Link {
    /// Itself, for the task that opens a shell in reserve.
    me: Weak<Link>,
    target: SshTarget,
    conn: Mutex<Conn>,
    /// Shells ready for a step (the most recently used last).
    idle: std::sync::Mutex<Vec<NodeShell>>,
    /// One permit per shell leased to a step or being opened (idle shells hold none; see
    /// [`Link::room`]): at most [`MAX_SHELLS`].
    slots: Semaphore,
    /// Step ids, for the `run`/`kill` requests and the steps' `DECKHAND_STEP`.
    next_step: AtomicU64,
    /// Shell numbers, for the logs.
    next_shell: AtomicU64,
    /// The fastest script so far, in microseconds, from handing it to a shell to its end record
    /// (`u64::MAX`: none yet): the link's floor, see [`Transport::floor`].
    fastest_us: AtomicU64,
    /// The task opening shells in reserve and how many it still owes (see [`Link::refill`]).
    reserve: std::sync::Mutex<Reserve>,
    /// Wakes the steps waiting for the shell in reserve rather than opening one of their own.
    reserve_done: tokio::sync::Notify,
    /// What a step costs on this link beyond starting its script the usual way, in
    /// microseconds (`u64::MAX`: not measured yet): see [`Link::measure`].
    cost_us: AtomicU64,
    /// The task measuring it after the connection opened.
    measuring: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set once the transport closes: no shell is opened in reserve after that.
    closing: AtomicBool,
}

/// The shells asked for in the background ([`Link::refill`]): the task that opens them, one
/// after the other, and how many it still owes. The task decides to end under the same lock
/// that a new request takes, so no request is left with no task to open its shell.
#[derive(Default)]
struct Reserve {
    task: Option<tokio::task::JoinHandle<()>>,
    /// The number of the task that runs, if one does (tasks are numbered from 1).
    running: Option<u64>,
    /// The last task's number.
    tasks: u64,
    owed: usize,
}

/// Ends reserve task number `.1`, however it ends (done, failed or aborted unpolled): no longer
/// running unless a newer task took over, and the steps waiting for it told.
struct ReserveDone(Arc<Link>, u64);

impl Drop for ReserveDone {
    fn drop(&mut self) {
        if let Ok(mut r) = self.0.reserve.lock() {
            if r.running == Some(self.1) {
                r.running = None;
            }
        }
        self.0.reserve_done.notify_waiters();
    }
}

/// What a shell's channel brings back: its lines, the end of its streams, its exit.
#[derive(Debug)]
enum ShellEvent {
    Line(Stream, Vec<u8>),
    Closed(Stream),
    Exited(String),
}

/// One long-lived shell on the node (see `shell.rs`), and the tasks reading its channel.
struct NodeShell {
    serial: u64,
    hello: Hello,
    stdin: openssh::ChildStdin,
    events: mpsc::UnboundedReceiver<ShellEvent>,
    /// Readers of stdout and stderr, and the task that owns the channel and waits for its end.
    /// Aborting them closes the channel: the shell sees its input end and stops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl NodeShell {
    /// Whether an idle shell can take a step: nothing at all may have arrived since its last
    /// step ended (its exit, the end of a stream, or stray output all mean it cannot).
    fn fresh(&mut self) -> bool {
        match self.events.try_recv() {
            Err(mpsc::error::TryRecvError::Empty) => true,
            Ok(ev) => {
                log::debug!("shell {} is not reused: {ev:?}", self.serial);
                false
            }
            Err(mpsc::error::TryRecvError::Disconnected) => false,
        }
    }

    /// Close the channel and wait until its tasks let go of it.
    async fn close(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for NodeShell {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A shell taken from the pool for one step. Given back only when the step ended cleanly;
/// dropped otherwise (also when the step's future is dropped), which closes the shell.
struct Lease<'a> {
    transport: &'a Link,
    shell: Option<NodeShell>,
    _slot: tokio::sync::SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn shell(&mut self) -> &mut NodeShell {
        self.shell
            .as_mut()
            .expect("a lease holds its shell until it is given back")
    }

    fn give_back(mut self) {
        if let Some(s) = self.shell.take() {
            if let Ok(mut idle) = self.transport.idle.lock() {
                idle.push(s);
            }
        }
    }
}

/// Read one stream of a shell's channel line by line into `tx`.
async fn read_lines<R: tokio::io::AsyncRead + Unpin>(
    reader: Option<R>,
    stream: Stream,
    tx: mpsc::UnboundedSender<ShellEvent>,
) {
    let Some(reader) = reader else {
        let _ = tx.send(ShellEvent::Closed(stream));
        return;
    };
    let mut reader = tokio::io::BufReader::new(reader);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if tx.send(ShellEvent::Line(stream, line)).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(ShellEvent::Closed(stream));
}

/// How a remote process ended, in words.
fn exit_words(r: &Result<std::process::ExitStatus, openssh::Error>) -> String {
    match r {
        Ok(s) => match s.code() {
            Some(c) => format!("it exited with status {c}"),
            None => "it was killed by a signal".into(),
        },
        Err(openssh::Error::RemoteProcessTerminated) => "it was killed by a signal".into(),
        Err(e) => e.to_string(),
    }
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("target", &self.link.target)
            .finish()
    }
}

impl SshTransport {
    pub fn new(target: SshTarget) -> Self {
        let link = Arc::new_cyclic(|me| Link {
            me: me.clone(),
            target,
            conn: Mutex::new(Conn { master: None }),
            idle: std::sync::Mutex::new(Vec::new()),
            slots: Semaphore::new(MAX_SHELLS),
            next_step: AtomicU64::new(0),
            next_shell: AtomicU64::new(0),
            fastest_us: AtomicU64::new(u64::MAX),
            reserve: std::sync::Mutex::new(Reserve::default()),
            reserve_done: tokio::sync::Notify::new(),
            cost_us: AtomicU64::new(u64::MAX),
            measuring: std::sync::Mutex::new(None),
            closing: AtomicBool::new(false),
        });
        SshTransport { link }
    }

    pub fn for_node(node: &Node, base_dir: &Path) -> Result<Self, TransportError> {
        Ok(Self::new(SshTarget::from_node(node, base_dir)?))
    }

    /// The master's control socket, while a connection is open (for `ssh -S … -O check`).
    pub async fn control_socket(&self) -> Option<PathBuf> {
        let conn = self.link.conn.lock().await;
        conn.master
            .as_ref()
            .map(|s| s.control_socket().to_path_buf())
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        self.link.stop_refill();
    }
}

#[async_trait]
impl Transport for SshTransport {
    async fn connect(&self) -> Result<(), TransportError> {
        self.link.connect().await
    }

    fn floor(&self) -> Duration {
        self.link.floor()
    }

    async fn exec(
        &self,
        req: &ExecRequest,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, TransportError> {
        self.link.exec(req, lines, cancel).await
    }

    async fn upload(&self, from: &Path, to: &str) -> Result<(), TransportError> {
        self.link.upload(from, to).await
    }

    async fn close(&self) {
        self.link.close().await
    }

    fn prepare(&self) {
        self.link.prepare();
    }

    fn settle(&self) {
        self.link.measure();
    }
}

impl Link {
    /// The open master, opening it if there is none.
    async fn session(&self) -> Result<MasterRef, TransportError> {
        let mut conn = self.conn.lock().await;
        if let Some(s) = &conn.master {
            return Ok(s.clone());
        }
        let master = MasterRef(Arc::new(self.launch().await?));
        conn.master = Some(master.clone());
        Ok(master)
    }

    /// Forget `stale` (a master that went away) so the next call opens a new one.
    async fn forget(&self, stale: &MasterRef) {
        let mut conn = self.conn.lock().await;
        if conn
            .master
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.0, &stale.0))
        {
            conn.master = None;
        }
    }

    async fn launch(&self) -> Result<Master, TransportError> {
        let t = &self.target;
        let io_fail = |what: &str, e: std::io::Error| {
            TransportError::Connect(format!(
                "cannot prepare the SSH connection to {}: {what}: {e}",
                t.destination()
            ))
        };
        let root = control_root()?;
        let private = tempfile::Builder::new()
            .prefix("n")
            .rand_bytes(6)
            .tempdir_in(&root)
            .map_err(|e| io_fail("cannot create its directory", e))?;
        let dir = private.path().to_path_buf();
        if let Some(k) = &t.identity_file {
            if !k.is_file() {
                return Err(TransportError::Connect(format!(
                    "identity_file {} for {} does not exist; fix identity_file in the inventory",
                    k.display(),
                    t.destination()
                )));
            }
        }
        if let Some(f) = &t.ssh_config {
            if !f.is_file() {
                return Err(TransportError::Connect(format!(
                    "ssh_config {} for {} does not exist; fix ssh_config in the inventory",
                    f.display(),
                    t.destination()
                )));
            }
        }
        let common = dir.join("common.cfg");
        let node_cfg = dir.join("node.cfg");
        let jump_log = dir.join("jump.log");
        let kex = super::kex::local()
            .await
            .line(t.key_exchange)
            .map_err(|e| {
                TransportError::Connect(format!("cannot connect to {}: {e}", t.destination()))
            })?;
        std::fs::write(&common, t.common_config(kex.as_ref()))
            .map_err(|e| io_fail("cannot write its ssh config", e))?;
        std::fs::write(&node_cfg, t.node_config(&common, &jump_log, None))
            .map_err(|e| io_fail("cannot write its ssh config", e))?;
        let _ = std::fs::write(&jump_log, "");
        let connect_log = dir.join("connect.log");
        if let Some(lines) = self.helper_lines(&node_cfg, &connect_log).await {
            std::fs::write(&node_cfg, t.node_config(&common, &jump_log, Some(&lines)))
                .map_err(|e| io_fail("cannot write its ssh config", e))?;
        }

        let mut b = SessionBuilder::default();
        b.known_hosts_check(match t.host_key_checking {
            HostKeyChecking::Strict => KnownHosts::Strict,
            HostKeyChecking::AcceptNew => KnownHosts::Add,
        })
        .control_directory(&dir)
        .control_persist(ControlPersist::IdleFor(
            std::num::NonZeroUsize::new(MASTER_IDLE.as_secs() as usize)
                .unwrap_or(std::num::NonZeroUsize::MIN),
        ))
        // Everything else (key, known_hosts, timeouts) is in the generated config: the builder's
        // own options would become `-o` arguments, which ssh splits at spaces in paths.
        .config_file(&node_cfg);
        if let Some(u) = &t.user {
            b.user(u.clone());
        }
        if let Some(p) = t.port {
            b.port(p);
        }
        // ssh's ConnectTimeout covers each hop's TCP connect and banner; this bounds the rest
        // (key exchange and login on a busy machine, a hop that hangs) so preflight always ends.
        let limit =
            (t.connect_timeout * (t.jump.len() as u32 + 1) * 3).max(Duration::from_secs(30));
        match tokio::time::timeout(limit, b.connect_mux(&t.host)).await {
            Ok(Ok(session)) => Ok(Master {
                session,
                _dir: private,
            }),
            Ok(Err(openssh::Error::Connect(io))) if io.kind() == std::io::ErrorKind::NotFound => {
                Err(TransportError::Connect(format!(
                    "cannot run the OpenSSH client `ssh` on this machine ({io}); install it (apt-get install openssh-client) to reach {}",
                    t.destination()
                )))
            }
            Ok(Err(e)) => {
                let jump = std::fs::read_to_string(&jump_log).unwrap_or_default();
                let mut log = match &e {
                    openssh::Error::Connect(io) => io.to_string(),
                    other => other.to_string(),
                };
                // What the connect helper said, if it made the connection.
                if let Ok(said) = std::fs::read_to_string(&connect_log) {
                    log = format!("{said}{log}");
                }
                Err(TransportError::Connect(explain_connect_failure(
                    t, &log, &jump,
                )))
            }
            Err(_) => Err(TransportError::Connect(format!(
                "timed out: {} did not complete the SSH login within {}",
                t.destination(),
                format_duration(limit)
            ))),
        }
    }

    /// The config lines that make the connect helper open the master's TCP connection (see
    /// `connect.rs`), when this program has one and nothing in the ssh configuration that
    /// applies to the node decides how it is reached: the ssh config files say nothing about it
    /// at all, or `ssh -G` with the node's generated config says so for this node.
    async fn helper_lines(&self, node_cfg: &Path, log: &Path) -> Option<String> {
        let t = &self.target;
        if !t.jump.is_empty() {
            return None;
        }
        let program = super::connect::helper()?;
        // When none of the files the node's config includes says anything about how a host is
        // reached, there is no need to ask ssh per node.
        if super::connect::configs_are_plain(&t.config_files()) {
            return Some(super::connect::config_lines(
                program,
                t.connect_timeout,
                log,
            ));
        }
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-G").arg("-F").arg(node_cfg);
        if let Some(u) = &t.user {
            cmd.arg("-l").arg(u);
        }
        if let Some(p) = t.port {
            cmd.arg("-p").arg(p.to_string());
        }
        let out = cmd
            .arg("--")
            .arg(&t.host)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(10), out)
            .await
            .ok()?
            .ok()?;
        let resolved = String::from_utf8_lossy(&out.stdout);
        (out.status.success() && super::connect::plain_connection(&resolved))
            .then(|| super::connect::config_lines(program, t.connect_timeout, log))
    }

    /// Start `command` on a channel of the master, opening (or re-opening, if the master went
    /// away while idle) the connection as needed. Nothing has run on the node when this fails.
    async fn spawn(
        &self,
        command: &str,
        stdin: bool,
    ) -> Result<(MasterRef, openssh::Child<MasterRef>), TransportError> {
        self.spawn_on(command, stdin, true).await
    }

    /// [`Link::spawn`]; with `reconnect` false, only on the open master: no connection is
    /// opened, and a master that went away is an error (a shell opened in the background).
    async fn spawn_on(
        &self,
        command: &str,
        stdin: bool,
        reconnect: bool,
    ) -> Result<(MasterRef, openssh::Child<MasterRef>), TransportError> {
        let mut retried = !reconnect;
        loop {
            let session = if reconnect {
                self.session().await?
            } else {
                let open = self.conn.lock().await.master.clone();
                open.ok_or_else(|| {
                    TransportError::Exec(format!(
                        "no open connection to {}",
                        self.target.destination()
                    ))
                })?
            };
            let spawned = Session::to_raw_command(session.clone(), command)
                .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(child) => return Ok((session, child)),
                // The master may have exited after its idle limit: open a new one, once. A
                // master that still answers is kept: other steps may be using it.
                Err(e) if !retried && !self.alive(&session).await => {
                    log::debug!(
                        "ssh master for {} is gone ({e}); reconnecting",
                        self.target.destination()
                    );
                    self.forget(&session).await;
                    retried = true;
                }
                Err(e) => {
                    return Err(TransportError::Exec(format!(
                        "cannot open a channel to {}: {e}",
                        self.target.destination()
                    )));
                }
            }
        }
    }

    /// Run a short command on a channel of its own and wait for it: its output is read to the
    /// end before its exit status, since the mux stops passing output on once the exit is
    /// collected.
    async fn run_plain(&self, command: &str, limit: Duration) -> Result<(), TransportError> {
        let dest = self.target.destination();
        let (_, mut child) = self.spawn(command, false).await?;
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let run = async {
            let mut text = String::new();
            if let Some(mut r) = stdout {
                let _ = r.read_to_string(&mut text).await;
            }
            if let Some(mut r) = stderr {
                let _ = r.read_to_string(&mut text).await;
            }
            (child.wait().await, text)
        };
        match tokio::time::timeout(limit, run).await {
            Ok((Ok(s), _)) if s.success() => Ok(()),
            Ok((r, text)) => Err(TransportError::Exec(format!(
                "on {dest}: {}{}",
                exit_words(&r),
                last_line(&text)
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ))),
            Err(_) => Err(TransportError::Exec(format!(
                "on {dest}: no answer within {}",
                format_duration(limit)
            ))),
        }
    }

    /// Start a new shell on the node and wait for it to say it is ready.
    async fn open_shell(&self) -> Result<NodeShell, TransportError> {
        self.open_shell_on(true).await
    }

    /// [`Link::open_shell`]; with `reconnect` false, only on the open master.
    async fn open_shell_on(&self, reconnect: bool) -> Result<NodeShell, TransportError> {
        let dest = self.target.destination();
        let (_, mut child) = self
            .spawn_on(&shell::shell_command(), true, reconnect)
            .await?;
        let serial = self.next_shell.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(stdin) = child.stdin().take() else {
            return Err(TransportError::Exec(format!(
                "cannot talk to the shell on {dest}: no input to it"
            )));
        };
        let (tx, events) = mpsc::unbounded_channel();
        let out = tokio::spawn(read_lines(
            child.stdout().take(),
            Stream::Stdout,
            tx.clone(),
        ));
        let err = tokio::spawn(read_lines(
            child.stderr().take(),
            Stream::Stderr,
            tx.clone(),
        ));
        let wait = tokio::spawn(async move {
            let r = child.wait().await;
            let _ = tx.send(ShellEvent::Exited(exit_words(&r)));
        });
        let mut shell = NodeShell {
            serial,
            hello: Hello {
                pgid: 0,
                dir: String::new(),
                pids: Vec::new(),
            },
            stdin,
            events,
            tasks: vec![out, err, wait],
        };
        let deadline = Instant::now() + SHELL_START;
        let mut said = Vec::new();
        // Through a jump host, the relay holds back what the node says next (another step's
        // end, this shell's greeting) until this end acknowledges what it said last, and this
        // end acknowledges the node's answers about the new channel only after its delayed-ACK
        // timer (about 40 ms), having nothing to send. An empty line every few milliseconds
        // while the shell starts, and one for its greeting (the shell ignores them), carries
        // that acknowledgement sooner.
        let relayed = !self.target.jump.is_empty();
        let mut answers = if relayed { RELAY_ANSWERS } else { 0 };
        let mut answer_at = Instant::now() + RELAY_ANSWER_EVERY;
        loop {
            let ev = tokio::select! {
                ev = tokio::time::timeout_at(deadline, shell.events.recv()) => ev,
                _ = tokio::time::sleep_until(answer_at), if answers > 0 => {
                    answers -= 1;
                    answer_at = Instant::now() + RELAY_ANSWER_EVERY;
                    if let Err(e) = shell.stdin.write_all(b"\n").await {
                        log::debug!("shell {serial} on {dest} took no empty line: {e}");
                        answers = 0;
                    }
                    continue;
                }
            };
            let fail = |why: String| {
                TransportError::Exec(format!(
                    "the shell deckhand runs on {dest} did not start: {why}{}",
                    said.last()
                        .map(|l: &String| format!(" (it said: {l})"))
                        .unwrap_or_default()
                ))
            };
            match ev {
                Ok(Some(ShellEvent::Line(Stream::Stdout, line))) => {
                    match shell::parse_greeting(&line) {
                        Greeting::Ready(hello) => {
                            log::debug!(
                                "shell {serial} on {dest} is ready (process group {}, {})",
                                hello.pgid,
                                hello.dir
                            );
                            shell.hello = hello;
                            if relayed {
                                if let Err(e) = shell.stdin.write_all(b"\n").await {
                                    return Err(fail(format!("it stopped taking requests ({e})")));
                                }
                            }
                            return Ok(shell);
                        }
                        Greeting::Failed(why) => return Err(fail(why)),
                        // A login script that prints: not ours, and not shown as a step's.
                        Greeting::Other => {
                            said.push(sanitize(&String::from_utf8_lossy(&line)));
                        }
                    }
                }
                Ok(Some(ShellEvent::Line(Stream::Stderr, line))) => {
                    said.push(sanitize(&String::from_utf8_lossy(&line)));
                }
                Ok(Some(ShellEvent::Closed(_))) | Ok(Some(ShellEvent::Exited(_))) | Ok(None) => {
                    return Err(fail("it ended before it was ready".into()));
                }
                Err(_) => {
                    return Err(fail(format!(
                        "it was not ready within {}",
                        format_duration(SHELL_START)
                    )))
                }
            }
        }
    }

    /// A shell for one step: an idle one if there is one, else a new one (waiting while
    /// [`MAX_SHELLS`] are busy).
    async fn lease(&self) -> Result<Lease<'_>, TransportError> {
        let slot = self.slots.acquire().await.map_err(|_| {
            TransportError::Exec(format!(
                "the connection to {} is closing",
                self.target.destination()
            ))
        })?;
        loop {
            // Registered before looking, so that a reserve ending in between still wakes it.
            let reserve_done = self.reserve_done.notified();
            tokio::pin!(reserve_done);
            reserve_done.as_mut().enable();
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(mut s) = idle else {
                // A shell being opened in reserve is most of the way there: wait for it
                // rather than open another (the pool would grow a shell no step asked for).
                if self.reserving() {
                    reserve_done.await;
                    continue;
                }
                break;
            };
            if s.fresh() {
                return Ok(Lease {
                    transport: self,
                    shell: Some(s),
                    _slot: slot,
                });
            }
            s.close().await;
        }
        let shell = self.open_shell().await?;
        Ok(Lease {
            transport: self,
            shell: Some(shell),
            _slot: slot,
        })
    }

    /// A node's turn begins: a second shell, opened in the background unless two are ready.
    /// A step that leaves a process behind (a `restart` whose app keeps the step's end marker)
    /// retires its shell, and the steps after it (a `prune`, the health check, a history line)
    /// then find the other one ready instead of waiting for a new one to start.
    fn prepare(&self) {
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(2);
        if idle + usize::from(self.reserving()) < 2 {
            self.refill();
        }
    }

    /// Open a shell in the background, for the next step to find ready: for a turn that
    /// begins ([`Link::prepare`]), and in place of a shell a step retired (a `restart` whose
    /// app still holds it), so that the steps after it find as many shells ready as before.
    /// The replacement is opened even when the turn's other shell is ready: the retired shell's
    /// channel closes while the next step runs (a `prune`), the node then holds that step's end
    /// (Nagle's algorithm) until this end acknowledges the close, and the new shell's requests
    /// carry the acknowledgement (without it `prune` took one round trip more on the slow link,
    /// 47 ms against 31 ms, and 41 ms through the bastion against 7 ms directly). At most one
    /// at a time, only while a connection is open (it does not start one), and only while
    /// another step could still be leased a shell (the shell being opened takes a slot).
    fn refill(&self) {
        if self.closing.load(Ordering::Relaxed) || !self.room() {
            return;
        }
        let Ok(mut reserve) = self.reserve.lock() else {
            return;
        };
        reserve.owed += 1;
        if reserve.running.is_some() {
            // The task opens this one too before it ends.
            return;
        }
        let Some(link) = self.me.upgrade() else {
            return;
        };
        reserve.tasks += 1;
        reserve.running = Some(reserve.tasks);
        // Dropped with the task's future, whether it ends, fails or is aborted unpolled.
        let done = ReserveDone(link.clone(), reserve.tasks);
        reserve.task = Some(tokio::spawn(async move {
            let _done = done;
            loop {
                {
                    let Ok(mut reserve) = link.reserve.lock() else {
                        return;
                    };
                    if reserve.owed == 0 || link.closing.load(Ordering::Relaxed) || !link.room() {
                        reserve.owed = 0;
                        reserve.running = None;
                        return;
                    }
                    reserve.owed -= 1;
                }
                // A shell being opened holds a slot like a leased one: the pool stays within
                // MAX_SHELLS.
                let Ok(_slot) = link.slots.try_acquire() else {
                    continue;
                };
                // Only on the connection preflight opened: a master gone since then (the
                // node rebooted, sshd restarted) is for the next step to find, not for a shell
                // nobody asked for to spend the connect limit on.
                match link.open_shell_on(false).await {
                    Ok(shell) if !link.closing.load(Ordering::Relaxed) => {
                        if let Ok(mut idle) = link.idle.lock() {
                            // The oldest place: a shell that just served a step is taken first.
                            idle.insert(0, shell);
                        }
                        link.reserve_done.notify_waiters();
                    }
                    Ok(shell) => shell.close().await,
                    Err(e) => {
                        log::debug!("no shell in reserve on {}: {e}", link.target.destination())
                    }
                }
            }
        }));
    }

    /// Whether a shell is being opened in reserve.
    fn reserving(&self) -> bool {
        self.reserve
            .lock()
            .map(|r| r.running.is_some())
            .unwrap_or(false)
    }

    /// Whether the pool has room for another shell: idle ones, leased ones and one being
    /// opened, together fewer than [`MAX_SHELLS`].
    fn room(&self) -> bool {
        let busy = MAX_SHELLS - self.slots.available_permits();
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(MAX_SHELLS);
        busy + idle < MAX_SHELLS
    }

    /// Stop opening a shell in reserve and measuring the link (the transport closes or is
    /// dropped).
    fn stop_refill(&self) {
        self.closing.store(true, Ordering::Relaxed);
        if let Some(t) = self.reserve.lock().ok().and_then(|mut r| r.task.take()) {
            t.abort();
        }
        if let Some(t) = self.measuring.lock().ok().and_then(|mut r| r.take()) {
            t.abort();
        }
    }

    /// Measure, in the background, what a step costs on this link beyond its script's own
    /// time, for the time report ([`Transport::floor`]): an empty script (`:`) and one that
    /// starts a shell (`sh -c :`), one after the other, on the node, [`MEASURE_ROUNDS`] times
    /// (the fastest of each counts). The empty script is the whole way
    /// there and back (the request, the `fork` on the node, the record back); the second costs
    /// that plus a shell's start. A step's own time is what its commands take when started the
    /// usual way, in a shell of their own, which deckhand's shell does with a `fork` instead:
    /// so the link's share is the empty script's time less a shell's start on that node.
    fn measure(&self) {
        if self.cost_us.load(Ordering::Relaxed) != u64::MAX {
            return;
        }
        let Some(link) = self.me.upgrade() else {
            return;
        };
        let Ok(mut measuring) = self.measuring.lock() else {
            return;
        };
        if measuring.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *measuring = Some(tokio::spawn(async move {
            let cancel = CancellationToken::new();
            // The fastest of a few of each: one sample can meet a stall of the link (a relay
            // holding a packet back) or of the node, and count it as the link's cost.
            let mut took = [Duration::MAX; 2];
            for _ in 0..MEASURE_ROUNDS {
                for (script, t) in [":", "sh -c :"].into_iter().zip(&mut took) {
                    let req = ExecRequest::new(script).timeout(Duration::from_secs(10));
                    let started = Instant::now();
                    match link.exec(&req, None, &cancel).await {
                        Ok(o) if o.success() => *t = (*t).min(started.elapsed()),
                        _ => return,
                    }
                }
            }
            let [empty, shell] = took;
            let start = shell.saturating_sub(empty);
            let cost = empty.saturating_sub(start);
            log::debug!(
                "a step on {} costs {cost:?} beyond its script ({empty:?} for an empty one, {start:?} to start a shell there)",
                link.target.destination()
            );
            link.cost_us.store(
                cost.as_micros().min(u128::from(u64::MAX - 1)) as u64,
                Ordering::Relaxed,
            );
        }));
    }

    /// Close the shells that wait for a step.
    async fn close_idle(&self) {
        let idle: Vec<NodeShell> = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for s in idle {
            s.close().await;
        }
    }

    /// After a step's shell went away: if the connection went with it, say so (and open a new
    /// one next time); if only the shell died, stop what is left of the step through a channel
    /// of its own. Either way the step is lost: what it did on the node is unknown.
    async fn lost_step(&self, hello: &Hello, id: u64, why: &str) -> TransportError {
        let session = self.conn.lock().await.master.clone();
        let alive = match &session {
            Some(s) => self.alive(s).await,
            None => false,
        };
        if !alive {
            log::debug!(
                "step on {} ended with its connection: {why}",
                self.target.destination()
            );
            if let Some(s) = &session {
                self.forget(s).await;
            }
            return self.lost("while the step ran");
        }
        let stopped = match self
            .run_plain(&shell::stop_command(hello, id), KILL_TIMEOUT)
            .await
        {
            Ok(()) => "deckhand stopped what was left of it".to_string(),
            Err(e) => format!("what is left of it may still run ({e})"),
        };
        TransportError::Exec(format!(
            "lost the shell deckhand keeps on {} while the step ran ({why}): what the step did there is unknown; {stopped}",
            self.target.destination()
        ))
    }

    /// A channel that runs `exit 0` (a builtin in every login shell) and ends: its request
    /// carries this end's acknowledgement of the server's host-keys notice. sshd sends that
    /// notice as the session starts, usually just after the first shell's channel was asked
    /// for, and then holds its answer about that channel until the notice is acknowledged,
    /// which this end does only with something to send or after its delayed-ACK timer (about
    /// 40 ms; tcpdump on loopback: the channel's answer left 47 ms after the notice). A
    /// second shell did this before, at eight processes started on the node instead of one.
    /// Waited for (its channel is closed before connect returns), but at most
    /// [`NUDGE_LIMIT`]: it only saves time.
    async fn nudge(&self) {
        if let Err(e) = self.run_plain("exit 0", NUDGE_LIMIT).await {
            log::debug!("the channel that runs `exit 0` {e}");
        }
    }

    /// Whether the master still answers.
    async fn alive(&self, session: &Session) -> bool {
        tokio::time::timeout(Duration::from_secs(5), session.check())
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    fn lost(&self, during: &str) -> TransportError {
        TransportError::Exec(format!(
            "lost the SSH connection to {} {during}: the node or its sshd went away; what the step did there is unknown",
            self.target.destination()
        ))
    }
}

/// How a step's run through a shell ended, before it becomes an outcome.
enum Finish {
    /// Its exit status arrived and both streams ended: the shell can take the next step.
    Clean,
    /// The shell is closed afterwards (output cut off, a stop not confirmed).
    Retire,
    /// The shell went away during the step.
    Lost(String),
}

impl Link {
    async fn connect(&self) -> Result<(), TransportError> {
        let session = self.session().await?;
        if !self.alive(&session).await {
            self.forget(&session).await;
            self.session().await?;
        }
        // A first shell now, so that preflight sees a node that cannot run one, and the first
        // step does not wait for it. One: preflight and the locks run a step at a time on a
        // node. The second a node's turn wants comes with the turn ([`Link::prepare`]): opened
        // here for every node at once, its eight processes per node took CPU from all the
        // other connections being made.
        let nudge = async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.nudge().await
        };
        let (a, ()) = tokio::join!(self.lease(), nudge);
        a?.give_back();
        Ok(())
    }

    fn floor(&self) -> Duration {
        match (
            self.cost_us.load(Ordering::Relaxed),
            self.fastest_us.load(Ordering::Relaxed),
        ) {
            (u64::MAX, u64::MAX) => Duration::ZERO,
            (u64::MAX, us) | (us, _) => Duration::from_micros(us),
        }
    }

    async fn exec(
        &self,
        req: &ExecRequest,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, TransportError> {
        let dest = self.target.destination();
        let id = self.next_step.fetch_add(1, Ordering::Relaxed) + 1;
        let nonce = shell::new_nonce();
        let request = shell::run_request(id, &nonce, &req.script)
            .map_err(|e| TransportError::Exec(format!("cannot run the step on {dest}: {e}")))?;
        let deadline = Instant::now() + req.limit();
        let mut out = Collector::new(lines.cloned(), CAPTURE_LIMIT);

        // Hand the request to a shell. A shell that is gone before it took the whole request ran
        // nothing (it runs only a request that arrived complete): try once more on a new one.
        let mut lease = self.lease().await?;
        let handed = Instant::now();
        let mut retried = false;
        loop {
            let sent = tokio::select! {
                r = lease.shell().stdin.write_all(&request) => r.map_err(|e| e.to_string()),
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(ExecOutcome { ended: Ended::TimedOut, stdout: String::new(), stderr_tail: Vec::new() });
                }
                _ = cancel.cancelled() => {
                    return Ok(ExecOutcome { ended: Ended::Cancelled, stdout: String::new(), stderr_tail: Vec::new() });
                }
            };
            match sent {
                Ok(()) => break,
                Err(e) if !retried => {
                    log::debug!(
                        "shell {} on {dest} did not take the step ({e}); starting another",
                        lease.shell().serial
                    );
                    drop(lease);
                    // The idle shells most likely went with it (a master that exited): the
                    // next try gets a new shell, on a new connection if need be.
                    self.close_idle().await;
                    lease = self.lease().await?;
                    retried = true;
                }
                Err(e) => {
                    return Err(TransportError::Exec(format!(
                        "cannot hand the step to the shell on {dest}: {e}"
                    )))
                }
            }
        }

        // What the shell said so far: the exit status (early, or with the end), the end (with how
        // many stderr lines to expect), the stderr lines seen, the start of a stdout line that an
        // early status cut in two.
        let mut status: Option<i32> = None;
        let mut end: Option<u64> = None;
        // Whether everything the step started has ended: only then may the shell run another.
        let mut alone = false;
        let mut stderr_seen: u64 = 0;
        let mut split: Vec<u8> = Vec::new();
        let mut stopped: Option<Ended> = None;
        // After the status: how long the rest may take (leftover processes holding the output,
        // or stderr lines still on their way).
        let mut grace: Option<(Instant, Duration)> = None;
        let mut stop_deadline: Option<Instant> = None;
        let mut next_tick = Instant::now() + FIRST_TICK;
        // When the node said the status early (see QUICK_TICK).
        let mut early: Option<Instant> = None;
        let mut nudge_at: Option<Instant> = None;
        let far = deadline + Duration::from_secs(24 * 3600);
        let finish = loop {
            if end.is_some_and(|n| stderr_seen >= n) {
                break if alone { Finish::Clean } else { Finish::Retire };
            }
            let shell = lease.shell();
            tokio::select! {
                // What the shell said first: a nudge only goes out once nothing more is waiting.
                biased;
                ev = shell.events.recv() => match ev {
                    Some(ShellEvent::Line(Stream::Stdout, line)) => match shell::parse_stdout(&line, &nonce) {
                        Record::Data(d) => {
                            nudge_at = Some(Instant::now() + NUDGE);
                            if split.is_empty() {
                                out.line(Stream::Stdout, d);
                            } else {
                                split.extend_from_slice(d);
                                out.line(Stream::Stdout, &std::mem::take(&mut split));
                            }
                        }
                        Record::Exited { before, code } => {
                            split.extend_from_slice(before);
                            status = Some(code);
                            early = Some(Instant::now());
                            next_tick = Instant::now();
                            let g = Duration::from_millis(if code == 0 && stopped.is_none() { 2000 } else { 300 });
                            grace = Some((Instant::now() + g, g));
                        }
                        Record::End { before, code, stderr_lines, all_ended } => {
                            alone = all_ended;
                            split.extend_from_slice(before);
                            if !split.is_empty() {
                                out.line(Stream::Stdout, &std::mem::take(&mut split));
                            }
                            status = Some(code);
                            end = Some(stderr_lines);
                            // The stderr lines are already sent; only their arrival is left.
                            let g = Duration::from_secs(2);
                            grace = Some((Instant::now() + g, g));
                        }
                    },
                    Some(ShellEvent::Line(Stream::Stderr, line)) => {
                        if end.is_none() {
                            nudge_at = Some(Instant::now() + NUDGE);
                        }
                        stderr_seen += 1;
                        out.line(Stream::Stderr, &line);
                    }
                    Some(ShellEvent::Closed(stream)) => break Finish::Lost(format!(
                        "its {} closed",
                        if stream == Stream::Stdout { "output" } else { "error output" }
                    )),
                    Some(ShellEvent::Exited(how)) => break Finish::Lost(how),
                    None => break Finish::Lost("its channel closed".into()),
                },
                _ = tokio::time::sleep_until(deadline), if status.is_none() && stopped.is_none() => {
                    stopped = Some(Ended::TimedOut);
                }
                _ = cancel.cancelled(), if status.is_none() && stopped.is_none() => {
                    stopped = Some(Ended::Cancelled);
                }
                // A step still going after a while: ask the shell to say its status early if the
                // step's shell exited but a process it left holds its output open (and, once it
                // said it, to end the step).
                _ = tokio::time::sleep_until(next_tick), if end.is_none() => {
                    next_tick = Instant::now() + match early {
                        Some(at) if at.elapsed() < QUICK_TICKS_FOR => QUICK_TICK,
                        Some(_) => next_tick_after(Duration::from_secs(1)),
                        None => next_tick_after(handed.elapsed()),
                    };
                    if let Err(e) = lease.shell().stdin.write_all(&shell::tick_request(id)).await {
                        break Finish::Lost(format!("it stopped taking requests ({e})"));
                    }
                }
                // Output came and then nothing for a moment: the rest may be held back by Nagle's
                // algorithm on a relay (a jump host) until this end answers; an empty line (which
                // the shell ignores) carries that answer back at once.
                _ = tokio::time::sleep_until(nudge_at.unwrap_or(far)), if nudge_at.is_some() && end.is_none() => {
                    nudge_at = None;
                    if let Err(e) = lease.shell().stdin.write_all(b"\n").await {
                        break Finish::Lost(format!("it stopped taking requests ({e})"));
                    }
                }
                _ = tokio::time::sleep_until(grace.map(|g| g.0).unwrap_or(far)), if grace.is_some() => {
                    let g = grace.map(|g| g.1).unwrap_or_default();
                    if end.is_some() {
                        out.note(format!(
                            "the shell on the node counted {} lines on stderr but only {stderr_seen} arrived",
                            end.unwrap_or_default()
                        ));
                    } else {
                        log::warn!("step on {dest}: {}", cut_note(g));
                        out.note(cut_note(g));
                    }
                    break Finish::Retire;
                }
                _ = tokio::time::sleep_until(stop_deadline.unwrap_or(far)), if stop_deadline.is_some() && status.is_none() => {
                    out.note(format!(
                        "the node did not confirm within {} that the step's processes are gone; some may still run",
                        format_duration(KILL_TIMEOUT)
                    ));
                    break Finish::Retire;
                }
            }
            if stopped.is_some() && stop_deadline.is_none() {
                // The shell's other server stops the step: SIGTERM, a grace, SIGKILL; the end
                // record follows once that is done.
                stop_deadline = Some(Instant::now() + KILL_TIMEOUT);
                if let Err(e) = lease
                    .shell()
                    .stdin
                    .write_all(&shell::kill_request(id))
                    .await
                {
                    break Finish::Lost(format!(
                        "it did not take the request to stop the step ({e})"
                    ));
                }
            }
        };
        if !split.is_empty() {
            out.line(Stream::Stdout, &split);
        }
        let ended = match (stopped, status) {
            (Some(s), _) => s,
            (None, code) => Ended::Exited(code),
        };
        if matches!(finish, Finish::Clean) && matches!(ended, Ended::Exited(Some(_))) {
            let took = handed.elapsed().as_micros().min(u64::MAX as u128 - 1) as u64;
            self.fastest_us.fetch_min(took, Ordering::Relaxed);
        }
        match finish {
            Finish::Clean => lease.give_back(),
            Finish::Retire => {
                drop(lease);
                self.refill();
            }
            Finish::Lost(why) => {
                let hello = lease.shell().hello.clone();
                drop(lease);
                return Err(self.lost_step(&hello, id, &why).await);
            }
        }
        let (stdout, stderr_tail) = out.finish();
        Ok(ExecOutcome {
            ended,
            stdout,
            stderr_tail,
        })
    }

    async fn upload(&self, from: &Path, to: &str) -> Result<(), TransportError> {
        let fail = |reason: String| TransportError::Upload {
            from: from.display().to_string(),
            reason,
        };
        let mut file = tokio::fs::File::open(from)
            .await
            .map_err(|e| fail(format!("cannot read it on this machine: {e}")))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| fail(format!("cannot read it on this machine: {e}")))?;
        if !meta.is_file() {
            return Err(fail("it is not a regular file".into()));
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        let dir = match to.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => to[..i].to_string(),
            None => ".".to_string(),
        };
        let partial = format!("{to}.deckhand-partial");
        // Written beside its final name and renamed, so nobody sees half a file; and renamed only
        // when every byte arrived: a copy cut short (timeout, abort) ends in an EOF like a
        // finished one.
        let script = format!(
            "exec sh -c {}",
            sh_quote(&format!(
                "mkdir -p {dir} && cat > {partial} && n=$(wc -c < {partial} | tr -d ' ') && \
                 {{ [ \"$n\" -eq {len} ] || {{ echo \"received $n of {len} bytes\" >&2; false; }}; }} && \
                 chmod {mode:o} {partial} && mv -f {partial} {to} || {{ rc=$?; rm -f {partial}; exit $rc; }}",
                dir = sh_quote(&dir),
                partial = sh_quote(&partial),
                to = sh_quote(to),
                len = meta.len(),
            ))
        );
        let (_, mut child) = self
            .spawn(&script, true)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut stdin = child.stdin().take();
        let stderr = child.stderr().take();
        let err_task = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(mut r) = stderr {
                let _ = r.read_to_string(&mut text).await;
            }
            text
        });
        // A generous limit that still ends: a minute plus a second per MiB.
        let limit = Duration::from_secs(60 + meta.len() / (1024 * 1024));
        let send = async {
            if let Some(w) = stdin.as_mut() {
                tokio::io::copy(&mut file, w).await?;
                w.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let sent = tokio::time::timeout(limit, send).await;
        drop(stdin);
        // Its complaints first, then its status: the mux stops passing output on once the exit
        // status is collected, and the reason for a failure would be lost with it.
        let stderr = tokio::time::timeout(limit, err_task)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let status = tokio::time::timeout(limit, child.wait()).await;
        let why = last_line(&stderr)
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        let dest = self.target.destination();
        match (sent, status) {
            (_, Ok(Ok(s))) if !s.success() => Err(fail(format!(
                "writing {to} on {dest} failed (status {}){why}",
                s.code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "signal".into())
            ))),
            (Err(_), _) | (_, Err(_)) => Err(fail(format!(
                "copying to {to} on {dest} took longer than {}",
                format_duration(limit)
            ))),
            (Ok(Err(e)), _) => Err(fail(format!(
                "sending to {to} on {dest} broke off: {e}{why}"
            ))),
            (Ok(Ok(())), Ok(Ok(_))) => Ok(()),
            (_, Ok(Err(e))) => Err(fail(format!("copying to {to} on {dest}: {e}{why}"))),
        }
    }

    async fn close(&self) {
        self.stop_refill();
        self.close_idle().await;
        let master = self.conn.lock().await.master.take();
        if let Some(MasterRef(m)) = master {
            if let Ok(m) = Arc::try_unwrap(m) {
                let _ = m.session.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            node: "web-1".into(),
            host: "10.0.1.11".into(),
            user: Some("deploy".into()),
            port: Some(2222),
            identity_file: Some(PathBuf::from("/keys/deploy key")),
            jump: vec!["ops@bastion-a:22".into(), "ops@bastion-b:2200".into()],
            known_hosts: Some(PathBuf::from("/etc/deckhand/known_hosts")),
            host_key_checking: HostKeyChecking::Strict,
            connect_timeout: Duration::from_secs(7),
            ssh_config: None,
            key_exchange: KeyExchange::Auto,
        }
    }

    #[test]
    fn the_inventory_settings_come_first_in_the_generated_config() {
        let c = target().common_config(None);
        let pos = |needle: &str| {
            c.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in\n{c}"))
        };
        assert!(c.contains("BatchMode yes\n"));
        assert!(c.contains("StrictHostKeyChecking yes\n"));
        assert!(c.contains("UserKnownHostsFile \"/etc/deckhand/known_hosts\"\n"));
        assert!(c.contains("IdentityFile \"/keys/deploy key\"\nIdentitiesOnly yes\n"));
        assert!(c.contains("ConnectTimeout 7\n"));
        if let Some(inc) = c.find("Include") {
            assert!(
                pos("StrictHostKeyChecking") < inc,
                "the user's config must not override the policy"
            );
        }
    }

    #[test]
    fn a_key_exchange_preference_yields_to_the_user_config_and_a_requirement_does_not() {
        let mut t = target();
        t.ssh_config = Some(PathBuf::from("/etc/deckhand/ssh_config"));
        let line = |value: &str, overrides_user_config| KexLine {
            value: value.into(),
            overrides_user_config,
        };
        let c = t.common_config(Some(&line("^curve25519-sha256", false)));
        let include = c.find("Include").expect("include");
        let kex = c.find("KexAlgorithms ^curve25519-sha256").expect("kex");
        assert!(include < kex, "ssh keeps the first value: {c}");
        let c = t.common_config(Some(&line("mlkem768x25519-sha256", true)));
        let include = c.find("Include").expect("include");
        let kex = c.find("KexAlgorithms mlkem768x25519-sha256").expect("kex");
        assert!(kex < include, "{c}");
        assert!(!t.common_config(None).contains("KexAlgorithms"));
    }

    #[test]
    fn jump_hosts_become_a_proxy_command_whose_errors_are_kept() {
        // The connect helper's lines never go with jump hosts: the jump is the connection.
        let c = target().node_config(
            Path::new("/tmp/dh-0/nX/common.cfg"),
            Path::new("/tmp/dh-0/nX/jump.log"),
            Some("ProxyCommand helper\nProxyUseFdpass yes\n"),
        );
        let line = c
            .lines()
            .find(|l| l.starts_with("ProxyCommand "))
            .expect("a ProxyCommand");
        assert_eq!(
            line,
            "ProxyCommand ssh -F '/tmp/dh-0/nX/common.cfg' -J 'ops@bastion-a:22' -W '[%h]:%p' 'ssh://ops@bastion-b:2200' 2>>'/tmp/dh-0/nX/jump.log'"
        );
        assert!(c.contains("Include \"/tmp/dh-0/nX/common.cfg\"\n"));
        let mut direct = target();
        direct.jump.clear();
        assert!(!direct
            .node_config(Path::new("/c"), Path::new("/j"), None)
            .contains("ProxyCommand"));
        assert!(!c.contains("ProxyUseFdpass"));
        // Without jump hosts, the helper's lines come first (ssh keeps the first value).
        let c = direct.node_config(
            Path::new("/c"),
            Path::new("/j"),
            Some("ProxyCommand helper\nProxyUseFdpass yes\n"),
        );
        assert!(
            c.find("ProxyUseFdpass yes").expect("fdpass") < c.find("Include").expect("include")
        );
    }

    #[test]
    fn directories_of_killed_consoles_are_swept_and_live_or_recent_ones_kept() {
        let root = tempfile::tempdir().expect("dir");
        let dead = root.path().join("nDead01");
        std::fs::create_dir_all(dead.join(".ssh-connectionAb/")).expect("dead");
        let recent = root.path().join("nFresh1");
        std::fs::create_dir_all(&recent).expect("recent");
        let live = root.path().join("nLive01");
        std::fs::create_dir_all(live.join(".ssh-connectionCd")).expect("live");
        let _listener =
            std::os::unix::net::UnixListener::bind(live.join(".ssh-connectionCd/master"))
                .expect("a master's socket");
        let other = root.path().join("keep-me");
        std::fs::create_dir_all(&other).expect("other");
        // Nothing here is ten minutes old yet; with no age limit, all are "old".
        sweep_stale(root.path(), Duration::from_secs(600));
        assert!(dead.exists() && recent.exists(), "nothing is old yet");
        sweep_stale(root.path(), Duration::ZERO);
        assert!(!dead.exists(), "no master answers there");
        assert!(!recent.exists(), "old enough and no master");
        assert!(live.exists(), "a master answers on its socket");
        assert!(other.exists(), "not a connection's directory");
    }

    #[test]
    fn odd_values_are_refused_before_they_reach_ssh() {
        let mut t = target();
        t.jump = vec!["-oProxyCommand=evil".into()];
        assert!(t.check().is_err());
        let mut t = target();
        t.known_hosts = Some(PathBuf::from("/tmp/a\"b"));
        assert!(t.check().is_err());
        let mut t = target();
        t.user = Some("-l root".into());
        assert!(t.check().is_err());
        assert!(target().check().is_ok());
    }

    #[test]
    fn connect_failures_read_as_one_plain_sentence() {
        let t = target();
        let refused = explain_connect_failure(
            &t,
            "ssh: connect to host 10.0.1.11 port 2222: Connection refused\n",
            "",
        );
        assert!(
            refused.starts_with("connection refused by 10.0.1.11:2222"),
            "{refused}"
        );
        let denied =
            explain_connect_failure(&t, "deploy@10.0.1.11: Permission denied (publickey).\n", "");
        assert!(
            denied.contains("user deploy") && denied.contains("/keys/deploy key"),
            "{denied}"
        );
        let hop = explain_connect_failure(
            &t,
            "kex_exchange_identification: Connection closed by remote host\n",
            "ssh: connect to host bastion-b port 2200: Connection timed out\n",
        );
        assert!(
            hop.starts_with("through jump host ops@bastion-b:2200: timed out"),
            "{hop}"
        );
        let odd = explain_connect_failure(&t, "something new\n\u{1b}[31mand strange\n", "");
        assert_eq!(odd, "cannot connect to deploy@10.0.1.11:2222: and strange");
    }
}
