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
use super::keys::{self, Scope, BINDINGS};

const SECTIONS: [(Scope, &str); 5] = [
    (Scope::Main, "Console"),
    (Scope::Confirm, "Roll back / abort dialog"),
    (Scope::QuitDialog, "Quitting while deploying"),
    (Scope::Output, "Node output"),
    (Scope::Help, "This help"),
];

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let w = area.width.saturating_sub(8).min(96);
    let h = area.height.saturating_sub(4);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
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

    let key_w = BINDINGS
        .iter()
        .map(|b| b.shown.chars().count())
        .max()
        .unwrap_or(6)
        + 2;
    let mut lines: Vec<Line> = Vec::new();
    for (scope, heading) in SECTIONS {
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::from(Span::styled(heading, th.get("accent"))));
        let mut last_help = "";
        for b in BINDINGS.iter().filter(|b| b.scope == scope) {
            if b.help == last_help {
                continue;
            }
            last_help = b.help;
            let live = keys::applies(app, b.when);
            let (ks, ts) = if live {
                (th.get("key"), th.get("text"))
            } else {
                (th.get("dim"), th.get("dim"))
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<key_w$}", b.shown), ks),
                Span::styled(b.help, ts),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        "Dimmed keys do not apply right now. Themes: dark, light, high-contrast, monochrome (--theme).",
        th.get("dim"),
    )));
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
}

/// The footer: the keys that apply now, from the same table.
pub fn footer_line(app: &App) -> Line<'static> {
    let th = &app.theme;
    let mut spans = Vec::new();
    for (i, (shown, word)) in keys::footer(app, app.scope()).into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("  ", th.get("dim")));
        }
        spans.push(Span::styled(shown, th.get("key")));
        spans.push(Span::styled(format!(" {word}"), th.get("dim")));
    }
    Line::from(spans)
}
