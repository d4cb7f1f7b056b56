//! Reading one TOML table: typed getters that check a key's value type (string, integer in a
//! range, boolean, duration, one word of a list, sub-table), remember which keys were asked for,
//! and report the rest as unknown with a "did you mean". Also the two shapes sections come in:
//! named tables (`[nodes.NAME]`) and arrays of tables (`[[phases]]`).
//!
//! A getter reports a wrong value and returns `None`, so the section goes on and the defaults
//! apply; it never decides what a value means beyond its type. Messages name the key, the table
//! (`what`), the type wanted and the type found, and show how to write it.

use std::collections::BTreeSet;
use std::time::Duration;

use toml::de::{DeArray, DeInteger, DeTable, DeValue};
use toml::Spanned;

use super::Cx;
use crate::diag::did_you_mean;
use crate::inventory::model::Span;
use crate::util;

/// A value of the TOML tree, with the bytes it came from.
pub(super) type Val<'i> = Spanned<DeValue<'i>>;

/// How a value's type is named in messages.
pub(super) fn type_name(v: &DeValue<'_>) -> &'static str {
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

/// A TOML integer as written (any radix, `_` separators), if it fits an `i64`.
pub(super) fn parse_int(v: &DeInteger<'_>) -> Option<i64> {
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

/// Two key lists as one, in order (the order is the one "allowed here:" lists them in).
pub(super) const fn concat<const N: usize>(
    a: &[&'static str],
    b: &[&'static str],
) -> [&'static str; N] {
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

/// One TOML table being read: remembers which keys were used so the rest can be reported.
pub(super) struct Table<'a, 'i> {
    pub(super) table: &'a DeTable<'i>,
    pub(super) span: Span,
    /// How messages name this table: "[app]", "[nodes.web-1]", "check `p99`".
    pub(super) what: String,
    used: BTreeSet<String>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn new(table: &'a DeTable<'i>, span: Span, what: impl Into<String>) -> Self {
        Table {
            table,
            span,
            what: what.into(),
            used: BTreeSet::new(),
        }
    }

    /// The raw value under `key`, marking the key as known.
    pub(super) fn get(&mut self, key: &str) -> Option<&'a Val<'i>> {
        self.used.insert(key.to_string());
        self.table.get(key)
    }

    /// Whether the file wrote `key` here at all (whatever its value).
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// "`key` in WHAT must be WANT, found TYPE", with a line to copy.
    pub(super) fn type_error(
        &self,
        cx: &mut Cx,
        key: &str,
        v: &Val<'_>,
        want: &str,
        example: &str,
    ) {
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

    /// A string, with `${VAR}` filled in, and its span.
    pub(super) fn string(
        &mut self,
        cx: &mut Cx,
        key: &str,
        example: &str,
    ) -> Option<(String, Span)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((cx.interpolate(s, &v.span()), v.span())),
            _ => {
                self.type_error(cx, key, v, "a string", example);
                None
            }
        }
    }

    /// A list of strings, each filled in and with its span.
    pub(super) fn strings(
        &mut self,
        cx: &mut Cx,
        key: &str,
        example: &str,
    ) -> Option<Vec<(String, Span)>> {
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
    pub(super) fn string_items(
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
    pub(super) fn choice<T: Copy>(
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

    /// An integer within `min..=max`.
    pub(super) fn int(
        &mut self,
        cx: &mut Cx,
        key: &str,
        min: i64,
        max: i64,
        example: &str,
    ) -> Option<i64> {
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

    /// A number, integer or float (a check's `min`/`max`).
    pub(super) fn number(&mut self, cx: &mut Cx, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => parse_int(i).map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
            _ => {
                self.type_error(cx, key, v, "a number", "0.001");
                None
            }
        }
    }

    pub(super) fn bool(&mut self, cx: &mut Cx, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(cx, key, v, "true or false", "true");
                None
            }
        }
    }

    /// A duration written as a string with a unit ("500ms", "30s", "5m", "2h").
    pub(super) fn duration(&mut self, cx: &mut Cx, key: &str, example: &str) -> Option<Duration> {
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

    /// A sub-table, read as `what` in messages.
    pub(super) fn table(
        &mut self,
        cx: &mut Cx,
        key: &str,
        what: String,
        example: &str,
    ) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, v.span(), what)),
            _ => {
                self.type_error(cx, key, v, "a table", example);
                None
            }
        }
    }

    /// Report every key that no getter asked for; `allowed` is listed in the help.
    pub(super) fn finish(self, cx: &mut Cx, allowed: &[&str]) {
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

    /// `value` as read; when the key is not there at all, report it as missing.
    pub(super) fn require<T>(
        &self,
        cx: &mut Cx,
        key: &str,
        value: Option<T>,
        example: &str,
    ) -> Option<T> {
        if value.is_none() && !self.has(key) {
            cx.error(
                format!("{} is missing `{key}`", self.what),
                self.span.clone(),
                format!("add: {key} = {example}"),
            );
        }
        value
    }

    /// A table of named tables, `[section.NAME]`: `read` gets each one with its name and the
    /// span of that name; a value that is not a table is reported, with `under` as what belongs
    /// in it.
    pub(super) fn named_tables<T>(
        &mut self,
        cx: &mut Cx,
        section: &str,
        example: &str,
        under: &str,
        mut read: impl FnMut(&mut Cx, Table, &str, Span) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        let Some(t) = self.table(cx, section, format!("[{section}]"), example) else {
            return out;
        };
        for (k, v) in t.table.iter() {
            let name = k.get_ref().to_string();
            let what = format!("[{section}.{name}]");
            match v.get_ref() {
                DeValue::Table(st) => {
                    if let Some(x) = read(cx, Table::new(st, k.span(), what), &name, k.span()) {
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
    pub(super) fn table_array<T>(
        &mut self,
        cx: &mut Cx,
        key: &str,
        noun: &str,
        help: &str,
        mut read: impl FnMut(&mut Cx, Table) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        let Some(v) = self.get(key) else {
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
                    if let Some(x) = read(cx, Table::new(t, item.span(), label)) {
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
}
