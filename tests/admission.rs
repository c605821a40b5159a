//! Admission as a keynote room meets it: many connections from one NAT address, a handshake
//! flood, and the quarter of the server that one address can never take. Clients bind their
//! own loopback source addresses (127.0.0.x) to stand in for different networks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ClientHandler, Options, TestServer, WAIT};
use russh::ChannelMsg;
use russh::client;
use sshbio::server::Limits;
use sshbio::ssh::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const FIXTURE: &str = include_str!("fixtures/small.toml");
const NAME: &str = "Ada Quill";

fn options(limits: Limits, settings: Settings) -> Options {
    let content = sshbio::content::parse_str(FIXTURE, Path::new("small.toml")).unwrap();
    Options { content, limits, settings, ..Options::default() }
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn tcp_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    tokio::time::timeout(WAIT, socket.connect(addr)).await.expect("connect in time").unwrap()
}

/// A connected visitor; the connection stays open while this lives.
struct Visitor {
    _handle: client::Handle<ClientHandler>,
    _channel: russh::Channel<client::Msg>,
    /// From TCP connect to the bio's name on screen.
    took: Duration,
}

/// Connects from `from`, logs in anonymously, opens the TUI at 80x24 and waits for the bio's
/// name on screen.
async fn visitor(from: [u8; 4], addr: SocketAddr) -> Visitor {
    let started = Instant::now();
    let stream = tcp_from(from, addr).await;
    let handler = ClientHandler { server_key: Arc::new(Mutex::new(None)) };
    let mut handle =
        client::connect_stream(Arc::new(client::Config::default()), stream, handler).await.unwrap();
    assert!(handle.authenticate_none("guest").await.unwrap().success());
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.request_pty(false, "xterm-256color", 80, 24, 0, 0, &[]).await.unwrap();
    channel.request_shell(false).await.unwrap();
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !vt.screen().contents().contains(NAME) {
        match tokio::time::timeout_at(deadline, channel.wait()).await {
            Ok(Some(ChannelMsg::Data { data })) => vt.process(&data),
            Ok(Some(_)) => {}
            Ok(None) => panic!("channel closed before the first frame"),
            Err(_) => panic!("no first frame in time; screen:\n{}", vt.screen().contents()),
        }
    }
    Visitor { took: started.elapsed(), _handle: handle, _channel: channel }
}

/// Reads what the server sends first on a raw TCP connection, until `needle` shows or the
/// connection closes; returns it as text.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&got).contains(needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("timed out waiting for {needle:?}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_handshake_flood_from_one_address_leaves_room_for_a_visitor_from_another() {
    // 8 key exchanges at once; one address may hold 6. The flood sends its version line and
    // then stalls, the cheapest way to hold a key-exchange slot until the handshake timeout.
    let limits = Limits { max_startups: 8, ..Limits::default() };
    let settings = Settings { handshake_timeout: Duration::from_secs(30), ..Settings::default() };
    let server = TestServer::start_with(options(limits, settings)).await;
    let mut flood = Vec::new();
    for _ in 0..40 {
        let mut stream = tcp_from([127, 0, 0, 2], server.addr).await;
        stream.write_all(b"SSH-2.0-flood\r\n").await.unwrap();
        flood.push(stream);
    }
    // The server speaks first only to connections holding a slot: wait until six of the flood
    // have heard its version line, so the flood is in place before the visitor arrives.
    let mut started = 0;
    for stream in flood.iter_mut().take(6) {
        assert!(read_until(stream, "SSH-2.0-sshbio").await.contains("SSH-2.0-sshbio"));
        started += 1;
    }
    assert_eq!(started, 6);
    let took = visitor([127, 0, 0, 3], server.addr).await.took;
    eprintln!("visitor's first frame under a flood of 40 stalled handshakes: {took:?}");
    // Without the reserved quarter the visitor would queue behind the flood until its
    // handshakes time out (30 s); a generous bound keeps this free of timing noise.
    assert!(took < Duration::from_secs(10), "the visitor waited {took:?}");
    drop(flood);
    server.shutdown().await;
}

#[tokio::test]
async fn one_address_leaves_a_quarter_of_the_server_to_others() {
    // 8 connections in all: one address gets 6, and the seventh is refused with a reason
    // while another address still gets in.
    let limits = Limits { max_connections: 8, ..Limits::default() };
    let server = TestServer::start_with(options(limits, Settings::default())).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(visitor([127, 0, 0, 4], server.addr).await);
    }
    let mut refused = tcp_from([127, 0, 0, 4], server.addr).await;
    let reply = read_until(&mut refused, "address").await;
    assert!(reply.contains("too many connections from your address"), "{reply:?}");
    let _other = visitor([127, 0, 0, 5], server.addr).await;
    drop(held);
    server.shutdown().await;
}

#[tokio::test]
async fn an_explicit_per_address_cap_refuses_with_its_reason() {
    let limits = Limits { max_per_ip: 1, ..Limits::default() };
    let server = TestServer::start_with(options(limits, Settings::default())).await;
    let _first = visitor([127, 0, 0, 6], server.addr).await;
    let mut second = tcp_from([127, 0, 0, 6], server.addr).await;
    let reply = read_until(&mut second, "address").await;
    assert!(reply.contains("too many connections from your address"), "{reply:?}");
    let _elsewhere = visitor([127, 0, 0, 7], server.addr).await;
    server.shutdown().await;
}
