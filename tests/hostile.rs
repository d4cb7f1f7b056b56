//! Hostile and broken input: values that try to escape their command or path, inventories
//! that are garbage, journals cut mid-line, and secrets that must never be written anywhere.

mod support;

use std::path::Path;
use std::process::Command;

use deckhand::engine::Outcome;
use proptest::prelude::*;
use support::local::{Fleet, FleetSpec};

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Whatever the bytes, loading reports errors; it never panics.
    #[test]
    fn the_loader_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let env = |_: &str| None;
        let _ = deckhand::inventory::load_str(Path::new("fuzz.toml"), &text, &env);
    }

    /// Nor on a real inventory with bytes cut, repeated or replaced anywhere.
    #[test]
    fn the_loader_never_panics_on_damaged_inventories(cut in 0usize..6000, len in 0usize..40, junk in "[\\[\\]{}=\"'\\n a-z0-9$%.]{0,12}") {
        let src = std::fs::read_to_string("inventory/askproai.toml").unwrap();
        let start = cut.min(src.len());
        let end = (start + len).min(src.len());
        if src.is_char_boundary(start) && src.is_char_boundary(end) {
            let damaged = format!("{}{}{}", &src[..start], junk, &src[end..]);
            let env = |_: &str| Some("x".to_string());
            let _ = deckhand::inventory::load_str(Path::new("askproai.toml"), &damaged, &env);
        }
    }

    /// Damaged in several places at once, every problem the loader reports points at a place
    /// in the file (a line and a column), never at the file as a whole.
    #[test]
    fn every_problem_of_a_file_damaged_in_several_places_has_a_place(
        damage in proptest::collection::vec((0usize..6000, 0usize..40, "[\\[\\]{}=\"'\\n a-z0-9$%.]{0,12}"), 1..5)
    ) {
        let mut src = std::fs::read_to_string("inventory/askproai.toml").unwrap();
        for (cut, len, junk) in &damage {
            let start = (*cut).min(src.len());
            let end = (start + len).min(src.len());
            if src.is_char_boundary(start) && src.is_char_boundary(end) {
                src = format!("{}{}{}", &src[..start], junk, &src[end..]);
            }
        }
        let env = |_: &str| Some("x".to_string());
        if let Err(r) = deckhand::inventory::load_str(Path::new("askproai.toml"), &src, &env) {
            prop_assert!(!r.diagnostics.is_empty());
            for d in &r.diagnostics {
                prop_assert!(d.span.is_some(), "no place for {:?} in:\n{}", d.message, src);
            }
        }
    }

    /// A template never lets a value out of its quotes: the shell reads back exactly the value.
    #[test]
    fn placeholder_values_reach_the_shell_verbatim(value in "[ -~\\n]{0,30}") {
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("release", value.clone());
        let cmd = deckhand::util::expand("printf '%s' {release}", &vars, true);
        let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&out.stdout).to_string(), value);
    }
}

#[test]
fn hostile_names_are_refused_before_anything_runs() {
    let t = tempfile::tempdir().unwrap();
    let plan = |release: &str| {
        Command::new(env!("CARGO_BIN_EXE_deckhand"))
            .args([
                "-i",
                "inventory/demo.toml",
                "plan",
                "demo",
                &format!("--release={release}"),
            ])
            .env("XDG_STATE_HOME", t.path())
            .output()
            .unwrap()
    };
    // The control: the same command with a plain release is accepted.
    let ok = plan("v1.2");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for bad in [
        "v1;touch /tmp/pwned",
        "$(id)",
        "`id`",
        "v1'x",
        "v1\"x",
        "a\nb",
        "../../etc",
        "-rf",
        "",
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_deckhand"))
            .args([
                "-i",
                "inventory/demo.toml",
                "deploy",
                "demo",
                &format!("--release={bad}"),
                "--headless",
                "--yes",
            ])
            .env("XDG_STATE_HOME", t.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "release {bad:?} was not refused");
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(
            said.contains("is not allowed"),
            "release {bad:?} refused for another reason: {said}"
        );
        // `plan` refuses it the same way.
        assert_eq!(
            plan(bad).status.code(),
            Some(2),
            "plan took release {bad:?}"
        );
    }
    let inv = "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\nshared_dirs = [\"../../etc\"]\n\n[nodes.\"web;rm -rf\"]\nhost = \"10.0.0.1; id\"\n\n[environments.\"prod$(id)\"]\nnodes = [\"web;rm -rf\"]\n";
    let env = |_: &str| None;
    let err = deckhand::inventory::load_str(Path::new("h.toml"), inv, &env)
        .unwrap_err()
        .to_string();
    for needle in [
        "node name `web;rm -rf` is not a valid name",
        "host `10.0.0.1; id`",
        "environment name `prod$(id)`",
        "`../../etc` must be a path relative",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[tokio::test]
async fn a_deploy_path_full_of_shell_syntax_stays_a_path() {
    let f = Fleet::new(FleetSpec {
        nodes: 2,
        ..Default::default()
    });
    let inv_path = f.inventory_path();
    let original = std::fs::read_to_string(&inv_path).unwrap();
    let web1 = format!("{}/nodes/web-1\"", f.path().display());
    assert!(original.contains(&web1));
    let env = |_: &str| None;
    // A quote in a path is refused outright.
    let quoted = original.replace(&web1, &format!("{}/nodes/it's\"", f.path().display()));
    let err = deckhand::inventory::load_str(&inv_path, &quoted, &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be an absolute path without"), "{err}");
    // Command substitutions, backticks, semicolons and spaces are just characters of a path.
    let weird = f
        .path()
        .join("nodes/its $(touch PWNED) `touch PWNED2` ; a b");
    std::fs::write(
        &inv_path,
        original.replace(&web1, &format!("{}\"", weird.display())),
    )
    .unwrap();
    let (o, _) = f.deploy("v1").await;
    assert_eq!(o, Outcome::Deployed);
    assert_eq!(
        std::fs::read_link(weird.join("current")).unwrap(),
        Path::new("releases/v1")
    );
    for pwned in ["PWNED", "PWNED2"] {
        assert!(
            !f.path().join(pwned).exists()
                && !Path::new("/").join(pwned).exists()
                && !weird.join(pwned).exists()
        );
    }
}

#[test]
fn a_truncated_journal_is_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("shop-test-20260101T000000Z-0001.jsonl");
    std::fs::write(
        &j,
        "{\"seq\":1,\"at_ms\":1,\"type\":\"locked\",\"deployment\":\"d\"}\n{\"seq\":2,\"at_ms\":2,\"type\":\"paus",
    )
    .unwrap();
    let (events, problems) = deckhand::journal::read_journal(&j).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("shop-test-20260101T000000Z-0001.jsonl:2"),
        "{problems:?}"
    );
    // Without a start record, resume refuses to act on it.
    let err = deckhand::resume::find(dir.path(), "shop", "test").unwrap_err();
    assert!(err.contains("no start record"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_appears_in_no_byte_deckhand_writes() {
    const SECRET: &str = "tok-9f8e7d6c5b4a";
    let app = support::http::App::start().await;
    let f = Fleet::new(FleetSpec {
        nodes: 2,
        extra_phases: "[[phases]]\nname = \"announce\"\nrun = \"echo using token ${DH_HOSTILE_TOKEN} on {node}; echo ${DH_HOSTILE_TOKEN} >&2\"\n",
        extra_toml: format!("\n[notify]\nwebhook = \"{}\"\n", app.url("/hook")),
        ..Default::default()
    });
    let o = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args([
            "-i",
            f.inventory_path().to_str().unwrap(),
            "deploy",
            "test",
            "--release",
            "v1",
            "--headless",
            "--yes",
        ])
        .env("XDG_STATE_HOME", f.path().join("state"))
        .env("DH_HOSTILE_TOKEN", SECRET)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut written =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        written.contains("using token **** on web-1"),
        "the step ran and its output was masked"
    );
    for e in walk(&f.path().join("state")) {
        written.push_str(&std::fs::read_to_string(e).unwrap_or_default());
    }
    for n in &f.nodes {
        written.push_str(
            &std::fs::read_to_string(f.node_dir(n).join(".deckhand/history.jsonl"))
                .unwrap_or_default(),
        );
    }
    for h in app.hooks() {
        written.push_str(&h.to_string());
    }
    assert!(!app.hooks().is_empty());
    assert!(!written.contains(SECRET), "the secret leaked");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
