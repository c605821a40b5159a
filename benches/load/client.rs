//! The russh client: a counted TCP stream and a session whose screen is a vt100 emulator.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use russh::client::DisconnectReason;
use russh::keys::PublicKeyOrCertificate;
use russh::{Disconnect, client};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use crate::opts::Opts;
use crate::screen::Screen;
use crate::stats::ms;
use crate::{FOOTER, STEP};

/// Bytes on the wire (encrypted), shared by one or many connections.
#[derive(Default, Debug)]
pub struct Wire {
    /// Bytes received.
    pub rx: AtomicU64,
    /// Bytes sent.
    pub tx: AtomicU64,
}

pub struct Counted<S> {
    /// The TCP stream.
    pub inner: S,
    /// Where its bytes are counted.
    pub wire: Arc<Wire>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.wire.rx.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.wire.tx.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Accepts any host key; keeps the message of a server's disconnect (a refusal's reason).
#[derive(Default, Clone)]
pub struct Client {
    /// What the server said when it disconnected, for the error a refused session reports.
    pub said: Arc<Mutex<Option<String>>>,
}

impl Client {
    /// `e`, with what the server said when it disconnected, if it did.
    pub fn explain(&self, e: russh::Error) -> anyhow::Error {
        match self.said.lock().ok().and_then(|s| s.clone()) {
            Some(said) => anyhow!("{e}: {said}"),
            None => e.into(),
        }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn disconnected(&mut self, reason: DisconnectReason<Self::Error>) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                if let Ok(mut said) = self.said.lock() {
                    *said = Some(info.message);
                }
                Ok(())
            }
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

pub fn client_config(opts: &Opts) -> Result<Arc<client::Config>> {
    let mut preferred = russh::Preferred::default();
    if let Some(list) = &opts.kex {
        let mut names: Vec<russh::kex::Name> = Vec::new();
        for name in list.split(',') {
            names.push(match name {
                "mlkem768x25519-sha256" => russh::kex::MLKEM768X25519_SHA256,
                "curve25519-sha256" => russh::kex::CURVE25519,
                "curve25519-sha256@libssh.org" => russh::kex::CURVE25519_PRE_RFC_8731,
                other => bail!("unknown kex {other}"),
            });
        }
        names.extend([
            russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
            russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ]);
        preferred.kex = Cow::Owned(names);
    }
    if let Some(list) = &opts.cipher {
        let mut names: Vec<russh::cipher::Name> = Vec::new();
        for name in list.split(',') {
            names.push(match name {
                "chacha20-poly1305@openssh.com" | "chacha20-poly1305" => russh::cipher::CHACHA20_POLY1305,
                "aes256-gcm@openssh.com" | "aes256-gcm" => russh::cipher::AES_256_GCM,
                "aes128-gcm@openssh.com" | "aes128-gcm" => russh::cipher::AES_128_GCM,
                "aes256-ctr" => russh::cipher::AES_256_CTR,
                other => bail!("unknown cipher {other}"),
            });
        }
        preferred.cipher = Cow::Owned(names);
    }
    Ok(Arc::new(client::Config { preferred, nodelay: true, ..Default::default() }))
}

/// Milliseconds from the TCP connect to each step of setting up a session.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// TCP connected.
    pub tcp: f64,
    /// Key exchange done.
    pub kex: f64,
    /// `auth none` accepted.
    pub auth: f64,
    /// Session channel open.
    pub open: f64,
    /// First byte of channel data.
    pub first_byte: f64,
    /// The first complete screen.
    pub frame: f64,
}

/// Where and as whom a session connects.
#[derive(Debug, Clone, Copy)]
pub struct Dial<'a> {
    /// The server.
    pub addr: SocketAddr,
    /// The local address to connect from (another loopback address stands in for a NAT
    /// address); None lets the kernel choose.
    pub source: Option<IpAddr>,
    /// The SSH user name (`auth none`).
    pub user: &'a str,
    /// Terminal size, (cols, rows).
    pub size: (u16, u16),
}

/// The first complete screen of a visitor: the footer's last hints, on its last row.
pub fn complete_screen(text: &str) -> bool {
    text.contains(FOOTER)
}

/// A TCP connection to `addr`, from `source` when given.
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream> {
    let connect = async {
        let Some(ip) = source else { return TcpStream::connect(addr).await };
        let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(addr).await
    };
    let tcp = timeout(STEP, connect).await.context("tcp connect timeout")??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

pub struct Session {
    /// The connection, for the disconnect.
    pub handle: client::Handle<Client>,
    /// The session channel and what it showed, through a vt100 (shared with the tests).
    pub screen: Screen,
}

impl Session {
    /// Connect, auth none, pty-req, shell; returns once the first complete screen is shown.
    pub async fn open(
        addr: SocketAddr,
        config: Arc<client::Config>,
        user: &str,
        size: (u16, u16),
        wire: Arc<Wire>,
        keep_raw: bool,
    ) -> Result<(Self, Phases)> {
        let dial = Dial { addr, source: None, user, size };
        Self::open_until(dial, config, wire, keep_raw, complete_screen).await
    }

    /// Like [`Session::open`], from `dial.source`, until `ready` holds for the screen text.
    pub async fn open_until(
        dial: Dial<'_>,
        config: Arc<client::Config>,
        wire: Arc<Wire>,
        keep_raw: bool,
        ready: fn(&str) -> bool,
    ) -> Result<(Self, Phases)> {
        let t0 = Instant::now();
        let tcp = tcp_connect(dial.addr, dial.source).await?;
        let tcp_done = t0.elapsed();
        let stream = Counted { inner: tcp, wire };
        let client = Client::default();
        let mut handle = timeout(STEP, client::connect_stream(config, stream, client.clone()))
            .await
            .context("kex timeout")?
            .map_err(|e| client.explain(e))?;
        let kex_done = t0.elapsed();
        let auth = timeout(STEP, handle.authenticate_none(dial.user))
            .await
            .context("auth timeout")?
            .map_err(|e| client.explain(e))?;
        if !auth.success() {
            bail!("auth none refused");
        }
        let auth_done = t0.elapsed();
        let channel = timeout(STEP, handle.channel_open_session()).await.context("open timeout")??;
        let open_done = t0.elapsed();
        let mut s = Self::start_tui(handle, channel, dial.size, keep_raw).await?;
        let first_byte = s.first_frame(t0, ready).await?;
        let phases = Phases {
            tcp: ms(tcp_done),
            kex: ms(kex_done),
            auth: ms(auth_done),
            open: ms(open_done),
            first_byte: ms(first_byte),
            frame: ms(t0.elapsed()),
        };
        Ok((s, phases))
    }

    /// pty-req (xterm-256color, `size`) and shell on a freshly opened channel.
    async fn start_tui(
        handle: client::Handle<Client>,
        channel: russh::Channel<client::Msg>,
        (cols, rows): (u16, u16),
        keep_raw: bool,
    ) -> Result<Self> {
        channel.request_pty(true, "xterm-256color", u32::from(cols), u32::from(rows), 0, 0, &[]).await?;
        channel.request_shell(true).await?;
        let mut screen = Screen::new(channel, cols, rows);
        screen.keep_raw = keep_raw;
        Ok(Self { handle, screen })
    }

    /// Reads until `ready` holds for the screen; returns the time from `t0` to the first byte.
    async fn first_frame(&mut self, t0: Instant, ready: fn(&str) -> bool) -> Result<Duration> {
        let mut first_byte = None;
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.screen.channel.wait()).await.map_err(|_| {
                anyhow!("no first frame in time; screen:\n{}", self.screen.vt.screen().contents())
            })?;
            let was = self.screen.received;
            if !self.screen.absorb(msg) {
                bail!(
                    "channel closed before the first frame; screen:\n{}",
                    self.screen.vt.screen().contents()
                );
            }
            if self.screen.received > was {
                first_byte.get_or_insert_with(|| t0.elapsed());
                if ready(&self.screen.vt.screen().contents()) {
                    return Ok(first_byte.unwrap_or_default());
                }
            }
        }
    }

    /// Sends `q`, waits for exit-status and close, then disconnects.
    pub async fn quit(mut self) -> Result<()> {
        self.screen.channel.data_bytes(&b"q"[..]).await?;
        let deadline = tokio::time::Instant::now() + STEP;
        while !self.screen.closed {
            let msg = tokio::time::timeout_at(deadline, self.screen.channel.wait())
                .await
                .map_err(|_| anyhow!("no close after q; screen:\n{}", self.screen.vt.screen().contents()))?;
            self.screen.absorb(msg);
        }
        let status = self.screen.exit_status;
        let _ = timeout(Duration::from_secs(2), self.handle.disconnect(Disconnect::ByApplication, "", "en"))
            .await;
        if status != Some(0) {
            bail!("exit status {status:?}");
        }
        Ok(())
    }
}
