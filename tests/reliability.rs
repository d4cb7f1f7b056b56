//! The bad day, with real processes: the console SIGKILLed mid-node and resumed (continue and
//! roll back), SIGTERM during a step, two consoles racing, stale and live locks, hostile input.
//! Every case ends by checking each node's `current`, HAProxy's view and the lock against what
//! the operator was told.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::balanced::{LbFleet, LbSpec};
use support::text;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_deckhand")
}

fn cmd(f: &LbFleet, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("-i").arg(f.path().join("deckhand.toml")).args(args);
    c.env("XDG_STATE_HOME", f.path().join("state"))
        .env("DECKHAND_USER", "ops");
    c.stdin(Stdio::null());
    c
}

fn run(f: &LbFleet, args: &[&str]) -> Output {
    cmd(f, args).output().expect("run deckhand")
}

fn spawn(f: &LbFleet, args: &[&str]) -> Child {
    cmd(f, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deckhand")
}

fn wait_for(path: &Path, what: &str) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_pid_file(path: &Path) {
    if let Ok(p) = std::fs::read_to_string(path) {
        if let Ok(pid) = p.trim().parse::<i32>() {
            // SAFETY: plain kill of a test process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn fleet() -> LbFleet {
    LbFleet::new(LbSpec {
        nodes: 3,
        env: "batches = 1",
        balancer: true,
        balancer_extra: "",
    })
}

/// What HAProxy says about each server: (name, status word).
fn lb_states(f: &LbFleet) -> Vec<(String, String)> {
    f.haproxy
        .command("show stat")
        .lines()
        .filter(|l| l.starts_with("app,web-"))
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[1].to_string(), c[17].to_string())
        })
        .collect()
}

/// Every node on `release`, in rotation, and no lock left: consistent with a finished run.
fn consistent(f: &LbFleet, release: &str) {
    for (n, _) in &f.nodes {
        assert_eq!(f.current(n).as_deref(), Some(release), "{n} current");
        assert!(
            !f.node_dir(n).join(".deckhand/lock").exists(),
            "{n} still locked"
        );
    }
    let names: Vec<&str> = f.nodes.iter().map(|(n, _)| n.as_str()).collect();
    f.haproxy.wait_up(&names);
    for (n, s) in lb_states(f) {
        assert!(s.starts_with("UP"), "{n} is {s} in HAProxy");
    }
}

/// Start a deploy of v2 that hangs in web-2's `phase` (build or restart), and SIGKILL the
/// console there.
fn crash_in(f: &LbFleet, phase: &str) {
    let hold = f.path().join(format!("ctl/hold-{phase}-web-2"));
    let pid = f.path().join(format!("ctl/pid-{phase}-web-2"));
    std::fs::write(&hold, "").unwrap();
    let mut child = spawn(
        f,
        &["deploy", "test", "--release", "v2", "--headless", "--yes"],
    );
    wait_for(&pid, &format!("web-2's {phase} to start"));
    child.kill().unwrap(); // SIGKILL: no cleanup of any kind
    let _ = child.wait();
    // The remote step dies with the session that ran it (on a real node: sshd or our kill).
    kill_pid_file(&pid);
    std::fs::remove_file(&hold).unwrap();
}

/// `resume test --continue`, headless, to its end.
fn resume_continue(f: &LbFleet) -> Output {
    run(
        f,
        &[
            "resume",
            "test",
            "--continue",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    )
}

/// Start a deploy of v2 that hangs in web-2's build, and SIGKILL the console there.
fn crash_mid_node(f: &LbFleet) {
    crash_in(f, "build");
    // What the operator finds: web-1 switched, web-2 half-built and drained, lock held.
    assert_eq!(f.current("web-1").as_deref(), Some("v2"));
    assert_eq!(f.current("web-2").as_deref(), Some("v1"));
    assert!(f.node_dir("web-2").join(".deckhand/lock").exists());
    assert!(
        lb_states(f)
            .iter()
            .any(|(n, s)| n == "web-2" && s.starts_with("DRAIN")),
        "{:?}",
        lb_states(f)
    );
}

#[test]
fn console_killed_mid_node_then_resume_rollback() {
    let f = fleet();
    crash_mid_node(&f);
    // Another console cannot take the lock meanwhile.
    let o = run(
        &f,
        &["deploy", "test", "--release", "v3", "--headless", "--yes"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let o = run(&f, &["resume", "test", "--rollback", "--headless"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("interrupted: deployment") && out.contains("v2"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web-1") && l.contains("v1") && l.contains("v2")),
        "{out}"
    );
    consistent(&f, "v1");
    for (n, _) in &f.nodes {
        assert!(
            !f.node_dir(n).join("releases/v2").exists(),
            "{n} keeps the abandoned release"
        );
    }
}

#[test]
fn console_killed_mid_node_then_resume_continue() {
    let f = fleet();
    crash_mid_node(&f);
    let o = resume_continue(&f);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    consistent(&f, "v2");
    // Nothing left to resume now.
    let o = run(&f, &["resume", "test", "--continue", "--headless"]);
    assert!(text(&o).contains("nothing to resume"), "{}", text(&o));
}

/// The console SIGKILLed after web-2 switched to v2 and before its restart: `current` says v2
/// while the app still runs what it ran. `resume --continue` runs web-2's phases from switch on
/// again (its restart above all) instead of taking it for a finished node.
#[test]
fn console_killed_between_switch_and_restart_then_resume_continue_restarts_the_app() {
    let f = fleet();
    let before = crashed_in_web2_restart(&f);
    assert_eq!(
        web2_app(&f),
        Some(before),
        "web-2's app was not restarted yet"
    );
    web2_finished_again(&f, &resume_continue(&f), before);
}

/// The console killed in web-2's restart (web-2 switched to v2, its app not restarted): the
/// pid of the app web-2 still runs.
fn crashed_in_web2_restart(f: &LbFleet) -> i32 {
    let before = web2_app(f).expect("web-2's app pid");
    crash_in(f, "restart");
    assert_eq!(f.current("web-2").as_deref(), Some("v2"));
    before
}

/// The pid web-2's app recorded when it last started.
fn web2_app(f: &LbFleet) -> Option<i32> {
    std::fs::read_to_string(f.node_dir("web-2").join("shared/app.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
}

/// After a run that met web-2 switched to v2 but never restarted (its app was `before`): the
/// run said so and ran web-2's phases from switch on again (a new app runs), web-1 (which had
/// finished its turn) was left as it is, and the fleet is consistent on v2.
fn web2_finished_again(f: &LbFleet, o: &Output, before: i32) {
    let out = text(o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("web-2 is on v2 but the run that switched it did not finish its turn there"),
        "{out}"
    );
    consistent(f, "v2");
    let after = web2_app(f).expect("web-2's app pid after the run");
    assert_ne!(after, before, "web-2's restart did not run again: {out}");
    assert!(
        std::path::Path::new(&format!("/proc/{after}")).exists(),
        "web-2's new app is not running"
    );
    assert!(
        out.contains("web-1 is already on v2; left as it is"),
        "{out}"
    );
}

/// The same node, switched and never restarted, met by a new deployment of the same release
/// (the lock removed by hand) instead of a resume: its phases from `switch` run again; it is not
/// "already on v2" (found by the fault campaign: a run failed between switch and restart, its
/// rollback could not reach HAProxy, and deploying again left the old app serving).
#[test]
fn a_new_deployment_finishes_a_node_an_earlier_run_switched_and_never_restarted() {
    let f = fleet();
    let before = crashed_in_web2_restart(&f);
    let o = run(&f, &["unlock", "test", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again = "deploy test --release v2 --headless --yes --watch 0s";
    let o = run(&f, &again.split(' ').collect::<Vec<_>>());
    web2_finished_again(&f, &o, before);
}

#[test]
fn sigterm_during_a_step_pauses_leaves_and_resume_works() {
    let f = fleet();
    std::fs::write(f.path().join("ctl/hold-build-web-2"), "").unwrap();
    let child = spawn(
        &f,
        &["deploy", "test", "--release", "v2", "--headless", "--yes"],
    );
    let pid = child.id() as i32;
    wait_for(
        &f.path().join("ctl/pid-build-web-2"),
        "web-2's build to start",
    );
    // SAFETY: signalling the child we started.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    // The step finishes (policy: let it end), then the console leaves: until then both wait.
    std::thread::sleep(Duration::from_millis(300));
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the console left before its running step ended"
    );
    let step_pid: i32 = std::fs::read_to_string(f.path().join("ctl/pid-build-web-2"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        support::procs::alive(step_pid),
        "SIGTERM must not kill the running step"
    );
    kill_pid_file(&f.path().join("ctl/pid-build-web-2"));
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("SIGTERM: pausing") && out.contains("resume test --continue"),
        "{out}"
    );
    assert!(
        f.node_dir("web-1").join(".deckhand/lock").exists(),
        "the lock stays for resume"
    );
    std::fs::remove_file(f.path().join("ctl/hold-build-web-2")).unwrap();
    let o = resume_continue(&f);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    consistent(&f, "v2");
}

#[test]
fn resume_refuses_a_deployment_whose_console_is_alive() {
    let f = fleet();
    // web-2's build takes a few seconds: long enough for a second terminal to try resuming.
    std::fs::write(f.path().join("ctl/hold-build-web-2"), "4").unwrap();
    let first = spawn(
        &f,
        &[
            "deploy",
            "test",
            "--release",
            "v2",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );
    let console_pid = first.id();
    wait_for(
        &f.path().join("ctl/pid-build-web-2"),
        "web-2's build to start",
    );
    let o = resume_continue(&f);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains("is still running: its console is alive")
            && out.contains(&format!("(pid {console_pid})"))
            && out.contains("heartbeat")
            && out.contains("nothing was changed"),
        "{out}"
    );
    // The first console carries its deployment through, undisturbed.
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    consistent(&f, "v2");
}

#[test]
fn two_consoles_race_and_exactly_one_runs() {
    let f = fleet();
    let a = spawn(
        &f,
        &[
            "deploy",
            "test",
            "--release",
            "v2",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );
    let b = spawn(
        &f,
        &[
            "deploy",
            "test",
            "--release",
            "v3",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(3)),
        "{codes:?}\n{}\n{}",
        text(&a),
        text(&b)
    );
    let winner = if a.status.code() == Some(0) {
        "v2"
    } else {
        "v3"
    };
    let loser = if winner == "v2" { &b } else { &a };
    assert!(text(loser).contains("is locked by ops"), "{}", text(loser));
    consistent(&f, winner);
}

fn plant_lock(f: &LbFleet, node: &str, id: &str, age: &str) {
    let lock = f.node_dir(node).join(".deckhand/lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(
        lock.join("info.json"),
        format!(r#"{{"id":"{id}","who":"mallory","host":"jump-9","pid":4242,"at":"2026-01-01T00:00:00Z","env":"test","release":"v9"}}"#),
    )
    .unwrap();
    let hb = lock.join("heartbeat");
    std::fs::write(&hb, "").unwrap();
    let st = Command::new("touch")
        .arg("-d")
        .arg(age)
        .arg(&hb)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_stale_lock_is_reported_and_taken_only_when_asked() {
    let f = fleet();
    plant_lock(&f, "web-2", "dead-1", "10 minutes ago");
    let o = run(&f, &["status", "test"]);
    assert!(text(&o).contains("STALE: no heartbeat for"), "{}", text(&o));
    let o = run(
        &f,
        &[
            "deploy",
            "test",
            "--release",
            "v2",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).contains("STALE") && text(&o).contains("--take-over-stale"),
        "{}",
        text(&o)
    );
    let o = run(
        &f,
        &[
            "--take-over-stale",
            "deploy",
            "test",
            "--release",
            "v2",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("taking over the stale lock"),
        "{}",
        text(&o)
    );
    consistent(&f, "v2");
}

#[test]
fn a_live_lock_is_never_taken_and_lock_wait_queues_behind_it() {
    let f = fleet();
    plant_lock(&f, "web-1", "live-1", "now");
    let o = run(
        &f,
        &[
            "--take-over-stale",
            "deploy",
            "test",
            "--release",
            "v2",
            "--headless",
            "--yes",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "a live lock must not be taken: {}",
        text(&o)
    );
    assert!(text(&o).contains("alive: heartbeat"), "{}", text(&o));
    // The holder finishes 2 s later; a queued console then runs.
    let lock = f.node_dir("web-1").join(".deckhand/lock");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        // Still the holder's lock: the queued console waited instead of taking it.
        let holder = std::fs::read_to_string(lock.join("info.json")).unwrap_or_default();
        std::fs::remove_dir_all(lock).unwrap();
        holder
    });
    let o = run(
        &f,
        &[
            "--lock-wait",
            "30s",
            "deploy",
            "test",
            "--release",
            "v2",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );
    let holder = releaser.join().unwrap();
    assert!(
        holder.contains("\"id\":\"live-1\""),
        "the live lock was replaced while its holder had it: {holder}"
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("waiting up to 30.0s for the lock"),
        "{}",
        text(&o)
    );
    consistent(&f, "v2");
}

#[test]
fn the_heartbeat_keeps_a_running_lock_alive() {
    let f = fleet();
    std::fs::write(f.path().join("ctl/hold-build-web-1"), "").unwrap();
    let mut child = spawn(
        &f,
        &["deploy", "test", "--release", "v2", "--headless", "--yes"],
    );
    wait_for(&f.path().join("ctl/pid-build-web-1"), "web-1's build");
    let hb = f.node_dir("web-3").join(".deckhand/lock/heartbeat");
    let first = std::fs::metadata(&hb).unwrap().modified().unwrap();
    std::thread::sleep(deckhand::engine::HEARTBEAT_EVERY + Duration::from_secs(2));
    let later = std::fs::metadata(&hb).unwrap().modified().unwrap();
    assert!(later > first, "the heartbeat was not refreshed");
    child.kill().unwrap();
    let _ = child.wait();
    kill_pid_file(&f.path().join("ctl/pid-build-web-1"));
}

/// The home screen's `u` removes one deployment's stale lock, read again just before: a node
/// whose lock of that deployment came back to life, or that another deployment holds now, keeps
/// its lock.
#[test]
fn unlocking_a_stale_lock_leaves_a_live_one_and_another_deployments() {
    let f = fleet();
    plant_lock(&f, "web-1", "dead-1", "10 minutes ago");
    plant_lock(&f, "web-2", "dead-1", "now");
    plant_lock(&f, "web-3", "other-2", "10 minutes ago");
    let inv = f.inventory();
    let nodes: Vec<String> = f.nodes.iter().map(|(n, _)| n.clone()).collect();
    let done =
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(deckhand::engine::status::unlock_stale(
                &inv,
                &nodes,
                "dead-1",
                Duration::from_secs(60),
            ));
    assert_eq!(done.removed, ["web-1"], "{done:?}");
    assert!(done.errors.is_empty(), "{done:?}");
    assert!(
        done.left[0].starts_with("web-2: its lock is alive again"),
        "{done:?}"
    );
    assert!(
        done.left[1].starts_with("web-3: locked by another deployment"),
        "{done:?}"
    );
    assert!(!f.node_dir("web-1").join(".deckhand/lock").exists());
    assert!(f.node_dir("web-2").join(".deckhand/lock").exists());
    assert!(f.node_dir("web-3").join(".deckhand/lock").exists());
}

/// While a deployment runs, `status` says how far it is, as its console writes it to the nodes:
/// the batch, the node in flight and its phase, the nodes done.
#[test]
fn status_during_a_run_says_the_batch_the_node_and_its_phase() {
    let f = fleet();
    std::fs::write(f.path().join("ctl/hold-build-web-2"), "").unwrap();
    let mut child = spawn(
        &f,
        &["deploy", "test", "--release", "v2", "--headless", "--yes"],
    );
    wait_for(
        &f.path().join("ctl/pid-build-web-2"),
        "web-2's build to start",
    );
    // The progress reaches the first two nodes when the phase starts; give it a moment.
    let t0 = Instant::now();
    let out = loop {
        let o = run(&f, &["status", "test"]);
        let out = text(&o);
        if out.contains("web-2 build") || t0.elapsed() > Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::fs::remove_file(f.path().join("ctl/hold-build-web-2")).unwrap();
    kill_pid_file(&f.path().join("ctl/pid-build-web-2"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.contains("batch 2/3") && out.contains("web-2 build") && out.contains("1/3 done"),
        "status names the batch, the node, its phase and the nodes done:\n{out}"
    );
}

/// The home screen's read of a fleet behind HAProxy: every node's release and, from HAProxy's
/// own admin socket, which servers are in rotation (a server drained by hand reads as out).
#[test]
fn the_home_screens_read_takes_rotation_from_haproxy_itself() {
    let f = fleet();
    f.haproxy.command("set server app/web-2 state drain");
    let inv = f.inventory();
    let news = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let reader = deckhand::engine::status::Reader::new(inv.clone());
        let mut rx = deckhand::fleet::spawn_read(reader);
        let mut all = Vec::new();
        while let Some(n) = rx.recv().await {
            let done = matches!(n, deckhand::fleet::FleetNews::Done);
            all.push(n);
            if done {
                break;
            }
        }
        all
    });
    let nodes: Vec<(String, Option<String>)> = news
        .iter()
        .filter_map(|n| match n {
            deckhand::fleet::FleetNews::Node(s) => Some((s.node.clone(), s.live_release.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes.iter().all(|(_, r)| r.as_deref() == Some("v1")),
        "{nodes:?}"
    );
    let rotation = news
        .iter()
        .find_map(|n| match n {
            deckhand::fleet::FleetNews::Rotation { env, result } if env == "test" => {
                Some(result.clone())
            }
            _ => None,
        })
        .expect("the balancer's answer")
        .expect("HAProxy answered");
    assert_eq!(rotation.get("web-1"), Some(&true), "{rotation:?}");
    assert_eq!(rotation.get("web-2"), Some(&false), "{rotation:?}");
    assert_eq!(rotation.get("web-3"), Some(&true), "{rotation:?}");
    f.haproxy.command("set server app/web-2 state ready");
}

/// A deployment that finished but could not release its lock on a node (the connection dropped
/// as it did) left it there: `resume` finds the run finished and releases that lock, and only
/// that deployment's.
#[test]
fn resume_releases_the_lock_a_finished_deployment_left_behind() {
    let f = fleet();
    let o = run(
        &f,
        &["deploy", "test", "--release", "v2", "--headless", "--yes"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    let id = out
        .split("deployment ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the deployment id")
        .to_string();
    plant_lock(&f, "web-2", &id, "now");
    plant_lock(&f, "web-3", "someone-else", "now");
    let o = run(&f, &["resume", "test", "--continue", "--headless"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("nothing to resume"), "{out}");
    assert!(
        out.contains("released the lock that deployment left on web-2"),
        "{out}"
    );
    assert!(!f.node_dir("web-2").join(".deckhand/lock").exists());
    assert!(
        f.node_dir("web-3").join(".deckhand/lock").exists(),
        "another deployment's lock is not touched"
    );
}
