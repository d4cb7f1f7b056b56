//! The engine against local nodes: real directories, real `sh` processes, real atomic switches.
//! Each test drives a run through its event and control channels, as the console does, and then
//! checks what is actually on disk.

mod support;

use std::time::Duration;

use deckhand::engine::{Control, EventKind, Outcome};
use deckhand::journal::read_journal;
use support::local::{finish, next_within, send, step_started, until, Fleet, FleetSpec};
use support::procs::{alive, group_members};

fn all_on(f: &Fleet, release: &str) {
    for n in &f.nodes {
        assert_eq!(
            f.current(n).as_deref(),
            Some(release),
            "{n} is not on {release}"
        );
    }
}

fn no_locks(f: &Fleet) {
    for n in &f.nodes {
        assert!(!f.locked(n), "{n} is still locked");
    }
}

#[tokio::test]
async fn full_deploy_switches_every_node_and_writes_history() {
    let f = Fleet::new(FleetSpec::default());
    let (o, _) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    let (o, events) = f.deploy("v2").await;
    assert_eq!(o, Outcome::Deployed);
    all_on(&f, "v2");
    no_locks(&f);
    for n in &f.nodes {
        let h = f.history(n);
        let last = h
            .iter()
            .rev()
            .find(|l| l["kind"] == "deploy")
            .expect("history line");
        // The run's own end comes last; before it, the verification.
        assert_eq!(h.last().unwrap()["kind"], "finished");
        assert_eq!(
            h[h.len() - 2]["kind"],
            "verified",
            "no checklist: a deployed release counts as verified"
        );
        assert_eq!(last["release"], "v2");
        assert_eq!(last["from"], "v1");
        assert_eq!(last["result"], "ok");
        assert_eq!(last["kind"], "deploy");
        // shared files and dirs are linked into the release
        let rel = f.node_dir(n).join("releases/v2");
        assert!(std::fs::symlink_metadata(rel.join(".env"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::symlink_metadata(rel.join("storage"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // The once-phase ran on the migrator (web-2) only; the others show why they skipped it.
    let migrate = |want: deckhand::event::StepResult| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StepFinished {
                    node,
                    phase,
                    result,
                    ..
                } if phase == "migrate" && *result == want => node.clone(),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        migrate(deckhand::event::StepResult::Ok),
        vec!["web-2".to_string()]
    );
    assert_eq!(
        migrate(deckhand::event::StepResult::Skipped),
        vec!["web-1", "web-3", "web-4"]
    );
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::StepFinished { message: Some(m), .. } if m == "runs once, on web-2")));
}

#[tokio::test]
async fn pause_waits_for_the_running_step_then_nothing_starts_until_resume() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    f.ctl("hold-build-web-1", "1");
    let mut h = f.start("v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-1", "build")).await;
    send(&h, Control::Pause);
    until(&mut h, &mut seen, |k| matches!(k, EventKind::Paused)).await;
    // Pausing came first, and the running build finished before Paused.
    let pausing = seen
        .iter()
        .position(|e| matches!(e.kind, EventKind::Pausing))
        .expect("Pausing");
    let build_done = seen
        .iter()
        .position(|e| matches!(&e.kind, EventKind::StepFinished { node: Some(n), phase, .. } if n == "web-1" && phase == "build"))
        .expect("build finished");
    assert!(
        pausing < build_done,
        "Pausing must be shown while the step still runs"
    );
    // While paused, no new step starts.
    let started = next_within(&mut h, Duration::from_millis(800), |k| {
        matches!(k, EventKind::StepStarted { .. })
    })
    .await;
    assert!(
        started.is_none(),
        "a step started while paused: {started:?}"
    );
    send(&h, Control::Resume);
    let (o, rest) = finish(h).await;
    assert_eq!(o, Outcome::Deployed);
    assert!(rest.iter().any(|e| matches!(e.kind, EventKind::Resumed)));
    all_on(&f, "v2");
}

#[tokio::test]
async fn abort_mid_step_kills_it_and_leaves_every_node_whole() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    f.ctl("hold-build-web-2", "30");
    let mut h = f.start("v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-2", "build")).await;
    // wait for the step's shell to record its pid
    let pid_file = f.path().join("ctl/pid-build-web-2");
    for _ in 0..100 {
        if pid_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The step's shell leads its own group, with its `sleep` in it (started right after the
    // shell wrote its pid).
    let mut members = group_members(pid);
    for _ in 0..100 {
        if members.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        members = group_members(pid);
    }
    assert!(members.len() >= 2, "the step's group: {members:?}");
    send(&h, Control::Abort);
    let (o, events) = finish(h).await;
    assert_eq!(o, Outcome::Aborted);
    assert!(!alive(pid), "the aborted step's process survived");
    assert_eq!(
        group_members(pid),
        Vec::<i32>::new(),
        "a process of the aborted step survived"
    );
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::StepFinished { node: Some(n), result: deckhand::event::StepResult::Killed, .. } if n == "web-2")));
    // web-1 finished before the abort; web-2 is back on v1 with the half-built v2 removed.
    assert_eq!(f.current("web-1").as_deref(), Some("v2"));
    assert_eq!(f.current("web-2").as_deref(), Some("v1"));
    assert_eq!(f.releases("web-2"), vec!["v1"]);
    for n in ["web-3", "web-4"] {
        assert_eq!(f.current(n).as_deref(), Some("v1"));
        assert_eq!(f.releases(n), vec!["v1"]);
    }
    no_locks(&f);
}

#[tokio::test]
async fn rollback_after_two_of_four_restores_them_and_leaves_the_others_untouched() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    let before_web4 = f.history("web-4").len();
    f.ctl("hold-build-web-3", "30");
    let mut h = f.start("v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-3", "build")).await;
    assert_eq!(f.current("web-1").as_deref(), Some("v2"));
    assert_eq!(f.current("web-2").as_deref(), Some("v2"));
    send(&h, Control::Rollback);
    let (o, events) = finish(h).await;
    assert_eq!(o, Outcome::RolledBack);
    all_on(&f, "v1");
    // newest first: web-2 is rolled back before web-1
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::NodeState {
                node,
                state: deckhand::event::NodeState::RollingBack,
            } => Some(node.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec!["web-2", "web-1"]);
    // the restart phase ran again for v1 on the rolled-back nodes
    let restarts = std::fs::read_to_string(f.node_dir("web-1").join("shared/restarts")).unwrap();
    assert_eq!(restarts.lines().last(), Some("v1"));
    // web-3 was mid-way: its v2 is gone; web-4 never changed
    assert_eq!(f.releases("web-3"), vec!["v1"]);
    assert_eq!(f.releases("web-4"), vec!["v1"]);
    assert_eq!(f.history("web-4").len(), before_web4);
    assert_eq!(
        f.history("web-1")
            .iter()
            .rev()
            .find(|l| l["kind"] != "verified" && l["kind"] != "finished")
            .unwrap()["kind"],
        "rollback"
    );
    no_locks(&f);
}

#[tokio::test]
async fn failure_with_on_failure_rollback_restores_switched_nodes() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    f.ctl("fail-build-web-3", "");
    let (o, events) = f.deploy("v2").await;
    assert_eq!(o, Outcome::RolledBack);
    all_on(&f, "v1");
    let failed = events.iter().find_map(|e| match &e.kind {
        EventKind::StepFinished {
            node: Some(n),
            phase,
            message,
            result: deckhand::event::StepResult::Failed,
            ..
        } if phase == "build" => Some((n.clone(), message.clone())),
        _ => None,
    });
    assert_eq!(failed.as_ref().map(|f| f.0.as_str()), Some("web-3"));
    assert!(failed.unwrap().1.unwrap().contains("exited with status 1"));
    no_locks(&f);
}

#[tokio::test]
async fn failure_with_on_failure_abort_stops_where_it_is() {
    let f = Fleet::new(FleetSpec {
        on_failure: "abort",
        ..Default::default()
    });
    f.deploy("v1").await;
    f.ctl("fail-build-web-2", "");
    let (o, _) = f.deploy("v2").await;
    assert_eq!(o, Outcome::Aborted);
    assert_eq!(f.current("web-1").as_deref(), Some("v2"));
    assert_eq!(f.current("web-2").as_deref(), Some("v1"));
    assert_eq!(f.releases("web-2"), vec!["v1"]);
    assert_eq!(f.current("web-3").as_deref(), Some("v1"));
    no_locks(&f);
}

#[tokio::test]
async fn failure_with_on_failure_pause_waits_for_the_operator() {
    let f = Fleet::new(FleetSpec {
        on_failure: "pause",
        ..Default::default()
    });
    f.deploy("v1").await;
    f.ctl("fail-build-web-2", "");
    let mut opts = f.options();
    opts.headless = false;
    let mut h = f.start("v2", opts);
    let mut seen = Vec::new();
    until(&mut h, &mut seen, |k| matches!(k, EventKind::Gate { .. })).await;
    if let Some(EventKind::Gate { reason, .. }) = seen.last().map(|e| &e.kind) {
        assert!(
            reason.contains("web-2") && reason.contains("build failed"),
            "{reason}"
        );
    }
    // Nothing starts while the gate waits.
    let started = next_within(&mut h, Duration::from_millis(800), |k| {
        matches!(k, EventKind::StepStarted { .. })
    })
    .await;
    assert!(started.is_none(), "a step started at the gate: {started:?}");
    assert_eq!(f.current("web-3").as_deref(), Some("v1"));
    send(&h, Control::Promote);
    let (o, _) = finish(h).await;
    assert_eq!(o, Outcome::Partial);
    assert_eq!(f.current("web-2").as_deref(), Some("v1"));
    assert_eq!(f.releases("web-2"), vec!["v1"]);
    for n in ["web-1", "web-3", "web-4"] {
        assert_eq!(f.current(n).as_deref(), Some("v2"));
    }
    no_locks(&f);
}

#[tokio::test]
async fn failure_with_on_failure_pause_can_be_turned_into_a_rollback() {
    let f = Fleet::new(FleetSpec {
        on_failure: "pause",
        ..Default::default()
    });
    f.deploy("v1").await;
    f.ctl("fail-restart-web-2", "");
    let mut opts = f.options();
    opts.headless = false;
    let mut h = f.start("v2", opts);
    let mut seen = Vec::new();
    until(&mut h, &mut seen, |k| matches!(k, EventKind::Gate { .. })).await;
    // web-2 switched to v2 before its restart failed; the restart works again for v1.
    assert_eq!(f.current("web-2").as_deref(), Some("v2"));
    std::fs::remove_file(f.path().join("ctl/fail-restart-web-2")).unwrap();
    send(&h, Control::Rollback);
    let (o, _) = finish(h).await;
    assert_eq!(o, Outcome::RolledBack);
    all_on(&f, "v1");
}

#[tokio::test]
async fn headless_pause_on_failure_rolls_back_and_says_so() {
    let f = Fleet::new(FleetSpec {
        on_failure: "pause",
        ..Default::default()
    });
    f.deploy("v1").await;
    f.ctl("fail-build-web-2", "");
    let (o, events) = f.deploy("v2").await;
    assert_eq!(o, Outcome::RolledBack);
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::Notice { message, .. } if message.contains("nobody is there to decide"))));
    all_on(&f, "v1");
}

#[tokio::test]
async fn failures_within_max_fail_are_recovered_and_the_run_goes_on() {
    let f = Fleet::new(FleetSpec {
        max_fail: "25%",
        ..Default::default()
    });
    f.deploy("v1").await;
    f.ctl("fail-build-web-3", "");
    let (o, _) = f.deploy("v2").await;
    assert_eq!(o, Outcome::Partial);
    assert_eq!(f.current("web-3").as_deref(), Some("v1"));
    for n in ["web-1", "web-2", "web-4"] {
        assert_eq!(f.current(n).as_deref(), Some("v2"));
    }
}

#[tokio::test]
async fn a_second_deployment_refuses_while_the_lock_is_held_and_names_the_holder() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    f.ctl("hold-build-web-1", "30");
    let mut first = f.start("v2", f.options());
    let mut seen = Vec::new();
    until(&mut first, &mut seen, step_started("web-1", "build")).await;
    let first_id = seen.iter().find_map(|e| match &e.kind {
        EventKind::Started { deployment, .. } => Some(deployment.clone()),
        _ => None,
    });
    let (o, events) = f.deploy("v3").await;
    assert_eq!(o, Outcome::LockHeld);
    assert_eq!(
        deckhand::exit::of_run(deckhand::event::RunKind::Deploy, o),
        3
    );
    let msg = events.iter().find_map(|e| match &e.kind {
        EventKind::Finished { message, .. } => Some(message.clone()),
        _ => None,
    });
    let msg = msg.unwrap();
    assert!(
        msg.contains("tester") && msg.contains(&first_id.unwrap()),
        "{msg}"
    );
    // the refused run changed nothing, and the first still holds its lock
    assert!(f.locked("web-1"));
    assert!(!f.releases("web-4").contains(&"v3".to_string()));
    send(&first, Control::Abort);
    let (o, _) = finish(first).await;
    assert_eq!(o, Outcome::Aborted);
    no_locks(&f);
}

#[tokio::test]
async fn cleanup_keeps_the_newest_and_never_the_live_or_previous_release() {
    let f = Fleet::new(FleetSpec {
        keep_releases: 1,
        nodes: 2,
        ..Default::default()
    });
    for r in ["v1", "v2", "v3"] {
        assert_eq!(f.deploy(r).await.0, Outcome::Deployed);
    }
    // keep 1 + previous: v3 (live, newest) and v2 (previous)
    assert_eq!(f.releases("web-1"), vec!["v2", "v3"]);
    // Back to v2, then v4: v2 is previous and must survive although it is not among the newest.
    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", "v2").unwrap();
    let h = deckhand::engine::spawn_rollback(
        inv,
        plan,
        deckhand::engine::RollbackTarget::Release("v2".into()),
        f.options(),
    )
    .unwrap();
    assert_eq!(finish(h).await.0, Outcome::RolledBack);
    assert_eq!(f.deploy("v4").await.0, Outcome::Deployed);
    assert_eq!(f.releases("web-1"), vec!["v2", "v4"]);
}

#[tokio::test]
async fn redeploying_the_live_release_leaves_it_untouched() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    let marker = f.node_dir("web-1").join("releases/v1/marker");
    std::fs::write(&marker, "live data").unwrap();
    let (o, events) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "live data");
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::NodeState {
            state: deckhand::event::NodeState::Skipped,
            ..
        }
    )));
    all_on(&f, "v1");
}

#[tokio::test]
async fn the_journal_holds_every_event_in_order() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    let (_, events) = f.deploy("v2").await;
    let journal = std::fs::read_dir(f.journal_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let (evs, _) = read_journal(p).unwrap();
            evs.first()
                .map(|e| matches!(&e.kind, EventKind::Started { release, .. } if release == "v2"))
                .unwrap_or(false)
        })
        .expect("journal of the v2 run");
    let (from_disk, problems) = read_journal(&journal).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(from_disk, events);
    for (i, e) in from_disk.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    assert!(matches!(
        from_disk.last().unwrap().kind,
        EventKind::Finished { .. }
    ));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&journal).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn rollback_command_returns_every_node_to_its_previous_release() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    f.deploy("v2").await;
    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", "previous").unwrap();
    let h = deckhand::engine::spawn_rollback(
        inv,
        plan,
        deckhand::engine::RollbackTarget::Previous,
        f.options(),
    )
    .unwrap();
    let (o, _) = finish(h).await;
    assert_eq!(o, Outcome::RolledBack);
    all_on(&f, "v1");
    no_locks(&f);
}

#[tokio::test]
async fn secrets_never_reach_the_journal() {
    let f = Fleet::new(FleetSpec {
        extra_phases: "[[phases]]\nname = \"announce\"\nstage = \"before\"\nwhere = \"local\"\nrun = \"echo token=${DH_TEST_SECRET_TOKEN}\"\n",
        ..Default::default()
    });
    // SAFETY: set before any thread of this test reads the environment for this name.
    unsafe { std::env::set_var("DH_TEST_SECRET_TOKEN", "s3cr3t-hunter2") };
    let (o, events) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Output { line, .. } if line == "token=****")));
    for entry in std::fs::read_dir(f.journal_dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains("s3cr3t-hunter2"),
            "secret leaked into the journal"
        );
    }
}

#[tokio::test]
async fn upload_and_deploy_script_phases_run_on_the_node() {
    let f = Fleet::new(FleetSpec {
        nodes: 2,
        extra_phases: "[[phases]]\nname = \"upload_bundle\"\nupload = { from = \"bundle-{release}.txt\", to = \"{release_path}/bundle.txt\" }\n\n\
                       [[phases]]\nname = \"pull_latest_code\"\nfunction = \"pull_latest_code\"\n",
        ..Default::default()
    });
    // The fleet's inventory gains a deploy script.
    let inv_path = f.inventory_path();
    let text = std::fs::read_to_string(&inv_path).unwrap().replacen(
        "[app]\n",
        "[app]\nscript = \"deploy.sh\"\n",
        1,
    );
    std::fs::write(&inv_path, text).unwrap();
    std::fs::write(
        f.path().join("deploy.sh"),
        "#!/bin/bash\npull_latest_code() { echo \"pulling $DECKHAND_RELEASE on $DECKHAND_NODE ($DECKHAND_FUNCTION)\" > \"$DECKHAND_RELEASE_PATH/pulled\"; }\n\
         [ -n \"${DECKHAND_FUNCTION:-}\" ] || echo 'whole script ran' > /dev/stderr\n",
    )
    .unwrap();
    std::fs::write(f.path().join("bundle-v1.txt"), "bundle one\n").unwrap();
    let (o, events) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    // A phase runs its one function: the script's top-level code is not run as a program.
    assert!(
        !events.iter().any(|e| matches!(&e.kind, EventKind::Output { line, .. } if line.contains("whole script ran"))),
        "the whole deploy script ran"
    );
    for n in ["web-1", "web-2"] {
        let rel = f.node_dir(n).join("releases/v1");
        assert_eq!(
            std::fs::read_to_string(rel.join("bundle.txt")).unwrap(),
            "bundle one\n"
        );
        assert_eq!(
            std::fs::read_to_string(rel.join("pulled")).unwrap(),
            format!("pulling v1 on {n} (pull_latest_code)\n")
        );
        assert!(f.node_dir(n).join(".deckhand/deploy.sh").is_file());
    }
}

#[tokio::test]
async fn every_run_ends_with_where_its_time_went() {
    let f = Fleet::new(FleetSpec::default());
    f.deploy("v1").await;
    // web-1's build takes a second; the operator pauses about a second and a half meanwhile.
    f.ctl("hold-build-web-1", "1");
    let mut h = f.start("v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-1", "build")).await;
    send(&h, Control::Pause);
    until(&mut h, &mut seen, |k| matches!(k, EventKind::Paused)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&h, Control::Resume);
    let (o, rest) = finish(h).await;
    assert_eq!(o, Outcome::Deployed);
    seen.extend(rest);
    let n = seen.len();
    assert!(matches!(seen[n - 1].kind, EventKind::Finished { .. }));
    let EventKind::Timing(t) = &seen[n - 2].kind else {
        panic!(
            "the last but one event is the time report: {:?}",
            seen[n - 2]
        );
    };
    let wall = (seen[n - 1].at_ms - seen[0].at_ms) as u64;
    assert!(t.wall_ms.abs_diff(wall) < 50, "{t:?} vs {wall}");
    assert!(
        t.steps_ms >= 1000,
        "the held build counts as step time: {t:?}"
    );
    assert!(t.waiting_ms >= 1400, "the pause counts as waiting: {t:?}");
    assert!(t.preflight_ms > 0 && t.preflight_ms < t.wall_ms, "{t:?}");
    assert_eq!(t.overhead_ms, t.wall_ms - t.steps_ms - t.waiting_ms);
    assert_eq!(t.slowest_phases[0].name, "build");
    assert_eq!(t.slowest_nodes[0].name, "web-1");
    // The same report is in the journal.
    let journal = f.journal_dir();
    let file = std::fs::read_dir(&journal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("a journal");
    let (events, _) = read_journal(&file).unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Timing(j) if j == t)));
}

/// The journal's disk fills up mid-run and has room again later (the campaign's "journal
/// unwritable" fault): the run goes on and says so, and the journal still reads line by line.
/// A line cut where the disk filled must not be glued to the next event written after it.
#[tokio::test]
async fn a_journal_whose_disk_fills_mid_run_still_reads_line_by_line() {
    let f = Fleet::new(FleetSpec {
        nodes: 2,
        ..Default::default()
    });
    f.deploy("v1").await;
    std::fs::create_dir_all(f.journal_dir()).unwrap();
    let mut disk = support::faults::Tmpfs::mount(&f.journal_dir(), "1m", None, 0o700);
    f.ctl("hold-build-web-1", "1");
    f.ctl("hold-build-web-2", "1");
    let mut h = f.start("v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-1", "build")).await;
    // Full: the journal's last page still takes the start of the next line, not its end.
    disk.fill();
    until(&mut h, &mut seen, step_started("web-2", "build")).await;
    disk.restore();
    let (o, rest) = finish(h).await;
    assert_eq!(o, Outcome::Deployed);
    assert!(
        seen.iter().chain(&rest).any(|e| matches!(&e.kind, EventKind::Notice { message, .. } if message.starts_with("cannot write the journal"))),
        "the run says its journal misses events"
    );
    let journal = std::fs::read_dir(f.journal_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "jsonl")
                && std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .contains("\"v2\"")
        })
        .expect("the v2 run's journal");
    let (events, problems) = read_journal(&journal).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // Written again once there was room: the run's end is there.
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Finished { .. })),
        "{:?}",
        events.last()
    );
    all_on(&f, "v2");
}

/// A node's disk is full when the run takes its lock: the lock directory is made but its holder
/// cannot be written. The run stops before any change, and leaves no half-made lock behind
/// (one with no holder would block every later run and resume until removed by hand).
#[tokio::test]
async fn a_lock_that_cannot_be_written_is_not_left_behind() {
    let f = Fleet::new(FleetSpec {
        nodes: 2,
        ..Default::default()
    });
    let disk = support::faults::Tmpfs::mount(&f.node_dir("web-2"), "1m", None, 0o755);
    let (o, _) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    disk.fill();
    let (o, events) = f.deploy("v2").await;
    disk.empty();
    // Not another deployment's lock (exit 3): the node is not ready (exit 4).
    assert_eq!(o, Outcome::PreflightFailed);
    assert!(
        events.iter().any(|e| matches!(&e.kind, EventKind::Finished { message, .. } if message.contains("cannot write the lock"))),
        "the run says why: {:?}",
        events.last()
    );
    no_locks(&f);
    all_on(&f, "v1");
    // Nothing blocks the next run.
    let (o, _) = f.deploy("v2").await;
    assert_eq!(o, Outcome::Deployed);
    drop(disk);
}
