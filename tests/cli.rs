//! The `sshbio` binary as an operator uses it: subcommands, start-up errors, the metrics
//! endpoint, live reload of a real file (edit, rename-replace, invalid edit, SIGHUP) and
//! SIGTERM. Each test runs its own server process on a free loopback port, serving the long
//! fixture (tests/fixtures/long.toml); only the `check` test reads the owner's content.toml.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn check_accepts_the_shipped_file_and_names_line_and_key_of_a_broken_one() {
    // The owner's file must be valid; what it says is theirs to change.
    let out = sshbio(&["check", "content.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok ("));
    let out = sshbio(&["check", "tests/fixtures/long.toml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (9 sections"), "{out:?}");

    let dir = temp_dir("cli-check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"A\"\nheadline = \"B\"\nnmae = \"typo\"\n[[sections]]\ntitle = \"T\"\nparagraphs = [\"p\"]\n")
        .unwrap();
    let out = sshbio(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:1:", bad.display())) && err.contains("`nmae`"), "{err}");
}

#[test]
fn render_prints_plain_text_at_the_asked_width() {
    let out = sshbio(&["render", "--width", "60", "--content", "tests/fixtures/long.toml"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Retirement, briefly") && text.contains(&end(9)) && !text.contains('\x1b'));
    assert!(text.lines().all(|l| l.chars().count() <= 60));
}

#[test]
fn keygen_and_fingerprint_agree_with_ssh_keygen() {
    let dir = temp_dir("cli-keys");
    let keys = dir.join("keys");
    let out = sshbio(&["keygen", "--keys", keys.to_str().unwrap()]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("created"));
    let out = sshbio(&["keygen", "--keys", keys.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("exists"), "a second keygen keeps the key");
    let out = sshbio(&["fingerprint", "--keys", keys.to_str().unwrap(), "--host", "bio.example.com"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let fingerprint = text.lines().next().unwrap();
    assert!(fingerprint.starts_with("SHA256:"));
    assert!(text.contains("bio.example.com. IN SSHFP 4 2 "), "{text}");
    if have("ssh-keygen") {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(keys.join("ssh_host_ed25519_key.pub"))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(fingerprint));
        let out = Command::new("ssh-keygen")
            .args(["-r", "bio.example.com", "-f"])
            .arg(keys.join("ssh_host_ed25519_key.pub"))
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let ours = text.lines().nth(1).unwrap().rsplit(' ').next().unwrap().to_string();
        assert!(theirs.contains(&ours), "ssh-keygen -r: {theirs} vs {ours}");
    }
}

/// Runs `sshbio` (serve) on `dir`'s content and keys until it exits.
fn serve_in(dir: &std::path::Path, port: u16) -> std::process::Output {
    Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--content"])
        .arg(dir.join("content.toml"))
        .arg("--keys")
        .arg(dir.join("keys"))
        .output()
        .unwrap()
}

#[test]
fn serve_refuses_to_start_on_broken_content_or_an_open_key() {
    let dir = workdir("broken");
    std::fs::write(
        dir.join("content.toml"),
        "name = \"A\"\nheadline = \"B\"\n[[sections]]\ntitle = \"T\"\nparagraphs = []\n",
    )
    .unwrap();
    let port = free_port();
    let out = serve_in(&dir, port);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("content.toml:5:14") && err.contains("sections[0].paragraphs"), "{err}");
    assert!(!dir.join("keys").exists(), "nothing was done before the content was valid");

    let dir = workdir("openkey");
    assert!(sshbio(&["keygen", "--keys", dir.join("keys").to_str().unwrap()]).status.success());
    let key = dir.join("keys/ssh_host_ed25519_key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = serve_in(&dir, port);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_host_key() {
    let dir = workdir("restart");
    let first = Process::start(&dir, &[]);
    let conn = connect(first.addr, "a").await;
    let key1 = conn.server_key.lock().unwrap().clone().unwrap();
    disconnect(conn).await;
    drop(first);
    let second = Process::start(&dir, &[]);
    let conn = connect(second.addr, "a").await;
    let key2 = conn.server_key.lock().unwrap().clone().unwrap();
    assert_eq!(key1, key2, "same host key after a restart");
    disconnect(conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_over_http() {
    let dir = workdir("metrics");
    let metrics_port = free_port();
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let server = Process::start(&dir, &["--metrics-listen", &metrics_addr.to_string()]);
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.send(b"q").await;
    screen.wait_close().await;
    disconnect(conn).await;
    // The session's end is counted once its task has finished: poll for it.
    let ended = "sshbio_connections_closed_total{end=\"quit\"} 1";
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) =
            tokio::task::spawn_blocking(move || http_get(metrics_addr, "/metrics")).await.unwrap();
        if body.contains(ended) || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200);
    for needle in [
        "sshbio_sessions_started_total{kind=\"tui\"} 1",
        "sshbio_sessions_open{kind=\"tui\"} 0",
        "sshbio_connections_closed_total{end=\"quit\"} 1",
        "sshbio_frame_render_seconds_count",
        "sshbio_first_frame_render_seconds_count 1",
        "sshbio_sent_bytes_total",
        "sshbio_handshakes_in_progress 0",
        "sshbio_ready 1",
        "sshbio_build_info{version=",
    ] {
        assert!(body.contains(needle), "{needle} missing:\n{body}");
    }
    let (status, body) =
        tokio::task::spawn_blocking(move || http_get(metrics_addr, "/healthz")).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = tokio::task::spawn_blocking(move || http_get(metrics_addr, "/readyz")).await.unwrap();
    assert_eq!(status, 200);
    // One log line per session, with how it ended and no keystrokes.
    server.wait_log("session ended");
    let log = server.log();
    let line = log.lines().find(|l| l.contains("session ended") && l.contains("user=visitor")).unwrap();
    for field in [
        "peer=",
        "user=visitor",
        "term=xterm-256color",
        "size=80x24",
        "duration_ms=",
        "bytes_in=",
        "end=\"quit\"",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

/// The long fixture with section 4's first words replaced by `marker`.
fn long_with(marker: &str) -> String {
    fixtures::LONG.replace(&top(4), &format!("{marker}: harbour years part 1."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reload_edit_rename_invalid_edit_and_sighup() {
    let dir = workdir("reload");
    let server = Process::start(&dir, &[]);
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.press(b"4", &top(4)).await;

    // 1. An in-place edit.
    std::fs::write(dir.join("content.toml"), long_with("EDIT ONE")).unwrap();
    screen.wait_for_text("EDIT ONE").await;
    assert!(screen.text().contains("04  Harbour years"), "stays on the same section");

    // 2. Replace by rename, as editors and Kubernetes ConfigMaps do.
    let tmp = dir.join(".content.toml.swp");
    std::fs::write(&tmp, long_with("EDIT TWO")).unwrap();
    std::fs::rename(&tmp, dir.join("content.toml")).unwrap();
    screen.wait_for_text("EDIT TWO").await;

    // 3. An invalid edit: logged with file:line, the old text keeps serving.
    std::fs::write(dir.join("content.toml"), "name = \"broken\n").unwrap();
    server.wait_log("content not reloaded");
    assert!(server.log().contains("content.toml:1:"), "{}", server.log());
    let conn2 = connect(server.addr, "harbour-years").await;
    let other = open_tui(&conn2, "xterm-256color", 80, 24, &[]).await;
    assert!(other.text().contains("EDIT TWO"), "new visitors still get the last good bio");
    assert!(screen.text().contains("EDIT TWO"));

    // 4. SIGHUP reloads too (here after a fix; the watcher would also see this write, so the
    //    SIGHUP-only path has its own test in src/content/reload.rs).
    std::fs::write(dir.join("content.toml"), long_with("EDIT THREE")).unwrap();
    server.signal("HUP");
    screen.wait_for_text("EDIT THREE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_goodbye_and_exits_zero() {
    let dir = workdir("sigterm");
    let mut server = Process::start(&dir, &["--drain-timeout", "3"]);
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    server.signal("TERM");
    assert_eq!(screen.wait_close().await, Some(0));
    assert!(screen.text().contains("restarting"));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", server.log());
}

#[test]
fn help_documents_every_flag_with_its_default_and_env() {
    let out = sshbio(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--content",
        "--keys",
        "--metrics-listen",
        "--trusted-proxies",
        "--idle-timeout",
        "--max-per-ip",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
    assert!(help.contains("[default: 127.0.0.1:2222]") && help.contains("[env: SSHBIO_LISTEN="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_parsable_line_per_session() {
    let dir = workdir("jsonlog");
    let server = Process::start(&dir, &["--log-format", "json"]);
    let conn = connect(server.addr, "json-visitor").await;
    let mut screen = open_tui(&conn, "xterm", 100, 30, &[]).await;
    screen.send(b"q").await;
    screen.wait_close().await;
    disconnect(conn).await;
    server.wait_log("session ended");
    let log = server.log();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    let line = log.lines().find(|l| l.contains("session ended")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let fields = &v["fields"];
    assert_eq!(fields["user"], "json-visitor");
    assert_eq!(fields["term"], "xterm");
    assert_eq!(fields["size"], "100x30");
    assert_eq!(fields["end"], "quit");
    assert!(fields["bytes_out"].as_u64().unwrap() > 1000);
    assert!(fields["duration_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_host_the_page_shows_the_port_the_server_listens_on() {
    let dir = workdir("web-port");
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Process::start listens on port 0: the page must show the port the kernel picked.
    let server = Process::start(&dir, &["--http-listen", &http.to_string()]);
    let (status, body) = tokio::task::spawn_blocking(move || http_get(http, "/")).await.unwrap();
    assert_eq!(status, 200);
    let command = format!("ssh -p {} localhost", server.addr.port());
    assert!(body.contains(&command), "{command} not on the page:\n{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_is_served_and_follows_reloads() {
    let dir = workdir("web");
    let port = free_port();
    let http: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Process::start(
        &dir,
        &[
            "--http-listen",
            &http.to_string(),
            // The same address: one listener serves the page and the metrics.
            "--metrics-listen",
            &http.to_string(),
            "--public-host",
            "bio.example.com",
            "--public-url",
            "https://bio.example.com/",
        ],
    );
    server.wait_log("serving metrics, health and the web page over HTTP");
    let (status, metrics) = tokio::task::spawn_blocking(move || http_get(http, "/metrics")).await.unwrap();
    assert!(status == 200 && metrics.contains("sshbio_build_info"));
    let (status, body) = tokio::task::spawn_blocking(move || http_get(http, "/")).await.unwrap();
    assert_eq!(status, 200);
    let out =
        sshbio(&["fingerprint", "--keys", dir.join("keys").to_str().unwrap(), "--host", "bio.example.com"]);
    let fingerprint = String::from_utf8_lossy(&out.stdout).lines().next().unwrap().to_string();
    for needle in [
        LONG_NAME,
        "Retirement, briefly",
        "ssh bio.example.com",
        fingerprint.as_str(),
        "IN SSHFP 4 2",
        "og:url",
    ] {
        assert!(body.contains(needle), "{needle} missing");
    }
    let (status, json) = tokio::task::spawn_blocking(move || http_get(http, "/bio.json")).await.unwrap();
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    std::fs::write(dir.join("content.toml"), long_with("WEB EDIT")).unwrap();
    server.wait_log("content reloaded");
    let (_, body) = tokio::task::spawn_blocking(move || http_get(http, "/")).await.unwrap();
    assert!(body.contains("WEB EDIT"));
}
