//! The designed screen through a real SSH connection, on the fixture bios: the background-colour
//! query and the palette it picks, the share overlay's QR code read back off the screen, the
//! layout at the designed sizes, and the real OpenSSH client in tmux at 40x14 and 200x60.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sshbio::tui::app::Share;

const URL: &str = "https://bio.example.com/";
const COMMAND: &str = "ssh bio.example.com";

fn fixture(name: &str) -> sshbio::content::Content {
    let path = format!("{}/tests/fixtures/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    sshbio::content::parse_str(&std::fs::read_to_string(&path).unwrap(), Path::new(&path)).unwrap()
}

async fn server(name: &str) -> TestServer {
    let share = Arc::new(Share { command: Some(COMMAND.into()), url: Some(URL.into()) });
    let settings = sshbio::ssh::Settings { share, ..sshbio::ssh::Settings::default() };
    TestServer::start_with(Options { content: fixture(name), settings, ..Options::default() }).await
}

/// Opens the TUI and waits until the screen shows `needle`.
async fn open(conn: &Conn, term: &str, (cols, rows): (u16, u16), needle: &str) -> Screen {
    let channel = conn.handle.channel_open_session().await.unwrap();
    channel.request_pty(true, term, u32::from(cols), u32::from(rows), 0, 0, &[]).await.unwrap();
    channel.request_shell(true).await.unwrap();
    let mut screen = Screen::new(channel, cols, rows);
    screen.wait_for_text(needle).await;
    screen
}

/// The foreground colour of the first cell showing `text`.
fn colour_of(screen: &Screen, text: &str) -> vt100::Color {
    let contents = screen.text();
    let (row, line) = contents.lines().enumerate().find(|(_, l)| l.contains(text)).expect(text);
    let column = line[..line.find(text).unwrap()].chars().count();
    let cell = screen.vt.screen().cell(u16::try_from(row).unwrap(), u16::try_from(column).unwrap()).unwrap();
    cell.fgcolor()
}

#[tokio::test]
async fn the_first_frame_asks_for_the_background_and_a_light_reply_switches_the_palette() {
    let server = server("small").await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open(&conn, "xterm-256color", (80, 24), "Lighthouse keeper").await;
    assert!(screen.raw_text().contains("\x1b]11;?\x1b\\"), "the OSC 11 query goes out with the first frame");
    let dark = colour_of(&screen, "Lighthouse keeper");
    assert_eq!(dark, vt100::Color::Idx(sshbio::tui::terminal::rgb_to_256(0x63, 0xcb, 0xbf)), "dark accent");

    // A light background's reply, split in two packets further apart than the Esc timer, with
    // digits in it (which would jump to a chapter if they were read as keys).
    screen.send(b"\x1b]11;rgb:f1f1/f2f2/f3").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    screen.send(b"f3\x1b\\").await;
    let light = vt100::Color::Idx(sshbio::tui::terminal::rgb_to_256(0x0b, 0x6a, 0x64));
    let deadline = Instant::now() + WAIT;
    while colour_of(&screen, "Lighthouse keeper") != light {
        assert!(Instant::now() < deadline, "the palette never switched:\n{}", screen.text());
        screen.drain_for(Duration::from_millis(50)).await;
    }
    assert!(!screen.closed, "ESC \\ in the reply did not quit");
    assert!(screen.text().contains("chapter 1 of 3"), "no chapter jump: {}", screen.text());

    // `t` switches back by hand.
    screen.send(b"t").await;
    let deadline = Instant::now() + WAIT;
    while colour_of(&screen, "Lighthouse keeper") != dark {
        assert!(Instant::now() < deadline, "t did not toggle:\n{}", screen.text());
        screen.drain_for(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn no_colour_terminals_get_no_query() {
    let server = server("small").await;
    let conn = connect(server.addr, "visitor").await;
    let screen = open(&conn, "dumb", (80, 24), "Lighthouse keeper").await;
    assert!(!screen.raw_text().contains("\x1b]11;"), "nothing to choose without colours");
}

/// Reads the QR code back off the emulated screen: cells with a background colour are the
/// code's, each holding two modules as half blocks.
fn decode_qr(screen: &vt100::Screen) -> Option<String> {
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows.get(), cols.get());
    let (w, h) = (usize::from(cols), usize::from(rows) * 2);
    let mut dark = vec![false; w * h];
    for row in 0..rows {
        for col in 0..cols {
            let cell = screen.cell(row, col).unwrap();
            if cell.bgcolor() == vt100::Color::Default {
                continue;
            }
            let (top, bottom) = match cell.contents() {
                "█" => (true, true),
                "▀" => (true, false),
                "▄" => (false, true),
                _ => (false, false),
            };
            let i = usize::from(row) * 2 * w + usize::from(col);
            dark[i] = top;
            dark[i + w] = bottom;
        }
    }
    let scale = 4;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w * scale, h * scale, |x, y| {
        if dark[(y / scale) * w + x / scale] { 0 } else { 255 }
    });
    image.detect_grids().first().and_then(|grid| grid.decode().ok()).map(|(_, text)| text)
}

#[tokio::test]
async fn s_shows_the_command_and_a_qr_code_that_decodes_to_the_url() {
    let server = server("small").await;
    for (size, depth) in [((80, 24), "xterm-256color"), ((120, 40), "xterm")] {
        let conn = connect(server.addr, "visitor").await;
        let mut screen = open(&conn, depth, size, "Lighthouse keeper").await;
        screen.press(b"s", COMMAND).await;
        // The overlay may still be arriving when its command shows: read until the code decodes.
        let deadline = Instant::now() + WAIT;
        while decode_qr(screen.vt.screen()).as_deref() != Some(URL) {
            assert!(Instant::now() < deadline, "no QR code of the URL at {size:?}\n{}", screen.text());
            screen.drain_for(Duration::from_millis(50)).await;
        }
        screen.send(b"x").await;
        screen.wait_for("share closed", |s| !s.contains(COMMAND)).await;
    }
    // Too small for the code: the URL as text.
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open(&conn, "xterm-256color", (40, 14), "Ada Quill").await;
    screen.press(b"s", URL).await;
    screen.settle().await;
    assert_eq!(decode_qr(screen.vt.screen()), None);
}

#[tokio::test]
async fn help_lists_the_palette_and_share_keys() {
    let server = server("small").await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open(&conn, "xterm-256color", (80, 24), "Lighthouse keeper").await;
    screen.press(b"?", "light / dark colours").await;
    assert!(screen.text().contains("share: the ssh command"), "{}", screen.text());
    assert!(!screen.text().contains("join card"), "the join card is the presenter's");
}

#[tokio::test]
async fn every_designed_size_and_a_resize_lays_out_at_once() {
    let server = server("long").await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open(&conn, "xterm-256color", (40, 14), "Bartholomew Fennimore-Oakes").await;
    assert!(screen.text().contains("01  Childhood by the estuary"), "{}", screen.text());
    assert!(!screen.text().contains("enlarge"));
    screen.resize(200, 60).await;
    screen.wait_for("the timeline", |s| s.contains("● 01 Childhood by the estuary")).await;
    screen.resize(80, 24).await;
    screen
        .wait_for("the chapter strip", |s| s.contains("01 Childhood by the estuary") && !s.contains("● 01"))
        .await;
    screen.resize(23, 8).await;
    screen.wait_for_text("enlarge").await;
}

// ---- The real OpenSSH client in tmux ----

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, (cols, rows): (u16, u16), command: &str) -> Self {
        assert!(have("tmux") && have("ssh"), "tmux and ssh are needed; .ci/run installs them");
        let tmux = Self { socket: format!("sshbio-design-{name}-{}", std::process::id()) };
        let (cols, rows) = (cols.to_string(), rows.to_string());
        assert!(tmux.cmd(&["new-session", "-d", "-x", &cols, "-y", &rows, command]).status.success());
        tmux
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap()
    }

    fn wait_for(&self, what: &str, predicate: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let pane = String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p"]).stdout).into_owned();
            if predicate(&pane) {
                return pane;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; pane:\n{pane}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_in_tmux_at_40x14_and_200x60() {
    let server = server("small").await;
    let ssh = format!("ssh {}; sleep 30", ssh_args(server.addr, "visitor").join(" "));
    tokio::task::spawn_blocking(move || {
        let phone = Tmux::start("phone", (40, 14), &ssh);
        let pane = phone.wait_for("the bio", |p| p.contains("Ada Quill grew up"));
        assert!(pane.contains("Ada Quill") && pane.contains("01  Early days"), "{pane}");
        assert!(!pane.contains("enlarge"), "{pane}");
        assert!(pane.lines().all(|l| l.chars().count() <= 40));
        phone.cmd(&["send-keys", "l"]);
        phone.wait_for("chapter 2", |p| p.contains("02  The lighthouse"));
        drop(phone);

        let wall = Tmux::start("wall", (200, 60), &ssh);
        let pane = wall.wait_for("the hero", |p| p.contains("Lighthouse keeper turned compiler writer"));
        assert!(
            pane.contains('█') && pane.contains("● 01 Early days"),
            "block letters and the timeline:\n{pane}"
        );
        let text = pane.lines().find(|l| l.contains("Ada Quill grew up")).unwrap();
        assert!(
            text.find("Ada Quill grew up").unwrap() > 40,
            "the text is centred, not at the left:\n{pane}"
        );
        wall.cmd(&["send-keys", "s"]);
        wall.wait_for("the share overlay", |p| p.contains(COMMAND) && p.contains(URL));
    })
    .await
    .unwrap();
}
