//! The `presenter` part: a presenter key -> every follower's screen showing the new section.

use std::collections::HashSet;
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use russh::{ChannelMsg, Disconnect};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use crate::STEP;
use crate::client::Session;
use crate::ctx::Ctx;
use crate::follow::{
    FOLLOW_BANNER, PRESENTER, PRESENTER_BANNER, Press, WatchEvent, Watcher, connect_presenter, follow,
    section_marks,
};
use crate::procinfo::{raise_nofile, usage};
use crate::server::Server;
use crate::stats::{Dist, ms};

/// Figures of one series of presses.
#[derive(Default)]
pub struct PressSeries {
    /// Per press: key -> the last follower's screen shows the new section (complete presses only).
    pub all: Vec<f64>,
    /// Per follower and press: key -> new section on screen.
    pub screen: Vec<f64>,
    /// Per follower and press: key -> first byte after the key.
    pub first: Vec<f64>,
    /// Per press: key -> the presenter's own screen shows the new section.
    pub presenter: Vec<f64>,
    /// Follower screens that did not show the section within 5 s.
    pub missing: usize,
    pub presses: usize,
}

pub async fn part_presenter(ctx: &mut Ctx) -> Result<()> {
    if ctx.opts.target.is_some() {
        println!("\n[presenter] skipped: it needs a spawned sshbio (--presenter-keys)");
        return Ok(());
    }
    let n = ctx.opts.followers_n();
    let (active_n, hibernated_n) = (ctx.opts.presses_n(), ctx.opts.presses_hibernated_n());
    let content = ctx
        .opts
        .content
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content.toml"));
    let marks: Vec<(String, String)> = section_marks(&content)?.into_iter().take(9).collect();
    if marks.len() < 2 {
        bail!("the presenter part needs at least 2 sections in {}", content.display());
    }
    println!(
        "\n[presenter] {n} followers (80x24); the presenter presses {active_n} section keys {} s apart, then {hibernated_n} more each after {} s of quiet (screens hibernated)",
        ctx.opts.press_gap, ctx.opts.hibernated_gap
    );
    // A fresh server that accepts one freshly generated presenter key.
    let key = russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
        .map_err(|e| anyhow!("generating the presenter key: {e}"))?;
    let public = key.public_key().to_openssh().map_err(|e| anyhow!("encoding the presenter key: {e}"))?;
    let keys_file = std::env::temp_dir().join(format!("sshbio-load-presenter-{}.pub", std::process::id()));
    std::fs::write(&keys_file, format!("{public}\n"))?;
    let spawned =
        Server::spawn_with(&ctx.opts, true, &["--presenter-keys".into(), keys_file.to_string_lossy().into()]);
    let _ = std::fs::remove_file(&keys_file);
    let mut server = spawned?;
    println!("  server pid {}", server.pid);
    raise_nofile(std::process::id(), n as u64 + 2_000);
    let result = presenter_run(ctx, &server, &key, n, &marks, active_n, hibernated_n).await;
    if let Some(errors) = server.error_lines() {
        println!("  server log: {errors} error lines");
    }
    server.stop();
    result
}

#[allow(clippy::too_many_arguments)]
pub async fn presenter_run(
    ctx: &mut Ctx,
    server: &Server,
    key: &russh::keys::PrivateKey,
    n: usize,
    marks: &[(String, String)],
    active_n: usize,
    hibernated_n: usize,
) -> Result<()> {
    let (press_tx, press_rx) = watch::channel::<Option<Press>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let follower_bytes = Arc::new(AtomicU64::new(0));
    let presenter_bytes = Arc::new(AtomicU64::new(0));

    // The followers: opened 16 at a time, each then drained by its own task.
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
        let w = Watcher {
            who,
            banner: FOLLOW_BANNER,
            banner_seen: false,
            first_for: None,
            first_ms: 0.0,
            shown_for: None,
            press: press_rx.clone(),
            events: events_tx.clone(),
            bytes: follower_bytes.clone(),
        };
        followers.push(tokio::spawn(follow(s, w, stop_rx.clone())));
    }
    println!("  {n} followers on screen in {:.2} s", started.elapsed().as_secs_f64());

    // The presenter: its channel is drained by a task of its own; keys go through the write half.
    let t_presenter = Instant::now();
    let (handle, channel) = connect_presenter(server.addr, ctx.config.clone(), key).await?;
    let (mut read, write) = channel.split();
    let mut pw = Watcher {
        who: PRESENTER,
        banner: PRESENTER_BANNER,
        banner_seen: false,
        first_for: None,
        first_ms: 0.0,
        shown_for: None,
        press: press_rx.clone(),
        events: events_tx.clone(),
        bytes: presenter_bytes.clone(),
    };
    let mut presenter_stop = stop_rx.clone();
    let presenter_reader = tokio::spawn(async move {
        let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
        let mut exit = None;
        let mut stopping = false;
        loop {
            let msg = if stopping {
                match timeout(STEP, read.wait()).await {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            } else {
                tokio::select! {
                    msg = read.wait() => msg,
                    _ = presenter_stop.wait_for(|stop| *stop) => { stopping = true; continue }
                }
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    vt.process(&data);
                    pw.on_data(&vt, data.len() as u64);
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        exit
    });

    // Everyone follows: each follower shows the banner, and the presenter its own.
    let deadline = tokio::time::Instant::now() + STEP;
    let mut banners = HashSet::new();
    let mut presenter_on = false;
    while banners.len() < n || !presenter_on {
        match tokio::time::timeout_at(deadline, events.recv()).await {
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
    println!(
        "  presenter connected; every follower shows the banner {:.0} ms after the presenter's TCP connect",
        ms(t_presenter.elapsed())
    );
    // Let the audience counts (51 here, 50 following) settle: they change at most once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut series: Vec<(&str, PressSeries, Value)> = Vec::new();
    let mut idx = 0;
    for (phase, count, gap_before, gap_after) in [
        ("active", active_n, 0.0, ctx.opts.press_gap),
        ("hibernated", hibernated_n, ctx.opts.hibernated_gap, 0.3),
    ] {
        if count == 0 {
            continue;
        }
        let mut s = PressSeries::default();
        let u0 = usage(server.pid);
        let (fb0, pb0) = (follower_bytes.load(Ordering::Relaxed), presenter_bytes.load(Ordering::Relaxed));
        let mut cpu_ms = 0.0;
        for _ in 0..count {
            if gap_before > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(gap_before)).await;
            }
            let page = (idx + 1) % marks.len();
            let (title, words) = &marks[page];
            let c0 = usage(server.pid).cpu_live_s;
            let t0 = Instant::now();
            press_tx.send_replace(Some(Press {
                idx,
                t0,
                title: format!("╭ {title} ").into(),
                words: words.as_str().into(),
            }));
            write.data_bytes(vec![b'1' + page as u8]).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let (mut shown, mut presenter_ms) = (Vec::with_capacity(n), None);
            while shown.len() < n || presenter_ms.is_none() {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Some(WatchEvent::Shown { who, press, first_ms, screen_ms })) if press == idx => {
                        if who == PRESENTER {
                            presenter_ms = Some(screen_ms);
                        } else {
                            shown.push((first_ms, screen_ms));
                        }
                    }
                    Ok(Some(WatchEvent::Closed(who))) => bail!("follower {who} was closed"),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // Let the rest of the frames arrive, then read the server's CPU for this press.
            tokio::time::sleep(Duration::from_secs_f64(gap_after)).await;
            cpu_ms += (usage(server.pid).cpu_live_s - c0) * 1e3;
            if shown.len() == n {
                s.all.push(shown.iter().map(|x| x.1).fold(0.0, f64::max));
            } else {
                s.missing += n - shown.len();
                eprintln!(
                    "  press {idx} ({title}): {} of {n} followers did not show it within 5 s",
                    n - shown.len()
                );
            }
            s.first.extend(shown.iter().map(|x| x.0));
            s.screen.extend(shown.iter().map(|x| x.1));
            s.presenter.extend(presenter_ms);
            s.presses += 1;
            idx += 1;
        }
        let u1 = usage(server.pid);
        let follower_b = (follower_bytes.load(Ordering::Relaxed) - fb0) as f64 / (count * n) as f64;
        let presenter_b = (presenter_bytes.load(Ordering::Relaxed) - pb0) as f64 / count as f64;
        let (all, screen, first, own) = (
            Dist::new(s.all.clone()),
            Dist::new(s.screen.clone()),
            Dist::new(s.first.clone()),
            Dist::new(s.presenter.clone()),
        );
        println!("  {phase} followers, {} presses ({} follower screens missing):", s.presses, s.missing);
        println!("    key -> all {n} followers show the new section, ms: {}", all.line());
        println!("    per follower, key -> new section on screen, ms: {}", screen.line());
        println!("    per follower, key -> first byte, ms: {}", first.line());
        println!("    key -> the presenter's own screen shows it, ms: {}", own.line());
        println!(
            "    channel data per follower per press {follower_b:.0} bytes (presenter {presenter_b:.0}); server CPU {:.2} ms per press ({:.1} us per follower); server RSS {} -> {} KiB",
            cpu_ms / count as f64,
            cpu_ms * 1e3 / (count * n) as f64,
            u0.rss_kib,
            u1.rss_kib
        );
        let record = json!({"presses": s.presses, "missing": s.missing, "all_followers_ms": all.json(),
            "follower_screen_ms": screen.json(), "follower_first_byte_ms": first.json(), "presenter_screen_ms": own.json(),
            "bytes_per_follower_per_press": follower_b, "bytes_presenter_per_press": presenter_b,
            "server_cpu_ms_per_press": cpu_ms / count as f64, "rss_kib_before": u0.rss_kib, "rss_kib_after": u1.rss_kib,
            "gap_before_s": gap_before, "gap_after_s": gap_after});
        series.push((phase, s, record));
    }

    // The presenter leaves, then the followers.
    write.data_bytes(&b"q"[..]).await?;
    let _ = stop_tx.send(true);
    let exit = timeout(STEP, presenter_reader).await.ok().and_then(Result::ok).flatten();
    let _ = timeout(Duration::from_secs(2), handle.disconnect(Disconnect::ByApplication, "", "en")).await;
    let mut quit_ok = 0;
    for f in followers {
        if matches!(timeout(STEP, f).await, Ok(Ok(true))) {
            quit_ok += 1;
        }
    }
    println!("  presenter exit status {exit:?}; {quit_ok}/{n} followers closed cleanly");

    let mut record = serde_json::Map::new();
    record.insert("followers".into(), json!(n));
    record.insert("followers_closed_cleanly".into(), json!(quit_ok));
    for (phase, s, value) in series {
        let all = Dist::new(s.all);
        let screen = Dist::new(s.screen);
        let first = Dist::new(s.first);
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
    Ok(())
}
