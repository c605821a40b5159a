//! One visitor's terminal UI over an SSH session: a [`TuiSession`] owns the app, the screen, the
//! input decoder and the session's [`Deadlines`], and turns each thing that can happen (input,
//! a resize, the presenter moving, the audience count, a content reload, a timer) into at most
//! one frame through a small method. The loop in [`run`] only waits and dispatches. Knows the
//! session's writer and the room's channels; never cuts the connection.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::session::SessionSetup;
use super::{End, Settings, Shared, clamp_size};
use crate::content::Content;
use crate::metrics::Metrics;
use crate::room::{Audience, PresenterPosition, Seat, Stage};
use crate::tui::app::{App, Effect, Role};
use crate::tui::input::{Decoder, Event};
use crate::tui::screen::Screen;
use crate::tui::terminal::{ColorDepth, ENTER, MOUSE_OFF, MOUSE_ON};
use crate::tui::ui;

/// When the session next has something to do on its own.
struct Deadlines {
    /// The session's hard end (`--max-session`).
    max: Instant,
    /// No input until then ends the session with a goodbye (`--idle-timeout`).
    idle: Instant,
    /// A lone Esc (or an unfinished sequence) is taken as typed at this time.
    esc: Option<Instant>,
    /// The screen frees its cell buffers at this time if nothing happens before.
    hibernate: Option<Instant>,
}

impl Deadlines {
    fn new(settings: &Settings) -> Self {
        let now = Instant::now();
        Self {
            max: now + settings.max_session,
            idle: now + settings.idle_timeout,
            esc: None,
            hibernate: Some(now + settings.hibernate_after),
        }
    }

    /// Input arrived: the idle clock restarts, and the Esc timer runs while a sequence is open.
    fn input(&mut self, settings: &Settings, pending: bool) {
        let now = Instant::now();
        self.idle = now + settings.idle_timeout;
        self.esc = pending.then(|| now + settings.esc_timeout);
    }

    /// Something happened on screen: hibernation waits again.
    fn active(&mut self, settings: &Settings) {
        self.hibernate = Some(Instant::now() + settings.hibernate_after);
    }

    /// The nearest deadline: the loop arms one timer for it, not four (every timer armed and
    /// dropped at each wake-up is work on tokio's timer wheel, for every visitor).
    fn next(&self) -> Instant {
        [self.esc, self.hibernate, Some(self.idle)].into_iter().flatten().fold(self.max, Instant::min)
    }

    /// Which deadline has passed at `now`, in the order they are handled when several have.
    fn due(&self, now: Instant) -> Option<Due> {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if passed(self.esc) {
            Some(Due::Esc)
        } else if passed(self.hibernate) {
            Some(Due::Hibernate)
        } else if self.idle <= now {
            Some(Due::Idle)
        } else if self.max <= now {
            Some(Due::Limit)
        } else {
            None
        }
    }
}

/// A deadline that has come.
enum Due {
    /// Take a pending Esc as a key.
    Esc,
    /// Free the screen's buffers.
    Hibernate,
    /// No input for `--idle-timeout`.
    Idle,
    /// `--max-session` is over.
    Limit,
}

/// What one wake-up produced: bytes to send now, and whether a frame must be drawn.
#[derive(Default)]
struct Out {
    /// Bytes to write before the frame (mode switches, patches, shared follower frames).
    raw: Vec<u8>,
    /// The app changed: draw a frame (a diff against what the visitor sees).
    dirty: bool,
}

/// The channels a session waits on, apart from the session state so one `select!` can borrow
/// both.
struct Feeds {
    /// Input bytes from the handler, bounded.
    input: mpsc::Receiver<Vec<u8>>,
    /// Window changes.
    sizes: watch::Receiver<(u16, u16)>,
    /// The presenter's position (`None` while nobody presents).
    presenter: watch::Receiver<Option<PresenterPosition>>,
    /// Audience counts, published at the room's pace.
    audience: watch::Receiver<Audience>,
    /// Reloaded content.
    content: watch::Receiver<Arc<Content>>,
    /// Becomes `true` when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

/// One visitor's UI session.
struct TuiSession {
    /// What the visitor sees and how keys change it (no I/O).
    app: App,
    /// The visitor's screen as bytes (shared first frames, hibernation, patches).
    screen: Screen,
    /// Made at the first input: most visitors only read.
    decoder: Option<Decoder>,
    /// Events decoded but not yet applied.
    events: Vec<Event>,
    /// Timers of this session.
    deadlines: Deadlines,
    /// This visitor's place in the audience count.
    seat: Seat,
    /// The presenter's hold on the room, when this session presents.
    stage: Option<Stage>,
    /// Content, settings, caches and metrics of the server.
    shared: Arc<Shared>,
}

/// Runs the UI until it ends; returns how (an `Err` when a write failed).
pub(super) async fn run(setup: &mut SessionSetup) -> Result<End, End> {
    let Some(mut feeds) = Feeds::take(setup) else { return Ok(End::Error) };
    let mut session = TuiSession::new(setup, &mut feeds);
    let first = session.first_frame();
    setup.write(&first).await?;
    #[cfg(feature = "test-panic")]
    test_panic_trigger(&setup.user);
    loop {
        let mut out = Out::default();
        let next = session.deadlines.next();
        tokio::select! {
            biased;
            _ = feeds.shutdown.wait_for(|stop| *stop) => return Ok(End::Shutdown),
            chunk = feeds.input.recv() => {
                let Some(chunk) = chunk else { return Ok(End::ClientGone) };
                let received = session.on_input(chunk, &mut feeds.input);
                setup.summary.bytes_in = setup.summary.bytes_in.saturating_add(received);
            }
            Ok(()) = feeds.sizes.changed() => {
                let size = *feeds.sizes.borrow_and_update();
                session.on_resize(size, setup, &mut out);
            }
            Ok(()) = feeds.presenter.changed() => {
                session.on_presenter(*feeds.presenter.borrow_and_update(), &mut out);
            }
            Ok(()) = feeds.audience.changed() => {
                session.on_audience(*feeds.audience.borrow_and_update(), &mut out);
            }
            Ok(()) = feeds.content.changed() => {
                session.on_content(feeds.content.borrow_and_update().clone(), &mut out);
            }
            _ = sleep_until(next) => match session.deadlines.due(Instant::now()) {
                Some(Due::Esc) => session.on_esc_timer(),
                Some(Due::Hibernate) => {
                    session.hibernate();
                    continue;
                }
                Some(Due::Idle) => return Ok(End::Idle),
                Some(Due::Limit) => return Ok(End::Limit),
                None => continue,
            },
        }
        if let Some(end) = session.apply_events(setup, &mut out) {
            return Ok(end);
        }
        session.draw(&mut out);
        if !out.raw.is_empty() {
            setup.write(&out.raw).await?;
        }
    }
}

impl Feeds {
    /// The session's input and size channels (taken from the setup) and the server's.
    fn take(setup: &mut SessionSetup) -> Option<Self> {
        let (input, sizes) = (setup.input.take()?, setup.size.take()?);
        let room = &setup.shared.room;
        Some(Self {
            input,
            sizes,
            presenter: room.presenter(),
            audience: room.audience(),
            content: setup.shared.content.clone(),
            shutdown: setup.shared.shutdown.clone(),
        })
    }
}

impl TuiSession {
    fn new(setup: &SessionSetup, feeds: &mut Feeds) -> Self {
        let shared = setup.shared.clone();
        let (term, cols, rows) = setup.pty.clone().unwrap_or_else(|| (String::new(), 80, 24));
        let env = setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let depth = ColorDepth::detect(Some(&term), env);
        let options = ui::Options { hyperlinks: !term.eq_ignore_ascii_case("dumb") && !term.is_empty() };
        let route = (!setup.presenter).then_some(setup.user.as_str());
        let mut app = App::new(feeds.content.borrow_and_update().clone(), route);
        app.set_share(shared.settings.share.clone());
        let room = shared.room.clone();
        let mut seat = room.join();
        // The last published count (not the live one): every visitor arriving within a tick
        // gets the same first screen, rendered once per tick, not per visitor. Before the
        // first tick that counts anyone, the live count (never "0 here" to a visitor).
        let published = *feeds.audience.borrow_and_update();
        let _ = app.set_audience(if published.connected == 0 { room.counts() } else { published });
        let stage = setup.presenter.then(|| {
            app.set_role(Role::Presenter);
            room.present(app.position())
        });
        app.set_presenter(*feeds.presenter.borrow_and_update());
        seat.set_following(app.is_following());
        Self {
            app,
            screen: Screen::new(cols, rows, depth, options),
            decoder: None,
            events: Vec::new(),
            deadlines: Deadlines::new(&shared.settings),
            seat,
            stage,
            shared,
        }
    }

    /// The alternate screen, mouse reporting and the first frame (shared and cached).
    fn first_frame(&mut self) -> Vec<u8> {
        let mut first = ENTER.to_vec();
        if self.app.mouse_enabled() {
            first.extend_from_slice(MOUSE_ON);
        }
        let (screen, app, frames) = (&mut self.screen, &mut self.app, &self.shared.frames);
        first.extend_from_slice(&self.shared.metrics.time_first_frame(|| screen.first_frame(app, frames)));
        first
    }

    /// Decodes `chunk` and everything already queued behind it (coalescing: one frame for all
    /// of it). Returns the bytes received.
    fn on_input(&mut self, chunk: Vec<u8>, queued: &mut mpsc::Receiver<Vec<u8>>) -> u64 {
        let decoder = self.decoder.get_or_insert_with(Decoder::default);
        let mut received = chunk.len();
        decoder.feed(&chunk, &mut self.events);
        while let Ok(chunk) = queued.try_recv() {
            received = received.saturating_add(chunk.len());
            decoder.feed(&chunk, &mut self.events);
        }
        let pending = decoder.has_pending();
        self.deadlines.input(&self.shared.settings, pending);
        u64::try_from(received).unwrap_or(u64::MAX)
    }

    /// The window changed size (window-change request or in-band report): relayout at once.
    fn on_resize(&mut self, size: (u16, u16), setup: &mut SessionSetup, out: &mut Out) {
        let (cols, rows) = size;
        self.screen.resize(cols, rows);
        setup.set_size(cols, rows);
        out.dirty = true;
    }

    /// The presenter moved (or arrived or left).
    fn on_presenter(&mut self, position: Option<PresenterPosition>, out: &mut Out) {
        self.app.set_presenter(position);
        if self.app.is_following() {
            // The same bytes as every other follower in this state, rendered once.
            out.raw.extend_from_slice(&self.screen.follow_frame(&mut self.app, &self.shared.frames));
        } else {
            out.dirty = true;
        }
    }

    /// A new audience count: idle screens get a shared patch, not a whole frame.
    fn on_audience(&mut self, audience: Audience, out: &mut Out) {
        if self.app.set_audience(audience) {
            if self.screen.is_active() {
                out.dirty = true;
            } else {
                out.raw.extend_from_slice(&self.screen.patch_top_line(&self.app, &self.shared.frames));
            }
        }
    }

    /// A valid edit of content.toml: the visitor stays on the same section.
    fn on_content(&mut self, content: Arc<Content>, out: &mut Out) {
        self.app.set_content(content);
        out.dirty = true;
    }

    /// Nothing followed an Esc in time: it was a key of its own.
    fn on_esc_timer(&mut self) {
        self.deadlines.esc = None;
        if let Some(decoder) = self.decoder.as_mut() {
            decoder.flush(&mut self.events);
        }
    }

    /// Quiet for a while: free the cell buffers and the decoder (most visitors only read; the
    /// decoder is made again at the next input).
    fn hibernate(&mut self) {
        self.deadlines.hibernate = None;
        self.screen.hibernate(&self.app);
        self.events = Vec::new();
        if self.decoder.as_ref().is_some_and(|decoder| !decoder.has_pending()) {
            self.decoder = None;
        }
    }

    /// Applies the decoded events to the app; `Some` when one of them ends the session.
    fn apply_events(&mut self, setup: &mut SessionSetup, out: &mut Out) -> Option<End> {
        self.deadlines.active(&self.shared.settings);
        for event in self.events.drain(..) {
            if let Event::Resize { cols, rows } = event {
                let (cols, rows) = clamp_size(u32::from(cols), u32::from(rows));
                self.screen.resize(cols, rows);
                setup.set_size(cols, rows);
            }
            match self.app.handle(&event) {
                Some(Effect::Quit) => return Some(End::Quit),
                Some(Effect::SetMouse(on)) => {
                    out.raw.extend_from_slice(if on { MOUSE_ON } else { MOUSE_OFF });
                    out.dirty = true;
                }
                Some(Effect::Redraw) => out.dirty = true,
                None => {}
            }
        }
        self.seat.set_following(self.app.is_following());
        if let Some(stage) = &self.stage {
            stage.moved(self.app.position());
        }
        None
    }

    /// Draws a frame when the app changed (a diff against what the visitor sees).
    fn draw(&mut self, out: &mut Out) {
        if out.dirty {
            let started = std::time::Instant::now();
            out.raw.extend_from_slice(&self.screen.render(&mut self.app));
            record_render(&self.shared.metrics, started);
        }
    }
}

fn record_render(metrics: &Metrics, started: std::time::Instant) {
    metrics.rendered(started.elapsed().as_secs_f64());
}

/// The user name `sshbio-test-panic` makes the session task panic after the first frame, so
/// the tests can show a panic ends that session alone. Only with the test-only cargo feature
/// `test-panic` (tests/panic.rs); normal builds, debug or release, have no such trigger.
#[cfg(feature = "test-panic")]
#[allow(clippy::panic)]
fn test_panic_trigger(user: &str) {
    if user == "sshbio-test-panic" {
        panic!("test panic requested by the test suite");
    }
}
