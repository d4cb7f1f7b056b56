//! The centred box every dialog of the console is drawn in (the run screen's and the home
//! screen's): sized to its lines, framed in the warning colour, its title on the frame.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

use super::theme::{Glyphs, Theme};

/// Draw `lines` in a box titled `title`, centred in `area`, over whatever is beneath.
pub(crate) fn draw_box(
    theme: &Theme,
    glyphs: &Glyphs,
    title: &str,
    lines: Vec<Line<'_>>,
    area: Rect,
    buf: &mut Buffer,
) {
    let w = (lines.iter().map(|l| l.width()).max().unwrap_or(40) as u16 + 4)
        .max(title.chars().count() as u16 + 6)
        .min(area.width.saturating_sub(4));
    let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    Clear.render(rect, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(glyphs.border)
        .border_style(theme.get("flash_warn"))
        .style(theme.get("background"))
        .title(Span::styled(format!(" {title} "), theme.get("title")));
    let inner = block.inner(rect);
    block.render(rect, buf);
    Paragraph::new(lines).render(
        Rect {
            x: inner.x + 1,
            width: inner.width.saturating_sub(1),
            ..inner
        },
        buf,
    );
}
