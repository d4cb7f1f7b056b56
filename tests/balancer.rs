//! Load balancing against a real HAProxy with real HTTP apps on every node, under a real load
//! loop: zero downtime measured, the same load failing without the driver, min_in_rotation,
//! blue-green, canary pauses, and a balancer that disappears mid-deploy.

mod support;

use std::time::Duration;

use deckhand::engine::{self, Control, EventKind, Outcome, RollbackTarget};
use support::balanced::{LbFleet, LbSpec};
use support::http::Load;
use support::local::{finish, next_within, send, step_started, until};

fn deploy(f: &LbFleet, release: &str, opts: engine::RunOptions) -> engine::RunHandle {
    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", release).expect("plan");
    engine::spawn_deploy(inv, plan, opts).expect("spawn")
}

fn rollback(f: &LbFleet) -> engine::RunHandle {
    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", "previous").expect("plan");
    engine::spawn_rollback(inv, plan, RollbackTarget::Previous, f.options()).expect("spawn")
}

fn nodes(f: &LbFleet) -> Vec<String> {
    f.nodes.iter().map(|(n, _)| n.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deploy_and_its_rollback_under_load_lose_no_request() {
    let f = LbFleet::new(LbSpec {
        nodes: 4,
        env: "batches = 1",
        balancer: true,
        balancer_extra: "",
    });
    let load = Load::start(f.url(), 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (o, events) = finish(deploy(&f, "v2", f.options())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = load.finish().await;
    assert_eq!(o, Outcome::Deployed);
    for n in nodes(&f) {
        assert_eq!(f.current(&n).as_deref(), Some("v2"));
    }
    assert_eq!(
        r.failed, 0,
        "requests failed during the deploy: {:?}",
        r.errors
    );
    assert!(r.ok > 50, "the load loop sent too little: {}", r.ok);
    assert_eq!(r.sequence.first().map(|s| s.as_str()), Some("v1"));
    assert_eq!(r.sequence.last().map(|s| s.as_str()), Some("v2"));
    // Each node left the balancer and came back, as HAProxy itself reported.
    let rotation: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Rotation { node, in_rotation } => Some((node.clone(), *in_rotation)),
            _ => None,
        })
        .collect();
    for n in nodes(&f) {
        assert!(
            rotation.contains(&(n.clone(), false)) && rotation.contains(&(n.clone(), true)),
            "{n}: {rotation:?}"
        );
    }

    let load = Load::start(f.url(), 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (o, _) = finish(rollback(&f)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = load.finish().await;
    assert_eq!(o, Outcome::RolledBack);
    assert_eq!(
        r.failed, 0,
        "requests failed during the rollback: {:?}",
        r.errors
    );
    assert_eq!(r.sequence.first().map(|s| s.as_str()), Some("v2"));
    assert_eq!(r.sequence.last().map(|s| s.as_str()), Some("v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_balancer_driver_the_same_load_sees_failures() {
    let f = LbFleet::new(LbSpec {
        nodes: 4,
        env: "batches = 1",
        balancer: false,
        balancer_extra: "",
    });
    let load = Load::start(f.url(), 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (o, _) = finish(deploy(&f, "v2", f.options())).await;
    let r = load.finish().await;
    assert_eq!(o, Outcome::Deployed);
    assert!(
        r.failed > 0,
        "restarting apps that still get traffic must fail some requests (ok {}, seq {:?})",
        r.ok,
        r.sequence
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_in_rotation_narrows_batches_and_says_so() {
    let f = LbFleet::new(LbSpec {
        nodes: 2,
        env: "batches = 2",
        balancer: true,
        balancer_extra: "min_in_rotation = 1",
    });
    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", "v2").unwrap();
    assert_eq!(
        plan.batches,
        vec![vec!["web-1".to_string()], vec!["web-2".to_string()]]
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("narrowed to 1") && n.contains("min_in_rotation = 1")),
        "{:?}",
        plan.notes
    );
    let text = deckhand::plan::render_text(&plan, &inv);
    assert!(
        text.contains("note: a batch of 2 is narrowed to 1"),
        "{text}"
    );
    let load = Load::start(f.url(), 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (o, events) = finish(deploy(&f, "v2", f.options())).await;
    let r = load.finish().await;
    assert_eq!(o, Outcome::Deployed);
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!(
        r.ok > 20,
        "the load ran through the deploy: {} answers",
        r.ok
    );
    // Never more than one node out of rotation at a time.
    let mut out = std::collections::BTreeSet::new();
    let mut most = 0;
    for e in &events {
        if let EventKind::Rotation { node, in_rotation } = &e.kind {
            if *in_rotation {
                out.remove(node);
            } else {
                out.insert(node.clone());
            }
            most = most.max(out.len());
        }
    }
    assert_eq!(most, 1, "nodes out of rotation at once");

    // With min_in_rotation = 2 over 2 nodes there is no room at all: refused before anything.
    let text = std::fs::read_to_string(f.path().join("deckhand.toml"))
        .unwrap()
        .replace("min_in_rotation = 1", "min_in_rotation = 2");
    std::fs::write(f.path().join("deckhand.toml"), text).unwrap();
    let err = deckhand::plan::build(&f.inventory(), "test", "v3")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("it has 2 nodes and min_in_rotation = 2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_and_switches_back_under_load() {
    let f = LbFleet::new(LbSpec {
        nodes: 4,
        env: "strategy = \"blue-green\"\ngroups = { blue = [\"web-1\", \"web-2\"], green = [\"web-3\", \"web-4\"] }",
        balancer: true,
        balancer_extra: "",
    });
    // blue serves, green is on standby
    for s in ["web-3", "web-4"] {
        assert_eq!(
            f.haproxy
                .command(&format!("set server app/{s} state drain"))
                .trim(),
            ""
        );
    }
    let load = Load::start(f.url(), 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (o, events) = finish(deploy(&f, "v2", f.options())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = load.finish().await;
    assert_eq!(o, Outcome::Deployed);
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    // While both groups briefly serve during the switch, answers may alternate; then only v2.
    assert_eq!(r.sequence.first().map(|s| s.as_str()), Some("v1"));
    assert_eq!(r.sequence.last().map(|s| s.as_str()), Some("v2"));
    assert_eq!(
        f.current("web-1").as_deref(),
        Some("v1"),
        "blue stays on standby with v1"
    );
    assert_eq!(f.current("web-3").as_deref(), Some("v2"));
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Groups { live: Some(l), .. } if l == "green")));
    // The balancer itself says so: green serves, blue takes no new traffic.
    let serving = |s: &str| f.haproxy.status(s) == "UP";
    assert!(serving("web-3") && serving("web-4"), "green serves");
    assert!(
        !serving("web-1") && !serving("web-2"),
        "blue is out of rotation"
    );

    let load = Load::start(f.url(), 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (o, _) = finish(rollback(&f)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = load.finish().await;
    assert_eq!(o, Outcome::RolledBack);
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert_eq!(r.sequence.first().map(|s| s.as_str()), Some("v2"));
    assert_eq!(r.sequence.last().map(|s| s.as_str()), Some("v1"));
    assert_eq!(
        f.current("web-3").as_deref(),
        Some("v2"),
        "green keeps v2 on standby"
    );
    assert!(serving("web-1") && serving("web-2"), "blue serves again");
    assert!(
        !serving("web-3") && !serving("web-4"),
        "green is out of rotation"
    );
}

/// `deckhand rollback` on a blue-green environment takes the lock like every other run: a lock a
/// dead console left is reported as stale, and taken over once the operator said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_rollback_takes_the_lock_like_every_run() {
    let f = LbFleet::new(LbSpec {
        nodes: 2,
        env: "strategy = \"blue-green\"\ngroups = { blue = [\"web-1\"], green = [\"web-2\"] }",
        balancer: true,
        balancer_extra: "",
    });
    // blue serves, green is on standby; a console that died 10 minutes ago left its lock on web-1.
    assert_eq!(
        f.haproxy.command("set server app/web-2 state drain").trim(),
        ""
    );
    let lock = f.node_dir("web-1").join(".deckhand/lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(
        lock.join("info.json"),
        r#"{"id":"dead-1","who":"mallory","host":"jump-9","pid":4242,"at":"2026-01-01T00:00:00Z","env":"test","release":"v9"}"#,
    )
    .unwrap();
    std::fs::write(lock.join("heartbeat"), "").unwrap();
    let st = std::process::Command::new("touch")
        .args(["-d", "10 minutes ago"])
        .arg(lock.join("heartbeat"))
        .status()
        .unwrap();
    assert!(st.success());
    let finished = |events: &[deckhand::engine::Event]| {
        events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Finished { message, .. } => Some(message.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };

    let (o, events) = finish(rollback(&f)).await;
    assert_eq!(o, Outcome::LockHeld);
    let m = finished(&events);
    assert!(
        m.contains("web-1 is locked by mallory") && m.contains("STALE: no heartbeat for"),
        "{m}"
    );
    assert_eq!(
        m.matches("another deployment holds the lock").count(),
        1,
        "{m}"
    );

    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", "previous").expect("plan");
    let opts = engine::RunOptions {
        take_over_stale: true,
        ..f.options()
    };
    let h = engine::spawn_rollback(inv, plan, RollbackTarget::Previous, opts).expect("spawn");
    let (o, events) = finish(h).await;
    assert_eq!(o, Outcome::RolledBack, "{}", finished(&events));
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::Notice { message, .. } if message.contains("taking over the stale lock"))));
    assert!(!lock.exists(), "the lock is released after the rollback");
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Groups { live: Some(l), .. } if l == "green")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_steps_wait_for_promote_and_timed_pauses_pass_by_themselves() {
    let f = LbFleet::new(LbSpec {
        nodes: 4,
        env: "strategy = \"canary\"\nsteps = [{ nodes = 1 }, { pause = \"manual\" }, { nodes = \"50%\" }, { pause = \"1s\" }, { nodes = \"100%\" }]",
        balancer: true,
        balancer_extra: "",
    });
    let inv = f.inventory();
    let plan = deckhand::plan::build(&inv, "test", "v2").unwrap();
    assert_eq!(
        plan.batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![1, 1, 2]
    );
    assert_eq!(plan.gates, vec![0, 1]);
    assert_eq!(plan.gate_waits, vec![(1, 1000)]);

    let mut opts = f.options();
    opts.auto_promote = false;
    opts.headless = false;
    let mut h = deploy(&f, "v2", opts);
    let mut seen = Vec::new();
    until(&mut h, &mut seen, |k| {
        matches!(k, EventKind::Gate { until_ms: None, .. })
    })
    .await;
    let started = next_within(&mut h, Duration::from_millis(800), |k| {
        matches!(k, EventKind::StepStarted { .. })
    })
    .await;
    assert!(started.is_none(), "the manual pause holds: {started:?}");
    assert_eq!(f.current("web-2").as_deref(), Some("v1"));
    send(&h, Control::Promote);
    until(&mut h, &mut seen, |k| {
        matches!(
            k,
            EventKind::Gate {
                until_ms: Some(_),
                ..
            }
        )
    })
    .await;
    // nobody promotes: the timed pause ends by itself, after its second
    let paused_at = seen.last().expect("the timed gate").at_ms;
    let (o, rest) = finish(h).await;
    assert_eq!(o, Outcome::Deployed);
    let next_step = rest
        .iter()
        .find(|e| matches!(e.kind, EventKind::StepStarted { .. }))
        .expect("the last batch ran");
    assert!(
        next_step.at_ms - paused_at >= 950,
        "the 1s pause lasted {} ms",
        next_step.at_ms - paused_at
    );
    assert!(rest.iter().any(|e| matches!(&e.kind, EventKind::Notice { message, .. } if message.contains("the pause is over"))));
    for n in nodes(&f) {
        assert_eq!(f.current(&n).as_deref(), Some("v2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_that_disappears_pauses_the_run_and_names_the_drained_node() {
    let mut f = LbFleet::new(LbSpec {
        nodes: 3,
        env: "batches = 1",
        balancer: true,
        balancer_extra: "",
    });
    let mut opts = f.options();
    opts.headless = false;
    let mut h = deploy(&f, "v2", opts);
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-2", "build")).await;
    f.haproxy.stop();
    until(&mut h, &mut seen, |k| matches!(k, EventKind::Gate { .. })).await;
    let reason = match &seen.last().unwrap().kind {
        EventKind::Gate { reason, .. } => reason.clone(),
        _ => unreachable!(),
    };
    assert!(
        reason.contains("cannot be reached") && reason.contains("web-2"),
        "{reason}"
    );
    assert!(
        reason.contains("out of rotation as far as deckhand knows: web-2"),
        "{reason}"
    );
    // The balancer comes back (all servers ready again); promote retries the enable.
    f.haproxy.restart();
    f.haproxy.wait_up(&["web-1", "web-2", "web-3"]);
    send(&h, Control::Promote);
    let (o, _) = finish(h).await;
    assert_eq!(o, Outcome::Deployed);
    for n in nodes(&f) {
        assert_eq!(f.current(&n).as_deref(), Some("v2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_a_lost_balancer_fails_the_node_and_the_message_names_it() {
    let mut f = LbFleet::new(LbSpec {
        nodes: 3,
        env: "batches = 1\non_failure = \"abort\"",
        balancer: true,
        balancer_extra: "",
    });
    let mut h = deploy(&f, "v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-2", "build")).await;
    f.haproxy.stop();
    let (o, rest) = finish(h).await;
    assert_eq!(o, Outcome::Aborted);
    let msg = rest
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Finished { message, .. } => Some(message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(msg.contains("OUT OF ROTATION: web-2"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_a_node_the_balancer_does_not_know() {
    let f = LbFleet::new(LbSpec {
        nodes: 2,
        env: "batches = 1",
        balancer: true,
        balancer_extra: "",
    });
    let text = std::fs::read_to_string(f.path().join("deckhand.toml"))
        .unwrap()
        .replace(
            "[nodes.web-2]\n",
            "[nodes.web-2]\nlb_server = \"web-two\"\n",
        );
    std::fs::write(f.path().join("deckhand.toml"), text).unwrap();
    let (o, events) = finish(deploy(&f, "v2", f.options())).await;
    assert_eq!(o, Outcome::PreflightFailed);
    let msg = events.iter().find_map(|e| match &e.kind {
        EventKind::Finished { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(msg.unwrap().contains("has no server `web-two`"));
    assert_eq!(f.current("web-1").as_deref(), Some("v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_that_restarts_mid_node_is_told_again_before_the_switch() {
    let mut f = LbFleet::new(LbSpec {
        nodes: 3,
        env: "batches = 1",
        balancer: true,
        balancer_extra: "",
    });
    let hold = f.path().join("ctl/hold-build-web-2");
    std::fs::write(&hold, "").unwrap();
    let mut h = deploy(&f, "v2", f.options());
    let mut seen = Vec::new();
    until(&mut h, &mut seen, step_started("web-2", "build")).await;
    let pid_file = f.path().join("ctl/pid-build-web-2");
    while !pid_file.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(f.haproxy.status("web-2").starts_with("DRAIN"));
    // HAProxy restarts and loses its runtime state: web-2 serves again mid-update.
    f.haproxy.restart();
    f.haproxy.wait_up(&["web-1", "web-2", "web-3"]);
    std::fs::remove_file(&hold).unwrap();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // End the build step's sleep (the step's shell then goes on and succeeds).
    let sleeps: Vec<i32> = support::procs::tree(pid)
        .into_iter()
        .filter(|p| *p != pid)
        .collect();
    assert!(!sleeps.is_empty(), "the held build's sleep");
    for p in sleeps {
        support::procs::kill(p);
    }
    let (o, rest) = finish(h).await;
    seen.extend(rest);
    assert_eq!(
        o,
        Outcome::Deployed,
        "{:#?}",
        seen.iter()
            .filter(|e| matches!(
                e.kind,
                EventKind::Notice { .. } | EventKind::StepFinished { .. }
            ))
            .map(|e| &e.kind)
            .collect::<Vec<_>>()
    );
    let at = |pred: &dyn Fn(&EventKind) -> bool| seen.iter().position(|e| pred(&e.kind));
    let notice = at(&|k| {
        matches!(k, EventKind::Notice { message, .. }
            if message.starts_with("web-2 should be out of rotation before switch") && message.contains("draining it again"))
    })
    .expect("a notice says the balancer forgot web-2");
    let switch = at(&|k| step_started("web-2", "switch")(k)).expect("web-2 switched");
    let redrain = seen[notice..]
        .iter()
        .position(|e| step_started("web-2", "drain")(&e.kind))
        .map(|i| i + notice)
        .expect("web-2 drained again");
    assert!(
        notice < redrain && redrain < switch,
        "{notice} {redrain} {switch}"
    );
    for n in nodes(&f) {
        assert_eq!(f.current(&n).as_deref(), Some("v2"));
    }
    for n in ["web-1", "web-2", "web-3"] {
        assert!(f.haproxy.status(n).starts_with("UP"), "{n}");
    }
}
