//! Checklist items against the rest: unique names, `on` naming a node, a role or "local", and
//! `per_node` only where a probe can run per node.

use std::collections::BTreeSet;

use super::Facts;
use crate::diag::Diagnostic;
use crate::inventory::model::*;

pub(super) fn check(cx: &Facts, out: &mut Vec<Diagnostic>) {
    let inv = cx.inv;
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for c in &inv.checks {
        if !seen.insert(c.name.as_str()) {
            out.push(
                Diagnostic::new(format!("check name `{}` is used twice", c.name), Some(c.span.clone()))
                    .help("give each check its own name: the screen and the journal refer to checks by name"),
            );
        }
        if let Probe::Command { on: Some(on), .. } = &c.probe {
            let known = on == "local" || inv.node(on).is_some() || cx.has_role(on);
            if !known {
                out.push(
                    Diagnostic::new(format!("check `{}` runs on `{on}`, which is neither a node, a role nor \"local\"", c.name), Some(c.span.clone()))
                        .help("use on = \"local\" (this machine), a node name, or a role"),
                );
            }
        }
        if c.per_node && matches!(c.probe, Probe::Manual | Probe::Prometheus { .. }) {
            out.push(
                Diagnostic::new(
                    format!("check `{}` cannot be per_node", c.name),
                    Some(c.span.clone()),
                )
                .help("per_node applies to http and run probes; remove per_node"),
            );
        }
    }
}
