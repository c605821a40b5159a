//! What a session channel received, as a visitor's terminal would show it: the bytes go
//! through a vt100 emulator. Shared by the integration tests (`tests/common`) and the load
//! generator (`benches/load`) through `#[path]`. The waits fail a test (panic) after 10 s; the
//! load generator uses only `new`, `absorb` and the fields.
// Test code: a failed wait is a test failure. Each includer uses a different subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::num::NonZeroU16;
use std::time::Duration;

use russh::{ChannelMsg, client};

/// How long a wait for the screen may take before the test fails (as `tests/common`'s WAIT).
const WAIT: Duration = Duration::from_secs(30);

/// A channel that stays silent this long has finished sending its frame.
pub const SETTLE: Duration = Duration::from_millis(150);

/// What a session channel received, as a visitor's terminal would show it.
pub struct Screen {
    pub channel: russh::Channel<client::Msg>,
    pub vt: vt100::Parser,
    /// Every byte received on stdout, for assertions about escape codes (while `keep_raw`).
    pub raw: Vec<u8>,
    /// Whether `raw` keeps the bytes: off for load clients that hold thousands of screens.
    pub keep_raw: bool,
    /// Bytes of channel data received so far (stdout and stderr), kept or not.
    pub received: u64,
    /// Everything received on stderr.
    pub stderr: Vec<u8>,
    pub exit_status: Option<u32>,
    pub closed: bool,
    pub eof: bool,
}

impl Screen {
    pub fn new(channel: russh::Channel<client::Msg>, cols: u16, rows: u16) -> Self {
        let vt = vt100::Parser::new(NonZeroU16::new(rows).unwrap(), NonZeroU16::new(cols).unwrap(), 0);
        Self {
            channel,
            vt,
            raw: Vec::new(),
            keep_raw: true,
            received: 0,
            stderr: Vec::new(),
            exit_status: None,
            closed: false,
            eof: false,
        }
    }

    pub fn text(&self) -> String {
        self.vt.screen().contents()
    }

    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Processes one message; false when the channel is gone.
    pub fn absorb(&mut self, msg: Option<ChannelMsg>) -> bool {
        match msg {
            Some(ChannelMsg::Data { data }) => {
                self.received += data.len() as u64;
                if self.keep_raw {
                    self.raw.extend_from_slice(&data);
                }
                self.vt.process(&data);
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                self.received += data.len() as u64;
                if self.keep_raw {
                    self.stderr.extend_from_slice(&data);
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => self.exit_status = Some(exit_status),
            Some(ChannelMsg::Eof) => self.eof = true,
            Some(ChannelMsg::Close) | None => {
                self.closed = true;
                return false;
            }
            Some(_) => {}
        }
        true
    }

    /// Reads until `predicate` holds for the screen text; panics with the screen after WAIT.
    pub async fn wait_for(&mut self, what: &str, predicate: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if predicate(&self.text()) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Ok(msg) => {
                    if !self.absorb(msg) && !predicate(&self.text()) {
                        panic!("channel closed while waiting for {what}; screen:\n{}", self.text());
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; screen:\n{}", self.text()),
            }
        }
    }

    pub async fn wait_for_text(&mut self, needle: &str) {
        let owned = needle.to_string();
        self.wait_for(needle, move |s| s.contains(&owned)).await;
    }

    /// Reads until nothing has arrived for [`SETTLE`] (at most [`WAIT`]): the rest of a frame
    /// that is still on its way. Fails if the channel never goes quiet.
    pub async fn settle(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let quiet_until = (tokio::time::Instant::now() + SETTLE).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.channel.wait()).await {
                Ok(msg) => {
                    if !self.absorb(msg) {
                        return;
                    }
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    panic!("the channel never went quiet; screen:\n{}", self.text())
                }
                Err(_) => return,
            }
        }
    }

    /// Proves the session is live: sends a key that redraws, sees `expect` on screen and reads
    /// the rest of that frame. Run it before a "nothing arrives" check, so the check cannot
    /// pass just because the server is slow or stuck, and after it, to show the session was
    /// still answering.
    pub async fn prove_live(&mut self, key: &[u8], expect: &str) {
        assert!(!self.text().contains(expect), "{expect:?} is on screen already; pick a key that changes it");
        self.press(key, expect).await;
        self.settle().await;
    }

    /// Reads for `quiet` and returns whatever arrived (for "nothing is sent" checks).
    pub async fn drain_for(&mut self, quiet: Duration) -> usize {
        let before = self.raw.len();
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(msg) = tokio::time::timeout_at(deadline, self.channel.wait()).await {
            if !self.absorb(msg) {
                break;
            }
        }
        self.raw.len() - before
    }

    /// Reads until the channel closes; returns the exit status.
    pub async fn wait_close(&mut self) -> Option<u32> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.closed {
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Ok(msg) => {
                    self.absorb(msg);
                }
                Err(_) => panic!("channel did not close; screen:\n{}", self.text()),
            }
        }
        self.exit_status
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.channel.data(bytes).await.unwrap();
    }

    /// Sends a key and waits until the screen shows `expect`.
    pub async fn press(&mut self, bytes: &[u8], expect: &str) {
        self.send(bytes).await;
        self.wait_for_text(expect).await;
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) {
        self.channel.window_change(u32::from(cols), u32::from(rows), 0, 0).await.unwrap();
        self.vt.screen_mut().set_size(NonZeroU16::new(rows).unwrap(), NonZeroU16::new(cols).unwrap());
    }
}
