//! Made-up bios for unit tests: the files in `tests/fixtures/`, which the integration tests
//! read too. No test reads the owner's content.toml except to check that it is valid, so
//! editing the bio never breaks a test.

use std::path::Path;
use std::sync::Arc;

use super::Content;

/// Three short sections (`early`, `lighthouse`, `compilers`), no links.
pub const SMALL: &str = include_str!("../../tests/fixtures/small.toml");
/// Nine sections, each long enough to scroll; each starts "TITLE part 1." and ends
/// "Chapter-N-ends.".
pub const LONG: &str = include_str!("../../tests/fixtures/long.toml");
/// Two sections and three links (https, http, mailto).
pub const LINKS: &str = include_str!("../../tests/fixtures/links.toml");
/// Wide CJK, emoji and combining accents.
pub const UNICODE: &str = include_str!("../../tests/fixtures/unicode.toml");
/// Every size at its limit (`content::limits`).
pub const MAX: &str = include_str!("../../tests/fixtures/max.toml");

/// Every fixture with its file name.
pub const ALL: [(&str, &str); 5] = [
    ("small.toml", SMALL),
    ("long.toml", LONG),
    ("links.toml", LINKS),
    ("unicode.toml", UNICODE),
    ("max.toml", MAX),
];

/// Parses a fixture (they are all valid; a test fails loudly if one is not).
pub fn parse(text: &str) -> Content {
    match super::parse_str(text, Path::new("fixture.toml")) {
        Ok(content) => content,
        Err(e) => panic!("a test fixture does not parse: {e}"),
    }
}

/// A fixture as the shared `Arc` sessions hold.
pub fn shared(text: &str) -> Arc<Content> {
    Arc::new(parse(text))
}
