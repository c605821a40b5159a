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

/// Per key: latency to the first byte of the redraw, and the bytes of the whole redraw.
#[derive(Default)]
struct Strokes {
    /// Key -> first byte of the redraw, ms.
    latency: Dist,
    /// Channel data of the whole redraw.
    bytes: Dist,
    /// Wire bytes received for it.
    wire_rx: Dist,
    /// Wire bytes sent for it (the key).
    wire_tx: Dist,
    /// Keys that brought no redraw within 2 s.
    missing: usize,
}

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
    let mut s = open_section_6(ctx, server, (cols, rows), wire.clone()).await?;
    let cpu0 = usage(server.pid);
    let k = press_keys(&mut s, &wire, n, (cols, rows)).await?;
    let cpu1 = usage(server.pid);
    // Server CPU per redrawn key (decoding, the app, ratatui's diff, encoding, the channel).
    let cpu_us = (cpu1.cpu_live_s - cpu0.cpu_live_s) * 1e6 / k.latency.len().max(1) as f64;
    s.quit().await?;
    report(ctx, &k, cpu_us, (cols, rows));
    Ok(())
}

/// A session at `size` showing section 6 (its tab `6/` on screen, the frame complete).
async fn open_section_6(ctx: &Ctx, server: &Server, size: (u16, u16), wire: Arc<Wire>) -> Result<Session> {
    let (mut s, _) =
        Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, size, wire, false).await?;
    // Go to section 6, wait for its numbered title to show.
    s.screen.channel.data_bytes(&b"6"[..]).await?;
    let deadline = tokio::time::Instant::now() + STEP;
    while !s.screen.vt.screen().contents().contains("06  ") {
        let msg = tokio::time::timeout_at(deadline, s.screen.channel.wait())
            .await
            .map_err(|_| anyhow!("section 6 did not show; screen:\n{}", s.screen.vt.screen().contents()))?;
        s.screen.absorb(msg);
    }
    // Let the rest of that frame arrive.
    while let Ok(msg) = timeout(Duration::from_millis(50), s.screen.channel.wait()).await {
        s.screen.absorb(msg);
    }
    Ok(s)
}

/// `n` keys, alternately j and k, each after the previous redraw (at most 60 s in all).
async fn press_keys(s: &mut Session, wire: &Wire, n: usize, (cols, rows): (u16, u16)) -> Result<Strokes> {
    let mut k = Strokes::default();
    let started = Instant::now();
    for i in 0..n {
        let key: &[u8] = if i % 2 == 0 { b"j" } else { b"k" };
        let (b0, rx0, tx0) =
            (s.screen.received, wire.rx.load(Ordering::Relaxed), wire.tx.load(Ordering::Relaxed));
        let t0 = Instant::now();
        s.screen.channel.data_bytes(key).await?;
        let Some(first) = first_byte(s, t0).await? else {
            k.missing += 1;
            if k.missing == 1 {
                eprintln!("  no redraw for key {i}; screen:\n{}", s.screen.vt.screen().contents());
            }
            if k.missing > 3 {
                bail!("the section does not scroll at {cols}x{rows}");
            }
            continue;
        };
        // The rest of the redraw: whatever arrives until 5 ms of quiet.
        while let Ok(msg) = timeout(Duration::from_millis(5), s.screen.channel.wait()).await {
            s.screen.absorb(msg);
        }
        k.latency.record(ms(first));
        k.bytes.record((s.screen.received - b0) as f64);
        k.wire_rx.record((wire.rx.load(Ordering::Relaxed) - rx0) as f64);
        k.wire_tx.record((wire.tx.load(Ordering::Relaxed) - tx0) as f64);
        if started.elapsed() > Duration::from_secs(60) {
            println!("  stopping early: 60 s passed");
            break;
        }
    }
    Ok(k)
}

/// The time from `t0` to the first byte of the redraw; None after 2 s without one.
async fn first_byte(s: &mut Session, t0: Instant) -> Result<Option<Duration>> {
    loop {
        match timeout(Duration::from_secs(2), s.screen.channel.wait()).await {
            Ok(msg) => {
                let was = s.screen.received;
                if !s.screen.absorb(msg) {
                    bail!("channel closed during keys");
                }
                if s.screen.received > was {
                    return Ok(Some(t0.elapsed()));
                }
            }
            Err(_) => return Ok(None),
        }
    }
}

fn report(ctx: &mut Ctx, k: &Strokes, cpu_us: f64, (cols, rows): (u16, u16)) {
    let (lat, b, rx, tx, missing) = (&k.latency, &k.bytes, &k.wire_rx, &k.wire_tx, k.missing);
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
}
