//! What we send to one client's terminal: a ratatui [`Backend`] that renders cells into an
//! in-memory ANSI byte buffer at the client's colour depth, the depth rules themselves, and the
//! fixed mode-setting sequences (alternate screen, mouse, restore). Never touches the server's
//! own tty or environment (ratatui's crossterm backend would: tech notes §2.1, §2.3).

use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::{Cell, CellDiffOption};
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};
use unicode_width::UnicodeWidthStr;

/// How many colours the client's terminal can show, decided per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorDepth {
    /// TERM=dumb or NO_COLOR: attributes (bold, reverse, ...) only.
    None,
    /// SGR 30-37/90-97 and 40-47/100-107 only.
    Ansi16,
    /// Adds the 256-colour palette (`38;5;n`), never 24-bit.
    Ansi256,
    /// 24-bit `38;2;r;g;b`, only when the client says so.
    TrueColor,
}

impl ColorDepth {
    /// Decides the depth from the pty's TERM and the env requests the client sent. `NO_COLOR`
    /// (any value) or TERM=dumb: none; COLORTERM=truecolor/24bit or TERM `*-direct`: 24-bit;
    /// TERM containing `256color`: 256; any other TERM: 16.
    pub fn detect<'a>(term: Option<&str>, env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut no_color = false;
        let mut truecolor = false;
        for (name, value) in env {
            match name {
                "NO_COLOR" => no_color = true,
                "COLORTERM" => truecolor |= matches!(value, "truecolor" | "24bit"),
                _ => {}
            }
        }
        let term = term.unwrap_or("").to_ascii_lowercase();
        if no_color || term == "dumb" || term.is_empty() {
            Self::None
        } else if truecolor || term.ends_with("-direct") {
            Self::TrueColor
        } else if term.contains("256color") {
            Self::Ansi256
        } else {
            Self::Ansi16
        }
    }
}

/// Enter the alternate screen, hide the cursor, clear, and ask for bracketed paste (so pasted
/// text is never read as keys) and in-band resize reports (DEC 2048, for clients that never
/// send window-change).
pub const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[0m\x1b[2J\x1b[?2004h\x1b[?2048h";
/// Asks the terminal for its background colour (OSC 11); the reply comes back as input and
/// becomes [`crate::tui::input::Event::Background`]. Terminals that don't know it ignore it.
pub const BACKGROUND_QUERY: &[u8] = b"\x1b]11;?\x1b\\";
/// Mouse reporting on: button events plus SGR coordinates (no 223-column limit).
pub const MOUSE_ON: &[u8] = b"\x1b[?1000h\x1b[?1006h";
/// Mouse reporting off (every mode a terminal may have been left in).
pub const MOUSE_OFF: &[u8] = b"\x1b[?1006l\x1b[?1003l\x1b[?1002l\x1b[?1000l";
/// Give the terminal back as we found it: modes off, attributes reset, cursor shown, main
/// screen restored.
pub const RESTORE: &[u8] =
    b"\x1b[?2048l\x1b[?2004l\x1b[?1006l\x1b[?1003l\x1b[?1002l\x1b[?1000l\x1b[0m\x1b[?25h\x1b[?1049l";

/// A ratatui backend that turns cell updates into ANSI bytes in memory. The session takes the
/// bytes after each `draw` and writes them to the channel.
#[derive(Debug)]
pub struct AnsiBackend {
    /// Bytes rendered and not yet taken.
    out: Vec<u8>,
    /// The client's terminal size (from pty-req / window-change, clamped).
    size: Size,
    /// Where the terminal cursor is after the bytes written so far, when known.
    cursor: Option<Position>,
    /// Colour depth used for every SGR.
    depth: ColorDepth,
    /// Whether the cursor is hidden, so ratatui's per-frame hide/show sends bytes only once.
    cursor_hidden: Option<bool>,
    /// The SGR state the terminal is in, so only changes are sent.
    fg: Color,
    bg: Color,
    modifier: Modifier,
}

impl AnsiBackend {
    pub fn new(size: Size, depth: ColorDepth) -> Self {
        Self {
            out: Vec::with_capacity(8 * 1024),
            size,
            cursor: None,
            cursor_hidden: None,
            depth,
            fg: Color::Reset,
            bg: Color::Reset,
            modifier: Modifier::empty(),
        }
    }

    /// Sets the size that `size()` reports (ratatui asks the backend, not the caller).
    pub fn set_size(&mut self, size: Size) {
        self.size = size;
    }

    /// Appends raw bytes (mode switches) to the output.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Takes the rendered bytes, leaving the buffer empty.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Forget the SGR state and cursor (after something else wrote to the terminal).
    pub fn forget_state(&mut self) {
        self.cursor = None;
        self.fg = Color::Reset;
        self.bg = Color::Reset;
        self.modifier = Modifier::empty();
        self.out.extend_from_slice(b"\x1b[0m");
    }

    fn move_to(&mut self, x: u16, y: u16) {
        if self.cursor != Some(Position::new(x, y)) {
            // Writing into a Vec cannot fail.
            let _ = write!(self.out, "\x1b[{};{}H", u32::from(y) + 1, u32::from(x) + 1);
        }
    }

    fn set_style(&mut self, cell: &Cell) {
        let (fg, bg) = (self.map(cell.fg), self.map(cell.bg));
        let modifier = cell.modifier;
        if modifier == self.modifier && fg == self.fg && bg == self.bg {
            return;
        }
        // One SGR sequence with every change, parameters separated by ';'.
        self.out.extend_from_slice(b"\x1b[");
        let start = self.out.len();
        let removed = self.modifier - modifier;
        if !removed.is_empty() {
            // Attribute-off codes are uneven across terminals: reset and set everything anew.
            self.out.push(b'0');
            self.fg = Color::Reset;
            self.bg = Color::Reset;
            self.modifier = Modifier::empty();
        }
        for (flag, code) in [
            (Modifier::BOLD, "1"),
            (Modifier::DIM, "2"),
            (Modifier::ITALIC, "3"),
            (Modifier::UNDERLINED, "4"),
            (Modifier::SLOW_BLINK, "5"),
            (Modifier::RAPID_BLINK, "6"),
            (Modifier::REVERSED, "7"),
            (Modifier::HIDDEN, "8"),
            (Modifier::CROSSED_OUT, "9"),
        ] {
            if modifier.contains(flag) && !self.modifier.contains(flag) {
                separate(&mut self.out, start);
                self.out.extend_from_slice(code.as_bytes());
            }
        }
        if fg != self.fg {
            separate(&mut self.out, start);
            write_color(&mut self.out, fg, false);
        }
        if bg != self.bg {
            separate(&mut self.out, start);
            write_color(&mut self.out, bg, true);
        }
        self.out.push(b'm');
        self.fg = fg;
        self.bg = bg;
        self.modifier = modifier;
    }

    /// Maps a colour to the nearest one this terminal can show.
    fn map(&self, color: Color) -> Color {
        match (self.depth, color) {
            (ColorDepth::None, _) => Color::Reset,
            (ColorDepth::TrueColor, c) => c,
            (ColorDepth::Ansi256, Color::Rgb(r, g, b)) => Color::Indexed(rgb_to_256(r, g, b)),
            (ColorDepth::Ansi256, c) => c,
            (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => nearest_16(r, g, b),
            (ColorDepth::Ansi16, Color::Indexed(i)) => {
                let (r, g, b) = indexed_to_rgb(i);
                nearest_16(r, g, b)
            }
            (ColorDepth::Ansi16, c) => c,
        }
    }
}

/// Adds a ';' unless this is the first parameter of the sequence that started at `start`.
fn separate(out: &mut Vec<u8>, start: usize) {
    if out.len() > start {
        out.push(b';');
    }
}

/// Writes the SGR parameter for a colour already mapped to the terminal's depth. Named colours
/// use the classic 30-37/90-97 (40-47/100-107) codes, which every colour terminal knows.
fn write_color(out: &mut Vec<u8>, color: Color, background: bool) {
    let layer = if background { 48 } else { 38 };
    // Writing into a Vec cannot fail.
    let _ = match color {
        Color::Indexed(i) => write!(out, "{layer};5;{i}"),
        Color::Rgb(r, g, b) => write!(out, "{layer};2;{r};{g};{b}"),
        named => write!(out, "{}", named_code(named) + if background { 10 } else { 0 }),
    };
}

/// The foreground SGR code of a named colour (the background one is 10 more).
fn named_code(color: Color) -> u16 {
    match color {
        Color::Black => 30,
        Color::Red => 31,
        Color::Green => 32,
        Color::Yellow => 33,
        Color::Blue => 34,
        Color::Magenta => 35,
        Color::Cyan => 36,
        Color::Gray => 37,
        Color::DarkGray => 90,
        Color::LightRed => 91,
        Color::LightGreen => 92,
        Color::LightYellow => 93,
        Color::LightBlue => 94,
        Color::LightMagenta => 95,
        Color::LightCyan => 96,
        Color::White => 97,
        Color::Reset | Color::Indexed(_) | Color::Rgb(..) => 39,
    }
}

/// The xterm palette's RGB value for a 256-colour index.
fn indexed_to_rgb(i: u8) -> (u8, u8, u8) {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    match i {
        0..=15 => PALETTE_16.get(usize::from(i)).map_or((0, 0, 0), |(_, rgb)| *rgb),
        16..=231 => {
            let i = i - 16;
            let level = |n: u8| LEVELS.get(usize::from(n)).copied().unwrap_or(0);
            (level(i / 36), level(i / 6 % 6), level(i % 6))
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            (v, v, v)
        }
    }
}

/// Nearest xterm 256-colour index (6x6x6 cube or grey ramp) to an RGB value.
///
/// Kept hand-written rather than the `ansi_colours` crate (issue 14): that crate is
/// LGPL-3.0-or-later, which a statically linked MIT/Apache-2.0 binary can't take on lightly,
/// and the themes use a handful of fixed colours whose 16-colour versions are chosen by hand
/// anyway (`theme.rs`), so a perceptual mapping would change little.
pub fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    let cube = |v: u8| -> u8 {
        match v {
            0..=47 => 0,
            48..=114 => 1,
            _ => (v - 35) / 40,
        }
    };
    let (cr, cg, cb) = (cube(r), cube(g), cube(b));
    let cube_index = 16 + 36 * cr + 6 * cg + cb;
    let average = (u16::from(r) + u16::from(g) + u16::from(b)) / 3;
    let grey_index =
        if average > 238 { 23 } else { u8::try_from(average.saturating_sub(3) / 10).unwrap_or(23) };
    let grey = 232 + grey_index;
    let distance = |i: u8| {
        let (pr, pg, pb) = indexed_to_rgb(i);
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(pr, r) + d(pg, g) + d(pb, b)
    };
    if distance(grey) < distance(cube_index) { grey } else { cube_index }
}

/// The 16 named colours with xterm's default RGB values.
const PALETTE_16: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

fn nearest_16(r: u8, g: u8, b: u8) -> Color {
    let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
    PALETTE_16
        .iter()
        .min_by_key(|(_, (pr, pg, pb))| d(*pr, r) + d(*pg, g) + d(*pb, b))
        .map_or(Color::Reset, |(c, _)| *c)
}

impl Backend for AnsiBackend {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        for (x, y, cell) in content {
            self.move_to(x, y);
            self.set_style(cell);
            let symbol = cell.symbol();
            self.out.extend_from_slice(symbol.as_bytes());
            let width = match cell.diff_option {
                CellDiffOption::ForcedWidth(w) => w.get(),
                _ => u16::try_from(symbol.width()).unwrap_or(1).max(1),
            };
            self.cursor = Some(Position::new(x.saturating_add(width), y));
        }
        Ok(())
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        if self.cursor_hidden != Some(true) {
            self.out.extend_from_slice(b"\x1b[?25l");
            self.cursor_hidden = Some(true);
        }
        Ok(())
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        if self.cursor_hidden != Some(false) {
            self.out.extend_from_slice(b"\x1b[?25h");
            self.cursor_hidden = Some(false);
        }
        Ok(())
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(self.cursor.unwrap_or_default())
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        let p = position.into();
        self.move_to(p.x, p.y);
        self.cursor = Some(p);
        Ok(())
    }

    fn clear(&mut self) -> io::Result<()> {
        self.forget_state();
        self.out.extend_from_slice(b"\x1b[2J");
        Ok(())
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        let code: &[u8] = match clear_type {
            ClearType::All => b"\x1b[2J",
            ClearType::AfterCursor => b"\x1b[J",
            ClearType::BeforeCursor => b"\x1b[1J",
            ClearType::CurrentLine => b"\x1b[2K",
            ClearType::UntilNewLine => b"\x1b[K",
        };
        self.out.extend_from_slice(b"\x1b[0m");
        self.fg = Color::Reset;
        self.bg = Color::Reset;
        self.modifier = Modifier::empty();
        self.out.extend_from_slice(code);
        Ok(())
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.size)
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize { columns_rows: self.size, pixels: Size::new(0, 0) })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_rules() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(ColorDepth::detect(Some("xterm-256color"), none), ColorDepth::Ansi256);
        assert_eq!(ColorDepth::detect(Some("xterm"), none), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::detect(Some("screen"), none), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::detect(Some("xterm-direct"), none), ColorDepth::TrueColor);
        assert_eq!(ColorDepth::detect(Some("dumb"), none), ColorDepth::None);
        assert_eq!(ColorDepth::detect(None, none), ColorDepth::None);
        assert_eq!(
            ColorDepth::detect(Some("xterm-256color"), [("COLORTERM", "truecolor")]),
            ColorDepth::TrueColor
        );
        assert_eq!(
            ColorDepth::detect(Some("xterm-256color"), [("COLORTERM", "truecolor"), ("NO_COLOR", "")]),
            ColorDepth::None
        );
    }

    #[test]
    fn colour_codes_per_depth() {
        let cell = {
            let mut c = Cell::default();
            c.set_symbol("x").set_fg(Color::Rgb(0x5f, 0x87, 0xd7)).set_bg(Color::Indexed(196));
            c
        };
        let render = |depth| {
            let mut b = AnsiBackend::new(Size::new(10, 1), depth);
            b.draw([(0u16, 0u16, &cell)].into_iter()).expect("draw");
            String::from_utf8(b.take_output()).expect("utf8")
        };
        assert_eq!(render(ColorDepth::TrueColor), "\x1b[1;1H\x1b[38;2;95;135;215;48;5;196mx");
        assert_eq!(render(ColorDepth::Ansi256), "\x1b[1;1H\x1b[38;5;68;48;5;196mx");
        assert_eq!(render(ColorDepth::Ansi16), "\x1b[1;1H\x1b[94;101mx");
        assert_eq!(render(ColorDepth::None), "\x1b[1;1Hx");
    }

    #[test]
    fn an_unchanged_frame_sends_nothing() {
        use ratatui::Terminal;
        let mut terminal =
            Terminal::new(AnsiBackend::new(Size::new(20, 2), ColorDepth::Ansi256)).expect("terminal");
        let draw = |t: &mut Terminal<AnsiBackend>| {
            t.draw(|f| f.render_widget(ratatui::widgets::Paragraph::new("hello"), f.area())).expect("draw");
            t.backend_mut().take_output()
        };
        assert!(!draw(&mut terminal).is_empty());
        assert_eq!(draw(&mut terminal), b"", "no cursor or style bytes for an identical frame");
    }

    #[test]
    fn palette_conversions() {
        assert_eq!(rgb_to_256(255, 128, 0), 208);
        assert_eq!(rgb_to_256(0x80, 0x80, 0x80), 244);
        assert_eq!(nearest_16(250, 250, 250), Color::White);
    }
}
