//! The two small top-level settings tables: `[checklist]` (how long each window of the
//! post-deploy checklist lasts, how often it probes, whether it may roll back by itself) and
//! `[notify]` (webhooks, which are secrets wherever they came from).

use super::table::Table;
use super::Cx;
use crate::inventory::model::{Checklist, Notify};

const CHECKLIST_KEYS: &[&str] = &["immediate", "short", "long", "interval", "auto_rollback"];
const NOTIFY_KEYS: &[&str] = &["slack", "teams", "webhook", "timeout", "retries"];

/// `[checklist]` under the inventory's top table; defaults when absent.
pub(super) fn checklist(cx: &mut Cx, top: &mut Table) -> Checklist {
    let Some(mut c) = top.table(
        cx,
        "checklist",
        "[checklist]".into(),
        "{ immediate = \"5m\" }",
    ) else {
        return Checklist::default();
    };
    let d = Checklist::default();
    let out = Checklist {
        immediate: c.duration(cx, "immediate", "\"5m\"").unwrap_or(d.immediate),
        short: c.duration(cx, "short", "\"30m\"").unwrap_or(d.short),
        long: c.duration(cx, "long", "\"2h\"").unwrap_or(d.long),
        interval: c.duration(cx, "interval", "\"30s\"").unwrap_or(d.interval),
        auto_rollback: c.bool(cx, "auto_rollback").unwrap_or(d.auto_rollback),
    };
    if out.interval.is_zero() {
        cx.error(
            "[checklist] interval must be above zero",
            c.span.clone(),
            "e.g. interval = \"30s\"",
        );
    }
    c.finish(cx, CHECKLIST_KEYS);
    out
}

/// `[notify]` under the inventory's top table; defaults when absent.
pub(super) fn notify(cx: &mut Cx, top: &mut Table) -> Notify {
    let Some(mut n) = top.table(
        cx,
        "notify",
        "[notify]".into(),
        "{ slack = \"${SLACK_WEBHOOK_URL}\" }",
    ) else {
        return Notify::default();
    };
    let url = |cx: &mut Cx, n: &mut Table, key: &str| {
        let v = n.string(cx, key, "\"${WEBHOOK_URL}\"")?;
        if !(v.0.is_empty() || v.0.starts_with("http://") || v.0.starts_with("https://")) {
            cx.error(
                format!("[notify] {key} must be an http(s) URL"),
                v.1.clone(),
                "e.g. slack = \"${SLACK_WEBHOOK_URL}\"",
            );
        }
        // Webhook URLs carry their credentials: they are secrets wherever they came from.
        cx.secrets.push(v.0.clone());
        Some(v.0).filter(|u| !u.is_empty())
    };
    let d = Notify::default();
    let out = Notify {
        slack: url(cx, &mut n, "slack"),
        teams: url(cx, &mut n, "teams"),
        webhook: url(cx, &mut n, "webhook"),
        timeout: n.duration(cx, "timeout", "\"5s\"").unwrap_or(d.timeout),
        retries: n
            .int(cx, "retries", 0, 20, "3")
            .map_or(d.retries, |r| r as u32),
    };
    n.finish(cx, NOTIFY_KEYS);
    out
}
