//! Synthetic event sequences for the console's snapshot tests, screenshots and benchmark:
//! each scene is a list of engine events, fed through the same reducer a live run uses.
//!
//! Test data only: compiled for the crate's own unit tests and with the `fixtures` feature (which
//! the package's dev-dependency on itself turns on for integration tests, benches and examples);
//! never part of the library a user builds.

use crate::event::{
    CheckInfo, CheckStatus, Event, EventKind, NodeInfo, NodeRelease, NodeState, Outcome, RunKind,
    StepResult, Stream,
};

use super::app::{App, Focus};
use super::home::Home;
use super::input::{self, perform};
use super::keys::{Action, Key};
use super::model::Drawn;
use super::theme::{Glyphs, Theme};
use crate::engine::remote::{HistoryEntry, LockInfo, NodeProgress, Progress};
use crate::engine::status::NodeStatus;
use crate::fleet::FleetNews;

pub const FROM: &str = "v1.0";
pub const TO: &str = "v1.1";
/// The start of every scene's clock (2026-01-01 09:00:00 UTC).
pub const T0: i64 = 1_767_258_000_000;

pub const PHASES: &[&str] = &[
    "drain",
    "release",
    "pull_latest_code",
    "install_dependencies",
    "run_migrations",
    "build_assets",
    "switch",
    "restart_services",
    "health",
    "enable",
];

/// The seed's post-deploy checklist: (name, window, kind, manual, per node).
pub const CHECKS: &[(&str, &str, &str, bool, bool)] = &[
    (
        "Health endpoint responding",
        "immediate",
        "health",
        false,
        true,
    ),
    (
        "Database connections stable",
        "immediate",
        "health",
        false,
        false,
    ),
    (
        "Queue workers processing",
        "immediate",
        "health",
        false,
        false,
    ),
    ("No 500 errors in logs", "immediate", "errors", false, false),
    (
        "Response times < 500ms",
        "immediate",
        "performance",
        false,
        false,
    ),
    ("Error rate < 0.1%", "short", "errors", false, false),
    (
        "All critical paths tested",
        "short",
        "critical",
        true,
        false,
    ),
    ("Memory usage stable", "short", "performance", false, false),
    ("No spike in failed jobs", "short", "errors", false, false),
    (
        "External API connections OK",
        "short",
        "critical",
        false,
        false,
    ),
    (
        "No memory leaks detected",
        "long",
        "performance",
        false,
        false,
    ),
    (
        "Database query performance normal",
        "long",
        "performance",
        false,
        false,
    ),
    (
        "Cache hit rates normal",
        "long",
        "performance",
        false,
        false,
    ),
    ("Customer complaints = 0", "long", "critical", true, false),
    ("Business metrics tracking", "long", "info", true, false),
];

/// Builds an event stream with increasing `seq` and a clock that moves forward.
pub struct Script {
    pub events: Vec<Event>,
    pub at: i64,
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

impl Script {
    pub fn new() -> Script {
        Script {
            events: Vec::new(),
            at: T0,
        }
    }

    pub fn push(&mut self, kind: EventKind) -> &mut Self {
        self.events.push(Event {
            seq: self.events.len() as u64 + 1,
            at_ms: self.at,
            kind,
        });
        self
    }

    pub fn wait(&mut self, ms: i64) -> &mut Self {
        self.at += ms;
        self
    }

    pub fn state(&mut self, node: &str, state: NodeState) -> &mut Self {
        self.push(EventKind::NodeState {
            node: node.into(),
            state,
        })
    }

    pub fn rotation(&mut self, node: &str, in_rotation: bool) -> &mut Self {
        self.push(EventKind::Rotation {
            node: node.into(),
            in_rotation,
        })
    }

    pub fn release(&mut self, node: &str, release: &str) -> &mut Self {
        self.push(EventKind::NodeRelease {
            node: node.into(),
            release: Some(release.into()),
        })
    }

    pub fn step(
        &mut self,
        node: &str,
        phase: &str,
        result: StepResult,
        ms: u64,
        line: Option<&str>,
    ) -> &mut Self {
        self.push(EventKind::StepStarted {
            node: Some(node.into()),
            phase: phase.into(),
            command: None,
        });
        if let Some(l) = line {
            self.wait(ms as i64 / 2);
            self.push(EventKind::Output {
                node: Some(node.into()),
                phase: phase.into(),
                stream: Stream::Stdout,
                line: l.into(),
            });
            self.wait(ms as i64 - ms as i64 / 2);
        } else {
            self.wait(ms as i64);
        }
        self.push(EventKind::StepFinished {
            node: Some(node.into()),
            phase: phase.into(),
            result,
            duration_ms: ms,
            message: match result {
                StepResult::Ok | StepResult::Skipped => None,
                StepResult::TimedOut => Some("no answer after 30s".into()),
                _ => Some("exit status 1".into()),
            },
        })
    }

    pub fn begin(&mut self, node: &str, phase: &str) -> &mut Self {
        self.push(EventKind::StepStarted {
            node: Some(node.into()),
            phase: phase.into(),
            command: None,
        })
    }

    pub fn output(&mut self, node: &str, phase: &str, line: &str) -> &mut Self {
        self.push(EventKind::Output {
            node: Some(node.into()),
            phase: phase.into(),
            stream: Stream::Stdout,
            line: line.into(),
        })
    }

    /// A node read before anything changes: reachable, serving [`FROM`] (v0.9 before it).
    pub fn preflight(&mut self, node: &str) -> &mut Self {
        self.push(EventKind::Preflight {
            node: node.into(),
            ok: true,
            live_release: Some(FROM.into()),
            previous_release: Some("v0.9".into()),
            message: None,
        })
    }

    pub fn check(
        &mut self,
        name: &str,
        node: Option<&str>,
        status: CheckStatus,
        value: Option<&str>,
    ) -> &mut Self {
        self.push(EventKind::Check {
            name: name.into(),
            node: node.map(String::from),
            status,
            value: value.map(String::from),
        })
    }

    /// A node's update from drain up to its health check: every phase ok, the switch read back.
    pub fn update_until_health(&mut self, node: &str) -> &mut Self {
        self.state(node, NodeState::Draining).rotation(node, false);
        self.state(node, NodeState::Updating);
        for p in PHASES
            .iter()
            .filter(|p| !matches!(**p, "drain" | "enable" | "health"))
        {
            let line = sample_line(p);
            self.step(node, p, StepResult::Ok, phase_ms(p), line);
            if *p == "switch" {
                self.release(node, TO);
            }
        }
        self.state(node, NodeState::Checking)
    }

    /// A whole node's update, from drain to back in rotation.
    pub fn update_node(&mut self, node: &str) -> &mut Self {
        self.update_until_health(node);
        self.step(
            node,
            "health",
            StepResult::Ok,
            900,
            Some("GET /health 200 in 182 ms"),
        );
        self.state(node, NodeState::Enabling).rotation(node, true);
        self.state(node, NodeState::Done)
    }

    /// The console after these events, its clock at the script's last moment.
    pub fn into_app(&self) -> App {
        let mut app = App::new(Theme::default_theme(), Glyphs::UNICODE);
        for e in &self.events {
            app.apply(e);
        }
        app.now_ms = self.at;
        app
    }
}

fn sample_line(phase: &str) -> Option<&'static str> {
    Some(match phase {
        "release" => "releases/20260101090000 created",
        "pull_latest_code" => "HEAD is now at 4f2a9c1 Release v1.1",
        "install_dependencies" => "Generating optimized autoload files",
        "run_migrations" => "Nothing to migrate.",
        "build_assets" => "built in 2.41s",
        "switch" => "current -> releases/20260101090000",
        "restart_services" => "php-fpm reloaded",
        _ => return None,
    })
}

fn phase_ms(phase: &str) -> u64 {
    match phase {
        "install_dependencies" => 6_400,
        "build_assets" => 3_100,
        "run_migrations" => 1_200,
        _ => 400,
    }
}

pub fn node_names(n: usize) -> Vec<String> {
    let width = if n >= 100 { 3 } else { 1 };
    (1..=n).map(|i| format!("web-{i:0width$}")).collect()
}

/// The first event of a scene's run.
pub fn started(nodes: usize, protected: bool, with_checks: bool) -> EventKind {
    let names = node_names(nodes);
    let batches: Vec<Vec<String>> = if nodes > 40 {
        names.chunks(10).map(|c| c.to_vec()).collect()
    } else {
        std::iter::once(vec![names[0].clone()])
            .chain(names[1..].chunks(2).map(|c| c.to_vec()))
            .collect()
    };
    EventKind::Started {
        deployment: "20260101-090000-a1b2".into(),
        kind: RunKind::Deploy,
        app: "askproai".into(),
        env: if protected {
            "production".into()
        } else {
            "staging".into()
        },
        release: TO.into(),
        strategy: "rolling".into(),
        who: "maria".into(),
        from_host: "ops-laptop".into(),
        nodes: names
            .iter()
            .enumerate()
            .map(|(i, n)| NodeInfo {
                name: n.clone(),
                host: format!("10.0.{}.{}", i / 250, 10 + i % 250),
                transport: "ssh".into(),
                roles: vec!["web".into()],
            })
            .collect(),
        batches,
        gates: vec![0],
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        protected,
        balancer: true,
        journal: None,
        checks: if with_checks {
            CHECKS
                .iter()
                .map(|(name, window, kind, manual, per_node)| CheckInfo {
                    name: (*name).into(),
                    window: (*window).into(),
                    kind: (*kind).into(),
                    manual: *manual,
                    per_node: *per_node,
                })
                .collect()
        } else {
            Vec::new()
        },
        windows: vec![],
    }
}

/// Start, preflight and lock on every node.
pub fn opening(nodes: usize, protected: bool) -> Script {
    let mut s = Script::new();
    s.push(started(nodes, protected, true));
    for n in node_names(nodes) {
        s.preflight(&n).rotation(&n, true);
    }
    s.push(EventKind::Locked {
        deployment: "20260101-090000-a1b2".into(),
    });
    s
}

/// Five nodes opened; the first batch (web-1) updated and back in rotation.
fn first_batch_done(protected: bool) -> Script {
    let mut s = opening(5, protected);
    s.push(EventKind::BatchStarted {
        index: 0,
        nodes: vec!["web-1".into()],
    });
    s.update_node("web-1");
    s
}

/// The first batch done and web-1's health endpoint checked.
fn first_batch_checked(protected: bool) -> Script {
    let mut s = first_batch_done(protected);
    s.check(
        "Health endpoint responding",
        Some("web-1"),
        CheckStatus::Pass,
        Some("182 ms"),
    );
    s
}

/// Node 1 done, node 2 drained and updating, the others waiting.
pub fn mid_rollout() -> Script {
    rollout_at_node_2(false)
}

/// [`mid_rollout`] in a protected environment (`production`).
pub fn protected_mid_rollout() -> Script {
    rollout_at_node_2(true)
}

fn rollout_at_node_2(protected: bool) -> Script {
    let mut s = first_batch_checked(protected);
    s.push(EventKind::Gate {
        reason: "first batch done".into(),
        until_ms: None,
    });
    s.wait(4_000);
    s.push(EventKind::Promoted);
    s.push(EventKind::BatchStarted {
        index: 1,
        nodes: vec!["web-2".into(), "web-3".into()],
    });
    s.state("web-2", NodeState::Draining)
        .rotation("web-2", false);
    s.state("web-2", NodeState::Updating);
    s.step(
        "web-2",
        "release",
        StepResult::Ok,
        400,
        sample_line("release"),
    );
    s.step(
        "web-2",
        "pull_latest_code",
        StepResult::Ok,
        1_300,
        sample_line("pull_latest_code"),
    );
    s.begin("web-2", "install_dependencies");
    s.wait(2_000);
    s.output(
        "web-2",
        "install_dependencies",
        "Installing dependencies from lock file (112 packages)",
    );
    s.wait(1_200);
    s
}

pub fn paused() -> Script {
    let mut s = mid_rollout();
    s.push(EventKind::Pausing);
    s.wait(3_200);
    s.step("web-2", "install_dependencies", StepResult::Ok, 0, None);
    s.push(EventKind::Paused);
    s.wait(5_000);
    s
}

pub fn gate() -> Script {
    let mut s = first_batch_checked(false);
    s.check(
        "No 500 errors in logs",
        None,
        CheckStatus::Pass,
        Some("0 in 5 min"),
    );
    s.push(EventKind::Gate {
        reason: "after batch 1 of 3 (pause_after_first)".into(),
        until_ms: None,
    });
    s.wait(2_500);
    s
}

pub fn rolling_back() -> Script {
    let mut s = mid_rollout();
    s.push(EventKind::RollbackStarted {
        reason: "the operator asked for a rollback".into(),
        nodes: vec!["web-1".into(), "web-2".into()],
    });
    s.step(
        "web-2",
        "install_dependencies",
        StepResult::Killed,
        100,
        None,
    );
    s.rotation("web-2", true)
        .state("web-2", NodeState::RolledBack);
    s.state("web-1", NodeState::RollingBack)
        .rotation("web-1", false);
    s.begin("web-1", "switch");
    s.wait(700);
    s
}

pub fn rolled_back() -> Script {
    let mut s = rolling_back();
    s.release("web-1", FROM);
    s.push(EventKind::StepFinished {
        node: Some("web-1".into()),
        phase: "switch".into(),
        result: StepResult::Ok,
        duration_ms: 700,
        message: None,
    });
    s.rotation("web-1", true)
        .state("web-1", NodeState::RolledBack);
    s.push(EventKind::Unlocked {
        deployment: "20260101-090000-a1b2".into(),
    });
    s.push(EventKind::Finished {
        outcome: Outcome::RolledBack,
        message: "every node is back on v1.0".into(),
        nodes: node_names(5)
            .into_iter()
            .map(|n| NodeRelease {
                node: n,
                release: Some(FROM.into()),
            })
            .collect(),
    });
    s
}

/// Every node on the new release; the run's last events say where its time went.
pub fn done() -> Script {
    // An environment without a checklist: the run ends when the last node is back.
    let mut s = Script::new();
    s.push(started(5, false, false));
    for n in node_names(5) {
        s.preflight(&n).rotation(&n, true);
    }
    s.push(EventKind::Locked {
        deployment: "20260101-090000-a1b2".into(),
    });
    for (i, batch) in [
        vec!["web-1"],
        vec!["web-2", "web-3"],
        vec!["web-4", "web-5"],
    ]
    .iter()
    .enumerate()
    {
        s.push(EventKind::BatchStarted {
            index: i,
            nodes: batch.iter().map(|n| n.to_string()).collect(),
        });
        for n in batch {
            s.update_node(n);
        }
    }
    s.push(EventKind::Unlocked {
        deployment: "20260101-090000-a1b2".into(),
    });
    s.push(EventKind::Timing(crate::event::TimeReport {
        wall_ms: 66_400,
        preflight_ms: 1_900,
        steps_ms: 48_200,
        waiting_ms: 12_600,
        overhead_ms: 5_600,
        link_ms: 1_300,
        slowest_phases: vec![crate::event::Slow {
            name: "install_dependencies".into(),
            ms: 32_000,
        }],
        slowest_nodes: vec![crate::event::Slow {
            name: "web-3".into(),
            ms: 14_900,
        }],
    }));
    s.push(EventKind::Finished {
        outcome: Outcome::Deployed,
        message: "v1.1 is live on every node".into(),
        nodes: node_names(5)
            .into_iter()
            .map(|n| NodeRelease {
                node: n,
                release: Some(TO.into()),
            })
            .collect(),
    });
    s
}

/// Step mode: paused, then one step asked; web-2 runs its next phase.
pub fn stepping() -> Script {
    let mut s = paused();
    s.push(EventKind::Stepping);
    s.begin("web-2", "run_migrations");
    s.wait(600);
    s
}

pub fn failed_node() -> Script {
    let mut s = first_batch_done(false);
    s.push(EventKind::Promoted);
    s.push(EventKind::BatchStarted {
        index: 1,
        nodes: vec!["web-2".into(), "web-3".into()],
    });
    s.update_node("web-2");
    s.update_until_health("web-3");
    s.begin("web-3", "health");
    s.output("web-3", "health", "GET /health 503 Service Unavailable");
    s.wait(30_000);
    s.push(EventKind::StepFinished {
        node: Some("web-3".into()),
        phase: "health".into(),
        result: StepResult::TimedOut,
        duration_ms: 30_000,
        message: Some("GET /health answered 503 for 30s".into()),
    });
    s.state("web-3", NodeState::Failed);
    s.check(
        "Health endpoint responding",
        Some("web-1"),
        CheckStatus::Pass,
        Some("182 ms"),
    );
    s.check(
        "Health endpoint responding",
        Some("web-2"),
        CheckStatus::Pass,
        Some("175 ms"),
    );
    s.check(
        "Health endpoint responding",
        Some("web-3"),
        CheckStatus::Fail,
        Some("503"),
    );
    s.push(EventKind::Gate {
        reason: "web-3 failed its health check".into(),
        until_ms: None,
    });
    s.wait(1_000);
    s
}

pub fn checklist_mixed() -> Script {
    let mut s = opening(5, false);
    for (i, n) in node_names(5).iter().enumerate() {
        s.push(EventKind::BatchStarted {
            index: i.min(2),
            nodes: vec![n.clone()],
        });
        s.update_node(n);
    }
    for n in node_names(5) {
        s.check(
            "Health endpoint responding",
            Some(&n),
            CheckStatus::Pass,
            Some("182 ms"),
        );
    }
    s.check(
        "Database connections stable",
        None,
        CheckStatus::Pass,
        Some("12/100 in use"),
    );
    s.check(
        "Queue workers processing",
        None,
        CheckStatus::Pass,
        Some("4 workers, 0 stuck"),
    );
    s.check(
        "No 500 errors in logs",
        None,
        CheckStatus::Fail,
        Some("3 in 5 min"),
    );
    s.check(
        "Response times < 500ms",
        None,
        CheckStatus::Pass,
        Some("p95 182 ms"),
    );
    s.check("Error rate < 0.1%", None, CheckStatus::Pass, Some("0.02 %"));
    s.check("Memory usage stable", None, CheckStatus::Running, None);
    s.check(
        "External API connections OK",
        None,
        CheckStatus::Unknown,
        Some("timeout after 5s"),
    );
    s.push(EventKind::Monitoring {
        window: "short".into(),
        ends_at_ms: s.at + 25 * 60_000,
    });
    s.push(EventKind::Decision {
        verdict: "alert".into(),
        reason: "No 500 errors in logs failed (3 in 5 min): below the rollback threshold, watching"
            .into(),
    });
    s.wait(64_000);
    s
}

/// `count` nodes: a third done, a few in flight and drained, one failed, the rest waiting.
pub fn large_fleet(count: usize) -> Script {
    let mut s = Script::new();
    s.push(started(count, false, true));
    let names = node_names(count);
    for n in &names {
        s.preflight(n).rotation(n, true);
    }
    s.push(EventKind::Locked {
        deployment: "20260101-090000-a1b2".into(),
    });
    let done = count / 3;
    s.push(EventKind::BatchStarted {
        index: done / 10,
        nodes: names[done..(done + 10).min(count)].to_vec(),
    });
    for n in &names[..done] {
        s.state(n, NodeState::Done).release(n, TO);
    }
    for (k, n) in names[done..(done + 4).min(count)].iter().enumerate() {
        s.state(n, NodeState::Draining).rotation(n, false);
        if k > 0 {
            s.state(n, NodeState::Updating);
            s.begin(n, "build_assets");
        }
    }
    if count > done + 5 {
        let n = &names[done + 4];
        s.state(n, NodeState::Failed).release(n, TO);
    }
    s.wait(754_000);
    s
}

/// The app for a scene, with screen state set the way the scene shows it.
pub fn scene(name: &str) -> Option<App> {
    let mut app = match name {
        "before-start" => {
            let mut s = Script::new();
            s.push(started(5, false, true));
            for n in node_names(5) {
                s.preflight(&n);
            }
            s.into_app()
        }
        "mid-rollout" => mid_rollout().into_app(),
        "paused" => paused().into_app(),
        "gate" => gate().into_app(),
        "rollback-confirm" => {
            let mut app = protected_mid_rollout().into_app();
            for c in "Rproduc".chars() {
                let key = Key {
                    code: crossterm::event::KeyCode::Char(c),
                    ctrl: false,
                };
                input::handle_key(&mut app, key, &Drawn::default());
            }
            app
        }
        "rolling-back" => rolling_back().into_app(),
        "rolled-back" => rolled_back().into_app(),
        "failed-node" => {
            let mut app = failed_node().into_app();
            app.selected = 2;
            app
        }
        "checklist" => {
            let mut app = checklist_mixed().into_app();
            app.focus = Focus::Checklist;
            app.selected_check = 6;
            app
        }
        "help" => {
            let mut app = mid_rollout().into_app();
            app.show_help = true;
            app
        }
        "output" => {
            let mut app = failed_node().into_app();
            app.selected = 2;
            // At the gate enter promotes; open the output directly for the picture.
            perform(&mut app, &Drawn::default(), Action::OpenOutput);
            app
        }
        "large-fleet" => {
            let mut app = large_fleet(120).into_app();
            app.selected = 41;
            app
        }
        "done" => {
            let mut app = done().into_app();
            app.from_home = true;
            app
        }
        "stepping" => {
            let mut app = stepping().into_app();
            app.selected = 1;
            app
        }
        "watching" => {
            let mut app = App::new(Theme::default_theme(), Glyphs::UNICODE);
            app.watch = Some("production (no deployment yet)".into());
            for e in &mid_rollout().events {
                app.apply(e);
            }
            app.now_ms = mid_rollout().at;
            app.selected = 1;
            app
        }
        _ => return None,
    };
    app.frame = 3;
    Some(app)
}

/// Every scene name, in the order the screenshots use.
pub const SCENES: &[&str] = &[
    "before-start",
    "mid-rollout",
    "paused",
    "gate",
    "rollback-confirm",
    "rolling-back",
    "rolled-back",
    "failed-node",
    "checklist",
    "help",
    "output",
    "large-fleet",
    "done",
    "stepping",
    "watching",
];

// ------------------------------------------------------------------------------------ home

/// A node as the home screen's read found it.
pub fn node_status(name: &str, host: &str, live: &str, releases: &[&str]) -> NodeStatus {
    let mut s = NodeStatus::new(name, host.into());
    s.reachable = true;
    s.live_release = Some(live.into());
    s.releases = releases.iter().map(|r| r.to_string()).collect();
    s.previous_release = releases.iter().find(|r| **r != live).map(|r| r.to_string());
    s
}

fn line(
    id: &str,
    kind: &str,
    release: &str,
    from: Option<&str>,
    at: &str,
    result: &str,
    env: &str,
) -> HistoryEntry {
    HistoryEntry {
        from: from.map(String::from),
        env: Some(env.into()),
        host: Some("ops-laptop".into()),
        run: Some("deploy".into()),
        ..HistoryEntry::new(id, kind, release, "maria", at, result)
    }
}

/// An inventory of `envs` environments of `per_env` nodes each (text, for the home scenes).
pub fn inventory_text(envs: &[(&str, usize, bool, Option<&str>)]) -> String {
    let mut t = String::from("[app]\nname = \"askproai\"\ndeploy_path = \"/var/www/askproai\"\n\n");
    let mut k = 0usize;
    let mut envs_text = String::new();
    for (env, n, protected, requires) in envs {
        let mut names = Vec::new();
        for i in 1..=*n {
            k += 1;
            let name = format!("{env}-{i}");
            t.push_str(&format!(
                "[nodes.{name}]\nhost = \"10.0.{}.{}\"\n",
                k / 250,
                10 + k % 250
            ));
            names.push(format!("\"{name}\""));
        }
        envs_text.push_str(&format!(
            "[environments.{env}]\nnodes = [{}]\nprotected = {protected}\n{}\n",
            names.join(", "),
            requires
                .map(|r| format!("requires = \"{r}\"\n"))
                .unwrap_or_default()
        ));
    }
    t.push('\n');
    t.push_str(&envs_text);
    t.push_str("[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n[[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n");
    t
}

fn home_for(text: &str) -> Home {
    let inv = crate::inventory::load_str(
        std::path::Path::new("/etc/deckhand/deckhand.toml"),
        text,
        &|_| None,
    )
    .expect("the scene's inventory");
    let mut h = Home::new(&inv, Theme::default_theme(), Glyphs::UNICODE);
    h.set_journal_dir(std::path::PathBuf::from("/nonexistent"));
    h.set_clock(T0 + 3 * 3_600_000);
    h
}

/// The home screen's scenes: `home` (three environments, a run in progress, an unreachable
/// node, history), `home-history` (the history pane selected), `home-rollback` (the dialog),
/// `home-first-paint` (200 nodes in 8 environments, before any node answered).
pub fn home_scene(name: &str) -> Option<Home> {
    if name == "home-first-paint" {
        let envs: Vec<(String, usize)> = (1..=8).map(|i| (format!("env{i}"), 25)).collect();
        let spec: Vec<(&str, usize, bool, Option<&str>)> = envs
            .iter()
            .map(|(e, n)| (e.as_str(), *n, false, None))
            .collect();
        return Some(home_for(&inventory_text(&spec)));
    }
    let mut h = home_for(&inventory_text(&[
        ("staging", 2, false, None),
        ("production", 4, true, Some("staging")),
        ("canary", 1, false, None),
    ]));
    let at = |h: u32, m: u32| format!("2026-01-01T{h:02}:{m:02}:00+00:00");
    let d1 = "20260101T063000Z-1a2b";
    let d2 = "20260101T070500Z-3c4d";
    let d3 = "20260101T080000Z-5e6f";
    for i in 1..=4 {
        let name = format!("production-{i}");
        let mut s = node_status(
            &name,
            &format!("10.0.0.{}", 12 + i),
            "v1.1",
            &["v1.1", "v1.0", "v0.9"],
        );
        let mut hist = vec![
            line(
                d1,
                "deploy",
                "v1.1",
                Some("v1.0"),
                &at(6, 31 + i),
                "ok",
                "production",
            ),
            HistoryEntry {
                started: Some(at(6, 30)),
                ..line(
                    d1,
                    "finished",
                    "v1.1",
                    None,
                    &at(6, 36),
                    "deployed",
                    "production",
                )
            },
        ];
        if i == 1 {
            hist.push(line(
                d2,
                "deploy",
                "v1.2",
                Some("v1.1"),
                &at(7, 6),
                "ok",
                "production",
            ));
            hist.push(line(
                d2,
                "rollback",
                "v1.1",
                Some("v1.2"),
                &at(7, 9),
                "ok",
                "production",
            ));
        }
        if i == 2 {
            hist.push(line(
                d2,
                "deploy",
                "v1.2",
                Some("v1.1"),
                &at(7, 8),
                "failed",
                "production",
            ));
        }
        hist.push(HistoryEntry {
            started: Some(at(7, 5)),
            failed: vec!["production-2".into()],
            ..line(
                d2,
                "finished",
                "v1.2",
                None,
                &at(7, 10),
                "rolled back",
                "production",
            )
        });
        s.history = hist;
        if i == 4 {
            s = NodeStatus::new(&name, "10.0.0.16".into());
            s.error = Some(
                "ssh: connect to host 10.0.0.16 port 22: Connection timed out (waited 10s)".into(),
            );
        }
        h.apply(FleetNews::Node(Box::new(s)));
    }
    h.apply(FleetNews::Rotation {
        env: "production".into(),
        result: Ok(std::collections::BTreeMap::from([
            ("production-1".to_string(), true),
            ("production-2".to_string(), true),
            ("production-3".to_string(), true),
        ])),
    });
    // Staging: a deployment of v1.2 in progress, batch 2 of 2.
    for i in 1..=2 {
        let name = format!("staging-{i}");
        let live = if i == 1 { "v1.2" } else { "v1.1" };
        let mut s = node_status(
            &name,
            &format!("10.0.1.{}", 10 + i),
            live,
            &["v1.2", "v1.1", "v1.0"],
        );
        s.locked = true;
        s.lock_age_s = Some(4);
        s.lock = Some(LockInfo {
            id: d3.into(),
            who: "ann".into(),
            host: "jump-1".into(),
            pid: 4242,
            at: at(8, 0),
            env: "staging".into(),
            release: "v1.2".into(),
        });
        s.progress = Some(Progress {
            id: d3.into(),
            kind: "deploy".into(),
            state: "deploying".into(),
            batch: Some(2),
            batches: 2,
            done: 1,
            total: 2,
            nodes: vec![NodeProgress {
                node: "staging-2".into(),
                state: "updating".into(),
                phase: Some("switch".into()),
            }],
            at_ms: T0,
        });
        s.history = vec![line(
            d3,
            "deploy",
            "v1.2",
            Some("v1.1"),
            &at(8, 2),
            "ok",
            "staging",
        )]
        .into_iter()
        .filter(|_| i == 1)
        .collect();
        h.apply(FleetNews::Node(Box::new(s)));
    }
    // Canary: a lock left by a console that died.
    let mut s = node_status("canary-1", "10.0.2.11", "v1.0", &["v1.0", "v0.9"]);
    s.locked = true;
    s.lock_age_s = Some(12 * 60 + 5);
    s.lock = Some(LockInfo {
        id: "20260101T084800Z-7a8b".into(),
        who: "bob".into(),
        host: "bob-laptop".into(),
        pid: 777,
        at: at(8, 48),
        env: "canary".into(),
        release: "v1.1".into(),
    });
    h.apply(FleetNews::Node(Box::new(s)));
    h.apply(FleetNews::Done);
    h.select_env(1);
    match name {
        "home" => {}
        "home-history" => {
            h.pane = crate::ui::home::Pane::History;
            h.selected_history = 0;
        }
        "home-rollback" => {
            crate::ui::home::handle_key(
                &mut h,
                Key {
                    code: crossterm::event::KeyCode::Char('R'),
                    ctrl: false,
                },
            );
            for c in "produc".chars() {
                crate::ui::home::handle_key(
                    &mut h,
                    Key {
                        code: crossterm::event::KeyCode::Char(c),
                        ctrl: false,
                    },
                );
            }
        }
        _ => return None,
    }
    Some(h)
}

/// Every home scene, in the order the screenshots use.
pub const HOME_SCENES: &[&str] = &["home", "home-history", "home-rollback", "home-first-paint"];
