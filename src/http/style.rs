//! The web page's stylesheet: the light and dark palettes (data, so a test checks their contrast)
//! as CSS custom properties, followed by the rules in `page.css`. Only `web` uses it.

use std::sync::LazyLock;

/// The colours of one scheme. Kept as data so a unit test can check their contrast.
pub(super) struct Palette {
    /// Page background.
    pub(super) bg: &'static str,
    /// Body text.
    fg: &'static str,
    /// Secondary text (intro, URLs, footer).
    muted: &'static str,
    /// The headline and section numbers.
    accent: &'static str,
    /// Links.
    link: &'static str,
    /// Borders and rules; decoration only, not text.
    line: &'static str,
    /// The "Read it in your terminal" card.
    card: &'static str,
    /// The command line inside the card: a terminal in both schemes.
    term_bg: &'static str,
    /// Text on `term_bg`.
    term_fg: &'static str,
    /// The `$` prompt on `term_bg`.
    prompt: &'static str,
}

pub(super) const LIGHT: Palette = Palette {
    bg: "#fbfaf7",
    fg: "#1c1d21",
    muted: "#55585f",
    accent: "#0b6a64",
    link: "#0a53a8",
    line: "#dcd8cf",
    card: "#f1eee7",
    term_bg: "#16191d",
    term_fg: "#eceff1",
    prompt: "#7fd8a6",
};

pub(super) const DARK: Palette = Palette {
    bg: "#121417",
    fg: "#e7e5e1",
    muted: "#a5a8ae",
    accent: "#63cbbf",
    link: "#8fbcff",
    line: "#30343a",
    card: "#1a1d22",
    term_bg: "#07090b",
    term_fg: "#eceff1",
    prompt: "#7fd8a6",
};

impl Palette {
    fn css_vars(&self) -> String {
        format!(
            "--bg:{};--fg:{};--muted:{};--accent:{};--link:{};--line:{};--card:{};\
             --term-bg:{};--term-fg:{};--prompt:{}",
            self.bg,
            self.fg,
            self.muted,
            self.accent,
            self.link,
            self.line,
            self.card,
            self.term_bg,
            self.term_fg,
            self.prompt
        )
    }
}

/// Everything but the colours. System fonts only: the page loads nothing from anywhere.
const CSS_RULES: &str = include_str!("page.css");

/// The whole stylesheet, built once: the two palettes as custom properties, then the rules.
pub(super) static STYLE: LazyLock<String> = LazyLock::new(|| {
    format!(
        ":root{{color-scheme:light dark;{}}}\n@media (prefers-color-scheme:dark){{:root{{{}}}}}\n{CSS_RULES}",
        LIGHT.css_vars(),
        DARK.css_vars()
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |range: std::ops::Range<usize>| {
            let c = f64::from(u8::from_str_radix(hex.get(range).unwrap_or("00"), 16).unwrap_or(0)) / 255.0;
            if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(1..3) + 0.7152 * channel(3..5) + 0.0722 * channel(5..7)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn both_colour_schemes_have_readable_contrast() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
        for (scheme, p) in [("light", &LIGHT), ("dark", &DARK)] {
            let pairs = [
                ("text", p.fg, p.bg, 7.0),
                ("muted", p.muted, p.bg, 4.5),
                ("accent", p.accent, p.bg, 4.5),
                ("link", p.link, p.bg, 4.5),
                ("text on card", p.fg, p.card, 7.0),
                ("muted on card", p.muted, p.card, 4.5),
                ("link on card", p.link, p.card, 4.5),
                ("accent on card", p.accent, p.card, 4.5),
                ("command", p.term_fg, p.term_bg, 7.0),
                ("prompt", p.prompt, p.term_bg, 4.5),
            ];
            for (what, fg, bg, minimum) in pairs {
                let ratio = contrast(fg, bg);
                assert!(ratio >= minimum, "{scheme} {what}: {fg} on {bg} is {ratio:.2}:1, want {minimum}:1");
            }
        }
    }

    #[test]
    fn stylesheet_has_both_schemes() {
        assert!(STYLE.starts_with(":root{color-scheme:light dark;--bg:#fbfaf7;"));
        assert!(STYLE.contains("@media (prefers-color-scheme:dark){:root{--bg:#121417;"));
        assert!(STYLE.contains("max-width:44rem"));
    }
}
