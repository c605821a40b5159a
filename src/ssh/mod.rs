//! Everything SSH: the only module that imports russh. It owns the server configuration and
//! crypto policy, one connection's lifetime and how it ends (`connection`), the russh
//! `Handler` (`handler`), the per-channel UI and command tasks (`session`), the host key,
//! cleartext refusals and russh's log records (`log`). It must not know about accept loops or limits (that is `server`): it
//! asks for a [`Seat`] through the [`Seats`] it is given.

pub mod connection;
pub mod handler;
pub mod hostkey;
pub mod log;
pub mod session;
pub mod stream;
mod tui_session;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet, Preferred, SshId, cipher, kex, mac};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::content::Content;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::tui::screen::FrameCache;
pub use connection::serve;

/// A place in the server's limits for one more session on a connection, held until dropped.
pub type Seat = Box<dyn Send + Sync>;
/// Asks the server's limits for a [`Seat`], as a new connection from the same address would.
/// The connection's first session uses the place the connection was admitted with.
pub type Seats = Arc<dyn Fn() -> Result<Seat, Refusal> + Send + Sync>;

/// Timeouts and bounds for one connection. Defaults suit a public server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Version exchange + key exchange + authentication must finish within this.
    pub handshake_timeout: Duration,
    /// A session with no input for this long gets a goodbye line and is closed.
    pub idle_timeout: Duration,
    /// No session lasts longer than this.
    pub max_session: Duration,
    /// A frame the client has not taken within this ends the connection.
    pub write_timeout: Duration,
    /// How often dead clients are probed (3 misses end the connection).
    pub keepalive_interval: Duration,
    /// How long a lone Esc waits for the rest of an escape sequence.
    pub esc_timeout: Duration,
    /// How long open sessions get to say goodbye when the server stops.
    pub drain_timeout: Duration,
    /// Offer only the post-quantum hybrid key exchange (OpenSSH 9.9+ clients only).
    pub pq_only_kex: bool,
    /// Offer only AEAD ciphers and encrypt-then-MAC MACs: drops the CTR ciphers and plain
    /// SHA-2 MACs kept as a last resort for older libraries (libssh2 < 1.11, paramiko < 3.5).
    pub strict_crypto: bool,
    /// A session without events for this long frees its screen buffers: idle visitors then
    /// cost a few KiB instead of two full cell buffers; the next event redraws the screen once.
    pub hibernate_after: Duration,
    /// Public keys allowed to log in as [`PRESENTER_USER`]; empty disables presenting.
    pub presenter_keys: Vec<russh::keys::PublicKey>,
    /// The public `ssh` command and web page URL, for the share overlay and the join card.
    pub share: Arc<crate::tui::app::Share>,
}

/// The user name of the presenter (`ssh present@host` with a listed key).
pub const PRESENTER_USER: &str = "present";

impl Default for Settings {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15 * 60),
            max_session: Duration::from_secs(2 * 60 * 60),
            write_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(15),
            esc_timeout: Duration::from_millis(30),
            drain_timeout: Duration::from_secs(5),
            pq_only_kex: false,
            strict_crypto: false,
            hibernate_after: Duration::from_secs(3),
            presenter_keys: Vec::new(),
            share: Arc::default(),
        }
    }
}

/// What every connection shares: immutable, or swapped whole.
pub struct Shared {
    /// The bio; a new `Arc` is published on every valid reload.
    pub content: watch::Receiver<Arc<Content>>,
    /// Becomes `true` when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Timeouts and bounds.
    pub settings: Settings,
    /// russh's configuration, built once.
    pub config: Arc<russh::server::Config>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Audience counts and the presenter's position, shared by all sessions.
    pub room: Arc<Room>,
    /// First frames shared by visitors who get the same screen.
    pub frames: FrameCache,
}

impl Shared {
    pub fn new(
        key: PrivateKey,
        content: watch::Receiver<Arc<Content>>,
        shutdown: watch::Receiver<bool>,
        settings: Settings,
        metrics: Arc<Metrics>,
        room: Arc<Room>,
    ) -> Self {
        let config = Arc::new(russh_config(key, &settings));
        Self { content, shutdown, settings, config, metrics, room, frames: FrameCache::default() }
    }
}

/// Modern algorithms first: hybrid post-quantum and X25519 key exchange, Ed25519 host key,
/// AEAD ciphers, encrypt-then-MAC SHA-2 MACs; nothing with SHA-1, CBC, NIST curves or
/// finite-field DH. OpenSSH 8.x and newer, PuTTY 0.75+ and russh all speak these and pick them,
/// because the client's first choice that the server also offers wins.
pub const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];
/// The key exchange with `--pq-only-kex`: no client older than OpenSSH 9.9 can connect.
pub const KEX_PQ_ONLY: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];
/// Ciphers by default: AEAD first, then AES-CTR as a last resort for libraries without AEAD
/// (libssh2 before 1.11, so curl, PHP and git GUIs on Debian 12; paramiko before 3.5; JSch).
/// CTR with an SHA-2 MAC has no known practical attack; ssh-audit does not fail it.
pub const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_128_CTR,
    cipher::AES_256_CTR,
];
/// Ciphers with `--strict-crypto`: AEAD only.
pub const CIPHERS_STRICT: &[cipher::Name] =
    &[cipher::CHACHA20_POLY1305, cipher::AES_256_GCM, cipher::AES_128_GCM];
/// MACs by default (used only with the CTR ciphers; AEAD ciphers carry their own): ETM first,
/// then plain SHA-2 for the same older libraries. ssh-audit warns (MAC-then-encrypt) but does
/// not fail them.
pub const MACS: &[mac::Name] =
    &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM, mac::HMAC_SHA256, mac::HMAC_SHA512];
/// MACs with `--strict-crypto`: encrypt-then-MAC only.
pub const MACS_STRICT: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];

fn russh_config(key: PrivateKey, settings: &Settings) -> russh::server::Config {
    russh::server::Config {
        // No version number: nothing to fingerprint for scanners.
        server_id: SshId::Standard("SSH-2.0-sshbio".into()),
        // What a client hears it may try if a method is refused. Visitors are let in by the
        // first method they try (see `handler`), so this only matters after a refusal (an
        // unsupported key type, say): keyboard-interactive comes before password, and is
        // accepted with no prompt.
        methods: MethodSet::from(
            &[MethodKind::None, MethodKind::PublicKey, MethodKind::KeyboardInteractive, MethodKind::Password]
                [..],
        ),
        auth_rejection_time: Duration::from_millis(100),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 4,
        keys: vec![key],
        // Small: visitors type keys, they don't upload. Bounds input buffered per connection.
        window_size: 64 * 1024,
        maximum_packet_size: 32 * 1024,
        channel_buffer_size: 16,
        event_buffer_size: 16,
        // Our own idle limit lives in the session (with a goodbye); this is the backstop for
        // connections that never open a session or stop answering keepalives.
        inactivity_timeout: Some(settings.idle_timeout + Duration::from_secs(60)),
        keepalive_interval: Some(settings.keepalive_interval),
        keepalive_max: 3,
        nodelay: true,
        preferred: Preferred {
            kex: Cow::Borrowed(if settings.pq_only_kex { KEX_PQ_ONLY } else { KEX }),
            key: Cow::Borrowed(&[russh::keys::Algorithm::Ed25519]),
            cipher: Cow::Borrowed(if settings.strict_crypto { CIPHERS_STRICT } else { CIPHERS }),
            mac: Cow::Borrowed(if settings.strict_crypto { MACS_STRICT } else { MACS }),
            compression: Cow::Borrowed(&[russh::compression::NONE]),
            ..Preferred::default()
        },
        ..Default::default()
    }
}

/// How a session or a connection ended, for the log lines and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum End {
    /// The visitor pressed q (or the command/plain text finished).
    Quit,
    /// No input for the idle timeout.
    Idle,
    /// The maximum session length passed.
    Limit,
    /// The client stopped reading and a write timed out.
    Stalled,
    /// The server is stopping.
    Shutdown,
    /// Version/key exchange/auth did not finish in time.
    HandshakeTimeout,
    /// Protocol error, garbage, or the client vanished before a session started.
    #[default]
    Error,
    /// The client closed the connection or channel, or can no longer be written to.
    ClientGone,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Idle => "idle",
            End::Limit => "limit",
            End::Stalled => "stalled",
            End::Shutdown => "shutdown",
            End::HandshakeTimeout => "handshake-timeout",
            End::Error => "error",
            End::ClientGone => "client-gone",
        }
    }
}

/// Why a connection is refused before any SSH work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds as many connections as it may.
    ServerFull,
    /// This address holds as many connections as it may.
    TooManyFromAddress,
    /// This address opened connections too fast.
    RateLimited,
    /// The server is stopping.
    ShuttingDown,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ServerFull => "server-full",
            Refusal::TooManyFromAddress => "per-ip-limit",
            Refusal::RateLimited => "rate-limit",
            Refusal::ShuttingDown => "shutting-down",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::ServerFull => "the server is full right now, please try again in a minute",
            Refusal::TooManyFromAddress => "too many connections from your address, please close some",
            Refusal::RateLimited => "too many new connections from your address, please wait a moment",
            Refusal::ShuttingDown => "the server is restarting, please reconnect in a moment",
        }
    }
}

/// Refuses a connection cheaply and clearly: our version line, then an unencrypted
/// SSH_MSG_DISCONNECT (reason 12, "too many connections") that OpenSSH prints as
/// `Received disconnect from ...: MESSAGE`. No key exchange is spent on it.
pub async fn refuse<S: AsyncWrite + Unpin>(mut stream: S, refusal: Refusal) {
    let mut bytes = b"SSH-2.0-sshbio\r\n".to_vec();
    bytes.extend_from_slice(&disconnect_packet(12, refusal.message()));
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        // Give the client a moment to read it before the socket closes under it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// An unencrypted SSH binary packet carrying SSH_MSG_DISCONNECT (RFC 4253 §6, §11.1).
fn disconnect_packet(reason: u32, description: &str) -> Vec<u8> {
    let mut payload = vec![1u8]; // SSH_MSG_DISCONNECT
    payload.extend_from_slice(&reason.to_be_bytes());
    let text = description.as_bytes();
    payload.extend_from_slice(&u32::try_from(text.len()).unwrap_or(0).to_be_bytes());
    payload.extend_from_slice(text);
    payload.extend_from_slice(&0u32.to_be_bytes()); // language tag ""
    // packet_length(4) + padding_length(1) + payload + padding must be a multiple of 8,
    // with at least 4 bytes of padding.
    let unpadded = 4 + 1 + payload.len();
    let padding = 4 + (8 - (unpadded + 4) % 8) % 8;
    let packet_length = 1 + payload.len() + padding;
    let mut packet = Vec::with_capacity(4 + packet_length);
    packet.extend_from_slice(&u32::try_from(packet_length).unwrap_or(0).to_be_bytes());
    packet.push(u8::try_from(padding).unwrap_or(4));
    packet.extend_from_slice(&payload);
    packet.extend(std::iter::repeat_n(0u8, padding));
    packet
}

/// Clamps a client-claimed terminal size: 0 means "unknown" (80x24, what `ssh -tt` without a
/// terminal sends); anything over 500x200 is treated as 500x200.
pub fn clamp_size(cols: u32, rows: u32) -> (u16, u16) {
    let clamp = |v: u32, default: u16, max: u16| {
        if v == 0 { default } else { u16::try_from(v).unwrap_or(max).min(max) }
    };
    (clamp(cols, 80, 500), clamp(rows, 24, 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_clamped() {
        assert_eq!(clamp_size(0, 0), (80, 24));
        assert_eq!(clamp_size(65535, 65535), (500, 200));
        assert_eq!(clamp_size(u32::MAX, 30), (500, 30));
        assert_eq!(clamp_size(100, 30), (100, 30));
    }

    #[test]
    fn disconnect_packet_is_well_formed() {
        let p = disconnect_packet(12, "full");
        assert_eq!(p.len() % 8, 0);
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        assert_eq!(len + 4, p.len());
        assert!(p[4] >= 4);
        assert_eq!(p[5], 1);
    }
}
