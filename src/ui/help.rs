//! The `?` help overlay and the footer line. Both are generated from the key table in
//! `keys.rs`, so they can never disagree with what the keys do. Keys that do not apply right
//! now are shown dimmed in the help and left out of the footer.
//!
//! Draws only; handles no key.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use super::app::App;
use super::keys::{self, Scope, When, BINDINGS};

const SECTIONS: [(Scope, &str); 5] = [
    (Scope::Main, "Console"),
    (Scope::Confirm, "Roll back / abort dialog"),
    (Scope::QuitDialog, "Quitting while deploying"),
    (Scope::Output, "Node output"),
    (Scope::Help, "This help"),
];

/// One help row: the keys (joined when several bindings share a sentence), the sentence, and
/// whether it applies now.
fn rows(app: &App, scope: Scope) -> Vec<(String, &'static str, bool)> {
    let mut out: Vec<(String, &'static str, bool)> = Vec::new();
    for b in BINDINGS.iter().filter(|b| b.scope == scope) {
        // Replay keys only matter while replaying, and the live keys only while live.
        if b.when == When::Replay && !app.replay {
            continue;
        }
        let live = keys::applies(app, b.when);
        match out.last_mut() {
            Some(last) if last.1 == b.help => {
                last.0 = format!("{} {}", last.0, b.shown);
                last.2 |= live;
            }
            _ => out.push((b.shown.to_string(), b.help, live)),
        }
    }
    out
}

fn section<'a>(app: &App, scope: Scope, heading: &'a str, key_w: usize) -> Vec<Line<'a>> {
    let th = &app.theme;
    let mut lines = vec![Line::from(Span::styled(heading, th.get("accent")))];
    for (shown, help, live) in rows(app, scope) {
        let (ks, ts) = if live {
            (th.get("key"), th.get("text"))
        } else {
            (th.get("dim"), th.get("dim"))
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {shown:<key_w$}"), ks),
            Span::styled(help, ts),
        ]));
    }
    lines
}

pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    // Over the whole body, between the header and the footer.
    let rect = Rect {
        x: area.x,
        y: area.y + 2,
        width: area.width,
        height: area.height.saturating_sub(4),
    };
    Clear.render(rect, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(app.glyphs.border)
        .border_style(th.get("border_focus"))
        .style(th.get("background"))
        .title(Span::styled(" Keys ", th.get("title")));
    let inner = block.inner(rect);
    block.render(rect, buf);

    let key_w = 12;
    // Wide enough: the console's keys on the left, the other layers on the right.
    let two = inner.width >= 110;
    let mut columns: Vec<Vec<Line>> = vec![Vec::new()];
    for (i, (scope, heading)) in SECTIONS.iter().enumerate() {
        if two && i == 1 {
            columns.push(Vec::new());
        }
        let last = columns.len() - 1;
        let col = &mut columns[last];
        if !col.is_empty() {
            col.push(Line::raw(""));
        }
        col.extend(section(app, *scope, heading, key_w));
    }
    if let Some(col) = columns.last_mut() {
        col.push(Line::raw(""));
        col.push(Line::from(Span::styled(
            "Dimmed keys do not apply right now.",
            th.get("dim"),
        )));
        col.push(Line::from(Span::styled(
            "Themes: t, or --theme NAME|FILE.",
            th.get("dim"),
        )));
    }
    let n = columns.len() as u16;
    let col_w = inner.width / n;
    for (i, col) in columns.into_iter().enumerate() {
        let r = Rect {
            x: inner.x + 1 + col_w * i as u16,
            y: inner.y,
            width: col_w.saturating_sub(1),
            height: inner.height,
        };
        Paragraph::new(col)
            .wrap(Wrap { trim: false })
            .render(r, buf);
    }
}

/// Footer words dropped first when the line is too narrow (the rest stay).
const DROP_FIRST: [&str; 6] = ["select", "focus", "older", "filter", "all nodes", "log"];

/// The footer: the keys that apply now, from the same table, within `width` columns.
pub(crate) fn footer_line(app: &App, width: usize) -> Line<'static> {
    let th = &app.theme;
    let mut entries = keys::footer(app, keys::scope(app));
    let watching = app
        .watch
        .as_ref()
        .filter(|_| keys::scope(app) == keys::Scope::Main)
        .map(|whose| format!(" WATCHING {whose} · read-only "));
    let prefix = watching
        .as_ref()
        .map(|w| w.chars().count() + 2)
        .unwrap_or(0);
    let len = |e: &Vec<(&str, String)>| {
        prefix
            + e.iter()
                .map(|(k, w)| k.chars().count() + 1 + w.chars().count() + 2)
                .sum::<usize>()
    };
    for word in DROP_FIRST {
        if len(&entries) <= width {
            break;
        }
        entries.retain(|(_, w)| w != word);
    }
    let mut spans = Vec::new();
    if let Some(w) = watching {
        // Whose run this is, first: this console only looks.
        spans.push(Span::styled(w, th.get("mode_paused")));
        spans.push(Span::styled("  ", th.get("dim")));
    }
    for (i, (shown, word)) in entries.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("  ", th.get("dim")));
        }
        spans.push(Span::styled(shown, th.get("key")));
        spans.push(Span::styled(format!(" {word}"), th.get("dim")));
    }
    Line::from(spans)
}
