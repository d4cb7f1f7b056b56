//! One frame of the console: header with the mode pill, the balancer and node grid, phases and
//! checklist (and the log pane when shown), the flash line, the footer, and whatever is drawn
//! over them (node output, help, a confirm dialog). Below 80×24 it draws only a request for a
//! bigger terminal.
//!
//! Pure drawing into a buffer from `&App`: it changes no state, and hands back what the frame
//! laid out that key handling needs ([`Drawn`]: the grid's columns, for up and down). Used the
//! same way by the live console, replay, the snapshot tests, the screenshots and the benchmark.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

use super::app::{App, Dialog, FlashLevel, Focus, Mode};
use super::log::LogPane;
use super::model::clock;
pub use super::model::Drawn;
use super::{checklist, grid, help, phases};

pub(crate) const MIN_WIDTH: u16 = 80;
pub(crate) const MIN_HEIGHT: u16 = 24;

/// Draw one frame of the console into `buf` (the log pane only when one is given), and say what
/// it laid out.
pub fn draw(app: &App, log: Option<&LogPane>, area: Rect, buf: &mut Buffer) -> Drawn {
    let bg = app.theme.get("background");
    buf.set_style(area, bg);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(app, area, buf);
        return Drawn::default();
    }
    // At the end, one line says where the time went (the run's last but one event).
    let timing = app
        .run()
        .timing
        .as_ref()
        .filter(|_| app.finished() && area.height > MIN_HEIGHT);
    let [header, body, time_line, flash, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(10),
        Constraint::Length(2 * u16::from(timing.is_some())),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(app, header, buf);
    if let Some(t) = timing {
        draw_timing(app, t, time_line, buf);
    }

    let (shape, grid_h) = grid::layout(app, body.width, body.height.saturating_sub(9).max(5));
    let [grid_area, panes] =
        Layout::vertical([Constraint::Length(grid_h), Constraint::Min(6)]).areas(body);
    let grid_columns = grid::render(app, shape, grid_area, buf, app.focus == Focus::Grid);

    let (panes, log_area) = if app.show_log {
        let [p, l] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(panes);
        (p, Some(l))
    } else {
        (panes, None)
    };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(47), Constraint::Percentage(53)]).areas(panes);
    phases::render(app, left, buf, app.focus == Focus::Phases);
    checklist::render(app, right, buf, app.focus == Focus::Checklist);
    if let Some(l) = log_area {
        match log {
            Some(pane) => pane.render(app, l, buf, app.focus == Focus::Log),
            None => {
                let block = Block::default()
                    .borders(Borders::ALL)
                    .border_set(app.glyphs.border)
                    .border_style(app.theme.get("border"))
                    .title(" Log ");
                block.render(l, buf);
            }
        }
    }

    draw_flash(app, flash, buf);
    buf.set_line(
        footer.x + 1,
        footer.y,
        &help::footer_line(app, footer.width.saturating_sub(1) as usize),
        footer.width - 1,
    );

    if app.output.is_some() {
        phases::render_output(app, body, buf);
    }
    if app.show_help {
        help::render(app, area, buf);
    }
    if app.dialog.is_some() {
        draw_dialog(app, area, buf);
    }
    Drawn { grid_columns }
}

fn too_small(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let mode = app.mode();
    let lines = vec![
        Line::from(Span::styled(format!(" {} ", mode.label()), th.get(mode.style_key()))),
        Line::raw(""),
        Line::from(Span::styled(
            format!(
                "deckhand needs a terminal of at least {MIN_WIDTH}×{MIN_HEIGHT}; this one is {}×{}.",
                area.width, area.height
            ),
            th.get("title"),
        )),
        Line::from(Span::styled(
            "Enlarge the window: the deployment goes on meanwhile.",
            th.get("text"),
        )),
        Line::from(Span::styled("q quits, p pauses.", th.get("dim"))),
    ];
    let h = lines.len() as u16;
    let y = area.y + area.height.saturating_sub(h) / 2;
    Paragraph::new(lines)
        .alignment(ratatui::layout::Alignment::Center)
        .wrap(Wrap { trim: true })
        .render(
            Rect {
                x: area.x,
                y,
                width: area.width,
                height: area.height.saturating_sub(y - area.y),
            },
            buf,
        );
}

/// The release the fleet is coming from: what most nodes served at the start.
fn from_release(app: &App) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for n in &app.run().nodes {
        if let Some(r) = n.start_release.as_deref() {
            match counts.iter_mut().find(|c| c.0 == r) {
                Some(c) => c.1 += 1,
                None => counts.push((r, 1)),
            }
        }
    }
    counts
        .into_iter()
        .max_by_key(|c| c.1)
        .map(|c| c.0.to_string())
}

fn draw_header(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let g = &app.glyphs;
    let mode = app.mode();
    let pill = format!(" {} ", mode.label());
    let pill_w = pill.chars().count() as u16;
    let width = area.width.saturating_sub(pill_w + 1);
    let brand = if app.replay {
        " deckhand replay "
    } else if app.watching() {
        " deckhand watch "
    } else {
        " deckhand "
    };
    let mut spans = vec![Span::styled(
        brand,
        th.get("accent").add_modifier(Modifier::BOLD),
    )];
    match &app.run().info {
        None => spans.push(Span::styled(
            " waiting for the deployment to start…",
            th.get("dim"),
        )),
        Some(r) => {
            // Segments in order, each with a priority: when the line is too narrow the least
            // needed go first (lock, then clock, then strategy and batch).
            let env = if r.protected {
                format!("{} (protected)", r.env)
            } else {
                r.env.clone()
            };
            let rel = match from_release(app) {
                Some(from) if from != r.release => format!("{from} {} {}", g.arrow, r.release),
                _ => r.release.clone(),
            };
            let batch = match app.run().batch {
                Some(b) => format!("{}, batch {}/{}", r.strategy, b + 1, r.batches.len()),
                None => format!(
                    "{}, {}",
                    r.strategy,
                    crate::util::count(r.batches.len(), "batch", "batches")
                ),
            };
            let lock = if app.run().locked {
                format!("lock: {}@{}", r.who, r.from_host)
            } else {
                "no lock held".to_string()
            };
            let mut segs: Vec<(u8, String, &str)> = vec![
                (9, r.app.clone(), "title"),
                (8, env, "text"),
                (9, rel, "title"),
                (3, batch, "text"),
            ];
            if let Some(e) = app.elapsed_ms() {
                segs.push((4, clock(e), "text"));
            }
            segs.push((1, lock, "dim"));
            let sep_w = 3;
            let fits = |segs: &Vec<(u8, String, &str)>| {
                let w: usize = segs.iter().map(|s| s.1.chars().count() + sep_w).sum();
                w + brand.chars().count() < width as usize
            };
            while !fits(&segs) && segs.len() > 3 {
                let min = segs.iter().map(|s| s.0).min().unwrap_or(0);
                if let Some(pos) = segs.iter().rposition(|s| s.0 == min) {
                    segs.remove(pos);
                }
            }
            for (i, (_, text, key)) in segs.into_iter().enumerate() {
                if i > 0 {
                    spans.push(Span::styled(format!(" {} ", g.dot), th.get("dim")));
                }
                spans.push(Span::styled(text, th.get(key)));
            }
        }
    }
    buf.set_line(area.x, area.y, &Line::from(spans), width);
    buf.set_string(
        area.right().saturating_sub(pill_w + 1),
        area.y,
        &pill,
        th.get(mode.style_key()),
    );
    // second line: what the mode means right now
    let sentence = status_sentence(app, mode);
    let rule_style = th.get("border");
    let rule = g.hline.repeat(area.width as usize);
    buf.set_string(area.x, area.y + 1, &rule, rule_style);
    if !sentence.is_empty() {
        let s = format!(" {sentence} ");
        buf.set_stringn(
            area.x + 2,
            area.y + 1,
            &s,
            area.width as usize - 4,
            th.get("text"),
        );
    }
}

fn status_sentence(app: &App, mode: Mode) -> String {
    match mode {
        Mode::Ready if app.run().info.is_none() => String::new(),
        Mode::Ready => "preflight: reading every node's live release".into(),
        Mode::Deploying | Mode::Failed | Mode::RollingBack if app.watching() && !app.finished() => {
            let busy: Vec<String> = app
                .run()
                .nodes
                .iter()
                .filter(|n| n.in_flight())
                .map(|n| match &n.phase {
                    Some(p) => format!("{} {p}", n.name),
                    None => format!("{} {}", n.name, n.state.word()),
                })
                .collect();
            format!(
                "{}: {} (read from the nodes every half second)",
                if app.run().rolling_back {
                    "rolling back"
                } else {
                    "deploying"
                },
                if busy.is_empty() {
                    "between steps".to_string()
                } else {
                    busy.join(", ")
                }
            )
        }
        Mode::Deploying => {
            let busy: Vec<&str> = app
                .run()
                .nodes
                .iter()
                .filter(|n| n.in_flight())
                .map(|n| n.name.as_str())
                .collect();
            if let (true, Some((window, _))) = (busy.is_empty(), &app.run().monitoring) {
                format!(
                    "every node updated; watching the {window} checklist window (enter ends it early)"
                )
            } else if busy.is_empty() {
                "deploying".into()
            } else {
                format!("updating {}", busy.join(", "))
            }
        }
        Mode::Pausing => "pausing: the running step ends first, no new step starts".into(),
        Mode::Paused if app.watching() => "paused by its operator: no step is running".into(),
        Mode::Paused => {
            "paused: no step is running; p resumes, s runs one step, R rolls back".into()
        }
        Mode::Stepping => format!(
            "step {}: each node in flight runs its next step, then the run pauses again",
            app.run().steps_taken
        ),
        Mode::Waiting if app.watching() => "gate: waiting for its operator to promote".into(),
        Mode::Waiting => match app.run().gate_until {
            Some(until) => format!(
                "gate: {} — passes by itself in {}; enter promotes now, R rolls back",
                app.run().gate.as_deref().unwrap_or("waiting"),
                clock((until - app.now()).max(0))
            ),
            None => format!(
                "gate: {} — enter promotes, R rolls back",
                app.run().gate.as_deref().unwrap_or("waiting")
            ),
        },
        Mode::RollingBack => {
            "rolling back: switched nodes go back to their previous release".into()
        }
        Mode::Aborting => "aborting: stopping running steps".into(),
        Mode::Failed => {
            let failed: Vec<String> = app
                .run()
                .nodes
                .iter()
                .filter(|n| n.state == crate::event::NodeState::Failed)
                .map(|n| match &n.problem {
                    Some(p) => format!("{}: {p}", n.name),
                    None => n.name.clone(),
                })
                .collect();
            let tail = if app.finished() {
                app.run().finish_message.clone().unwrap_or_default()
            } else if app.run().gate.is_some() {
                "enter to go on anyway, R to roll back".into()
            } else {
                String::new()
            };
            if failed.is_empty() {
                tail
            } else {
                format!("failed {}  {tail}", failed.join("; "))
                    .trim_end()
                    .to_string()
            }
        }
        Mode::Done
        | Mode::RolledBack
        | Mode::Aborted
        | Mode::Halted
        | Mode::Partial
        | Mode::LockHeld => format!(
            "{} — {}",
            app.run().finish_message.clone().unwrap_or_default(),
            if app.from_home {
                "esc: home (history, roll back) · q to leave"
            } else {
                "q to leave"
            }
        ),
    }
}

/// Where the run's time went, in one line: the tool's share against the steps' and the waits'.
fn draw_timing(app: &App, t: &crate::event::TimeReport, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let d = |ms: u64| crate::util::format_duration(std::time::Duration::from_millis(ms));
    let spans = vec![
        Span::styled(" time ", th.get("accent").add_modifier(Modifier::BOLD)),
        Span::styled(format!("{} ", d(t.wall_ms)), th.get("title")),
        Span::styled("= steps ", th.get("dim")),
        Span::styled(d(t.steps_ms), th.get("text")),
        Span::styled(" + waiting ", th.get("dim")),
        Span::styled(d(t.waiting_ms), th.get("text")),
        Span::styled(" + deckhand ", th.get("dim")),
        Span::styled(d(t.overhead_ms), th.get("text")),
        Span::styled(
            if t.link_ms > 0 {
                format!(
                    " (preflight {}, network {})",
                    d(t.preflight_ms),
                    d(t.link_ms)
                )
            } else {
                format!(" (preflight {})", d(t.preflight_ms))
            },
            th.get("dim"),
        ),
    ];
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    // Below: the slowest phases and nodes, as many as the line has room for.
    let list = |v: &[crate::event::Slow]| {
        v.iter()
            .map(|s| format!("{} {}", s.name, d(s.ms)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut second = vec![Span::raw(" ")];
    for (label, v) in [
        ("slowest phases: ", &t.slowest_phases),
        ("slowest nodes: ", &t.slowest_nodes),
    ] {
        if v.is_empty() {
            continue;
        }
        if second.len() > 1 {
            second.push(Span::styled(format!(" {} ", app.glyphs.dot), th.get("dim")));
        }
        second.push(Span::styled(label, th.get("dim")));
        second.push(Span::styled(list(v), th.get("text")));
    }
    if area.height > 1 {
        buf.set_line(area.x, area.y + 1, &Line::from(second), area.width);
    }
}

fn draw_flash(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    if let Some(f) = app.flash_now() {
        let key = match f.level {
            FlashLevel::Info => "flash_info",
            FlashLevel::Warn => "flash_warn",
            FlashLevel::Error => "flash_error",
        };
        let mark = match f.level {
            FlashLevel::Info => app.glyphs.ok,
            FlashLevel::Warn => "!",
            FlashLevel::Error => app.glyphs.fail,
        };
        buf.set_stringn(
            area.x + 1,
            area.y,
            format!("{mark} {}", f.text),
            area.width as usize - 2,
            th.get(key),
        );
    }
}

fn draw_dialog(app: &App, area: Rect, buf: &mut Buffer) {
    let th = &app.theme;
    let Some(dialog) = &app.dialog else { return };
    let (title, mut lines): (String, Vec<Line>) = match dialog {
        Dialog::Confirm {
            title,
            lines,
            typed_needed,
            typed,
            ..
        } => {
            let mut out: Vec<Line> = lines
                .iter()
                .map(|l| Line::from(Span::styled(l.clone(), th.get("text"))))
                .collect();
            if let Some(need) = typed_needed {
                out.push(Line::raw(""));
                out.push(Line::from(vec![
                    Span::styled("Protected environment. Type ", th.get("flash_warn")),
                    Span::styled(need.clone(), th.get("title")),
                    Span::styled(" to confirm: ", th.get("flash_warn")),
                ]));
                out.push(Line::from(Span::styled(
                    format!("> {typed}{}", if app.glyphs.ascii { "_" } else { "▏" }),
                    th.get("selection"),
                )));
            }
            (title.clone(), out)
        }
        Dialog::Quit => (
            "Leave while the deployment runs?".to_string(),
            [
                "The deployment is still running, and a quit never leaves a step running unseen.",
                "Pause and leave waits for the running step to end, then leaves the run paused:",
                "every node on a whole release, the lock held, so that `deckhand resume` can",
                "continue it or roll it back. (To stop it for good, abort with a first.)",
            ]
            .iter()
            .map(|l| Line::from(Span::styled(*l, th.get("text"))))
            .collect(),
        ),
    };
    lines.push(Line::raw(""));
    lines.push(help::footer_line(app, area.width as usize - 8));
    super::dialog::draw_box(&app.theme, &app.glyphs, &title, lines, area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures;

    fn draw_at(app: &App, width: u16, height: u16) -> Drawn {
        let area = Rect::new(0, 0, width, height);
        let mut buf = Buffer::empty(area);
        draw(app, None, area, &mut buf)
    }

    #[test]
    fn a_frame_reports_the_grid_columns_it_drew() {
        let app = fixtures::mid_rollout().into_app();
        let wide = draw_at(&app, 160, 40).grid_columns;
        let narrow = draw_at(&app, 80, 40).grid_columns;
        assert!(
            wide.is_some_and(|c| c >= 5),
            "{wide:?}: five boxes in a row"
        );
        assert!(narrow.is_some_and(|c| c < 5), "{narrow:?}: web-5 wraps");
        // The compact grid: one cell per node, two columns each.
        let large = fixtures::large_fleet(120).into_app();
        assert_eq!(draw_at(&large, 120, 36).grid_columns, Some(59));
    }

    #[test]
    fn a_terminal_too_small_draws_no_grid_and_the_last_one_holds() {
        let app = fixtures::mid_rollout().into_app();
        let small = draw_at(&app, 70, 20);
        assert_eq!(small, Drawn::default());
        let wide = draw_at(&app, 160, 40);
        assert_eq!(small.or(wide), wide);
        assert_eq!(Drawn::default().grid_columns(), 1);
    }
}
