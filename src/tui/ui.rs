//! Drawing one frame of a visitor's UI from an [`App`]: wrapping, hyperlinks and the help
//! overlay (where each part goes is `layout`; the share overlay and join card are in
//! [`crate::tui::share`]). Reads the app,
//! never changes it; returns the geometry the app needs for scrolling and clicks. Styles come
//! from [`crate::tui::theme`]; the backend maps colours to the client's depth.
//!
//! The layout, from the top: a status row (the audience count at the right), the follow banner
//! when a presenter is on, the hero (the name in block letters, headline, intro) or on small
//! terminals a one-line header, then the chapter navigation (a timeline beside the text on wide
//! terminals, a one-line strip above it on narrow ones), the chapter title, the text in a
//! reading column of at most [`READING_WIDTH`] columns, "chapter 2 of 7 · next: ...", and the
//! key hints.

use std::num::NonZeroU16;

use ratatui::Frame;
use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Widget};
use tui_big_text::{BigText, PixelSize};
use unicode_width::UnicodeWidthStr;

use crate::content::text::wrap;
use crate::tui::app::{App, Follow, Overlay, Page, Role, Viewport};
use crate::tui::keymap;
use crate::tui::nav::{draw_strip, draw_timeline, fit, number};
use crate::tui::share;
use crate::tui::terminal::ColorDepth;
use crate::tui::theme::{self, Theme};

mod layout;

use self::layout::{Nav, areas, columns, hero_size};

/// Smallest terminal the layout works in; below it a short message asks for more room.
pub const MIN_WIDTH: u16 = 24;
pub const MIN_HEIGHT: u16 = 8;
/// The widest the text gets: longer lines are hard to read.
pub const READING_WIDTH: u16 = 72;

/// Per-connection drawing choices that depend on the client's terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Emit OSC 8 hyperlinks for link labels.
    pub hyperlinks: bool,
}

/// How the frame is drawn: the connection's options and its colour depth.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub options: Options,
    pub depth: ColorDepth,
}

impl Look {
    fn theme(self, app: &App) -> &'static Theme {
        theme::theme(app.palette(), self.depth)
    }
}

/// One line of page text: plain styled text, or a link label that becomes an OSC 8 hyperlink.
enum BodyLine {
    Text(String, Style),
    Link { label: String, url: String },
}

/// True when `width`x`height` is big enough for the layout (else a "please enlarge" message).
pub fn fits(width: u16, height: u16) -> bool {
    width >= MIN_WIDTH && height >= MIN_HEIGHT
}

/// Block letters: pixel size, width and height in cells.
pub type BigSize = (PixelSize, u16, u16);

/// `text` in block letters: pixel size, width and height in cells, the largest that fits in
/// `width` (the tallest size only when `tall`).
pub fn big_name(text: &str, width: u16, tall: bool) -> Option<BigSize> {
    // The 8x8 font has Basic Latin and Latin-1; anything else would be drawn blank.
    if !text.chars().all(|c| matches!(c, ' '..='~' | '\u{a0}'..='\u{ff}')) {
        return None;
    }
    let chars = u16::try_from(text.chars().count()).ok()?;
    let sizes = [(PixelSize::Full, 8, 8), (PixelSize::HalfHeight, 8, 4), (PixelSize::Quadrant, 4, 4)];
    sizes
        .into_iter()
        .skip(usize::from(!tall))
        .map(|(size, per_char, rows)| (size, chars.saturating_mul(per_char), rows))
        .find(|&(_, cells, _)| cells <= width)
}

/// Draws the whole screen and returns the geometry of what was drawn.
pub fn draw(frame: &mut Frame, app: &App, look: Look) -> Viewport {
    let area = frame.area();
    let theme = look.theme(app);
    if !fits(area.width, area.height) {
        draw_too_small(frame, area, theme);
        return Viewport::default();
    }
    if app.overlay() == Overlay::JoinCard {
        share::draw_join_card(frame.buffer_mut(), area, app, theme);
        return Viewport::default();
    }
    let areas = areas(app, area);
    let buf = frame.buffer_mut();
    draw_top_line(buf, Rect::new(area.x, area.y, area.width, 1), area.height, app, look);
    if let (Some(rect), Some(text)) = (areas.banner, banner_text(app, area.width)) {
        Paragraph::new(Line::styled(text, theme.banner)).centered().style(theme.banner).render(rect, buf);
    }
    if let Some((rect, big)) = areas.hero {
        draw_hero(buf, rect, big, app, theme);
    }
    let nav = match areas.nav {
        Nav::Timeline(rect) => draw_timeline(buf, rect, app, theme),
        Nav::Strip(rect) => draw_strip(buf, rect, app, theme),
    };
    let mut viewport = Viewport { nav, ..Viewport::default() };
    draw_title(buf, areas.title, app, theme);
    let (body_height, body_lines) = draw_body(buf, areas.body, app, look, theme);
    viewport.body_height = body_height;
    viewport.body_lines = body_lines;
    // A short text is followed by its status line, not by a gap down to it.
    let mut status = areas.status;
    if body_lines < body_height {
        let under = areas.body.y + u16::try_from(body_lines).unwrap_or(0) + 1;
        status.y = status.y.min(under);
    }
    if let Some(next) = draw_status(buf, status, app, theme, (body_height, body_lines)) {
        viewport.nav.push(next);
    }
    draw_footer(buf, areas.footer, app, theme);
    match app.overlay() {
        Overlay::Help => draw_help(frame, area, app, theme),
        Overlay::Share => share::draw_share(frame.buffer_mut(), area, app, theme),
        Overlay::None | Overlay::JoinCard => {}
    }
    viewport
}

fn draw_too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
    // The size on a line of its own, so it is never broken across lines.
    let mut lines: Vec<Line> = wrap("Please enlarge your terminal", usize::from(area.width.max(1)))
        .into_iter()
        .map(Line::from)
        .collect();
    let size = format!("(at least {MIN_WIDTH}x{MIN_HEIGHT})");
    let size =
        if size.width() <= usize::from(area.width) { size } else { format!("({MIN_WIDTH}x{MIN_HEIGHT})") };
    lines.push(Line::from(size));
    let height = u16::try_from(lines.len()).unwrap_or(u16::MAX).min(area.height);
    let y = area.y + area.height.saturating_sub(height) / 2;
    let rect = Rect::new(area.x, y, area.width, height);
    frame.render_widget(Paragraph::new(lines).centered().style(theme.name), rect);
}

/// The one-line follow-mode banner, when a presenter is on (shorter on narrow terminals).
fn banner_text(app: &App, width: u16) -> Option<&'static str> {
    let narrow = width < 56;
    match (app.role(), app.follow(), narrow) {
        (Role::Presenter, _, false) => Some("You are presenting: everyone following sees your moves"),
        (Role::Presenter, _, true) => Some("You are presenting"),
        (Role::Visitor, Follow::Following, false) => {
            Some("Following the speaker live · f: browse on your own")
        }
        (Role::Visitor, Follow::Following, true) => Some("Following the speaker · f: browse"),
        (Role::Visitor, Follow::Browsing, false) => Some("The speaker is presenting · f: follow along"),
        (Role::Visitor, Follow::Browsing, true) => Some("Speaker presenting · f: follow"),
        (Role::Visitor, Follow::NoPresenter, _) => None,
    }
}

/// `42 here`, and for the presenter `42 here · 40 following`.
fn audience_text(app: &App) -> Option<String> {
    let audience = app.audience()?;
    Some(match app.role() {
        Role::Presenter => format!("● {} here · {} following ", audience.connected, audience.following),
        Role::Visitor => format!("● {} here ", audience.connected),
    })
}

/// The first row, all of it: on small terminals the name and headline at the left; the
/// audience count at the right when it fits. The session also draws this row alone to update
/// the count on a screen it is not redrawing, so nothing else may draw on row 0.
/// `height` is the screen's (it decides between the hero and the one-line header).
pub fn draw_top_line(buf: &mut Buffer, row: Rect, height: u16, app: &App, look: Look) {
    let theme = look.theme(app);
    let content = app.content();
    let screen = Rect::new(row.x, row.y, row.width, height);
    let x = columns(app, screen).x;
    let hero = hero_size(app, screen, x);
    let audience = audience_text(app);
    let audience_width = audience.as_deref().map_or(0, UnicodeWidthStr::width);
    let mut used = 0;
    // With the hero, the name is in it (never twice on one screen); without, it is here.
    if hero.is_none() {
        let name = Line::from(vec![
            Span::styled(content.name.as_str(), theme.name),
            Span::styled(" · ", theme.rule),
            Span::styled(content.headline.as_str(), theme.headline),
        ]);
        let room = usize::from(row.width.saturating_sub(2)).saturating_sub(audience_width);
        let name = if name.width() <= room {
            name
        } else {
            Line::from(Span::styled(fit(&content.name, room), theme.name))
        };
        let (end, _) = buf.set_line(row.x + 1, row.y, &name, row.width.saturating_sub(2));
        used = usize::from(end.saturating_sub(row.x));
    }
    if let Some(text) = audience {
        // Only where it does not cover the name.
        if used + audience_width < usize::from(row.width) {
            let width = u16::try_from(audience_width).unwrap_or(u16::MAX);
            buf.set_string(row.right().saturating_sub(width), row.y, text, theme.audience);
        }
    }
}

/// The name (in block letters when they fit), the headline in the accent colour, the intro
/// muted.
fn draw_hero(buf: &mut Buffer, area: Rect, big: Option<BigSize>, app: &App, theme: &Theme) {
    let content = app.content();
    let mut y = area.y;
    match big {
        Some((size, width, rows)) => {
            draw_big(buf, Rect::new(area.x, y, width, rows), &content.name, size, theme.name);
            y += rows;
        }
        None => {
            buf.set_string(area.x, y, fit(&content.name, usize::from(area.width)), theme.name);
            y += 1;
        }
    }
    // Cut with an ellipsis, so a long line never looks like a rendering fault.
    buf.set_string(area.x, y, fit(&content.headline, usize::from(area.width)), theme.headline);
    if let Some(intro) = &content.intro {
        y += 1;
        buf.set_string(area.x, y, fit(intro, usize::from(area.width)), theme.intro);
    }
}

/// Draws `text` in block letters (4 rows). The widget styles the blank pixels too; they are
/// reset to plain blanks, which cost no bytes on a fresh screen.
pub fn draw_big(buf: &mut Buffer, area: Rect, text: &str, size: PixelSize, style: Style) {
    BigText::builder().pixel_size(size).style(style).lines(vec![Line::from(text)]).build().render(area, buf);
    for position in area.positions() {
        if let Some(cell) = buf.cell_mut(position)
            && cell.symbol() == " "
        {
            cell.reset();
        }
    }
}

/// The chapter's number in the accent colour and its title.
fn draw_title(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let index = app.selected();
    let number = number(app, index);
    let room = usize::from(area.width).saturating_sub(number.width() + 2);
    let line = Line::from(vec![
        Span::styled(number, theme.number),
        Span::raw("  "),
        Span::styled(fit(app.page_title(index), room), theme.title),
    ]);
    buf.set_line(area.x, area.y, &line, area.width);
}

/// The page text. Returns (visible rows, total wrapped lines).
fn draw_body(buf: &mut Buffer, area: Rect, app: &App, look: Look, theme: &Theme) -> (usize, usize) {
    let lines = body_lines(app, app.selected(), usize::from(area.width), theme);
    let height = usize::from(area.height);
    let total = lines.len();
    let scroll = app.scroll_at(total).min(total.saturating_sub(height));
    for (row, line) in lines.iter().skip(scroll).take(height).enumerate() {
        let Ok(row) = u16::try_from(row) else { break };
        let y = area.y + row;
        match line {
            BodyLine::Text(text, style) => {
                buf.set_stringn(area.x, y, text, usize::from(area.width), *style);
            }
            BodyLine::Link { label, url } => {
                put_link(buf, (area.x, y, area.width), label, url, look.options.hyperlinks, theme.link);
            }
        }
    }
    (height, total)
}

/// Wraps page `page` to `width` columns, a blank line between paragraphs.
fn body_lines(app: &App, page: usize, width: usize, theme: &Theme) -> Vec<BodyLine> {
    let content = app.content();
    let mut lines = Vec::new();
    match app.page(page) {
        Page::Section(i) => {
            let Some(section) = content.sections.get(i) else { return lines };
            for (n, paragraph) in section.paragraphs.iter().enumerate() {
                if n > 0 {
                    lines.push(BodyLine::Text(String::new(), theme.text));
                }
                lines.extend(wrap(paragraph, width).into_iter().map(|l| BodyLine::Text(l, theme.text)));
            }
        }
        Page::Links => {
            for (n, link) in content.links.iter().enumerate() {
                if n > 0 {
                    lines.push(BodyLine::Text(String::new(), theme.text));
                }
                lines.push(BodyLine::Link { label: link.label.clone(), url: link.url.clone() });
                for part in wrap(&link.url, width.saturating_sub(2)) {
                    lines.push(BodyLine::Text(format!("  {part}"), theme.muted));
                }
            }
        }
    }
    lines
}

/// Writes a link label at (x, y) within `width`. With hyperlinks on, the whole OSC 8 sequence
/// goes into the first cell with the label's width forced, and the cells it covers are skipped,
/// so terminals that ignore OSC 8 still see the label in exactly the same columns.
fn put_link(
    buf: &mut Buffer,
    (x, y, width): (u16, u16, u16),
    label: &str,
    url: &str,
    hyperlinks: bool,
    style: Style,
) {
    let (end, _) = buf.set_stringn(x, y, label, usize::from(width), style);
    let shown = end.saturating_sub(x);
    if !hyperlinks || shown == 0 {
        return;
    }
    let visible: String =
        (x..end).filter_map(|cx| buf.cell((cx, y)).map(|c| c.symbol().to_string())).collect();
    let Some(width) = NonZeroU16::new(shown) else { return };
    if let Some(cell) = buf.cell_mut((x, y)) {
        cell.set_symbol(&format!("\x1b]8;;{url}\x1b\\{visible}\x1b]8;;\x1b\\"))
            .set_diff_option(CellDiffOption::ForcedWidth(width));
    }
    for cx in x + 1..end {
        if let Some(cell) = buf.cell_mut((cx, y)) {
            cell.set_diff_option(CellDiffOption::Skip);
        }
    }
}

/// "chapter 2 of 7 · next: Title" at the left (the "next" part clickable), the scroll position
/// at the right when the text scrolls. Returns the click target of "next".
fn draw_status(
    buf: &mut Buffer,
    area: Rect,
    app: &App,
    theme: &Theme,
    (height, total): (usize, usize),
) -> Option<(Rect, usize)> {
    let chapters = app.content().sections.len();
    let selected = app.selected();
    let here = match app.page(selected) {
        Page::Section(i) => format!("chapter {} of {chapters}", i + 1),
        Page::Links => String::from("links"),
    };
    let next = selected + 1;
    let position = (total > height).then(|| {
        let scroll = app.scroll_at(total).min(total - height);
        format!("{}-{} of {}", scroll + 1, scroll + height, total)
    });
    let position_width = position.as_deref().map_or(0, |p| p.width() + 2);
    let room = usize::from(area.width).saturating_sub(position_width);
    // Short form where the long one would be cut: `2/7`.
    let here = match app.page(selected) {
        Page::Section(i) if here.width() > room => format!("{}/{chapters}", i + 1),
        _ => here,
    };
    let mut spans = vec![Span::styled(here, theme.muted)];
    let mut target = None;
    if next < app.page_count() {
        let lead = " · next: ";
        let used = spans.iter().map(Span::width).sum::<usize>() + lead.width();
        if used + 4 <= room {
            let title = fit(app.page_title(next), room - used);
            let x = area.x + u16::try_from(used).unwrap_or(0);
            let width = u16::try_from(title.width()).unwrap_or(0);
            target = Some((Rect::new(x, area.y, width, 1), next));
            spans.push(Span::styled(lead, theme.muted));
            spans.push(Span::styled(title, theme.nav_selected));
        }
    } else if Page::Links != app.page(selected) {
        spans.push(Span::styled(" · the end", theme.muted));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), u16::try_from(room).unwrap_or(area.width));
    if let Some(position) = position {
        let width = u16::try_from(position.width()).unwrap_or(0);
        buf.set_string(area.right().saturating_sub(width), area.y, position, theme.muted);
    }
    target
}

/// The key hints from the key map: as many as fit, the least important dropped first.
fn draw_footer(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let mut hints: Vec<(&str, &str, u8)> = keymap::footer(app.role()).collect();
    if !app.mouse_enabled() {
        // Mouse reporting is off (to select text): say how to get it back.
        hints.insert(hints.len().saturating_sub(2), ("m", "enable mouse", 1));
    }
    let width =
        |hints: &[(&str, &str, u8)]| hints.iter().map(|(k, w, _)| k.width() + w.width() + 4).sum::<usize>();
    while width(&hints) > usize::from(area.width) + 3 {
        let Some(least) = hints.iter().enumerate().max_by_key(|(_, h)| h.2).map(|(i, _)| i) else { break };
        hints.remove(least);
    }
    let mut spans = Vec::new();
    for (key, what, _) in hints {
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::styled(format!(" {what}   "), theme.muted));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
}

/// The keys, from the key map, in a box over the page.
fn draw_help(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let presenting = app.role() == Role::Presenter || app.follow() != Follow::NoPresenter;
    // (keys, description, the description on a phone).
    let mut rows: Vec<(&str, &str, &str)> =
        keymap::help(app.role(), presenting).map(|b| (b.shown, b.help, b.short)).collect();
    let after_mouse_key = rows.iter().position(|(k, _, _)| *k == "m").map_or(rows.len(), |i| i + 1);
    rows.insert(after_mouse_key, ("mouse", "wheel scrolls, click picks a chapter", "wheel/click"));
    let key_width = rows.iter().map(|(k, _, _)| k.width()).max().unwrap_or(0);
    let full: Vec<Line> = rows
        .iter()
        .map(|(k, what, _)| {
            Line::from(vec![
                Span::styled(format!(" {k:>key_width$}  "), theme.key),
                Span::styled(*what, theme.text),
            ])
        })
        .collect();
    let fits = full.iter().map(Line::width).max().unwrap_or(0) + 3 <= usize::from(area.width)
        && full.len() + 2 <= usize::from(area.height);
    // On a small terminal: the first key of each row and its text, in one column when the rows
    // fit, else the short texts in two.
    let lines = if fits {
        full
    } else if rows.len() + 2 <= usize::from(area.height) {
        let long: Vec<(&str, &str)> = rows.iter().map(|&(k, what, _)| (k, what)).collect();
        help_in_columns(&long, 1, area, theme)
    } else {
        let short: Vec<(&str, &str)> = rows.iter().map(|&(k, _, short)| (k, short)).collect();
        help_in_columns(&short, 2, area, theme)
    };
    let width = lines.iter().map(Line::width).max().unwrap_or(0) + 3;
    let width = u16::try_from(width).unwrap_or(u16::MAX).min(area.width);
    let height = (u16::try_from(lines.len()).unwrap_or(u16::MAX) + 2).min(area.height);
    let popup = centred(area, width, height);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.number)
        .title(Line::styled(" Keys ", theme.number));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

/// The help rows packed in `columns` columns (1 or 2) for small terminals: the first key of
/// each row and its text, cut to the column with an ellipsis.
fn help_in_columns<'a>(
    rows: &[(&'a str, &'a str)],
    columns: usize,
    area: Rect,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let columns = columns.max(1);
    let column = usize::from(area.width.saturating_sub(3)) / columns;
    let first_key = |keys: &'a str| keys.split_whitespace().next().unwrap_or(keys);
    // One column: keys right-aligned as in the full help. Two: each cell padded to its column.
    let key_width =
        if columns == 1 { rows.iter().map(|(k, _)| first_key(k).width()).max().unwrap_or(0) } else { 0 };
    let cell = |(keys, what): (&'a str, &'a str)| {
        let key = format!(" {:>key_width$}", first_key(keys));
        let text = fit(what, column.saturating_sub(key.width() + 1));
        let pad = if columns == 1 { 0 } else { column.saturating_sub(key.width() + text.width()) };
        vec![Span::styled(key, theme.key), Span::styled(format!(" {text}{}", " ".repeat(pad)), theme.text)]
    };
    let per_column = rows.len().div_ceil(columns);
    (0..per_column)
        .map(|i| {
            let spans = (0..columns)
                .filter_map(|c| rows.get(i + c * per_column).copied())
                .flat_map(cell)
                .collect::<Vec<_>>();
            Line::from(spans)
        })
        .collect()
}

/// A `width`x`height` rectangle in the middle of `area`.
pub fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (width.min(area.width), height.min(area.height));
    Rect::new(area.x + (area.width - width) / 2, area.y + (area.height - height) / 2, width, height)
}

#[cfg(test)]
mod tests;
