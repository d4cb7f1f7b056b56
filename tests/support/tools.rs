//! The programs the harness runs besides deckhand (sshd, ssh-keygen, HAProxy, Prometheus,
//! python3, curl, tmux): where each one is, and, when one is missing, a failure that names the
//! package to install. It only looks: installing is `scripts/test.sh`'s job.

use std::path::Path;

/// The first of `paths` that exists. When none does, the test fails naming `what` it is, what it
/// is `for`, and the Debian `package` that provides it.
pub fn require(what: &str, paths: &[&'static str], package: &str, used_for: &str) -> &'static str {
    paths
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "{what} is not installed (looked for {}); {used_for} need it: install it with \
                 `apt-get install {package}` (scripts/test.sh does)",
                paths.join(", ")
            )
        })
}

pub fn sshd() -> &'static str {
    require(
        "OpenSSH's server",
        &[super::ssh::SSHD],
        "openssh-server",
        "the SSH tests",
    )
}

pub fn ssh_keygen() -> &'static str {
    require(
        "ssh-keygen",
        &["/usr/bin/ssh-keygen"],
        "openssh-client",
        "the SSH tests' host and client keys",
    )
}

pub fn haproxy() -> &'static str {
    require(
        "HAProxy",
        &[
            "/usr/sbin/haproxy",
            "/usr/bin/haproxy",
            "/usr/local/sbin/haproxy",
        ],
        "haproxy",
        "the load-balancer tests",
    )
}

pub fn prometheus() -> &'static str {
    require(
        "Prometheus",
        &["/usr/bin/prometheus", "/usr/local/bin/prometheus"],
        "prometheus",
        "the checklist's Prometheus checks",
    )
}

/// The system python3: the sshd fleet's app runs as its login user, whose PATH is the system's.
pub fn python3() -> &'static str {
    require(
        "python3",
        &["/usr/bin/python3"],
        "python3",
        "the nodes' HTTP apps",
    )
}

pub fn curl() -> &'static str {
    require(
        "curl",
        &["/usr/bin/curl", "/usr/local/bin/curl"],
        "curl",
        "the balanced fleet's health checks",
    )
}

pub fn tmux() -> &'static str {
    require(
        "tmux",
        &["/usr/bin/tmux", "/usr/local/bin/tmux"],
        "tmux",
        "the console's end-to-end tests",
    )
}

pub fn socat() -> &'static str {
    require(
        "socat",
        &["/usr/bin/socat", "/usr/local/bin/socat"],
        "socat",
        "a proxy command of the user's own",
    )
}
