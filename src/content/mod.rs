//! The bio: the content.toml schema, its validation and the immutable `Content` every session
//! shares. Owns parsing and error reporting (file:line:column and key); knows nothing of SSH or
//! terminals. Every string is sanitised here, once, so no content can steer a visitor's terminal.
//!
//! Submodules: `sanitize` (which characters may reach a terminal), `text` (word wrapping by
//! display width) and `reload` (watching the file and SIGHUP). Must not import `ssh`, `tui`,
//! `server` or `http`.

#[cfg(test)]
pub(crate) mod fixtures;
pub mod reload;
pub mod sanitize;
pub mod text;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;
use unicode_width::UnicodeWidthStr;

use self::text::wrap;

/// The largest bio a server accepts. A bio is read by people on a phone in a conference room;
/// past these sizes a file is a mistake (a pasted log, a runaway script) or an attack on memory
/// (every session and every cached frame holds the content). Each is checked with a located
/// error, so the owner learns which key to shorten. Lengths are in characters, after sanitising.
pub mod limits {
    /// The whole file, in bytes (the shipped bio is about 4 KiB).
    pub const FILE_BYTES: usize = 256 * 1024;
    /// `name`: one line on every screen.
    pub const NAME_CHARS: usize = 80;
    /// `headline`: one line under the name.
    pub const HEADLINE_CHARS: usize = 160;
    /// `intro`: a short line before the sections.
    pub const INTRO_CHARS: usize = 400;
    /// `[[sections]]` in a bio.
    pub const SECTIONS: usize = 32;
    /// A section's `title`: one line in the navigation.
    pub const TITLE_CHARS: usize = 60;
    /// A section's `slug` (it is also an SSH user name).
    pub const SLUG_CHARS: usize = 60;
    /// `paragraphs` in one section.
    pub const PARAGRAPHS: usize = 40;
    /// One paragraph.
    pub const PARAGRAPH_CHARS: usize = 4000;
    /// `[[links]]` in a bio.
    pub const LINKS: usize = 16;
    /// A link's `label`.
    pub const LABEL_CHARS: usize = 60;
    /// A link's `url`.
    pub const URL_CHARS: usize = 500;
}

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
    paragraphs: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    label: Spanned<String>,
    url: Spanned<String>,
}

/// Reads and validates the content file at `path`. Reads at most one byte past
/// [`limits::FILE_BYTES`], so a huge file is refused without being held in memory.
pub fn load(path: &Path) -> Result<Content, ContentError> {
    use std::io::Read;
    let read_error = |source| ContentError::Read { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(limits::FILE_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap).read_to_end(&mut bytes).map_err(read_error)?;
    match String::from_utf8(bytes) {
        Ok(text) => parse_str(&text, path),
        // Past the limit, the cut may fall inside a character: the size is the error to report.
        Err(e) if e.as_bytes().len() > limits::FILE_BYTES => {
            parse_str(&String::from_utf8_lossy(e.as_bytes()), path)
        }
        Err(e) => Err(read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

/// Parses and validates content.toml text; `path` is only used in error messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Content, ContentError> {
    let check = Validator { text, path };
    if text.len() > limits::FILE_BYTES {
        // Located where the limit is passed, before any parsing work on a huge input.
        let at = limits::FILE_BYTES;
        let kib = limits::FILE_BYTES / 1024;
        return Err(check.invalid(
            Some(at..at),
            None,
            format!("the file is longer than {kib} KiB; a bio is much shorter"),
        ));
    }
    let raw: RawContent = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        check.invalid(e.span(), backticked(&message), message)
    })?;
    let name = check.required(&raw.name, "name", limits::NAME_CHARS)?;
    let headline = check.required(&raw.headline, "headline", limits::HEADLINE_CHARS)?;
    let intro = match &raw.intro {
        Some(intro) => Some(check.required(intro, "intro", limits::INTRO_CHARS)?),
        None => None,
    };
    let sections = check.sections(&raw.sections)?;
    let links = check.links(&raw.links)?;
    Ok(Content { name, headline, intro, sections, links, show_audience: raw.show_audience.unwrap_or(true) })
}

/// The checks of one file, each error located (file, line, column and key) in `text`.
struct Validator<'a> {
    /// The whole file, to turn byte offsets into lines and columns.
    text: &'a str,
    /// The file's name, for the messages.
    path: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, span: Option<Range<usize>>, key: Option<String>, message: String) -> ContentError {
        let (line, column) = line_column(self.text, span.map_or(0, |s| s.start));
        ContentError::Invalid { path: self.path.to_path_buf(), line, column, key, message }
    }

    fn too_long(&self, span: Range<usize>, key: &str, value: &str, max: usize) -> Result<(), ContentError> {
        let chars = value.chars().count();
        if chars > max {
            return Err(self.invalid(
                Some(span),
                Some(key.into()),
                format!("is {chars} characters long; at most {max} fit"),
            ));
        }
        Ok(())
    }

    /// At most `max` items; the error points at the first one too many.
    fn at_most<T>(
        &self,
        items: &[Spanned<T>],
        key: &str,
        max: usize,
        what: &str,
    ) -> Result<(), ContentError> {
        match items.get(max) {
            Some(first_extra) => Err(self.invalid(
                Some(first_extra.span()),
                Some(key.into()),
                format!("has {} {what}; at most {max} are allowed", items.len()),
            )),
            None => Ok(()),
        }
    }

    /// A sanitised, trimmed, non-empty string of at most `max` characters.
    fn required(&self, field: &Spanned<String>, key: &str, max: usize) -> Result<String, ContentError> {
        let value = sanitize::clean(field.get_ref()).trim().to_string();
        if value.is_empty() {
            return Err(self.invalid(Some(field.span()), Some(key.into()), "must not be empty".into()));
        }
        self.too_long(field.span(), key, &value, max)?;
        Ok(value)
    }

    fn sections(&self, raw: &Spanned<Vec<Spanned<RawSection>>>) -> Result<Vec<Section>, ContentError> {
        if raw.get_ref().is_empty() {
            let message = "a bio needs at least one section".into();
            return Err(self.invalid(Some(raw.span()), Some("sections".into()), message));
        }
        self.at_most(raw.get_ref(), "sections", limits::SECTIONS, "sections")?;
        let mut sections: Vec<Section> = Vec::with_capacity(raw.get_ref().len());
        for (i, raw_section) in raw.get_ref().iter().enumerate() {
            let section = self.section(i, raw_section.get_ref())?;
            if sections.iter().any(|s| s.slug == section.slug) {
                let raw_section = raw_section.get_ref();
                let span = raw_section.slug.as_ref().map_or(raw_section.title.span(), |s| s.span());
                let message = format!(
                    "slug `{}` is used by an earlier section; give this one its own `slug`",
                    section.slug
                );
                return Err(self.invalid(Some(span), Some(format!("sections[{i}].slug")), message));
            }
            sections.push(section);
        }
        Ok(sections)
    }

    fn section(&self, i: usize, raw: &RawSection) -> Result<Section, ContentError> {
        let key = |field: &str| format!("sections[{i}].{field}");
        let title = self.required(&raw.title, &key("title"), limits::TITLE_CHARS)?;
        let slug = match &raw.slug {
            Some(slug) => {
                let wanted = slugify(slug.get_ref());
                if wanted.is_empty() || wanted != *slug.get_ref() {
                    let message = "a slug is lower-case letters, digits and '-' only".into();
                    return Err(self.invalid(Some(slug.span()), Some(key("slug")), message));
                }
                self.too_long(slug.span(), &key("slug"), &wanted, limits::SLUG_CHARS)?;
                wanted
            }
            None => slugify(&title),
        };
        if slug.is_empty() {
            let message = "the title has no letters or digits to make a slug from; add a `slug`".into();
            return Err(self.invalid(Some(raw.title.span()), Some(key("title")), message));
        }
        let paragraphs = self.paragraphs(i, raw.paragraphs.get_ref())?;
        if paragraphs.is_empty() {
            let message = format!("section \"{title}\" is empty: give it at least one paragraph");
            return Err(self.invalid(Some(raw.paragraphs.span()), Some(key("paragraphs")), message));
        }
        Ok(Section { title, slug, paragraphs })
    }

    /// Sanitised paragraphs of section `i`; empty ones are dropped.
    fn paragraphs(&self, i: usize, raw: &[Spanned<String>]) -> Result<Vec<String>, ContentError> {
        self.at_most(raw, &format!("sections[{i}].paragraphs"), limits::PARAGRAPHS, "paragraphs")?;
        let mut paragraphs = Vec::with_capacity(raw.len());
        for (j, raw_paragraph) in raw.iter().enumerate() {
            let paragraph = sanitize::clean(raw_paragraph.get_ref()).trim().to_string();
            let key = format!("sections[{i}].paragraphs[{j}]");
            self.too_long(raw_paragraph.span(), &key, &paragraph, limits::PARAGRAPH_CHARS)?;
            if !paragraph.is_empty() {
                paragraphs.push(paragraph);
            }
        }
        Ok(paragraphs)
    }

    fn links(&self, raw: &[Spanned<RawLink>]) -> Result<Vec<Link>, ContentError> {
        self.at_most(raw, "links", limits::LINKS, "links")?;
        let mut links = Vec::with_capacity(raw.len());
        for (i, raw_link) in raw.iter().enumerate() {
            let raw_link = raw_link.get_ref();
            let label = self.required(&raw_link.label, &format!("links[{i}].label"), limits::LABEL_CHARS)?;
            let url = self.required(&raw_link.url, &format!("links[{i}].url"), limits::URL_CHARS)?;
            let allowed = ["https://", "http://", "mailto:"];
            if !allowed.iter().any(|p| url.starts_with(p)) || url.contains(' ') {
                let message = "a link URL starts with https://, http:// or mailto: and has no spaces".into();
                return Err(self.invalid(
                    Some(raw_link.url.span()),
                    Some(format!("links[{i}].url")),
                    message,
                ));
            }
            links.push(Link { label, url });
        }
        Ok(links)
    }
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
        rule(&mut out, '=', self.name.width().max(self.headline.width()));
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
            // Labels padded to one column, for people; `links` keeps tabs, for scripts.
            let column = self.links.iter().map(|l| l.label.width()).max().unwrap_or(0) + 2;
            for link in &self.links {
                let pad = column - link.label.width();
                out.push_str(&format!("{}{:pad$}{}\n", link.label, "", link.url));
            }
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
        out.extend(std::iter::repeat_n('-', section.title.width().min(width)));
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
mod tests;
