//! Counters and gauges an operator scrapes (Prometheus text via `http`), plus the readiness
//! flag. Owns metric names; callers record events through small verb methods and never touch
//! the registry. No I/O here.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set with one `reason`/`end`/`result`/`kind` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    value: &'static str,
}

/// Why a key exchange failed: `kex`, `host-key`, `cipher`, `mac` or `compression` (no common
/// algorithm of that kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Connections being served now (admitted, not yet ended).
    connections_open: Gauge,
    /// Sessions by how they ended (`end` label).
    sessions_ended: Family<Label, Counter>,
    /// Sessions started, by kind (tui, plain, exec).
    sessions_started: Family<Label, Counter>,
    /// Connections refused before SSH, by reason.
    refused: Family<Label, Counter>,
    /// Connections that never finished version/key exchange/auth.
    handshake_failures: Counter,
    /// Key exchanges that found no common algorithm, by kind: who is being turned away.
    kex_failures: Family<ReasonLabel, Counter>,
    bytes_in: Counter,
    bytes_out: Counter,
    /// Time to draw one frame (layout + diff + encode), seconds.
    render_seconds: Histogram,
    /// Content reloads by result (ok, failed).
    reloads: Family<Label, Counter>,
    /// True while the server accepts connections: `/readyz`.
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sshbio");
        let connections_open = Gauge::default();
        registry.register("connections_open", "Connections being served now", connections_open.clone());
        let sessions_started = Family::<Label, Counter>::default();
        registry.register("sessions_started", "Sessions started, by kind", sessions_started.clone());
        let sessions_ended = Family::<Label, Counter>::default();
        registry.register("sessions_ended", "Connections ended, by how they ended", sessions_ended.clone());
        let refused = Family::<Label, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused before SSH, by reason",
            refused.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "handshake_failures",
            "Connections that did not finish version exchange, key exchange and auth",
            handshake_failures.clone(),
        );
        let kex_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "kex_failures",
            "Key exchanges that found no common algorithm, by kind (kex, host-key, cipher, mac, compression)",
            kex_failures.clone(),
        );
        let bytes_in = Counter::default();
        registry.register("bytes_in", "Bytes received from clients", bytes_in.clone());
        let bytes_out = Counter::default();
        registry.register("bytes_out", "Bytes sent to clients", bytes_out.clone());
        let render_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 14));
        registry.register("render_seconds", "Time to draw one frame", render_seconds.clone());
        let reloads = Family::<Label, Counter>::default();
        registry.register("content_reloads", "Content reloads, by result", reloads.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Build information", build);
        Self {
            registry,
            connections_open,
            sessions_ended,
            sessions_started,
            refused,
            handshake_failures,
            kex_failures,
            bytes_in,
            bytes_out,
            render_seconds,
            reloads,
            ready: AtomicBool::new(false),
        }
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
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
        self.sessions_ended.get_or_create(&Label { value: end }).inc();
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
        if handshake_failed {
            self.handshake_failures.inc();
        }
    }

    /// Records a key exchange that failed for want of a common algorithm of kind `reason`.
    pub fn kex_failed(&self, reason: &'static str) {
        self.kex_failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn session_started(&self, kind: &'static str) {
        self.sessions_started.get_or_create(&Label { value: kind }).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Label { value: reason }).inc();
    }

    pub fn rendered(&self, seconds: f64) {
        self.render_seconds.observe(seconds);
    }

    pub fn reloaded(&self, ok: bool) {
        self.reloads.get_or_create(&Label { value: if ok { "ok" } else { "failed" } }).inc();
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_show_up_in_the_text() {
        let m = Metrics::new();
        m.connection_opened();
        m.refused("per-ip-limit");
        m.connection_closed("quit", 10, 20, false);
        m.reloaded(false);
        m.kex_failed("cipher");
        let text = m.encode();
        assert!(text.contains("sshbio_connections_refused_total{value=\"per-ip-limit\"} 1"), "{text}");
        assert!(text.contains("sshbio_sessions_ended_total{value=\"quit\"} 1"), "{text}");
        assert!(text.contains("sshbio_bytes_out_total 20"), "{text}");
        assert!(text.contains("sshbio_content_reloads_total{value=\"failed\"} 1"), "{text}");
        assert!(text.contains("sshbio_build_info{version="), "{text}");
        assert!(text.contains("sshbio_kex_failures_total{reason=\"cipher\"} 1"), "{text}");
    }
}
