//! The `keys` part: keystroke -> first byte of the redraw, and bytes per one-line scroll.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use tokio::time::timeout;

use crate::STEP;
use crate::client::{Session, Wire};
use crate::ctx::Ctx;
use crate::procinfo::usage;
use crate::server::Server;
use crate::stats::{Dist, ms};

pub async fn part_keys(ctx: &mut Ctx, server: &Server) -> Result<()> {
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
    // Go to section 6, wait for its tab to show.
    s.channel.data_bytes(&b"6"[..]).await?;
    let deadline = tokio::time::Instant::now() + STEP;
    while !s.vt.screen().contents().contains("6/") {
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
    let cpu0 = usage(server.pid);
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
    let cpu1 = usage(server.pid);
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
