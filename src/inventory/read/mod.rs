//! From the parsed TOML tree to the typed [`Inventory`], one file per section of the inventory
//! (`app`, `ssh`, `node`, `environment` with `strategy`, `balancer` and `health`, `phase`,
//! `check`, `settings` for `[checklist]` and `[notify]`). Each reads its tables' keys, value
//! types, words and durations, fills in `${VAR}`, and reports every problem with its span, then
//! goes on with a default so that one run shows all of them.
//!
//! What it must not do: judge whether a name points at something real (an environment's node, a
//! phase's role, a balancer's `via`). It keeps such names with their spans in the model, resolves
//! what it can (an environment's members) and leaves every cross-reference check to `validate`.
//!
//! Why not `#[derive(Deserialize)]` with `toml::Spanned` fields: serde stops at the first bad
//! value of a table, and its words ("invalid type: string \"22\", expected u16") name neither
//! the key, nor the table, nor a line to copy; the getters of [`table::Table`] do all three.

mod app;
mod balancer;
mod check;
mod environment;
mod health;
mod interpolate;
mod node;
mod phase;
mod settings;
mod ssh;
mod strategy;
mod table;

use std::path::Path;

use toml::de::DeTable;
use toml::Spanned;

use super::model::*;
use crate::diag::{did_you_mean, Diagnostic};
use crate::secrets::Secrets;
use crate::util;
use table::Table;

/// What reading collects besides the model: every problem, the `${VAR}` look-up, and the
/// values filled in from it (secrets, masked wherever they are shown).
pub(super) struct Cx<'e> {
    pub(super) diags: Vec<Diagnostic>,
    env: &'e dyn Fn(&str) -> Option<String>,
    secrets: Vec<String>,
}

impl<'e> Cx<'e> {
    pub(super) fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Cx {
            diags: Vec::new(),
            env,
            secrets: Vec::new(),
        }
    }

    fn error(&mut self, message: impl Into<String>, span: Span, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(message, Some(span)).help(help));
    }

    /// Report `{name}` placeholders that are not known, pointing into the string when possible.
    fn check_placeholders(&mut self, text: &str, span: Span) {
        for (name, offset) in util::unknown_placeholders(text) {
            // Point at the placeholder when the string is a plain one-line literal.
            let start = span.start + 1 + offset;
            let sp = if start + name.len() + 2 <= span.end {
                start..start + name.len() + 2
            } else {
                span.clone()
            };
            let known = util::PLACEHOLDERS
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(" ");
            let help = match did_you_mean(&name, util::PLACEHOLDERS) {
                Some(s) => {
                    format!("did you mean {{{s}}}? known: {known}; write {{{{ for a literal brace")
                }
                None => format!("known placeholders: {known}; write {{{{ for a literal brace"),
            };
            self.error(format!("unknown placeholder `{{{name}}}`"), sp, help);
        }
    }
}

const ROOT_KEYS: &[&str] = &[
    "app",
    "ssh",
    "nodes",
    "environments",
    "phases",
    "theme",
    "checks",
    "checklist",
    "notify",
];

/// Read the whole file. `None` when there is no usable `[app]`; the problems are in `cx`.
pub(super) fn inventory(
    cx: &mut Cx,
    file: &Path,
    root: &Spanned<DeTable<'_>>,
) -> Option<Inventory> {
    let mut top = Table::new(root.get_ref(), root.span(), "the inventory");
    let app = match top.table(cx, "app", "[app]".into(), "{ name = \"myapp\" }") {
        Some(t) => app::read(cx, t),
        None => {
            if !top.has("app") {
                cx.error(
                    "the inventory has no [app] table",
                    0..0,
                    "start the file with [app], name = \"…\" and deploy_path = \"/var/www/…\"",
                );
            }
            None
        }
    };
    let ssh_defaults = match top.table(cx, "ssh", "[ssh]".into(), "{ user = \"deploy\" }") {
        Some(mut t) => {
            let s = ssh::read(cx, &mut t, None);
            t.finish(cx, ssh::KEYS);
            s
        }
        None => ssh::defaults(),
    };
    let theme = top.string(cx, "theme", "\"dark\"").map(|(s, _)| s);
    let nodes = top.named_tables(
        cx,
        "nodes",
        "{ web-1 = { host = \"10.0.0.1\" } }",
        "host = \"…\"",
        |cx, t, name, span| node::read(cx, t, name, span, &ssh_defaults, app.as_ref()),
    );
    let environments = top.named_tables(
        cx,
        "environments",
        "{ production = { … } }",
        "nodes = [\"…\"]",
        |cx, t, name, span| environment::read(cx, t, name, span, &nodes),
    );
    let phases = top.table_array(
        cx,
        "phases",
        "phase",
        "write each phase as [[phases]] with name = \"…\" and run = \"…\"",
        phase::read,
    );
    let checks = top.table_array(
        cx,
        "checks",
        "check",
        "write each check as [[checks]] with name, window and a probe",
        check::read,
    );
    let checklist = settings::checklist(cx, &mut top);
    let notify = settings::notify(cx, &mut top);
    top.finish(cx, ROOT_KEYS);

    let app = app?;
    let secrets = Secrets::new(
        std::mem::take(&mut cx.secrets)
            .into_iter()
            .chain(Secrets::from_process_env()),
    );
    Some(Inventory {
        file: file.to_path_buf(),
        app,
        nodes,
        environments,
        phases,
        theme,
        checks,
        checklist,
        notify,
        secrets,
    })
}
