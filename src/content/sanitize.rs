//! Makes untrusted text safe to put on a visitor's terminal: owns the rule for which characters
//! may pass. Used on content.toml strings at load time and on client-supplied strings (user name,
//! TERM, env values) before they are shown or logged. It must not know about rendering.

/// Returns `text` with every character removed that could move the cursor, start an escape
/// sequence, or reorder or hide text: C0 and C1 controls (ESC, BEL, CSI, OSC, ...), DEL, and the
/// Unicode bidirectional overrides and isolates. Tabs and newlines become single spaces so a
/// paragraph stays one paragraph.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(' '),
            c if is_dangerous(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Like [`clean`], then cut to at most `max_chars` characters: for short client-supplied values
/// (user name, TERM) that end up in logs and on screen.
pub fn clean_short(text: &str, max_chars: usize) -> String {
    clean(text).chars().take(max_chars).collect()
}

/// True for characters that a terminal would interpret rather than print, or that change the
/// order or visibility of the text around them.
fn is_dangerous(c: char) -> bool {
    c.is_control() // C0 (incl. ESC, BEL), DEL and C1 (incl. CSI 0x9b, OSC 0x9d)
        || matches!(c,
            '\u{200E}' | '\u{200F}'            // LRM, RLM
            | '\u{202A}'..='\u{202E}'          // LRE, RLE, PDF, LRO, RLO
            | '\u{2066}'..='\u{2069}'          // LRI, RLI, FSI, PDI
            | '\u{061C}'                       // Arabic letter mark
            | '\u{FEFF}'                       // zero width no-break space / BOM
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escape_sequences_and_controls() {
        let hostile = "hi\x1b]52;c;aGVsbG8=\x07 \x1b[2J\u{9b}31m\u{202e}evil\x7f";
        let cleaned = clean(hostile);
        assert!(!cleaned.chars().any(|c| c.is_control()), "{cleaned:?}");
        assert!(!cleaned.contains('\u{202e}'));
        // The printable remains stay visible, so nothing is hidden either.
        assert_eq!(cleaned, "hi]52;c;aGVsbG8= [2J31mevil");
    }

    #[test]
    fn keeps_ordinary_text_and_turns_whitespace_into_spaces() {
        assert_eq!(clean("École\tCentrale\nParis"), "École Centrale Paris");
        assert_eq!(clean_short("abcdef", 3), "abc");
    }
}
