//! The TCP stream under one SSH connection, wrapped so we can count its bytes and cut it:
//! russh's session task can't be aborted from outside, so a stalled or expired connection is
//! ended by making its stream fail. Owns nothing else.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between a connection's stream and whoever may need to end it.
#[derive(Debug, Default)]
pub struct Meter {
    /// Set once to end the connection; the stream fails its next read and write.
    killed: AtomicBool,
    /// Wakes the session task's pending read so it notices the kill at once.
    waker: AtomicWaker,
    /// Bytes received from the client (encrypted, on the wire).
    pub bytes_in: AtomicU64,
    /// Bytes sent to the client (encrypted, on the wire).
    pub bytes_out: AtomicU64,
}

impl Meter {
    /// Ends the connection: the stream returns errors from now on.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// A stream that reports into a [`Meter`] and fails once it is killed.
pub struct MeteredStream<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> MeteredStream<S> {
    pub fn new(inner: S, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

fn killed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection ended by the server")
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.meter.waker.register(cx.waker());
        if this.meter.is_killed() {
            return Poll::Ready(Err(killed()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        this.meter.bytes_in.fetch_add(u64::try_from(read).unwrap_or(0), Ordering::Relaxed);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.meter.is_killed() {
            return Poll::Ready(Err(killed()));
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            this.meter.bytes_out.fetch_add(u64::try_from(*n).unwrap_or(0), Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.meter.is_killed() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
