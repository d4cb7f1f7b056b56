//! Over the real sshd fleet: HAProxy driven through a node (`via = "web-1"`, socat there) with
//! zero failed requests under load, a node that stops answering mid-step (its sshd frozen with
//! SIGSTOP), and a health check that flaps once.

mod support;

use std::time::Duration;

use support::haproxy::Haproxy;
use support::http::Load;
use support::{text, FleetSpec, InventorySpec};

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_through_a_node_keeps_a_rolling_deploy_and_its_rollback_at_zero_failures() {
    let fleet = FleetSpec::nodes(4).with_apps().start();
    let inv = fleet.write_inventory(&InventorySpec::default());
    let o = fleet.deploy("v1");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // HAProxy in front of the nodes' apps; its admin socket reachable by the fleet's login user.
    let hdir = tempfile::Builder::new().prefix("dh-hp-").tempdir().unwrap();
    chmod(hdir.path(), 0o755);
    let servers: Vec<(String, u16)> = fleet
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.http_port))
        .collect();
    let hp = Haproxy::start(hdir.path(), &servers);
    chmod(&hp.socket, 0o666);
    let names: Vec<&str> = servers.iter().map(|(n, _)| n.as_str()).collect();
    hp.wait_up(&names);
    let mut toml = std::fs::read_to_string(&inv).unwrap();
    toml.push_str(&format!(
        "\n[environments.production.load_balancer]\nsocket = \"{}\"\nbackend = \"app\"\nvia = \"{}\"\ndrain_timeout = \"5s\"\ntimeout = \"10s\"\n",
        hp.socket.display(),
        fleet.nodes[0].name
    ));
    std::fs::write(&inv, toml).unwrap();

    // socat on the nodes records who ran it, the proof that the balancer was driven from there.
    chmod(&fleet.root, 0o755);
    let socat_dir = fleet.root.join("socat");
    std::fs::create_dir_all(&socat_dir).unwrap();
    chmod(&socat_dir, 0o777);
    let socat_log = socat_dir.join("log");
    fleet.stub(
        "socat",
        "echo \"$DECKHAND_FLEET_NODE $*\" >> \"$DECKHAND_FLEET/socat/log\"\nexec /usr/bin/socat \"$@\"",
    );

    let url = format!("http://127.0.0.1:{}/version", hp.port);
    let load = Load::start(url.clone(), 30_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = {
        let cmd = fleet.deckhand_command(&[
            "deploy",
            "production",
            "--release",
            "v2",
            "--headless",
            "--yes",
        ]);
        tokio::task::spawn_blocking(move || {
            let mut c = cmd;
            c.output().unwrap()
        })
        .await
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = load.finish().await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "on {}: {} is DRAIN",
            fleet.nodes[0].name, fleet.nodes[1].name
        )),
        "the balancer was driven through the node:\n{out}"
    );
    let via = std::fs::read_to_string(&socat_log).unwrap_or_default();
    assert!(
        !via.is_empty()
            && via
                .lines()
                .all(|l| l.starts_with(&format!("{} ", fleet.nodes[0].name))),
        "every balancer command ran on {} through socat: {via:?}",
        fleet.nodes[0].name
    );
    assert_eq!(
        r.failed, 0,
        "failed requests over SSH + HAProxy: {:?}",
        r.errors
    );
    assert_eq!(r.sequence.first().map(|s| s.as_str()), Some("v1"));
    assert_eq!(r.sequence.last().map(|s| s.as_str()), Some("v2"));

    let load = Load::start(url, 30_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = {
        let cmd = fleet.deckhand_command(&["rollback", "production", "--headless", "--yes"]);
        tokio::task::spawn_blocking(move || {
            let mut c = cmd;
            c.output().unwrap()
        })
        .await
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = load.finish().await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        r.failed, 0,
        "failed requests during the rollback: {:?}",
        r.errors
    );
    assert_eq!(r.sequence.last().map(|s| s.as_str()), Some("v1"));
    for i in 0..4 {
        assert_eq!(fleet.current_release(i).as_deref(), Some("v1"));
    }
}

/// Every process of a server (the listener and the sessions it forked).
fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|x| x.parse::<i32>().ok());
                if ppid == Some(parent) && !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        i += 1;
    }
    all
}

/// Whether the run's journal records `node`'s `phase` as timed out.
fn journal_says_timed_out(state: &std::path::Path, node: &str, phase: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(state.join("deckhand")) else {
        return false;
    };
    dir.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .any(|v| {
            let k = v.get("kind").unwrap_or(&v);
            k["type"] == "step_finished"
                && k["node"] == node
                && k["phase"] == phase
                && k["result"] == "timed_out"
        })
}

#[test]
fn a_node_that_stops_answering_times_out_and_the_run_rolls_back() {
    let fleet = FleetSpec::nodes(3).with_apps().start();
    chmod(&fleet.root, 0o755);
    // A step that finishes in a second; it leaves a marker so the test knows when it runs.
    fleet.write_inventory(&InventorySpec {
        extra_phases: "[[phases]]\nname = \"migrate\"\ntimeout = \"4s\"\n\
                       run = \"touch {release_path}/MIGRATING; sleep 1; echo migrated\"\n"
            .into(),
        ..Default::default()
    });
    let o = fleet.deploy("v1");
    assert_eq!(
        o.status.code(),
        Some(0),
        "unfrozen, the step passes: {}",
        text(&o)
    );

    // v2: web-2's sshd (listener and sessions) is frozen while its migrate step runs, so the
    // step's end never reaches the console.
    let child = fleet.spawn_deploy("v2");
    let marker = fleet.nodes[1].deploy_path.join("releases/v2/MIGRATING");
    let t = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "web-2 never started its v2 migrate"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let frozen = tree(fleet.nodes[1].sshd.pid().unwrap() as i32);
    for p in &frozen {
        // SAFETY: signalling the fleet's own sshd processes.
        unsafe {
            libc::kill(*p, libc::SIGSTOP);
        }
    }
    // The console gives up on the step while the node is still frozen: after the 4 s timeout
    // and its attempt to kill the step there (at most 10 s for the kill, 3 s more to wait).
    let state = fleet.root.join("state");
    let name = fleet.nodes[1].name.clone();
    let t = std::time::Instant::now();
    let mut timed_out = false;
    while t.elapsed() < Duration::from_secs(30) {
        if journal_says_timed_out(&state, &name, "migrate") {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in &frozen {
        // SAFETY: as above.
        unsafe {
            libc::kill(*p, libc::SIGCONT);
        }
    }
    assert!(
        timed_out,
        "the migrate step on the frozen node was not timed out while it was frozen"
    );
    let t = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    let out = text(&o);
    assert!(
        t.elapsed() < Duration::from_secs(90),
        "the run hung on the frozen node"
    );
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&name) && out.contains("TIMED OUT"), "{out}");
    assert!(out.contains("ROLLED BACK"), "{out}");
    // Consistent: every node on v1, no lock left.
    for i in 0..3 {
        assert_eq!(fleet.current_release(i).as_deref(), Some("v1"), "node {i}");
        assert!(!fleet.nodes[i].deploy_path.join(".deckhand/lock").exists());
    }
}

#[test]
fn a_flapping_health_check_is_absorbed_by_its_retries() {
    let fleet = FleetSpec::nodes(2).with_apps().start();
    chmod(&fleet.root, 0o755);
    let flaps = fleet.root.join("flaps");
    std::fs::create_dir_all(&flaps).unwrap();
    chmod(&flaps, 0o777);
    let flap = flaps.join("flap");
    fleet.write_inventory(&InventorySpec::default());
    // The health check fails exactly once per node, then passes.
    let inv = fleet.root.join("deckhand.toml");
    let toml = std::fs::read_to_string(&inv).unwrap();
    let flapping = toml.replace(
        "health = { run = \"",
        &format!("health = {{ run = \"if mkdir '{}'-{{node}} 2>/dev/null; then echo 'flap: first answer is an error' >&2; exit 1; fi; ", flap.display()),
    );
    assert_ne!(toml, flapping);
    std::fs::write(&inv, flapping).unwrap();
    let o = fleet.deploy("v1");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("attempt 1/6: exited with status 1"), "{out}");
    for i in 0..2 {
        assert_eq!(fleet.version(i).as_deref(), Some("v1"));
    }
}
