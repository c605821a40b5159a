//! End to end with the real OpenSSH client: in a terminal (tmux), with `-T`, with commands,
//! with a user-name route, and when refused. This is what visitors actually run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use sshbio::server::Limits;

fn require(program: &str) {
    assert!(have(program), "`{program}` is needed for this test; .ci/run installs it");
}

/// A tmux server of our own (its own socket) running one command in an 80x24 window.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, command: &str) -> Self {
        require("tmux");
        let socket = format!("sshbio-{name}-{}", std::process::id());
        let tmux = Self { socket };
        let status = tmux.cmd(&["new-session", "-d", "-x", "80", "-y", "24", command]).status;
        assert!(status.success(), "tmux started");
        tmux
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p"]).stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        self.cmd(&["send-keys", keys]);
    }

    /// Waits (blocking; these tests run the server on another thread) until the pane shows
    /// `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {needle:?}; pane:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn ssh_command(server: &TestServer, user: &str, extra: &[&str]) -> String {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(ssh_args(server.addr, user));
    format!("ssh {}", args.join(" "))
}

async fn run_ssh(server: &TestServer, user: &str, extra: &[&str], command: &[&str]) -> Output {
    require("ssh");
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.extend(ssh_args(server.addr, user));
    args.extend(command.iter().map(|s| s.to_string()));
    let child = tokio::process::Command::new("ssh").args(&args).stdin(std::process::Stdio::null()).output();
    tokio::time::timeout(WAIT, child).await.expect("ssh finished in time").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_in_a_terminal_logs_in_without_a_prompt_reads_and_quits_with_status_0() {
    require("ssh");
    let server = TestServer::start().await;
    // BatchMode=yes makes ssh fail rather than prompt, so reaching the bio proves no prompt.
    let command = format!("{}; echo EXIT=$?; sleep 30", ssh_command(&server, "anyone", &[]));
    let tmux = Tmux::start("tui", &command);
    let tmux = tokio::task::spawn_blocking(move || {
        // At 80x24 and up the name is in block letters; the headline and chapters are text.
        let screen = tmux.wait_for("Cartographer of imaginary coastlines");
        assert!(screen.contains(LONG_TITLES[0]), "{screen}");
        tmux.keys("7");
        tmux.wait_for(&top(7));
        tmux.keys("Left");
        tmux.wait_for(&top(6));
        tmux.keys("q");
        let screen = tmux.wait_for("EXIT=");
        assert!(screen.contains("EXIT=0"), "{screen}");
        assert!(!screen.contains(LONG_NAME), "the alternate screen is gone:\n{screen}");
        tmux
    })
    .await
    .unwrap();
    drop(tmux);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_user_name_route_opens_that_section() {
    require("ssh");
    let server = TestServer::start().await;
    let command = format!("{}; sleep 30", ssh_command(&server, "harbour-years", &[]));
    let tmux = Tmux::start("route", &command);
    tokio::task::spawn_blocking(move || {
        tmux.wait_for(&top(4));
        tmux.keys("q");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn openssh_without_a_terminal_gets_plain_text() {
    let server = TestServer::start().await;
    let out = run_ssh(&server, "visitor", &["-T"], &[]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no escape sequences: {text:?}");
    for title in LONG_TITLES {
        assert!(text.contains(title), "{title}");
    }
    assert!(text.contains(&end(9)), "the whole bio, to its last word");
    assert!(text.lines().all(|l| l.chars().count() <= 80));
    // A section's slug as the user name: that section only, as the UI would open on it.
    let out = run_ssh(&server, "the-atlas", &["-T"], &[]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("The atlas\n---------\n"), "{text}");
    assert!(text.contains(&end(6)) && !text.contains(LONG_TITLES[0]), "{text}");
}

#[tokio::test]
async fn openssh_commands_print_output_and_fail_clearly() {
    let server = TestServer::start().await;
    let out = run_ssh(&server, "visitor", &[], &["section", "the-atlas"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("The atlas\n---------\n") && text.contains(&end(6)), "{text}");

    let out = run_ssh(&server, "visitor", &[], &["json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sections"].as_array().unwrap().len(), 9);

    let out = run_ssh(&server, "visitor", &[], &["launch-rockets"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown command `launch-rockets`") && err.contains("usage:"), "{err}");

    // With -t the output still arrives intact (CRLF line ends for the raw terminal).
    let out = run_ssh(&server, "visitor", &["-tt"], &["help"]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("section NAME"));
}

#[tokio::test]
async fn openssh_refused_connections_say_why() {
    let limits = Limits { max_per_ip: 1, ..Limits::default() };
    let server = TestServer::start_with(Options { limits, ..Options::default() }).await;
    let holder = connect(server.addr, "first").await;
    let out = run_ssh(&server, "second", &["-T", "-o", "LogLevel=INFO"], &[]).await;
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too many connections from your address"), "{err}");
    disconnect(holder).await;
}
