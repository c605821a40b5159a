//! Telling others how to get here: the share overlay (`s`: the `ssh` command, a QR code of the
//! web page) and the presenter's join card (`c`: the command in large type, the QR code and the
//! live audience count in large digits, made to be projected). QR codes are drawn with
//! half-block characters, black on white whatever the palette. Drawing only, like `ui`.

use qrcode::{EcLevel, QrCode};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Widget};
use unicode_width::UnicodeWidthStr;

use crate::tui::app::App;
use crate::tui::theme::Theme;
use crate::tui::ui::{big_name, centred, draw_big};

/// Light modules around the code. The standard asks for 4; 2 scan fine from a screen and
/// keep the code small enough for an 80x24 terminal (as does the lowest error correction: a
/// screen is not a crumpled label).
const QUIET: usize = 2;

/// A QR code as rows of modules (true = dark), quiet zone included.
pub struct Qr {
    size: usize,
    dark: Vec<bool>,
}

impl Qr {
    /// The code for `text`, or `None` if it is too long to encode.
    pub fn new(text: &str) -> Option<Self> {
        let code = QrCode::with_error_correction_level(text, EcLevel::L).ok()?;
        let width = code.width();
        let size = width + 2 * QUIET;
        let colors = code.to_colors();
        let mut dark = vec![false; size * size];
        for (i, color) in colors.iter().enumerate() {
            let (x, y) = (i % width + QUIET, i / width + QUIET);
            if let Some(cell) = dark.get_mut(y * size + x) {
                *cell = *color == qrcode::Color::Dark;
            }
        }
        Some(Self { size, dark })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark.get(y * self.size + x).copied().unwrap_or(false)
    }

    /// Columns and rows it takes on screen (two modules per row).
    pub fn cells(&self) -> (u16, u16) {
        let size = u16::try_from(self.size).unwrap_or(u16::MAX);
        (size, size.div_ceil(2))
    }

    /// Draws the code with its top-left corner at (x, y): each cell holds two modules, the
    /// upper one as the foreground of `▀`-style half blocks.
    pub fn draw(&self, buf: &mut Buffer, x: u16, y: u16, style: Style) {
        let (cols, rows) = self.cells();
        for row in 0..rows {
            for col in 0..cols {
                let (mx, my) = (usize::from(col), usize::from(row) * 2);
                let symbol = match (self.is_dark(mx, my), self.is_dark(mx, my + 1)) {
                    (true, true) => "█",
                    (true, false) => "▀",
                    (false, true) => "▄",
                    (false, false) => " ",
                };
                if let Some(cell) = buf.cell_mut((x.saturating_add(col), y.saturating_add(row))) {
                    cell.set_symbol(symbol).set_style(style);
                }
            }
        }
    }
}

/// The share overlay: a box with the command, and the QR code (or the URL) of the web page.
pub fn draw_share(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let share = app.share();
    let qr = share.url.as_deref().and_then(Qr::new);
    let mut lines: Vec<Line> = Vec::new();
    match &share.command {
        Some(command) => {
            lines.push(Line::styled("Read this bio in any terminal:", theme.text));
            lines.push(Line::from(vec![Span::styled("  $ ", theme.muted), Span::styled(command, theme.big)]));
        }
        None if share.url.is_none() => {
            lines.push(Line::styled("This server has no public address set.", theme.muted));
        }
        None => {}
    }
    let text_width = lines.iter().map(Line::width).max().unwrap_or(0);
    let url_width = share.url.as_deref().map_or(0, UnicodeWidthStr::width) + 2;
    let (qr_cols, qr_rows) = qr.as_ref().map_or((0, 0), Qr::cells);
    let text_rows = u16::try_from(lines.len()).unwrap_or(0);
    // The box with the QR code: text, blank, caption, code, URL, borders (the hint is on the
    // bottom border).
    let with_qr_width = u16::try_from(text_width.max(url_width)).unwrap_or(u16::MAX).max(qr_cols) + 4;
    let with_qr_height = text_rows + 2 + qr_rows + 1 + 2;
    let show_qr = qr.is_some() && with_qr_width <= area.width && with_qr_height <= area.height;
    if let Some(url) = &share.url {
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        let caption = match (show_qr, share.command.is_some()) {
            (true, true) => "Or scan it for the web page:",
            (true, false) => "Scan it for the web page:",
            (false, _) => "On the web:",
        };
        lines.push(Line::styled(caption, theme.text));
        if show_qr {
            for _ in 0..qr_rows {
                lines.push(Line::default());
            }
        }
        lines.push(Line::from(vec![Span::raw("  "), Span::styled(url.as_str(), theme.link)]));
    }
    let width =
        lines.iter().map(Line::width).max().unwrap_or(0).max(usize::from(qr_cols) * usize::from(show_qr));
    let width = u16::try_from(width + 4).unwrap_or(u16::MAX);
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let popup = centred(area, width, height);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.number)
        .title(Line::styled(" Share ", theme.number))
        .title_bottom(Line::styled(" any key closes ", theme.muted).right_aligned());
    let inner = block.inner(popup).inner(ratatui::layout::Margin::new(1, 0));
    Clear.render(popup, buf);
    block.render(popup, buf);
    Paragraph::new(lines).render(inner, buf);
    if let (true, Some(qr)) = (show_qr, qr) {
        // The rows reserved after the caption.
        let y = inner.y + text_rows + u16::from(text_rows > 0) + 1;
        qr.draw(buf, inner.x + inner.width.saturating_sub(qr_cols) / 2, y, theme.qr);
    }
}

/// The join card: the whole screen, for a projector while the room connects.
pub fn draw_join_card(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    // Drawn from the top on a scratch buffer, then moved down so it sits in the middle.
    let mut card = Buffer::empty(area);
    draw_card_from_top(&mut card, area, app, theme);
    let hint_y = area.bottom().saturating_sub(1);
    let blank =
        |y: u16| (area.left()..area.right()).all(|x| card.cell((x, y)).is_none_or(|c| c.symbol() == " "));
    let bottom = (area.y..hint_y).rev().find(|&y| !blank(y)).unwrap_or(area.y);
    let shift = hint_y.saturating_sub(bottom + 1) / 2;
    Clear.render(area, buf);
    for y in area.y..=bottom {
        for x in area.left()..area.right() {
            if let (Some(from), Some(to)) = (card.cell((x, y)), buf.cell_mut((x, y.saturating_add(shift)))) {
                *to = from.clone();
            }
        }
    }
    let hint = Line::styled("any key returns", theme.muted).centered();
    Paragraph::new(hint).render(Rect::new(area.x, hint_y, area.width, 1), buf);
}

/// The join card's content, from the top of `area` (the hint row is left free).
fn draw_card_from_top(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let share = app.share();
    let mut y = area.y + u16::from(area.height >= 20);
    let title = format!("Join {} in your terminal", app.content().name);
    Paragraph::new(Line::styled(title, theme.muted).centered())
        .render(Rect::new(area.x, y, area.width, 1), buf);
    y += if area.height >= 20 { 2 } else { 1 };
    if let Some(command) = &share.command {
        // Block letters unless they would push the QR code off the screen.
        let qr_rows = share.url.as_deref().and_then(Qr::new).map_or(0, |qr| qr.cells().1 + 1);
        let big_fits = y + 5 + qr_rows < area.bottom() || qr_rows == 0;
        match big_name(command, area.width.saturating_sub(2), false).filter(|_| area.height >= 14 && big_fits)
        {
            Some((size, width, _)) => {
                let x = area.x + (area.width - width) / 2;
                draw_big(buf, Rect::new(x, y, width, 4), command, size, theme.big);
                y += 5;
            }
            None => {
                let line = Line::styled(command.as_str(), theme.big).centered();
                Paragraph::new(line).render(Rect::new(area.x, y, area.width, 1), buf);
                y += 2;
            }
        }
    }
    let hint_y = area.bottom().saturating_sub(1);
    let room = Rect::new(area.x, y, area.width, hint_y.saturating_sub(y));
    draw_code_and_count(buf, room, app, theme);
}

/// Below the command: the QR code at the left and the count at the right, or whichever fits.
fn draw_code_and_count(buf: &mut Buffer, room: Rect, app: &App, theme: &Theme) {
    let share = app.share();
    let qr = share.url.as_deref().and_then(Qr::new);
    let count = app.audience().map(|a| a.connected.to_string());
    let count_width =
        count.as_deref().map_or(0, |c| big_name(c, u16::MAX, false).map_or(0, |(_, w, _)| w)).max(12);
    let (qr_cols, qr_rows) = qr.as_ref().map_or((0, 0), Qr::cells);
    let gap = 6;
    let fits_qr = qr.is_some() && qr_rows < room.height && qr_cols <= room.width;
    let side_by_side = fits_qr && qr_cols + gap + count_width <= room.width;
    let total = if side_by_side {
        qr_cols + gap + count_width
    } else if fits_qr {
        qr_cols
    } else {
        count_width
    };
    let x = room.x + room.width.saturating_sub(total) / 2;
    if let (true, Some(qr)) = (fits_qr, &qr) {
        qr.draw(buf, x, room.y, theme.qr);
        if let Some(url) = &share.url {
            let line = Line::styled(url.as_str(), theme.muted);
            let url_x = x + qr_cols.saturating_sub(u16::try_from(url.width()).unwrap_or(0)) / 2;
            buf.set_line(url_x, room.y + qr_rows, &line, room.width);
        }
    } else if let Some(url) = &share.url {
        let line = Line::styled(url.as_str(), theme.link).centered();
        Paragraph::new(line).render(Rect::new(room.x, room.y, room.width, 1), buf);
    }
    if fits_qr && !side_by_side {
        return;
    }
    let Some(count) = count else { return };
    let count_x = if side_by_side { x + qr_cols + gap } else { x };
    let top = if side_by_side { room.y + qr_rows.saturating_sub(6) / 2 } else { room.y + 2 };
    match big_name(&count, room.width, false) {
        Some((size, width, _)) if top + 6 <= room.bottom() => {
            draw_big(buf, Rect::new(count_x, top, width, 4), &count, size, theme.big);
            let label = if count == "1" { "person here" } else { "people here" };
            buf.set_string(count_x, top + 5, label, theme.muted);
        }
        _ => {
            let line = Line::from(vec![Span::styled(count, theme.big), Span::styled(" here", theme.muted)]);
            buf.set_line(count_x, top.min(room.bottom().saturating_sub(1)), &line, room.width);
        }
    }
}
