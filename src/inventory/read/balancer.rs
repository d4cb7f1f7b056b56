//! An environment's `load_balancer`: one table or an array of them, each HAProxy (runtime API
//! socket, backend, reached locally or via a node) or commands run on this machine, with the
//! timeouts and rotation rules every balancer has.
//!
//! `via` is kept with its span; whether it names a node is `validate`'s to check.

use std::time::Duration;

use toml::de::DeValue;

use super::table::{concat, type_name, Table};
use super::Cx;
use crate::inventory::model::{
    Balancer, BalancerKind, CommandBalancer, DrainTimeoutAction, HaproxyBalancer,
};

const COMMAND_OWN_KEYS: &[&str] = &["type", "drain", "enable", "state"];
const HAPROXY_OWN_KEYS: &[&str] = &["type", "socket", "backend", "via"];
const COMMON_KEYS: &[&str] = &[
    "timeout",
    "drain_timeout",
    "drain_timeout_action",
    "min_healthy",
    "min_in_rotation",
];
/// A command balancer's keys, then those every balancer has.
const COMMAND_KEYS: &[&str] =
    &concat::<{ COMMAND_OWN_KEYS.len() + COMMON_KEYS.len() }>(COMMAND_OWN_KEYS, COMMON_KEYS);
/// An HAProxy balancer's keys, then those every balancer has.
const HAPROXY_KEYS: &[&str] =
    &concat::<{ HAPROXY_OWN_KEYS.len() + COMMON_KEYS.len() }>(HAPROXY_OWN_KEYS, COMMON_KEYS);

/// The `load_balancer` key of environment `env`: none, one table, or an array of tables.
pub(super) fn read_all(cx: &mut Cx, t: &mut Table, env: &str) -> Vec<Balancer> {
    let Some(v) = t.get("load_balancer") else {
        return Vec::new();
    };
    match v.get_ref() {
        DeValue::Table(lt) => read(
            cx,
            Table::new(lt, v.span(), format!("the load balancer of `{env}`")),
        )
        .into_iter()
        .collect(),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item.get_ref() {
                DeValue::Table(lt) => read(
                    cx,
                    Table::new(
                        lt,
                        item.span(),
                        format!("load balancer #{} of `{env}`", i + 1),
                    ),
                ),
                other => {
                    cx.error(
                        format!(
                            "each load balancer must be a table, found {}",
                            type_name(other)
                        ),
                        item.span(),
                        "write [[environments.NAME.load_balancer]] tables",
                    );
                    None
                }
            })
            .collect(),
        other => {
            cx.error(
                format!("`load_balancer` must be a table, found {}", type_name(other)),
                v.span(),
                "write [environments.NAME.load_balancer] with socket/backend (HAProxy) or drain/enable (commands)",
            );
            Vec::new()
        }
    }
}

fn read(cx: &mut Cx, mut t: Table) -> Option<Balancer> {
    let kind_word = t.string(cx, "type", "\"haproxy\"");
    let is_haproxy = match &kind_word {
        Some((k, sp)) => match k.as_str() {
            "haproxy" => true,
            "command" => false,
            other => {
                cx.error(
                    format!("load balancer type `{other}` is not known"),
                    sp.clone(),
                    "use \"haproxy\" or \"command\"",
                );
                return None;
            }
        },
        None => t.has("socket") || t.has("backend"),
    };
    let kind = if is_haproxy {
        haproxy(cx, &mut t)
    } else {
        commands(cx, &mut t)
    }?;
    let timeout = t
        .duration(cx, "timeout", "\"30s\"")
        .unwrap_or(Duration::from_secs(30));
    let drain_timeout = t
        .duration(cx, "drain_timeout", "\"30s\"")
        .unwrap_or(Duration::from_secs(30));
    let drain_timeout_action = t
        .choice(
            cx,
            "drain_timeout_action",
            "\"proceed\"",
            &[
                ("proceed", DrainTimeoutAction::Proceed),
                ("fail", DrainTimeoutAction::Fail),
            ],
            "use \"proceed\" (default) or \"fail\"",
        )
        .unwrap_or(DrainTimeoutAction::Proceed);
    let min_healthy = t
        .duration(cx, "min_healthy", "\"5s\"")
        .unwrap_or(Duration::ZERO);
    let min_in_rotation = t.int(cx, "min_in_rotation", 0, 100_000, "1").unwrap_or(1) as usize;
    t.finish(
        cx,
        if is_haproxy {
            HAPROXY_KEYS
        } else {
            COMMAND_KEYS
        },
    );
    Some(Balancer {
        kind,
        timeout,
        drain_timeout,
        drain_timeout_action,
        min_healthy,
        min_in_rotation,
    })
}

fn haproxy(cx: &mut Cx, t: &mut Table) -> Option<BalancerKind> {
    let socket = t.string(cx, "socket", "\"/run/haproxy/admin.sock\"");
    let socket = t.require(cx, "socket", socket, "\"/run/haproxy/admin.sock\"");
    let backend = t.string(cx, "backend", "\"app\"");
    let backend = t.require(cx, "backend", backend, "\"app\"");
    let (via, via_span) = match t.string(cx, "via", "\"local\"") {
        Some((v, sp)) => (v, Some(sp)),
        None => ("local".into(), None),
    };
    if let Some((sock, sp)) = &socket {
        if !sock.starts_with('/') {
            cx.error(
                format!("HAProxy socket `{sock}` must be an absolute path"),
                sp.clone(),
                "e.g. socket = \"/run/haproxy/admin.sock\"",
            );
        }
    }
    Some(BalancerKind::Haproxy(HaproxyBalancer {
        socket: socket?.0,
        backend: backend?.0,
        via,
        via_span,
    }))
}

fn commands(cx: &mut Cx, t: &mut Table) -> Option<BalancerKind> {
    let drain = t.string(cx, "drain", "\"…\"");
    let drain = t.require(cx, "drain", drain, "\"my-lb drain {node}\"");
    let enable = t.string(cx, "enable", "\"…\"");
    let enable = t.require(cx, "enable", enable, "\"my-lb enable {node}\"");
    let state = t.string(cx, "state", "\"my-lb state {node}\"");
    for (cmd, sp) in [&drain, &enable, &state].into_iter().flatten() {
        cx.check_placeholders(cmd, sp.clone());
    }
    Some(BalancerKind::Command(CommandBalancer {
        drain: drain?.0,
        enable: enable?.0,
        state: state.map(|(s, _)| s),
    }))
}
