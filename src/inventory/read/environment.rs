//! `[environments.NAME]`: which nodes (by name or by role), the strategy and its batches, how
//! many failures are tolerated and what happens then, the health check, the load balancers,
//! which environment must come first, and the `.env` example.
//!
//! The members are resolved here (names that exist, plus every node with one of the roles, in
//! the order of `[nodes.*]`); a name or role that matches nothing is left for `validate` to
//! report, from the lists as written.

use std::collections::BTreeSet;

use toml::de::DeValue;

use super::table::{parse_int, type_name, Table};
use super::{balancer, health, strategy, Cx};
use crate::inventory::model::{
    BatchSize, Environment, Node, OnFailure, Span, Strategy, Written, WrittenLists,
};
use crate::util;

const KEYS: &[&str] = &[
    "nodes",
    "roles",
    "strategy",
    "batches",
    "max_fail",
    "on_failure",
    "pause_after_first",
    "protected",
    "health",
    "load_balancer",
    "requires",
    "config",
    "allow_migrate_without_backup",
    "groups",
    "steps",
];

pub(super) fn read(
    cx: &mut Cx,
    mut t: Table,
    name: &str,
    span: Span,
    nodes: &[Node],
) -> Option<Environment> {
    if !util::valid_name(name) {
        cx.error(
            format!("environment name `{name}` is not a valid name"),
            span.clone(),
            "use letters, digits, '.', '_', '+' or '-', starting with a letter or digit",
        );
    }
    let mut written = WrittenLists::default();
    let listed = t.strings(cx, "nodes", "[\"web-1\", \"web-2\"]");
    if let Some(listed) = &listed {
        let mut seen = BTreeSet::new();
        for (n, sp) in listed {
            if seen.insert(n.clone()) {
                written.nodes.push(Written::new(n, sp));
            } else {
                cx.error(
                    format!("node `{n}` is listed twice in environment `{name}`"),
                    sp.clone(),
                    "list each node once",
                );
            }
        }
    }
    let roles = t.strings(cx, "roles", "[\"app\"]");
    if let Some(roles) = &roles {
        written.roles = roles.iter().map(|(r, sp)| Written::new(r, sp)).collect();
    }
    if listed.is_none() && roles.is_none() && !t.has("nodes") && !t.has("roles") {
        cx.error(
            format!("environment `{name}` has no nodes"),
            span.clone(),
            "add nodes = [\"web-1\", …] or roles = [\"app\"]",
        );
    } else if written.nodes.is_empty() && written.roles.is_empty() {
        cx.error(
            format!("environment `{name}` has no nodes"),
            span.clone(),
            "list at least one node in nodes = [\"web-1\", …] or roles = [\"app\"]",
        );
    }
    let members = members(&written, nodes);

    let strategy_word = t.string(cx, "strategy", "\"rolling\"");
    let strategy = match strategy_word
        .as_ref()
        .map(|(s, sp)| (s.as_str(), sp.clone()))
    {
        None | Some(("rolling", _)) => Strategy::Rolling,
        Some(("blue-green", sp)) => {
            let (strategy, groups) = strategy::groups(cx, &mut t, name, sp);
            written.groups = groups;
            strategy
        }
        Some(("canary", sp)) => strategy::canary(cx, &mut t, name, sp),
        Some((other, sp)) => {
            cx.error(
                format!("strategy `{other}` is not known"),
                sp,
                "use \"rolling\", \"blue-green\" (with groups) or \"canary\" (with steps)",
            );
            Strategy::Rolling
        }
    };
    // Settings of the other strategies, set by mistake.
    for (key, word) in [("groups", "blue-green"), ("steps", "canary")] {
        if strategy.word() == word {
            continue;
        }
        if let Some(v) = t.get(key) {
            cx.error(
                format!("`{key}` only applies to strategy = \"{word}\""),
                v.span(),
                format!("set strategy = \"{word}\", or remove {key}"),
            );
        }
    }
    let batches = match t.get("batches") {
        None => vec![BatchSize::Count(1)],
        Some(v) => match v.get_ref() {
            DeValue::Array(items) if !items.is_empty() => items
                .iter()
                .filter_map(|i| strategy::batch_size(cx, i))
                .collect(),
            DeValue::Array(_) => {
                cx.error(
                    "batches is empty",
                    v.span(),
                    "e.g. batches = [1, \"50%\", \"100%\"], or a single number",
                );
                vec![BatchSize::Count(1)]
            }
            _ => strategy::batch_size(cx, v)
                .map(|b| vec![b])
                .unwrap_or_default(),
        },
    };
    let max_fail = max_fail(cx, &mut t, members.len());
    let on_failure = t
        .choice(
            cx,
            "on_failure",
            "\"pause\"",
            &[
                ("pause", OnFailure::Pause),
                ("rollback", OnFailure::Rollback),
                ("abort", OnFailure::Abort),
            ],
            "use \"pause\", \"rollback\" or \"abort\"",
        )
        .unwrap_or(OnFailure::Pause);
    let pause_after_first = t.bool(cx, "pause_after_first").unwrap_or(false);
    let protected = t.bool(cx, "protected").unwrap_or(false);
    let health = t
        .table(
            cx,
            "health",
            format!("the health check of `{name}`"),
            "{ run = \"curl -fsS http://127.0.0.1/up\" }",
        )
        .and_then(|h| health::read(cx, h));
    let load_balancers = balancer::read_all(cx, &mut t, name);
    let requires = t.string(cx, "requires", "\"staging\"").map(|(r, _)| r);
    let config_example = t
        .table(
            cx,
            "config",
            format!("the config check of `{name}`"),
            "{ example = \".env.example\" }",
        )
        .and_then(|mut c| {
            let ex = c.string(cx, "example", "\".env.example\"");
            let ex = c.require(cx, "example", ex, "\".env.example\"");
            c.finish(cx, &["example"]);
            ex.map(|(e, _)| e)
        });
    let allow_migrate_without_backup = t.bool(cx, "allow_migrate_without_backup").unwrap_or(false);
    t.finish(cx, KEYS);
    Some(Environment {
        name: name.to_string(),
        nodes: members,
        strategy,
        batches,
        max_fail,
        on_failure,
        pause_after_first,
        protected,
        health,
        load_balancers,
        requires,
        config_example,
        allow_migrate_without_backup,
        span,
        written,
    })
}

/// The environment's nodes: those listed that exist, and every node with one of the roles, in
/// the order of `[nodes.*]` (the plan's order). Names that match nothing are skipped here.
fn members(written: &WrittenLists, nodes: &[Node]) -> Vec<String> {
    let mut members: Vec<String> = Vec::new();
    for n in &written.nodes {
        if nodes.iter().any(|x| x.name == n.name) {
            members.push(n.name.clone());
        }
    }
    for r in &written.roles {
        for n in nodes.iter().filter(|n| n.roles.contains(&r.name)) {
            if !members.contains(&n.name) {
                members.push(n.name.clone());
            }
        }
    }
    members.sort_by_key(|m| nodes.iter().position(|n| &n.name == m));
    members
}

/// `max_fail`: a share ("25%") or a count of the environment's `total` nodes, as a fraction.
fn max_fail(cx: &mut Cx, t: &mut Table, total: usize) -> f64 {
    let Some(v) = t.get("max_fail") else {
        return 0.0;
    };
    let count = match v.get_ref() {
        DeValue::Integer(i) => parse_int(i).filter(|n| *n >= 0),
        _ => None,
    };
    match (v.get_ref(), count) {
        (DeValue::String(s), _) if s.trim() == "0%" || s.trim() == "0" => 0.0,
        (DeValue::String(s), _) => match strategy::parse_share(s) {
            Some(p) => p / 100.0,
            None => {
                cx.error(
                    format!("max_fail `{s}` is not a percentage"),
                    v.span(),
                    "e.g. max_fail = \"0%\" (no failed node tolerated) or \"25%\"",
                );
                0.0
            }
        },
        (_, Some(n)) => {
            let total = total.max(1) as f64;
            (n as f64 / total).min(1.0)
        }
        (other, None) => {
            cx.error(
                format!(
                    "max_fail must be a percentage or a node count, found {}",
                    type_name(other)
                ),
                v.span(),
                "e.g. max_fail = \"0%\" or max_fail = 1",
            );
            0.0
        }
    }
}
