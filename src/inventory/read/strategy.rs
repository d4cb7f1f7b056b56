//! How an environment's nodes take their turn: blue-green `groups`, canary `steps`, and batch
//! sizes (a count or a share, used by `batches` and by canary steps).
//!
//! Group members are kept as written; whether they are nodes of the environment, and whether
//! every node is in exactly one group, is `validate`'s to check.

use toml::de::DeValue;

use super::table::{parse_int, type_name, Table, Val};
use super::Cx;
use crate::inventory::model::{BatchSize, CanaryStep, Span, Strategy, Written, WrittenGroups};
use crate::util;

/// `groups` of a blue-green environment `env` (`sp` is its `strategy` word): the strategy, and
/// the groups as written for `validate`.
pub(super) fn groups(
    cx: &mut Cx,
    t: &mut Table,
    env: &str,
    sp: Span,
) -> (Strategy, Option<WrittenGroups>) {
    let Some(v) = t.get("groups") else {
        cx.error(
            format!("environment `{env}` uses blue-green but has no `groups`"),
            sp,
            "add groups = { blue = [\"web-1\", \"web-2\"], green = [\"web-3\", \"web-4\"] }",
        );
        return (Strategy::Rolling, None);
    };
    let DeValue::Table(gt) = v.get_ref() else {
        cx.error(
            "`groups` must be a table of two node lists",
            v.span(),
            "e.g. groups = { blue = [\"web-1\"], green = [\"web-2\"] }",
        );
        return (Strategy::Rolling, None);
    };
    let mut written = WrittenGroups {
        span: v.span(),
        groups: Vec::new(),
    };
    for (k, gv) in gt.iter() {
        let mut list = Vec::new();
        match gv.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref().as_str() {
                        Some(n) => list.push(Written::new(n, &item.span())),
                        None => cx.error(
                            "group members are node names",
                            item.span(),
                            "e.g. blue = [\"web-1\", \"web-2\"]",
                        ),
                    }
                }
            }
            _ => cx.error(
                "a group is a list of node names",
                gv.span(),
                "e.g. blue = [\"web-1\", \"web-2\"]",
            ),
        }
        written.groups.push((k.get_ref().to_string(), list));
    }
    if written.groups.len() != 2 || written.groups.iter().any(|(_, l)| l.is_empty()) {
        cx.error(
            "blue-green needs exactly two non-empty groups",
            v.span(),
            "e.g. groups = { blue = [\"web-1\"], green = [\"web-2\"] }",
        );
    }
    let groups = written
        .groups
        .iter()
        .map(|(g, list)| (g.clone(), list.iter().map(|w| w.name.clone()).collect()))
        .collect();
    (Strategy::BlueGreen { groups }, Some(written))
}

/// `steps` of a canary environment `env` (`sp` is its `strategy` word).
pub(super) fn canary(cx: &mut Cx, t: &mut Table, env: &str, sp: Span) -> Strategy {
    let help = "e.g. steps = [{ nodes = 1 }, { pause = \"manual\" }, { nodes = \"50%\" }, { pause = \"5m\" }, { nodes = \"100%\" }]";
    let Some(v) = t.get("steps") else {
        cx.error(
            format!("environment `{env}` uses canary but has no `steps`"),
            sp,
            help,
        );
        return Strategy::Rolling;
    };
    let DeValue::Array(items) = v.get_ref() else {
        cx.error("`steps` must be a list", v.span(), help);
        return Strategy::Rolling;
    };
    let mut steps = Vec::new();
    for item in items.iter() {
        let DeValue::Table(st) = item.get_ref() else {
            cx.error("each canary step is a table", item.span(), help);
            continue;
        };
        let mut o = Table::new(st, item.span(), "a canary step".to_string());
        let nodes = o.get("nodes").and_then(|nv| batch_size(cx, nv));
        let pause = o.string(cx, "pause", "\"manual\"");
        o.finish(cx, &["nodes", "pause"]);
        match (nodes, pause) {
            (Some(n), None) => steps.push(CanaryStep::Nodes(n)),
            (None, Some((p, _))) if p == "manual" => steps.push(CanaryStep::Pause(None)),
            (None, Some((p, psp))) => match util::parse_duration(&p) {
                Ok(d) => steps.push(CanaryStep::Pause(Some(d))),
                Err(_) => cx.error(
                    format!("pause `{p}` is neither \"manual\" nor a duration"),
                    psp,
                    "e.g. pause = \"manual\" or pause = \"5m\"",
                ),
            },
            _ => cx.error(
                "a canary step has either `nodes` or `pause`",
                item.span(),
                help,
            ),
        }
    }
    if !steps.iter().any(|s| matches!(s, CanaryStep::Nodes(_))) {
        cx.error("canary steps deploy no node", v.span(), help);
    }
    Strategy::Canary { steps }
}

/// "25%" as 25.0: above 0, at most 100.
pub(super) fn parse_share(text: &str) -> Option<f64> {
    let n: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    (n > 0.0 && n <= 100.0).then_some(n)
}

/// One batch size: a node count (at least 1) or a share ("25%").
pub(super) fn batch_size(cx: &mut Cx, v: &Val<'_>) -> Option<BatchSize> {
    let help =
        "a batch is a node count (e.g. 2) or a share of the environment (e.g. \"25%\"), above 0";
    match v.get_ref() {
        DeValue::Integer(i) => match parse_int(i) {
            Some(n) if n >= 1 && n <= u32::MAX as i64 => Some(BatchSize::Count(n as u32)),
            _ => {
                cx.error("batch size must be at least 1", v.span(), help);
                None
            }
        },
        DeValue::String(s) => match parse_share(s) {
            Some(p) => Some(BatchSize::Percent(p)),
            None => {
                cx.error(
                    format!("batch size `{s}` is not a count or a percentage"),
                    v.span(),
                    help,
                );
                None
            }
        },
        other => {
            cx.error(
                format!(
                    "batch size must be a number or a percentage, found {}",
                    type_name(other)
                ),
                v.span(),
                help,
            );
            None
        }
    }
}
