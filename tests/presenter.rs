//! On stage: the presenter (`present@` with a listed key) leads every visitor's screen, the
//! audience count, and refusal of `present@` without a key, with real clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use sshbio::ssh::Settings;

fn presenter_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap()
}

async fn start_with_presenter(key: &PrivateKey) -> TestServer {
    let settings = Settings { presenter_keys: vec![key.public_key().clone()], ..Settings::default() };
    TestServer::start_with(Options { settings, ..Options::default() }).await
}

#[tokio::test]
async fn followers_move_with_the_presenter_and_stay_when_it_leaves() {
    let key = presenter_key();
    let server = start_with_presenter(&key).await;
    let mut followers = Vec::new();
    for i in 0..5 {
        let conn = connect(server.addr, &format!("v{i}")).await;
        let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
        followers.push((conn, screen));
    }
    let presenter_conn = connect_presenter(&server, &key).await;
    let mut presenter = open_tui(&presenter_conn, "xterm-256color", 100, 30, &[]).await;
    presenter.wait_for_text("You are presenting").await;
    for (_, screen) in followers.iter_mut() {
        screen.wait_for_text("Following the speaker live").await;
    }
    // The presenter sees the room: 6 connected (5 + itself), 5 following.
    presenter.wait_for_text("6 here · 5 following").await;

    presenter.press(b"5", &top(5)).await;
    for (_, screen) in followers.iter_mut() {
        screen.wait_for_text(&top(5)).await;
    }
    // One visitor browses on their own; the others keep following.
    followers[0].1.press(b"f", "The speaker is presenting").await;
    followers[0].1.press(b"1", &top(1)).await;
    presenter.press(b"7", &top(7)).await;
    for (_, screen) in followers.iter_mut().skip(1) {
        screen.wait_for_text(&top(7)).await;
    }
    // The browsing visitor was not moved: the bottom of its own section, not the speaker's.
    followers[0].1.press(b"G", "-ends.").await;
    assert!(followers[0].1.text().contains(&end(1)), "browsing visitor stays put");
    presenter.wait_for_text("6 here · 4 following").await;
    // `f` again: back with the speaker.
    followers[0].1.press(b"f", &top(7)).await;

    // The presenter leaves: banners go, everyone stays where they are.
    presenter.send(b"q").await;
    presenter.wait_close().await;
    for (_, screen) in followers.iter_mut() {
        screen.wait_for("the banner gone", |s| !s.contains("Following the speaker")).await;
        assert!(screen.text().contains(&top(7)), "{}", screen.text());
    }
}

#[tokio::test]
async fn visitors_see_the_audience_count() {
    let server = TestServer::start().await;
    let a = connect(server.addr, "a").await;
    let mut first = open_tui(&a, "xterm-256color", 80, 24, &[]).await;
    first.wait_for_text("1 here").await;
    let b = connect(server.addr, "b").await;
    let _second = open_tui(&b, "xterm-256color", 80, 24, &[]).await;
    first.wait_for_text("2 here").await;

    // The owner can turn it off in content.toml.
    let mut content = long_content();
    content.show_audience = false;
    server.content.send_replace(Arc::new(content));
    first.wait_for("the count hidden", |s| !s.contains(" here")).await;
}

/// A connection that has not authenticated yet.
async fn unauthenticated(server: &TestServer) -> client::Handle<ClientHandler> {
    let handler = ClientHandler { server_key: Arc::new(Mutex::new(None)) };
    client::connect(Arc::new(client::Config::default()), server.addr, handler).await.unwrap()
}

#[tokio::test]
async fn present_without_a_listed_key_is_refused_like_any_failed_login() {
    // No presenter keys configured at all: refused the same way, by OpenSSH too (an empty
    // list of methods once made OpenSSH fall back to a password prompt).
    let off = TestServer::start().await;
    let mut handle = unauthenticated(&off).await;
    assert!(!handle.authenticate_none("present").await.unwrap().success());
    openssh_is_denied_without_a_prompt(off.addr).await;
    // Configured, but this key is not listed.
    let listed = presenter_key();
    let server = start_with_presenter(&listed).await;
    let mut handle = unauthenticated(&server).await;
    assert!(!handle.authenticate_none("present").await.unwrap().success());
    let other = presenter_key();
    let auth = handle
        .authenticate_publickey("present", PrivateKeyWithHashAlg::new(Arc::new(other), None))
        .await
        .unwrap();
    assert!(!auth.success());
    // Everyone else still needs nothing.
    let conn = connect(server.addr, "presenter-fan").await;
    disconnect(conn).await;

    // The real OpenSSH client, with no key for it: permission denied, exit 255, no prompt.
    openssh_is_denied_without_a_prompt(server.addr).await;
}

/// `ssh present@` with no usable key: exit 255, "Permission denied (publickey)" (the only
/// method offered, so no password or keyboard-interactive prompt could follow).
async fn openssh_is_denied_without_a_prompt(addr: std::net::SocketAddr) {
    assert!(have("ssh"), "the OpenSSH client is needed");
    let mut args = vec![
        "-T".to_string(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "IdentityFile=/dev/null".into(),
    ];
    args.extend(ssh_args(addr, "present"));
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("ssh").args(&args).stdin(std::process::Stdio::null()).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied (publickey)"), "{out:?}");
}
