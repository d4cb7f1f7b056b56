//! Cross-reference checks over a loaded inventory: phases against roles and environments,
//! builtin ordering, scripts. Shape errors (types, unknown keys) are `load.rs`'s job; this
//! module sees a fully typed [`Inventory`] and only reports, never changes it.

use std::collections::BTreeMap;

use super::model::*;
use crate::diag::Diagnostic;

/// `source` is the text `inv` was read from, for line numbers in messages.
pub fn validate(inv: &Inventory, source: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let all_roles: Vec<&str> = inv
        .nodes
        .iter()
        .flat_map(|n| n.roles.iter().map(|r| r.as_str()))
        .collect();

    // Phase names are how the operator, the journal and the screen refer to a step.
    let mut seen: BTreeMap<&str, &Phase> = BTreeMap::new();
    for p in &inv.phases {
        if let Some(first) = seen.get(p.name.as_str()) {
            let (line, _) = crate::diag::line_col(source, first.name_span.start);
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
            if !all_roles.contains(&r.as_str()) {
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
        match &p.action {
            Action::Builtin(b) => {
                if p.where_ == Where::Local {
                    out.push(
                        Diagnostic::new(
                            format!("builtin phase `{}` cannot run locally", p.name),
                            Some(p.span.clone()),
                        )
                        .help(
                            "builtins work on the nodes' deploy paths; remove `where = \"local\"`",
                        ),
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
            Action::Function(_) if inv.app.script.is_none() => out.push(
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
                .help(
                    "an upload copies from this machine to each node; remove `where = \"local\"`",
                ),
            ),
            _ => {}
        }
    }

    // The release must be built before `current` switches to it.
    let pos = |b: Builtin| {
        inv.phases
            .iter()
            .position(|p| matches!(p.action, Action::Builtin(x) if x == b))
    };
    let release = pos(Builtin::Release);
    let switch = pos(Builtin::Switch);
    match (release, switch) {
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

    // A `once` phase needs a node with its roles in every environment it will run in.
    for env in &inv.environments {
        for p in inv.phases.iter().filter(|p| p.once && !p.roles.is_empty()) {
            let has = env
                .nodes
                .iter()
                .filter_map(|n| inv.node(n))
                .any(|n| n.roles.iter().any(|r| p.roles.contains(r)));
            if !has && p.roles.iter().all(|r| all_roles.contains(&r.as_str())) {
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
    // Checks: unique names, `on` pointing somewhere real.
    let mut seen_checks: BTreeMap<&str, &Check> = BTreeMap::new();
    for c in &inv.checks {
        if seen_checks.insert(c.name.as_str(), c).is_some() {
            out.push(
                Diagnostic::new(format!("check name `{}` is used twice", c.name), Some(c.span.clone()))
                    .help("give each check its own name: the screen and the journal refer to checks by name"),
            );
        }
        if let Probe::Command { on: Some(on), .. } = &c.probe {
            let known = on == "local" || inv.node(on).is_some() || all_roles.contains(&on.as_str());
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

    for env in &inv.environments {
        if let Some(req) = &env.requires {
            if req == &env.name || inv.environment(req).is_none() {
                out.push(
                    Diagnostic::new(
                        format!("environment `{}` requires `{req}`, which is not another environment of this inventory", env.name),
                        Some(env.span.clone()),
                    )
                    .help("name the environment a release must pass first, e.g. requires = \"staging\""),
                );
            }
        }
        if let Some(ex) = &env.config_example {
            let path = inv.base_dir().join(ex);
            if !path.is_file() {
                out.push(
                    Diagnostic::new(
                        format!(
                            "config example `{}` of environment `{}` does not exist",
                            path.display(),
                            env.name
                        ),
                        Some(env.span.clone()),
                    )
                    .help("the path is relative to the inventory file"),
                );
            }
        }
        // The seed's safe migration flow: in a protected environment, back up before migrating.
        if env.protected && !env.allow_migrate_without_backup {
            let is = |p: &Phase, word: &str| {
                p.name.contains(word)
                    || matches!(&p.action, Action::Function(f) | Action::Run(f) if f.contains(word))
            };
            for (i, p) in inv.phases.iter().enumerate() {
                if p.once && is(p, "migrat") {
                    let backed_up = inv.phases[..i]
                        .iter()
                        .any(|b| is(b, "backup") || is(b, "dump"));
                    if !backed_up {
                        out.push(
                            Diagnostic::new(
                                format!("phase `{}` migrates the database in protected environment `{}` with no backup phase before it", p.name, env.name),
                                Some(p.span.clone()),
                            )
                            .help(format!(
                                "add a backup phase before it (e.g. stage = \"before\", once = true, run = \"mysqldump …\"), or set allow_migrate_without_backup = true under [environments.{}]",
                                env.name
                            )),
                        );
                    }
                }
            }
        }
    }
    out
}
