//! Unit tests of loading and validating content.toml: the schema, the limits, and errors that
//! name file, line, column and key.

use super::*;

use super::fixtures;

fn parse(text: &str) -> Result<Content, ContentError> {
    parse_str(text, Path::new("bio.toml"))
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => String::from("<parsed fine>"),
        Err(e) => e.to_string(),
    }
}

/// The only test that reads the owner's file: it must be valid, as `sshbio check` says.
/// What it says is the owner's business, so nothing else about it is checked.
#[test]
fn the_shipped_content_toml_is_valid() {
    let shipped = include_str!("../../content.toml");
    if let Err(e) = parse_str(shipped, Path::new("content.toml")) {
        panic!("content.toml is not valid: {e}");
    }
}

#[test]
fn every_fixture_parses_with_its_sections_and_slugs() {
    for (name, text) in fixtures::ALL {
        let content = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!content.sections.is_empty(), "{name}");
    }
    let small = fixtures::parse(fixtures::SMALL);
    assert_eq!(small.name, "Ada Quill");
    let slugs: Vec<&str> = small.sections.iter().map(|s| s.slug.as_str()).collect();
    assert_eq!(slugs, ["early", "lighthouse", "compilers"]);
    let long = fixtures::parse(fixtures::LONG);
    assert_eq!(long.sections.len(), 9);
    assert_eq!(long.sections[0].slug, "childhood-by-the-estuary", "derived from the title");
    assert_eq!(fixtures::parse(fixtures::LINKS).links.len(), 3);
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let e = error("name = \"A\"\nheadline = \"B\"\nsections = [\n");
    assert!(e.starts_with("bio.toml:4:1:") || e.starts_with("bio.toml:3:"), "{e}");
}

#[test]
fn unknown_key_names_the_key_and_its_line() {
    let text =
        "name = \"A\"\nheadline = \"B\"\nnmae = \"C\"\n[[sections]]\ntitle = \"T\"\nparagraphs = [\"p\"]\n";
    let e = error(text);
    assert!(e.starts_with("bio.toml:3:1:"), "{e}");
    assert!(e.contains("unknown field `nmae`") && e.contains("(key `nmae`)"), "{e}");
}

#[test]
fn missing_key_is_named() {
    let e = error("name = \"A\"\n[[sections]]\ntitle = \"T\"\nparagraphs = [\"p\"]\n");
    assert!(e.starts_with("bio.toml:1:1:"), "{e}");
    assert!(e.contains("missing field `headline`"), "{e}");
}

#[test]
fn empty_section_names_its_paragraphs_key_and_line() {
    let text = "name = \"A\"\nheadline = \"B\"\n[[sections]]\ntitle = \"One\"\nparagraphs = [\"p\"]\n[[sections]]\ntitle = \"Two\"\nparagraphs = [\"  \"]\n";
    let e = error(text);
    assert!(e.starts_with("bio.toml:8:14:"), "{e}");
    assert!(e.contains("sections[1].paragraphs") && e.contains("\"Two\" is empty"), "{e}");
}

#[test]
fn wrong_type_and_bad_url_and_duplicate_slug_are_refused() {
    assert!(error("name = 3\nheadline = \"B\"\nsections = []\n").starts_with("bio.toml:1:8:"));
    let text = "name = \"A\"\nheadline = \"B\"\n[[sections]]\ntitle = \"T\"\nparagraphs = [\"p\"]\n[[links]]\nlabel = \"x\"\nurl = \"javascript:alert(1)\"\n";
    assert!(error(text).contains("links[0].url"));
    let dup = "name = \"A\"\nheadline = \"B\"\n[[sections]]\ntitle = \"T!\"\nparagraphs = [\"p\"]\n[[sections]]\ntitle = \"t\"\nparagraphs = [\"p\"]\n";
    assert!(error(dup).contains("slug `t` is used"), "{}", error(dup));
    assert!(error("name = \"A\"\nheadline = \"B\"\nsections = []\n").contains("at least one section"));
}

#[test]
fn hostile_content_is_sanitised_at_load() {
    let text = "name = \"A\\u001b]52;c;eA==\\u0007\"\nheadline = \"B\\u202e\"\n[[sections]]\ntitle = \"T\"\nparagraphs = [\"\\u001b[2Jp\"]\n";
    let c = parse(text).expect("parses");
    assert_eq!(c.name, "A]52;c;eA==");
    assert_eq!(c.headline, "B");
    assert_eq!(c.sections[0].paragraphs[0], "[2Jp");
}

#[test]
fn plain_text_underlines_match_the_width_on_screen_and_links_line_up() {
    let width = |s: &str| unicode_width::UnicodeWidthStr::width(s);
    let content = fixtures::parse(fixtures::UNICODE);
    let plain = content.plain_text(80);
    let lines: Vec<&str> = plain.lines().collect();
    // Name, headline, then a rule as wide as the wider of the two.
    let [name, headline, rule, ..] = lines.as_slice() else { panic!("{plain}") };
    assert_eq!(rule.len(), width(name).max(width(headline)), "{plain}");
    assert!(rule.chars().all(|c| c == '='), "{plain}");
    // Every title's rule is as wide as the title (CJK is two columns a character).
    for section in &content.sections {
        let rule = "-".repeat(width(&section.title));
        assert!(plain.contains(&format!("{}\n{rule}\n", section.title)), "{}:\n{plain}", section.title);
    }
    let links = fixtures::parse(fixtures::LINKS).plain_text(80);
    let links = links.split("\nLinks\n-----\n").nth(1).unwrap_or_default();
    assert!(!links.contains('\t'), "{links}");
    let starts: Vec<usize> =
        links.lines().filter_map(|l| l.find("http").or_else(|| l.find("mailto:"))).collect();
    assert_eq!(starts.len(), 3, "{links}");
    assert!(starts.iter().all(|s| Some(s) == starts.first()), "URLs start in one column:\n{links}");
}

#[test]
fn plain_text_is_wrapped_and_complete() {
    for (name, text) in fixtures::ALL {
        let content = fixtures::parse(text);
        for width in [40, 80] {
            let plain = content.plain_text(width);
            // Links are `label  url` lines, kept whole so they can be copied.
            let story = plain.split("\nLinks\n").next().unwrap_or_default();
            for line in story.lines() {
                let columns = unicode_width::UnicodeWidthStr::width(line);
                assert!(columns <= width, "{name} at {width}: {line}");
            }
            let words: String = plain.split_whitespace().collect();
            for section in &content.sections {
                // Every word of every paragraph, in order, whatever the wrapping did.
                for paragraph in &section.paragraphs {
                    let paragraph: String = paragraph.split_whitespace().collect();
                    assert!(words.contains(&paragraph), "{name}: {paragraph}");
                }
            }
            assert!(!plain.contains('\x1b'));
        }
    }
}

#[test]
fn the_max_fixture_is_at_every_limit_and_accepted() {
    let c = fixtures::parse(fixtures::MAX);
    let chars = |s: &str| s.chars().count();
    assert_eq!(chars(&c.name), limits::NAME_CHARS);
    assert_eq!(chars(&c.headline), limits::HEADLINE_CHARS);
    assert_eq!(c.intro.as_deref().map(chars), Some(limits::INTRO_CHARS));
    assert_eq!(c.sections.len(), limits::SECTIONS);
    assert!(c.sections.iter().all(|s| chars(&s.title) == limits::TITLE_CHARS));
    assert!(c.sections.iter().all(|s| chars(&s.slug) == limits::SLUG_CHARS));
    assert_eq!(c.sections[0].paragraphs.len(), limits::PARAGRAPHS);
    assert_eq!(chars(&c.sections[0].paragraphs[0]), limits::PARAGRAPH_CHARS);
    assert_eq!(c.links.len(), limits::LINKS);
    assert!(c.links.iter().all(|l| chars(&l.label) == limits::LABEL_CHARS));
    assert!(c.links.iter().all(|l| chars(&l.url) == limits::URL_CHARS));
    assert!(fixtures::MAX.len() <= limits::FILE_BYTES);
}

/// One more of anything than the max fixture holds is refused, naming the key and its line.
#[test]
fn one_past_any_limit_is_refused_with_the_key_and_line() {
    let max = fixtures::MAX;
    let line_of = |needle: &str| {
        max.get(..max.find(needle).expect("in max.toml")).map_or(0, |b| b.matches('\n').count()) + 1
    };
    let cases: Vec<(String, &str, usize)> = vec![
        (max.replacen("name = \"", "name = \"N", 1), "(key `name`)", line_of("name = ")),
        (max.replacen("headline = \"", "headline = \"H", 1), "(key `headline`)", line_of("headline = ")),
        (max.replacen("intro = \"", "intro = \"I", 1), "(key `intro`)", line_of("intro = ")),
        (max.replacen("title = \"", "title = \"T", 1), "(key `sections[0].title`)", line_of("title = ")),
        (max.replacen("slug = \"s01-", "slug = \"s01-x", 1), "(key `sections[0].slug`)", line_of("slug = ")),
        (
            max.replacen("\"Longest paragraph", "\"LLongest paragraph", 1),
            "(key `sections[0].paragraphs[0]`)",
            line_of("\"Longest paragraph"),
        ),
        (
            max.replacen("  \"Paragraph 02", "  \"one more\",\n  \"Paragraph 02", 1),
            "(key `sections[0].paragraphs`)",
            line_of("  \"Paragraph 40") + 1,
        ),
        (max.replacen("label = \"", "label = \"L", 1), "(key `links[0].label`)", line_of("label = ")),
        (max.replacen("url = \"https://", "url = \"https://a", 1), "(key `links[0].url`)", line_of("url = ")),
        (
            max.replacen(
                "[[links]]",
                "[[sections]]\ntitle = \"extra\"\nparagraphs = [\"p\"]\n\n[[links]]",
                1,
            ),
            "(key `sections`)",
            line_of("[[links]]"),
        ),
        (
            format!("{max}\n[[links]]\nlabel = \"extra\"\nurl = \"https://example.com/\"\n"),
            "(key `links`)",
            max.lines().count() + 2,
        ),
    ];
    for (text, key, line) in cases {
        let e = error(&text);
        assert!(e.starts_with(&format!("bio.toml:{line}:")), "want line {line} for {key}: {e}");
        assert!(e.ends_with(key), "{e}");
    }
    // A file over the size limit is refused where the limit is passed, before parsing.
    let huge = format!("{max}\n# {}\n", "x".repeat(limits::FILE_BYTES));
    let e = error(&huge);
    assert!(e.starts_with("bio.toml:") && e.contains("longer than 256 KiB"), "{e}");
}

#[test]
fn load_refuses_a_huge_file_without_reading_it_all() {
    let path = std::env::temp_dir().join(format!("sshbio-huge-{}.toml", std::process::id()));
    let huge = format!("{}\n# {}\n", fixtures::SMALL, "é".repeat(limits::FILE_BYTES));
    std::fs::write(&path, huge).expect("write");
    let e = load(&path).map(|_| ()).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&path);
    let e = e.expect_err("refused");
    assert!(e.contains("longer than 256 KiB"), "{e}");
}

#[test]
fn arbitrary_bytes_never_panic_the_loader() {
    // Deterministic pseudo-random documents: raw bytes, and mutations of the fixtures.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..500 {
        let len = (next() % 400) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| (next() >> 24) as u8).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
    for _ in 0..500 {
        let (_, fixture) = fixtures::ALL[(next() % 5) as usize];
        let mut doc = fixture.as_bytes().to_vec();
        for _ in 0..1 + next() % 8 {
            let at = (next() as usize) % doc.len();
            match next() % 3 {
                0 => doc[at] = (next() >> 16) as u8,
                1 => {
                    doc.remove(at);
                }
                _ => doc.insert(at, b'"'),
            }
        }
        if let Err(e) = parse(&String::from_utf8_lossy(&doc)) {
            assert!(e.to_string().starts_with("bio.toml:"), "{e}");
        }
    }
}

#[test]
fn slugs() {
    assert_eq!(slugify("Education & internships"), "education-internships");
    assert_eq!(slugify("  eBPF!! "), "ebpf");
    assert_eq!(slugify("日本"), "");
}
