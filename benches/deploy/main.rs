//! The rolling-deploy bench: the same deployment (HAProxy drain, nine shell steps, health check,
//! enable on each node; a backup, a tag and the migrations once before, a notification once
//! after: 9N+4 commands) on a loopback fleet of real sshd nodes behind a real HAProxy, under a
//! steady load through HAProxy, each run timed against the work alone (the same commands run
//! on this machine, one `sh -c` each, in the same order and concurrency). Parts, run in the
//! order given (all four by default):
//!
//! - `deploy`: 5 and 20 nodes one at a time and 50 in batches of 20 %, directly, through the
//!   bastion, over a slow link (a delay proxy in front of each node) and over a slow link to
//!   the bastion; with what connecting and one step cost on each link.
//! - `rollback`: 20 nodes one at a time, deployed with deckhand's `release` and `switch` builtins
//!   and rolled back, directly, through the bastion and over the slow link: no request may fail.
//! - `tools`: 5 and 20 nodes one at a time with deckhand, Capistrano and Ansible in turn.
//! - `scale`: 100 nodes: connecting to all, a deploy in batches of 10 headless and in the console
//!   (key to screen while the events pour in).
//!
//! `quick` among the arguments shrinks every part (5 nodes, 10 in batches, 20 for scale): a check
//! that the harness works, not figures to keep. `direct` (or `slow`) keeps only the direct link
//! (or the slow one) for a quicker look, `bastion` the direct link and the bastion, `batches` only the 50 nodes in batches; `DECKHAND_BENCH_TRACE=DIR` keeps each deckhand run's events,
//! each with the millisecond it arrived, in DIR; `DECKHAND_BENCH_BIN=PATH` runs another deckhand
//! binary in deckhand's place (a build of another commit, for an A/B comparison).
//!
//! It prints Markdown tables (progress goes to stderr) and asserts nothing about speed: the
//! targets are printed beside the figures. `scripts/bench.sh deploy|tools|scale` runs it.

#[path = "../../tests/support/mod.rs"]
mod support;

mod deck;
mod rig;
mod scale;
mod steps;
mod tools;
mod work;

use std::time::{Duration, Instant};

use deckhand::transport::ssh::SshTransport;
use deckhand::transport::{ExecRequest, Transport};
use tokio_util::sync::CancellationToken;

use rig::{Link, Rig, Turns};
use support::http::Load;

/// The slow link: this much each way, so one round trip costs twice as much.
const ONE_WAY: Duration = Duration::from_millis(10);
/// Requests of the steady load are bounded (one every 10 ms at most).
const LOAD_MAX: u64 = 200_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn load1() -> String {
    load_average()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let ssh = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}); {ssh}")
}

/// The steady load through HAProxy, started before a run and read after it.
fn start_load(haproxy: &support::haproxy::Haproxy) -> Load {
    Load::start(
        format!("http://127.0.0.1:{}/version", haproxy.port),
        LOAD_MAX,
    )
}

fn failed(r: &support::http::LoadReport) -> String {
    if r.failed == 0 {
        format!("0 of {}", r.ok)
    } else {
        format!(
            "**{} of {}** ({})",
            r.failed,
            r.ok + r.failed,
            r.errors.join("; ")
        )
    }
}

// ------------------------------------------------------------------------------ one comparison

/// A deckhand deploy beside the work alone (run once before it and once after, averaged).
struct Compared {
    label: String,
    load: String,
    work: work::WorkRun,
    /// The two runs of the work alone.
    work_walls: (Duration, Duration),
    deck: deck::DeckRun,
    failed: String,
    commands: usize,
}

fn is_shell(phase: &str) -> bool {
    phase != "drain" && phase != "enable"
}

impl Compared {
    fn wall_minus_work(&self) -> f64 {
        ms(self.deck.wall) - ms(self.work.wall)
    }

    /// Per shell step (health checks included), each deckhand step against the same command
    /// alone: (median, mean) of the differences in ms. deckhand reports whole milliseconds, cut
    /// short: half a millisecond is added back to each.
    fn per_step(&self) -> (f64, f64) {
        let diffs: Vec<f64> = self
            .deck
            .steps
            .iter()
            .filter(|(_, p, _)| is_shell(p))
            .filter_map(|(node, p, d)| {
                let alone = self.work.of(node.as_deref()?, p)?;
                Some(*d as f64 + 0.5 - ms(alone))
            })
            .collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
        (median(diffs), mean)
    }

    /// Only one node at a time lets a step be compared with the same command alone: in a batch
    /// the commands alone run side by side with nothing between them and compete for the CPU
    /// as deckhand's never do.
    fn one_at_a_time(&self) -> bool {
        self.label.contains("one at a time")
    }

    fn balancer_ms(&self) -> u64 {
        self.deck.total(|p| !is_shell(p)).0
    }

    fn report_overhead(&self) -> Option<f64> {
        self.deck.report.as_ref().map(|r| r.overhead_ms as f64)
    }
}

async fn work_alone(
    rig: &Rig,
    haproxy: &support::haproxy::Haproxy,
    n: usize,
    turns: Turns,
    release: &str,
) -> work::WorkRun {
    let cmds = rig.commands(n, release);
    let load = start_load(haproxy);
    let work = tokio::task::block_in_place(|| work::run(rig, &cmds, turns.batch(n)));
    // Failures here are expected: the work alone restarts apps that are in rotation.
    let _ = load.finish().await;
    work
}

async fn compare(
    rig: &Rig,
    haproxy: &support::haproxy::Haproxy,
    n: usize,
    link: Link,
    turns: Turns,
    tag: &str,
) -> Result<Compared, String> {
    let label = format!("{n} nodes, {}, {}", turns.word(), link.word());
    eprintln!("{label}: the work alone, deckhand, the work alone …");
    let before = work_alone(rig, haproxy, n, turns, &format!("w{n}-{tag}a")).await;
    let inv = rig.inventory(n, link, turns, haproxy);
    let load_now = load1();
    let load = start_load(haproxy);
    let deck = deck::deploy(&inv, &rig.dir.join("state"), &format!("d{n}-{tag}")).await;
    let report = load.finish().await;
    let deck = deck.map_err(|e| format!("{label}: {e}"))?;
    let after = work_alone(rig, haproxy, n, turns, &format!("w{n}-{tag}b")).await;
    Ok(Compared {
        label,
        load: load_now,
        work: work::WorkRun::mean(&before, &after),
        work_walls: (before.wall, after.wall),
        deck,
        failed: failed(&report),
        commands: steps::commands(n),
    })
}

/// A deploy that did not end deployed is a finding too: said after the tables, not hidden.
fn print_failures(failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    println!("Runs that did not end deployed (their rows are missing above):\n");
    for f in failures {
        println!("- {}", f.replace('\n', " "));
    }
    println!();
}

fn print_compared(rows: &[Compared], rtt: Duration) {
    println!("| deploy | the work alone (its two runs) | deckhand wall | wall ÷ work | per step over the work: median (mean) | median in round trips of the slow link | failed requests | load |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let (med, mean) = r.per_step();
        let one = r.one_at_a_time();
        let rtts = if r.label.contains("slow") && one {
            format!("{:.1}", med / ms(rtt))
        } else {
            "—".into()
        };
        let per = if one {
            format!("{med:.1} ms ({mean:.1} ms)")
        } else {
            "—".into()
        };
        println!(
            "| {} ({} commands) | {} ({:.2} s, {:.2} s) | {} | {:.2} | {per} | {rtts} | {} | {} |",
            r.label,
            r.commands,
            secs(r.work.wall),
            r.work_walls.0.as_secs_f64(),
            r.work_walls.1.as_secs_f64(),
            secs(r.deck.wall),
            r.deck.wall.as_secs_f64() / r.work.wall.as_secs_f64(),
            r.failed,
            r.load
        );
    }
    println!();
    println!("Where wall − work went, as deckhand's own events and time report tell it. \"Steps over the work\" is the sum, over the shell steps, of each step's time in deckhand minus the same command's alone; \"the rest\" is what remains (the gaps between steps). Steps are compared one by one only when nodes take their turn one at a time: in a batch the commands alone run side by side with nothing between them and compete for the CPU as deckhand's do not.\n");
    println!("\"Outside the report\" is the command's wall time less the report's: starting up before the run, and after the report the run's last history lines and closing the connections.\n");
    println!("| deploy | wall − work | time report: deckhand overhead | differs by | outside the report | preflight and locks | drain + enable | steps over the work | the rest | events |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let wmw = r.wall_minus_work();
        let (overhead, differs) = match r.report_overhead() {
            Some(o) => (
                format!("{o:.0} ms"),
                format!("{:.0} %", (o - wmw).abs() / wmw.abs().max(1.0) * 100.0),
            ),
            None => ("no report".into(), "—".into()),
        };
        let pre = r
            .deck
            .report
            .as_ref()
            .map(|t| t.preflight_ms as f64)
            .unwrap_or(f64::NAN);
        let outside = r
            .deck
            .report
            .as_ref()
            .map(|t| format!("{:.0} ms", ms(r.deck.wall) - t.wall_ms as f64))
            .unwrap_or_else(|| "—".into());
        let bal = r.balancer_ms() as f64;
        let shell_steps = r.deck.total(is_shell).1 as f64;
        let over = r.per_step().1 * shell_steps;
        let (over, rest) = if r.one_at_a_time() {
            (
                format!("{over:.0} ms"),
                format!("{:.0} ms", wmw - pre - bal - over),
            )
        } else {
            ("—".into(), "—".into())
        };
        println!(
            "| {} | {wmw:.0} ms | {overhead} | {differs} | {outside} | {pre:.0} ms | {bal:.0} ms | {over} | {rest} | {} |",
            r.label, r.deck.events
        );
    }
    println!();
}

/// Each step's mean time alone and in deckhand over each link, for the rows of one size.
fn print_per_phase(rows: &[&Compared]) {
    let Some(first) = rows.first() else { return };
    let mut names: Vec<String> = Vec::new();
    for (_, p, _) in &first.deck.steps {
        if !names.contains(p) {
            names.push(p.clone());
        }
    }
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    print!(
        "| step | alone ({}) |",
        first
            .label
            .split(", ")
            .take(2)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in rows {
        print!(" deckhand, {} |", r.label.rsplit(", ").next().unwrap_or(""));
    }
    println!();
    println!("|{}", " --- |".repeat(rows.len() + 2));
    for name in &names {
        let alone = mean(
            first
                .work
                .steps
                .iter()
                .filter(|(_, s, _)| s == name)
                .map(|(_, _, d)| ms(*d))
                .collect(),
        );
        let alone = if alone > 0.0 {
            format!("{alone:.1} ms")
        } else {
            "—".into()
        };
        print!("| {name} | {alone} |");
        for r in rows {
            let d = mean(
                r.deck
                    .steps
                    .iter()
                    .filter(|(_, p, _)| p == name)
                    .map(|(_, _, d)| *d as f64 + 0.5)
                    .collect(),
            );
            print!(" {d:.1} ms |");
        }
        println!();
    }
    println!();
}

// ------------------------------------------------------------------------------ the parts

/// Connecting and one step (`true`) on each link, deckhand's transport beside plain `ssh`.
async fn links(rig: &Rig, links: &[Link]) {
    println!("### Connecting and one step, per link\n");
    println!(
        "A slow link adds {} each way ({} per round trip); the delay proxy accepts the TCP connection itself, so TCP's own handshake is not delayed. `ssh … true` is OpenSSH alone: a fresh connection (key exchange curve25519, public key login), one command, and the exit. On a slow link each figure is compared with the same link without the delay (direct, or the bastion): the difference, in round trips, is how many the link costs.\n",
        format_ms(ONE_WAY),
        format_ms(ONE_WAY * 2)
    );
    println!("| link | deckhand connects (median of 5) | `ssh … true`, no reuse (median of 5) | one step (`true`) on an open connection (median of 30, p95) |");
    println!("| --- | --- | --- | --- |");
    let rtt = ms(ONE_WAY * 2);
    // A slow link's figures beside the same link without the delay: the difference is what the
    // round trips cost, counted in round trips.
    let mut fast: Vec<(Link, [f64; 3])> = Vec::new();
    let in_rtt = |link: Link, i: usize, v: f64, fast: &[(Link, [f64; 3])]| {
        let base = match link {
            Link::Slow => Link::Direct,
            Link::SlowBastion => Link::Bastion,
            _ => return format!("{v:.1} ms"),
        };
        match fast.iter().find(|(l, _)| *l == base) {
            Some((_, f)) => format!("{v:.0} ms: {:.1} round trips more", (v - f[i]) / rtt),
            None => format!("{v:.0} ms"),
        }
    };
    for &link in links {
        let mut connects = Vec::new();
        let mut t_open = None;
        for _ in 0..5 {
            let t = SshTransport::new(rig.target(0, link));
            let started = Instant::now();
            t.connect()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", link.word()));
            connects.push(ms(started.elapsed()));
            t_open = Some(t);
        }
        let mut plain = Vec::new();
        for _ in 0..5 {
            plain.push(plain_ssh(rig, link));
        }
        let t = t_open.expect("a connection");
        let never = CancellationToken::new();
        let req = ExecRequest::new("true").timeout(Duration::from_secs(30));
        for _ in 0..3 {
            t.exec(&req, None, &never).await.expect("warm-up step");
        }
        let mut step = Vec::new();
        for _ in 0..30 {
            let s = Instant::now();
            let out = t.exec(&req, None, &never).await.expect("step");
            assert!(out.success(), "`true` failed over {}", link.word());
            step.push(ms(s.elapsed()));
        }
        step.sort_by(|a, b| a.total_cmp(b));
        let p95 = step[(step.len() - 1) * 95 / 100];
        let m = [median(connects), median(plain), median(step)];
        println!(
            "| {} | {} | {} | {} (p95 {p95:.1} ms) |",
            link.word(),
            in_rtt(link, 0, m[0], &fast),
            in_rtt(link, 1, m[1], &fast),
            in_rtt(link, 2, m[2], &fast),
        );
        fast.push((link, m));
    }
    println!();
}

fn format_ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Plain OpenSSH: a fresh connection to node 1 over `link` running `true`; its time in ms.
fn plain_ssh(rig: &Rig, link: Link) -> f64 {
    let known = rig.fleet.known_hosts.display().to_string();
    let mut cmd = std::process::Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ControlMaster=no",
    ])
    .args(["-o", "ControlPath=none", "-o", "StrictHostKeyChecking=yes"])
    .args([
        "-o",
        "KexAlgorithms=curve25519-sha256",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .arg("-o")
    .arg(format!("UserKnownHostsFile={known}"))
    .arg("-i")
    .arg(&rig.fleet.client_key)
    .args(["-p", &rig.node_port(0, link).to_string()]);
    if let Some(j) = rig.jump(link) {
        // The jump host's own ssh gets the same options through -o on the command line only in
        // newer OpenSSH; a ProxyCommand carries them on every version.
        cmd.arg("-o").arg(format!(
            "ProxyCommand=ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o KexAlgorithms=curve25519-sha256 -o IdentitiesOnly=yes -o UserKnownHostsFile={known} -i {} -W %h:%p -p {} {}",
            rig.fleet.client_key.display(),
            j.rsplit(':').next().unwrap_or("22"),
            j.rsplit_once(':').map(|(h, _)| h).unwrap_or(&j),
        ));
    }
    cmd.arg(format!("{}@127.0.0.1", rig.fleet.user))
        .arg("true")
        .stdin(std::process::Stdio::null());
    let started = Instant::now();
    let out = cmd.output().expect("run ssh");
    let took = ms(started.elapsed());
    assert!(
        out.status.success(),
        "plain ssh over {} failed: {}",
        link.word(),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

async fn part_deploy(quick: bool, direct: bool, bastion: bool, slow: bool, batches: bool) {
    let all: &[Link] = if direct {
        &[Link::Direct]
    } else if bastion {
        &[Link::Direct, Link::Bastion]
    } else if slow {
        &[Link::Slow]
    } else {
        &[Link::Direct, Link::Bastion, Link::Slow, Link::SlowBastion]
    };
    let runs: &[(usize, Turns)] = if quick {
        &[(5, Turns::OneAtATime), (10, Turns::Percent(20))]
    } else if batches {
        &[(50, Turns::Percent(20))]
    } else {
        &[
            (5, Turns::OneAtATime),
            (20, Turns::OneAtATime),
            (50, Turns::Percent(20)),
        ]
    };
    let biggest = runs.iter().map(|(n, _)| *n).max().unwrap_or(5);
    let rig = Rig::start(biggest, true, ONE_WAY);
    println!("## Rolling deploy: deckhand against the work alone\n");
    println!("Load average at the start: {}\n", load_average());
    links(&rig, all).await;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &(n, turns) in runs {
        let haproxy = rig.haproxy(n);
        for (k, &link) in all.iter().enumerate() {
            match compare(&rig, &haproxy, n, link, turns, &format!("{k}")).await {
                Ok(c) => rows.push(c),
                Err(e) => {
                    eprintln!("{e}");
                    failures.push(e);
                }
            }
        }
    }
    println!("### Deploys\n");
    print_compared(&rows, ONE_WAY * 2);
    println!("Each step's mean time, alone and in deckhand (deckhand's whole milliseconds plus half a millisecond), one at a time:\n");
    let biggest_one_at_a_time = runs
        .iter()
        .filter(|(_, t)| *t == Turns::OneAtATime)
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(5);
    let same: Vec<&Compared> = rows
        .iter()
        .filter(|r| {
            r.label
                .starts_with(&format!("{biggest_one_at_a_time} nodes, one at a time"))
        })
        .collect();
    print_per_phase(&same);
    let batched: Vec<&Compared> = rows
        .iter()
        .filter(|r| r.label.contains("batches"))
        .collect();
    if !batched.is_empty() {
        println!("The same in batches (the work alone runs a batch's commands side by side, with nothing else on the machine):\n");
        print_per_phase(&batched);
    }
    print_failures(&failures);
    println!("Load average at the end: {}\n", load_average());
}

/// A deploy with deckhand's builtins, then a rollback of every node, under the load: both must
/// lose no request.
async fn part_rollback(quick: bool) {
    let n = if quick { 5 } else { 20 };
    let rig = Rig::start(n, true, ONE_WAY);
    println!("## Deploy and roll back: {n} nodes, one at a time, with deckhand's builtins\n");
    println!("Load average at the start: {}\n", load_average());
    println!("| link | deploy: wall (events) | failed requests | rollback: wall (events) | failed requests | every node back on | load |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let haproxy = rig.haproxy(n);
    for (k, link) in [Link::Direct, Link::Bastion, Link::Slow]
        .into_iter()
        .enumerate()
    {
        let inv = rig.inventory_with_builtins(n, link, &haproxy);
        let state = rig.dir.join("state");
        // Something to go back to: a first release, then the one that is rolled back.
        let first = format!("rb{k}-1");
        if let Err(e) = deck::deploy(&inv, &state, &first).await {
            println!(
                "| {} | the first deploy failed: {} | | | | | |",
                link.word(),
                e.replace('\n', " ")
            );
            continue;
        }
        let load_now = load1();
        let load = start_load(&haproxy);
        let deployed = deck::deploy(&inv, &state, &format!("rb{k}-2")).await;
        let deploy_failed = failed(&load.finish().await);
        let load = start_load(&haproxy);
        let rolled = deck::rollback(&inv, &state).await;
        let rollback_failed = failed(&load.finish().await);
        let back: Vec<String> = (0..n).filter_map(|i| rig.fleet.version(i)).collect();
        let all_back = if back.len() == n && back.iter().all(|v| *v == first) {
            format!("{first} (all {n})")
        } else {
            format!("**not all**: {back:?}")
        };
        let cell = |r: &Result<deck::DeckRun, String>| match r {
            Ok(d) => format!("{} ({})", secs(d.wall), d.events),
            Err(e) => format!("failed: {}", e.replace('\n', " ")),
        };
        println!(
            "| {} | {} | {deploy_failed} | {} | {rollback_failed} | {all_back} | {load_now} |",
            link.word(),
            cell(&deployed),
            cell(&rolled),
        );
    }
    println!();
    println!("Load average at the end: {}\n", load_average());
}

async fn part_tools(quick: bool) {
    let sizes: &[usize] = if quick { &[5] } else { &[5, 20] };
    let rig = Rig::start(sizes[sizes.len() - 1], false, ONE_WAY);
    println!("## The same deploy with Capistrano and Ansible\n");
    println!("Load average at the start: {}\n", load_average());
    let have_cap = tools::have("cap");
    let have_ansible = tools::have("ansible-playbook");
    if !have_cap || !have_ansible {
        eprintln!(
            "Capistrano or Ansible is missing (scripts/bench.sh installs them: apt-get install capistrano ansible-core); their columns stay empty"
        );
    }
    println!("| N, one at a time | the work alone | deckhand | Capistrano | Ansible | failed requests (deckhand / Capistrano / Ansible) | load |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for &n in sizes {
        let haproxy = rig.haproxy(n);
        let c = match compare(&rig, &haproxy, n, Link::Direct, Turns::OneAtATime, "t").await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                println!(
                    "| {n} | deckhand failed: {} | | | | | |",
                    e.replace('\n', " ")
                );
                continue;
            }
        };
        let work = c.work.wall;
        let times =
            |d: Duration| format!("{} ({:.1}×)", secs(d), d.as_secs_f64() / work.as_secs_f64());
        let mut cells = vec![times(c.deck.wall)];
        let mut fails = vec![c.failed.clone()];
        for (tool, present) in [("capistrano", have_cap), ("ansible", have_ansible)] {
            if !present {
                cells.push("not installed".into());
                fails.push("—".into());
                continue;
            }
            eprintln!("{n} nodes: {tool} …");
            let release = format!("{}{n}", &tool[..3]);
            let load = start_load(&haproxy);
            let took = tokio::task::block_in_place(|| match tool {
                "capistrano" => tools::capistrano(&rig, n, 1, &release, &haproxy.socket),
                _ => tools::ansible(&rig, n, 1, &release, &haproxy.socket),
            });
            let report = load.finish().await;
            for i in 0..n {
                let v = rig.fleet.version(i);
                assert_eq!(
                    v.as_deref(),
                    Some(release.as_str()),
                    "{tool} left {} serving {v:?}",
                    rig.fleet.nodes[i].name
                );
            }
            cells.push(times(took));
            fails.push(failed(&report));
        }
        println!(
            "| {n} ({} commands) | {} | {} | {} | {} | {} | {} |",
            steps::commands(n),
            secs(work),
            cells[0],
            cells[1],
            cells[2],
            fails.join(" / "),
            c.load
        );
    }
    println!();
    println!("Load average at the end: {}\n", load_average());
}

async fn part_scale(quick: bool) {
    let n_nodes: usize = if quick { 20 } else { 100 };
    let rig = Rig::start(n_nodes, false, ONE_WAY);
    println!("## Scale: {n_nodes} nodes\n");
    println!("Load average at the start: {}\n", load_average());
    let bounded = scale::connect_all(&rig, scale::PREFLIGHT_AT_ONCE).await;
    let at_once = scale::connect_all(&rig, n_nodes).await;
    println!("| measure | figure | target |");
    println!("| --- | --- | --- |");
    println!(
        "| connect {n_nodes} nodes, {} at a time (as preflight does) | {} | < 3 s |",
        scale::PREFLIGHT_AT_ONCE,
        secs(bounded)
    );
    println!(
        "| connect {n_nodes} nodes, all at once | {} | |",
        secs(at_once)
    );
    let haproxy = rig.haproxy(n_nodes);
    let c = match compare(&rig, &haproxy, n_nodes, Link::Direct, Turns::Count(10), "s").await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let pre = c.deck.report.as_ref().map(|r| r.preflight_ms).unwrap_or(0);
    println!(
        "| headless deploy, batches of 10: preflight and locks (time report) | {} | |",
        secs(Duration::from_millis(pre))
    );
    println!(
        "| headless deploy, batches of 10: wall / work alone | {} / {} = {:.2} ({} events; failed requests {}) | |",
        secs(c.deck.wall),
        secs(c.work.wall),
        c.deck.wall.as_secs_f64() / c.work.wall.as_secs_f64(),
        c.deck.events,
        c.failed
    );
    eprintln!("{n_nodes} nodes: the console …");
    let inv = rig.inventory(n_nodes, Link::Direct, Turns::Count(10), &haproxy);
    let load = start_load(&haproxy);
    let keys = tokio::task::block_in_place(|| scale::console(&rig, &inv, "console-1", 8));
    let report = load.finish().await;
    println!(
        "| console deploy, batches of 10: key `p` → PAUSING on screen (tmux, {} presses; one capture of the screen takes {:.1} ms) | median {:.1} ms, max {:.1} ms | < 50 ms |",
        keys.pause.len(),
        keys.capture,
        median(keys.pause.clone()),
        max(&keys.pause)
    );
    println!(
        "| console deploy: key `p` again → DEPLOYING on screen | median {:.1} ms, max {:.1} ms | < 50 ms |",
        median(keys.resume.clone()),
        max(&keys.resume)
    );
    println!(
        "| console deploy: wall (with its pauses) ; failed requests | {} ; {} | 0 |",
        secs(keys.wall),
        failed(&report)
    );
    println!();
    println!("Load average at the end: {}\n", load_average());
}

fn main() {
    // `cargo bench` passes `--bench`; anything else that is not a flag names a part.
    let mut parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let quick = parts.iter().any(|p| p == "quick");
    let direct = parts.iter().any(|p| p == "direct");
    let bastion = parts.iter().any(|p| p == "bastion");
    let slow = parts.iter().any(|p| p == "slow");
    let batches = parts.iter().any(|p| p == "batches");
    parts.retain(|p| !["quick", "direct", "bastion", "slow", "batches"].contains(&p.as_str()));
    let parts = if parts.is_empty() {
        vec![
            "deploy".into(),
            "rollback".into(),
            "tools".into(),
            "scale".into(),
        ]
    } else {
        parts
    };
    for p in &parts {
        if !["deploy", "rollback", "tools", "scale"].contains(&p.as_str()) {
            eprintln!("unknown part `{p}`: the parts are deploy, rollback, tools and scale");
            std::process::exit(2);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("Machine: {}; all servers on 127.0.0.1.\n", machine());
    let started = Instant::now();
    rt.block_on(async {
        for p in &parts {
            match p.as_str() {
                "deploy" => part_deploy(quick, direct, bastion, slow, batches).await,
                "rollback" => part_rollback(quick).await,
                "tools" => part_tools(quick).await,
                _ => part_scale(quick).await,
            }
        }
    });
    eprintln!("the bench took {}", secs(started.elapsed()));
}
