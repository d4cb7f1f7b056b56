//! `deckhand init --from-ansible` against Ansible itself: for the same inventory (INI and YAML,
//! with ranges, children, vars, group_vars/ and host_vars/, a jump host and passwords), every
//! host `ansible-inventory --list` shows must become a node with the same address, port, user,
//! key, jump host and groups (as roles), the file must validate, and no password may appear
//! anywhere. Needs `ansible-inventory` (apt package ansible-core; scripts/test.sh installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/output.rs"]
mod output;
use output::{assert_exit, text};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(rel)
}

/// What Ansible says: host -> (merged variables, every group it is in).
fn ansible_inventory(inventory: &Path) -> BTreeMap<String, (serde_json::Value, BTreeSet<String>)> {
    let out = Command::new("ansible-inventory")
        .arg("-i")
        .arg(inventory)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run ansible-inventory ({e}): these tests compare with Ansible itself; \
                 install it with `apt-get install ansible-core` (scripts/test.sh does)"
            )
        });
    assert!(
        out.status.success(),
        "ansible-inventory failed: {}",
        text(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("its JSON");
    let groups = doc.as_object().expect("an object");
    // Direct members and children of each group.
    let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut direct: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, g) in groups {
        if name == "_meta" {
            continue;
        }
        for h in g["hosts"].as_array().into_iter().flatten() {
            direct
                .entry(h.as_str().unwrap().to_string())
                .or_default()
                .push(name.clone());
        }
        for c in g["children"].as_array().into_iter().flatten() {
            parents
                .entry(c.as_str().unwrap().to_string())
                .or_default()
                .push(name.clone());
        }
    }
    let hostvars = doc["_meta"]["hostvars"].as_object().expect("hostvars");
    let mut out = BTreeMap::new();
    for (host, groups) in &direct {
        let mut all = BTreeSet::new();
        let mut todo = groups.clone();
        while let Some(g) = todo.pop() {
            if all.insert(g.clone()) {
                todo.extend(parents.get(&g).cloned().unwrap_or_default());
            }
        }
        all.remove("all");
        all.remove("ungrouped");
        let vars = hostvars.get(host).cloned().unwrap_or(serde_json::json!({}));
        out.insert(host.clone(), (vars, all));
    }
    out
}

fn init(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(args)
        .current_dir(dir)
        .env_remove("DECKHAND_INVENTORY")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run deckhand")
}

/// The renames the file lists at the top: (kind, from) -> to.
fn renames(file: &str) -> BTreeMap<(String, String), String> {
    file.lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .filter_map(|l| {
            let (kind, rest) = l.split_once(' ')?;
            let (from, to) = rest.split_once(" -> ")?;
            Some(((kind.to_string(), from.to_string()), to.to_string()))
        })
        .collect()
}

fn text_var(vars: &serde_json::Value, keys: &[&str]) -> Option<String> {
    // Of two spellings, Ansible's ssh connection takes the one it lists last.
    keys.iter().rev().find_map(|k| match &vars[*k] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The jump hosts Ansible's ssh would use, from the fixture's two spellings.
fn jump_of(vars: &serde_json::Value) -> Vec<String> {
    let Some(args) = text_var(vars, &["ansible_ssh_common_args"]) else {
        return Vec::new();
    };
    if let Some(rest) = args.split("ProxyJump=").nth(1) {
        return vec![rest.split_whitespace().next().unwrap().to_string()];
    }
    if let Some(rest) = args.split("-J ").nth(1) {
        return rest
            .split_whitespace()
            .next()
            .unwrap()
            .split(',')
            .map(String::from)
            .collect();
    }
    if args.contains("ProxyCommand") {
        // The fixture's `ssh -W %h:%p -q -p PORT USER@HOST`.
        let words: Vec<&str> = args.trim_end_matches('"').split_whitespace().collect();
        let port = words[words.iter().position(|w| *w == "-p").unwrap() + 1];
        return vec![format!("{}:{port}", words.last().unwrap())];
    }
    Vec::new()
}

/// Import `inventory`, then check every node against Ansible's own reading of it.
fn compare(inventory: &Path, secrets: &[&str]) -> (String, String) {
    compare_with(inventory, inventory, secrets)
}

/// Import `import`, then check every node against Ansible's reading of `reference`.
fn compare_with(inventory: &Path, reference: &Path, secrets: &[&str]) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = init(
        &[
            "init",
            "--from-ansible",
            inventory.to_str().unwrap(),
            "--output",
            "imported.toml",
        ],
        tmp.path(),
    );
    assert_exit(&out, 0);
    let said = text(&out);
    let path = tmp.path().join("imported.toml");
    let file = std::fs::read_to_string(&path).unwrap();
    let inv = deckhand::inventory::load(&path)
        .unwrap_or_else(|e| panic!("the generated file does not validate:\n{e}\n{file}"));

    let expected = ansible_inventory(reference);
    assert_eq!(
        inv.nodes.len(),
        expected.len(),
        "one node per host Ansible lists; file:\n{file}"
    );
    let renamed = renames(&file);
    let node_name = |h: &str| {
        renamed
            .get(&("host".to_string(), h.to_string()))
            .cloned()
            .unwrap_or_else(|| h.to_string())
    };
    let role_name = |g: &str| {
        renamed
            .get(&("group".to_string(), g.to_string()))
            .cloned()
            .unwrap_or_else(|| g.to_string())
    };
    for (host, (vars, groups)) in &expected {
        let name = node_name(host);
        let node = inv
            .node(&name)
            .unwrap_or_else(|| panic!("no node {name} for Ansible host {host}:\n{file}"));
        let address = text_var(vars, &["ansible_host", "ansible_ssh_host"]).unwrap_or(host.clone());
        assert_eq!(node.host, address, "address of {host}");
        let port = text_var(vars, &["ansible_port", "ansible_ssh_port"])
            .map(|p| p.parse::<u16>().unwrap());
        assert_eq!(node.ssh.port, port, "port of {host}");
        let user = text_var(vars, &["ansible_user", "ansible_ssh_user"]);
        assert_eq!(node.ssh.user, user, "user of {host}");
        let key = text_var(
            vars,
            &["ansible_private_key_file", "ansible_ssh_private_key_file"],
        );
        assert_eq!(node.ssh.identity_file, key, "key of {host}");
        assert_eq!(node.ssh.jump, jump_of(vars), "jump host of {host}");
        let roles: BTreeSet<String> = node.roles.iter().cloned().collect();
        let want: BTreeSet<String> = if groups.is_empty() {
            ["ungrouped".to_string()].into()
        } else {
            groups.iter().map(|g| role_name(g)).collect()
        };
        assert_eq!(roles, want, "roles of {host}");
    }
    for s in secrets {
        assert!(!file.contains(s), "a password reached the file:\n{file}");
        assert!(!said.contains(s), "a password reached the output:\n{said}");
    }
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let p = entry.unwrap().path();
        let body = std::fs::read_to_string(&p).unwrap_or_default();
        for s in secrets {
            assert!(!body.contains(s), "a password reached {}", p.display());
        }
    }
    (file, said)
}

#[test]
fn ini_inventory_imports_as_ansible_reads_it() {
    let (file, said) = compare(
        &fixture("ansible-ini/hosts.ini"),
        &["Hunter2-ini-secret", "St4ge-become-secret"],
    );
    // The hosts that had a password are named, with what to do instead.
    assert!(
        said.contains("passwords were not copied: db-replica, stage-web-1 had one"),
        "{said}"
    );
    assert!(file.contains("#   db-replica (ansible_ssh_pass)"), "{file}");
    // A name deckhand does not allow is mapped, and the mapping written down.
    assert!(file.contains("#   host _canary1 -> canary1"), "{file}");
    // Environments from the groups named like one, said in the file.
    assert!(file.contains("[environments.production]"), "{file}");
    assert!(file.contains("[environments.staging]"), "{file}");
    assert!(
        file.contains("Environments: the Ansible groups named like one (production, staging)"),
        "{file}"
    );
    assert!(
        file.contains(
            "Hosts in no environment group (in no environment yet): bastion.shop.example"
        ),
        "{file}"
    );
    // What could not be carried over is listed.
    assert!(
        file.contains(
            "ansible_ssh_common_args -o ServerAliveInterval (put ssh options into your ssh config"
        ),
        "{file}"
    );
    assert!(
        file.contains("2 variables for plays (http_port, ntp_server)"),
        "{file}"
    );
}

#[test]
fn yaml_inventory_imports_as_ansible_reads_it() {
    let (file, said) = compare(
        &fixture("ansible-yaml/inventory.yml"),
        &["Pr0d-db-secret", "ANSIBLE_VAULT", "6231336539"],
    );
    assert!(
        file.contains("#   host app server 7 -> app-server-7"),
        "{file}"
    );
    assert!(
        file.contains("#   group _staging_workers -> staging_workers"),
        "{file}"
    );
    assert!(
        said.contains("db1.shop.example, db3.shop.example, stage-worker02 had one"),
        "{said}"
    );
}

#[test]
fn a_directory_inventory_takes_its_environment_from_the_directory_name() {
    // inventories/staging/hosts: no group is named like an environment, the directory is.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inventories/staging");
    std::fs::create_dir_all(dir.join("group_vars")).unwrap();
    std::fs::write(
        dir.join("hosts"),
        "[web]\nweb1 ansible_host=10.0.0.1\nweb2 ansible_host=10.0.0.2\n",
    )
    .unwrap();
    std::fs::write(dir.join("group_vars/web.yml"), "ansible_user: deploy\n").unwrap();
    std::fs::write(dir.join("README.md"), "not an inventory\n").unwrap();
    let out = init(
        &[
            "init",
            "--from-ansible",
            dir.to_str().unwrap(),
            "--output",
            "d.toml",
        ],
        tmp.path(),
    );
    assert_exit(&out, 0);
    let inv = deckhand::inventory::load(&tmp.path().join("d.toml")).unwrap();
    let env = inv
        .environment("staging")
        .expect("an environment named after the directory");
    assert_eq!(env.nodes, ["web1", "web2"]);
    assert_eq!(
        inv.node("web2").unwrap().ssh.user.as_deref(),
        Some("deploy")
    );
    // The same directory as Ansible reads it.
    let expected = ansible_inventory(&dir);
    assert_eq!(expected.len(), 2);
}

#[test]
fn the_json_ansible_inventory_prints_imports_the_same_nodes() {
    // For dynamic inventories: import what `ansible-inventory --list` printed.
    let ini = fixture("ansible-ini/hosts.ini");
    let out = Command::new("ansible-inventory")
        .arg("-i")
        .arg(&ini)
        .arg("--list")
        .output()
        .expect("ansible-inventory (apt-get install ansible-core)");
    assert!(out.status.success(), "{}", text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("inventory.json");
    std::fs::write(&json, &out.stdout).unwrap();
    // The printed JSON holds the passwords in clear; the import still drops them.
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hunter2-ini-secret"));
    let (file, _) = compare_with(&json, &ini, &["Hunter2-ini-secret", "St4ge-become-secret"]);
    assert!(file.contains("[environments.production]"), "{file}");
}
