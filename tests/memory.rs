//! Memory after a crowd: a server process takes 200 large sessions and some garbage
//! connections, and its resident memory must come back near where it started once they are all
//! gone. A test binary of its own, so no other test's connections or CPU use run beside it
//! (cargo runs test binaries one after another), and every wait is for an event with a
//! deadline, not a fixed sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Waits until the server has closed `stream` (EOF or error).
async fn wait_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server never closed a garbage connection"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_near_its_start_after_a_crowd_and_abuse_leave() {
    let dir = workdir("memory");
    let server = Process::start(&dir, &[]);
    let pid = server.child.id();
    // Warm up: one full session, so lazily allocated things exist before the baseline.
    let conn = connect(server.addr, "warmup").await;
    let mut s = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    s.send(b"q").await;
    s.wait_close().await;
    disconnect(conn).await;
    server.wait_log_count("session ended", 1);
    let base = rss_kib(pid);

    // A crowd of 200 sessions at 200x60, each drawing a few frames, plus garbage connections.
    let mut crowd = Vec::new();
    for i in 0..200 {
        let conn = connect(server.addr, &format!("v{i}")).await;
        let mut screen = open_tui(&conn, "xterm-256color", 200, 60, &[]).await;
        screen.press(b"6G", &end(6)).await;
        crowd.push((conn, screen));
    }
    let mut garbage = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(b"SSH-2.0-x\r\n\x00\x00\x10\x00garbage").await;
        garbage.push(s);
    }
    // Every frame has been drawn and seen: this is the peak.
    let peak = rss_kib(pid);
    for (conn, mut screen) in crowd {
        screen.send(b"q").await;
        screen.wait_close().await;
        disconnect(conn).await;
    }
    for s in garbage.iter_mut() {
        wait_closed(s).await;
    }
    server.wait_log_count("session ended", 201);

    // The allocator gives memory back on its own schedule (and keeps some of it in its arenas):
    // the bound must hold within a deadline, measured again until it does. Seen on a 2-core
    // machine: base 13 MiB, peak 230-260 MiB, after 43-70 MiB against a bound of about 93 MiB;
    // with a leak of 512 KiB per session (100 MiB over the crowd), peak 340 MiB, after 150 MiB
    // against a bound of 122 MiB: it fails, as it should.
    let bound = base + peak.saturating_sub(base) / 3;
    let deadline = Instant::now() + WAIT;
    let mut after = rss_kib(pid);
    while after > bound && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = rss_kib(pid);
    }
    eprintln!("server RSS: base {base} KiB, peak {peak} KiB, after {after} KiB (bound {bound})");
    assert!(peak > base, "the crowd used memory");
    assert!(after <= bound, "memory did not come back: base {base}, peak {peak}, after {after} KiB");

    let conn = connect(server.addr, "visitor").await;
    let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    assert!(screen.text().contains(&top(1)));
}
