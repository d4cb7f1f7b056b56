//! An environment's `health`: the probe that says a node is up after its restart (a command on
//! the node, or an HTTP GET from this machine), with its timeout, interval and retries.

use std::time::Duration;

use super::table::Table;
use super::Cx;
use crate::inventory::model::{Health, HealthProbe};

const KEYS: &[&str] = &["run", "url", "expect", "timeout", "interval", "retries"];

pub(super) fn read(cx: &mut Cx, mut t: Table) -> Option<Health> {
    let run = t.string(cx, "run", "\"curl -fsS http://127.0.0.1:8080/up\"");
    let url = t.string(cx, "url", "\"http://{host}:8080/up\"");
    let expect = t.int(cx, "expect", 100, 599, "200").unwrap_or(200) as u16;
    let timeout = t
        .duration(cx, "timeout", "\"5s\"")
        .unwrap_or(Duration::from_secs(5));
    let interval = t
        .duration(cx, "interval", "\"1s\"")
        .unwrap_or(Duration::from_secs(1));
    let retries = t.int(cx, "retries", 0, 100_000, "30").unwrap_or(10) as u32;
    let span = t.span.clone();
    let what = t.what.clone();
    t.finish(cx, KEYS);
    let probe = match (run, url) {
        (Some((r, sp)), None) => {
            cx.check_placeholders(&r, sp);
            HealthProbe::Run(r)
        }
        (None, Some((u, sp))) => {
            cx.check_placeholders(&u, sp.clone());
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                cx.error(
                    format!("health url `{u}` must start with http:// or https://"),
                    sp,
                    "e.g. url = \"http://{host}:8080/up\"",
                );
            }
            HealthProbe::Url { url: u, expect }
        }
        (Some(_), Some((_, sp))) => {
            cx.error(
                format!("{what} has both `run` and `url`"),
                sp,
                "keep one: a command (run) or an HTTP probe (url)",
            );
            return None;
        }
        (None, None) => {
            cx.error(
                format!("{what} has neither `run` nor `url`"),
                span,
                "add run = \"…\" (a command on the node) or url = \"http://{host}:…\"",
            );
            return None;
        }
    };
    Some(Health {
        probe,
        timeout,
        interval,
        retries,
    })
}
