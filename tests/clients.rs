//! Compatibility with the SSH clients people actually use: PuTTY's plink, Dropbear's dbclient,
//! paramiko, asyncssh, libssh (ssh-python), curl with libssh2, OpenSSH restricted to the
//! last-resort crypto and sharing one connection (ControlMaster), and the russh client trying
//! every login method. `.ci/run` installs the clients. Content is the small fixture bio.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

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
        // Nothing is left to try that could prompt (presenting is off here: nothing at all).
        client::KeyboardInteractiveAuthResponse::Failure { remaining_methods, .. } => {
            assert!(remaining_methods.is_empty(), "{remaining_methods:?}")
        }
        other => panic!("present without a key got in: {other:?}"),
    }
}
