//! One connection's life with the russh client: every login method, several sessions on one
//! connection (each its own UI, each counted), the hang-up after the last channel (an SSH
//! disconnect, then TCP closed even when the client holds its socket), limits per session, and
//! failed key exchanges counted by reason (with OpenSSH restricted). Content is the small
//! fixture bio. The real clients are in `clients.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

/// The made-up bio every test here serves (never the owner's content.toml).
fn fixture() -> sshbio::content::Content {
    let text = include_str!("fixtures/small.toml");
    sshbio::content::parse_str(text, Path::new("tests/fixtures/small.toml")).unwrap()
}

async fn start() -> TestServer {
    TestServer::start_with(Options { content: fixture(), ..Options::default() }).await
}

async fn unauthenticated(server: &TestServer) -> client::Handle<ClientHandler> {
    let handler = ClientHandler { server_key: Arc::new(Mutex::new(None)) };
    let connect = client::connect(Arc::new(client::Config::default()), server.addr, handler);
    tokio::time::timeout(WAIT, connect).await.unwrap().unwrap()
}

/// Runs `command` on an authenticated connection and returns its stdout.
async fn run(handle: client::Handle<ClientHandler>, command: &str) -> String {
    let conn = Conn { handle, server_key: Arc::new(Mutex::new(None)) };
    let screen = exec(&conn, command).await;
    assert_eq!(screen.exit_status, Some(0), "{command}: {}", String::from_utf8_lossy(&screen.stderr));
    screen.raw_text()
}

#[tokio::test]
async fn any_login_method_lets_a_visitor_in_without_a_prompt() {
    let server = start().await;

    let mut handle = unauthenticated(&server).await;
    assert!(handle.authenticate_password("early", "").await.unwrap().success(), "empty password");
    assert!(run(handle, "section early").await.starts_with("Early days\n"));

    let mut handle = unauthenticated(&server).await;
    assert!(handle.authenticate_password("visitor", "hunter2").await.unwrap().success(), "any password");

    // Any key, as long as the client really holds it: russh verifies the signature first.
    let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    let mut handle = unauthenticated(&server).await;
    let auth = handle.authenticate_publickey("visitor", PrivateKeyWithHashAlg::new(Arc::new(key), None));
    assert!(auth.await.unwrap().success(), "any public key");
    assert!(run(handle, "bio").await.contains("Ada Quill"));

    // Keyboard-interactive: accepted before any prompt is sent.
    let mut handle = unauthenticated(&server).await;
    let reply = handle.authenticate_keyboard_interactive_start("visitor", None::<String>).await.unwrap();
    assert!(matches!(reply, client::KeyboardInteractiveAuthResponse::Success), "no prompt: {reply:?}");

    // `present` still needs a listed key, whatever it tries.
    let mut handle = unauthenticated(&server).await;
    assert!(!handle.authenticate_password("present", "").await.unwrap().success());
    // (With nothing left to try, the russh client hangs up: a fresh connection.)
    let mut handle = unauthenticated(&server).await;
    let reply = handle.authenticate_keyboard_interactive_start("present", None::<String>).await.unwrap();
    match reply {
        // Nothing is left to try that could prompt: only a public key.
        client::KeyboardInteractiveAuthResponse::Failure { remaining_methods, .. } => {
            let remaining: Vec<_> = remaining_methods.iter().copied().collect();
            assert_eq!(remaining, [russh::MethodKind::PublicKey], "presenting is off here")
        }
        other => panic!("present without a key got in: {other:?}"),
    }
}

/// Opens the UI on a new channel of `conn` and waits until the screen shows `expect`.
async fn open_ui(conn: &Conn, cols: u16, rows: u16, expect: &str) -> Screen {
    let channel = conn.handle.channel_open_session().await.unwrap();
    channel.request_pty(true, "xterm-256color", u32::from(cols), u32::from(rows), 0, 0, &[]).await.unwrap();
    channel.request_shell(true).await.unwrap();
    let mut screen = Screen::new(channel, cols, rows);
    screen.wait_for_text(expect).await;
    screen
}

/// Waits (bounded) until the client's side of `handle` sees the connection gone.
/// How long the server may take to hang up after the last channel closed, in these tests. The
/// server's grace is half a second (then up to half a second more for the client to close its
/// side); the bound is wider so that a loaded machine cannot fail the test, while a server that
/// keeps the connection (as before) still fails it. The measured time is printed.
const HANG_UP: Duration = Duration::from_secs(5);

async fn wait_hung_up<H: client::Handler>(handle: &client::Handle<H>, within: Duration) -> Duration {
    let started = Instant::now();
    while !handle.is_closed() {
        assert!(started.elapsed() < within, "the server kept the connection open for {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("hung up after {:?}", started.elapsed());
    started.elapsed()
}

#[tokio::test]
async fn up_to_four_sessions_share_a_connection_each_its_own_and_counted_as_visitors() {
    let server = start().await;
    let conn = connect(server.addr, "lighthouse").await;
    // Two UIs at once on one connection, each opened on the user name's section.
    let mut first = open_ui(&conn, 80, 24, "For six winters").await;
    first.wait_for_text("1 here").await;
    let mut second = open_ui(&conn, 100, 30, "For six winters").await;
    // Each counts in the audience as a visitor would.
    first.wait_for_text("2 here").await;
    second.wait_for_text("2 here").await;
    // A command and a plain-text shell alongside them.
    let command = exec(&conn, "section compilers").await;
    assert_eq!(command.exit_status, Some(0));
    assert!(command.raw_text().starts_with("Compilers\n"), "{}", command.raw_text());
    let plain = plain_shell(&conn).await;
    assert_eq!(plain.exit_status, Some(0));
    // The plain text of the user name's section, as the UIs opened on it.
    assert!(plain.raw_text().starts_with("The lighthouse\n"), "{}", plain.raw_text());
    assert!(plain.raw_text().contains("For six winters") && !plain.raw.contains(&0x1b));
    // Four open at once: a fifth is refused until one closes.
    let third = conn.handle.channel_open_session().await.unwrap();
    let fourth = conn.handle.channel_open_session().await.unwrap();
    assert!(conn.handle.channel_open_session().await.is_err(), "a fifth session channel at once");
    third.close().await.unwrap();
    fourth.close().await.unwrap();
    // Each UI is its own: keys on one leave the other alone.
    second.press(b"l", "She now writes compilers").await;
    first.drain_for(Duration::from_millis(200)).await;
    assert!(first.text().contains("For six winters"), "{}", first.text());
    second.send(b"q").await;
    assert_eq!(second.wait_close().await, Some(0));
    first.wait_for_text("1 here").await;
    first.send(b"q").await;
    assert_eq!(first.wait_close().await, Some(0));
    // The last channel closed: the server hangs up.
    wait_hung_up(&conn.handle, HANG_UP).await;
}

/// A client that records the disconnect message the server sends.
struct Recorder {
    disconnect: Arc<Mutex<Option<russh::client::RemoteDisconnectInfo>>>,
}

impl client::Handler for Recorder {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                *self.disconnect.lock().unwrap() = Some(info);
                Ok(())
            }
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

#[tokio::test]
async fn after_the_last_channel_the_server_sends_a_disconnect() {
    let server = start().await;
    let disconnect = Arc::new(Mutex::new(None));
    let recorder = Recorder { disconnect: disconnect.clone() };
    let mut handle =
        client::connect(Arc::new(client::Config::default()), server.addr, recorder).await.unwrap();
    assert!(handle.authenticate_none("visitor").await.unwrap().success());
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.exec(true, "json").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    // Read to the channel's close, then keep the connection without doing anything.
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, channel.wait()).await {
        if matches!(msg, russh::ChannelMsg::Close) {
            break;
        }
    }
    wait_hung_up(&handle, HANG_UP).await;
    let info =
        disconnect.lock().unwrap().take().expect("an SSH disconnect message, not just a closed socket");
    assert!(matches!(info.reason_code, russh::Disconnect::ByApplication), "{info:?}");
}

/// A TCP stream whose shutdown does nothing: with a second handle on the socket held by the
/// test, the client never closes its side, like libssh2 apps that keep the socket.
struct Holding(tokio::net::TcpStream);

impl tokio::io::AsyncRead for Holding {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Holding {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_tcp_after_an_exec_even_when_the_client_holds_its_socket() {
    let server = start().await;
    let socket = std::net::TcpStream::connect(server.addr).unwrap();
    // A second descriptor for the same socket: the client's side stays open whatever russh
    // does with its own, so only the server can end the TCP connection.
    let held = socket.try_clone().unwrap();
    socket.set_nonblocking(true).unwrap();
    let stream = Holding(tokio::net::TcpStream::from_std(socket).unwrap());
    let handler = ClientHandler { server_key: Arc::new(Mutex::new(None)) };
    let mut handle =
        client::connect_stream(Arc::new(client::Config::default()), stream, handler).await.unwrap();
    assert!(handle.authenticate_none("visitor").await.unwrap().success());
    let conn = Conn { handle, server_key: Arc::new(Mutex::new(None)) };
    let out = exec(&conn, "section early").await;
    assert!(out.raw_text().starts_with("Early days\n"));
    let ended = Instant::now();
    let eof = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        held.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut held = held;
        let mut buf = [0u8; 4096];
        while ended.elapsed() < HANG_UP + Duration::from_secs(1) {
            match held.read(&mut buf) {
                Ok(0) => return Some(ended.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                // A reset also means the server closed it.
                Err(_) => return Some(ended.elapsed()),
            }
        }
        None
    })
    .await
    .unwrap();
    let after = eof.expect("the server never closed the TCP connection");
    eprintln!("the server closed the TCP connection {after:?} after the session ended");
    assert!(after < HANG_UP, "closed only after {after:?}");
    drop(conn);
}

#[tokio::test]
async fn each_further_session_counts_against_the_address_limit_as_a_visitor_would() {
    let limits = sshbio::server::Limits { max_per_ip: 2, ..sshbio::server::Limits::default() };
    let server = TestServer::start_with(Options { content: fixture(), limits, ..Options::default() }).await;
    let conn = connect(server.addr, "visitor").await;
    let _first = open_ui(&conn, 80, 24, "Ada Quill").await;
    let _second = open_ui(&conn, 80, 24, "Ada Quill").await;
    assert!(conn.handle.channel_open_session().await.is_err(), "a third visitor from this address");
    assert!(try_connect(server.addr, "other").await.is_err(), "a new connection is refused too");
}

#[tokio::test]
async fn failed_key_exchanges_are_counted_by_reason() {
    let metrics = Arc::new(sshbio::metrics::Metrics::new());
    let options = Options { content: fixture(), metrics: metrics.clone(), ..Options::default() };
    let server = TestServer::start_with(options).await;
    let cases = [
        (&["-o", "Ciphers=aes128-cbc"][..], "no matching cipher", "cipher"),
        (&["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"][..], "no matching MAC", "mac"),
        (&["-o", "KexAlgorithms=diffie-hellman-group14-sha256"][..], "no matching key exchange", "kex"),
        (&["-o", "HostKeyAlgorithms=rsa-sha2-256"][..], "no matching host key", "host-key"),
    ];
    for (options, error, reason) in cases {
        // (The first value of an option wins: this one shows the refusal.)
        let options = [&["-o", "LogLevel=INFO"][..], options].concat();
        let out = output(openssh(&server, "visitor", &options, &["bio"])).await;
        assert_eq!(out.status.code(), Some(255));
        assert!(String::from_utf8_lossy(&out.stderr).contains(error), "{out:?}");
        let needle = format!("sshbio_kex_failures_total{{reason=\"{reason}\"}} 1");
        let deadline = Instant::now() + WAIT;
        while !metrics.encode().contains(&needle) {
            assert!(Instant::now() < deadline, "{needle} missing:\n{}", metrics.encode());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
