//! Follow mode as a client sees it: the presenter's connection, the screens that watch for
//! each press, and the sections a press moves to.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use russh::client;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::STEP;
use crate::client::{Client, Counted, Session};
use crate::stats::ms;

/// What a follower's screen shows while it follows the presenter.
pub const FOLLOW_BANNER: &str = "Following the speaker live";
/// What the presenter's own screen shows.
pub const PRESENTER_BANNER: &str = "You are presenting";
/// The presenter's id in [`Shown`] events (followers are 0..N).
pub const PRESENTER: usize = usize::MAX;

/// One press of the presenter, announced to every watcher just before the key is sent.
#[derive(Clone)]
pub struct Press {
    /// Which press (0, 1, ...).
    pub idx: usize,
    /// When the key was sent.
    pub t0: Instant,
    /// The new section's numbered title over its text, e.g. `07  eBPF`.
    pub title: Arc<str>,
    /// The first words of the new section's text.
    pub words: Arc<str>,
}

pub enum WatchEvent {
    /// The screen shows its banner (follow mode is on).
    Banner(usize),
    /// The screen shows the section of press `press`: ms from the key to the first byte after it,
    /// and to the screen showing the section's title and first words.
    Shown {
        who: usize,
        press: usize,
        first_ms: f64,
        screen_ms: f64,
    },
    Closed(usize),
}

/// One screen in the presenter part (a follower's or the presenter's): a vt100 emulator and
/// what has been reported for the current press.
pub struct Watcher {
    /// Follower 0..N, or [`PRESENTER`].
    pub who: usize,
    /// The banner that shows this screen follows (or presents).
    pub banner: &'static str,
    /// The banner was reported.
    pub banner_seen: bool,
    /// The press whose first byte was timed.
    pub first_for: Option<usize>,
    /// Key -> first byte of that press, ms.
    pub first_ms: f64,
    /// The press whose section was reported on screen.
    pub shown_for: Option<usize>,
    /// The press being timed.
    pub press: watch::Receiver<Option<Press>>,
    /// Where this screen reports.
    pub events: tokio::sync::mpsc::UnboundedSender<WatchEvent>,
    /// Channel data received, summed with the other screens.
    pub bytes: Arc<AtomicU64>,
}

impl Watcher {
    /// Called after `vt` has taken `len` new bytes of channel data.
    pub fn on_data(&mut self, vt: &vt100::Parser, len: u64) {
        let now = Instant::now();
        self.bytes.fetch_add(len, Ordering::Relaxed);
        let text = vt.screen().contents();
        if !self.banner_seen && text.contains(self.banner) {
            self.banner_seen = true;
            let _ = self.events.send(WatchEvent::Banner(self.who));
        }
        let Some(press) = self.press.borrow().clone() else { return };
        if self.first_for != Some(press.idx) {
            self.first_for = Some(press.idx);
            self.first_ms = ms(now.saturating_duration_since(press.t0));
        }
        if self.shown_for != Some(press.idx) && text.contains(&*press.title) && text.contains(&*press.words) {
            self.shown_for = Some(press.idx);
            let _ = self.events.send(WatchEvent::Shown {
                who: self.who,
                press: press.idx,
                first_ms: self.first_ms,
                screen_ms: ms(now.saturating_duration_since(press.t0)),
            });
        }
    }
}

/// A follower: drains its channel continuously until told to stop, then quits with `q`.
pub async fn follow(mut s: Session, mut w: Watcher, mut stop: watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            msg = s.screen.channel.wait() => {
                let was = s.screen.received;
                if !s.screen.absorb(msg) {
                    let _ = w.events.send(WatchEvent::Closed(w.who));
                    return false;
                }
                if s.screen.received > was {
                    w.on_data(&s.screen.vt, s.screen.received - was);
                }
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    s.quit().await.is_ok()
}

/// Connects as `present` with `key` and opens an 80x24 TUI.
pub async fn connect_presenter(
    addr: SocketAddr,
    config: Arc<client::Config>,
    key: &russh::keys::PrivateKey,
) -> Result<(client::Handle<Client>, russh::Channel<client::Msg>)> {
    let tcp = timeout(STEP, TcpStream::connect(addr)).await.context("tcp connect timeout")??;
    tcp.set_nodelay(true)?;
    let stream = Counted { inner: tcp, wire: Arc::default() };
    let mut handle = timeout(STEP, client::connect_stream(config, stream, Client::default()))
        .await
        .context("kex timeout")??;
    let auth = timeout(
        STEP,
        handle.authenticate_publickey(
            "present",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
        ),
    )
    .await
    .context("auth timeout")??;
    if !auth.success() {
        bail!("the presenter key was refused");
    }
    let channel = timeout(STEP, handle.channel_open_session()).await.context("open timeout")??;
    channel.request_pty(true, "xterm-256color", 80, 24, 0, 0, &[]).await?;
    channel.request_shell(true).await?;
    Ok((handle, channel))
}

/// Sections of the content file: (title, first words of the text).
pub fn section_marks(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let sections = doc.get("sections").and_then(|s| s.as_array()).context("no [[sections]]")?;
    Ok(sections
        .iter()
        .map(|s| {
            let title = s.get("title").and_then(|t| t.as_str()).unwrap_or_default().to_string();
            let first = s
                .get("paragraphs")
                .and_then(|p| p.as_array())
                .and_then(|p| p.first())
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            let words = first.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            (title, words)
        })
        .collect())
}
