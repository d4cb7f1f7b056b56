//! Reaching nodes through a bastion (ProxyJump) with real sshd servers on 127.0.0.1, and proof
//! that the traffic really went through it: the bastion's own log records a forwarded channel to
//! each node, and with the bastion gone the nodes cannot be reached that way.

mod support;

use deckhand::transport::ssh::SshTransport;
use deckhand::transport::{ExecRequest, Transport};
use support::FleetSpec;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn steps_and_uploads_reach_each_node_through_the_bastion() {
    let fleet = FleetSpec::nodes(2).with_bastion().start();
    for i in 0..2 {
        assert_eq!(fleet.bastion_forwards_to(fleet.nodes[i].sshd.port), 0);
        let t = SshTransport::new(fleet.target_via_bastion(i));
        let out = t
            .exec(
                &ExecRequest::new("echo \"on $DECKHAND_FLEET_NODE\""),
                None,
                &CancellationToken::new(),
            )
            .await
            .expect("runs through the bastion");
        assert_eq!(out.stdout, format!("on {}\n", fleet.nodes[i].name));

        let local = tempfile::tempdir().expect("tempdir");
        let from = local.path().join("bundle.tar.gz");
        std::fs::write(&from, b"bundle through the bastion").expect("write");
        let to = fleet.nodes[i].deploy_path.join("bundle.tar.gz");
        t.upload(&from, &to.display().to_string())
            .await
            .expect("uploads through the bastion");
        assert_eq!(
            std::fs::read(&to).expect("on the node"),
            b"bundle through the bastion"
        );

        // Every login the node accepted came through a channel the bastion forwarded.
        let logins = fleet.logins(i);
        assert!(logins >= 1, "{} saw no login", fleet.nodes[i].name);
        assert_eq!(
            fleet.bastion_forwards_to(fleet.nodes[i].sshd.port),
            logins,
            "logins on {} not forwarded by the bastion:\n{}",
            fleet.nodes[i].name,
            fleet
                .bastion
                .as_ref()
                .map(|b| b.log_text())
                .unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn without_the_bastion_the_nodes_behind_it_are_not_reached() {
    let mut fleet = FleetSpec::nodes(1).with_bastion().start();
    if let Some(b) = fleet.bastion.as_mut() {
        b.stop();
    }
    let msg = SshTransport::new(fleet.target_via_bastion(0))
        .connect()
        .await
        .expect_err("no bastion, no way in")
        .to_string();
    let hop = fleet.jump_hop();
    assert!(
        msg.starts_with(&format!("through jump host {hop}: connection refused")),
        "{msg}"
    );
    assert!(!fleet.nodes[0]
        .sshd
        .log_text()
        .contains("Accepted publickey"));
}

#[tokio::test]
async fn a_bastion_with_an_unknown_host_key_is_refused_and_named() {
    let fleet = FleetSpec::nodes(1).with_bastion().start();
    // known_hosts lists the node but not the bastion.
    let only_node = fleet.root.join("only_node_known_hosts");
    std::fs::write(
        &only_node,
        format!(
            "[127.0.0.1]:{} {}\n",
            fleet.nodes[0].sshd.port, fleet.nodes[0].sshd.host_key
        ),
    )
    .expect("write");
    let mut target = fleet.target_via_bastion(0);
    target.known_hosts = Some(only_node);
    let msg = SshTransport::new(target)
        .connect()
        .await
        .expect_err("refused")
        .to_string();
    let b = fleet.bastion.as_ref().expect("bastion");
    assert!(
        msg.starts_with(&format!(
            "through jump host {}: unknown host key",
            fleet.jump_hop()
        )),
        "{msg}"
    );
    assert!(msg.contains(&format!("[127.0.0.1]:{}", b.port)), "{msg}");
}

#[tokio::test]
async fn two_jump_hosts_are_crossed_in_order() {
    let fleet = FleetSpec::nodes(1).with_two_bastions().start();
    let t = SshTransport::new(fleet.target_via_two_bastions(0));
    let out = t
        .exec(
            &ExecRequest::new("echo \"on $DECKHAND_FLEET_NODE\""),
            None,
            &CancellationToken::new(),
        )
        .await
        .expect("runs through both bastions");
    assert_eq!(out.stdout, "on node1\n");
    let inner = fleet.bastion.as_ref().expect("inner bastion").port;
    let node = fleet.nodes[0].sshd.port;
    // outer → inner → node, each hop in its own server's log.
    assert!(
        fleet.outer_bastion_forwards_to(inner) >= 1,
        "the outer bastion did not forward to the inner one"
    );
    assert_eq!(
        fleet.outer_bastion_forwards_to(node),
        0,
        "the outer bastion reached the node directly"
    );
    assert!(fleet.logins(0) >= 1, "the node saw no login");
    assert_eq!(
        fleet.bastion_forwards_to(node),
        fleet.logins(0),
        "every login on the node came through the inner bastion"
    );
}
