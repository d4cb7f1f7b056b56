//! One deckhand run as a user starts it: the `deckhand` binary, `deploy production --headless
//! --yes --output json`, its events read from its output as they come. What the bench keeps:
//! the wall time from start to exit, each step's duration as deckhand reports it, its time
//! report, how many events it sent, and how it ended.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use deckhand::event::{Event, EventKind, TimeReport};
use tokio::io::{AsyncBufReadExt, BufReader};

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub struct DeckRun {
    pub wall: Duration,
    /// (node, phase, duration in ms as the event says)
    pub steps: Vec<(Option<String>, String, u64)>,
    pub report: Option<TimeReport>,
    pub events: usize,
    pub outcome: String,
}

impl DeckRun {
    /// Steps named by `pred`: their summed duration (ms) and count.
    pub fn total(&self, pred: impl Fn(&str) -> bool) -> (u64, usize) {
        self.steps
            .iter()
            .filter(|(_, p, _)| pred(p))
            .fold((0, 0), |(t, n), (_, _, ms)| (t + ms, n + 1))
    }
}

/// Deploy `release` with the inventory at `inv`; journals go under `state`. Err: deckhand's own
/// words when the deploy does not end deployed.
pub async fn deploy(inv: &Path, state: &Path, release: &str) -> Result<DeckRun, String> {
    let what = format!("deploy {release}");
    run(
        inv,
        state,
        &["deploy", "production", "--release", release],
        &what,
    )
    .await
}

/// Roll every node back to its previous release (`deckhand rollback production`).
pub async fn rollback(inv: &Path, state: &Path) -> Result<DeckRun, String> {
    run(inv, state, &["rollback", "production"], "roll back").await
}

async fn run(inv: &Path, state: &Path, command: &[&str], what: &str) -> Result<DeckRun, String> {
    let started = Instant::now();
    // DECKHAND_BENCH_BIN: another deckhand binary (a build from another commit, for A/B).
    let bin = std::env::var_os("DECKHAND_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_deckhand").into());
    let mut child = tokio::process::Command::new(bin)
        .arg("-i")
        .arg(inv)
        .args(command)
        .args(["--headless", "--yes", "--output", "json"])
        .env("XDG_STATE_HOME", state)
        .env_remove("DECKHAND_INVENTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start deckhand");
    let stdout = child.stdout.take().expect("deckhand's output");
    let mut lines = BufReader::new(stdout).lines();
    let mut run = DeckRun {
        wall: Duration::ZERO,
        steps: Vec::new(),
        report: None,
        events: 0,
        outcome: String::new(),
    };
    let mut said = Vec::new();
    // DECKHAND_BENCH_TRACE=DIR keeps each run's events with the time each arrived (for looking
    // into where a run's time went; the bench's figures never read it), one file per command.
    let mut trace = std::env::var_os("DECKHAND_BENCH_TRACE").map(|d| {
        let file = Path::new(&d).join(format!("{}.trace", command.join("-")));
        (file, String::new())
    });
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some((_, text)) = trace.as_mut() {
            text.push_str(&format!("{:9.3} {line}\n", ms_of(started.elapsed())));
        }
        let Ok(e) = serde_json::from_str::<Event>(&line) else {
            said.push(line);
            continue;
        };
        run.events += 1;
        match e.kind {
            EventKind::StepFinished {
                node,
                phase,
                duration_ms,
                ..
            } => run.steps.push((node, phase, duration_ms)),
            EventKind::Timing(t) => run.report = Some(t),
            EventKind::Finished {
                outcome, message, ..
            } => {
                run.outcome = format!("{outcome:?}");
                said.push(message);
            }
            EventKind::Notice { message, .. } => said.push(message),
            _ => {}
        }
    }
    let out = child.wait_with_output().await.expect("deckhand's exit");
    run.wall = started.elapsed();
    if let Some((file, mut text)) = trace {
        text.push_str(&format!("{:9.3} exit\n", ms_of(run.wall)));
        // Appended: a bench runs the same command for several fleets.
        use std::io::Write as _;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| f.write_all(text.as_bytes()));
    }
    if !out.status.success() {
        return Err(format!(
            "deckhand did not {what} ({}): {}{}",
            out.status,
            said.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(run)
}
