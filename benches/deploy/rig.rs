//! The bench's fleet: the test harness's real sshd nodes (each with its HTTP app) and bastion,
//! the app's source and database the steps work on, a delay proxy in front of every node and
//! of the bastion, a real HAProxy in front of the first N apps when a run asks for one, and the
//! deckhand inventory for each way of reaching the nodes. Dropping it stops all of it.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::steps;
use crate::support::delay::DelayProxy;
use crate::support::haproxy::Haproxy;
use crate::support::{Fleet, FleetSpec};

/// How the console reaches the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Straight to each node's sshd on loopback.
    Direct,
    /// Through the bastion (ProxyJump), all on loopback.
    Bastion,
    /// Straight to each node, through a delay proxy (the slow link).
    Slow,
    /// Through the bastion, the link to the bastion slow (the bastion and the nodes side by side,
    /// as on a LAN).
    SlowBastion,
}

impl Link {
    pub fn word(self) -> &'static str {
        match self {
            Link::Direct => "direct",
            Link::Bastion => "bastion",
            Link::Slow => "slow link",
            Link::SlowBastion => "slow link to the bastion",
        }
    }
}

/// How the nodes take their turn: one at a time, or batches (the inventory's `batches`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turns {
    OneAtATime,
    /// Batches of this share of the fleet.
    Percent(u32),
    /// Batches of this many nodes.
    Count(usize),
}

impl Turns {
    /// Nodes per batch for a fleet of `n`, the way deckhand's plan sizes them.
    pub fn batch(self, n: usize) -> usize {
        match self {
            Turns::OneAtATime => 1,
            Turns::Percent(p) => (n * p as usize / 100).max(1),
            Turns::Count(c) => c.max(1),
        }
    }
    fn toml(self) -> String {
        match self {
            Turns::OneAtATime => "[1]".into(),
            Turns::Percent(p) => format!("[\"{p}%\"]"),
            Turns::Count(c) => format!("[{c}]"),
        }
    }
    pub fn word(self) -> String {
        match self {
            Turns::OneAtATime => "one at a time".into(),
            Turns::Percent(p) => format!("batches of {p}%"),
            Turns::Count(c) => format!("batches of {c}"),
        }
    }
}

pub struct Rig {
    // Dropped first: the proxies go before the servers behind them.
    node_proxies: Vec<DelayProxy>,
    bastion_proxy: Option<DelayProxy>,
    pub fleet: Fleet,
    /// The fleet's login user (uid, gid) when this runs as root.
    pub ids: Option<(u32, u32)>,
    /// Where the bench's own files go (inventories, journals, generated tool files).
    pub dir: PathBuf,
}

/// `restart DEPLOY_PATH`: the fleet's `restart-app` (stop the node's app, start it from
/// `current`, return once it listens), polling every 5 ms instead of 50 so that the restart
/// step's time is the app's, not the poll's.
const RESTART_SH: &str = r#"#!/bin/sh
set -u
node_dir=$(dirname "$1")
pid_file="$node_dir/app.pid"
port=$(cat "$node_dir/app.port")
if [ -f "$pid_file" ]; then
  old=$(cat "$pid_file")
  kill "$old" 2>/dev/null
  i=0
  while [ "$i" -lt 2000 ]; do
    state=$(cut -d' ' -f3 "/proc/$old/stat" 2>/dev/null) || break
    [ "$state" = Z ] && break
    sleep 0.005; i=$((i+1))
  done
  rm -f "$pid_file"
fi
setsid /usr/bin/python3 "$node_dir/../app.py" "$port" "$1" "$pid_file.new" >>"$node_dir/app.log" 2>&1 </dev/null &
i=0
while [ ! -s "$pid_file.new" ]; do
  i=$((i+1))
  if [ "$i" -gt 6000 ]; then
    echo "app on port $port did not start: $(tail -n 3 "$node_dir/app.log" | tr '\n' ' ')" >&2
    exit 1
  fi
  sleep 0.005
done
mv "$pid_file.new" "$pid_file"
echo "app restarted on port $port ($(cat "$pid_file"))"
"#;

/// Source files of the app the steps fetch and build: a few dozen small files.
fn write_source(dir: &Path) {
    let src = dir.join("src");
    for sub in ["lib", "assets", "views"] {
        std::fs::create_dir_all(src.join(sub)).expect("source tree");
    }
    for i in 0..40 {
        let body: String = (0..60)
            .map(|l| format!("def handler_{i}_{l}(request):\n    return {{'page': {l}}}\n"))
            .collect();
        std::fs::write(src.join(format!("lib/module_{i:02}.py")), body).expect("source");
    }
    for i in 0..12 {
        let body: String = (0..200)
            .map(|l| format!("export function widget{i}_{l}(el) {{ el.dataset.n = {l}; }}\n"))
            .collect();
        std::fs::write(src.join(format!("assets/app_{i:02}.js")), body).expect("assets");
    }
    for i in 0..20 {
        std::fs::write(
            src.join(format!("views/page_{i:02}.html")),
            format!("<main>page {i}</main>\n").repeat(50),
        )
        .expect("views");
    }
}

fn login_ids(user: &str) -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .expect("getent");
    let entry = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = entry.trim().split(':').collect();
    Some((
        f.get(2).and_then(|u| u.parse().ok()).expect("uid"),
        f.get(3).and_then(|g| g.parse().ok()).expect("gid"),
    ))
}

impl Rig {
    /// `n` sshd nodes with their apps (and a bastion), the app's files, delay proxies of
    /// `one_way` in front of every node and the bastion. The harness picks ports without holding
    /// them; on a machine where other fleets start at the same time one can be taken before its
    /// server binds it: the whole fleet is then started again, up to three times.
    pub fn start(n: usize, bastion: bool, one_way: Duration) -> Rig {
        for attempt in 1..=3 {
            match std::panic::catch_unwind(|| Rig::start_once(n, bastion, one_way)) {
                Ok(rig) => return rig,
                Err(_) if attempt < 3 => {
                    eprintln!("the fleet did not start (see above); starting it again")
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn start_once(n: usize, bastion: bool, one_way: Duration) -> Rig {
        eprintln!("starting {n} sshd nodes with their apps on 127.0.0.1 …");
        let spec = FleetSpec::nodes(n).with_apps();
        let fleet = if bastion {
            spec.with_bastion().start()
        } else {
            spec.start()
        };
        let ids = login_ids(&fleet.user);
        let dir = fleet.root.join("bench");
        std::fs::create_dir_all(&dir).expect("bench dir");
        // The app's source, packed once; every node fetches it.
        let tree = dir.join("source");
        write_source(&tree);
        let status = Command::new("tar")
            .arg("-czf")
            .arg(fleet.root.join("source.tgz"))
            .arg("-C")
            .arg(&tree)
            .arg("src")
            .status()
            .expect("tar");
        assert!(status.success(), "could not pack the app's source");
        let restart = dir.join("restart");
        std::fs::write(&restart, RESTART_SH).expect("restart script");
        std::fs::set_permissions(
            &restart,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        // Each node's data (the database the backup packs) and shared directory, its own.
        for node in &fleet.nodes {
            let data = node.dir.join("data");
            std::fs::create_dir_all(&data).expect("data dir");
            let db: Vec<u8> = (0..256 * 1024u32)
                .map(|i| i.wrapping_mul(2_654_435_761) as u8)
                .collect();
            std::fs::write(data.join("blob.bin"), db).expect("data");
            if let Some((uid, gid)) = ids {
                for p in [&data, &data.join("blob.bin")] {
                    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
                }
            }
        }
        let node_proxies: Vec<DelayProxy> = fleet
            .nodes
            .iter()
            .map(|nd| DelayProxy::start(nd.sshd.port, one_way))
            .collect();
        let bastion_proxy = fleet
            .bastion
            .as_ref()
            .map(|b| DelayProxy::start(b.port, one_way));
        // The proxies present the servers' own host keys: known_hosts lists them under the
        // proxies' ports too.
        let mut known = std::fs::read_to_string(&fleet.known_hosts).expect("known_hosts");
        for (nd, p) in fleet.nodes.iter().zip(&node_proxies) {
            known.push_str(&format!("[127.0.0.1]:{} {}\n", p.port, nd.sshd.host_key));
        }
        if let (Some(b), Some(p)) = (&fleet.bastion, &bastion_proxy) {
            known.push_str(&format!("[127.0.0.1]:{} {}\n", p.port, b.host_key));
        }
        std::fs::write(&fleet.known_hosts, known).expect("known_hosts");
        Rig {
            node_proxies,
            bastion_proxy,
            fleet,
            ids,
            dir,
        }
    }

    pub fn root(&self) -> String {
        self.fleet.root.display().to_string()
    }

    /// A real HAProxy in front of the first `n` nodes' apps, all of them UP.
    pub fn haproxy(&self, n: usize) -> Haproxy {
        let dir = self.dir.join(format!("haproxy-{n}"));
        std::fs::create_dir_all(&dir).expect("haproxy dir");
        let servers: Vec<(String, u16)> = self.fleet.nodes[..n]
            .iter()
            .map(|nd| (nd.name.clone(), nd.http_port))
            .collect();
        let h = Haproxy::start(&dir, &servers);
        let names: Vec<&str> = servers.iter().map(|(s, _)| s.as_str()).collect();
        h.wait_up(&names);
        h
    }

    /// The port the console uses for node `i` over `link`.
    pub fn node_port(&self, i: usize, link: Link) -> u16 {
        match link {
            Link::Slow => self.node_proxies[i].port,
            _ => self.fleet.nodes[i].sshd.port,
        }
    }

    /// How the transport reaches node `i` over `link`.
    pub fn target(&self, i: usize, link: Link) -> deckhand::transport::ssh::SshTarget {
        let mut t = self.fleet.target(i);
        t.port = Some(self.node_port(i, link));
        t.jump = self.jump(link).into_iter().collect();
        t.connect_timeout = Duration::from_secs(20);
        t
    }

    /// The ProxyJump hop for `link`, if it has one.
    pub fn jump(&self, link: Link) -> Option<String> {
        let b = self.fleet.bastion.as_ref()?;
        match link {
            Link::Bastion => Some(format!("{}@127.0.0.1:{}", self.fleet.user, b.port)),
            Link::SlowBastion => Some(format!(
                "{}@127.0.0.1:{}",
                self.fleet.user,
                self.bastion_proxy.as_ref()?.port
            )),
            _ => None,
        }
    }

    /// deckhand's inventory for the first `n` nodes over `link`, taking turns as `turns` says,
    /// behind `haproxy`; returns its path.
    pub fn inventory(&self, n: usize, link: Link, turns: Turns, haproxy: &Haproxy) -> PathBuf {
        self.inventory_with(n, link, turns, haproxy, false)
    }

    /// The same, with deckhand's own `release` and `switch` builtins in place of the `switch`
    /// command (what a rollback needs: deckhand then knows which phases follow the switch).
    pub fn inventory_with_builtins(&self, n: usize, link: Link, haproxy: &Haproxy) -> PathBuf {
        self.inventory_with(n, link, Turns::OneAtATime, haproxy, true)
    }

    fn inventory_with(
        &self,
        n: usize,
        link: Link,
        turns: Turns,
        haproxy: &Haproxy,
        builtins: bool,
    ) -> PathBuf {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let root = self.root();
        let mut t = format!(
            "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\nkeep_releases = 5\n\n\
             [ssh]\nuser = {}\nidentity_file = {}\nknown_hosts = {}\nconnect_timeout = \"20s\"\n",
            q(&self.fleet.user),
            q(&self.fleet.client_key.display().to_string()),
            q(&self.fleet.known_hosts.display().to_string()),
        );
        if let Some(j) = self.jump(link) {
            t.push_str(&format!("jump = {}\n", q(&j)));
        }
        t.push('\n');
        for (i, nd) in self.fleet.nodes[..n].iter().enumerate() {
            t.push_str(&format!(
                "[nodes.{}]\nhost = \"127.0.0.1\"\nport = {}\ndeploy_path = {}\n\n",
                nd.name,
                self.node_port(i, link),
                q(&nd.deploy_path.display().to_string())
            ));
        }
        let names: Vec<String> = self.fleet.nodes[..n]
            .iter()
            .map(|nd| format!("\"{}\"", nd.name))
            .collect();
        t.push_str(&format!(
            "[environments.production]\nnodes = [{}]\nbatches = {}\nmax_fail = \"0%\"\non_failure = \"rollback\"\n\
             health = {{ run = {}, timeout = \"10s\", interval = \"100ms\", retries = 5 }}\n\n\
             [environments.production.load_balancer]\nsocket = {}\nbackend = \"app\"\nvia = \"local\"\ntimeout = \"10s\"\ndrain_timeout = \"10s\"\n\n",
            names.join(", "),
            turns.toml(),
            q(&steps::deckhand_run(&steps::HEALTH, &root)),
            q(&haproxy.socket.display().to_string()),
        ));
        let phase = |s: &steps::Step, stage: &str, once: bool| {
            format!(
                "[[phases]]\nname = \"{}\"\nstage = \"{stage}\"\n{}run = {}\ntimeout = \"60s\"\n\n",
                s.name,
                if once { "once = true\n" } else { "" },
                q(&steps::deckhand_run(s, &root)),
            )
        };
        for s in steps::BEFORE {
            t.push_str(&phase(s, "before", true));
        }
        if builtins {
            t.push_str("[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n");
        }
        for s in steps::NODE {
            if builtins && s.name == "switch" {
                t.push_str("[[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n");
                continue;
            }
            t.push_str(&phase(s, "node", false));
        }
        for s in steps::AFTER {
            t.push_str(&phase(s, "after", true));
        }
        let path = self.dir.join(format!(
            "deckhand-{n}-{}-{}{}.toml",
            link.word().replace(' ', "-"),
            turns.batch(n),
            if builtins { "-builtins" } else { "" }
        ));
        std::fs::write(&path, t).expect("write the inventory");
        path
    }

    /// Every command of a deploy of release `release` to the first `n` nodes, by node, in
    /// order (`before` and `after` on the first node): what the other runners execute.
    pub fn commands(&self, n: usize, release: &str) -> Commands {
        let root = self.root();
        let nodes = &self.fleet.nodes[..n];
        let first = &nodes[0];
        let dp = |nd: &crate::support::FleetNode| nd.deploy_path.display().to_string();
        let once = |list: &[steps::Step]| {
            list.iter()
                .map(|s| {
                    (
                        s.name.to_string(),
                        steps::command(s, &dp(first), release, &first.name, &root),
                    )
                })
                .collect()
        };
        Commands {
            first: first.name.clone(),
            before: once(steps::BEFORE),
            nodes: nodes
                .iter()
                .map(|nd| {
                    let mut v: Vec<(String, String)> = steps::NODE
                        .iter()
                        .map(|s| {
                            (
                                s.name.to_string(),
                                steps::command(s, &dp(nd), release, &nd.name, &root),
                            )
                        })
                        .collect();
                    v.push((
                        steps::HEALTH.name.to_string(),
                        steps::command(&steps::HEALTH, &dp(nd), release, &nd.name, &root),
                    ));
                    (nd.name.clone(), v)
                })
                .collect(),
            after: once(steps::AFTER),
        }
    }

    /// A `sh -c` of `cmd` on this machine as the fleet's login user would run it over SSH: its
    /// environment (sshd's `SetEnv`), its home, the node's deploy path as working directory,
    /// and a session of its own, as sshd gives each connection. The session matters on a
    /// kernel that shares the CPU between sessions first (`kernel.sched_autogroup_enabled`,
    /// on here): sshd gives every node's commands a session of their own, so ten nodes' steps
    /// get ten shares of the CPU, where ten commands of one session would get one. Without its
    /// own session per command, the work alone got more of the CPU than the same commands on
    /// the fleet's nodes; in batches of ten, a restart's app came up in 223 ms alone against
    /// 660 ms on the nodes, with deckhand not involved in the difference.
    pub fn local_sh(&self, node: usize, cmd: &str) -> Command {
        let nd = &self.fleet.nodes[node];
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(cmd)
            .current_dir(&nd.deploy_path)
            .env_clear()
            .env("DECKHAND_FLEET", &self.fleet.root)
            .env("DECKHAND_FLEET_NODE", &nd.name)
            .env(
                "PATH",
                format!(
                    "{}/bin:/usr/local/bin:/usr/bin:/bin",
                    self.fleet.root.display()
                ),
            )
            .env("USER", &self.fleet.user)
            .env("LOGNAME", &self.fleet.user)
            .env("SHELL", "/bin/sh")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: setsid(2) is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        if let Some((uid, gid)) = self.ids {
            c.uid(uid).gid(gid);
            c.env("HOME", format!("/home/{}", self.fleet.user));
        } else if let Some(h) = std::env::var_os("HOME") {
            c.env("HOME", h);
        }
        c
    }

    pub fn node_index(&self, name: &str) -> usize {
        self.fleet
            .nodes
            .iter()
            .position(|n| n.name == name)
            .expect("a node of the fleet")
    }
}

/// The commands of one deploy, as the other runners get them: (step name, command text).
pub struct Commands {
    /// Where the once-steps run.
    pub first: String,
    pub before: Vec<(String, String)>,
    /// Per node, in plan order: its nine steps and its health check.
    pub nodes: Vec<(String, Vec<(String, String)>)>,
    pub after: Vec<(String, String)>,
}

impl Commands {
    /// For a JSON plan file.
    pub fn to_json(&self, release: &str, lb: &Path, batch: usize) -> serde_json::Value {
        let cmds =
            |v: &[(String, String)]| -> Vec<String> { v.iter().map(|(_, c)| c.clone()).collect() };
        let mut nodes = BTreeMap::new();
        for (n, steps) in &self.nodes {
            let (health, rest) = steps.split_last().expect("a health check");
            nodes.insert(
                n.clone(),
                serde_json::json!({ "steps": cmds(rest), "health": health.1 }),
            );
        }
        serde_json::json!({
            "release": release,
            "lb": lb.display().to_string(),
            "batch": batch,
            "before": cmds(&self.before),
            "after": cmds(&self.after),
            "nodes": nodes,
        })
    }
}
