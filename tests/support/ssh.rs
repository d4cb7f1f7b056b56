//! The sshd fleet: real OpenSSH servers on 127.0.0.1, each with its own port, host key, deploy
//! path and HTTP app (`app.py`, which serves the release it started with), plus a bastion for
//! ProxyJump, a client key and a strict known_hosts file. Tests reach it as `support::Fleet`
//! (also `support::ssh::Fleet`), with `FleetSpec` and `InventorySpec` beside it.
//!
//! It owns every process it starts and everything they start on the "nodes": all of it is
//! killed, and the directory removed, when the `Fleet` is dropped, also when a test panics.
//! Remote sessions carry `DECKHAND_FLEET=<dir>` (sshd's `SetEnv`), which is how the fleet finds
//! what ran on it. It must not touch anything outside its directory, except creating the test
//! login user (`dhfleet`, shell `/bin/sh`) when it runs as root and the user is missing: root's
//! own login shell reads a slow `~/.bashrc`, which would swamp every measurement.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use deckhand::inventory::{HostKeyChecking, KeyExchange};
use deckhand::transport::ssh::SshTarget;

use super::http::http_get;
use super::procs::{self, processes, Proc};
use super::{free_port, node, tools, wait};

pub const SSHD: &str = "/usr/sbin/sshd";
/// The login user on the fleet when the tests run as root.
pub const FLEET_USER: &str = "dhfleet";

/// `restart-app DEPLOY_PATH`: stop the node's app (if running) and start it again from
/// `current`; returns once the new one listens. Runs on the node, as the login user.
const RESTART_SH: &str = r#"#!/bin/sh
set -u
node_dir=$(dirname "$1")
pid_file="$node_dir/app.pid"
port=$(cat "$node_dir/app.port")
if [ -f "$pid_file" ]; then
  old=$(cat "$pid_file")
  kill "$old" 2>/dev/null
  i=0
  # Gone, or a zombie nobody reaps (this machine's init may not): either way it has let go of the port.
  while [ "$i" -lt 100 ]; do
    state=$(cut -d' ' -f3 "/proc/$old/stat" 2>/dev/null) || break
    [ "$state" = Z ] && break
    sleep 0.05; i=$((i+1))
  done
  rm -f "$pid_file"
fi
# A restart killed before it recorded its app (the console went away mid-step) left that app
# running and its pid in app.pid.new: stop it too, or it keeps the port and the old release.
if [ -s "$pid_file.new" ]; then
  kill "$(cat "$pid_file.new")" 2>/dev/null
  i=0
  while [ "$i" -lt 100 ] && kill -0 "$(cat "$pid_file.new")" 2>/dev/null; do
    state=$(cut -d' ' -f3 "/proc/$(cat "$pid_file.new")/stat" 2>/dev/null)
    [ "$state" = Z ] && break
    sleep 0.05; i=$((i+1))
  done
fi
rm -f "$pid_file.new"
setsid /usr/bin/python3 "$node_dir/../app.py" "$port" "$1" "$pid_file.new" >>"$node_dir/app.log" 2>&1 </dev/null &
i=0
while [ ! -s "$pid_file.new" ]; do
  i=$((i+1))
  if [ "$i" -gt 600 ]; then
    echo "app on port $port did not start: $(tail -n 3 "$node_dir/app.log" | tr '\n' ' ')" >&2
    exit 1
  fi
  sleep 0.05
done
mv "$pid_file.new" "$pid_file"
echo "app restarted on port $port ($(cat "$pid_file"))"
"#;

/// `check-app DEPLOY_PATH RELEASE`: exit 0 when the node's app answers RELEASE on `/version`.
const CHECK_SH: &str = r#"#!/bin/sh
port=$(cat "$(dirname "$1")/app.port")
exec /usr/bin/python3 -c 'import sys, urllib.request
v = urllib.request.urlopen("http://127.0.0.1:%s/version" % sys.argv[1], timeout=2).read().decode().strip()
print("serving", v)
sys.exit(0 if v == sys.argv[2] else 1)' "$port" "$2"
"#;

/// What an inventory for this fleet says, beyond the nodes.
#[derive(Debug, Clone)]
pub struct InventorySpec {
    pub env: &'static str,
    pub on_failure: &'static str,
    /// Reach every node through the bastion.
    pub via_bastion: bool,
    /// TOML for phases between `release`+`build` and `switch`.
    pub extra_phases: String,
    /// TOML for `[app]` beyond name and deploy_path.
    pub app_extra: String,
    /// Replace the whole phase list (and drop the HTTP health check): for trivial deploys.
    pub phases: Option<String>,
    /// Lines added to `[ssh]`.
    pub ssh_extra: String,
}

impl Default for InventorySpec {
    fn default() -> Self {
        InventorySpec {
            env: "production",
            on_failure: "rollback",
            via_bastion: false,
            extra_phases: String::new(),
            app_extra: String::new(),
            phases: None,
            ssh_extra: String::new(),
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub nodes: usize,
    pub bastion: bool,
    /// A second bastion in front of the first (two ProxyJump hops).
    pub outer_bastion: bool,
    pub apps: bool,
}

impl FleetSpec {
    pub fn nodes(n: usize) -> Self {
        FleetSpec {
            nodes: n,
            bastion: false,
            outer_bastion: false,
            apps: false,
        }
    }
    pub fn with_bastion(mut self) -> Self {
        self.bastion = true;
        self
    }
    /// Two bastions: the outer one first, then the (inner) bastion, then the node.
    pub fn with_two_bastions(mut self) -> Self {
        self.bastion = true;
        self.outer_bastion = true;
        self
    }
    pub fn with_apps(mut self) -> Self {
        self.apps = true;
        self
    }
    pub fn start(self) -> Fleet {
        Fleet::start(self)
    }
}

/// One sshd of the fleet.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The host key's public line (`ssh-ed25519 AAAA…`).
    pub host_key: String,
    child: Option<Child>,
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// Log lines (debug1) that record a channel this server forwarded to 127.0.0.1:`port`.
    pub fn forwards_to(&self, port: u16) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("server_request_direct_tcpip"))
            .filter(|l| {
                l.trim_end()
                    .ends_with(&format!("target 127.0.0.1 port {port}"))
            })
            .count()
    }

    /// Start this server with its config as it is now, and wait (10s at most) until it listens
    /// on its port. `Err` with what it logged when it exited or never listened; it is stopped.
    fn launch(&mut self) -> Result<(), String> {
        // A new log file, not the old one truncated: a child of an earlier server that was
        // still finishing (a probe connection) must not write over the new server's lines.
        let _ = std::fs::remove_file(&self.log);
        let log_file = std::fs::File::create(&self.log).expect("sshd log");
        let child = Command::new(tools::sshd())
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        self.child = Some(child);
        let listening = wait::poll(Duration::from_secs(10), Duration::from_millis(10), || {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.log_text().contains("Server listening")
            {
                return Some(true);
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            exited.map(|_| false)
        });
        if listening == Some(true) {
            return Ok(());
        }
        let said = self.log_text();
        stop_server(self);
        Err(said)
    }

    /// Kill this server and every connection it serves.
    pub fn stop(&mut self) {
        stop_server(self);
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct FleetNode {
    pub name: String,
    pub sshd: Server,
    pub http_port: u16,
    /// This node's directory (deploy path, app state).
    pub dir: PathBuf,
    pub deploy_path: PathBuf,
}

pub struct Fleet {
    pub root: PathBuf,
    pub user: String,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    pub nodes: Vec<FleetNode>,
    pub bastion: Option<Server>,
    pub outer_bastion: Option<Server>,
    /// `restart-app` (give it the node's deploy path).
    pub restart_app: PathBuf,
    /// `check-app` (give it the node's deploy path and the release it should serve).
    pub check_app: PathBuf,
    /// First on every node's PATH: tests put stand-ins for tools here.
    pub bin: PathBuf,
    uid: Option<(u32, u32)>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static USER_LOCK: Mutex<()> = Mutex::new(());

/// The login user for the fleet and its uid/gid (None: the current user, not root).
fn fleet_user() -> (String, Option<(u32, u32)>) {
    if !is_root() {
        let name = run(Command::new("id").arg("-un")).trim().to_string();
        return (name, None);
    }
    let _guard = USER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let lookup = || {
        Command::new("getent")
            .args(["passwd", FLEET_USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if lookup().is_none() {
        // `*` (not `!`): an account with a locked password may not log in even with a key.
        let status = Command::new("useradd")
            .args([
                "--create-home",
                "--shell",
                "/bin/sh",
                "--password",
                "*",
                FLEET_USER,
            ])
            .status();
        if lookup().is_none() {
            panic!("cannot create the test user {FLEET_USER} (useradd: {status:?}); create it with `useradd -m -s /bin/sh -p '*' {FLEET_USER}`");
        }
    }
    let entry = lookup().unwrap_or_default();
    let fields: Vec<&str> = entry.trim().split(':').collect();
    let uid = fields
        .get(2)
        .and_then(|u| u.parse().ok())
        .expect("uid of the fleet user");
    let gid = fields
        .get(3)
        .and_then(|g| g.parse().ok())
        .expect("gid of the fleet user");
    (FLEET_USER.to_string(), Some((uid, gid)))
}

fn keygen(path: &Path, comment: &str) {
    run(Command::new(tools::ssh_keygen())
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path));
}

fn chown(path: &Path, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Fleet {
    pub fn start(spec: FleetSpec) -> Fleet {
        // The transport opens masters' TCP connections with the deckhand binary, as the
        // binary itself does (transport/connect.rs).
        deckhand::transport::connect::set_helper(PathBuf::from(env!("CARGO_BIN_EXE_deckhand")));
        tools::sshd();
        tools::ssh_keygen();
        if spec.apps {
            tools::python3();
        }
        reap_stale_fleets();
        if is_root() {
            // sshd's privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let (user, ids) = fleet_user();
        let root = tempfile::Builder::new()
            .prefix("dh-sshfleet-")
            .tempdir_in("/tmp")
            .expect("create the fleet directory")
            .keep();
        chmod(&root, 0o755);
        std::fs::write(root.join("owner.pid"), std::process::id().to_string()).expect("owner.pid");
        let mut fleet = Fleet {
            root: root.clone(),
            user,
            client_key: root.join("client_key"),
            known_hosts: root.join("known_hosts"),
            nodes: Vec::new(),
            bastion: None,
            outer_bastion: None,
            restart_app: root.join("restart-app"),
            check_app: root.join("check-app"),
            bin: root.join("bin"),
            uid: ids,
        };
        // From here on, a panic drops `fleet`, which tears everything down.
        keygen(&fleet.client_key, "deckhand-test-client");
        std::fs::copy(root.join("client_key.pub"), root.join("authorized_keys"))
            .expect("authorized_keys");
        chmod(&root.join("authorized_keys"), 0o644);
        std::fs::write(root.join("app.py"), node::APP_PY).expect("app.py");
        std::fs::create_dir_all(&fleet.bin).expect("bin");
        chmod(&fleet.bin, 0o755);
        std::fs::write(&fleet.restart_app, RESTART_SH).expect("restart-app");
        chmod(&fleet.restart_app, 0o755);
        std::fs::write(&fleet.check_app, CHECK_SH).expect("check-app");
        chmod(&fleet.check_app, 0o755);

        if spec.bastion {
            let b = fleet.start_sshd("bastion", true);
            fleet.bastion = Some(b);
        }
        if spec.outer_bastion {
            let b = fleet.start_sshd("outer", true);
            fleet.outer_bastion = Some(b);
        }
        for i in 1..=spec.nodes {
            let name = format!("node{i}");
            let dir = root.join(&name);
            let deploy_path = dir.join("app");
            std::fs::create_dir_all(&deploy_path).expect("node dir");
            chown(&dir, ids);
            chown(&deploy_path, ids);
            let http_port = free_port();
            std::fs::write(dir.join("app.port"), format!("{http_port}\n")).expect("app.port");
            let sshd = fleet.start_sshd(&name, false);
            fleet.nodes.push(FleetNode {
                name,
                sshd,
                http_port,
                dir,
                deploy_path,
            });
        }
        fleet.write_known_hosts();
        if spec.apps {
            for i in 0..fleet.nodes.len() {
                fleet.restart_app_locally(i);
            }
        }
        fleet
    }

    fn start_sshd(&self, name: &str, bastion: bool) -> Server {
        let dir = self.root.join(format!("sshd-{name}"));
        std::fs::create_dir_all(&dir).expect("sshd dir");
        chmod(&dir, 0o755);
        let host_key = dir.join("host_key");
        keygen(&host_key, name);
        let host_key_pub = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        let host_key_pub = host_key_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let config = dir.join("sshd_config");
        let log = dir.join("sshd.log");
        for _attempt in 0..5 {
            let port = free_port();
            let text = format!(
                "ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {key}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {root}/authorized_keys\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AllowUsers {user}\n\
                 AllowTcpForwarding {fwd}\n\
                 X11Forwarding no\n\
                 PrintMotd no\n\
                 MaxSessions 100\n\
                 MaxStartups 200\n\
                 LogLevel {level}\n\
                 SetEnv DECKHAND_FLEET={root} DECKHAND_FLEET_NODE={name} PATH={root}/bin:/usr/local/bin:/usr/bin:/bin\n\
                 Subsystem sftp internal-sftp\n",
                key = host_key.display(),
                root = self.root.display(),
                user = self.user,
                fwd = if bastion { "yes" } else { "no" },
                // The bastion logs each forwarded channel (debug1), the proof that jump traffic
                // went through it.
                level = if bastion { "DEBUG1" } else { "VERBOSE" },
            );
            std::fs::write(&config, text).expect("sshd_config");
            let mut server = Server {
                name: name.to_string(),
                port,
                config: config.clone(),
                log: log.clone(),
                host_key: host_key_pub.clone(),
                child: None,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(said) if said.contains("Address already in use") => continue,
                Err(said) => panic!("sshd for {name} did not start on port {port}: {said}"),
            }
        }
        panic!("sshd for {name}: no free port after 5 tries");
    }

    /// Write the strict known_hosts: every node and the bastion, with their real keys.
    pub fn write_known_hosts(&self) {
        let mut text = String::new();
        for s in self.servers() {
            text.push_str(&format!("[127.0.0.1]:{} {}\n", s.port, s.host_key));
        }
        std::fs::write(&self.known_hosts, text).expect("known_hosts");
    }

    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.outer_bastion
            .iter()
            .chain(self.bastion.iter())
            .chain(self.nodes.iter().map(|n| &n.sshd))
    }

    /// How to reach node `i` directly.
    pub fn target(&self, i: usize) -> SshTarget {
        let n = &self.nodes[i];
        SshTarget {
            node: n.name.clone(),
            host: "127.0.0.1".into(),
            user: Some(self.user.clone()),
            port: Some(n.sshd.port),
            identity_file: Some(self.client_key.clone()),
            jump: Vec::new(),
            known_hosts: Some(self.known_hosts.clone()),
            host_key_checking: HostKeyChecking::Strict,
            connect_timeout: Duration::from_secs(5),
            ssh_config: None,
            key_exchange: KeyExchange::Auto,
        }
    }

    /// How to reach node `i` through the bastion.
    pub fn target_via_bastion(&self, i: usize) -> SshTarget {
        let mut t = self.target(i);
        t.jump = vec![self.jump_hop()];
        t
    }

    /// The bastion as a ProxyJump hop (`user@127.0.0.1:port`).
    pub fn jump_hop(&self) -> String {
        let b = self
            .bastion
            .as_ref()
            .expect("a fleet started with_bastion()");
        format!("{}@127.0.0.1:{}", self.user, b.port)
    }

    /// How to reach node `i` through both bastions (outer, then inner).
    pub fn target_via_two_bastions(&self, i: usize) -> SshTarget {
        let mut t = self.target(i);
        let outer = self
            .outer_bastion
            .as_ref()
            .expect("a fleet started with_two_bastions()");
        t.jump = vec![
            format!("{}@127.0.0.1:{}", self.user, outer.port),
            self.jump_hop(),
        ];
        t
    }

    /// The bastion's log lines that record a forwarded channel to `port`.
    pub fn bastion_forwards_to(&self, port: u16) -> usize {
        self.bastion
            .as_ref()
            .expect("a fleet started with_bastion()")
            .forwards_to(port)
    }

    /// The outer bastion's log lines that record a forwarded channel to `port`.
    pub fn outer_bastion_forwards_to(&self, port: u16) -> usize {
        self.outer_bastion
            .as_ref()
            .expect("a fleet started with_two_bastions()")
            .forwards_to(port)
    }

    /// Write `deckhand.toml` for this fleet (every node, one environment, a rolling deploy that
    /// builds `VERSION`, switches, restarts the app and checks it over HTTP); returns its path.
    pub fn write_inventory(&self, spec: &InventorySpec) -> PathBuf {
        let root = self.root.display();
        let jump = if spec.via_bastion {
            format!("jump = \"{}\"\n", self.jump_hop())
        } else {
            String::new()
        };
        let mut t = format!(
            "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\nkeep_releases = 5\n{}\n\
             [ssh]\nuser = \"{}\"\nidentity_file = \"{root}/client_key\"\nknown_hosts = \"{root}/known_hosts\"\nconnect_timeout = \"5s\"\n{jump}{}\n",
            spec.app_extra, self.user, spec.ssh_extra
        );
        for n in &self.nodes {
            t.push_str(&format!(
                "[nodes.{}]\nhost = \"127.0.0.1\"\nport = {}\ndeploy_path = \"{}\"\n\n",
                n.name,
                n.sshd.port,
                n.deploy_path.display()
            ));
        }
        let names: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"{}\"", n.name))
            .collect();
        let health = if spec.phases.is_some() {
            String::new()
        } else {
            format!("health = {{ run = \"{root}/check-app {{deploy_path}} {{release}}\", timeout = \"5s\", interval = \"100ms\", retries = 5 }}\n")
        };
        t.push_str(&format!(
            "[environments.{}]\nnodes = [{}]\nbatches = [1]\nmax_fail = \"0%\"\non_failure = \"{}\"\n{health}\n",
            spec.env,
            names.join(", "),
            spec.on_failure
        ));
        match &spec.phases {
            Some(p) => t.push_str(p),
            None => t.push_str(&format!(
                "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
                 [[phases]]\nname = \"build\"\nrun = \"printf '%s\\\\n' {{release}} > {{release_path}}/VERSION && echo built {{release}} on {{node}}\"\ntimeout = \"30s\"\n\n\
                 {}\n\
                 [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n\
                 [[phases]]\nname = \"restart\"\nrun = \"{root}/restart-app {{deploy_path}}\"\ntimeout = \"30s\"\n\n\
                 [[phases]]\nname = \"cleanup\"\nstage = \"after\"\nbuiltin = \"cleanup\"\n",
                spec.extra_phases
            )),
        }
        let path = self.root.join("deckhand.toml");
        std::fs::write(&path, t).expect("write the inventory");
        path
    }

    /// Run the `deckhand` binary with this fleet's inventory; its state (journal) stays in the
    /// fleet's directory.
    pub fn deckhand(&self, args: &[&str]) -> std::process::Output {
        self.deckhand_command(args).output().expect("run deckhand")
    }

    /// `deckhand deploy production --release RELEASE --headless --yes`, to its end.
    pub fn deploy(&self, release: &str) -> std::process::Output {
        self.deckhand(&[
            "deploy",
            "production",
            "--release",
            release,
            "--headless",
            "--yes",
        ])
    }

    /// The same deploy, started and left running, its output piped.
    pub fn spawn_deploy(&self, release: &str) -> Child {
        self.deckhand_command(&[
            "deploy",
            "production",
            "--release",
            release,
            "--headless",
            "--yes",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start deckhand")
    }

    pub fn deckhand_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deckhand"));
        cmd.arg("-i")
            .arg(self.root.join("deckhand.toml"))
            .args(args)
            .env("XDG_STATE_HOME", self.root.join("state"))
            .env_remove("DECKHAND_INVENTORY")
            .stdin(Stdio::null());
        cmd
    }

    /// The node's deployment history (`.deckhand/history.jsonl`), one JSON value per line.
    pub fn history(&self, i: usize) -> Vec<serde_json::Value> {
        node::history(&self.nodes[i].deploy_path)
    }

    /// Put an executable `name` with `body` first on every node's PATH.
    pub fn stub(&self, name: &str, body: &str) {
        let path = self.bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write stub");
        chmod(&path, 0o755);
    }

    pub fn locked(&self, i: usize) -> bool {
        node::locked(&self.nodes[i].deploy_path)
    }

    /// Start (or restart) node `i`'s app from this machine, as the fleet user.
    pub fn restart_app_locally(&self, i: usize) {
        let n = &self.nodes[i];
        let mut cmd = Command::new(&self.restart_app);
        cmd.arg(&n.deploy_path)
            .env("DECKHAND_FLEET", &self.root)
            .env("DECKHAND_FLEET_NODE", &n.name)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.uid {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().expect("run restart-app");
        assert!(
            out.status.success(),
            "app of {} did not start: {}{}",
            n.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// GET `path` from node `i`'s app: (status, body), or None when nothing answers.
    pub fn http_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        http_get(self.nodes[i].http_port, path)
    }

    /// The version node `i`'s app serves.
    pub fn version(&self, i: usize) -> Option<String> {
        self.http_get(i, "/version")
            .map(|(_, b)| b.trim().to_string())
    }

    /// Where node `i`'s `current` points (the release directory's name).
    pub fn current_release(&self, i: usize) -> Option<String> {
        node::current(&self.nodes[i].deploy_path)
    }

    /// How many logins node `i`'s sshd accepted (its log, VERBOSE, records each).
    pub fn logins(&self, i: usize) -> usize {
        self.nodes[i]
            .sshd
            .log_text()
            .lines()
            .filter(|l| l.contains("Accepted publickey"))
            .count()
    }

    /// How many connections node `i`'s sshd is serving now (its live child processes).
    pub fn connections(&self, i: usize) -> usize {
        let Some(pid) = self.nodes[i].sshd.pid() else {
            return 0;
        };
        processes()
            .iter()
            .filter(|p| p.ppid == pid as i32 && p.live())
            .count()
    }

    /// Kill node `i`'s sshd and every connection it serves, as if the server went down.
    pub fn kill_sshd(&mut self, i: usize) {
        stop_server(&mut self.nodes[i].sshd);
    }

    /// The fleet's live processes (zombies aside), or node `i`'s only: those whose environment
    /// carries the fleet's `SetEnv` (the fleet's apps, started apart, do not).
    fn fleet_processes(&self, node: Option<usize>) -> impl Iterator<Item = Proc> {
        let marker = format!("DECKHAND_FLEET={}", self.root.display());
        let on = node.map(|i| format!("DECKHAND_FLEET_NODE={}", self.nodes[i].name));
        processes().into_iter().filter(move |p| {
            p.live()
                && p.environ.contains(&marker)
                && on.as_ref().is_none_or(|on| p.environ.contains(on))
        })
    }

    /// The long-lived shells deckhand keeps on the fleet's nodes (each the leader of its
    /// process group, running the shell program), or on node `i` only.
    pub fn shells(&self, node: Option<usize>) -> Vec<i32> {
        self.fleet_processes(node)
            .filter(|p| p.pgrp == p.pid && p.cmdline.contains("dh_fail()"))
            .map(|p| p.pid)
            .collect()
    }

    /// Whether a process matching `needle` runs on node `i`.
    pub fn running_on(&self, i: usize, needle: &str) -> bool {
        self.fleet_processes(Some(i))
            .any(|p| p.cmdline.contains(needle))
    }

    /// Processes still running on the fleet whose command line contains `needle` (zombies and
    /// the fleet's apps aside).
    pub fn survivors(&self, needle: &str) -> Vec<(i32, String)> {
        self.fleet_processes(None)
            .filter(|p| p.cmdline.contains(needle))
            .map(|p| (p.pid, p.cmdline))
            .collect()
    }

    /// A copy of `other`'s host key installed for node `i`, so node `i` now presents a key that
    /// known_hosts does not list for it (the sshd is restarted on the same port).
    pub fn change_host_key(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        let dir = self.root.join(format!("sshd-{name}"));
        let key = dir.join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(dir.join("host_key.pub"));
        keygen(&key, &format!("{name}-rebuilt"));
        self.restart_sshd(i);
        let host_key_pub = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        self.nodes[i].sshd.host_key = host_key_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
    }

    /// Node `i`'s sshd with its config edited by `edit` (which gets and returns the whole text),
    /// restarted on the same port. sshd keeps the first value it reads for a keyword, so an
    /// edit that changes a setting should replace its line.
    pub fn reconfigure_sshd(&mut self, i: usize, edit: impl FnOnce(String) -> String) {
        let config = self.nodes[i].sshd.config.clone();
        let text = std::fs::read_to_string(&config).expect("sshd_config");
        std::fs::write(&config, edit(text)).expect("sshd_config");
        self.restart_sshd(i);
    }

    /// Stop node `i`'s sshd and start it again on the same port with its config as it is now.
    pub fn restart_sshd(&mut self, i: usize) {
        let sshd = &mut self.nodes[i].sshd;
        stop_server(sshd);
        if let Err(said) = sshd.launch() {
            panic!("sshd of {} did not come back: {said}", sshd.name);
        }
    }

    fn teardown(&mut self) {
        for s in self
            .nodes
            .iter_mut()
            .map(|n| &mut n.sshd)
            .chain(self.bastion.iter_mut())
            .chain(self.outer_bastion.iter_mut())
        {
            stop_server(s);
        }
        kill_fleet_processes(&self.root);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Kill what ran on the fleet at `root` (steps, their leftovers, the apps) and, for a fleet whose
/// test was killed before it could clean up, its sshd servers (found by their config path).
fn kill_fleet_processes(root: &Path) {
    let marker = format!("DECKHAND_FLEET={}", root.display());
    let config = format!("{}/sshd-", root.display());
    for _round in 0..5 {
        let left: Vec<i32> = processes()
            .into_iter()
            .filter(|p| p.live())
            .filter(|p| {
                p.environ.contains(&marker)
                    || (p.cmdline.contains("sshd") && p.cmdline.contains(&config))
            })
            .map(|p| p.pid)
            .collect();
        if left.is_empty() {
            break;
        }
        for pid in left {
            procs::kill(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fleets left behind by a test process that was killed (Drop never ran): stop and remove them.
fn reap_stale_fleets() {
    let Ok(dir) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in dir.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with("dh-sshfleet-") {
            continue;
        }
        let owner = std::fs::read_to_string(path.join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        let Some(owner) = owner else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        kill_fleet_processes(&path);
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Kill an sshd listener and every process below it (the connections it serves).
fn stop_server(s: &mut Server) {
    let Some(mut child) = s.child.take() else {
        return;
    };
    let pid = child.id() as i32;
    for p in procs::tree(pid) {
        procs::kill(p);
    }
    // The server leads its own process group (`process_group(0)`), which also holds a child
    // it forked after the listing above.
    procs::kill(-pid);
    let _ = child.kill();
    let _ = child.wait();
}
