//! The interactive bio through a real SSH client (russh) and a terminal emulator (vt100):
//! what a visitor with a terminal sees, and what their keys, mouse and window do. The server
//! serves the long fixture (tests/fixtures/long.toml): nine sections that scroll.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

#[tokio::test]
async fn pty_shell_shows_the_name_and_every_section() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    // Wide enough for the chapter timeline, which lists every chapter.
    let screen = open_tui(&conn, "xterm-256color", 120, 40, &[]).await;
    let text = screen.text();
    // The name is in block letters at this size; the headline is text.
    assert!(text.contains("Cartographer of imaginary coastlines"), "{text}");
    for title in LONG_TITLES {
        assert!(text.contains(title), "missing {title}:\n{text}");
    }
    assert!(text.contains(&top(1)), "{text}");
    assert!(screen.vt.screen().alternate_screen(), "the UI runs on the alternate screen");
    assert!(screen.vt.screen().hide_cursor(), "the cursor is hidden");
}

#[tokio::test]
async fn section_and_scroll_keys_change_what_is_visible() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;

    screen.press(b"\x1b[C", &top(2)).await; // Right
    screen.press(b"l", &top(3)).await;
    screen.press(b"\t", &top(4)).await;
    screen.press(b"\x1b[Z", &top(3)).await; // Shift-Tab
    screen.press(b"h", &top(2)).await;
    screen.press(b"7", &top(7)).await;

    // A small window: every section scrolls.
    screen.resize(60, 12).await;
    screen.press(b"6", &top(6)).await;
    assert!(!screen.text().contains(&end(6)));
    screen.press(b"G", &end(6)).await;
    assert!(!screen.text().contains(&top(6)), "{}", screen.text());
    screen.press(b"g", &top(6)).await;
    screen.send(b"\x1b[6~").await; // PgDn
    let top6 = top(6);
    screen.wait_for("a page down", |s| !s.contains(&top6)).await;
    screen.press(b"\x1b[5~", &top(6)).await; // PgUp
    screen.send(b"jjj").await;
    screen.wait_for("three lines down", |s| s.contains("4-")).await;
    screen.press(b"k", "3-").await;
}

#[tokio::test]
async fn window_change_re_lays_out_at_the_new_size() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 100, 30, &[]).await;
    assert!(screen.text().contains("● 01 Childhood by the estuary"), "wide: the timeline\n{}", screen.text());
    screen.resize(40, 12).await;
    screen
        .wait_for("the narrow chapter strip", |s| {
            s.contains("01 Childhood by the estuary") && !s.contains("● 01")
        })
        .await;
    assert!(!screen.text().contains("● 01 Childhood"));
    screen.resize(20, 5).await;
    screen.wait_for_text("enlarge").await;
    screen.resize(120, 40).await;
    screen.wait_for_text("● 01 Childhood by the estuary").await;
    let lines: Vec<String> = screen.text().lines().map(str::to_string).collect();
    assert!(lines.iter().any(|l| l.chars().count() > 100), "uses the new width");
}

/// The status line's "FIRST-LAST of TOTAL" (the visible lines of the chapter's text).
fn visible_lines(text: &str) -> Option<(usize, usize)> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.windows(3).find_map(|w| match w {
            [range, "of", total] => {
                let first = range.split_once('-')?.0.parse().ok()?;
                Some((first, total.parse().ok()?))
            }
            _ => None,
        })
    })
}

#[tokio::test]
async fn a_resize_keeps_the_reader_at_the_same_place_in_the_text() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.press(b"3", &top(3)).await;
    screen.send(b"G").await;
    screen.wait_for_text(&end(3)).await;
    let (first, total) = visible_lines(&screen.text()).expect("a scrolled chapter shows its lines");
    // A phone turned to portrait: the text wraps to many more lines.
    screen.resize(40, 14).await;
    screen.wait_for("re-wrapped", |s| visible_lines(s).is_some_and(|(_, t)| t > total)).await;
    let (new_first, new_total) = visible_lines(&screen.text()).unwrap();
    let (before, after) = (first as f64 / total as f64, new_first as f64 / new_total as f64);
    // Before: kept as a line number, the reader was thrown back a third of the chapter.
    assert!(
        (before - after).abs() < 0.05,
        "{first}/{total} became {new_first}/{new_total}:\n{}",
        screen.text()
    );
}

#[tokio::test]
async fn q_restores_the_terminal_and_exits_zero() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.send(b"q").await;
    let status = screen.wait_close().await;
    assert_eq!(status, Some(0));
    let vt = screen.vt.screen();
    assert!(!vt.alternate_screen(), "left the alternate screen");
    assert!(!vt.hide_cursor(), "cursor shown again");
    assert_eq!(vt.mouse_protocol_mode(), vt100::MouseProtocolMode::None, "mouse reporting off");
    assert!(!vt.bracketed_paste());
}

#[tokio::test]
async fn every_quit_key_quits() {
    let server = TestServer::start().await;
    for key in [&b"\x1b"[..], b"\x03", b"\x04"] {
        let conn = connect(server.addr, "visitor").await;
        let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
        screen.send(key).await;
        assert_eq!(screen.wait_close().await, Some(0), "{key:?}");
    }
}

#[tokio::test]
async fn help_overlay_opens_and_closes() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.press(b"?", "Keys").await;
    assert!(screen.text().contains("mouse on/off"), "help mentions the mouse toggle");
    screen.send(b" ").await;
    screen.wait_for("help closed", |s| !s.contains("mouse on/off")).await;
}

#[tokio::test]
async fn a_static_screen_sends_nothing_while_idle() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    // Silence means something only from a session that is drawing: show that first.
    screen.prove_live(b"2", &top(2)).await;
    assert_eq!(screen.drain_for(Duration::from_millis(1500)).await, 0, "no bytes while idle");
    // A key that changes nothing (already at the top) sends nothing either.
    screen.send(b"k").await;
    assert_eq!(screen.drain_for(Duration::from_millis(500)).await, 0, "k at the top sends nothing");
    // Keys are handled in order: this one's frame proves `k` was read before the silence ended.
    screen.prove_live(b"3", &top(3)).await;
}

#[tokio::test]
async fn zero_and_huge_sizes_are_clamped() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    // What `ssh -tt` without a terminal sends: 0x0 means 80x24.
    let screen = open_tui(&conn, "xterm", 0, 0, &[]).await;
    assert!(screen.text().contains("01 Childhood by the estuary"));
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm", 80, 24, &[]).await;
    screen.channel.window_change(65535, 65535, 0, 0).await.unwrap();
    screen
        .vt
        .screen_mut()
        .set_size(std::num::NonZeroU16::new(200).unwrap(), std::num::NonZeroU16::new(500).unwrap());
    // The count at the right end of a 500-column top line, the headline under the block letters.
    let wide = |s: &str| s.lines().next().is_some_and(|l| l.trim_end().chars().count() > 490);
    screen.wait_for("a 500x200 frame", |s| wide(s) && s.contains("Cartographer of")).await;
    screen.wait_for("the side list at 500 columns", |s| s.contains("9 What comes next")).await;
    screen.send(b"q").await;
    assert_eq!(screen.wait_close().await, Some(0));
}

#[tokio::test]
async fn user_name_routes_to_a_section() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "the-atlas").await;
    let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    assert!(screen.text().contains(&top(6)), "{}", screen.text());
    let conn = connect(server.addr, "someone-else").await;
    let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    assert!(screen.text().contains(&top(1)), "{}", screen.text());
}

#[tokio::test]
async fn mouse_wheel_scrolls_click_selects_and_m_toggles() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 14, &[]).await;
    assert_eq!(screen.vt.screen().mouse_protocol_mode(), vt100::MouseProtocolMode::PressRelease);
    // Click "02 Apprentice mapmaker" in the chapter strip: find it on screen.
    let text = screen.text();
    let (row, line) = text.lines().enumerate().find(|(_, l)| l.contains("02 Apprentice mapmaker")).unwrap();
    let column = line[..line.find("02 Apprentice mapmaker").unwrap()].chars().count() + 2;
    let click = format!("\x1b[<0;{column};{}M\x1b[<0;{column};{}m", row + 1, row + 1);
    screen.press(click.as_bytes(), &top(2)).await;
    screen.press(b"6", &top(6)).await;
    screen.send(b"\x1b[<65;40;8M").await; // wheel down over the text
    screen.wait_for("scrolled by the wheel", |s| s.contains(" of ") && !s.contains(" 1-")).await;
    screen.send(b"m").await;
    screen.wait_for("mouse off", |s| s.contains("enable mouse")).await;
    assert_eq!(screen.vt.screen().mouse_protocol_mode(), vt100::MouseProtocolMode::None);
    screen.send(b"m").await;
    screen.wait_for("mouse on again", |s| !s.contains("enable mouse")).await;
    assert_eq!(screen.vt.screen().mouse_protocol_mode(), vt100::MouseProtocolMode::PressRelease);
}

#[tokio::test]
async fn paste_focus_and_garbage_never_act_as_keys() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    // A paste containing q (quit) and 7 (a section), focus events, a DA1 reply, junk.
    screen.send(b"\x1b[200~q7\x1b[201~\x1b[I\x1b[O\x1b[?62;22c\x1b[999;999;999Xjunk\xff\xfe").await;
    // The next real key is read after all of that: G shows the end of the section we are on,
    // which is still the first (the pasted 7 did not move us, the pasted q did not quit).
    screen.press(b"G", "-ends.").await;
    assert!(screen.text().contains(&end(1)), "{}", screen.text());
    screen.press(b"g", &top(1)).await;
    // Random bytes, many packets.
    let mut state = 7u32;
    for _ in 0..50 {
        let chunk: Vec<u8> = (0..64)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let b = (state >> 16) as u8;
                // Keep the quit keys out so the session survives to be checked, and `?` so the
                // help is closed when the probe below opens it.
                if matches!(b, b'q' | 0x1b | 0x03 | 0x04 | b'?') { b'x' } else { b }
            })
            .collect();
        screen.send(&chunk).await;
    }
    // Random bytes may move and scroll; this key, read after them all, must still act.
    screen.prove_live(b"?", "mouse on/off").await;
    assert!(!screen.closed);
}

#[tokio::test]
async fn in_band_resize_is_honoured() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    assert!(screen.raw_text().contains("\x1b[?2048h"), "asks for in-band resize reports");
    screen
        .vt
        .screen_mut()
        .set_size(std::num::NonZeroU16::new(12).unwrap(), std::num::NonZeroU16::new(40).unwrap());
    screen.send(b"\x1b[48;12;40;0;0t").await;
    screen.wait_for("the narrow chapter strip", |s| s.contains(" 01 Childhood by the estuary ")).await;
}

#[tokio::test]
async fn content_reload_reaches_open_sessions_on_the_same_section() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    screen.press(b"4", &top(4)).await;
    let mut edited = long_content();
    edited.sections.insert(
        0,
        sshbio::content::Section {
            title: "Now".into(),
            slug: "now".into(),
            paragraphs: vec!["Freshly added on stage.".into()],
        },
    );
    // Section 4 is fifth now; the visitor stays on it (matched by slug).
    edited.sections[4].paragraphs[0] = "Edited live: harbour text.".into();
    server.content.send_replace(Arc::new(edited));
    screen.wait_for_text("Edited live: harbour text.").await;
    assert!(screen.text().contains("05  Harbour years"), "renumbered: {}", screen.text());
}

#[tokio::test]
async fn links_page_has_osc8_hyperlinks_and_visible_urls() {
    let server = TestServer::serving(fixtures::LINKS).await;
    let conn = connect(server.addr, "links").await;
    let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    let text = screen.text();
    assert!(text.contains("Homepage") && text.contains("https://cyrus.example.org/"), "{text}");
    assert!(text.contains("↗ Links"), "{text}");
    let raw = screen.raw_text();
    assert!(raw.contains("\x1b]8;;https://cyrus.example.org/\x1b\\Homepage\x1b]8;;\x1b\\"), "{raw:?}");
    assert!(raw.contains("\x1b]8;;mailto:cyrus@example.com\x1b\\Email\x1b]8;;\x1b\\"), "{raw:?}");
    // The layout is unchanged: the label sits in the text column, its URL under it.
    let lines: Vec<&str> = text.lines().collect();
    let row = lines.iter().position(|l| l.contains("Homepage")).unwrap();
    let column = |l: &str, needle: &str| l[..l.find(needle).unwrap()].chars().count();
    let url = lines[row + 1];
    assert_eq!(column(url, "https://cyrus"), column(lines[row], "Homepage") + 2, "{text}");

    // A dumb terminal gets no OSC 8 and no colour at all.
    let conn = connect(server.addr, "links").await;
    let screen = open_tui(&conn, "dumb", 80, 24, &[]).await;
    let raw = screen.raw_text();
    assert!(!raw.contains("\x1b]8;"), "no OSC 8 for TERM=dumb");
    assert!(screen.text().contains("https://cyrus.example.org/"));
}

/// The colour SGR parameters in `raw` (38;... / 48;... / 30-37 ...).
fn sgr_params(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("\x1b[") {
        rest = &rest[start + 2..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(rest.len());
        if rest[end..].starts_with('m') {
            out.push(rest[..end].to_string());
        }
        rest = &rest[end..];
    }
    out
}

fn colour_codes(raw: &str) -> Vec<u32> {
    let mut codes = Vec::new();
    for params in sgr_params(raw) {
        let nums: Vec<u32> = params.split(';').filter_map(|p| p.parse().ok()).collect();
        let mut i = 0;
        while i < nums.len() {
            match nums[i] {
                38 | 48 => {
                    codes.push(nums[i] * 100 + nums.get(i + 1).copied().unwrap_or(0));
                    i += if nums.get(i + 1) == Some(&2) { 5 } else { 3 };
                    continue;
                }
                n @ (30..=37 | 39..=47 | 49 | 90..=97 | 100..=107) => codes.push(n),
                _ => {}
            }
            i += 1;
        }
    }
    codes
}

#[tokio::test]
async fn colour_depth_follows_term_and_env() {
    let server = TestServer::start().await;
    let session = |term: &'static str, env: &'static [(&'static str, &'static str)]| {
        let addr = server.addr;
        async move {
            let conn = connect(addr, "visitor").await;
            let mut screen = open_tui(&conn, term, 80, 24, env).await;
            screen.press(b"?", "Keys").await; // draw more styles
            screen.raw_text()
        }
    };
    // 16 colours: only 30-37/90-97 (and backgrounds), never 38;5 or 38;2.
    let raw = session("xterm", &[]).await;
    let codes = colour_codes(&raw);
    assert!(!codes.is_empty(), "some colour is used");
    assert!(codes.iter().all(|c| *c < 3800), "16-colour session sent {codes:?}");
    assert!(!raw.contains("38;5;") && !raw.contains("38;2;"));
    // 256 colours: 38;5, never 24-bit.
    let raw = session("xterm-256color", &[]).await;
    assert!(raw.contains("38;5;") && !raw.contains("38;2;"), "{:?}", colour_codes(&raw));
    // Truecolor only when the client says so.
    let raw = session("xterm-256color", &[("COLORTERM", "truecolor")]).await;
    assert!(raw.contains("38;2;"));
    // NO_COLOR or TERM=dumb: no colour codes at all, selection still visible (reverse).
    for (term, env) in [("xterm-256color", &[("NO_COLOR", "1")][..]), ("dumb", &[][..])] {
        let raw = session(term, env).await;
        let codes: Vec<u32> = colour_codes(&raw).into_iter().filter(|c| *c != 39 && *c != 49).collect();
        assert!(codes.is_empty(), "{term}: {codes:?}");
        assert!(
            sgr_params(&raw).iter().any(|p| p.split(';').any(|n| n == "7")),
            "reverse video for selection"
        );
    }
}

#[tokio::test]
async fn idle_sessions_get_a_goodbye_and_are_closed() {
    let settings = sshbio::ssh::Settings { idle_timeout: Duration::from_millis(700), ..Default::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    let status = screen.wait_close().await;
    assert_eq!(status, Some(0));
    assert!(!screen.vt.screen().alternate_screen());
    assert!(screen.text().contains("without input"), "{}", screen.text());
}

#[tokio::test]
async fn sessions_end_at_the_maximum_length() {
    let settings = sshbio::ssh::Settings { max_session: Duration::from_millis(800), ..Default::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    // Typing keeps it from being idle, but not from the length limit.
    for _ in 0..3 {
        screen.send(b"j").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(screen.wait_close().await, Some(0));
    assert!(screen.text().contains("time limit"), "{}", screen.text());
}

#[tokio::test]
async fn shutdown_tells_open_sessions_and_restores_their_terminals() {
    let server = TestServer::start().await;
    let conn = connect(server.addr, "visitor").await;
    let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    let addr = server.addr;
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(screen.wait_close().await, Some(0));
    assert!(screen.text().contains("restarting"), "{}", screen.text());
    assert!(!screen.vt.screen().alternate_screen());
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn a_hibernated_session_redraws_correctly_on_the_next_key() {
    let settings =
        sshbio::ssh::Settings { hibernate_after: Duration::from_millis(200), ..Default::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    // The reference: a session that never sleeps between keys.
    let conn = connect(server.addr, "visitor").await;
    let mut awake = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    awake.press(b"6", &top(6)).await;
    awake.press(b"7", &top(7)).await;
    // The same keys with a nap before each. The naps are the point (the session hibernates
    // after 200 ms without input), not a wait for something to happen.
    let conn = connect(server.addr, "visitor").await;
    let mut sleepy = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sleepy.press(b"6", &top(6)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sleepy.prove_live(b"7", &top(7)).await;
    awake.settle().await;
    assert_eq!(sleepy.text(), awake.text(), "no leftovers from the previous frame");
    // And nothing at all is sent while it sleeps.
    assert_eq!(sleepy.drain_for(Duration::from_millis(600)).await, 0);
    sleepy.prove_live(b"8", &top(8)).await;
}

#[tokio::test]
async fn every_fixture_is_served_from_its_first_frame_to_its_last_section() {
    for text in [fixtures::SMALL, fixtures::LONG, fixtures::LINKS, fixtures::UNICODE, fixtures::MAX] {
        let content = fixture(text);
        let server = TestServer::serving(text).await;
        let conn = connect(server.addr, "visitor").await;
        let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
        // At the top: the name as text when it is too long for block letters, else the block
        // letters and the headline under them.
        let text = screen.text();
        let name_start: String = content.name.chars().take(10).collect();
        let headline_start: String = content.headline.chars().take(10).collect();
        assert!(
            text.lines().take(3).any(|l| l.contains(&name_start))
                || text.lines().take(8).any(|l| l.contains(&headline_start)),
            "{text}"
        );
        // The last section, opened by its slug as the user name, shows its own text.
        let last = content.sections.last().unwrap();
        let opening: Vec<&str> = last.paragraphs[0].split_whitespace().take(3).collect();
        let conn = connect(server.addr, &last.slug).await;
        let mut screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
        screen.wait_for_text(&opening.join(" ")).await;
        screen.send(b"q").await;
        assert_eq!(screen.wait_close().await, Some(0));
    }
}
