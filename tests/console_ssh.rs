//! The console over SSH: a real deployment to the sshd fleet, driven in a real terminal (tmux).
//! SSH must never touch the terminal: the screen stays intact, keys reach the console, and the
//! run ends DONE with every node serving the new release.

mod support;

use support::tmux::Tmux;
use support::{FleetSpec, InventorySpec};

#[test]
fn the_console_deploys_over_ssh_without_ssh_touching_the_terminal() {
    let fleet = FleetSpec::nodes(3).with_apps().start();
    // node2 is unknown and accepted on first sight, which makes ssh say "Permanently added":
    // that must land in ssh's log, not on the operator's screen.
    let inv = fleet.write_inventory(&InventorySpec {
        ssh_extra: "host_key_checking = \"accept-new\"\n".into(),
        ..Default::default()
    });
    let node2 = format!("[127.0.0.1]:{} ", fleet.nodes[1].sshd.port);
    let known = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    let without: String = known
        .lines()
        .filter(|l| !l.starts_with(&node2))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, known, "node2 was listed");
    std::fs::write(&fleet.known_hosts, &without).unwrap();
    // A gate after the first node, so a key must reach the console mid-run.
    let text = std::fs::read_to_string(&inv).unwrap().replace(
        "batches = [1]\n",
        "batches = [1]\npause_after_first = true\n",
    );
    std::fs::write(&inv, text).unwrap();
    let cmd = format!(
        "XDG_STATE_HOME={} {} -i {} deploy production --release v2; echo EXITED $?; sleep 60",
        fleet.root.join("state").display(),
        env!("CARGO_BIN_EXE_deckhand"),
        inv.display()
    );
    let t = Tmux::start(&cmd);
    let s = t.wait_for("the gate after the first node", 60, |s| {
        s.contains("WAITING")
    });
    assert!(s.contains("production · v2"), "{s}");
    let learned = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    assert!(
        learned.lines().count() > without.lines().count(),
        "preflight connected to node2 and recorded its key: {learned}"
    );
    assert!(
        !s.contains("Permanently added") && !s.contains("known hosts"),
        "ssh wrote to the terminal:\n{s}"
    );
    t.keys("Enter");
    let s = t.wait_for("DONE", 90, |s| s.contains("DONE"));
    assert!(
        s.contains(&fleet.nodes[0].name) && s.contains(&fleet.nodes[2].name),
        "{s}"
    );
    t.keys("q");
    let s = t.wait_for("the console to leave", 30, |s| s.contains("EXITED"));
    assert!(s.contains("EXITED 0"), "{s}");
    for i in 0..3 {
        assert_eq!(
            fleet.version(i).as_deref(),
            Some("v2"),
            "node {i} serves v2"
        );
    }
}
