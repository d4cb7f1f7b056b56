//! An inventory imported from an ssh config deploys for real: the test fleet's servers (real
//! sshd on 127.0.0.1, reached through a real bastion) are described the way a user's
//! `~/.ssh/config` would, `deckhand init --from-ssh-config` turns that into an inventory, the
//! operator fills in what the file asks for (each node's deploy path, the bundle), and a
//! headless deployment runs through ssh's own ProxyJump, keys and known_hosts.

mod support;

use std::fmt::Write as _;
use std::process::Command;

use support::{assert_exit, text, FleetSpec};

#[test]
fn a_fleet_imported_from_its_ssh_config_deploys() {
    let fleet = FleetSpec::nodes(2).with_bastion().start();
    let bastion = fleet.bastion.as_ref().expect("bastion");

    // The fleet as a user's ssh config describes it: aliases, each with its address, port, user,
    // key and known_hosts, the nodes behind the bastion.
    let mut cfg = String::from("# the shop's servers\n");
    let common = format!(
        "  HostName 127.0.0.1\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
        fleet.user,
        fleet.client_key.display(),
        fleet.known_hosts.display()
    );
    let _ = write!(
        cfg,
        "Host shop-bastion\n  Port {}\n{common}\n",
        bastion.port
    );
    for n in &fleet.nodes {
        let _ = write!(
            cfg,
            "Host {}\n  Port {}\n  ProxyJump shop-bastion\n{common}\n",
            n.name, n.sshd.port
        );
    }
    cfg.push_str("Host *\n  StrictHostKeyChecking yes\n");
    let cfg_path = fleet.root.join("ssh_config");
    std::fs::write(&cfg_path, cfg).unwrap();

    let inventory = fleet.root.join("deckhand.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(["init", "--from-ssh-config"])
        .arg(&cfg_path)
        .args(["--hosts", "node*", "--output"])
        .arg(&inventory)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run deckhand init");
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("imported 2 nodes and 1 environment"),
        "{}",
        text(&out)
    );
    let generated = std::fs::read_to_string(&inventory).unwrap();
    let inv = deckhand::inventory::load(&inventory).expect("the generated file validates");
    let names: Vec<&str> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["node1", "node2"],
        "the bastion's alias is not picked"
    );
    for n in &inv.nodes {
        assert_eq!(n.host, n.name, "reached through its alias");
        assert_eq!(n.ssh.ssh_config.as_deref(), cfg_path.to_str());
        assert!(n.ssh.user.is_none() && n.ssh.port.is_none() && n.ssh.jump.is_empty());
    }

    // What the file's "What to edit next" asks for: where the app lives on each node (on this
    // one machine every node needs its own), and the bundle to upload.
    let mut edited = generated.clone();
    for n in &fleet.nodes {
        let header = format!("[nodes.{}]\n", n.name);
        let at = edited.find(&header).expect("node table") + header.len();
        edited.insert_str(
            at,
            &format!("deploy_path = \"{}\"\n", n.deploy_path.display()),
        );
    }
    std::fs::write(&inventory, edited).unwrap();
    let app = inv.app.name.clone();
    let build = fleet.root.join("build");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("VERSION"), "v2\n").unwrap();
    std::fs::create_dir_all(fleet.root.join("dist")).unwrap();
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(fleet.root.join(format!("dist/{app}-v2.tar.gz")))
        .arg("-C")
        .arg(&build)
        .arg(".")
        .status()
        .expect("tar");
    assert!(tar.success());
    // The template restarts with `sudo systemctl restart APP`: stand-ins on the nodes' PATH
    // record it instead of touching this machine's services.
    fleet.stub("sudo", "exec \"$@\"");
    fleet.stub(
        "systemctl",
        "echo \"systemctl $*\" >> \"$DECKHAND_FLEET/$DECKHAND_FLEET_NODE/systemctl.log\"",
    );

    let out = fleet.deploy("v2");
    assert_exit(&out, 0);
    for (i, n) in fleet.nodes.iter().enumerate() {
        assert_eq!(
            fleet.current_release(i).as_deref(),
            Some("v2"),
            "{}",
            text(&out)
        );
        let version = std::fs::read_to_string(n.deploy_path.join("current/VERSION")).unwrap();
        assert_eq!(
            version, "v2\n",
            "the uploaded bundle was unpacked on {}",
            n.name
        );
        assert!(
            fleet.bastion_forwards_to(n.sshd.port) > 0,
            "{} was reached through the bastion the ssh config names",
            n.name
        );
    }
    for n in &fleet.nodes {
        let restarts = std::fs::read_to_string(n.dir.join("systemctl.log")).unwrap_or_default();
        assert_eq!(
            restarts,
            format!("systemctl restart {app}\n"),
            "on {}",
            n.name
        );
    }
}
