//! Connecting over SSH as preflight does, against real sshd servers on 127.0.0.1: host-key
//! policy, and failures explained in plain words (what happened, and what to fix).

mod support;

use std::net::TcpListener;
use std::time::Duration;

use deckhand::inventory::{HostKeyChecking, KeyExchange};
use deckhand::transport::ssh::SshTransport;
use deckhand::transport::{ExecRequest, Transport};
use support::{Fleet, FleetSpec, Server};
use tokio_util::sync::CancellationToken;

async fn connect_error(t: &SshTransport) -> String {
    t.connect()
        .await
        .expect_err("the connection must be refused")
        .to_string()
}

#[tokio::test]
async fn a_known_host_connects_under_strict_checking() {
    let fleet = FleetSpec::nodes(1).start();
    let t = SshTransport::new(fleet.target(0));
    t.connect()
        .await
        .expect("a host listed in known_hosts connects");
    let out = t
        .exec(
            &ExecRequest::new("echo ok"),
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(out.stdout, "ok\n");
}

#[tokio::test]
async fn paths_with_spaces_reach_ssh_whole() {
    let fleet = FleetSpec::nodes(1).start();
    let dir = fleet.root.join("keys and hosts");
    std::fs::create_dir_all(&dir).expect("dir");
    let known = dir.join("known hosts");
    let key = dir.join("client key");
    std::fs::copy(&fleet.known_hosts, &known).expect("copy known_hosts");
    std::fs::copy(&fleet.client_key, &key).expect("copy key");
    let mut target = fleet.target(0);
    target.known_hosts = Some(known);
    target.identity_file = Some(key);
    let t = SshTransport::new(target);
    t.connect()
        .await
        .expect("a known_hosts file and key whose paths hold spaces work under strict checking");
    t.close().await;
}

#[tokio::test]
async fn a_changed_host_key_is_refused_with_the_fingerprint_and_the_file_to_fix() {
    let mut fleet = FleetSpec::nodes(1).start();
    fleet.change_host_key(0);
    let t = SshTransport::new(fleet.target(0));
    let msg = connect_error(&t).await;
    let port = fleet.nodes[0].sshd.port;
    let offered = fingerprint(&fleet.nodes[0].sshd.host_key);
    assert!(msg.starts_with("host key mismatch"), "{msg}");
    assert!(
        msg.contains(&offered),
        "the message should show the fingerprint offered ({offered}): {msg}"
    );
    assert!(
        msg.contains(&fleet.known_hosts.display().to_string()),
        "{msg}"
    );
    assert!(msg.contains(&format!("[127.0.0.1]:{port}")), "{msg}");
    assert!(!msg.contains('\n'), "one line per node: {msg}");
    // Nothing ran there: the node saw no login.
    assert!(!fleet.nodes[0]
        .sshd
        .log_text()
        .contains("Accepted publickey"));
}

#[tokio::test]
async fn an_unknown_host_is_refused_under_strict_checking() {
    let fleet = FleetSpec::nodes(1).start();
    let mut target = fleet.target(0);
    let empty = fleet.root.join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    target.known_hosts = Some(empty.clone());
    let msg = connect_error(&SshTransport::new(target)).await;
    assert!(msg.starts_with("unknown host key"), "{msg}");
    assert!(msg.contains(&empty.display().to_string()), "{msg}");
    assert!(msg.contains("accept-new"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&empty).expect("read"),
        "",
        "strict checking must not learn keys"
    );
}

#[tokio::test]
async fn accept_new_learns_an_unknown_key_but_refuses_a_changed_one() {
    let mut fleet = FleetSpec::nodes(1).start();
    let mut target = fleet.target(0);
    let learned = fleet.root.join("learned_known_hosts");
    std::fs::write(&learned, "").expect("write");
    target.known_hosts = Some(learned.clone());
    target.host_key_checking = HostKeyChecking::AcceptNew;

    let t = SshTransport::new(target.clone());
    t.connect()
        .await
        .expect("accept-new takes a host it has never seen");
    t.close().await;
    let text = std::fs::read_to_string(&learned).expect("read");
    assert_eq!(text.lines().count(), 1, "the key was recorded: {text:?}");

    // The same server, re-keyed: accept-new does not mean accept-anything.
    fleet.change_host_key(0);
    let msg = connect_error(&SshTransport::new(target)).await;
    assert!(msg.starts_with("host key mismatch"), "{msg}");
    assert!(msg.contains(&learned.display().to_string()), "{msg}");
}

#[tokio::test]
async fn a_refused_key_names_the_user_and_the_key_tried() {
    let fleet = FleetSpec::nodes(1).start();
    let other = fleet.root.join("stranger_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let mut target = fleet.target(0);
    target.identity_file = Some(other.clone());
    let msg = connect_error(&SshTransport::new(target)).await;
    assert!(msg.starts_with("authentication failed"), "{msg}");
    assert!(msg.contains(&format!("user {}", fleet.user)), "{msg}");
    assert!(msg.contains(&other.display().to_string()), "{msg}");
}

/// What the master of `control` logged so far (its `-E` log beside the control socket).
fn master_log(control: &std::path::Path) -> String {
    let log = control.with_file_name("log");
    std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()))
}

/// An ssh config that makes masters log at DEBUG2, where ssh says how it found the socket.
fn debug2_config(fleet: &Fleet, extra: &str) -> std::path::PathBuf {
    let config = fleet.root.join("debug2_config");
    std::fs::write(&config, format!("Host *\n  LogLevel DEBUG2\n{extra}")).expect("ssh config");
    config
}

#[tokio::test]
async fn the_master_s_connection_sends_small_packets_at_once() {
    // ssh turns Nagle's algorithm off only once logged in, so packets of the key exchange wait
    // for a delayed acknowledgement; deckhand makes the connection itself, with it off from the
    // start. After the login ssh checks the socket and says which it found (at DEBUG2).
    let fleet = FleetSpec::nodes(1).start();
    let mut target = fleet.target(0);
    target.ssh_config = Some(debug2_config(&fleet, ""));
    let t = SshTransport::new(target);
    t.connect().await.expect("connects");
    let control = t.control_socket().await.expect("a master");
    let log = master_log(&control);
    assert!(log.contains("Executing proxy dialer command"), "{log}");
    assert!(log.contains("is TCP_NODELAY"), "{log}");
    assert!(!log.contains("setting TCP_NODELAY"), "{log}");
    let out = t
        .exec(
            &ExecRequest::new("echo over it"),
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(out.stdout, "over it\n");
    assert_eq!(fleet.logins(0), 1);
    t.close().await;
}

#[tokio::test]
async fn a_proxy_command_in_the_user_s_ssh_config_is_used_not_replaced() {
    let fleet = FleetSpec::nodes(1).start();
    let socat = support::tools::socat();
    let used = fleet.root.join("proxy-used");
    let config = debug2_config(
        &fleet,
        &format!(
            "  ProxyCommand sh -c 'echo used >> {}; exec {socat} - TCP:%h:%p'\n",
            used.display()
        ),
    );
    let mut target = fleet.target(0);
    target.ssh_config = Some(config);
    let t = SshTransport::new(target);
    t.connect()
        .await
        .expect("connects through the user's proxy command");
    assert_eq!(
        std::fs::read_to_string(&used).unwrap_or_default(),
        "used\n",
        "the user's ProxyCommand made the connection"
    );
    let control = t.control_socket().await.expect("a master");
    let log = master_log(&control);
    assert!(log.contains("Executing proxy command"), "{log}");
    assert!(!log.contains("proxy dialer"), "{log}");
    t.close().await;
}

#[tokio::test]
async fn nothing_listening_is_reported_as_connection_refused() {
    let fleet = FleetSpec::nodes(1).start();
    let mut target = fleet.target(0);
    let port = support::free_port();
    target.port = Some(port);
    let msg = connect_error(&SshTransport::new(target)).await;
    assert!(msg.starts_with("connection refused"), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_saying_how_long_it_waited() {
    let fleet = FleetSpec::nodes(1).start();
    // Accepts the TCP connection and then says nothing, like a wedged server.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let hold = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(4));
        drop(conns);
    });
    let mut target = fleet.target(0);
    target.port = Some(port);
    target.connect_timeout = Duration::from_secs(1);
    let msg = connect_error(&SshTransport::new(target)).await;
    assert!(msg.starts_with("timed out"), "{msg}");
    assert!(msg.contains("1.0s"), "{msg}");
    let _ = hold.join();
}

#[tokio::test]
async fn a_missing_identity_file_is_named() {
    let fleet = FleetSpec::nodes(1).start();
    let mut target = fleet.target(0);
    target.identity_file = Some(fleet.root.join("no_such_key"));
    let msg = connect_error(&SshTransport::new(target)).await;
    assert!(
        msg.contains("no_such_key") && msg.contains("does not exist"),
        "{msg}"
    );
}

/// Node `i`'s sshd logs at DEBUG1 from now on, which records the key exchange of each login;
/// `extra` is appended to its config.
fn log_key_exchanges(fleet: &mut Fleet, i: usize, extra: &str) {
    fleet.reconfigure_sshd(i, |t| {
        format!(
            "{}{extra}",
            t.replace("LogLevel VERBOSE", "LogLevel DEBUG1")
        )
    });
}

/// The key exchanges a server (logging at DEBUG1) agreed to, one per login; an attempt with
/// nothing in common logs `(no match)` and is left out.
fn negotiated(server: &Server) -> Vec<String> {
    server
        .log_text()
        .lines()
        .filter_map(|l| l.split_once("kex: algorithm: "))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_string())
        .filter(|k| !k.starts_with('('))
        .collect()
}

/// The key exchanges the local ssh client knows (`ssh -Q kex`).
fn client_knows(algorithm: &str) -> bool {
    let out = std::process::Command::new("ssh")
        .args(["-Q", "kex"])
        .output()
        .expect("ssh -Q kex");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == algorithm)
}

/// The key exchange OpenSSH itself would prefer here (the first of `ssh -G`'s list).
fn openssh_first_choice(port: u16) -> String {
    let out = std::process::Command::new("ssh")
        .args(["-G", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .expect("ssh -G");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("kexalgorithms "))
        .and_then(|list| list.split(',').next())
        .expect("ssh -G lists kexalgorithms")
        .to_string()
}

#[tokio::test]
async fn auto_key_exchange_is_the_cheap_one_on_every_hop_and_still_reaches_an_sntrup_only_server() {
    let mut fleet = FleetSpec::nodes(2).with_bastion().start();
    log_key_exchanges(&mut fleet, 0, "");
    log_key_exchanges(
        &mut fleet,
        1,
        "KexAlgorithms sntrup761x25519-sha512@openssh.com\n",
    );
    // ML-KEM where this OpenSSH has it (post-quantum and cheap), else classic curve25519: the
    // only other post-quantum exchange, sntrup761, costs ~0.2 s of CPU per connection.
    let expected = if client_knows("mlkem768x25519-sha256") {
        "mlkem768x25519-sha256"
    } else {
        "curve25519-sha256"
    };

    let t = SshTransport::new(fleet.target_via_bastion(0));
    t.connect().await.expect("connects through the bastion");
    t.close().await;
    assert_eq!(negotiated(&fleet.nodes[0].sshd), vec![expected]);
    let hops = negotiated(fleet.bastion.as_ref().expect("bastion"));
    assert!(!hops.is_empty(), "the bastion logs at DEBUG1");
    assert!(hops.iter().all(|k| k == expected), "bastion: {hops:?}");

    // A server that offers only sntrup761 is still reached: OpenSSH's list stays behind ours.
    let t = SshTransport::new(fleet.target(1));
    t.connect().await.expect("falls back to sntrup761");
    t.close().await;
    assert_eq!(
        negotiated(&fleet.nodes[1].sshd),
        vec!["sntrup761x25519-sha512@openssh.com"]
    );
}

#[tokio::test]
async fn post_quantum_key_exchange_is_insisted_on_when_the_inventory_says_so() {
    let mut fleet = FleetSpec::nodes(2).start();
    log_key_exchanges(&mut fleet, 0, "");
    log_key_exchanges(&mut fleet, 1, "KexAlgorithms curve25519-sha256\n");

    let mut target = fleet.target(0);
    target.key_exchange = KeyExchange::PostQuantum;
    let t = SshTransport::new(target);
    t.connect()
        .await
        .expect("a default sshd offers post-quantum");
    t.close().await;
    let got = negotiated(&fleet.nodes[0].sshd);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("mlkem768x25519") || got[0].starts_with("sntrup761x25519"),
        "{got:?}"
    );

    // A server with classic exchanges only is refused before login, in one plain line.
    let mut target = fleet.target(1);
    target.key_exchange = KeyExchange::PostQuantum;
    let msg = connect_error(&SshTransport::new(target.clone())).await;
    let port = fleet.nodes[1].sshd.port;
    assert!(
        msg.starts_with(&format!("no key exchange in common with 127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(msg.contains("it offers curve25519-sha256"), "{msg}");
    assert!(msg.contains("post-quantum"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(!fleet.nodes[1]
        .sshd
        .log_text()
        .contains("Accepted publickey"));

    // The same server under `auto` is reached with what it offers.
    target.key_exchange = KeyExchange::Auto;
    let t = SshTransport::new(target);
    t.connect().await.expect("auto accepts curve25519");
    t.close().await;
    assert_eq!(negotiated(&fleet.nodes[1].sshd), vec!["curve25519-sha256"]);
}

#[tokio::test]
async fn openssh_key_exchange_leaves_the_choice_to_openssh() {
    let mut fleet = FleetSpec::nodes(1).start();
    log_key_exchanges(&mut fleet, 0, "");
    let mut target = fleet.target(0);
    target.key_exchange = KeyExchange::Openssh;
    let t = SshTransport::new(target);
    t.connect().await.expect("connects");
    t.close().await;
    assert_eq!(
        negotiated(&fleet.nodes[0].sshd),
        vec![openssh_first_choice(fleet.nodes[0].sshd.port)]
    );
}

/// `SHA256:…` of a public key line, as ssh shows it.
fn fingerprint(public_line: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("k.pub");
    std::fs::write(&f, format!("{public_line}\n")).expect("write");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&f)
        .output()
        .expect("ssh-keygen -l");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_string()
}
