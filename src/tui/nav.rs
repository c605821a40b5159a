//! The chapter navigation: a timeline beside the text on wide terminals, a one-line strip over
//! it on narrow ones, both numbered `01`, `02`... like the web page. Drawing only; returns the
//! click targets (rectangle, page) for the app.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

use crate::tui::app::{App, Page};
use crate::tui::theme::Theme;

/// `01`, `02`, ... as on the web page; the links page has no number.
pub fn number(app: &App, index: usize) -> String {
    match app.page(index) {
        Page::Section(i) => format!("{:02}", i + 1),
        Page::Links => String::from("↗"),
    }
}

/// Cuts `text` to `width` columns, ending in `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Columns the timeline takes: the longest title, within bounds.
pub fn timeline_width(app: &App) -> u16 {
    let longest = (0..app.page_count()).map(|i| app.page_title(i).width()).max().unwrap_or(0);
    u16::try_from(longest + 5).unwrap_or(u16::MAX).clamp(16, 30)
}

/// The chapters as a timeline: `● 01 Title`, joined by a line when there is room.
pub fn draw_timeline(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) -> Vec<(Rect, usize)> {
    let count = app.page_count();
    let spaced = usize::from(area.height) >= count * 2;
    let step: u16 = if spaced { 2 } else { 1 };
    let mut hits = Vec::new();
    for index in 0..count {
        let Some(y) = u16::try_from(index).ok().and_then(|i| i.checked_mul(step)).map(|dy| area.y + dy)
        else {
            break;
        };
        if y >= area.bottom() {
            break;
        }
        let selected = index == app.selected();
        let (dot, style) = if selected { ("●", theme.nav_selected) } else { ("○", theme.nav) };
        let title = fit(app.page_title(index), usize::from(area.width.saturating_sub(5)));
        let line = Line::from(vec![
            Span::styled(dot, if selected { theme.number } else { theme.rule }),
            Span::raw(" "),
            Span::styled(number(app, index), if selected { theme.number } else { theme.nav }),
            Span::raw(" "),
            Span::styled(title, style),
        ]);
        buf.set_line(area.x, y, &line, area.width);
        if spaced && index + 1 < count && y + 1 < area.bottom() {
            buf.set_string(area.x, y + 1, "│", theme.rule);
        }
        hits.push((Rect::new(area.x, y, area.width, 1), index));
    }
    hits
}

/// The chapters on one line: `01 Early days  02 The lighthouse  ›`, scrolled so the current
/// one shows; `‹` and `›` (previous, next) are clickable like the titles.
pub fn draw_strip(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) -> Vec<(Rect, usize)> {
    let count = app.page_count();
    let selected = app.selected();
    let max_item = usize::from(area.width.saturating_sub(4)).max(4);
    let items: Vec<(String, String)> = (0..count)
        .map(|i| {
            let number = number(app, i);
            let title = fit(app.page_title(i), max_item.saturating_sub(number.width() + 1).min(24));
            (number, title)
        })
        .collect();
    let width_of = |i: usize| items.get(i).map_or(0, |(n, t)| n.width() + 1 + t.width());
    // The visible run: from the current item, add neighbours right then left while they fit.
    let room = usize::from(area.width.saturating_sub(4));
    let (mut first, mut last) = (selected, selected);
    let mut used = width_of(selected);
    loop {
        let grown = if last + 1 < count && used + 2 + width_of(last + 1) <= room {
            last += 1;
            used += 2 + width_of(last);
            true
        } else if first > 0 && used + 2 + width_of(first - 1) <= room {
            first -= 1;
            used += 2 + width_of(first);
            true
        } else {
            false
        };
        if !grown {
            break;
        }
    }
    let mut hits = Vec::new();
    let previous = (selected + count - 1) % count.max(1);
    let next = (selected + 1) % count.max(1);
    if first > 0 {
        buf.set_string(area.x, area.y, "‹", theme.key);
        hits.push((Rect::new(area.x, area.y, 1, 1), previous));
    }
    let mut x = area.x + if first > 0 { 2 } else { 0 };
    for (i, (number, title)) in items.iter().enumerate().take(last + 1).skip(first) {
        let here = i == selected;
        let line = Line::from(vec![
            Span::styled(number.as_str(), if here { theme.number } else { theme.nav }),
            Span::raw(" "),
            Span::styled(title.as_str(), if here { theme.nav_selected } else { theme.nav }),
        ]);
        let width = u16::try_from(line.width()).unwrap_or(0);
        buf.set_line(x, area.y, &line, width);
        hits.push((Rect::new(x, area.y, width, 1), i));
        x = x.saturating_add(width + 2);
    }
    if last + 1 < count {
        let at = area.right().saturating_sub(1);
        buf.set_string(at, area.y, "›", theme.key);
        hits.push((Rect::new(at, area.y, 1, 1), next));
    }
    hits
}
