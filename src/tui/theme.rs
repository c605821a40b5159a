//! Every colour and style the terminal UI uses, one [`Theme`] per palette and colour depth, so a
//! palette is a data change. The accent matches the web page's (`http/web.rs`: `#63cbbf` on dark,
//! `#0b6a64` on light). Text is never given a colour or a background: it stays the terminal's
//! own foreground, so it reads on any background even when the palette guess is wrong.

use ratatui::style::{Color, Modifier, Style};

use crate::tui::terminal::ColorDepth;

/// Which kind of background the colours are chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Palette {
    /// Light text on a dark background: most terminals, and the guess until the terminal
    /// answers the background-colour query.
    #[default]
    Dark,
    Light,
}

impl Palette {
    /// The palette for a terminal background colour (from its OSC 11 reply): light when its
    /// relative luminance is over one half.
    pub fn for_background(r: u8, g: u8, b: u8) -> Self {
        let lin = |c: u8| {
            let c = f32::from(c) / 255.0;
            if c <= 0.040_45 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        let luminance = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        // 0.18 is mid grey in linear light (perceived lightness 50 %).
        if luminance > 0.18 { Palette::Light } else { Palette::Dark }
    }

    pub fn toggled(self) -> Self {
        match self {
            Palette::Dark => Palette::Light,
            Palette::Light => Palette::Dark,
        }
    }
}

/// Every style the UI draws with.
#[derive(Debug)]
pub struct Theme {
    /// The name, in the hero's block letters or the compact header.
    pub name: Style,
    /// The headline under the name (accent, as on the web page).
    pub headline: Style,
    /// The intro, and anything secondary (muted).
    pub intro: Style,
    /// Chapter numbers (`01`), accent.
    pub number: Style,
    /// The chapter title over the text.
    pub title: Style,
    /// Body text: the terminal's own colours.
    pub text: Style,
    /// Secondary lines: "chapter 2 of 7 · next: ...", scroll position, URLs under link labels.
    pub muted: Style,
    /// Separators and the timeline's line.
    pub rule: Style,
    /// A chapter in the navigation.
    pub nav: Style,
    /// The chapter being read, in the navigation.
    pub nav_selected: Style,
    /// Link labels.
    pub link: Style,
    /// Keys in the footer and the help.
    pub key: Style,
    /// The follow-mode banner.
    pub banner: Style,
    /// The audience count.
    pub audience: Style,
    /// Large type on the join card (the command, the count).
    pub big: Style,
    /// QR code cells: black on white whatever the palette, so phones can scan it.
    pub qr: Style,
}

const BOLD: Modifier = Modifier::BOLD;

/// Builds a colour theme from its few colours.
const fn colour_theme(accent: Color, muted: Color, rule: Color, link: Color, qr: Style) -> Theme {
    Theme {
        name: Style::new().add_modifier(BOLD),
        headline: Style::new().fg(accent).add_modifier(BOLD),
        intro: Style::new().fg(muted),
        number: Style::new().fg(accent).add_modifier(BOLD),
        title: Style::new().add_modifier(BOLD),
        text: Style::new(),
        muted: Style::new().fg(muted),
        rule: Style::new().fg(rule),
        nav: Style::new().fg(muted),
        nav_selected: Style::new().fg(accent).add_modifier(BOLD),
        link: Style::new().fg(link).add_modifier(Modifier::UNDERLINED),
        key: Style::new().fg(accent).add_modifier(BOLD),
        banner: Style::new().fg(accent).add_modifier(BOLD.union(Modifier::REVERSED)),
        audience: Style::new().fg(accent),
        big: Style::new().fg(accent).add_modifier(BOLD),
        qr,
    }
}

const QR_RGB: Style = Style::new().fg(Color::Rgb(0, 0, 0)).bg(Color::Rgb(255, 255, 255));
const QR_16: Style = Style::new().fg(Color::Black).bg(Color::White);

/// Dark background, 256 or 24-bit colours (the web page's dark scheme).
pub const DARK: Theme = colour_theme(
    Color::Rgb(0x63, 0xcb, 0xbf),
    Color::Rgb(0xa5, 0xa8, 0xae),
    Color::Rgb(0x4a, 0x4f, 0x57),
    Color::Rgb(0x8f, 0xbc, 0xff),
    QR_RGB,
);

/// Light background, 256 or 24-bit colours (the web page's light scheme).
pub const LIGHT: Theme = colour_theme(
    Color::Rgb(0x0b, 0x6a, 0x64),
    Color::Rgb(0x55, 0x58, 0x5f),
    Color::Rgb(0xb8, 0xb3, 0xa8),
    Color::Rgb(0x0a, 0x53, 0xa8),
    QR_RGB,
);

/// Dark background, 16 colours: the nearest named colours that keep the accent's hue.
pub const DARK_16: Theme =
    colour_theme(Color::Cyan, Color::DarkGray, Color::DarkGray, Color::LightBlue, QR_16);

/// Light background, 16 colours: cyan is too pale on white, so the accent is blue.
pub const LIGHT_16: Theme = colour_theme(Color::Blue, Color::DarkGray, Color::DarkGray, Color::Blue, QR_16);

/// No colour at all (TERM=dumb, NO_COLOR): bold, dim, underline and reverse carry the
/// hierarchy. The QR code is drawn in the terminal's own colours (scanners read inverted codes).
pub const MONO: Theme = Theme {
    name: Style::new().add_modifier(BOLD),
    headline: Style::new().add_modifier(BOLD),
    intro: Style::new().add_modifier(Modifier::DIM),
    number: Style::new().add_modifier(BOLD),
    title: Style::new().add_modifier(BOLD.union(Modifier::UNDERLINED)),
    text: Style::new(),
    muted: Style::new().add_modifier(Modifier::DIM),
    rule: Style::new().add_modifier(Modifier::DIM),
    nav: Style::new().add_modifier(Modifier::DIM),
    nav_selected: Style::new().add_modifier(BOLD.union(Modifier::REVERSED)),
    link: Style::new().add_modifier(Modifier::UNDERLINED),
    key: Style::new().add_modifier(BOLD),
    banner: Style::new().add_modifier(BOLD.union(Modifier::REVERSED)),
    audience: Style::new().add_modifier(BOLD),
    big: Style::new().add_modifier(BOLD),
    qr: Style::new(),
};

/// The theme for a palette at a colour depth.
pub fn theme(palette: Palette, depth: ColorDepth) -> &'static Theme {
    match (depth, palette) {
        (ColorDepth::None, _) => &MONO,
        (ColorDepth::Ansi16, Palette::Dark) => &DARK_16,
        (ColorDepth::Ansi16, Palette::Light) => &LIGHT_16,
        (ColorDepth::Ansi256 | ColorDepth::TrueColor, Palette::Dark) => &DARK,
        (ColorDepth::Ansi256 | ColorDepth::TrueColor, Palette::Light) => &LIGHT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_luminance_picks_the_palette() {
        assert_eq!(Palette::for_background(0, 0, 0), Palette::Dark);
        assert_eq!(Palette::for_background(0x12, 0x14, 0x17), Palette::Dark);
        assert_eq!(Palette::for_background(255, 255, 255), Palette::Light);
        assert_eq!(Palette::for_background(0xfd, 0xf6, 0xe3), Palette::Light, "solarized light");
        assert_eq!(Palette::for_background(0x00, 0x2b, 0x36), Palette::Dark, "solarized dark");
    }
}
