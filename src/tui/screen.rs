//! One visitor's screen as the server sees it, turned into bytes: a shared, cached first
//! frame (most visitors never type, and they all see the same first screen), a ratatui
//! terminal while the visitor is active, nothing but the size while hibernating, and small
//! patches of the top line when only the audience count changes. No I/O and no SSH.

use std::sync::Arc;

use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::{Terminal, TerminalOptions, Viewport as RatatuiViewport};

use crate::content::Content;
use crate::room::Audience;
use crate::tui::app::{App, Follow, Overlay, Role, Viewport};
use crate::tui::terminal::{AnsiBackend, BACKGROUND_QUERY, ColorDepth};
use crate::tui::theme::Palette;
use crate::tui::ui;

/// A first frame, rendered once and sent to every visitor who gets the same screen.
#[derive(Debug)]
struct FirstFrame {
    /// The bytes that draw it on a cleared screen.
    bytes: Vec<u8>,
    /// The cells it leaves on screen: the previous frame for the visitor's first redraw.
    buffer: Buffer,
    /// Its geometry, for the app's scrolling and clicks.
    viewport: Viewport,
    /// The content it shows, kept alive so its address (part of the key) is never reused by
    /// a later version while this entry exists.
    _content: Arc<Content>,
}

/// Everything a first frame depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FrameKey {
    cols: u16,
    rows: u16,
    depth: ColorDepth,
    hyperlinks: bool,
    /// The content version (the `Arc`'s address; a reload makes a new one).
    content: usize,
    page: usize,
    /// The scroll and the wrapping it is counted in (see [`App::scroll_at`]).
    scroll: usize,
    scroll_of: usize,
    /// The footer says how to turn the mouse back on when it is off.
    mouse: bool,
    follow: Follow,
    audience: Option<Audience>,
    palette: Palette,
}

/// How many columns at the right of the top line an audience patch redraws: room for
/// `123456 here · 123456 following `.
const PATCH_COLUMNS: u16 = 32;

/// Most first frames (and patches) kept. Past it the least useful go (quick_cache's S3-FIFO:
/// a crowd's shared screen stays, one-off sizes leave first); entries are a few KiB each.
const MAX_CACHED: usize = 256;

/// First frames (and audience patches) shared by all sessions of a server.
pub struct FrameCache {
    /// Whole screens: first frames, and followers' screens after a presenter move.
    frames: quick_cache::sync::Cache<FrameKey, Arc<FirstFrame>>,
    /// Top-line patches for a new audience count, the same bytes for every idle screen in
    /// the same state, so a count change costs one render per distinct screen, not per visitor.
    patches: quick_cache::sync::Cache<FrameKey, Arc<[u8]>>,
}

impl Default for FrameCache {
    fn default() -> Self {
        Self {
            frames: quick_cache::sync::Cache::new(MAX_CACHED),
            patches: quick_cache::sync::Cache::new(MAX_CACHED),
        }
    }
}

impl std::fmt::Debug for FrameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCache")
            .field("frames", &self.frames.len())
            .field("patches", &self.patches.len())
            .finish()
    }
}

impl FrameCache {
    fn get_or_render(
        &self,
        key: FrameKey,
        render: impl FnOnce() -> Option<FirstFrame>,
    ) -> Option<Arc<FirstFrame>> {
        if let Some(hit) = self.frames.get(&key) {
            return Some(hit);
        }
        // Two sessions missing at once both render; the second insert wins. Rare (arrivals
        // within a tick share the key only after the first has rendered) and harmless.
        let frame = Arc::new(render()?);
        self.frames.insert(key, frame.clone());
        Some(frame)
    }

    fn patch(&self, key: FrameKey, render: impl FnOnce() -> Vec<u8>) -> Arc<[u8]> {
        if let Some(hit) = self.patches.get(&key) {
            return hit;
        }
        let patch: Arc<[u8]> = render().into();
        self.patches.insert(key, patch.clone());
        patch
    }
}

/// Where this visitor's screen state lives.
enum State {
    /// Nothing drawn yet.
    Blank,
    /// Showing a shared first frame; no buffers of its own.
    Seeded(Arc<FirstFrame>),
    /// Drawn through its own ratatui terminal (two cell buffers).
    Active(Box<Terminal<AnsiBackend>>),
    /// Buffers freed while the visitor still sees a frame. With the view that frame showed,
    /// the next render first redraws it silently so only the differences are sent; without
    /// (after a resize), it clears and redraws everything.
    Hibernated(Option<Box<App>>),
}

/// One visitor's screen.
pub struct Screen {
    /// Cached frame, own terminal, or nothing.
    state: State,
    /// The client's size (already clamped).
    cols: u16,
    rows: u16,
    /// Colours the client can show.
    depth: ColorDepth,
    /// Terminal-dependent drawing choices (hyperlinks) and the colour depth.
    look: ui::Look,
}

impl Screen {
    pub fn new(cols: u16, rows: u16, depth: ColorDepth, options: ui::Options) -> Self {
        Self { state: State::Blank, cols, rows, depth, look: ui::Look { options, depth } }
    }

    /// True while the screen holds its own terminal (an audience change is then a normal redraw).
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Active(_))
    }

    /// Frees the cell buffers. `shown` is the view on screen now (the last one rendered).
    pub fn hibernate(&mut self, shown: &App) {
        if !matches!(self.state, State::Blank) {
            self.state = State::Hibernated(Some(Box::new(shown.clone())));
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        if (cols, rows) == (self.cols, self.rows) {
            return;
        }
        (self.cols, self.rows) = (cols, rows);
        // Whatever is on screen is redrawn whole at the new size.
        if !matches!(self.state, State::Blank) {
            self.state = State::Hibernated(None);
        }
    }

    /// Everything a shared screen of this visitor's view depends on.
    fn key(&self, app: &App) -> FrameKey {
        FrameKey {
            cols: self.cols,
            rows: self.rows,
            depth: self.depth,
            hyperlinks: self.look.options.hyperlinks,
            content: Arc::as_ptr(app.shared_content()) as usize,
            page: app.selected(),
            // The place as stored (what the frame is drawn from), not as of the last frame.
            scroll: app.position().scroll,
            scroll_of: app.position().lines,
            mouse: app.mouse_enabled(),
            follow: app.follow(),
            audience: app.audience(),
            palette: app.palette(),
        }
    }

    /// A follower's screen after the presenter moved: the whole new screen from the shared
    /// cache, after a clear. Every follower in the same state (size, depth, palette, position,
    /// count) gets the same bytes, rendered once, whether its screen was active or hibernated;
    /// after it the screen holds no buffers of its own. A follower with an overlay open (help,
    /// share) is drawn on its own.
    pub fn follow_frame(&mut self, app: &mut App, cache: &FrameCache) -> Vec<u8> {
        if app.overlay() != Overlay::None {
            return self.render(app);
        }
        match self.shared_frame(app, cache) {
            Some(frame) => {
                let mut out = b"\x1b[0m\x1b[H\x1b[2J".to_vec();
                out.extend_from_slice(&frame);
                out
            }
            None => self.render(app),
        }
    }

    /// The first frame: from the cache when another visitor already got the same screen.
    /// The presenter's screen is its own. It ends with the background-colour query (OSC 11)
    /// when the terminal has colours: the reply picks the palette, and the frame is never held
    /// back waiting for it.
    pub fn first_frame(&mut self, app: &mut App, cache: &FrameCache) -> Vec<u8> {
        let mut bytes = match app.role() {
            Role::Presenter => self.render(app),
            _ => self.shared_frame(app, cache).unwrap_or_else(|| self.render(app)),
        };
        self.ask_background(&mut bytes);
        bytes
    }

    /// This view's whole screen from the cache shared by all sessions (rendered on a miss),
    /// for a cleared screen; the screen then shows it and holds no buffers of its own.
    fn shared_frame(&mut self, app: &mut App, cache: &FrameCache) -> Option<Vec<u8>> {
        let key = self.key(app);
        let (cols, rows, depth, look) = (self.cols, self.rows, self.depth, self.look);
        let content = app.shared_content().clone();
        let frame = cache.get_or_render(key, || {
            let mut terminal = new_terminal(cols, rows, depth).ok()?;
            let mut viewport = Viewport::default();
            let buffer = terminal.draw(|frame| viewport = ui::draw(frame, app, look)).ok()?.buffer.clone();
            let mut bytes = terminal.backend_mut().take_output();
            // End in the default attributes, which a fresh backend assumes at the first redraw.
            bytes.extend_from_slice(b"\x1b[0m");
            bytes.shrink_to_fit();
            Some(FirstFrame { bytes, buffer, viewport, _content: content })
        })?;
        app.set_viewport(frame.viewport.clone());
        let bytes = frame.bytes.clone();
        self.state = State::Seeded(frame);
        Some(bytes)
    }

    /// Appends the background-colour query, unless there are no colours to choose.
    fn ask_background(&self, bytes: &mut Vec<u8>) {
        if self.depth != ColorDepth::None {
            bytes.extend_from_slice(BACKGROUND_QUERY);
        }
    }

    /// Draws a frame and returns its bytes (empty when nothing changed on screen).
    pub fn render(&mut self, app: &mut App) -> Vec<u8> {
        let mut out = Vec::new();
        let terminal = match std::mem::replace(&mut self.state, State::Blank) {
            State::Active(terminal) => terminal,
            State::Seeded(frame) => match new_terminal(self.cols, self.rows, self.depth) {
                Ok(mut terminal) => {
                    // The visitor sees the cached frame: diff against it.
                    *terminal.current_buffer_mut() = frame.buffer.clone();
                    terminal.swap_buffers();
                    Box::new(terminal)
                }
                Err(_) => return out,
            },
            State::Hibernated(Some(shown)) => match new_terminal(self.cols, self.rows, self.depth) {
                Ok(mut terminal) => {
                    // Rebuild the cells the visitor sees, sending nothing, so the new frame
                    // is only a diff (a reader's next key after a pause costs a few hundred
                    // bytes, not a whole screen).
                    let look = self.look;
                    let _ = terminal.draw(|frame| {
                        ui::draw(frame, &shown, look);
                    });
                    let backend = terminal.backend_mut();
                    let _ = backend.take_output();
                    // The terminal's real attributes and cursor are unknown from here: reset.
                    backend.forget_state();
                    Box::new(terminal)
                }
                Err(_) => return out,
            },
            previous @ (State::Blank | State::Hibernated(None)) => {
                match new_terminal(self.cols, self.rows, self.depth) {
                    Ok(terminal) => {
                        if matches!(previous, State::Hibernated(None)) {
                            // A fresh terminal diffs against a blank screen: clear what is shown.
                            out.extend_from_slice(b"\x1b[0m\x1b[2J");
                        }
                        Box::new(terminal)
                    }
                    Err(_) => return out,
                }
            }
        };
        let mut terminal = terminal;
        let look = self.look;
        let mut viewport = Viewport::default();
        if terminal.draw(|frame| viewport = ui::draw(frame, app, look)).is_ok() {
            app.set_viewport(viewport);
        }
        out.extend_from_slice(&terminal.backend_mut().take_output());
        self.state = State::Active(terminal);
        out
    }

    /// Bytes that redraw only the top line (where the audience count is) on a screen that
    /// holds no terminal. Costs one row instead of a whole frame; the next full render then
    /// starts from a cleared screen. Under an overlay (the join card shows the count in large
    /// digits) the screen is redrawn instead. The bytes come from the shared cache: every idle
    /// screen in the same state gets the same.
    pub fn patch_top_line(&mut self, app: &App, cache: &FrameCache) -> Arc<[u8]> {
        if self.is_active() || matches!(self.state, State::Blank) || !ui::fits(self.cols, self.rows) {
            return Arc::from(Vec::new());
        }
        if app.overlay() != Overlay::None {
            return self.render(&mut app.clone()).into();
        }
        let (cols, rows, look) = (self.cols, self.rows, self.look);
        let patch = cache.patch(self.key(app), || top_line_bytes(cols, rows, look, app));
        // On screen now: the frame of this view (the earlier one with the new top line).
        if !matches!(self.state, State::Hibernated(None)) {
            self.state = State::Hibernated(Some(Box::new(app.clone())));
        }
        patch
    }
}

/// Renders the top line of `app` at `cols` and encodes the columns the audience count uses.
fn top_line_bytes(cols: u16, rows: u16, look: ui::Look, app: &App) -> Vec<u8> {
    let row = Rect::new(0, 0, cols, 1);
    let mut buffer = Buffer::empty(row);
    ui::draw_top_line(&mut buffer, row, rows, app, look);
    let mut backend = AnsiBackend::new(Size::new(cols, 1), look.depth);
    // The count sits at the right end: only those columns are sent (they are redrawn
    // exactly from the row, so whatever else is there stays right).
    let from = usize::from(cols.saturating_sub(PATCH_COLUMNS));
    let cells = buffer.content.iter().enumerate().skip(from).map(|(i, cell)| {
        let x = u16::try_from(i).unwrap_or(u16::MAX);
        (x, 0, cell)
    });
    let mut out = b"\x1b[0m".to_vec();
    if ratatui::backend::Backend::draw(&mut backend, cells).is_err() {
        return Vec::new();
    }
    out.extend_from_slice(&backend.take_output());
    out.extend_from_slice(b"\x1b[0m");
    out
}

fn new_terminal(cols: u16, rows: u16, depth: ColorDepth) -> std::io::Result<Terminal<AnsiBackend>> {
    let area = Rect::new(0, 0, cols, rows);
    Terminal::with_options(
        AnsiBackend::new(Size::new(cols, rows), depth),
        TerminalOptions { viewport: RatatuiViewport::Fixed(area) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::fixtures;
    use std::num::NonZeroU16;

    fn app() -> App {
        // One content for every app, as all sessions of a server share one `Arc`.
        static CONTENT: std::sync::LazyLock<Arc<crate::content::Content>> =
            std::sync::LazyLock::new(|| fixtures::shared(fixtures::LONG));
        let mut app = App::new(CONTENT.clone(), None);
        let _ = app.set_audience(Audience { connected: 9, following: 0 });
        app
    }

    /// What a person sees: spaces written over old text look the same as empty cells.
    fn visible(text: &str) -> Vec<String> {
        text.lines().map(|l| l.trim_end().to_string()).collect()
    }

    fn screen_text(bytes: &[&[u8]]) -> String {
        let mut vt =
            vt100::Parser::new(NonZeroU16::new(24).expect("rows"), NonZeroU16::new(80).expect("cols"), 0);
        for b in bytes {
            vt.process(b);
        }
        vt.screen().contents()
    }

    #[test]
    fn visitors_with_the_same_screen_share_one_rendered_first_frame() {
        let cache = FrameCache::default();
        let options = ui::Options { hyperlinks: true };
        let (mut a, mut b) = (app(), app());
        let first = Screen::new(80, 24, ColorDepth::Ansi256, options).first_frame(&mut a, &cache);
        let second = Screen::new(80, 24, ColorDepth::Ansi256, options).first_frame(&mut b, &cache);
        assert_eq!(first, second);
        assert_eq!(cache.frames.len(), 1);
        Screen::new(100, 30, ColorDepth::Ansi256, options).first_frame(&mut app(), &cache);
        assert_eq!(cache.frames.len(), 2, "another size is another frame");
    }

    /// Regression: the cache is keyed by the content's address. When a cached frame did not
    /// hold its content, a reload could free the old version and allocate the new one at the
    /// same address, and visitors of the new version got the old version's first frame.
    #[test]
    fn first_frame_cache_keeps_its_content_alive_across_a_reload() {
        let cache = FrameCache::default();
        let options = ui::Options::default();
        // Told apart by their headlines (at 80x24 a short name is drawn in block letters).
        let versions = [fixtures::SMALL, fixtures::LINKS].map(|text| (text, fixtures::parse(text).headline));
        for reload in 0..40 {
            let (text, name) = &versions[reload % 2];
            // A new version, as a reload publishes it; the previous one's last session is gone.
            let content = fixtures::shared(text);
            let version = Arc::downgrade(&content);
            let mut app = App::new(content, None);
            let frame = Screen::new(80, 24, ColorDepth::Ansi256, options).first_frame(&mut app, &cache);
            let shown = screen_text(&[&frame]);
            assert!(shown.contains(name.as_str()), "reload {reload}: a frame of another version:\n{shown}");
            drop(app);
            assert!(version.upgrade().is_some(), "the cached frame keeps its content (and address) alive");
        }
    }

    #[test]
    fn redraws_after_a_cached_frame_and_after_a_patch_match_a_fresh_render() {
        let cache = FrameCache::default();
        let options = ui::Options::default();
        // Reference: what the screen should show after the key, drawn from scratch.
        let mut reference_app = app();
        reference_app.handle(&crate::tui::input::Event::Key(crate::tui::input::Key::Char('7')));
        let _ = reference_app.set_audience(Audience { connected: 10, following: 0 });
        let reference = Screen::new(80, 24, ColorDepth::Ansi256, options).render(&mut reference_app);

        let mut app = app();
        let mut screen = Screen::new(80, 24, ColorDepth::Ansi256, options);
        let first = screen.first_frame(&mut app, &cache);
        let _ = app.set_audience(Audience { connected: 10, following: 0 });
        let patch = screen.patch_top_line(&app, &cache).to_vec();
        assert!(!patch.is_empty() && patch.len() < 200, "a patch is small: {} bytes", patch.len());
        assert!(screen_text(&[&first, &patch]).contains("10 here"));
        app.handle(&crate::tui::input::Event::Key(crate::tui::input::Key::Char('7')));
        let redraw = screen.render(&mut app);
        assert_eq!(visible(&screen_text(&[&first, &patch, &redraw])), visible(&screen_text(&[&reference])));
    }

    #[test]
    fn idle_screens_in_the_same_state_share_one_audience_patch() {
        let cache = FrameCache::default();
        let options = ui::Options::default();
        let mut screens: Vec<(Screen, App)> = (0..3)
            .map(|_| {
                let mut app = app();
                let mut screen = Screen::new(80, 24, ColorDepth::Ansi256, options);
                let _ = screen.first_frame(&mut app, &cache);
                let _ = app.set_audience(Audience { connected: 42, following: 0 });
                (screen, app)
            })
            .collect();
        let patches: Vec<Arc<[u8]>> =
            screens.iter_mut().map(|(screen, app)| screen.patch_top_line(app, &cache)).collect();
        assert!(!patches[0].is_empty());
        assert!(patches.iter().all(|p| Arc::ptr_eq(p, &patches[0])), "rendered once, shared by all");
        let mut wider = Screen::new(100, 24, ColorDepth::Ansi256, options);
        let mut app = app();
        let _ = wider.first_frame(&mut app, &cache);
        let _ = app.set_audience(Audience { connected: 42, following: 0 });
        assert!(
            !Arc::ptr_eq(&wider.patch_top_line(&app, &cache), &patches[0]),
            "another width, another patch"
        );
    }

    #[test]
    fn a_key_after_hibernation_sends_a_diff_not_a_whole_screen() {
        let cache = FrameCache::default();
        let options = ui::Options::default();
        let key =
            |app: &mut App, c| app.handle(&crate::tui::input::Event::Key(crate::tui::input::Key::Char(c)));
        let mut app = app();
        let mut screen = Screen::new(60, 14, ColorDepth::Ansi256, options);
        let mut shown = vec![screen.first_frame(&mut app, &cache)];
        key(&mut app, '6');
        shown.push(screen.render(&mut app));
        screen.hibernate(&app);
        assert!(!screen.is_active(), "buffers freed");
        key(&mut app, 'j');
        let scroll = screen.render(&mut app);
        assert!(scroll.len() < 1200, "one-line scroll after a pause: {} bytes", scroll.len());
        shown.push(scroll);
        // Same picture as drawing that view from scratch.
        let mut fresh = Screen::new(60, 14, ColorDepth::Ansi256, options);
        let mut reference_app = app.clone();
        let reference = fresh.render(&mut reference_app);
        let shown: Vec<&[u8]> = shown.iter().map(Vec::as_slice).collect();
        let mut vt =
            vt100::Parser::new(NonZeroU16::new(14).expect("rows"), NonZeroU16::new(60).expect("cols"), 0);
        shown.iter().for_each(|b| vt.process(b));
        let mut vt_ref =
            vt100::Parser::new(NonZeroU16::new(14).expect("rows"), NonZeroU16::new(60).expect("cols"), 0);
        vt_ref.process(&reference);
        assert_eq!(visible(&vt.screen().contents()), visible(&vt_ref.screen().contents()));
    }
}

#[cfg(test)]
mod budget {
    use super::*;
    use std::path::Path;

    /// The first frame of every size: what it costs in bytes (printed; `--nocapture` shows it).
    #[test]
    fn first_frames_stay_within_the_byte_budget() {
        for name in ["small", "long", "links", "unicode"] {
            let path = format!("{}/tests/fixtures/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).expect("fixture");
            let content = Arc::new(crate::content::parse_str(&text, Path::new(&path)).expect("parses"));
            for depth in [ColorDepth::Ansi256, ColorDepth::TrueColor, ColorDepth::Ansi16] {
                let mut app = App::new(content.clone(), None);
                let _ = app.set_audience(Audience { connected: 120, following: 0 });
                let mut screen = Screen::new(80, 24, depth, ui::Options { hyperlinks: true });
                let bytes = screen.first_frame(&mut app, &FrameCache::default());
                println!("{name} 80x24 {depth:?}: {} bytes", bytes.len());
                assert!(bytes.len() <= 4_500, "{name} {depth:?}: {} bytes", bytes.len());
            }
        }
    }
}

#[cfg(test)]
mod join_card {
    use super::*;
    use crate::tui::input::{Event, Key};
    use std::num::NonZeroU16;
    use std::path::Path;

    #[test]
    fn the_join_card_count_follows_arrivals_even_on_a_hibernated_screen() {
        let path = format!("{}/tests/fixtures/small.toml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        let content = Arc::new(crate::content::parse_str(&text, Path::new(&path)).expect("parses"));
        let mut app = App::new(content, None);
        app.set_role(Role::Presenter);
        let _ = app.set_audience(Audience { connected: 7, following: 6 });
        let mut screen = Screen::new(80, 24, ColorDepth::Ansi256, ui::Options::default());
        let mut vt =
            vt100::Parser::new(NonZeroU16::new(24).expect("rows"), NonZeroU16::new(80).expect("cols"), 0);
        vt.process(&screen.first_frame(&mut app, &FrameCache::default()));
        app.handle(&Event::Key(Key::Char('c')));
        vt.process(&screen.render(&mut app));
        let before = vt.screen().contents();
        screen.hibernate(&app);
        let _ = app.set_audience(Audience { connected: 8, following: 7 });
        vt.process(&screen.patch_top_line(&app, &FrameCache::default()));
        let after = vt.screen().contents();
        assert_ne!(before, after, "the large digits changed");
        assert!(after.contains("people here") && !after.contains("● 8 here"), "{after}");
    }
}
