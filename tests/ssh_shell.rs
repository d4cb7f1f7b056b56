//! The long-lived shells the SSH transport keeps on a node, against real sshd servers on
//! 127.0.0.1: steps never mix their output, a shell that dies loses its step (never passes it)
//! and is replaced, a console that goes away leaves nothing running, leftovers of one step are
//! neither killed with the next nor heard in its output, and no script reaches a process list.

mod support;

use std::sync::Arc;
use std::time::Duration;

use deckhand::transport::local::LocalTransport;
use deckhand::transport::ssh::SshTransport;
use deckhand::transport::{Ended, ExecOutcome, ExecRequest, Stream, Transport};
use support::{Fleet, FleetSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn run(t: &dyn Transport, script: &str) -> ExecOutcome {
    t.exec(
        &ExecRequest::new(script).timeout(Duration::from_secs(60)),
        None,
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// A node connected (one shell), and, if `turn`, its turn prepared (a second shell): the
/// shells then (`before`); then a step that leaves `app` running in the background with its
/// output sent elsewhere, as a restart does; the step's outcome.
async fn app_left_on_a_new_connection(
    app: &str,
    turn: bool,
) -> (Fleet, SshTransport, Vec<i32>, ExecOutcome) {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    assert_eq!(shells(&fleet).len(), 1, "one shell after connecting");
    if turn {
        t.prepare();
        // Both ready: the second of two steps at once waits for the one being opened.
        two_steps_at_once(&t, "").await;
        assert_eq!(
            shells(&fleet).len(),
            2,
            "two shells once the turn is prepared"
        );
    }
    let before = shells(&fleet);
    let out = run(&t, &format!("{app} >/dev/null 2>&1 & echo started")).await;
    assert_eq!(out.stdout, "started\n");
    (fleet, t, before, out)
}

/// Two steps side by side, `<prefix>echo 0` and `<prefix>echo 1`: each says its own number.
async fn two_steps_at_once(t: &dyn Transport, prefix: &str) {
    let both = (0..2).map(|i| async move { run(t, &format!("{prefix}echo {i}")).await });
    for (i, out) in futures::future::join_all(both)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(out.stdout, format!("{i}\n"));
    }
}

/// The shells on the fleet once there are `n` of them (within ten seconds).
async fn shells_soon(fleet: &Fleet, n: usize) -> Vec<i32> {
    support::wait::poll_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let s = shells(fleet);
            (s.len() == n).then_some(s)
        },
    )
    .await
    .unwrap_or_else(|| panic!("not {n} shells: {:?}", shells(fleet)))
}

/// Whether processes matching `needle` show up on the fleet within two seconds.
async fn running_soon(fleet: &Fleet, needle: &str) -> bool {
    for _ in 0..100 {
        if !fleet.survivors(needle).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// What is left of `needle` on the fleet after up to `secs` seconds.
async fn gone_within(fleet: &Fleet, needle: &str, secs: u64) -> Vec<(i32, String)> {
    let mut left = fleet.survivors(needle);
    for _ in 0..secs * 10 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = fleet.survivors(needle);
    }
    left
}

/// Two CPU hogs beside the test, as on a busy console machine; stopped on drop.
struct Busy(Vec<std::process::Child>);

impl Busy {
    fn start() -> Busy {
        Busy(
            (0..2)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The shells deckhand keeps on the fleet (see `Fleet::shells`).
fn shells(fleet: &Fleet) -> Vec<i32> {
    fleet.shells(None)
}

#[tokio::test]
async fn output_printed_after_the_step_s_shell_exits_is_kept() {
    // The exit status used to arrive first and close the mux session, and with it whatever
    // output was still on its way: here, everything the background child prints.
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let out = run(&t, "(sleep 0.3; echo late; echo late-err >&2) & echo early").await;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "early\nlate\n");
    assert_eq!(out.stderr_tail, vec!["late-err".to_string()]);
}

#[tokio::test]
async fn steps_back_to_back_and_side_by_side_never_mix_their_output_on_a_busy_machine() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    let _busy = Busy::start();
    for round in 0..30 {
        for i in 0..5 {
            let id = format!("{round}-{i}");
            let out = run(
                &t,
                &format!("echo out-{id}; echo err-{id} >&2; printf 'tail-{id}'"),
            )
            .await;
            assert_eq!(out.stdout, format!("out-{id}\ntail-{id}\n"));
            assert_eq!(out.stderr_tail, vec![format!("err-{id}")]);
        }
        // More at once than the pool holds shells: the rest wait for one, none mixes.
        let many = (0..8).map(|i| {
            let t = &t;
            async move {
                let id = format!("{round}-c{i}");
                let out = run(t, &format!("sleep 0.0{i}; echo {id}; echo {id} >&2")).await;
                (id, out)
            }
        });
        for (id, out) in futures::future::join_all(many).await {
            assert_eq!(out.stdout, format!("{id}\n"));
            assert_eq!(out.stderr_tail, vec![id.clone()]);
        }
    }
    assert_eq!(fleet.logins(0), 1, "all of it over one connection");
    let open = shells(&fleet);
    assert!(
        !open.is_empty() && open.len() <= deckhand::transport::ssh::MAX_SHELLS,
        "{} shells open, the pool allows {}",
        open.len(),
        deckhand::transport::ssh::MAX_SHELLS
    );
}

#[tokio::test]
async fn a_process_left_holding_the_output_is_cut_off_and_never_heard_in_the_next_step() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let started = std::time::Instant::now();
    let out = run(&t, "(sleep 3.01; echo LEFTOVER) & echo first").await;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "first\n");
    assert!(
        out.stderr_tail
            .iter()
            .any(|l| l.contains("cut off") && l.contains("still holds its output")),
        "the operator is told why: {:?}",
        out.stderr_tail
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the step ended before its leftover did"
    );
    assert!(
        !fleet.survivors("sleep 3.01").is_empty(),
        "what a step leaves running is left alone"
    );
    // The next step runs while the leftover prints: its output is its own.
    let next = run(&t, "sleep 1.5; echo second").await;
    assert_eq!(next.stdout, "second\n");
    assert!(next.stderr_tail.is_empty(), "{:?}", next.stderr_tail);
}

#[tokio::test]
async fn a_step_that_reads_stdin_gets_its_end_and_the_shell_goes_on() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let out = run(&t, "cat; read x; echo \"read $? [$x]\"; head -c 10 | wc -c").await;
    assert_eq!(out.stdout, "read 1 []\n0\n");
    // The requests after it still reach the shell whole.
    for i in 0..3 {
        assert_eq!(run(&t, &format!("echo {i}")).await.stdout, format!("{i}\n"));
    }
}

#[tokio::test]
async fn huge_lines_nul_bytes_and_invalid_utf8_arrive_whole_and_clean() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let script = "head -c 1048576 /dev/zero | tr '\\0' x; echo; printf 'a\\0b\\n'; printf 'bad \\377\\376 bytes\\n'; echo after";
    let out = t
        .exec(
            &ExecRequest::new(script),
            Some(&tx),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert!(out.success(), "{:?}", out.stderr_tail);
    drop(tx);
    let mut lines = Vec::new();
    while let Some((s, l)) = rx.recv().await {
        assert_eq!(s, Stream::Stdout);
        lines.push(l);
    }
    assert_eq!(
        lines.len(),
        4,
        "{:?}",
        lines.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(lines[0].len(), 1 << 20);
    assert!(lines[0].bytes().all(|b| b == b'x'));
    assert_eq!(lines[1], "ab");
    assert_eq!(lines[2], "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(lines[3], "after");
    // The megabyte line is more than a step keeps for state reads; what is kept is a prefix.
    assert_eq!(out.stdout, "");
    // And a script far longer than the line-by-line path.
    let long: String = (0..4000).map(|i| format!("v{i}=\"{i}\"\n")).collect();
    let out = run(&t, &format!("{long}echo \"$v0 $v3999\"")).await;
    assert_eq!(out.stdout, "0 3999\n");
}

#[tokio::test]
async fn exit_statuses_and_the_stderr_tail_come_back_as_the_step_left_them() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    for (script, code) in [
        ("true", 0),
        ("false", 1),
        ("exit 2", 2),
        ("exit 255", 255),
        ("no_such_command_here", 127),
        ("sh -c 'kill -9 $$'", 137),
        ("(exit 7); echo $?; exit 3", 3),
    ] {
        let out = run(&t, script).await;
        assert_eq!(out.ended, Ended::Exited(Some(code)), "{script}: {out:?}");
    }
    let out = run(
        &t,
        "for i in 1 2 3 4 5 6 7; do echo \"e$i\" >&2; done; exit 4",
    )
    .await;
    assert_eq!(out.stderr_tail, vec!["e3", "e4", "e5", "e6", "e7"]);
    assert_eq!(out.describe_failure(None), "exited with status 4: e7");
    let out = run(&t, "not_here_either").await;
    assert_eq!(
        out.stderr_tail,
        vec!["sh: 1: eval: not_here_either: not found"]
    );
}

#[tokio::test]
async fn a_timeout_stops_the_step_but_not_what_an_earlier_step_left_running() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    // Started in the background with its output elsewhere, as a restart phase would, and with
    // every descriptor it inherited closed (as a daemon does), so the same shell runs the next
    // step: only the rule for which processes are the step's can spare it. fd 3 is closed
    // first: closed last, a loaded node can leave it open a moment after the output closed,
    // which reads as an app holding the step's fd 3 (its shell is then replaced, see
    // docs/ssh.md), and this test is about the shell a timeout keeps.
    let out = run(&t, "nohup sleep 4501 3>&- >/dev/null 2>&1 & echo started").await;
    assert_eq!(out.stdout, "started\n");
    // Connecting opened one shell: the step used it and gave it back.
    let before = shells(&fleet);
    assert_eq!(before.len(), 1, "one shell after connecting");
    let req = ExecRequest::new("sleep 4502 & sleep 4503").timeout(Duration::from_millis(800));
    let out = t
        .exec(&req, None, &CancellationToken::new())
        .await
        .expect("runs");
    assert_eq!(out.ended, Ended::TimedOut);
    let left = fleet.survivors("sleep 450");
    assert_eq!(
        left.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        vec!["sleep 4501"],
        "only the earlier step's process may be left"
    );
    assert_eq!(run(&t, "echo again").await.stdout, "again\n");
    assert_eq!(fleet.logins(0), 1);
    assert_eq!(
        shells(&fleet),
        before,
        "the shell was kept for the next steps, and no other was opened"
    );
}

#[tokio::test]
async fn dropping_the_transport_mid_step_stops_the_step_on_the_node() {
    let fleet = FleetSpec::nodes(1).start();
    let t = Arc::new(SshTransport::new(fleet.target(0)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = {
        let t = t.clone();
        tokio::spawn(async move {
            let _ = t
                .exec(
                    &ExecRequest::new("sleep 4601 & echo up; sleep 4602"),
                    Some(&tx),
                    &CancellationToken::new(),
                )
                .await;
        })
    };
    rx.recv().await.expect("the step started");
    assert!(running_soon(&fleet, "sleep 460").await);
    task.abort();
    let _ = task.await;
    drop(t);
    let left = gone_within(&fleet, "sleep 460", 8).await;
    assert!(left.is_empty(), "the step outlived its console: {left:?}");
    let shells = gone_within(&fleet, "dh_fail()", 5).await;
    assert!(
        shells.is_empty(),
        "the shell outlived its console: {shells:?}"
    );
    // And the connection itself: a master left behind would keep its sshd session alive.
    for _ in 0..50 {
        if fleet.connections(0) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fleet.connections(0),
        0,
        "the connection outlived its console"
    );
}

#[tokio::test]
async fn a_master_that_dies_mid_step_takes_the_step_with_it_on_the_node() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    let socket = t.control_socket().await.expect("an open master");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = ExecRequest::new("sleep 4701 & echo up; sleep 4702");
    let never = CancellationToken::new();
    let run = t.exec(&req, Some(&tx), &never);
    let kill = async {
        rx.recv().await;
        assert!(running_soon(&fleet, "sleep 470").await);
        let st = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&socket)
            .args(["-O", "exit", "node"])
            .stderr(std::process::Stdio::null())
            .status()
            .expect("ssh -O exit");
        assert!(st.success());
    };
    let (out, _) = tokio::join!(run, kill);
    let err = out.expect_err("a step cannot pass without its connection");
    assert!(err.to_string().contains("lost the SSH connection"), "{err}");
    let left = gone_within(&fleet, "sleep 470", 8).await;
    assert!(
        left.is_empty(),
        "the step outlived its connection: {left:?}"
    );
    // The next step opens a new connection and runs.
    assert_eq!(run_ok(&t, "echo next").await, "next\n");
}

async fn run_ok(t: &SshTransport, script: &str) -> String {
    run(t, script).await.stdout
}

#[tokio::test]
async fn a_shell_killed_mid_step_loses_the_step_and_the_next_step_gets_a_new_one() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = ExecRequest::new("sleep 4801 & echo up; sleep 4802");
    let never = CancellationToken::new();
    let run = t.exec(&req, Some(&tx), &never);
    let kill = async {
        rx.recv().await;
        assert!(running_soon(&fleet, "sleep 480").await);
        // The shell sshd started (its session's leader), killed as a crash or the OOM killer
        // would.
        let leaders = shells(&fleet);
        assert!(!leaders.is_empty(), "no shell found on the node");
        for pid in leaders {
            // SAFETY: plain syscall on a process of the test fleet.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    };
    let (out, _) = tokio::join!(run, kill);
    let err = out.expect_err("a step whose shell died is never passed");
    let msg = err.to_string();
    assert!(msg.contains("lost the shell"), "{msg}");
    assert!(msg.contains("unknown"), "{msg}");
    let left = gone_within(&fleet, "sleep 480", 8).await;
    assert!(
        left.is_empty(),
        "the lost step's processes were left: {left:?}"
    );
    assert_eq!(run_ok(&t, "echo next").await, "next\n");
    assert_eq!(fleet.logins(0), 1, "a new shell, on the same connection");
}

#[tokio::test]
async fn a_script_and_its_secrets_never_reach_a_process_list() {
    let secret = format!("s3cr3t-{}", std::process::id());
    let script = format!("DB_PASSWORD='{secret}'; export DB_PASSWORD; echo ready; sleep 2");
    let fleet = FleetSpec::nodes(1).start();
    let ssh = SshTransport::new(fleet.target(0));
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalTransport::new(dir.path());
    for t in [&ssh as &dyn Transport, &local] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let never = CancellationToken::new();
        let req = ExecRequest::new(script.clone());
        let step = t.exec(&req, Some(&tx), &never);
        let watch = async {
            rx.recv().await.expect("the step started");
            // Every process of this machine (the fleet's nodes run here too), while the step
            // that holds the secret runs.
            let mut seen = Vec::new();
            for _ in 0..10 {
                for p in support::processes() {
                    if p.cmdline.contains(&secret) {
                        seen.push((p.pid, p.cmdline));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        };
        let (out, seen) = tokio::join!(step, watch);
        assert!(out.expect("runs").success());
        assert!(seen.is_empty(), "the secret is in a process list: {seen:?}");
    }
}

#[tokio::test]
async fn a_node_s_turn_gets_its_second_shell_in_the_background_and_only_on_a_connection() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    // Not connected: preparing opens no connection (preflight decides when to connect).
    t.prepare();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fleet.logins(0), 0, "preparing connected");
    t.connect().await.expect("connects");
    let first = shells(&fleet);
    assert_eq!(first.len(), 1, "connecting opens one shell");
    t.prepare();
    let both = shells_soon(&fleet, 2).await;
    assert!(both.contains(&first[0]), "{both:?}, before {first:?}");
    // Two are ready: preparing again opens no third, and two steps at once take them.
    t.prepare();
    two_steps_at_once(&t, "sleep 0.2; ").await;
    assert_eq!(shells(&fleet), both, "no shell was opened for them");
    assert_eq!(fleet.logins(0), 1);
}

#[tokio::test]
async fn an_app_left_holding_only_the_end_marker_ends_the_step_and_its_shell_is_replaced() {
    // What a restart does: the app goes to the background with its output sent to a log, and
    // keeps what else it inherited, the step's end-of-step marker among it. The node says the
    // status as soon as the output closed, the console asks twice and the step ends: no
    // output is cut, no note, and the shell the app is still attached to takes no other step.
    let (fleet, t, before, out) = app_left_on_a_new_connection("sleep 4701", true).await;
    assert!(out.success(), "{out:?}");
    assert!(out.stderr_tail.is_empty(), "no note: {:?}", out.stderr_tail);
    assert!(!fleet.survivors("sleep 4701").is_empty(), "the app runs on");
    // The shell is closed, and another opens in its place in the background, asked for by no
    // step, although the turn's other shell is ready (its requests acknowledge the closing,
    // see docs/ssh.md): the next steps find two ready, as before.
    let after = support::wait::poll_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let s = shells(&fleet);
            (s.len() == 2 && s.iter().filter(|p| before.contains(p)).count() == 1).then_some(s)
        },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "the step's shell was not replaced: {:?}, before {before:?}",
            shells(&fleet)
        )
    });
    two_steps_at_once(&t, "sleep 0.2; ").await;
    assert_eq!(shells(&fleet), after, "no shell was opened for them");
    assert_eq!(fleet.logins(0), 1);
}

#[tokio::test]
async fn a_step_that_comes_while_a_retired_shell_is_being_replaced_waits_for_the_replacement() {
    // No turn prepared: the step's shell was the only one, so a replacement opens as soon as
    // it is retired. The next step comes while the replacement is still starting and waits for
    // it rather than opening a shell of its own (the pool would keep two).
    let (fleet, t, before, _) = app_left_on_a_new_connection("sleep 4702", false).await;
    assert_eq!(run(&t, "echo next").await.stdout, "next\n");
    // Once the retired shell is gone: the replacement, nothing more.
    let settled = support::wait::poll_async(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let s = shells(&fleet);
            (!s.iter().any(|p| before.contains(p))).then_some(s)
        },
    )
    .await
    .unwrap_or_else(|| panic!("the retired shell stayed: {:?}", shells(&fleet)));
    assert_eq!(settled.len(), 1, "shells: {settled:?}, before {before:?}");
    assert_eq!(fleet.logins(0), 1);
}

#[tokio::test]
async fn a_step_that_signals_its_own_process_group_spares_the_shell_and_earlier_leftovers() {
    // `trap 'kill 0' EXIT` (stop my background jobs when I end) is a common idiom: it must not
    // take the shell down with the step, nor what an earlier step started.
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let out = run(&t, "nohup sleep 4901 >/dev/null 2>&1 & echo started").await;
    assert_eq!(out.stdout, "started\n");
    let out = run(&t, "trap 'kill 0' EXIT; sleep 4902 & echo ok").await;
    assert_eq!(out.stdout, "ok\n");
    let left = gone_within(&fleet, "sleep 4902", 5).await;
    assert!(left.is_empty(), "the step's own kill missed: {left:?}");
    assert_eq!(run(&t, "echo next").await.stdout, "next\n");
    assert_eq!(
        fleet
            .survivors("sleep 490")
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<Vec<_>>(),
        vec!["sleep 4901"],
        "the earlier step's process is left alone"
    );
    assert_eq!(fleet.logins(0), 1);
}

#[tokio::test]
async fn a_step_stopped_as_it_starts_is_stopped_whichever_comes_first() {
    // The stop may reach the shell before the step's subshell exists, while it starts, or
    // after: each way the step ends stopped, nothing of it runs on, and the shell goes on.
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    for delay_ms in 0..20u64 {
        let cancel = CancellationToken::new();
        let stop = {
            let cancel = cancel.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                cancel.cancel();
            }
        };
        let req = ExecRequest::new("sleep 5001 & sleep 5002");
        let (out, _) = tokio::join!(t.exec(&req, None, &cancel), stop);
        assert_eq!(
            out.expect("runs").ended,
            Ended::Cancelled,
            "after {delay_ms} ms"
        );
        let left = gone_within(&fleet, "sleep 500", 5).await;
        assert!(left.is_empty(), "after {delay_ms} ms: {left:?}");
        assert_eq!(run(&t, "echo on").await.stdout, "on\n");
    }
    assert_eq!(fleet.logins(0), 1);
}
