//! Inventory loading: the shipped inventories are valid, and every invalid fixture (one per
//! validation rule) gives an exact, snapshotted message with file, line, column, the offending
//! line with a caret, and a fix.

use std::path::Path;

use deckhand::inventory::load_str;

fn report(name: &str) -> String {
    let rel = format!("tests/fixtures/invalid/{name}.toml");
    let text = std::fs::read_to_string(&rel).unwrap();
    let env = |_: &str| None;
    match load_str(Path::new(&rel), &text, &env) {
        Ok(_) => panic!("{rel} loaded, but it is invalid"),
        Err(r) => r.to_string(),
    }
}

macro_rules! invalid {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), report(stringify!($name)));
        }
    )*};
}

invalid!(
    unknown_key,
    undefined_node,
    undefined_role,
    duplicate_phase,
    duplicate_node,
    bad_duration,
    bad_batches,
    phase_without_action,
    unknown_placeholder,
    once_role_not_in_environment,
    environment_without_nodes,
    unset_variable,
    syntax_error,
    many_errors,
    migration_without_backup,
    bad_check,
    bad_ssh_setting,
    jump_hop_not_a_string,
    bad_jump_hop,
    syntax_errors,
    lb_server_twice,
    lb_server_takes_a_node_name,
    balancer_via_unknown_node,
);

#[test]
fn every_problem_is_reported_at_once() {
    let r = report("many_errors");
    for needle in [
        "unknown key `keep_releses`",
        "`port` in [ssh] must be an integer",
        "transport `telnet`",
        "node `web-9`, which is not defined",
        "on_failure `panic`",
        "unknown placeholder `{target}`",
    ] {
        assert!(r.contains(needle), "missing {needle:?} in:\n{r}");
    }
    assert!(
        r.contains("6 errors in tests/fixtures/invalid/many_errors.toml"),
        "{r}"
    );
}

#[test]
fn every_syntax_error_is_reported_at_once() {
    let r = report("syntax_errors");
    let file = "tests/fixtures/invalid/syntax_errors.toml";
    // One per broken line, in file order; the unclosed array is shown where it opens.
    let places: Vec<&str> = r
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--> "))
        .collect();
    assert_eq!(
        places,
        [
            format!("{file}:2:8"),
            format!("{file}:6:19"),
            format!("{file}:7:16"),
            format!("{file}:10:17"),
            format!("{file}:14:9"),
        ],
        "{r}"
    );
    assert!(r.contains("5 errors in"), "{r}");
    // Only syntax: no complaint about the shape of what could not be read.
    assert!(
        !r.contains("is missing `") && !r.contains("unknown key"),
        "{r}"
    );
}

#[test]
fn a_table_defined_twice_is_one_error_not_one_per_key() {
    let r = report("duplicate_node");
    assert_eq!(r.matches("error:").count(), 1, "{r}");
}

#[test]
fn two_nodes_behind_one_balancer_with_one_server_name_are_refused() {
    let r = report("lb_server_twice");
    let file = "tests/fixtures/invalid/lb_server_twice.toml";
    // Both places: the second node's at the caret, the first node's in the help.
    assert!(r.contains(&format!("--> {file}:11:13")), "{r}");
    assert!(r.contains(&format!("{file}:7")), "{r}");
    assert!(r.contains("`web-1`") && r.contains("`web-2`"), "{r}");
    let r = report("lb_server_takes_a_node_name");
    let file = "tests/fixtures/invalid/lb_server_takes_a_node_name.toml";
    assert!(r.contains(&format!("--> {file}:10:13")), "{r}");
    assert!(r.contains(&format!("{file}:5")), "{r}");
}

#[test]
fn one_server_name_is_fine_for_nodes_that_never_share_a_balancer() {
    let base = "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\n\n\
                [nodes.web-1]\nhost = \"10.0.0.1\"\nlb_server = \"web\"\n\n\
                [nodes.web-2]\nhost = \"10.0.0.2\"\nlb_server = \"web\"\n\n";
    let lb = "load_balancer = { socket = \"/run/haproxy/admin.sock\", backend = \"shop\" }\n";
    let env = |_: &str| None;
    // Each behind its own environment's balancer.
    let apart = format!(
        "{base}[environments.staging]\nnodes = [\"web-1\"]\n{lb}\n\
         [environments.prod]\nnodes = [\"web-2\"]\n{lb}"
    );
    if let Err(r) = load_str(Path::new("apart.toml"), &apart, &env) {
        panic!("refused:\n{r}");
    }
    // Together, but with no balancer to confuse them in.
    let unbalanced = format!("{base}[environments.prod]\nnodes = [\"web-1\", \"web-2\"]\n");
    if let Err(r) = load_str(Path::new("unbalanced.toml"), &unbalanced, &env) {
        panic!("refused:\n{r}");
    }
}

#[test]
fn shipped_inventories_are_valid() {
    for f in ["inventory/askproai.toml", "inventory/demo.toml"] {
        let text = std::fs::read_to_string(f).unwrap();
        let env = |_: &str| None;
        if let Err(r) = load_str(Path::new(f), &text, &env) {
            panic!("{f} is invalid:\n{r}");
        }
    }
}

#[test]
fn shipped_demo_inventory_is_what_the_demo_writes() {
    let nodes = deckhand::demo::node_names(5);
    let expected = deckhand::demo::inventory_text(Path::new("/tmp/deckhand-demo"), &nodes);
    if std::env::var_os("DECKHAND_WRITE_DEMO_INVENTORY").is_some() {
        std::fs::write("inventory/demo.toml", &expected).unwrap();
    }
    let shipped = std::fs::read_to_string("inventory/demo.toml").unwrap();
    assert_eq!(
        shipped, expected,
        "inventory/demo.toml is stale: rerun with DECKHAND_WRITE_DEMO_INVENTORY=1"
    );
}

#[test]
fn a_misspelt_check_key_lists_every_key_a_check_takes() {
    let inv = "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\n\n\
               [nodes.web-1]\nhost = \"10.0.0.1\"\n\n\
               [environments.prod]\nnodes = [\"web-1\"]\n\n\
               [[checks]]\nname = \"p99\"\nrun = \"echo 120\"\nmax = 200\nunit = \"ms\"\nunits = \"ms\"\n";
    let err = load_str(Path::new("c.toml"), inv, &|_: &str| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("units"), "{err}");
    let allowed = err
        .split_once("allowed here: ")
        .map(|(_, a)| a.lines().next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no list of allowed keys in:\n{err}"));
    for key in ["min", "max", "unit", "on_fail"] {
        assert!(
            allowed.split(", ").any(|k| k == key),
            "{key} missing from: {allowed}"
        );
    }
}

#[test]
fn environment_values_are_interpolated_and_masked() {
    let text = std::fs::read_to_string("tests/fixtures/invalid/unset_variable.toml").unwrap();
    let env = |k: &str| {
        (k == "DEPLOY_WEBHOOK_URL").then(|| "https://hooks.example/T0/secret-path".to_string())
    };
    let inv = load_str(Path::new("x.toml"), &text, &env).expect("valid once the variable is set");
    let deckhand::inventory::Action::Run(cmd) = &inv.phases[0].action else {
        panic!()
    };
    assert!(cmd.contains("https://hooks.example/T0/secret-path"));
    assert_eq!(inv.secrets.mask(cmd), "curl -fsS -X POST ****");
}

#[test]
fn defaults_with_colon_dash_apply_when_unset() {
    let text = "[app]\nname = \"${APP_NAME:-shop}\"\ndeploy_path = \"/srv/shop\"\n";
    let env = |_: &str| None;
    let inv = load_str(Path::new("x.toml"), text, &env).unwrap();
    assert_eq!(inv.app.name, "shop");
}

#[test]
fn jump_hops_given_as_a_list_take_environment_values() {
    let text = "[app]\nname = \"shop\"\ndeploy_path = \"/srv/shop\"\n\n[nodes.web-1]\nhost = \"10.0.0.1\"\njump = [\"${BASTION}\", \"deploy@inner:22\"]\n\n[environments.prod]\nnodes = [\"web-1\"]\n";
    let env = |k: &str| (k == "BASTION").then(|| "ops@bastion.example.com:22".to_string());
    let inv = load_str(Path::new("x.toml"), text, &env).unwrap();
    assert_eq!(
        inv.nodes[0].ssh.jump,
        ["ops@bastion.example.com:22", "deploy@inner:22"]
    );
}

#[test]
fn the_jump_hop_rule_is_the_one_ssh_needs() {
    use deckhand::util::valid_jump_hop;
    for ok in ["ops@bastion.example.com:22", "bastion", "deploy@[::1]:2222"] {
        assert!(valid_jump_hop(ok), "{ok}");
    }
    for bad in [
        "",
        "-oProxyCommand=id",
        "ops@a b",
        "a\tb",
        "a\nb",
        "a,b",
        "ops@'bastion'",
        "ops@\"bastion\"",
        "ops@bastion%h",
    ] {
        assert!(!valid_jump_hop(bad), "{bad:?}");
    }
}
