//! The task that serves one session channel once a shell or exec request arrives: the TUI
//! (with a pty, through `tui_session`), the plain-text bio (without), or a command's output.
//! Owns the session's writers, write timeouts and the goodbye. The only
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
use tokio::time::timeout;

use super::connection::Report;
use super::{End, Shared};
use crate::commands;
use crate::tui::terminal::RESTORE;

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

    pub(super) fn set_size(&mut self, cols: u16, rows: u16) {
        self.summary.size = (cols, rows);
    }

    /// Writes `bytes` unless the client stops reading for the write timeout.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
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
        let _ = reports.send(Report::Ended(Box::new(summary))).await;
        drop(held);
    });
}

/// `ssh -T host`: the whole bio as plain text, then exit 0. With a section's slug as the user
/// name (`ssh -T atlas@host`), that section's text, and with `links`, the links, as the UI
/// opens on them.
pub async fn run_plain(mut setup: SessionSetup) -> Summary {
    let _open = setup.set_kind("plain");
    let text = {
        let content = setup.shared.content.borrow();
        if setup.user.eq_ignore_ascii_case("links") && !content.links.is_empty() {
            content.links_text()
        } else {
            content
                .section_index(&setup.user)
                .and_then(|index| content.section_text(index, commands::PLAIN_WIDTH))
                .unwrap_or_else(|| content.plain_text(commands::PLAIN_WIDTH))
        }
    };
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
    let end = match super::tui_session::run(&mut setup).await {
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
