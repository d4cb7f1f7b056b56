//! The random fault campaign: one real fleet (three sshd nodes with their apps, the third reached
//! through the bastion, HAProxy in front of the apps, a steady load through HAProxy), and rounds
//! that each deploy a new release, inject one fault at a random moment, recover the way the README
//! tells an operator to, and check the invariants against the real components. Every violation is
//! collected and printed with its seed, round, fault, moment and the command that replays it; the
//! test fails at the end if there was any.
//!
//! Short form (the default, in `scripts/test.sh`): a fixed seed, one round per fault kind.
//! Long form: `DECKHAND_CAMPAIGN_ROUNDS=200 [DECKHAND_CAMPAIGN_SEED=S]` (`scripts/bench.sh
//! campaign`). One round alone: `DECKHAND_CAMPAIGN_ROUND=k` with the seed (and rounds) it ran with.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use support::faults::{kill_sessions, signal, Fault, Frozen, Rng, Tmpfs};
use support::haproxy::Haproxy;
use support::http::{http_get, Load, LoadReport};
use support::{processes, wait, Fleet, FleetSpec};

/// The short form's seed.
const SHORT_SEED: u64 = 20_261_202;
/// `keep_releases` of the campaign's inventory (small, so cleanup has work every round).
const KEEP: usize = 3;
/// How long one command may run before the round calls it hung.
const HANG: Duration = Duration::from_secs(120);
/// After HAProxy comes back, how long failed requests still count as the restart's own: its
/// servers come back UP by default, and a node a restarted HAProxy forgot it had drained gets
/// traffic until two health checks (300 ms apart) fail or deckhand drains it again.
const HAPROXY_GRACE: Duration = Duration::from_millis(1500);

const NODES: usize = 3;
/// Fault moments are drawn in 0..=this after the deploy starts: a little less than an
/// undisturbed deploy of the three nodes takes here (1.2 s on 2 cores, debug or release, since
/// steps run through each node's long-lived shell), so that most faults land in a running
/// deploy. A constant, so a round replays with the same moment on any machine.
const MOMENT_MAX_MS: u64 = 1100;

struct Settings {
    seed: u64,
    rounds: u64,
    /// Only this round (a replay).
    only: Option<u64>,
    /// The short form draws each kind in turn, so that a handful of rounds covers them all.
    round_robin: bool,
    /// `DECKHAND_CAMPAIGN_FAULT=N` (an index into `Fault::ALL`): every round injects that kind,
    /// to hunt one fault's violations (moments and the rest are still drawn from the seed).
    only_fault: Option<Fault>,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

fn settings() -> Settings {
    let rounds = env_u64("DECKHAND_CAMPAIGN_ROUNDS");
    Settings {
        seed: env_u64("DECKHAND_CAMPAIGN_SEED").unwrap_or(SHORT_SEED),
        round_robin: rounds.is_none(),
        rounds: rounds.unwrap_or(Fault::ALL.len() as u64),
        only: env_u64("DECKHAND_CAMPAIGN_ROUND"),
        only_fault: env_u64("DECKHAND_CAMPAIGN_FAULT")
            .map(|i| Fault::ALL[i as usize % Fault::ALL.len()]),
    }
}

impl Settings {
    fn replay(&self, round: u64) -> String {
        let rounds = if self.round_robin {
            String::new()
        } else {
            format!("DECKHAND_CAMPAIGN_ROUNDS={} ", self.rounds)
        };
        let rounds = match self.only_fault {
            Some(f) => format!(
                "{rounds}DECKHAND_CAMPAIGN_FAULT={} ",
                Fault::ALL.iter().position(|x| *x == f).unwrap_or(0)
            ),
            None => rounds,
        };
        let release = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        format!(
            "DECKHAND_CAMPAIGN_SEED={} {rounds}DECKHAND_CAMPAIGN_ROUND={round} cargo test{release} --test campaign -- --nocapture",
            self.seed
        )
    }
}

/// What round `k` does, drawn from the seed and `k` only.
#[derive(Debug, Clone, Copy)]
struct Draw {
    fault: Fault,
    /// When the fault strikes, after the deploy started (after the lock was seen, for a second
    /// operator).
    at_ms: u64,
    /// The node it strikes (sshd, sessions, disk).
    node: usize,
    /// How long a frozen sshd stays frozen, or HAProxy stays down.
    hold_ms: u64,
    /// After a paused or killed console: `resume --continue` (else `--rollback`).
    resume_continue: bool,
    /// After a failed run: deploy again (else roll back).
    deploy_again: bool,
}

fn draw(s: &Settings, k: u64, moment_max_ms: u64) -> Draw {
    let mut r = Rng::for_round(s.seed, k);
    let drawn = r.pick(&Fault::ALL);
    let fault = if let Some(f) = s.only_fault {
        f
    } else if s.round_robin {
        Fault::ALL[(k as usize) % Fault::ALL.len()]
    } else {
        drawn
    };
    let at_ms = r.between(0, moment_max_ms);
    let node = r.below(NODES as u64) as usize;
    let hold_ms = r.between(1000, 4000);
    let resume_continue = r.coin();
    let deploy_again = r.coin();
    let at_ms = match fault {
        // The second operator comes while the run holds the lock, within its first seconds.
        Fault::SecondDeploy | Fault::SecondResume => at_ms % 1000,
        _ => at_ms,
    };
    Draw {
        fault,
        at_ms,
        node,
        hold_ms,
        resume_continue,
        deploy_again,
    }
}

#[derive(Debug)]
struct Violation {
    round: u64,
    fault: Fault,
    at_ms: u64,
    invariant: &'static str,
    detail: String,
}

/// The running campaign: the fleet and everything mounted or started around it. Fields drop in
/// order: the tmpfs mounts go before the fleet removes its directory.
struct Bench {
    disks: Vec<Tmpfs>,
    journal_fs: Tmpfs,
    hp: Haproxy,
    _hp_dir: tempfile::TempDir,
    logs: PathBuf,
    faults_dir: PathBuf,
    /// Rounds that ended without a deploy's cleanup since the last one that had it.
    rounds_since_cleanup: usize,
    fleet: Fleet,
}

const CRASH_HOOK: &str = r#"#!/bin/sh
# crash-hook DEPLOY_PATH: run first in the health check; when the campaign armed a crash, this
# node's app dies now (SIGKILL), while its health check runs.
if rm "$DECKHAND_FLEET/faults/crash" 2>/dev/null; then
  kill -9 "$(cat "$(dirname "$1")/app.pid")" && echo "campaign: app crashed" >&2
fi
exit 0
"#;

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Bench {
    fn start() -> Bench {
        let fleet = FleetSpec::nodes(NODES).with_bastion().with_apps().start();
        let root = fleet.root.clone();
        // Every node's deploy path on its own small tmpfs, owned by the fleet's login user.
        let mut disks = Vec::new();
        for n in &fleet.nodes {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&n.deploy_path).unwrap();
            disks.push(Tmpfs::mount(
                &n.deploy_path,
                "4m",
                Some((m.uid(), m.gid())),
                0o755,
            ));
        }
        let journal_dir = root.join("state/deckhand");
        std::fs::create_dir_all(&journal_dir).unwrap();
        let journal_fs = Tmpfs::mount(&journal_dir, "32m", None, 0o700);
        let faults_dir = root.join("faults");
        std::fs::create_dir_all(&faults_dir).unwrap();
        chmod(&faults_dir, 0o777);
        std::fs::write(faults_dir.join("crash-hook"), CRASH_HOOK).unwrap();
        chmod(&faults_dir.join("crash-hook"), 0o755);

        let hp_dir = tempfile::Builder::new()
            .prefix("dh-campaign-hp-")
            .tempdir()
            .unwrap();
        let servers: Vec<(String, u16)> = fleet
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.http_port))
            .collect();
        let hp = Haproxy::start(hp_dir.path(), &servers);
        let logs = tempfile::Builder::new()
            .prefix("dh-campaign-logs-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let bench = Bench {
            disks,
            journal_fs,
            hp,
            _hp_dir: hp_dir,
            logs,
            faults_dir,
            rounds_since_cleanup: 0,
            fleet,
        };
        bench.write_inventory();
        bench
    }

    fn write_inventory(&self) {
        let f = &self.fleet;
        let root = f.root.display();
        let bastion = f.bastion.as_ref().unwrap().port;
        let mut t = format!(
            "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\nkeep_releases = {KEEP}\n\n\
             [ssh]\nuser = \"{}\"\nidentity_file = \"{root}/client_key\"\nknown_hosts = \"{root}/known_hosts\"\nconnect_timeout = \"5s\"\n\n",
            f.user
        );
        for (i, n) in f.nodes.iter().enumerate() {
            t.push_str(&format!(
                "[nodes.{}]\nhost = \"127.0.0.1\"\nport = {}\ndeploy_path = \"{}\"\n",
                n.name,
                n.sshd.port,
                n.deploy_path.display()
            ));
            if i == NODES - 1 {
                t.push_str(&format!("jump = \"{}@127.0.0.1:{bastion}\"\n", f.user));
            }
            t.push('\n');
        }
        let names: Vec<String> = f.nodes.iter().map(|n| format!("\"{}\"", n.name)).collect();
        t.push_str(&format!(
            "[environments.production]\nnodes = [{}]\nbatches = [1]\nmax_fail = \"0%\"\non_failure = \"rollback\"\n\
             health = {{ run = \"{root}/faults/crash-hook {{deploy_path}} && {root}/check-app {{deploy_path}} {{release}}\", timeout = \"5s\", interval = \"100ms\", retries = 5 }}\n\n\
             [environments.production.load_balancer]\nsocket = \"{}\"\nbackend = \"app\"\nvia = \"local\"\ntimeout = \"5s\"\ndrain_timeout = \"5s\"\nmin_healthy = \"0s\"\n\n",
            names.join(", "),
            self.hp.socket.display()
        ));
        t.push_str(&format!(
            "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
             [[phases]]\nname = \"build\"\nrun = \"printf '%s\\\\n' {{release}} > {{release_path}}/VERSION && echo built {{release}} on {{node}}\"\ntimeout = \"10s\"\n\n\
             [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n\
             [[phases]]\nname = \"restart\"\nrun = \"{root}/restart-app {{deploy_path}}\"\ntimeout = \"10s\"\n\n\
             [[phases]]\nname = \"cleanup\"\nstage = \"after\"\nbuiltin = \"cleanup\"\n"
        ));
        std::fs::write(f.root.join("deckhand.toml"), t).unwrap();
    }

    fn names(&self) -> Vec<String> {
        self.fleet.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Start `deckhand ARGS`, its output (both streams) in `logs/NAME.out`.
    fn spawn(&self, name: &str, args: &[&str]) -> (Child, PathBuf) {
        let path = self.logs.join(format!("{name}.out"));
        let out = File::create(&path).unwrap();
        let err = out.try_clone().unwrap();
        let child = self
            .fleet
            .deckhand_command(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start deckhand");
        (child, path)
    }

    /// Run `deckhand ARGS` to its end (killed past `HANG`): its exit status (None: hung or
    /// killed by a signal) and output.
    fn run(&self, name: &str, args: &[&str]) -> (Option<i32>, String, bool) {
        let (child, path) = self.spawn(name, args);
        let (status, hung) = wait_child(child);
        let out = std::fs::read_to_string(&path).unwrap_or_default();
        (status.and_then(|s| s.code()), out, hung)
    }

    fn any_locked(&self) -> bool {
        (0..NODES).any(|i| self.fleet.locked(i))
    }

    /// Every server UP in HAProxy's own view (polled while it settles); Err with the statuses.
    fn wait_all_up(&self, within: Duration) -> Result<(), String> {
        let names = self.names();
        let mut seen = String::new();
        let ok = wait::poll(within, Duration::from_millis(100), || {
            let stat = self.hp_command("show stat");
            let states: Vec<String> = names
                .iter()
                .map(|n| {
                    let s = stat
                        .lines()
                        .find(|l| l.starts_with(&format!("app,{n},")))
                        .and_then(|l| l.split(',').nth(17))
                        .unwrap_or("absent");
                    format!("{n}={s}")
                })
                .collect();
            seen = states.join(" ");
            states.iter().all(|s| s.ends_with("=UP")).then_some(())
        });
        match ok {
            Some(()) => Ok(()),
            None => {
                let state = self.hp_command("show servers state app");
                Err(format!("HAProxy says {seen}; show servers state:\n{state}"))
            }
        }
    }

    /// A runtime-API command; empty when the socket does not answer.
    fn hp_command(&self, cmd: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.hp.socket) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(format!("{cmd}\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Processes still running on the nodes as the fleet's user, the apps aside: steps and
    /// their children, shells. Polled for a while: sessions end a moment after the console.
    fn step_processes(&self, within: Duration) -> Vec<(i32, String)> {
        let marker = format!("DECKHAND_FLEET={}", self.fleet.root.display());
        let mut left = Vec::new();
        let gone = wait::poll(within, Duration::from_millis(100), || {
            left = processes()
                .into_iter()
                .filter(|p| p.live() && p.environ.contains(&marker))
                .filter(|p| !p.cmdline.contains("app.py"))
                .map(|p| {
                    let short: String = p.cmdline.chars().take(40).collect();
                    (
                        p.pid,
                        format!("{short} (ppid {}, pgrp {}, {})", p.ppid, p.pgrp, p.state),
                    )
                })
                .collect();
            left.is_empty().then_some(())
        });
        if gone.is_some() {
            return Vec::new();
        }
        // Who keeps them: an ssh client of this fleet still running here.
        let key = self.fleet.client_key.display().to_string();
        for p in processes() {
            if p.live() && p.cmdline.starts_with("ssh") && p.cmdline.contains(&key) {
                let short: String = p.cmdline.chars().take(160).collect();
                left.push((
                    p.pid,
                    format!("client still running: {short} (ppid {})", p.ppid),
                ));
            }
        }
        left
    }
}

/// Wait for a child (killed past `HANG`): its status, and whether it hung.
fn wait_child(mut child: Child) -> (Option<ExitStatus>, bool) {
    let t = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return (Some(s), false);
        }
        if t.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            return (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

#[derive(Default)]
struct Tally {
    rounds: u64,
    faults: BTreeMap<Fault, u64>,
    /// Faults whose moment came after the run had already ended.
    missed: BTreeMap<Fault, u64>,
    violations: Vec<Violation>,
    requests: u64,
    failed: u64,
    /// Failed requests inside a HAProxy restart's window (the fault's own).
    failed_in_window: u64,
}

/// What a round saw while its fault ran.
struct Injection {
    missed: bool,
    /// HAProxy down from, to (for the load's failures).
    down: Option<(Instant, Instant)>,
    notes: Vec<String>,
    /// The second operator's command: (exit code, output).
    second: Option<(Option<i32>, String)>,
}

struct Round<'a> {
    b: &'a mut Bench,
    k: u64,
    d: Draw,
    violations: Vec<(&'static str, String)>,
}

impl Round<'_> {
    fn violation(&mut self, invariant: &'static str, detail: String) {
        self.violations.push((invariant, detail));
    }

    /// Start the deploy of `r<k>`, strike, wait for it to end; returns its exit code, output and
    /// what the injection saw.
    fn deploy_with_fault(&mut self) -> (Option<i32>, String, Injection) {
        let release = format!("r{}", self.k);
        let (mut child, out_path) = self.b.spawn(
            &format!("round-{}-deploy", self.k),
            &[
                "deploy",
                "production",
                "--release",
                &release,
                "--headless",
                "--yes",
            ],
        );
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(self.d.at_ms);
        let pid = child.id() as i32;
        let mut inj = Injection {
            missed: false,
            down: None,
            notes: Vec::new(),
            second: None,
        };
        let ended = |c: &mut Child| matches!(c.try_wait(), Ok(Some(_)));
        let node = self.d.node;
        match self.d.fault {
            Fault::ConsoleKill | Fault::ConsoleTerm | Fault::ConsoleHup => {
                sleep_until(at);
                if ended(&mut child) {
                    inj.missed = true;
                } else {
                    let sig = match self.d.fault {
                        Fault::ConsoleKill => libc::SIGKILL,
                        Fault::ConsoleTerm => libc::SIGTERM,
                        _ => libc::SIGHUP,
                    };
                    signal(pid, sig);
                }
            }
            Fault::SshdFrozen => {
                sleep_until(at);
                inj.missed = ended(&mut child);
                let mut frozen = Frozen::freeze(&self.b.fleet.nodes[node].sshd);
                std::thread::sleep(Duration::from_millis(self.d.hold_ms));
                frozen.thaw();
            }
            Fault::SessionsKilled => {
                sleep_until(at);
                inj.missed = ended(&mut child);
                let n = kill_sessions(&self.b.fleet.nodes[node].sshd);
                inj.notes.push(format!("{n} session processes killed"));
                // None yet (before preflight connected) or none any more: nothing was struck.
                inj.missed |= n == 0;
            }
            Fault::HaproxyRestart => {
                sleep_until(at);
                inj.missed = ended(&mut child);
                let from = Instant::now();
                self.b.hp.stop();
                std::thread::sleep(Duration::from_millis(self.d.hold_ms / 2));
                self.b.hp.restart();
                inj.down = Some((from, Instant::now()));
            }
            Fault::DiskFull => {
                sleep_until(at);
                inj.missed = ended(&mut child);
                self.b.disks[node].fill();
            }
            Fault::JournalUnwritable => {
                sleep_until(at);
                inj.missed = ended(&mut child);
                let ro = self.b.journal_fs.make_unwritable();
                inj.notes.push(if ro {
                    "journal directory read-only".into()
                } else {
                    "journal open: its tmpfs filled instead".into()
                });
            }
            Fault::SecondDeploy | Fault::SecondResume => {
                // The second operator comes while the run holds the lock.
                let locked = wait::poll(Duration::from_secs(30), Duration::from_millis(10), || {
                    if self.b.any_locked() {
                        return Some(true);
                    }
                    ended(&mut child).then_some(false)
                });
                let lock_seen = Instant::now();
                sleep_until(lock_seen + Duration::from_millis(self.d.at_ms));
                if locked != Some(true) || ended(&mut child) || !self.b.any_locked() {
                    inj.missed = true;
                } else {
                    let second_release = format!("r{}b", self.k);
                    let args: Vec<&str> = if self.d.fault == Fault::SecondDeploy {
                        vec![
                            "deploy",
                            "production",
                            "--release",
                            &second_release,
                            "--headless",
                            "--yes",
                        ]
                    } else {
                        vec![
                            "resume",
                            "production",
                            "--continue",
                            "--headless",
                            "--yes",
                            "--watch",
                            "0s",
                        ]
                    };
                    let (code, out, _) = self.b.run(&format!("round-{}-second", self.k), &args);
                    // Did the first run end before the second one asked? Then it was no race.
                    if code != Some(3) && ended(&mut child) {
                        inj.notes
                            .push("the run ended while the second operator asked".into());
                        inj.missed = true;
                    }
                    inj.second = Some((code, out));
                }
            }
            Fault::AppCrash => {
                sleep_until(at);
                inj.missed = ended(&mut child);
                std::fs::write(self.b.faults_dir.join("crash"), "").unwrap();
            }
        }
        let (status, hung) = wait_child(child);
        if hung {
            self.violation(
                "no hang",
                format!("the deploy ran past {HANG:?} and was killed"),
            );
        }
        // The fault ends with the run: the operator fixes the node before recovering.
        match self.d.fault {
            Fault::DiskFull => self.b.disks[node].empty(),
            Fault::JournalUnwritable => self.b.journal_fs.restore(),
            Fault::AppCrash if std::fs::remove_file(self.b.faults_dir.join("crash")).is_ok() => {
                inj.notes
                    .push("no health check ran after the crash was armed".into());
                inj.missed = true;
            }
            _ => {}
        }
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        (status.and_then(|s| s.code()), out, inj)
    }

    /// What the README tells the operator to do after this run. Returns the last command's
    /// output (for the PARTIAL rule) and what was done.
    fn recover(&mut self, code: Option<i32>, deploy_out: &str) -> (String, String) {
        let k = self.k;
        if code == Some(0) && !self.b.any_locked() {
            return (deploy_out.to_string(), "nothing".into());
        }
        let release = format!("r{k}");
        let (what, args): (&str, Vec<&str>) = if self.b.any_locked() {
            // The console was killed or paused and left its lock: resume.
            if self.d.resume_continue {
                (
                    "resume --continue",
                    vec![
                        "resume",
                        "production",
                        "--continue",
                        "--headless",
                        "--yes",
                        "--watch",
                        "0s",
                    ],
                )
            } else {
                (
                    "resume --rollback",
                    vec!["resume", "production", "--rollback", "--headless", "--yes"],
                )
            }
        } else if self.d.deploy_again {
            (
                "deploy again",
                vec![
                    "deploy",
                    "production",
                    "--release",
                    &release,
                    "--headless",
                    "--yes",
                ],
            )
        } else {
            (
                "rollback",
                vec!["rollback", "production", "--headless", "--yes"],
            )
        };
        let (mut rc, mut out, _) = self.b.run(&format!("round-{k}-recover"), &args);
        let mut what = what.to_string();
        if what == "rollback"
            && rc == Some(4)
            && (out.contains("roll back with --to RELEASE")
                || out.contains("no previous release to go back to"))
        {
            // The nodes disagree and no one release is behind all of them, or rollbacks in a row
            // have walked back past the releases cleanup kept: rollback refuses (nothing
            // changed) and the operator deploys again instead.
            what = "rollback refused, deploy again".into();
            (rc, out, _) = self.b.run(
                &format!("round-{k}-recover-again"),
                &[
                    "deploy",
                    "production",
                    "--release",
                    &release,
                    "--headless",
                    "--yes",
                ],
            );
        }
        if rc != Some(0) {
            self.violation(
                "recovery works",
                format!(
                    "`deckhand {}` after the fault exited {rc:?}:\n{}",
                    args.join(" "),
                    tail(&out, 20)
                ),
            );
        }
        (out, what)
    }

    /// Check every invariant against the real components.
    fn check(&mut self, last_out: &str) {
        let b = &*self.b;
        let mut found: Vec<(&'static str, String)> = Vec::new();
        // Every node on one whole release, and serving it.
        let mut currents = BTreeMap::new();
        for (i, n) in b.fleet.nodes.iter().enumerate() {
            let current = b.fleet.current_release(i);
            let Some(r) = current else {
                found.push(("node on a whole release", format!("{}: no current", n.name)));
                continue;
            };
            let version =
                std::fs::read_to_string(n.deploy_path.join("releases").join(&r).join("VERSION"))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default();
            if version != r {
                found.push((
                    "node on a whole release",
                    format!("{}: current -> {r}, whose VERSION is {version:?}", n.name),
                ));
            }
            let serving = http_get(n.http_port, "/version").map(|(_, b)| b.trim().to_string());
            if serving.as_deref() != Some(r.as_str()) {
                found.push((
                    "node serves its release",
                    format!("{}: current -> {r}, the app serves {serving:?}", n.name),
                ));
            }
            currents.insert(n.name.clone(), r);
        }
        let releases: BTreeSet<&String> = currents.values().collect();
        if releases.len() > 1 {
            // Allowed only when the outcome says PARTIAL and names the odd nodes.
            let partial = last_out.contains("deployed with failed nodes");
            let newest = releases
                .iter()
                .max_by_key(|r| currents.values().filter(|c| c == *r).count());
            let odd: Vec<&String> = currents
                .iter()
                .filter(|(_, r)| Some(r) != newest)
                .map(|(n, _)| n)
                .collect();
            if !(partial && odd.iter().all(|n| last_out.contains(n.as_str()))) {
                found.push(("one release everywhere", format!("{currents:?}")));
            }
        }
        // Every server in rotation, as HAProxy itself says.
        if let Err(e) = b.wait_all_up(Duration::from_secs(10)) {
            found.push(("every server in rotation", e));
        }
        // No lock.
        for (i, n) in b.fleet.nodes.iter().enumerate() {
            if b.fleet.locked(i) {
                let info = std::fs::read_to_string(n.deploy_path.join(".deckhand/lock/info.json"))
                    .unwrap_or_default();
                found.push(("no lock", format!("{} is locked: {info}", n.name)));
            }
        }
        // No step process left on any node.
        let left = b.step_processes(Duration::from_secs(10));
        if !left.is_empty() {
            found.push(("no step process left", format!("{left:?}")));
            // Reported once: removed, so that later rounds report only their own.
            for (pid, what) in &left {
                if !what.starts_with("client still running") {
                    support::procs::kill(*pid);
                }
            }
        }
        // Releases within keep_releases, as the README words it: cleanup (after a deploy that
        // landed) keeps the keep_releases newest "and never the live, previous or new release",
        // so the previous one may be kept beside them when it is older (+1). A failed deploy
        // leaves its release on disk and a rollback cleans nothing: each round since the last
        // cleanup may add one, until the next deploy's cleanup.
        let cleaned = last_out.lines().any(|l| l.starts_with("deployed:"));
        let allowed = KEEP
            + 1
            + if cleaned {
                0
            } else {
                b.rounds_since_cleanup + 1
            };
        for n in &b.fleet.nodes {
            let rs = support::node::releases(&n.deploy_path);
            if rs.len() > allowed {
                found.push((
                    "releases within keep_releases",
                    format!(
                        "{}: {} releases {rs:?} (keep_releases = {KEEP}, {allowed} allowed {})",
                        n.name,
                        rs.len(),
                        if cleaned {
                            "after a deploy's cleanup"
                        } else {
                            "after rounds without one"
                        }
                    ),
                ));
            }
        }
        // Every journal readable, line by line.
        if let Ok(rd) = std::fs::read_dir(b.fleet.root.join("state/deckhand")) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "jsonl") {
                    continue;
                }
                match deckhand::journal::read_journal(&p) {
                    Ok((_, problems)) if problems.is_empty() => {}
                    Ok((_, problems)) => {
                        found.push(("journal readable", problems.join("; ")));
                        // Reported once: the next rounds look at their own journals.
                        let _ = std::fs::rename(&p, p.with_extension("jsonl.bad"));
                    }
                    Err(e) => found.push(("journal readable", format!("{}: {e}", p.display()))),
                }
            }
        }
        self.violations.extend(found);
        if cleaned {
            self.b.rounds_since_cleanup = 0;
        } else {
            self.b.rounds_since_cleanup += 1;
        }
    }

    /// After a round with violations: put the fleet back to a known state for the next one.
    fn repair(&mut self) {
        let k = self.k;
        if self.b.any_locked() {
            self.b.run(
                &format!("round-{k}-repair-unlock"),
                &["unlock", "production", "--yes"],
            );
        }
        let release = format!("r{k}-fix");
        let (rc, out, _) = self.b.run(
            &format!("round-{k}-repair"),
            &[
                "deploy",
                "production",
                "--release",
                &release,
                "--headless",
                "--yes",
            ],
        );
        if rc == Some(0) {
            self.b.rounds_since_cleanup = 0;
        } else {
            eprintln!(
                "campaign: round {k}: the repair deploy exited {rc:?}:\n{}",
                tail(&out, 20)
            );
        }
    }
}

#[test]
fn campaign() {
    let s = settings();
    let started = Instant::now();
    let mut b = Bench::start();
    println!(
        "campaign: seed {} ({} rounds{}), logs in {}",
        s.seed,
        s.rounds,
        if s.round_robin {
            ", each fault kind in turn"
        } else {
            ""
        },
        b.logs.display()
    );
    // The fleet's first release, and how long an undisturbed deploy takes (the fault moments are
    // drawn within it).
    let (rc, out, _) = b.run(
        "setup-r0",
        &[
            "deploy",
            "production",
            "--release",
            "r0",
            "--headless",
            "--yes",
        ],
    );
    assert_eq!(rc, Some(0), "the first deploy:\n{out}");
    let t = Instant::now();
    let (rc, out, _) = b.run(
        "setup-r00",
        &[
            "deploy",
            "production",
            "--release",
            "r00",
            "--headless",
            "--yes",
        ],
    );
    assert_eq!(rc, Some(0), "the second deploy:\n{out}");
    let deploy_ms = t.elapsed().as_millis() as u64;
    let moment_max_ms = MOMENT_MAX_MS;
    println!("campaign: an undisturbed deploy of {NODES} nodes takes {deploy_ms} ms; moments drawn in 0..={moment_max_ms} ms");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/version", b.hp.port);
    let mut tally = Tally::default();
    let rounds: Vec<u64> = match s.only {
        Some(k) => vec![k],
        None => (1..=s.rounds).collect(),
    };
    for k in rounds {
        let d = draw(&s, k, moment_max_ms);
        let round_start = SystemTime::now();
        let _ = round_start;
        let load = {
            let _g = rt.enter();
            Load::start(url.clone(), u64::MAX)
        };
        let mut round = Round {
            b: &mut b,
            k,
            d,
            violations: Vec::new(),
        };
        let (code, deploy_out, inj) = round.deploy_with_fault();
        if let Some((code2, out2)) = &inj.second {
            if !inj.missed {
                if *code2 != Some(3) {
                    round.violation(
                        "a second operator is refused",
                        format!("exit {code2:?} (3 expected):\n{}", tail(out2, 15)),
                    );
                }
                let second = format!("r{k}b");
                let touched: Vec<String> = round
                    .b
                    .fleet
                    .nodes
                    .iter()
                    .filter(|n| n.deploy_path.join("releases").join(&second).exists())
                    .map(|n| n.name.clone())
                    .collect();
                for n in touched {
                    round.violation(
                        "a second operator changes nothing",
                        format!("{n} has releases/{second}"),
                    );
                }
            }
        }
        let (last_out, recovery) = round.recover(code, &deploy_out);
        round.check(&last_out);
        let report: LoadReport = rt.block_on(load.finish());
        let in_window = |t: &Instant| {
            inj.down
                .is_some_and(|(from, to)| *t >= from && *t <= to + HAPROXY_GRACE)
        };
        let counted = report.failed_at.iter().filter(|t| !in_window(t)).count() as u64;
        if counted > 0 {
            round.violation(
                "zero failed requests",
                format!(
                    "{counted} failed through HAProxy outside any fault window (of {} failed): {:?}",
                    report.failed, report.errors
                ),
            );
        }
        let violations = std::mem::take(&mut round.violations);
        if !violations.is_empty() {
            round.repair();
        }
        let _ = round;
        tally.rounds += 1;
        *tally.faults.entry(d.fault).or_default() += 1;
        if inj.missed {
            *tally.missed.entry(d.fault).or_default() += 1;
        }
        tally.requests += report.ok + report.failed;
        tally.failed += report.failed;
        tally.failed_in_window += report.failed - counted;
        println!(
            "round {k:>3}: {:<20} at {:>5} ms on node{} → exit {:<7} recovery: {:<17} requests {:>5} failed {:>3}{}{}{}",
            d.fault.name(),
            d.at_ms,
            d.node + 1,
            format!("{code:?}"),
            recovery,
            report.ok + report.failed,
            report.failed,
            if inj.missed { " (missed: the run had ended)" } else { "" },
            if inj.notes.is_empty() { String::new() } else { format!(" [{}]", inj.notes.join("; ")) },
            if violations.is_empty() { String::new() } else { format!(" VIOLATIONS: {}", violations.len()) },
        );
        for (invariant, detail) in violations {
            println!(
                "  VIOLATION seed {} round {k} fault {} at {} ms (node{}): {invariant}: {detail}\n  deploy said:\n{}\n  replay: {}",
                s.seed,
                d.fault.name(),
                d.at_ms,
                d.node + 1,
                tail(&deploy_out, 12),
                s.replay(k)
            );
            tally.violations.push(Violation {
                round: k,
                fault: d.fault,
                at_ms: d.at_ms,
                invariant,
                detail,
            });
        }
    }

    // The summary.
    println!("\ncampaign summary: seed {}", s.seed);
    println!("| rounds | violations | requests | failed | failed in a HAProxy restart's window | wall time |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {:.0} s |",
        tally.rounds,
        tally.violations.len(),
        tally.requests,
        tally.failed,
        tally.failed_in_window,
        started.elapsed().as_secs_f64()
    );
    println!("\n| fault | rounds | missed (run already over) |\n|---|---|---|");
    for f in Fault::ALL {
        println!(
            "| {} | {} | {} |",
            f.name(),
            tally.faults.get(&f).copied().unwrap_or(0),
            tally.missed.get(&f).copied().unwrap_or(0)
        );
    }
    let mut by_invariant: BTreeMap<&str, u64> = BTreeMap::new();
    for v in &tally.violations {
        *by_invariant.entry(v.invariant).or_default() += 1;
    }
    println!("\n| invariant violated | times |\n|---|---|");
    for (i, n) in &by_invariant {
        println!("| {i} | {n} |");
    }
    if tally.violations.is_empty() {
        let _ = std::fs::remove_dir_all(&b.logs);
    }
    let list: Vec<String> = tally
        .violations
        .iter()
        .map(|v| {
            format!(
                "round {} ({} at {} ms): {}: {}\n  replay: {}",
                v.round,
                v.fault.name(),
                v.at_ms,
                v.invariant,
                v.detail,
                s.replay(v.round)
            )
        })
        .collect();
    assert!(
        tally.violations.is_empty(),
        "{} violations (seed {}; the commands' output is in {}):\n{}",
        tally.violations.len(),
        s.seed,
        b.logs.display(),
        list.join("\n")
    );
}
