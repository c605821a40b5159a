//! The server under test: a spawned sshbio process, or an already running server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::opts::Opts;

pub struct Server {
    pub addr: SocketAddr,
    pub pid: u32,
    pub child: Option<Child>,
    pub keys: Option<PathBuf>,
    pub log: Option<PathBuf>,
}

impl Server {
    pub fn spawn(opts: &Opts) -> Result<Self> {
        Self::spawn_with(opts, &[])
    }

    /// Like [`Server::spawn`], with more server arguments after --server-args.
    pub fn spawn_with(opts: &Opts, more_args: &[String]) -> Result<Self> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let dir = std::env::temp_dir().join(format!("sshbio-load-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let keys = dir.join("keys");
        let log = dir.join("server.log");
        let content = opts
            .content
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("content.toml"));
        let mut argv: Vec<String> = Vec::new();
        if let Some(w) = &opts.server_wrapper {
            argv.extend(w.split_whitespace().map(str::to_string));
        }
        argv.push(match &opts.server_bin {
            Some(bin) => bin.to_string_lossy().into_owned(),
            None => env!("CARGO_BIN_EXE_sshbio").into(),
        });
        for a in [
            "--listen",
            &addr.to_string(),
            "--keys",
            &keys.to_string_lossy(),
            "--content",
            &content.to_string_lossy(),
            "--max-connections",
            "20000",
            "--max-per-ip",
            "20000",
            "--burst-per-ip",
            "100000",
            "--rate-per-ip",
            "100000",
        ] {
            argv.push(a.to_string());
        }
        if let Some(extra) = &opts.server_args {
            argv.extend(extra.split_whitespace().map(str::to_string));
        }
        argv.extend(more_args.iter().cloned());
        let logfile = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(logfile.try_clone()?).stderr(logfile);
        for (k, _) in std::env::vars() {
            if k.starts_with("SSHBIO_") {
                cmd.env_remove(k);
            }
        }
        for kv in &opts.server_env {
            let (k, v) = kv.split_once('=').context("--server-env NAME=VALUE")?;
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("spawning {argv:?}"))?;
        let pid = child.id();
        let mut server = Self { addr, pid, child: Some(child), keys: Some(dir), log: Some(log) };
        let deadline =
            Instant::now() + Duration::from_secs(if opts.server_wrapper.is_some() { 60 } else { 15 });
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                bail!("server exited with {status}; log:\n{}", server.log_tail());
            }
            if Instant::now() > deadline {
                bail!("server did not listen on {addr} in time; log:\n{}", server.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn external(addr: SocketAddr, pid: u32) -> Self {
        Self { addr, pid, child: None, keys: None, log: None }
    }

    pub fn log_tail(&self) -> String {
        let Some(log) = &self.log else { return String::new() };
        let s = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(dir) = self.keys.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
