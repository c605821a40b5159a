//! Terminal input bytes -> our own [`Event`]s. Owns decoding (via termina's parser), the lone-Esc
//! rule, in-band resize reports (DEC mode 2048), background-colour replies (OSC 11, even when
//! split across packets: never keystrokes) and the bound on half-finished sequences. Pure:
//! no I/O, no timers (the session calls [`Decoder::flush`] when its Esc timer fires).

use termina::event::{KeyCode, KeyEventKind, Modifiers, MouseButton, MouseEventKind};

/// A key the app can act on. Anything else becomes [`Event::Ignored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character, as typed (case kept).
    Char(char),
    /// A letter typed with Ctrl held (lower-case): Ctrl-C is `Ctrl('c')`.
    Ctrl(char),
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Tab,
    BackTab,
    Enter,
    Esc,
    Backspace,
}

/// What the pointer did, in 0-based cell coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mouse {
    ScrollUp { column: u16, row: u16 },
    ScrollDown { column: u16, row: u16 },
    Click { column: u16, row: u16 },
}

/// One decoded input event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Key(Key),
    Mouse(Mouse),
    /// An in-band resize report (`CSI 48 ; rows ; cols ; ... t`), for clients that never send
    /// the SSH window-change request.
    Resize {
        cols: u16,
        rows: u16,
    },
    /// The terminal's reply to the background-colour query (OSC 11), 8 bits per channel.
    Background {
        r: u8,
        g: u8,
        b: u8,
    },
    /// Paste, focus, terminal replies, releases, unknown keys: consumed and dropped, so an
    /// unknown escape sequence never reaches the app as keystrokes.
    Ignored,
}

/// Bytes fed without any event coming out before the parser is reset: an endless paste or an
/// unterminated sequence can't make it hold more than this.
const MAX_HELD_BYTES: usize = 64 * 1024;

/// Stateful decoder for one connection's input stream.
#[derive(Debug, Default)]
pub struct Decoder {
    /// termina's parser, which keeps partial sequences and split UTF-8 between packets.
    parser: termina::Parser,
    /// Bytes fed since the parser last produced an event (see [`MAX_HELD_BYTES`]).
    held: usize,
    /// Whether the last input may have left an incomplete sequence waiting for the Esc timer.
    pending: bool,
    /// How many times the panic guard around termina fired. Always 0 unless termina has a
    /// bug; the tests and fuzz targets assert it, so the guard cannot hide a panic from them.
    panics_caught: usize,
    /// The start of a background-colour reply (or what may become one) held until the rest
    /// arrives, so its bytes never reach termina as keys.
    reply: Vec<u8>,
}

/// How an OSC 11 reply starts.
const REPLY_START: &[u8] = b"\x1b]11;";
/// Longest reply kept while waiting for its end (`rgba:ffff/ffff/ffff/ffff` and terminator
/// fit many times over); anything longer is dropped.
const MAX_REPLY: usize = 64;

impl Decoder {
    /// Feeds one chunk of input and appends the events it completes to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        let bytes = self.take_background_replies(bytes, out);
        let bytes = take_resize_reports(&bytes, out);
        if bytes.is_empty() {
            self.pending = !self.reply.is_empty();
            return;
        }
        let before = out.len();
        self.parse(&bytes, true, out);
        if out.len() > before {
            self.held = 0;
        }
        self.held = self.held.saturating_add(bytes.len());
        if self.held > MAX_HELD_BYTES {
            self.parser = termina::Parser::default();
            self.held = 0;
        }
        // An ESC or a non-ASCII byte may start something that only a timeout can finish.
        self.pending = !self.reply.is_empty() || bytes.iter().any(|&b| b == 0x1b || b >= 0x80);
    }

    /// Takes complete OSC 11 replies out of the input (held bytes first), pushing an
    /// [`Event::Background`] for each, and returns the rest. An unfinished reply at the end,
    /// or bytes that may start one (a lone ESC, `ESC ]1`), are held for the next packet.
    fn take_background_replies(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Vec<u8> {
        let mut input = std::mem::take(&mut self.reply);
        input.extend_from_slice(bytes);
        let mut rest = Vec::with_capacity(input.len());
        let mut i = 0;
        while let Some(tail) = input.get(i..).filter(|t| !t.is_empty()) {
            if let Some(body) = tail.strip_prefix(REPLY_START) {
                match reply_end(body) {
                    Some((end, terminator)) => {
                        if let Some(rgb) = body.get(..end).and_then(parse_rgb) {
                            out.push(Event::Background { r: rgb.0, g: rgb.1, b: rgb.2 });
                        } else {
                            out.push(Event::Ignored);
                        }
                        i += REPLY_START.len() + end + terminator;
                        continue;
                    }
                    None => match broken_at(body) {
                        // Something that is not part of a reply (a key typed after a reply
                        // that never ended): drop the reply, decode from there.
                        Some(at) => {
                            out.push(Event::Ignored);
                            i += REPLY_START.len() + at;
                            continue;
                        }
                        None if tail.len() <= MAX_REPLY => {
                            self.reply = tail.to_vec();
                            break;
                        }
                        None => {
                            out.push(Event::Ignored);
                            i = input.len();
                            continue;
                        }
                    },
                }
            }
            if REPLY_START.starts_with(tail) {
                // Maybe the start of a reply: wait for the next packet (or the Esc timer).
                self.reply = tail.to_vec();
                break;
            }
            if let Some(&b) = tail.first() {
                rest.push(b);
            }
            i += 1;
        }
        rest
    }

    /// How many times termina panicked on this decoder's input (and was reset): see the field.
    pub fn panics_caught(&self) -> usize {
        self.panics_caught
    }

    /// True when a lone Esc or a partial sequence may be waiting: arm the Esc timer.
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// The Esc timer fired: whatever is held is complete now (a held ESC becomes `Key::Esc`).
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        self.pending = false;
        self.held = 0;
        if self.reply.starts_with(REPLY_START) {
            // A reply under way stays held: its rest may come in a later packet (a slow
            // network), and it must not be typed. A byte that can't be part of it ends it.
            self.parse(&[], false, out);
            return;
        }
        let held = std::mem::take(&mut self.reply);
        if !held.is_empty() {
            // Only a prefix (a lone Esc, say): it is what it looks like.
            self.parse(&held, false, out);
            return;
        }
        self.parse(&[], false, out);
    }

    fn parse(&mut self, bytes: &[u8], maybe_more: bool, out: &mut Vec<Event>) {
        // termina is well tested, but this is hostile input: a panic in the parser must cost
        // only the held bytes, never the session.
        let parser = &mut self.parser;
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(bytes, maybe_more)));
        if parsed.is_err() {
            self.parser = termina::Parser::default();
            self.panics_caught = self.panics_caught.saturating_add(1);
            return;
        }
        while let Some(event) = self.parser.pop() {
            out.push(from_termina(event));
        }
    }
}

/// Maps termina's event to ours, keeping only what the app understands (also used by the
/// local preview, which reads events from termina's own terminal).
pub fn from_termina(event: termina::Event) -> Event {
    match event {
        termina::Event::Key(key) => {
            if key.kind == KeyEventKind::Release {
                return Event::Ignored;
            }
            let ctrl = key.modifiers.contains(Modifiers::CONTROL);
            let alt = key.modifiers.contains(Modifiers::ALT);
            if alt {
                return Event::Ignored;
            }
            let key = match key.code {
                KeyCode::Char(c) if ctrl => Key::Ctrl(c.to_ascii_lowercase()),
                KeyCode::Char(c) if c.is_control() => return Event::Ignored,
                KeyCode::Char(c) => Key::Char(c),
                KeyCode::Up => Key::Up,
                KeyCode::Down => Key::Down,
                KeyCode::Left => Key::Left,
                KeyCode::Right => Key::Right,
                KeyCode::PageUp => Key::PageUp,
                KeyCode::PageDown => Key::PageDown,
                KeyCode::Home => Key::Home,
                KeyCode::End => Key::End,
                KeyCode::Tab => Key::Tab,
                KeyCode::BackTab => Key::BackTab,
                KeyCode::Enter => Key::Enter,
                KeyCode::Escape => Key::Esc,
                KeyCode::Backspace => Key::Backspace,
                _ => return Event::Ignored,
            };
            Event::Key(key)
        }
        termina::Event::Mouse(mouse) => {
            let (column, row) = (mouse.column, mouse.row);
            match mouse.kind {
                MouseEventKind::ScrollUp => Event::Mouse(Mouse::ScrollUp { column, row }),
                MouseEventKind::ScrollDown => Event::Mouse(Mouse::ScrollDown { column, row }),
                MouseEventKind::Down(MouseButton::Left) => Event::Mouse(Mouse::Click { column, row }),
                _ => Event::Ignored,
            }
        }
        termina::Event::WindowResized(size) => Event::Resize { cols: size.cols, rows: size.rows },
        _ => Event::Ignored,
    }
}

/// Where an OSC reply's body ends: (body length, terminator length) for BEL or ST (`ESC \`).
fn reply_end(body: &[u8]) -> Option<(usize, usize)> {
    body.iter().enumerate().find_map(|(i, &b)| match b {
        0x07 => Some((i, 1)),
        0x1b if body.get(i + 1) == Some(&b'\\') => Some((i, 2)),
        _ => None,
    })
}

/// Where an unfinished reply body stops looking like one (`rgb:`/`rgba:`, hex digits, `/`, and
/// a trailing ESC that may start the terminator), if it does.
fn broken_at(body: &[u8]) -> Option<usize> {
    body.iter().enumerate().position(|(i, &b)| {
        let trailing_esc = b == 0x1b && i + 1 == body.len();
        !(b.is_ascii_hexdigit() || matches!(b, b'r' | b'g' | b'a' | b':' | b'/') || trailing_esc)
    })
}

/// Parses `rgb:RRRR/GGGG/BBBB` (1 to 4 hex digits per channel, `rgba:` too) to 8 bits per
/// channel.
fn parse_rgb(body: &[u8]) -> Option<(u8, u8, u8)> {
    let text = std::str::from_utf8(body).ok()?;
    let channels = text.strip_prefix("rgb:").or_else(|| text.strip_prefix("rgba:"))?;
    let mut parts = channels.split('/').map(|part| {
        let digits = u32::try_from(part.len()).ok().filter(|n| (1..=4).contains(n))?;
        let value = u32::from_str_radix(part, 16).ok()?;
        let max = 16u32.pow(digits) - 1;
        u8::try_from(value * 255 / max).ok()
    });
    let (r, g, b) = (parts.next()??, parts.next()??, parts.next()??);
    Some((r, g, b))
}

/// Removes complete in-band resize reports (`ESC [ 48 ; rows ; cols [; ph ; pw] t`) from
/// `bytes`, pushing a [`Event::Resize`] for each, and returns the rest. Terminals write each
/// report in one piece, so it arrives in one packet; a report split across packets is left to
/// termina, which drops it as an unknown sequence.
fn take_resize_reports(bytes: &[u8], out: &mut Vec<Event>) -> Vec<u8> {
    const START: &[u8] = b"\x1b[48;";
    let mut rest = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let tail = bytes.get(i..).unwrap_or_default();
        if tail.starts_with(START) {
            let params = tail.get(START.len()..).unwrap_or_default();
            let end = params.iter().position(|b| !(b.is_ascii_digit() || *b == b';'));
            if let Some(end) = end
                && params.get(end) == Some(&b't')
            {
                let fields: Vec<u16> = params
                    .get(..end)
                    .unwrap_or_default()
                    .split(|b| *b == b';')
                    .map(|f| std::str::from_utf8(f).ok().and_then(|s| s.parse().ok()).unwrap_or(0))
                    .collect();
                if let (Some(&rows), Some(&cols)) = (fields.first(), fields.get(1)) {
                    out.push(Event::Resize { cols, rows });
                }
                i += START.len() + end + 1;
                continue;
            }
        }
        if let Some(&b) = bytes.get(i) {
            rest.push(b);
        }
        i += 1;
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<Event> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out);
        }
        decoder.flush(&mut out);
        out
    }

    fn decode(bytes: &[u8]) -> Vec<Event> {
        decode_chunks(&[bytes])
    }

    #[test]
    fn byte_sequences_to_keys() {
        use Key::*;
        let table: &[(&[u8], Key)] = &[
            (b"q", Char('q')),
            (b"G", Char('G')),
            (b" ", Char(' ')),
            (b"?", Char('?')),
            (b"\x1b[A", Up),
            (b"\x1b[B", Down),
            (b"\x1bOA", Up), // application cursor mode
            (b"\x1b[C", Right),
            (b"\x1b[D", Left),
            (b"\x1b[5~", PageUp),
            (b"\x1b[6~", PageDown),
            (b"\x1b[H", Home),
            (b"\x1b[F", End),
            (b"\x1b[1~", Home),
            (b"\x1b[4~", End),
            (b"\t", Tab),
            (b"\x1b[Z", BackTab),
            (b"\r", Enter),
            (b"\x7f", Backspace),
            (b"\x03", Ctrl('c')),
            (b"\x04", Ctrl('d')),
            (b"\x1b", Esc),
            ("é".as_bytes(), Char('é')),
        ];
        for (bytes, key) in table {
            assert_eq!(decode(bytes), vec![Event::Key(*key)], "bytes {bytes:?}");
        }
    }

    #[test]
    fn utf8_split_across_packets_is_one_character() {
        assert_eq!(decode_chunks(&[&[0xC3], &[0xA9]]), vec![Event::Key(Key::Char('é'))]);
        assert_eq!(decode_chunks(&[&[0xF0, 0x9F], &[0x98, 0x80]]), vec![Event::Key(Key::Char('😀'))]);
    }

    #[test]
    fn lone_esc_waits_for_the_timer() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(b"\x1b", &mut out);
        assert!(out.is_empty() && decoder.has_pending());
        decoder.flush(&mut out);
        assert_eq!(out, vec![Event::Key(Key::Esc)]);
    }

    #[test]
    fn mouse_wheel_and_click() {
        assert_eq!(
            decode(b"\x1b[<64;10;5M\x1b[<65;1;1M\x1b[<0;3;4M\x1b[<0;3;4m"),
            vec![
                Event::Mouse(Mouse::ScrollUp { column: 9, row: 4 }),
                Event::Mouse(Mouse::ScrollDown { column: 0, row: 0 }),
                Event::Mouse(Mouse::Click { column: 2, row: 3 }),
                Event::Ignored, // release
            ]
        );
    }

    #[test]
    fn paste_focus_and_unknown_sequences_never_become_keys() {
        let events = decode(b"\x1b[200~q\x1b[A\x1b[201~\x1b[I\x1b[O\x1b[?62;22c\x1b]10;rgb:0/0/0\x1b\\");
        assert!(events.iter().all(|e| *e == Event::Ignored), "{events:?}");
    }

    #[test]
    fn background_colour_replies_are_events_not_keys() {
        let white = Event::Background { r: 255, g: 255, b: 255 };
        assert_eq!(decode(b"\x1b]11;rgb:ffff/ffff/ffff\x1b\\"), vec![white.clone()]);
        assert_eq!(decode(b"\x1b]11;rgb:ff/ff/ff\x07q"), vec![white.clone(), Event::Key(Key::Char('q'))]);
        assert_eq!(
            decode(b"\x1b]11;rgba:0000/8080/ffff/ffff\x07"),
            vec![Event::Background { r: 0, g: 128, b: 255 }]
        );
        assert_eq!(decode(b"\x1b]11;nonsense\x07"), vec![Event::Ignored]);
    }

    #[test]
    fn a_reply_split_across_packets_never_becomes_keys() {
        let reply: &[u8] = b"\x1b]11;rgb:fdfd/f6f6/e3e3\x1b\\";
        let expected = vec![Event::Background { r: 0xfd, g: 0xf6, b: 0xe3 }];
        // Every split point, and one byte per packet.
        for at in 1..reply.len() {
            let (a, b) = reply.split_at(at);
            assert_eq!(decode_chunks(&[a, b]), expected, "split at {at}");
        }
        let bytes: Vec<&[u8]> = reply.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes), expected);
        // Keys around it still arrive.
        assert_eq!(
            decode_chunks(&[b"j\x1b]11;rgb:0/0", b"/0\x07k"]),
            vec![
                Event::Key(Key::Char('j')),
                Event::Background { r: 0, g: 0, b: 0 },
                Event::Key(Key::Char('k'))
            ]
        );
        // A reply cut off for good is never typed; the next real key ends it.
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(b"\x1b]11;rgb:12", &mut out);
        decoder.flush(&mut out);
        assert!(out.iter().all(|e| *e == Event::Ignored), "{out:?}");
        decoder.feed(b"34", &mut out);
        decoder.flush(&mut out);
        assert!(out.iter().all(|e| *e == Event::Ignored), "digits that may be its rest: {out:?}");
        decoder.feed(b"q\x1b[A", &mut out);
        decoder.flush(&mut out);
        let keys: Vec<&Event> = out.iter().filter(|e| **e != Event::Ignored).collect();
        assert_eq!(keys, [&Event::Key(Key::Char('q')), &Event::Key(Key::Up)]);
        // The rest arriving after the Esc timer (a slow network) still completes it.
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(b"\x1b]11;rgb:f5f5/f5", &mut out);
        decoder.flush(&mut out);
        decoder.feed(b"f5/f5f5\x1b\\", &mut out);
        let events: Vec<&Event> = out.iter().filter(|e| **e != Event::Ignored).collect();
        assert_eq!(events, [&Event::Background { r: 0xf5, g: 0xf5, b: 0xf5 }]);
    }

    #[test]
    fn in_band_resize_reports_are_resizes() {
        assert_eq!(
            decode(b"\x1b[48;30;100;600;1000tq"),
            vec![Event::Resize { cols: 100, rows: 30 }, Event::Key(Key::Char('q'))]
        );
        assert_eq!(decode(b"\x1b[48;24;80t"), vec![Event::Resize { cols: 80, rows: 24 }]);
    }

    #[test]
    fn endless_paste_is_bounded_and_decoding_recovers() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        decoder.feed(b"\x1b[200~", &mut out);
        let junk = vec![b'x'; 16 * 1024];
        for _ in 0..8 {
            decoder.feed(&junk, &mut out);
        }
        decoder.flush(&mut out);
        out.clear();
        decoder.feed(b"q", &mut out);
        assert_eq!(out, vec![Event::Key(Key::Char('q'))]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: every byte value, in many splits and orders.
        let mut state: u32 = 0x1234_5678;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let mut fed = 0;
        for _ in 0..2000 {
            // Regression: the length used to be drawn without advancing the generator, so
            // after the first empty chunk every chunk was empty (100 bytes fed in all).
            let len = (next() % 40) as usize;
            fed += len;
            let chunk: Vec<u8> = (0..len)
                .map(|_| {
                    let state = next();
                    // Bias toward escape-sequence bytes so the parser's deep paths run.
                    match state % 5 {
                        0 => 0x1b,
                        1 => b'[',
                        2 => (state >> 8) as u8 % 64 + b'0',
                        _ => (state >> 16) as u8,
                    }
                })
                .collect();
            decoder.feed(&chunk, &mut out);
            if next().is_multiple_of(7) {
                decoder.flush(&mut out);
            }
            out.clear();
        }
        assert!(fed > 30_000, "the generator fed only {fed} bytes");
        // The guard around termina would swallow a panic: it must never have fired.
        assert_eq!(decoder.panics_caught(), 0, "termina panicked on this input");
    }
}
