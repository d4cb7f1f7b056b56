//! A load-balanced fleet on loopback: local nodes each running a real HTTP app (`app.py`) on
//! its own port, a real HAProxy in front of them with its admin socket, and a bounded load
//! loop that counts failed requests and the versions served. Everything stops on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::{free_port, procs, tools, wait};

fn app_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/app.py")
}

pub struct Haproxy {
    child: Option<Child>,
    pub cfg: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
}

impl Haproxy {
    /// Start HAProxy with one backend `app` of these (server name, port) pairs, health-checked
    /// every 300 ms on /up.
    pub fn start(dir: &Path, servers: &[(String, u16)]) -> Haproxy {
        let port = free_port();
        let socket = dir.join("haproxy.sock");
        let mut cfg = format!(
            "global\n  stats socket {} mode 600 level admin\n  maxconn 512\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 0\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend app\n\
             backend app\n  balance roundrobin\n  option httpchk GET /up\n  default-server inter 300ms fall 2 rise 1\n",
            socket.display()
        );
        for (name, p) in servers {
            cfg.push_str(&format!("  server {name} 127.0.0.1:{p} check\n"));
        }
        let cfg_path = dir.join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut h = Haproxy {
            child: None,
            cfg: cfg_path,
            socket,
            port,
        };
        h.restart();
        h
    }

    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.socket);
        let log = self.cfg.with_file_name("haproxy.log");
        let log_file = std::fs::File::create(&log).expect("HAProxy's log file");
        let child = Command::new(tools::haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start haproxy");
        self.child = Some(child);
        wait::until(
            "HAProxy's admin socket",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if self.socket.exists() {
                    return Ok(());
                }
                Err(format!(
                    "{} is not there; HAProxy said:\n{}",
                    self.socket.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))
            },
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send a runtime-API command (for test setup).
    pub fn command(&self, cmd: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("admin socket");
        s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// A server's status as HAProxy reports it (`UP`, `DRAIN`, `MAINT`, …).
    pub fn status(&self, server: &str) -> String {
        let stat = self.command("show stat");
        stat.lines()
            .find(|l| l.starts_with(&format!("app,{server},")))
            .and_then(|l| l.split(',').nth(17))
            .unwrap_or_else(|| panic!("no server {server} in:\n{stat}"))
            .to_string()
    }

    /// Wait until every listed server is UP as HAProxy sees it.
    pub fn wait_up(&self, servers: &[&str]) {
        wait::until(
            &format!("{servers:?} to be UP in HAProxy"),
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                let stat = self.command("show stat");
                let up = servers.iter().all(|s| {
                    stat.lines()
                        .any(|l| l.starts_with(&format!("app,{s},")) && l.contains(",UP,"))
                });
                if up {
                    return Ok(());
                }
                Err(format!("HAProxy's stat:\n{stat}"))
            },
        );
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Nodes with real apps behind a real HAProxy.
pub struct LbFleet {
    pub dir: TempDir,
    pub nodes: Vec<(String, u16)>,
    pub haproxy: Haproxy,
}

impl Drop for LbFleet {
    fn drop(&mut self) {
        for (n, _) in &self.nodes {
            procs::kill_pid_file(&self.node_dir(n).join("shared/app.pid"));
        }
    }
}

pub struct LbSpec<'a> {
    pub nodes: usize,
    /// The whole [environments.test] body after `nodes = [...]` (batches, strategy, balancer…).
    pub env: &'a str,
    /// false: no load_balancer table at all (the driver disabled).
    pub balancer: bool,
    pub balancer_extra: &'a str,
}

impl LbFleet {
    pub fn new(spec: LbSpec) -> LbFleet {
        let dir = tempfile::Builder::new().prefix("dh-lb-").tempdir().unwrap();
        let d = dir.path().display().to_string();
        let nodes: Vec<(String, u16)> = (1..=spec.nodes)
            .map(|i| (format!("web-{i}"), free_port()))
            .collect();
        // v1 live everywhere, apps running.
        for (n, port) in &nodes {
            let dp = dir.path().join("nodes").join(n);
            std::fs::create_dir_all(dp.join("releases/v1")).unwrap();
            std::fs::create_dir_all(dp.join("shared")).unwrap();
            std::fs::write(dp.join("releases/v1/VERSION"), "v1\n").unwrap();
            std::os::unix::fs::symlink("releases/v1", dp.join("current")).unwrap();
            std::fs::write(dp.join("shared/port"), port.to_string()).unwrap();
            // Detached on purpose: restarts replace it, and Drop kills whatever app.pid names.
            #[allow(clippy::zombie_processes)]
            Command::new("setsid")
                .arg("python3")
                .arg(app_script())
                .arg(port.to_string())
                .arg(&dp)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 is needed for the test apps");
        }
        let haproxy = Haproxy::start(dir.path(), &nodes);
        let mut toml = format!(
            "[app]\nname = \"shop\"\ndeploy_path = \"{d}/nodes/default\"\nkeep_releases = 5\n\n"
        );
        for (n, _) in &nodes {
            toml.push_str(&format!("[nodes.{n}]\ntransport = \"local\"\ndeploy_path = \"{d}/nodes/{n}\"\nroles = [\"app\"]\n\n"));
        }
        let list = nodes
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        toml.push_str(&format!(
            "[environments.test]\nnodes = [{list}]\n{}\n\
             health = {{ run = \"curl -fsS --max-time 1 http://127.0.0.1:$(cat {{deploy_path}}/shared/port)/up\", timeout = \"2s\", interval = \"100ms\", retries = 30 }}\n\n",
            spec.env
        ));
        if spec.balancer {
            toml.push_str(&format!(
                "[environments.test.load_balancer]\nsocket = \"{}\"\nbackend = \"app\"\nvia = \"local\"\ntimeout = \"5s\"\ndrain_timeout = \"5s\"\n{}\n\n",
                haproxy.socket.display(),
                spec.balancer_extra
            ));
        }
        let app = app_script().display().to_string();
        toml.push_str(&format!(
            "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
             [[phases]]\nname = \"build\"\nrun = \"printf '%s\\\\n' {{release}} > {{release_path}}/VERSION; C='{d}/ctl'; if [ -e \\\"$C/hold-build-\\\"{{node}} ]; then echo $$ > \\\"$C/pid-build-\\\"{{node}}; sleep 30; fi\"\n\n\
             [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n\
             [[phases]]\nname = \"restart\"\ntimeout = \"20s\"\nrun = \"\"\"\n\
             D={{deploy_path}}; P=$(cat \"$D/shared/port\")\n\
             if [ -f \"$D/shared/app.pid\" ]; then kill $(cat \"$D/shared/app.pid\") 2>/dev/null; fi\n\
             sleep 0.4\n\
             setsid python3 '{app}' \"$P\" \"$D\" > /dev/null 2>&1 < /dev/null &\n\
             for i in $(seq 1 100); do curl -fsS --max-time 1 \"http://127.0.0.1:$P/up\" > /dev/null 2>&1 && exit 0; sleep 0.05; done\n\
             echo 'the app did not come back' >&2; exit 1\n\"\"\"\n"
        ));
        std::fs::write(dir.path().join("deckhand.toml"), toml).unwrap();
        std::fs::create_dir_all(dir.path().join("ctl")).unwrap();
        let f = LbFleet {
            dir,
            nodes,
            haproxy,
        };
        let names: Vec<&str> = f.nodes.iter().map(|(n, _)| n.as_str()).collect();
        f.haproxy.wait_up(&names);
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn node_dir(&self, n: &str) -> PathBuf {
        self.path().join("nodes").join(n)
    }
    pub fn inventory(&self) -> Arc<deckhand::inventory::Inventory> {
        Arc::new(
            deckhand::inventory::load(&self.path().join("deckhand.toml"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }
    pub fn current(&self, n: &str) -> Option<String> {
        std::fs::read_link(self.node_dir(n).join("current"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().to_string()))
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/version", self.haproxy.port)
    }
    pub fn options(&self) -> deckhand::engine::RunOptions {
        deckhand::engine::RunOptions {
            auto_promote: true,
            headless: true,
            journal_dir: None,
            who: "tester".into(),
            watch: None,
            ..Default::default()
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    /// Versions in the order they were first and last seen, e.g. v1, v2.
    pub sequence: Vec<String>,
    pub errors: Vec<String>,
}

impl LoadReport {
    pub fn count(&self, v: &str) -> usize {
        self.sequence.iter().filter(|s| *s == v).count()
    }
}

/// A bounded load loop through the balancer (at most `max` requests, one every 10 ms).
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<LoadReport>,
}

impl Load {
    pub fn start(url: String, max: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap();
            let mut r = LoadReport::default();
            for _ in 0..max {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                match client.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        r.ok += 1;
                        let v = resp.text().await.unwrap_or_default().trim().to_string();
                        if r.sequence.last() != Some(&v) {
                            r.sequence.push(v);
                        }
                    }
                    Ok(resp) => {
                        r.failed += 1;
                        if r.errors.len() < 5 {
                            r.errors.push(format!("HTTP {}", resp.status()));
                        }
                    }
                    Err(e) => {
                        r.failed += 1;
                        if r.errors.len() < 5 {
                            r.errors.push(e.to_string());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            r
        });
        Load { stop, task }
    }

    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}
