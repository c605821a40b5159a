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
pub const WAIT: Duration = Duration::from_secs(30);

/// The made-up bios in `tests/fixtures/`. Tests read these, never the owner's content.toml, so
/// editing the bio never breaks a test.
pub mod fixtures {
    /// Three short sections (`early`, `lighthouse`, `compilers`), no links.
    pub const SMALL: &str = include_str!("../fixtures/small.toml");
    /// Nine sections that scroll at every size (see [`super::top`] and [`super::end`]): the
    /// content of every test server unless a test picks another.
    pub const LONG: &str = include_str!("../fixtures/long.toml");
    /// Two sections and three links (https, http, mailto).
    pub const LINKS: &str = include_str!("../fixtures/links.toml");
    /// Wide CJK, emoji and combining accents.
    pub const UNICODE: &str = include_str!("../fixtures/unicode.toml");
    /// Every size at its limit.
    pub const MAX: &str = include_str!("../fixtures/max.toml");
    /// The name of each fixture's person, as text on small screens (block letters on large).
    pub const NAMES: [&str; 5] = ["Ada Quill", "Bartholomew", "Cyrus Pell", "Zoë Nakamura", "Maximilian"];
    /// The start of each fixture's headline: text under the block letters of the name.
    pub const HEADLINES: [&str; 5] =
        ["Lighthouse keeper", "Cartographer of", "Beekeeper and", "Typesetter of", "Headline quill"];
}

/// The long fixture's section titles, in order.
pub const LONG_TITLES: [&str; 9] = [
    "Childhood by the estuary",
    "Apprentice mapmaker",
    "The survey ship",
    "Harbour years",
    "Teaching",
    "The atlas",
    "Travels inland",
    "Retirement, briefly",
    "What comes next",
];

/// The long fixture's person.
pub const LONG_NAME: &str = "Bartholomew Fennimore-Oakes";

/// Text at the top of section `n` (1-based) of the long fixture, never in the navigation.
pub fn top(n: usize) -> String {
    format!("{} part 1.", LONG_TITLES[n - 1])
}

/// The last word of section `n` (1-based) of the long fixture: one word, so never wrapped.
pub fn end(n: usize) -> String {
    format!("Chapter-{n}-ends.")
}

/// A fixture, parsed.
pub fn fixture(text: &str) -> Content {
    sshbio::content::parse_str(text, Path::new("fixture.toml")).unwrap()
}

/// A fresh, empty temporary directory for this test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sshbio-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The long fixture: what every test server serves unless the test picks another.
pub fn long_content() -> Content {
    fixture(fixtures::LONG)
}

/// Polls `check` every 20 ms until it holds; fails naming `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the first line of `metrics`' text encoding that starts with `line_start`
/// (0 when absent).
pub fn metric(metrics: &sshbio::metrics::Metrics, line_start: &str) -> u64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until the metric line starting with `line_start` reads `value`.
pub async fn wait_metric(metrics: &sshbio::metrics::Metrics, line_start: &str, value: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(metrics, line_start) != value {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line_start} never reached {value}:\n{}",
            metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
            content: long_content(),
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

    /// A server with default settings serving `fixture` (one of [`fixtures`]).
    pub async fn serving(fixture_text: &str) -> Self {
        Self::start_with(Options { content: fixture(fixture_text), ..Options::default() }).await
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
#[allow(unused_imports)] // each test file uses a different subset
pub use screen::{SETTLE, Screen};

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
    // The name as text, or (when it is in block letters) the headline.
    let shown = |s: &str| fixtures::NAMES.iter().chain(&fixtures::HEADLINES).any(|text| s.contains(text));
    screen.wait_for("the first frame", shown).await;
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

/// A fresh directory whose content.toml is the long fixture, for [`Process::start`].
pub fn workdir(name: &str) -> PathBuf {
    workdir_with(name, fixtures::LONG)
}

/// A fresh directory whose content.toml is `fixture_text`.
pub fn workdir_with(name: &str, fixture_text: &str) -> PathBuf {
    let dir = temp_dir(&format!("cli-{name}"));
    std::fs::write(dir.join("content.toml"), fixture_text).unwrap();
    dir
}

/// Logs in as `present` with `key` (listed in the server's presenter keys).
pub async fn connect_presenter(server: &TestServer, key: &russh::keys::PrivateKey) -> Conn {
    let server_key = Arc::new(Mutex::new(None));
    let handler = ClientHandler { server_key: server_key.clone() };
    let mut handle =
        client::connect(Arc::new(client::Config::default()), server.addr, handler).await.unwrap();
    let auth = handle
        .authenticate_publickey(
            "present",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
        )
        .await
        .unwrap();
    assert!(auth.success(), "the listed key logs in as the presenter");
    Conn { handle, server_key }
}

/// `GET path` over plain HTTP/1.1 (the metrics and page listeners): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The real OpenSSH client's options for these tests, plus `extra`, then the command.
pub fn openssh<A: AsRef<std::ffi::OsStr>>(
    server: &TestServer,
    user: &str,
    extra: &[A],
    command: &[&str],
) -> tokio::process::Command {
    assert!(have("ssh"), "the OpenSSH client is needed; .ci/run installs it");
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(extra).args(ssh_args(server.addr, user)).args(command).stdin(std::process::Stdio::null());
    cmd
}

/// Runs `cmd` to its end (within [`WAIT`]).
pub async fn output(mut cmd: tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(WAIT, cmd.output()).await.expect("finished in time").unwrap()
}
