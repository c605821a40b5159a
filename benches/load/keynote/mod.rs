//! The `keynote` part: a presenter is on stage; a room of visitors arrives at a rate from a
//! few source addresses (NAT addresses at a conference), every visitor follows the presenter,
//! the presenter moves every few seconds, and a few late visitors keep the audience count
//! changing while the room sits still. Reports admission, first frames while the room arrives,
//! each move's latency and cost per follower, the idle room's cost, memory, and the clients'
//! own CPU (they share the machine with the server).

mod arrive;
mod moves;

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use crate::ctx::Ctx;
use crate::follow::{PRESENTER, WatchEvent};
use crate::procinfo::{raise_nofile, usage};
use crate::server::Server;
use crate::stage::{self, Presenter, Room};
use arrive::{Crowd, Wave};
use moves::Moves;

/// What the options ask of this part.
struct Plan {
    /// The room (--visitors).
    visitors: usize,
    /// Arrivals per second (--arrival-rate).
    rate: f64,
    /// The presenter's moves (--moves).
    moves: usize,
    /// Seconds between moves (--move-every).
    move_every: f64,
    /// Seconds of late arrivals (--late-secs).
    late_secs: f64,
    /// Late arrivals per second (--late-rate).
    late_rate: f64,
}

impl Plan {
    fn new(ctx: &Ctx) -> Self {
        let o = &ctx.opts;
        Self {
            visitors: o.visitors_n(),
            rate: o.arrival_rate,
            moves: o.moves_n(),
            move_every: o.move_every,
            late_secs: o.late_secs(),
            late_rate: o.late_rate,
        }
    }
}

pub async fn part_keynote(ctx: &mut Ctx) -> Result<()> {
    if ctx.opts.target.is_some() {
        println!("\n[keynote] skipped: it needs a spawned sshbio (--presenter-keys)");
        return Ok(());
    }
    let plan = Plan::new(ctx);
    let sources: Vec<String> = ctx.opts.sources.iter().map(ToString::to_string).collect();
    println!(
        "\n[keynote] {} visitors (80x24) arrive at {}/s from {}, all following a presenter; then {} moves {} s apart; then {}/s late visitors for {} s",
        plan.visitors,
        plan.rate,
        sources.join(", "),
        plan.moves,
        plan.move_every,
        plan.late_rate,
        plan.late_secs
    );
    let extra: Vec<String> =
        ctx.opts.keynote_server_args.iter().flat_map(|a| a.split_whitespace()).map(str::to_string).collect();
    let (mut server, key) = stage::spawn_server(&ctx.opts, false, &extra)?;
    let flags = if extra.is_empty() { "the server's defaults".to_string() } else { extra.join(" ") };
    println!("  server pid {}; admission flags: {flags}", server.pid);
    let most = plan.visitors + (plan.late_rate * plan.late_secs).ceil() as usize;
    raise_nofile(std::process::id(), most as u64 + 2_000);
    raise_nofile(server.pid, most as u64 + 2_000);
    let result = run(ctx, &server, &key, &plan).await;
    if let Some(errors) = server.error_lines() {
        println!("  server log: {errors} error lines");
    }
    server.stop();
    result
}

async fn run(ctx: &mut Ctx, server: &Server, key: &russh::keys::PrivateKey, plan: &Plan) -> Result<()> {
    let marks = stage::marks(&ctx.opts)?;
    let mut room = Room::new();
    let presenter = Presenter::connect(server, ctx.config.clone(), key, &room).await?;
    presenter_on_stage(&mut room).await?;
    let base = usage(server.pid);
    let mut crowd =
        Crowd::new(server.addr, server.pid, ctx.config.clone(), &ctx.opts.user, &ctx.opts.sources);
    let arrival = crowd.wave(&room, plan.visitors, plan.rate).await;
    report_arrival(&arrival);
    // Let the audience counts settle (they change at most once a second) before memory is read.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let held = usage(server.pid);
    let rss_per = held.rss_kib.saturating_sub(base.rss_kib) as f64 / arrival.admitted.max(1) as f64;
    println!(
        "  server RSS {} KiB before the room, {} KiB with {} visitors = {rss_per:.1} KiB per visitor",
        base.rss_kib, held.rss_kib, arrival.admitted
    );
    let moves = Moves::run(&presenter, &mut room, server.pid, &marks, arrival.admitted, plan).await?;
    moves.report();
    let late = late_visitors(&mut crowd, &room, server.pid, arrival.admitted, plan).await;
    let exit = presenter.leave(&room).await?;
    let clean = crowd.close().await;
    println!("  presenter exit status {exit:?}; {clean} visitors closed cleanly");
    summarize(ctx, plan, &arrival, &moves, &late, rss_per);
    ctx.record(
        "keynote",
        json!({"visitors": plan.visitors, "arrival_rate": plan.rate, "sources": ctx.opts.sources,
            "arrival": arrival.json(), "rss_kib_before": base.rss_kib, "rss_kib_held": held.rss_kib,
            "rss_kib_per_visitor": rss_per, "moves": moves.json(), "late": late.json(), "closed_cleanly": clean}),
    );
    Ok(())
}

/// Waits until the presenter's own screen shows that it presents.
async fn presenter_on_stage(room: &mut Room) -> Result<()> {
    let deadline = tokio::time::Instant::now() + crate::STEP;
    loop {
        match tokio::time::timeout_at(deadline, room.events.recv()).await {
            Ok(Some(WatchEvent::Banner(PRESENTER))) => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => bail!("the presenter's screen never showed that it presents"),
        }
    }
}

fn report_arrival(w: &Wave) {
    println!("  arrival: {} of {} admitted, {} in {:.1} s", w.admitted, w.visitors, w.refusals(), w.seconds);
    println!("    first frame while the room arrives, ms: {}", w.first_ms.line());
    println!(
        "    server CPU {:.0} ms ({:.2} ms per admitted visitor), client CPU {:.0} ms; server RSS {} -> {} KiB",
        w.server_cpu_ms,
        w.server_cpu_ms / w.admitted.max(1) as f64,
        w.client_cpu_ms,
        w.rss_kib_before,
        w.rss_kib_after
    );
}

/// The idle room while a few late visitors arrive (and stay), so the audience count changes.
struct Late {
    /// The room the late visitors join (admitted in the main wave).
    room: usize,
    /// The late arrivals (None when skipped).
    wave: Option<Wave>,
    /// Channel data the whole room received in the window.
    bytes: u64,
    /// Server CPU in the window, including the late visitors' own sessions.
    cpu_ms: f64,
}

impl Late {
    fn per_visitor_per_minute(&self) -> f64 {
        let secs = self.wave.as_ref().map_or(1.0, |w| w.seconds.max(0.001));
        self.bytes as f64 / self.room.max(1) as f64 * 60.0 / secs
    }

    fn cpu_per_s(&self) -> f64 {
        self.cpu_ms / self.wave.as_ref().map_or(1.0, |w| w.seconds.max(0.001))
    }

    fn json(&self) -> serde_json::Value {
        json!({"room": self.room, "wave": self.wave.as_ref().map(Wave::json), "data_bytes": self.bytes,
            "server_cpu_ms": self.cpu_ms, "server_cpu_ms_per_s": self.cpu_per_s(),
            "bytes_per_visitor_per_minute": self.per_visitor_per_minute()})
    }
}

async fn late_visitors(crowd: &mut Crowd, room: &Room, pid: u32, size: usize, plan: &Plan) -> Late {
    let mut late = Late { room: size, wave: None, bytes: 0, cpu_ms: 0.0 };
    let n = (plan.late_rate * plan.late_secs).round() as usize;
    if n == 0 {
        return late;
    }
    let bytes0 = room.follower_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let c0 = usage(pid).cpu_live_s;
    let mut wave = crowd.wave(room, n, plan.late_rate).await;
    // Let the last count change reach everyone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wave.seconds += 1.5;
    late.cpu_ms = (usage(pid).cpu_live_s - c0) * 1e3;
    late.bytes = room.follower_bytes.load(std::sync::atomic::Ordering::Relaxed) - bytes0;
    println!(
        "  late visitors: {} of {n} admitted ({}) in {:.1} s while {size} sit still: server CPU {:.0} ms = {:.1} ms per second ({:.2}% of a core, the late visitors' own sessions included); the room received {} bytes of channel data = {:.0} bytes per visitor per minute",
        wave.admitted,
        wave.refusals(),
        wave.seconds,
        late.cpu_ms,
        late.cpu_ms / wave.seconds,
        late.cpu_ms / wave.seconds / 10.0,
        late.bytes,
        late.bytes as f64 / size.max(1) as f64 * 60.0 / wave.seconds
    );
    late.wave = Some(wave);
    late
}

fn summarize(ctx: &mut Ctx, plan: &Plan, arrival: &Wave, moves: &Moves, late: &Late, rss_per: f64) {
    let (n, k) = (plan.visitors, ctx.opts.sources.len());
    ctx.summarize(
        &format!("keynote: {n} visitors at {}/s from {k} addresses: admitted / refused", plan.rate),
        format!("{} / {}", arrival.admitted, arrival.refused_n()),
        "all admitted",
    );
    ctx.summarize(
        "keynote: first frame p50 / p99 while the room arrives",
        format!("{:.1} / {:.1} ms", arrival.first_ms.p(0.5), arrival.first_ms.p(0.99)),
        "—",
    );
    moves.summarize(ctx);
    if late.wave.is_some() {
        late.summarize(ctx, plan);
    }
    ctx.summarize("keynote: server RSS per visitor", format!("{rss_per:.1} KiB"), "—");
}

impl Late {
    fn summarize(&self, ctx: &mut Ctx, plan: &Plan) {
        ctx.summarize(
            &format!(
                "keynote: idle room of {} while {}/s more arrive: server CPU, bytes per visitor per minute",
                self.room, plan.late_rate
            ),
            format!(
                "{:.1} ms/s ({:.2}% of a core), {:.0} bytes",
                self.cpu_per_s(),
                self.cpu_per_s() / 10.0,
                self.per_visitor_per_minute()
            ),
            "<= 3% of a core, <= 2 KB",
        );
    }
}
