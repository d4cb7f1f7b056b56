//! The phases pane (each phase of the selected node with its state, duration and last output
//! line) and the full-output view `enter` opens (scrollable, searchable with `/`).
//!
//! Reads [`App`] only; what a phase's state is was decided by the reducer from the engine's
//! step events.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use super::app::App;
use super::model::{PhaseStatus, PhaseView};
use crate::event::{NodeState, StepResult};

/// `1.2s`, `42s`, `3m05s`.
pub(crate) fn duration(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        let s = ms / 1000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn status_look(app: &App, p: &PhaseView) -> (&'static str, &'static str, &'static str) {
    let g = &app.glyphs;
    match p.status {
        PhaseStatus::Pending => (g.pending, "pending", "phase_pending"),
        PhaseStatus::Running => (g.spinner_frame(app.frame), "running", "phase_running"),
        PhaseStatus::Ended(r) => {
            let (glyph, key) = match r {
                StepResult::Ok => (g.ok, "phase_ok"),
                StepResult::Skipped => (g.skipped, "phase_skipped"),
                StepResult::Failed | StepResult::TimedOut | StepResult::Killed => {
                    (g.fail, "phase_failed")
                }
            };
            (glyph, r.word(), key)
        }
    }
}

fn phase_line<'a>(app: &App, p: &'a PhaseView, name_w: usize) -> Line<'a> {
    let th = &app.theme;
    let (glyph, word, key) = status_look(app, p);
    let dur = match (p.status, p.duration_ms, p.started_ms) {
        (PhaseStatus::Running, _, Some(start)) => duration((app.now() - start).max(0) as u64),
        (_, Some(d), _) => duration(d),
        _ => String::new(),
    };
    let detail = match (&p.message, &p.last_line) {
        (Some(m), _) if p.status.failed() => m.clone(),
        (_, Some(l)) => l.clone(),
        _ => String::new(),
    };
    Line::from(vec![
        Span::styled(format!(" {glyph} "), th.get(key)),
        Span::styled(format!("{:<name_w$} ", p.name), th.get("text")),
        Span::styled(format!("{word:<9} "), th.get(key)),
        Span::styled(format!("{dur:>6}  "), th.get("dim")),
        Span::styled(detail, th.get("dim")),
    ])
}

pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer, focused: bool) {
    let th = &app.theme;
    let border = if focused {
        th.get("border_focus")
    } else {
        th.get("border")
    };
    let title = match app.selected_node() {
        Some(n) => format!(" Phases {} {} ({}) ", app.glyphs.dot, n.name, n.host),
        None => " Phases ".to_string(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(app.glyphs.border)
        .border_style(border)
        .title(Span::styled(title, th.get("title")));
    let inner = block.inner(area);
    block.render(area, buf);

    let mut lines: Vec<Line> = Vec::new();
    // The first running row, noted as it is pushed, to keep it in view below.
    let mut running: Option<usize> = None;
    let node_phases: &[PhaseView] = app
        .selected_node()
        .map(|n| n.phases.as_slice())
        .unwrap_or(&[]);
    let name_w = node_phases
        .iter()
        .chain(app.run().local.iter())
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 22);
    if !app.run().local.is_empty() {
        lines.push(Line::from(Span::styled(" on this machine", th.get("dim"))));
        for p in &app.run().local {
            if p.status == PhaseStatus::Running && running.is_none() {
                running = Some(lines.len());
            }
            lines.push(phase_line(app, p, name_w));
        }
        lines.push(Line::from(Span::styled(
            match app.selected_node() {
                Some(n) => format!(" on {}", n.name),
                None => String::new(),
            },
            th.get("dim"),
        )));
    }
    // The node's problem in full goes under the row that failed, so that rows added after it
    // (a rollback's) read below it in the order they happened; with no failed row (preflight),
    // at the end.
    let failed_row = node_phases.iter().rposition(|p| p.status.failed());
    // A rollback re-runs rows that had failed; then the line says what the rollback followed.
    let mut problem = app.selected_node().and_then(|n| {
        let problem = n.problem.as_ref()?;
        let after = match (failed_row, n.state) {
            (None, NodeState::RollingBack) => "rolling back after: ",
            (None, NodeState::RolledBack) => "rolled back after: ",
            _ => "",
        };
        Some(Line::from(Span::styled(
            format!(" {} {after}{problem}", app.glyphs.fail),
            th.get("phase_failed"),
        )))
    });
    for (i, p) in node_phases.iter().enumerate() {
        if p.status == PhaseStatus::Running && running.is_none() {
            running = Some(lines.len());
        }
        lines.push(phase_line(app, p, name_w));
        if Some(i) == failed_row {
            lines.extend(problem.take());
        }
    }
    lines.extend(problem);
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            " waiting for the engine to report the plan…",
            th.get("dim"),
        )));
    }
    // Keep the running phase in view when the list is taller than the pane.
    let running = running.unwrap_or(0);
    let h = inner.height as usize;
    let skip = if lines.len() > h && running >= h {
        running + 1 - h
    } else {
        0
    };
    Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).render(inner, buf);
}

/// The full output of one node (or of this machine), over the body of the screen.
pub(crate) fn render_output(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(view) = app.output.as_ref() else {
        return;
    };
    let th = &app.theme;
    Clear.render(area, buf);
    let who = view.node.clone().unwrap_or_else(|| "this machine".into());
    let all = app.output_lines();
    let title = format!(
        " Output {} {who} {} {} ",
        app.glyphs.dot,
        app.glyphs.dot,
        crate::util::count(all.len(), "line", "lines")
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(app.glyphs.border)
        .border_style(th.get("border_focus"))
        .title(Span::styled(title, th.get("title")));
    let inner = block.inner(area);
    block.render(area, buf);
    let h = inner.height.saturating_sub(1) as usize;
    let top = if view.follow {
        all.len().saturating_sub(h)
    } else {
        view.top.min(all.len().saturating_sub(1))
    };
    let needle = view.search.to_lowercase();
    let mut lines: Vec<Line> = Vec::new();
    let pw = all
        .iter()
        .map(|l| l.phase.chars().count())
        .max()
        .unwrap_or(8)
        .min(20);
    let mut last_phase = "";
    for l in all.iter().skip(top).take(h) {
        let phase = if l.phase != last_phase {
            last_phase = &l.phase;
            format!("{:>pw$} ", truncate(&l.phase, pw))
        } else {
            " ".repeat(pw + 1)
        };
        let mut style = if l.stderr {
            th.get("flash_warn")
        } else {
            th.get("text")
        };
        if !needle.is_empty() && l.line.to_lowercase().contains(&needle) {
            style = style.add_modifier(Modifier::REVERSED);
        }
        lines.push(Line::from(vec![
            Span::styled(phase, th.get("dim")),
            Span::styled(l.line.clone(), style),
        ]));
    }
    if all.is_empty() {
        lines.push(Line::from(Span::styled(" no output yet", th.get("dim"))));
    }
    Paragraph::new(lines).render(
        Rect {
            height: inner.height.saturating_sub(1),
            ..inner
        },
        buf,
    );
    let status = if view.typing {
        format!(" /{}▏", view.search)
    } else if !view.search.is_empty() {
        format!(" search: {}  (n next, / new search)", view.search)
    } else if view.follow {
        " following new output".to_string()
    } else {
        format!(" line {} of {}", top + 1, all.len())
    };
    let y = inner.bottom().saturating_sub(1);
    buf.set_stringn(inner.x, y, status, inner.width as usize, th.get("accent"));
}

fn truncate(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        s.chars().take(w).collect()
    }
}
