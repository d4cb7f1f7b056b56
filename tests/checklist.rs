//! The post-deploy checklist against real HTTP servers and a real Prometheus on loopback: the
//! decision tree branch by branch, manual items, notifications, promotion and config preflight.

mod common;

use std::time::{Duration, Instant};

use common::http::App;
use common::prometheus::Prometheus;
use common::*;
use deckhand::event::{CheckStatus, NodeState};
use deckhand::engine::{Control, EventKind, Outcome};

fn checks_toml(checks: &str, interval: &str) -> String {
    format!("\n[checklist]\nimmediate = \"30s\"\nshort = \"0s\"\nlong = \"0s\"\ninterval = \"{interval}\"\n\n{checks}")
}

fn decisions(events: &[deckhand::engine::Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Decision { verdict, reason } => Some((verdict.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn all_on(f: &Fleet, release: &str) {
    for n in &f.nodes {
        assert_eq!(f.current(n).as_deref(), Some(release), "{n}");
    }
}

fn watch(f: &Fleet, secs: u64) -> deckhand::engine::RunOptions {
    let mut o = f.options();
    o.watch = Some(Duration::from_secs(secs));
    o
}

#[tokio::test]
async fn a_health_probe_failing_after_the_switch_rolls_back_automatically() {
    let app = App::start().await;
    let f = Fleet::new(FleetSpec {
        nodes: 3,
        extra_toml: checks_toml(
            &format!(
                "[[checks]]\nname = \"Health endpoint responding\"\nwindow = \"immediate\"\nkind = \"health\"\nhttp = {{ url = \"{}\", expect = 200, max_latency = \"2s\" }}\n",
                app.url("/up")
            ),
            "200ms",
        ),
        ..Default::default()
    });
    assert_eq!(
        finish(f.start("v1", watch(&f, 1))).await.0,
        Outcome::Deployed
    );
    let mut h = f.start("v2", watch(&f, 20));
    let mut seen = Vec::new();
    until(&mut h, &mut seen, |k| {
        matches!(k, EventKind::Monitoring { .. })
    })
    .await;
    all_on(&f, "v2");
    app.set(|s| s.up_fails = true);
    let (o, rest) = finish(h).await;
    seen.extend(rest);
    assert_eq!(o, Outcome::RolledBack);
    assert_eq!(o.exit_code(), 1);
    all_on(&f, "v1");
    let d = decisions(&seen);
    let rb = d
        .iter()
        .find(|(v, _)| v == "rollback")
        .expect("a rollback decision");
    assert!(rb.1.contains("Health endpoint responding"), "{rb:?}");
    assert!(seen.iter().any(|e| matches!(&e.kind, EventKind::Check { name, status: CheckStatus::Fail, value: Some(v), .. } if name == "Health endpoint responding" && v.contains("500"))));
    // the journal says the same
    let journal = std::fs::read_dir(f.journal_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        journal.contains("\"type\":\"decision\"")
            && journal.contains("health check failing: Health endpoint responding")
    );
}

fn tree_fleet(app: &App, critical_cmd: &str, errors_value: u32) -> Fleet {
    Fleet::new(FleetSpec {
        nodes: 2,
        extra_toml: checks_toml(
            &format!(
                "[[checks]]\nname = \"Health endpoint responding\"\nwindow = \"immediate\"\nkind = \"health\"\nhttp = {{ url = \"{up}\" }}\n\n\
                 [[checks]]\nname = \"Error rate < 0.1%\"\nwindow = \"immediate\"\nkind = \"errors\"\nrun = \"echo {errors_value}\"\non = \"local\"\nmax = 0\n\n\
                 [[checks]]\nname = \"Response times < 500ms\"\nwindow = \"immediate\"\nkind = \"performance\"\nper_node = true\nhttp = {{ url = \"{slow}\", max_latency = \"100ms\" }}\n\n\
                 [[checks]]\nname = \"Queue workers processing\"\nwindow = \"immediate\"\nkind = \"critical\"\nrun = \"{critical_cmd}\"\n",
                up = app.url("/up"),
                slow = app.url("/slow"),
            ),
            "300ms",
        ),
        ..Default::default()
    })
}

#[tokio::test]
async fn slow_but_critical_checks_passing_keeps_the_release_and_alerts() {
    let app = App::start().await;
    app.set(|s| s.slow_ms = 300);
    let f = tree_fleet(&app, "true", 0);
    let (o, events) = finish(f.start("v1", watch(&f, 1))).await;
    assert_eq!(o, Outcome::Deployed);
    all_on(&f, "v1");
    let d = decisions(&events);
    assert!(
        d.iter().any(|(v, r)| v == "alert"
            && r.contains("Response times < 500ms")
            && r.contains("every critical check passes")),
        "{d:?}"
    );
}

#[tokio::test]
async fn slow_with_a_critical_check_failing_rolls_back() {
    let app = App::start().await;
    let f = tree_fleet(&app, "false", 0);
    assert_eq!(
        finish(f.start("v1", watch(&f, 1))).await.0,
        Outcome::Deployed,
        "fast app: v1 goes through"
    );
    app.set(|s| s.slow_ms = 300);
    let (o, events) = finish(f.start("v2", watch(&f, 5))).await;
    assert_eq!(o, Outcome::RolledBack);
    all_on(&f, "v1");
    let d = decisions(&events);
    assert!(
        d.iter().any(|(v, r)| v == "rollback"
            && r.contains("critical checks not passing (Queue workers processing)")),
        "{d:?}"
    );
}

#[tokio::test]
async fn an_abnormal_error_rate_rolls_back() {
    let app = App::start().await;
    let f = tree_fleet(&app, "true", 0);
    assert_eq!(
        finish(f.start("v1", watch(&f, 1))).await.0,
        Outcome::Deployed
    );
    let f2 = tree_fleet(&app, "true", 7);
    // same nodes layout, new inventory where the error probe reads 7
    std::fs::copy(f2.inventory_path(), f.inventory_path()).unwrap();
    let text = std::fs::read_to_string(f.inventory_path())
        .unwrap()
        .replace(
            &f2.path().display().to_string(),
            &f.path().display().to_string(),
        );
    std::fs::write(f.inventory_path(), text).unwrap();
    let (o, events) = finish(f.start("v2", watch(&f, 5))).await;
    assert_eq!(o, Outcome::RolledBack);
    let d = decisions(&events);
    assert!(
        d.iter()
            .any(|(v, r)| v == "rollback" && r.contains("error rate abnormal: Error rate < 0.1%")),
        "{d:?}"
    );
    all_on(&f, "v1");
}

#[tokio::test]
async fn with_everything_green_all_systems_are_normal() {
    let app = App::start().await;
    let f = tree_fleet(&app, "true", 0);
    let (o, events) = finish(f.start("v1", watch(&f, 1))).await;
    assert_eq!(o, Outcome::Deployed);
    assert!(
        decisions(&events).iter().any(|(v, _)| v == "all_normal"),
        "{:?}",
        decisions(&events)
    );
    // the release is recorded as verified on every node
    for n in &f.nodes {
        assert!(f
            .history(n)
            .iter()
            .any(|h| h["kind"] == "verified" && h["release"] == "v1"));
    }
}

fn manual_fleet() -> Fleet {
    Fleet::new(FleetSpec {
        nodes: 2,
        extra_toml: checks_toml(
            "[[checks]]\nname = \"All critical paths tested\"\nwindow = \"short\"\nkind = \"critical\"\nmanual = true\n\n\
             [[checks]]\nname = \"Release file present\"\nwindow = \"immediate\"\nkind = \"health\"\nper_node = true\nrun = \"test -f {deploy_path}/current/REVISION\"\n",
            "100ms",
        )
        .replace("immediate = \"30s\"", "immediate = \"300ms\""),
        ..Default::default()
    })
}

#[tokio::test]
async fn manual_items_block_done_until_the_operator_confirms_them() {
    let f = manual_fleet();
    let mut opts = f.options();
    opts.headless = false;
    let mut h = f.start("v1", opts);
    let mut seen = Vec::new();
    until(
        &mut h,
        &mut seen,
        |k| matches!(k, EventKind::Gate { reason, .. } if reason.contains("All critical paths tested")),
    )
    .await;
    // DONE does not come: the run waits for the operator.
    let finished = next_within(&mut h, Duration::from_millis(800), |k| {
        matches!(k, EventKind::Finished { .. })
    })
    .await;
    assert!(
        finished.is_none(),
        "the run ended unconfirmed: {finished:?}"
    );
    send(
        &h,
        Control::Confirm {
            check: "All critical paths tested".into(),
        },
    );
    until(&mut h, &mut seen, |k| matches!(k, EventKind::Check { name, status: CheckStatus::Pass, .. } if name == "All critical paths tested")).await;
    send(&h, Control::Promote);
    let (o, rest) = finish(h).await;
    assert_eq!(o, Outcome::Deployed);
    assert!(
        decisions(&rest).iter().any(|(v, _)| v == "all_normal"),
        "{:?}",
        decisions(&rest)
    );
}

#[tokio::test]
async fn headless_runs_report_manual_items_unconfirmed() {
    let f = manual_fleet();
    let (o, events) = finish(f.start("v1", f.options())).await;
    assert_eq!(o, Outcome::Deployed);
    let d = decisions(&events);
    assert!(
        d.iter()
            .any(|(v, r)| v == "unconfirmed" && r.contains("All critical paths tested")),
        "{d:?}"
    );
}

fn notify_fleet(app: &App, extra_checks: &str, timeout: &str) -> Fleet {
    Fleet::new(FleetSpec {
        nodes: 2,
        extra_toml: format!(
            "\n[notify]\nwebhook = \"{}\"\ntimeout = \"{timeout}\"\nretries = 1\n{}",
            app.url("/hook?token=tok-s3cr3t-xyz"),
            checks_toml(extra_checks, "100ms")
                .replace("immediate = \"30s\"", "immediate = \"200ms\"")
        ),
        ..Default::default()
    })
}

#[tokio::test]
async fn webhooks_hear_the_seed_messages_in_order_and_never_leak_the_url() {
    let app = App::start().await;
    let f = notify_fleet(
        &app,
        "[[checks]]\nname = \"Up\"\nwindow = \"immediate\"\nkind = \"health\"\nrun = \"true\"\n",
        "5s",
    );
    let (o, _) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    let got: Vec<String> = app
        .hooks()
        .iter()
        .map(|h| h["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, vec!["starting", "complete", "all_normal"]);
    let first = &app.hooks()[0];
    assert_eq!(first["app"], "shop");
    assert_eq!(first["env"], "test");
    assert_eq!(first["release"], "v1");
    assert_eq!(first["who"], "tester");

    // A failing node: starting, node failed, rolling back, rolled back.
    app.set(|s| s.hooks.clear());
    f.ctl("fail-build-web-2", "");
    let (o, _) = f.deploy("v2").await;
    assert_eq!(o, Outcome::RolledBack);
    let got: Vec<String> = app
        .hooks()
        .iter()
        .map(|h| h["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        got,
        vec!["starting", "node_failed", "rolling_back", "rolled_back"]
    );
    assert!(app.hooks()[1]["text"].as_str().unwrap().contains("web-2"));

    // The URL (with its token) appears in no byte deckhand wrote.
    for e in std::fs::read_dir(f.journal_dir()).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains("tok-s3cr3t-xyz"));
    }
}

#[tokio::test]
async fn a_dead_or_hanging_webhook_never_blocks_the_deployment() {
    for status in [500u16, 0] {
        let app = App::start().await;
        app.set(|s| s.hook_status = status);
        let f = notify_fleet(&app, "", "1s");
        let started = Instant::now();
        let (o, events) = f.deploy("v1").await;
        assert_eq!(o, Outcome::Deployed, "hook answering {status}");
        // Generous bound: a hang would never end; the configured timeout is 1 s per attempt.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run waited on the webhook"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Finished { .. })));
        assert!(!app.hooks().is_empty(), "the receiver was called");
    }
}

#[tokio::test]
async fn promotion_refuses_an_unverified_release_and_accepts_a_verified_one() {
    let f = Fleet::new(FleetSpec {
        nodes: 3,
        env_extra: "requires = \"staging\"\n".into(),
        extra_toml: "\n[environments.staging]\nnodes = [\"web-2\"]\n".into(),
        ..Default::default()
    });
    let (o, events) = finish(f.start("v7", f.options())).await;
    assert_eq!(o, Outcome::PreflightFailed);
    assert_eq!(o.exit_code(), 4);
    let msg = events.iter().find_map(|e| match &e.kind {
        EventKind::Finished { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(msg
        .unwrap()
        .contains("v7 has not passed staging's checklist"));
    assert_eq!(f.current("web-1"), None, "nothing changed");

    let (o, _) = finish(f.start_env("staging", "v7", f.options())).await;
    assert_eq!(o, Outcome::Deployed);
    let (o, _) = finish(f.start("v7", f.options())).await;
    assert_eq!(o, Outcome::Deployed);
    all_on(&f, "v7");
}

#[tokio::test]
async fn config_preflight_catches_a_missing_key_before_any_change() {
    let f = Fleet::new(FleetSpec {
        nodes: 3,
        env_extra: "config = { example = \".env.example\" }\n".into(),
        ..Default::default()
    });
    std::fs::write(
        f.path().join(".env.example"),
        "APP_KEY=\nDB_HOST=127.0.0.1\n# comment\nexport CACHE_DRIVER=redis\n",
    )
    .unwrap();
    for n in &f.nodes {
        let shared = f.node_dir(n).join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        let env = if n == "web-3" {
            "APP_KEY=base64:xyz\nCACHE_DRIVER=file\n"
        } else {
            "APP_KEY=k\nDB_HOST=db\nCACHE_DRIVER=redis\n"
        };
        std::fs::write(shared.join(".env"), env).unwrap();
    }
    let (o, events) = f.deploy("v1").await;
    assert_eq!(o, Outcome::PreflightFailed);
    let msg = events.iter().find_map(|e| match &e.kind {
        EventKind::Finished { message, .. } => Some(message.clone()),
        _ => None,
    });
    let msg = msg.unwrap();
    assert!(
        msg.contains("web-3") && msg.contains("DB_HOST") && !msg.contains("web-1:"),
        "{msg}"
    );
    for n in &f.nodes {
        assert!(f.releases(n).is_empty(), "{n} changed");
    }
    std::fs::write(
        f.node_dir("web-3").join("shared/.env"),
        "APP_KEY=k\nDB_HOST=db\nCACHE_DRIVER=redis\n",
    )
    .unwrap();
    assert_eq!(
        finish(f.start("v1", watch(&f, 1))).await.0,
        Outcome::Deployed
    );
}

fn prometheus_fleet(prom: &Prometheus) -> Fleet {
    Fleet::new(FleetSpec {
        nodes: 2,
        extra_toml: checks_toml(
            &format!(
                "[[checks]]\nname = \"Error rate < 0.1%\"\nwindow = \"immediate\"\nkind = \"errors\"\n\
                 prometheus = {{ url = \"{}\", query = \"increase(app_errors_total[5s])\", max = 2 }}\n",
                prom.url
            ),
            "1s",
        ),
        ..Default::default()
    })
}

#[tokio::test]
async fn prometheus_error_rate_rolls_back_when_errors_climb_and_passes_while_low() {
    let app = App::start().await;
    let prom = Prometheus::start(app.port).await;
    prom.wait_for_samples("app_errors_total").await;
    let f = prometheus_fleet(&prom);

    // Errors stay low: the check passes and the release stays.
    let (o, events) = finish(f.start("v1", watch(&f, 4))).await;
    assert_eq!(o, Outcome::Deployed);
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::Check { name, status: CheckStatus::Pass, .. } if name == "Error rate < 0.1%")));

    // Errors climb while v2 is watched: the tree rolls back.
    let mut h = f.start("v2", watch(&f, 30));
    let mut seen = Vec::new();
    until(&mut h, &mut seen, |k| {
        matches!(k, EventKind::Monitoring { .. })
    })
    .await;
    let state = app.state.clone();
    let pump = tokio::spawn(async move {
        for _ in 0..120 {
            state.lock().unwrap().errors_total += 25;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let (o, rest) = finish(h).await;
    pump.abort();
    assert_eq!(o, Outcome::RolledBack);
    let d = decisions(&rest);
    assert!(
        d.iter()
            .any(|(v, r)| v == "rollback" && r.contains("error rate abnormal")),
        "{d:?}"
    );
    all_on(&f, "v1");
    assert!(rest.iter().any(|e| matches!(
        &e.kind,
        EventKind::NodeState {
            state: NodeState::RolledBack,
            ..
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_health_check_gates_each_node() {
    let app = App::start().await;
    let f = Fleet::new(FleetSpec {
        nodes: 2,
        ..Default::default()
    });
    let inv = f.inventory_path();
    let text = std::fs::read_to_string(&inv).unwrap();
    let start = text.find("health = {").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let http = format!("health = {{ url = \"{}\", expect = 200, timeout = \"1s\", interval = \"50ms\", retries = 1 }}", app.url("/up"));
    std::fs::write(&inv, format!("{}{}{}", &text[..start], http, &text[end..])).unwrap();
    assert_eq!(f.deploy("v1").await.0, Outcome::Deployed);
    app.set(|s| s.up_fails = true);
    let mut h = f.start("v2", f.options());
    let mut events = Vec::new();
    until(&mut h, &mut events, |k| {
        matches!(k, EventKind::RollbackStarted { .. })
    })
    .await;
    // v1 is healthy again: the rollback's own check passes.
    app.set(|s| s.up_fails = false);
    let (o, rest) = finish(h).await;
    events.extend(rest);
    assert_eq!(o, Outcome::RolledBack);
    all_on(&f, "v1");
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::StepFinished { phase, message: Some(m), .. }
        if phase == "health" && m.contains("answered 500, expected 200"))
    ));
}
