//! Drawing one frame of a visitor's UI from an [`App`]: layout, theme, wrapping, hyperlinks and
//! the help overlay. Reads the app, never changes it; returns the geometry the app needs for
//! scrolling and clicks. Knows nothing about SSH or colour depth (the backend handles that).

use std::num::NonZeroU16;

use ratatui::Frame;
use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};
use unicode_width::UnicodeWidthStr;

use crate::content::text::wrap;
use crate::tui::app::{App, Follow, Overlay, Page, Role, Viewport};

/// Smallest terminal the layout works in; below it a short message asks for more room.
pub const MIN_WIDTH: u16 = 24;
pub const MIN_HEIGHT: u16 = 8;
/// From this width on, the sections are a list beside the text; below it, a one-line tab bar.
const WIDE_FROM: u16 = 64;

/// Every style the UI uses. Colours are mid-tones chosen to read on dark and light backgrounds;
/// selection and emphasis also use bold/reverse so they survive a no-colour terminal.
pub struct Theme {
    pub name: Style,
    pub headline: Style,
    pub intro: Style,
    pub border: Style,
    pub nav: Style,
    pub nav_selected: Style,
    pub nav_number: Style,
    pub title: Style,
    pub text: Style,
    pub link: Style,
    pub url: Style,
    pub key: Style,
    pub hint: Style,
    pub thumb: Style,
    pub track: Style,
    pub banner: Style,
    pub audience: Style,
}

const ACCENT: Color = Color::Rgb(0x5f, 0x87, 0xd7);
const WARM: Color = Color::Rgb(0xd7, 0x5f, 0x87);

pub const THEME: Theme = Theme {
    name: Style::new().fg(ACCENT).add_modifier(Modifier::BOLD),
    headline: Style::new().add_modifier(Modifier::BOLD),
    intro: Style::new().add_modifier(Modifier::ITALIC),
    border: Style::new().add_modifier(Modifier::DIM),
    nav: Style::new(),
    nav_selected: Style::new().fg(ACCENT).add_modifier(Modifier::BOLD.union(Modifier::REVERSED)),
    nav_number: Style::new().add_modifier(Modifier::DIM),
    title: Style::new().fg(WARM).add_modifier(Modifier::BOLD),
    text: Style::new(),
    link: Style::new().fg(ACCENT).add_modifier(Modifier::UNDERLINED),
    url: Style::new().add_modifier(Modifier::DIM),
    key: Style::new().fg(ACCENT).add_modifier(Modifier::BOLD),
    hint: Style::new().add_modifier(Modifier::DIM),
    thumb: Style::new().fg(ACCENT),
    track: Style::new().add_modifier(Modifier::DIM),
    banner: Style::new().fg(WARM).add_modifier(Modifier::BOLD.union(Modifier::REVERSED)),
    audience: Style::new().fg(ACCENT),
};

/// Per-connection drawing choices that depend on the client's terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Emit OSC 8 hyperlinks for link labels.
    pub hyperlinks: bool,
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

/// Draws the whole screen and returns the geometry of what was drawn.
pub fn draw(frame: &mut Frame, app: &App, options: Options) -> Viewport {
    let area = frame.area();
    if !fits(area.width, area.height) {
        draw_too_small(frame, area);
        return Viewport::default();
    }
    let content = app.content();
    let header_height = if content.intro.is_some() { 3 } else { 2 };
    let banner_height = u16::from(banner_text(app).is_some());
    let [header, banner, main, footer] = Layout::vertical([
        Constraint::Length(header_height),
        Constraint::Length(banner_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);

    draw_header(frame, app, header);
    if let Some(text) = banner_text(app) {
        frame.render_widget(
            Paragraph::new(Line::styled(text, THEME.banner)).centered().style(THEME.banner),
            banner,
        );
    }
    let mut viewport = Viewport::default();
    let body_area = if area.width >= WIDE_FROM {
        let nav_width = (0..app.page_count())
            .map(|i| app.page_title(i).width())
            .max()
            .unwrap_or(0)
            .saturating_add(6)
            .clamp(14, 32);
        let [nav, body] = Layout::horizontal([
            Constraint::Length(u16::try_from(nav_width).unwrap_or(32)),
            Constraint::Min(10),
        ])
        .areas(main);
        viewport.nav = draw_nav_list(frame, app, nav);
        body
    } else {
        let [tabs, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(main);
        viewport.nav = draw_nav_bar(frame, app, tabs);
        body
    };
    let (body_height, body_lines) = draw_body(frame, app, body_area, options);
    viewport.body_height = body_height;
    viewport.body_lines = body_lines;
    draw_footer(frame, app, footer);
    if app.overlay() == Overlay::Help {
        draw_help(frame, area);
    }
    viewport
}

fn draw_too_small(frame: &mut Frame, area: Rect) {
    let text = format!("Please enlarge your terminal (at least {MIN_WIDTH}x{MIN_HEIGHT})");
    let lines: Vec<Line> = wrap(&text, usize::from(area.width.max(1))).into_iter().map(Line::from).collect();
    let height = u16::try_from(lines.len()).unwrap_or(u16::MAX).min(area.height);
    let y = area.y + area.height.saturating_sub(height) / 2;
    let rect = Rect::new(area.x, y, area.width, height);
    frame.render_widget(Paragraph::new(lines).centered().style(THEME.headline), rect);
}

/// The one-line follow-mode banner, when a presenter is on.
fn banner_text(app: &App) -> Option<&'static str> {
    match (app.role(), app.follow()) {
        (Role::Presenter, _) => Some("You are presenting: everyone following sees your moves"),
        (Role::Visitor, Follow::Following) => Some("Following the speaker live · f: browse on your own"),
        (Role::Visitor, Follow::Browsing) => Some("The speaker is presenting · f: follow along"),
        (Role::Visitor, Follow::NoPresenter) => None,
    }
}

/// `42 here`, and for the presenter `42 here · 40 following`.
fn audience_text(app: &App) -> Option<String> {
    let audience = app.audience()?;
    Some(match app.role() {
        Role::Presenter => format!("{} here · {} following ", audience.connected, audience.following),
        Role::Visitor => format!("{} here ", audience.connected),
    })
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let content = app.content();
    // Row 0 (name, headline, audience) is drawn by `draw_top_line`, which the session also
    // uses to update the audience count on a screen it is not redrawing.
    let mut lines = vec![Line::default()];
    if let Some(intro) = &content.intro {
        lines.push(Line::styled(intro.as_str(), THEME.intro));
    }
    let block = Block::new().borders(Borders::BOTTOM).border_style(THEME.border);
    frame.render_widget(Paragraph::new(lines).block(block), area.inner(Margin::new(1, 0)));
    draw_top_line(frame.buffer_mut(), Rect::new(area.x, area.y, area.width, 1), app);
}

/// The first row: name and headline on the left, the audience count on the right when it fits.
pub fn draw_top_line(buf: &mut Buffer, row: Rect, app: &App) {
    let content = app.content();
    let name = Line::from(vec![
        Span::styled(content.name.as_str(), THEME.name),
        Span::styled("  ·  ", THEME.border),
        Span::styled(content.headline.as_str(), THEME.headline),
    ]);
    let inner = row.inner(Margin::new(1, 0));
    buf.set_line(inner.x, inner.y, &name, inner.width);
    if let Some(text) = audience_text(app) {
        let width = u16::try_from(text.width()).unwrap_or(u16::MAX);
        // Only where it does not cover the name.
        if usize::from(width) + name.width() + 3 <= usize::from(row.width) {
            buf.set_string(row.right().saturating_sub(width), row.y, text, THEME.audience);
        }
    }
}

/// The side list of pages, numbered for the 1-9 keys.
fn draw_nav_list(frame: &mut Frame, app: &App, area: Rect) -> Vec<(Rect, usize)> {
    let block =
        Block::bordered().border_type(BorderType::Rounded).border_style(THEME.border).title(" Sections ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut hits = Vec::new();
    for index in 0..app.page_count() {
        let Ok(offset) = u16::try_from(index) else { break };
        if offset >= inner.height {
            break;
        }
        let row = Rect::new(inner.x, inner.y + offset, inner.width, 1);
        let number = if index < 9 { format!("{} ", index + 1) } else { "  ".into() };
        let selected = index == app.selected();
        let style = if selected { THEME.nav_selected } else { THEME.nav };
        let marker = if selected { "▸" } else { " " };
        let line = Line::from(vec![
            Span::styled(marker, THEME.key),
            Span::styled(number, THEME.nav_number),
            Span::styled(app.page_title(index), style),
        ]);
        frame.render_widget(Paragraph::new(line), row);
        hits.push((row, index));
    }
    hits
}

/// The narrow layout's one-line bar: `‹ 3/7 Silicon Valley ›`, arrows clickable.
fn draw_nav_bar(frame: &mut Frame, app: &App, area: Rect) -> Vec<(Rect, usize)> {
    let count = app.page_count();
    let selected = app.selected();
    let label = format!(" {}/{} {} ", selected + 1, count, app.page_title(selected));
    let line = Line::from(vec![
        Span::styled("‹", THEME.key),
        Span::styled(label, THEME.nav_selected),
        Span::styled("›", THEME.key),
    ]);
    frame.render_widget(Paragraph::new(line).centered(), area);
    let width = u16::try_from(line_width_of(app, selected)).unwrap_or(area.width).min(area.width);
    let start = area.x + area.width.saturating_sub(width) / 2;
    let previous = (selected + count - 1) % count.max(1);
    let next = (selected + 1) % count.max(1);
    vec![
        (Rect::new(start, area.y, 1, 1), previous),
        (Rect::new((start + width).saturating_sub(1), area.y, 1, 1), next),
    ]
}

fn line_width_of(app: &App, selected: usize) -> usize {
    let count = app.page_count();
    format!("‹ {}/{} {} ›", selected + 1, count, app.page_title(selected)).width()
}

/// The page text with its scroll indicator. Returns (visible rows, total wrapped lines).
fn draw_body(frame: &mut Frame, app: &App, area: Rect, options: Options) -> (usize, usize) {
    let title = app.page_title(app.selected());
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(THEME.border)
        .title(Line::from(Span::styled(format!(" {title} "), THEME.title)));
    let inner = block.inner(area);
    // One column for the scroll indicator, one of breathing room on the left.
    let text_area = Rect::new(inner.x + 1, inner.y, inner.width.saturating_sub(3), inner.height);
    let lines = body_lines(app, usize::from(text_area.width));
    let height = usize::from(text_area.height);
    let total = lines.len();
    let scroll = app.scroll().min(total.saturating_sub(height));
    let position = if total > height {
        format!(" {}-{} of {} ", scroll + 1, (scroll + height).min(total), total)
    } else {
        String::from(" all ")
    };
    frame.render_widget(block.title_bottom(Line::styled(position, THEME.hint).right_aligned()), area);

    let buf = frame.buffer_mut();
    for (row, line) in lines.iter().skip(scroll).take(height).enumerate() {
        let Ok(row) = u16::try_from(row) else { break };
        let y = text_area.y + row;
        match line {
            BodyLine::Text(text, style) => {
                buf.set_stringn(text_area.x, y, text, usize::from(text_area.width), *style);
            }
            BodyLine::Link { label, url } => {
                put_link(buf, text_area.x, y, text_area.width, label, url, options.hyperlinks);
            }
        }
    }
    draw_scroll_indicator(
        buf,
        Rect::new(inner.right().saturating_sub(1), inner.y, 1, inner.height),
        scroll,
        height,
        total,
    );
    (height, total)
}

/// Wraps the selected page to `width` columns.
fn body_lines(app: &App, width: usize) -> Vec<BodyLine> {
    let content = app.content();
    let mut lines = Vec::new();
    match app.page(app.selected()) {
        Page::Section(i) => {
            let Some(section) = content.sections.get(i) else { return lines };
            for (n, paragraph) in section.paragraphs.iter().enumerate() {
                if n > 0 {
                    lines.push(BodyLine::Text(String::new(), THEME.text));
                }
                lines.extend(wrap(paragraph, width).into_iter().map(|l| BodyLine::Text(l, THEME.text)));
            }
        }
        Page::Links => {
            for (n, link) in content.links.iter().enumerate() {
                if n > 0 {
                    lines.push(BodyLine::Text(String::new(), THEME.text));
                }
                lines.push(BodyLine::Link { label: link.label.clone(), url: link.url.clone() });
                for part in wrap(&link.url, width.saturating_sub(2)) {
                    lines.push(BodyLine::Text(format!("  {part}"), THEME.url));
                }
            }
        }
    }
    lines
}

/// Writes a link label at (x, y). With hyperlinks on, the whole OSC 8 sequence goes into the
/// first cell with the label's width forced, and the cells it covers are skipped, so terminals
/// that ignore OSC 8 still see the label in exactly the same columns.
fn put_link(buf: &mut Buffer, x: u16, y: u16, width: u16, label: &str, url: &str, hyperlinks: bool) {
    let (end, _) = buf.set_stringn(x, y, label, usize::from(width), THEME.link);
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

fn draw_scroll_indicator(buf: &mut Buffer, area: Rect, scroll: usize, height: usize, total: usize) {
    if total <= height || area.height == 0 {
        return;
    }
    let track = usize::from(area.height);
    let thumb = (track * height / total).clamp(1, track);
    let max_scroll = total - height;
    let start = (track - thumb) * scroll / max_scroll.max(1);
    for i in 0..track {
        let Ok(dy) = u16::try_from(i) else { break };
        let (symbol, style) =
            if (start..start + thumb).contains(&i) { ("┃", THEME.thumb) } else { ("│", THEME.track) };
        if let Some(cell) = buf.cell_mut((area.x, area.y + dy)) {
            cell.set_symbol(symbol).set_style(style);
        }
    }
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let mouse = if app.mouse_enabled() { "mouse off" } else { "mouse on" };
    let hints: [(&str, &str); 5] =
        [("←/→", "section"), ("↑/↓", "scroll"), ("?", "help"), ("m", mouse), ("q", "quit")];
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (key, what) in hints {
        let needed = key.width() + what.width() + 3;
        if used + needed > usize::from(area.width) {
            break;
        }
        used += needed;
        spans.push(Span::styled(key, THEME.key));
        spans.push(Span::styled(format!(" {what}  "), THEME.hint));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The keys, in a box over the page.
fn draw_help(frame: &mut Frame, area: Rect) {
    let rows: [(&str, &str); 10] = [
        ("←/→  h/l  Tab", "previous / next section"),
        ("1-9", "jump to a section"),
        ("↑/↓  j/k", "scroll a line"),
        ("PgUp/PgDn  Space", "scroll a page"),
        ("Home/End  g/G", "top / bottom"),
        ("mouse", "wheel scrolls, click picks a section"),
        ("m", "mouse on/off (off lets you select text)"),
        ("f", "follow the speaker / browse on your own"),
        ("?", "this help (any key closes it)"),
        ("q  Esc  Ctrl-C", "quit"),
    ];
    let lines: Vec<Line> = rows
        .iter()
        .map(|(k, what)| Line::from(vec![Span::styled(format!("{k:>17}  "), THEME.key), Span::raw(*what)]))
        .collect();
    let width = lines.iter().map(Line::width).max().unwrap_or(0) + 4;
    let width = u16::try_from(width).unwrap_or(u16::MAX).min(area.width);
    let height = (u16::try_from(lines.len()).unwrap_or(u16::MAX) + 2).min(area.height);
    let popup = Rect::new(
        area.x + area.width.saturating_sub(width) / 2,
        area.y + area.height.saturating_sub(height) / 2,
        width,
        height,
    );
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(THEME.key)
        .title(Line::styled(" Keys ", THEME.title));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::fixtures;
    use crate::tui::input::{Event, Key};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn app(fixture: &str) -> App {
        App::new(fixtures::shared(fixture), None)
    }

    /// Draws `app` at `width`x`height` (twice, as the session does after feeding back the
    /// geometry) and returns the screen as text.
    fn screen(app: &mut App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        for _ in 0..2 {
            let mut viewport = Viewport::default();
            terminal.draw(|f| viewport = draw(f, app, Options::default())).expect("draw");
            app.set_viewport(viewport);
        }
        let buffer = terminal.backend().buffer();
        let mut out = String::new();
        for y in 0..height {
            // A wide character's second column is a placeholder cell: skip it, as a terminal
            // shows one glyph over both columns.
            let mut skip = 0;
            for x in 0..width {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buffer[(x, y)].symbol();
                skip = unicode_width::UnicodeWidthStr::width(symbol).saturating_sub(1);
                out.push_str(symbol);
            }
            out.push('\n');
        }
        out
    }

    #[test]
    fn snapshot_80x24() {
        insta::assert_snapshot!(screen(&mut app(fixtures::LONG), 80, 24));
    }

    #[test]
    fn snapshot_40x12() {
        insta::assert_snapshot!(screen(&mut app(fixtures::SMALL), 40, 12));
    }

    #[test]
    fn snapshot_200x60_on_the_last_section() {
        let mut app = app(fixtures::LONG);
        app.handle(&Event::Key(Key::Char('9')));
        insta::assert_snapshot!(screen(&mut app, 200, 60));
    }

    #[test]
    fn snapshot_help_overlay() {
        let mut app = app(fixtures::SMALL);
        app.handle(&Event::Key(Key::Char('?')));
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn snapshot_wide_characters_80x24() {
        insta::assert_snapshot!(screen(&mut app(fixtures::UNICODE), 80, 24));
    }

    #[test]
    fn snapshot_maximum_sizes_80x24() {
        insta::assert_snapshot!(screen(&mut app(fixtures::MAX), 80, 24));
    }

    #[test]
    fn snapshot_maximum_sizes_40x12() {
        insta::assert_snapshot!(screen(&mut app(fixtures::MAX), 40, 12));
    }

    #[test]
    fn snapshot_links_page_80x24() {
        let mut app = App::new(fixtures::shared(fixtures::LINKS), Some("links"));
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn too_small_asks_for_room() {
        let text = screen(&mut app(fixtures::SMALL), 20, 5);
        assert!(text.contains("enlarge"), "{text}");
    }

    #[test]
    fn scrolling_changes_the_visible_text() {
        let mut app = app(fixtures::LONG);
        app.handle(&Event::Key(Key::Char('6')));
        let top = screen(&mut app, 60, 14);
        app.handle(&Event::Key(Key::Char('G')));
        let bottom = screen(&mut app, 60, 14);
        assert!(top.contains("The atlas part 1.") && !top.contains("Chapter-6-ends."), "{top}");
        assert!(bottom.contains("Chapter-6-ends.") && !bottom.contains("The atlas part 1."), "{bottom}");
    }

    #[test]
    fn links_page_lists_labels_and_urls() {
        let mut app = App::new(fixtures::shared(fixtures::LINKS), Some("links"));
        let text = screen(&mut app, 80, 24);
        for (label, url) in [
            ("Homepage", "https://cyrus.example.org/"),
            ("Hive log", "http://hives.example.net/log"),
            ("Email", "mailto:cyrus@example.com"),
        ] {
            assert!(text.contains(label) && text.contains(url), "{label}: {text}");
        }
    }

    #[test]
    fn every_fixture_draws_at_every_size_without_panicking() {
        for (name, text) in fixtures::ALL {
            for (w, h) in [(1, 1), (20, 5), (24, 8), (40, 12), (80, 24), (200, 60), (500, 200)] {
                let mut app = app(text);
                for key in ['?', 'x', 'G', '9', 'j'] {
                    let drawn = screen(&mut app, w, h);
                    assert_eq!(drawn.lines().count(), usize::from(h), "{name} {w}x{h}");
                    app.handle(&Event::Key(Key::Char(key)));
                }
            }
        }
    }
}
