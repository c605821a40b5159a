//! Load generator for sshbio (issue 6). Spawns the real server binary on a loopback port (or
//! drives an already running SSH server, e.g. OpenSSH sshd for the baseline), connects with
//! the russh client, reads every byte through a vt100 emulator and prints:
//!
//! 1. `first`: first-frame latency (TCP connect -> a complete first screen) over sequential sessions;
//! 2. `rate`:  full sessions per second at 1/8/32 in parallel, with server CPU per session;
//! 3. `idle`:  server RSS/PSS per idle 80x24 session at 1 000 and 10 000 open sessions, idle CPU
//!    and idle bytes over a quiet window, and whether any session was dropped;
//! 4. `keys`:  keystroke -> first byte of the redraw, and bytes per one-line scroll;
//! 5. `ssh`:   the first frame as the real OpenSSH client sees it (`ssh -tt` under `script`);
//! 6. `presenter`: follow mode. A presenter (`present@` with an Ed25519 key listed in
//!    `--presenter-keys`) presses section keys; times each key -> every follower's screen
//!    showing the new section;
//! 7. `keynote`: a room of visitors arrives at a rate from several loopback addresses (NAT
//!    addresses), all following a presenter who moves every few seconds; admission, first
//!    frames while the room arrives, each move's latency and CPU per follower, the idle room's
//!    cost while the count changes, memory, and the clients' own CPU. Only when named.
//!
//! Usage: `cargo bench --bench load -- [--quick] [--parts first,rate,idle,keys,ssh,presenter,keynote] [...]`;
//! `--help` lists every option. Loopback only; every wait is bounded; it stops by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod client;
mod ctx;
mod first;
mod follow;
mod idle;
mod keynote;
mod keys;
mod opts;
mod presenter;
#[path = "../../tests/support/process.rs"]
mod process;
mod procinfo;
mod rate;
#[path = "../../tests/support/screen.rs"]
mod screen;
mod server;
mod ssh;
mod stage;
mod stats;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Parser;
use serde_json::json;
use tokio::time::timeout;

use crate::client::client_config;
use crate::ctx::{Ctx, warm_up};
use crate::opts::Opts;
use crate::procinfo::{loadavg, usage};
use crate::server::Server;

/// Longest any single step of a session may take.
const STEP: Duration = Duration::from_secs(15);
/// The end of the footer's key hints, on the last row of every screen: the frame is drawn top
/// to bottom, so when this is on screen the whole first frame has arrived. Nothing here
/// depends on the bio's wording (the name may be drawn in block letters).
const FOOTER: &str = "help   q quit";

async fn run(opts: Opts) -> Result<()> {
    let config = client_config(&opts)?;
    let mut ctx = Ctx { opts: opts.clone(), config, results: serde_json::Map::new(), summary: Vec::new() };
    let mut server = Some(start(&ctx).await?);
    let failures = run_parts(&mut ctx, &mut server).await;
    if let Some(mut s) = server.take() {
        if let Some(errors) = s.error_lines() {
            println!("\nserver log: {errors} error lines");
        }
        s.stop();
    }
    println!("load average: {}", loadavg());
    println!("\n| {} | figure | target |", opts.label);
    println!("|---|---|---|");
    for (what, value, target) in &ctx.summary {
        println!("| {what} | {value} | {target} |");
    }
    if let Some(path) = &opts.json {
        let doc = json!({"label": opts.label, "kex": opts.kex, "cipher": opts.cipher, "results": ctx.results,
                         "failures": failures});
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        bail!("parts failed: {failures:?}");
    }
    Ok(())
}

/// The server under test (spawned, or --target), warmed up with 5 sessions.
async fn start(ctx: &Ctx) -> Result<Server> {
    let opts = &ctx.opts;
    let s = match (opts.target, opts.server_pid) {
        (Some(addr), Some(pid)) => Server::external(addr, pid),
        (Some(_), None) => bail!("--target needs --server-pid"),
        _ => Server::spawn(opts)?,
    };
    println!(
        "load: {} at {} (pid {}), user {:?}, client kex {:?} cipher {:?}",
        opts.label,
        s.addr,
        s.pid,
        opts.user,
        opts.kex.as_deref().unwrap_or("russh default"),
        opts.cipher.as_deref().unwrap_or("russh default")
    );
    println!("load average: {}", loadavg());
    warm_up(ctx, &s, 5).await?;
    let u = usage(s.pid);
    println!("server after warm-up: {} KiB RSS, {} KiB PSS, {} processes", u.rss_kib, u.pss_kib, u.processes);
    Ok(s)
}

/// Runs the parts asked for, in a fixed order; returns the names of those that failed.
async fn run_parts(ctx: &mut Ctx, server: &mut Option<Server>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |part: &str, r: Result<()>| {
        if let Err(e) = r {
            eprintln!("[{part}] failed: {e:#}");
            failures.push(part.to_string());
        }
    };
    if ctx.opts.has("first") {
        check("first", first::part_first(ctx, server.as_ref().unwrap()).await);
    }
    if ctx.opts.has("keys") {
        check("keys", keys::part_keys(ctx, server.as_ref().unwrap()).await);
    }
    if ctx.opts.has("ssh") {
        check("ssh", ssh::part_ssh(ctx, server.as_ref().unwrap()).await);
    }
    if ctx.opts.has("presenter") {
        check("presenter", presenter::part_presenter(ctx).await);
    }
    if ctx.opts.has("keynote") {
        check("keynote", keynote::part_keynote(ctx).await);
    }
    if ctx.opts.has("rate") {
        check("rate", rate::part_rate(ctx, server.as_ref().unwrap()).await);
    }
    if ctx.opts.has("idle") {
        check("idle", idle::part_idle(ctx, server).await);
    }
    failures
}

fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    let known: HashSet<&str> =
        ["first", "rate", "idle", "keys", "ssh", "presenter", "keynote", "all"].into_iter().collect();
    if let Some(bad) = opts.parts.iter().find(|p| !known.contains(p.as_str())) {
        eprintln!("unknown part {bad}; parts are first, rate, idle, keys, ssh, presenter, keynote");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        let hard_limit = Duration::from_secs(30 * 60);
        match timeout(hard_limit, run(opts)).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("the whole run took more than {hard_limit:?}")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
