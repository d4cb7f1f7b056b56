//! SSH transport figures against the loopback sshd fleet of `tests/support`: how long it takes
//! to connect to 10 and 50 nodes at once, what one remote step costs on an open connection
//! (`true`, and a step that prints three lines, one of them on stderr), directly and through the
//! bastion, several steps at once on one node, and how a 10-node rolling deploy's wall time
//! compares with the time its steps spent running. Prints a Markdown table with the machine's
//! load average; `scripts/bench.sh` runs it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use deckhand::engine::{self, EventKind, Outcome, RunOptions};
use deckhand::inventory::KeyExchange;
use deckhand::transport::ssh::SshTransport;
use deckhand::transport::{ExecRequest, Transport};
use support::{Fleet, FleetSpec, InventorySpec};
use tokio_util::sync::CancellationToken;

const STEPS: usize = 300;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Open `n` fresh connections at once; the wall time until all are up.
async fn connect_all(
    fleet: &Fleet,
    n: usize,
    via_bastion: bool,
    kex: KeyExchange,
) -> (Duration, Vec<SshTransport>) {
    let transports: Vec<SshTransport> = (0..n)
        .map(|i| {
            let mut t = if via_bastion {
                fleet.target_via_bastion(i)
            } else {
                fleet.target(i)
            };
            t.key_exchange = kex;
            SshTransport::new(t)
        })
        .collect();
    let started = Instant::now();
    let results = futures::future::join_all(transports.iter().map(|t| t.connect())).await;
    let took = started.elapsed();
    for (i, r) in results.into_iter().enumerate() {
        if let Err(e) = r {
            panic!("node{} did not connect: {e}", i + 1);
        }
    }
    (took, transports)
}

/// A step that prints: lines on both streams, so the end of the step follows other writes.
const PRINTS: &str = "echo one; echo two >&2; echo three";

/// Median and p95 of one remote `script` on an open connection, and how many runs took over
/// 20 ms (a relay holding a packet back waits ~40 ms for an acknowledgement).
async fn step_overhead(t: &SshTransport, script: &str) -> (f64, f64, usize) {
    let never = CancellationToken::new();
    let req = ExecRequest::new(script).timeout(Duration::from_secs(30));
    for _ in 0..10 {
        t.exec(&req, None, &never).await.expect("warm-up step");
    }
    let mut v = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let s = Instant::now();
        let out = t.exec(&req, None, &never).await.expect("step");
        assert!(out.success(), "{script}: {:?}", out.stderr_tail);
        v.push(ms(s.elapsed()));
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let stalls = v.iter().filter(|x| **x > 20.0).count();
    (percentile(&v, 0.5), percentile(&v, 0.95), stalls)
}

/// `n` rounds of `width` steps (`true`) at once on one node: the wall time per step.
async fn concurrent_steps(t: &SshTransport, width: usize, n: usize) -> f64 {
    let never = CancellationToken::new();
    let req = ExecRequest::new("true").timeout(Duration::from_secs(30));
    let round = || futures::future::join_all((0..width).map(|_| t.exec(&req, None, &never)));
    for r in round().await {
        r.expect("warm-up step");
    }
    let s = Instant::now();
    for _ in 0..n {
        for r in round().await {
            assert!(r.expect("step").success());
        }
    }
    ms(s.elapsed()) / (width * n) as f64
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            l.split_whitespace()
                .next()
                .map(|one| format!("load average {one}"))
        })
        .unwrap_or_else(|| "load average unknown".into())
}

/// What a 10-node rolling deploy spent its time on.
struct DeployTimes {
    wall: Duration,
    /// From the start to the first batch: preflight (connecting to every node) and locks.
    before_batches: Duration,
    /// The sum of every step's own duration, as the engine reports it.
    steps: Duration,
    count: usize,
}

/// A rolling deploy of every node of `fleet`, one at a time, with phases that each sleep
/// `phase_sleep`.
async fn rolling_deploy(
    fleet: &Fleet,
    release: &str,
    phase_sleep: &str,
    ssh_extra: &str,
) -> DeployTimes {
    let phases = format!(
        "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n\
         [[phases]]\nname = \"build\"\nrun = \"sleep {phase_sleep}\"\n\n\
         [[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n\
         [[phases]]\nname = \"restart\"\nrun = \"sleep {phase_sleep}\"\n\n"
    );
    let path = fleet.write_inventory(&InventorySpec {
        phases: Some(phases),
        ssh_extra: ssh_extra.to_string(),
        ..Default::default()
    });
    let inv = Arc::new(deckhand::inventory::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let plan = deckhand::plan::build(&inv, "production", release).expect("plan");
    let opts = RunOptions {
        auto_promote: true,
        headless: true,
        journal_dir: None,
        who: "bench".into(),
        watch: None,
        ..Default::default()
    };
    let started = Instant::now();
    let mut h = engine::spawn_deploy(inv, plan, opts).expect("start the deploy");
    let mut steps = Duration::ZERO;
    let mut count = 0;
    let mut before_batches = None;
    while let Some(e) = h.events.recv().await {
        match e.kind {
            EventKind::StepFinished { duration_ms, .. } => {
                steps += Duration::from_millis(duration_ms);
                count += 1;
            }
            EventKind::BatchStarted { .. } if before_batches.is_none() => {
                before_batches = Some(started.elapsed());
            }
            _ => {}
        }
    }
    let outcome = h.done.await.expect("engine task");
    let wall = started.elapsed();
    assert_eq!(outcome, Outcome::Deployed, "the bench deploy failed");
    DeployTimes {
        wall,
        before_batches: before_batches.unwrap_or_default(),
        steps,
        count,
    }
}

fn deploy_row(label: &str, d: &DeployTimes) {
    let rolling = d.wall.saturating_sub(d.before_batches);
    println!(
        "| 10-node rolling deploy, {label} | wall {:.2} s (preflight and locks {:.2} s); its {} steps ran {:.2} s; wall ÷ steps {:.2}, batches alone ÷ steps {:.2} | wall ≤ 1.3 × steps |",
        d.wall.as_secs_f64(),
        d.before_batches.as_secs_f64(),
        d.count,
        d.steps.as_secs_f64(),
        d.wall.as_secs_f64() / d.steps.as_secs_f64().max(0.001),
        rolling.as_secs_f64() / d.steps.as_secs_f64().max(0.001),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string()))
            .unwrap_or_else(|| "unknown CPU".into())
    );
    let ssh_version = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    eprintln!("starting 50 sshd on 127.0.0.1 …");
    let fleet = FleetSpec::nodes(50).with_bastion().start();
    let load_before = load_average();

    rt.block_on(async {
        use KeyExchange::{Auto, Openssh};
        // Steps first, each over one connection while nothing else runs: the connection tests
        // below leave dozens of connections and shells ending for a while.
        let (_, one) = connect_all(&fleet, 1, false, Auto).await;
        let direct = step_overhead(&one[0], "true").await;
        let direct_prints = step_overhead(&one[0], PRINTS).await;
        let at_once = concurrent_steps(&one[0], 4, 50).await;
        drop(one);
        let (_, one) = connect_all(&fleet, 1, true, Auto).await;
        let jump = step_overhead(&one[0], "true").await;
        let jump_prints = step_overhead(&one[0], PRINTS).await;
        drop(one);
        let settle = || tokio::time::sleep(Duration::from_secs(1));
        settle().await;
        let (c10, t10) = connect_all(&fleet, 10, false, Auto).await;
        drop(t10);
        settle().await;
        let (c50, t50) = connect_all(&fleet, 50, false, Auto).await;
        drop(t50);
        settle().await;
        // For comparison: OpenSSH's own default key exchange (post-quantum sntrup761 on 9.0–9.8).
        let (c10o, t10o) = connect_all(&fleet, 10, false, Openssh).await;
        drop(t10o);
        settle().await;
        let (c50o, t50o) = connect_all(&fleet, 50, false, Openssh).await;
        drop(t50o);
        settle().await;
        let (c10j, t10j) = connect_all(&fleet, 10, true, Auto).await;
        drop(t10j);
        settle().await;

        // The deploys use a fleet of their own, 10 nodes.
        let ten = FleetSpec::nodes(10).start();
        let auto = rolling_deploy(&ten, "bench-1", "0.2", "").await;
        let openssh = rolling_deploy(&ten, "bench-2", "0.2", "key_exchange = \"openssh\"\n").await;

        let step_row = |what: &str, (med, p95, stalls): (f64, f64, usize), target: &str| {
            println!(
                "| {what}, {STEPS} runs | median {med:.2} ms, p95 {p95:.2} ms; {stalls} over 20 ms | {target} |"
            );
        };
        println!("## SSH transport\n");
        println!(
            "Machine: {machine}; {ssh_version}; all servers on 127.0.0.1; {load_before} at the start, {} at the end.\n",
            load_average()
        );
        println!("| measure | figure | target |");
        println!("| --- | --- | --- |");
        println!("| connect 10 nodes at once | {:.0} ms | |", ms(c10));
        println!("| connect 50 nodes at once | {:.0} ms | < 3 s |", ms(c50));
        step_row("one step (`true`) on an open connection", direct, "median ≤ 1 ms");
        step_row("one step that prints three lines (one on stderr)", direct_prints, "");
        println!(
            "| 4 steps (`true`) at once on one node, 50 rounds | {at_once:.2} ms per step | |"
        );
        println!("| connect 10 nodes at once through the bastion | {:.0} ms | |", ms(c10j));
        step_row("one step (`true`) through the bastion", jump, "within 2 ms of direct");
        step_row("one step that prints three lines, through the bastion", jump_prints, "within 2 ms of direct");
        deploy_row("release, `sleep 0.2`, switch, `sleep 0.2` per node, one node at a time", &auto);
        println!(
            "| connect 10 / 50 nodes at once, `key_exchange = \"openssh\"` | {:.0} ms / {:.0} ms | (comparison) |",
            ms(c10o),
            ms(c50o)
        );
        deploy_row("the same with `key_exchange = \"openssh\"`", &openssh);
        drop(ten);
    });
    drop(fleet);
}
