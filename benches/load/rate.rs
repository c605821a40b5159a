//! The `rate` part: full sessions per second at several levels of parallelism.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use russh::client;
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::client::Session;
use crate::ctx::{Ctx, settle};
use crate::procinfo::{self_cpu_s, usage};
use crate::server::Server;
use crate::stats::{Dist, ms};

pub async fn part_rate(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let secs = ctx.opts.rate_secs();
    let max = ctx.opts.rate_max();
    println!(
        "\n[rate] full sessions (connect .. first frame .. q .. exit-status + close), {secs} s or {max} sessions per level"
    );
    let mut levels = Vec::new();
    let base_processes = usage(server.pid).processes;
    for parallel in ctx.opts.parallel_levels() {
        levels.push(level(ctx, server, base_processes, parallel).await?);
    }
    ctx.record("rate", Value::Array(levels));
    Ok(())
}

/// `parallel` workers opening and closing full sessions for --rate-secs or --rate-max sessions.
async fn level(ctx: &mut Ctx, server: &Server, base_processes: usize, parallel: usize) -> Result<Value> {
    settle(server, base_processes).await;
    let before = usage(server.pid);
    let client_before = self_cpu_s();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(ctx.opts.rate_secs());
    let issued = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let (config, user, addr, issued) =
            (ctx.config.clone(), ctx.opts.user.clone(), server.addr, issued.clone());
        let max = ctx.opts.rate_max();
        workers.push(tokio::spawn(async move { worker(addr, config, &user, deadline, &issued, max).await }));
    }
    let mut durations = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (ok, e) = w.await?;
        durations.extend(ok);
        errors += e;
    }
    let wall = started.elapsed().as_secs_f64();
    let client_cpu = self_cpu_s() - client_before;
    settle(server, base_processes).await;
    let after = usage(server.pid);
    let n = durations.len();
    let cpu_ms = (after.cpu_s - before.cpu_s) * 1e3 / n.max(1) as f64;
    let rate = n as f64 / wall;
    let d = Dist::new(durations);
    println!(
        "  {parallel:>3} parallel: {n} sessions in {wall:.2} s = {rate:.0}/s; server CPU {cpu_ms:.3} ms/session, client CPU {:.3} ms/session; session ms {}; errors {errors}",
        client_cpu * 1e3 / n.max(1) as f64,
        d.line()
    );
    ctx.summarize(
        &format!("full sessions/s at {parallel} parallel (server CPU per session)"),
        format!("{rate:.0}/s ({cpu_ms:.2} ms)"),
        if parallel >= 32 { ">= 1 000/s, <= 1.0 ms CPU" } else { "<= 1.0 ms CPU" },
    );
    Ok(json!({"parallel": parallel, "sessions": n, "wall_s": wall, "per_s": rate,
        "server_cpu_ms_per_session": cpu_ms, "client_cpu_ms_per_session": client_cpu * 1e3 / n.max(1) as f64,
        "session_ms": d.json(), "errors": errors}))
}

/// Full sessions one after the other until `deadline` or `max` issued in all; returns each
/// session's ms and the number of errors.
async fn worker(
    addr: SocketAddr,
    config: Arc<client::Config>,
    user: &str,
    deadline: Instant,
    issued: &AtomicUsize,
    max: usize,
) -> (Vec<f64>, usize) {
    let mut ok = Vec::new();
    let mut errors = 0usize;
    while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
        let t0 = Instant::now();
        let run = async {
            let (s, _) = Session::open(addr, config.clone(), user, (80, 24), Arc::default(), false).await?;
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
}
