//! The console as the place an operator works from, against the real sshd fleet with the
//! console driven in a real terminal (tmux): the home screen with every environment as the nodes
//! report them (an unreachable node says why), deploy and roll back from home with the history
//! growing, a second console run by another unix user watching a deploy (each switch within
//! 2 s, its keys reaching nothing), step mode one step per key (the journal shows it), and
//! `history --output json` telling what happened.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::tmux::Tmux;
use support::{Fleet, FleetSpec, InventorySpec};

/// Trivial phases (no app, no health check): each node builds, optionally sleeps, switches.
fn phases(sleep: &str) -> String {
    let sleep = if sleep.is_empty() {
        String::new()
    } else {
        format!("[[phases]]\nname = \"warm_up\"\nrun = \"sleep {sleep}\"\ntimeout = \"30s\"\n\n")
    };
    format!(
        "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
         [[phases]]\nname = \"build\"\nrun = \"echo built {{release}} on {{node}}; test -e {{deploy_path}}/../fail-{{release}} && exit 3; true\"\ntimeout = \"30s\"\n\n\
         {sleep}\
         [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n"
    )
}

fn inventory(fleet: &Fleet, sleep: &str) -> PathBuf {
    fleet.write_inventory(&InventorySpec {
        phases: Some(phases(sleep)),
        ..Default::default()
    })
}

/// Split the fleet: node1 alone in `staging`, the others in `production`.
fn two_environments(fleet: &Fleet, inv: &Path) {
    let names: Vec<String> = fleet
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.name))
        .collect();
    let text = std::fs::read_to_string(inv).expect("inventory");
    let text = text.replace(
        &format!("nodes = [{}]", names.join(", ")),
        &format!("nodes = [{}]", names[1..].join(", ")),
    );
    let text = format!(
        "{text}\n[environments.staging]\nnodes = [{}]\nbatches = [1]\non_failure = \"rollback\"\n",
        names[0]
    );
    std::fs::write(inv, text).expect("write inventory");
}

fn deckhand_ok(fleet: &Fleet, args: &[&str]) -> String {
    let o = fleet.deckhand(args);
    assert!(
        o.status.success(),
        "deckhand {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The console in tmux, as this user, with the fleet's state directory.
fn console(fleet: &Fleet, args: &str) -> Tmux {
    let cmd = format!(
        "env LANG=C.UTF-8 XDG_STATE_HOME={} {} -i {} {args} 2>{}; echo EXITED $?; sleep 600",
        fleet.root.join("state").display(),
        env!("CARGO_BIN_EXE_deckhand"),
        fleet.root.join("deckhand.toml").display(),
        fleet.root.join("console.err").display(),
    );
    Tmux::start(&cmd)
}

/// A lock on node `i` whose console (bob's, on another machine) died `ago` ("10 minutes ago"),
/// owned by the fleet's login user as that run would have left it. Returns its directory.
fn stale_lock(fleet: &Fleet, i: usize, id: &str, env: &str, ago: &str) -> PathBuf {
    let lock = fleet.nodes[i].deploy_path.join(".deckhand/lock");
    std::fs::create_dir_all(&lock).expect("lock dir");
    std::fs::write(
        lock.join("info.json"),
        format!(
            r#"{{"id":"{id}","who":"bob","host":"bob-laptop","pid":4242,"at":"2026-01-01T00:00:00Z","env":"{env}","release":"v9"}}"#
        ),
    )
    .expect("info");
    let touched = Command::new("touch")
        .args(["-d", ago])
        .arg(lock.join("heartbeat"))
        .status()
        .expect("touch");
    assert!(touched.success());
    let owned = Command::new("chown")
        .args(["-R", &fleet.user])
        .arg(&lock)
        .status()
        .expect("chown");
    assert!(owned.success());
    lock
}

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

/// The history rows the home screen shows (lines with a date in the history pane).
fn history_rows(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter(|l| l.starts_with("│ 20") && (l.contains(" deploy ") || l.contains(" rollback ")))
        .map(String::from)
        .collect()
}

fn journals(fleet: &Fleet) -> Vec<PathBuf> {
    let dir = fleet.root.join("state/deckhand");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn events(journal: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The journal of the run of `release` (journal names sort by start second only).
fn journal_of(fleet: &Fleet, release: &str) -> PathBuf {
    journals(fleet)
        .into_iter()
        .find(|j| {
            events(j)
                .first()
                .is_some_and(|e| e["type"] == "started" && e["release"] == release)
        })
        .unwrap_or_else(|| panic!("no journal of the run of {release}"))
}

fn count(journal: &Path, kind: &str) -> usize {
    events(journal).iter().filter(|e| e["type"] == kind).count()
}

#[test]
fn home_shows_every_environment_as_the_nodes_report_it_and_an_unreachable_node_says_why() {
    let mut fleet = FleetSpec::nodes(3).start();
    let inv = inventory(&fleet, "");
    two_environments(&fleet, &inv);
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ],
    );
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "staging",
            "--release",
            "v2",
            "--headless",
            "--yes",
        ],
    );
    // A lock on staging whose console died 20 minutes ago.
    stale_lock(
        &fleet,
        0,
        "20260101T000000Z-dead",
        "staging",
        "20 minutes ago",
    );
    // node3 goes down.
    fleet.kill_sshd(2);

    let t = console(&fleet, "");
    let s = t.wait_for("every environment read", 60, |s| {
        s.contains("STALE") && !header(s).contains("reading ")
    });
    assert!(header(&s).contains("2 environments · 3 nodes"), "{s}");
    let staging = s
        .lines()
        .find(|l| l.contains(" staging "))
        .expect("a staging row");
    assert!(
        staging.contains("v2") && staging.contains("STALE 20 min"),
        "{staging}\n{s}"
    );
    assert!(s.contains("bob@bob-laptop"), "the holder is named:\n{s}");
    let production = s
        .lines()
        .find(|l| l.contains(" production ") && l.contains("rolling"))
        .expect("a production row");
    assert!(
        production.contains("v1") && production.contains("free"),
        "{production}"
    );
    // Select production: node2 live on v1, node3 unreachable with the reason.
    for _ in 0..3 {
        if t.screen().contains("production · nodes") {
            break;
        }
        t.keys("Down");
        std::thread::sleep(Duration::from_millis(300));
    }
    let s = t.wait_for("production's nodes", 10, |s| {
        s.contains("production · nodes")
    });
    let node3 = s
        .lines()
        .find(|l| l.contains("node3"))
        .expect("node3's row");
    assert!(node3.contains("UNREACHABLE:"), "{node3}");
    assert!(
        node3.to_lowercase().contains("refused") || node3.contains("connect"),
        "the reason is the node's own: {node3}"
    );
    let node2 = s
        .lines()
        .find(|l| l.contains("node2"))
        .expect("node2's row");
    assert!(node2.contains("v1"), "{node2}");
    // SIGTERM (or the terminal going away) leaves the home screen: nothing runs there.
    terminate(&fleet);
    t.wait_for("the console to close on SIGTERM", 10, |s| {
        s.contains("EXITED")
    });
}

#[test]
fn deploy_and_roll_back_from_home_and_the_history_grows() {
    let fleet = FleetSpec::nodes(2).start();
    inventory(&fleet, "");
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ],
    );
    let t = console(&fleet, "console");
    let s = t.wait_for("home", 60, |s| {
        header(s).contains("HOME") && history_rows(s).len() == 1
    });
    assert!(s.contains("v1"), "{s}");

    // d → release → plan → confirm → the run.
    t.keys("d");
    t.wait_for("the release prompt", 10, |s| {
        s.contains("Deploy to production")
    });
    t.keys("v2");
    t.keys("Enter");
    let plan = t.wait_for("the plan", 10, |s| {
        s.contains("Deploy v2 to production? The plan")
    });
    assert!(plan.contains("switch"), "the plan lists the steps:\n{plan}");
    t.keys("y");
    // The whole final screen, footer included: a capture can fall between the header's
    // redraw and the footer's.
    t.wait_for("DONE, with esc home in the footer", 90, |s| {
        header(s).contains("DONE") && s.contains("esc home")
    });
    for i in 0..2 {
        assert_eq!(fleet.current_release(i).as_deref(), Some("v2"));
    }
    // esc: home, with one more entry.
    t.keys("Escape");
    let s = t.wait_for("home with the deploy in its history", 60, |s| {
        header(s).contains("HOME") && history_rows(s).len() == 2
    });
    let rows = history_rows(&s);
    assert!(
        rows[0].contains("v1 → v2") && rows[0].contains("deployed"),
        "{}",
        rows[0]
    );

    // R: the dialog names each node and the release it goes to.
    t.keys("R");
    let dialog = t.wait_for("the rollback dialog", 10, |s| {
        s.contains("Roll back shop in production?")
    });
    for n in ["node1", "node2"] {
        let line = dialog
            .lines()
            .find(|l| l.contains(n) && l.contains("→"))
            .unwrap_or("");
        assert!(line.contains("v2 → v1"), "{n}: {line}\n{dialog}");
    }
    t.keys("y");
    t.wait_for("ROLLED BACK", 90, |s| header(s).contains("ROLLED BACK"));
    for i in 0..2 {
        assert_eq!(fleet.current_release(i).as_deref(), Some("v1"));
    }
    t.keys("Escape");
    let s = t.wait_for("home with the rollback in its history", 60, |s| {
        header(s).contains("HOME") && history_rows(s).len() == 3
    });
    let rows = history_rows(&s);
    assert!(
        rows[0].contains("rollback")
            && rows[0].contains("v2 → v1")
            && rows[0].contains("rolled back"),
        "{}",
        rows[0]
    );
    // Each run went through the engine's journal, as from the command line.
    assert_eq!(journals(&fleet).len(), 3);
    // enter on the newest history entry replays its journal, q comes back home.
    t.keys("Tab");
    t.keys("Tab");
    t.keys("Enter");
    t.wait_for("the replay", 30, |s| header(s).contains("deckhand replay"));
    t.keys("q");
    t.wait_for("home again", 30, |s| header(s).contains("HOME"));
    // After runs (their consoles listened for signals), SIGTERM still leaves the home screen.
    terminate(&fleet);
    t.wait_for("the console to close on SIGTERM", 10, |s| {
        s.contains("EXITED 0")
    });
}

/// Send SIGTERM to the console this test started for `fleet`.
fn terminate(fleet: &Fleet) {
    let inv = fleet.root.join("deckhand.toml").display().to_string();
    let pid = support::processes()
        .into_iter()
        .find(|p| {
            p.live()
                && p.cmdline.starts_with(env!("CARGO_BIN_EXE_deckhand"))
                && p.cmdline.contains(&inv)
        })
        .expect("the console's process")
        .pid;
    // SAFETY: kill has no memory preconditions; the pid is the console this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// A second unix user on this host, with its own key to the nodes (root only).
struct Watcher {
    user: String,
    dir: PathBuf,
    inventory: PathBuf,
}

const WATCH_USER: &str = "dhwatch";

fn watcher(fleet: &Fleet) -> Watcher {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates a second unix user ({WATCH_USER}) and needs root"
    );
    let exists = |u: &str| {
        Command::new("getent")
            .args(["passwd", u])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists(WATCH_USER) {
        let _ = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", WATCH_USER])
            .status();
        assert!(exists(WATCH_USER), "cannot create the user {WATCH_USER}");
    }
    let dir = fleet.root.join("watcher");
    std::fs::create_dir_all(&dir).expect("watcher dir");
    let key = dir.join("key");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "watcher", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    // The watcher logs in to the nodes as the deploy user, with its own key.
    let pubkey = std::fs::read_to_string(dir.join("key.pub")).expect("pub");
    let auth = fleet.root.join("authorized_keys");
    let mut keys = std::fs::read_to_string(&auth).expect("authorized_keys");
    keys.push_str(&pubkey);
    std::fs::write(&auth, keys).expect("authorized_keys");
    let inv = std::fs::read_to_string(fleet.root.join("deckhand.toml"))
        .expect("inventory")
        .replace(
            &format!("{}/client_key", fleet.root.display()),
            &key.display().to_string(),
        );
    let inventory = dir.join("deckhand.toml");
    std::fs::write(&inventory, inv).expect("watcher inventory");
    let chown = Command::new("chown")
        .args(["-R", &format!("{WATCH_USER}:{WATCH_USER}")])
        .arg(&dir)
        .status()
        .expect("chown");
    assert!(chown.success());
    Watcher {
        user: WATCH_USER.into(),
        dir,
        inventory,
    }
}

/// Where node `i`'s box in the watcher's grid says it is: its release line.
fn shown_release(screen: &str, node: &str) -> Option<String> {
    let lines: Vec<&str> = screen.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(pos) = l.find(&format!(" {node} ")) else {
            continue;
        };
        if !l.contains('│') && !l.contains('┃') {
            continue;
        }
        let col = l[..pos].chars().count();
        let next: Vec<char> = lines.get(i + 1)?.chars().collect();
        let from = col.saturating_sub(6);
        let to = (col + node.len() + 8).min(next.len());
        return Some(next[from..to].iter().collect::<String>().trim().to_string());
    }
    None
}

#[test]
fn another_unix_user_watches_a_deploy_each_switch_within_two_seconds_and_cannot_control_it() {
    let fleet = FleetSpec::nodes(3).start();
    inventory(&fleet, "2");
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ],
    );
    let w = watcher(&fleet);

    // The first console: a deploy of v2, each node taking a few seconds.
    let runner = console(&fleet, "deploy production --release v2");
    runner.wait_for("the deploy to start", 60, |s| {
        header(s).contains("DEPLOYING")
    });
    // The second console, another unix user.
    let cmd = format!(
        "runuser -u {user} -- env LANG=C.UTF-8 HOME=/home/{user} XDG_STATE_HOME={dir}/state {bin} -i {inv} watch production 2>{dir}/err; echo EXITED $?; sleep 600",
        user = w.user,
        dir = w.dir.display(),
        bin = env!("CARGO_BIN_EXE_deckhand"),
        inv = w.inventory.display(),
    );
    let watch = Tmux::start(&cmd);
    let s = watch.wait_for("the watcher to show the run", 30, |s| {
        s.contains("'s deployment of v2") && header(s).contains("deckhand watch")
    });
    let me = String::from_utf8_lossy(&Command::new("id").arg("-un").output().expect("id").stdout)
        .trim()
        .to_string();
    assert!(
        s.contains(&format!("WATCHING {me}@")) && s.contains("read-only"),
        "the footer says whose run it is:\n{s}"
    );
    // The watcher's keys reach nothing: pause, roll back, abort, promote.
    for k in ["p", "R", "y", "a", "y", "Enter", "s", "Space", "Escape"] {
        watch.keys(k);
    }

    // Each node's switch: the moment its link changes on disk, then the moment the watcher shows it.
    let mut seen_switch: Vec<Option<Instant>> = vec![None; 3];
    let mut shown: Vec<Option<Instant>> = vec![None; 3];
    let deadline = Instant::now() + Duration::from_secs(90);
    while shown.iter().any(|s| s.is_none()) {
        if Instant::now() > deadline {
            let screen = watch.screen();
            let read: Vec<Option<String>> = fleet
                .nodes
                .iter()
                .map(|n| shown_release(&screen, &n.name))
                .collect();
            panic!(
                "not every switch was shown ({shown:?}, {seen_switch:?}, read {read:?}):\n{screen}"
            );
        }
        let screen = watch.screen();
        let now = Instant::now();
        for i in 0..3 {
            if seen_switch[i].is_none() && fleet.current_release(i).as_deref() == Some("v2") {
                seen_switch[i] = Some(now);
            }
            let name = &fleet.nodes[i].name;
            if shown[i].is_none()
                && shown_release(&screen, name)
                    .is_some_and(|r| r.contains("v2") && !r.contains("→"))
            {
                shown[i] = Some(now);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        let switched = seen_switch[i].expect("switched before shown");
        let lag = shown[i].expect("shown").saturating_duration_since(switched);
        eprintln!("node{}: shown {lag:?} after its switch", i + 1);
        assert!(
            lag <= Duration::from_secs(2),
            "node{} shown {lag:?} after its switch",
            i + 1
        );
    }
    // The run went on to its end undisturbed: no pause, rollback or abort reached it.
    runner.wait_for("DONE", 90, |s| header(s).contains("DONE"));
    let j = journal_of(&fleet, "v2");
    for kind in ["pausing", "rollback_started", "aborting", "stepping"] {
        assert_eq!(count(&j, kind), 0, "{kind} reached the run");
    }
    let end = watch.wait_for("the watcher to see the end", 30, |s| {
        header(s).contains("DONE")
    });
    assert!(end.contains("the deployment ended: deployed"), "{end}");
    // The watcher really ran as the other user.
    let err = std::fs::read_to_string(w.dir.join("err")).unwrap_or_default();
    assert!(!err.contains("error"), "{err}");
    let ctl_dirs = Command::new("getent")
        .args(["passwd", WATCH_USER])
        .output()
        .expect("getent");
    let uid: String = String::from_utf8_lossy(&ctl_dirs.stdout)
        .split(':')
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(
        Path::new(&format!("/tmp/dh-{uid}")).is_dir(),
        "the watcher's ssh control directory belongs to uid {uid}"
    );
    runner.keys("q");
    watch.keys("q");
}

#[test]
fn step_mode_advances_exactly_one_step_per_key() {
    let fleet = FleetSpec::nodes(2).start();
    inventory(&fleet, "");
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ],
    );
    let t = console(&fleet, "deploy production --release v2 --step");
    t.wait_for("paused before the first step", 60, |s| {
        header(s).contains("PAUSED")
    });
    let j = journal_of(&fleet, "v2");
    assert_eq!(
        count(&j, "step_started"),
        0,
        "nothing ran before the first key"
    );
    // Batches of one node: each key runs exactly one step, then the run pauses again.
    let mut expected = 0;
    for press in 1..=4 {
        t.keys("s");
        expected += 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let paused = count(&j, "paused");
            if paused == press + 1 {
                break;
            }
            assert!(Instant::now() < deadline, "no pause after step {press}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(count(&j, "stepping"), press);
        assert_eq!(
            count(&j, "step_started"),
            expected,
            "press {press} ran exactly one step"
        );
        // Header and footer both: a capture can fall between their redraws.
        t.wait_for("PAUSED again, with s step in the footer", 10, |s| {
            header(s).contains("PAUSED") && s.contains("s step")
        });
    }
    // The steps in the order they ran: release, build, switch of node1, then node2's release.
    let started: Vec<String> = events(&j)
        .iter()
        .filter(|e| e["type"] == "step_started")
        .map(|e| {
            format!(
                "{} {}",
                e["node"].as_str().unwrap_or("-"),
                e["phase"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        started,
        vec![
            "node1 release",
            "node1 build",
            "node1 switch",
            "node2 release"
        ],
        "{started:?}"
    );
    // p goes on normally.
    t.keys("p");
    t.wait_for("DONE", 60, |s| header(s).contains("DONE"));
    t.keys("q");
}

#[test]
fn history_json_tells_a_deploy_a_failed_deploy_that_rolled_back_and_a_rollback() {
    let fleet = FleetSpec::nodes(3).start();
    inventory(&fleet, "");
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ],
    );
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "production",
            "--release",
            "v2",
            "--headless",
            "--yes",
        ],
    );
    // v3 fails its build on node2: the run rolls back.
    std::fs::write(fleet.nodes[1].deploy_path.join("../fail-v3"), "").expect("fail marker");
    let o = fleet.deckhand(&[
        "deploy",
        "production",
        "--release",
        "v3",
        "--headless",
        "--yes",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    deckhand_ok(&fleet, &["rollback", "production", "--headless", "--yes"]);
    for i in 0..3 {
        assert_eq!(fleet.current_release(i).as_deref(), Some("v1"));
    }
    let out = deckhand_ok(&fleet, &["history", "production", "--output", "json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let me = String::from_utf8_lossy(&Command::new("id").arg("-un").output().expect("id").stdout)
        .trim()
        .to_string();
    // (kind, release, from, outcome, failed nodes) of each run, newest first.
    type Run = (String, String, Option<String>, String, Vec<String>);
    let got: Vec<Run> = v
        .iter()
        .map(|d| {
            assert_eq!(d["who"], me.as_str());
            assert!(d["host"].is_string() && d["duration_s"].is_u64(), "{d}");
            (
                d["kind"].as_str().unwrap_or("").to_string(),
                d["release"].as_str().unwrap_or("").to_string(),
                d["from"].as_str().map(String::from),
                d["outcome"].as_str().unwrap_or("").to_string(),
                d["failed_nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        vec![
            (
                s("rollback"),
                s("v1"),
                Some(s("v2")),
                s("rolled back"),
                vec![]
            ),
            (
                s("deploy"),
                s("v3"),
                Some(s("v2")),
                s("rolled back"),
                vec![s("node2")]
            ),
            (s("deploy"), s("v2"), Some(s("v1")), s("deployed"), vec![]),
            (s("deploy"), s("v1"), None, s("deployed"), vec![]),
        ],
        "{out}"
    );
    // Every run has its journal on this machine, named in the history.
    assert!(v.iter().all(|d| d["journal"].is_string()), "{out}");
    // --limit and the table.
    let table = deckhand_ok(&fleet, &["history", "production", "--limit", "2"]);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("node2"), "{table}");
}

/// Select the environment `name` in the home screen's list (up to four steps down, then up).
fn select(t: &Tmux, name: &str) {
    let marker = format!("{name} · nodes");
    for key in ["Down", "Down", "Down", "Down", "Up", "Up", "Up", "Up"] {
        if t.screen().contains(&marker) {
            return;
        }
        t.keys(key);
        std::thread::sleep(Duration::from_millis(300));
    }
    t.wait_for(&format!("{name} selected"), 5, |s| s.contains(&marker));
}

/// From home: `P` promotes what staging verified to the environment that requires it, `r`
/// reads the nodes again (a lock planted outside shows), `u` removes that stale lock, and `w`
/// watches a deployment another process runs.
#[test]
fn promote_refresh_unlock_and_watch_from_home() {
    let fleet = FleetSpec::nodes(3).start();
    let inv = inventory(&fleet, "1");
    two_environments(&fleet, &inv);
    let text = std::fs::read_to_string(&inv).expect("inventory");
    let text = text.replacen(
        "[environments.production]\n",
        "[environments.production]\nrequires = \"staging\"\n",
        1,
    );
    assert!(text.contains("requires = \"staging\""), "{text}");
    std::fs::write(&inv, text).expect("write inventory");
    deckhand_ok(
        &fleet,
        &[
            "deploy",
            "staging",
            "--release",
            "v1",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ],
    );

    let t = console(&fleet, "");
    t.wait_for("home", 60, |s| {
        header(s).contains("HOME") && !header(s).contains("reading ")
    });
    // P on staging: the dialog, then the run to production.
    select(&t, "staging");
    t.keys("P");
    t.wait_for("the promote dialog", 10, |s| {
        s.contains("Promote staging to production?")
    });
    t.keys("y");
    t.wait_for("the promotion done", 90, |s| header(s).contains("DONE"));
    for i in 1..3 {
        assert_eq!(
            fleet.current_release(i).as_deref(),
            Some("v1"),
            "node{}",
            i + 1
        );
    }
    t.keys("Escape");
    t.wait_for("home after the promotion", 60, |s| {
        header(s).contains("HOME") && !header(s).contains("reading ")
    });

    // A console on another machine died holding production's lock 10 minutes ago: r shows it.
    let lock = stale_lock(
        &fleet,
        1,
        "20260101T000000Z-gone",
        "production",
        "10 minutes ago",
    );
    t.keys("r");
    t.wait_for("the stale lock after r", 30, |s| {
        s.lines()
            .any(|l| l.contains(" production ") && l.contains("STALE 10 min"))
    });
    select(&t, "production");
    t.keys("u");
    t.wait_for("the unlock dialog", 10, |s| {
        s.contains("Remove production's lock?") && s.contains("bob@bob-laptop")
    });
    t.keys("y");
    t.wait_for("the lock removed", 30, |s| {
        s.contains("unlocked 1 node of production")
    });
    assert!(!lock.exists(), "the stale lock is gone");

    // Another process deploys staging; w from home watches it.
    let mut other = fleet
        .deckhand_command(&[
            "deploy",
            "staging",
            "--release",
            "v2",
            "--headless",
            "--yes",
            "--watch",
            "0s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a second deckhand");
    let staging_lock = fleet.nodes[0].deploy_path.join(".deckhand/lock");
    support::wait::until(
        "the other run to lock staging",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || staging_lock.exists().then_some(()).ok_or_else(String::new),
    );
    t.keys("r");
    select(&t, "staging");
    t.wait_for("staging shown as deploying", 30, |s| {
        s.lines()
            .any(|l| l.contains(" staging ") && l.contains("deploying v2"))
    });
    t.keys("w");
    let s = t.wait_for("the watch of the other run", 30, |s| {
        header(s).contains("deckhand watch") && s.contains("'s deployment of v2")
    });
    assert!(s.contains("read-only"), "{s}");
    let status = other.wait().expect("the other run");
    assert!(status.success(), "{status}");
    t.wait_for("the watch to see the run end", 30, |s| {
        fleet.current_release(0).as_deref() == Some("v2") && s.contains("v2")
    });
    terminate(&fleet);
    t.wait_for("the console to close on SIGTERM", 10, |s| {
        s.contains("EXITED")
    });
}
