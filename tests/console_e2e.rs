//! End to end: the real `deckhand demo` console in a real terminal (tmux), driven by key presses
//! the way an operator would: wait for DEPLOYING, pause and see that no new step starts, resume,
//! roll back, and find every demo node's `current` link back on v1.0.
//!
//! What happened is read from the screen, the demo nodes' `current` links and the run's journal.
//! Waits poll with a generous deadline; nothing asserts how fast anything was.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::tmux::Tmux;

fn header(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

fn journal(state: &Path) -> Option<PathBuf> {
    std::fs::read_dir(state.join("deckhand"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
}

fn steps_started(journal: &Path) -> usize {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"type\":\"step_started\""))
        .count()
}

/// The process a tmux pane's shell is running (the console).
fn console_pid(tmux: &Tmux) -> i32 {
    let out = Command::new("tmux")
        .args([
            "-L",
            &tmux.socket,
            "list-panes",
            "-t",
            &tmux.session,
            "-F",
            "#{pane_pid}",
        ])
        .output()
        .expect("tmux list-panes");
    let shell: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pane pid");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the shell's children");
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the console runs under the pane's shell")
}

fn wait_file(path: &Path, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(path).unwrap_or_default()
}

fn current(dir: &Path, node: &str) -> String {
    std::fs::read_link(dir.join("nodes").join(node).join("current"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn demo_pause_resume_and_roll_back_from_the_keyboard() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let state = tmp.path().join("state");
    let done = tmp.path().join("exit");
    let bin = env!("CARGO_BIN_EXE_deckhand");
    let cmd = format!(
        "env LANG=C.UTF-8 XDG_STATE_HOME='{}' '{bin}' demo --dir '{}' 2>'{}'; echo $? > '{}'; sleep 600",
        state.display(),
        dir.display(),
        tmp.path().join("stderr").display(),
        done.display()
    );
    let tmux = Tmux::start(&cmd);

    // Deploying; the first batch ends at a gate, which enter promotes.
    tmux.wait_for("DEPLOYING", 60, |s| header(s).contains("DEPLOYING"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = tmux.screen();
        let h = header(&s);
        if h.contains("PAUSING") || h.contains("PAUSED") {
            break;
        }
        if h.contains("WAITING") {
            tmux.keys("Enter");
            tmux.wait_for("the promote", 30, |s| !header(s).contains("WAITING"));
        } else if h.contains("DEPLOYING") {
            tmux.keys("p");
            tmux.wait_for("PAUSING or PAUSED", 10, |s| {
                let h = header(s);
                h.contains("PAUSING") || h.contains("PAUSED") || h.contains("WAITING")
            });
        }
        assert!(Instant::now() < deadline, "could not pause:\n{s}");
    }

    // Paused: the running step ends, then nothing new starts.
    let paused = tmux.wait_for("PAUSED", 30, |s| header(s).contains("PAUSED"));
    assert!(
        paused.contains("p/space resume"),
        "the footer offers resume:\n{paused}"
    );
    let journal = journal(&state).expect("the run writes a journal");
    let before = steps_started(&journal);
    let links_before: Vec<String> = (1..=5)
        .map(|i| current(&dir, &format!("web-{i}")))
        .collect();
    // Each demo step takes about a second; three seconds would show several new ones.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        steps_started(&journal),
        before,
        "a step started while paused"
    );
    let links_after: Vec<String> = (1..=5)
        .map(|i| current(&dir, &format!("web-{i}")))
        .collect();
    assert_eq!(links_before, links_after, "a node switched while paused");
    assert!(header(&tmux.screen()).contains("PAUSED"));

    // Resume: steps start again.
    tmux.keys("p");
    tmux.wait_for("the run to go on", 30, |s| {
        let h = header(s);
        h.contains("DEPLOYING") || h.contains("WAITING")
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while steps_started(&journal) == before {
        assert!(Instant::now() < deadline, "no step started after resume");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Roll back: the dialog names the nodes; confirm.
    tmux.keys("R");
    let dialog = tmux.wait_for("the rollback dialog", 10, |s| {
        s.contains("Roll back demo-shop in demo?")
    });
    assert!(
        dialog.contains("web-1")
            && (dialog.contains("v1.1 → v1.0") || dialog.contains("stays on v1.0")),
        "the dialog names the node it touches and the release it ends on:\n{dialog}"
    );
    tmux.keys("y");
    // The grid without v1.1, in the same capture as the header: a capture can fall between
    // their redraws (a grid that kept showing v1.1 fails here after the wait).
    let grid = |s: &str| s.lines().skip(2).take(11).collect::<Vec<_>>().join("\n");
    tmux.wait_for("ROLLED BACK, and no v1.1 in the grid", 90, |s| {
        header(s).contains("ROLLED BACK") && !grid(s).contains("v1.1")
    });
    for i in 1..=5 {
        let link = current(&dir, &format!("web-{i}"));
        assert!(
            link.ends_with("v1.0"),
            "web-{i} is on {link} after the rollback"
        );
    }

    // esc: the demo goes on at the home screen, with the run in its history.
    tmux.keys("Escape");
    // Home reads the nodes again when it opens: wait for their answer, v1.0.
    tmux.wait_for(
        "the home screen with demo on v1.0 and the rollback",
        30,
        |s| {
            header(s).contains("HOME")
                && s.contains("rollback")
                && s.lines().any(|l| l.contains("demo") && l.contains("v1.0"))
        },
    );
    // Leave: the console closes and gives the terminal back.
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done.exists() {
        assert!(Instant::now() < deadline, "the console did not close on q");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The demo's run was rolled back: its exit code says so, from home too.
    let code = std::fs::read_to_string(&done).unwrap_or_default();
    assert_eq!(code.trim(), "1", "a deploy that was rolled back exits 1");
    let after = tmux.screen();
    assert!(
        !after.contains("Load Balancer") && !after.contains("HOME"),
        "the console screen is left behind:\n{after}"
    );
}

#[test]
fn sigterm_pauses_leaves_with_the_lock_held_and_gives_the_terminal_back() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let bin = env!("CARGO_BIN_EXE_deckhand");
    let cmd = format!(
        "env LANG=C.UTF-8 XDG_STATE_HOME='{state}' '{bin}' demo --dir '{dir}' 2>'{err}'; \
         echo $? > '{exit}'; stty -a > '{stty}'; sleep 600",
        state = tmp.path().join("state").display(),
        dir = dir.display(),
        err = tmp.path().join("stderr").display(),
        exit = tmp.path().join("exit").display(),
        stty = tmp.path().join("stty").display(),
    );
    let tmux = Tmux::start(&cmd);
    tmux.wait_for("DEPLOYING", 60, |s| header(s).contains("DEPLOYING"));
    let pid = console_pid(&tmux);
    // SAFETY: kill(2) with a pid this test started (the console under its own tmux pane).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let code = wait_file(&tmp.path().join("exit"), 90);
    assert_eq!(code.trim(), "1", "left paused: not deployed");
    let stty = wait_file(&tmp.path().join("stty"), 10);
    assert!(
        stty.contains(" icanon") && stty.contains(" echo "),
        "the terminal is left in raw mode:\n{stty}"
    );
    let stderr = std::fs::read_to_string(tmp.path().join("stderr")).unwrap_or_default();
    assert!(stderr.contains("paused and leaving"), "{stderr}");
    assert!(stderr.contains("resume demo --continue"), "{stderr}");
    let status = Command::new(bin)
        .arg("-i")
        .arg(dir.join("deckhand.toml"))
        .args(["status", "demo"])
        .output()
        .expect("deckhand status");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("held by"),
        "the lock is kept for resume:\n{status}"
    );
    assert!(
        !tmux.screen().contains("Load Balancer"),
        "the console screen is left behind"
    );
    for i in 1..=5 {
        let link = current(&dir, &format!("web-{i}"));
        assert!(
            link.ends_with("v1.0") || link.ends_with("v1.1"),
            "web-{i} is not on a whole release: {link:?}"
        );
    }
}

#[test]
fn a_second_sigterm_aborts_a_step_that_will_not_end_and_releases_the_lock() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let state = tmp.path().join("state");
    let bin = env!("CARGO_BIN_EXE_deckhand");
    let cmd = format!(
        "env LANG=C.UTF-8 XDG_STATE_HOME='{state}' '{bin}' demo --dir '{dir}' 2>'{err}'; \
         echo $? > '{exit}'; sleep 600",
        state = state.display(),
        dir = dir.display(),
        err = tmp.path().join("stderr").display(),
        exit = tmp.path().join("exit").display(),
    );
    let tmux = Tmux::start(&cmd);
    tmux.wait_for("DEPLOYING", 60, |s| header(s).contains("DEPLOYING"));
    // From now on each demo step that waits takes 30 s: wait until one is running (the journal
    // stays quiet), so that the first signal finds a step that does not end soon.
    std::fs::write(dir.join("pace"), "30\n").expect("the demo's pace file");
    let journal = journal(&state).expect("the run writes a journal");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = steps_started(&journal);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        assert!(Instant::now() < deadline, "no slow step started");
        std::thread::sleep(Duration::from_millis(200));
        let now = steps_started(&journal);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }

    let pid = console_pid(&tmux);
    // SAFETY: kill(2) with a pid this test started (the console under its own tmux pane).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // The console sent the run its reason; the engine answers on the flash line.
    let pausing = tmux.wait_for("PAUSING", 30, |s| header(s).contains("PAUSING"));
    assert!(
        pausing.contains("SIGTERM received: pausing at the next step boundary"),
        "{pausing}"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let code = wait_file(&tmp.path().join("exit"), 60);
    assert_eq!(code.trim(), "1", "aborted: not deployed");
    let stderr = std::fs::read_to_string(tmp.path().join("stderr")).unwrap_or_default();
    assert!(stderr.contains("deckhand: aborted"), "{stderr}");
    assert!(!stderr.contains("paused and leaving"), "{stderr}");
    let events = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(events.contains("\"type\":\"aborting\""), "{events}");
    let status = Command::new(bin)
        .arg("-i")
        .arg(dir.join("deckhand.toml"))
        .args(["status", "demo"])
        .output()
        .expect("deckhand status");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        !status.contains("held by"),
        "an aborted run releases the lock:\n{status}"
    );
    for i in 1..=5 {
        let link = current(&dir, &format!("web-{i}"));
        assert!(
            link.ends_with("v1.0") || link.ends_with("v1.1"),
            "web-{i} is not on a whole release: {link:?}"
        );
    }
}

#[test]
fn a_theme_that_does_not_exist_stops_before_anything_runs_unseen() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let bin = env!("CARGO_BIN_EXE_deckhand");
    let cmd = format!(
        "env LANG=C.UTF-8 XDG_STATE_HOME='{state}' '{bin}' demo --theme no-such-theme --dir '{dir}' \
         2>'{err}'; echo $? > '{exit}'; sleep 600",
        state = tmp.path().join("state").display(),
        dir = dir.display(),
        err = tmp.path().join("stderr").display(),
        exit = tmp.path().join("exit").display(),
    );
    let _tmux = Tmux::start(&cmd);
    let code = wait_file(&tmp.path().join("exit"), 60);
    assert_ne!(code.trim(), "0");
    let stderr = std::fs::read_to_string(tmp.path().join("stderr")).unwrap_or_default();
    assert!(
        stderr.contains("no-such-theme")
            && stderr.contains("dark, light, high-contrast, monochrome"),
        "{stderr}"
    );
    assert!(stderr.contains("aborted"), "{stderr}");
}

#[test]
fn replay_plays_a_recorded_journal_through_the_console() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let state = tmp.path().join("state");
    let bin = env!("CARGO_BIN_EXE_deckhand");
    let recorded = Command::new(bin)
        .args(["demo", "--headless", "--fast", "--dir"])
        .arg(tmp.path().join("demo"))
        .env("XDG_STATE_HOME", &state)
        .output()
        .expect("headless demo");
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let journal = journal(&state).expect("the demo wrote a journal");
    let cmd = format!(
        "env LANG=C.UTF-8 '{bin}' replay '{}' --speed 64; echo $? > '{}'; sleep 600",
        journal.display(),
        tmp.path().join("exit").display()
    );
    let tmux = Tmux::start(&cmd);
    let end = tmux.wait_for("the replay to reach DONE", 60, |s| {
        header(s).contains("DONE")
    });
    assert!(header(&end).contains("deckhand replay"), "{end}");
    let grid: String = end.lines().skip(2).take(11).collect::<Vec<_>>().join("\n");
    assert_eq!(
        grid.matches("v1.1").count(),
        5,
        "every node on v1.1:\n{end}"
    );
    assert!(
        end.contains("+/- speed"),
        "the footer offers the replay keys:\n{end}"
    );
    tmux.keys("q");
    assert_eq!(wait_file(&tmp.path().join("exit"), 30).trim(), "0");
}

#[test]
fn deploy_to_done_ticking_the_manual_checklist_item() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let bin = env!("CARGO_BIN_EXE_deckhand");
    let cmd = format!(
        "env LANG=C.UTF-8 XDG_STATE_HOME='{state}' '{bin}' demo --dir '{dir}' 2>'{err}'; \
         echo $? > '{exit}'; sleep 600",
        state = tmp.path().join("state").display(),
        dir = dir.display(),
        err = tmp.path().join("stderr").display(),
        exit = tmp.path().join("exit").display(),
    );
    let tmux = Tmux::start(&cmd);
    // The gate after the first batch: promote.
    tmux.wait_for("the first gate", 60, |s| header(s).contains("WAITING"));
    tmux.keys("Enter");
    // The run ends at a gate that waits for the manual checklist item.
    let s = tmux.wait_for("the checklist gate", 240, |s| {
        header(s).contains("WAITING") && s.contains("confirm the manual checklist")
    });
    assert!(s.contains("space to tick"), "{s}");
    // Focus the checklist, select its last item (the manual one) and tick it.
    tmux.keys("Tab");
    tmux.keys("Tab");
    for _ in 0..10 {
        tmux.keys("Down");
    }
    tmux.keys("Space");
    let ticked = tmux.wait_for("the tick", 30, |s| {
        s.contains("ticked: All critical paths tested")
    });
    let line = ticked
        .lines()
        .find(|l| l.contains("All critical paths tested") && l.starts_with('│'))
        .unwrap_or("");
    assert!(
        line.contains("pass"),
        "the item passes once ticked:\n{ticked}"
    );
    tmux.keys("Enter");
    let done = tmux.wait_for("DONE", 60, |s| header(s).contains("DONE"));
    for i in 1..=5 {
        let link = current(&dir, &format!("web-{i}"));
        assert!(link.ends_with("v1.1"), "web-{i} is on {link}:\n{done}");
    }
    tmux.keys("q");
    assert_eq!(wait_file(&tmp.path().join("exit"), 30).trim(), "0");
}
