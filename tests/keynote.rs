//! Follow mode at keynote scale: a presenter move is rendered once per distinct screen, and
//! every follower in the same state receives the same bytes. Checked on the wire with real
//! russh clients; the screens are read through vt100.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::num::NonZeroU16;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{ClientHandler, Options, TestServer, WAIT};
use russh::client;
use russh::keys::PrivateKey;
use russh::{ChannelMsg, client::Handle};
use sshbio::ssh::Settings;

/// The small fixture with the audience count off, so no count patch interleaves with the
/// frames being compared.
fn content() -> sshbio::content::Content {
    let text = format!("show_audience = false\n{}", include_str!("fixtures/small.toml"));
    sshbio::content::parse_str(&text, Path::new("small.toml")).unwrap()
}

/// What every follow frame starts with: reset, home, clear.
const FOLLOW_FRAME: &[u8] = b"\x1b[0m\x1b[H\x1b[2J";

/// One interactive session: raw bytes and the screen they draw.
struct Tap {
    _handle: Handle<ClientHandler>,
    channel: russh::Channel<client::Msg>,
    raw: Vec<u8>,
    vt: vt100::Parser,
}

impl Tap {
    async fn open(handle: Handle<ClientHandler>, cols: u16, rows: u16) -> Self {
        let channel = handle.channel_open_session().await.unwrap();
        channel
            .request_pty(false, "xterm-256color", u32::from(cols), u32::from(rows), 0, 0, &[])
            .await
            .unwrap();
        channel.request_shell(false).await.unwrap();
        let vt = vt100::Parser::new(NonZeroU16::new(rows).unwrap(), NonZeroU16::new(cols).unwrap(), 0);
        let mut tap = Self { _handle: handle, channel, raw: Vec::new(), vt };
        tap.wait_for("windy").await;
        tap
    }

    async fn wait_for(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.vt.screen().contents().contains(needle) {
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Ok(Some(ChannelMsg::Data { data })) => {
                    self.raw.extend_from_slice(&data);
                    self.vt.process(&data);
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("channel closed waiting for {needle:?}"),
                Err(_) => {
                    panic!("timed out waiting for {needle:?}; screen:\n{}", self.vt.screen().contents())
                }
            }
        }
    }

    async fn press(&mut self, key: &[u8], expect: &str) {
        self.channel.data(key).await.unwrap();
        self.wait_for(expect).await;
    }

    /// The complete follow frame received after byte `from` that shows `needle` when drawn
    /// on a cleared screen of this session's size.
    fn frame_showing(&self, from: usize, needle: &str) -> Vec<u8> {
        let tail = &self.raw[from..];
        let mut starts: Vec<usize> = tail
            .windows(FOLLOW_FRAME.len())
            .enumerate()
            .filter(|(_, w)| *w == FOLLOW_FRAME)
            .map(|(i, _)| i)
            .collect();
        starts.push(tail.len());
        let (rows, cols) = self.vt.screen().size();
        for pair in starts.windows(2) {
            let frame = &tail[pair[0]..pair[1]];
            let mut fresh = vt100::Parser::new(rows, cols, 0);
            fresh.process(frame);
            if fresh.screen().contents().contains(needle) {
                return frame.to_vec();
            }
        }
        panic!("no follow frame showing {needle:?} among {} after the mark", starts.len() - 1);
    }
}

async fn visitor(server: &TestServer, user: &str) -> Handle<ClientHandler> {
    let handler = ClientHandler { server_key: Arc::new(Mutex::new(None)) };
    let mut handle =
        client::connect(Arc::new(client::Config::default()), server.addr, handler).await.unwrap();
    assert!(handle.authenticate_none(user).await.unwrap().success());
    handle
}

#[tokio::test]
async fn followers_in_the_same_state_receive_byte_identical_frames() {
    let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    let settings = Settings { presenter_keys: vec![key.public_key().clone()], ..Settings::default() };
    let server = TestServer::start_with(Options { content: content(), settings, ..Options::default() }).await;
    let mut a = Tap::open(visitor(&server, "a").await, 80, 24).await;
    let mut b = Tap::open(visitor(&server, "b").await, 80, 24).await;
    let mut wide = Tap::open(visitor(&server, "c").await, 100, 30).await;
    let mut browsing = Tap::open(visitor(&server, "d").await, 80, 24).await;
    let mut stage = Tap::open(common::connect_presenter(&server, &key).await.handle, 90, 28).await;

    // The browsing visitor leaves follow mode by choosing a chapter of their own.
    browsing.press(b"3", "lexers").await;
    let marks = [a.raw.len(), b.raw.len(), wide.raw.len()];
    let browsing_mark = browsing.raw.len();

    // Two moves, so the first move's frame is complete (it ends where the second begins).
    stage.press(b"2", "winters").await;
    for tap in [&mut a, &mut b, &mut wide] {
        tap.wait_for("winters").await;
    }
    stage.press(b"3", "lexers").await;
    for tap in [&mut a, &mut b, &mut wide] {
        tap.wait_for("lexers").await;
    }

    let frame_a = a.frame_showing(marks[0], "winters");
    let frame_b = b.frame_showing(marks[1], "winters");
    let frame_wide = wide.frame_showing(marks[2], "winters");
    assert_eq!(frame_a, frame_b, "two 80x24 followers got different bytes for the same move");
    assert_ne!(frame_a, frame_wide, "a 100x30 follower got an 80x24 frame");
    // The wide frame is drawn for its own size: something reaches past column 80.
    let mut check = vt100::Parser::new(NonZeroU16::new(30).unwrap(), NonZeroU16::new(100).unwrap(), 0);
    check.process(&frame_wide);
    let past_80 = (0..30)
        .any(|row| (80..100).any(|col| check.screen().cell(row, col).is_some_and(|c| c.has_contents())));
    assert!(past_80, "the 100x30 frame draws nothing past column 80:\n{}", check.screen().contents());

    // The browsing visitor got no frame for either move. Prove the session is live first:
    // a key of its own redraws, and only then look at what arrived.
    browsing.press(b"1", "windy").await;
    let since = &browsing.raw[browsing_mark..];
    assert!(
        !since.windows(FOLLOW_FRAME.len()).any(|w| w == FOLLOW_FRAME),
        "a browsing visitor got a follow frame"
    );
    assert!(!String::from_utf8_lossy(since).contains("winters"));
    server.shutdown().await;
}
