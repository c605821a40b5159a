//! One connection's owner: runs russh over the metered stream, hears what the handler and the
//! session tasks report, and alone decides how the connection ends and cuts it: after the
//! handshake deadline, when the client stopped reading its last session, shortly after the last
//! channel closes (with an SSH disconnect message), at the session limit or on shutdown. Logs
//! one line per session and counts the connection in metrics. Knows nothing of the UI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::server::{Handle, RunningSession};
use russh::{ChannelId, Disconnect};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use super::handler::{Connection, MAX_SESSIONS};
use super::session::Summary;
use super::stream::{Meter, MeteredStream};
use super::{End, Seat, Seats, Shared};

/// How long a connection whose last channel closed is kept for the client to open another
/// (OpenSSH ControlMaster runs its next command over it) before the server disconnects.
pub const LAST_CHANNEL_GRACE: Duration = Duration::from_millis(500);
/// How long a client gets to close its side after our disconnect message before the stream
/// is cut under it.
const DISCONNECT_WAIT: Duration = Duration::from_millis(250);
/// How long session tasks still running when the connection ended get to report (their
/// writes fail at once then), so every session still gets its log line.
const LATE_REPORTS: Duration = Duration::from_secs(1);
/// Reports queued for the owner: the handler sends one authentication, then an open and a
/// close per channel, and never waits; the owner reads them as they come, so with at most
/// [`MAX_SESSIONS`] channels open at once this is more than can pile up.
const REPORTS: usize = 16 + 4 * MAX_SESSIONS;

/// What the handler and the session tasks tell the connection's owner.
#[derive(Debug)]
pub enum Report {
    /// Authentication succeeded (the handshake deadline is over), as this user name.
    Authenticated { user: String },
    /// A session channel was opened.
    Opened(ChannelId),
    /// The client closed a channel.
    Closed(ChannelId),
    /// A session task finished (its channel is closed from our side), with its facts. Boxed:
    /// the queue allocates its slots up front for every connection, and a `Summary` is
    /// about 100 bytes against 32 for the other reports.
    Ended(Box<Summary>),
}

/// The owner's view of one connection.
struct Owner {
    /// Content, settings, metrics and the shutdown signal.
    shared: Arc<Shared>,
    /// For the log lines.
    peer: SocketAddr,
    /// Counts the stream's bytes and cuts it.
    meter: Arc<Meter>,
    /// When the connection was accepted: the session limit and duration count from here.
    started: Instant,
    /// The user name once authenticated; `None` before.
    user: Option<String>,
    /// The server's key-exchange slot, given back once the client has authenticated.
    handshake: Option<Box<dyn Send + Sync>>,
    /// The connection's place in the server's limits: given back before the connection is
    /// counted as closed, so a client that sees the count drop can connect again at once.
    seat: Option<Seat>,
    /// Channels open now (ours or the client's side not yet closed).
    open: Vec<ChannelId>,
    /// Sessions that ran to an end on this connection.
    sessions: usize,
    /// How the latest session ended: the connection ended the same way.
    last_end: Option<End>,
    /// Set when the last channel closed: the connection is ended then.
    disconnect_at: Option<Instant>,
    /// The client (or an error) ended russh's session, not us.
    client_ended: bool,
    /// Whether the connection's end was counted: a panic skips [`Owner::finish`], and the
    /// drop during the unwinding counts it then, so the open-connections gauge stays true.
    counted: bool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.counted {
            self.finish(End::Error);
        }
    }
}

/// What the owner does after a report or a timer.
enum Next {
    /// Keep serving.
    Continue,
    /// End the connection now, politely (an SSH disconnect message) or by cutting the stream.
    End(End),
}

/// Serves one accepted TCP connection until it ends; returns how it ended.
///
/// `handshake` is held until the client has authenticated (or the connection ends): the
/// server's bound on key exchanges in progress. `seat` is the connection's place in the
/// limits, held until it ends; `seats` gives places to its further sessions.
pub async fn serve<S, H>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    seat: Seat,
    seats: Seats,
    handshake: H,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Send + Sync + 'static,
{
    // Counted as a handshake in progress (metrics) and holding a key-exchange slot (the
    // server's bound) until the client has authenticated.
    let in_progress = shared.metrics.connection_opened();
    let meter = Arc::new(Meter::default());
    let (reports_tx, mut reports) = mpsc::channel(REPORTS);
    let handler = Connection::new(shared.clone(), peer, reports_tx, seats);
    let stream = MeteredStream::new(stream, meter.clone());
    let mut owner = Owner {
        shared,
        peer,
        meter,
        started: Instant::now(),
        user: None,
        open: Vec::new(),
        sessions: 0,
        last_end: None,
        disconnect_at: None,
        handshake: Some(Box::new((handshake, in_progress))),
        seat: Some(seat),
        client_ended: false,
        counted: false,
    };
    let end = owner.run(stream, handler, &mut reports).await;
    // Whatever happened, the stream is cut now: russh keeps a connection open otherwise.
    owner.meter.kill();
    owner.late_reports(&mut reports).await;
    let end = owner.settle(end);
    owner.finish(end);
    end
}

impl Owner {
    async fn run<S>(
        &mut self,
        stream: MeteredStream<S>,
        handler: Connection,
        reports: &mut mpsc::Receiver<Report>,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let settings = self.shared.settings.clone();
        let handshake_deadline = self.started + settings.handshake_timeout;
        let config = self.shared.config.clone();
        let session =
            timeout_at(handshake_deadline, russh::server::run_stream(config, stream, handler)).await;
        let mut session = match session {
            Err(_) => return End::HandshakeTimeout,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "version exchange failed");
                return End::Error;
            }
            Ok(Ok(session)) => session,
        };
        let handle = session.handle();
        let hard_limit = self.started + settings.max_session + settings.drain_timeout;
        let mut shutdown = self.shared.shutdown.clone();
        let mut drained_at: Option<Instant> = None;
        // Timers that are off wait for this, which never comes first.
        let never = hard_limit;
        loop {
            let authenticating = self.user.is_none();
            let next = tokio::select! {
                result = &mut session => return self.session_result(result),
                Some(report) = reports.recv() => self.on_report(report),
                _ = sleep_until(handshake_deadline), if authenticating => Next::End(End::HandshakeTimeout),
                _ = sleep_until(self.disconnect_at.unwrap_or(never)), if self.disconnect_at.is_some() => {
                    Next::End(self.last_end.unwrap_or(End::ClientGone))
                }
                _ = sleep_until(hard_limit) => Next::End(End::Limit),
                // Sessions say goodbye on shutdown themselves; this bounds how long they get.
                _ = shutdown.wait_for(|stop| *stop), if drained_at.is_none() => {
                    drained_at = Some(Instant::now() + settings.drain_timeout);
                    Next::Continue
                }
                _ = sleep_until(drained_at.unwrap_or(never)), if drained_at.is_some() => Next::End(End::Shutdown),
            };
            if let Next::End(end) = next {
                self.end(end, &handle, &mut session).await;
                return end;
            }
        }
    }

    /// Applies one report; says whether the connection must end now.
    fn on_report(&mut self, report: Report) -> Next {
        match report {
            Report::Authenticated { user } => {
                self.user = Some(user);
                // The key exchange is over: let the next waiting handshake start.
                self.handshake = None;
            }
            Report::Opened(channel) => {
                self.open.push(channel);
                self.disconnect_at = None;
            }
            Report::Closed(channel) => self.gone(channel),
            Report::Ended(summary) => {
                self.log_session(&summary);
                self.sessions = self.sessions.saturating_add(1);
                self.last_end = Some(summary.end);
                self.gone(summary.channel);
                if summary.end == End::Stalled && self.open.is_empty() {
                    // The client stopped reading and nothing else is open: cut it now.
                    return Next::End(End::Stalled);
                }
            }
        }
        Next::Continue
    }

    /// A channel is closed from one side: once none is left, the connection ends shortly.
    fn gone(&mut self, channel: ChannelId) {
        let before = self.open.len();
        self.open.retain(|c| *c != channel);
        if self.open.is_empty() && before > 0 {
            self.disconnect_at = Some(Instant::now() + LAST_CHANNEL_GRACE);
        }
    }

    /// Ends the connection: a client that can still be reached gets an SSH disconnect message
    /// and a moment to close its side; then (or at once for one that can't) the stream is cut.
    async fn end(&self, end: End, handle: &Handle, session: &mut RunningSession<Connection>) {
        if !matches!(end, End::Stalled | End::HandshakeTimeout) {
            let description = match end {
                End::Limit => "this session reached its time limit",
                End::Shutdown => "the server is restarting",
                _ => "thanks for reading",
            };
            let sent = handle.disconnect(Disconnect::ByApplication, description.into(), "en".into());
            if timeout(DISCONNECT_WAIT, sent).await.is_ok() {
                let _ = timeout(DISCONNECT_WAIT, session).await;
            }
        }
        self.meter.kill();
    }

    /// Logs the sessions that were still running when the connection ended (bounded).
    async fn late_reports(&mut self, reports: &mut mpsc::Receiver<Report>) {
        let deadline = Instant::now() + LATE_REPORTS;
        // `None` once the handler and every session task are gone.
        while let Ok(Some(report)) = timeout_at(deadline, reports.recv()).await {
            if let Report::Ended(summary) = report {
                self.log_session(&summary);
                self.sessions = self.sessions.saturating_add(1);
                self.last_end = Some(summary.end);
            }
        }
    }

    /// The connection's end, once every session has reported: when the client hung up, it
    /// ended the way its last session did (`quit` after `q`, then the client's disconnect;
    /// `client-gone` when a session was still running), so a race between the client's
    /// disconnect and a session's report cannot change the answer.
    fn settle(&self, end: End) -> End {
        match self.last_end {
            Some(last) if self.client_ended => last,
            _ => end,
        }
    }

    /// How the connection ended when russh's session finished on its own.
    /// (Sessions may still report after this: see `settle`.)
    fn session_result(&mut self, result: Result<(), anyhow::Error>) -> End {
        self.client_ended = true;
        match result {
            Ok(()) => End::ClientGone,
            Err(e) => {
                if let Some(reason) = kex_failure(&e) {
                    // Counted so an operator sees who is turned away; logged only at debug,
                    // since any scanner can cause it.
                    self.shared.metrics.kex_failed(reason);
                }
                tracing::debug!(peer = %self.peer, error = %e, "connection error");
                End::Error
            }
        }
    }

    /// One line per session, when it ends: who, what, how long, how much, how it ended.
    fn log_session(&self, summary: &Summary) {
        tracing::info!(
            peer = %self.peer,
            user = %self.user.as_deref().unwrap_or_default(),
            term = %summary.term,
            size = %format_args!("{}x{}", summary.size.0, summary.size.1),
            kind = summary.kind,
            duration_ms = u64::try_from(summary.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            bytes_in = summary.bytes_in,
            bytes_out = summary.bytes_out,
            end = summary.end.as_str(),
            "session ended"
        );
    }

    /// Counts the connection and logs the ones that ran no session.
    fn finish(&mut self, end: End) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        // Places in the limits are given back before the close is counted.
        self.seat = None;
        self.handshake = None;
        let bytes_in = self.meter.bytes_in.load(Ordering::Relaxed);
        let bytes_out = self.meter.bytes_out.load(Ordering::Relaxed);
        let handshake_failed = self.user.is_none() && matches!(end, End::HandshakeTimeout | End::Error);
        self.shared.metrics.connection_closed(end.as_str(), bytes_in, bytes_out, handshake_failed);
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &self.user {
            // Never authenticated: scanners, port probes, garbage. Counted, logged quietly.
            None => tracing::debug!(
                peer = %self.peer, bytes_in, bytes_out, end = end.as_str(),
                "connection ended before authentication"
            ),
            Some(user) if self.sessions == 0 => tracing::info!(
                peer = %self.peer, user = %user, duration_ms, bytes_in, bytes_out, end = end.as_str(),
                "connection ended without a session"
            ),
            Some(_) => tracing::debug!(
                peer = %self.peer, sessions = self.sessions, duration_ms, bytes_in, bytes_out,
                end = end.as_str(), "connection ended"
            ),
        }
    }
}

/// The kind of algorithm a failed key exchange found nothing in common for, if that is why
/// the connection ended.
fn kex_failure(error: &anyhow::Error) -> Option<&'static str> {
    match error.downcast_ref::<russh::Error>()? {
        russh::Error::NoCommonAlgo { kind, .. } => Some(match kind {
            russh::AlgorithmKind::Kex => "kex",
            russh::AlgorithmKind::Key => "host-key",
            russh::AlgorithmKind::Cipher => "cipher",
            russh::AlgorithmKind::Mac => "mac",
            russh::AlgorithmKind::Compression => "compression",
        }),
        _ => None,
    }
}
