//! Phases against the rest: unique names, roles some node has, what a builtin, an upload or a
//! local phase may do, builtin order, and a `once` phase's role in every environment.

use std::collections::BTreeMap;

use super::Facts;
use crate::diag::Diagnostic;
use crate::inventory::model::*;

pub(super) fn check(cx: &Facts, out: &mut Vec<Diagnostic>) {
    let inv = cx.inv;
    // Phase names are how the operator, the journal and the screen refer to a step.
    let mut seen: BTreeMap<&str, &Phase> = BTreeMap::new();
    for p in &inv.phases {
        if let Some(first) = seen.get(p.name.as_str()) {
            let line = cx.line(first.name_span.start);
            out.push(
                Diagnostic::new(
                    format!("phase name `{}` is used twice", p.name),
                    Some(p.name_span.clone()),
                )
                .help(format!(
                    "the first is on line {line}; give each phase its own name"
                )),
            );
        } else {
            seen.insert(&p.name, p);
        }
    }

    for p in &inv.phases {
        let roles_span = p.roles_span.clone().unwrap_or_else(|| p.span.clone());
        for r in &p.roles {
            if !cx.has_role(r) {
                out.push(
                    Diagnostic::new(
                        format!("phase `{}` uses role `{r}`, which no node has", p.name),
                        Some(roles_span.clone()),
                    )
                    .help(format!(
                        "add roles = [\"{r}\"] to a node, or fix the role name"
                    )),
                );
            }
        }
        if p.once && p.where_ == Where::Local {
            out.push(
                Diagnostic::new(
                    format!("phase `{}` is both `once` and `where = \"local\"`", p.name),
                    Some(p.span.clone()),
                )
                .help("a local phase already runs once, on this machine; drop `once`"),
            );
        }
        action(cx, p, out);
    }
    builtin_order(inv, out);
    once_in_every_environment(cx, out);
}

/// What the phase's action allows: builtins on nodes in their stage, functions only with a
/// deploy script, uploads only to nodes.
fn action(cx: &Facts, p: &Phase, out: &mut Vec<Diagnostic>) {
    match &p.action {
        Action::Builtin(b) => {
            if p.where_ == Where::Local {
                out.push(
                    Diagnostic::new(
                        format!("builtin phase `{}` cannot run locally", p.name),
                        Some(p.span.clone()),
                    )
                    .help("builtins work on the nodes' deploy paths; remove `where = \"local\"`"),
                );
            }
            let want = match b {
                Builtin::Release | Builtin::Switch => Stage::Node,
                Builtin::Cleanup => Stage::After,
            };
            if p.stage != want && !(matches!(b, Builtin::Cleanup) && p.stage == Stage::Node) {
                out.push(
                    Diagnostic::new(
                        format!(
                            "builtin `{}` cannot run in stage `{}`",
                            b.word(),
                            p.stage.word()
                        ),
                        Some(p.span.clone()),
                    )
                    .help(format!("put it in stage = \"{}\"", want.word())),
                );
            }
        }
        Action::Function(_) if cx.inv.app.script.is_none() => out.push(
            Diagnostic::new(
                format!(
                    "phase `{}` calls a deploy-script function, but [app] has no `script`",
                    p.name
                ),
                Some(p.span.clone()),
            )
            .help("add script = \"deploy.sh\" under [app], or use run = \"…\""),
        ),
        Action::Upload { .. } if p.where_ == Where::Local => out.push(
            Diagnostic::new(
                format!("upload phase `{}` cannot run locally", p.name),
                Some(p.span.clone()),
            )
            .help("an upload copies from this machine to each node; remove `where = \"local\"`"),
        ),
        _ => {}
    }
}

/// The release must be built before `current` switches to it; each builtin once.
fn builtin_order(inv: &Inventory, out: &mut Vec<Diagnostic>) {
    let pos = |b: Builtin| {
        inv.phases
            .iter()
            .position(|p| matches!(p.action, Action::Builtin(x) if x == b))
    };
    match (pos(Builtin::Release), pos(Builtin::Switch)) {
        (Some(r), Some(s)) if r > s => out.push(
            Diagnostic::new(
                "builtin `switch` comes before builtin `release`",
                Some(inv.phases[s].span.clone()),
            )
            .help("move the `release` phase above the `switch` phase"),
        ),
        (None, Some(s)) => out.push(
            Diagnostic::new(
                "builtin `switch` has no `release` phase before it",
                Some(inv.phases[s].span.clone()),
            )
            .help("add a phase with builtin = \"release\" before the switch"),
        ),
        _ => {}
    }
    for b in [Builtin::Release, Builtin::Switch, Builtin::Cleanup] {
        let all: Vec<&Phase> = inv
            .phases
            .iter()
            .filter(|p| matches!(p.action, Action::Builtin(x) if x == b))
            .collect();
        if all.len() > 1 {
            out.push(
                Diagnostic::new(
                    format!("builtin `{}` appears {} times", b.word(), all.len()),
                    Some(all[1].span.clone()),
                )
                .help("keep one phase per builtin"),
            );
        }
    }
}

/// A `once` phase needs a node with its roles in every environment it will run in.
fn once_in_every_environment(cx: &Facts, out: &mut Vec<Diagnostic>) {
    let inv = cx.inv;
    for env in &inv.environments {
        for p in inv.phases.iter().filter(|p| p.once && !p.roles.is_empty()) {
            let has = env
                .nodes
                .iter()
                .filter_map(|n| inv.node(n))
                .any(|n| n.roles.iter().any(|r| p.roles.contains(r)));
            if !has && p.roles.iter().all(|r| cx.has_role(r)) {
                out.push(
                    Diagnostic::new(
                        format!(
                            "phase `{}` runs once on a node with role {}, but environment `{}` has no such node",
                            p.name,
                            p.roles.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(" or "),
                            env.name
                        ),
                        Some(p.roles_span.clone().unwrap_or_else(|| p.span.clone())),
                    )
                    .help(format!("give a node of `{}` one of these roles, or change the phase's roles", env.name)),
                );
            }
        }
    }
}
