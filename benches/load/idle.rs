//! The `idle` part: memory, CPU and bytes of many open idle sessions.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use russh::ChannelMsg;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use crate::STEP;
use crate::client::{Session, Wire};
use crate::ctx::{Ctx, settle, warm_up};
use crate::procinfo::{raise_nofile, self_cpu_s, usage};
use crate::server::Server;

pub struct IdleShared {
    pub data_bytes: AtomicU64,
    pub closed: AtomicUsize,
    pub quit_ok: AtomicUsize,
    pub wire: Arc<Wire>,
}

pub async fn part_idle(ctx: &mut Ctx, server_slot: &mut Option<Server>) -> Result<()> {
    let window = ctx.opts.idle_window();
    let mut levels = Vec::new();
    for n in ctx.opts.idle_levels() {
        // A fresh server per level (when we own it), so memory freed by earlier parts is not reused.
        if ctx.opts.target.is_none() && !ctx.opts.idle_reuse {
            if let Some(mut old) = server_slot.take() {
                old.stop();
            }
            *server_slot = Some(Server::spawn(&ctx.opts)?);
        }
        let server = server_slot.as_ref().unwrap();
        if ctx.opts.target.is_none() && !ctx.opts.idle_reuse {
            println!("\n(fresh server for the idle part: pid {})", server.pid);
        }
        raise_nofile(std::process::id(), n as u64 + 2_000);
        raise_nofile(server.pid, n as u64 + 2_000);
        println!("\n[idle] {n} open idle 80x24 sessions ({window} s quiet window)");
        warm_up(ctx, server, 3).await?;
        let base_processes = usage(server.pid).processes;
        settle(server, base_processes).await;
        let base = usage(server.pid);
        let shared = Arc::new(IdleShared {
            data_bytes: AtomicU64::new(0),
            closed: AtomicUsize::new(0),
            quit_ok: AtomicUsize::new(0),
            wire: Arc::new(Wire::default()),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(ctx.opts.idle_concurrency.max(1)));
        let opened = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let give_up = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let open_deadline = Duration::from_secs(60 + n as u64 / 20);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = gate.clone().acquire_owned().await?;
            if started.elapsed() > open_deadline || give_up.load(Ordering::Relaxed) {
                break;
            }
            let (config, user, addr) = (ctx.config.clone(), ctx.opts.user.clone(), server.addr);
            let (shared, mut stop_rx, opened, failed, give_up) =
                (shared.clone(), stop_rx.clone(), opened.clone(), failed.clone(), give_up.clone());
            tasks.push(tokio::spawn(async move {
                let wire = shared.wire.clone();
                let result = Session::open(addr, config, &user, (80, 24), wire, false).await;
                let mut s = match result {
                    Ok((s, _)) => s,
                    Err(e) => {
                        drop(permit);
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  open failed: {e:#}");
                        }
                        if failed.load(Ordering::Relaxed) > 50 {
                            give_up.store(true, Ordering::Relaxed);
                        }
                        return;
                    }
                };
                // Free the emulator: the client side of an idle session only counts bytes now.
                s.vt = vt100::Parser::new(NonZeroU16::new(1).unwrap(), NonZeroU16::new(1).unwrap(), 0);
                opened.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                loop {
                    tokio::select! {
                        msg = s.channel.wait() => {
                            let len = match &msg {
                                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => data.len() as u64,
                                _ => 0,
                            };
                            shared.data_bytes.fetch_add(len, Ordering::Relaxed);
                            if !s.absorb(msg) {
                                shared.closed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                        _ = stop_rx.wait_for(|stop| *stop) => break,
                    }
                }
                if s.quit().await.is_ok() {
                    shared.quit_ok.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // Wait for the last sessions to finish opening.
        let _ = timeout(Duration::from_secs(60), gate.acquire_many(ctx.opts.idle_concurrency.max(1) as u32))
            .await;
        let open_s = started.elapsed().as_secs_f64();
        let opened_n = opened.load(Ordering::Relaxed);
        println!(
            "  opened {opened_n}/{n} sessions in {open_s:.1} s ({} failed)",
            failed.load(Ordering::Relaxed)
        );
        // Let per-session timers that fire soon after the first frame (sshbio frees a quiet
        // session's cell buffers after a few seconds) run before memory is read.
        let settle_s = ctx.opts.idle_settle;
        tokio::time::sleep(Duration::from_secs_f64(settle_s)).await;
        let u0 = usage(server.pid);
        let (d0, rx0, tx0) = (
            shared.data_bytes.load(Ordering::Relaxed),
            shared.wire.rx.load(Ordering::Relaxed),
            shared.wire.tx.load(Ordering::Relaxed),
        );
        let client_cpu0 = self_cpu_s();
        tokio::time::sleep(Duration::from_secs_f64(window)).await;
        let client_cpu1 = self_cpu_s();
        let u1 = usage(server.pid);
        let (d1, rx1, tx1) = (
            shared.data_bytes.load(Ordering::Relaxed),
            shared.wire.rx.load(Ordering::Relaxed),
            shared.wire.tx.load(Ordering::Relaxed),
        );
        let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / opened_n.max(1) as f64;
        let rss_per = per(u0.rss_kib, base.rss_kib);
        let pss_per = per(u0.pss_kib, base.pss_kib);
        let idle_cpu_ms = (u1.cpu_live_s - u0.cpu_live_s) * 1e3;
        let idle_ticks_ms = (u1.cpu_s - u0.cpu_s) * 1e3;
        println!(
            "  server: {} -> {} KiB RSS, {} -> {} KiB PSS, {} -> {} processes",
            base.rss_kib, u0.rss_kib, base.pss_kib, u0.pss_kib, base.processes, u0.processes
        );
        println!(
            "  per idle session, {settle_s} s after the last one opened: {rss_per:.1} KiB RSS, {pss_per:.1} KiB PSS"
        );
        println!(
            "  quiet {window} s: server CPU {idle_cpu_ms:.1} ms (threads' schedstat; {idle_ticks_ms:.0} ms by ticks), client CPU {:.0} ms; channel data {} bytes; wire {} bytes in / {} bytes out (keepalives)",
            (client_cpu1 - client_cpu0) * 1e3,
            d1 - d0,
            rx1 - rx0,
            tx1 - tx0
        );
        let long = ctx.opts.idle_long();
        let mut keepalive = Value::Null;
        if long > 0.0 {
            let l0 = usage(server.pid);
            let (rx0, tx0) = (shared.wire.rx.load(Ordering::Relaxed), shared.wire.tx.load(Ordering::Relaxed));
            let d0 = shared.data_bytes.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs_f64(long)).await;
            let l1 = usage(server.pid);
            let (rx1, tx1) = (shared.wire.rx.load(Ordering::Relaxed), shared.wire.tx.load(Ordering::Relaxed));
            let d1 = shared.data_bytes.load(Ordering::Relaxed);
            let cpu_ms = (l1.cpu_live_s - l0.cpu_live_s) * 1e3;
            println!(
                "  next {long} s (covers a keepalive interval): server CPU {cpu_ms:.1} ms = {:.1} us/session; wire {} bytes in / {} out = {:.0} bytes/session; channel data {} bytes",
                cpu_ms * 1e3 / opened_n.max(1) as f64,
                rx1 - rx0,
                tx1 - tx0,
                (rx1 - rx0 + tx1 - tx0) as f64 / opened_n.max(1) as f64,
                d1 - d0
            );
            keepalive = json!({"window_s": long, "cpu_ms": cpu_ms, "wire_rx": rx1 - rx0, "wire_tx": tx1 - tx0,
                               "data_bytes": d1 - d0});
        }
        let churn_rate = ctx.opts.idle_churn();
        let mut churn = Value::Null;
        if churn_rate > 0.0 {
            let secs = ctx.opts.idle_churn_secs;
            let c0 = usage(server.pid);
            let (cd0, crx0) =
                (shared.data_bytes.load(Ordering::Relaxed), shared.wire.rx.load(Ordering::Relaxed));
            let started = Instant::now();
            let mut visitors = 0;
            let mut failed_visitors = 0;
            let (leave_tx, leave_rx) = watch::channel(false);
            let mut stayers = Vec::new();
            while started.elapsed().as_secs_f64() < secs {
                let t = Instant::now();
                match Session::open(
                    server.addr,
                    ctx.config.clone(),
                    &ctx.opts.user,
                    (80, 24),
                    Arc::default(),
                    false,
                )
                .await
                {
                    Ok((mut v, _)) => {
                        visitors += 1;
                        let mut leave = leave_rx.clone();
                        stayers.push(tokio::spawn(async move {
                            loop {
                                tokio::select! {
                                    msg = v.channel.wait() => if !v.absorb(msg) { return },
                                    _ = leave.wait_for(|l| *l) => break,
                                }
                            }
                            let _ = v.quit().await;
                        }));
                    }
                    Err(_) => failed_visitors += 1,
                }
                let next = t + Duration::from_secs_f64(1.0 / churn_rate);
                tokio::time::sleep_until(next.into()).await;
            }
            // Let the last count change reach everyone.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let c1 = usage(server.pid);
            let (cd1, crx1) =
                (shared.data_bytes.load(Ordering::Relaxed), shared.wire.rx.load(Ordering::Relaxed));
            let elapsed = started.elapsed().as_secs_f64();
            let _ = leave_tx.send(true);
            for stayer in stayers {
                let _ = timeout(STEP, stayer).await;
            }
            let cpu_ms = (c1.cpu_live_s - c0.cpu_live_s) * 1e3;
            let per_session = (cd1 - cd0) as f64 / opened_n.max(1) as f64;
            println!(
                "  arrivals: {visitors} more visitors arrived in {elapsed:.1} s and stayed ({failed_visitors} failed): server CPU {cpu_ms:.0} ms ({:.0} ms per second); the idle sessions received {} bytes of channel data ({per_session:.0} per session), {} on the wire; server {} -> {} KiB RSS",
                cpu_ms / elapsed,
                cd1 - cd0,
                crx1 - crx0,
                c0.rss_kib,
                c1.rss_kib
            );
            churn = json!({"rate": churn_rate, "visitors": visitors, "seconds": elapsed, "cpu_ms": cpu_ms,
                "data_bytes": cd1 - cd0, "wire_rx": crx1 - crx0, "data_bytes_per_session": per_session,
                "rss_kib_before": c0.rss_kib, "rss_kib_after": c1.rss_kib});
            ctx.summarize(
                &format!("{n} idle while {churn_rate}/s more arrive: bytes per idle session, server CPU"),
                format!("{per_session:.0} bytes in {elapsed:.0} s, {:.0} ms CPU/s", cpu_ms / elapsed),
                "0 bytes, ~0 CPU",
            );
        }
        let dropped = shared.closed.load(Ordering::Relaxed);
        println!("  dropped during the hold: {dropped}");
        // Close everything: q, exit-status, close, disconnect.
        let close_started = Instant::now();
        let _ = stop_tx.send(true);
        let mut unfinished = 0;
        let close_deadline = tokio::time::Instant::now() + Duration::from_secs(60 + n as u64 / 50);
        for t in tasks {
            if tokio::time::timeout_at(close_deadline, t).await.is_err() {
                unfinished += 1;
            }
        }
        let quit_ok = shared.quit_ok.load(Ordering::Relaxed);
        settle(server, base_processes).await;
        let after = usage(server.pid);
        println!(
            "  closed {quit_ok}/{opened_n} cleanly in {:.1} s ({unfinished} unfinished); server after: {} KiB RSS, {} KiB PSS",
            close_started.elapsed().as_secs_f64(),
            after.rss_kib,
            after.pss_kib
        );
        levels.push(json!({"sessions": n, "opened": opened_n, "failed": failed.load(Ordering::Relaxed),
            "open_s": open_s, "base_rss_kib": base.rss_kib, "base_pss_kib": base.pss_kib,
            "rss_kib": u0.rss_kib, "pss_kib": u0.pss_kib, "processes": u0.processes,
            "rss_kib_per_session": rss_per, "pss_kib_per_session": pss_per,
            "settle_s": settle_s, "window_s": window, "idle_cpu_ms": idle_cpu_ms, "idle_cpu_ticks_ms": idle_ticks_ms,
            "idle_data_bytes": d1 - d0, "idle_wire_rx": rx1 - rx0, "idle_wire_tx": tx1 - tx0,
            "dropped": dropped, "keepalive_window": keepalive, "churn": churn, "closed_cleanly": quit_ok, "after_rss_kib": after.rss_kib, "after_pss_kib": after.pss_kib}));
        ctx.summarize(
            &format!("memory per idle 80x24 session at {n} (RSS / PSS)"),
            format!("{rss_per:.0} / {pss_per:.0} KiB"),
            "<= 32 KiB",
        );
        ctx.summarize(
            &format!("{n} idle: held / dropped; CPU and bytes in {window} s"),
            format!(
                "{opened_n} / {dropped}; {idle_cpu_ms:.1} ms CPU, {} data bytes ({} wire)",
                d1 - d0,
                rx1 - rx0
            ),
            "all held, 0 dropped, ~0 CPU, 0 bytes",
        );
    }
    ctx.record("idle", Value::Array(levels));
    Ok(())
}
