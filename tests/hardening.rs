//! The server on the open internet: limits, timeouts, refusals, garbage, stalled readers,
//! panics, crypto policy. Loopback only, every loop bounded in count and time. The server
//! serves the long fixture (tests/fixtures/long.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use russh::ChannelMsg;
use sshbio::server::Limits;
use sshbio::ssh::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from a raw socket until EOF/error or `limit`; returns what arrived and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// A normal visitor still gets the bio promptly.
async fn still_serves(server: &TestServer) {
    let conn = connect(server.addr, "visitor").await;
    let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    assert!(screen.text().contains(&top(1)));
    disconnect(conn).await;
}

#[tokio::test]
async fn per_address_limit_refuses_with_a_clear_reason() {
    let limits = Limits { max_per_ip: 2, ..Limits::default() };
    let metrics = Arc::new(sshbio::metrics::Metrics::new());
    let server =
        TestServer::start_with(Options { limits, metrics: metrics.clone(), ..Options::default() }).await;
    let a = connect(server.addr, "a").await;
    let b = connect(server.addr, "b").await;
    // The third gets our version line and an SSH disconnect with the reason, no hang.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"SSH-2.0-test\r\n").await.unwrap();
    let (bytes, closed) = read_until_closed(&mut raw, Duration::from_secs(5)).await;
    assert!(closed, "refused connection is closed");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("SSH-2.0-sshbio\r\n"), "{text:?}");
    assert!(text.contains("too many connections from your address"), "{text:?}");
    assert!(try_connect(server.addr, "c").await.is_err());
    assert_eq!(metric(&metrics, "sshbio_connections_refused_total{reason=\"per-ip-limit\"}"), 2);
    // Closing one makes room again, once the server has seen it go.
    disconnect(a).await;
    wait_metric(&metrics, "sshbio_connections_open", 1).await;
    let c = connect(server.addr, "c").await;
    disconnect(b).await;
    disconnect(c).await;
}

#[tokio::test]
async fn global_limit_and_rate_limit_refuse() {
    let limits = Limits { max_connections: 1, ..Limits::default() };
    let server = TestServer::start_with(Options { limits, ..Options::default() }).await;
    let a = connect(server.addr, "a").await;
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let (bytes, closed) = read_until_closed(&mut raw, Duration::from_secs(5)).await;
    assert!(closed && String::from_utf8_lossy(&bytes).contains("the server is full"));
    disconnect(a).await;

    let limits = Limits { burst_per_ip: 3, rate_per_ip: 0.01, ..Limits::default() };
    let server = TestServer::start_with(Options { limits, ..Options::default() }).await;
    for _ in 0..3 {
        disconnect(connect(server.addr, "a").await).await;
    }
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let (bytes, _) = read_until_closed(&mut raw, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&bytes).contains("too many new connections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_room_behind_one_address_gets_in_by_default() {
    // 300 visitors on one NAT address, connecting at once, with the default limits.
    let server = TestServer::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let addr = server.addr;
        tasks.spawn(async move {
            let conn = connect(addr, &format!("visitor{i}")).await;
            let channel = conn.handle.channel_open_session().await.unwrap();
            channel.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await.unwrap();
            channel.request_shell(true).await.unwrap();
            (conn, channel)
        });
    }
    let mut open = Vec::new();
    while let Some(result) = tasks.join_next().await {
        open.push(result.unwrap());
    }
    assert_eq!(open.len(), 300);
    // Every one of them is answered: read each first frame (the name may span two packets).
    for (_, channel) in open.iter_mut() {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut received = Vec::new();
        while !String::from_utf8_lossy(&received).contains(LONG_NAME) {
            match tokio::time::timeout_at(deadline, channel.wait()).await.unwrap() {
                Some(ChannelMsg::Data { data }) => received.extend_from_slice(&data),
                Some(_) => {}
                None => panic!("closed"),
            }
        }
    }
    still_serves(&server).await;
    drop(open);
}

#[tokio::test]
async fn slowloris_and_silent_connections_are_dropped() {
    // Two seconds: short against the trickle's 4.2 s, long enough for `still_serves` to finish
    // its own handshake on a loaded machine.
    let settings = Settings { handshake_timeout: Duration::from_secs(2), ..Settings::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    // Says nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Sends its version line one byte at a time, too slowly.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in b"SSH-2.0-slowloris-client-taking-its-time\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
        closed
    });
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(8)).await;
    assert!(closed, "silent connection dropped after the handshake timeout");
    assert!(trickle.await.unwrap(), "slowloris connection dropped");
    still_serves(&server).await;
}

#[tokio::test]
async fn garbage_before_and_after_the_handshake_ends_only_that_connection() {
    let server = TestServer::start().await;
    let mut seed = 99u32;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect()
    };
    // Random bytes instead of a version line.
    for _ in 0..5 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(&noise(4096)).await;
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed);
    }
    // A valid version line, then random binary packets.
    for _ in 0..5 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(b"SSH-2.0-fuzz\r\n").await;
        let _ = s.write_all(&noise(8192)).await;
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed);
    }
    // A huge claimed packet length.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(b"SSH-2.0-fuzz\r\n\xff\xff\xff\xf0\x04").await;
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed);
    still_serves(&server).await;
}

#[tokio::test]
async fn forwarding_subsystems_and_extra_channels_are_refused() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    assert!(
        conn.handle.channel_open_direct_tcpip("127.0.0.1", 22, "127.0.0.1", 5555).await.is_err(),
        "-L/-D refused"
    );
    let mut session = conn.handle.channel_open_session().await.unwrap();
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(conn.handle.channel_open_session().await.expect("up to 4 session channels"));
    }
    assert!(conn.handle.channel_open_session().await.is_err(), "at most 4 session channels per connection");
    session.request_subsystem(true, "sftp").await.unwrap();
    let reply = tokio::time::timeout(WAIT, session.wait()).await.unwrap();
    assert!(matches!(reply, Some(ChannelMsg::Failure)), "{reply:?}");
    session.agent_forward(true).await.unwrap();
    let reply = tokio::time::timeout(WAIT, session.wait()).await.unwrap();
    assert!(matches!(reply, Some(ChannelMsg::Failure)), "{reply:?}");
    // Env requests are bounded: the first ones are taken, the flood is refused.
    let mut failures = 0;
    for i in 0..40 {
        session.set_env(true, format!("VAR{i}"), "x".repeat(10)).await.unwrap();
        if let Some(ChannelMsg::Failure) = tokio::time::timeout(WAIT, session.wait()).await.unwrap() {
            failures += 1;
        }
    }
    assert_eq!(failures, 40 - 16);
    // -R is refused too; the connection stays usable.
    let handle = conn.handle;
    assert!(handle.tcpip_forward("127.0.0.1", 0).await.is_err());
    session.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await.unwrap();
    session.request_shell(true).await.unwrap();
}

/// The panic trigger of tests/panic.rs exists only with the test-only cargo feature: in the
/// build `cargo test` makes (a debug build, as served by `cargo run`) that user name is an
/// ordinary visitor.
#[tokio::test]
async fn the_test_panic_user_name_is_an_ordinary_visitor_without_the_feature() {
    if cfg!(feature = "test-panic") {
        return; // tests/panic.rs covers the feature build
    }
    let server = TestServer::start().await;
    let conn = connect(server.addr, "sshbio-test-panic").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.prove_live(b"2", &top(2)).await;
    assert!(!screen.closed && screen.exit_status.is_none());
}

/// The real OpenSSH client with a remote pty (`-tt`) and pipes for its stdin and stdout.
fn ssh_tt_with_pipes(addr: std::net::SocketAddr) -> tokio::process::Child {
    assert!(have("ssh"), "the OpenSSH client is needed (apt-get install openssh-client)");
    let mut args = vec!["-tt".to_string()];
    args.extend(ssh_args(addr, "visitor"));
    tokio::process::Command::new("ssh")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_stalled_reader_is_disconnected() {
    let settings = Settings { write_timeout: Duration::from_secs(1), ..Settings::default() };
    let metrics = Arc::new(sshbio::metrics::Metrics::new());
    let server =
        TestServer::start_with(Options { settings, metrics: metrics.clone(), ..Options::default() }).await;
    let mut child = ssh_tt_with_pipes(server.addr); // its stdout is never read
    let mut stdin = child.stdin.take().unwrap();
    // Switch sections back and forth: every key is a full redraw (several KiB).
    let typing = tokio::spawn(async move {
        // Separate writes a moment apart, so each is its own packet and its own frame (keys
        // that arrive together are coalesced into one frame, which could end unchanged).
        for i in 0..20_000 {
            let key: &[u8] = if i % 2 == 0 { b"1" } else { b"7" };
            if stdin.write_all(key).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Keep stdin open: EOF would end the session as a normal quit.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while metric(&metrics, "sshbio_connections_closed_total{end=\"stalled\"}") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "stall not detected:\n{}", metrics.encode());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    typing.abort();
    // The client's side of the connection is gone too.
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(status.is_ok(), "ssh exited after the server cut the connection");
    still_serves(&server).await;
}

/// Connects through a "load balancer": writes `header` first, then speaks SSH.
async fn connect_via_proxy(
    addr: std::net::SocketAddr,
    header: &[u8],
    user: &str,
) -> Result<Conn, russh::Error> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(header).await.unwrap();
    let server_key = Arc::new(std::sync::Mutex::new(None));
    let handler = ClientHandler { server_key: server_key.clone() };
    let config = Arc::new(russh::client::Config::default());
    let mut handle = tokio::time::timeout(WAIT, russh::client::connect_stream(config, stream, handler))
        .await
        .map_err(|_| russh::Error::ConnectionTimeout)??;
    if !handle.authenticate_none(user).await?.success() {
        return Err(russh::Error::NotAuthenticated);
    }
    Ok(Conn { handle, server_key })
}

#[tokio::test]
async fn proxy_protocol_gives_real_addresses_only_from_trusted_networks() {
    let limits = Limits { max_per_ip: 1, ..Limits::default() };
    let metrics = Arc::new(sshbio::metrics::Metrics::new());
    let server = TestServer::start_with(Options {
        limits: limits.clone(),
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        metrics: metrics.clone(),
        ..Options::default()
    })
    .await;
    // Two visitors behind the same balancer, different real addresses: both admitted even
    // though each address may hold only one connection.
    let a =
        connect_via_proxy(server.addr, b"PROXY TCP4 198.51.100.1 10.0.0.1 40000 22\r\n", "a").await.unwrap();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 2, 10, 0, 0, 1, 0x9c, 0x41, 0, 22]);
    let b = connect_via_proxy(server.addr, &v2, "b").await.unwrap();
    let screen = open_tui(&b, "xterm", 80, 24, &[]).await;
    assert!(screen.text().contains(LONG_NAME));
    // A second connection from 198.51.100.1 is over its limit: the limit used the real address.
    assert!(
        connect_via_proxy(server.addr, b"PROXY TCP4 198.51.100.1 10.0.0.1 40001 22\r\n", "c").await.is_err()
    );
    assert_eq!(metric(&metrics, "sshbio_connections_refused_total{reason=\"per-ip-limit\"}"), 1);
    // A trusted peer without a header is cut off.
    assert!(try_connect(server.addr, "no-header").await.is_err());
    assert_eq!(metric(&metrics, "sshbio_connections_refused_total{reason=\"proxy-header\"}"), 1);
    disconnect(a).await;

    // From outside the trusted networks, a header is a spoof: the connection ends.
    let server = TestServer::start_with(Options {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..Options::default()
    })
    .await;
    assert!(
        connect_via_proxy(server.addr, b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 22\r\n", "spoof")
            .await
            .is_err()
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn a_flood_of_keystrokes_does_not_starve_other_sessions() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "flood").await;
    let mut flooder = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    let mut writer = flooder.channel.make_writer();
    let flood = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let chunk = b"jkjkjkjk".repeat(4096); // 32 KiB of scroll keys per write
        for _ in 0..128 {
            // 4 MiB in all
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let conn = connect(server.addr, "bystander").await;
    let mut bystander = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    for key in [&b"2"[..], b"3", b"4", b"5"] {
        let before = bystander.text();
        bystander.send(key).await;
        bystander.wait_for("a redraw", |s| s != before).await;
    }
    // The flooder reads its screen as any terminal does (a client that stops reading is cut
    // after the write timeout: another test), until its flood is through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !flood.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "the flood did not get through in 60 s");
        flooder.drain_for(Duration::from_millis(50)).await;
    }
    flood.await.unwrap();
    // The flooding session itself is still alive and answers.
    flooder.press(b"7", &top(7)).await;
}

#[tokio::test]
async fn keepalives_end_connections_to_dead_clients() {
    let settings = Settings { keepalive_interval: Duration::from_millis(500), ..Settings::default() };
    let metrics = Arc::new(sshbio::metrics::Metrics::new());
    let server =
        TestServer::start_with(Options { settings, metrics: metrics.clone(), ..Options::default() }).await;
    let mut child = ssh_tt_with_pipes(server.addr);
    // Frozen only once its session is up (a client frozen mid-handshake is the handshake
    // timeout's business, not the keepalive's).
    eventually("the ssh session to start", WAIT, || {
        metric(&metrics, "sshbio_sessions_started_total{kind=\"tui\"}") == 1
    })
    .await;
    // The client freezes (a laptop lid closes): it stops answering anything.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while metric(&metrics, "sshbio_connections_open") != 0 {
        assert!(tokio::time::Instant::now() < deadline, "dead client still connected:\n{}", metrics.encode());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let _ = child.kill().await;
}
