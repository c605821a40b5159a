//! Property tests (proptest) for the three parsers of untrusted input: the terminal input
//! decoder, the content loader and the PROXY protocol admission path. Each runs a few hundred
//! generated cases per `cargo test`; `fuzz/` has cargo-fuzz targets for long runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;
use std::path::Path;

use proptest::prelude::*;
use sshbio::content::{ContentError, parse_str};
use sshbio::server::proxy::{HeaderProgress, read_header};
use sshbio::tui::input::{Decoder, Event, Key};

use common::fixtures;

// ---- The input decoder ----

/// Whole input sequences a terminal sends, each decoding on its own to the given event.
/// (A lone Esc is left out: followed by another sequence it is an Alt prefix, by design.)
fn valid_sequences() -> Vec<(&'static [u8], Event)> {
    use Key::*;
    let key = Event::Key;
    vec![
        (b"q", key(Char('q'))),
        (b"G", key(Char('G'))),
        (b" ", key(Char(' '))),
        (b"7", key(Char('7'))),
        (b"\x1b[A", key(Up)),
        (b"\x1b[B", key(Down)),
        (b"\x1bOA", key(Up)),
        (b"\x1b[C", key(Right)),
        (b"\x1b[D", key(Left)),
        (b"\x1b[5~", key(PageUp)),
        (b"\x1b[6~", key(PageDown)),
        (b"\x1b[H", key(Home)),
        (b"\x1b[F", key(End)),
        (b"\x1b[1~", key(Home)),
        (b"\x1b[4~", key(End)),
        (b"\t", key(Tab)),
        (b"\x1b[Z", key(BackTab)),
        (b"\r", key(Enter)),
        (b"\x7f", key(Backspace)),
        (b"\x03", key(Ctrl('c'))),
        ("é".as_bytes(), key(Char('é'))),
        ("中".as_bytes(), key(Char('中'))),
        ("😀".as_bytes(), key(Char('😀'))),
        (b"\x1b[<64;10;5M", Event::Mouse(sshbio::tui::input::Mouse::ScrollUp { column: 9, row: 4 })),
        (b"\x1b[<0;3;4M", Event::Mouse(sshbio::tui::input::Mouse::Click { column: 2, row: 3 })),
        (b"\x1b[I", Event::Ignored),
        (b"\x1b[200~pasted q\x1b[201~", Event::Ignored),
    ]
}

/// Feeds `chunks` one by one, then fires the Esc timer, as a session does.
fn decode(chunks: &[&[u8]]) -> (Vec<Event>, Decoder) {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut out);
    }
    decoder.flush(&mut out);
    (out, decoder)
}

/// `bytes` cut at the given points (any order, any repeats).
fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for cut in cuts {
        chunks.push(&bytes[from..cut]);
        from = cut;
    }
    chunks.push(&bytes[from..]);
    chunks
}

/// Bytes that look like terminal input: mostly escape-sequence material, some anything.
fn terminal_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(0x1b_u8),
        3 => Just(b'['),
        2 => Just(b';'),
        1 => Just(b'<'),
        1 => Just(b'~'),
        1 => Just(b'O'),
        4 => b'0'..=b'9',
        4 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any bytes, in any split: no panic, and termina never needed the guard.
    #[test]
    fn decoder_any_bytes_never_panic(bytes in terminal_bytes(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let (_, decoder) = decode(&split_at(&bytes, &cuts));
        prop_assert_eq!(decoder.panics_caught(), 0);
    }

    /// Valid sequences give the same events however the packets split them.
    #[test]
    fn decoder_any_split_of_valid_input_gives_the_same_events(
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let table = valid_sequences();
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for pick in &picks {
            let (seq, event) = &table[pick.index(table.len())];
            bytes.extend_from_slice(seq);
            expected.push(event.clone());
        }
        let (whole, _) = decode(&[&bytes]);
        prop_assert_eq!(&whole, &expected, "fed whole: {:?}", String::from_utf8_lossy(&bytes));
        let chunks = split_at(&bytes, &cuts);
        let (split, decoder) = decode(&chunks);
        prop_assert_eq!(&split, &expected, "split as {:?}", chunks);
        prop_assert_eq!(decoder.panics_caught(), 0);
    }
}

// ---- The content loader ----

/// The error's location is inside the text (line 1..=lines+1, column >= 1) and names the file.
fn assert_located(
    text: &str,
    result: Result<sshbio::content::Content, ContentError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(ContentError::Invalid { path, line, column, message, .. }) => {
            prop_assert_eq!(path, Path::new("bio.toml"));
            prop_assert!(
                line >= 1 && line <= text.lines().count() + 1,
                "line {} of {}",
                line,
                text.lines().count()
            );
            prop_assert!(column >= 1);
            prop_assert!(!message.is_empty());
            Ok(())
        }
        Err(e @ ContentError::Read { .. }) => {
            Err(TestCaseError::fail(format!("a read error from text: {e}")))
        }
    }
}

/// Strings as an owner (or an attacker) might write them: any characters, sometimes long.
fn toml_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,40}",
        2 => any::<String>(),
        1 => (0usize..5000).prop_map(|n| "x".repeat(n)),
        1 => Just(String::new()),
        1 => Just("\u{1b}[2J\u{202e}".to_string()),
    ]
}

/// A document in the bio's shape, with any values, counts around the limits and stray keys.
fn bio_document() -> impl Strategy<Value = String> {
    let section = (
        toml_string(),
        proptest::option::of("[a-z0-9-]{0,70}"),
        proptest::collection::vec(toml_string(), 0..45),
    );
    let link = (toml_string(), prop_oneof![Just("https://example.com/".to_string()), toml_string()]);
    (
        proptest::option::of(toml_string()),
        proptest::option::of(toml_string()),
        proptest::option::of(toml_string()),
        proptest::collection::vec(section, 0..35),
        proptest::collection::vec(link, 0..18),
        proptest::option::of(any::<bool>()),
        proptest::option::of("[a-z_]{1,10}"),
    )
        .prop_map(|(name, headline, intro, sections, links, audience, stray)| {
            let q = |s: &str| toml::Value::String(s.to_string()).to_string();
            let mut doc = String::new();
            if let Some(name) = name {
                doc += &format!("name = {}\n", q(&name));
            }
            if let Some(headline) = headline {
                doc += &format!("headline = {}\n", q(&headline));
            }
            if let Some(intro) = intro {
                doc += &format!("intro = {}\n", q(&intro));
            }
            if let Some(audience) = audience {
                doc += &format!("show_audience = {audience}\n");
            }
            if let Some(stray) = stray {
                doc += &format!("{stray} = 1\n");
            }
            for (title, slug, paragraphs) in sections {
                doc += &format!("\n[[sections]]\ntitle = {}\n", q(&title));
                if let Some(slug) = slug {
                    doc += &format!("slug = {}\n", q(&slug));
                }
                let paragraphs: Vec<String> = paragraphs.iter().map(|p| q(p)).collect();
                doc += &format!("paragraphs = [{}]\n", paragraphs.join(", "));
            }
            for (label, url) in links {
                doc += &format!("\n[[links]]\nlabel = {}\nurl = {}\n", q(&label), q(&url));
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any text at all: Ok or an error located in the text, never a panic.
    #[test]
    fn loader_any_text_is_ok_or_a_located_error(text in any::<String>()) {
        assert_located(&text, parse_str(&text, Path::new("bio.toml")))?;
    }

    /// Any document in the bio's shape: Ok (and then within every limit) or a located error.
    #[test]
    fn loader_any_bio_shaped_toml_is_ok_within_limits_or_a_located_error(text in bio_document()) {
        let result = parse_str(&text, Path::new("bio.toml"));
        if let Ok(content) = &result {
            use sshbio::content::limits;
            prop_assert!(!content.sections.is_empty() && content.sections.len() <= limits::SECTIONS);
            prop_assert!(content.name.chars().count() <= limits::NAME_CHARS);
            prop_assert!(content.links.len() <= limits::LINKS);
            for section in &content.sections {
                prop_assert!(!section.paragraphs.is_empty() && section.paragraphs.len() <= limits::PARAGRAPHS);
                prop_assert!(section.paragraphs.iter().all(|p| p.chars().count() <= limits::PARAGRAPH_CHARS));
                prop_assert!(!section.title.chars().any(char::is_control));
            }
        }
        assert_located(&text, result)?;
    }

    /// A fixture with a few bytes changed: Ok or a located error.
    #[test]
    fn loader_mutated_fixtures_are_ok_or_a_located_error(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let fixture = [fixtures::SMALL, fixtures::LONG, fixtures::LINKS, fixtures::UNICODE, fixtures::MAX][which];
        let mut doc = fixture.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at.index(doc.len());
            match op {
                0 => doc[at] = byte,
                1 => { doc.remove(at); }
                _ => doc.insert(at, byte),
            }
        }
        let text = String::from_utf8_lossy(&doc);
        assert_located(&text, parse_str(&text, Path::new("bio.toml")))?;
    }
}

// ---- PROXY protocol admission ----

fn peer() -> SocketAddr {
    "10.0.0.1:5000".parse().unwrap()
}

/// A valid v1 or v2 header for a generated source address, with that address.
fn proxy_header() -> impl Strategy<Value = (Vec<u8>, SocketAddr)> {
    let v4 = (any::<[u8; 4]>(), any::<u16>(), any::<bool>());
    let v6 = (any::<[u16; 8]>(), any::<u16>(), any::<bool>());
    prop_oneof![
        v4.prop_map(|(ip, port, binary)| {
            let source = SocketAddr::from((ip, port));
            (header(source, binary), source)
        }),
        v6.prop_map(|(ip, port, binary)| {
            let source = SocketAddr::from((std::net::Ipv6Addr::from(ip), port));
            (header(source, binary), source)
        }),
    ]
}

fn header(source: SocketAddr, binary: bool) -> Vec<u8> {
    let destination: SocketAddr = match source {
        SocketAddr::V4(_) => "10.0.0.2:22".parse().unwrap(),
        SocketAddr::V6(_) => "[2001:db8::2]:22".parse().unwrap(),
    };
    if !binary {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        return format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes();
    }
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            out.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        _ => unreachable!(),
    }
    out
}

/// Feeds `chunks` the way `ClientStream::with_header` reads them: decides after each one.
fn admit(chunks: &[&[u8]]) -> (HeaderProgress, Vec<u8>) {
    let mut buf = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        match read_header(&buf, peer()) {
            HeaderProgress::NeedMore => continue,
            decided => return (decided, buf),
        }
    }
    (HeaderProgress::NeedMore, buf)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any bytes, in any split: a decision or a request for more, never a panic; a header's
    /// length never runs past the bytes read.
    #[test]
    fn proxy_any_bytes_are_decided_without_panicking(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            proxy_header().prop_flat_map(|(h, _)| {
                // A real header with a few bytes changed.
                let len = h.len();
                proptest::collection::vec((0..len, any::<u8>()), 1..4).prop_map(move |edits| {
                    let mut h = h.clone();
                    for (at, b) in edits { h[at] = b; }
                    h
                })
            }),
        ],
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let (decided, buf) = admit(&split_at(&bytes, &cuts));
        if let HeaderProgress::Header { len, .. } = decided {
            prop_assert!(len <= buf.len());
        }
    }

    /// A valid header, split anyhow and followed by the SSH version line: the right source
    /// address, and every byte after the header left for SSH.
    #[test]
    fn proxy_valid_headers_in_any_split_give_the_source_and_keep_the_rest(
        (bytes, source) in proxy_header(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let header_len = bytes.len();
        let mut stream = bytes;
        stream.extend_from_slice(b"SSH-2.0-client\r\n");
        let (decided, buf) = admit(&split_at(&stream, &cuts));
        match decided {
            HeaderProgress::Header { len, source: got } => {
                prop_assert_eq!(len, header_len);
                prop_assert_eq!(got, source);
                prop_assert!(b"SSH-2.0-client\r\n".starts_with(&buf[len..]), "the rest is SSH");
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    /// An SSH client's first bytes, or anything that is not a header, never pass as one.
    #[test]
    fn proxy_no_header_is_refused(line in "SSH-2\\.0-[ -~]{0,40}\r\n") {
        let (decided, _) = admit(&[line.as_bytes()]);
        prop_assert!(matches!(decided, HeaderProgress::Refused(_)), "{:?}", decided);
    }
}
