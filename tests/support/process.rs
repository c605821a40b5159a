//! The real sshbio binary as a separate process on a loopback port, shared by the integration
//! tests (`tests/common`) and the load generator (`benches/load`) through `#[path]`: starting
//! it, waiting until it listens, capturing its log, signalling and stopping it. Only std; it
//! must not use the test harness's helpers or the load generator's options.
// Each includer uses a different subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sshbio binary cargo built for this test or bench target.
pub const BIN: &str = env!("CARGO_BIN_EXE_sshbio");

/// How long [`Process::start`] and [`Process::wait_log`] wait before they fail a test.
const TEST_WAIT: Duration = Duration::from_secs(30);

/// Runs `sshbio ARGS` to completion (for subcommands that exit by themselves).
pub fn sshbio(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("SSHBIO_LOG").output().unwrap()
}

/// A port nothing listens on right now (the listener is closed again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The address in the server's "serving" line, if `line` is it.
fn logged_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("serving; connect with") {
        return None;
    }
    let (_, rest) = line.split_once("listen")?;
    let rest = rest.trim_start_matches(['=', '"', ':']);
    rest.split([' ', '"', ',']).next()?.parse().ok()
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Sends `signal` (a name such as `TERM` or `HUP`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
}

/// A server process; its stderr (the log) is collected in memory. Killed when dropped.
pub struct Process {
    /// The process itself, for its pid and exit status.
    pub child: Child,
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// Every line written to stderr so far.
    log: Arc<Mutex<String>>,
}

impl Process {
    /// `sshbio --listen 127.0.0.1:0 --content DIR/content.toml --keys DIR/keys EXTRA...`: the
    /// kernel picks the port and the server logs it, so no other process can take it first and
    /// no probe connection is made. Panics (a test failure) if it does not listen in time.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--content"])
            .arg(dir.join("content.toml"))
            .arg("--keys")
            .arg(dir.join("keys"))
            .args(extra);
        let mut process =
            Self::launch(cmd, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap_or_else(|e| panic!("{e}"));
        process.addr = process.wait_logged_address(TEST_WAIT).unwrap_or_else(|e| panic!("{e}"));
        process
    }

    /// Spawns `cmd` (stdin and stdout to /dev/null, stderr collected) and waits until `addr`
    /// accepts a TCP connection. Fails with the log if the process exits or `limit` passes.
    pub fn spawn(cmd: Command, addr: SocketAddr, limit: Duration) -> Result<Self, String> {
        let mut process = Self::launch(cmd, addr)?;
        process.wait_listening(limit)?;
        Ok(process)
    }

    /// Spawns `cmd` with its stderr collected into the log.
    fn launch(mut cmd: Command, addr: SocketAddr) -> Result<Self, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {cmd:?}: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        Ok(Self { child, addr, log })
    }

    /// Waits for the start-up line and reads the address the server listens on from it (text
    /// `listen=ADDR` or JSON `"listen":"ADDR"`).
    fn wait_logged_address(&mut self, limit: Duration) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(addr) = self.log().lines().find_map(logged_address) {
                return Ok(addr);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("server exited with {status}; log:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("server logged no listen address in time; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_listening(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("server exited with {status}; log:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("server did not listen on {} in time; log:\n{}", self.addr, self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits until the log contains `needle`; panics (a test failure) after 10 s.
    pub fn wait_log(&self, needle: &str) {
        self.wait_log_count(needle, 1);
    }

    /// Waits until `needle` is in the log `count` times (a second reload, a second session).
    pub fn wait_log_count(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + TEST_WAIT;
        while self.log().matches(needle).count() < count {
            assert!(Instant::now() < deadline, "log never showed {needle:?} {count} times:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (the server drains), then SIGKILL if it is still running after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
