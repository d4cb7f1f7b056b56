//! The SSH transport against real sshd servers on 127.0.0.1: running steps, streaming and
//! sanitising their output, killing them on the node, copying files, reusing one connection.

mod support;

use std::time::Duration;

use deckhand::transport::ssh::SshTransport;
use deckhand::transport::{Ended, ExecRequest, Stream, Transport, TransportError};
use support::FleetSpec;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn collect(rx: &mut mpsc::UnboundedReceiver<(Stream, String)>) -> Vec<(Stream, String)> {
    let mut v = Vec::new();
    while let Ok(l) = rx.try_recv() {
        v.push(l);
    }
    v
}

#[tokio::test]
async fn runs_a_step_and_streams_its_lines_with_the_exit_status() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let script = "echo one; echo warn >&2; echo \"user=$(id -un)\"; printf 'no newline'; exit 3";
    let out = t
        .exec(
            &ExecRequest::new(script),
            Some(&tx),
            &CancellationToken::new(),
        )
        .await
        .expect("the step runs");
    assert_eq!(out.ended, Ended::Exited(Some(3)));
    assert_eq!(
        out.stdout,
        format!("one\nuser={}\nno newline\n", fleet.user)
    );
    assert_eq!(out.stderr_tail, vec!["warn".to_string()]);
    let lines = collect(&mut rx);
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(
        stdout,
        vec!["one", &format!("user={}", fleet.user), "no newline"]
    );
    assert!(lines.contains(&(Stream::Stderr, "warn".to_string())));
    assert!(
        !lines.iter().any(|(_, l)| l.contains("@dh")),
        "the shell's bookkeeping reached the operator: {lines:?}"
    );

    let ok = t
        .exec(&ExecRequest::new("true"), None, &CancellationToken::new())
        .await
        .expect("runs");
    assert!(ok.success());
}

#[tokio::test]
async fn lines_arrive_while_the_step_is_still_running() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let req = ExecRequest::new("echo started; sleep 30; echo never");
    let run = t.exec(&req, Some(&tx), &cancel);
    let watch = async {
        // The first line shows up although the step has 30 s to go; then stop it.
        let first = rx.recv().await;
        cancel.cancel();
        first
    };
    let (out, first) = tokio::join!(run, watch);
    assert_eq!(first, Some((Stream::Stdout, "started".to_string())));
    assert_eq!(out.expect("runs").ended, Ended::Cancelled);
}

#[tokio::test]
async fn remote_escape_sequences_arrive_clean() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let script = r#"printf '\033[31mred\033[0m alert\n'; printf '\033]0;owned title\007after\n'; printf 'wipe\033[2J\033[H here\r\n' >&2; printf 'bad \377 byte\n'"#;
    let out = t
        .exec(
            &ExecRequest::new(script),
            Some(&tx),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert!(out.success());
    let lines: Vec<String> = collect(&mut rx).into_iter().map(|(_, l)| l).collect();
    assert!(lines.contains(&"red alert".to_string()), "{lines:?}");
    assert!(lines.contains(&"after".to_string()), "{lines:?}");
    assert!(lines.contains(&"wipe here".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"bad \u{fffd} byte".to_string()),
        "{lines:?}"
    );
    for l in lines.iter().chain(
        out.stdout
            .lines()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            !l.chars().any(|c| c.is_control()),
            "control character left in {l:?}"
        );
    }
}

/// Whether processes matching `needle` show up on the fleet within a second: the positive
/// control for "nothing survived" checks.
async fn running_soon(fleet: &support::Fleet, needle: &str) -> bool {
    for _ in 0..50 {
        if !fleet.survivors(needle).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_on_the_node_with_everything_it_started() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    // A child in the background, a grandchild that ignores SIGTERM, and the step itself.
    let script = "sleep 4101 & sh -c 'trap \"\" TERM; sleep 4102; true' & echo spawned; sleep 4103";
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = ExecRequest::new(script).timeout(Duration::from_millis(1500));
    let cancel = CancellationToken::new();
    let (out, seen_running) = tokio::join!(
        t.exec(&req, Some(&tx), &cancel),
        running_soon(&fleet, "sleep 410")
    );
    assert!(
        seen_running,
        "the step's processes show on the node while it runs"
    );
    let out = out.expect("the step ran");
    assert_eq!(out.ended, Ended::TimedOut);
    assert!(collect(&mut rx).contains(&(Stream::Stdout, "spawned".to_string())));
    let left = fleet.survivors("sleep 410");
    assert!(
        left.is_empty(),
        "processes of the killed step survived on the node: {left:?}"
    );

    // The connection is still good for the next step.
    let next = t
        .exec(
            &ExecRequest::new("echo next"),
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(next.stdout, "next\n");
}

#[tokio::test]
async fn an_abort_kills_the_running_step_on_the_node() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = ExecRequest::new("(sleep 4201; echo late) & echo running; sleep 4202");
    let run = t.exec(&req, Some(&tx), &cancel);
    let abort = async {
        rx.recv().await;
        assert!(
            running_soon(&fleet, "sleep 420").await,
            "the step's processes show on the node while it runs"
        );
        cancel.cancel();
    };
    let (out, _) = tokio::join!(run, abort);
    assert_eq!(out.expect("ran").ended, Ended::Cancelled);
    let left = fleet.survivors("sleep 420");
    assert!(
        left.is_empty(),
        "processes of the aborted step survived: {left:?}"
    );
}

#[tokio::test]
async fn a_console_that_goes_away_does_not_leave_its_step_running() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    {
        // The exec future is dropped mid-step (as when the console's task dies): its shell's
        // channel closes, and the shell's other server on the node stops the step.
        let req = ExecRequest::new("sleep 4301 & echo up; sleep 4302");
        let run = t.exec(&req, Some(&tx), &cancel);
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => panic!("the step should still be running"),
            _ = rx.recv() => {}
        }
        assert!(
            running_soon(&fleet, "sleep 430").await,
            "the step's processes show on the node while it runs"
        );
        // Here the future goes away with its shell's channel.
    }
    // The shell gives TERM at once and KILL after 2 s; wait for the node to settle.
    let mut left = fleet.survivors("sleep 430");
    for _ in 0..60 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = fleet.survivors("sleep 430");
    }
    assert!(left.is_empty(), "the step outlived its console: {left:?}");
}

#[tokio::test]
async fn steps_share_one_connection() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    for i in 0..5 {
        let out = t
            .exec(
                &ExecRequest::new(format!("echo {i}")),
                None,
                &CancellationToken::new(),
            )
            .await
            .expect("runs");
        assert_eq!(out.stdout, format!("{i}\n"));
    }
    // Steps at the same time, too.
    let runs = (0..4).map(|i| {
        let t = &t;
        async move {
            t.exec(
                &ExecRequest::new(format!("sleep 0.2; echo {i}")),
                None,
                &CancellationToken::new(),
            )
            .await
            .expect("runs")
        }
    });
    for (i, out) in futures::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(out.stdout, format!("{i}\n"));
    }
    let logins = fleet.nodes[0]
        .sshd
        .log_text()
        .matches("Accepted publickey")
        .count();
    assert_eq!(
        logins, 1,
        "each step logged in again instead of reusing the connection"
    );
}

#[tokio::test]
async fn a_master_that_went_away_while_idle_is_replaced_on_the_next_step() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    let socket = t.control_socket().await.expect("an open master");
    // What the master does by itself after its idle limit.
    let st = std::process::Command::new("ssh")
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "node"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("ssh -O exit");
    assert!(st.success());
    let out = t
        .exec(
            &ExecRequest::new("echo again"),
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("the step runs on a new connection");
    assert_eq!(out.stdout, "again\n");
    let logins = fleet.nodes[0]
        .sshd
        .log_text()
        .matches("Accepted publickey")
        .count();
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn upload_copies_a_file_to_the_node() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let local = tempfile::tempdir().expect("tempdir");
    let from = local.path().join("app-v2.tar.gz");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&from, &data).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    }
    let to = fleet.nodes[0]
        .deploy_path
        .join("releases/v2 (new)/app.tar.gz");
    t.upload(&from, &to.display().to_string())
        .await
        .expect("uploads");
    assert_eq!(std::fs::read(&to).expect("the file is on the node"), data);
    let out = t
        .exec(
            &ExecRequest::new(format!(
                "stat -c '%a %U' {}",
                deckhand::util::sh_quote(&to.display().to_string())
            )),
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(out.stdout.trim(), format!("750 {}", fleet.user));

    // Where the node refuses to write, the error says where and why.
    let err = t
        .upload(&from, "/proc/deckhand/app.tar.gz")
        .await
        .expect_err("cannot write there");
    let TransportError::Upload { reason, .. } = err else {
        panic!("not an upload error: {err}")
    };
    assert!(reason.contains("/proc/deckhand/app.tar.gz"), "{reason}");
    let missing = t
        .upload(&local.path().join("nope.tar.gz"), "/tmp/x")
        .await
        .expect_err("no such file");
    assert!(missing.to_string().contains("nope.tar.gz"), "{missing}");
}

#[tokio::test]
async fn an_upload_cut_short_leaves_nothing_under_its_name() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    let local = tempfile::tempdir().expect("tempdir");
    let from = local.path().join("big.tar.gz");
    // Sparse: instant to make, and still 256 MiB to send.
    std::fs::File::create(&from)
        .and_then(|f| f.set_len(256 << 20))
        .expect("big file");
    let to = fleet.nodes[0].deploy_path.join("releases/v9/app.tar.gz");
    let partial = format!("{}.deckhand-partial", to.display());
    // What the engine does on a phase timeout or an abort: stop waiting, drop the upload.
    let cut = tokio::time::timeout(
        Duration::from_millis(150),
        t.upload(&from, &to.display().to_string()),
    )
    .await;
    assert!(cut.is_err(), "256 MiB should take longer than 150 ms");
    // Give the node time to see the end of the stream and finish its script.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&partial).exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !to.exists(),
        "a truncated upload must not be installed under its final name ({} bytes there)",
        std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0)
    );
    assert!(
        !std::path::Path::new(&partial).exists(),
        "the partial file is removed"
    );
}

#[tokio::test]
async fn a_node_whose_sshd_dies_mid_step_fails_the_step_with_a_clear_error() {
    let mut fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let req = ExecRequest::new("echo working; sleep 4401");
    let run = t.exec(&req, Some(&tx), &cancel);
    let kill = async {
        rx.recv().await;
        fleet.kill_sshd(0);
    };
    let (out, _) = tokio::join!(run, kill);
    let err = out.expect_err("the step cannot succeed without its server");
    let msg = err.to_string();
    assert!(msg.contains("lost the SSH connection"), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{}", fleet.nodes[0].sshd.port)),
        "{msg}"
    );

    // The next step says the server is not there.
    let again = t
        .exec(&ExecRequest::new("true"), None, &CancellationToken::new())
        .await
        .expect_err("no server");
    assert!(again.to_string().contains("connection refused"), "{again}");
}

#[tokio::test]
async fn the_link_s_share_of_a_step_is_measured_on_the_node_once_the_run_is_done_with_it() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect().await.expect("connects");
    // Until measured, the share is the fastest script so far: here one that sleeps 300 ms.
    let slow = ExecRequest::new("sleep 0.3").timeout(Duration::from_secs(10));
    let out = t
        .exec(&slow, None, &CancellationToken::new())
        .await
        .expect("runs");
    assert!(out.success());
    let fastest = t.floor();
    assert!(fastest >= Duration::from_millis(300), "{fastest:?}");
    // Measured with empty scripts on the node, it is the way there and back, which an empty
    // script on loopback does in far less than that sleep.
    t.settle();
    let measured = support::wait::poll_async(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async {
            let f = t.floor();
            (f < fastest).then_some(f)
        },
    )
    .await
    .expect("the link's share is measured");
    assert!(measured < Duration::from_millis(300), "{measured:?}");
    assert_eq!(fleet.logins(0), 1, "measured over the same connection");
    t.close().await;
}
