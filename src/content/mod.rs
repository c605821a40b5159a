//! The bio: the content.toml schema, its validation and the immutable `Content` every session
//! shares. Owns parsing and error reporting (file:line:column and key); knows nothing of SSH or
//! terminals. Every string is sanitised here, once, so no content can steer a visitor's terminal.
//!
//! Submodules: `sanitize` (which characters may reach a terminal), `text` (word wrapping by
//! display width) and `reload` (watching the file and SIGHUP). Must not import `ssh`, `tui`,
//! `server` or `http`.

pub mod reload;
pub mod sanitize;
pub mod text;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use self::text::wrap;

/// The validated bio, shared read-only by all sessions (`Arc<Content>`, swapped whole on reload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Content {
    /// The person's name: the first thing on every screen.
    pub name: String,
    /// One line under the name.
    pub headline: String,
    /// An optional short line introducing the sections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intro: Option<String>,
    /// The story, in the order the owner wrote it. Never empty.
    pub sections: Vec<Section>,
    /// Links with labels; may be empty.
    pub links: Vec<Link>,
    /// Whether screens show how many people are connected (`show_audience`, default true).
    #[serde(skip)]
    pub show_audience: bool,
}

/// One titled part of the bio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Shown in the navigation and above the text.
    pub title: String,
    /// Lower-case route name (`ssh SLUG@host`, `section SLUG`), derived from the title unless set.
    pub slug: String,
    /// The text, one string per paragraph. Never empty.
    pub paragraphs: Vec<String>,
}

/// A labelled URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// What the visitor reads (and clicks, in terminals with OSC 8 hyperlinks).
    pub label: String,
    /// Where it goes: an `https://`, `http://` or `mailto:` URL.
    pub url: String,
}

/// Why a content file was refused. The `Display` form is what the owner sees.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The file could not be read at all.
    #[error("{path}: cannot read content file: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid bio.
    #[error("{path}:{line}:{column}: {message}{}", key.as_ref().map(|k| format!(" (key `{k}`)")).unwrap_or_default())]
    Invalid {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// The key the problem is about, when known, as a dotted path.
        key: Option<String>,
        /// What is wrong, in plain words.
        message: String,
    },
}

/// The schema as written in the file, before validation. Kept apart from [`Content`] so the
/// spans needed for error messages never leak into the shared model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContent {
    name: Spanned<String>,
    headline: Spanned<String>,
    intro: Option<Spanned<String>>,
    sections: Spanned<Vec<Spanned<RawSection>>>,
    #[serde(default)]
    links: Vec<Spanned<RawLink>>,
    show_audience: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    title: Spanned<String>,
    slug: Option<Spanned<String>>,
    paragraphs: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    label: Spanned<String>,
    url: Spanned<String>,
}

/// Reads and validates the content file at `path`.
pub fn load(path: &Path) -> Result<Content, ContentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ContentError::Read { path: path.to_path_buf(), source })?;
    parse_str(&text, path)
}

/// Parses and validates content.toml text; `path` is only used in error messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Content, ContentError> {
    let invalid = |span: Option<Range<usize>>, key: Option<String>, message: String| {
        let (line, column) = line_column(text, span.map_or(0, |s| s.start));
        ContentError::Invalid { path: path.to_path_buf(), line, column, key, message }
    };
    let raw: RawContent = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        invalid(e.span(), backticked(&message), message)
    })?;

    let required = |field: &Spanned<String>, key: &str| {
        let value = sanitize::clean(field.get_ref()).trim().to_string();
        if value.is_empty() {
            Err(invalid(Some(field.span()), Some(key.into()), "must not be empty".into()))
        } else {
            Ok(value)
        }
    };

    let name = required(&raw.name, "name")?;
    let headline = required(&raw.headline, "headline")?;
    let intro = match &raw.intro {
        Some(intro) => Some(required(intro, "intro")?),
        None => None,
    };

    if raw.sections.get_ref().is_empty() {
        return Err(invalid(
            Some(raw.sections.span()),
            Some("sections".into()),
            "a bio needs at least one section".into(),
        ));
    }
    let mut sections: Vec<Section> = Vec::with_capacity(raw.sections.get_ref().len());
    for (i, raw_section) in raw.sections.get_ref().iter().enumerate() {
        let key = |field: &str| format!("sections[{i}].{field}");
        let raw_section = raw_section.get_ref();
        let title = required(&raw_section.title, &key("title"))?;
        let slug = match &raw_section.slug {
            Some(slug) => {
                let wanted = slugify(slug.get_ref());
                if wanted.is_empty() || wanted != *slug.get_ref() {
                    return Err(invalid(
                        Some(slug.span()),
                        Some(key("slug")),
                        "a slug is lower-case letters, digits and '-' only".into(),
                    ));
                }
                wanted
            }
            None => slugify(&title),
        };
        let slug_span = raw_section.slug.as_ref().map_or(raw_section.title.span(), |s| s.span());
        if slug.is_empty() {
            return Err(invalid(
                Some(slug_span),
                Some(key("title")),
                "the title has no letters or digits to make a slug from; add a `slug`".into(),
            ));
        }
        if sections.iter().any(|s| s.slug == slug) {
            return Err(invalid(
                Some(slug_span),
                Some(key("slug")),
                format!("slug `{slug}` is used by an earlier section; give this one its own `slug`"),
            ));
        }
        let paragraphs: Vec<String> = raw_section
            .paragraphs
            .get_ref()
            .iter()
            .map(|p| sanitize::clean(p).trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if paragraphs.is_empty() {
            return Err(invalid(
                Some(raw_section.paragraphs.span()),
                Some(key("paragraphs")),
                format!("section \"{title}\" is empty: give it at least one paragraph"),
            ));
        }
        sections.push(Section { title, slug, paragraphs });
    }

    let mut links = Vec::with_capacity(raw.links.len());
    for (i, raw_link) in raw.links.iter().enumerate() {
        let raw_link = raw_link.get_ref();
        let label = required(&raw_link.label, &format!("links[{i}].label"))?;
        let url = required(&raw_link.url, &format!("links[{i}].url"))?;
        let allowed = ["https://", "http://", "mailto:"];
        if !allowed.iter().any(|p| url.starts_with(p)) || url.contains(' ') {
            return Err(invalid(
                Some(raw_link.url.span()),
                Some(format!("links[{i}].url")),
                "a link URL starts with https://, http:// or mailto: and has no spaces".into(),
            ));
        }
        links.push(Link { label, url });
    }

    Ok(Content { name, headline, intro, sections, links, show_audience: raw.show_audience.unwrap_or(true) })
}

impl Content {
    /// The index of the section whose slug is `slug` (case-insensitive).
    pub fn section_index(&self, slug: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.slug.eq_ignore_ascii_case(slug))
    }

    /// The whole bio as plain UTF-8 text wrapped at `width` columns: what `ssh -T`, the `bio`
    /// command and `sshbio render` print. Contains no escape sequences (all strings are clean).
    pub fn plain_text(&self, width: usize) -> String {
        let mut out = String::new();
        let rule = |out: &mut String, ch: char, len: usize| {
            out.extend(std::iter::repeat_n(ch, len.min(width)));
            out.push('\n');
        };
        push_wrapped(&mut out, &self.name, width);
        push_wrapped(&mut out, &self.headline, width);
        rule(&mut out, '=', self.name.len().max(self.headline.len()));
        if let Some(intro) = &self.intro {
            out.push('\n');
            push_wrapped(&mut out, intro, width);
        }
        for section in &self.sections {
            out.push('\n');
            self.push_section(&mut out, section, width);
        }
        if !self.links.is_empty() {
            out.push('\n');
            out.push_str("Links\n");
            rule(&mut out, '-', 5);
            out.push_str(&self.links_text());
        }
        out
    }

    /// One section as plain text (title, underline, paragraphs), wrapped at `width`.
    pub fn section_text(&self, index: usize, width: usize) -> Option<String> {
        let section = self.sections.get(index)?;
        let mut out = String::new();
        self.push_section(&mut out, section, width);
        Some(out)
    }

    /// One `label<TAB>url` line per link.
    pub fn links_text(&self) -> String {
        self.links.iter().map(|l| format!("{}\t{}\n", l.label, l.url)).collect()
    }

    fn push_section(&self, out: &mut String, section: &Section, width: usize) {
        push_wrapped(out, &section.title, width);
        out.extend(std::iter::repeat_n('-', section.title.chars().count().min(width)));
        out.push('\n');
        for (i, paragraph) in section.paragraphs.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            push_wrapped(out, paragraph, width);
        }
    }
}

fn push_wrapped(out: &mut String, text: &str, width: usize) {
    for line in wrap(text, width) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Derives a route name from a title: lower-case ASCII letters and digits, every other run of
/// characters becomes one '-'. "Product / consumer" -> "product-consumer".
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The first `name` quoted in backticks in a serde message ("unknown field `nmae`").
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message.get(start..)?.find('`')?;
    message.get(start..start + len).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../content.toml");

    fn parse(text: &str) -> Result<Content, ContentError> {
        parse_str(text, Path::new("bio.toml"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => String::from("<parsed fine>"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shipped_content_has_every_section_of_the_seed_bio() {
        let content = parse(SHIPPED).expect("shipped content.toml parses");
        assert_eq!(content.name, "Liz Rice");
        let titles: Vec<&str> = content.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Education & internships",
                "Engineering",
                "Product / consumer",
                "Silicon Valley",
                "Startups",
                "Cloud Native Security",
                "eBPF"
            ]
        );
        let slugs: Vec<&str> = content.sections.iter().map(|s| s.slug.as_str()).collect();
        assert_eq!(
            slugs,
            [
                "education-internships",
                "engineering",
                "product-consumer",
                "silicon-valley",
                "startups",
                "cloud-native-security",
                "ebpf"
            ]
        );
        // Every paragraph of the seed, word for word.
        let startups = &content.sections[4];
        assert_eq!(startups.paragraphs.len(), 2);
        assert!(startups.paragraphs[1].starts_with("Then I joined my long-time friends Anne Currie"));
        assert!(content.sections[6].paragraphs[0].ends_with("the world's most knowledgeable eBPF experts."));
        assert!(content.links.is_empty(), "the seed bio has no links, so none are invented");
    }

    #[test]
    fn seed_paragraphs_match_the_seed_file_when_present() {
        // The seed lives outside the repository; compare when it is there (sessions and CI).
        let Ok(seed) = std::fs::read_to_string("../shared/seed/bio.txt") else { return };
        let content = parse(SHIPPED).expect("parses");
        for section in &content.sections {
            assert!(seed.contains(&section.title), "{}", section.title);
            for p in &section.paragraphs {
                assert!(seed.contains(p.as_str()), "paragraph not in seed: {p}");
            }
        }
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let e = error("name = \"A\"\nheadline = \"B\"\nsections = [\n");
        assert!(e.starts_with("bio.toml:4:1:") || e.starts_with("bio.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_key_names_the_key_and_its_line() {
        let text = "name = \"A\"\nheadline = \"B\"\nnmae = \"C\"\n[[sections]]\ntitle = \"T\"\nparagraphs = [\"p\"]\n";
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
    fn plain_text_is_wrapped_and_complete() {
        let content = parse(SHIPPED).expect("parses");
        let text = content.plain_text(80);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
        for section in &content.sections {
            assert!(text.contains(&section.title));
        }
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_loader() {
        // Deterministic pseudo-random documents: raw bytes, and mutations of the shipped file.
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
        let shipped = SHIPPED.as_bytes();
        for _ in 0..500 {
            let mut doc = shipped.to_vec();
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
}
