//! A fleet of local nodes for engine tests: directories on this machine with a real release
//! layout, driven through the real engine. Steps can be told to fail or to hang through files in
//! the fleet's `ctl/` directory, so a test decides per node what happens. Its `Fleet` and
//! `FleetSpec` are this fleet's (`support::local::Fleet`); `support::Fleet` is the sshd fleet.
//! It starts no server and no process of its own beyond the engine's steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deckhand::engine::{self, Control, Event, EventKind, Outcome, RunHandle, RunOptions};
use deckhand::inventory::{self, Inventory};
use tempfile::TempDir;

use super::node;

pub struct Fleet {
    pub dir: TempDir,
    pub nodes: Vec<String>,
}

pub struct FleetSpec {
    pub nodes: usize,
    pub batches: &'static str,
    pub on_failure: &'static str,
    pub max_fail: &'static str,
    pub pause_after_first: bool,
    pub keep_releases: u32,
    pub extra_phases: &'static str,
    /// Lines added to [environments.test].
    pub env_extra: String,
    /// TOML appended at the end (checks, other environments, …).
    pub extra_toml: String,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            nodes: 4,
            batches: "1",
            on_failure: "rollback",
            max_fail: "0%",
            pause_after_first: false,
            keep_releases: 5,
            extra_phases: "",
            env_extra: String::new(),
            extra_toml: String::new(),
        }
    }
}

impl Fleet {
    pub fn new(spec: FleetSpec) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("dh-fleet-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().display().to_string();
        let nodes: Vec<String> = (1..=spec.nodes).map(|i| format!("web-{i}")).collect();
        std::fs::create_dir_all(dir.path().join("ctl")).unwrap();
        let mut toml = format!(
            "[app]\nname = \"shop\"\ndeploy_path = \"{d}/nodes/default\"\nkeep_releases = {}\nshared_files = [\".env\"]\nshared_dirs = [\"storage\"]\n\n",
            spec.keep_releases
        );
        for (i, n) in nodes.iter().enumerate() {
            let roles = if i == 1 {
                "[\"app\", \"migrator\"]"
            } else {
                "[\"app\"]"
            };
            toml.push_str(&format!(
                "[nodes.{n}]\ntransport = \"local\"\ndeploy_path = \"{d}/nodes/{n}\"\nroles = {roles}\n\n"
            ));
        }
        let list = nodes
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        toml.push_str(&format!(
            "[environments.test]\nnodes = [{list}]\nbatches = {}\nmax_fail = \"{}\"\non_failure = \"{}\"\npause_after_first = {}\n{}\
             health = {{ run = \"grep -qx {{release}} {{deploy_path}}/current/REVISION\", timeout = \"2s\", interval = \"50ms\", retries = 2 }}\n\n",
            spec.batches, spec.max_fail, spec.on_failure, spec.pause_after_first, spec.env_extra
        ));
        // Each node step consults ctl/: fail-<phase>-<node> makes it fail, hold-<phase>-<node>
        // makes it write its pid and sleep, so tests can act while it runs.
        let step = |phase: &str| {
            format!(
                "C='{d}/ctl'; P={phase}; N={{node}}; \
                 if [ -e \\\"$C/fail-$P-$N\\\" ]; then echo \\\"$P failed on purpose\\\" >&2; exit 1; fi; \
                 if [ -e \\\"$C/hold-$P-$N\\\" ]; then echo $$ > \\\"$C/pid-$P-$N\\\"; sleep \\\"$(cat \\\"$C/hold-$P-$N\\\")\\\"; fi; \
                 echo \\\"$P done on $N\\\""
            )
        };
        toml.push_str(&format!(
            "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
             [[phases]]\nname = \"build\"\nrun = \"printf '%s\\\\n' {{release}} > {{release_path}}/REVISION; {}\"\ntimeout = \"1m\"\n\n\
             [[phases]]\nname = \"migrate\"\nonce = true\nroles = [\"migrator\"]\nrun = \"{}\"\n\n\
             [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n\
             [[phases]]\nname = \"restart\"\nrun = \"printf '%s\\\\n' {{release}} >> {{deploy_path}}/shared/restarts; {}\"\n\n\
             {}\n\
             [[phases]]\nname = \"cleanup\"\nstage = \"after\"\nbuiltin = \"cleanup\"\n",
            step("build"),
            step("migrate"),
            step("restart"),
            spec.extra_phases
        ));
        toml.push_str(&spec.extra_toml);
        std::fs::write(dir.path().join("deckhand.toml"), toml).unwrap();
        for n in &nodes {
            std::fs::create_dir_all(dir.path().join("nodes").join(n)).unwrap();
        }
        Fleet { dir, nodes }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn inventory_path(&self) -> PathBuf {
        self.path().join("deckhand.toml")
    }
    pub fn inventory(&self) -> Arc<Inventory> {
        load_inventory(&self.inventory_path())
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.path().join("nodes").join(node)
    }
    /// The release a node's `current` link points at.
    pub fn current(&self, node: &str) -> Option<String> {
        node::current(&self.node_dir(node))
    }
    pub fn releases(&self, node: &str) -> Vec<String> {
        node::releases(&self.node_dir(node))
    }
    pub fn locked(&self, node: &str) -> bool {
        node::locked(&self.node_dir(node))
    }
    pub fn history(&self, node: &str) -> Vec<serde_json::Value> {
        node::history(&self.node_dir(node))
    }
    pub fn ctl(&self, name: &str, content: &str) {
        std::fs::write(self.path().join("ctl").join(name), content).unwrap();
    }
    pub fn journal_dir(&self) -> PathBuf {
        self.path().join("journal")
    }
    pub fn options(&self) -> RunOptions {
        run_options(Some(self.journal_dir()))
    }

    pub fn start(&self, release: &str, opts: RunOptions) -> RunHandle {
        self.start_env("test", release, opts)
    }

    pub fn start_env(&self, env: &str, release: &str, opts: RunOptions) -> RunHandle {
        let inv = self.inventory();
        let plan = deckhand::plan::build(&inv, env, release).expect("plan");
        engine::spawn_deploy(inv, plan, opts).expect("spawn")
    }

    /// Deploy to the end and return the outcome and every event.
    pub async fn deploy(&self, release: &str) -> (Outcome, Vec<Event>) {
        finish(self.start(release, self.options())).await
    }
}

/// An inventory file loaded the way deckhand loads it; a test fails with the loader's message
/// when it does not load.
pub fn load_inventory(path: &Path) -> Arc<Inventory> {
    Arc::new(inventory::load(path).unwrap_or_else(|e| panic!("{e}")))
}

/// How the tests run the engine: headless, promoting by itself, as operator "tester", with its
/// journal in `journal_dir` (none: no journal).
pub fn run_options(journal_dir: Option<PathBuf>) -> RunOptions {
    RunOptions {
        auto_promote: true,
        headless: true,
        journal_dir,
        who: "tester".into(),
        watch: None,
        ..Default::default()
    }
}

/// Collect a run's events until it ends.
pub async fn finish(mut h: RunHandle) -> (Outcome, Vec<Event>) {
    let mut events = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(60), h.events.recv())
        .await
        .expect("run stalled")
    {
        events.push(e);
    }
    (h.done.await.expect("engine task"), events)
}

/// Read events until one matches; returns everything read so far (the match last).
pub async fn until(h: &mut RunHandle, seen: &mut Vec<Event>, pred: impl Fn(&EventKind) -> bool) {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), h.events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("run ended before the awaited event");
        let hit = pred(&e.kind);
        seen.push(e);
        if hit {
            return;
        }
    }
}

/// Read events for `within` and return the first that matches, if any: `None` proves that
/// nothing of the kind happened in that time (a gate or a pause holds).
pub async fn next_within(
    h: &mut RunHandle,
    within: Duration,
    pred: impl Fn(&EventKind) -> bool,
) -> Option<Event> {
    tokio::time::timeout(within, async {
        loop {
            match h.events.recv().await {
                Some(e) if pred(&e.kind) => return e,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .ok()
}

pub fn step_started(node: &str, phase: &str) -> impl Fn(&EventKind) -> bool {
    let (n, p) = (node.to_string(), phase.to_string());
    move |k| matches!(k, EventKind::StepStarted { node: Some(x), phase: y, .. } if *x == n && *y == p)
}

pub fn send(h: &RunHandle, c: Control) {
    h.controls.send(c).expect("engine listening");
}
