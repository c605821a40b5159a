//! The russh client: a counted TCP stream and a session whose screen is a vt100 emulator.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelMsg, Disconnect, client};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::opts::Opts;
use crate::stats::ms;
use crate::{FOOTER, NAME, STEP};

/// Bytes on the wire (encrypted), shared by one or many connections.
#[derive(Default, Debug)]
pub struct Wire {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
}

pub struct Counted<S> {
    pub inner: S,
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

pub struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
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
    pub tcp: f64,
    pub kex: f64,
    pub auth: f64,
    pub open: f64,
    pub first_byte: f64,
    pub frame: f64,
}

pub struct Session {
    pub handle: client::Handle<Client>,
    pub channel: russh::Channel<client::Msg>,
    pub vt: vt100::Parser,
    pub raw: Vec<u8>,
    pub keep_raw: bool,
    pub data_bytes: u64,
    pub exit_status: Option<u32>,
    pub closed: bool,
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
        let t0 = Instant::now();
        let tcp = timeout(STEP, TcpStream::connect(addr)).await.context("tcp connect timeout")??;
        tcp.set_nodelay(true)?;
        let tcp_done = t0.elapsed();
        let stream = Counted { inner: tcp, wire };
        let mut handle =
            timeout(STEP, client::connect_stream(config, stream, Client)).await.context("kex timeout")??;
        let kex_done = t0.elapsed();
        let auth = timeout(STEP, handle.authenticate_none(user)).await.context("auth timeout")??;
        if !auth.success() {
            bail!("auth none refused");
        }
        let auth_done = t0.elapsed();
        let channel = timeout(STEP, handle.channel_open_session()).await.context("open timeout")??;
        let open_done = t0.elapsed();
        let (cols, rows) = size;
        channel.request_pty(true, "xterm-256color", u32::from(cols), u32::from(rows), 0, 0, &[]).await?;
        channel.request_shell(true).await?;
        let vt = vt100::Parser::new(NonZeroU16::new(rows).unwrap(), NonZeroU16::new(cols).unwrap(), 0);
        let mut s = Self {
            handle,
            channel,
            vt,
            raw: Vec::new(),
            keep_raw,
            data_bytes: 0,
            exit_status: None,
            closed: false,
        };
        let mut first_byte = None;
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let msg = tokio::time::timeout_at(deadline, s.channel.wait())
                .await
                .map_err(|_| anyhow!("no first frame in time; screen:\n{}", s.vt.screen().contents()))?;
            let was = s.data_bytes;
            if !s.absorb(msg) {
                bail!("channel closed before the first frame; screen:\n{}", s.vt.screen().contents());
            }
            if s.data_bytes > was {
                first_byte.get_or_insert_with(|| t0.elapsed());
                let text = s.vt.screen().contents();
                if text.contains(NAME) && text.contains(FOOTER) {
                    break;
                }
            }
        }
        let phases = Phases {
            tcp: ms(tcp_done),
            kex: ms(kex_done),
            auth: ms(auth_done),
            open: ms(open_done),
            first_byte: ms(first_byte.unwrap_or_default()),
            frame: ms(t0.elapsed()),
        };
        Ok((s, phases))
    }

    /// Takes one channel message; false once the channel is gone.
    pub fn absorb(&mut self, msg: Option<ChannelMsg>) -> bool {
        match msg {
            Some(ChannelMsg::Data { data }) => {
                self.data_bytes += data.len() as u64;
                if self.keep_raw {
                    self.raw.extend_from_slice(&data);
                }
                self.vt.process(&data);
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => self.data_bytes += data.len() as u64,
            Some(ChannelMsg::ExitStatus { exit_status }) => self.exit_status = Some(exit_status),
            Some(ChannelMsg::Close) | None => {
                self.closed = true;
                return false;
            }
            Some(_) => {}
        }
        true
    }

    /// Sends `q`, waits for exit-status and close, then disconnects.
    pub async fn quit(mut self) -> Result<()> {
        self.channel.data_bytes(&b"q"[..]).await?;
        let deadline = tokio::time::Instant::now() + STEP;
        while !self.closed {
            let msg = tokio::time::timeout_at(deadline, self.channel.wait())
                .await
                .map_err(|_| anyhow!("no close after q; screen:\n{}", self.vt.screen().contents()))?;
            self.absorb(msg);
        }
        let status = self.exit_status;
        let _ = timeout(Duration::from_secs(2), self.handle.disconnect(Disconnect::ByApplication, "", "en"))
            .await;
        if status != Some(0) {
            bail!("exit status {status:?}");
        }
        Ok(())
    }
}
