//! Several replicas, one room: two sshbio processes share presenter moves and audience counts
//! through a real redis-server on loopback (`.ci/run` installs it; the test starts its own).
// The Redis bridge is the `redis` cargo feature (on by default).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        assert!(have("redis-server"), "redis-server is needed: apt-get install redis-server (.ci/run does)");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presenter_on_one_replica_leads_followers_on_another() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    let dir = workdir("redis");
    let keys_file = dir.join("presenters");
    std::fs::write(&keys_file, format!("{}\n", key.public_key().to_openssh().unwrap())).unwrap();
    let flags = ["--redis", &url, "--presenter-keys", keys_file.to_str().unwrap()];
    let first = Process::start(&dir, &flags);
    let second = Process::start(&dir, &flags);
    first.wait_log("sharing the room through redis");
    second.wait_log("sharing the room through redis");

    // A visitor on the second replica.
    let conn = connect(second.addr, "visitor").await;
    let mut follower = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;

    // The presenter on the first.
    let mut handle = client::connect(
        Arc::new(client::Config::default()),
        first.addr,
        ClientHandler { server_key: Arc::new(Mutex::new(None)) },
    )
    .await
    .unwrap();
    let auth = handle
        .authenticate_publickey("present", PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(auth.success());
    let presenter_conn = Conn { handle, server_key: Arc::new(Mutex::new(None)) };
    let mut presenter = open_tui(&presenter_conn, "xterm-256color", 100, 30, &[]).await;

    follower.wait_for_text("Following the speaker live").await;
    presenter.press(b"4", &top(4)).await;
    follower.wait_for_text(&top(4)).await;
    presenter.press(b"7", &top(7)).await;
    follower.wait_for_text(&top(7)).await;
    // Counts add up across replicas: 2 connected, 1 following.
    presenter.wait_for_text("2 here · 1 following").await;
    follower.wait_for_text("2 here").await;

    presenter.send(b"q").await;
    presenter.wait_close().await;
    follower.wait_for("the banner gone", |s| !s.contains("Following the speaker")).await;
    assert!(follower.text().contains(&top(7)), "stays where the speaker left it");
}
