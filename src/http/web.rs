//! The web companion page: `/` renders the bio as one self-contained, script-free HTML page (for a
//! phone where ssh is not an option) and `/bio.json` serves the `ssh host json` document. Owns the
//! HTML: maud templates, which escape every spliced string; the stylesheet comes from `style`.
//! Shows SSH facts it is handed (`PageInfo`) but never touches russh, and the page must not load
//! anything from elsewhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, PreEscaped, html};
use tokio::sync::watch;

use super::style::{DARK, LIGHT, STYLE};
use crate::commands;
use crate::content::{Content, Link, Section};

/// What the page says about the SSH side, fixed for the life of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// The command a visitor types, e.g. `ssh bio.example.com` or `ssh -p 2222 localhost`.
    pub ssh_command: String,
    /// The host key's `SHA256:...` fingerprint, so visitors can check what ssh shows them.
    pub fingerprint: String,
    /// SSHFP DNS records for the host key (`VerifyHostKeyDNS`); may be empty.
    pub sshfp: Vec<String>,
    /// The page's public URL for `og:url` and the canonical link; `None` leaves both out.
    pub base_url: Option<String>,
}

/// `text` as maud escapes it (`& < > "` replaced by character references): safe in element content
/// and in double-quoted attribute values, the only kind the page uses.
pub fn escape(text: &str) -> String {
    html! { (text) }.into_string()
}

/// Ids the page itself uses. Slugs are `[a-z0-9-]`, so an `_` keeps these apart from them.
const MAIN_ID: &str = "story_main";
const LINKS_ID: &str = "links_section";
const TERMINAL_ID: &str = "in_your_terminal";

/// Longest meta description; previews cut around here anyway.
const DESCRIPTION_CHARS: usize = 200;

/// The complete page for `content`: HTML5, inline CSS, no script, nothing loaded from elsewhere.
/// Every content and `info` string is escaped (maud escapes every `(splice)`).
///
/// The `"\n"` literals keep one element per line in the served source, for view-source readers.
pub fn render_page(content: &Content, info: &PageInfo) -> String {
    html! {
        (PreEscaped("<!doctype html>\n"))
        html lang="en" {
            "\n" (head(content, info)) "\n"
            body {
                "\n" a.skip href={ "#" (MAIN_ID) } { "Skip to the story" } "\n"
                (page_header(content, info))
                (chapter_nav(content))
                main id=(MAIN_ID) {
                    "\n"
                    @for section in &content.sections { (story(section)) }
                    @if !content.links.is_empty() { (links(&content.links)) }
                    (terminal_box(info))
                }
                "\n" (footer(content))
            }
            "\n"
        }
        "\n"
    }
    .into_string()
}

/// `<head>`: title, the meta tags link previews read, theme colours and the inline stylesheet.
fn head(content: &Content, info: &PageInfo) -> Markup {
    let title = format!("{} · {}", content.name, content.headline);
    let description = description(content);
    html! {
        head {
            "\n" meta charset="utf-8";
            "\n" meta name="viewport" content="width=device-width, initial-scale=1";
            "\n" meta name="color-scheme" content="light dark";
            "\n" meta name="format-detection" content="telephone=no";
            "\n" title { (title) }
            "\n" meta name="description" content=(description);
            "\n" meta property="og:type" content="profile";
            "\n" meta property="og:title" content=(title);
            "\n" meta property="og:description" content=(description);
            @if let Some(url) = &info.base_url {
                "\n" meta property="og:url" content=(url);
                "\n" link rel="canonical" href=(url);
            }
            "\n" meta name="twitter:card" content="summary";
            "\n" meta name="twitter:title" content=(title);
            "\n" meta name="twitter:description" content=(description);
            "\n" meta name="theme-color" media="(prefers-color-scheme: light)" content=(LIGHT.bg);
            "\n" meta name="theme-color" media="(prefers-color-scheme: dark)" content=(DARK.bg);
            "\n" link rel="icon" href="data:,";
            "\n" link rel="alternate" type="application/json" href="/bio.json";
            // Our own CSS, not content: inserted as is (escaping would break its quotes).
            "\n" style { (PreEscaped(STYLE.as_str())) }
            "\n"
        }
    }
}

/// `<header>`: the name, the headline, the intro and a pointer to the ssh command.
fn page_header(content: &Content, info: &PageInfo) -> Markup {
    html! {
        header {
            "\n" h1 { (content.name) }
            "\n" p.headline { (content.headline) } "\n"
            @if let Some(intro) = &content.intro {
                p.intro { (intro) } "\n"
            }
            @if !info.ssh_command.is_empty() {
                p.hint {
                    a href={ "#" (TERMINAL_ID) } { "Also in your terminal" } ": " code { (info.ssh_command) }
                }
                "\n"
            }
        }
        "\n"
    }
}

/// The chapter nav: one pill per section, then the links and terminal asides.
fn chapter_nav(content: &Content) -> Markup {
    html! {
        nav aria-label="Sections" {
            "\n"
            ol {
                "\n"
                @for section in &content.sections {
                    li { a href={ "#" (section.slug) } { (section.title) } } "\n"
                }
                @if !content.links.is_empty() {
                    li.aside { a href={ "#" (LINKS_ID) } { "Links" } } "\n"
                }
                li.aside { a href={ "#" (TERMINAL_ID) } { "In your terminal" } } "\n"
            }
            "\n"
        }
        "\n"
    }
}

/// One chapter of the story: its numbered heading and paragraphs.
fn story(section: &Section) -> Markup {
    let slug = &section.slug;
    html! {
        section.story id=(slug) aria-labelledby={ (slug) "_title" } {
            "\n" h2 id={ (slug) "_title" } { (section.title) } "\n"
            @for paragraph in &section.paragraphs {
                p { (paragraph) } "\n"
            }
        }
        "\n"
    }
}

/// The links section: each label as a link with its address (without `mailto:`) below it.
fn links(links: &[Link]) -> Markup {
    html! {
        section.links id=(LINKS_ID) aria-labelledby={ (LINKS_ID) "_title" } {
            "\n" h2 id={ (LINKS_ID) "_title" } { "Links" }
            "\n"
            ul {
                "\n"
                @for link in links {
                    li {
                        a href=(link.url) { (link.label) }
                        span.url { (link.url.strip_prefix("mailto:").unwrap_or(&link.url)) }
                    }
                    "\n"
                }
            }
            "\n"
        }
        "\n"
    }
}

/// "Read it in your terminal": the command, how to check the host key, and the JSON link.
fn terminal_box(info: &PageInfo) -> Markup {
    html! {
        section.terminal id=(TERMINAL_ID) aria-labelledby={ (TERMINAL_ID) "_title" } {
            "\n" h2 id={ (TERMINAL_ID) "_title" } { "Read it in your terminal" }
            "\n"
            p {
                "This bio is also a small terminal app you can browse with the keyboard or mouse. \
                 From any computer with SSH (macOS, Linux, " (PreEscaped("Windows&nbsp;10")) " and later), run:"
            }
            "\n"
            @if !info.ssh_command.is_empty() {
                pre.cmd { code { (info.ssh_command) } } "\n"
            }
            p.small {
                "No account, password or key: any user name works. Press " kbd { "q" } " to leave."
            }
            "\n"
            (host_key(info))
            h3 { "For programs" }
            "\n"
            p {
                "The same bio as JSON: " a href="/bio.json" { "/bio.json" }
                @if !info.ssh_command.is_empty() {
                    " (or " code { (info.ssh_command) " json" } ")"
                }
                "."
            }
            "\n"
        }
        "\n"
    }
}

/// How to check the host key: its fingerprint and the SSHFP records, when there are any.
fn host_key(info: &PageInfo) -> Markup {
    html! {
        @if !info.fingerprint.is_empty() || !info.sshfp.is_empty() {
            h3 { "Check the host key" } "\n"
        }
        @if !info.fingerprint.is_empty() {
            p {
                "The first time you connect, ssh asks whether to trust the server's key. \
                 Its fingerprint must be:"
            }
            "\n" code.key { (info.fingerprint) } "\n"
        }
        @if !info.sshfp.is_empty() {
            p.small {
                "Or let ssh check it in DNS (" code { "-o VerifyHostKeyDNS=yes" } ") against these SSHFP records:"
            }
            "\n"
            pre.key {
                @for (i, record) in info.sshfp.iter().enumerate() {
                    @if i > 0 { "\n" }
                    (record)
                }
            }
            "\n"
        }
    }
}

/// The footer: the name and the way back up.
fn footer(content: &Content) -> Markup {
    html! {
        footer {
            "\n"
            p { (content.name) ". The same bio is served over SSH and as " a href="/bio.json" { "JSON" } "." }
            "\n" p { a href="#top" { "Back to the top" } }
            "\n"
        }
        "\n"
    }
}

/// The meta description: the intro, else the start of the first paragraph, else the headline.
fn description(content: &Content) -> String {
    let text = content
        .intro
        .as_deref()
        .or_else(|| content.sections.first().and_then(|s| s.paragraphs.first()).map(String::as_str))
        .unwrap_or(&content.headline);
    if text.chars().count() <= DESCRIPTION_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(DESCRIPTION_CHARS.saturating_sub(1)).collect();
    let words = cut.rfind(' ').and_then(|at| cut.get(..at)).unwrap_or(&cut);
    format!("{}…", words.trim_end_matches([',', ';', ':', '.', ' ']))
}

/// What the handlers share: the live content and the fixed page facts.
#[derive(Clone)]
struct WebState {
    /// The current bio; read on every request so live reloads show on the next page load.
    content: watch::Receiver<Arc<Content>>,
    /// The ssh command, fingerprint and URL the page shows.
    info: Arc<PageInfo>,
}

impl WebState {
    fn current(&self) -> Arc<Content> {
        // Clone the Arc and let go of the watch lock before rendering.
        Arc::clone(&self.content.borrow())
    }
}

/// `GET /` (the page) and `GET /bio.json`, rendered from the current content on every request.
pub fn router(content: watch::Receiver<Arc<Content>>, info: Arc<PageInfo>) -> Router {
    Router::new().route("/", get(page)).route("/bio.json", get(json)).with_state(WebState { content, info })
}

/// The page may not run script, load anything or be framed; inline styles and the empty
/// `data:` icon are all it needs. A second line of defence behind the escaping.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

async fn page(State(state): State<WebState>) -> Response {
    let html = render_page(&state.current(), &state.info);
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn json(State(state): State<WebState>) -> Response {
    let output = commands::run("json", &state.current());
    if output.status != 0 {
        return (StatusCode::INTERNAL_SERVER_ERROR, output.stderr).into_response();
    }
    let mut response = ([(header::CONTENT_TYPE, "application/json")], output.stdout).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The bio is public; let other sites' scripts read it.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Link, Section, fixtures};

    /// The small fixture: three sections, no links.
    fn small() -> Content {
        fixtures::parse(fixtures::SMALL)
    }

    fn info() -> PageInfo {
        PageInfo {
            ssh_command: "ssh bio.example.com".into(),
            fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into(),
            sshfp: vec!["bio.example.com. IN SSHFP 4 2 e3b0c44298fc1c149afbf4c8996fb924".into()],
            base_url: Some("https://bio.example.com/".into()),
        }
    }

    const HOSTILE: &str = "<script>alert(1)</script>\"onmouseover=alert(2) x='y' & more";
    /// maud escapes `& < > "` and leaves `'` as is: every attribute on the page is double-quoted,
    /// where a `'` cannot end the value (the old hand-written escaper also turned it into `&#39;`).
    const HOSTILE_ESCAPED: &str =
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;onmouseover=alert(2) x='y' &amp; more";

    fn hostile() -> Content {
        // Built from a fixture rather than a literal, so new Content fields need no edit here.
        let mut content = small();
        content.name = HOSTILE.into();
        content.headline = HOSTILE.into();
        content.intro = Some(HOSTILE.into());
        content.sections = vec![
            Section { title: HOSTILE.into(), slug: "one".into(), paragraphs: vec![HOSTILE.into()] },
            Section { title: "Two".into(), slug: "two".into(), paragraphs: vec!["a".into(), HOSTILE.into()] },
        ];
        content.links =
            vec![Link { label: HOSTILE.into(), url: format!("https://example.com/?q={HOSTILE}") }];
        content
    }

    /// Every value of `attr="..."` in `html`.
    fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!(" {attr}=\"");
        html.match_indices(&needle)
            .filter_map(|(at, _)| {
                let rest = html.get(at + needle.len()..)?;
                rest.get(..rest.find('"')?)
            })
            .collect()
    }

    #[test]
    fn escape_replaces_the_special_characters() {
        // `'` stays: safe in element content and in the double-quoted attributes the page uses
        // (see `no_quote_breaks_out_of_an_attribute` below for the property itself).
        assert_eq!(escape("a & b < c > d \" e ' f"), "a &amp; b &lt; c &gt; d &quot; e ' f");
        assert_eq!(escape(""), "");
        assert_eq!(escape("École — ok"), "École — ok");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(escape(HOSTILE), HOSTILE_ESCAPED);
    }

    #[test]
    fn hostile_content_is_escaped_everywhere() {
        let html = render_page(&hostile(), &info());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("\"onmouseover"), "{html}");
        // The `'y'` stays as typed (maud leaves `'` alone); the check below shows it cannot break
        // out of an attribute, which is what the old assertion on `&#39;` stood for.
        no_quote_breaks_out_of_an_attribute(&html);
        // name, headline, intro, title, paragraph x2, label, url (href and shown), <title>, and
        // the meta tags all carry it escaped.
        assert!(html.matches(HOSTILE_ESCAPED).count() >= 14, "{html}");
        assert!(html.contains(&format!("<a href=\"https://example.com/?q={HOSTILE_ESCAPED}\">")));
    }

    /// Every attribute value stays inside its double quotes: no raw `"` leaked into a tag, and
    /// outside the quoted values no tag holds a `'` (which could start a single-quoted value).
    fn no_quote_breaks_out_of_an_attribute(html: &str) {
        for tag in html.split('<').skip(1) {
            let inside = tag.split('>').next().unwrap_or_default();
            assert_eq!(inside.matches('"').count() % 2, 0, "unbalanced quotes in <{inside}>");
            let unquoted = inside.split('"').step_by(2);
            assert!(
                unquoted.clone().all(|part| !part.contains('\'')),
                "a ' outside the quotes in <{inside}>"
            );
        }
    }

    #[test]
    fn hostile_page_info_is_escaped() {
        let info = PageInfo {
            ssh_command: HOSTILE.into(),
            fingerprint: HOSTILE.into(),
            sshfp: vec![HOSTILE.into()],
            base_url: Some(HOSTILE.into()),
        };
        let html = render_page(&small(), &info);
        assert!(!html.contains("<script") && !html.contains("\"onmouseover"), "{html}");
        no_quote_breaks_out_of_an_attribute(&html);
        assert!(html.contains(&format!("<meta property=\"og:url\" content=\"{HOSTILE_ESCAPED}\">")));
        assert!(html.contains(&format!("<code>{HOSTILE_ESCAPED}</code>")));
    }

    #[test]
    fn every_section_and_link_is_on_the_page() {
        let mut content = fixtures::parse(fixtures::LONG);
        content.links = vec![
            Link { label: "Blog".into(), url: "https://example.com/blog".into() },
            Link { label: "Mail me".into(), url: "mailto:liz@example.com".into() },
        ];
        let html = render_page(&content, &info());
        assert_eq!(html.matches("<section class=\"story\"").count(), content.sections.len());
        for section in &content.sections {
            let slug = &section.slug;
            assert!(html.contains(&format!("<li><a href=\"#{slug}\">{}</a></li>", escape(&section.title))));
            assert!(html.contains(&format!(
                "<section class=\"story\" id=\"{slug}\" aria-labelledby=\"{slug}_title\">\n<h2 id=\"{slug}_title\">{}</h2>",
                escape(&section.title)
            )));
            for paragraph in &section.paragraphs {
                assert!(html.contains(&format!("<p>{}</p>", escape(paragraph))), "{paragraph}");
            }
        }
        assert!(html.contains("<a href=\"https://example.com/blog\">Blog</a>"));
        assert!(html.contains(
            "<a href=\"mailto:liz@example.com\">Mail me</a><span class=\"url\">liz@example.com</span>"
        ));
        assert!(html.contains("<li class=\"aside\"><a href=\"#links_section\">Links</a></li>"));
        // Without links there is no links section and no nav entry for it.
        let html = render_page(&small(), &info());
        assert!(!html.contains("links_section"));
    }

    #[test]
    fn page_is_semantic_html5_with_the_ssh_box() {
        let html = render_page(&small(), &info());
        assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
        assert!(html.trim_end().ends_with("</html>"));
        for tag in ["header", "nav", "main", "footer", "style", "head", "body"] {
            let opened =
                html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
            assert_eq!(opened, 1, "{tag}");
            assert_eq!(html.matches(&format!("</{tag}>")).count(), 1, "{tag}");
        }
        assert_eq!(html.matches("<section ").count(), html.matches("</section>").count());
        assert_eq!(html.matches("<h1>").count(), 1);
        assert!(html.contains("<pre class=\"cmd\"><code>ssh bio.example.com</code></pre>"));
        assert!(html.contains("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"));
        assert!(html.contains("bio.example.com. IN SSHFP 4 2 e3b0c44298fc1c149afbf4c8996fb924"));
        assert!(html.contains("<a href=\"/bio.json\">/bio.json</a>"));
        assert!(!html.contains("<script"), "the page needs no script");
        // Every id is unique and every in-page link points at one.
        let ids = attribute_values(&html, "id");
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        for target in attribute_values(&html, "href").iter().filter_map(|h| h.strip_prefix('#')) {
            assert!(target == "top" || ids.contains(&target), "#{target}");
        }
        for labelled in attribute_values(&html, "aria-labelledby") {
            assert!(ids.contains(&labelled), "{labelled}");
        }
    }

    #[test]
    fn meta_tags_for_link_previews() {
        let html = render_page(&small(), &info());
        let title = "Ada Quill · Lighthouse keeper turned compiler writer";
        let description = "A short tour of a made-up life";
        for tag in [
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">".to_string(),
            format!("<title>{title}</title>"),
            format!("<meta name=\"description\" content=\"{description}\">"),
            "<meta property=\"og:type\" content=\"profile\">".to_string(),
            format!("<meta property=\"og:title\" content=\"{title}\">"),
            format!("<meta property=\"og:description\" content=\"{description}\">"),
            "<meta property=\"og:url\" content=\"https://bio.example.com/\">".to_string(),
            "<meta name=\"twitter:card\" content=\"summary\">".to_string(),
            format!("<meta name=\"twitter:title\" content=\"{title}\">"),
            format!("<meta name=\"twitter:description\" content=\"{description}\">"),
        ] {
            assert!(html.contains(&tag), "missing {tag}");
        }
        let without_url = render_page(&small(), &PageInfo { base_url: None, ..info() });
        assert!(!without_url.contains("og:url") && !without_url.contains("canonical"));
    }

    #[test]
    fn description_falls_back_to_the_first_paragraph_cut_at_a_word() {
        let mut content = fixtures::parse(fixtures::LONG);
        content.intro = None;
        let d = description(&content);
        assert!(d.starts_with("Childhood by the estuary part 1. Tidal") && d.ends_with('…'), "{d}");
        assert!(d.chars().count() <= DESCRIPTION_CHARS, "{d}");
        let first = content.sections.first().and_then(|s| s.paragraphs.first()).cloned().unwrap_or_default();
        assert!(first.starts_with(d.trim_end_matches('…')), "{d}");
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        let mut content = small();
        content.links = vec![Link { label: "Site".into(), url: "https://example.org/".into() }];
        let html = render_page(&content, &info());
        let own: Vec<&str> = content.links.iter().map(|l| l.url.as_str()).collect();
        for attr in ["src", "href", "action", "srcset", "poster", "data"] {
            for value in attribute_values(&html, attr) {
                let local = value.starts_with('#') || value == "/bio.json" || value == "data:,";
                let preview = value == "https://bio.example.com/"; // the canonical link
                assert!(local || preview || own.contains(&value), "{attr}=\"{value}\"");
            }
        }
        assert!(!html.contains("@import") && !html.contains("url("), "no CSS fetches");
        assert!(!html.contains(" src="), "nothing embedded");
    }

    /// How long one render of the long fixture takes, for comparing implementations:
    /// `cargo test --release --lib http::web::tests::render_time -- --ignored --nocapture`.
    /// At the switch to maud (release, 2 vCPUs, 25 KB page): 15.5 µs with the hand-written
    /// `write!` renderer, 19.4 µs with the templates; a page is rendered once per HTTP request, so
    /// the difference is noise next to the request itself and the templates stay.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn render_time() {
        let mut content = fixtures::parse(fixtures::LONG);
        content.links = vec![Link { label: "Blog".into(), url: "https://example.com/blog".into() }];
        let info = info();
        let rounds = 2_000;
        let mut bytes = 0;
        for _ in 0..rounds / 10 {
            bytes += render_page(&content, &info).len(); // warm-up
        }
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            bytes += std::hint::black_box(render_page(std::hint::black_box(&content), &info)).len();
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!("render_page: {per:.1} µs per render ({} bytes)", bytes / (rounds + rounds / 10) as usize);
    }
}
