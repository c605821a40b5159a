//! The one key map: which keys do what, and how the footer and the help overlay describe it.
//! Key handling ([`action_for`]), the footer hints ([`footer`]) and the help rows ([`help`])
//! all read [`BINDINGS`], so they cannot disagree. Pure data and lookups: no state, no drawing.

use crate::tui::app::Role;
use crate::tui::input::Key;

/// Something a visitor can ask for with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    NextChapter,
    PreviousChapter,
    /// Jump to chapter N (the digit key pressed).
    JumpToChapter,
    ScrollDown,
    ScrollUp,
    PageDown,
    PageUp,
    Top,
    Bottom,
    ToggleMouse,
    ToggleFollow,
    TogglePalette,
    Share,
    JoinCard,
    Help,
    Quit,
}

impl Action {
    /// Every action, so a test can check each one is bound and described.
    pub const ALL: [Action; 16] = [
        Action::NextChapter,
        Action::PreviousChapter,
        Action::JumpToChapter,
        Action::ScrollDown,
        Action::ScrollUp,
        Action::PageDown,
        Action::PageUp,
        Action::Top,
        Action::Bottom,
        Action::ToggleMouse,
        Action::ToggleFollow,
        Action::TogglePalette,
        Action::Share,
        Action::JoinCard,
        Action::Help,
        Action::Quit,
    ];

    /// True for keys that move the view (and so leave follow mode).
    pub fn moves_the_view(self) -> bool {
        matches!(
            self,
            Action::NextChapter
                | Action::PreviousChapter
                | Action::JumpToChapter
                | Action::ScrollDown
                | Action::ScrollUp
                | Action::PageDown
                | Action::PageUp
                | Action::Top
                | Action::Bottom
        )
    }
}

/// Who a binding is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    Everyone,
    /// Followers only (the presenter has nobody to follow).
    Visitors,
    /// `present@` only.
    Presenter,
}

impl For {
    fn includes(self, role: Role) -> bool {
        match self {
            For::Everyone => true,
            For::Visitors => role == Role::Visitor,
            For::Presenter => role == Role::Presenter,
        }
    }
}

/// One row of the key map.
#[derive(Debug)]
pub struct Binding {
    /// The keys that trigger it.
    pub keys: &'static [Key],
    pub action: Action,
    /// The keys as the help overlay writes them.
    pub shown: &'static str,
    /// The help overlay's description.
    pub help: &'static str,
    /// The description on a phone-sized screen, where the help packs two columns of about 18
    /// columns each.
    pub short: &'static str,
    /// The footer's short hint (key, word, rank), for the few bindings worth a footer slot:
    /// narrow footers drop the highest rank first.
    pub footer: Option<(&'static str, &'static str, u8)>,
    pub who: For,
}

const DIGITS: [Key; 9] = [
    Key::Char('1'),
    Key::Char('2'),
    Key::Char('3'),
    Key::Char('4'),
    Key::Char('5'),
    Key::Char('6'),
    Key::Char('7'),
    Key::Char('8'),
    Key::Char('9'),
];

/// The whole key map, in the order the help overlay lists it.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::Right, Key::Char('l'), Key::Tab],
        action: Action::NextChapter,
        shown: "→  l  Tab",
        help: "next chapter",
        short: "next chapter",
        footer: Some(("←/→", "chapter", 1)),
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Left, Key::Char('h'), Key::BackTab],
        action: Action::PreviousChapter,
        shown: "←  h  S-Tab",
        help: "previous chapter",
        short: "prev chapter",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &DIGITS,
        action: Action::JumpToChapter,
        shown: "1-9",
        help: "jump to a chapter",
        short: "go to chapter",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Down, Key::Char('j')],
        action: Action::ScrollDown,
        shown: "↓  j",
        help: "scroll down a line",
        short: "scroll down",
        footer: Some(("↑/↓", "scroll", 4)),
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Up, Key::Char('k')],
        action: Action::ScrollUp,
        shown: "↑  k",
        help: "scroll up a line",
        short: "scroll up",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::PageDown, Key::Char(' ')],
        action: Action::PageDown,
        shown: "PgDn  Space",
        help: "scroll down a page",
        short: "page down",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::PageUp, Key::Backspace],
        action: Action::PageUp,
        shown: "PgUp",
        help: "scroll up a page",
        short: "page up",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Home, Key::Char('g')],
        action: Action::Top,
        shown: "Home  g",
        help: "top of the chapter",
        short: "top",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::End, Key::Char('G')],
        action: Action::Bottom,
        shown: "End  G",
        help: "end of the chapter",
        short: "end",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Char('f')],
        action: Action::ToggleFollow,
        shown: "f",
        help: "follow the speaker / browse on your own",
        short: "follow / browse",
        footer: None,
        who: For::Visitors,
    },
    Binding {
        keys: &[Key::Char('c')],
        action: Action::JoinCard,
        shown: "c",
        help: "join card for the room (any key returns)",
        short: "join card",
        footer: Some(("c", "join card", 2)),
        who: For::Presenter,
    },
    Binding {
        keys: &[Key::Char('s')],
        action: Action::Share,
        shown: "s",
        help: "share: the ssh command and a QR code",
        short: "share",
        footer: Some(("s", "share", 3)),
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Char('t')],
        action: Action::TogglePalette,
        shown: "t",
        help: "light / dark colours (picked from your terminal)",
        short: "light / dark",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Char('m')],
        action: Action::ToggleMouse,
        shown: "m",
        help: "mouse on/off (off lets you select text)",
        short: "mouse on/off",
        footer: None,
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Char('?')],
        action: Action::Help,
        shown: "?",
        help: "this help (any key closes it)",
        short: "this help",
        footer: Some(("?", "help", 0)),
        who: For::Everyone,
    },
    Binding {
        keys: &[Key::Char('q'), Key::Esc, Key::Ctrl('c'), Key::Ctrl('d')],
        action: Action::Quit,
        shown: "q  Esc  Ctrl-C",
        help: "quit",
        short: "quit",
        footer: Some(("q", "quit", 2)),
        who: For::Everyone,
    },
];

/// What `key` does for `role`, if anything.
pub fn action_for(key: Key, role: Role) -> Option<Action> {
    BINDINGS.iter().find(|b| b.who.includes(role) && b.keys.contains(&key)).map(|b| b.action)
}

/// The help overlay's rows for `role`: (keys, description). `f` only while a speaker is
/// presenting (else it does nothing, and a visitor would look for a speaker who is not there).
pub fn help(role: Role, presenting: bool) -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(move |b| b.who.includes(role))
        .filter(move |b| presenting || b.action != Action::ToggleFollow)
}

/// The footer's hints for `role`, most important first.
pub fn footer(role: Role) -> impl Iterator<Item = (&'static str, &'static str, u8)> {
    BINDINGS.iter().filter(move |b| b.who.includes(role)).filter_map(|b| b.footer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_bound_and_listed_in_the_help() {
        for action in Action::ALL {
            let bound: Vec<&Binding> = BINDINGS.iter().filter(|b| b.action == action).collect();
            assert!(!bound.is_empty(), "{action:?} has no key");
            for binding in bound {
                let role = if binding.who == For::Presenter { Role::Presenter } else { Role::Visitor };
                assert!(
                    help(role, true).any(|b| b.shown == binding.shown && b.help == binding.help),
                    "{action:?} missing from the help"
                );
                for &key in binding.keys {
                    assert_eq!(action_for(key, role), Some(action), "{key:?}");
                }
            }
        }
    }

    /// A phone's help packs two columns of (40 - 3) / 2 = 18: the first key, a space and the
    /// short text fit in one, so nothing is cut.
    #[test]
    fn short_help_fits_half_a_phone() {
        for binding in BINDINGS {
            let key = binding.shown.split_whitespace().next().unwrap_or(binding.shown);
            let width = 1 + key.chars().count() + 1 + binding.short.chars().count();
            assert!(width <= 18, "{:?}: {width} columns", binding.short);
        }
    }

    #[test]
    fn no_key_is_bound_twice_for_one_role() {
        for role in [Role::Visitor, Role::Presenter] {
            let mut seen = Vec::new();
            for binding in BINDINGS.iter().filter(|b| b.who.includes(role)) {
                for key in binding.keys {
                    assert!(!seen.contains(key), "{key:?} bound twice for {role:?}");
                    seen.push(*key);
                }
            }
        }
    }

    #[test]
    fn the_join_card_is_the_presenters_and_follow_the_visitors() {
        assert_eq!(action_for(Key::Char('c'), Role::Presenter), Some(Action::JoinCard));
        assert_eq!(action_for(Key::Char('c'), Role::Visitor), None);
        assert_eq!(action_for(Key::Char('f'), Role::Presenter), None);
        assert!(help(Role::Visitor, true).all(|b| !b.help.contains("join card")));
        for key in ['t', 's'] {
            assert!(action_for(Key::Char(key), Role::Visitor).is_some());
        }
    }
}
