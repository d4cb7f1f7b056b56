//! `[nodes.NAME]`: a node's address, roles, transport, deploy path, its server name in the load
//! balancer, and the SSH keys it sets for itself over `[ssh]`.

use super::table::{concat, Table};
use super::{app, ssh, Cx};
use crate::inventory::model::{App, Node, Span, SshSettings, TransportKind};
use crate::util;

const OWN_KEYS: &[&str] = &["host", "roles", "transport", "deploy_path", "lb_server"];
/// A node's own keys, then the `[ssh]` keys it may override.
const KEYS: &[&str] = &concat::<{ OWN_KEYS.len() + ssh::KEYS.len() }>(OWN_KEYS, ssh::KEYS);

pub(super) fn read(
    cx: &mut Cx,
    mut t: Table,
    name: &str,
    span: Span,
    ssh_defaults: &SshSettings,
    app: Option<&App>,
) -> Option<Node> {
    if !util::valid_name(name) {
        cx.error(
            format!("node name `{name}` is not a valid name"),
            span.clone(),
            "use letters, digits, '.', '_', '+' or '-', starting with a letter or digit",
        );
    }
    let transport = match t.string(cx, "transport", "\"ssh\"") {
        None => TransportKind::Ssh,
        Some((s, sp)) => match s.as_str() {
            "ssh" => TransportKind::Ssh,
            "local" => TransportKind::Local,
            other => {
                cx.error(
                    format!("transport `{other}` of node `{name}` is not known"),
                    sp,
                    "use \"ssh\" (the default) or \"local\"",
                );
                TransportKind::Ssh
            }
        },
    };
    let host = t.string(cx, "host", "\"10.0.1.11\"");
    if let Some((h, sp)) = &host {
        let ok = !h.is_empty()
            && !h.starts_with('-')
            && h.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
            });
        if !ok {
            cx.error(
                format!("host `{h}` of node `{name}` is not a host name or address"),
                sp.clone(),
                "use a DNS name or an IP address, e.g. host = \"10.0.1.11\"",
            );
        }
    }
    if host.is_none() && transport == TransportKind::Ssh && !t.has("host") {
        cx.error(
            format!("node `{name}` has no `host`"),
            span.clone(),
            "add host = \"…\" (its address), or transport = \"local\" for a node on this machine",
        );
    }
    let roles = t.strings(cx, "roles", "[\"app\"]").unwrap_or_default();
    for (r, sp) in &roles {
        if !util::valid_name(r) {
            cx.error(
                format!("role `{r}` is not a valid name"),
                sp.clone(),
                "use letters, digits, '.', '_', '+' or '-'",
            );
        }
    }
    let deploy_path = t.string(cx, "deploy_path", "\"/var/www/myapp\"");
    if let Some((p, sp)) = &deploy_path {
        app::check_deploy_path(cx, p, sp.clone());
    }
    let lb_server = t.string(cx, "lb_server", "\"web1\"");
    let ssh = ssh::read(cx, &mut t, Some(ssh_defaults));
    t.finish(cx, KEYS);
    let deploy_path = deploy_path
        .map(|(p, _)| p)
        .or_else(|| app.map(|a| a.deploy_path.clone()))?;
    let (lb_server, lb_server_span) = match lb_server {
        Some((s, sp)) => (s, Some(sp)),
        None => (name.to_string(), None),
    };
    Some(Node {
        name: name.to_string(),
        host: host.map(|(h, _)| h).unwrap_or_else(|| "127.0.0.1".into()),
        roles: roles.into_iter().map(|(r, _)| r).collect(),
        transport,
        deploy_path,
        ssh,
        lb_server,
        span,
        lb_server_span,
    })
}
