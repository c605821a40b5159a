//! Command-line options of the load generator and the counts each part uses by default.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "load", about = "sshbio load generator (cargo bench --bench load -- [options])")]
pub struct Opts {
    /// Which parts to run, comma separated: first, rate, idle, keys, ssh, presenter, keynote
    /// (`all` is every part; keynote runs only when named or with `all`).
    #[arg(long, value_delimiter = ',', default_value = "first,rate,idle,keys,ssh,presenter")]
    pub parts: Vec<String>,
    /// Small counts everywhere (about a minute); explicit count options still win.
    #[arg(long)]
    pub quick: bool,
    /// Sequential sessions for the first-frame latency.
    #[arg(long)]
    pub first: Option<usize>,
    /// Parallelism levels for the session-rate part.
    #[arg(long, value_delimiter = ',')]
    pub parallel: Option<Vec<usize>>,
    /// Seconds each parallelism level runs.
    #[arg(long)]
    pub rate_secs: Option<f64>,
    /// Most sessions per parallelism level.
    #[arg(long)]
    pub rate_max: Option<usize>,
    /// Open idle sessions to hold, one level after the other.
    #[arg(long, value_delimiter = ',')]
    pub idle: Option<Vec<usize>>,
    /// Seconds of the quiet window in which idle CPU and bytes are measured.
    #[arg(long)]
    pub idle_window: Option<f64>,
    /// Keep one server for every idle level (default: a fresh server per level); with
    /// `--idle 1000,1000` this shows whether closed sessions' memory is reused.
    #[arg(long)]
    pub idle_reuse: bool,
    /// After the quiet window, a longer window (seconds; 0 = none) that covers a whole
    /// keepalive interval, to measure what keepalives cost per session.
    #[arg(long)]
    pub idle_long: Option<f64>,
    /// While the idle sessions are held: more visitors arrive at this rate (sessions per second)
    /// for --idle-churn-secs and stay until it ends, as at a talk, so the audience count changes
    /// every tick; shows what the idle sessions receive and cost meanwhile. 0 = skip.
    #[arg(long)]
    pub idle_churn: Option<f64>,
    /// Seconds of churn (see --idle-churn).
    #[arg(long, default_value_t = 8.0)]
    pub idle_churn_secs: f64,
    /// Seconds between the last idle session opening and the memory reading.
    #[arg(long, default_value_t = 5.0)]
    pub idle_settle: f64,
    /// Sessions being set up at once while opening the idle sessions.
    #[arg(long, default_value_t = 32)]
    pub idle_concurrency: usize,
    /// Keystrokes (alternating j/k) for the keystroke latency.
    #[arg(long)]
    pub keys: Option<usize>,
    /// Terminal size for the keystroke part, COLSxROWS (small, so the section scrolls).
    #[arg(long, default_value = "60x14")]
    pub keys_size: String,
    /// Runs of the real OpenSSH client.
    #[arg(long)]
    pub ssh: Option<usize>,
    /// How the OpenSSH client gets its terminal: `script` (a real 80x24 pty) or `pipe`
    /// (`ssh -tt` with pipes; the server sees a 0x0 pty).
    #[arg(long, value_delimiter = ',', default_value = "script,pipe")]
    pub ssh_via: Vec<String>,
    /// Followers (80x24 visitors) in the presenter part.
    #[arg(long)]
    pub followers: Option<usize>,
    /// Section-key presses of the presenter while the followers are active (a press every
    /// --press-gap seconds).
    #[arg(long)]
    pub presses: Option<usize>,
    /// Seconds between the presenter's presses (after every follower showed the last one).
    #[arg(long, default_value_t = 0.25)]
    pub press_gap: f64,
    /// Further presses, each after --hibernated-gap seconds of quiet, when every screen has
    /// freed its buffers (sshbio hibernates a screen after 3 s): the usual case in a talk.
    #[arg(long)]
    pub presses_hibernated: Option<usize>,
    /// Seconds of quiet before each of the --presses-hibernated presses.
    #[arg(long, default_value_t = 4.0)]
    pub hibernated_gap: f64,
    /// Keynote part: visitors who arrive (each follows the presenter), at most this many.
    #[arg(long)]
    pub visitors: Option<usize>,
    /// Keynote part: visitors arriving per second.
    #[arg(long, default_value_t = 100.0)]
    pub arrival_rate: f64,
    /// Keynote part: the loopback addresses the visitors connect from, in turn (they stand in
    /// for a conference's NAT addresses), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5")]
    pub sources: Vec<IpAddr>,
    /// Keynote part: the presenter's moves once the room is in.
    #[arg(long)]
    pub moves: Option<usize>,
    /// Keynote part: seconds between the presenter's moves (over 3 s, so every screen has
    /// hibernated in between, as during a talk).
    #[arg(long, default_value_t = 4.0)]
    pub move_every: f64,
    /// Keynote part: seconds in which a few more visitors arrive (--late-rate) while the room
    /// sits still, so the audience count changes; 0 = skip.
    #[arg(long)]
    pub late_secs: Option<f64>,
    /// Keynote part: late visitors per second during --late-secs.
    #[arg(long, default_value_t = 5.0)]
    pub late_rate: f64,
    /// Keynote part: extra arguments for its server only (one string, split on spaces), e.g.
    /// "--max-per-ip 3000". Without them it keeps the server's own admission defaults.
    #[arg(long, allow_hyphen_values = true)]
    pub keynote_server_args: Option<String>,
    /// Drive an already running server at this address instead of spawning sshbio.
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// With --target: the pid of the server's main process (its whole process tree is measured).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// SSH user name the clients log in as.
    #[arg(long, default_value = "bench")]
    pub user: String,
    /// Content file for the spawned server.
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// Extra arguments for the spawned server (one string, split on spaces).
    #[arg(long, allow_hyphen_values = true)]
    pub server_args: Option<String>,
    /// The server binary to spawn (default: the one cargo built with this bench).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Environment for the spawned server, NAME=VALUE (repeatable), e.g.
    /// MALLOC_MMAP_THRESHOLD_=65536.
    #[arg(long)]
    pub server_env: Vec<String>,
    /// Run the spawned server under this command (e.g. "valgrind --tool=massif").
    #[arg(long, allow_hyphen_values = true)]
    pub server_wrapper: Option<String>,
    /// Client key-exchange preference, comma separated (default: russh's, mlkem768x25519 first).
    #[arg(long)]
    pub kex: Option<String>,
    /// Client cipher preference, comma separated (default: russh's, chacha20-poly1305 first).
    #[arg(long)]
    pub cipher: Option<String>,
    /// Label for this run in the summary and JSON.
    #[arg(long, default_value = "sshbio")]
    pub label: String,
    /// Write every figure as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the raw bytes of the first 80x24 frame here.
    #[arg(long)]
    pub dump_frame: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Opts {
    pub fn has(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part || p == "all")
    }
    pub fn first_n(&self) -> usize {
        self.first.unwrap_or(if self.quick { 100 } else { 400 })
    }
    pub fn parallel_levels(&self) -> Vec<usize> {
        self.parallel.clone().unwrap_or_else(|| vec![1, 8, 32])
    }
    pub fn rate_secs(&self) -> f64 {
        self.rate_secs.unwrap_or(if self.quick { 2.0 } else { 6.0 })
    }
    pub fn rate_max(&self) -> usize {
        self.rate_max.unwrap_or(if self.quick { 1_000 } else { 5_000 })
    }
    pub fn idle_levels(&self) -> Vec<usize> {
        self.idle.clone().unwrap_or_else(|| if self.quick { vec![1_000] } else { vec![1_000, 10_000] })
    }
    pub fn idle_window(&self) -> f64 {
        self.idle_window.unwrap_or(if self.quick { 5.0 } else { 8.0 })
    }
    pub fn idle_churn(&self) -> f64 {
        self.idle_churn.unwrap_or(if self.quick { 0.0 } else { 2.0 })
    }
    pub fn idle_long(&self) -> f64 {
        self.idle_long.unwrap_or(if self.quick { 0.0 } else { 16.0 })
    }
    pub fn keys_n(&self) -> usize {
        self.keys.unwrap_or(if self.quick { 100 } else { 400 })
    }
    pub fn ssh_n(&self) -> usize {
        self.ssh.unwrap_or(if self.quick { 10 } else { 40 })
    }
    pub fn followers_n(&self) -> usize {
        self.followers.unwrap_or(50)
    }
    pub fn presses_n(&self) -> usize {
        self.presses.unwrap_or(if self.quick { 10 } else { 30 })
    }
    pub fn presses_hibernated_n(&self) -> usize {
        self.presses_hibernated.unwrap_or(if self.quick { 2 } else { 5 })
    }
    pub fn visitors_n(&self) -> usize {
        self.visitors.unwrap_or(if self.quick { 300 } else { 3_000 })
    }
    pub fn moves_n(&self) -> usize {
        self.moves.unwrap_or(if self.quick { 3 } else { 6 })
    }
    pub fn late_secs(&self) -> f64 {
        self.late_secs.unwrap_or(if self.quick { 5.0 } else { 10.0 })
    }
}
