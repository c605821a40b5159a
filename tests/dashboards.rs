//! The Grafana dashboard (deploy/grafana/sshbio.json) and the Prometheus alerts
//! (deploy/prometheus/alerts.yaml) against a real server's `/metrics`: every metric they query
//! is one the server exports, with the suffix its type gives it (`_total`, `_bucket`, ...), and
//! every label they select or group by is one those metrics carry. A renamed metric or label
//! fails here, not on stage day. (deploy/check.sh adds promtool's syntax check and alert tests.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

/// Labels Prometheus adds to every scraped series, not the server.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Every `expr` of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string("deploy/grafana/sshbio.json").unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(queries.len() > 10, "the dashboard's queries: {queries:?}");
    queries
}

/// Every `expr:` of the alert rules, folded block scalars (`>-`) included.
fn alert_queries() -> Vec<String> {
    let text = std::fs::read_to_string("deploy/prometheus/alerts.yaml").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut queries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if let Some(rest) = line.trim_start().strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('>') || rest.starts_with('|') {
                let mut expr = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    if !next.trim().is_empty() && next.len() - next.trim_start().len() <= indent {
                        break;
                    }
                    expr.push(next.trim());
                    i += 1;
                }
                queries.push(expr.join(" "));
            } else {
                queries.push(rest.to_owned());
            }
        }
        i += 1;
    }
    assert!(queries.len() >= 3, "the alerts' queries: {queries:?}");
    queries
}

/// The `sshbio_*` names a PromQL expression reads, and the label names it selects on or groups
/// by (`by (...)`, `without (...)`, `{name="..."}` after a metric).
fn names_and_labels(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for (at, _) in expr.match_indices("sshbio_") {
        if expr[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        let name: String = expr[at..].chars().take_while(|&c| word(c)).collect();
        let after = &expr[at + name.len()..];
        if let Some(matchers) = after.strip_prefix('{') {
            let matchers = matchers.split('}').next().unwrap();
            for matcher in matchers.split(',').filter(|m| !m.trim().is_empty()) {
                let label: String = matcher.trim().chars().take_while(|&c| word(c)).collect();
                labels.insert(label);
            }
        }
        names.insert(name);
    }
    for keyword in ["by (", "without ("] {
        for (at, _) in expr.match_indices(keyword) {
            let list = expr[at + keyword.len()..].split(')').next().unwrap();
            labels.extend(list.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()));
        }
    }
    (names, labels)
}

/// Sample names (`name` of `name{...} value` lines) and label names in a /metrics text.
fn exported(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name: String = line.chars().take_while(|&c| c != '{' && c != ' ').collect();
        if let Some(set) = line[name.len()..].strip_prefix('{') {
            let set = set.split('}').next().unwrap();
            labels.extend(set.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.to_owned()));
        }
        samples.insert(name);
    }
    (samples, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_the_dashboard_and_alerts_query_is_exported() {
    let queries: Vec<String> = dashboard_queries().into_iter().chain(alert_queries()).collect();
    let mut wanted_names = BTreeSet::new();
    let mut wanted_labels = BTreeSet::new();
    for q in &queries {
        let (names, labels) = names_and_labels(q);
        assert!(!names.is_empty(), "a query that reads no sshbio metric: {q}");
        wanted_names.extend(names);
        wanted_labels.extend(labels);
    }

    // A real server with every optional metric switched on: Redis configured (nobody listens
    // there, so the bridge is down: sshbio_redis_connected 0), and a per-address limit of one so
    // a second connection is refused.
    let dir = temp_dir("dashboards");
    std::fs::copy("tests/fixtures/lb-person.toml", dir.join("content.toml")).unwrap();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let redis = format!("redis://127.0.0.1:{}/", free_port());
    let server = Process::start(
        &dir,
        &["--metrics-listen", &metrics.to_string(), "--redis", &redis, "--max-per-ip", "1"],
    );
    // A session that ends (sessions, ends, first frames), a refusal, a reload.
    // The refusal first: the visitor's connection holds the one slot until its session ends.
    let conn = connect(server.addr, "visitor").await;
    assert!(try_connect(server.addr, "second").await.is_err(), "refused: one connection per address");
    let text = plain_shell(&conn).await;
    assert!(String::from_utf8_lossy(&text.raw).contains("Marta Quillfeather"));
    disconnect(conn).await;
    server.signal("HUP");

    let deadline = Instant::now() + WAIT;
    let (missing_names, missing_labels, body) = loop {
        let (status, body) =
            tokio::task::spawn_blocking(move || http_get(metrics, "/metrics")).await.unwrap();
        assert_eq!(status, 200);
        let (samples, labels) = exported(&body);
        let missing_names: Vec<_> = wanted_names.iter().filter(|n| !samples.contains(*n)).cloned().collect();
        let missing_labels: Vec<_> = wanted_labels
            .iter()
            .filter(|l| !labels.contains(*l) && !TARGET_LABELS.contains(&l.as_str()))
            .cloned()
            .collect();
        if (missing_names.is_empty() && missing_labels.is_empty()) || Instant::now() > deadline {
            break (missing_names, missing_labels, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(missing_names.is_empty(), "queried but not exported: {missing_names:?}\n/metrics:\n{body}");
    assert!(
        missing_labels.is_empty(),
        "labels queried but on no metric: {missing_labels:?}\n/metrics:\n{body}"
    );
}

#[test]
fn the_query_reader_finds_names_and_labels() {
    let (names, labels) = names_and_labels(
        r#"sum by (reason) (rate(sshbio_connections_refused_total{reason!="shutting-down",job=~"$job"}[5m])) / sum(sshbio_ready)"#,
    );
    assert_eq!(names, BTreeSet::from(["sshbio_connections_refused_total".into(), "sshbio_ready".into()]));
    assert_eq!(labels, BTreeSet::from(["reason".into(), "job".into()]));
    let alerts = alert_queries();
    assert!(alerts.iter().any(|q| q.contains(" and ")), "folded expressions are read whole: {alerts:?}");
}
