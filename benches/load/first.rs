//! The `first` part: first-frame latency over sequential sessions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::client::{Phases, Session, Wire};
use crate::ctx::Ctx;
use crate::server::Server;
use crate::stats::Dist;

/// What the sequential sessions showed.
#[derive(Default)]
struct Sequential {
    /// Each successful session, in order.
    phases: Vec<Phases>,
    /// Sessions that failed to open or to quit cleanly.
    errors: usize,
    /// Channel data of the last first frame.
    frame_bytes: u64,
    /// Wire bytes (down, up) of the last session from connect to its first frame.
    frame_wire: (u64, u64),
}

pub async fn part_first(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let n = ctx.opts.first_n();
    println!("\n[first] first-frame latency over {n} sequential 80x24 sessions");
    let seq = sessions(ctx, server, n).await?;
    let (phases, errors, frame_bytes, frame_wire) =
        (&seq.phases, seq.errors, seq.frame_bytes, seq.frame_wire);
    let frame = Dist::new(phases.iter().map(|p| p.frame).collect());
    let col = |f: fn(&Phases) -> f64| Dist::new(phases.iter().map(f).collect());
    let (tcp, kex, auth, open, fb) =
        (col(|p| p.tcp), col(|p| p.kex), col(|p| p.auth), col(|p| p.open), col(|p| p.first_byte));
    println!("  first frame ms: {}", frame.line());
    println!(
        "  p50 ms from connect: tcp {:.3}, kex done {:.3}, auth done {:.3}, channel open {:.3}, first byte {:.3}, complete frame {:.3}",
        tcp.p(0.5),
        kex.p(0.5),
        auth.p(0.5),
        open.p(0.5),
        fb.p(0.5),
        frame.p(0.5)
    );
    println!(
        "  first frame: {frame_bytes} bytes of channel data; connect..frame on the wire: {} bytes down, {} up; errors: {errors}",
        frame_wire.0, frame_wire.1
    );
    ctx.record(
        "first",
        json!({"frame_ms": frame.json(), "tcp_ms": tcp.json(), "kex_ms": kex.json(), "auth_ms": auth.json(),
               "open_ms": open.json(), "first_byte_ms": fb.json(), "frame_bytes": frame_bytes,
               "wire_down": frame_wire.0, "wire_up": frame_wire.1, "errors": errors}),
    );
    ctx.summarize(
        "first frame p50 / p90 / p99 (russh client)",
        format!("{:.2} / {:.2} / {:.2} ms", frame.p(0.5), frame.p(0.9), frame.p(0.99)),
        "p50 <= 2 ms, p99 <= 10 ms",
    );
    Ok(())
}

/// `n` sessions one after the other (at most 120 s): open, first frame, q.
async fn sessions(ctx: &Ctx, server: &Server, n: usize) -> Result<Sequential> {
    let mut seq = Sequential { phases: Vec::with_capacity(n), ..Default::default() };
    let started = Instant::now();
    for i in 0..n {
        let dump = i == 0 && ctx.opts.dump_frame.is_some();
        let wire = Arc::new(Wire::default());
        match Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, (80, 24), wire.clone(), dump)
            .await
        {
            Ok((s, p)) => {
                seq.phases.push(p);
                seq.frame_bytes = s.screen.received;
                seq.frame_wire = (wire.rx.load(Ordering::Relaxed), wire.tx.load(Ordering::Relaxed));
                if let (true, Some(path)) = (dump, &ctx.opts.dump_frame) {
                    std::fs::write(path, &s.screen.raw)?;
                }
                if let Err(e) = s.quit().await {
                    seq.errors += 1;
                    eprintln!("  session {i}: {e:#}");
                }
            }
            Err(e) => {
                seq.errors += 1;
                eprintln!("  session {i}: {e:#}");
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            println!("  stopping early: 120 s passed");
            break;
        }
    }
    Ok(seq)
}
