//! Unit tests of the app state: keys, mouse, scrolling, routes, follow mode and overlays.

use super::*;
use crate::content::fixtures;

/// Nine long sections (the long fixture), so every key has somewhere to go.
fn app() -> App {
    let mut app = App::new(fixtures::shared(fixtures::LONG), None);
    app.set_viewport(Viewport {
        body_height: 10,
        body_lines: 25,
        nav: vec![(Rect::new(0, 3, 20, 1), 0), (Rect::new(0, 4, 20, 1), 1)],
    });
    app
}

fn key(app: &mut App, key: Key) -> Option<Effect> {
    app.handle(&Event::Key(key))
}

#[test]
fn section_keys_move_and_wrap() {
    let mut app = app();
    assert_eq!(key(&mut app, Key::Right), Some(Effect::Redraw));
    assert_eq!(app.selected(), 1);
    key(&mut app, Key::Char('h'));
    key(&mut app, Key::BackTab);
    assert_eq!(app.selected(), 8, "wraps to the last section");
    key(&mut app, Key::Tab);
    assert_eq!(app.selected(), 0);
    key(&mut app, Key::Char('5'));
    assert_eq!(app.page_title(app.selected()), "Teaching");
    let mut small = App::new(fixtures::shared(fixtures::SMALL), None);
    assert_eq!(key(&mut small, Key::Char('4')), None, "no fourth page: nothing changes");
}

#[test]
fn scroll_keys_are_clamped_to_the_text() {
    let mut app = app();
    assert_eq!(key(&mut app, Key::Up), None, "already at the top");
    key(&mut app, Key::Char('j'));
    assert_eq!(app.scroll(), 1);
    key(&mut app, Key::PageDown);
    assert_eq!(app.scroll(), 10);
    key(&mut app, Key::Char('G'));
    assert_eq!(app.scroll(), 15);
    assert_eq!(key(&mut app, Key::Down), None, "already at the bottom");
    key(&mut app, Key::Home);
    assert_eq!(app.scroll(), 0);
    key(&mut app, Key::Char(' '));
    assert_eq!(app.scroll(), 9);
}

#[test]
fn quit_keys_and_help() {
    let mut app = app();
    for k in [Key::Char('q'), Key::Esc, Key::Ctrl('c'), Key::Ctrl('d')] {
        assert_eq!(key(&mut app, k), Some(Effect::Quit), "{k:?}");
    }
    key(&mut app, Key::Char('?'));
    assert_eq!(app.overlay(), Overlay::Help);
    key(&mut app, Key::Char('j'));
    assert_eq!(app.overlay(), Overlay::None, "any key closes help");
    assert_eq!(app.scroll(), 0, "and is not also applied");
}

#[test]
fn mouse_wheel_click_and_toggle() {
    let mut app = app();
    app.handle(&Event::Mouse(Mouse::ScrollDown { column: 30, row: 8 }));
    assert_eq!(app.scroll(), 3);
    app.handle(&Event::Mouse(Mouse::Click { column: 5, row: 4 }));
    assert_eq!(app.selected(), 1);
    assert_eq!(key(&mut app, Key::Char('m')), Some(Effect::SetMouse(false)));
    assert_eq!(key(&mut app, Key::Char('m')), Some(Effect::SetMouse(true)));
}

#[test]
fn route_opens_the_named_section() {
    let content = fixtures::shared(fixtures::SMALL);
    assert_eq!(App::new(content.clone(), Some("COMPILERS")).selected(), 2);
    assert_eq!(App::new(content, Some("nobody")).selected(), 0);
}

#[test]
fn followers_follow_leave_with_f_or_navigation_and_stay_when_the_presenter_leaves() {
    let mut app = app();
    app.set_presenter(Some(PresenterPosition { page: 3, scroll: 2, lines: 0 }));
    assert_eq!((app.selected(), app.follow()), (3, Follow::Following));
    app.set_presenter(Some(PresenterPosition { page: 5, scroll: 0, lines: 0 }));
    assert_eq!(app.selected(), 5);
    assert_eq!(key(&mut app, Key::Char('f')), Some(Effect::Redraw));
    assert_eq!(app.follow(), Follow::Browsing);
    app.set_presenter(Some(PresenterPosition { page: 1, scroll: 0, lines: 0 }));
    assert_eq!(app.selected(), 5, "browsing visitors stay put");
    key(&mut app, Key::Char('f'));
    assert_eq!((app.selected(), app.follow()), (1, Follow::Following), "f jumps back to the speaker");
    key(&mut app, Key::Char('j'));
    assert_eq!(app.follow(), Follow::Browsing, "moving on your own leaves follow mode");
    key(&mut app, Key::Char('f'));
    app.set_presenter(None);
    assert_eq!((app.selected(), app.follow()), (1, Follow::NoPresenter), "stays where the speaker left it");
    assert_eq!(key(&mut app, Key::Char('f')), None, "nothing to follow");
}

#[test]
fn the_mouse_leaves_follow_mode_only_when_it_moves_the_view() {
    let mut app = app();
    app.set_presenter(Some(PresenterPosition { page: 0, scroll: 0, lines: 0 }));
    app.handle(&Event::Mouse(Mouse::Click { column: 70, row: 20 }));
    assert_eq!(app.follow(), Follow::Following, "a stray click keeps following");
    app.handle(&Event::Mouse(Mouse::ScrollDown { column: 30, row: 8 }));
    assert_eq!(app.follow(), Follow::Browsing);
    // Regression: a stray click while browsing used to switch back to following.
    app.handle(&Event::Mouse(Mouse::Click { column: 70, row: 20 }));
    assert_eq!(app.follow(), Follow::Browsing, "a stray click keeps browsing");
}

#[test]
fn the_presenter_is_never_moved_by_the_room() {
    let mut app = app();
    app.set_role(Role::Presenter);
    app.set_presenter(Some(PresenterPosition { page: 4, scroll: 0, lines: 0 }));
    assert_eq!(app.selected(), 0);
    key(&mut app, Key::Char('3'));
    assert_eq!(app.position(), PresenterPosition { page: 2, scroll: 0, lines: 0 });
}

#[test]
fn keys_in_one_batch_and_frames_without_text_keep_the_right_place() {
    let mut app = app();
    // `l` then `G` before the next frame: the end of the *new* page (100 lines), not a line
    // counted in the old page's 25.
    key(&mut app, Key::Char('l'));
    key(&mut app, Key::Char('G'));
    app.set_viewport(Viewport { body_height: 10, body_lines: 100, nav: Vec::new() });
    assert_eq!(app.scroll(), 90);
    // Followers get "the end" too, whatever their wrapping.
    key(&mut app, Key::Char('G'));
    let mut follower = self::app();
    follower.set_presenter(Some(app.position()));
    follower.set_viewport(Viewport { body_height: 10, body_lines: 40, nav: Vec::new() });
    assert_eq!(follower.scroll(), 30);
    // A frame with no page text (the join card, a too-small terminal) keeps the place.
    app.scroll_up(5);
    assert_eq!(app.scroll(), 85);
    app.set_viewport(Viewport::default());
    app.set_viewport(Viewport { body_height: 10, body_lines: 100, nav: Vec::new() });
    assert_eq!(app.scroll(), 85);
}

#[test]
fn the_scroll_keeps_its_place_in_the_text_when_the_text_wraps_anew() {
    let mut app = app();
    // 20 of 25 lines down (the viewport shows 10): 80 % of the way.
    app.scroll_down(20);
    assert_eq!(app.scroll(), 15, "clamped to the last screenful");
    // A narrower terminal: the same text is now 50 lines; the place is scaled, not kept as
    // a line number (which would put the reader back near the start).
    assert_eq!(app.scroll_at(50), 30);
    app.set_viewport(Viewport { body_height: 10, body_lines: 50, nav: Vec::new() });
    assert_eq!((app.scroll(), app.scroll_at(50)), (30, 30), "now counted in the new wrapping");
    // A follower gets the presenter's place in the text, whatever the two widths.
    let mut follower = self::app();
    follower.set_presenter(Some(PresenterPosition { page: 2, scroll: 12, lines: 40 }));
    assert_eq!((follower.selected(), follower.scroll_at(25)), (2, 8));
    // Unknown (an older replica): the line number as sent.
    follower.set_presenter(Some(PresenterPosition { page: 2, scroll: 12, lines: 0 }));
    assert_eq!(follower.scroll_at(25), 12);
}

#[test]
fn reload_keeps_the_section_by_slug() {
    let mut app = app();
    key(&mut app, Key::Char('7')); // Travels inland
    let mut edited = app.content().clone();
    edited.sections.remove(0);
    app.set_content(Arc::new(edited));
    assert_eq!(app.page_title(app.selected()), "Travels inland");
}

#[test]
fn the_terminal_background_picks_the_palette_until_t_is_pressed() {
    let mut app = app();
    assert_eq!(app.palette(), Palette::Dark, "the default before any reply");
    let light = Event::Background { r: 250, g: 250, b: 250 };
    assert_eq!(app.handle(&light), Some(Effect::Redraw));
    assert_eq!(app.palette(), Palette::Light);
    assert_eq!(app.handle(&light), None, "same choice: no redraw");
    assert_eq!(key(&mut app, Key::Char('t')), Some(Effect::Redraw));
    assert_eq!(app.palette(), Palette::Dark);
    assert_eq!(app.handle(&light), None, "the visitor's choice stands");
    assert_eq!(app.palette(), Palette::Dark);
}

#[test]
fn s_shares_c_shows_the_join_card_to_the_presenter_and_any_key_returns() {
    let mut app = app();
    assert_eq!(key(&mut app, Key::Char('s')), Some(Effect::Redraw));
    assert_eq!(app.overlay(), Overlay::Share);
    assert_eq!(key(&mut app, Key::Char('q')), Some(Effect::Redraw), "q closes, does not quit");
    assert_eq!(app.overlay(), Overlay::None);
    assert_eq!(key(&mut app, Key::Char('c')), None, "no join card for visitors");
    app.set_role(Role::Presenter);
    key(&mut app, Key::Char('c'));
    assert_eq!(app.overlay(), Overlay::JoinCard);
    key(&mut app, Key::Char('j'));
    assert_eq!((app.overlay(), app.scroll()), (Overlay::None, 0), "returns, and j is not applied");
    key(&mut app, Key::Char('c'));
    assert_eq!(key(&mut app, Key::Ctrl('c')), Some(Effect::Quit), "Ctrl-C still quits");
}

#[test]
fn the_share_command_comes_from_the_public_host_and_port() {
    assert_eq!(Share::new(Some("bio.example.com"), 22, None).command.as_deref(), Some("ssh bio.example.com"));
    assert_eq!(Share::new(Some("h"), 2222, None).command.as_deref(), Some("ssh -p 2222 h"));
    assert_eq!(Share::new(None, 22, Some("https://x/".into())).command, None);
}
