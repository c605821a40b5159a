//! The task that serves one session channel once a shell or exec request arrives: the TUI
//! (with a pty), the plain-text bio (without), or a command's output. Owns the frame loop,
//! coalescing, the Esc/idle/session timers, write timeouts and the goodbye. The only
//! russh things it uses are the channel writers and the `Handle` to send exit status and close.
//! It never cuts the connection: it returns a [`Summary`] saying how it ended, and the
//! connection's owner (`connection`) decides what that means for the connection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use russh::ChannelId;
use russh::server::Handle;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::connection::Report;
use super::{End, Shared, clamp_size};
use crate::commands;
use crate::tui::app::{App, Effect, Role};
use crate::tui::input::{Decoder, Event};
use crate::tui::screen::Screen;
use crate::tui::terminal::{ColorDepth, ENTER, MOUSE_OFF, MOUSE_ON, RESTORE};
use crate::tui::ui;

/// A channel writer: window-aware, so a client that stops reading makes writes wait.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// A session task, boxed so the three kinds share one supervisor.
pub type Task = Pin<Box<dyn std::future::Future<Output = Summary> + Send>>;

/// One session's facts for its log line, filled in as it runs and reported when it ends.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The channel it served, so the owner knows which one is done.
    pub channel: ChannelId,
    /// `tui`, `plain` or `exec`.
    pub kind: &'static str,
    /// TERM from the pty request (empty without a pty).
    pub term: String,
    /// The terminal size last known (80x24 without a pty).
    pub size: (u16, u16),
    /// When the shell or exec request started it.
    pub started: std::time::Instant,
    /// Input bytes received on the channel (TUI only).
    pub bytes_in: u64,
    /// Bytes written to the channel (stdout and stderr, before encryption).
    pub bytes_out: u64,
    /// How it ended.
    pub end: End,
}

impl Summary {
    pub fn new(channel: ChannelId, kind: &'static str, pty: Option<&(String, u16, u16)>) -> Self {
        let (term, size) = match pty {
            Some((term, cols, rows)) => (term.clone(), (*cols, *rows)),
            None => (String::new(), (80, 24)),
        };
        let started = std::time::Instant::now();
        Self { channel, kind, term, size, started, bytes_in: 0, bytes_out: 0, end: End::Error }
    }
}

/// Everything a session task needs, handed over by the handler.
pub struct SessionSetup {
    /// Sends exit status, EOF and close (the writers only carry data).
    pub handle: Handle,
    /// The session channel this task serves.
    pub channel: ChannelId,
    /// Standard output, window-aware.
    pub stdout: Writer,
    /// Standard error (extended data 1), for command errors.
    pub stderr: Writer,
    /// Content, settings, room, caches and the shutdown signal.
    pub shared: Arc<Shared>,
    /// What the log line will say about this session, kept up to date as it runs.
    pub summary: Summary,
    /// The SSH user name: the route to a section.
    pub user: String,
    /// Authenticated as the presenter: this session's moves are published to followers.
    pub presenter: bool,
    /// TERM and size, when the client asked for a pty.
    pub pty: Option<(String, u16, u16)>,
    /// Env requests (bounded by the handler): COLORTERM and NO_COLOR decide the colours.
    pub env: Vec<(String, String)>,
    /// Input bytes (TUI only).
    pub input: Option<mpsc::Receiver<Vec<u8>>>,
    /// Window changes (TUI only).
    pub size: Option<watch::Receiver<(u16, u16)>>,
}

impl SessionSetup {
    /// Records the session's kind; it counts as open until the returned guard drops.
    fn set_kind(&mut self, kind: &'static str) -> crate::metrics::OpenSession {
        self.summary.kind = kind;
        self.shared.metrics.session_started(kind)
    }

    fn set_size(&mut self, cols: u16, rows: u16) {
        self.summary.size = (cols, rows);
    }

    /// Writes `bytes` unless the client stops reading for the write timeout.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        let limit = self.shared.settings.write_timeout;
        let result = match timeout(limit, self.stdout.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => Err(End::Stalled),
        };
        self.count_out(bytes.len());
        result
    }

    fn count_out(&mut self, len: usize) {
        self.summary.bytes_out = self.summary.bytes_out.saturating_add(u64::try_from(len).unwrap_or(0));
    }

    /// Sends exit status, EOF and close, each bounded so a dead client can't hold us, and says
    /// how the session ended. A client that can no longer be written to only gets the close;
    /// the connection's owner decides whether to cut the connection.
    async fn finish(self, status: u32, end: End) -> Summary {
        let mut summary = self.summary;
        summary.end = end;
        let bound = Duration::from_secs(2);
        if end == End::Stalled || end == End::ClientGone {
            // No more data can reach it; a close is not held back by the window, and frees the
            // channel if the client still reads others.
            let _ = timeout(bound, self.handle.close(self.channel)).await;
            return summary;
        }
        let mut stdout = self.stdout;
        let _ = timeout(bound, stdout.flush()).await;
        let _ = timeout(bound, self.handle.exit_status_request(self.channel, status)).await;
        let _ = timeout(bound, self.handle.eof(self.channel)).await;
        let _ = timeout(bound, self.handle.close(self.channel)).await;
        summary
    }
}

/// Runs a session task so that a panic in it ends only this session: the visitor's terminal
/// is restored as far as possible and the channel closed with exit status 1. Either way the
/// session's summary goes to the connection's owner.
/// `held` is kept until the task has ended and reported.
pub fn supervise<H: Send + 'static>(
    handle: Handle,
    summary: Summary,
    reports: mpsc::Sender<Report>,
    held: H,
    task: Task,
) {
    tokio::spawn(async move {
        // Caught here rather than by a second task: one task per session is less memory.
        let summary = match std::panic::AssertUnwindSafe(task).catch_unwind().await {
            Ok(summary) => summary,
            Err(_) => {
                let channel = summary.channel;
                tracing::error!(channel = ?channel, "session task panicked; ending this session only");
                let bound = Duration::from_secs(1);
                let _ = timeout(bound, handle.data(channel, RESTORE.to_vec())).await;
                let sorry = b"Sorry, something went wrong. Please reconnect.\r\n".to_vec();
                let _ = timeout(bound, handle.data(channel, sorry)).await;
                let _ = timeout(bound, handle.exit_status_request(channel, 1)).await;
                let _ = timeout(bound, handle.close(channel)).await;
                Summary { end: End::Error, ..summary }
            }
        };
        // The owner is gone only when the connection already ended; nothing is left to tell.
        let _ = reports.send(Report::Ended(summary)).await;
        drop(held);
    });
}

/// `ssh -T host`: the whole bio as plain text, then exit 0.
pub async fn run_plain(mut setup: SessionSetup) -> Summary {
    let _open = setup.set_kind("plain");
    let text = setup.shared.content.borrow().plain_text(commands::PLAIN_WIDTH);
    let end = match setup.write(text.as_bytes()).await {
        Ok(()) => End::Quit,
        Err(end) => end,
    };
    setup.finish(0, end).await
}

/// `ssh host COMMAND`: the command's output and exit status.
pub async fn run_command(mut setup: SessionSetup, command: String) -> Summary {
    let _open = setup.set_kind("exec");
    let content = setup.shared.content.borrow().clone();
    let mut output = commands::run(&command, &content);
    if setup.pty.is_some() {
        // With `-t` the client's terminal is raw: line feeds need carriage returns.
        output.stdout = output.stdout.replace('\n', "\r\n");
        output.stderr = output.stderr.replace('\n', "\r\n");
    }
    let mut result = setup.write(output.stdout.as_bytes()).await;
    if result.is_ok() && !output.stderr.is_empty() {
        let limit = setup.shared.settings.write_timeout;
        result = match timeout(limit, setup.stderr.write_all(output.stderr.as_bytes())).await {
            Ok(Ok(())) => match timeout(limit, setup.stderr.flush()).await {
                Ok(_) => Ok(()),
                Err(_) => Err(End::Stalled),
            },
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => Err(End::Stalled),
        };
        setup.count_out(output.stderr.len());
    }
    let end = result.err().unwrap_or(End::Quit);
    setup.finish(output.status, end).await
}

/// The interactive UI for a client with a pty.
pub async fn run_tui(mut setup: SessionSetup) -> Summary {
    let _open = setup.set_kind("tui");
    let end = match tui_loop(&mut setup).await {
        Ok(end) | Err(end) => end,
    };
    if end != End::Stalled && end != End::ClientGone {
        let mut goodbye = RESTORE.to_vec();
        let note = match end {
            End::Idle => "Closed after a while without input. Thanks for reading!\r\n",
            End::Limit => "This session reached its time limit. Reconnect any time.\r\n",
            End::Shutdown => "The server is restarting. Please reconnect in a moment.\r\n",
            _ => "",
        };
        goodbye.extend_from_slice(note.as_bytes());
        if let Err(e) = setup.write(&goodbye).await {
            return setup.finish(0, e).await;
        }
    }
    setup.finish(0, end).await
}

/// Runs the frame loop until the visitor quits or something ends the session. `Err` means
/// the client can no longer be written to.
async fn tui_loop(setup: &mut SessionSetup) -> Result<End, End> {
    let settings = setup.shared.settings.clone();
    let (term, cols, rows) = setup.pty.clone().unwrap_or_else(|| (String::new(), 80, 24));
    let env = setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let depth = ColorDepth::detect(Some(&term), env);
    let options = ui::Options { hyperlinks: !term.eq_ignore_ascii_case("dumb") && !term.is_empty() };
    let mut content_rx = setup.shared.content.clone();
    let mut shutdown = setup.shared.shutdown.clone();
    let (Some(mut input), Some(mut sizes)) = (setup.input.take(), setup.size.take()) else {
        return Ok(End::Error);
    };

    let content = content_rx.borrow_and_update().clone();
    let route = (!setup.presenter).then_some(setup.user.as_str());
    let mut app = App::new(content, route);
    app.set_share(settings.share.clone());
    let room = setup.shared.room.clone();
    let mut seat = room.join();
    let mut audience = room.audience();
    let mut presenter = room.presenter();
    // The last published count (not the live one): every visitor arriving within a tick gets
    // the same first screen, so the shared first frame is rendered once per tick, not per visitor.
    let published = *audience.borrow_and_update();
    // Before the first tick that counts anyone, the live count (never "0 here" to a visitor).
    let _ = app.set_audience(if published.connected == 0 { room.counts() } else { published });
    let stage = setup.presenter.then(|| {
        app.set_role(Role::Presenter);
        room.present(app.position())
    });
    app.set_presenter(*presenter.borrow_and_update());
    seat.set_following(app.is_following());
    let mut screen = Screen::new(cols, rows, depth, options);
    // Made at the first keystroke: most visitors only read.
    let mut decoder: Option<Decoder> = None;
    let mut events = Vec::new();
    let started = Instant::now();
    let max_deadline = started + settings.max_session;
    let mut idle_deadline = started + settings.idle_timeout;
    let mut esc_deadline: Option<Instant> = None;
    let mut hibernate_at = Some(started + settings.hibernate_after);

    let mut first = ENTER.to_vec();
    if app.mouse_enabled() {
        first.extend_from_slice(MOUSE_ON);
    }
    first.extend_from_slice(
        &setup.shared.metrics.time_first_frame(|| screen.first_frame(&mut app, &setup.shared.frames)),
    );
    setup.write(&first).await?;
    drop(first);
    #[cfg(feature = "test-panic")]
    test_panic_trigger(&setup.user);

    loop {
        let mut dirty = false;
        let mut raw = Vec::new();
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return Ok(End::Shutdown),
            chunk = input.recv() => {
                let Some(chunk) = chunk else { return Ok(End::ClientGone) };
                let decoder = decoder.get_or_insert_with(Decoder::default);
                let mut received = chunk.len();
                decoder.feed(&chunk, &mut events);
                // Coalesce: everything already queued is applied before one frame is drawn.
                while let Ok(chunk) = input.try_recv() {
                    received = received.saturating_add(chunk.len());
                    decoder.feed(&chunk, &mut events);
                }
                let received = u64::try_from(received).unwrap_or(u64::MAX);
                setup.summary.bytes_in = setup.summary.bytes_in.saturating_add(received);
                esc_deadline = decoder.has_pending().then(|| Instant::now() + settings.esc_timeout);
                idle_deadline = Instant::now() + settings.idle_timeout;
            }
            Ok(()) = sizes.changed() => {
                let (cols, rows) = *sizes.borrow_and_update();
                screen.resize(cols, rows);
                setup.set_size(cols, rows);
                dirty = true;
            }
            Ok(()) = presenter.changed() => {
                app.set_presenter(*presenter.borrow_and_update());
                if app.is_following() {
                    // The same bytes as every other follower in this state, rendered once.
                    raw.extend_from_slice(&screen.follow_frame(&mut app, &setup.shared.frames));
                } else {
                    dirty = true;
                }
            }
            Ok(()) = audience.changed() => {
                if app.set_audience(*audience.borrow_and_update()) {
                    if screen.is_active() {
                        dirty = true;
                    } else {
                        // Idle visitors get the new count without a full frame.
                        raw.extend_from_slice(&screen.patch_top_line(&app, &setup.shared.frames));
                    }
                }
            }
            Ok(()) = content_rx.changed() => {
                app.set_content(content_rx.borrow_and_update().clone());
                dirty = true;
            }
            _ = sleep_until(esc_deadline.unwrap_or(max_deadline)), if esc_deadline.is_some() => {
                esc_deadline = None;
                if let Some(decoder) = decoder.as_mut() {
                    decoder.flush(&mut events);
                }
            }
            _ = sleep_until(hibernate_at.unwrap_or(max_deadline)), if hibernate_at.is_some() => {
                hibernate_at = None;
                screen.hibernate(&app);
                events = Vec::new();
                continue;
            }
            _ = sleep_until(idle_deadline) => return Ok(End::Idle),
            _ = sleep_until(max_deadline) => return Ok(End::Limit),
        }
        hibernate_at = Some(Instant::now() + settings.hibernate_after);
        for event in events.drain(..) {
            if let Event::Resize { cols, rows } = event {
                let (cols, rows) = clamp_size(u32::from(cols), u32::from(rows));
                screen.resize(cols, rows);
                setup.set_size(cols, rows);
            }
            match app.handle(&event) {
                Some(Effect::Quit) => return Ok(End::Quit),
                Some(Effect::SetMouse(on)) => {
                    raw.extend_from_slice(if on { MOUSE_ON } else { MOUSE_OFF });
                    dirty = true;
                }
                Some(Effect::Redraw) => dirty = true,
                None => {}
            }
        }
        seat.set_following(app.is_following());
        if let Some(stage) = &stage {
            stage.moved(app.position());
        }
        if dirty {
            let started = std::time::Instant::now();
            raw.extend_from_slice(&screen.render(&mut app));
            setup.shared.metrics.rendered(started.elapsed().as_secs_f64());
        }
        if !raw.is_empty() {
            setup.write(&raw).await?;
        }
    }
}

/// The user name `sshbio-test-panic` makes the session task panic after the first frame, so the tests can show a panic ends that session alone. Only with the test-only
/// cargo feature `test-panic` (tests/panic.rs); normal builds, debug or release, have no such
/// trigger.
#[cfg(feature = "test-panic")]
#[allow(clippy::panic)]
fn test_panic_trigger(user: &str) {
    if user == "sshbio-test-panic" {
        panic!("test panic requested by the test suite");
    }
}
