//! The real `deckhand` binary: exit codes, messages and the demo, as a person or CI sees them.

use std::path::Path;
use std::process::{Command, Output};

mod support;

use support::text;

fn deckhand(args: &[&str], state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(args)
        .env("XDG_STATE_HOME", state)
        .env_remove("DECKHAND_INVENTORY")
        .output()
        .expect("run deckhand")
}

fn current(dir: &Path, node: &str) -> String {
    std::fs::read_link(dir.join("nodes").join(node).join("current"))
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .unwrap_or_default()
}

fn demo(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "demo",
        "--headless",
        "--fast",
        "--dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    deckhand(&args, &dir.join("state"))
}

#[test]
fn demo_deploys_v1_1_to_every_node() {
    let t = tempfile::tempdir().unwrap();
    let o = demo(t.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for i in 1..=5 {
        assert_eq!(current(t.path(), &format!("web-{i}")), "v1.1");
        assert_eq!(
            std::fs::read_to_string(t.path().join(format!("lb/web-{i}")))
                .unwrap()
                .trim(),
            "ready"
        );
    }
    assert!(text(&o).contains("DEPLOYED"));
    // One journal, named after the deployment id the run announced.
    let journals: Vec<String> = std::fs::read_dir(t.path().join("state/deckhand"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let id = text(&o)
        .split_once("deployment ")
        .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
        .expect("the run names its deployment");
    assert_eq!(journals[0], format!("demo-shop-demo-{id}.jsonl"));
}

#[test]
fn demo_with_a_failing_node_rolls_back_and_exits_1() {
    let t = tempfile::tempdir().unwrap();
    let o = demo(t.path(), &["--fail-node", "web-3", "--nodes", "4"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("web-3") && out.contains("health"), "{out}");
    assert!(out.contains("ROLLED BACK"), "{out}");
    for i in 1..=4 {
        assert_eq!(current(t.path(), &format!("web-{i}")), "v1.0", "web-{i}");
        assert_eq!(
            std::fs::read_to_string(t.path().join(format!("lb/web-{i}")))
                .unwrap()
                .trim(),
            "ready"
        );
    }
}

#[test]
fn demo_rejects_an_unknown_fail_node() {
    let t = tempfile::tempdir().unwrap();
    let o = demo(t.path(), &["--fail-node", "web-9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("web-1 … web-5"), "{}", text(&o));
}

#[test]
fn status_rollback_and_unlock_on_the_demo() {
    let t = tempfile::tempdir().unwrap();
    assert_eq!(demo(t.path(), &["--nodes", "3"]).status.code(), Some(0));
    let inv = t.path().join("deckhand.toml");
    let inv = inv.to_str().unwrap();
    let state = t.path().join("state");

    let o = deckhand(&["-i", inv, "status", "demo"], &state);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with("web-2") && l.contains("v1.1") && l.contains("v1.0")),
        "{out}"
    );

    // A lock left behind by a dead deployment blocks the next one (exit 3, naming the holder).
    let lock = t.path().join("nodes/web-2/.deckhand/lock");
    std::fs::create_dir_all(&lock).unwrap();
    std::fs::write(
        lock.join("info.json"),
        r#"{"id":"dead-1","who":"mallory","host":"jump-7","pid":4242,"at":"2026-01-01T00:00:00Z","env":"demo","release":"v9"}"#,
    )
    .unwrap();
    let o = deckhand(
        &[
            "-i",
            inv,
            "deploy",
            "demo",
            "--release",
            "v1.2",
            "--headless",
            "--yes",
        ],
        &state,
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("mallory on jump-7"), "{}", text(&o));
    assert_eq!(
        current(t.path(), "web-1"),
        "v1.1",
        "a locked run must change nothing"
    );

    let o = deckhand(&["-i", inv, "unlock", "demo"], &state);
    assert_eq!(
        o.status.code(),
        Some(2),
        "unlock without a terminal needs --yes: {}",
        text(&o)
    );
    assert!(text(&o).contains("mallory"));
    let o = deckhand(&["-i", inv, "unlock", "demo", "--yes"], &state);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!lock.exists());

    let o = deckhand(&["-i", inv, "rollback", "demo", "--headless"], &state);
    assert_eq!(o.status.code(), Some(2), "a headless rollback needs --yes");
    let o = deckhand(
        &["-i", inv, "rollback", "demo", "--headless", "--yes"],
        &state,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for n in ["web-1", "web-2", "web-3"] {
        assert_eq!(current(t.path(), n), "v1.0");
    }
}

#[test]
fn bad_input_exits_2_with_a_helpful_message() {
    let t = tempfile::tempdir().unwrap();
    let o = deckhand(
        &["-i", "tests/fixtures/invalid/many_errors.toml", "validate"],
        t.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("6 errors in tests/fixtures/invalid/many_errors.toml"));

    for bad in ["../etc", "v1;rm -rf /", "$(id)", "-v1", "a b"] {
        let arg = format!("--release={bad}");
        let o = deckhand(
            &[
                "-i",
                "inventory/askproai.toml",
                "deploy",
                "production",
                &arg,
                "--headless",
            ],
            t.path(),
        );
        assert_eq!(o.status.code(), Some(2), "release {bad:?} was accepted");
        assert!(text(&o).contains("is not allowed"));
    }

    let o = deckhand(
        &[
            "-i",
            "inventory/askproai.toml",
            "deploy",
            "nowhere",
            "--release",
            "v1",
            "--headless",
        ],
        t.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("environment `nowhere` is not defined"));

    let o = deckhand(
        &[
            "-i",
            "inventory/askproai.toml",
            "deploy",
            "production",
            "--release",
            "v1",
            "--headless",
        ],
        t.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a gate without --yes in a headless run must refuse to start"
    );
    assert!(text(&o).contains("--yes"));

    let o = deckhand(&["-i", "does/not/exist.toml", "validate"], t.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read inventory does/not/exist.toml"));
}

#[test]
fn validate_summarises_a_good_inventory_in_words() {
    let t = tempfile::tempdir().unwrap();
    let inv = t.path().join("one.toml");
    std::fs::write(
        &inv,
        "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\n\n\
         [ssh]\nkey_exchange = \"post-quantum\"\n\n\
         [nodes.web-1]\nhost = \"10.0.0.1\"\nkey_exchange = \"openssh\"\n\n\
         [environments.prod]\nnodes = [\"web-1\"]\n",
    )
    .unwrap();
    let o = deckhand(&["-i", inv.to_str().unwrap(), "validate"], t.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("ok — app shop, 1 node, 1 environment (prod), 0 phases"),
        "{}",
        text(&o)
    );
}

#[test]
fn plan_shows_ramp_once_steps_and_gate() {
    let t = tempfile::tempdir().unwrap();
    let o = deckhand(
        &[
            "-i",
            "inventory/demo.toml",
            "plan",
            "demo",
            "--release",
            "v1.1",
        ],
        t.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    insta::assert_snapshot!("demo_plan", String::from_utf8_lossy(&o.stdout));

    let o = deckhand(
        &[
            "-i",
            "inventory/askproai.toml",
            "plan",
            "production",
            "--release",
            "v2",
            "--output",
            "json",
        ],
        t.path(),
    );
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // once-phase before the batches goes to the first node with role migrator
    assert_eq!(plan["before"][0]["name"], "backup_database");
    assert_eq!(
        plan["before"][0]["targets"],
        serde_json::json!([{"on": "node", "node": "web-1"}])
    );
    assert_eq!(
        plan["before"][1]["targets"],
        serde_json::json!([{"on": "local"}])
    );
    // run_migrations only in web-1's steps
    let has_migrations = |n: usize| {
        plan["node_plans"][n]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "run_migrations")
    };
    assert!(has_migrations(0) && !has_migrations(1) && !has_migrations(2));
    assert_eq!(plan["gates"], serde_json::json!([0]));
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let o = deckhand(&["--help"], t.path());
    let out = text(&o);
    for needle in [
        "deploy",
        "rollback",
        "status",
        "unlock",
        "demo",
        "Exit codes",
        "3 lock held",
    ] {
        assert!(out.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn promote_ships_what_the_source_environment_verified() {
    let t = tempfile::tempdir().unwrap();
    assert_eq!(demo(t.path(), &["--nodes", "3"]).status.code(), Some(0));
    // A second environment that requires `demo` to have verified the release.
    let inv_path = t.path().join("deckhand.toml");
    let mut toml = std::fs::read_to_string(&inv_path).unwrap();
    let d = t.path().display();
    for n in ["prod-1", "prod-2"] {
        toml.push_str(&format!("\n[nodes.{n}]\ntransport = \"local\"\ndeploy_path = \"{d}/nodes/{n}\"\nroles = [\"app\", \"migrator\"]\n"));
    }
    toml.push_str("\n[environments.prod]\nnodes = [\"prod-1\", \"prod-2\"]\nrequires = \"demo\"\n");
    std::fs::write(&inv_path, toml).unwrap();
    let inv = inv_path.to_str().unwrap();
    let state = t.path().join("state");

    let o = deckhand(
        &[
            "-i",
            inv,
            "deploy",
            "prod",
            "--release",
            "v9",
            "--headless",
            "--watch",
            "0s",
        ],
        &state,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("v9 has not passed demo's checklist"));

    let o = deckhand(
        &[
            "-i",
            inv,
            "promote",
            "demo",
            "prod",
            "--headless",
            "--watch",
            "0s",
        ],
        &state,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("v1.1 passed demo's checklist"));
    assert_eq!(current(t.path(), "prod-1"), "v1.1");
}

#[test]
fn config_shows_where_each_key_comes_from_with_secrets_masked() {
    let t = tempfile::tempdir().unwrap();
    assert_eq!(demo(t.path(), &["--nodes", "2"]).status.code(), Some(0));
    std::fs::write(
        t.path().join(".env.example"),
        "APP_NAME=Shop\nDB_PASSWORD=\nAPP_DEBUG=false\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("nodes/web-1/shared/.env"),
        "APP_DEBUG=true\nDB_PASSWORD=hunter2hunter2\n",
    )
    .unwrap();
    let inv_path = t.path().join("deckhand.toml");
    let toml = std::fs::read_to_string(&inv_path).unwrap().replace(
        "[environments.demo]\n",
        "[environments.demo]\nconfig = { example = \".env.example\" }\n",
    );
    std::fs::write(&inv_path, toml).unwrap();
    let o = deckhand(
        &["-i", inv_path.to_str().unwrap(), "config", "demo"],
        &t.path().join("state"),
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("APP_NAME") && l.contains(".env.example") && l.contains("Shop")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("APP_DEBUG") && l.contains(".env") && l.contains("true")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("DB_PASSWORD") && l.contains("****")),
        "{out}"
    );
    assert!(!out.contains("hunter2hunter2"));
}

#[test]
fn deckhand_alone_without_a_terminal_prints_every_environment_and_says_so() {
    let t = tempfile::tempdir().expect("temp dir");
    let o = demo(t.path(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let inv = t.path().join("deckhand.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("-i")
        .arg(&inv)
        .env("XDG_STATE_HOME", t.path().join("state"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run deckhand");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with("no terminal: printing every environment's status"),
        "{out}"
    );
    assert!(out.contains("demo (rolling, 5 nodes):"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(" v1.1 ") && l.contains("free"))
            .count(),
        5,
        "{out}"
    );
    // The history of the demo's two runs (v1.0 put live, v1.1 deployed), newest first.
    let o = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("-i")
        .arg(&inv)
        .args(["history", "demo", "--output", "json"])
        .env("XDG_STATE_HOME", t.path().join("state"))
        .output()
        .expect("run deckhand");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let releases: Vec<&str> = v
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["release"].as_str())
        .collect();
    assert_eq!(releases, vec!["v1.1", "v1.0"], "{v}");
    assert_eq!(v[0]["outcome"], "deployed");
}
