//! The `ssh` part: the first frame as the real OpenSSH client sees it.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::STEP;
use crate::client::complete_screen;
use crate::ctx::Ctx;
use crate::opts::Opts;
use crate::server::Server;
use crate::stats::{Dist, ms};

/// `ssh -tt` to `addr` under `script` (an 80x24 pty) or `sh` (pipes).
fn ssh_command(opts: &Opts, via: &str, addr: SocketAddr) -> Result<Command> {
    let ssh = format!(
        "ssh -tt -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes {}@{}",
        addr.port(),
        opts.user,
        addr.ip()
    );
    Ok(match via {
        "script" => {
            let mut c = Command::new("script");
            c.args(["-qfec", &format!("stty cols 80 rows 24; exec {ssh}"), "/dev/null"]);
            c
        }
        "pipe" => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("exec {ssh}")]);
            c
        }
        other => bail!("--ssh-via {other}: use script or pipe"),
    })
}

/// One run of the OpenSSH client; returns ms from spawn to the first complete screen.
pub fn ssh_once(opts: &Opts, via: &str, addr: SocketAddr) -> Result<f64> {
    let mut cmd = ssh_command(opts, via, addr)?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let result = first_screen(&rx, t0);
    let _ = stdin.write_all(b"q");
    let _ = stdin.flush();
    wait_exit(&mut child, &rx);
    drop(stdin);
    drop(rx);
    let _ = reader.join();
    result
}

/// Feeds what the client prints to a vt100 until the first complete screen; ms from `t0`.
fn first_screen(rx: &Receiver<Vec<u8>>, t0: Instant) -> Result<f64> {
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    let deadline = t0 + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => {
                vt.process(&chunk);
                if complete_screen(&vt.screen().contents()) {
                    return Ok(ms(t0.elapsed()));
                }
            }
            Err(_) => return Err(anyhow!("no complete screen in time; screen:\n{}", vt.screen().contents())),
        }
    }
}

/// Waits up to 5 s for the client to exit (draining its output meanwhile), then kills it.
fn wait_exit(child: &mut Child, rx: &Receiver<Vec<u8>>) {
    let exit_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < exit_deadline => {
                while rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
}

/// Spawn to first output of the same wrapper running `echo`: what `script`/`sh` add by themselves.
pub fn harness_overhead(via: &str) -> Option<f64> {
    let mut cmd = match via {
        "script" => {
            let mut c = Command::new("script");
            c.args(["-qfec", "stty cols 80 rows 24; exec echo ready", "/dev/null"]);
            c
        }
        _ => {
            let mut c = Command::new("sh");
            c.args(["-c", "exec echo ready"]);
            c
        }
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn().ok()?;
    let mut buf = [0u8; 64];
    let _ = child.stdout.as_mut()?.read(&mut buf);
    let t = ms(t0.elapsed());
    let _ = child.wait();
    Some(t)
}

pub async fn part_ssh(ctx: &mut Ctx, server: &Server) -> Result<()> {
    let n = ctx.opts.ssh_n();
    let version = Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    let mut record = serde_json::Map::new();
    for via in ctx.opts.ssh_via.clone() {
        println!(
            "\n[ssh] {n} runs of the OpenSSH client (ssh -tt via {via}), spawn -> first complete screen"
        );
        let opts = ctx.opts.clone();
        let addr = server.addr;
        let mode = via.clone();
        let (times, errors, overhead) = tokio::task::spawn_blocking(move || {
            let mut times = Vec::new();
            let mut errors = 0;
            let started = Instant::now();
            for i in 0..n {
                match ssh_once(&opts, &mode, addr) {
                    Ok(t) => times.push(t),
                    Err(e) => {
                        errors += 1;
                        if errors <= 2 {
                            eprintln!("  run {i}: {e:#}");
                        }
                    }
                }
                if started.elapsed() > Duration::from_secs(90) || errors > 5 {
                    break;
                }
            }
            let overhead: Vec<f64> = (0..10).filter_map(|_| harness_overhead(&mode)).collect();
            (times, errors, overhead)
        })
        .await?;
        let d = Dist::new(times);
        let o = Dist::new(overhead);
        println!("  {version}");
        println!("  spawn -> first complete screen, ms: {}; errors {errors}", d.line());
        println!("  the wrapper alone (spawn -> first output of `echo`): p50 {:.2} ms", o.p(0.5));
        record.insert(
            via.clone(),
            json!({"frame_ms": d.json(), "errors": errors, "client": version, "wrapper_ms": o.json()}),
        );
        let how = if via == "script" { "under script, 80x24 pty" } else { "pipes, no local tty" };
        ctx.summarize(
            &format!("OpenSSH `ssh -tt` spawn -> first frame p50 / p90 ({how})"),
            format!("{:.1} / {:.1} ms (wrapper alone {:.1} ms)", d.p(0.5), d.p(0.9), o.p(0.5)),
            "p50 <= 20 ms",
        );
    }
    ctx.record("ssh", Value::Object(record));
    Ok(())
}
