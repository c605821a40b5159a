//! The server under test: a spawned sshbio process (started and stopped by the shared
//! `tests/support/process.rs`), or an already running server given by address and pid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::opts::Opts;
use crate::process::{BIN, Process, free_port};

/// Per-address limits far above what one loopback client opens, for the parts that measure
/// cost rather than admission (all their load comes from 127.0.0.1).
const RAISED_LIMITS: [&str; 8] = [
    "--max-connections",
    "20000",
    "--max-per-ip",
    "20000",
    "--burst-per-ip",
    "100000",
    "--rate-per-ip",
    "100000",
];

pub struct Server {
    /// Where the server accepts connections.
    pub addr: SocketAddr,
    /// The main process; its whole process tree is measured.
    pub pid: u32,
    /// The spawned process, or None for `--target`.
    process: Option<Process>,
    /// Host key and any other files of a spawned server, removed on stop.
    dir: Option<PathBuf>,
}

impl Server {
    pub fn spawn(opts: &Opts) -> Result<Self> {
        Self::spawn_with(opts, true, &[])
    }

    /// Like [`Server::spawn`], with more server arguments after --server-args; without
    /// `raised_limits` the server keeps its own admission defaults.
    pub fn spawn_with(opts: &Opts, raised_limits: bool, more_args: &[String]) -> Result<Self> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let dir = std::env::temp_dir().join(format!("sshbio-load-{}-{}", std::process::id(), addr.port()));
        std::fs::create_dir_all(&dir)?;
        let content = opts
            .content
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content.toml"));
        let mut argv: Vec<String> = Vec::new();
        if let Some(w) = &opts.server_wrapper {
            argv.extend(w.split_whitespace().map(str::to_string));
        }
        argv.push(opts.server_bin.as_ref().map_or(BIN.into(), |bin| bin.to_string_lossy().into_owned()));
        let keys = dir.join("keys");
        for a in ["--listen", &addr.to_string(), "--keys", &keys.to_string_lossy()] {
            argv.push(a.to_string());
        }
        argv.extend(["--content".to_string(), content.to_string_lossy().into_owned()]);
        if raised_limits {
            argv.extend(RAISED_LIMITS.iter().map(|a| a.to_string()));
        }
        if let Some(extra) = &opts.server_args {
            argv.extend(extra.split_whitespace().map(str::to_string));
        }
        argv.extend(more_args.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        for (k, _) in std::env::vars() {
            if k.starts_with("SSHBIO_") {
                cmd.env_remove(k);
            }
        }
        for kv in &opts.server_env {
            let (k, v) = kv.split_once('=').context("--server-env NAME=VALUE")?;
            cmd.env(k, v);
        }
        let limit = Duration::from_secs(if opts.server_wrapper.is_some() { 60 } else { 15 });
        let process = Process::spawn(cmd, addr, limit).map_err(|e| anyhow!("{argv:?}: {e}"))?;
        Ok(Self { addr, pid: process.child.id(), process: Some(process), dir: Some(dir) })
    }

    pub fn external(addr: SocketAddr, pid: u32) -> Self {
        Self { addr, pid, process: None, dir: None }
    }

    /// Lines of the spawned server's log that report an error or a panic (None for --target).
    pub fn error_lines(&self) -> Option<usize> {
        let log = self.process.as_ref()?.log();
        Some(log.lines().filter(|l| l.contains("ERROR") || l.contains("panicked")).count())
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(Duration::from_secs(10));
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
