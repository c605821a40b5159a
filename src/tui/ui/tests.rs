//! Whole-screen snapshots of the fixture bios at every designed size, and the geometry the app
//! gets back (click targets, scrolling).

use super::*;
use crate::tui::app::Share;
use crate::tui::input::{Event, Key, Mouse};
use crate::tui::theme::Palette;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::Path;
use std::sync::Arc;

fn fixture(name: &str) -> App {
    let path = format!("{}/tests/fixtures/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let content = crate::content::parse_str(&text, Path::new(&path)).expect("parses");
    let mut app = App::new(Arc::new(content), None);
    let _ = app.set_audience(crate::room::Audience { connected: 42, following: 0 });
    app.set_share(Arc::new(Share {
        command: Some("ssh bio.example.com".into()),
        url: Some("https://bio.example.com/".into()),
    }));
    app
}

const LOOK: Look = Look { options: Options { hyperlinks: false }, depth: ColorDepth::TrueColor };

/// Draws `app` at `width`x`height` (twice, as the session does after feeding back the
/// geometry) and returns the terminal.
fn draw_app(app: &mut App, width: u16, height: u16, look: Look) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    for _ in 0..2 {
        let mut viewport = Viewport::default();
        terminal.draw(|f| viewport = draw(f, app, look)).expect("draw");
        app.set_viewport(viewport);
    }
    terminal
}

/// The screen as text, one line per row, trailing blanks kept so the width shows.
fn screen(app: &mut App, width: u16, height: u16) -> String {
    text_of(draw_app(app, width, height, LOOK).backend().buffer())
}

fn text_of(buffer: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut skip = 0;
        for x in 0..buffer.area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            skip = symbol.width().saturating_sub(1);
            out.push_str(symbol);
        }
        out.push_str("|\n");
    }
    out
}

fn key(app: &mut App, c: char) {
    app.handle(&Event::Key(Key::Char(c)));
}

#[test]
fn small_at_every_size() {
    for (w, h) in [(40, 14), (80, 24), (120, 40), (200, 60)] {
        insta::assert_snapshot!(format!("small_{w}x{h}"), screen(&mut fixture("small"), w, h));
    }
}

#[test]
fn long_at_every_size() {
    for (w, h) in [(40, 14), (80, 24), (120, 40), (200, 60)] {
        let mut app = fixture("long");
        key(&mut app, '2');
        insta::assert_snapshot!(format!("long_{w}x{h}"), screen(&mut app, w, h));
    }
}

#[test]
fn unicode_and_links() {
    insta::assert_snapshot!("unicode_80x24", screen(&mut fixture("unicode"), 80, 24));
    insta::assert_snapshot!("unicode_40x14", screen(&mut fixture("unicode"), 40, 14));
    let mut app = fixture("links");
    key(&mut app, '3');
    insta::assert_snapshot!("links_page_80x24", screen(&mut app, 80, 24));
}

#[test]
fn maximum_sizes_fit_without_overflowing() {
    // The longest name, headline, titles and paragraphs the loader accepts (max.toml).
    insta::assert_snapshot!("max_80x24", screen(&mut fixture("max"), 80, 24));
    insta::assert_snapshot!("max_40x14", screen(&mut fixture("max"), 40, 14));
}

#[test]
fn smallest_size_and_below() {
    insta::assert_snapshot!("small_24x8", screen(&mut fixture("small"), MIN_WIDTH, MIN_HEIGHT));
    for (w, h) in [(MIN_WIDTH - 1, MIN_HEIGHT), (20, 6), (14, 4)] {
        let text = screen(&mut fixture("small"), w, h);
        assert!(text.contains("enlarge"), "{text}");
        let size = if w >= 15 { "(at least 24x8)" } else { "(24x8)" };
        assert!(text.contains(size), "the size is never broken:\n{text}");
    }
}

#[test]
fn the_hero_shows_the_name_in_block_letters_from_80x24_only() {
    let hero = screen(&mut fixture("small"), 80, 24);
    assert!(hero.contains('▀') || hero.contains('▄'), "{hero}");
    assert!(!hero.contains("Ada Quill ·"), "the name is in block letters, not also in text:\n{hero}");
    let compact = screen(&mut fixture("small"), 79, 24);
    assert!(compact.contains("Ada Quill · Lighthouse keeper") && !compact.contains('▀'), "{compact}");
    let phone = screen(&mut fixture("small"), 40, 14);
    assert!(phone.contains("Ada Quill") && phone.contains("Ada Quill grew up"), "{phone}");
    assert!(!phone.contains("enlarge"));
}

#[test]
fn the_text_stays_in_a_centred_reading_column() {
    let mut app = fixture("long");
    let text = screen(&mut app, 200, 60);
    let first = text.lines().find(|l| l.contains("Childhood by the estuary part 1")).expect("text");
    let start = first.find("Childhood by the estuary part 1").expect("start");
    assert!(first[..start].chars().count() > 60, "not stuck at the left:\n{text}");
    for line in text.lines().filter(|l| l.contains("ledger")) {
        let from: String = line.chars().skip(first[..start].chars().count()).collect();
        let width = from.trim_end_matches(['|', ' ']).width();
        assert!(width <= usize::from(READING_WIDTH), "{width}: {line}");
    }
}

#[test]
fn palettes_differ_only_in_colour() {
    let mut dark = fixture("small");
    let mut light = fixture("small");
    key(&mut light, 't');
    assert_eq!(light.palette(), Palette::Light);
    let dark_term = draw_app(&mut dark, 80, 24, LOOK);
    let light_term = draw_app(&mut light, 80, 24, LOOK);
    let (d, l) = (dark_term.backend().buffer(), light_term.backend().buffer());
    assert_eq!(text_of(d), text_of(l));
    let headline =
        |b: &Buffer| (0..24).find_map(|y| (0..80).find(|&x| b[(x, y)].symbol() == "L").map(|x| b[(x, y)].fg));
    assert_eq!(headline(d), Some(ratatui::style::Color::Rgb(0x63, 0xcb, 0xbf)), "dark accent");
    assert_eq!(headline(l), Some(ratatui::style::Color::Rgb(0x0b, 0x6a, 0x64)), "light accent");
    insta::assert_snapshot!("palettes_styles_80x24", style_runs(d) + "---- light ----\n" + &style_runs(l));
}

/// Each row's runs of one style, for snapshots that must show colour.
fn style_runs(buffer: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut runs = Vec::new();
        let mut x = 0;
        while x < buffer.area.width {
            let cell = &buffer[(x, y)];
            let start = x;
            let mut text = String::new();
            while x < buffer.area.width && buffer[(x, y)].style() == cell.style() {
                text.push_str(buffer[(x, y)].symbol());
                x += 1;
            }
            if cell.style() != Style::default() && !text.trim().is_empty() {
                runs.push(format!(
                    "{start}:{:?}/{:?}/{:?} {:?}",
                    cell.fg,
                    cell.bg,
                    cell.modifier,
                    text.trim()
                ));
            }
        }
        if !runs.is_empty() {
            out.push_str(&format!("{y:2} {}\n", runs.join("  ")));
        }
    }
    out
}

#[test]
fn sixteen_colours_and_no_colour_keep_the_hierarchy() {
    let mut app = fixture("small");
    let sixteen = draw_app(&mut app, 80, 24, Look { depth: ColorDepth::Ansi16, ..LOOK });
    let mono = draw_app(&mut app, 80, 24, Look { depth: ColorDepth::None, ..LOOK });
    insta::assert_snapshot!(
        "styles_16_and_mono_80x24",
        style_runs(sixteen.backend().buffer())
            + "---- no colour ----\n"
            + &style_runs(mono.backend().buffer())
    );
}

#[test]
fn help_lists_every_key_including_t_s_and_c() {
    let mut app = fixture("small");
    key(&mut app, '?');
    let text = screen(&mut app, 80, 24);
    insta::assert_snapshot!("help_80x24", text);
    for binding in keymap::help(Role::Visitor, false) {
        let (shown, help) = (binding.shown, binding.help);
        assert!(text.contains(shown) && text.contains(help), "{shown} {help}\n{text}");
    }
    // `f` only while a speaker is presenting.
    assert!(!text.contains("follow the speaker"), "{text}");
    app.set_presenter(Some(crate::room::PresenterPosition { page: 0, scroll: 0, lines: 0 }));
    assert!(screen(&mut app, 80, 24).contains("f  follow the speaker"));
    assert!(text.contains("light / dark") && text.contains("share"));
    let mut presenter = fixture("small");
    presenter.set_role(Role::Presenter);
    key(&mut presenter, '?');
    assert!(screen(&mut presenter, 80, 24).contains("join card"));
}

#[test]
fn share_overlay_at_every_size() {
    for (w, h) in [(40, 14), (80, 24), (120, 40)] {
        let mut app = fixture("small");
        key(&mut app, 's');
        insta::assert_snapshot!(format!("share_{w}x{h}"), screen(&mut app, w, h));
    }
}

#[test]
fn join_card_at_every_size() {
    for (w, h) in [(40, 14), (80, 24), (120, 40), (200, 60)] {
        let mut app = fixture("small");
        app.set_role(Role::Presenter);
        key(&mut app, 'c');
        insta::assert_snapshot!(format!("join_card_{w}x{h}"), screen(&mut app, w, h));
    }
}

#[test]
fn the_join_card_counts_one_person_and_several_people() {
    for (connected, label) in [(1, "person here"), (2, "people here")] {
        let mut app = fixture("small");
        app.set_role(Role::Presenter);
        let _ = app.set_audience(crate::room::Audience { connected, following: 0 });
        key(&mut app, 'c');
        let text = screen(&mut app, 120, 40);
        assert!(text.contains(label), "{connected}: {text}");
    }
}

/// Reads the half-block QR code back from the cells into a bitmap and decodes it.
pub fn decode_qr(buffer: &Buffer) -> Option<String> {
    let (w, h) = (usize::from(buffer.area.width), usize::from(buffer.area.height));
    let mut dark = vec![false; w * h * 2];
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            let cell = &buffer[(x, y)];
            if cell.bg != ratatui::style::Color::Rgb(255, 255, 255) {
                continue;
            }
            let (top, bottom) = match cell.symbol() {
                "█" => (true, true),
                "▀" => (true, false),
                "▄" => (false, true),
                _ => (false, false),
            };
            let i = usize::from(y) * 2 * w + usize::from(x);
            dark[i] = top;
            dark[i + w] = bottom;
        }
    }
    // Scale each module up so the decoder has pixels to work with.
    let scale = 4;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w * scale, h * 2 * scale, |x, y| {
        if dark[(y / scale) * w + x / scale] { 0 } else { 255 }
    });
    let grids = image.detect_grids();
    grids.first().and_then(|g| g.decode().ok()).map(|(_, text)| text)
}

#[test]
fn the_qr_code_on_screen_decodes_to_the_url() {
    let mut app = fixture("small");
    key(&mut app, 's');
    let terminal = draw_app(&mut app, 80, 24, LOOK);
    assert_eq!(decode_qr(terminal.backend().buffer()).as_deref(), Some("https://bio.example.com/"));
    let mut card = fixture("small");
    card.set_role(Role::Presenter);
    key(&mut card, 'c');
    let terminal = draw_app(&mut card, 120, 40, LOOK);
    assert_eq!(decode_qr(terminal.backend().buffer()).as_deref(), Some("https://bio.example.com/"));
}

#[test]
fn too_small_for_the_code_shows_the_url() {
    let mut app = fixture("small");
    key(&mut app, 's');
    let text = screen(&mut app, 40, 14);
    assert!(text.contains("https://bio.example.com/") && !text.contains('█'), "{text}");
}

#[test]
fn clicks_hit_what_is_drawn_there() {
    for (w, h) in [(40, 14), (80, 24), (120, 40), (200, 60)] {
        let mut app = fixture("small");
        let terminal = draw_app(&mut app, w, h, LOOK);
        let buffer = terminal.backend().buffer().clone();
        // Find "The lighthouse" in the navigation (the first row it appears on) and click it.
        let text = text_of(&buffer);
        let (row, line) = text.lines().enumerate().find(|(_, l)| l.contains("02")).expect("nav");
        let column = line.find("02").map(|b| line[..b].chars().count()).expect("col");
        let (column, row) = (u16::try_from(column).expect("x"), u16::try_from(row).expect("y"));
        app.handle(&Event::Mouse(Mouse::Click { column, row }));
        assert_eq!(app.selected(), 1, "{w}x{h}: click at {column},{row}\n{text}");
    }
}

#[test]
fn next_chapter_in_the_status_line_is_clickable() {
    let mut app = fixture("small");
    let text = screen(&mut app, 80, 24);
    let (row, line) = text.lines().enumerate().find(|(_, l)| l.contains("next: ")).expect("status");
    let column = line.find("next: ").map(|b| line[..b].chars().count() + 7).expect("col");
    app.handle(&Event::Mouse(Mouse::Click {
        column: u16::try_from(column).expect("x"),
        row: u16::try_from(row).expect("y"),
    }));
    assert_eq!(app.selected(), 1, "{text}");
}

#[test]
fn scrolling_changes_the_visible_text() {
    let mut app = fixture("long");
    let top = screen(&mut app, 60, 14);
    key(&mut app, 'G');
    let bottom = screen(&mut app, 60, 14);
    assert_ne!(top, bottom);
    assert!(top.contains("1-") && bottom.contains(" of "), "{bottom}");
}

#[test]
fn help_on_a_phone() {
    let mut app = fixture("small");
    key(&mut app, '?');
    insta::assert_snapshot!("help_40x14", screen(&mut app, 40, 14));
    // Tall enough for one row per key: one column, so no text is cut to half the width.
    let text = screen(&mut app, 60, 20);
    insta::assert_snapshot!("help_60x20", text);
    assert!(text.contains("t light / dark colours (picked from your terminal)"), "{text}");
}

#[test]
fn a_long_timeline_beside_short_chapters_keeps_the_footer_below_it() {
    let mut content = fixture("small").content().clone();
    for n in 4..=9 {
        let mut section = content.sections[0].clone();
        section.title = format!("Chapter {n}");
        section.slug = format!("chapter-{n}");
        section.paragraphs = vec!["Short.".into()];
        content.sections.push(section);
    }
    let mut app = App::new(Arc::new(content), None);
    let text = screen(&mut app, 120, 40);
    let footer = text.lines().position(|l| l.contains("? help")).expect("footer");
    let last_chapter = text.lines().position(|l| l.contains("09 Chapter 9")).expect("timeline");
    assert!(footer > last_chapter, "{text}");
}

#[test]
fn follow_banner_and_presenter_header() {
    let mut app = fixture("small");
    app.set_presenter(Some(crate::room::PresenterPosition { page: 1, scroll: 0, lines: 0 }));
    insta::assert_snapshot!("following_80x24", screen(&mut app, 80, 24));
    let mut presenter = fixture("small");
    presenter.set_role(Role::Presenter);
    let _ = presenter.set_audience(crate::room::Audience { connected: 120, following: 117 });
    insta::assert_snapshot!("presenter_40x14", screen(&mut presenter, 40, 14));
}
