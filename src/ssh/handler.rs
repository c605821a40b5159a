//! The russh `Handler` for one connection: authentication (any method lets a visitor in, the
//! presenter needs a listed key, and visitors' passwords and keys are never logged or kept),
//! channel and request bookkeeping, and handing input to the session task. Every request that
//! wants a reply gets one. Callbacks never wait on anything that a slow client controls.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use russh::keys::Certificate;
use russh::server::{Auth, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty};
use russh::{MethodKind, MethodSet};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, watch};

use super::connection::Report;
use super::session::{self, SessionSetup, Summary, Writer};
use super::{PRESENTER_USER, Seat, Seats, Shared, clamp_size};
use crate::content::sanitize;

/// Input chunks queued for the session task before further input is dropped: with packets of
/// at most 32 KiB this bounds buffered input, and a flood loses keystrokes, not memory.
const INPUT_QUEUE: usize = 16;
/// Env requests kept per channel, and the longest name and value kept.
const MAX_ENV: usize = 16;
const MAX_ENV_NAME: usize = 64;
const MAX_ENV_VALUE: usize = 256;
/// Session channels one connection may have open at once (one after another there is no
/// limit but the connection limits): enough for OpenSSH ControlMaster and libraries that
/// reuse a connection, and bounded, because every one may be a visitor's UI.
pub const MAX_SESSIONS: usize = 4;

/// One open session channel's state, until a shell or exec request starts the session task.
struct ChannelState {
    /// The channel's id, to match later requests to it.
    id: ChannelId,
    /// Writes stdout to the client with window-aware backpressure.
    stdout: Option<Writer>,
    /// Writes stderr (extended data 1), for command errors.
    stderr: Option<Writer>,
    /// TERM and size from pty-req; `None` without a pty.
    pty: Option<(String, u16, u16)>,
    /// Env requests, bounded (COLORTERM, NO_COLOR matter; LANG etc. are kept for nothing else).
    env: Vec<(String, String)>,
    /// Input to the running TUI; `None` before a shell starts or for commands.
    input: Option<mpsc::Sender<Vec<u8>>>,
    /// Size changes for the running TUI.
    size: Option<watch::Sender<(u16, u16)>>,
    /// A shell or exec request already started a task: later ones are refused.
    started: bool,
    /// The place this channel takes in the server's limits when it is not the connection's
    /// first; moves to the session task when one starts, and is given back when that ends
    /// (or when the client closes a channel that never started one).
    seat: Option<Seat>,
    /// Shared with the session task: once only this copy is left, the session has ended and
    /// the channel is closed from our side (russh then no longer tells us of the client's
    /// close, so this is how the channel leaves the list).
    live: Arc<()>,
}

impl ChannelState {
    fn finished(&self) -> bool {
        self.started && Arc::strong_count(&self.live) == 1
    }
}

/// russh calls into this for everything one client does.
pub struct Connection {
    /// Content, settings and the shutdown signal.
    shared: Arc<Shared>,
    /// For logs.
    peer: SocketAddr,
    /// Tells the connection's owner what happens: authentication, channels, session ends.
    reports: mpsc::Sender<Report>,
    /// Asks the server's limits for a place for each channel beyond the first.
    seats: Seats,
    /// The client's user name, cleaned: used as the route to a section.
    user: String,
    /// The session channels open now (at most [`MAX_SESSIONS`]).
    channels: Vec<ChannelState>,
    /// Session channels opened so far on this connection: all but the first take a seat.
    opened: usize,
    /// Authenticated as the presenter with a listed key.
    presenter: bool,
}

impl Connection {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr, reports: mpsc::Sender<Report>, seats: Seats) -> Self {
        Self {
            shared,
            peer,
            reports,
            seats,
            user: String::new(),
            channels: Vec::new(),
            opened: 0,
            presenter: false,
        }
    }

    /// True for a key from the configured presenter list.
    fn is_presenter_key(&self, key: &russh::keys::PublicKey) -> bool {
        self.shared.settings.presenter_keys.iter().any(|k| k.key_data() == key.key_data())
    }

    /// Whatever method a visitor used, it lets them in without a prompt; only the presenter
    /// user name needs a listed key.
    fn visitor(&mut self, user: &str) -> Auth {
        if user == PRESENTER_USER {
            return self.presenter_only();
        }
        self.user = sanitize::clean_short(user, 64);
        Auth::Accept
    }

    /// The refusal for `present` without a listed key: only public keys may follow, so the
    /// client never falls back to a password prompt, and ends with "Permission denied
    /// (publickey)". Also when presenting is off: an empty list of methods would not do, as
    /// OpenSSH reads it as "try everything" and prompts for a password.
    fn presenter_only(&self) -> Auth {
        if self.shared.settings.presenter_keys.is_empty() {
            tracing::debug!(peer = %self.peer, "present@ refused: presenting is off (no --presenter-keys)");
        }
        let methods = MethodSet::from(&[MethodKind::PublicKey][..]);
        Auth::Reject { proceed_with_methods: Some(methods), partial_success: false }
    }

    fn channel_mut(&mut self, id: ChannelId) -> Option<&mut ChannelState> {
        self.channels.iter_mut().find(|c| c.id == id)
    }

    /// Tells the owner without waiting. The owner reads as reports come; a full queue means a
    /// client opening and closing channels faster than that, and ends the connection rather
    /// than let the owner lose count of open channels.
    fn report(&self, report: Report) -> HandlerResult {
        self.reports
            .try_send(report)
            .map_err(|_| anyhow::anyhow!("channel events faster than they can be handled"))
    }

    /// A place for one more session channel, or why not: the connection's first channel uses
    /// the connection's own place in the limits; every later one takes another while it is
    /// open, as a new connection from the same address would (rate included, so cycling
    /// channels is no cheaper than reconnecting).
    fn seat_for_another_channel(&self) -> Result<Option<Seat>, &'static str> {
        if self.channels.len() >= MAX_SESSIONS {
            return Err("sessions-per-connection");
        }
        if self.opened == 0 {
            return Ok(None);
        }
        match (self.seats)() {
            Ok(seat) => Ok(Some(seat)),
            Err(refusal) => {
                self.shared.metrics.refused(refusal.as_str());
                Err(refusal.as_str())
            }
        }
    }

    /// Starts the task that serves a shell (`command` = None) or exec request.
    fn start(&mut self, id: ChannelId, command: Option<String>, session: &mut Session) -> bool {
        let handle = session.handle();
        let supervisor = handle.clone();
        let reports = self.reports.clone();
        let shared = self.shared.clone();
        let user = self.user.clone();
        let presenter = self.presenter;
        let Some(state) = self.channel_mut(id) else { return false };
        if state.started {
            return false;
        }
        let (Some(stdout), Some(stderr)) = (state.stdout.take(), state.stderr.take()) else {
            return false;
        };
        state.started = true;
        let kind = match (&command, &state.pty) {
            (Some(_), _) => "exec",
            (None, None) => "plain",
            (None, Some(_)) => "tui",
        };
        let summary = Summary::new(id, kind, state.pty.as_ref());
        // Held by the session task until it ends: its seat in the limits, and the token that
        // tells this handler the channel is done.
        let held = (state.seat.take(), state.live.clone());
        let mut setup = SessionSetup {
            handle,
            channel: id,
            stdout,
            stderr,
            shared,
            summary: summary.clone(),
            user,
            presenter,
            pty: state.pty.clone(),
            env: std::mem::take(&mut state.env),
            input: None,
            size: None,
        };
        let supervise = |task: session::Task| session::supervise(supervisor, summary, reports, held, task);
        match (command, &state.pty) {
            (Some(command), _) => supervise(Box::pin(session::run_command(setup, command))),
            (None, None) => supervise(Box::pin(session::run_plain(setup))),
            (None, Some((_, cols, rows))) => {
                let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
                let (size_tx, size_rx) = watch::channel((*cols, *rows));
                state.input = Some(input_tx);
                state.size = Some(size_tx);
                setup.input = Some(input_rx);
                setup.size = Some(size_rx);
                supervise(Box::pin(session::run_tui(setup)));
            }
        }
        true
    }
}

type HandlerResult<T = ()> = Result<T, anyhow::Error>;

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_none(&mut self, user: &str) -> HandlerResult<Auth> {
        Ok(self.visitor(user))
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> HandlerResult<Auth> {
        // Any password lets a visitor in, the empty one too. It is never looked at, logged or kept.
        Ok(self.visitor(user))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> HandlerResult<Auth> {
        // Accepted before any prompt is sent: the client shows nothing.
        Ok(self.visitor(user))
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> HandlerResult<Auth> {
        Ok(match user {
            PRESENTER_USER if self.is_presenter_key(offer.public_key) => Auth::Accept,
            PRESENTER_USER => self.presenter_only(),
            // Any key may try; russh verifies its signature before `auth_publickey`.
            _ => Auth::Accept,
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> HandlerResult<Auth> {
        if user != PRESENTER_USER {
            // A visitor's key proves nothing we need: it is neither logged nor kept.
            return Ok(self.visitor(user));
        }
        if !self.is_presenter_key(key.public_key) {
            return Ok(self.presenter_only());
        }
        self.presenter = true;
        self.user = PRESENTER_USER.into();
        tracing::info!(peer = %self.peer, "presenter authenticated");
        Ok(Auth::Accept)
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        _certificate: &Certificate,
    ) -> HandlerResult<Auth> {
        // The presenter logs in with a listed plain key, not a certificate.
        Ok(if user == PRESENTER_USER { self.presenter_only() } else { self.visitor(user) })
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> HandlerResult {
        self.report(Report::Authenticated { user: self.user.clone() })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> HandlerResult {
        self.channels.retain(|c| !c.finished());
        let seat = match self.seat_for_another_channel() {
            Ok(seat) => seat,
            Err(reason) => {
                tracing::debug!(peer = %self.peer, reason, "session channel refused");
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return Ok(());
            }
        };
        let stdout: Writer = Box::pin(channel.make_writer()) as Pin<Box<dyn AsyncWrite + Send>>;
        let stderr: Writer = Box::pin(channel.make_writer_ext(Some(1)));
        // Input arrives through `data` below; the Channel itself is dropped so its queue can
        // never fill up and stall the connection (tech notes §1.5).
        let id = channel.id();
        drop(channel);
        self.opened = self.opened.saturating_add(1);
        self.channels.push(ChannelState {
            id,
            stdout: Some(stdout),
            stderr: Some(stderr),
            pty: None,
            env: Vec::new(),
            input: None,
            size: None,
            started: false,
            seat,
            live: Arc::new(()),
        });
        self.report(Report::Opened(id))?;
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> HandlerResult {
        let term = sanitize::clean_short(term, 64);
        let (cols, rows) = clamp_size(col_width, row_height);
        match self.channel_mut(channel) {
            Some(state) if !state.started => {
                state.pty = Some((term, cols, rows));
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> HandlerResult {
        let accepted = match self.channel_mut(channel) {
            Some(state) if state.env.len() < MAX_ENV && name.len() <= MAX_ENV_NAME => {
                let value = sanitize::clean_short(value, MAX_ENV_VALUE);
                state.env.push((sanitize::clean_short(name, MAX_ENV_NAME), value));
                true
            }
            _ => false,
        };
        if accepted {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> HandlerResult {
        if self.start(channel, None, session) {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> HandlerResult {
        let command =
            String::from_utf8_lossy(data.get(..data.len().min(1024)).unwrap_or_default()).into_owned();
        if self.start(channel, Some(command), session) {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> HandlerResult {
        tracing::debug!(peer = %self.peer, subsystem = %sanitize::clean_short(name, 32), "subsystem refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> HandlerResult {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> HandlerResult {
        let size = clamp_size(col_width, row_height);
        if let Some(state) = self.channel_mut(channel) {
            if let Some(tx) = &state.size {
                // A watch keeps only the newest size: a resize storm costs one redraw.
                let _ = tx.send(size);
            } else if let Some(pty) = state.pty.as_mut() {
                (pty.1, pty.2) = size;
            }
        }
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _session: &mut Session) -> HandlerResult {
        if let Some(tx) = self.channel_mut(channel).and_then(|s| s.input.as_ref()) {
            // Never wait here: a full queue means the visitor types faster than we draw, and
            // the surplus is dropped rather than stalling the connection's loop.
            let _ = tx.try_send(data.to_vec());
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, _session: &mut Session) -> HandlerResult {
        // No more input will come: the TUI ends as if the visitor quit. Commands and plain
        // text finish on their own.
        if let Some(state) = self.channel_mut(channel) {
            state.input = None;
        }
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> HandlerResult {
        // Dropping the state ends a running TUI's input and size (it ends as if the visitor
        // quit) and gives back the channel's seat.
        let before = self.channels.len();
        self.channels.retain(|c| c.id != channel);
        if self.channels.len() < before {
            self.report(Report::Closed(channel))?;
        }
        Ok(())
    }
}
