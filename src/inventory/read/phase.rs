//! `[[phases]]`: a deploy step's name, stage, roles, where it runs and its one action (a
//! command, a deploy-script function, a builtin, or an upload), with its timeout.
//!
//! Whether its roles exist, and how builtins are ordered, is `validate`'s to check.

use super::table::Table;
use super::Cx;
use crate::inventory::model::{Action, Builtin, Phase, Stage, Where};

const KEYS: &[&str] = &[
    "name", "stage", "once", "roles", "where", "run", "function", "builtin", "upload", "timeout",
];

pub(super) fn read(cx: &mut Cx, mut t: Table) -> Option<Phase> {
    let name = t.string(cx, "name", "\"install_dependencies\"");
    let name = t.require(cx, "name", name, "\"install_dependencies\"");
    if let Some((n, sp)) = &name {
        if n.is_empty() || n.chars().any(|c| c.is_control() || c.is_whitespace()) {
            cx.error(
                format!("phase name `{n}` must be one word"),
                sp.clone(),
                "e.g. name = \"install_dependencies\"",
            );
        }
    }
    let stage = t
        .choice(
            cx,
            "stage",
            "\"node\"",
            &[Stage::Before, Stage::Node, Stage::After].map(|s| (s.word(), s)),
            "use \"before\", \"node\" (the default) or \"after\"",
        )
        .unwrap_or(Stage::Node);
    let once = t.bool(cx, "once").unwrap_or(false);
    let roles = t.strings(cx, "roles", "[\"migrator\"]").unwrap_or_default();
    let roles_span = t.table.get("roles").map(|v| v.span());
    let where_ = t
        .choice(
            cx,
            "where",
            "\"local\"",
            &[("node", Where::Node), ("local", Where::Local)],
            "use \"node\" (the default) or \"local\" (this machine)",
        )
        .unwrap_or(Where::Node);
    let run = t.string(cx, "run", "\"cd {release_path} && make\"");
    let function = t.string(cx, "function", "\"install_dependencies\"");
    let builtin = t.choice(
        cx,
        "builtin",
        "\"release\"",
        &[Builtin::Release, Builtin::Switch, Builtin::Cleanup].map(|b| (b.word(), b)),
        "use \"release\", \"switch\" or \"cleanup\"",
    );
    let builtin_span = t.table.get("builtin").map(|v| v.span());
    let upload = t.table(
        cx,
        "upload",
        "the upload".into(),
        "{ from = \"dist/app.tar.gz\", to = \"{release_path}/app.tar.gz\" }",
    );
    let timeout = t.duration(cx, "timeout", "\"10m\"");
    let span = t.span.clone();
    let what = t.what.clone();
    t.finish(cx, KEYS);

    let mut actions = Vec::new();
    if let Some((r, sp)) = run {
        cx.check_placeholders(&r, sp.clone());
        actions.push((Action::Run(r), sp));
    }
    if let Some((f, sp)) = function {
        let ok = !f.is_empty()
            && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !f.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            cx.error(
                format!("function `{f}` is not a shell function name"),
                sp.clone(),
                "use letters, digits and _, e.g. function = \"pull_latest_code\"",
            );
        }
        actions.push((Action::Function(f), sp));
    }
    if let (Some(b), Some(sp)) = (builtin, builtin_span) {
        actions.push((Action::Builtin(b), sp));
    }
    if let Some(mut u) = upload {
        let from = u.string(cx, "from", "\"dist/app-{release}.tar.gz\"");
        let from = u.require(cx, "from", from, "\"dist/app-{release}.tar.gz\"");
        let to = u.string(cx, "to", "\"{release_path}/app.tar.gz\"");
        let to = u.require(cx, "to", to, "\"{release_path}/app.tar.gz\"");
        let sp = u.span.clone();
        u.finish(cx, &["from", "to"]);
        if let (Some((f, fsp)), Some((to, tsp))) = (from, to) {
            cx.check_placeholders(&f, fsp);
            cx.check_placeholders(&to, tsp);
            actions.push((Action::Upload { from: f, to }, sp));
        }
    }
    let action = match actions.len() {
        1 => actions.pop().map(|(a, _)| a),
        0 => {
            cx.error(
                format!("{what} has neither `run`, `function` nor `builtin`"),
                span.clone(),
                "give it one: run = \"<command>\", function = \"<deploy.sh function>\", builtin = \"release\" | \"switch\" | \"cleanup\", or upload = { from, to }",
            );
            None
        }
        _ => {
            let sp = actions[1].1.clone();
            cx.error(
                format!("{what} has more than one of `run`, `function`, `builtin`, `upload`"),
                sp,
                "split it into one phase per action",
            );
            None
        }
    }?;
    let (name, name_span) = name?;
    Some(Phase {
        name,
        name_span,
        roles_span,
        stage,
        once,
        roles: roles.into_iter().map(|(r, _)| r).collect(),
        where_,
        action,
        timeout,
        span,
    })
}
