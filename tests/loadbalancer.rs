//! The path an operator runs: a TCP load balancer (a real HAProxy, round-robin, PROXY protocol
//! v2) in front of two sshbio replicas that share one room through a real redis-server.
//! Clients connect only through HAProxy, each from its own loopback address, and the test
//! looks at what visitors see, what each replica logs and what its `/metrics` says while a
//! presenter leads, Redis restarts and one replica is stopped with SIGTERM.
//!
//! Needs `haproxy` and `redis-server` (Debian packages; `.ci/run` installs both). Everything
//! listens on 127.0.0.1 ports picked at run time; clients use 127.0.0.101 and up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ClientHandler, Conn, Screen, WAIT, free_port, have, plain_shell, temp_dir};
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

const FIXTURE: &str = "tests/fixtures/lb-person.toml";
const NAME: &str = "Marta Quillfeather";
/// On screen at 80x24 the name is in block letters; the headline is text.
const HEADLINE: &str = "Keeper of lamps and routers";
/// One word from each section of the fixture, in order: pressing `1`..`4` shows it.
const SECTION_WORDS: [&str; 4] = ["Skerrow", "Semaphore", "telegraph", "canal"];
/// How long a replica takes to notice Redis is back: its reconnect backoff grows while
/// Redis is away, so this is longer than the usual wait.
const REDIS_WAIT: Duration = Duration::from_secs(30);

fn require(program: &str, package: &str) {
    assert!(
        have(program),
        "{program} is needed for the load balancer test: apt-get install {package} (.ci/run installs it)"
    );
}

/// Polls `check` every 50 ms until it returns true; panics with `what` after `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- redis-server ----

struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        require("redis-server", "redis-server");
        let mut redis = Self { child: None, port: free_port() };
        redis.restart();
        redis
    }

    /// Starts (again) on the same port, without persistence: the room is pub/sub only.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- sshbio replicas ----

/// One sshbio process behind the load balancer, logging JSON lines.
struct Replica {
    name: &'static str,
    /// Behind a lock so the test can wait for its exit through a shared reference.
    child: Mutex<Child>,
    ssh: SocketAddr,
    metrics: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Replica {
    fn start(name: &'static str, dir: &Path, redis: &str, presenter_keys: &Path) -> Self {
        let ssh: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = Command::new(common::BIN)
            .args(["serve", "--listen", &ssh.to_string(), "--metrics-listen", &metrics.to_string()])
            .arg("--content")
            .arg(dir.join("content.toml"))
            .arg("--keys")
            .arg(dir.join("keys"))
            .args(["--redis", redis, "--trusted-proxies", "127.0.0.1/32", "--presenter-keys"])
            .arg(presenter_keys)
            .args(["--log-format", "json", "--drain-timeout", "2"])
            .env_remove("SSHBIO_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Self { name, child: Mutex::new(child), ssh, metrics, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `/readyz` answers 200 (what the load balancer's health check asks).
    async fn wait_ready(&self) {
        eventually(&format!("replica {} ready; log:\n{}", self.name, self.log()), WAIT, || async {
            http_get(self.metrics, "/readyz").await.is_some_and(|(status, _)| status == 200)
        })
        .await;
    }

    async fn metrics(&self) -> String {
        match http_get(self.metrics, "/metrics").await {
            Some((200, body)) => body,
            other => panic!("replica {}: /metrics answered {other:?}", self.name),
        }
    }

    /// The value of one sample (`name{labels}` exactly as exposed), 0 if absent.
    async fn sample(&self, sample: &str) -> f64 {
        sample_value(&self.metrics().await, sample)
    }

    /// Sessions of every kind started so far.
    async fn sessions_started(&self) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("sshbio_sessions_started_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.lock().unwrap().id();
        Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    }

    /// The client addresses in `field` of JSON log lines whose message is `message`.
    fn logged_peers(&self, message: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .filter_map(|v| v["fields"]["peer"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sample_value(text: &str, sample: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse::<f64>().ok()).unwrap_or(0.0)
}

/// A minimal HTTP/1.1 GET over loopback: `(status, body)`, or None if nothing answered.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: sshbio\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    };
    timeout(WAIT, exchange).await.ok().flatten()
}

// ---- HAProxy ----

struct Haproxy {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Haproxy {
    /// TCP mode, round-robin, PROXY protocol v2 to each replica, health checks on `/readyz`
    /// (a draining replica answers 503 and gets no new connections), and a retry on another
    /// replica when a connect is refused.
    fn start(dir: &Path, replicas: &[&Replica]) -> Self {
        require("haproxy", "haproxy");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let servers: String = replicas
            .iter()
            .map(|r| format!("    server {} {} check port {}\n", r.name, r.ssh, r.metrics.port()))
            .collect();
        let config = format!(
            "global\n    maxconn 256\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 2m\n    timeout server 2m\n    \
             timeout check 2s\n    retries 3\n    option redispatch 1\n\n\
             frontend ssh\n    bind {addr}\n    default_backend sshbio\n\n\
             backend sshbio\n    balance roundrobin\n    option httpchk GET /readyz\n    \
             default-server inter 200ms fall 2 rise 1 send-proxy-v2\n{servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, &config).unwrap();
        let check = Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().unwrap();
        assert!(
            check.status.success(),
            "haproxy -c rejected the config:\n{config}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
            .spawn()
            .unwrap();
        Self { child, addr, dir: dir.to_path_buf() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- clients, each from its own loopback address ----

/// A TCP connection to the load balancer from `source`.
async fn dial(lb: SocketAddr, source: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
    timeout(WAIT, socket.connect(lb)).await.expect("connect to haproxy in time").unwrap()
}

async fn ssh_over(stream: TcpStream) -> client::Handle<ClientHandler> {
    let handler = ClientHandler { server_key: Arc::new(Mutex::new(None)) };
    timeout(WAIT, client::connect_stream(Arc::new(client::Config::default()), stream, handler))
        .await
        .expect("SSH handshake through haproxy in time")
        .unwrap()
}

async fn visitor(lb: SocketAddr, source: Ipv4Addr) -> Conn {
    let mut handle = ssh_over(dial(lb, source).await).await;
    assert!(handle.authenticate_none("visitor").await.unwrap().success());
    Conn { handle, server_key: Arc::new(Mutex::new(None)) }
}

async fn presenter(lb: SocketAddr, source: Ipv4Addr, key: PrivateKey) -> Conn {
    let mut handle = ssh_over(dial(lb, source).await).await;
    let auth = handle
        .authenticate_publickey("present", PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(auth.success(), "presenter key accepted");
    Conn { handle, server_key: Arc::new(Mutex::new(None)) }
}

/// The interactive UI at 80x24; waits for the fixture's name on the first frame.
async fn open_tui(conn: &Conn) -> Screen {
    let channel = conn.handle.channel_open_session().await.unwrap();
    channel.request_pty(true, "xterm-256color", 80, 24, 0, 0, &[]).await.unwrap();
    channel.request_shell(true).await.unwrap();
    let mut screen = Screen::new(channel, 80, 24);
    screen.wait_for_text(HEADLINE).await;
    screen
}

/// True when the screen shows the audience count `n` ("6 here", not "16 here").
fn shows_here(text: &str, n: usize) -> bool {
    let needle = format!("{n} here");
    text.match_indices(&needle).any(|(i, _)| i == 0 || !text.as_bytes()[i - 1].is_ascii_digit())
}

fn source(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 100 + n)
}

/// Which replica (index) served the session just opened: the one whose started-sessions count
/// went up by one.
async fn home_of_last(replicas: &[&Replica], before: &mut Vec<f64>) -> usize {
    let mut now = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        now.clear();
        for r in replicas {
            now.push(r.sessions_started().await);
        }
        let total: f64 = now.iter().sum::<f64>() - before.iter().sum::<f64>();
        if total >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no replica counted the new session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let home = (0..replicas.len()).find(|&i| now[i] > before[i]).unwrap();
    assert_eq!(now.iter().sum::<f64>() - before.iter().sum::<f64>(), 1.0, "exactly one new session");
    *before = now;
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_with_proxy_protocol_in_front_of_two_replicas_sharing_a_room() {
    require("haproxy", "haproxy");
    let mut redis = Redis::start();
    let dir = temp_dir("loadbalancer");
    std::fs::copy(FIXTURE, dir.join("content.toml")).unwrap();
    // One host key for both replicas, as the deploy recipes hand them one.
    let keygen =
        Command::new(common::BIN).arg("keygen").arg("--keys").arg(dir.join("keys")).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
    let keys_file = dir.join("presenters");
    std::fs::write(&keys_file, format!("{}\n", key.public_key().to_openssh().unwrap())).unwrap();

    let a = Replica::start("a", &dir, &redis.url(), &keys_file);
    let b = Replica::start("b", &dir, &redis.url(), &keys_file);
    a.wait_ready().await;
    b.wait_ready().await;
    for r in [&a, &b] {
        eventually(&format!("replica {} connected to redis", r.name), WAIT, || async {
            r.sample("sshbio_redis_connected").await == 1.0
        })
        .await;
    }
    let replicas = [&a, &b];
    let lb = Haproxy::start(&dir, &replicas);
    // A probe reaches a replica as a PROXY header and then nothing: one handshake failure.
    eventually(&format!("haproxy listening; log:\n{}", lb.log()), WAIT, || async {
        TcpStream::connect(lb.addr).await.is_ok()
    })
    .await;

    // ---- every client gets the UI or the text, through the load balancer ----
    let mut started = vec![0.0, 0.0];
    let presenter_conn = presenter(lb.addr, source(1), key).await;
    let mut stage = open_tui(&presenter_conn).await;
    let stage_home = home_of_last(&replicas, &mut started).await;
    let mut conns = Vec::new();
    let mut screens = Vec::new();
    let mut homes = Vec::new();
    for n in 2..=6 {
        let conn = visitor(lb.addr, source(n)).await;
        screens.push(open_tui(&conn).await);
        homes.push(home_of_last(&replicas, &mut started).await);
        conns.push((n, conn));
    }
    let mut plain_homes = Vec::new();
    for n in 7..=8 {
        let conn = visitor(lb.addr, source(n)).await;
        let text = plain_shell(&conn).await;
        let text = String::from_utf8_lossy(&text.raw).into_owned();
        assert!(text.contains(NAME), "plain text from client {n}:\n{text}");
        for word in SECTION_WORDS {
            assert!(text.contains(word), "plain text from client {n} lacks {word}:\n{text}");
        }
        plain_homes.push((n, home_of_last(&replicas, &mut started).await));
        common::disconnect(conn).await;
    }
    let other = 1 - stage_home;
    assert!(
        homes.contains(&stage_home) && homes.contains(&other),
        "round-robin put followers on both replicas (presenter on {stage_home}, visitors on {homes:?})"
    );
    // Room gauges are sampled once per audience tick.
    eventually("sshbio_presenter_connected 1 on the presenter's replica only", WAIT, || async {
        replicas[stage_home].sample("sshbio_presenter_connected").await == 1.0
            && replicas[other].sample("sshbio_presenter_connected").await == 0.0
    })
    .await;

    // ---- the audience count is the total across replicas ----
    stage
        .wait_for("6 here · 5 following on the presenter's screen", |s| s.contains("6 here · 5 following"))
        .await;
    for screen in &mut screens {
        screen.wait_for("6 here on a visitor's screen", |s| shows_here(s, 6)).await;
    }
    for r in replicas {
        eventually(&format!("replica {} counts the room", r.name), WAIT, || async {
            r.sample("sshbio_room_visitors").await == 6.0
        })
        .await;
    }
    eventually("sshbio_followers summed over replicas = 5", WAIT, || async {
        a.sample("sshbio_followers").await + b.sample("sshbio_followers").await == 5.0
    })
    .await;

    // ---- a presenter on one replica leads followers on both ----
    stage.press(b"3", SECTION_WORDS[2]).await;
    for screen in &mut screens {
        screen.wait_for_text(SECTION_WORDS[2]).await;
    }

    // ---- Redis restarts mid-talk: the replicas reconnect and the room comes back together ----
    redis.kill();
    for r in replicas {
        eventually(&format!("replica {} sees redis gone", r.name), WAIT, || async {
            r.sample("sshbio_redis_connected").await == 0.0
        })
        .await;
    }
    // The presenter moves while Redis is away: only followers on the same replica can see it.
    stage.press(b"2", SECTION_WORDS[1]).await;
    for (screen, _) in screens.iter_mut().zip(&homes).filter(|(_, h)| **h == stage_home) {
        screen.wait_for_text(SECTION_WORDS[1]).await;
    }
    redis.restart();
    for r in replicas {
        eventually(&format!("replica {} reconnected to redis", r.name), REDIS_WAIT, || async {
            r.sample("sshbio_redis_connected").await == 1.0
        })
        .await;
    }
    // Followers elsewhere catch up with where the presenter is now, without another move.
    for screen in &mut screens {
        screen.wait_for_text(SECTION_WORDS[1]).await;
    }
    stage.wait_for("the whole room counted again", |s| s.contains("6 here · 5 following")).await;
    for screen in &mut screens {
        screen.wait_for("6 here again", |s| shows_here(s, 6)).await;
    }

    // ---- SIGTERM to the replica without the presenter: it drains, the other keeps serving ----
    let (stopping, staying) = (replicas[other], replicas[stage_home]);
    stopping.signal("TERM");
    let mut drained = 0;
    let mut kept = Vec::new();
    for ((screen, home), (n, _)) in screens.iter_mut().zip(&homes).zip(&conns) {
        if *home == other {
            screen.wait_for_text("restarting").await;
            screen.wait_close().await;
            drained += 1;
        } else {
            kept.push(*n);
        }
    }
    assert!(drained > 0);
    eventually("the stopping replica's SSH port closed", WAIT, || async {
        std::net::TcpStream::connect(stopping.ssh).is_err()
    })
    .await;
    let staying_before = staying.sessions_started().await;
    let mut late = Vec::new();
    for n in 9..=11 {
        let conn = visitor(lb.addr, source(n)).await;
        let screen = open_tui(&conn).await;
        late.push((n, conn, screen));
    }
    assert_eq!(
        staying.sessions_started().await - staying_before,
        3.0,
        "every new connection went to the staying replica"
    );
    let in_room = 1 + kept.len() + late.len();
    stage
        .wait_for("the count without the stopped replica", |s| {
            s.contains(&format!("{in_room} here · {} following", in_room - 1))
        })
        .await;
    eventually("the stopping replica to exit after its drain", WAIT, || async {
        stopping.child.lock().unwrap().try_wait().unwrap().is_some()
    })
    .await;
    let status = stopping.child.lock().unwrap().try_wait().unwrap().unwrap();
    assert!(status.success(), "drained replica exit status {status}; log:\n{}", stopping.log());

    // The presenter still leads everyone left, old and new.
    stage.press(b"4", SECTION_WORDS[3]).await;
    for (screen, home) in screens.iter_mut().zip(&homes) {
        if *home == stage_home {
            screen.wait_for_text(SECTION_WORDS[3]).await;
        }
    }
    for (_, _, screen) in &mut late {
        screen.wait_for_text(SECTION_WORDS[3]).await;
    }

    // ---- each replica logged each client's own address (from the PROXY header) ----
    stage.send(b"q").await;
    stage.wait_close().await;
    for (screen, home) in screens.iter_mut().zip(&homes) {
        if *home == stage_home {
            screen.send(b"q").await;
            screen.wait_close().await;
        }
    }
    for (_, _, screen) in &mut late {
        screen.send(b"q").await;
        screen.wait_close().await;
    }
    // A session's log line is written when its connection ends.
    for (_, conn, _) in late {
        common::disconnect(conn).await;
    }
    for (_, conn) in conns {
        common::disconnect(conn).await;
    }
    common::disconnect(presenter_conn).await;
    let expect_on = |replica: usize| -> Vec<u8> {
        let mut clients: Vec<u8> =
            homes.iter().zip(2..).filter(|(h, _)| **h == replica).map(|(_, n)| n).collect();
        clients.extend(plain_homes.iter().filter(|(_, h)| *h == replica).map(|(n, _)| *n));
        if replica == stage_home {
            clients.push(1);
            clients.extend(9..=11);
        }
        clients
    };
    for (i, r) in replicas.iter().enumerate() {
        let clients = expect_on(i);
        eventually(&format!("replica {} logged its sessions; log:\n{}", r.name, r.log()), WAIT, || async {
            let peers = r.logged_peers("session ended");
            clients.iter().all(|n| peers.iter().any(|p| p.starts_with(&format!("{}:", source(*n)))))
        })
        .await;
        let peers = r.logged_peers("session ended");
        assert!(
            peers.iter().all(|p| !p.starts_with("127.0.0.1:")),
            "replica {} logged the proxy's address instead of a client's: {peers:?}",
            r.name
        );
    }
    let presenter_peers = staying.logged_peers("presenter authenticated");
    assert!(
        presenter_peers.iter().any(|p| p.starts_with(&format!("{}:", source(1)))),
        "presenter's own address logged: {presenter_peers:?}"
    );
}
