//! `ssh host COMMAND`: the commands a visitor can run without a terminal, and their output.
//! Pure: takes the command line and the content, returns what to print and the exit status;
//! the ssh layer writes it. Output never contains escape sequences (content is clean).

use serde::Serialize;

use crate::content::Content;

/// Width plain text is wrapped at when there is no terminal to ask.
pub const PLAIN_WIDTH: usize = 80;

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Goes to the channel's standard output.
    pub stdout: String,
    /// Goes to standard error (SSH extended data type 1).
    pub stderr: String,
    /// The exit status the client's `ssh` returns.
    pub status: u32,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Self { stdout, stderr: String::new(), status: 0 }
    }

    fn usage_error(message: &str) -> Self {
        Self { stdout: String::new(), stderr: format!("sshbio: {message}\n\n{}", usage()), status: 2 }
    }
}

/// The list of commands, as `help` prints it and errors repeat it.
pub fn usage() -> String {
    [
        "usage: ssh HOST [COMMAND]",
        "",
        "With a terminal and no command: the interactive bio; without one (ssh -T): the bio as",
        "plain text. A section's slug as the user name (ssh SLUG@HOST) opens that section.",
        "Commands:",
        "  help            this list",
        "  bio             the whole bio as plain text",
        "  json            the bio as JSON (schema version 1)",
        "  section NAME    one section's text; NAME is its slug (see `sections`)",
        "  sections        the section slugs, one per line, with their titles",
        "  links           one `label<TAB>url` line per link",
        "",
    ]
    .join("\n")
}

/// The stable JSON shape of `ssh host json` (documented in README.md).
#[derive(Serialize)]
struct JsonBio<'a> {
    /// Bumped only when a field changes meaning or disappears.
    schema: u32,
    #[serde(flatten)]
    content: &'a Content,
}

/// Runs one exec request's command line against `content`.
pub fn run(command_line: &str, content: &Content) -> Output {
    let mut words = command_line.split_whitespace();
    let Some(command) = words.next() else {
        return Output::ok(content.plain_text(PLAIN_WIDTH));
    };
    let args: Vec<&str> = words.collect();
    match (command.to_ascii_lowercase().as_str(), args.as_slice()) {
        ("help" | "--help" | "-h", []) => Output::ok(usage()),
        ("bio", []) => Output::ok(content.plain_text(PLAIN_WIDTH)),
        ("json", []) => match serde_json::to_string_pretty(&JsonBio { schema: 1, content }) {
            Ok(json) => Output::ok(json + "\n"),
            Err(e) => Output { stdout: String::new(), stderr: format!("sshbio: {e}\n"), status: 1 },
        },
        ("links", []) => Output::ok(content.links_text()),
        ("sections", []) => {
            Output::ok(content.sections.iter().map(|s| format!("{}\t{}\n", s.slug, s.title)).collect())
        }
        ("section", [name]) => match content.section_index(name) {
            Some(i) => Output::ok(content.section_text(i, PLAIN_WIDTH).unwrap_or_default()),
            None => {
                let slugs: Vec<&str> = content.sections.iter().map(|s| s.slug.as_str()).collect();
                Output::usage_error(&format!(
                    "no section named `{}` (sections: {})",
                    crate::content::sanitize::clean_short(name, 64),
                    slugs.join(", ")
                ))
            }
        },
        ("section", _) => Output::usage_error("`section` takes one NAME"),
        (_, _) => Output::usage_error(&format!(
            "unknown command `{}`",
            crate::content::sanitize::clean_short(command_line, 64)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::fixtures;

    /// The small fixture (sections `early`, `lighthouse`, `compilers`) plus one link.
    fn content() -> Content {
        let mut c = fixtures::parse(fixtures::SMALL);
        c.links.push(crate::content::Link { label: "Site".into(), url: "https://example.com".into() });
        c
    }

    #[test]
    fn commands_produce_their_output() {
        let c = content();
        assert!(run("help", &c).stdout.contains("section NAME"));
        assert!(run("bio", &c).stdout.contains("The lighthouse"));
        assert_eq!(run("links", &c).stdout, "Site\thttps://example.com\n");
        let section = run("section LIGHTHOUSE", &c);
        assert_eq!(section.status, 0);
        assert!(
            section.stdout.starts_with("The lighthouse\n--------------\nFor six winters"),
            "{}",
            section.stdout
        );
        assert_eq!(
            run("sections", &c).stdout,
            "early\tEarly days\nlighthouse\tThe lighthouse\ncompilers\tCompilers\n"
        );
    }

    #[test]
    fn json_has_a_stable_shape() {
        let out = run("json", &content());
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid json");
        assert_eq!(v["schema"], 1);
        assert_eq!(v["name"], "Ada Quill");
        assert_eq!(v["sections"][2]["slug"], "compilers");
        assert!(v["sections"][0]["paragraphs"][0].as_str().is_some());
        assert_eq!(v["links"][0]["url"], "https://example.com");
    }

    #[test]
    fn unknown_command_or_section_is_an_error_with_usage() {
        let c = content();
        for line in ["rm -rf /", "section nope", "section", "bio extra"] {
            let out = run(line, &c);
            assert_ne!(out.status, 0, "{line}");
            assert!(out.stdout.is_empty());
            assert!(out.stderr.starts_with("sshbio: ") && out.stderr.contains("usage:"), "{line}");
        }
        assert!(!run("\x1b]52;c;x\x07", &c).stderr.contains('\x1b'));
    }
}
