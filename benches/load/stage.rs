//! The presenter on stage, shared by the presenter and keynote parts: a server that accepts one
//! freshly generated presenter key, the room's channels (press announcements, stop, watch
//! events), the presenter's own connection with its screen drained by a task, and one press
//! timed across every follower.

use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use russh::keys::PrivateKey;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, client};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::STEP;
use crate::client::Client;
use crate::follow::{
    PRESENTER, PRESENTER_BANNER, Press, WatchEvent, Watcher, connect_presenter, section_marks,
};
use crate::opts::Opts;
use crate::server::Server;

/// The sections a press can move to, (title, first words), at most 9 (keys 1..9).
pub fn marks(opts: &Opts) -> Result<Vec<(String, String)>> {
    let content =
        opts.content.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content.toml"));
    let marks: Vec<(String, String)> = section_marks(&content)?.into_iter().take(9).collect();
    if marks.len() < 2 {
        bail!("follow mode needs at least 2 sections in {}", content.display());
    }
    Ok(marks)
}

/// A fresh server that accepts one freshly generated Ed25519 presenter key.
pub fn spawn_server(opts: &Opts, raised_limits: bool, extra: &[String]) -> Result<(Server, PrivateKey)> {
    let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
        .map_err(|e| anyhow!("generating the presenter key: {e}"))?;
    let public = key.public_key().to_openssh().map_err(|e| anyhow!("encoding the presenter key: {e}"))?;
    let keys_file = std::env::temp_dir().join(format!("sshbio-load-presenter-{}.pub", std::process::id()));
    std::fs::write(&keys_file, format!("{public}\n"))?;
    let mut args = vec!["--presenter-keys".to_string(), keys_file.to_string_lossy().into()];
    args.extend(extra.iter().cloned());
    let spawned = Server::spawn_with(opts, raised_limits, &args);
    let _ = std::fs::remove_file(&keys_file);
    Ok((spawned?, key))
}

/// What every screen in the room shares: the press being timed, the stop signal, and the
/// channel on which screens report what they show.
pub struct Room {
    /// The press every watcher times (None before the first).
    pub press_tx: watch::Sender<Option<Press>>,
    /// Tells every follower (and the presenter's reader) to leave.
    pub stop_tx: watch::Sender<bool>,
    /// Cloned into every watcher.
    pub events_tx: UnboundedSender<WatchEvent>,
    /// What the screens report.
    pub events: UnboundedReceiver<WatchEvent>,
    /// Channel data received by all followers after their first frame.
    pub follower_bytes: Arc<AtomicU64>,
    /// Channel data received by the presenter.
    pub presenter_bytes: Arc<AtomicU64>,
}

impl Room {
    pub fn new() -> Self {
        let (events_tx, events) = unbounded_channel();
        Self {
            press_tx: watch::channel(None).0,
            stop_tx: watch::channel(false).0,
            events_tx,
            events,
            follower_bytes: Arc::default(),
            presenter_bytes: Arc::default(),
        }
    }

    /// A watcher for follower `who`; `banner_seen` skips the banner event.
    pub fn follower(&self, who: usize, banner: &'static str, banner_seen: bool) -> Watcher {
        Watcher {
            who,
            banner,
            banner_seen,
            first_for: None,
            first_ms: 0.0,
            shown_for: None,
            press: self.press_tx.subscribe(),
            events: self.events_tx.clone(),
            bytes: self.follower_bytes.clone(),
        }
    }

    pub fn stop_rx(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }
}

/// What one press showed: per follower (ms to the first byte, ms to the new section on
/// screen), the presenter's own screen, and the followers whose channel closed meanwhile.
#[derive(Default)]
pub struct Outcome {
    /// Per follower that showed it: (ms to the first byte, ms to the section on screen).
    pub shown: Vec<(f64, f64)>,
    /// Key -> the presenter's own screen shows it, ms.
    pub presenter_ms: Option<f64>,
    /// Followers whose channel closed meanwhile.
    pub closed: Vec<usize>,
}

/// The presenter's connection: keys go through the write half, a task drains the screen.
pub struct Presenter {
    /// The connection, for the disconnect.
    handle: client::Handle<Client>,
    /// Where the keys go.
    write: ChannelWriteHalf<client::Msg>,
    /// Drains the presenter's screen; returns its exit status.
    reader: JoinHandle<Option<u32>>,
}

impl Presenter {
    /// Connects as `present` with `key` (80x24 TUI) and starts draining its screen.
    pub async fn connect(
        server: &Server,
        config: Arc<client::Config>,
        key: &PrivateKey,
        room: &Room,
    ) -> Result<Self> {
        let (handle, channel) = connect_presenter(server.addr, config, key).await?;
        let (read, write) = channel.split();
        let mut watcher = room.follower(PRESENTER, PRESENTER_BANNER, false);
        watcher.bytes = room.presenter_bytes.clone();
        let reader = tokio::spawn(read_screen(read, watcher, room.stop_rx()));
        Ok(Self { handle, write, reader })
    }

    /// Announces press `idx` to the room, sends the key for section `page` and waits up to
    /// `wait` until `expect` followers and the presenter show it.
    pub async fn press(
        &self,
        room: &mut Room,
        idx: usize,
        (page, title, words): (usize, &str, &str),
        expect: usize,
        wait: Duration,
    ) -> Result<Outcome> {
        let t0 = Instant::now();
        let press = Press { idx, t0, title: format!("{:02}  {title}", page + 1).into(), words: words.into() };
        room.press_tx.send_replace(Some(press));
        self.write.data_bytes(vec![b'1' + u8::try_from(page)?]).await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Outcome::default();
        while out.shown.len() + out.closed.len() < expect || out.presenter_ms.is_none() {
            match tokio::time::timeout_at(deadline, room.events.recv()).await {
                Ok(Some(WatchEvent::Shown { who, press, first_ms, screen_ms })) if press == idx => {
                    if who == PRESENTER {
                        out.presenter_ms = Some(screen_ms);
                    } else {
                        out.shown.push((first_ms, screen_ms));
                    }
                }
                Ok(Some(WatchEvent::Closed(who))) => out.closed.push(who),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Presses `q`, tells the room to stop, and waits for the presenter's exit status.
    pub async fn leave(self, room: &Room) -> Result<Option<u32>> {
        self.write.data_bytes(&b"q"[..]).await?;
        room.stop_tx.send_replace(true);
        let exit = timeout(STEP, self.reader).await.ok().and_then(Result::ok).flatten();
        let _ = timeout(Duration::from_secs(2), self.handle.disconnect(Disconnect::ByApplication, "", "en"))
            .await;
        Ok(exit)
    }
}

/// Drains the presenter's screen through a vt100 until the channel closes (or, once told to
/// stop, for at most STEP more); returns the exit status.
async fn read_screen(
    mut read: ChannelReadHalf,
    mut pw: Watcher,
    mut stop: watch::Receiver<bool>,
) -> Option<u32> {
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    let mut exit = None;
    let mut stopping = false;
    loop {
        let msg = if stopping {
            match timeout(STEP, read.wait()).await {
                Ok(msg) => msg,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                msg = read.wait() => msg,
                _ = stop.wait_for(|stop| *stop) => { stopping = true; continue }
            }
        };
        match msg {
            Some(ChannelMsg::Data { data }) => {
                vt.process(&data);
                pw.on_data(&vt, data.len() as u64);
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    exit
}
