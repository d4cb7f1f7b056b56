//! Environments against the rest: the nodes and roles they name, their blue-green groups, the
//! environment they require, their `.env` example, and a backup before any migration in a
//! protected one.

use super::Facts;
use crate::diag::{did_you_mean, Diagnostic};
use crate::inventory::model::*;

pub(super) fn check(cx: &Facts, out: &mut Vec<Diagnostic>) {
    for env in &cx.inv.environments {
        members(cx, env, out);
        if let Some(groups) = &env.written.groups {
            blue_green(cx, env, groups, out);
        }
        requires(cx, env, out);
        config_example(cx, env, out);
        backup_before_migration(cx, env, out);
    }
}

/// Every name under `nodes` is a node; every role under `roles` is some node's.
fn members(cx: &Facts, env: &Environment, out: &mut Vec<Diagnostic>) {
    let name = &env.name;
    for w in &env.written.nodes {
        if cx.inv.node(&w.name).is_some() {
            continue;
        }
        let names: Vec<&str> = cx.inv.nodes.iter().map(|x| x.name.as_str()).collect();
        let n = &w.name;
        let help = match did_you_mean(n, &names) {
            Some(s) => format!("did you mean `{s}`? or define it under [nodes.{n}]"),
            None => format!("define it under [nodes.{n}], or remove it from the list"),
        };
        out.push(
            Diagnostic::new(
                format!("environment `{name}` uses node `{n}`, which is not defined"),
                Some(w.span.clone()),
            )
            .help(help),
        );
    }
    for w in &env.written.roles {
        if !cx.has_role(&w.name) {
            let r = &w.name;
            out.push(
                Diagnostic::new(
                    format!("environment `{name}` selects role `{r}`, which no node has"),
                    Some(w.span.clone()),
                )
                .help(format!(
                    "add roles = [\"{r}\"] to a node, or fix the role name"
                )),
            );
        }
    }
}

/// Each group member is a node of the environment, in one group only; every node of the
/// environment is in a group.
fn blue_green(cx: &Facts, env: &Environment, groups: &WrittenGroups, out: &mut Vec<Diagnostic>) {
    let name = &env.name;
    let mut seen: Vec<&str> = Vec::new();
    for (group, list) in &groups.groups {
        for w in list {
            let n = w.name.as_str();
            let problem = if cx.inv.node(n).is_none() {
                Some((
                    format!("group `{group}` names node `{n}`, which is not defined"),
                    format!("define it under [nodes.{n}]"),
                ))
            } else if !env.nodes.iter().any(|m| m == n) {
                Some((
                    format!(
                        "group `{group}` names node `{n}`, which is not in environment `{name}`"
                    ),
                    "add it to the environment's nodes, or remove it from the group".to_string(),
                ))
            } else if seen.contains(&n) {
                Some((
                    format!("node `{n}` is in two groups"),
                    "a node belongs to one group".to_string(),
                ))
            } else {
                seen.push(n);
                None
            };
            if let Some((message, help)) = problem {
                out.push(Diagnostic::new(message, Some(w.span.clone())).help(help));
            }
        }
    }
    let missing: Vec<&str> = env
        .nodes
        .iter()
        .map(|m| m.as_str())
        .filter(|m| !seen.contains(m))
        .collect();
    if !missing.is_empty() {
        out.push(
            Diagnostic::new(
                format!("nodes of `{name}` in no group: {}", missing.join(", ")),
                Some(groups.span.clone()),
            )
            .help("put every node of the environment in one of the two groups"),
        );
    }
}

fn requires(cx: &Facts, env: &Environment, out: &mut Vec<Diagnostic>) {
    let Some(req) = &env.requires else { return };
    if req == &env.name || cx.inv.environment(req).is_none() {
        out.push(
            Diagnostic::new(
                format!("environment `{}` requires `{req}`, which is not another environment of this inventory", env.name),
                Some(env.span.clone()),
            )
            .help("name the environment a release must pass first, e.g. requires = \"staging\""),
        );
    }
}

fn config_example(cx: &Facts, env: &Environment, out: &mut Vec<Diagnostic>) {
    let Some(ex) = &env.config_example else {
        return;
    };
    let path = cx.inv.base_dir().join(ex);
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

/// The seed's safe migration flow: in a protected environment, back up before migrating.
fn backup_before_migration(cx: &Facts, env: &Environment, out: &mut Vec<Diagnostic>) {
    if !env.protected || env.allow_migrate_without_backup {
        return;
    }
    let is = |p: &Phase, word: &str| {
        p.name.contains(word)
            || matches!(&p.action, Action::Function(f) | Action::Run(f) if f.contains(word))
    };
    let phases = &cx.inv.phases;
    for (i, p) in phases.iter().enumerate() {
        if p.once && is(p, "migrat") {
            let backed_up = phases[..i].iter().any(|b| is(b, "backup") || is(b, "dump"));
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
