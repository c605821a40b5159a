//! The `idle` part: memory, CPU and bytes of many open idle sessions.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use russh::ChannelMsg;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::STEP;
use crate::client::{Session, Wire};
use crate::ctx::{Ctx, settle, warm_up};
use crate::procinfo::{Usage, raise_nofile, self_cpu_s, usage};
use crate::server::Server;

/// Counters every held session adds to.
#[derive(Default)]
struct IdleShared {
    /// Channel data received after the first frame.
    data_bytes: AtomicU64,
    /// Sessions the server closed during the hold.
    closed: AtomicUsize,
    /// Sessions that ended cleanly with `q`.
    quit_ok: AtomicUsize,
    /// Bytes on the wire of every held session.
    wire: Arc<Wire>,
    /// Sessions on screen.
    opened: AtomicUsize,
    /// Sessions that failed to open.
    failed: AtomicUsize,
    /// Set after 50 failures: stop opening more.
    give_up: AtomicBool,
}

impl IdleShared {
    /// (channel data, wire in, wire out) so far.
    fn bytes(&self) -> (u64, u64, u64) {
        let r = Ordering::Relaxed;
        (self.data_bytes.load(r), self.wire.rx.load(r), self.wire.tx.load(r))
    }
}

/// The idle sessions of one level, each held by a task until told to stop.
struct Hold {
    /// What the sessions count.
    shared: Arc<IdleShared>,
    /// One per session.
    tasks: Vec<JoinHandle<()>>,
    /// Tells every session to quit.
    stop_tx: watch::Sender<bool>,
    /// Sessions on screen once opening ended.
    opened: usize,
}

pub async fn part_idle(ctx: &mut Ctx, server_slot: &mut Option<Server>) -> Result<()> {
    let mut levels = Vec::new();
    for n in ctx.opts.idle_levels() {
        let server = level_server(ctx, server_slot)?;
        levels.push(idle_level(ctx, server, n).await?);
    }
    ctx.record("idle", Value::Array(levels));
    Ok(())
}

/// A fresh server per level (when we own it), so memory freed by earlier parts is not reused.
fn level_server<'a>(ctx: &Ctx, slot: &'a mut Option<Server>) -> Result<&'a Server> {
    let fresh = ctx.opts.target.is_none() && !ctx.opts.idle_reuse;
    if fresh {
        if let Some(mut old) = slot.take() {
            old.stop();
        }
        *slot = Some(Server::spawn(&ctx.opts)?);
    }
    let server = slot.as_ref().unwrap();
    if fresh {
        println!("\n(fresh server for the idle part: pid {})", server.pid);
    }
    Ok(server)
}

async fn idle_level(ctx: &mut Ctx, server: &Server, n: usize) -> Result<Value> {
    let window = ctx.opts.idle_window();
    raise_nofile(std::process::id(), n as u64 + 2_000);
    raise_nofile(server.pid, n as u64 + 2_000);
    println!("\n[idle] {n} open idle 80x24 sessions ({window} s quiet window)");
    warm_up(ctx, server, 3).await?;
    let base_processes = usage(server.pid).processes;
    settle(server, base_processes).await;
    let base = usage(server.pid);
    let started = Instant::now();
    let hold = Hold::open(ctx, server, n).await?;
    let open_s = started.elapsed().as_secs_f64();
    let failed = hold.shared.failed.load(Ordering::Relaxed);
    println!("  opened {}/{n} sessions in {open_s:.1} s ({failed} failed)", hold.opened);
    // Let per-session timers that fire soon after the first frame (sshbio frees a quiet
    // session's cell buffers after a few seconds) run before memory is read.
    tokio::time::sleep(Duration::from_secs_f64(ctx.opts.idle_settle)).await;
    let quiet = Quiet::measure(ctx, server, &hold, &base, window).await;
    let keepalive = keepalive_window(ctx, server, &hold).await;
    let churn = churn_window(ctx, server, &hold, n).await;
    let dropped = hold.shared.closed.load(Ordering::Relaxed);
    println!("  dropped during the hold: {dropped}");
    let opened = hold.opened;
    let close_started = Instant::now();
    let (quit_ok, unfinished) = hold.close(n).await;
    settle(server, base_processes).await;
    let after = usage(server.pid);
    println!(
        "  closed {quit_ok}/{opened} cleanly in {:.1} s ({unfinished} unfinished); server after: {} KiB RSS, {} KiB PSS",
        close_started.elapsed().as_secs_f64(),
        after.rss_kib,
        after.pss_kib
    );
    quiet.summarize(ctx, n, opened, dropped);
    Ok(json!({"sessions": n, "opened": opened, "failed": failed,
        "open_s": open_s, "base_rss_kib": base.rss_kib, "base_pss_kib": base.pss_kib,
        "rss_kib": quiet.u0.rss_kib, "pss_kib": quiet.u0.pss_kib, "processes": quiet.u0.processes,
        "rss_kib_per_session": quiet.rss_per, "pss_kib_per_session": quiet.pss_per,
        "settle_s": ctx.opts.idle_settle, "window_s": window, "idle_cpu_ms": quiet.cpu_ms, "idle_cpu_ticks_ms": quiet.ticks_ms,
        "idle_data_bytes": quiet.data, "idle_wire_rx": quiet.rx, "idle_wire_tx": quiet.tx,
        "dropped": dropped, "keepalive_window": keepalive, "churn": churn, "closed_cleanly": quit_ok, "after_rss_kib": after.rss_kib, "after_pss_kib": after.pss_kib}))
}

impl Hold {
    /// Opens up to `n` idle 80x24 sessions, --idle-concurrency at a time (bounded in time).
    async fn open(ctx: &Ctx, server: &Server, n: usize) -> Result<Self> {
        let shared = Arc::new(IdleShared::default());
        let (stop_tx, _) = watch::channel(false);
        let concurrency = ctx.opts.idle_concurrency.max(1);
        let gate = Arc::new(Semaphore::new(concurrency));
        let started = Instant::now();
        let open_deadline = Duration::from_secs(60 + n as u64 / 20);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = gate.clone().acquire_owned().await?;
            if started.elapsed() > open_deadline || shared.give_up.load(Ordering::Relaxed) {
                break;
            }
            let (config, user, addr) = (ctx.config.clone(), ctx.opts.user.clone(), server.addr);
            let (shared, stop_rx) = (shared.clone(), stop_tx.subscribe());
            tasks.push(tokio::spawn(async move {
                let opened = Session::open(addr, config, &user, (80, 24), shared.wire.clone(), false).await;
                hold_one(opened, permit, shared, stop_rx).await
            }));
        }
        // Wait for the last sessions to finish opening.
        let _ = timeout(Duration::from_secs(60), gate.acquire_many(concurrency as u32)).await;
        let opened = shared.opened.load(Ordering::Relaxed);
        Ok(Self { shared, tasks, stop_tx, opened })
    }

    /// Closes everything: q, exit-status, close, disconnect. Returns (closed cleanly, unfinished).
    async fn close(self, n: usize) -> (usize, usize) {
        self.stop_tx.send_replace(true);
        let mut unfinished = 0;
        let close_deadline = tokio::time::Instant::now() + Duration::from_secs(60 + n as u64 / 50);
        for t in self.tasks {
            if tokio::time::timeout_at(close_deadline, t).await.is_err() {
                unfinished += 1;
            }
        }
        (self.shared.quit_ok.load(Ordering::Relaxed), unfinished)
    }
}

/// One idle session: counts what it receives until told to stop, then quits with `q`.
async fn hold_one(
    opened: Result<(Session, crate::client::Phases)>,
    permit: OwnedSemaphorePermit,
    shared: Arc<IdleShared>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let mut s = match opened {
        Ok((s, _)) => s,
        Err(e) => {
            drop(permit);
            if shared.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("  open failed: {e:#}");
            }
            if shared.failed.load(Ordering::Relaxed) > 50 {
                shared.give_up.store(true, Ordering::Relaxed);
            }
            return;
        }
    };
    // Free the emulator: the client side of an idle session only counts bytes now.
    s.screen.vt = vt100::Parser::new(NonZeroU16::new(1).unwrap(), NonZeroU16::new(1).unwrap(), 0);
    shared.opened.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    loop {
        tokio::select! {
            msg = s.screen.channel.wait() => {
                let len = match &msg {
                    Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => data.len() as u64,
                    _ => 0,
                };
                shared.data_bytes.fetch_add(len, Ordering::Relaxed);
                if !s.screen.absorb(msg) {
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
}

/// Memory per session, then the quiet window's CPU and bytes.
struct Quiet {
    /// The server's usage when the quiet window starts.
    u0: Usage,
    /// RSS per held session, KiB.
    rss_per: f64,
    /// PSS per held session, KiB.
    pss_per: f64,
    /// Server CPU in the window (live threads), ms.
    cpu_ms: f64,
    /// The same by clock ticks, ms.
    ticks_ms: f64,
    /// Channel data the sessions received in the window.
    data: u64,
    /// Wire bytes they received.
    rx: u64,
    /// Wire bytes they sent.
    tx: u64,
    /// Seconds of the window.
    window: f64,
}

impl Quiet {
    async fn measure(ctx: &Ctx, server: &Server, hold: &Hold, base: &Usage, window: f64) -> Self {
        let u0 = usage(server.pid);
        let (d0, rx0, tx0) = hold.shared.bytes();
        let client_cpu0 = self_cpu_s();
        tokio::time::sleep(Duration::from_secs_f64(window)).await;
        let client_cpu1 = self_cpu_s();
        let u1 = usage(server.pid);
        let (d1, rx1, tx1) = hold.shared.bytes();
        let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / hold.opened.max(1) as f64;
        let q = Self {
            u0,
            rss_per: per(u0.rss_kib, base.rss_kib),
            pss_per: per(u0.pss_kib, base.pss_kib),
            cpu_ms: (u1.cpu_live_s - u0.cpu_live_s) * 1e3,
            ticks_ms: (u1.cpu_s - u0.cpu_s) * 1e3,
            data: d1 - d0,
            rx: rx1 - rx0,
            tx: tx1 - tx0,
            window,
        };
        let settle_s = ctx.opts.idle_settle;
        println!(
            "  server: {} -> {} KiB RSS, {} -> {} KiB PSS, {} -> {} processes",
            base.rss_kib, u0.rss_kib, base.pss_kib, u0.pss_kib, base.processes, u0.processes
        );
        println!(
            "  per idle session, {settle_s} s after the last one opened: {:.1} KiB RSS, {:.1} KiB PSS",
            q.rss_per, q.pss_per
        );
        println!(
            "  quiet {window} s: server CPU {:.1} ms (threads' schedstat; {:.0} ms by ticks), client CPU {:.0} ms; channel data {} bytes; wire {} bytes in / {} bytes out (keepalives)",
            q.cpu_ms,
            q.ticks_ms,
            (client_cpu1 - client_cpu0) * 1e3,
            q.data,
            q.rx,
            q.tx
        );
        q
    }

    fn summarize(&self, ctx: &mut Ctx, n: usize, opened: usize, dropped: usize) {
        ctx.summarize(
            &format!("memory per idle 80x24 session at {n} (RSS / PSS)"),
            format!("{:.0} / {:.0} KiB", self.rss_per, self.pss_per),
            "<= 32 KiB",
        );
        ctx.summarize(
            &format!("{n} idle: held / dropped; CPU and bytes in {} s", self.window),
            format!(
                "{opened} / {dropped}; {:.1} ms CPU, {} data bytes ({} wire)",
                self.cpu_ms, self.data, self.rx
            ),
            "all held, 0 dropped, ~0 CPU, 0 bytes",
        );
    }
}

/// After the quiet window, a longer window (--idle-long) covering a whole keepalive interval.
async fn keepalive_window(ctx: &Ctx, server: &Server, hold: &Hold) -> Value {
    let long = ctx.opts.idle_long();
    if long <= 0.0 {
        return Value::Null;
    }
    let opened = hold.opened.max(1) as f64;
    let l0 = usage(server.pid);
    let (d0, rx0, tx0) = hold.shared.bytes();
    tokio::time::sleep(Duration::from_secs_f64(long)).await;
    let l1 = usage(server.pid);
    let (d1, rx1, tx1) = hold.shared.bytes();
    let cpu_ms = (l1.cpu_live_s - l0.cpu_live_s) * 1e3;
    println!(
        "  next {long} s (covers a keepalive interval): server CPU {cpu_ms:.1} ms = {:.1} us/session; wire {} bytes in / {} out = {:.0} bytes/session; channel data {} bytes",
        cpu_ms * 1e3 / opened,
        rx1 - rx0,
        tx1 - tx0,
        (rx1 - rx0 + tx1 - tx0) as f64 / opened,
        d1 - d0
    );
    json!({"window_s": long, "cpu_ms": cpu_ms, "wire_rx": rx1 - rx0, "wire_tx": tx1 - tx0, "data_bytes": d1 - d0})
}

/// While the idle sessions are held, more visitors arrive at --idle-churn per second and stay.
async fn churn_window(ctx: &mut Ctx, server: &Server, hold: &Hold, n: usize) -> Value {
    let churn_rate = ctx.opts.idle_churn();
    if churn_rate <= 0.0 {
        return Value::Null;
    }
    let secs = ctx.opts.idle_churn_secs;
    let c0 = usage(server.pid);
    let (cd0, crx0, _) = hold.shared.bytes();
    let started = Instant::now();
    let (visitors, failed_visitors, leave_tx, stayers) = arrivals(ctx, server, churn_rate, secs).await;
    // Let the last count change reach everyone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c1 = usage(server.pid);
    let (cd1, crx1, _) = hold.shared.bytes();
    let elapsed = started.elapsed().as_secs_f64();
    leave_tx.send_replace(true);
    for stayer in stayers {
        let _ = timeout(STEP, stayer).await;
    }
    let cpu_ms = (c1.cpu_live_s - c0.cpu_live_s) * 1e3;
    let per_session = (cd1 - cd0) as f64 / hold.opened.max(1) as f64;
    println!(
        "  arrivals: {visitors} more visitors arrived in {elapsed:.1} s and stayed ({failed_visitors} failed): server CPU {cpu_ms:.0} ms ({:.0} ms per second); the idle sessions received {} bytes of channel data ({per_session:.0} per session), {} on the wire; server {} -> {} KiB RSS",
        cpu_ms / elapsed,
        cd1 - cd0,
        crx1 - crx0,
        c0.rss_kib,
        c1.rss_kib
    );
    ctx.summarize(
        &format!("{n} idle while {churn_rate}/s more arrive: bytes per idle session, server CPU"),
        format!("{per_session:.0} bytes in {elapsed:.0} s, {:.0} ms CPU/s", cpu_ms / elapsed),
        "0 bytes, ~0 CPU",
    );
    json!({"rate": churn_rate, "visitors": visitors, "seconds": elapsed, "cpu_ms": cpu_ms,
        "data_bytes": cd1 - cd0, "wire_rx": crx1 - crx0, "data_bytes_per_session": per_session,
        "rss_kib_before": c0.rss_kib, "rss_kib_after": c1.rss_kib})
}

/// Visitors arriving one after the other at `rate` per second for `secs`, each staying (its
/// channel drained by a task) until `leave` is set. Returns (arrived, failed, leave, tasks).
async fn arrivals(
    ctx: &Ctx,
    server: &Server,
    rate: f64,
    secs: f64,
) -> (usize, usize, watch::Sender<bool>, Vec<JoinHandle<()>>) {
    let started = Instant::now();
    let (mut visitors, mut failed) = (0, 0);
    let (leave_tx, _) = watch::channel(false);
    let mut stayers = Vec::new();
    while started.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        match Session::open(server.addr, ctx.config.clone(), &ctx.opts.user, (80, 24), Arc::default(), false)
            .await
        {
            Ok((mut v, _)) => {
                visitors += 1;
                let mut leave = leave_tx.subscribe();
                stayers.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            msg = v.screen.channel.wait() => if !v.screen.absorb(msg) { return },
                            _ = leave.wait_for(|l| *l) => break,
                        }
                    }
                    let _ = v.quit().await;
                }));
            }
            Err(_) => failed += 1,
        }
        let next = t + Duration::from_secs_f64(1.0 / rate);
        tokio::time::sleep_until(next.into()).await;
    }
    (visitors, failed, leave_tx, stayers)
}
