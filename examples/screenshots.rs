//! Draws the console's screens into an off-screen buffer and writes each as an SVG, cell by
//! cell with its colours, for `scripts/screenshots.sh` to turn into the PNGs in `screenshots/`.
//!
//! Usage: `cargo run --example screenshots -- OUT_DIR [JOURNAL]`
//!
//! With a JOURNAL (recorded by `deckhand demo --headless --fail-node web-3`), it also draws the
//! console at three moments of that real run: the node failing, the rollback under way, and the
//! end.

use std::fmt::Write as _;
use std::path::PathBuf;

use deckhand::ui::app::App;
use deckhand::ui::fixtures::{self, scene};
use deckhand::ui::log::LogPane;
use deckhand::ui::theme::Theme;
use deckhand::ui::view;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

const CELL_W: f64 = 8.43;
const CELL_H: f64 = 16.3;
const FONT: f64 = 14.0;

/// (file name, scene, theme, width, height, log pane shown)
const SHOTS: &[(&str, &str, &str, u16, u16, bool)] = &[
    ("mid-rollout", "mid-rollout", "dark", 120, 36, false),
    ("paused", "paused", "dark", 120, 36, false),
    ("gate", "gate", "dark", 120, 36, false),
    (
        "rollback-confirm",
        "rollback-confirm",
        "dark",
        120,
        36,
        false,
    ),
    ("rolling-back", "rolling-back", "dark", 120, 36, false),
    ("failed-node", "failed-node", "dark", 120, 36, false),
    ("checklist", "checklist", "dark", 120, 36, false),
    ("help", "help", "dark", 120, 36, false),
    ("large-fleet", "large-fleet", "dark", 120, 36, false),
    ("log", "mid-rollout", "dark", 120, 40, true),
    ("light", "mid-rollout", "light", 120, 36, false),
    (
        "high-contrast",
        "failed-node",
        "high-contrast",
        120,
        36,
        false,
    ),
    ("monochrome", "checklist", "monochrome", 120, 36, false),
    ("step-mode", "stepping", "dark", 120, 36, false),
    ("watch", "watching", "dark", 120, 36, false),
    ("done", "done", "dark", 120, 36, false),
];

/// (file name, home scene): the home screen.
const HOME_SHOTS: &[(&str, &str)] = &[
    ("home", "home"),
    ("history", "home-history"),
    ("home-rollback", "home-rollback"),
];

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "screenshots".into()),
    );
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("error: cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    for (file, name, theme, w, h, log) in SHOTS {
        let Some(mut app) = scene(name) else {
            eprintln!("error: no scene {name}");
            std::process::exit(1);
        };
        app.set_theme(Theme::builtin(theme).unwrap_or_else(Theme::default_theme));
        let pane = if *log {
            app.show_log(true);
            let pane = LogPane::new();
            for e in &fixtures::mid_rollout().events {
                pane.record(e);
            }
            Some(pane)
        } else {
            None
        };
        let buf = render(&app, pane.as_ref(), *w, *h);
        let svg = to_svg(&buf, app.theme());
        let path = out.join(format!("{file}.svg"));
        if let Err(e) = std::fs::write(&path, svg) {
            eprintln!("error: writing {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{}", path.display());
    }
    for (file, name) in HOME_SHOTS {
        let Some(h) = fixtures::home_scene(name) else {
            eprintln!("error: no home scene {name}");
            std::process::exit(1);
        };
        let mut t = match Terminal::new(TestBackend::new(120, 36)) {
            Ok(t) => t,
            Err(e) => panic!("test terminal: {e}"),
        };
        if let Err(e) = t.draw(|f| {
            let area = f.area();
            deckhand::ui::home::draw(&h, area, f.buffer_mut());
        }) {
            panic!("draw: {e}");
        }
        let svg = to_svg(t.backend().buffer(), &Theme::default_theme());
        let path = out.join(format!("{file}.svg"));
        if let Err(e) = std::fs::write(&path, svg) {
            eprintln!("error: writing {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{}", path.display());
    }
    if let Some(journal) = std::env::args().nth(2) {
        if let Err(e) = from_journal(&PathBuf::from(journal), &out) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// The console at moments of a recorded run, replayed through the reducer.
fn from_journal(journal: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    use deckhand::event::{EventKind, NodeState};
    let events = deckhand::ui::read_journal(journal)?;
    type Moment = (&'static str, fn(&EventKind) -> bool, usize);
    let moments: [Moment; 3] = [
        (
            "demo-failed",
            |k| {
                matches!(
                    k,
                    EventKind::NodeState {
                        state: NodeState::Failed,
                        ..
                    }
                )
            },
            0,
        ),
        (
            "demo-rolling-back",
            |k| matches!(k, EventKind::RollbackStarted { .. }),
            6,
        ),
        (
            "demo-rolled-back",
            |k| matches!(k, EventKind::Finished { .. }),
            0,
        ),
    ];
    for (file, at, extra) in moments {
        let Some(pos) = events.iter().position(|e| at(&e.kind)) else {
            anyhow::bail!("{}: no moment for {file}", journal.display());
        };
        let end = (pos + 1 + extra).min(events.len());
        let mut app = App::new(Theme::default_theme(), deckhand::ui::theme::Glyphs::UNICODE);
        for e in &events[..end] {
            app.apply(e);
        }
        app.set_clock(events[end - 1].at_ms, 3);
        // show the node that failed
        if let Some(i) = app
            .nodes()
            .iter()
            .position(|n| n.state == NodeState::Failed || n.problem.is_some())
        {
            app.select(i);
        }
        let buf = render(&app, None, 120, 36);
        let path = out.join(format!("{file}.svg"));
        std::fs::write(&path, to_svg(&buf, app.theme()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn render(app: &App, log: Option<&LogPane>, w: u16, h: u16) -> Buffer {
    let mut t = match Terminal::new(TestBackend::new(w, h)) {
        Ok(t) => t,
        Err(e) => panic!("test terminal: {e}"),
    };
    if let Err(e) = t.draw(|f| {
        let area = f.area();
        view::draw(app, log, area, f.buffer_mut());
    }) {
        panic!("draw: {e}");
    }
    t.backend().buffer().clone()
}

/// The xterm palette for named colours.
fn rgb(c: Color, default: &str) -> String {
    let s = match c {
        Color::Reset => return default.to_string(),
        Color::Black => "#000000",
        Color::Red => "#cd0000",
        Color::Green => "#00cd00",
        Color::Yellow => "#cdcd00",
        Color::Blue => "#0000ee",
        Color::Magenta => "#cd00cd",
        Color::Cyan => "#00cdcd",
        Color::Gray => "#e5e5e5",
        Color::DarkGray => "#7f7f7f",
        Color::LightRed => "#ff5555",
        Color::LightGreen => "#55ff55",
        Color::LightYellow => "#ffff55",
        Color::LightBlue => "#5c5cff",
        Color::LightMagenta => "#ff55ff",
        Color::LightCyan => "#55ffff",
        Color::White => "#ffffff",
        Color::Rgb(r, g, b) => return format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(i) => return indexed(i),
    };
    s.to_string()
}

fn indexed(i: u8) -> String {
    match i {
        0..=15 => {
            const BASE: [&str; 16] = [
                "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd",
                "#e5e5e5", "#7f7f7f", "#ff5555", "#55ff55", "#ffff55", "#5c5cff", "#ff55ff",
                "#55ffff", "#ffffff",
            ];
            BASE[i as usize].to_string()
        }
        16..=231 => {
            let i = i - 16;
            let step = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            format!(
                "#{:02x}{:02x}{:02x}",
                step(i / 36),
                step((i / 6) % 6),
                step(i % 6)
            )
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn to_svg(buf: &Buffer, theme: &Theme) -> String {
    let area = buf.area;
    let bg_default = match theme.get("background").bg {
        Some(c) if c != Color::Reset => rgb(c, "#1c1c1c"),
        _ => "#1c1c1c".to_string(),
    };
    let fg_default = if bg_default == "#1c1c1c" {
        "#d0d0d0"
    } else {
        "#262626"
    };
    let (w, h) = (area.width as f64 * CELL_W, area.height as f64 * CELL_H);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.1} {h:.1}">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="{bg_default}"/>"#
    );
    let _ = writeln!(
        s,
        r#"<g font-family="DejaVu Sans Mono, monospace" font-size="{FONT}" xml:space="preserve">"#
    );
    for y in 0..area.height {
        let mut x = 0;
        while x < area.width {
            let cell = &buf[(x, y)];
            let mut fg = rgb(cell.fg, fg_default);
            let mut bg = rgb(cell.bg, &bg_default);
            if cell.modifier.contains(Modifier::REVERSED) {
                std::mem::swap(&mut fg, &mut bg);
            }
            if bg != bg_default {
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{CELL_H}" fill="{bg}"/>"#,
                    x as f64 * CELL_W,
                    y as f64 * CELL_H,
                    CELL_W + 0.4
                );
            }
            let sym = cell.symbol();
            if !sym.trim().is_empty() {
                let mut attrs = String::new();
                if cell.modifier.contains(Modifier::BOLD) {
                    attrs.push_str(r#" font-weight="bold""#);
                }
                if cell.modifier.contains(Modifier::DIM) {
                    attrs.push_str(r#" opacity="0.6""#);
                }
                if cell.modifier.contains(Modifier::ITALIC) {
                    attrs.push_str(r#" font-style="italic""#);
                }
                if cell.modifier.contains(Modifier::UNDERLINED) {
                    attrs.push_str(r#" text-decoration="underline""#);
                }
                let _ = writeln!(
                    s,
                    r#"<text x="{:.2}" y="{:.2}" fill="{fg}"{attrs}>{}</text>"#,
                    x as f64 * CELL_W,
                    y as f64 * CELL_H + 13.0,
                    esc(sym)
                );
            }
            x += 1;
        }
    }
    s.push_str("</g>\n</svg>\n");
    s
}
