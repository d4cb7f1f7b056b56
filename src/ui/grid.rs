//! The load balancer line and the node grid, drawn after the seed's "Rolling Deployment
//! Pattern": the balancer on top, one box per node with its release and state, and a connector
//! from the balancer to each box that is cut while the node is out of rotation. Above
//! [`COMPACT_ABOVE`] nodes (or when the boxes do not fit) it becomes a compact grid, one cell per
//! node, with counts per state.
//!
//! It only reads [`App`]; it never changes state and never decides what a node's state is.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use crate::event::NodeState;

use super::app::App;
use super::model::NodeView;
use super::theme::Glyphs;

/// Fleets larger than this are drawn as the compact grid.
pub(crate) const COMPACT_ABOVE: usize = 40;
const BOX_H: u16 = 6;
const MIN_INNER: usize = 16;
const MAX_INNER: usize = 20;

/// How a node looks: glyph, word and theme key.
pub(crate) struct Look {
    pub glyph: &'static str,
    pub word: String,
    pub style_key: &'static str,
}

/// The one place that turns a node's measured state into what the operator reads: the
/// compact grid's word and theme key ([`class`]), with a glyph, the running phase and a pause.
pub(crate) fn look(app: &App, n: &NodeView) -> Look {
    let g = &app.glyphs;
    let (word, key) = class(n, has_balancer(app));
    let paused = n.state == NodeState::Updating && n.phase.is_none() && app.is_paused_or_pausing();
    let glyph = match n.state {
        NodeState::Waiting | NodeState::Draining if n.drained() => g.drained,
        NodeState::Waiting => g.in_rotation,
        NodeState::Updating if paused => g.paused,
        NodeState::Updating if n.phase.is_none() => g.between,
        NodeState::Draining
        | NodeState::Updating
        | NodeState::Checking
        | NodeState::Enabling
        | NodeState::RollingBack => g.spinner_frame(app.frame),
        NodeState::Done => g.healthy,
        NodeState::Failed => g.fail,
        NodeState::RolledBack => g.rolled_back,
        NodeState::Skipped => g.skipped,
    };
    let word = match (n.state, &n.phase) {
        (NodeState::Updating, _) if paused => "paused".into(),
        (NodeState::Updating, Some(p)) => format!("updating: {p}"),
        _ => word.into(),
    };
    Look {
        glyph,
        word,
        style_key: key,
    }
}

/// Whether the run has a load balancer (before the run is known: assume one).
fn has_balancer(app: &App) -> bool {
    app.run().info.as_ref().map(|r| r.balancer).unwrap_or(true)
}

/// A node's state as the compact grid counts it: word and theme key (no allocation).
/// Without a balancer nothing measures rotation: a waiting node just serves its release.
fn class(n: &NodeView, balancer: bool) -> (&'static str, &'static str) {
    match n.state {
        NodeState::Waiting if n.drained() => ("drained", "node_drained"),
        NodeState::Waiting if !balancer => ("serving", "node_in_rotation"),
        NodeState::Waiting => ("in rotation", "node_in_rotation"),
        NodeState::Draining if n.drained() => ("drained", "node_drained"),
        NodeState::Draining => ("draining", "node_drained"),
        NodeState::Updating => ("updating", "node_updating"),
        NodeState::Checking => ("checking health", "node_updating"),
        NodeState::Enabling => ("enabling", "node_updating"),
        NodeState::Done => ("healthy", "node_healthy"),
        NodeState::Failed => ("failed", "node_failed"),
        NodeState::RollingBack => ("rolling back", "node_rolling_back"),
        NodeState::RolledBack => ("rolled back", "node_rolled_back"),
        NodeState::Skipped => ("skipped", "node_skipped"),
    }
}

/// The glyph of a node in the compact grid: distinct per state so it reads without colour.
fn cell_glyph(g: &Glyphs, n: &NodeView) -> &'static str {
    match (n.state, g.ascii) {
        (NodeState::Waiting, false) => "○",
        (NodeState::Waiting, true) => ".",
        (NodeState::Draining, false) => "◌",
        (NodeState::Draining, true) => "o",
        (NodeState::Updating | NodeState::Checking | NodeState::Enabling, false) => "◐",
        (NodeState::Updating | NodeState::Checking | NodeState::Enabling, true) => "~",
        (NodeState::Done, _) => g.healthy,
        (NodeState::Failed, _) => g.fail,
        (NodeState::RollingBack | NodeState::RolledBack, _) => g.rolled_back,
        (NodeState::Skipped, _) => g.skipped,
    }
}

/// The release line of a box: `v1.0 → v1.1` while in flight, else what `current` points at.
pub(crate) fn release_text(app: &App, n: &NodeView) -> String {
    let current = n.release.clone().unwrap_or_else(|| "—".into());
    let current = if app.glyphs.ascii && current == "—" {
        "-".into()
    } else {
        current
    };
    if n.in_flight() {
        if let Some(target) = app.run().target_release(n) {
            if n.release.as_deref() != Some(target.as_str()) {
                return format!("{current} {} {target}", app.glyphs.arrow);
            }
        }
    }
    current
}

/// How the grid is drawn, decided once per frame by [`layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One box per node: the boxes' inner width and how many go in a row.
    Boxes { inner: usize, cols: usize },
    /// One cell per node, with counts per state.
    Compact,
}

/// How the grid is drawn at this width when it may use at most `max_h` rows, and the height
/// it needs: the boxes when they fit, else the compact grid.
pub(crate) fn layout(app: &App, width: u16, max_h: u16) -> (Shape, u16) {
    let (inner, cols) = box_geometry(app, width);
    let rows = app.run().nodes.len().max(1).div_ceil(cols.max(1)) as u16;
    let boxes = 3 + rows * (BOX_H + 1);
    if app.run().nodes.len() <= COMPACT_ABOVE && boxes <= max_h {
        return (Shape::Boxes { inner, cols }, boxes);
    }
    let per_row = ((width.saturating_sub(2)) / 2).max(1) as usize;
    let rows = app.run().nodes.len().max(1).div_ceil(per_row) as u16;
    (Shape::Compact, (3 + rows + 1).min(max_h))
}

fn box_geometry(app: &App, width: u16) -> (usize, usize) {
    let longest = app
        .run()
        .nodes
        .iter()
        .map(|n| {
            let rel = match (&n.start_release, app.run().info.as_ref()) {
                (Some(a), Some(r)) => a.chars().count() + r.release.chars().count() + 4,
                _ => 0,
            };
            n.name.chars().count().max(rel)
        })
        .max()
        .unwrap_or(0);
    let inner = longest.clamp(MIN_INNER, MAX_INNER);
    let box_w = inner + 2;
    let cols = ((width as usize).saturating_sub(1) / (box_w + 1)).max(1);
    (inner, cols)
}

/// Draw the grid in the shape [`layout`] chose for this area's width, and say how many nodes
/// a row holds (for up and down); `None` when the area is too small for a grid.
pub(crate) fn render(
    app: &App,
    shape: Shape,
    area: Rect,
    buf: &mut Buffer,
    focused: bool,
) -> Option<usize> {
    if area.height < 3 || area.width < 20 {
        return None;
    }
    Some(match shape {
        Shape::Boxes { inner, cols } => {
            render_boxes(app, inner, cols, area, buf, focused);
            cols
        }
        Shape::Compact => render_compact(app, area, buf, focused),
    })
}

fn put(buf: &mut Buffer, x: u16, y: u16, s: &str, style: Style, area: Rect) {
    if y >= area.bottom() || x >= area.right() {
        return;
    }
    let max = (area.right() - x) as usize;
    buf.set_stringn(x, y, s, max, style);
}

/// Cut to `width` characters, marking the cut with the glyph set's ellipsis.
pub(crate) fn truncate(s: &str, width: usize, g: &Glyphs) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push_str(g.ellipsis);
    out
}

fn center(s: &str, width: usize, g: &Glyphs) -> String {
    let s = truncate(s, width, g);
    let len = s.chars().count();
    let left = (width - len) / 2;
    format!(
        "{}{}{}",
        " ".repeat(left),
        s,
        " ".repeat(width - len - left)
    )
}

fn balancer_title(app: &App) -> String {
    if !has_balancer(app) {
        return "No load balancer: nodes are updated in place".into();
    }
    let groups = match &app.run().groups {
        Some((live, idle)) => format!(
            " {} {} serves, {idle} gets {}",
            app.glyphs.dot,
            live.as_deref().unwrap_or("no group"),
            app.run()
                .info
                .as_ref()
                .map(|r| r.release.as_str())
                .unwrap_or("the release")
        ),
        None => String::new(),
    };
    format!(
        "Load Balancer {} {}/{} in rotation{groups}",
        app.glyphs.dot,
        app.run().in_rotation(),
        app.run().nodes.len()
    )
}

fn render_boxes(app: &App, inner: usize, cols: usize, area: Rect, buf: &mut Buffer, focused: bool) {
    let th = &app.theme;
    let g = app.glyphs;
    let box_w = inner + 2;
    let shown_cols = cols.min(app.run().nodes.len().max(1));
    let row_w = shown_cols * (box_w + 1) - 1;
    let x0 = area.x + 1;
    let balancer = has_balancer(app);
    let b = g.border;
    let conn = th.get("connector");
    let cut = th.get("connector_cut");
    let border = if focused {
        th.get("border_focus")
    } else {
        th.get("border")
    };

    // The balancer box, as wide as the first row of nodes.
    let lb_w = row_w.max(30).min(area.width as usize - 1);
    let top = format!(
        "{}{}{}",
        b.top_left,
        b.horizontal_top.repeat(lb_w - 2),
        b.top_right
    );
    put(buf, x0, area.y, &top, border, area);
    let title = center(&balancer_title(app), lb_w - 2, &g);
    put(buf, x0, area.y + 1, b.vertical_left, border, area);
    put(buf, x0 + 1, area.y + 1, &title, th.get("balancer"), area);
    put(
        buf,
        x0 + lb_w as u16 - 1,
        area.y + 1,
        b.vertical_right,
        border,
        area,
    );
    let mut bottom: Vec<String> = std::iter::once(b.bottom_left.to_string())
        .chain(std::iter::repeat_n(
            b.horizontal_bottom.to_string(),
            lb_w - 2,
        ))
        .chain(std::iter::once(b.bottom_right.to_string()))
        .collect();
    if balancer {
        for c in 0..shown_cols {
            let cx = c * (box_w + 1) + box_w / 2;
            if cx > 0 && cx < lb_w - 1 {
                bottom[cx] = g.tee_down.to_string();
            }
        }
    }
    put(buf, x0, area.y + 2, &bottom.concat(), border, area);

    let selected = app.selected;
    for (i, n) in app.run().nodes.iter().enumerate() {
        let row = (i / cols) as u16;
        let col = i % cols;
        let bx = x0 + (col * (box_w + 1)) as u16;
        let by = area.y + 3 + row * (BOX_H + 1);
        if by + BOX_H >= area.bottom() {
            break;
        }
        let cx = bx + (box_w / 2) as u16;
        let drained = n.drained();
        if balancer {
            let (s, st) = if drained {
                (g.cut, cut)
            } else {
                (g.vline, conn)
            };
            put(buf, cx, by, s, st, area);
        }
        let is_sel = i == selected;
        let bstyle = if is_sel && focused {
            th.get("border_focus").add_modifier(Modifier::BOLD)
        } else if is_sel {
            th.get("accent")
        } else {
            th.get("border")
        };
        let bt = if is_sel && !g.ascii {
            ratatui::symbols::border::THICK
        } else {
            b
        };
        // top border with the arrow where the connector enters
        let mut topb: Vec<&str> = std::iter::once(bt.top_left)
            .chain(std::iter::repeat_n(bt.horizontal_top, box_w - 2))
            .chain(std::iter::once(bt.top_right))
            .collect();
        if balancer && !drained {
            topb[box_w / 2] = g.down;
        }
        for (k, s) in topb.iter().enumerate() {
            let st = if balancer && !drained && k == box_w / 2 {
                conn
            } else {
                bstyle
            };
            put(buf, bx + k as u16, by + 1, s, st, area);
        }
        let lk = look(app, n);
        let name_style = if is_sel {
            th.get("selection")
        } else {
            th.get("title")
        };
        // "updating: build_assets" reads as two lines in a box
        let (word, detail) = match lk.word.split_once(": ") {
            Some((w, d)) => (format!("{w}:"), d.to_string()),
            None => (lk.word.clone(), String::new()),
        };
        let lines: [(String, Style); 4] = [
            (center(&n.name, inner, &g), name_style),
            (center(&release_text(app, n), inner, &g), th.get("text")),
            (
                center(&format!("{} {}", lk.glyph, word), inner, &g),
                th.get(lk.style_key),
            ),
            (center(&detail, inner, &g), th.get(lk.style_key)),
        ];
        for (k, (text, st)) in lines.iter().enumerate() {
            let y = by + 2 + k as u16;
            put(buf, bx, y, bt.vertical_left, bstyle, area);
            put(buf, bx + 1, y, text, *st, area);
            put(
                buf,
                bx + box_w as u16 - 1,
                y,
                bt.vertical_right,
                bstyle,
                area,
            );
        }
        let bot = format!(
            "{}{}{}",
            bt.bottom_left,
            bt.horizontal_bottom.repeat(box_w - 2),
            bt.bottom_right
        );
        put(buf, bx, by + BOX_H, &bot, bstyle, area);
    }
}

/// The compact grid; returns how many cells a row holds.
fn render_compact(app: &App, area: Rect, buf: &mut Buffer, focused: bool) -> usize {
    let x0 = area.x + 1;
    let width = area.width.saturating_sub(2);
    let per_row = (width / 2).max(1) as usize;
    let th = &app.theme;
    let g = app.glyphs;
    let border = if focused {
        th.get("border_focus")
    } else {
        th.get("border")
    };

    // balancer line and counts per state
    let title = format!(" {} ", balancer_title(app));
    let b = g.border;
    let lead = format!("{}{}", b.top_left, b.horizontal_top);
    put(buf, x0, area.y, &lead, border, area);
    put(buf, x0 + 2, area.y, &title, th.get("balancer"), area);
    let used = 2 + title.chars().count() as u16;
    if width > used {
        let rest = b.horizontal_top.repeat((width - used) as usize);
        put(buf, x0 + used, area.y, &rest, border, area);
    }
    // One pass, no allocation per node: a fleet of hundreds is drawn every frame.
    let balancer = has_balancer(app);
    let mut counts: Vec<(&'static str, &'static str, &'static str, usize)> = Vec::new();
    for n in &app.run().nodes {
        let (word, key) = class(n, balancer);
        let glyph = cell_glyph(&g, n);
        match counts.iter_mut().find(|c| c.0 == word) {
            Some(c) => c.3 += 1,
            None => counts.push((word, glyph, key, 1)),
        }
    }
    let mut spans = vec![Span::raw(" ")];
    for (word, glyph, key, count) in &counts {
        spans.push(Span::styled(format!("{glyph} {word} {count}"), th.get(key)));
        spans.push(Span::styled("   ", th.get("text")));
    }
    let line = Line::from(spans);
    buf.set_line(x0, area.y + 1, &line, width);

    let selected = app.selected;
    for (i, n) in app.run().nodes.iter().enumerate() {
        let row = (i / per_row) as u16;
        let col = (i % per_row) as u16;
        let y = area.y + 2 + row;
        if y >= area.bottom().saturating_sub(1) {
            break;
        }
        let mut st = th.get(class(n, balancer).1);
        if i == selected {
            st = st.add_modifier(Modifier::REVERSED);
        }
        put(buf, x0 + 1 + col * 2, y, cell_glyph(&g, n), st, area);
    }
    // what the selection is
    if let Some(n) = app.selected_node() {
        let lk = look(app, n);
        let rows = app.run().nodes.len().div_ceil(per_row) as u16;
        let y = (area.y + 2 + rows).min(area.bottom().saturating_sub(1));
        let text = format!(
            " {} {} {} {} {} {}",
            n.name,
            g.dot,
            release_text(app, n),
            g.dot,
            lk.glyph,
            lk.word
        );
        put(buf, x0, y, &text, th.get("accent"), area);
    }
    per_row
}
