//! `deckhand init` through the binary: both templates in an empty directory followed by
//! `validate` and `plan`, the refusal to overwrite, `--force` and `--output`, and the imports
//! that need no outside tool (a Deployer recipe, an ssh config).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "support/output.rs"]
mod output;
use output::{assert_exit, text};

fn deckhand(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(args)
        .current_dir(dir)
        .env("XDG_STATE_HOME", dir.join(".state"))
        .env_remove("DECKHAND_INVENTORY")
        // Not a terminal: init must ask nothing (a question here would wait forever).
        .stdin(Stdio::null())
        .output()
        .expect("run deckhand")
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(rel)
}

/// A fresh empty directory named `shop` (the app takes its name).
fn empty_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("shop");
    std::fs::create_dir(&dir).unwrap();
    (t, dir)
}

#[test]
fn generic_template_validates_and_plans_and_is_never_overwritten() {
    let (_t, dir) = empty_dir();
    let o = deckhand(&["init"], &dir);
    assert_exit(&o, 0);
    let said = text(&o);
    assert!(said.contains("wrote deckhand.toml (generic template, 4 nodes, 2 environments: staging, production); it validates"), "{said}");
    assert!(
        said.contains("What to edit next:\n  1. [nodes.*]: your servers' addresses"),
        "{said}"
    );
    assert!(
        said.contains("Then: deckhand validate, and deckhand plan staging"),
        "{said}"
    );
    let written = std::fs::read_to_string(dir.join("deckhand.toml")).unwrap();
    assert!(
        written.starts_with("# deckhand inventory for shop"),
        "{written}"
    );

    let v = deckhand(&["validate"], &dir);
    assert_exit(&v, 0);
    assert!(
        text(&v).contains("ok — app shop, 4 nodes, 2 environments (staging, production), 6 phases"),
        "{}",
        text(&v)
    );
    let p = deckhand(&["plan", "production", "--release", "v1.2"], &dir);
    assert_exit(&p, 0);
    let plan = text(&p);
    assert!(
        plan.contains("web-1: release → upload_bundle → unpack → switch → restart"),
        "{plan}"
    );
    assert!(
        plan.contains("gate: waits for the operator to promote"),
        "{plan}"
    );

    // A second init refuses, and leaves the file as it was.
    std::fs::write(dir.join("deckhand.toml"), "# edited by hand\n").unwrap();
    let again = deckhand(&["init", "--template", "laravel"], &dir);
    assert_exit(&again, 2);
    assert!(
        text(&again).contains("deckhand.toml already exists; nothing was written"),
        "{}",
        text(&again)
    );
    assert!(
        text(&again).contains("use --force to replace it, or --output FILE"),
        "{}",
        text(&again)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("deckhand.toml")).unwrap(),
        "# edited by hand\n"
    );

    // --force replaces it.
    let forced = deckhand(&["init", "--template", "laravel", "--force"], &dir);
    assert_exit(&forced, 0);
    assert!(std::fs::read_to_string(dir.join("deckhand.toml"))
        .unwrap()
        .contains("name = \"run_migrations\""));
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".state"))
        .collect();
    assert_eq!(names, ["deckhand.toml"]);
}

#[test]
fn laravel_template_follows_the_seed_and_plans() {
    let (_t, dir) = empty_dir();
    let o = deckhand(
        &[
            "init",
            "--template",
            "laravel",
            "--output",
            "deploy/deckhand.toml",
        ],
        &dir,
    );
    // The directory does not exist: a clear error, nothing written.
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("cannot write deploy/deckhand.toml"),
        "{}",
        text(&o)
    );
    std::fs::create_dir(dir.join("deploy")).unwrap();
    let o = deckhand(
        &[
            "init",
            "--template",
            "laravel",
            "--output",
            "deploy/deckhand.toml",
        ],
        &dir,
    );
    assert_exit(&o, 0);
    assert!(
        text(&o).contains("Then: deckhand -i 'deploy/deckhand.toml' validate"),
        "{}",
        text(&o)
    );
    assert!(
        !dir.join("deckhand.toml").exists(),
        "--output writes only there"
    );
    let file = std::fs::read_to_string(dir.join("deploy/deckhand.toml")).unwrap();
    // The seed: deploy.sh's phases, shared .env and storage, three windows, a health URL.
    for needle in [
        "shared_files = [\".env\"]",
        "shared_dirs = [\"storage\"]",
        "name = \"backup_database\"",
        "name = \"pull_latest_code\"",
        "name = \"install_dependencies\"",
        "name = \"run_migrations\"",
        "name = \"build_assets\"",
        "name = \"clear_caches\"",
        "name = \"restart_services\"",
        "immediate = \"5m\"",
        "short = \"30m\"",
        "long = \"2h\"",
        "health = { url = \"http://{host}/up\"",
        "requires = \"staging\"",
    ] {
        assert!(file.contains(needle), "{needle} missing:\n{file}");
    }
    let v = deckhand(&["-i", "deploy/deckhand.toml", "validate"], &dir);
    assert_exit(&v, 0);
    for env in ["staging", "production"] {
        let p = deckhand(&["-i", "deploy/deckhand.toml", "plan", env], &dir);
        assert_exit(&p, 0);
        let plan = text(&p);
        // The backup comes before anything changes, once; migrations run once, after it.
        assert!(
            plan.contains("backup_database") && plan.contains("(once"),
            "{plan}"
        );
        assert!(plan.contains("run_migrations (once)"), "{plan}");
        let backup = plan.find("backup_database").unwrap();
        let migrate = plan.find("run_migrations").unwrap();
        assert!(backup < migrate, "{plan}");
        assert!(plan.contains("Health endpoint responding"), "{plan}");
    }
}

#[test]
fn deployer_recipe_imports_hosts_stages_labels_and_shared_paths() {
    let (_t, dir) = empty_dir();
    let recipe = fixture("deployer/deploy.yaml");
    let o = deckhand(&["init", "--from-deployer", recipe.to_str().unwrap()], &dir);
    assert_exit(&o, 0);
    let said = text(&o);
    // A recipe that imports Laravel's gets the Laravel template.
    assert!(
        said.contains("(laravel template, 4 nodes, 2 environments: production, staging)"),
        "{said}"
    );
    assert!(
        said.contains("not carried over: repository git@github.com:example/shop.git"),
        "{said}"
    );
    assert!(
        said.contains("not carried over: host staging: forward_agent"),
        "{said}"
    );
    let inv = deckhand::inventory::load(&dir.join("deckhand.toml")).expect("it validates");
    assert_eq!(inv.app.name, "shop");
    assert_eq!(inv.app.deploy_path, "/var/www/shop");
    assert_eq!(inv.app.keep_releases, 7);
    assert_eq!(inv.app.shared_files, [".env", "auth.json"]);
    assert_eq!(inv.app.shared_dirs, ["storage", "public/uploads"]);
    let worker = inv.node("worker.shop.example").expect("worker");
    assert_eq!(worker.host, "10.0.1.30");
    assert_eq!(worker.ssh.port, Some(2222));
    assert_eq!(worker.ssh.user.as_deref(), Some("deployer"));
    assert_eq!(
        worker.ssh.identity_file.as_deref(),
        Some("~/.ssh/shop_deploy")
    );
    assert_eq!(worker.roles, ["worker"]);
    assert_eq!(
        inv.node("web1.shop.example").unwrap().host,
        "web1.shop.example"
    );
    assert_eq!(inv.node("web1.shop.example").unwrap().roles, ["web"]);
    assert_eq!(inv.node("staging").unwrap().host, "staging.shop.example");
    assert_eq!(
        inv.environment("production").unwrap().nodes,
        [
            "web1.shop.example",
            "web2.shop.example",
            "worker.shop.example"
        ]
    );
    assert_eq!(inv.environment("staging").unwrap().nodes, ["staging"]);
    let p = deckhand(&["plan", "production"], &dir);
    assert_exit(&p, 0);
}

#[test]
fn ssh_config_hosts_become_nodes_reached_through_their_alias() {
    let (_t, dir) = empty_dir();
    std::fs::write(
        dir.join("ssh_config"),
        "Host *\n  ServerAliveInterval 30\n\nHost web1 web2\n  HostName 10.0.1.%h\n  User deploy\n\n\
         Host db1.staging\n  HostName 10.0.2.5\n  ProxyJump ops@bastion:22\n\nHost backup\n  HostName 10.0.9.9\n",
    )
    .unwrap();
    let o = deckhand(
        &[
            "init",
            "--from-ssh-config",
            "ssh_config",
            "--hosts",
            "web*,db*",
        ],
        &dir,
    );
    assert_exit(&o, 0);
    let inv = deckhand::inventory::load(&dir.join("deckhand.toml")).expect("it validates");
    let names: Vec<&str> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["web1", "web2", "db1.staging"],
        "--hosts picks; wildcards are skipped"
    );
    let web1 = inv.node("web1").unwrap();
    assert_eq!(web1.host, "web1", "the alias, so ssh applies its config");
    assert_eq!(web1.ssh.user, None, "ssh's own User applies");
    let abs = std::fs::canonicalize(dir.join("ssh_config")).unwrap();
    assert_eq!(web1.ssh.ssh_config.as_deref(), Some(abs.to_str().unwrap()));
    assert_eq!(
        inv.environment("production").unwrap().nodes,
        ["web1", "web2"]
    );
    assert_eq!(inv.environment("staging").unwrap().nodes, ["db1.staging"]);

    // Nothing matches: a clear error naming what there is.
    let none = deckhand(
        &[
            "init",
            "--from-ssh-config",
            "ssh_config",
            "--hosts",
            "cache*",
            "--force",
        ],
        &dir,
    );
    assert_exit(&none, 2);
    assert!(
        text(&none).contains("no Host alias matches --hosts \"cache*\""),
        "{}",
        text(&none)
    );
    assert!(
        text(&none).contains("aliases found: web1, web2, db1.staging, backup"),
        "{}",
        text(&none)
    );
    // --hosts belongs to --from-ssh-config.
    let wrong = deckhand(&["init", "--hosts", "web*", "--force"], &dir);
    assert_exit(&wrong, 2);
    assert!(
        text(&wrong).contains("--from-ssh-config"),
        "{}",
        text(&wrong)
    );
}

/// `--from-ssh-config` without a file reads `~/.ssh/config`, as its help says.
#[test]
fn ssh_config_without_a_file_is_the_users_own() {
    let (_t, dir) = empty_dir();
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        "Host web1\n  HostName 10.0.1.1\n\nHost web2\n  HostName 10.0.1.2\n",
    )
    .unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let init = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_deckhand"))
            .args(args)
            .current_dir(&work)
            .env("HOME", &home)
            .env("XDG_STATE_HOME", dir.join(".state"))
            .env_remove("DECKHAND_INVENTORY")
            .stdin(Stdio::null())
            .output()
            .expect("run deckhand")
    };
    let o = init(&["init", "--from-ssh-config", "--hosts", "web*"]);
    assert_exit(&o, 0);
    let inv = deckhand::inventory::load(&work.join("deckhand.toml")).expect("it validates");
    let names: Vec<&str> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2"]);
    // Without --hosts too, and the flag last on the line.
    assert_exit(&init(&["init", "--force", "--from-ssh-config"]), 0);
}

#[test]
fn import_errors_name_the_file_and_line() {
    let (_t, dir) = empty_dir();
    std::fs::write(
        dir.join("hosts.yml"),
        "all:\n  hosts:\n    web1: [unclosed\n",
    )
    .unwrap();
    let o = deckhand(&["init", "--from-ansible", "hosts.yml"], &dir);
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("hosts.yml:4: invalid YAML"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("deckhand.toml").exists());
    std::fs::write(dir.join("hosts.ini"), "[web]\nweb[01:100]\n").unwrap();
    let o = deckhand(&["init", "--from-ansible", "hosts.ini"], &dir);
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("hosts.ini:2: range [01:100]: a zero-padded range needs begin and end of the same width"),
        "{}",
        text(&o)
    );
    let o = deckhand(&["init", "--from-deployer", "missing.yaml"], &dir);
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("cannot read missing.yaml"),
        "{}",
        text(&o)
    );
}
