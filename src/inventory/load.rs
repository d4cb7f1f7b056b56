//! Reading an inventory file: TOML syntax, `${VAR}` interpolation from the environment, and the
//! shape of every table (known keys, value types, durations, batch specs).
//!
//! The reader walks the spanned TOML tree by hand instead of using serde derive so that it can
//! keep going after an error and report every problem in one pass, each pointing at its line.
//! Cross-references (nodes, roles, placeholders) are checked afterwards by `validate.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use super::model::*;
use crate::diag::{did_you_mean, Diagnostic, Report};
use crate::secrets::Secrets;
use crate::util;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read inventory {path}: {source}\n  = help: pass the file with -i FILE, or set DECKHAND_INVENTORY")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Report),
}

/// Load and validate an inventory file, taking `${VAR}` values from this process's environment.
pub fn load(path: &Path) -> Result<Inventory, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let env = |k: &str| std::env::var(k).ok();
    load_str(path, &source, &env).map_err(LoadError::Invalid)
}

/// Load from text; `env` answers `${VAR}` look-ups. Every problem found is in the report.
pub fn load_str(
    file: &Path,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Inventory, Report> {
    let report = |diagnostics| Report {
        file: file.to_path_buf(),
        source: source.to_string(),
        diagnostics,
    };
    let root = match DeTable::parse(source) {
        Ok(t) => t,
        Err(e) => {
            let d = Diagnostic::new(format!("invalid TOML: {}", e.message().trim()), e.span())
                .help("fix the syntax at this spot; see the inventory reference in README.md");
            return Err(report(vec![d]));
        }
    };
    let mut cx = Cx {
        diags: Vec::new(),
        env,
        secrets: Vec::new(),
    };
    let inv = read_root(&mut cx, file, &root);
    let mut diags = cx.diags;
    if let Some(inv) = &inv {
        diags.extend(super::validate::validate(inv, source));
    }
    // Stable order: by position in the file.
    diags.sort_by_key(|d| d.span.as_ref().map(|s| s.start).unwrap_or(usize::MAX));
    match inv {
        Some(inv) if diags.is_empty() => Ok(inv),
        _ => Err(report(diags)),
    }
}

type Val<'i> = Spanned<DeValue<'i>>;

struct Cx<'e> {
    diags: Vec<Diagnostic>,
    env: &'e dyn Fn(&str) -> Option<String>,
    secrets: Vec<String>,
}

impl Cx<'_> {
    fn error(&mut self, message: impl Into<String>, span: Span, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(message, Some(span)).help(help));
    }

    /// Replace `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`.
    fn interpolate(&mut self, text: &str, span: &Span) -> String {
        if !text.contains("${") {
            return text.to_string();
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                self.error(
                    "unterminated `${` in a value",
                    span.clone(),
                    "close it as ${NAME}, or write $${ for a literal ${",
                );
                return text.to_string();
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                self.error(
                    format!("`${{{inner}}}` is not a valid environment variable reference"),
                    span.clone(),
                    "use ${NAME} or ${NAME:-default}, NAME made of letters, digits and _",
                );
            } else {
                match (self.env)(name) {
                    Some(v) => {
                        self.secrets.push(v.clone());
                        out.push_str(&v);
                    }
                    None => match default {
                        Some(d) => out.push_str(d),
                        None => self.error(
                            format!("environment variable `{name}` is not set"),
                            span.clone(),
                            format!("export {name}=… before running deckhand, or give a default: ${{{name}:-value}}"),
                        ),
                    },
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn parse_int(v: &toml::de::DeInteger<'_>) -> Option<i64> {
    let s = v.as_str().replace('_', "");
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d.to_string()),
        None => (false, s.trim_start_matches('+').to_string()),
    };
    let digits = digits
        .trim_start_matches("0x")
        .trim_start_matches("0o")
        .trim_start_matches("0b")
        .to_string();
    let n = i64::from_str_radix(&digits, v.radix()).ok()?;
    Some(if neg { -n } else { n })
}

/// One TOML table being read: remembers which keys were used so the rest can be reported.
struct Obj<'a, 'i> {
    table: &'a DeTable<'i>,
    span: Span,
    what: String,
    used: BTreeSet<String>,
}

impl<'a, 'i> Obj<'a, 'i> {
    fn new(table: &'a DeTable<'i>, span: Span, what: impl Into<String>) -> Self {
        Obj {
            table,
            span,
            what: what.into(),
            used: BTreeSet::new(),
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a Val<'i>> {
        self.used.insert(key.to_string());
        self.table.get(key)
    }

    fn type_error(&self, cx: &mut Cx, key: &str, v: &Val<'_>, want: &str, example: &str) {
        cx.error(
            format!(
                "`{key}` in {} must be {want}, found {}",
                self.what,
                type_name(v.get_ref())
            ),
            v.span(),
            format!("write it like: {key} = {example}"),
        );
    }

    fn string(&mut self, cx: &mut Cx, key: &str, example: &str) -> Option<(String, Span)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((cx.interpolate(s, &v.span()), v.span())),
            _ => {
                self.type_error(cx, key, v, "a string", example);
                None
            }
        }
    }

    fn strings(&mut self, cx: &mut Cx, key: &str, example: &str) -> Option<Vec<(String, Span)>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(items) => Some(self.string_items(cx, key, items, example)),
            _ => {
                self.type_error(cx, key, v, "a list of strings", example);
                None
            }
        }
    }

    /// The strings of an array under `key`, interpolated, each with its span; any other item
    /// is reported and left out.
    fn string_items(
        &self,
        cx: &mut Cx,
        key: &str,
        items: &DeArray<'_>,
        example: &str,
    ) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((cx.interpolate(s, &item.span()), item.span())),
                _ => self.type_error(cx, key, item, "a list of strings", example),
            }
        }
        out
    }

    /// One word out of `options`, e.g. `window = "short"`; any other word is reported as not
    /// known, with `help` listing the choices. Absent, mistyped or unknown gives `None`.
    fn choice<T: Copy>(
        &mut self,
        cx: &mut Cx,
        key: &str,
        example: &str,
        options: &[(&str, T)],
        help: &str,
    ) -> Option<T> {
        let (word, span) = self.string(cx, key, example)?;
        let found = options.iter().find(|(w, _)| *w == word).map(|&(_, v)| v);
        if found.is_none() {
            cx.error(format!("{key} `{word}` is not known"), span, help);
        }
        found
    }

    fn int(&mut self, cx: &mut Cx, key: &str, min: i64, max: i64, example: &str) -> Option<i64> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match parse_int(i) {
                Some(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    cx.error(
                        format!("`{key}` in {} must be between {min} and {max}", self.what),
                        v.span(),
                        format!("write it like: {key} = {example}"),
                    );
                    None
                }
            },
            _ => {
                self.type_error(cx, key, v, "an integer", example);
                None
            }
        }
    }

    fn bool(&mut self, cx: &mut Cx, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(cx, key, v, "true or false", "true");
                None
            }
        }
    }

    fn duration(&mut self, cx: &mut Cx, key: &str, example: &str) -> Option<Duration> {
        let (text, span) = self.string(cx, key, example)?;
        match util::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(_) => {
                cx.error(
                    format!("`{key}` in {} is not a duration: \"{text}\"", self.what),
                    span,
                    format!("use a number with a unit (ms, s, m, h), e.g. {key} = {example}"),
                );
                None
            }
        }
    }

    fn table(
        &mut self,
        cx: &mut Cx,
        key: &str,
        what: String,
        example: &str,
    ) -> Option<Obj<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Obj::new(t, v.span(), what)),
            _ => {
                self.type_error(cx, key, v, "a table", example);
                None
            }
        }
    }

    /// Report every key that no getter asked for.
    fn finish(self, cx: &mut Cx, allowed: &[&str]) {
        for (k, _) in self.table.iter() {
            let name = k.get_ref().as_ref();
            if self.used.contains(name) {
                continue;
            }
            let help = match did_you_mean(name, allowed) {
                Some(s) => format!("did you mean `{s}`? allowed here: {}", allowed.join(", ")),
                None => format!("allowed here: {}", allowed.join(", ")),
            };
            cx.error(
                format!("unknown key `{name}` in {}", self.what),
                k.span(),
                help,
            );
        }
    }

    fn require<T>(&self, cx: &mut Cx, key: &str, value: Option<T>, example: &str) -> Option<T> {
        if value.is_none() && !self.table.contains_key(key) {
            cx.error(
                format!("{} is missing `{key}`", self.what),
                self.span.clone(),
                format!("add: {key} = {example}"),
            );
        }
        value
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
const CHECK_KEYS: &[&str] = &[
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
const CHECKLIST_KEYS: &[&str] = &["immediate", "short", "long", "interval", "auto_rollback"];
const NOTIFY_KEYS: &[&str] = &["slack", "teams", "webhook", "timeout", "retries"];
const APP_KEYS: &[&str] = &[
    "name",
    "deploy_path",
    "keep_releases",
    "shared_files",
    "shared_dirs",
    "script",
];
const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "jump",
    "known_hosts",
    "host_key_checking",
    "connect_timeout",
    "ssh_config",
    "key_exchange",
];
/// A node's own keys, then the `[ssh]` keys it may override.
const NODE_KEYS: &[&str] =
    &concat::<{ NODE_OWN_KEYS.len() + SSH_KEYS.len() }>(NODE_OWN_KEYS, SSH_KEYS);
const NODE_OWN_KEYS: &[&str] = &["host", "roles", "transport", "deploy_path", "lb_server"];
const ENV_KEYS: &[&str] = &[
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
const HEALTH_KEYS: &[&str] = &["run", "url", "expect", "timeout", "interval", "retries"];
/// A command balancer's keys, then those every balancer has.
const LB_KEYS: &[&str] = &concat::<{ LB_COMMAND_OWN_KEYS.len() + LB_COMMON_KEYS.len() }>(
    LB_COMMAND_OWN_KEYS,
    LB_COMMON_KEYS,
);
/// An HAProxy balancer's keys, then those every balancer has.
const LB_HAPROXY_KEYS: &[&str] = &concat::<{ LB_HAPROXY_OWN_KEYS.len() + LB_COMMON_KEYS.len() }>(
    LB_HAPROXY_OWN_KEYS,
    LB_COMMON_KEYS,
);
const LB_COMMAND_OWN_KEYS: &[&str] = &["type", "drain", "enable", "state"];
const LB_HAPROXY_OWN_KEYS: &[&str] = &["type", "socket", "backend", "via"];
const LB_COMMON_KEYS: &[&str] = &[
    "timeout",
    "drain_timeout",
    "drain_timeout_action",
    "min_healthy",
    "min_in_rotation",
];
const PHASE_KEYS: &[&str] = &[
    "name", "stage", "once", "roles", "where", "run", "function", "builtin", "upload", "timeout",
];

/// Two key lists as one, in order (the order is the one "allowed here:" lists them in).
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

fn read_root(cx: &mut Cx, file: &Path, root: &Spanned<DeTable<'_>>) -> Option<Inventory> {
    let mut top = Obj::new(root.get_ref(), root.span(), "the inventory");
    let app = match top.table(cx, "app", "[app]".into(), "{ name = \"myapp\" }") {
        Some(t) => read_app(cx, t),
        None => {
            if !root.get_ref().contains_key("app") {
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
            let s = read_ssh(cx, &mut t, None);
            t.finish(cx, SSH_KEYS);
            s
        }
        None => default_ssh(),
    };
    let theme = top.string(cx, "theme", "\"dark\"").map(|(s, _)| s);

    let nodes = read_named_tables(
        cx,
        &mut top,
        "nodes",
        "{ web-1 = { host = \"10.0.0.1\" } }",
        "host = \"…\"",
        |cx, obj, name, span| read_node(cx, obj, name, span, &ssh_defaults, app.as_ref()),
    );
    let environments = read_named_tables(
        cx,
        &mut top,
        "environments",
        "{ production = { … } }",
        "nodes = [\"…\"]",
        |cx, obj, name, span| read_environment(cx, obj, name, span, &nodes),
    );
    let phases = read_table_array(
        cx,
        &mut top,
        "phases",
        "phase",
        "write each phase as [[phases]] with name = \"…\" and run = \"…\"",
        read_phase,
    );
    let checks = read_table_array(
        cx,
        &mut top,
        "checks",
        "check",
        "write each check as [[checks]] with name, window and a probe",
        read_check,
    );
    let checklist = match top.table(
        cx,
        "checklist",
        "[checklist]".into(),
        "{ immediate = \"5m\" }",
    ) {
        Some(mut c) => {
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
        None => Checklist::default(),
    };
    let notify = match top.table(
        cx,
        "notify",
        "[notify]".into(),
        "{ slack = \"${SLACK_WEBHOOK_URL}\" }",
    ) {
        Some(mut n) => {
            let url = |cx: &mut Cx, n: &mut Obj, key: &str| {
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
        None => Notify::default(),
    };
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

/// A table of named tables, `[section.NAME]`: `read` gets each one with its name and the span
/// of that name; a value that is not a table is reported, with `under` as what belongs in it.
fn read_named_tables<T>(
    cx: &mut Cx,
    top: &mut Obj,
    section: &str,
    example: &str,
    under: &str,
    mut read: impl FnMut(&mut Cx, Obj, &str, Span) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    let Some(t) = top.table(cx, section, format!("[{section}]"), example) else {
        return out;
    };
    for (k, v) in t.table.iter() {
        let name = k.get_ref().to_string();
        let what = format!("[{section}.{name}]");
        match v.get_ref() {
            DeValue::Table(st) => {
                if let Some(x) = read(cx, Obj::new(st, k.span(), what), &name, k.span()) {
                    out.push(x);
                }
            }
            other => cx.error(
                format!("{what} must be a table, found {}", type_name(other)),
                v.span(),
                format!("write it as [{section}.{name}] with {under} under it"),
            ),
        }
    }
    out
}

/// An array of tables, `[[key]]`: each is read as "`noun` `NAME`" (from its `name`), or
/// "`noun` #N" when it has none; `help` says how to write one.
fn read_table_array<T>(
    cx: &mut Cx,
    top: &mut Obj,
    key: &str,
    noun: &str,
    help: &str,
    mut read: impl FnMut(&mut Cx, Obj) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    let Some(v) = top.get(key) else {
        return out;
    };
    let DeValue::Array(items) = v.get_ref() else {
        cx.error(
            format!(
                "`{key}` must be an array of tables, found {}",
                type_name(v.get_ref())
            ),
            v.span(),
            help,
        );
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        match item.get_ref() {
            DeValue::Table(t) => {
                let label = t
                    .get("name")
                    .and_then(|n| n.get_ref().as_str())
                    .map(|n| format!("{noun} `{n}`"))
                    .unwrap_or_else(|| format!("{noun} #{}", i + 1));
                if let Some(x) = read(cx, Obj::new(t, item.span(), label)) {
                    out.push(x);
                }
            }
            other => cx.error(
                format!(
                    "each entry of {key} must be a table, found {}",
                    type_name(other)
                ),
                item.span(),
                help,
            ),
        }
    }
    out
}

fn read_bound(cx: &mut Cx, t: &mut Obj, key: &str) -> Option<f64> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::Integer(i) => parse_int(i).map(|n| n as f64),
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        _ => {
            t.type_error(cx, key, v, "a number", "0.001");
            None
        }
    }
}

fn read_check(cx: &mut Cx, mut t: Obj) -> Option<Check> {
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
    let what = t.what.clone();
    let span = t.span.clone();
    let mut probes: Vec<(Probe, Span)> = Vec::new();
    if let Some(mut h) = t.table(
        cx,
        "http",
        format!("the http probe of {what}"),
        "{ url = \"http://{host}/up\" }",
    ) {
        let url = h.string(cx, "url", "\"http://{host}:8080/up\"");
        let url = h.require(cx, "url", url, "\"http://{host}:8080/up\"");
        let expect = h.int(cx, "expect", 100, 599, "200").unwrap_or(200) as u16;
        let max_latency = h.duration(cx, "max_latency", "\"500ms\"");
        let body = h.string(cx, "body", "\"ok\"").map(|(b, _)| b);
        let sp = h.span.clone();
        h.finish(cx, &["url", "expect", "max_latency", "body"]);
        if let Some((u, usp)) = url {
            check_placeholders(cx, &u, usp);
            probes.push((
                Probe::Http {
                    url: u,
                    expect,
                    max_latency,
                    body,
                },
                sp,
            ));
        }
    }
    let run = t.string(cx, "run", "\"php artisan queue:monitor\"");
    let on = t.string(cx, "on", "\"migrator\"").map(|(o, _)| o);
    let min = read_bound(cx, &mut t, "min");
    let max = read_bound(cx, &mut t, "max");
    if let Some((r, sp)) = run {
        check_placeholders(cx, &r, sp.clone());
        probes.push((
            Probe::Command {
                run: r,
                on,
                min,
                max,
            },
            sp,
        ));
    }
    if let Some(mut p) = t.table(
        cx,
        "prometheus",
        format!("the prometheus probe of {what}"),
        "{ url = \"http://127.0.0.1:9090\", query = \"…\" }",
    ) {
        let url = p.string(cx, "url", "\"http://127.0.0.1:9090\"");
        let url = p.require(cx, "url", url, "\"http://127.0.0.1:9090\"");
        let query = p.string(cx, "query", "\"sum(rate(errors[5m]))\"");
        let query = p.require(cx, "query", query, "\"sum(rate(errors[5m]))\"");
        let pmin = read_bound(cx, &mut p, "min");
        let pmax = read_bound(cx, &mut p, "max");
        let sp = p.span.clone();
        p.finish(cx, &["url", "query", "min", "max"]);
        if let (Some((u, _)), Some((q, _))) = (url, query) {
            probes.push((
                Probe::Prometheus {
                    url: u,
                    query: q,
                    min: pmin,
                    max: pmax,
                },
                sp,
            ));
        }
    }
    if t.bool(cx, "manual") == Some(true) {
        probes.push((Probe::Manual, span.clone()));
    }
    let on_fail = match t.get("on_fail") {
        None => OnFail::Tree,
        Some(v) => match v.get_ref() {
            DeValue::String(s) if s.as_ref() == "alert" => OnFail::Alert,
            DeValue::String(s) if s.as_ref() == "rollback" => OnFail::Rollback,
            DeValue::Table(tt) => {
                let mut o = Obj::new(tt, v.span(), format!("on_fail of {what}"));
                let r = o.string(cx, "run", "\"scale-up.sh\"");
                o.finish(cx, &["run"]);
                match r {
                    Some((r, sp)) => {
                        check_placeholders(cx, &r, sp);
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
        },
    };
    t.finish(cx, CHECK_KEYS);
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

fn read_app(cx: &mut Cx, mut t: Obj) -> Option<App> {
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
    t.finish(cx, APP_KEYS);
    Some(App {
        name: name?.0,
        deploy_path: deploy_path?.0,
        keep_releases: keep,
        shared_files: shared_files.into_iter().map(|(s, _)| s).collect(),
        shared_dirs: shared_dirs.into_iter().map(|(s, _)| s).collect(),
        script,
    })
}

fn check_deploy_path(cx: &mut Cx, p: &str, span: Span) {
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

fn default_ssh() -> SshSettings {
    SshSettings {
        user: None,
        port: None,
        identity_file: None,
        jump: Vec::new(),
        known_hosts: None,
        host_key_checking: HostKeyChecking::Strict,
        connect_timeout: Duration::from_secs(10),
        ssh_config: None,
        key_exchange: KeyExchange::Auto,
    }
}

/// Read SSH keys from a table, laid over `base` (the `[ssh]` defaults for a node). The caller
/// finishes the table: a node's has keys of its own besides these.
fn read_ssh(cx: &mut Cx, t: &mut Obj, base: Option<&SshSettings>) -> SshSettings {
    let mut s = base.cloned().unwrap_or_else(default_ssh);
    if let Some((u, _)) = t.string(cx, "user", "\"deploy\"") {
        s.user = Some(u);
    }
    if let Some(p) = t.int(cx, "port", 1, 65535, "22") {
        s.port = Some(p as u16);
    }
    if let Some((f, _)) = t.string(cx, "identity_file", "\"~/.ssh/id_ed25519\"") {
        s.identity_file = Some(f);
    }
    if let Some(v) = t.get("jump") {
        // Each hop with the span an error about it points at: the whole string, or its item.
        let hops: Vec<(String, Span)> = match v.get_ref() {
            DeValue::String(j) => cx
                .interpolate(j, &v.span())
                .split(',')
                .map(|h| (h.trim().to_string(), v.span()))
                .filter(|(h, _)| !h.is_empty())
                .collect(),
            DeValue::Array(items) => {
                t.string_items(cx, "jump", items, "[\"ops@bastion.example.com:22\"]")
            }
            _ => {
                t.type_error(
                    cx,
                    "jump",
                    v,
                    "a string or a list of hops",
                    "\"ops@bastion:22\"",
                );
                Vec::new()
            }
        };
        for (hop, sp) in &hops {
            if !util::valid_jump_hop(hop) {
                cx.error(
                    format!("jump host `{hop}` is not of the form user@host:port"),
                    sp.clone(),
                    "e.g. jump = \"ops@bastion.example.com:22\"",
                );
            }
        }
        s.jump = hops.into_iter().map(|(h, _)| h).collect();
    }
    if let Some((k, _)) = t.string(cx, "known_hosts", "\"~/.ssh/known_hosts\"") {
        s.known_hosts = Some(k);
    }
    if let Some(h) = t.choice(
        cx,
        "host_key_checking",
        "\"strict\"",
        &[
            ("strict", HostKeyChecking::Strict),
            ("accept-new", HostKeyChecking::AcceptNew),
        ],
        "use \"strict\" (the default) or \"accept-new\"",
    ) {
        s.host_key_checking = h;
    }
    if let Some(d) = t.duration(cx, "connect_timeout", "\"10s\"") {
        s.connect_timeout = d;
    }
    if let Some((c, _)) = t.string(cx, "ssh_config", "\"~/.ssh/config\"") {
        s.ssh_config = Some(c);
    }
    if let Some(k) = t.choice(
        cx,
        "key_exchange",
        "\"auto\"",
        &[
            ("auto", KeyExchange::Auto),
            ("openssh", KeyExchange::Openssh),
            ("post-quantum", KeyExchange::PostQuantum),
        ],
        "use \"auto\" (the default), \"openssh\" or \"post-quantum\"",
    ) {
        s.key_exchange = k;
    }
    s
}

fn read_node(
    cx: &mut Cx,
    mut t: Obj,
    name: &str,
    span: Span,
    ssh_defaults: &SshSettings,
    app: Option<&App>,
) -> Option<Node> {
    if !util::valid_name(name) {
        cx.error(
            format!("node name `{name}` is not a valid name"),
            span.clone(),
            "use letters, digits, '.', '_', '+' or '-', starting with a letter or digit",
        );
    }
    let transport = match t.string(cx, "transport", "\"ssh\"") {
        None => TransportKind::Ssh,
        Some((s, sp)) => match s.as_str() {
            "ssh" => TransportKind::Ssh,
            "local" => TransportKind::Local,
            other => {
                cx.error(
                    format!("transport `{other}` of node `{name}` is not known"),
                    sp,
                    "use \"ssh\" (the default) or \"local\"",
                );
                TransportKind::Ssh
            }
        },
    };
    let host = t.string(cx, "host", "\"10.0.1.11\"");
    if let Some((h, sp)) = &host {
        let ok = !h.is_empty()
            && !h.starts_with('-')
            && h.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
            });
        if !ok {
            cx.error(
                format!("host `{h}` of node `{name}` is not a host name or address"),
                sp.clone(),
                "use a DNS name or an IP address, e.g. host = \"10.0.1.11\"",
            );
        }
    }
    if host.is_none() && transport == TransportKind::Ssh && !t.table.contains_key("host") {
        cx.error(
            format!("node `{name}` has no `host`"),
            span.clone(),
            "add host = \"…\" (its address), or transport = \"local\" for a node on this machine",
        );
    }
    let roles = t.strings(cx, "roles", "[\"app\"]").unwrap_or_default();
    for (r, sp) in &roles {
        if !util::valid_name(r) {
            cx.error(
                format!("role `{r}` is not a valid name"),
                sp.clone(),
                "use letters, digits, '.', '_', '+' or '-'",
            );
        }
    }
    let deploy_path = t.string(cx, "deploy_path", "\"/var/www/myapp\"");
    if let Some((p, sp)) = &deploy_path {
        check_deploy_path(cx, p, sp.clone());
    }
    let lb_server = t.string(cx, "lb_server", "\"web1\"").map(|(s, _)| s);
    let ssh = read_ssh(cx, &mut t, Some(ssh_defaults));
    t.finish(cx, NODE_KEYS);
    let deploy_path = deploy_path
        .map(|(p, _)| p)
        .or_else(|| app.map(|a| a.deploy_path.clone()))?;
    Some(Node {
        name: name.to_string(),
        host: host.map(|(h, _)| h).unwrap_or_else(|| "127.0.0.1".into()),
        roles: roles.into_iter().map(|(r, _)| r).collect(),
        transport,
        deploy_path,
        ssh,
        lb_server: lb_server.unwrap_or_else(|| name.to_string()),
    })
}

fn parse_share(text: &str) -> Option<f64> {
    let n: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    (n > 0.0 && n <= 100.0).then_some(n)
}

fn read_batch_entry(cx: &mut Cx, v: &Val<'_>) -> Option<BatchSize> {
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

fn read_environment(
    cx: &mut Cx,
    mut t: Obj,
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
    let mut members: Vec<String> = Vec::new();
    let listed = t.strings(cx, "nodes", "[\"web-1\", \"web-2\"]");
    if let Some(listed) = &listed {
        let mut seen = BTreeSet::new();
        for (n, sp) in listed {
            if !seen.insert(n.clone()) {
                cx.error(
                    format!("node `{n}` is listed twice in environment `{name}`"),
                    sp.clone(),
                    "list each node once",
                );
                continue;
            }
            if nodes.iter().any(|x| &x.name == n) {
                members.push(n.clone());
            } else {
                let names: Vec<&str> = nodes.iter().map(|x| x.name.as_str()).collect();
                let help = match did_you_mean(n, &names) {
                    Some(s) => format!("did you mean `{s}`? or define it under [nodes.{n}]"),
                    None => format!("define it under [nodes.{n}], or remove it from the list"),
                };
                cx.error(
                    format!("environment `{name}` uses node `{n}`, which is not defined"),
                    sp.clone(),
                    help,
                );
            }
        }
    }
    let roles = t.strings(cx, "roles", "[\"app\"]");
    if let Some(roles) = &roles {
        for (r, sp) in roles {
            let holders: Vec<&Node> = nodes.iter().filter(|n| n.roles.contains(r)).collect();
            if holders.is_empty() {
                cx.error(
                    format!("environment `{name}` selects role `{r}`, which no node has"),
                    sp.clone(),
                    format!("add roles = [\"{r}\"] to a node, or fix the role name"),
                );
            }
            for n in holders {
                if !members.contains(&n.name) {
                    members.push(n.name.clone());
                }
            }
        }
    }
    if listed.is_none()
        && roles.is_none()
        && !t.table.contains_key("nodes")
        && !t.table.contains_key("roles")
    {
        cx.error(
            format!("environment `{name}` has no nodes"),
            span.clone(),
            "add nodes = [\"web-1\", …] or roles = [\"app\"]",
        );
    } else if members.is_empty()
        && listed.as_ref().map(|l| l.is_empty()).unwrap_or(true)
        && roles.as_ref().map(|r| r.is_empty()).unwrap_or(true)
    {
        cx.error(
            format!("environment `{name}` has no nodes"),
            span.clone(),
            "list at least one node in nodes = [\"web-1\", …] or roles = [\"app\"]",
        );
    }
    // Plan order is the order of [nodes.*] in the file.
    members.sort_by_key(|m| nodes.iter().position(|n| &n.name == m));

    let strategy_word = t.string(cx, "strategy", "\"rolling\"");
    let strategy = match strategy_word
        .as_ref()
        .map(|(s, sp)| (s.as_str(), sp.clone()))
    {
        None | Some(("rolling", _)) => Strategy::Rolling,
        Some(("blue-green", sp)) => read_groups(cx, &mut t, name, sp, nodes, &members),
        Some(("canary", sp)) => read_canary(cx, &mut t, name, sp),
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
                .filter_map(|i| read_batch_entry(cx, i))
                .collect(),
            DeValue::Array(_) => {
                cx.error(
                    "batches is empty",
                    v.span(),
                    "e.g. batches = [1, \"50%\", \"100%\"], or a single number",
                );
                vec![BatchSize::Count(1)]
            }
            _ => read_batch_entry(cx, v).map(|b| vec![b]).unwrap_or_default(),
        },
    };
    let max_fail = match t.get("max_fail") {
        None => 0.0,
        Some(v) => {
            let count = match v.get_ref() {
                DeValue::Integer(i) => parse_int(i).filter(|n| *n >= 0),
                _ => None,
            };
            match (v.get_ref(), count) {
                (DeValue::String(s), _) if s.trim() == "0%" || s.trim() == "0" => 0.0,
                (DeValue::String(s), _) => match parse_share(s) {
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
                    let total = members.len().max(1) as f64;
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
    };
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
        .and_then(|h| read_health(cx, h));
    let load_balancers = match t.get("load_balancer") {
        None => Vec::new(),
        Some(v) => match v.get_ref() {
            DeValue::Table(lt) => read_balancer(
                cx,
                Obj::new(lt, v.span(), format!("the load balancer of `{name}`")),
            )
            .into_iter()
            .collect(),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item.get_ref() {
                    DeValue::Table(lt) => read_balancer(
                        cx,
                        Obj::new(
                            lt,
                            item.span(),
                            format!("load balancer #{} of `{name}`", i + 1),
                        ),
                    ),
                    other => {
                        cx.error(
                            format!(
                                "each load balancer must be a table, found {}",
                                type_name(other)
                            ),
                            item.span(),
                            "write [[environments.NAME.load_balancer]] tables",
                        );
                        None
                    }
                })
                .collect(),
            other => {
                cx.error(
                    format!("`load_balancer` must be a table, found {}", type_name(other)),
                    v.span(),
                    "write [environments.NAME.load_balancer] with socket/backend (HAProxy) or drain/enable (commands)",
                );
                Vec::new()
            }
        },
    };
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
    t.finish(cx, ENV_KEYS);
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
    })
}

fn read_health(cx: &mut Cx, mut t: Obj) -> Option<Health> {
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
    t.finish(cx, HEALTH_KEYS);
    let probe = match (run, url) {
        (Some((r, sp)), None) => {
            check_placeholders(cx, &r, sp);
            HealthProbe::Run(r)
        }
        (None, Some((u, sp))) => {
            check_placeholders(cx, &u, sp.clone());
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

fn read_balancer(cx: &mut Cx, mut t: Obj) -> Option<Balancer> {
    let kind_word = t.string(cx, "type", "\"haproxy\"");
    let is_haproxy = match &kind_word {
        Some((k, sp)) => match k.as_str() {
            "haproxy" => true,
            "command" => false,
            other => {
                cx.error(
                    format!("load balancer type `{other}` is not known"),
                    sp.clone(),
                    "use \"haproxy\" or \"command\"",
                );
                return None;
            }
        },
        None => t.table.contains_key("socket") || t.table.contains_key("backend"),
    };
    let kind = if is_haproxy {
        let socket = t.string(cx, "socket", "\"/run/haproxy/admin.sock\"");
        let socket = t.require(cx, "socket", socket, "\"/run/haproxy/admin.sock\"");
        let backend = t.string(cx, "backend", "\"app\"");
        let backend = t.require(cx, "backend", backend, "\"app\"");
        let via = t
            .string(cx, "via", "\"local\"")
            .map(|(v, _)| v)
            .unwrap_or_else(|| "local".into());
        if let Some((sock, sp)) = &socket {
            if !sock.starts_with('/') {
                cx.error(
                    format!("HAProxy socket `{sock}` must be an absolute path"),
                    sp.clone(),
                    "e.g. socket = \"/run/haproxy/admin.sock\"",
                );
            }
        }
        BalancerKind::Haproxy(HaproxyBalancer {
            socket: socket?.0,
            backend: backend?.0,
            via,
        })
    } else {
        let drain = t.string(cx, "drain", "\"…\"");
        let drain = t.require(cx, "drain", drain, "\"my-lb drain {node}\"");
        let enable = t.string(cx, "enable", "\"…\"");
        let enable = t.require(cx, "enable", enable, "\"my-lb enable {node}\"");
        let state = t.string(cx, "state", "\"my-lb state {node}\"");
        for (cmd, sp) in [&drain, &enable, &state].into_iter().flatten() {
            check_placeholders(cx, cmd, sp.clone());
        }
        BalancerKind::Command(CommandBalancer {
            drain: drain?.0,
            enable: enable?.0,
            state: state.map(|(s, _)| s),
        })
    };
    let timeout = t
        .duration(cx, "timeout", "\"30s\"")
        .unwrap_or(Duration::from_secs(30));
    let drain_timeout = t
        .duration(cx, "drain_timeout", "\"30s\"")
        .unwrap_or(Duration::from_secs(30));
    let drain_timeout_action = t
        .choice(
            cx,
            "drain_timeout_action",
            "\"proceed\"",
            &[
                ("proceed", DrainTimeoutAction::Proceed),
                ("fail", DrainTimeoutAction::Fail),
            ],
            "use \"proceed\" (default) or \"fail\"",
        )
        .unwrap_or(DrainTimeoutAction::Proceed);
    let min_healthy = t
        .duration(cx, "min_healthy", "\"5s\"")
        .unwrap_or(Duration::ZERO);
    let min_in_rotation = t.int(cx, "min_in_rotation", 0, 100_000, "1").unwrap_or(1) as usize;
    let allowed: &[&str] = if is_haproxy { LB_HAPROXY_KEYS } else { LB_KEYS };
    t.finish(cx, allowed);
    Some(Balancer {
        kind,
        timeout,
        drain_timeout,
        drain_timeout_action,
        min_healthy,
        min_in_rotation,
    })
}

fn read_groups(
    cx: &mut Cx,
    t: &mut Obj,
    env: &str,
    sp: Span,
    nodes: &[Node],
    members: &[String],
) -> Strategy {
    let Some(v) = t.get("groups") else {
        cx.error(
            format!("environment `{env}` uses blue-green but has no `groups`"),
            sp,
            "add groups = { blue = [\"web-1\", \"web-2\"], green = [\"web-3\", \"web-4\"] }",
        );
        return Strategy::Rolling;
    };
    let DeValue::Table(gt) = v.get_ref() else {
        cx.error(
            "`groups` must be a table of two node lists",
            v.span(),
            "e.g. groups = { blue = [\"web-1\"], green = [\"web-2\"] }",
        );
        return Strategy::Rolling;
    };
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (k, gv) in gt.iter() {
        let mut list = Vec::new();
        match gv.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref().as_str() {
                        Some(n) if !nodes.iter().any(|x| x.name == n) => cx.error(
                            format!(
                                "group `{}` names node `{n}`, which is not defined",
                                k.get_ref()
                            ),
                            item.span(),
                            format!("define it under [nodes.{n}]"),
                        ),
                        Some(n) if !members.iter().any(|m| m == n) => cx.error(
                            format!(
                                "group `{}` names node `{n}`, which is not in environment `{env}`",
                                k.get_ref()
                            ),
                            item.span(),
                            "add it to the environment's nodes, or remove it from the group",
                        ),
                        Some(n) if seen.iter().any(|x| x == n) => cx.error(
                            format!("node `{n}` is in two groups"),
                            item.span(),
                            "a node belongs to one group",
                        ),
                        Some(n) => {
                            seen.push(n.to_string());
                            list.push(n.to_string());
                        }
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
        groups.push((k.get_ref().to_string(), list));
    }
    if groups.len() != 2 || groups.iter().any(|(_, l)| l.is_empty()) {
        cx.error(
            "blue-green needs exactly two non-empty groups",
            v.span(),
            "e.g. groups = { blue = [\"web-1\"], green = [\"web-2\"] }",
        );
    }
    let missing: Vec<&String> = members.iter().filter(|m| !seen.contains(m)).collect();
    if !missing.is_empty() {
        cx.error(
            format!(
                "nodes of `{env}` in no group: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            v.span(),
            "put every node of the environment in one of the two groups",
        );
    }
    Strategy::BlueGreen { groups }
}

fn read_canary(cx: &mut Cx, t: &mut Obj, env: &str, sp: Span) -> Strategy {
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
        let mut o = Obj::new(st, item.span(), "a canary step".to_string());
        let nodes = o.get("nodes").and_then(|nv| read_batch_entry(cx, nv));
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

/// Report `{name}` placeholders that are not known, pointing into the string when possible.
fn check_placeholders(cx: &mut Cx, text: &str, span: Span) {
    for (name, offset) in util::unknown_placeholders(text) {
        // Point at the placeholder when the string is a plain one-line literal.
        let start = span.start + 1 + offset;
        let sp = if start + name.len() + 2 <= span.end {
            start..start + name.len() + 2
        } else {
            span.clone()
        };
        let help = match did_you_mean(&name, util::PLACEHOLDERS) {
            Some(s) => format!(
                "did you mean {{{s}}}? known: {}; write {{{{ for a literal brace",
                known()
            ),
            None => format!(
                "known placeholders: {}; write {{{{ for a literal brace",
                known()
            ),
        };
        cx.error(format!("unknown placeholder `{{{name}}}`"), sp, help);
    }
}

fn known() -> String {
    util::PLACEHOLDERS
        .iter()
        .map(|p| format!("{{{p}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_phase(cx: &mut Cx, mut t: Obj) -> Option<Phase> {
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
    t.finish(cx, PHASE_KEYS);

    let mut actions = Vec::new();
    if let Some((r, sp)) = run {
        check_placeholders(cx, &r, sp.clone());
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
            check_placeholders(cx, &f, fsp);
            check_placeholders(cx, &to, tsp);
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
