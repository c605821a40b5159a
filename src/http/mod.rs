//! The operator's HTTP routes (served when `--metrics-listen` is set): `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (it accepts SSH connections). Plain HTTP/1.1 via axum; no SSH knowledge.
//!
//! `web` is the HTML companion page and `/bio.json`, `style` (with `page.css`) its stylesheet.
//! Must not import `ssh`, `tui` or `server`.

mod style;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// The routes, for the listener and for tests.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.encode())
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
