//! Counters, gauges and histograms an operator scrapes (Prometheus text via `http`), plus the
//! readiness flag. Owns metric names, label names and help texts; callers record events
//! through small verb methods and never touch the registry. No I/O here.
//!
//! Conventions (<https://prometheus.io/docs/practices/naming/>): every name starts with
//! `sshbio_`, counters end in `_total`, units are in the name (`_seconds`, `_bytes`), and a
//! label's name says what it holds (`end`, `reason`, `kind`, `result`). Gauges describe this
//! process (this replica); sum them over replicas for the whole room.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// How a connection ended (`sshbio::ssh::End::as_str`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabel {
    end: &'static str,
}

/// Why a connection was refused before SSH.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// What a session shows: `tui`, `plain` or `exec`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// How an operation came out: `ok` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// A family member without labels: a gauge that has no sample until first set.
type NoLabels = [(&'static str, &'static str); 0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    /// What `/metrics` encodes; holds a clone of every metric below.
    registry: Registry,
    /// Connections being served now (admitted, not yet ended): the load on this replica.
    connections_open: Gauge,
    /// Connections still in version exchange, key exchange or authentication: a pile-up
    /// here is a slow-handshake flood, not visitors.
    handshakes_in_progress: Gauge,
    /// Connections by how they ended (`end`), to tell quits from idle timeouts and stalls.
    connections_closed: Family<EndLabel, Counter>,
    /// Sessions started, by `kind`.
    sessions_started: Family<KindLabel, Counter>,
    /// Sessions open now, by `kind`: how many people are reading at this moment.
    sessions_open: Family<KindLabel, Gauge>,
    /// Connections refused before SSH, by `reason`: limits at work (or too tight).
    refused: Family<ReasonLabel, Counter>,
    /// Connections that never finished version/key exchange/auth: scanners and probes.
    handshake_failures: Counter,
    /// Key exchanges that found no common algorithm, by `reason` (`kex`, `host-key`, `cipher`,
    /// `mac`, `compression`): which clients are being turned away, and why.
    kex_failures: Family<ReasonLabel, Counter>,
    /// Traffic, for bandwidth planning.
    received_bytes: Counter,
    sent_bytes: Counter,
    /// Time to draw one frame (layout + diff + encode).
    frame_render_seconds: Histogram,
    /// Time to draw a session's first screen: what a visitor waits for after the handshake.
    first_frame_render_seconds: Histogram,
    /// Content reloads by `result`: a failed one keeps the old bio, which someone should fix.
    reloads: Family<ResultLabel, Counter>,
    /// Visitors on this replica following the presenter.
    followers: Gauge,
    /// 1 while a presenter is connected to this replica.
    presenter_connected: Gauge,
    /// Visitors in the whole room as this replica counts them (its own plus other replicas'
    /// through Redis): what every header shows.
    room_visitors: Gauge,
    /// 1 while the Redis bridge is up; no sample without `--redis`, so alerts on it only
    /// fire for replicas that are meant to share a room.
    redis_connected: Family<NoLabels, Gauge>,
    /// 1 while the server accepts connections, as `/readyz` says.
    ready_gauge: Gauge,
    /// True while the server accepts connections: `/readyz`.
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one connection in the handshake until dropped (when it authenticates or ends).
#[must_use = "the handshake is counted until this is dropped"]
pub struct Handshake {
    gauge: Gauge,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Metrics {
    /// Registers every metric. One flat list on purpose (about 140 lines): it is the table of
    /// names, help texts and units that `/metrics` shows, in that order, and reads best whole.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sshbio");
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "TCP connections being served now (admitted, not yet closed), on this replica",
            connections_open.clone(),
        );
        let handshakes_in_progress = Gauge::default();
        registry.register(
            "handshakes_in_progress",
            "Connections still in SSH version exchange, key exchange or authentication",
            handshakes_in_progress.clone(),
        );
        let connections_closed = Family::<EndLabel, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections closed, by how they ended (end: quit, idle, limit, stalled, shutdown, \
             handshake-timeout, error, client-gone)",
            connections_closed.clone(),
        );
        let sessions_started = Family::<KindLabel, Counter>::default();
        registry.register(
            "sessions_started",
            "Sessions started, by kind (kind: tui = the interactive UI, plain = ssh -T text, \
             exec = a command)",
            sessions_started.clone(),
        );
        let sessions_open = Family::<KindLabel, Gauge>::default();
        registry.register(
            "sessions_open",
            "Sessions open now, by kind (tui, plain, exec)",
            sessions_open.clone(),
        );
        let refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused before any SSH work, by reason (reason: server-full, per-ip-limit, \
             rate-limit, shutting-down, proxy-header)",
            refused.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "handshake_failures",
            "Connections that closed before finishing version exchange, key exchange and auth \
             (scanners, probes, timeouts)",
            handshake_failures.clone(),
        );
        let kex_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "kex_failures",
            "Key exchanges that found no common algorithm, by reason (kex, host-key, cipher, mac, \
             compression): clients being turned away",
            kex_failures.clone(),
        );
        let received_bytes = Counter::default();
        registry.register_with_unit(
            "received",
            "Bytes received from clients (SSH, after any PROXY header)",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let sent_bytes = Counter::default();
        registry.register_with_unit("sent", "Bytes sent to clients", Unit::Bytes, sent_bytes.clone());
        let frame_render_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 14));
        registry.register_with_unit(
            "frame_render",
            "Time to draw one frame of the UI (layout, diff against the last frame, encode)",
            Unit::Seconds,
            frame_render_seconds.clone(),
        );
        let first_frame_render_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 14));
        registry.register_with_unit(
            "first_frame_render",
            "Time to produce a session's first screen (shared by visitors arriving together)",
            Unit::Seconds,
            first_frame_render_seconds.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "content_reloads",
            "Content file reloads, by result (result: ok, failed = the old bio stays)",
            reloads.clone(),
        );
        let followers = Gauge::default();
        registry.register("followers", "Visitors on this replica following the presenter", followers.clone());
        let presenter_connected = Gauge::default();
        registry.register(
            "presenter_connected",
            "1 while a presenter is connected to this replica, else 0",
            presenter_connected.clone(),
        );
        let room_visitors = Gauge::default();
        registry.register(
            "room_visitors",
            "Interactive visitors in the whole room as this replica counts them (its own plus \
             other replicas' through Redis): the number every header shows",
            room_visitors.clone(),
        );
        let redis_connected = Family::<NoLabels, Gauge>::default();
        registry.register(
            "redis_connected",
            "1 while the Redis bridge that shares the room is up, 0 while it reconnects; \
             absent without --redis",
            redis_connected.clone(),
        );
        let ready_gauge = Gauge::default();
        registry.register(
            "ready",
            "1 while the server accepts SSH connections (what /readyz answers), else 0",
            ready_gauge.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Always 1; the version label says which sshbio runs", build);
        Self {
            registry,
            connections_open,
            handshakes_in_progress,
            connections_closed,
            sessions_started,
            sessions_open,
            refused,
            handshake_failures,
            kex_failures,
            received_bytes,
            sent_bytes,
            frame_render_seconds,
            first_frame_render_seconds,
            reloads,
            followers,
            presenter_connected,
            room_visitors,
            redis_connected,
            ready_gauge,
            ready: AtomicBool::new(false),
        }
    }

    /// Counts a new connection; the returned guard counts its handshake until dropped.
    pub fn connection_opened(&self) -> Handshake {
        self.connections_open.inc();
        self.handshakes_in_progress.inc();
        Handshake { gauge: self.handshakes_in_progress.clone() }
    }

    /// Records a finished connection: how it ended and its traffic.
    pub fn connection_closed(
        &self,
        end: &'static str,
        bytes_in: u64,
        bytes_out: u64,
        handshake_failed: bool,
    ) {
        self.connections_open.dec();
        self.connections_closed.get_or_create(&EndLabel { end }).inc();
        self.received_bytes.inc_by(bytes_in);
        self.sent_bytes.inc_by(bytes_out);
        if handshake_failed {
            self.handshake_failures.inc();
        }
    }

    /// Counts a session of `kind` as started and open until the guard is dropped.
    pub fn session_started(&self, kind: &'static str) -> OpenSession {
        self.sessions_started.get_or_create(&KindLabel { kind }).inc();
        let gauge = self.sessions_open.get_or_create(&KindLabel { kind }).clone();
        gauge.inc();
        OpenSession { gauge }
    }

    /// Records a key exchange that failed for want of a common algorithm of kind `reason`.
    pub fn kex_failed(&self, reason: &'static str) {
        self.kex_failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn rendered(&self, seconds: f64) {
        self.frame_render_seconds.observe(seconds);
    }

    /// Runs `draw` (a session's first frame) and records how long it took.
    pub fn time_first_frame<T>(&self, draw: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let frame = draw();
        self.first_frame_render_seconds.observe(started.elapsed().as_secs_f64());
        frame
    }

    pub fn reloaded(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabel { result: if ok { "ok" } else { "failed" } }).inc();
    }

    /// Samples the room as this replica sees it (once per audience tick).
    /// The room's figures, sampled by the server once a second: visitors following here, a
    /// presenter connected here, and visitors in the whole room (all replicas).
    pub fn sample_room(&self, following_here: usize, presenting_here: bool, room_visitors: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.followers.set(gauge(following_here));
        self.presenter_connected.set(i64::from(presenting_here));
        self.room_visitors.set(gauge(room_visitors));
    }

    /// The Redis bridge came up (`true`) or was lost (`false`).
    pub fn redis_connected(&self, up: bool) {
        self.redis_connected.get_or_create(&[]).set(i64::from(up));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.ready_gauge.set(i64::from(ready));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts one open session in `sshbio_sessions_open` until dropped.
#[must_use = "the session is counted as open until this is dropped"]
pub struct OpenSession {
    gauge: Gauge,
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_show_up_in_the_text_with_named_labels() {
        let m = Metrics::new();
        let handshake = m.connection_opened();
        assert!(m.encode().contains("sshbio_handshakes_in_progress 1\n"));
        drop(handshake);
        m.refused("per-ip-limit");
        m.kex_failed("cipher");
        assert!(m.encode().contains("sshbio_kex_failures_total{reason=\"cipher\"} 1"));
        let session = m.session_started("tui");
        assert!(m.encode().contains("sshbio_sessions_open{kind=\"tui\"} 1\n"));
        drop(session);
        m.connection_closed("quit", 10, 20, false);
        m.reloaded(false);
        // Three visitors here, all following a presenter connected here.
        m.sample_room(3, true, 3);
        let _: Vec<u8> = m.time_first_frame(Vec::new);
        let text = m.encode();
        for line in [
            "sshbio_connections_refused_total{reason=\"per-ip-limit\"} 1\n",
            "sshbio_connections_closed_total{end=\"quit\"} 1\n",
            "sshbio_sessions_started_total{kind=\"tui\"} 1\n",
            "sshbio_sessions_open{kind=\"tui\"} 0\n",
            "sshbio_handshakes_in_progress 0\n",
            "sshbio_connections_open 0\n",
            "sshbio_sent_bytes_total 20\n",
            "sshbio_received_bytes_total 10\n",
            "sshbio_content_reloads_total{result=\"failed\"} 1\n",
            "sshbio_followers 3\n",
            "sshbio_presenter_connected 1\n",
            "sshbio_room_visitors 3\n",
            "sshbio_first_frame_render_seconds_count 1\n",
            "sshbio_build_info{version=",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(!text.contains("value="), "no label is called value:\n{text}");
    }

    #[test]
    fn redis_gauge_appears_only_once_configured() {
        let m = Metrics::new();
        assert!(!m.encode().contains("sshbio_redis_connected "), "no sample without --redis");
        m.redis_connected(false);
        assert!(m.encode().contains("sshbio_redis_connected 0\n"));
        m.redis_connected(true);
        assert!(m.encode().contains("sshbio_redis_connected 1\n"));
    }

    #[test]
    fn every_metric_has_help_and_counters_end_in_total() {
        let m = Metrics::new();
        m.refused("rate-limit");
        m.connection_closed("idle", 0, 0, true);
        drop(m.session_started("plain"));
        m.reloaded(true);
        let text = m.encode();
        let mut types = 0;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
            types += 1;
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(name.starts_with("sshbio_"), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no help");
            if kind == "counter" {
                assert!(text.contains(&format!("\n{name}_total")), "{name}: counter samples end in _total");
            }
        }
        assert!(types >= 17, "{types} metrics:\n{text}");
    }
}
