//! The content loader on any text: Ok, or an error located inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sshbio::content::{ContentError, parse_str};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_str(&text, Path::new("bio.toml")) {
        Ok(content) => assert!(!content.sections.is_empty()),
        Err(ContentError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && line <= text.lines().count() + 1, "line {line}");
            assert!(column >= 1);
        }
        Err(e) => panic!("not a located error: {e}"),
    }
});
