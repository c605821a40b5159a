//! One visitor's view of the bio: which page is selected, the scroll position, the overlays,
//! the palette and mouse mode, and how input events change them (keys through [`keymap`]). State and update only: no I/O, no russh,
//! no drawing (that is `ui`). The session carries out the [`Effect`]s it returns.

use std::sync::Arc;

use ratatui::layout::{Position, Rect};

use crate::content::Content;
use crate::room::{Audience, PresenterPosition};
use crate::tui::input::{Event, Key, Mouse};
use crate::tui::keymap::{self, Action};
use crate::tui::theme::Palette;

/// Lines moved by one mouse-wheel notch.
const WHEEL_LINES: usize = 3;

/// What the session must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The state changed: draw a new frame.
    Redraw,
    /// The visitor asked to leave: restore their terminal and close.
    Quit,
    /// Mouse reporting was toggled: tell the terminal, then redraw.
    SetMouse(bool),
}

/// A page of the navigation: each section, then the links page when there are links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Section(usize),
    Links,
}

/// What is drawn over the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The `ssh` command and a QR code of the web page, for telling others.
    Share,
    /// The presenter's full-screen card for the room: command, QR code, live count.
    JoinCard,
}

/// How people reach this bio, shown by the share overlay and the join card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Share {
    /// The command to run (`ssh bio.example.com`), when the public host is known.
    pub command: Option<String>,
    /// The web page's public URL, drawn as a QR code.
    pub url: Option<String>,
}

impl Share {
    /// From `--public-host`, `--public-port` and `--public-url`: `ssh [-p PORT] HOST`.
    pub fn new(host: Option<&str>, port: u16, url: Option<String>) -> Self {
        let command = host.map(|host| match port {
            22 => format!("ssh {host}"),
            port => format!("ssh -p {port} {host}"),
        });
        Self { command, url }
    }
}

/// Where the palette came from: a reply from the terminal never overrides the visitor's `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaletteSource {
    Default,
    Terminal,
    Visitor,
}

/// How this visitor relates to a presenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Follow {
    /// Nobody is presenting.
    NoPresenter,
    /// The view moves with the presenter's.
    Following,
    /// A presenter is on, but this visitor browses on their own (`f` to follow again).
    Browsing,
}

/// Who this session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Visitor,
    /// Authenticated as the presenter: every move is published to followers.
    Presenter,
}

/// Geometry of the last frame, fed back by the session after each draw so scrolling can be
/// clamped and clicks hit-tested without the app knowing how to lay anything out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Viewport {
    /// Rows available for the page text.
    pub body_height: usize,
    /// Total wrapped lines of the current page at the current width.
    pub body_lines: usize,
    /// Where each navigation entry was drawn, with the page index it selects.
    pub nav: Vec<(Rect, usize)>,
}

/// The state of one visitor's UI.
#[derive(Debug, Clone)]
pub struct App {
    /// The bio being shown; replaced whole when the owner edits the file.
    content: Arc<Content>,
    /// Index into [`App::pages`].
    selected: usize,
    /// First visible line of the page text, counted in a wrapping of `scroll_of` lines.
    scroll: usize,
    /// How many lines the page text wrapped to when `scroll` was set (0: unknown). After a
    /// resize, or from a presenter at another width, the text wraps to another count, and
    /// [`App::scroll_at`] scales `scroll` to the same place in the text.
    scroll_of: usize,
    /// The help overlay, when open.
    overlay: Overlay,
    /// Whether the terminal is asked to report the mouse (off lets people select text).
    mouse: bool,
    /// Geometry of the last drawn frame.
    viewport: Viewport,
    /// Visitor or presenter.
    role: Role,
    /// Follow mode (visitors only).
    follow: Follow,
    /// The latest presenter position, to jump to when the visitor starts following again.
    presenter: Option<PresenterPosition>,
    /// Connected/following counts, when the owner shows them.
    audience: Option<Audience>,
    /// Colours for a dark or light background.
    palette: Palette,
    /// Who chose the palette.
    palette_source: PaletteSource,
    /// The command and URL the share overlay shows.
    share: Arc<Share>,
}

impl App {
    /// A new view of `content`, opened on the page whose slug is `route` (the SSH user name),
    /// or on the first page.
    pub fn new(content: Arc<Content>, route: Option<&str>) -> Self {
        let mut app = Self {
            content,
            selected: 0,
            scroll: 0,
            scroll_of: 0,
            overlay: Overlay::None,
            mouse: true,
            viewport: Viewport::default(),
            role: Role::Visitor,
            follow: Follow::NoPresenter,
            presenter: None,
            audience: None,
            palette: Palette::default(),
            palette_source: PaletteSource::Default,
            share: Arc::default(),
        };
        if let Some(route) = route {
            if let Some(i) = app.content.section_index(route) {
                app.selected = i;
            } else if route.eq_ignore_ascii_case("links") && !app.content.links.is_empty() {
                app.selected = app.content.sections.len();
            }
        }
        app
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The shared content itself, for caches that must keep the version they were made from.
    pub fn shared_content(&self) -> &Arc<Content> {
        &self.content
    }

    /// How many pages the navigation has.
    pub fn page_count(&self) -> usize {
        self.content.sections.len() + usize::from(!self.content.links.is_empty())
    }

    /// The page for navigation index `index`.
    pub fn page(&self, index: usize) -> Page {
        if index < self.content.sections.len() { Page::Section(index) } else { Page::Links }
    }

    /// The title shown in the navigation for page `index`.
    pub fn page_title(&self, index: usize) -> &str {
        match self.page(index) {
            Page::Section(i) => self.content.sections.get(i).map_or("", |s| s.title.as_str()),
            Page::Links => "Links",
        }
    }

    pub fn selected(&self) -> usize {
        self.selected
    }

    /// The first visible line, as of the last frame drawn.
    pub fn scroll(&self) -> usize {
        self.scroll.min(self.max_scroll())
    }

    pub fn overlay(&self) -> Overlay {
        self.overlay
    }

    pub fn mouse_enabled(&self) -> bool {
        self.mouse
    }

    pub fn palette(&self) -> Palette {
        self.palette
    }

    pub fn share(&self) -> &Share {
        &self.share
    }

    /// Sets what the share overlay and the join card show.
    pub fn set_share(&mut self, share: Arc<Share>) {
        self.share = share;
    }

    /// Makes this the presenter's view.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn follow(&self) -> Follow {
        self.follow
    }

    pub fn is_following(&self) -> bool {
        self.follow == Follow::Following
    }

    /// Where this view is, as a presenter publishes it.
    pub fn position(&self) -> PresenterPosition {
        PresenterPosition { page: self.selected, scroll: self.scroll, lines: self.scroll_of }
    }

    /// The audience figures to show (`None` hides them).
    pub fn audience(&self) -> Option<Audience> {
        self.audience.filter(|_| self.content.show_audience)
    }

    /// Updates the counts; true when what the header shows changed.
    pub fn set_audience(&mut self, audience: Audience) -> bool {
        let before = self.audience();
        self.audience = Some(audience);
        before != self.audience()
    }

    /// The presenter moved, arrived (`Some`) or left (`None`). Followers jump to the position;
    /// when the presenter leaves, everyone stays where they are.
    pub fn set_presenter(&mut self, position: Option<PresenterPosition>) {
        if self.role == Role::Presenter {
            return;
        }
        self.presenter = position;
        match (position, self.follow) {
            (None, _) => self.follow = Follow::NoPresenter,
            (Some(p), Follow::NoPresenter | Follow::Following) => {
                self.follow = Follow::Following;
                self.go_to(p);
            }
            (Some(_), Follow::Browsing) => {}
        }
    }

    fn go_to(&mut self, position: PresenterPosition) {
        if position.page < self.page_count() {
            self.selected = position.page;
            // Scaled to this visitor's wrapping and clamped at the next draw, when its own
            // geometry is known.
            self.scroll = position.scroll;
            self.scroll_of = position.lines;
        }
    }

    /// Records the geometry of the frame just drawn; the scroll is now counted in its lines.
    pub fn set_viewport(&mut self, viewport: Viewport) {
        if viewport.body_height == 0 && viewport.body_lines == 0 {
            // No page text on this frame (the join card, a too-small terminal): the place in
            // the text stays as it was, for when the text is back (and for followers).
            self.viewport.nav = viewport.nav;
            return;
        }
        self.scroll = self.scroll_at(viewport.body_lines);
        self.scroll_of = viewport.body_lines;
        self.viewport = viewport;
        self.scroll = self.scroll.min(self.max_scroll());
    }

    /// The first visible line when the page text wraps to `lines` lines: the scroll, scaled
    /// from the wrapping it was counted in, so a resize or a presenter at another width keeps
    /// the same place in the text (to the nearest line).
    pub fn scroll_at(&self, lines: usize) -> usize {
        if self.scroll_of == 0 || self.scroll_of == lines {
            return self.scroll;
        }
        let scaled =
            (self.scroll as u128 * lines as u128 + self.scroll_of as u128 / 2) / self.scroll_of as u128;
        usize::try_from(scaled).unwrap_or(usize::MAX)
    }

    /// Swaps in edited content, staying on the same section (by slug) and near the same line.
    pub fn set_content(&mut self, content: Arc<Content>) {
        let slug = match self.page(self.selected) {
            Page::Section(i) => self.content.sections.get(i).map(|s| s.slug.clone()),
            Page::Links => None,
        };
        let on_links = self.page(self.selected) == Page::Links;
        self.content = content;
        self.selected = match slug.and_then(|s| self.content.section_index(&s)) {
            Some(i) => i,
            None if on_links && !self.content.links.is_empty() => self.content.sections.len(),
            None => self.selected.min(self.page_count().saturating_sub(1)),
        };
    }

    /// Applies one input event.
    pub fn handle(&mut self, event: &Event) -> Option<Effect> {
        match event {
            Event::Key(key) => self.handle_key(*key),
            Event::Mouse(mouse) => self.handle_mouse(*mouse),
            // Size changes are applied by the session; they always need a new frame.
            Event::Resize { .. } => Some(Effect::Redraw),
            Event::Background { r, g, b } => self.background(*r, *g, *b),
            Event::Ignored => None,
        }
    }

    fn handle_key(&mut self, key: Key) -> Option<Effect> {
        if matches!(key, Key::Ctrl('c' | 'd')) {
            return Some(Effect::Quit);
        }
        if self.overlay != Overlay::None {
            // Any other key just closes the overlay (and is not also applied).
            self.overlay = Overlay::None;
            return Some(Effect::Redraw);
        }
        let action = keymap::action_for(key, self.role)?;
        let before = (self.selected, self.scroll(), self.follow);
        if self.follow == Follow::Following && action.moves_the_view() {
            // Moving on your own leaves follow mode; the banner says how to come back.
            self.follow = Follow::Browsing;
        }
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Help => return self.open(Overlay::Help),
            Action::Share => return self.open(Overlay::Share),
            Action::JoinCard => return self.open(Overlay::JoinCard),
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                return Some(Effect::SetMouse(self.mouse));
            }
            Action::TogglePalette => {
                self.palette = self.palette.toggled();
                self.palette_source = PaletteSource::Visitor;
                return Some(Effect::Redraw);
            }
            Action::ToggleFollow => return self.toggle_follow(),
            Action::NextChapter => self.next_page(),
            Action::PreviousChapter => self.previous_page(),
            Action::JumpToChapter => {
                if let Key::Char(c @ '1'..='9') = key {
                    self.select_page(usize::from(c as u8 - b'1'));
                }
            }
            Action::ScrollDown => self.scroll_down(1),
            Action::ScrollUp => self.scroll_up(1),
            Action::PageDown => self.scroll_down(self.page_step()),
            Action::PageUp => self.scroll_up(self.page_step()),
            Action::Top => self.scroll = 0,
            Action::Bottom => self.scroll_to_end(),
        }
        (before != (self.selected, self.scroll(), self.follow)).then_some(Effect::Redraw)
    }

    fn open(&mut self, overlay: Overlay) -> Option<Effect> {
        self.overlay = overlay;
        Some(Effect::Redraw)
    }

    fn toggle_follow(&mut self) -> Option<Effect> {
        match (self.follow, self.presenter) {
            (Follow::Following, _) => {
                self.follow = Follow::Browsing;
                Some(Effect::Redraw)
            }
            (Follow::Browsing, Some(p)) => {
                self.follow = Follow::Following;
                self.go_to(p);
                Some(Effect::Redraw)
            }
            _ => None,
        }
    }

    /// The terminal said what colour its background is: pick the palette for it, unless the
    /// visitor already chose one with `t`. Redraws only when the choice changes.
    fn background(&mut self, r: u8, g: u8, b: u8) -> Option<Effect> {
        if self.palette_source == PaletteSource::Visitor {
            return None;
        }
        self.palette_source = PaletteSource::Terminal;
        let palette = Palette::for_background(r, g, b);
        (palette != std::mem::replace(&mut self.palette, palette)).then_some(Effect::Redraw)
    }

    fn handle_mouse(&mut self, mouse: Mouse) -> Option<Effect> {
        let before = (self.selected, self.scroll(), self.overlay);
        match mouse {
            Mouse::ScrollDown { .. } => self.scroll_down(WHEEL_LINES),
            Mouse::ScrollUp { .. } => self.scroll_up(WHEEL_LINES),
            Mouse::Click { .. } if self.overlay != Overlay::None => self.overlay = Overlay::None,
            Mouse::Click { column, row } => {
                let at = Position::new(column, row);
                let hit = self.viewport.nav.iter().find(|(rect, _)| rect.contains(at));
                if let Some(&(_, page)) = hit {
                    self.select_page(page);
                }
            }
        }
        // Scrolling or picking a section with the mouse leaves follow mode, like the keys do;
        // a click that changes nothing (or only closes the help) does not.
        if self.follow == Follow::Following && (before.0, before.1) != (self.selected, self.scroll()) {
            self.follow = Follow::Browsing;
        }
        (before != (self.selected, self.scroll(), self.overlay)).then_some(Effect::Redraw)
    }

    pub fn next_page(&mut self) {
        self.select_page((self.selected + 1) % self.page_count().max(1));
    }

    pub fn previous_page(&mut self) {
        let count = self.page_count().max(1);
        self.select_page((self.selected + count - 1) % count);
    }

    /// Selects page `index` if it exists, starting at its top.
    pub fn select_page(&mut self, index: usize) {
        if index < self.page_count() && index != self.selected {
            self.selected = index;
            // Counted in no wrapping yet: the new page's is known at the next draw.
            self.scroll = 0;
            self.scroll_of = 0;
        }
    }

    /// The end of the page, in any wrapping: each draw (and each follower) clamps it to its
    /// own last screenful, even when the page changed in the same batch of keys.
    fn scroll_to_end(&mut self) {
        self.scroll = usize::MAX;
        self.scroll_of = 0;
    }

    pub fn scroll_down(&mut self, lines: usize) {
        self.count_in_the_last_frame();
        self.scroll = self.scroll.saturating_add(lines).min(self.max_scroll());
    }

    pub fn scroll_up(&mut self, lines: usize) {
        self.count_in_the_last_frame();
        self.scroll = self.scroll.min(self.max_scroll()).saturating_sub(lines);
    }

    /// Counts the scroll in the last frame's wrapping (it may still be in a presenter's, or be
    /// "the end"), so that lines are added to or taken from the right place.
    fn count_in_the_last_frame(&mut self) {
        let lines = self.viewport.body_lines;
        if lines > 0 {
            self.scroll = self.scroll_at(lines);
            self.scroll_of = lines;
        }
    }

    /// The last line the text can start at so its end still fills the body.
    fn max_scroll(&self) -> usize {
        self.viewport.body_lines.saturating_sub(self.viewport.body_height)
    }

    /// One screenful, keeping a line of context.
    fn page_step(&self) -> usize {
        self.viewport.body_height.saturating_sub(1).max(1)
    }
}

#[cfg(test)]
mod tests;
