//! What every part shares: the options, the client configuration, and the figures so far.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use russh::client;
use serde_json::Value;

use crate::client::Session;
use crate::opts::Opts;
use crate::procinfo::usage;
use crate::server::Server;

pub struct Ctx {
    /// The command line.
    pub opts: Opts,
    /// The russh client configuration every session uses (--kex, --cipher).
    pub config: Arc<client::Config>,
    /// Every part's figures, for --json.
    pub results: serde_json::Map<String, Value>,
    /// The headline figures (what, value, target), printed as a table at the end.
    pub summary: Vec<(String, String, String)>,
}

impl Ctx {
    pub fn record(&mut self, key: &str, value: Value) {
        self.results.insert(key.into(), value);
    }
    pub fn summarize(&mut self, what: &str, value: String, target: &str) {
        println!("  => {what}: {value}   (target {target})");
        self.summary.push((what.into(), value, target.into()));
    }
}

pub async fn warm_up(ctx: &Ctx, server: &Server, n: usize) -> Result<()> {
    for _ in 0..n {
        let (s, _) =
            Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, (80, 24), Arc::default(), false)
                .await?;
        s.quit().await?;
    }
    Ok(())
}

/// Waits until the server tree is back to `processes` processes (sshd reaps asynchronously).
pub async fn settle(server: &Server, processes: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while usage(server.pid).processes > processes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
