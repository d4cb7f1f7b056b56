//! `[[checks]]`: one item of the post-deploy checklist: its name, window, place in the rollback
//! decision tree, its one probe (http, a command, a Prometheus query, or manual), its timeout
//! and what a failure does.
//!
//! Whether a command's `on` names a node or a role is `validate`'s to check.

use std::time::Duration;

use toml::de::DeValue;

use super::table::Table;
use super::Cx;
use crate::inventory::model::{Check, CheckKind, OnFail, Probe, Span, Window};

const KEYS: &[&str] = &[
    "name",
    "window",
    "kind",
    "per_node",
    "http",
    "run",
    "on",
    "min",
    "max",
    "unit",
    "prometheus",
    "manual",
    "timeout",
    "on_fail",
];

pub(super) fn read(cx: &mut Cx, mut t: Table) -> Option<Check> {
    let name = t.string(cx, "name", "\"Health endpoint responding\"");
    let name = t.require(cx, "name", name, "\"Health endpoint responding\"");
    let window = t
        .choice(
            cx,
            "window",
            "\"immediate\"",
            &[Window::Immediate, Window::Short, Window::Long].map(|w| (w.word(), w)),
            "use \"immediate\", \"short\" or \"long\"",
        )
        .unwrap_or(Window::Immediate);
    let kind = t
        .choice(
            cx,
            "kind",
            "\"health\"",
            &[
                CheckKind::Health,
                CheckKind::Errors,
                CheckKind::Performance,
                CheckKind::Critical,
                CheckKind::Info,
            ]
            .map(|k| (k.word(), k)),
            "use \"health\", \"errors\", \"performance\", \"critical\" or \"info\" (its place in the rollback decision tree)",
        )
        .unwrap_or(CheckKind::Info);
    let unit = t.string(cx, "unit", "\"ms\"").map(|(u, _)| u);
    let per_node = t.bool(cx, "per_node").unwrap_or(false);
    let timeout = t
        .duration(cx, "timeout", "\"10s\"")
        .unwrap_or(Duration::from_secs(10));
    let span = t.span.clone();
    let mut probes: Vec<(Probe, Span)> = Vec::new();
    probes.extend(http(cx, &mut t));
    probes.extend(command(cx, &mut t));
    probes.extend(prometheus(cx, &mut t));
    if t.bool(cx, "manual") == Some(true) {
        probes.push((Probe::Manual, span.clone()));
    }
    let on_fail = on_fail(cx, &mut t);
    let what = t.what.clone();
    t.finish(cx, KEYS);
    let probe = match probes.len() {
        1 => probes.pop().map(|(p, _)| p),
        0 => {
            cx.error(
                format!("{what} has no probe"),
                span.clone(),
                "give it one of: http = { url = \"…\" }, run = \"…\", prometheus = { url, query }, manual = true",
            );
            None
        }
        _ => {
            cx.error(
                format!("{what} has more than one probe"),
                probes[1].1.clone(),
                "keep one of http, run, prometheus, manual",
            );
            None
        }
    }?;
    Some(Check {
        name: name?.0,
        unit,
        window,
        kind,
        per_node,
        probe,
        timeout,
        on_fail,
        span,
    })
}

/// `http = { url, expect, max_latency, body }`.
fn http(cx: &mut Cx, t: &mut Table) -> Option<(Probe, Span)> {
    let mut h = t.table(
        cx,
        "http",
        format!("the http probe of {}", t.what),
        "{ url = \"http://{host}/up\" }",
    )?;
    let url = h.string(cx, "url", "\"http://{host}:8080/up\"");
    let url = h.require(cx, "url", url, "\"http://{host}:8080/up\"");
    let expect = h.int(cx, "expect", 100, 599, "200").unwrap_or(200) as u16;
    let max_latency = h.duration(cx, "max_latency", "\"500ms\"");
    let body = h.string(cx, "body", "\"ok\"").map(|(b, _)| b);
    let sp = h.span.clone();
    h.finish(cx, &["url", "expect", "max_latency", "body"]);
    let (u, usp) = url?;
    cx.check_placeholders(&u, usp);
    Some((
        Probe::Http {
            url: u,
            expect,
            max_latency,
            body,
        },
        sp,
    ))
}

/// `run = "…"` with `on`, `min` and `max` beside it in the check's own table.
fn command(cx: &mut Cx, t: &mut Table) -> Option<(Probe, Span)> {
    let run = t.string(cx, "run", "\"php artisan queue:monitor\"");
    let on = t.string(cx, "on", "\"migrator\"").map(|(o, _)| o);
    let min = t.number(cx, "min");
    let max = t.number(cx, "max");
    let (r, sp) = run?;
    cx.check_placeholders(&r, sp.clone());
    Some((
        Probe::Command {
            run: r,
            on,
            min,
            max,
        },
        sp,
    ))
}

/// `prometheus = { url, query, min, max }`.
fn prometheus(cx: &mut Cx, t: &mut Table) -> Option<(Probe, Span)> {
    let mut p = t.table(
        cx,
        "prometheus",
        format!("the prometheus probe of {}", t.what),
        "{ url = \"http://127.0.0.1:9090\", query = \"…\" }",
    )?;
    let url = p.string(cx, "url", "\"http://127.0.0.1:9090\"");
    let url = p.require(cx, "url", url, "\"http://127.0.0.1:9090\"");
    let query = p.string(cx, "query", "\"sum(rate(errors[5m]))\"");
    let query = p.require(cx, "query", query, "\"sum(rate(errors[5m]))\"");
    let min = p.number(cx, "min");
    let max = p.number(cx, "max");
    let sp = p.span.clone();
    p.finish(cx, &["url", "query", "min", "max"]);
    let ((url, _), (query, _)) = (url?, query?);
    Some((
        Probe::Prometheus {
            url,
            query,
            min,
            max,
        },
        sp,
    ))
}

/// `on_fail`: "alert", "rollback" or `{ run = "…" }`; the decision tree when absent.
fn on_fail(cx: &mut Cx, t: &mut Table) -> OnFail {
    let what = t.what.clone();
    let Some(v) = t.get("on_fail") else {
        return OnFail::Tree;
    };
    match v.get_ref() {
        DeValue::String(s) if s.as_ref() == "alert" => OnFail::Alert,
        DeValue::String(s) if s.as_ref() == "rollback" => OnFail::Rollback,
        DeValue::Table(tt) => {
            let mut o = Table::new(tt, v.span(), format!("on_fail of {what}"));
            let r = o.string(cx, "run", "\"scale-up.sh\"");
            o.finish(cx, &["run"]);
            match r {
                Some((r, sp)) => {
                    cx.check_placeholders(&r, sp);
                    OnFail::Run(r)
                }
                None => {
                    cx.error(
                        format!("on_fail of {what} needs `run`"),
                        v.span(),
                        "e.g. on_fail = { run = \"./scale-up.sh\" }",
                    );
                    OnFail::Tree
                }
            }
        }
        _ => {
            cx.error(
                format!("on_fail of {what} is not known"),
                v.span(),
                "use \"alert\", \"rollback\" or { run = \"…\" }",
            );
            OnFail::Tree
        }
    }
}
