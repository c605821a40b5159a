//! The `presenter` part: a presenter key -> every follower's screen showing the new section.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::STEP;
use crate::client::Session;
use crate::ctx::Ctx;
use crate::follow::{FOLLOW_BANNER, PRESENTER, WatchEvent, follow};
use crate::procinfo::{Usage, raise_nofile, usage};
use crate::server::Server;
use crate::stage::{self, Presenter, Room};
use crate::stats::{Dist, ms};

/// One series of presses: active followers (presses close together), or hibernated ones
/// (each press after enough quiet for every screen to free its buffers).
struct Phase {
    /// How the output names the series.
    name: &'static str,
    /// Presses in the series.
    count: usize,
    /// Seconds of quiet before each press.
    gap_before: f64,
    /// Seconds after each press for the rest of the frames, before the CPU is read.
    gap_after: f64,
}

/// Figures of one series of presses.
#[derive(Default)]
struct PressSeries {
    /// Per press: key -> the last follower's screen shows the new section (complete presses only).
    all: Dist,
    /// Per follower and press: key -> new section on screen.
    screen: Dist,
    /// Per follower and press: key -> first byte after the key.
    first: Dist,
    /// Per press: key -> the presenter's own screen shows the new section.
    presenter: Dist,
    /// Follower screens that did not show the section within 5 s.
    missing: usize,
    /// Presses made.
    presses: usize,
    /// Server CPU over all presses, ms.
    cpu_ms: f64,
}

/// What every press of the part uses.
struct Show<'a> {
    /// Whose CPU is read per press.
    server: &'a Server,
    /// Who presses.
    presenter: &'a Presenter,
    /// The sections a press moves to.
    marks: &'a [(String, String)],
    /// Followers.
    n: usize,
}

pub async fn part_presenter(ctx: &mut Ctx) -> Result<()> {
    if ctx.opts.target.is_some() {
        println!("\n[presenter] skipped: it needs a spawned sshbio (--presenter-keys)");
        return Ok(());
    }
    let n = ctx.opts.followers_n();
    let (active_n, hibernated_n) = (ctx.opts.presses_n(), ctx.opts.presses_hibernated_n());
    let marks = stage::marks(&ctx.opts)?;
    println!(
        "\n[presenter] {n} followers (80x24); the presenter presses {active_n} section keys {} s apart, then {hibernated_n} more each after {} s of quiet (screens hibernated)",
        ctx.opts.press_gap, ctx.opts.hibernated_gap
    );
    // A fresh server that accepts one freshly generated presenter key.
    let (mut server, key) = stage::spawn_server(&ctx.opts, true, &[])?;
    println!("  server pid {}", server.pid);
    raise_nofile(std::process::id(), n as u64 + 2_000);
    let phases = [
        Phase { name: "active", count: active_n, gap_before: 0.0, gap_after: ctx.opts.press_gap },
        Phase {
            name: "hibernated",
            count: hibernated_n,
            gap_before: ctx.opts.hibernated_gap,
            gap_after: 0.3,
        },
    ];
    let result = presenter_run(ctx, &server, &key, &marks, &phases).await;
    if let Some(errors) = server.error_lines() {
        println!("  server log: {errors} error lines");
    }
    server.stop();
    result
}

async fn presenter_run(
    ctx: &mut Ctx,
    server: &Server,
    key: &russh::keys::PrivateKey,
    marks: &[(String, String)],
    phases: &[Phase],
) -> Result<()> {
    let n = ctx.opts.followers_n();
    let mut room = Room::new();
    let followers = open_followers(ctx, server, &room, n).await?;
    // The presenter: its channel is drained by a task of its own; keys go through the write half.
    let t_presenter = Instant::now();
    let presenter = Presenter::connect(server, ctx.config.clone(), key, &room).await?;
    everyone_follows(&mut room, n).await?;
    println!(
        "  presenter connected; every follower shows the banner {:.0} ms after the presenter's TCP connect",
        ms(t_presenter.elapsed())
    );
    // Let the audience counts (51 here, 50 following) settle: they change at most once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let show = Show { server, presenter: &presenter, marks, n };
    let mut series: Vec<(&str, PressSeries, Value)> = Vec::new();
    let mut idx = 0;
    for phase in phases.iter().filter(|p| p.count > 0) {
        let (s, record) = run_phase(&show, &mut room, phase, &mut idx).await?;
        series.push((phase.name, s, record));
    }

    // The presenter leaves, then the followers.
    let exit = presenter.leave(&room).await?;
    let mut quit_ok = 0;
    for f in followers {
        if matches!(timeout(STEP, f).await, Ok(Ok(true))) {
            quit_ok += 1;
        }
    }
    println!("  presenter exit status {exit:?}; {quit_ok}/{n} followers closed cleanly");
    summarize(ctx, n, quit_ok, series);
    Ok(())
}

/// The followers: opened 16 at a time, each then drained by its own task.
async fn open_followers(ctx: &Ctx, server: &Server, room: &Room, n: usize) -> Result<Vec<JoinHandle<bool>>> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(16));
    let mut opening = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let (config, user, addr) = (ctx.config.clone(), ctx.opts.user.clone(), server.addr);
        opening.push(tokio::spawn(async move {
            let r = Session::open(addr, config, &user, (80, 24), Arc::default(), false).await;
            drop(permit);
            r.map(|(s, _)| s)
        }));
    }
    let mut followers = Vec::with_capacity(n);
    for (who, task) in opening.into_iter().enumerate() {
        let s = task.await?.context("opening a follower")?;
        followers.push(tokio::spawn(follow(s, room.follower(who, FOLLOW_BANNER, false), room.stop_rx())));
    }
    println!("  {n} followers on screen in {:.2} s", started.elapsed().as_secs_f64());
    Ok(followers)
}

/// Everyone follows: each follower shows the banner, and the presenter its own.
async fn everyone_follows(room: &mut Room, n: usize) -> Result<()> {
    let deadline = tokio::time::Instant::now() + STEP;
    let mut banners = HashSet::new();
    let mut presenter_on = false;
    while banners.len() < n || !presenter_on {
        match tokio::time::timeout_at(deadline, room.events.recv()).await {
            Ok(Some(WatchEvent::Banner(PRESENTER))) => presenter_on = true,
            Ok(Some(WatchEvent::Banner(who))) => {
                banners.insert(who);
            }
            Ok(Some(WatchEvent::Closed(who))) => bail!("follower {who} was closed"),
            Ok(Some(WatchEvent::Shown { .. })) => {}
            Ok(None) | Err(_) => bail!(
                "{} of {n} followers show \"{FOLLOW_BANNER}\" (presenter on screen: {presenter_on})",
                banners.len()
            ),
        }
    }
    Ok(())
}

/// One series of presses; prints its figures and returns them with their JSON.
async fn run_phase(
    show: &Show<'_>,
    room: &mut Room,
    phase: &Phase,
    idx: &mut usize,
) -> Result<(PressSeries, Value)> {
    let mut s = PressSeries::default();
    let u0 = usage(show.server.pid);
    let fb0 = room.follower_bytes.load(Ordering::Relaxed);
    let pb0 = room.presenter_bytes.load(Ordering::Relaxed);
    for _ in 0..phase.count {
        press_once(show, room, phase, *idx, &mut s).await?;
        *idx += 1;
    }
    let u1 = usage(show.server.pid);
    let follower_b =
        (room.follower_bytes.load(Ordering::Relaxed) - fb0) as f64 / (phase.count * show.n) as f64;
    let presenter_b = (room.presenter_bytes.load(Ordering::Relaxed) - pb0) as f64 / phase.count as f64;
    let record = report_phase(phase, show.n, &s, (u0, u1), (follower_b, presenter_b));
    Ok((s, record))
}

/// Press `idx`: announced to every watcher, the key sent, every screen waited for (5 s).
async fn press_once(
    show: &Show<'_>,
    room: &mut Room,
    phase: &Phase,
    idx: usize,
    s: &mut PressSeries,
) -> Result<()> {
    if phase.gap_before > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(phase.gap_before)).await;
    }
    let n = show.n;
    let page = (idx + 1) % show.marks.len();
    let (title, words) = &show.marks[page];
    let c0 = usage(show.server.pid).cpu_live_s;
    let out = show.presenter.press(room, idx, (page, title, words), n, Duration::from_secs(5)).await?;
    if let Some(who) = out.closed.first() {
        bail!("follower {who} was closed");
    }
    // Let the rest of the frames arrive, then read the server's CPU for this press.
    tokio::time::sleep(Duration::from_secs_f64(phase.gap_after)).await;
    s.cpu_ms += (usage(show.server.pid).cpu_live_s - c0) * 1e3;
    if out.shown.len() == n {
        s.all.record(out.shown.iter().map(|x| x.1).fold(0.0, f64::max));
    } else {
        s.missing += n - out.shown.len();
        eprintln!(
            "  press {idx} ({title}): {} of {n} followers did not show it within 5 s",
            n - out.shown.len()
        );
    }
    for (first, screen) in &out.shown {
        s.first.record(*first);
        s.screen.record(*screen);
    }
    if let Some(ms) = out.presenter_ms {
        s.presenter.record(ms);
    }
    s.presses += 1;
    Ok(())
}

/// Prints one series' figures; returns them as JSON.
fn report_phase(
    phase: &Phase,
    n: usize,
    s: &PressSeries,
    (u0, u1): (Usage, Usage),
    (follower_b, presenter_b): (f64, f64),
) -> Value {
    let (name, count) = (phase.name, phase.count);
    println!("  {name} followers, {} presses ({} follower screens missing):", s.presses, s.missing);
    println!("    key -> all {n} followers show the new section, ms: {}", s.all.line());
    println!("    per follower, key -> new section on screen, ms: {}", s.screen.line());
    println!("    per follower, key -> first byte, ms: {}", s.first.line());
    println!("    key -> the presenter's own screen shows it, ms: {}", s.presenter.line());
    println!(
        "    channel data per follower per press {follower_b:.0} bytes (presenter {presenter_b:.0}); server CPU {:.2} ms per press ({:.1} us per follower); server RSS {} -> {} KiB",
        s.cpu_ms / count as f64,
        s.cpu_ms * 1e3 / (count * n) as f64,
        u0.rss_kib,
        u1.rss_kib
    );
    json!({"presses": s.presses, "missing": s.missing, "all_followers_ms": s.all.json(),
        "follower_screen_ms": s.screen.json(), "follower_first_byte_ms": s.first.json(), "presenter_screen_ms": s.presenter.json(),
        "bytes_per_follower_per_press": follower_b, "bytes_presenter_per_press": presenter_b,
        "server_cpu_ms_per_press": s.cpu_ms / count as f64, "rss_kib_before": u0.rss_kib, "rss_kib_after": u1.rss_kib,
        "gap_before_s": phase.gap_before, "gap_after_s": phase.gap_after})
}

fn summarize(ctx: &mut Ctx, n: usize, quit_ok: usize, series: Vec<(&str, PressSeries, Value)>) {
    let mut record = serde_json::Map::new();
    record.insert("followers".into(), json!(n));
    record.insert("followers_closed_cleanly".into(), json!(quit_ok));
    for (phase, s, value) in series {
        let (all, screen, first) = (&s.all, &s.screen, &s.first);
        let missing =
            if s.missing > 0 { format!("; {} follower screens missing", s.missing) } else { String::new() };
        ctx.summarize(
            &format!(
                "presenter key -> all {n} followers show the new section, p50 / p90 / max ({phase} followers)"
            ),
            format!(
                "{:.1} / {:.1} / {:.1} ms over {} presses{missing}",
                all.p(0.5),
                all.p(0.9),
                all.p(1.0),
                s.presses
            ),
            "<= 100 ms",
        );
        ctx.summarize(
            &format!(
                "  per follower ({phase}): key -> first byte; -> new section on screen, p50 / p90 / max"
            ),
            format!(
                "{:.1} / {:.1} / {:.1} ms; {:.1} / {:.1} / {:.1} ms",
                first.p(0.5),
                first.p(0.9),
                first.p(1.0),
                screen.p(0.5),
                screen.p(0.9),
                screen.p(1.0)
            ),
            "—",
        );
        record.insert(phase.into(), value);
    }
    ctx.record("presenter", Value::Object(record));
}
