//! The web companion page: `/` renders the bio as one self-contained, script-free HTML page (for a
//! phone where ssh is not an option) and `/bio.json` serves the `ssh host json` document. Owns the
//! HTML and its escaping; the stylesheet comes from `style`. Shows SSH facts it is handed
//! (`PageInfo`) but never touches russh, and the page must not load anything from elsewhere.

use std::fmt::{self, Display, Write as _};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use super::style::{DARK, LIGHT, STYLE};
use crate::commands;
use crate::content::Content;

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

/// Text made safe for HTML element content and quoted attribute values.
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            let (plain, tail) = rest.split_at(at);
            f.write_str(plain)?;
            let mut chars = tail.chars();
            f.write_str(match chars.next() {
                Some('&') => "&amp;",
                Some('<') => "&lt;",
                Some('>') => "&gt;",
                Some('"') => "&quot;",
                _ => "&#39;",
            })?;
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

/// `text` with `& < > " '` replaced by character references: safe in element content and in
/// single- or double-quoted attribute values.
pub fn escape(text: &str) -> String {
    Escaped(text).to_string()
}

/// Ids the page itself uses. Slugs are `[a-z0-9-]`, so an `_` keeps these apart from them.
const MAIN_ID: &str = "story_main";
const LINKS_ID: &str = "links_section";
const TERMINAL_ID: &str = "in_your_terminal";

/// Longest meta description; previews cut around here anyway.
const DESCRIPTION_CHARS: usize = 200;

/// The complete page for `content`: HTML5, inline CSS, no script, nothing loaded from elsewhere.
/// Every content and `info` string is escaped.
pub fn render_page(content: &Content, info: &PageInfo) -> String {
    let title = format!("{} · {}", content.name, content.headline);
    let description = description(content);
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail, so the fmt::Results below are ignored.
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta name=\"format-detection\" content=\"telephone=no\">\n\
         <title>{title}</title>\n\
         <meta name=\"description\" content=\"{description}\">\n\
         <meta property=\"og:type\" content=\"profile\">\n\
         <meta property=\"og:title\" content=\"{title}\">\n\
         <meta property=\"og:description\" content=\"{description}\">\n",
        title = Escaped(&title),
        description = Escaped(&description),
    );
    if let Some(url) = &info.base_url {
        let _ = write!(
            out,
            "<meta property=\"og:url\" content=\"{url}\">\n<link rel=\"canonical\" href=\"{url}\">\n",
            url = Escaped(url)
        );
    }
    let _ = write!(
        out,
        "<meta name=\"twitter:card\" content=\"summary\">\n\
         <meta name=\"twitter:title\" content=\"{title}\">\n\
         <meta name=\"twitter:description\" content=\"{description}\">\n\
         <meta name=\"theme-color\" media=\"(prefers-color-scheme: light)\" content=\"{light}\">\n\
         <meta name=\"theme-color\" media=\"(prefers-color-scheme: dark)\" content=\"{dark}\">\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"alternate\" type=\"application/json\" href=\"/bio.json\">\n\
         <style>{style}</style>\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#{MAIN_ID}\">Skip to the story</a>\n",
        title = Escaped(&title),
        description = Escaped(&description),
        light = LIGHT.bg,
        dark = DARK.bg,
        style = *STYLE,
    );

    let _ = write!(
        out,
        "<header>\n<h1>{}</h1>\n<p class=\"headline\">{}</p>\n",
        Escaped(&content.name),
        Escaped(&content.headline)
    );
    if let Some(intro) = &content.intro {
        let _ = writeln!(out, "<p class=\"intro\">{}</p>", Escaped(intro));
    }
    if !info.ssh_command.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"hint\"><a href=\"#{TERMINAL_ID}\">Also in your terminal</a>: <code>{}</code></p>",
            Escaped(&info.ssh_command)
        );
    }
    out.push_str("</header>\n");

    out.push_str("<nav aria-label=\"Sections\">\n<ol>\n");
    for section in &content.sections {
        let _ =
            writeln!(out, "<li><a href=\"#{}\">{}</a></li>", Escaped(&section.slug), Escaped(&section.title));
    }
    if !content.links.is_empty() {
        let _ = writeln!(out, "<li class=\"aside\"><a href=\"#{LINKS_ID}\">Links</a></li>");
    }
    let _ = writeln!(out, "<li class=\"aside\"><a href=\"#{TERMINAL_ID}\">In your terminal</a></li>");
    out.push_str("</ol>\n</nav>\n");

    let _ = writeln!(out, "<main id=\"{MAIN_ID}\">");
    for section in &content.sections {
        let slug = Escaped(&section.slug);
        let _ = write!(
            out,
            "<section class=\"story\" id=\"{slug}\" aria-labelledby=\"{slug}_title\">\n\
             <h2 id=\"{slug}_title\">{}</h2>\n",
            Escaped(&section.title)
        );
        for paragraph in &section.paragraphs {
            let _ = writeln!(out, "<p>{}</p>", Escaped(paragraph));
        }
        out.push_str("</section>\n");
    }
    if !content.links.is_empty() {
        let _ = write!(
            out,
            "<section class=\"links\" id=\"{LINKS_ID}\" aria-labelledby=\"{LINKS_ID}_title\">\n\
             <h2 id=\"{LINKS_ID}_title\">Links</h2>\n<ul>\n"
        );
        for link in &content.links {
            let shown = link.url.strip_prefix("mailto:").unwrap_or(&link.url);
            let _ = writeln!(
                out,
                "<li><a href=\"{}\">{}</a><span class=\"url\">{}</span></li>",
                Escaped(&link.url),
                Escaped(&link.label),
                Escaped(shown)
            );
        }
        out.push_str("</ul>\n</section>\n");
    }
    push_terminal_box(&mut out, info);
    out.push_str("</main>\n");

    let _ = write!(
        out,
        "<footer>\n<p>{name}. The same bio is served over SSH and as <a href=\"/bio.json\">JSON</a>.</p>\n\
         <p><a href=\"#top\">Back to the top</a></p>\n</footer>\n</body>\n</html>\n",
        name = Escaped(&content.name)
    );
    out
}

/// "Read it in your terminal": the command, how to check the host key, and the JSON link.
fn push_terminal_box(out: &mut String, info: &PageInfo) {
    let _ = write!(
        out,
        "<section class=\"terminal\" id=\"{TERMINAL_ID}\" aria-labelledby=\"{TERMINAL_ID}_title\">\n\
         <h2 id=\"{TERMINAL_ID}_title\">Read it in your terminal</h2>\n\
         <p>This bio is also a small terminal app you can browse with the keyboard or mouse. \
         From any computer with SSH (macOS, Linux, Windows&nbsp;10 and later), run:</p>\n"
    );
    if !info.ssh_command.is_empty() {
        let _ = writeln!(out, "<pre class=\"cmd\"><code>{}</code></pre>", Escaped(&info.ssh_command));
    }
    out.push_str("<p class=\"small\">No account, password or key: any user name works. Press <kbd>q</kbd> to leave.</p>\n");
    if !info.fingerprint.is_empty() || !info.sshfp.is_empty() {
        out.push_str("<h3>Check the host key</h3>\n");
    }
    if !info.fingerprint.is_empty() {
        let _ = write!(
            out,
            "<p>The first time you connect, ssh asks whether to trust the server's key. \
             Its fingerprint must be:</p>\n<code class=\"key\">{}</code>\n",
            Escaped(&info.fingerprint)
        );
    }
    if !info.sshfp.is_empty() {
        out.push_str(
            "<p class=\"small\">Or let ssh check it in DNS (<code>-o VerifyHostKeyDNS=yes</code>) \
             against these SSHFP records:</p>\n<pre class=\"key\">",
        );
        for (i, record) in info.sshfp.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = write!(out, "{}", Escaped(record));
        }
        out.push_str("</pre>\n");
    }
    out.push_str("<h3>For programs</h3>\n<p>The same bio as JSON: <a href=\"/bio.json\">/bio.json</a>");
    if !info.ssh_command.is_empty() {
        let _ = write!(out, " (or <code>{} json</code>)", Escaped(&info.ssh_command));
    }
    out.push_str(".</p>\n</section>\n");
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
    const HOSTILE_ESCAPED: &str =
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;onmouseover=alert(2) x=&#39;y&#39; &amp; more";

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
    fn escape_replaces_the_five_special_characters() {
        assert_eq!(escape("a & b < c > d \" e ' f"), "a &amp; b &lt; c &gt; d &quot; e &#39; f");
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
        assert!(!html.contains("'y'"), "{html}");
        // name, headline, intro, title, paragraph x2, label, url (href and shown), <title>, and
        // the meta tags all carry it escaped.
        assert!(html.matches(HOSTILE_ESCAPED).count() >= 14, "{html}");
        assert!(html.contains(&format!("<a href=\"https://example.com/?q={HOSTILE_ESCAPED}\">")));
        // Every attribute value stays inside its quotes: no raw quote leaked into a tag.
        for tag in html.split('<').skip(1) {
            let inside = tag.split('>').next().unwrap_or_default();
            assert_eq!(inside.matches('"').count() % 2, 0, "unbalanced quotes in <{inside}>");
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
