//! Keynote visitors: they arrive at a rate, in turn from several loopback source addresses
//! (standing in for a conference's NAT addresses), and each admitted one then follows the
//! presenter until the room is told to stop.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

use crate::client::{Dial, Session};
use crate::follow::{FOLLOW_BANNER, follow};
use crate::procinfo::{self_cpu_s, usage};
use crate::stage::Room;
use crate::stats::Dist;
use crate::{FOOTER, STEP};

/// A visitor's first frame while a presenter is on: the follow banner and the footer.
fn following(text: &str) -> bool {
    text.contains(FOLLOW_BANNER) && text.contains(FOOTER)
}

/// How one visitor's arrival ended.
enum Arrival {
    /// Connect -> the first complete screen, ms.
    Admitted(f64),
    /// Why the connection ended before a first frame.
    Refused(String),
}

/// One wave of arrivals and what it cost.
pub struct Wave {
    /// Visitors that arrived (admitted or not).
    pub visitors: usize,
    /// TCP connect -> first complete screen of each admitted visitor, ms.
    pub first_ms: Dist,
    /// Visitors whose first frame showed them following.
    pub admitted: usize,
    /// Refused or failed visitors by the first line of the error.
    pub refused: BTreeMap<String, usize>,
    /// From the first arrival to the last answer.
    pub seconds: f64,
    /// Server CPU during the wave (live threads), ms.
    pub server_cpu_ms: f64,
    /// This process's CPU during the wave, ms.
    pub client_cpu_ms: f64,
    /// Server RSS before the first arrival.
    pub rss_kib_before: u64,
    /// Server RSS after the last answer.
    pub rss_kib_after: u64,
}

impl Wave {
    pub fn refused_n(&self) -> usize {
        self.refused.values().sum()
    }

    pub fn json(&self) -> Value {
        json!({"visitors": self.visitors, "admitted": self.admitted, "refused": self.refused,
            "first_frame_ms": self.first_ms.json(), "seconds": self.seconds, "server_cpu_ms": self.server_cpu_ms,
            "client_cpu_ms": self.client_cpu_ms, "rss_kib_before": self.rss_kib_before, "rss_kib_after": self.rss_kib_after})
    }

    /// `12 refused (9 Disconnected ..., 3 kex timeout)`, or `0 refused`.
    pub fn refusals(&self) -> String {
        if self.refused.is_empty() {
            return "0 refused".into();
        }
        let why: Vec<String> = self.refused.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        format!("{} refused ({})", self.refused_n(), why.join("; "))
    }
}

/// The audience: everyone who has arrived so far and the tasks that hold their screens.
pub struct Crowd {
    /// Where the visitors connect.
    server: SocketAddr,
    /// Whose CPU and memory each wave reads.
    server_pid: u32,
    /// The russh client configuration (--kex, --cipher).
    config: Arc<client::Config>,
    /// The SSH user name.
    user: Arc<str>,
    /// Local addresses, used in turn.
    sources: Vec<IpAddr>,
    /// One task per admitted visitor; true when it quit cleanly.
    tasks: Vec<JoinHandle<bool>>,
    /// Cloned into every visitor task.
    results_tx: UnboundedSender<Arrival>,
    /// How each arrival ended.
    results: UnboundedReceiver<Arrival>,
    /// Visitors so far (the next one's id).
    arrived: usize,
}

impl Crowd {
    pub fn new(
        server: SocketAddr,
        server_pid: u32,
        config: Arc<client::Config>,
        user: &str,
        sources: &[IpAddr],
    ) -> Self {
        let (results_tx, results) = unbounded_channel();
        Self {
            server,
            server_pid,
            config,
            user: user.into(),
            sources: sources.to_vec(),
            tasks: Vec::new(),
            results_tx,
            results,
            arrived: 0,
        }
    }

    /// Lets `n` visitors arrive at `rate` per second; returns once each is admitted or refused.
    pub async fn wave(&mut self, room: &Room, n: usize, rate: f64) -> Wave {
        let before = usage(self.server_pid);
        let client_before = self_cpu_s();
        let started = Instant::now();
        for i in 0..n {
            let at = started + Duration::from_secs_f64(i as f64 / rate.max(0.001));
            tokio::time::sleep_until(at.into()).await;
            self.arrive(room);
        }
        let mut wave = self.answers(n).await;
        wave.seconds = started.elapsed().as_secs_f64();
        let after = usage(self.server_pid);
        wave.server_cpu_ms = (after.cpu_live_s - before.cpu_live_s) * 1e3;
        wave.client_cpu_ms = (self_cpu_s() - client_before) * 1e3;
        (wave.rss_kib_before, wave.rss_kib_after) = (before.rss_kib, after.rss_kib);
        wave
    }

    /// Starts the next visitor: connect from its source address, wait for the first frame,
    /// then follow until the room stops.
    fn arrive(&mut self, room: &Room) {
        let who = self.arrived;
        self.arrived += 1;
        let source = self.sources.get(who % self.sources.len().max(1)).copied();
        let (server, config, user) = (self.server, self.config.clone(), self.user.clone());
        let (results, watcher, stop) =
            (self.results_tx.clone(), room.follower(who, FOLLOW_BANNER, true), room.stop_rx());
        self.tasks.push(tokio::spawn(async move {
            let dial = Dial { addr: server, source, user: &user, size: (80, 24) };
            match Session::open_until(dial, config, Arc::default(), false, following).await {
                Ok((s, phases)) => {
                    let _ = results.send(Arrival::Admitted(phases.frame));
                    follow(s, watcher, stop).await
                }
                Err(e) => {
                    let reason =
                        format!("{e:#}").lines().next().unwrap_or_default().chars().take(80).collect();
                    let _ = results.send(Arrival::Refused(reason));
                    false
                }
            }
        }));
    }

    /// Collects `n` answers (bounded: STEP plus 5 s after the last arrival).
    async fn answers(&mut self, n: usize) -> Wave {
        let mut wave = Wave {
            visitors: n,
            first_ms: Dist::default(),
            admitted: 0,
            refused: BTreeMap::new(),
            seconds: 0.0,
            server_cpu_ms: 0.0,
            client_cpu_ms: 0.0,
            rss_kib_before: 0,
            rss_kib_after: 0,
        };
        let deadline = tokio::time::Instant::now() + STEP + Duration::from_secs(5);
        for _ in 0..n {
            match tokio::time::timeout_at(deadline, self.results.recv()).await {
                Ok(Some(Arrival::Admitted(ms))) => {
                    wave.admitted += 1;
                    wave.first_ms.record(ms);
                }
                Ok(Some(Arrival::Refused(reason))) => *wave.refused.entry(reason).or_default() += 1,
                Ok(None) | Err(_) => *wave.refused.entry("no answer in time".into()).or_default() += 1,
            }
        }
        wave
    }

    /// Waits for every visitor's task after the room was told to stop; returns how many quit
    /// cleanly (q, exit-status, close).
    pub async fn close(self) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + self.tasks.len() as u64 / 50);
        let mut clean = 0;
        for task in self.tasks {
            if matches!(tokio::time::timeout_at(deadline, task).await, Ok(Ok(true))) {
                clean += 1;
            }
        }
        clean
    }
}
