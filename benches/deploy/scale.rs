//! Scale: a fleet of 100 real sshd nodes. How long connecting to all of them takes when
//! connections are opened the way preflight opens them (at most `PREFLIGHT_AT_ONCE` at a time)
//! and all at once; a 100-node rolling deploy in batches of 10, headless (its time report); and
//! the same deploy in the console, in a real terminal (tmux), with keys pressed while the
//! events pour in: the time from a key to the screen showing its effect.

use std::time::{Duration, Instant};

use deckhand::transport::ssh::SshTransport;
use deckhand::transport::Transport;
use futures::StreamExt;

use crate::rig::Rig;
use crate::support::tmux::Tmux;

/// What `engine::preflight::CONCURRENCY` is (crate-private there): nodes contacted at once.
pub const PREFLIGHT_AT_ONCE: usize = 32;

/// Connect to every node of the rig, `at_once` at a time; the wall time until all are up.
pub async fn connect_all(rig: &Rig, at_once: usize) -> Duration {
    let transports: Vec<SshTransport> = (0..rig.fleet.nodes.len())
        .map(|i| SshTransport::new(rig.fleet.target(i)))
        .collect();
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(transports.iter().enumerate())
        .map(|(i, t)| async move { (i, t.connect().await) })
        .buffer_unordered(at_once)
        .collect()
        .await;
    let took = started.elapsed();
    for (i, r) in results {
        if let Err(e) = r {
            panic!("{} did not connect: {e}", rig.fleet.nodes[i].name);
        }
    }
    drop(transports);
    took
}

/// Key-to-screen times in the console, in ms: `p` until the header shows PAUSING/PAUSED, and
/// `p` again until it no longer does.
pub struct Keys {
    pub pause: Vec<f64>,
    pub resume: Vec<f64>,
    /// From the console's start to DONE.
    pub wall: Duration,
    /// What one `tmux capture-pane` takes here (median): the poll's own granularity.
    pub capture: f64,
}

fn header(t: &Tmux) -> String {
    t.screen().lines().next().unwrap_or_default().to_string()
}

/// Poll the header as fast as tmux answers until `pred` holds; the time since `started`.
fn until_header_since(
    t: &Tmux,
    started: Instant,
    what: &str,
    secs: u64,
    pred: impl Fn(&str) -> bool,
) -> Duration {
    loop {
        let h = header(t);
        if pred(&h) {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(secs) {
            panic!(
                "waited {secs} s for {what}; the screen shows:\n{}",
                t.screen()
            );
        }
    }
}

fn until_header(t: &Tmux, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> Duration {
    until_header_since(t, Instant::now(), what, secs, pred)
}

/// Press `key` and poll until the header shows its effect: the time from before the key was
/// sent (tmux's own `send-keys` included) to the first capture that shows it.
fn press(t: &Tmux, key: &str, what: &str, pred: impl Fn(&str) -> bool) -> Duration {
    let started = Instant::now();
    t.keys(key);
    until_header_since(t, started, what, 30, pred)
}

/// Run the console deploy of `release` with the inventory at `inv` and press keys while it runs.
pub fn console(rig: &Rig, inv: &std::path::Path, release: &str, presses: usize) -> Keys {
    let cmd = format!(
        "XDG_STATE_HOME={} {} -i {} deploy production --release {}; echo EXITED $?; sleep 120",
        deckhand::util::sh_quote(&rig.dir.join("state").display().to_string()),
        env!("CARGO_BIN_EXE_deckhand"),
        deckhand::util::sh_quote(&inv.display().to_string()),
        release
    );
    let started = Instant::now();
    let t = Tmux::start(&cmd);
    until_header(&t, "the deploy to start", 120, |h| h.contains("DEPLOYING"));
    let mut keys = Keys {
        pause: Vec::new(),
        resume: Vec::new(),
        wall: Duration::ZERO,
        capture: 0.0,
    };
    let mut captures: Vec<f64> = (0..20)
        .map(|_| {
            let s = Instant::now();
            header(&t);
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    captures.sort_by(|a, b| a.total_cmp(b));
    keys.capture = captures[captures.len() / 2];
    while keys.pause.len() < presses {
        // Let the events pour in for a while between presses.
        std::thread::sleep(Duration::from_millis(400));
        if header(&t).contains("DONE") {
            break;
        }
        let took = press(&t, "p", "PAUSING", |h| {
            h.contains("PAUSING") || h.contains("PAUSED") || h.contains("DONE")
        });
        if header(&t).contains("DONE") {
            break;
        }
        keys.pause.push(took.as_secs_f64() * 1000.0);
        until_header(&t, "PAUSED", 60, |h| h.contains("PAUSED"));
        let took = press(&t, "p", "the resume", |h| !h.contains("PAUS"));
        keys.resume.push(took.as_secs_f64() * 1000.0);
    }
    until_header(&t, "DONE", 600, |h| h.contains("DONE"));
    keys.wall = started.elapsed();
    t.keys("q");
    let s = t.wait_for("the console to leave", 60, |s| s.contains("EXITED"));
    assert!(
        s.contains("EXITED 0"),
        "the console deploy did not succeed:\n{s}"
    );
    keys
}
