//! Load balancers against the nodes: each node behind a balancer needs a server name of its own
//! there (`lb_server`, by default its node name), and an HAProxy reached `via` a node needs that
//! node to exist.

use super::Facts;
use crate::diag::{did_you_mean, Diagnostic};
use crate::inventory::model::*;

pub(super) fn check(cx: &Facts, out: &mut Vec<Diagnostic>) {
    server_names(cx, out);
    via(cx, out);
}

/// Two nodes behind one balancer with one server name: draining "one" would drain the server
/// both stand for, and its state could not tell which node is out of rotation.
fn server_names(cx: &Facts, out: &mut Vec<Diagnostic>) {
    let inv = cx.inv;
    // (first node, second node, the environments where both are behind a balancer)
    let mut clashes: Vec<(&Node, &Node, Vec<&Environment>)> = Vec::new();
    for env in inv
        .environments
        .iter()
        .filter(|e| !e.load_balancers.is_empty())
    {
        let members: Vec<&Node> = env.nodes.iter().filter_map(|n| inv.node(n)).collect();
        for (i, second) in members.iter().enumerate() {
            let Some(first) = members[..i]
                .iter()
                .find(|n| n.lb_server == second.lb_server)
            else {
                continue;
            };
            match clashes
                .iter_mut()
                .find(|(a, b, _)| a.name == first.name && b.name == second.name)
            {
                Some((_, _, envs)) => envs.push(env),
                None => clashes.push((first, second, vec![env])),
            }
        }
    }
    for (first, second, envs) in clashes {
        let balancers: usize = envs.iter().map(|e| e.load_balancers.len()).sum();
        let names: Vec<String> = envs.iter().map(|e| format!("`{}`", e.name)).collect();
        let behind = format!(
            "the load balancer{} of {} {}",
            if balancers == 1 { "" } else { "s" },
            if envs.len() == 1 {
                "environment"
            } else {
                "environments"
            },
            names.join(" and ")
        );
        let how = |n: &Node| match n.lb_server_span {
            Some(_) => "",
            None => " (by its name, lb_server's default)",
        };
        let first_at = first.lb_server_span.as_ref().unwrap_or(&first.span).start;
        out.push(
            Diagnostic::new(
                format!(
                    "nodes `{}` and `{}` are both server `{}` behind {behind}",
                    first.name, second.name, second.lb_server
                ),
                Some(second.lb_server_span.clone().unwrap_or(second.span.clone())),
            )
            .help(format!(
                "`{}` takes it at {}{}, `{}` here{}; the balancer cannot tell them apart: set lb_server on each to the name of its own server in the backend",
                first.name,
                cx.place(first_at),
                how(first),
                second.name,
                how(second),
            )),
        );
    }
}

/// An HAProxy socket reached `via` a node: that node must be in the inventory.
fn via(cx: &Facts, out: &mut Vec<Diagnostic>) {
    let inv = cx.inv;
    let names: Vec<&str> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
    for env in &inv.environments {
        for (i, b) in env.load_balancers.iter().enumerate() {
            let BalancerKind::Haproxy(h) = &b.kind else {
                continue;
            };
            let Some(span) = &h.via_span else { continue };
            if h.via == "local" || inv.node(&h.via).is_some() {
                continue;
            }
            let which = if env.load_balancers.len() == 1 {
                format!("the load balancer of `{}`", env.name)
            } else {
                format!("load balancer #{} of `{}`", i + 1, env.name)
            };
            let hint = match did_you_mean(&h.via, &names) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            out.push(
                Diagnostic::new(
                    format!("{which} is reached via `{}`, which is not a node of this inventory", h.via),
                    Some(span.clone()),
                )
                .help(format!(
                    "{hint}use via = \"local\" for a socket on this machine, or the name of a node whose connection reaches the socket"
                )),
            );
        }
    }
}
