//! Where everything goes on one screen: the columns (a reading column, the timeline beside it
//! on wide terminals), whether the hero fits, and the rows from the top row to the key hints,
//! centred vertically when the whole composition fits. Pure geometry from the app and the size;
//! drawing is in the parent module.

use ratatui::layout::Rect;

use super::{BigSize, READING_WIDTH, banner_text, big_name, body_lines};
use crate::tui::app::App;
use crate::tui::nav::timeline_width;
use crate::tui::theme::{self, Theme};

/// The hero (the name in block letters) needs this much room.
pub(super) const HERO_WIDTH: u16 = 80;
pub(super) const HERO_HEIGHT: u16 = 24;
/// The timeline beside the text needs the text to keep at least this width.
const MIN_TEXT_BESIDE_NAV: u16 = 56;
/// Columns between the timeline and the text.
const NAV_GAP: u16 = 4;

/// Where everything goes at one terminal size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Areas {
    /// The banner row, when a presenter is on.
    pub(super) banner: Option<Rect>,
    /// The hero: name (in block letters when they fit), headline, intro. `None`: the top row
    /// carries the name.
    pub(super) hero: Option<(Rect, Option<BigSize>)>,
    /// The chapter timeline (wide) or strip (narrow).
    pub(super) nav: Nav,
    /// The chapter's number and title.
    pub(super) title: Rect,
    /// The text.
    pub(super) body: Rect,
    /// "chapter 2 of 7 · next: ...", the scroll position; right under the text when it is short.
    pub(super) status: Rect,
    /// Key hints.
    pub(super) footer: Rect,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Nav {
    Timeline(Rect),
    Strip(Rect),
}

/// The horizontal layout: where the block everything aligns to sits, and its parts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Columns {
    /// The timeline beside the text (else the one-line strip above it).
    pub(super) wide: bool,
    pub(super) x: u16,
    pub(super) block_width: u16,
    pub(super) nav_width: u16,
    pub(super) text_x: u16,
    pub(super) text_width: u16,
}

pub(super) fn columns(app: &App, area: Rect) -> Columns {
    let nav_width = timeline_width(app);
    let beside = area.width.saturating_sub(2 + nav_width + NAV_GAP);
    let wide = beside >= MIN_TEXT_BESIDE_NAV;
    // Centred, never wider than it needs.
    let text_width =
        if wide { beside.min(READING_WIDTH) } else { area.width.saturating_sub(2).min(READING_WIDTH) };
    let block_width = if wide { nav_width + NAV_GAP + text_width } else { text_width };
    let x = area.x + (area.width - block_width) / 2;
    let text_x = if wide { x + nav_width + NAV_GAP } else { x };
    Columns { wide, x, block_width, nav_width, text_x, text_width }
}

/// The hero on this screen: `None` on small terminals (the top row carries the name), else
/// the block-letter size when the name fits in them.
pub(super) fn hero_size(app: &App, area: Rect, x: u16) -> Option<Option<BigSize>> {
    (area.width >= HERO_WIDTH && area.height >= HERO_HEIGHT).then(|| {
        // Block letters may use the margin at the right, never beyond the screen.
        big_name(&app.content().name, area.right().saturating_sub(x + 1), area.height >= TALL)
    })
}

/// From this height on, the name may take 8 rows.
const TALL: u16 = 48;

/// Lays out the screen for `app` in `area` (already known to fit). When everything fits with
/// room to spare (the longest chapter included), the composition is centred vertically and
/// the footer follows it; otherwise the text takes the rows left and scrolls.
pub(super) fn areas(app: &App, area: Rect) -> Areas {
    let content = app.content();
    let cols = columns(app, area);
    let roomy = area.height >= 20;
    let gap = u16::from(roomy);
    let hero = hero_size(app, area, cols.x);
    let banner_rows = u16::from(banner_text(app, area.width).is_some());
    let hero_rows = hero.map_or(gap, |big| {
        let name_rows = big.map_or(1, |(_, _, rows)| rows);
        // A blank row under the top row, the name, headline, intro, a blank row.
        1 + name_rows + 1 + u16::from(content.intro.is_some()) + 1
    });
    let strip_rows = if cols.wide { 0 } else { 1 + gap };
    // Title and its gap; after the text a gap and the status row.
    let (above_text, below_text) = (1 + gap, gap + 1);
    let fixed = 1 + banner_rows + hero_rows + strip_rows + above_text + below_text + 1;
    let rest = Rest { fixed: fixed - above_text - below_text, around_text: above_text + below_text };
    let centred = centring(app, area, &cols, rest);

    let mut y = area.y + 1 + centred.map_or(0, |(_, offset, _)| offset);
    let banner = (banner_rows > 0).then(|| Rect::new(area.x, area.y + 1, area.width, 1));
    if banner.is_some() {
        y += 1;
    }
    let hero = hero.map(|big| {
        let rect = Rect::new(cols.x, y + 1, area.right().saturating_sub(cols.x + 1), hero_rows - 2);
        (rect, big)
    });
    y += hero_rows;
    let (nav, mut y) = if cols.wide {
        (Nav::Timeline(Rect::new(cols.x, y, cols.nav_width, area.bottom().saturating_sub(y + 2))), y)
    } else {
        (Nav::Strip(Rect::new(cols.x, y, cols.block_width, 1)), y + strip_rows)
    };
    let title = Rect::new(cols.text_x, y, cols.text_width, 1);
    y += above_text;
    let last = area.bottom().saturating_sub(2);
    let body_height = match centred {
        Some((text, _, _)) => text,
        None => last.saturating_sub(y + gap),
    };
    let body = Rect::new(cols.text_x, y, cols.text_width, body_height);
    let status_y = if centred.is_some() { y + body_height + gap } else { last };
    let (status_x, status_width) =
        if cols.wide { (cols.text_x, cols.text_width) } else { (cols.x, cols.block_width) };
    let status = Rect::new(status_x, status_y, status_width, 1);
    // Under the taller of the text and the timeline, after a blank row.
    let footer_y = match centred {
        Some((_, _, middle)) => (title.y + middle + 1).min(area.bottom().saturating_sub(1)),
        None => last + 1,
    };
    let footer = Rect::new(cols.x, footer_y, cols.block_width, 1);
    Areas { banner, hero, nav, title, body, status, footer }
}

/// The rows of a screen's composition outside the chapter text.
#[derive(Clone, Copy)]
struct Rest {
    /// The rows above and below the text's part: top row, banner, hero, strip, status, footer.
    fixed: u16,
    /// The chapter title, its gap, and the gap under the text.
    around_text: u16,
}

/// When the whole composition (the longest chapter included) fits with room to spare: the
/// rows of the longest text, the offset from the top, and the height of the middle part
/// (text or timeline). `None` when the text must take the rows left and scroll.
fn centring(app: &App, area: Rect, cols: &Columns, rest: Rest) -> Option<(u16, u16, u16)> {
    if area.height <= HERO_HEIGHT {
        return None;
    }
    let longest = (0..app.page_count())
        .map(|page| body_lines(app, page, usize::from(cols.text_width), &MONO_FOR_LAYOUT).len())
        .max()
        .unwrap_or(0);
    let timeline = u16::try_from(app.page_count() * 2).unwrap_or(u16::MAX);
    let text = u16::try_from(longest).ok()?;
    let middle = (rest.around_text + text).max(if cols.wide { timeline } else { 0 });
    // The composition plus a blank row before the footer.
    let total = rest.fixed.saturating_add(middle).saturating_add(1);
    // A little above the middle, where the eye expects it.
    (total < area.height).then(|| (text, area.height.saturating_sub(total) * 2 / 5, middle))
}

/// Wrapping for the layout only counts lines; any theme will do.
const MONO_FOR_LAYOUT: Theme = theme::MONO;
