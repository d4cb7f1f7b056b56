//! Whole deployments over SSH with the real `deckhand` binary against a fleet of real sshd
//! servers on 127.0.0.1, each serving a small HTTP app from its `current` release: what an
//! operator would check afterwards (`current`, `/version`, history, lock) is what is asserted.

mod support;

use std::time::{Duration, Instant};

use support::{assert_exit, text, Fleet, FleetSpec, InventorySpec};

/// Every node on `release`: the link, the app, the history and no lock left.
fn assert_all_on(fleet: &Fleet, release: &str) {
    for i in 0..fleet.nodes.len() {
        let n = &fleet.nodes[i].name;
        assert_eq!(
            fleet.current_release(i).as_deref(),
            Some(release),
            "{n}: current"
        );
        assert_eq!(
            fleet.version(i).as_deref(),
            Some(release),
            "{n}: the app's /version"
        );
        assert!(!fleet.locked(i), "{n}: lock left behind");
    }
}

#[test]
fn a_rolling_deploy_over_ssh_puts_every_node_on_the_new_release() {
    let fleet = FleetSpec::nodes(4).with_apps().start();
    // An upload phase and a deploy-script phase, as the seed's deploy.sh is run.
    let dist = fleet.root.join("dist");
    std::fs::create_dir_all(&dist).expect("dist");
    std::fs::write(dist.join("app-v2.tar.gz"), b"v2 bundle").expect("bundle");
    std::fs::write(
        fleet.root.join("deploy.sh"),
        "#!/bin/bash\ninstall_dependencies() {\n  echo \"installing for $DECKHAND_RELEASE on $DECKHAND_NODE\"\n  \
         printf '%s\\n' \"$DECKHAND_RELEASE\" > \"$DECKHAND_RELEASE_PATH/DEPS\"\n}\n",
    )
    .expect("deploy.sh");
    fleet.write_inventory(&InventorySpec {
        app_extra: "script = \"deploy.sh\"\n".into(),
        extra_phases: "[[phases]]\nname = \"upload_bundle\"\nupload = { from = \"dist/app-{release}.tar.gz\", to = \"{release_path}/app.tar.gz\" }\n\n\
                       [[phases]]\nname = \"install_dependencies\"\nfunction = \"install_dependencies\"\n"
            .into(),
        ..Default::default()
    });
    for i in 0..4 {
        assert_eq!(fleet.version(i).as_deref(), Some("none"));
    }

    let out = fleet.deploy("v2");
    assert_exit(&out, 0);
    assert_all_on(&fleet, "v2");
    for i in 0..4 {
        let release = fleet.nodes[i].deploy_path.join("releases/v2");
        assert_eq!(
            std::fs::read(release.join("app.tar.gz")).expect("uploaded bundle"),
            b"v2 bundle"
        );
        assert_eq!(
            std::fs::read_to_string(release.join("DEPS"))
                .expect("deploy.sh ran")
                .trim(),
            "v2"
        );
        let history = fleet.history(i);
        let last = history
            .iter()
            .rev()
            .find(|h| h["kind"] != "verified" && h["kind"] != "finished")
            .expect("a history entry");
        assert_eq!(last["kind"], "deploy");
        assert_eq!(last["release"], "v2");
        assert_eq!(last["result"], "ok");
    }
    assert!(
        text(&out).contains("installing for v2 on node3"),
        "{}",
        text(&out)
    );
    // The console closed its connections when it finished: no node still serves one (an ssh
    // master left behind would keep its sshd session alive).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while (0..4).any(|i| fleet.connections(i) > 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let open: Vec<usize> = (0..4).map(|i| fleet.connections(i)).collect();
    assert_eq!(open, vec![0; 4], "connections still open per node");
    // The count does see a connection that is open.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let probe = deckhand::transport::ssh::SshTransport::new(fleet.target(0));
    rt.block_on(async {
        use deckhand::transport::Transport;
        probe.connect().await.expect("connects");
        assert!(fleet.connections(0) >= 1, "an open connection is counted");
        probe.close().await;
    });

    // `status` reads the same from the nodes.
    let status = fleet.deckhand(&["status", "production"]);
    assert_exit(&status, 0);
    for n in &fleet.nodes {
        let line = text(&status)
            .lines()
            .find(|l| l.contains(&n.name))
            .map(str::to_string)
            .unwrap_or_default();
        assert!(
            line.contains("v2"),
            "status of {}: {}",
            n.name,
            text(&status)
        );
    }
}

#[test]
fn the_same_deploy_through_the_bastion() {
    let fleet = FleetSpec::nodes(4).with_bastion().with_apps().start();
    fleet.write_inventory(&InventorySpec {
        via_bastion: true,
        ..Default::default()
    });
    let out = fleet.deploy("v2");
    assert_exit(&out, 0);
    assert_all_on(&fleet, "v2");
    for (i, n) in fleet.nodes.iter().enumerate() {
        let logins = fleet.logins(i);
        assert!(logins >= 1, "{} saw no login", n.name);
        assert_eq!(
            fleet.bastion_forwards_to(n.sshd.port),
            logins,
            "every login on {} came through the bastion",
            n.name
        );
    }
}

#[test]
fn rollback_over_ssh_returns_every_node_to_the_previous_release() {
    let fleet = FleetSpec::nodes(3).with_apps().start();
    fleet.write_inventory(&InventorySpec::default());
    assert_exit(&fleet.deploy("v1"), 0);
    assert_exit(&fleet.deploy("v2"), 0);
    assert_all_on(&fleet, "v2");

    let out = fleet.deckhand(&["rollback", "production", "--headless", "--yes"]);
    assert_exit(&out, 0);
    assert_all_on(&fleet, "v1");
    for i in 0..3 {
        let last = fleet
            .history(i)
            .into_iter()
            .rev()
            .find(|h| h["kind"] != "verified" && h["kind"] != "finished")
            .expect("history");
        assert_eq!(last["kind"], "rollback");
        assert_eq!(last["release"], "v1");
    }
}

#[test]
fn a_host_key_mismatch_stops_the_run_at_preflight_with_nothing_changed() {
    let mut fleet = FleetSpec::nodes(3).with_apps().start();
    fleet.write_inventory(&InventorySpec::default());
    fleet.change_host_key(1);
    let out = fleet.deploy("v2");
    assert_exit(&out, 4);
    let said = text(&out);
    let line = said
        .lines()
        .find(|l| l.contains("node2") && l.contains("host key mismatch"))
        .unwrap_or_else(|| panic!("no line names node2 and the mismatch:\n{said}"));
    assert!(line.contains("SHA256:"), "{line}");
    assert!(
        line.contains(&fleet.known_hosts.display().to_string()),
        "{line}"
    );
    for i in 0..3 {
        let n = &fleet.nodes[i];
        assert_eq!(
            fleet.current_release(i),
            None,
            "{}: nothing may change",
            n.name
        );
        assert!(
            !n.deploy_path.join("releases").exists(),
            "{}: a release was started",
            n.name
        );
        assert!(!fleet.locked(i), "{}: locked", n.name);
        assert_eq!(fleet.version(i).as_deref(), Some("none"));
    }
}

#[test]
fn a_node_whose_sshd_dies_mid_deployment_fails_its_step_and_the_others_end_consistent() {
    let mut fleet = FleetSpec::nodes(3).with_apps().start();
    // In node2's own directory: the step runs as the fleet's login user.
    let marker = fleet.nodes[1].dir.join("building");
    // node2's build says it started, then takes a while: long enough to pull its server away.
    fleet.write_inventory(&InventorySpec {
        extra_phases: format!(
            "[[phases]]\nname = \"compile\"\nrun = \"if [ {{node}} = node2 ] && [ {{release}} = v2 ]; then touch {}; sleep 4601; fi; echo compiled\"\ntimeout = \"60s\"\n",
            marker.display()
        ),
        ..Default::default()
    });
    assert_exit(&fleet.deploy("v1"), 0);

    let child = fleet.spawn_deploy("v2");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "node2's step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    fleet.kill_sshd(1);
    let out = child.wait_with_output().expect("deckhand ends");
    assert_exit(&out, 1);
    let said = text(&out);
    assert!(
        said.lines()
            .any(|l| l.contains("node2") && l.contains("lost the SSH connection")),
        "no clear error for node2:\n{said}"
    );
    // on_failure = rollback: node1 went back; node3 never left v1; node2 never switched.
    for i in [0, 2] {
        assert_eq!(
            fleet.current_release(i).as_deref(),
            Some("v1"),
            "{}",
            fleet.nodes[i].name
        );
        assert_eq!(
            fleet.version(i).as_deref(),
            Some("v1"),
            "{}",
            fleet.nodes[i].name
        );
        assert!(!fleet.locked(i), "{} still locked", fleet.nodes[i].name);
    }
    assert_eq!(fleet.current_release(1).as_deref(), Some("v1"));
    assert_eq!(fleet.version(1).as_deref(), Some("v1"));
}

#[test]
fn a_step_past_its_timeout_is_killed_on_the_node_and_the_run_follows_on_failure() {
    let fleet = FleetSpec::nodes(3).with_apps().start();
    fleet.write_inventory(&InventorySpec {
        extra_phases: "[[phases]]\nname = \"compile\"\nrun = \"if [ {node} = node2 ] && [ {release} = v2 ]; then sleep 4701 & sleep 4702; fi; echo compiled\"\ntimeout = \"1s\"\n".into(),
        ..Default::default()
    });
    assert_exit(&fleet.deploy("v1"), 0);
    let out = fleet.deploy("v2");
    assert_exit(&out, 1);
    let said = text(&out);
    assert!(
        said.lines()
            .any(|l| l.contains("node2") && l.contains("timed out")),
        "no timeout reported for node2:\n{said}"
    );
    let left = fleet.survivors("sleep 470");
    assert!(
        left.is_empty(),
        "the timed-out step survived on node2: {left:?}"
    );
    // on_failure = rollback: everyone ends on v1, unlocked.
    assert_all_on(&fleet, "v1");
}

#[test]
fn the_seeds_deploy_script_runs_phase_by_phase_over_ssh() {
    let fleet = FleetSpec::nodes(2).start();
    // The real deploy.sh of the askproai inventory, with its tools replaced by stand-ins that
    // record how they were called (and `git archive` that hands out a small source tree).
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/inventory/deploy.sh"),
        fleet.root.join("deploy.sh"),
    )
    .expect("copy deploy.sh");
    let src = fleet.root.join("src");
    std::fs::create_dir_all(src.join("public")).expect("src");
    std::fs::write(src.join("artisan"), "#!/usr/bin/env php\n").expect("src");
    let record = "echo \"$(basename \"$0\") $* [$DECKHAND_FUNCTION on $DECKHAND_NODE for $DECKHAND_RELEASE]\" >> \"$DECKHAND_DEPLOY_PATH/../calls.log\"";
    for tool in ["mysqldump", "composer", "npm", "php", "sudo", "curl"] {
        fleet.stub(tool, record);
    }
    fleet.stub(
        "git",
        &format!(
            "{record}\nif [ \"$1\" = archive ]; then tar -c -C \"$(dirname \"$0\")/../src\" .; fi"
        ),
    );
    let f = |name: &str, extra: &str| {
        format!("[[phases]]\nname = \"{name}\"\nfunction = \"{name}\"\n{extra}\n")
    };
    let phases = [
        f("backup_database", "stage = \"before\"\nonce = true"),
        "[[phases]]\nname = \"release\"\nbuiltin = \"release\"\n\n".to_string(),
        f("pull_latest_code", ""),
        f("install_dependencies", ""),
        f("run_migrations", "once = true"),
        f("build_assets", ""),
        f("clear_caches", ""),
        "[[phases]]\nname = \"switch\"\nbuiltin = \"switch\"\n\n".to_string(),
        f("restart_services", ""),
        f("run_health_checks", ""),
    ]
    .concat();
    fleet.write_inventory(&InventorySpec {
        app_extra: "script = \"deploy.sh\"\n".into(),
        phases: Some(phases),
        ..Default::default()
    });
    let out = fleet.deploy("v2");
    assert_exit(&out, 0);
    for i in 0..2 {
        let n = &fleet.nodes[i];
        assert_eq!(fleet.current_release(i).as_deref(), Some("v2"));
        assert!(
            n.deploy_path.join("releases/v2/artisan").is_file(),
            "{}: pull_latest_code did not unpack the source",
            n.name
        );
        let calls = std::fs::read_to_string(n.dir.join("calls.log")).expect("calls.log");
        let ctx = |f: &str| format!("[{f} on {} for v2]", n.name);
        let mut expected = vec![];
        if i == 0 {
            expected.push(format!(
                "mysqldump --single-transaction askproai {}",
                ctx("backup_database")
            ));
        }
        expected.push(format!(
            "git archive --remote=git@github.com:askproai/askproai.git v2 {}",
            ctx("pull_latest_code")
        ));
        expected.push(format!(
            "composer install --no-dev --prefer-dist --no-interaction --optimize-autoloader {}",
            ctx("install_dependencies")
        ));
        expected.push(format!("npm ci {}", ctx("install_dependencies")));
        if i == 0 {
            expected.push(format!(
                "php artisan migrate --force {}",
                ctx("run_migrations")
            ));
        }
        expected.push(format!("npm run build {}", ctx("build_assets")));
        for c in ["config:cache", "route:cache", "view:cache"] {
            expected.push(format!("php artisan {c} {}", ctx("clear_caches")));
        }
        expected.push(format!(
            "sudo systemctl reload php8.3-fpm {}",
            ctx("restart_services")
        ));
        expected.push(format!(
            "sudo supervisorctl restart askproai-worker:* {}",
            ctx("restart_services")
        ));
        expected.push(format!(
            "curl -fsS --max-time 4 http://127.0.0.1/api/health {}",
            ctx("run_health_checks")
        ));
        let got: Vec<&str> = calls.lines().collect();
        assert_eq!(got, expected, "{}: the functions ran differently", n.name);
    }
}

#[test]
fn quitting_the_console_kills_the_running_step_on_the_node() {
    let fleet = FleetSpec::nodes(2).with_apps().start();
    let marker = fleet.nodes[0].dir.join("compiling");
    fleet.write_inventory(&InventorySpec {
        extra_phases: format!(
            "[[phases]]\nname = \"compile\"\nrun = \"if [ {{release}} = v2 ]; then touch {}; sleep 4801 & sleep 4802; fi\"\ntimeout = \"5m\"\n",
            marker.display()
        ),
        ..Default::default()
    });
    assert_exit(&fleet.deploy("v1"), 0);
    let child = fleet.spawn_deploy("v2");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The marker is touched just before the sleeps start: wait for them.
    support::wait::until(
        "the step's sleeps to run",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let running = fleet.survivors("sleep 480");
            if !running.is_empty() {
                Ok(())
            } else {
                Err(format!("running: {running:?}"))
            }
        },
    );
    // Quitting: the first SIGTERM asks for a pause at the next step boundary, the second one
    // aborts now, which must kill the step on the node.
    for _ in 0..2 {
        // SAFETY: plain syscall on the child we started.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().expect("deckhand ends");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let left = fleet.survivors("sleep 480");
    assert!(
        left.is_empty(),
        "the step outlived the console: {left:?}\n{}",
        text(&out)
    );
    for i in 0..2 {
        assert_eq!(
            fleet.current_release(i).as_deref(),
            Some("v1"),
            "{}",
            fleet.nodes[i].name
        );
        assert!(
            !fleet.locked(i),
            "{} still locked:\n{}",
            fleet.nodes[i].name,
            text(&out)
        );
    }
}

/// Over a slow link (a delay proxy, 10 ms each way, in front of every node's sshd), the time
/// report counts each step's way to the node and back as deckhand's ("network"), not as the
/// step's: every remote step costs at least one round trip, so the network share is at least a
/// round trip per step, and the steps' own time keeps what their scripts did.
#[test]
fn the_time_report_counts_a_slow_link_as_deckhands_and_not_as_the_steps() {
    let fleet = FleetSpec::nodes(2).start();
    let one_way = Duration::from_millis(10);
    let proxies: Vec<support::delay::DelayProxy> = fleet
        .nodes
        .iter()
        .map(|n| support::delay::DelayProxy::start(n.sshd.port, one_way))
        .collect();
    let phases = "[[phases]]\nname = \"one\"\nrun = \"sleep 0.1\"\n\n\
                  [[phases]]\nname = \"two\"\nrun = \"sleep 0.1\"\n\n\
                  [[phases]]\nname = \"three\"\nrun = \"sleep 0.1\"\n";
    let inv = fleet.write_inventory(&InventorySpec {
        phases: Some(phases.into()),
        ..Default::default()
    });
    // The proxies present the nodes' own host keys, under their own ports.
    let mut toml = std::fs::read_to_string(&inv).unwrap();
    let mut known = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    for (n, p) in fleet.nodes.iter().zip(&proxies) {
        toml = toml.replace(
            &format!("port = {}\n", n.sshd.port),
            &format!("port = {}\n", p.port),
        );
        known.push_str(&format!("[127.0.0.1]:{} {}\n", p.port, n.sshd.host_key));
    }
    std::fs::write(&inv, toml).unwrap();
    std::fs::write(&fleet.known_hosts, known).unwrap();

    let o = fleet.deckhand(&[
        "deploy",
        "production",
        "--release",
        "v1",
        "--headless",
        "--yes",
        "--output",
        "json",
    ]);
    assert_exit(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let t: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            [v.clone(), v["kind"].clone(), v["event"].clone()]
                .into_iter()
                .find(|t| t.get("wall_ms").is_some())
        })
        .unwrap_or_else(|| panic!("a timing event in the JSON output:\n{out}"));
    let ms = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {t}"));
    let rtt = proxies[0].rtt().as_millis() as u64;
    assert!(rtt >= 20, "the proxy's round trip: {rtt} ms");
    // Six steps that sleep, each at least one round trip on its way.
    assert!(
        ms("link_ms") >= 6 * rtt,
        "network share at least 6 round trips of {rtt} ms: {t}"
    );
    // What the network share took from the steps is at most what they spent beyond their
    // scripts: each took its 100 ms and at least a round trip.
    assert!(
        ms("steps_ms") + ms("link_ms") >= 6 * (100 + rtt),
        "the steps keep what their scripts did: {t}"
    );
    assert!(ms("link_ms") <= ms("overhead_ms"), "{t}");
    assert_eq!(
        ms("wall_ms"),
        ms("steps_ms") + ms("waiting_ms") + ms("overhead_ms"),
        "{t}"
    );
    let human = fleet.deploy("v2");
    assert_exit(&human, 0);
    assert!(
        text(&human).contains("round trips to the nodes"),
        "the headless line names the network share:\n{}",
        text(&human)
    );
}

#[test]
fn a_node_gets_its_second_shell_when_its_turn_comes_not_at_preflight() {
    // Preflight opens one shell per node (what it and the locks need); a node's turn opens the
    // second in the background (a restart retires its shell, and the steps after it find the
    // other ready). node3, whose turn comes last and which the run's progress notes do not
    // reach (they go to the first two nodes), has one shell while node1 takes its turn and
    // two during its own (each turn a phase that sleeps).
    let fleet = FleetSpec::nodes(3).start();
    let phases = "[[phases]]\nname = \"wait\"\nrun = \"sleep 1.5\"\n";
    fleet.write_inventory(&InventorySpec {
        phases: Some(phases.into()),
        ..Default::default()
    });
    let child = fleet.spawn_deploy("v1");
    let during_node1 =
        support::wait::poll(Duration::from_secs(20), Duration::from_millis(20), || {
            (fleet.shells(Some(0)).len() == 2).then(|| fleet.shells(Some(2)).len())
        });
    let during_node3 =
        support::wait::poll(Duration::from_secs(20), Duration::from_millis(20), || {
            (fleet.shells(Some(2)).len() == 2 && fleet.running_on(2, "sleep 1.5")).then_some(())
        });
    let out = child.wait_with_output().expect("deckhand ends");
    assert_exit(&out, 0);
    assert_eq!(
        during_node1,
        Some(1),
        "node3's shells once node1 had two:\n{}",
        text(&out)
    );
    assert!(
        during_node3.is_some(),
        "node3 never had two shells during its turn:\n{}",
        text(&out)
    );
}

/// The link to node2 fails after its lock was taken and before the answer got back (a slow link
/// keeps the answer on the way): the run cannot know, stops before changing anything, and
/// releases its lock there too over a new connection (only its own), so no lock is left behind.
#[test]
fn a_lock_whose_answer_was_lost_is_released_and_not_left_behind() {
    let fleet = FleetSpec::nodes(2).start();
    let proxy =
        support::delay::DelayProxy::start(fleet.nodes[1].sshd.port, Duration::from_millis(150));
    let inv = fleet.write_inventory(&InventorySpec::default());
    let mut toml = std::fs::read_to_string(&inv).unwrap();
    toml = toml.replace(
        &format!("port = {}\n", fleet.nodes[1].sshd.port),
        &format!("port = {}\n", proxy.port),
    );
    std::fs::write(&inv, toml).unwrap();
    let mut known = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    known.push_str(&format!(
        "[127.0.0.1]:{} {}\n",
        proxy.port, fleet.nodes[1].sshd.host_key
    ));
    std::fs::write(&fleet.known_hosts, known).unwrap();

    let child = fleet
        .deckhand_command(&[
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("deckhand");
    let info = fleet.nodes[1].deploy_path.join(".deckhand/lock/info.json");
    support::wait::until(
        "node2's lock",
        Duration::from_secs(60),
        Duration::from_millis(5),
        || info.exists().then_some(()).ok_or_else(String::new),
    );
    // The link fails: the answer ("acquired") still on its way is lost.
    proxy.cut();
    let o = child.wait_with_output().expect("deckhand ends");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "not ready, nothing changed:\n{out}"
    );
    assert!(out.contains("cannot take the lock on node2"), "{out}");
    for n in &fleet.nodes {
        assert!(
            !n.deploy_path.join(".deckhand/lock").exists(),
            "{} is still locked:\n{out}",
            n.name
        );
        assert_eq!(fleet.current_release(0), None, "nothing was deployed");
    }
}
