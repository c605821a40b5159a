//! The web companion page as a visitor's browser gets it: the router served by axum on a loopback
//! port, read over real HTTP, updated through the content watch channel, and loaded by headless
//! Chromium (DOM, console, screenshots at phone and desktop sizes in both colour schemes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sshbio::content::{Content, parse_str};
use sshbio::http::web::{self, PageInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The long fixture (tests/fixtures/long.toml): nine made-up sections.
const LONG: &str = include_str!("fixtures/long.toml");

/// How long one HTTP exchange may take.
const WAIT: Duration = Duration::from_secs(30);

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest any single Chromium run may take before it is killed and the test fails.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// Headless, and nothing that reaches beyond loopback (without the background-networking flags
/// its connections to the outside are refused and it logs about them).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
];

/// A hostile bio: markup, attribute breakers and quotes in every string a visitor sees.
const HOSTILE: &str = r#"
name = "Mallory <script>alert(1)</script>"
headline = '"onmouseover=alert(2) x="'
intro = "it's <b>bold</b> & 'quoted'"

[[sections]]
title = "<img src=x onerror=alert(3)>"
slug = "hostile"
paragraphs = ["</p><script>alert(4)</script>", "Fine & \"dandy\" <i>text</i>"]

[[links]]
label = "<script>alert(5)</script>"
url = "https://example.com/?\"onmouseover=alert(6)&<script>"
"#;

fn long() -> Content {
    parse_str(LONG, Path::new("long.toml")).unwrap()
}

fn hostile() -> Content {
    parse_str(HOSTILE, Path::new("hostile.toml")).unwrap()
}

/// What a real deployment would show, with a made-up key.
fn info(base_url: Option<String>) -> PageInfo {
    PageInfo {
        ssh_command: "ssh bio.example.com".into(),
        fingerprint: "SHA256:kq3Sb1yVt0YcK4lWzW2v0m6D8E6pQeZ1uX3fTjQm9aA".into(),
        sshfp: vec![
            "bio.example.com. IN SSHFP 4 2 92add26f5c95b746182b895b35b6f49ba0f90f10e5a9e41b95f7dc4d09a3e2d6"
                .into(),
        ],
        base_url,
    }
}

/// The web router on a loopback port, fed by a watch channel the test can publish to.
struct Server {
    addr: SocketAddr,
    content: watch::Sender<Arc<Content>>,
}

async fn serve(content: Content) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(Arc::new(content));
    let router = web::router(rx, Arc::new(info(Some(format!("http://{addr}/")))));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Server { addr, content: tx }
}

/// One HTTP/1.1 response, read whole.
struct Reply {
    status: u16,
    /// Lower-case names, trimmed values.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// `GET path` over a plain TCP connection, as any HTTP client would send it.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: sshbio-test\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange).await.expect("HTTP exchange timed out");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let reply = Reply { status, headers, body: body.to_string() };
    if !reply.header("content-length").is_empty() {
        assert_eq!(reply.header("content-length"), reply.body.len().to_string(), "whole body received");
    }
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_json_over_http() {
    let server = serve(long()).await;

    let page = get(server.addr, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(page.header("cache-control"), "no-cache");
    assert!(page.header("content-security-policy").starts_with("default-src 'none'"));
    assert!(page.body.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert!(
        page.body
            .contains("<title>Bartholomew Fennimore-Oakes · Cartographer of imaginary coastlines</title>")
    );
    assert!(page.body.contains("<h1>Bartholomew Fennimore-Oakes</h1>"));
    let content = long();
    for section in &content.sections {
        // Titles are HTML-escaped (the hostile test below shows it on markup).
        let title = web::escape(&section.title);
        assert!(page.body.contains(&format!("<h2 id=\"{}_title\">{title}</h2>", section.slug)), "{title}");
        assert!(page.body.contains(&format!("<a href=\"#{}\">{title}</a>", section.slug)), "{title}");
    }
    assert!(page.body.contains("<code>ssh bio.example.com</code>"));
    assert!(page.body.contains(&format!("<meta property=\"og:url\" content=\"http://{}/\">", server.addr)));
    assert!(page.body.contains("<a href=\"/bio.json\">"));

    let json = get(server.addr, "/bio.json").await;
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), "application/json");
    assert_eq!(json.header("cache-control"), "no-cache");
    let bio: serde_json::Value = serde_json::from_str(&json.body).expect("/bio.json is JSON");
    assert_eq!(bio["schema"], 1);
    assert_eq!(bio["name"], "Bartholomew Fennimore-Oakes");
    assert_eq!(bio["sections"].as_array().map(Vec::len), Some(9));
    assert_eq!(bio["sections"][0]["title"], "Childhood by the estuary");
    assert_eq!(
        json.body,
        sshbio::commands::run("json", &content).stdout,
        "the same document as `ssh host json`"
    );

    assert_eq!(get(server.addr, "/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_update_shows_on_the_next_request_escaped() {
    let server = serve(long()).await;
    assert!(get(server.addr, "/").await.body.contains("<h1>Bartholomew Fennimore-Oakes</h1>"));

    // What the reloader does after a valid edit.
    server.content.send_replace(Arc::new(hostile()));

    let page = get(server.addr, "/").await;
    assert_eq!(page.status, 200);
    let html = &page.body;
    assert!(!html.contains("Bartholomew"), "the old content is gone");
    for raw in ["<script>alert", "<img src", "\"onmouseover", "<b>bold", "<i>text"] {
        assert!(!html.contains(raw), "unescaped {raw:?} in the page");
    }
    // maud leaves `'` as typed (it used to become `&#39;`). That is safe because every attribute
    // on the page is double-quoted: outside the quoted values, no tag holds a `'` or a stray `"`.
    for tag in html.split('<').skip(1).map(|t| t.split('>').next().unwrap_or_default()) {
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
        assert!(
            tag.split('"').step_by(2).all(|part| !part.contains('\'')),
            "a ' outside the quotes in <{tag}>"
        );
    }
    for escaped in [
        "<h1>Mallory &lt;script&gt;alert(1)&lt;/script&gt;</h1>",
        "<title>Mallory &lt;script&gt;alert(1)&lt;/script&gt; · &quot;onmouseover=alert(2) x=&quot;</title>",
        "<p class=\"headline\">&quot;onmouseover=alert(2) x=&quot;</p>",
        "<p class=\"intro\">it's &lt;b&gt;bold&lt;/b&gt; &amp; 'quoted'</p>",
        "<h2 id=\"hostile_title\">&lt;img src=x onerror=alert(3)&gt;</h2>",
        "<p>&lt;/p&gt;&lt;script&gt;alert(4)&lt;/script&gt;</p>",
        "<p>Fine &amp; &quot;dandy&quot; &lt;i&gt;text&lt;/i&gt;</p>",
        "<a href=\"https://example.com/?&quot;onmouseover=alert(6)&amp;&lt;script&gt;\">&lt;script&gt;alert(5)&lt;/script&gt;</a>",
        "<meta property=\"og:title\" content=\"Mallory &lt;script&gt;alert(1)&lt;/script&gt; · &quot;onmouseover=alert(2) x=&quot;\">",
    ] {
        assert!(html.contains(escaped), "missing {escaped}\n{html}");
    }

    let bio: serde_json::Value = serde_json::from_str(&get(server.addr, "/bio.json").await.body).unwrap();
    assert_eq!(bio["name"], "Mallory <script>alert(1)</script>", "JSON carries the text itself");
    assert_eq!(bio["sections"].as_array().map(Vec::len), Some(1));

    // And back: live reloads keep showing.
    server.content.send_replace(Arc::new(long()));
    assert!(get(server.addr, "/").await.body.contains("<h1>Bartholomew Fennimore-Oakes</h1>"));
}

/// Output of one Chromium run.
struct Browser {
    stdout: String,
    /// Chromium's log; with `--enable-logging=stderr` the page's console messages are in it.
    stderr: String,
}

impl Browser {
    /// Console lines about pages on `addr` (`INFO:CONSOLE:1] "...", source: http://addr/`,
    /// older builds `CONSOLE(1)`): script errors, CSP violations, failed loads. A page with no
    /// script should produce none.
    fn console(&self, addr: SocketAddr) -> Vec<&str> {
        let source = format!("http://{addr}/");
        self.stderr
            .lines()
            .filter(|l| (l.contains(":CONSOLE:") || l.contains(":CONSOLE(")) && l.contains(&source))
            .collect()
    }
}

/// Runs headless Chromium with a fresh profile and `args`; fails the test if it is missing,
/// fails or runs longer than `CHROMIUM_TIMEOUT` (then its whole process group is killed).
async fn chromium(args: &[String]) -> Browser {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the web page tests need headless Chromium. \
         Install it with `apt-get install -y chromium` (.ci/run does)"
    );
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let profile =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();

    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    let pid = child.id().unwrap();
    let output = match tokio::time::timeout(CHROMIUM_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // Renderer and GPU processes too, not only the browser process.
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
            panic!("chromium {args:?} did not finish within {CHROMIUM_TIMEOUT:?}");
        }
    };
    let _ = std::fs::remove_dir_all(&profile);
    let browser = Browser {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(output.status.success(), "chromium {args:?} failed: {}\n{}", output.status, browser.stderr);
    browser
}

/// Where screenshots go: under target/ always; into tests/artifacts/ (committed) only when
/// `SSHBIO_UPDATE_ARTIFACTS=1`, so an ordinary `cargo test` never dirties the tree.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(addr: SocketAddr, name: &str, size: &str, dark: bool) -> PathBuf {
    let path = screenshot_dir().join(name);
    let _ = std::fs::remove_file(&path);
    let mut args = vec![format!("--screenshot={}", path.display()), format!("--window-size={size}")];
    // Blink's PreferredColorScheme: 0 is dark, 1 is light.
    args.push(format!("--blink-settings=preferredColorScheme={}", if dark { 0 } else { 1 }));
    args.push(format!("http://{addr}/"));
    let browser = chromium(&args).await;
    assert!(browser.console(addr).is_empty(), "console messages for {name}:\n{}", browser.stderr);
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot {}: {e}", path.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000, "{name} is not a real PNG");
    if std::env::var_os("SSHBIO_UPDATE_ARTIFACTS").is_some_and(|v| v == "1") {
        let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        std::fs::copy(&path, artifacts.join(name)).unwrap();
    }
    path
}

/// Text as Chromium serialises a DOM text node: only `&`, `<`, `>` (and no-break spaces) escaped.
fn dom_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_every_section_without_console_errors() {
    let server = serve(long()).await;
    let browser = chromium(&["--dump-dom".into(), format!("http://{}/", server.addr)]).await;
    let dom = &browser.stdout;
    assert!(dom.contains("<h1>Bartholomew Fennimore-Oakes</h1>"), "the page did not load:\n{dom}");
    for section in &long().sections {
        let title = dom_text(&section.title);
        assert!(
            dom.contains(&format!("<section class=\"story\" id=\"{}\"", section.slug)),
            "{}",
            section.slug
        );
        assert!(dom.contains(&format!(">{title}</h2>")), "{title}");
        for paragraph in &section.paragraphs {
            assert!(dom.contains(&format!("<p>{}</p>", dom_text(paragraph))), "{paragraph}");
        }
    }
    assert!(dom.contains("Read it in your terminal"));
    assert!(browser.console(server.addr).is_empty(), "console messages:\n{}", browser.stderr);

    let phone = screenshot(server.addr, "web-phone.png", "390,844", false).await;
    screenshot(server.addr, "web-desktop.png", "1280,900", false).await;
    let phone_dark = screenshot(server.addr, "web-phone-dark.png", "390,844", true).await;
    screenshot(server.addr, "web-desktop-dark.png", "1280,900", true).await;
    assert_ne!(
        std::fs::read(phone).unwrap(),
        std::fs::read(phone_dark).unwrap(),
        "the dark scheme changes the page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_builds_no_elements_from_hostile_content() {
    let server = serve(hostile()).await;
    let browser = chromium(&["--dump-dom".into(), format!("http://{}/", server.addr)]).await;
    let dom = &browser.stdout;
    assert!(dom.contains("<h1>Mallory &lt;script&gt;alert(1)&lt;/script&gt;</h1>"), "{dom}");
    for element in ["<script", "<img", "<b>", "<i>"] {
        assert!(!dom.contains(element), "hostile content became a {element} element:\n{dom}");
    }
    // In a serialised DOM every literal '<' opens a tag (text has &lt;, attribute values
    // &quot;): outside the quoted values, no tag got an event handler attribute.
    for tag in dom.split('<').skip(1).map(|t| t.split('>').next().unwrap_or_default()) {
        let mut names = tag.split('"').step_by(2).flat_map(str::split_whitespace);
        assert!(names.all(|name| !name.starts_with("on")), "<{tag}>");
    }
    assert!(browser.console(server.addr).is_empty(), "console messages:\n{}", browser.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_check_sees_a_page_error() {
    // Guards the check above: if Chromium stopped logging console messages to stderr, "no
    // console errors" would pass vacuously.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broken = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>x</title><script>undefinedFunction()</script>")
        }),
    );
    tokio::spawn(async move { axum::serve(listener, broken).await });
    let browser = chromium(&["--dump-dom".into(), format!("http://{addr}/")]).await;
    assert!(
        browser.console(addr).iter().any(|l| l.contains("Uncaught ReferenceError")),
        "chromium's console log is not where the tests look:\n{}",
        browser.stderr
    );
}
