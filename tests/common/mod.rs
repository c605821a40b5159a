//! Test harness: an in-process server on 127.0.0.1:0 and a russh client whose received bytes
//! go through a vt100 terminal emulator, so tests read the screen the way a visitor would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::Disconnect;
use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use sshbio::content::Content;
use sshbio::server::{self, Limits, ServerConfig};
use sshbio::ssh::{Settings, hostkey};
use tokio::sync::{oneshot, watch};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const SHIPPED: &str = include_str!("../../content.toml");

/// A fresh, empty temporary directory for this test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sshbio-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn shipped_content() -> Content {
    sshbio::content::parse_str(SHIPPED, Path::new("content.toml")).unwrap()
}

/// The shipped bio plus two links, for tests of the links page and OSC 8.
pub fn content_with_links() -> Content {
    let mut c = shipped_content();
    c.links
        .push(sshbio::content::Link { label: "Example site".into(), url: "https://example.com/liz".into() });
    c.links.push(sshbio::content::Link { label: "Mail".into(), url: "mailto:someone@example.com".into() });
    c
}

/// A running server on a loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub content: watch::Sender<Arc<Content>>,
    pub fingerprint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Options {
    pub content: Content,
    pub settings: Settings,
    pub limits: Limits,
    pub keys: Option<PathBuf>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics: Arc<sshbio::metrics::Metrics>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            content: shipped_content(),
            settings: Settings::default(),
            limits: Limits::default(),
            keys: None,
            trusted_proxies: Vec::new(),
            metrics: Arc::new(sshbio::metrics::Metrics::new()),
        }
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let keys = options.keys.unwrap_or_else(|| temp_dir(&format!("keys-{}", rand_suffix())));
        let key = hostkey::load_or_create(&keys).unwrap();
        let fingerprint = key.fingerprint();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (content_tx, content_rx) = watch::channel(Arc::new(options.content));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let config = ServerConfig {
            host_key: key,
            content: content_rx,
            settings: options.settings,
            limits: options.limits,
            trusted_proxies: sshbio::server::proxy::Trusted(options.trusted_proxies),
            metrics: options.metrics,
            room: sshbio::room::Room::new(),
        };
        let task = tokio::spawn(server::run(listener, config, async move {
            let _ = stop_rx.await;
        }));
        Self { addr, content: content_tx, fingerprint, stop: Some(stop_tx), task: Some(task) }
    }

    /// Stops the server as SIGTERM would and waits for it to finish draining.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task).await.expect("server drained in time").unwrap().unwrap();
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Records the host key the server presented.
pub struct ClientHandler {
    pub server_key: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = key {
            *self.server_key.lock().unwrap() = Some(key.clone());
        }
        Ok(true)
    }
}

/// An authenticated russh client connection.
pub struct Conn {
    pub handle: client::Handle<ClientHandler>,
    pub server_key: Arc<Mutex<Option<PublicKey>>>,
}

pub async fn connect(addr: SocketAddr, user: &str) -> Conn {
    try_connect(addr, user).await.expect("connect")
}

pub async fn try_connect(addr: SocketAddr, user: &str) -> Result<Conn, russh::Error> {
    let server_key = Arc::new(Mutex::new(None));
    let handler = ClientHandler { server_key: server_key.clone() };
    let config = Arc::new(client::Config::default());
    let mut handle = tokio::time::timeout(WAIT, client::connect(config, addr, handler))
        .await
        .map_err(|_| russh::Error::ConnectionTimeout)??;
    let auth = handle.authenticate_none(user).await?;
    assert!(auth.success(), "anonymous auth accepted");
    Ok(Conn { handle, server_key })
}

#[path = "../support/screen.rs"]
mod screen;
pub use screen::Screen;

/// Opens the TUI: pty (TERM, size), env requests, shell. Waits for the first frame.
pub async fn open_tui(conn: &Conn, term: &str, cols: u16, rows: u16, env: &[(&str, &str)]) -> Screen {
    let channel = conn.handle.channel_open_session().await.unwrap();
    channel.request_pty(true, term, u32::from(cols), u32::from(rows), 0, 0, &[]).await.unwrap();
    for (k, v) in env {
        channel.set_env(true, *k, *v).await.unwrap();
    }
    channel.request_shell(true).await.unwrap();
    let (cols, rows) = (if cols == 0 { 80 } else { cols }, if rows == 0 { 24 } else { rows });
    let mut screen = Screen::new(channel, cols.min(500), rows.min(200));
    screen.wait_for("the first frame", |s| s.contains("Liz Rice")).await;
    screen
}

/// Runs `ssh host COMMAND` without a pty and returns everything it produced.
pub async fn exec(conn: &Conn, command: &str) -> Screen {
    let channel = conn.handle.channel_open_session().await.unwrap();
    channel.exec(true, command).await.unwrap();
    let mut screen = Screen::new(channel, 200, 100);
    screen.wait_close().await;
    screen
}

/// A shell without a pty (`ssh -T`).
pub async fn plain_shell(conn: &Conn) -> Screen {
    let channel = conn.handle.channel_open_session().await.unwrap();
    channel.request_shell(true).await.unwrap();
    let mut screen = Screen::new(channel, 200, 100);
    screen.wait_close().await;
    screen
}

pub async fn disconnect(conn: Conn) {
    let _ = conn.handle.disconnect(Disconnect::ByApplication, "bye", "en").await;
}

/// The real OpenSSH client's common options for tests: no known_hosts, no prompts.
pub fn ssh_args(addr: SocketAddr, user: &str) -> Vec<String> {
    vec![
        "-p".into(),
        addr.port().to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-F".into(),
        "/dev/null".into(),
        format!("{user}@127.0.0.1"),
    ]
}

// ---- The real binary, as a separate process ----

#[path = "../support/process.rs"]
mod process;
#[allow(unused_imports)] // each test file uses a different subset
pub use process::{BIN, Process, free_port, have, sshbio};

pub fn workdir(name: &str) -> PathBuf {
    let dir = temp_dir(&format!("cli-{name}"));
    std::fs::write(dir.join("content.toml"), SHIPPED).unwrap();
    dir
}
