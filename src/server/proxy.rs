//! PROXY protocol (v1 text and v2 binary, parsed by the `ppp` crate): the real client address
//! when sshbio runs behind a load balancer. Headers are read only from trusted networks; a
//! trusted peer without one, or anyone else sending one, is cut off. Owns the stream type
//! that replays bytes read past the header.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ipnet::IpNet;
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The longest header we wait for (v1 is at most 107 bytes; v2 with TLVs rarely passes 512).
const MAX_HEADER: usize = 4096;
/// How every v1 (text) header starts.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included (the spec's limit).
const V1_MAX: usize = 107;
/// The v2 signature, which starts every binary header.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Networks whose connections must start with a PROXY header.
#[derive(Debug, Clone, Default)]
pub struct Trusted(pub Vec<IpNet>);

impl Trusted {
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a connection's PROXY header was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("connection closed before the PROXY header ended")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// A client connection, possibly with bytes already read past a PROXY header.
pub struct ClientStream {
    inner: TcpStream,
    /// Bytes read past the header, replayed before reading `inner` again.
    prefix: Vec<u8>,
    /// Bytes of `prefix` already replayed.
    replayed: usize,
    /// For untrusted peers when PROXY protocol is on: fail if the stream starts with a header.
    reject_header: bool,
    /// Reads left during which every received packet is acknowledged at once (see
    /// [`QUICKACK_READS`]).
    quickack_reads: u8,
}

/// OpenSSH sends its key exchange packets with Nagle on behind an unacknowledged packet and
/// then waits for our delayed ACK (~40 ms on Linux). Acknowledging at once during the
/// handshake's first reads removes that stall from every visitor's connection time. Linux
/// clears TCP_QUICKACK by itself, so it is set again before each of these reads.
const QUICKACK_READS: u8 = 8;

impl ClientStream {
    /// A connection taken as it is.
    pub fn plain(inner: TcpStream) -> Self {
        Self { inner, prefix: Vec::new(), replayed: 0, reject_header: false, quickack_reads: QUICKACK_READS }
    }

    /// A connection from outside the trusted networks: it must not claim another address.
    pub fn untrusted(inner: TcpStream) -> Self {
        Self { inner, prefix: Vec::new(), replayed: 0, reject_header: true, quickack_reads: QUICKACK_READS }
    }

    /// Reads the PROXY header from a trusted peer; returns the stream and the client's real
    /// address (the peer's own for a LOCAL command, e.g. a load balancer's health check).
    pub async fn with_header(
        mut inner: TcpStream,
        peer: SocketAddr,
        limit: Duration,
    ) -> Result<(Self, SocketAddr), ProxyError> {
        let mut buf = Vec::with_capacity(256);
        let read = async {
            loop {
                let mut chunk = [0u8; 512];
                let n = inner.read(&mut chunk).await?;
                if n == 0 {
                    return Err(ProxyError::Closed);
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                match read_header(&buf, peer) {
                    HeaderProgress::NeedMore => continue,
                    HeaderProgress::Header { len, source } => return Ok((len, source)),
                    HeaderProgress::Refused(e) => return Err(e),
                }
            }
        };
        let (len, addr) =
            tokio::time::timeout(limit, read).await.map_err(|_| ProxyError::Timeout(limit))??;
        let prefix = buf.get(len..).map(<[u8]>::to_vec).unwrap_or_default();
        Ok((Self { inner, prefix, replayed: 0, reject_header: false, quickack_reads: QUICKACK_READS }, addr))
    }
}

/// What the bytes read so far from a trusted peer amount to.
#[derive(Debug)]
pub enum HeaderProgress {
    /// A header has begun (or nothing has come yet): read more, up to [`MAX_HEADER`] bytes.
    NeedMore,
    /// A whole header of `len` bytes, from the client at `source`; the rest is SSH.
    Header { len: usize, source: SocketAddr },
    /// Not a valid header: the connection is cut.
    Refused(ProxyError),
}

/// The admission decision on the first bytes of a trusted peer's connection: the pure half
/// of [`ClientStream::with_header`], which the property tests and the fuzz target drive with
/// any bytes in any splits.
pub fn read_header(buf: &[u8], peer: SocketAddr) -> HeaderProgress {
    // A v1 header ends at its CRLF. Before that, ppp may call a partial line invalid (cut
    // after "... 51000 ", it reports a bad destination port), so a header split across TCP
    // segments at such a point would be refused: wait for the line end, within v1's 107 bytes.
    let v1_started = buf.starts_with(V1_PREFIX) || V1_PREFIX.starts_with(buf);
    if v1_started && !buf.windows(2).any(|w| w == b"\r\n") {
        if buf.len() < V1_MAX {
            return HeaderProgress::NeedMore;
        }
        return HeaderProgress::Refused(ProxyError::Invalid(format!("no end of line in {V1_MAX} bytes")));
    }
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() && buf.len() < MAX_HEADER {
        return HeaderProgress::NeedMore;
    }
    match header_address(result, peer) {
        Ok((len, source)) if len <= buf.len() => HeaderProgress::Header { len, source },
        Ok((len, _)) => {
            HeaderProgress::Refused(ProxyError::Invalid(format!("header length {len} past the data")))
        }
        Err(e) => HeaderProgress::Refused(e),
    }
}

/// The header's length and the source address it carries.
fn header_address(result: HeaderResult<'_>, peer: SocketAddr) -> Result<(usize, SocketAddr), ProxyError> {
    match result {
        HeaderResult::V1(Ok(header)) => {
            let addr = match header.addresses {
                v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Unknown => peer,
            };
            Ok((header.header.len(), addr))
        }
        HeaderResult::V2(Ok(header)) => {
            let addr = match (header.command, header.addresses) {
                (v2::Command::Local, _) => peer,
                (_, v2::Addresses::IPv4(a)) => SocketAddr::from((a.source_address, a.source_port)),
                (_, v2::Addresses::IPv6(a)) => SocketAddr::from((a.source_address, a.source_port)),
                (_, _) => peer,
            };
            Ok((header.header.len(), addr))
        }
        HeaderResult::V1(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
    }
}

/// True when `bytes` start like a PROXY header (v1 or v2).
fn starts_like_header(bytes: &[u8]) -> bool {
    bytes.starts_with(V1_PREFIX) || bytes.starts_with(V2_SIGNATURE)
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.prefix.get(this.replayed..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        if this.quickack_reads > 0 {
            let _ = socket2::SockRef::from(&this.inner).set_tcp_quickack(true);
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) {
            this.quickack_reads = this.quickack_reads.saturating_sub(1);
        }
        if this.reject_header && matches!(result, Poll::Ready(Ok(()))) {
            this.reject_header = false;
            // The first read of an SSH client is its version line; a header here is a spoof.
            if starts_like_header(buf.filled().get(before..).unwrap_or_default()) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "PROXY header from an untrusted address",
                )));
            }
        }
        result
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_give_the_source_address() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 22\r\nSSH-2.0-x\r\n";
        let (len, addr) = header_address(HeaderResult::parse(v1), peer).expect("v1");
        assert_eq!(addr, "203.0.113.7:51000".parse().expect("addr"));
        assert_eq!(&v1[len..], b"SSH-2.0-x\r\n");

        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]); // v2 PROXY, TCP4, 12 address bytes
        v2.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 2]);
        v2.extend_from_slice(&40000u16.to_be_bytes());
        v2.extend_from_slice(&22u16.to_be_bytes());
        let (len, addr) = header_address(HeaderResult::parse(&v2), peer).expect("v2");
        assert_eq!(len, v2.len());
        assert_eq!(addr, "198.51.100.9:40000".parse().expect("addr"));
    }

    /// Regression (found by the property test): a v1 header split by TCP right before the
    /// destination port was refused, because ppp calls that partial line invalid.
    #[test]
    fn a_v1_header_split_before_its_destination_port_waits_for_the_rest() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let whole = b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 22\r\nSSH-2.0-x\r\n";
        for cut in 0..whole.len() {
            let Some(part) = whole.get(..cut) else { continue };
            let decided = read_header(part, peer);
            let header_done = cut >= 42;
            match decided {
                HeaderProgress::NeedMore => assert!(!header_done, "cut {cut}"),
                HeaderProgress::Header { len, source } => {
                    assert!(header_done, "cut {cut}");
                    assert_eq!((len, source), (42, "203.0.113.7:51000".parse().expect("addr")));
                }
                HeaderProgress::Refused(e) => panic!("cut at {cut}: {e}"),
            }
        }
        assert!(matches!(read_header(&[b'P'; 200], peer), HeaderProgress::Refused(_)));
        assert!(matches!(read_header(&b"PROXY ".repeat(30), peer), HeaderProgress::Refused(_)));
    }

    #[test]
    fn garbage_is_not_a_header() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        assert!(header_address(HeaderResult::parse(b"SSH-2.0-OpenSSH_9.2\r\n"), peer).is_err());
        assert!(starts_like_header(b"PROXY TCP4 1.2.3.4"));
        assert!(!starts_like_header(b"SSH-2.0-OpenSSH"));
    }

    #[test]
    fn trusted_networks_match_v4_mapped_v6() {
        let trusted = Trusted(vec!["10.0.0.0/8".parse().expect("net")]);
        assert!(trusted.contains(&"10.1.2.3:1".parse().expect("addr")));
        assert!(trusted.contains(&"[::ffff:10.1.2.3]:1".parse().expect("addr")));
        assert!(!trusted.contains(&"192.0.2.1:1".parse().expect("addr")));
    }
}
