//! The SSH transport: one multiplexed OpenSSH connection per node (the `openssh` crate's native
//! mux), opened on first use and reused by every step, so a step costs a channel, not a login.
//!
//! It owns how a node is reached (user, port, key, known_hosts, host-key policy, jump hosts,
//! an optional ssh_config, timeouts, an idle limit on the master), how a script runs there so
//! that the console can kill it and everything it started, how a file is copied there, and how
//! ssh's own complaints become one plain sentence for the operator. It must not decide what runs:
//! scripts come from the engine, already quoted; every value this module adds is quoted here.
//!
//! Each step runs under a small POSIX `sh` wrapper. sshd makes the session's shell the leader of
//! its own process group; the wrapper prints that group id first, then runs the script with stdin
//! closed. On timeout or cancel the console opens a second channel and sends the group TERM, then
//! KILL after a grace. A watcher in the wrapper also kills the group when the channel's stdin
//! closes, so a console that dies does not leave its steps running.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::kex::KexLine;
use super::{
    gathered, pump_lines, sanitize, Ended, ExecOutcome, ExecRequest, LineSender, Stream, Transport,
    TransportError, CAPTURE_LIMIT,
};
use crate::inventory::{HostKeyChecking, KeyExchange, Node, SshSettings};
use crate::util::{format_duration, sh_quote};

/// The master connection exits after this long without any channel open; the next step then
/// opens a new one. Never "forever": a console that dies must not leave masters behind for good.
pub const MASTER_IDLE: Duration = Duration::from_secs(120);
/// Keepalive probes, so a dead server is noticed within about 3 × this.
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Time a killed step's process group gets between SIGTERM and SIGKILL on the node.
const KILL_GRACE_TENTHS: u32 = 20;
/// How long the kill itself (a second channel) may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// The first line the wrapper prints: this marker and the step's process group id.
const PGID_MARKER: &str = "@@deckhand-pgid@@";

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
        match &self.ssh_config {
            Some(f) => {
                let _ = writeln!(c, "Include {}", config_path(f));
            }
            None => {
                if let Some(home) = std::env::var_os("HOME") {
                    if Path::new(&home).join(".ssh/config").is_file() {
                        c.push_str("Include ~/.ssh/config\n");
                    }
                }
                if Path::new("/etc/ssh/ssh_config").is_file() {
                    c.push_str("Include /etc/ssh/ssh_config\n");
                }
            }
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
    fn node_config(&self, common: &Path, jump_log: &Path) -> String {
        let mut c = String::from(
            "# Written by deckhand for one node's connection; removed when it closes.\n",
        );
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
    Ok(dir)
}

/// The shell text sent to the node for one step. The login shell `exec`s a POSIX `sh` that
/// prints the process group sshd gave the session, starts the stdin watcher, runs the script in
/// a subshell (`eval`, so no second `sh` is started) with stdin closed, and exits with the
/// script's status. (The watcher gets the channel's stdin
/// through fd 3: a background job's own stdin is /dev/null in a shell without job control.)
pub fn wrap_script(script: &str) -> String {
    let wrapper = format!(
        r#"deckhand_pg=$$
if [ -r /proc/$$/stat ]; then read -r _ _ _ _ deckhand_pg _ < /proc/$$/stat || deckhand_pg=$$; fi
printf '%s %s\n' {marker} "$deckhand_pg"
exec 3<&0
( trap '' HUP INT TERM; while read -r _; do :; done; kill -TERM -"$deckhand_pg"; sleep 2; kill -KILL -"$deckhand_pg" ) <&3 >/dev/null 2>&1 &
deckhand_w=$!
exec 3<&-
( unset deckhand_pg deckhand_w; eval {script} ) </dev/null
deckhand_rc=$?
kill -KILL "$deckhand_w" 2>/dev/null
exit "$deckhand_rc""#,
        marker = sh_quote(PGID_MARKER),
        script = sh_quote(script),
    );
    format!("exec sh -c {}", sh_quote(&wrapper))
}

/// The shell text that kills a step's process group: TERM, a grace while any member lives, KILL.
pub fn kill_script(pgid: i32) -> String {
    format!(
        r#"exec sh -c 'pg={pgid}; kill -TERM -"$pg" 2>/dev/null || exit 0; i=0; while [ "$i" -lt {KILL_GRACE_TENTHS} ] && kill -0 -"$pg" 2>/dev/null; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; kill -KILL -"$pg" 2>/dev/null; exit 0'"#
    )
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

/// A live master connection and the private directory of its configs and socket.
struct Conn {
    // Field order matters: the session shuts its master down while the directory still exists.
    session: Option<Arc<Session>>,
    dir: Option<tempfile::TempDir>,
}

/// Reaches one node over SSH. Cheap to create; connects on first use.
pub struct SshTransport {
    target: SshTarget,
    conn: Mutex<Conn>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("target", &self.target)
            .finish()
    }
}

impl SshTransport {
    pub fn new(target: SshTarget) -> Self {
        SshTransport {
            target,
            conn: Mutex::new(Conn {
                session: None,
                dir: None,
            }),
        }
    }

    pub fn for_node(node: &Node, base_dir: &Path) -> Result<Self, TransportError> {
        Ok(Self::new(SshTarget::from_node(node, base_dir)?))
    }

    /// The master's control socket, while a connection is open (for `ssh -S … -O check`).
    pub async fn control_socket(&self) -> Option<PathBuf> {
        let conn = self.conn.lock().await;
        conn.session
            .as_ref()
            .map(|s| s.control_socket().to_path_buf())
    }

    /// The open master, opening it if there is none.
    async fn session(&self) -> Result<Arc<Session>, TransportError> {
        let mut conn = self.conn.lock().await;
        if let Some(s) = &conn.session {
            return Ok(s.clone());
        }
        let session = Arc::new(self.launch(&mut conn).await?);
        conn.session = Some(session.clone());
        Ok(session)
    }

    /// Forget `stale` (a master that went away) so the next call opens a new one.
    async fn forget(&self, stale: &Arc<Session>) {
        let mut conn = self.conn.lock().await;
        if conn.session.as_ref().is_some_and(|s| Arc::ptr_eq(s, stale)) {
            conn.session = None;
        }
    }

    async fn launch(&self, conn: &mut Conn) -> Result<Session, TransportError> {
        let t = &self.target;
        let io_fail = |what: &str, e: std::io::Error| {
            TransportError::Connect(format!(
                "cannot prepare the SSH connection to {}: {what}: {e}",
                t.destination()
            ))
        };
        if conn.dir.is_none() {
            let root = control_root()?;
            let dir = tempfile::Builder::new()
                .prefix("n")
                .rand_bytes(6)
                .tempdir_in(&root)
                .map_err(|e| io_fail("cannot create its directory", e))?;
            conn.dir = Some(dir);
        }
        let dir = conn
            .dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
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
        std::fs::write(&node_cfg, t.node_config(&common, &jump_log))
            .map_err(|e| io_fail("cannot write its ssh config", e))?;
        let _ = std::fs::write(&jump_log, "");

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
            Ok(Ok(session)) => Ok(session),
            Ok(Err(openssh::Error::Connect(io))) if io.kind() == std::io::ErrorKind::NotFound => {
                Err(TransportError::Connect(format!(
                    "cannot run the OpenSSH client `ssh` on this machine ({io}); install it (apt-get install openssh-client) to reach {}",
                    t.destination()
                )))
            }
            Ok(Err(e)) => {
                let jump = std::fs::read_to_string(&jump_log).unwrap_or_default();
                let log = match &e {
                    openssh::Error::Connect(io) => io.to_string(),
                    other => other.to_string(),
                };
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

    /// Start `command` on a channel of the master, opening (or re-opening, if the master went
    /// away while idle) the connection as needed. Nothing has run on the node when this fails.
    async fn spawn(
        &self,
        command: &str,
        stdin: bool,
    ) -> Result<(Arc<Session>, openssh::Child<Arc<Session>>), TransportError> {
        let mut retried = false;
        loop {
            let session = self.session().await?;
            let spawned = session
                .clone()
                .arc_raw_command(command)
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

    /// Kill a step's process group on the node and wait until it is gone (or the grace ran out).
    async fn kill_group(&self, pgid: i32) -> Result<(), TransportError> {
        let (_, child) = self.spawn(&kill_script(pgid), false).await?;
        match tokio::time::timeout(KILL_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(TransportError::Exec(format!(
                "on {}: {e}",
                self.target.destination()
            ))),
            Err(_) => Err(TransportError::Exec(format!(
                "on {}: no answer within {}",
                self.target.destination(),
                format_duration(KILL_TIMEOUT)
            ))),
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

#[async_trait]
impl Transport for SshTransport {
    async fn connect(&self) -> Result<(), TransportError> {
        let session = self.session().await?;
        if self.alive(&session).await {
            return Ok(());
        }
        self.forget(&session).await;
        self.session().await.map(|_| ())
    }

    async fn exec(
        &self,
        req: &ExecRequest,
        lines: Option<&LineSender>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome, TransportError> {
        let (session, mut child) = self.spawn(&wrap_script(&req.script), true).await?;
        // Held open while the step runs: closing it tells the node's watcher to kill the step.
        let mut stdin = child.stdin().take();
        let (pgid_tx, mut pgid_rx) = tokio::sync::watch::channel(None::<i32>);
        // The wrapper's first line is the step's process group id, taken here, not shown.
        let mut found = false;
        let out_task = tokio::spawn(pump_lines(
            child.stdout().take(),
            Stream::Stdout,
            lines.cloned(),
            CAPTURE_LIMIT,
            move |raw| {
                let Some(rest) = raw.strip_prefix(PGID_MARKER).filter(|_| !found) else {
                    return false;
                };
                found = true;
                // A group id of 1 or less would mean "everything": never kill that.
                if let Ok(pg) = rest.trim().parse::<i32>() {
                    if pg > 1 {
                        let _ = pgid_tx.send(Some(pg));
                    }
                }
                true
            },
        ));
        let err_task = tokio::spawn(pump_lines(
            child.stderr().take(),
            Stream::Stderr,
            lines.cloned(),
            0,
            |_| false,
        ));

        enum First {
            Waited(Result<std::process::ExitStatus, openssh::Error>),
            Stop(Ended),
        }
        let wait = child.wait();
        tokio::pin!(wait);
        let limit = req.limit();
        let first = tokio::select! {
            r = &mut wait => First::Waited(r),
            _ = tokio::time::sleep(limit) => First::Stop(Ended::TimedOut),
            _ = cancel.cancelled() => First::Stop(Ended::Cancelled),
        };
        let mut note = None;
        let mut lost = false;
        let ended = match first {
            First::Waited(Ok(status)) => Ended::Exited(status.code()),
            First::Waited(Err(e)) => {
                // The multiplex protocol reports "killed by a signal" and "connection gone" alike.
                lost = !self.alive(&session).await;
                if lost {
                    log::debug!("step on {} ended with {e}", self.target.destination());
                    self.forget(&session).await;
                }
                Ended::Exited(None)
            }
            First::Stop(ended) => {
                let known = match tokio::time::timeout(
                    Duration::from_secs(2),
                    pgid_rx.wait_for(|p| p.is_some()),
                )
                .await
                {
                    Ok(Ok(p)) => *p,
                    _ => None,
                };
                match known {
                    Some(pg) => {
                        if let Err(e) = self.kill_group(pg).await {
                            note = Some(format!(
                                "could not kill the step's processes on the node: {e}"
                            ));
                        }
                    }
                    None => {
                        note = Some(
                            "the step's process group on the node is unknown; it may still run"
                                .into(),
                        )
                    }
                }
                // Also the watcher's cue, should the kill channel have failed.
                drop(stdin.take());
                let _ = tokio::time::timeout(Duration::from_secs(3), &mut wait).await;
                ended
            }
        };
        drop(stdin);
        let grace = Duration::from_millis(if ended == Ended::Exited(Some(0)) {
            2000
        } else {
            300
        });
        let (stdout, mut stderr_tail) = gathered(out_task, err_task, grace).await;
        if lost {
            return Err(self.lost("while the step ran"));
        }
        if let Some(n) = note {
            stderr_tail.push(n);
        }
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
        let status = tokio::time::timeout(limit, child.wait()).await;
        let stderr = tokio::time::timeout(Duration::from_secs(2), err_task)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
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
        let session = self.conn.lock().await.session.take();
        if let Some(s) = session {
            if let Ok(s) = Arc::try_unwrap(s) {
                let _ = s.close().await;
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
        let c = target().node_config(
            Path::new("/tmp/dh-0/nX/common.cfg"),
            Path::new("/tmp/dh-0/nX/jump.log"),
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
            .node_config(Path::new("/c"), Path::new("/j"))
            .contains("ProxyCommand"));
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
    fn the_wrapper_quotes_the_script_and_reports_its_process_group_first() {
        let w = wrap_script("echo 'it''s' $HOME; exit 3");
        assert!(w.starts_with("exec sh -c '"));
        let marker_at = w.find(PGID_MARKER).expect("marker");
        let script_at = w.find("eval").expect("eval");
        assert!(marker_at < script_at);
        // Run it here with a POSIX sh in a session of its own (as sshd would start it), with
        // stdin held open as the transport holds it: the marker line, then the script's own
        // output and status.
        let mut child = std::process::Command::new("setsid")
            .args(["sh", "-c"])
            .arg(&w)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("setsid sh");
        let held = child.stdin.take();
        let out = child.wait_with_output().expect("wait");
        drop(held);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        assert!(lines.next().is_some_and(|l| l.starts_with(PGID_MARKER)));
        assert_eq!(
            lines.next(),
            Some(format!("its {}", std::env::var("HOME").unwrap_or_default()).as_str())
        );
        assert_eq!(out.status.code(), Some(3));
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
