//! `[app]`: the application's name, where its releases live on every node, how many to keep,
//! what is shared between releases, and the optional deploy script. Also the path rules that
//! `[nodes.*]` and `[app]` share (absolute deploy paths, release-relative shared paths).

use super::table::Table;
use super::Cx;
use crate::inventory::model::{App, Span};
use crate::util;

const KEYS: &[&str] = &[
    "name",
    "deploy_path",
    "keep_releases",
    "shared_files",
    "shared_dirs",
    "script",
];

pub(super) fn read(cx: &mut Cx, mut t: Table) -> Option<App> {
    let name = t.string(cx, "name", "\"myapp\"");
    let name = t.require(cx, "name", name, "\"myapp\"");
    if let Some((n, span)) = &name {
        if !util::valid_name(n) {
            cx.error(
                format!("app name `{n}` is not a valid name"),
                span.clone(),
                "use letters, digits, '.', '_', '+' or '-', starting with a letter or digit",
            );
        }
    }
    let deploy_path = t.string(cx, "deploy_path", "\"/var/www/myapp\"");
    let deploy_path = t.require(cx, "deploy_path", deploy_path, "\"/var/www/myapp\"");
    if let Some((p, span)) = &deploy_path {
        check_deploy_path(cx, p, span.clone());
    }
    let keep = t.int(cx, "keep_releases", 1, 1000, "5").unwrap_or(5) as u32;
    let shared_files = t
        .strings(cx, "shared_files", "[\".env\"]")
        .unwrap_or_default();
    let shared_dirs = t
        .strings(cx, "shared_dirs", "[\"storage\"]")
        .unwrap_or_default();
    for (p, span) in shared_files.iter().chain(shared_dirs.iter()) {
        check_relative_path(cx, p, span.clone());
    }
    let script = t.string(cx, "script", "\"deploy.sh\"").map(|(s, _)| s);
    t.finish(cx, KEYS);
    Some(App {
        name: name?.0,
        deploy_path: deploy_path?.0,
        keep_releases: keep,
        shared_files: shared_files.into_iter().map(|(s, _)| s).collect(),
        shared_dirs: shared_dirs.into_iter().map(|(s, _)| s).collect(),
        script,
    })
}

/// A deploy path goes into remote commands and `rm`: absolute, no `..`, no quotes.
pub(super) fn check_deploy_path(cx: &mut Cx, p: &str, span: Span) {
    let bad = !p.starts_with('/')
        || p.split('/').any(|c| c == "..")
        || p.chars().any(|c| c.is_control() || c == '\'' || c == '"');
    if bad || p == "/" {
        cx.error(
            format!("deploy_path `{p}` must be an absolute path without `..`, quotes or control characters"),
            span,
            "e.g. deploy_path = \"/var/www/myapp\"",
        );
    }
}

fn check_relative_path(cx: &mut Cx, p: &str, span: Span) {
    if p.is_empty()
        || p.starts_with('/')
        || p.split('/').any(|c| c == ".." || c == ".")
        || p.chars().any(|c| c.is_control())
    {
        cx.error(
            format!("`{p}` must be a path relative to the release, without `..`"),
            span,
            "e.g. \"storage\" or \"config/app.env\"",
        );
    }
}
