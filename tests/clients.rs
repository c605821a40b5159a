//! Compatibility with the SSH clients people actually use: PuTTY's plink, Dropbear's dbclient,
//! paramiko, asyncssh, libssh (ssh-python), curl with libssh2, and OpenSSH restricted to the
//! last-resort crypto and sharing one connection (ControlMaster). `.ci/run` installs the
//! clients; the Python ones are driven by the scripts in `tests/clients/`. Each logs in with no
//! prompt and gets the UI (`l`, `q`), plain text, commands and a route. Content is the small
//! fixture bio. The russh client's tests of one connection's life are in `connections.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The made-up bio every test here serves (never the owner's content.toml).
fn fixture() -> sshbio::content::Content {
    let text = include_str!("fixtures/small.toml");
    sshbio::content::parse_str(text, Path::new("tests/fixtures/small.toml")).unwrap()
}

async fn start() -> TestServer {
    TestServer::start_with(Options { content: fixture(), ..Options::default() }).await
}

// ---- Real clients: what each shows, checked the same way ----

/// Bytes from a script's hex strings.
fn unhex(chunk: &str) -> Vec<u8> {
    (0..chunk.len() / 2).map(|i| u8::from_str_radix(&chunk[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// Feeds the hex chunks of one phase to the terminal; true if the screen showed every one of
/// `needles` at some point (frames after the first are diffs, so the bytes alone can't say).
/// The screen is looked at after every frame (each ends by hiding the cursor), since one read
/// may hold a frame and the goodbye after it.
fn phase_shows(vt: &mut vt100::Parser, chunks: &serde_json::Value, needles: &[&str]) -> bool {
    const FRAME_END: &[u8] = b"\x1b[?25l";
    let bytes: Vec<u8> = chunks.as_array().unwrap().iter().flat_map(|c| unhex(c.as_str().unwrap())).collect();
    let mut shown = false;
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let cut = rest
            .windows(FRAME_END.len())
            .position(|w| w == FRAME_END)
            .map_or(rest.len(), |i| i + FRAME_END.len());
        vt.process(&rest[..cut]);
        rest = &rest[cut..];
        let screen = vt.screen().contents();
        shown |= needles.iter().all(|n| screen.contains(n));
    }
    shown
}

/// Checks a UI run (`drive_tui` in tests/clients/common.py): the first frame, the next section
/// after `l`, exit status 0 after `q` with the terminal restored.
fn check_tui(client: &str, tui: &serde_json::Value) {
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    assert!(
        phase_shows(&mut vt, &tui["first"], &["Ada Quill", "windy"]),
        "{client}: first frame:\n{}",
        vt.screen().contents()
    );
    assert!(
        phase_shows(&mut vt, &tui["after_l"], &["six winters"]),
        "{client}: after `l`:\n{}",
        vt.screen().contents()
    );
    assert_eq!(tui["status"], 0, "{client}: `q` exits 0");
    assert!(!vt.screen().alternate_screen(), "{client}: the terminal is restored");
}

/// Checks a route run: the UI opened on the section named by the user name.
fn check_route(client: &str, tui: &serde_json::Value) {
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    assert!(
        phase_shows(&mut vt, &tui["first"], &["machines"]),
        "{client}: route:\n{}",
        vt.screen().contents()
    );
}

/// Checks commands and plain text as a library script reported them.
fn check_commands(client: &str, r: &serde_json::Value) {
    assert_eq!(r["login"], true, "{client}: {r}");
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (r["bio_status"].as_u64(), r["json_status"].as_u64(), r["section_status"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{client}: {r}"
    );
    assert!(text("bio").starts_with("Ada Quill\n"), "{client}: bio: {}", text("bio"));
    let json: serde_json::Value = serde_json::from_str(&text("json")).unwrap();
    assert_eq!(json["sections"].as_array().unwrap().len(), 3, "{client}");
    assert!(
        text("section").starts_with("The lighthouse\n") && text("section").contains("six winters"),
        "{client}"
    );
    assert_eq!(r["unknown_status"], 2, "{client}: unknown command exits 2");
    assert!(text("unknown").is_empty(), "{client}");
    assert!(text("unknown_stderr").contains("unknown command `launch-rockets`"), "{client}: {r}");
    assert_eq!(r["plain_status"], 0, "{client}");
    assert!(text("plain").contains("Ada Quill") && text("plain").contains("six winters"), "{client}");
    assert!(!text("plain").contains('\x1b'), "{client}: plain text has no escape sequences");
}

/// Runs a script from tests/clients/ and returns the JSON it printed.
async fn script(name: &str, args: &[String]) -> serde_json::Value {
    assert!(have("python3"), "python3 is needed");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(name);
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(path)
        .args(args)
        .env("PYTHONWARNINGS", "ignore")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("script finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{name}: no report ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_ssh_client_with_an_empty_password_and_old_paramiko_ciphers() {
    let server = start().await;
    let r = script("paramiko_check.py", &[server.addr.port().to_string()]).await;
    check_commands("paramiko", &r);
    check_tui("paramiko", &r["tui"]);
    check_route("paramiko", &r["route"]);
    // As paramiko before 3.5 negotiates (no AES-GCM, no ETM MACs): the last-resort pair.
    assert_eq!(
        (r["old_cipher"].as_str(), r["old_mac"].as_str()),
        (Some("aes128-ctr"), Some("hmac-sha2-256"))
    );
    assert!(r["old_section"].as_str().unwrap().starts_with("Early days\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncssh_with_a_user_name_only() {
    let server = start().await;
    let r = script("asyncssh_check.py", &[server.addr.port().to_string()]).await;
    check_commands("asyncssh", &r);
    check_tui("asyncssh", &r["tui"]);
    check_route("asyncssh", &r["route"]);
    assert_eq!(r["cipher"], "chacha20-poly1305@openssh.com", "modern clients keep AEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libssh_through_ssh_python() {
    let server = start().await;
    let r = script("libssh_check.py", &[server.addr.port().to_string()]).await;
    check_commands("libssh", &r);
    check_tui("libssh", &r["tui"]);
    check_route("libssh", &r["route"]);
    assert_eq!(r["cipher"], "chacha20-poly1305@openssh.com", "modern clients keep AEAD");
}

/// How to run a command-line client: in a terminal, without one, or with a command.
enum Mode<'a> {
    Terminal,
    Plain,
    Command(&'a str),
}

/// Runs a command-line client without a terminal; returns (status, stdout, stderr).
async fn cli(argv: Vec<String>) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = output(cmd).await;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The whole check for a command-line client: `argv(user, mode)` builds its command line.
async fn check_cli(client: &str, argv: impl Fn(&str, Mode<'_>) -> Vec<String>) {
    assert!(have(&argv("visitor", Mode::Plain)[0]), "{client} is needed; .ci/run installs it");
    let mut r = serde_json::json!({ "login": true });
    for (name, command) in
        [("bio", "bio"), ("json", "json"), ("section", "section lighthouse"), ("unknown", "launch-rockets")]
    {
        let (status, stdout, stderr) = cli(argv("visitor", Mode::Command(command))).await;
        r[name] = stdout.into();
        r[format!("{name}_stderr")] = stderr.into();
        r[format!("{name}_status")] = status.into();
    }
    let (status, stdout, _) = cli(argv("visitor", Mode::Plain)).await;
    (r["plain"], r["plain_status"]) = (stdout.into(), status.into());
    check_commands(client, &r);
    let mut tui = vec!["pty_drive.py".to_string()];
    tui.extend(argv("visitor", Mode::Terminal));
    let (program, args) = tui.split_first().unwrap();
    check_tui(client, &script(program, args).await);
    let mut route = vec!["--no-keys".to_string()];
    route.extend(argv("compilers", Mode::Terminal));
    check_route(client, &script("pty_drive.py", &route).await);
}

fn mode_args(mode: &Mode<'_>, terminal: &str, plain: &str) -> (Vec<String>, Vec<String>) {
    match mode {
        Mode::Terminal => (vec![terminal.into()], vec![]),
        Mode::Plain => (vec![plain.into()], vec![]),
        Mode::Command(c) => (vec![], c.split(' ').map(String::from).collect()),
    }
}

fn plink_argv(server: &TestServer, user: &str, mode: Mode<'_>) -> Vec<String> {
    let (flags, command) = mode_args(&mode, "-t", "-T");
    let port = server.addr.port().to_string();
    // -batch: any prompt would fail the run, so getting output proves there was none.
    let mut argv: Vec<String> =
        ["plink", "-batch", "-ssh", "-P", &port, "-hostkey", &server.fingerprint].map(String::from).into();
    argv.extend(flags);
    argv.push(format!("{user}@127.0.0.1"));
    argv.extend(command);
    argv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putty_plink() {
    let server = start().await;
    check_cli("plink", |user, mode| plink_argv(&server, user, mode)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropbear_dbclient() {
    let server = start().await;
    let port = server.addr.port().to_string();
    check_cli("dbclient", |user, mode| {
        let (flags, command) = mode_args(&mode, "-t", "-T");
        // -y -y: no host key check (a test server's key is new every run).
        let mut argv: Vec<String> = ["dbclient", "-y", "-y", "-p", &port].map(String::from).into();
        argv.extend(flags);
        argv.push(format!("{user}@127.0.0.1"));
        argv.extend(command);
        argv
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_restricted_to_aes_ctr_and_hmac_sha2_256() {
    let server = start().await;
    check_cli("openssh-ctr", |user, mode| {
        let (flags, command) = mode_args(&mode, "-t", "-T");
        let mut argv: Vec<String> =
            ["ssh", "-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256"].map(String::from).into();
        argv.extend(flags);
        argv.extend(ssh_args(server.addr, user));
        argv.extend(command);
        argv
    })
    .await;
    // And that is what it negotiated.
    let out = output(openssh(
        &server,
        "visitor",
        &["-v", "-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256"],
        &["bio"],
    ))
    .await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("cipher: aes128-ctr MAC: hmac-sha2-256"), "{log}");
}

#[tokio::test]
async fn curl_with_libssh2_gets_past_key_exchange_and_login() {
    // Debian 12's curl uses libssh2 1.10: AES-CTR and plain SHA-2 MACs only. sftp:// and
    // scp:// have nothing to serve here, so this proves only that it gets in: before the
    // last-resort crypto it failed with "(2) Failure establishing ssh session: -5, Unable to
    // exchange encryption keys".
    assert!(have("curl"), "curl is needed; .ci/run installs it");
    let server = start().await;
    let url = format!("sftp://127.0.0.1:{}/", server.addr.port());
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-v", "-k", "-m", "10", &url, "-u", "visitor:"]).kill_on_drop(true);
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Authentication complete"), "{stderr}");
    assert!(
        stderr.contains("curl: (2) Failure initializing sftp session: Unable to request SFTP subsystem"),
        "{stderr}"
    );
    assert!(!stderr.contains("Unable to exchange encryption keys"), "{stderr}");
}

/// Reads a child's output into a terminal until it shows `needle` (bounded).
async fn read_screen(out: &mut tokio::process::ChildStdout, vt: &mut vt100::Parser, needle: &str) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = [0u8; 8192];
    while !vt.screen().contents().contains(needle) {
        let n = tokio::time::timeout_at(deadline, out.read(&mut buf)).await.expect("screen in time").unwrap();
        assert!(n > 0, "output ended before {needle:?}:\n{}", vt.screen().contents());
        vt.process(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_controlmaster_runs_commands_over_one_connection_without_errors() {
    use tokio::io::AsyncWriteExt;
    let metrics = Arc::new(sshbio::metrics::Metrics::new());
    let options = Options { content: fixture(), metrics: metrics.clone(), ..Options::default() };
    let server = TestServer::start_with(options).await;
    let dir = temp_dir("controlmaster");
    let socket = dir.join("mux").to_string_lossy().into_owned();
    let mux = |extra: &[&str]| {
        let mut args = vec!["-S", socket.as_str()];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // The master: holds the connection, opens no session of its own.
    let mut master = openssh(&server, "visitor", &mux(&["-M", "-N", "-o", "ControlPersist=no"]), &[]);
    let mut master = master.kill_on_drop(true).spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    while !output(openssh(&server, "visitor", &mux(&["-O", "check"]), &[])).await.status.success() {
        assert!(Instant::now() < deadline, "the master never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A UI through the master keeps a channel open while commands run beside it.
    let mut tui = openssh(&server, "visitor", &mux(&["-tt"]), &[]);
    tui.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut tui = tui.spawn().unwrap();
    let mut vt = vt100::Parser::new(NonZeroU16::new(24).unwrap(), NonZeroU16::new(80).unwrap(), 0);
    let mut tui_out = tui.stdout.take().unwrap();
    read_screen(&mut tui_out, &mut vt, "Ada Quill").await;
    for (command, expect) in [("bio", "Ada Quill\n"), ("section compilers", "Compilers\n")] {
        let args: Vec<&str> = command.split(' ').collect();
        let out = output(openssh(&server, "visitor", &mux(&[]), &args)).await;
        assert!(out.status.success(), "{command}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(expect), "{command}: {out:?}");
        assert!(out.stderr.is_empty(), "{command} printed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // All of it over the master's one connection.
    assert!(metrics.encode().contains("sshbio_connections_open 1\n"), "{}", metrics.encode());
    tui.stdin.as_mut().unwrap().write_all(b"q").await.unwrap();
    let status = tokio::time::timeout(WAIT, tui.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the UI quit with status 0");
    let mut tui_err = String::new();
    tokio::io::AsyncReadExt::read_to_string(tui.stderr.as_mut().unwrap(), &mut tui_err).await.unwrap();
    assert!(tui_err.is_empty(), "the UI printed: {tui_err}");
    // The last channel closed: the server ends the connection, and the master with it.
    let master_status = tokio::time::timeout(Duration::from_secs(6), master.wait()).await;
    assert!(master_status.is_ok(), "the master is still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putty_leaves_no_warnings_in_the_log() {
    assert!(have("plink"), "plink is needed; .ci/run installs it");
    let dir = temp_dir("putty-log");
    std::fs::write(dir.join("content.toml"), include_str!("fixtures/small.toml")).unwrap();
    let server = Process::start(&dir, &[]);
    let fingerprint = sshbio(&["fingerprint", "--keys", dir.join("keys").to_str().unwrap()]);
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout).lines().next().unwrap().to_string();
    let port = server.addr.port().to_string();
    let mut argv: Vec<String> = [
        "pty_drive.py",
        "plink",
        "-batch",
        "-ssh",
        "-P",
        &port,
        "-hostkey",
        &fingerprint,
        "-t",
        "visitor@127.0.0.1",
    ]
    .map(String::from)
    .into();
    let program = argv.remove(0);
    check_tui("plink", &script(&program, &argv).await);
    server.wait_log("session ended");
    let log = server.log();
    assert!(!log.contains("WARN"), "{log}");
    assert!(!log.contains("unknown channel request"), "{log}");
}
