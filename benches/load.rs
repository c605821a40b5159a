//! Load generator for sshbio (issue 6). Spawns the real server binary on a loopback port (or
//! drives an already running SSH server, e.g. OpenSSH sshd for the baseline), connects with
//! the russh client, reads every byte through a vt100 emulator and prints:
//!
//! 1. `first`: first-frame latency (TCP connect -> a complete first screen) over sequential sessions;
//! 2. `rate`:  full sessions per second at 1/8/32 in parallel, with server CPU per session;
//! 3. `idle`:  server RSS/PSS per idle 80x24 session at 1 000 and 10 000 open sessions, idle CPU
//!    and idle bytes over a quiet window, and whether any session was dropped;
//! 4. `keys`:  keystroke -> first byte of the redraw, and bytes per one-line scroll;
//! 5. `ssh`:   the first frame as the real OpenSSH client sees it (`ssh -tt` under `script`);
//! 6. `presenter`: follow mode. A presenter (`present@` with an Ed25519 key listed in
//!    `--presenter-keys`) presses section keys; times each key -> every follower's screen
//!    showing the new section.
//!
//! Usage: `cargo bench --bench load -- [--quick] [--parts first,rate,idle,keys,ssh,presenter] [...]`;
//! `--help` lists every option. Loopback only; every wait is bounded; it stops by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelMsg, Disconnect, client};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

/// Longest any single step of a session may take.
const STEP: Duration = Duration::from_secs(15);
/// What the first complete screen contains: the bio's name and the footer's last hint.
const NAME: &str = "Liz Rice";
const FOOTER: &str = "quit";

#[derive(Parser, Debug, Clone)]
#[command(name = "load", about = "sshbio load generator (cargo bench --bench load -- [options])")]
struct Opts {
    /// Which parts to run, comma separated: first, rate, idle, keys, ssh, presenter.
    #[arg(long, value_delimiter = ',', default_value = "first,rate,idle,keys,ssh,presenter")]
    parts: Vec<String>,
    /// Small counts everywhere (about a minute); explicit count options still win.
    #[arg(long)]
    quick: bool,
    /// Sequential sessions for the first-frame latency.
    #[arg(long)]
    first: Option<usize>,
    /// Parallelism levels for the session-rate part.
    #[arg(long, value_delimiter = ',')]
    parallel: Option<Vec<usize>>,
    /// Seconds each parallelism level runs.
    #[arg(long)]
    rate_secs: Option<f64>,
    /// Most sessions per parallelism level.
    #[arg(long)]
    rate_max: Option<usize>,
    /// Open idle sessions to hold, one level after the other.
    #[arg(long, value_delimiter = ',')]
    idle: Option<Vec<usize>>,
    /// Seconds of the quiet window in which idle CPU and bytes are measured.
    #[arg(long)]
    idle_window: Option<f64>,
    /// Keep one server for every idle level (default: a fresh server per level); with
    /// `--idle 1000,1000` this shows whether closed sessions' memory is reused.
    #[arg(long)]
    idle_reuse: bool,
    /// After the quiet window, a longer window (seconds; 0 = none) that covers a whole
    /// keepalive interval, to measure what keepalives cost per session.
    #[arg(long)]
    idle_long: Option<f64>,
    /// While the idle sessions are held: more visitors arrive at this rate (sessions per second)
    /// for --idle-churn-secs and stay until it ends, as at a talk, so the audience count changes
    /// every tick; shows what the idle sessions receive and cost meanwhile. 0 = skip.
    #[arg(long)]
    idle_churn: Option<f64>,
    /// Seconds of churn (see --idle-churn).
    #[arg(long, default_value_t = 8.0)]
    idle_churn_secs: f64,
    /// Seconds between the last idle session opening and the memory reading.
    #[arg(long, default_value_t = 5.0)]
    idle_settle: f64,
    /// Sessions being set up at once while opening the idle sessions.
    #[arg(long, default_value_t = 32)]
    idle_concurrency: usize,
    /// Keystrokes (alternating j/k) for the keystroke latency.
    #[arg(long)]
    keys: Option<usize>,
    /// Terminal size for the keystroke part, COLSxROWS (small, so the section scrolls).
    #[arg(long, default_value = "60x14")]
    keys_size: String,
    /// Runs of the real OpenSSH client.
    #[arg(long)]
    ssh: Option<usize>,
    /// How the OpenSSH client gets its terminal: `script` (a real 80x24 pty) or `pipe`
    /// (`ssh -tt` with pipes; the server sees a 0x0 pty).
    #[arg(long, value_delimiter = ',', default_value = "script,pipe")]
    ssh_via: Vec<String>,
    /// Followers (80x24 visitors) in the presenter part.
    #[arg(long)]
    followers: Option<usize>,
    /// Section-key presses of the presenter while the followers are active (a press every
    /// --press-gap seconds).
    #[arg(long)]
    presses: Option<usize>,
    /// Seconds between the presenter's presses (after every follower showed the last one).
    #[arg(long, default_value_t = 0.25)]
    press_gap: f64,
    /// Further presses, each after --hibernated-gap seconds of quiet, when every screen has
    /// freed its buffers (sshbio hibernates a screen after 3 s): the usual case in a talk.
    #[arg(long)]
    presses_hibernated: Option<usize>,
    /// Seconds of quiet before each of the --presses-hibernated presses.
    #[arg(long, default_value_t = 4.0)]
    hibernated_gap: f64,
    /// Drive an already running server at this address instead of spawning sshbio.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// With --target: the pid of the server's main process (its whole process tree is measured).
    #[arg(long)]
    server_pid: Option<u32>,
    /// SSH user name the clients log in as.
    #[arg(long, default_value = "bench")]
    user: String,
    /// Content file for the spawned server.
    #[arg(long)]
    content: Option<PathBuf>,
    /// Extra arguments for the spawned server (one string, split on spaces).
    #[arg(long, allow_hyphen_values = true)]
    server_args: Option<String>,
    /// The server binary to spawn (default: the one cargo built with this bench).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Environment for the spawned server, NAME=VALUE (repeatable), e.g.
    /// MALLOC_MMAP_THRESHOLD_=65536.
    #[arg(long)]
    server_env: Vec<String>,
    /// Run the spawned server under this command (e.g. "valgrind --tool=massif").
    #[arg(long, allow_hyphen_values = true)]
    server_wrapper: Option<String>,
    /// Client key-exchange preference, comma separated (default: russh's, mlkem768x25519 first).
    #[arg(long)]
    kex: Option<String>,
    /// Client cipher preference, comma separated (default: russh's, chacha20-poly1305 first).
    #[arg(long)]
    cipher: Option<String>,
    /// Label for this run in the summary and JSON.
    #[arg(long, default_value = "sshbio")]
    label: String,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the raw bytes of the first 80x24 frame here.
    #[arg(long)]
    dump_frame: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Opts {
    fn has(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part || p == "all")
    }
    fn first_n(&self) -> usize {
        self.first.unwrap_or(if self.quick { 100 } else { 400 })
    }
    fn parallel_levels(&self) -> Vec<usize> {
        self.parallel.clone().unwrap_or_else(|| vec![1, 8, 32])
    }
    fn rate_secs(&self) -> f64 {
        self.rate_secs.unwrap_or(if self.quick { 2.0 } else { 6.0 })
    }
    fn rate_max(&self) -> usize {
        self.rate_max.unwrap_or(if self.quick { 1_000 } else { 5_000 })
    }
    fn idle_levels(&self) -> Vec<usize> {
        self.idle.clone().unwrap_or_else(|| if self.quick { vec![1_000] } else { vec![1_000, 10_000] })
    }
    fn idle_window(&self) -> f64 {
        self.idle_window.unwrap_or(if self.quick { 5.0 } else { 8.0 })
    }
    fn idle_churn(&self) -> f64 {
        self.idle_churn.unwrap_or(if self.quick { 0.0 } else { 2.0 })
    }
    fn idle_long(&self) -> f64 {
        self.idle_long.unwrap_or(if self.quick { 0.0 } else { 16.0 })
    }
    fn keys_n(&self) -> usize {
        self.keys.unwrap_or(if self.quick { 100 } else { 400 })
    }
    fn ssh_n(&self) -> usize {
        self.ssh.unwrap_or(if self.quick { 10 } else { 40 })
    }
    fn followers_n(&self) -> usize {
        self.followers.unwrap_or(50)
    }
    fn presses_n(&self) -> usize {
        self.presses.unwrap_or(if self.quick { 10 } else { 30 })
    }
    fn presses_hibernated_n(&self) -> usize {
        self.presses_hibernated.unwrap_or(if self.quick { 2 } else { 5 })
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[derive(Debug, Clone, Default)]
struct Dist {
    sorted: Vec<f64>,
}

impl Dist {
    fn new(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self { sorted: values }
    }
    fn p(&self, p: f64) -> f64 {
        percentile(&self.sorted, p)
    }
    fn mean(&self) -> f64 {
        self.sorted.iter().sum::<f64>() / self.sorted.len().max(1) as f64
    }
    fn json(&self) -> Value {
        json!({
            "n": self.sorted.len(),
            "p50": self.p(0.5), "p90": self.p(0.9), "p99": self.p(0.99),
            "min": self.sorted.first(), "max": self.sorted.last(), "mean": self.mean(),
        })
    }
    fn line(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  min {:.3}  max {:.3}  (n={})",
            self.p(0.5),
            self.p(0.9),
            self.p(0.99),
            self.sorted.first().copied().unwrap_or(f64::NAN),
            self.sorted.last().copied().unwrap_or(f64::NAN),
            self.sorted.len()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU and memory of the server (one process, or a whole tree for sshd)

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields after the command name in /proc/PID/stat (index 0 is the state, field 3).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// utime + stime + cutime + cstime of one process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid).map(|f| (11..=14).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum()).unwrap_or(0)
}

/// Run time of every live thread of one process, in nanoseconds (finer than ticks).
fn cpu_ns_threads(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `pid` and all its descendants.
fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.filter_map(|e| e.ok()) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// Rss and Pss in KiB from smaps_rollup, summed over `pids`.
fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut pss = 0;
    for pid in pids {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else { continue };
        for line in s.lines() {
            let mut it = line.split_whitespace();
            let key = it.next().unwrap_or("");
            let value: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match key {
                "Rss:" => rss += value,
                "Pss:" => pss += value,
                _ => {}
            }
        }
    }
    (rss, pss)
}

/// A point-in-time reading of the server's resource use.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// All CPU including reaped children, seconds (tick resolution).
    cpu_s: f64,
    /// CPU of live threads in the tree, seconds (ns resolution).
    cpu_live_s: f64,
    rss_kib: u64,
    pss_kib: u64,
    processes: usize,
}

fn usage(root: u32, tck: f64) -> Usage {
    let pids = process_tree(root);
    let ticks: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let ns: u64 = pids.iter().map(|p| cpu_ns_threads(*p)).sum();
    let (rss_kib, pss_kib) = memory_kib(&pids);
    Usage { cpu_s: ticks as f64 / tck, cpu_live_s: ns as f64 / 1e9, rss_kib, pss_kib, processes: pids.len() }
}

fn self_cpu_s(tck: f64) -> f64 {
    stat_fields(std::process::id())
        .map(|f| (11..=12).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum::<u64>() as f64 / tck)
        .unwrap_or(0.0)
}

/// The 1/5/15-minute load averages: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn nofile_limit(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Raises RLIMIT_NOFILE of `pid` to at least `want` with util-linux `prlimit` (we may be root).
fn raise_nofile(pid: u32, want: u64) {
    if nofile_limit(pid).is_some_and(|l| l >= want) {
        return;
    }
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={want}:{want}")])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!(
            "warning: could not raise the open-file limit of {pid} to {want}; run under `ulimit -n {want}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test

struct Server {
    addr: SocketAddr,
    pid: u32,
    child: Option<Child>,
    keys: Option<PathBuf>,
    log: Option<PathBuf>,
}

impl Server {
    fn spawn(opts: &Opts) -> Result<Self> {
        Self::spawn_with(opts, &[])
    }

    /// Like [`Server::spawn`], with more server arguments after --server-args.
    fn spawn_with(opts: &Opts, more_args: &[String]) -> Result<Self> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let dir = std::env::temp_dir().join(format!("sshbio-load-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let keys = dir.join("keys");
        let log = dir.join("server.log");
        let content = opts
            .content
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content.toml"));
        let mut argv: Vec<String> = Vec::new();
        if let Some(w) = &opts.server_wrapper {
            argv.extend(w.split_whitespace().map(str::to_string));
        }
        argv.push(match &opts.server_bin {
            Some(bin) => bin.to_string_lossy().into_owned(),
            None => env!("CARGO_BIN_EXE_sshbio").into(),
        });
        for a in [
            "--listen",
            &addr.to_string(),
            "--keys",
            &keys.to_string_lossy(),
            "--content",
            &content.to_string_lossy(),
            "--max-connections",
            "20000",
            "--max-per-ip",
            "20000",
            "--burst-per-ip",
            "100000",
            "--rate-per-ip",
            "100000",
        ] {
            argv.push(a.to_string());
        }
        if let Some(extra) = &opts.server_args {
            argv.extend(extra.split_whitespace().map(str::to_string));
        }
        argv.extend(more_args.iter().cloned());
        let logfile = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(logfile.try_clone()?).stderr(logfile);
        for (k, _) in std::env::vars() {
            if k.starts_with("SSHBIO_") {
                cmd.env_remove(k);
            }
        }
        for kv in &opts.server_env {
            let (k, v) = kv.split_once('=').context("--server-env NAME=VALUE")?;
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("spawning {argv:?}"))?;
        let pid = child.id();
        let mut server = Self { addr, pid, child: Some(child), keys: Some(dir), log: Some(log) };
        let deadline =
            Instant::now() + Duration::from_secs(if opts.server_wrapper.is_some() { 60 } else { 15 });
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                bail!("server exited with {status}; log:\n{}", server.log_tail());
            }
            if Instant::now() > deadline {
                bail!("server did not listen on {addr} in time; log:\n{}", server.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn external(addr: SocketAddr, pid: u32) -> Self {
        Self { addr, pid, child: None, keys: None, log: None }
    }

    fn log_tail(&self) -> String {
        let Some(log) = &self.log else { return String::new() };
        let s = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 10 s.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(dir) = self.keys.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// The russh client

/// Bytes on the wire (encrypted), shared by one or many connections.
#[derive(Default, Debug)]
struct Wire {
    rx: AtomicU64,
    tx: AtomicU64,
}

struct Counted<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.wire.rx.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.wire.tx.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn client_config(opts: &Opts) -> Result<Arc<client::Config>> {
    let mut preferred = russh::Preferred::default();
    if let Some(list) = &opts.kex {
        let mut names: Vec<russh::kex::Name> = Vec::new();
        for name in list.split(',') {
            names.push(match name {
                "mlkem768x25519-sha256" => russh::kex::MLKEM768X25519_SHA256,
                "curve25519-sha256" => russh::kex::CURVE25519,
                "curve25519-sha256@libssh.org" => russh::kex::CURVE25519_PRE_RFC_8731,
                other => bail!("unknown kex {other}"),
            });
        }
        names.extend([
            russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
            russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ]);
        preferred.kex = Cow::Owned(names);
    }
    if let Some(list) = &opts.cipher {
        let mut names: Vec<russh::cipher::Name> = Vec::new();
        for name in list.split(',') {
            names.push(match name {
                "chacha20-poly1305@openssh.com" | "chacha20-poly1305" => russh::cipher::CHACHA20_POLY1305,
                "aes256-gcm@openssh.com" | "aes256-gcm" => russh::cipher::AES_256_GCM,
                "aes128-gcm@openssh.com" | "aes128-gcm" => russh::cipher::AES_128_GCM,
                "aes256-ctr" => russh::cipher::AES_256_CTR,
                other => bail!("unknown cipher {other}"),
            });
        }
        preferred.cipher = Cow::Owned(names);
    }
    Ok(Arc::new(client::Config { preferred, nodelay: true, ..Default::default() }))
}

/// Milliseconds from the TCP connect to each step of setting up a session.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    tcp: f64,
    kex: f64,
    auth: f64,
    open: f64,
    first_byte: f64,
    frame: f64,
}

struct Session {
    handle: client::Handle<Client>,
    channel: russh::Channel<client::Msg>,
    vt: vt100::Parser,
    raw: Vec<u8>,
    keep_raw: bool,
    data_bytes: u64,
    exit_status: Option<u32>,
    closed: bool,
}

impl Session {
    /// Connect, auth none, pty-req, shell; returns once the first complete screen is shown.
    async fn open(
        addr: SocketAddr,
        config: Arc<client::Config>,
        user: &str,
        size: (u16, u16),
        wire: Arc<Wire>,
        keep_raw: bool,
    ) -> Result<(Self, Phases)> {
        let t0 = Instant::now();
        let tcp = timeout(STEP, TcpStream::connect(addr)).await.context("tcp connect timeout")??;
        tcp.set_nodelay(true)?;
        let tcp_done = t0.elapsed();
        let stream = Counted { inner: tcp, wire };
        let mut handle =
            timeout(STEP, client::connect_stream(config, stream, Client)).await.context("kex timeout")??;
        let kex_done = t0.elapsed();
        let auth = timeout(STEP, handle.authenticate_none(user)).await.context("auth timeout")??;
        if !auth.success() {
            bail!("auth none refused");
        }
        let auth_done = t0.elapsed();
        let channel = timeout(STEP, handle.channel_open_session()).await.context("open timeout")??;
        let open_done = t0.elapsed();
        let (cols, rows) = size;
        channel.request_pty(true, "xterm-256color", u32::from(cols), u32::from(rows), 0, 0, &[]).await?;
        channel.request_shell(true).await?;
        let vt = vt100::Parser::new(NonZeroU16::new(rows).unwrap(), NonZeroU16::new(cols).unwrap(), 0);
        let mut s = Self {
            handle,
            channel,
            vt,
            raw: Vec::new(),
            keep_raw,
            data_bytes: 0,
            exit_status: None,
            closed: false,
        };
        let mut first_byte = None;
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let msg = tokio::time::timeout_at(deadline, s.channel.wait())
                .await
                .map_err(|_| anyhow!("no first frame in time; screen:\n{}", s.vt.screen().contents()))?;
            let was = s.data_bytes;
            if !s.absorb(msg) {
                bail!("channel closed before the first frame; screen:\n{}", s.vt.screen().contents());
            }
            if s.data_bytes > was {
                first_byte.get_or_insert_with(|| t0.elapsed());
                let text = s.vt.screen().contents();
                if text.contains(NAME) && text.contains(FOOTER) {
                    break;
                }
            }
        }
        let phases = Phases {
            tcp: ms(tcp_done),
            kex: ms(kex_done),
            auth: ms(auth_done),
            open: ms(open_done),
            first_byte: ms(first_byte.unwrap_or_default()),
            frame: ms(t0.elapsed()),
        };
        Ok((s, phases))
    }

    /// Takes one channel message; false once the channel is gone.
    fn absorb(&mut self, msg: Option<ChannelMsg>) -> bool {
        match msg {
            Some(ChannelMsg::Data { data }) => {
                self.data_bytes += data.len() as u64;
                if self.keep_raw {
                    self.raw.extend_from_slice(&data);
                }
                self.vt.process(&data);
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => self.data_bytes += data.len() as u64,
            Some(ChannelMsg::ExitStatus { exit_status }) => self.exit_status = Some(exit_status),
            Some(ChannelMsg::Close) | None => {
                self.closed = true;
                return false;
            }
            Some(_) => {}
        }
        true
    }

    /// Sends `q`, waits for exit-status and close, then disconnects.
    async fn quit(mut self) -> Result<()> {
        self.channel.data_bytes(&b"q"[..]).await?;
        let deadline = tokio::time::Instant::now() + STEP;
        while !self.closed {
            let msg = tokio::time::timeout_at(deadline, self.channel.wait())
                .await
                .map_err(|_| anyhow!("no close after q; screen:\n{}", self.vt.screen().contents()))?;
            self.absorb(msg);
        }
        let status = self.exit_status;
        let _ = timeout(Duration::from_secs(2), self.handle.disconnect(Disconnect::ByApplication, "", "en"))
            .await;
        if status != Some(0) {
            bail!("exit status {status:?}");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Parts

struct Ctx {
    opts: Opts,
    config: Arc<client::Config>,
    tck: f64,
    results: serde_json::Map<String, Value>,
    summary: Vec<(String, String, String)>,
}

impl Ctx {
    fn record(&mut self, key: &str, value: Value) {
        self.results.insert(key.into(), value);
    }
    fn summarize(&mut self, what: &str, value: String, target: &str) {
        println!("  => {what}: {value}   (target {target})");
        self.summary.push((what.into(), value, target.into()));
    }
}

async fn warm_up(ctx: &Ctx, server: &Server, n: usize) -> Result<()> {
    for _ in 0..n {
        let (s, _) =
            Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, (80, 24), Arc::default(), false)
                .await?;
        s.quit().await?;
    }
    Ok(())
}

/// Waits until the server tree is back to `processes` processes (sshd reaps asynchronously).
async fn settle(server: &Server, processes: usize, tck: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while usage(server.pid, tck).processes > processes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn part_first(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let n = ctx.opts.first_n();
    println!("\n[first] first-frame latency over {n} sequential 80x24 sessions");
    let mut phases = Vec::with_capacity(n);
    let mut errors = 0;
    let mut frame_bytes = 0;
    let mut frame_wire = (0, 0);
    let started = Instant::now();
    for i in 0..n {
        let dump = i == 0 && ctx.opts.dump_frame.is_some();
        let wire = Arc::new(Wire::default());
        match Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, (80, 24), wire.clone(), dump)
            .await
        {
            Ok((s, p)) => {
                phases.push(p);
                frame_bytes = s.data_bytes;
                frame_wire = (wire.rx.load(Ordering::Relaxed), wire.tx.load(Ordering::Relaxed));
                if let (true, Some(path)) = (dump, &ctx.opts.dump_frame) {
                    std::fs::write(path, &s.raw)?;
                }
                if let Err(e) = s.quit().await {
                    errors += 1;
                    eprintln!("  session {i}: {e:#}");
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("  session {i}: {e:#}");
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            println!("  stopping early: 120 s passed");
            break;
        }
    }
    let frame = Dist::new(phases.iter().map(|p| p.frame).collect());
    let col = |f: fn(&Phases) -> f64| Dist::new(phases.iter().map(f).collect());
    let (tcp, kex, auth, open, fb) =
        (col(|p| p.tcp), col(|p| p.kex), col(|p| p.auth), col(|p| p.open), col(|p| p.first_byte));
    println!("  first frame ms: {}", frame.line());
    println!(
        "  p50 ms from connect: tcp {:.3}, kex done {:.3}, auth done {:.3}, channel open {:.3}, first byte {:.3}, complete frame {:.3}",
        tcp.p(0.5),
        kex.p(0.5),
        auth.p(0.5),
        open.p(0.5),
        fb.p(0.5),
        frame.p(0.5)
    );
    println!(
        "  first frame: {frame_bytes} bytes of channel data; connect..frame on the wire: {} bytes down, {} up; errors: {errors}",
        frame_wire.0, frame_wire.1
    );
    ctx.record(
        "first",
        json!({"frame_ms": frame.json(), "tcp_ms": tcp.json(), "kex_ms": kex.json(), "auth_ms": auth.json(),
               "open_ms": open.json(), "first_byte_ms": fb.json(), "frame_bytes": frame_bytes,
               "wire_down": frame_wire.0, "wire_up": frame_wire.1, "errors": errors}),
    );
    ctx.summarize(
        "first frame p50 / p90 / p99 (russh client)",
        format!("{:.2} / {:.2} / {:.2} ms", frame.p(0.5), frame.p(0.9), frame.p(0.99)),
        "p50 <= 2 ms, p99 <= 10 ms",
    );
    Ok(())
}

async fn part_rate(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let secs = ctx.opts.rate_secs();
    let max = ctx.opts.rate_max();
    println!(
        "\n[rate] full sessions (connect .. first frame .. q .. exit-status + close), {secs} s or {max} sessions per level"
    );
    let mut levels = Vec::new();
    let base_processes = usage(server.pid, ctx.tck).processes;
    for parallel in ctx.opts.parallel_levels() {
        settle(server, base_processes, ctx.tck).await;
        let before = usage(server.pid, ctx.tck);
        let client_before = self_cpu_s(ctx.tck);
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(secs);
        let issued = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..parallel {
            let (config, user, addr, issued) =
                (ctx.config.clone(), ctx.opts.user.clone(), server.addr, issued.clone());
            workers.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
                    let t0 = Instant::now();
                    let run = async {
                        let (s, _) =
                            Session::open(addr, config.clone(), &user, (80, 24), Arc::default(), false)
                                .await?;
                        s.quit().await
                    };
                    match timeout(Duration::from_secs(30), run).await {
                        Ok(Ok(())) => ok.push(ms(t0.elapsed())),
                        Ok(Err(e)) => {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("  session error: {e:#}");
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (ok, errors)
            }));
        }
        let mut durations = Vec::new();
        let mut errors = 0;
        for w in workers {
            let (ok, e) = w.await?;
            durations.extend(ok);
            errors += e;
        }
        let wall = started.elapsed().as_secs_f64();
        let client_cpu = self_cpu_s(ctx.tck) - client_before;
        settle(server, base_processes, ctx.tck).await;
        let after = usage(server.pid, ctx.tck);
        let n = durations.len();
        let cpu_ms = (after.cpu_s - before.cpu_s) * 1e3 / n.max(1) as f64;
        let rate = n as f64 / wall;
        let d = Dist::new(durations);
        println!(
            "  {parallel:>3} parallel: {n} sessions in {wall:.2} s = {rate:.0}/s; server CPU {cpu_ms:.3} ms/session, client CPU {:.3} ms/session; session ms {}; errors {errors}",
            client_cpu * 1e3 / n.max(1) as f64,
            d.line()
        );
        levels.push(json!({"parallel": parallel, "sessions": n, "wall_s": wall, "per_s": rate,
            "server_cpu_ms_per_session": cpu_ms, "client_cpu_ms_per_session": client_cpu * 1e3 / n.max(1) as f64,
            "session_ms": d.json(), "errors": errors}));
        ctx.summarize(
            &format!("full sessions/s at {parallel} parallel (server CPU per session)"),
            format!("{rate:.0}/s ({cpu_ms:.2} ms)"),
            if parallel >= 32 { ">= 1 000/s, <= 1.0 ms CPU" } else { "<= 1.0 ms CPU" },
        );
    }
    ctx.record("rate", Value::Array(levels));
    Ok(())
}

struct IdleShared {
    data_bytes: AtomicU64,
    closed: AtomicUsize,
    quit_ok: AtomicUsize,
    wire: Arc<Wire>,
}

async fn part_idle(ctx: &mut Ctx, server_slot: &mut Option<Server>) -> Result<()> {
    let window = ctx.opts.idle_window();
    let mut levels = Vec::new();
    for n in ctx.opts.idle_levels() {
        // A fresh server per level (when we own it), so memory freed by earlier parts is not reused.
        if ctx.opts.target.is_none() && !ctx.opts.idle_reuse {
            if let Some(mut old) = server_slot.take() {
                old.stop();
            }
            *server_slot = Some(Server::spawn(&ctx.opts)?);
        }
        let server = server_slot.as_ref().unwrap();
        if ctx.opts.target.is_none() && !ctx.opts.idle_reuse {
            println!("\n(fresh server for the idle part: pid {})", server.pid);
        }
        raise_nofile(std::process::id(), n as u64 + 2_000);
        raise_nofile(server.pid, n as u64 + 2_000);
        println!("\n[idle] {n} open idle 80x24 sessions ({window} s quiet window)");
        warm_up(ctx, server, 3).await?;
        let base_processes = usage(server.pid, ctx.tck).processes;
        settle(server, base_processes, ctx.tck).await;
        let base = usage(server.pid, ctx.tck);
        let shared = Arc::new(IdleShared {
            data_bytes: AtomicU64::new(0),
            closed: AtomicUsize::new(0),
            quit_ok: AtomicUsize::new(0),
            wire: Arc::new(Wire::default()),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(ctx.opts.idle_concurrency.max(1)));
        let opened = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let give_up = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let open_deadline = Duration::from_secs(60 + n as u64 / 20);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = gate.clone().acquire_owned().await?;
            if started.elapsed() > open_deadline || give_up.load(Ordering::Relaxed) {
                break;
            }
            let (config, user, addr) = (ctx.config.clone(), ctx.opts.user.clone(), server.addr);
            let (shared, mut stop_rx, opened, failed, give_up) =
                (shared.clone(), stop_rx.clone(), opened.clone(), failed.clone(), give_up.clone());
            tasks.push(tokio::spawn(async move {
                let wire = shared.wire.clone();
                let result = Session::open(addr, config, &user, (80, 24), wire, false).await;
                let mut s = match result {
                    Ok((s, _)) => s,
                    Err(e) => {
                        drop(permit);
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  open failed: {e:#}");
                        }
                        if failed.load(Ordering::Relaxed) > 50 {
                            give_up.store(true, Ordering::Relaxed);
                        }
                        return;
                    }
                };
                // Free the emulator: the client side of an idle session only counts bytes now.
                s.vt = vt100::Parser::new(NonZeroU16::new(1).unwrap(), NonZeroU16::new(1).unwrap(), 0);
                opened.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                loop {
                    tokio::select! {
                        msg = s.channel.wait() => {
                            let len = match &msg {
                                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => data.len() as u64,
                                _ => 0,
                            };
                            shared.data_bytes.fetch_add(len, Ordering::Relaxed);
                            if !s.absorb(msg) {
                                shared.closed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                        _ = stop_rx.wait_for(|stop| *stop) => break,
                    }
                }
                if s.quit().await.is_ok() {
                    shared.quit_ok.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Wait for the last sessions to finish opening.
        let _ = timeout(Duration::from_secs(60), gate.acquire_many(ctx.opts.idle_concurrency.max(1) as u32))
            .await;
        let open_s = started.elapsed().as_secs_f64();
        let opened_n = opened.load(Ordering::Relaxed);
        println!(
            "  opened {opened_n}/{n} sessions in {open_s:.1} s ({} failed)",
            failed.load(Ordering::Relaxed)
        );
        // Let per-session timers that fire soon after the first frame (sshbio frees a quiet
        // session's cell buffers after a few seconds) run before memory is read.
        let settle_s = ctx.opts.idle_settle;
        tokio::time::sleep(Duration::from_secs_f64(settle_s)).await;
        let u0 = usage(server.pid, ctx.tck);
        let (d0, rx0, tx0) = (
            shared.data_bytes.load(Ordering::Relaxed),
            shared.wire.rx.load(Ordering::Relaxed),
            shared.wire.tx.load(Ordering::Relaxed),
        );
        let client_cpu0 = self_cpu_s(ctx.tck);
        tokio::time::sleep(Duration::from_secs_f64(window)).await;
        let client_cpu1 = self_cpu_s(ctx.tck);
        let u1 = usage(server.pid, ctx.tck);
        let (d1, rx1, tx1) = (
            shared.data_bytes.load(Ordering::Relaxed),
            shared.wire.rx.load(Ordering::Relaxed),
            shared.wire.tx.load(Ordering::Relaxed),
        );
        let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / opened_n.max(1) as f64;
        let rss_per = per(u0.rss_kib, base.rss_kib);
        let pss_per = per(u0.pss_kib, base.pss_kib);
        let idle_cpu_ms = (u1.cpu_live_s - u0.cpu_live_s) * 1e3;
        let idle_ticks_ms = (u1.cpu_s - u0.cpu_s) * 1e3;
        println!(
            "  server: {} -> {} KiB RSS, {} -> {} KiB PSS, {} -> {} processes",
            base.rss_kib, u0.rss_kib, base.pss_kib, u0.pss_kib, base.processes, u0.processes
        );
        println!(
            "  per idle session, {settle_s} s after the last one opened: {rss_per:.1} KiB RSS, {pss_per:.1} KiB PSS"
        );
        println!(
            "  quiet {window} s: server CPU {idle_cpu_ms:.1} ms (threads' schedstat; {idle_ticks_ms:.0} ms by ticks), client CPU {:.0} ms; channel data {} bytes; wire {} bytes in / {} bytes out (keepalives)",
            (client_cpu1 - client_cpu0) * 1e3,
            d1 - d0,
            rx1 - rx0,
            tx1 - tx0
        );
        let long = ctx.opts.idle_long();
        let mut keepalive = Value::Null;
        if long > 0.0 {
            let l0 = usage(server.pid, ctx.tck);
            let (rx0, tx0) = (shared.wire.rx.load(Ordering::Relaxed), shared.wire.tx.load(Ordering::Relaxed));
            let d0 = shared.data_bytes.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs_f64(long)).await;
            let l1 = usage(server.pid, ctx.tck);
            let (rx1, tx1) = (shared.wire.rx.load(Ordering::Relaxed), shared.wire.tx.load(Ordering::Relaxed));
            let d1 = shared.data_bytes.load(Ordering::Relaxed);
            let cpu_ms = (l1.cpu_live_s - l0.cpu_live_s) * 1e3;
            println!(
                "  next {long} s (covers a keepalive interval): server CPU {cpu_ms:.1} ms = {:.1} us/session; wire {} bytes in / {} out = {:.0} bytes/session; channel data {} bytes",
                cpu_ms * 1e3 / opened_n.max(1) as f64,
                rx1 - rx0,
                tx1 - tx0,
                (rx1 - rx0 + tx1 - tx0) as f64 / opened_n.max(1) as f64,
                d1 - d0
            );
            keepalive = json!({"window_s": long, "cpu_ms": cpu_ms, "wire_rx": rx1 - rx0, "wire_tx": tx1 - tx0,
                               "data_bytes": d1 - d0});
        }
        let churn_rate = ctx.opts.idle_churn();
        let mut churn = Value::Null;
        if churn_rate > 0.0 {
            let secs = ctx.opts.idle_churn_secs;
            let c0 = usage(server.pid, ctx.tck);
            let (cd0, crx0) =
                (shared.data_bytes.load(Ordering::Relaxed), shared.wire.rx.load(Ordering::Relaxed));
            let started = Instant::now();
            let mut visitors = 0;
            let mut failed_visitors = 0;
            let (leave_tx, leave_rx) = watch::channel(false);
            let mut stayers = Vec::new();
            while started.elapsed().as_secs_f64() < secs {
                let t = Instant::now();
                match Session::open(
                    server.addr,
                    ctx.config.clone(),
                    &ctx.opts.user,
                    (80, 24),
                    Arc::default(),
                    false,
                )
                .await
                {
                    Ok((mut v, _)) => {
                        visitors += 1;
                        let mut leave = leave_rx.clone();
                        stayers.push(tokio::spawn(async move {
                            loop {
                                tokio::select! {
                                    msg = v.channel.wait() => if !v.absorb(msg) { return },
                                    _ = leave.wait_for(|l| *l) => break,
                                }
                            }
                            let _ = v.quit().await;
                        }));
                    }
                    Err(_) => failed_visitors += 1,
                }
                let next = t + Duration::from_secs_f64(1.0 / churn_rate);
                tokio::time::sleep_until(next.into()).await;
            }
            // Let the last count change reach everyone.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let c1 = usage(server.pid, ctx.tck);
            let (cd1, crx1) =
                (shared.data_bytes.load(Ordering::Relaxed), shared.wire.rx.load(Ordering::Relaxed));
            let elapsed = started.elapsed().as_secs_f64();
            let _ = leave_tx.send(true);
            for stayer in stayers {
                let _ = timeout(STEP, stayer).await;
            }
            let cpu_ms = (c1.cpu_live_s - c0.cpu_live_s) * 1e3;
            let per_session = (cd1 - cd0) as f64 / opened_n.max(1) as f64;
            println!(
                "  arrivals: {visitors} more visitors arrived in {elapsed:.1} s and stayed ({failed_visitors} failed): server CPU {cpu_ms:.0} ms ({:.0} ms per second); the idle sessions received {} bytes of channel data ({per_session:.0} per session), {} on the wire; server {} -> {} KiB RSS",
                cpu_ms / elapsed,
                cd1 - cd0,
                crx1 - crx0,
                c0.rss_kib,
                c1.rss_kib
            );
            churn = json!({"rate": churn_rate, "visitors": visitors, "seconds": elapsed, "cpu_ms": cpu_ms,
                "data_bytes": cd1 - cd0, "wire_rx": crx1 - crx0, "data_bytes_per_session": per_session,
                "rss_kib_before": c0.rss_kib, "rss_kib_after": c1.rss_kib});
            ctx.summarize(
                &format!("{n} idle while {churn_rate}/s more arrive: bytes per idle session, server CPU"),
                format!("{per_session:.0} bytes in {elapsed:.0} s, {:.0} ms CPU/s", cpu_ms / elapsed),
                "0 bytes, ~0 CPU",
            );
        }
        let dropped = shared.closed.load(Ordering::Relaxed);
        println!("  dropped during the hold: {dropped}");
        // Close everything: q, exit-status, close, disconnect.
        let close_started = Instant::now();
        let _ = stop_tx.send(true);
        let mut unfinished = 0;
        let close_deadline = tokio::time::Instant::now() + Duration::from_secs(60 + n as u64 / 50);
        for t in tasks {
            if tokio::time::timeout_at(close_deadline, t).await.is_err() {
                unfinished += 1;
            }
        }
        let quit_ok = shared.quit_ok.load(Ordering::Relaxed);
        settle(server, base_processes, ctx.tck).await;
        let after = usage(server.pid, ctx.tck);
        println!(
            "  closed {quit_ok}/{opened_n} cleanly in {:.1} s ({unfinished} unfinished); server after: {} KiB RSS, {} KiB PSS",
            close_started.elapsed().as_secs_f64(),
            after.rss_kib,
            after.pss_kib
        );
        levels.push(json!({"sessions": n, "opened": opened_n, "failed": failed.load(Ordering::Relaxed),
            "open_s": open_s, "base_rss_kib": base.rss_kib, "base_pss_kib": base.pss_kib,
            "rss_kib": u0.rss_kib, "pss_kib": u0.pss_kib, "processes": u0.processes,
            "rss_kib_per_session": rss_per, "pss_kib_per_session": pss_per,
            "settle_s": settle_s, "window_s": window, "idle_cpu_ms": idle_cpu_ms, "idle_cpu_ticks_ms": idle_ticks_ms,
            "idle_data_bytes": d1 - d0, "idle_wire_rx": rx1 - rx0, "idle_wire_tx": tx1 - tx0,
            "dropped": dropped, "keepalive_window": keepalive, "churn": churn, "closed_cleanly": quit_ok, "after_rss_kib": after.rss_kib, "after_pss_kib": after.pss_kib}));
        ctx.summarize(
            &format!("memory per idle 80x24 session at {n} (RSS / PSS)"),
            format!("{rss_per:.0} / {pss_per:.0} KiB"),
            "<= 32 KiB",
        );
        ctx.summarize(
            &format!("{n} idle: held / dropped; CPU and bytes in {window} s"),
            format!(
                "{opened_n} / {dropped}; {idle_cpu_ms:.1} ms CPU, {} data bytes ({} wire)",
                d1 - d0,
                rx1 - rx0
            ),
            "all held, 0 dropped, ~0 CPU, 0 bytes",
        );
    }
    ctx.record("idle", Value::Array(levels));
    Ok(())
}

async fn part_keys(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let n = ctx.opts.keys_n();
    let (cols, rows) = ctx
        .opts
        .keys_size
        .split_once('x')
        .and_then(|(c, r)| Some((c.parse::<u16>().ok()?, r.parse::<u16>().ok()?)))
        .context("--keys-size COLSxROWS")?;
    println!("\n[keys] {n} keystrokes (j/k alternately) on section 6 at {cols}x{rows}");
    let wire = Arc::new(Wire::default());
    let (mut s, _) =
        Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, (cols, rows), wire.clone(), false)
            .await?;
    // Go to section 6, wait for its numbered title to show.
    s.channel.data_bytes(&b"6"[..]).await?;
    let deadline = tokio::time::Instant::now() + STEP;
    while !s.vt.screen().contents().contains("06  ") {
        let msg = tokio::time::timeout_at(deadline, s.channel.wait())
            .await
            .map_err(|_| anyhow!("section 6 did not show; screen:\n{}", s.vt.screen().contents()))?;
        s.absorb(msg);
    }
    // Let the rest of that frame arrive.
    while let Ok(msg) = timeout(Duration::from_millis(50), s.channel.wait()).await {
        s.absorb(msg);
    }
    let mut latencies = Vec::with_capacity(n);
    let mut bytes = Vec::with_capacity(n);
    let mut wire_rx = Vec::with_capacity(n);
    let mut wire_tx = Vec::with_capacity(n);
    let mut missing = 0;
    let cpu0 = usage(server.pid, ctx.tck);
    let started = Instant::now();
    for i in 0..n {
        let key: &[u8] = if i % 2 == 0 { b"j" } else { b"k" };
        let (b0, rx0, tx0) = (s.data_bytes, wire.rx.load(Ordering::Relaxed), wire.tx.load(Ordering::Relaxed));
        let t0 = Instant::now();
        s.channel.data_bytes(key).await?;
        // First byte of the redraw.
        let first = loop {
            match timeout(Duration::from_secs(2), s.channel.wait()).await {
                Ok(msg) => {
                    let was = s.data_bytes;
                    if !s.absorb(msg) {
                        bail!("channel closed during keys");
                    }
                    if s.data_bytes > was {
                        break Some(t0.elapsed());
                    }
                }
                Err(_) => break None,
            }
        };
        let Some(first) = first else {
            missing += 1;
            if missing == 1 {
                eprintln!("  no redraw for key {i}; screen:\n{}", s.vt.screen().contents());
            }
            if missing > 3 {
                bail!("the section does not scroll at {cols}x{rows}");
            }
            continue;
        };
        // The rest of the redraw: whatever arrives until 5 ms of quiet.
        while let Ok(msg) = timeout(Duration::from_millis(5), s.channel.wait()).await {
            s.absorb(msg);
        }
        latencies.push(ms(first));
        bytes.push((s.data_bytes - b0) as f64);
        wire_rx.push((wire.rx.load(Ordering::Relaxed) - rx0) as f64);
        wire_tx.push((wire.tx.load(Ordering::Relaxed) - tx0) as f64);
        if started.elapsed() > Duration::from_secs(60) {
            println!("  stopping early: 60 s passed");
            break;
        }
    }
    let cpu1 = usage(server.pid, ctx.tck);
    // Server CPU per redrawn key (decoding, the app, ratatui's diff, encoding, the channel).
    let cpu_us = (cpu1.cpu_live_s - cpu0.cpu_live_s) * 1e6 / latencies.len().max(1) as f64;
    s.quit().await?;
    let (lat, b, rx, tx) = (Dist::new(latencies), Dist::new(bytes), Dist::new(wire_rx), Dist::new(wire_tx));
    println!("  key -> first byte of redraw, ms: {}", lat.line());
    println!("  server CPU per key (redraw): {cpu_us:.1} us");
    println!(
        "  channel data per one-line scroll: mean {:.0} bytes (p50 {:.0}, max {:.0}); on the wire {:.0} bytes down, {:.0} bytes up per key; {missing} keys without a redraw",
        b.mean(),
        b.p(0.5),
        b.p(1.0),
        rx.mean(),
        tx.mean()
    );
    ctx.record(
        "keys",
        json!({"latency_ms": lat.json(), "bytes": b.json(), "wire_rx": rx.json(), "wire_tx": tx.json(), "missing": missing,
               "size": format!("{cols}x{rows}"), "server_cpu_us_per_key": cpu_us}),
    );
    ctx.summarize(
        "keystroke -> first byte of redraw p50 / p99 (server CPU per key)",
        format!("{:.3} / {:.3} ms ({cpu_us:.0} us)", lat.p(0.5), lat.p(0.99)),
        "p50 <= 0.5 ms",
    );
    ctx.summarize(
        "bytes per one-line scroll (channel data; wire)",
        format!("{:.0} ({:.0})", b.mean(), rx.mean()),
        "<= 1 200 bytes",
    );
    Ok(())
}

/// One run of the OpenSSH client; returns ms from spawn to the first complete screen.
fn ssh_once(opts: &Opts, via: &str, addr: SocketAddr) -> Result<f64> {
    let ssh = format!(
        "ssh -tt -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes {}@{}",
        addr.port(),
        opts.user,
        addr.ip()
    );
    let mut cmd = match via {
        "script" => {
            let mut c = Command::new("script");
            c.args(["-qfec", &format!("stty cols 80 rows 24; exec {ssh}"), "/dev/null"]);
            c
        }
        "pipe" => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("exec {ssh}")]);
            c
        }
        other => bail!("--ssh-via {other}: use script or pipe"),
    };
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    let deadline = t0 + STEP;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => {
                vt.process(&chunk);
                let text = vt.screen().contents();
                if text.contains(NAME) && text.contains(FOOTER) {
                    break Ok(ms(t0.elapsed()));
                }
            }
            Err(_) => break Err(anyhow!("no complete screen in time; screen:\n{}", vt.screen().contents())),
        }
    };
    let _ = stdin.write_all(b"q");
    let _ = stdin.flush();
    let exit_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < exit_deadline => {
                while rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    drop(stdin);
    drop(rx);
    let _ = reader.join();
    result
}

/// Spawn to first output of the same wrapper running `echo`: what `script`/`sh` add by themselves.
fn harness_overhead(via: &str) -> Option<f64> {
    let mut cmd = match via {
        "script" => {
            let mut c = Command::new("script");
            c.args(["-qfec", "stty cols 80 rows 24; exec echo ready", "/dev/null"]);
            c
        }
        _ => {
            let mut c = Command::new("sh");
            c.args(["-c", "exec echo ready"]);
            c
        }
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn().ok()?;
    let mut buf = [0u8; 64];
    let _ = child.stdout.as_mut()?.read(&mut buf);
    let t = ms(t0.elapsed());
    let _ = child.wait();
    Some(t)
}

async fn part_ssh(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let n = ctx.opts.ssh_n();
    let version = Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    let mut record = serde_json::Map::new();
    for via in ctx.opts.ssh_via.clone() {
        println!(
            "\n[ssh] {n} runs of the OpenSSH client (ssh -tt via {via}), spawn -> first complete screen"
        );
        let opts = ctx.opts.clone();
        let addr = server.addr;
        let mode = via.clone();
        let (times, errors, overhead) = tokio::task::spawn_blocking(move || {
            let mut times = Vec::new();
            let mut errors = 0;
            let started = Instant::now();
            for i in 0..n {
                match ssh_once(&opts, &mode, addr) {
                    Ok(t) => times.push(t),
                    Err(e) => {
                        errors += 1;
                        if errors <= 2 {
                            eprintln!("  run {i}: {e:#}");
                        }
                    }
                }
                if started.elapsed() > Duration::from_secs(90) || errors > 5 {
                    break;
                }
            }
            let overhead: Vec<f64> = (0..10).filter_map(|_| harness_overhead(&mode)).collect();
            (times, errors, overhead)
        })
        .await?;
        let d = Dist::new(times);
        let o = Dist::new(overhead);
        println!("  {version}");
        println!("  spawn -> first complete screen, ms: {}; errors {errors}", d.line());
        println!("  the wrapper alone (spawn -> first output of `echo`): p50 {:.2} ms", o.p(0.5));
        record.insert(
            via.clone(),
            json!({"frame_ms": d.json(), "errors": errors, "client": version, "wrapper_ms": o.json()}),
        );
        let how = if via == "script" { "under script, 80x24 pty" } else { "pipes, no local tty" };
        ctx.summarize(
            &format!("OpenSSH `ssh -tt` spawn -> first frame p50 / p90 ({how})"),
            format!("{:.1} / {:.1} ms (wrapper alone {:.1} ms)", d.p(0.5), d.p(0.9), o.p(0.5)),
            "p50 <= 20 ms",
        );
    }
    ctx.record("ssh", Value::Object(record));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Presenter follow mode

/// What a follower's screen shows while it follows the presenter.
const FOLLOW_BANNER: &str = "Following the speaker live";
/// What the presenter's own screen shows.
const PRESENTER_BANNER: &str = "You are presenting";
/// The presenter's id in [`Shown`] events (followers are 0..N).
const PRESENTER: usize = usize::MAX;

/// One press of the presenter, announced to every watcher just before the key is sent.
#[derive(Clone)]
struct Press {
    idx: usize,
    t0: Instant,
    /// The new section's numbered title over its text, e.g. `07  eBPF`.
    title: Arc<str>,
    /// The first words of the new section's text.
    words: Arc<str>,
}

enum WatchEvent {
    /// The screen shows its banner (follow mode is on).
    Banner(usize),
    /// The screen shows the section of press `press`: ms from the key to the first byte after it,
    /// and to the screen showing the section's title and first words.
    Shown {
        who: usize,
        press: usize,
        first_ms: f64,
        screen_ms: f64,
    },
    Closed(usize),
}

/// One screen in the presenter part (a follower's or the presenter's): a vt100 emulator and
/// what has been reported for the current press.
struct Watcher {
    who: usize,
    banner: &'static str,
    banner_seen: bool,
    first_for: Option<usize>,
    first_ms: f64,
    shown_for: Option<usize>,
    press: watch::Receiver<Option<Press>>,
    events: tokio::sync::mpsc::UnboundedSender<WatchEvent>,
    bytes: Arc<AtomicU64>,
}

impl Watcher {
    /// Called after `vt` has taken `len` new bytes of channel data.
    fn on_data(&mut self, vt: &vt100::Parser, len: u64) {
        let now = Instant::now();
        self.bytes.fetch_add(len, Ordering::Relaxed);
        let text = vt.screen().contents();
        if !self.banner_seen && text.contains(self.banner) {
            self.banner_seen = true;
            let _ = self.events.send(WatchEvent::Banner(self.who));
        }
        let Some(press) = self.press.borrow().clone() else { return };
        if self.first_for != Some(press.idx) {
            self.first_for = Some(press.idx);
            self.first_ms = ms(now.saturating_duration_since(press.t0));
        }
        if self.shown_for != Some(press.idx) && text.contains(&*press.title) && text.contains(&*press.words) {
            self.shown_for = Some(press.idx);
            let _ = self.events.send(WatchEvent::Shown {
                who: self.who,
                press: press.idx,
                first_ms: self.first_ms,
                screen_ms: ms(now.saturating_duration_since(press.t0)),
            });
        }
    }
}

/// A follower: drains its channel continuously until told to stop, then quits with `q`.
async fn follow(mut s: Session, mut w: Watcher, mut stop: watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            msg = s.channel.wait() => {
                let was = s.data_bytes;
                if !s.absorb(msg) {
                    let _ = w.events.send(WatchEvent::Closed(w.who));
                    return false;
                }
                if s.data_bytes > was {
                    w.on_data(&s.vt, s.data_bytes - was);
                }
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    s.quit().await.is_ok()
}

/// Connects as `present` with `key` and opens an 80x24 TUI.
async fn connect_presenter(
    addr: SocketAddr,
    config: Arc<client::Config>,
    key: &russh::keys::PrivateKey,
) -> Result<(client::Handle<Client>, russh::Channel<client::Msg>)> {
    let tcp = timeout(STEP, TcpStream::connect(addr)).await.context("tcp connect timeout")??;
    tcp.set_nodelay(true)?;
    let stream = Counted { inner: tcp, wire: Arc::default() };
    let mut handle =
        timeout(STEP, client::connect_stream(config, stream, Client)).await.context("kex timeout")??;
    let auth = timeout(
        STEP,
        handle.authenticate_publickey(
            "present",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
        ),
    )
    .await
    .context("auth timeout")??;
    if !auth.success() {
        bail!("the presenter key was refused");
    }
    let channel = timeout(STEP, handle.channel_open_session()).await.context("open timeout")??;
    channel.request_pty(true, "xterm-256color", 80, 24, 0, 0, &[]).await?;
    channel.request_shell(true).await?;
    Ok((handle, channel))
}

/// Sections of the content file: (title, first words of the text).
fn section_marks(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let sections = doc.get("sections").and_then(|s| s.as_array()).context("no [[sections]]")?;
    Ok(sections
        .iter()
        .map(|s| {
            let title = s.get("title").and_then(|t| t.as_str()).unwrap_or_default().to_string();
            let first = s
                .get("paragraphs")
                .and_then(|p| p.as_array())
                .and_then(|p| p.first())
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            let words = first.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            (title, words)
        })
        .collect())
}

/// Figures of one series of presses.
#[derive(Default)]
struct PressSeries {
    /// Per press: key -> the last follower's screen shows the new section (complete presses only).
    all: Vec<f64>,
    /// Per follower and press: key -> new section on screen.
    screen: Vec<f64>,
    /// Per follower and press: key -> first byte after the key.
    first: Vec<f64>,
    /// Per press: key -> the presenter's own screen shows the new section.
    presenter: Vec<f64>,
    /// Follower screens that did not show the section within 5 s.
    missing: usize,
    presses: usize,
}

async fn part_presenter(ctx: &mut Ctx) -> Result<()> {
    if ctx.opts.target.is_some() {
        println!("\n[presenter] skipped: it needs a spawned sshbio (--presenter-keys)");
        return Ok(());
    }
    let n = ctx.opts.followers_n();
    let (active_n, hibernated_n) = (ctx.opts.presses_n(), ctx.opts.presses_hibernated_n());
    let content = ctx
        .opts
        .content
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content.toml"));
    let marks: Vec<(String, String)> = section_marks(&content)?.into_iter().take(9).collect();
    if marks.len() < 2 {
        bail!("the presenter part needs at least 2 sections in {}", content.display());
    }
    println!(
        "\n[presenter] {n} followers (80x24); the presenter presses {active_n} section keys {} s apart, then {hibernated_n} more each after {} s of quiet (screens hibernated)",
        ctx.opts.press_gap, ctx.opts.hibernated_gap
    );
    // A fresh server that accepts one freshly generated presenter key.
    let key = russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
        .map_err(|e| anyhow!("generating the presenter key: {e}"))?;
    let public = key.public_key().to_openssh().map_err(|e| anyhow!("encoding the presenter key: {e}"))?;
    let keys_file = std::env::temp_dir().join(format!("sshbio-load-presenter-{}.pub", std::process::id()));
    std::fs::write(&keys_file, format!("{public}\n"))?;
    let spawned =
        Server::spawn_with(&ctx.opts, &["--presenter-keys".into(), keys_file.to_string_lossy().into()]);
    let _ = std::fs::remove_file(&keys_file);
    let mut server = spawned?;
    println!("  server pid {}", server.pid);
    raise_nofile(std::process::id(), n as u64 + 2_000);
    let result = presenter_run(ctx, &server, &key, n, &marks, active_n, hibernated_n).await;
    if let Some(log) = &server.log {
        let errors = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("panicked"))
            .count();
        println!("  server log: {errors} error lines");
    }
    server.stop();
    result
}

#[allow(clippy::too_many_arguments)]
async fn presenter_run(
    ctx: &mut Ctx,
    server: &Server,
    key: &russh::keys::PrivateKey,
    n: usize,
    marks: &[(String, String)],
    active_n: usize,
    hibernated_n: usize,
) -> Result<()> {
    let (press_tx, press_rx) = watch::channel::<Option<Press>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let follower_bytes = Arc::new(AtomicU64::new(0));
    let presenter_bytes = Arc::new(AtomicU64::new(0));

    // The followers: opened 16 at a time, each then drained by its own task.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(16));
    let mut opening = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let (config, user, addr) = (ctx.config.clone(), ctx.opts.user.clone(), server.addr);
        opening.push(tokio::spawn(async move {
            let r = Session::open(addr, config, &user, (80, 24), Arc::default(), false).await;
            drop(permit);
            r.map(|(s, _)| s)
        }));
    }
    let mut followers = Vec::with_capacity(n);
    for (who, task) in opening.into_iter().enumerate() {
        let s = task.await?.context("opening a follower")?;
        let w = Watcher {
            who,
            banner: FOLLOW_BANNER,
            banner_seen: false,
            first_for: None,
            first_ms: 0.0,
            shown_for: None,
            press: press_rx.clone(),
            events: events_tx.clone(),
            bytes: follower_bytes.clone(),
        };
        followers.push(tokio::spawn(follow(s, w, stop_rx.clone())));
    }
    println!("  {n} followers on screen in {:.2} s", started.elapsed().as_secs_f64());

    // The presenter: its channel is drained by a task of its own; keys go through the write half.
    let t_presenter = Instant::now();
    let (handle, channel) = connect_presenter(server.addr, ctx.config.clone(), key).await?;
    let (mut read, write) = channel.split();
    let mut pw = Watcher {
        who: PRESENTER,
        banner: PRESENTER_BANNER,
        banner_seen: false,
        first_for: None,
        first_ms: 0.0,
        shown_for: None,
        press: press_rx.clone(),
        events: events_tx.clone(),
        bytes: presenter_bytes.clone(),
    };
    let mut presenter_stop = stop_rx.clone();
    let presenter_reader = tokio::spawn(async move {
        let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
        let mut exit = None;
        let mut stopping = false;
        loop {
            let msg = if stopping {
                match timeout(STEP, read.wait()).await {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            } else {
                tokio::select! {
                    msg = read.wait() => msg,
                    _ = presenter_stop.wait_for(|stop| *stop) => { stopping = true; continue }
                }
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    vt.process(&data);
                    pw.on_data(&vt, data.len() as u64);
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        exit
    });

    // Everyone follows: each follower shows the banner, and the presenter its own.
    let deadline = tokio::time::Instant::now() + STEP;
    let mut banners = HashSet::new();
    let mut presenter_on = false;
    while banners.len() < n || !presenter_on {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(WatchEvent::Banner(PRESENTER))) => presenter_on = true,
            Ok(Some(WatchEvent::Banner(who))) => {
                banners.insert(who);
            }
            Ok(Some(WatchEvent::Closed(who))) => bail!("follower {who} was closed"),
            Ok(Some(WatchEvent::Shown { .. })) => {}
            Ok(None) | Err(_) => bail!(
                "{} of {n} followers show \"{FOLLOW_BANNER}\" (presenter on screen: {presenter_on})",
                banners.len()
            ),
        }
    }
    println!(
        "  presenter connected; every follower shows the banner {:.0} ms after the presenter's TCP connect",
        ms(t_presenter.elapsed())
    );
    // Let the audience counts (51 here, 50 following) settle: they change at most once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut series: Vec<(&str, PressSeries, Value)> = Vec::new();
    let mut idx = 0;
    for (phase, count, gap_before, gap_after) in [
        ("active", active_n, 0.0, ctx.opts.press_gap),
        ("hibernated", hibernated_n, ctx.opts.hibernated_gap, 0.3),
    ] {
        if count == 0 {
            continue;
        }
        let mut s = PressSeries::default();
        let u0 = usage(server.pid, ctx.tck);
        let (fb0, pb0) = (follower_bytes.load(Ordering::Relaxed), presenter_bytes.load(Ordering::Relaxed));
        let mut cpu_ms = 0.0;
        for _ in 0..count {
            if gap_before > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(gap_before)).await;
            }
            let page = (idx + 1) % marks.len();
            let (title, words) = &marks[page];
            let c0 = usage(server.pid, ctx.tck).cpu_live_s;
            let t0 = Instant::now();
            press_tx.send_replace(Some(Press {
                idx,
                t0,
                title: format!("{:02}  {title}", page + 1).into(),
                words: words.as_str().into(),
            }));
            write.data_bytes(vec![b'1' + page as u8]).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let (mut shown, mut presenter_ms) = (Vec::with_capacity(n), None);
            while shown.len() < n || presenter_ms.is_none() {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Some(WatchEvent::Shown { who, press, first_ms, screen_ms })) if press == idx => {
                        if who == PRESENTER {
                            presenter_ms = Some(screen_ms);
                        } else {
                            shown.push((first_ms, screen_ms));
                        }
                    }
                    Ok(Some(WatchEvent::Closed(who))) => bail!("follower {who} was closed"),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // Let the rest of the frames arrive, then read the server's CPU for this press.
            tokio::time::sleep(Duration::from_secs_f64(gap_after)).await;
            cpu_ms += (usage(server.pid, ctx.tck).cpu_live_s - c0) * 1e3;
            if shown.len() == n {
                s.all.push(shown.iter().map(|x| x.1).fold(0.0, f64::max));
            } else {
                s.missing += n - shown.len();
                eprintln!(
                    "  press {idx} ({title}): {} of {n} followers did not show it within 5 s",
                    n - shown.len()
                );
            }
            s.first.extend(shown.iter().map(|x| x.0));
            s.screen.extend(shown.iter().map(|x| x.1));
            s.presenter.extend(presenter_ms);
            s.presses += 1;
            idx += 1;
        }
        let u1 = usage(server.pid, ctx.tck);
        let follower_b = (follower_bytes.load(Ordering::Relaxed) - fb0) as f64 / (count * n) as f64;
        let presenter_b = (presenter_bytes.load(Ordering::Relaxed) - pb0) as f64 / count as f64;
        let (all, screen, first, own) = (
            Dist::new(s.all.clone()),
            Dist::new(s.screen.clone()),
            Dist::new(s.first.clone()),
            Dist::new(s.presenter.clone()),
        );
        println!("  {phase} followers, {} presses ({} follower screens missing):", s.presses, s.missing);
        println!("    key -> all {n} followers show the new section, ms: {}", all.line());
        println!("    per follower, key -> new section on screen, ms: {}", screen.line());
        println!("    per follower, key -> first byte, ms: {}", first.line());
        println!("    key -> the presenter's own screen shows it, ms: {}", own.line());
        println!(
            "    channel data per follower per press {follower_b:.0} bytes (presenter {presenter_b:.0}); server CPU {:.2} ms per press ({:.1} us per follower); server RSS {} -> {} KiB",
            cpu_ms / count as f64,
            cpu_ms * 1e3 / (count * n) as f64,
            u0.rss_kib,
            u1.rss_kib
        );
        let record = json!({"presses": s.presses, "missing": s.missing, "all_followers_ms": all.json(),
            "follower_screen_ms": screen.json(), "follower_first_byte_ms": first.json(), "presenter_screen_ms": own.json(),
            "bytes_per_follower_per_press": follower_b, "bytes_presenter_per_press": presenter_b,
            "server_cpu_ms_per_press": cpu_ms / count as f64, "rss_kib_before": u0.rss_kib, "rss_kib_after": u1.rss_kib,
            "gap_before_s": gap_before, "gap_after_s": gap_after});
        series.push((phase, s, record));
    }

    // The presenter leaves, then the followers.
    write.data_bytes(&b"q"[..]).await?;
    let _ = stop_tx.send(true);
    let exit = timeout(STEP, presenter_reader).await.ok().and_then(Result::ok).flatten();
    let _ = timeout(Duration::from_secs(2), handle.disconnect(Disconnect::ByApplication, "", "en")).await;
    let mut quit_ok = 0;
    for f in followers {
        if matches!(timeout(STEP, f).await, Ok(Ok(true))) {
            quit_ok += 1;
        }
    }
    println!("  presenter exit status {exit:?}; {quit_ok}/{n} followers closed cleanly");

    let mut record = serde_json::Map::new();
    record.insert("followers".into(), json!(n));
    record.insert("followers_closed_cleanly".into(), json!(quit_ok));
    for (phase, s, value) in series {
        let all = Dist::new(s.all);
        let screen = Dist::new(s.screen);
        let first = Dist::new(s.first);
        let missing =
            if s.missing > 0 { format!("; {} follower screens missing", s.missing) } else { String::new() };
        ctx.summarize(
            &format!(
                "presenter key -> all {n} followers show the new section, p50 / p90 / max ({phase} followers)"
            ),
            format!(
                "{:.1} / {:.1} / {:.1} ms over {} presses{missing}",
                all.p(0.5),
                all.p(0.9),
                all.p(1.0),
                s.presses
            ),
            "<= 100 ms",
        );
        ctx.summarize(
            &format!(
                "  per follower ({phase}): key -> first byte; -> new section on screen, p50 / p90 / max"
            ),
            format!(
                "{:.1} / {:.1} / {:.1} ms; {:.1} / {:.1} / {:.1} ms",
                first.p(0.5),
                first.p(0.9),
                first.p(1.0),
                screen.p(0.5),
                screen.p(0.9),
                screen.p(1.0)
            ),
            "—",
        );
        record.insert(phase.into(), value);
    }
    ctx.record("presenter", Value::Object(record));
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn run(opts: Opts) -> Result<()> {
    let tck = clk_tck();
    let config = client_config(&opts)?;
    let mut ctx =
        Ctx { opts: opts.clone(), config, tck, results: serde_json::Map::new(), summary: Vec::new() };
    let mut server = Some(match (opts.target, opts.server_pid) {
        (Some(addr), Some(pid)) => Server::external(addr, pid),
        (Some(_), None) => bail!("--target needs --server-pid"),
        _ => Server::spawn(&opts)?,
    });
    {
        let s = server.as_ref().unwrap();
        println!(
            "load: {} at {} (pid {}), user {:?}, client kex {:?} cipher {:?}",
            opts.label,
            s.addr,
            s.pid,
            opts.user,
            opts.kex.as_deref().unwrap_or("russh default"),
            opts.cipher.as_deref().unwrap_or("russh default")
        );
        println!("load average: {}", loadavg());
        warm_up(&ctx, s, 5).await?;
        let u = usage(s.pid, tck);
        println!(
            "server after warm-up: {} KiB RSS, {} KiB PSS, {} processes",
            u.rss_kib, u.pss_kib, u.processes
        );
    }
    let mut failures = Vec::new();
    let mut check = |part: &str, r: Result<()>| {
        if let Err(e) = r {
            eprintln!("[{part}] failed: {e:#}");
            failures.push(part.to_string());
        }
    };
    if opts.has("first") {
        let r = part_first(&mut ctx, server.as_ref().unwrap()).await;
        check("first", r);
    }
    if opts.has("keys") {
        let r = part_keys(&mut ctx, server.as_ref().unwrap()).await;
        check("keys", r);
    }
    if opts.has("ssh") {
        let r = part_ssh(&mut ctx, server.as_ref().unwrap()).await;
        check("ssh", r);
    }
    if opts.has("presenter") {
        let r = part_presenter(&mut ctx).await;
        check("presenter", r);
    }
    if opts.has("rate") {
        let r = part_rate(&mut ctx, server.as_ref().unwrap()).await;
        check("rate", r);
    }
    if opts.has("idle") {
        let r = part_idle(&mut ctx, &mut server).await;
        check("idle", r);
    }
    if let Some(mut s) = server.take() {
        if let Some(log) = &s.log {
            let errors = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("panicked"))
                .count();
            println!("\nserver log: {errors} error lines");
        }
        s.stop();
    }
    println!("load average: {}", loadavg());
    println!("\n| {} | figure | target |", opts.label);
    println!("|---|---|---|");
    for (what, value, target) in &ctx.summary {
        println!("| {what} | {value} | {target} |");
    }
    if let Some(path) = &opts.json {
        let doc = json!({"label": opts.label, "kex": opts.kex, "cipher": opts.cipher, "results": ctx.results,
                         "failures": failures});
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        bail!("parts failed: {failures:?}");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    let known: HashSet<&str> =
        ["first", "rate", "idle", "keys", "ssh", "presenter", "all"].into_iter().collect();
    if let Some(bad) = opts.parts.iter().find(|p| !known.contains(p.as_str())) {
        eprintln!("unknown part {bad}; parts are first, rate, idle, keys, ssh, presenter");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        let hard_limit = Duration::from_secs(30 * 60);
        match timeout(hard_limit, run(opts)).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("the whole run took more than {hard_limit:?}")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
