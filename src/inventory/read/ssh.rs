//! `[ssh]` and the SSH keys a node may set for itself: user, port, key, jump hosts, host keys,
//! timeouts, key exchange. A node's settings are the `[ssh]` defaults with its own keys laid
//! over them.

use std::time::Duration;

use toml::de::DeValue;

use super::table::Table;
use super::Cx;
use crate::inventory::model::{HostKeyChecking, KeyExchange, Span, SshSettings};
use crate::util;

pub(super) const KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "jump",
    "known_hosts",
    "host_key_checking",
    "connect_timeout",
    "ssh_config",
    "key_exchange",
];

/// The settings of a node when `[ssh]` and the node say nothing.
pub(super) fn defaults() -> SshSettings {
    SshSettings {
        user: None,
        port: None,
        identity_file: None,
        jump: Vec::new(),
        known_hosts: None,
        host_key_checking: HostKeyChecking::Strict,
        connect_timeout: Duration::from_secs(10),
        ssh_config: None,
        key_exchange: KeyExchange::Auto,
    }
}

/// Read SSH keys from a table, laid over `base` (the `[ssh]` defaults for a node). The caller
/// finishes the table: a node's has keys of its own besides these.
pub(super) fn read(cx: &mut Cx, t: &mut Table, base: Option<&SshSettings>) -> SshSettings {
    let mut s = base.cloned().unwrap_or_else(defaults);
    if let Some((u, _)) = t.string(cx, "user", "\"deploy\"") {
        s.user = Some(u);
    }
    if let Some(p) = t.int(cx, "port", 1, 65535, "22") {
        s.port = Some(p as u16);
    }
    if let Some((f, _)) = t.string(cx, "identity_file", "\"~/.ssh/id_ed25519\"") {
        s.identity_file = Some(f);
    }
    if let Some(hops) = jump_hops(cx, t) {
        s.jump = hops;
    }
    if let Some((k, _)) = t.string(cx, "known_hosts", "\"~/.ssh/known_hosts\"") {
        s.known_hosts = Some(k);
    }
    if let Some(h) = t.choice(
        cx,
        "host_key_checking",
        "\"strict\"",
        &[
            ("strict", HostKeyChecking::Strict),
            ("accept-new", HostKeyChecking::AcceptNew),
        ],
        "use \"strict\" (the default) or \"accept-new\"",
    ) {
        s.host_key_checking = h;
    }
    if let Some(d) = t.duration(cx, "connect_timeout", "\"10s\"") {
        s.connect_timeout = d;
    }
    if let Some((c, _)) = t.string(cx, "ssh_config", "\"~/.ssh/config\"") {
        s.ssh_config = Some(c);
    }
    if let Some(k) = t.choice(
        cx,
        "key_exchange",
        "\"auto\"",
        &[
            ("auto", KeyExchange::Auto),
            ("openssh", KeyExchange::Openssh),
            ("post-quantum", KeyExchange::PostQuantum),
        ],
        "use \"auto\" (the default), \"openssh\" or \"post-quantum\"",
    ) {
        s.key_exchange = k;
    }
    s
}

/// `jump`: one string of comma-separated hops, or a list; each hop must be `user@host:port`
/// (it becomes an argument of ssh).
fn jump_hops(cx: &mut Cx, t: &mut Table) -> Option<Vec<String>> {
    let v = t.get("jump")?;
    // Each hop with the span an error about it points at: the whole string, or its item.
    let hops: Vec<(String, Span)> = match v.get_ref() {
        DeValue::String(j) => cx
            .interpolate(j, &v.span())
            .split(',')
            .map(|h| (h.trim().to_string(), v.span()))
            .filter(|(h, _)| !h.is_empty())
            .collect(),
        DeValue::Array(items) => {
            t.string_items(cx, "jump", items, "[\"ops@bastion.example.com:22\"]")
        }
        _ => {
            t.type_error(
                cx,
                "jump",
                v,
                "a string or a list of hops",
                "\"ops@bastion:22\"",
            );
            Vec::new()
        }
    };
    for (hop, sp) in &hops {
        if !util::valid_jump_hop(hop) {
            cx.error(
                format!("jump host `{hop}` is not of the form user@host:port"),
                sp.clone(),
                "e.g. jump = \"ops@bastion.example.com:22\"",
            );
        }
    }
    Some(hops.into_iter().map(|(h, _)| h).collect())
}
