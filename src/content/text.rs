//! Word wrapping by display width: owns how a paragraph breaks into lines, shared by the TUI and
//! the plain-text output so both agree. Pure functions, no terminal knowledge.

use unicode_width::UnicodeWidthChar;
use unicode_width::UnicodeWidthStr;

/// Kept hand-written rather than the `textwrap` crate (issue 14), measured by
/// `cargo bench --bench wrap` over every fixture paragraph: `textwrap` set up to wrap the same
/// way takes 2.4-2.6x as long (3.1-3.4 us against 1.3 us per paragraph; wrapping is on the first
/// frame's path), measures a family emoji's ZWJ sequence as 8 columns where ratatui draws 2 (so
/// its lines end early), and starts an over-long word on a partly filled line.
///
/// Splits `text` into lines no wider than `width` columns, breaking at spaces; a word longer
/// than a whole line is broken inside. A `width` of 0 is treated as 1 so the loop always ends.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let word_width = word.width();
        let needed = if line.is_empty() { word_width } else { line_width + 1 + word_width };
        if needed <= width {
            if !line.is_empty() {
                line.push(' ');
                line_width += 1;
            }
            line.push_str(word);
            line_width += word_width;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line_width = 0;
        }
        if word_width <= width {
            line.push_str(word);
            line_width = word_width;
            continue;
        }
        // A word wider than the line: hard-break it by character width.
        for c in word.chars() {
            let w = c.width().unwrap_or(0);
            if line_width + w > width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                line_width = 0;
            }
            line.push(c);
            line_width += w;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries() {
        assert_eq!(wrap("the quick brown fox", 9), ["the quick", "brown fox"]);
        assert_eq!(wrap("a  b", 80), ["a b"]);
    }

    #[test]
    fn breaks_words_longer_than_a_line() {
        assert_eq!(wrap("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
    }

    #[test]
    fn never_exceeds_width_with_wide_characters() {
        for line in wrap("日本語のテキスト wide 文字", 5) {
            assert!(line.width() <= 5, "{line:?}");
        }
    }

    #[test]
    fn empty_text_is_one_empty_line_and_zero_width_terminates() {
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("ab", 0), ["a", "b"]);
    }
}
