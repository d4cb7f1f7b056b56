//! The post-deploy checklist pane, in the seed's three windows: immediate (0-5 minutes),
//! short-term (5-30 minutes) and long-term (30+ minutes). Items come from the run's declared
//! checks; their state and measured value from the engine's check results; manual items wait
//! for the operator's tick.
//!
//! Reads [`App`] only. It runs no probe and judges no result.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use crate::event::CheckStatus;

use super::app::App;
use super::model::{window_index, CheckView};

/// The three windows, in order: key as the inventory writes it, and the heading shown.
pub(crate) const WINDOWS: [(&str, &str); 3] = [
    ("immediate", "Immediate (0-5 minutes)"),
    ("short", "Short-term (5-30 minutes)"),
    ("long", "Long-term (30+ minutes)"),
];

fn window_of(c: &CheckView) -> usize {
    window_index(&c.info.window)
}

/// An item's glyph, status word and theme key. The status column is 8 wide: an item that
/// needs confirmation reads `confirm` there (its value says `space to tick`).
pub(crate) fn status_look(app: &App, s: CheckStatus) -> (&'static str, &'static str, &'static str) {
    let g = &app.glyphs;
    let (glyph, key) = match s {
        CheckStatus::Pending => (g.box_empty, "check_pending"),
        CheckStatus::Running => (g.spinner_frame(app.frame), "check_running"),
        CheckStatus::Pass => (g.ok, "check_pass"),
        CheckStatus::Fail => (g.fail, "check_fail"),
        CheckStatus::Unknown => (g.unknown, "check_unknown"),
        CheckStatus::NeedsConfirmation => (g.confirm, "check_confirm"),
    };
    let word = match s {
        CheckStatus::NeedsConfirmation => "confirm",
        _ => s.word(),
    };
    (glyph, word, key)
}

pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer, focused: bool) {
    let th = &app.theme;
    let border = if focused {
        th.get("border_focus")
    } else {
        th.get("border")
    };
    let passed = app
        .run()
        .checks
        .iter()
        .filter(|c| app.check_shown(c).0 == CheckStatus::Pass)
        .count();
    let left = app
        .run()
        .monitoring
        .as_ref()
        .map(|(w, ends)| (w, (ends - app.now()).max(0)))
        .filter(|(_, left)| *left > 0);
    let watching = match left {
        Some((window, left)) => format!(
            " {} watching {window} {}",
            app.glyphs.dot,
            super::model::clock(left)
        ),
        None => String::new(),
    };
    let title = format!(
        " Checklist {} {passed}/{} verified{watching} ",
        app.glyphs.dot,
        app.run().checks.len()
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(app.glyphs.border)
        .border_style(border)
        .title(Span::styled(title, th.get("title")));
    let inner = block.inner(area);
    block.render(area, buf);

    if app.run().checks.is_empty() {
        Paragraph::new(Line::from(Span::styled(
            " no [[checks]] declared for this environment",
            th.get("dim"),
        )))
        .render(inner, buf);
        return;
    }
    let width = inner.width as usize;
    // Names take what they need (up to what leaves room for a value); values the rest.
    let longest = app
        .run()
        .checks
        .iter()
        .map(|c| c.info.name.chars().count())
        .max()
        .unwrap_or(10);
    let name_w = longest
        .min(30)
        .min(width.saturating_sub(3 + 1 + 8 + 12))
        .max(10);
    let value_w = width.saturating_sub(3 + 1 + 8 + name_w);
    let mut lines: Vec<Line> = Vec::new();
    let mut selected_line = 0;
    for (w, (key, seed_heading)) in WINDOWS.iter().enumerate() {
        // The inventory's own window lengths when the run declared them, else the seed's.
        let declared = app
            .run()
            .info
            .as_ref()
            .and_then(|r| r.windows.iter().find(|(k, _)| k == key).map(|(_, ms)| *ms));
        let heading_owned = match declared {
            Some(0) => format!(
                "{} (skipped)",
                seed_heading.split(" (").next().unwrap_or(seed_heading)
            ),
            Some(ms) => format!(
                "{} ({})",
                seed_heading.split(" (").next().unwrap_or(seed_heading),
                humantime::format_duration(std::time::Duration::from_millis(ms))
            ),
            None => seed_heading.to_string(),
        };
        let heading = &heading_owned;
        let items: Vec<usize> = (0..app.run().checks.len())
            .filter(|&i| window_of(&app.run().checks[i]) == w)
            .collect();
        if items.is_empty() {
            continue;
        }
        let now = app
            .run()
            .monitoring
            .as_ref()
            .is_some_and(|(win, _)| window_index(win) == w);
        let heading_style = if now {
            th.get("accent").add_modifier(Modifier::BOLD)
        } else {
            th.get("accent")
        };
        let mark = if now { "  (now)" } else { "" };
        lines.push(Line::from(Span::styled(
            format!(" {heading}:{mark}"),
            heading_style,
        )));
        for i in items {
            let c = &app.run().checks[i];
            let (status, value) = app.check_shown(c);
            let (glyph, word, key) = status_look(app, status);
            let waiting = c.info.manual && status == CheckStatus::NeedsConfirmation;
            let value = if waiting && app.watching() {
                "by its operator".to_string()
            } else if waiting {
                "space to tick".to_string()
            } else {
                value.unwrap_or_default().to_string()
            };
            let value = super::grid::truncate(&value, value_w, &app.glyphs);
            let name = super::grid::truncate(&c.info.name, name_w, &app.glyphs);
            let mut name_style = th.get("text");
            if i == app.selected_check && focused {
                name_style = th.get("selection");
                selected_line = lines.len();
            } else if i == app.selected_check {
                name_style = name_style.add_modifier(Modifier::UNDERLINED);
                selected_line = lines.len();
            }
            let value_style = if waiting {
                th.get("dim")
            } else {
                th.get("text")
            };
            lines.push(Line::from(vec![
                Span::styled(format!(" {glyph} "), th.get(key)),
                Span::styled(format!("{name:<name_w$} "), name_style),
                Span::styled(format!("{word:<8}"), th.get(key)),
                Span::styled(value, value_style),
            ]));
        }
    }
    // The rollback tree's verdict keeps the bottom of the pane, wrapped over the lines it needs.
    let mut verdict_lines: Vec<Line> = Vec::new();
    if let Some((verdict, reason)) = &app.run().decision {
        let key = match verdict.as_str() {
            "rollback" => "check_fail",
            "alert" => "check_unknown",
            "unconfirmed" => "check_confirm",
            _ => "check_pass",
        };
        let text = format!("{verdict} {} {reason}", app.glyphs.dot);
        let avail = width.saturating_sub(12).max(10);
        let chars: Vec<char> = text.chars().collect();
        for (i, chunk) in chars.chunks(avail).enumerate() {
            let head = if i == 0 { " Decision: " } else { "           " };
            verdict_lines.push(Line::from(vec![
                Span::styled(head, th.get(key)),
                Span::styled(chunk.iter().collect::<String>(), th.get("text")),
            ]));
        }
    }
    let reserved = (verdict_lines.len() as u16).min(inner.height / 2);
    let list_area = Rect {
        height: inner.height - reserved,
        ..inner
    };
    if reserved > 0 {
        let verdict_area = Rect {
            y: inner.bottom() - reserved,
            height: reserved,
            ..inner
        };
        Paragraph::new(verdict_lines).render(verdict_area, buf);
    }
    let h = list_area.height.saturating_sub(u16::from(reserved > 0)) as usize;
    let skip = if lines.len() > h && selected_line >= h {
        selected_line + 1 - h
    } else {
        0
    };
    let hidden = lines.len().saturating_sub(skip + h);
    let mut shown: Vec<Line> = lines.into_iter().skip(skip).take(h).collect();
    if hidden > 0 {
        if let Some(last) = shown.last_mut() {
            *last = Line::from(Span::styled(
                format!(" {} {} more below", app.glyphs.ellipsis, hidden + 1),
                th.get("dim"),
            ));
        }
    }
    Paragraph::new(shown).render(list_area, buf);
}
