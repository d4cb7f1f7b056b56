//! A load-balanced fleet on loopback: local nodes (directories on this machine, `transport =
//! "local"`) each running the node app (`app.py --live`) on its own port, a real HAProxy in
//! front of them, and an inventory whose restart phase restarts the app with a deliberate gap
//! (so traffic that still reaches a restarting node fails, which the balancer driver must
//! prevent). Every app and HAProxy are stopped when the fleet is dropped, also when a test
//! panics, and also when the fleet fails to start. It drives nothing: tests run deckhand on it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use tempfile::TempDir;

use super::haproxy::Haproxy;
use super::local::{load_inventory, run_options};
use super::{free_port, node, procs, tools};

/// Nodes with real apps behind a real HAProxy.
pub struct LbFleet {
    // Dropped first: the apps go before their directories.
    apps: NodeApps,
    pub dir: TempDir,
    pub nodes: Vec<(String, u16)>,
    pub haproxy: Haproxy,
}

/// The nodes' apps: the ones this fixture started, and whichever a restart phase started since
/// (each node's `shared/app.pid` names it). All are killed on drop.
struct NodeApps {
    started: Vec<Child>,
    pid_files: Vec<PathBuf>,
}

impl Drop for NodeApps {
    fn drop(&mut self) {
        for f in &self.pid_files {
            procs::kill_pid_file(f);
        }
        for c in &mut self.started {
            let _ = c.kill();
            let _ = c.wait();
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
        let python = tools::python3();
        tools::curl();
        let dir = tempfile::Builder::new().prefix("dh-lb-").tempdir().unwrap();
        let d = dir.path().display().to_string();
        let app = node::app_py();
        let nodes: Vec<(String, u16)> = (1..=spec.nodes)
            .map(|i| (format!("web-{i}"), free_port()))
            .collect();
        let mut apps = NodeApps {
            started: Vec::new(),
            pid_files: Vec::new(),
        };
        // v1 live everywhere, apps running.
        for (n, port) in &nodes {
            let dp = dir.path().join("nodes").join(n);
            std::fs::create_dir_all(dp.join("releases/v1")).unwrap();
            std::fs::create_dir_all(dp.join("shared")).unwrap();
            std::fs::write(dp.join("releases/v1/VERSION"), "v1\n").unwrap();
            std::os::unix::fs::symlink("releases/v1", dp.join("current")).unwrap();
            std::fs::write(dp.join("shared/port"), port.to_string()).unwrap();
            let pid_file = dp.join("shared/app.pid");
            apps.pid_files.push(pid_file.clone());
            // In a session of its own, like the ones the restart phase starts.
            let child = Command::new("setsid")
                .arg(python)
                .arg(&app)
                .arg(port.to_string())
                .arg(&dp)
                .arg(&pid_file)
                .arg("--live")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the node app");
            apps.started.push(child);
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
        let app = app.display();
        // The restart leaves the port closed for 0.4 s on purpose: long enough for requests
        // that still reach the node to fail, shorter than HAProxy's own health check needs to
        // notice (inter 300ms, fall 2).
        toml.push_str(&format!(
            // A held build or restart sleeps; killing its sleep lets the step go on and succeed,
            // killing its shell (the pid it writes) fails it.
            "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
             [[phases]]\nname = \"build\"\nrun = \"printf '%s\\\\n' {{release}} > {{release_path}}/VERSION; C='{d}/ctl'; if [ -e \\\"$C/hold-build-\\\"{{node}} ]; then echo $$ > \\\"$C/pid-build-\\\"{{node}}; sleep 30 || :; fi\"\n\n\
             [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n\
             [[phases]]\nname = \"restart\"\ntimeout = \"20s\"\nrun = \"\"\"\n\
             C='{d}/ctl'; if [ -e \"$C/hold-restart-\"{{node}} ]; then echo $$ > \"$C/pid-restart-\"{{node}}; sleep 30 || :; fi\n\
             D={{deploy_path}}; P=$(cat \"$D/shared/port\")\n\
             if [ -f \"$D/shared/app.pid\" ]; then kill $(cat \"$D/shared/app.pid\") 2>/dev/null; fi\n\
             sleep 0.4\n\
             setsid {python} '{app}' \"$P\" \"$D\" \"$D/shared/app.pid\" --live > /dev/null 2>&1 < /dev/null &\n\
             for i in $(seq 1 100); do curl -fsS --max-time 1 \"http://127.0.0.1:$P/up\" > /dev/null 2>&1 && exit 0; sleep 0.05; done\n\
             echo 'the app did not come back' >&2; exit 1\n\"\"\"\n"
        ));
        std::fs::write(dir.path().join("deckhand.toml"), toml).unwrap();
        std::fs::create_dir_all(dir.path().join("ctl")).unwrap();
        let f = LbFleet {
            apps,
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
        load_inventory(&self.path().join("deckhand.toml"))
    }
    pub fn current(&self, n: &str) -> Option<String> {
        node::current(&self.node_dir(n))
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/version", self.haproxy.port)
    }
    /// Run options without a journal (see `local::run_options`).
    pub fn options(&self) -> deckhand::engine::RunOptions {
        run_options(None)
    }
}
