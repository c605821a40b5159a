//! Word wrapping, ours (`content::text::wrap`) against the `textwrap` crate configured to wrap
//! the same way (first fit, break at spaces, long words broken): time per paragraph over every
//! paragraph of the test fixtures at 36 and 72 columns, and the cases where the two disagree.
//! Issue 14 asked to replace hand-written code with crates where they measure no worse; this is
//! the measurement behind keeping ours (BENCHMARKS.md, "Word wrapping").
//!
//! `cargo bench --bench wrap`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant};

use sshbio::content::text::wrap as ours;

/// The same wrapping through `textwrap`: runs of spaces collapsed first, as ours does.
fn textwrap_wrap(text: &str, width: usize) -> Vec<String> {
    let options = textwrap::Options::new(width.max(1))
        .break_words(true)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .wrap_algorithm(textwrap::WrapAlgorithm::FirstFit);
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    textwrap::wrap(&words.join(" "), options).into_iter().map(Cow::into_owned).collect()
}

const WIDTHS: [usize; 2] = [36, 72];
const ROUNDS: u32 = 300;

fn time(paragraphs: &[String], wrap: fn(&str, usize) -> Vec<String>) -> Duration {
    let start = Instant::now();
    let mut lines = 0;
    for _ in 0..ROUNDS {
        for p in paragraphs {
            for width in WIDTHS {
                lines += std::hint::black_box(wrap(std::hint::black_box(p), width)).len();
            }
        }
    }
    assert!(lines > 0);
    let calls = ROUNDS * u32::try_from(paragraphs.len() * WIDTHS.len()).unwrap();
    start.elapsed() / calls
}

fn main() {
    let mut paragraphs = Vec::new();
    for name in ["small", "long", "links", "unicode", "max"] {
        let content = sshbio::content::load(Path::new(&format!("tests/fixtures/{name}.toml"))).unwrap();
        paragraphs.extend(content.sections.into_iter().flat_map(|s| s.paragraphs));
    }
    let bytes: usize = paragraphs.iter().map(String::len).sum();
    println!("{} paragraphs of the fixtures ({bytes} bytes), widths {WIDTHS:?}", paragraphs.len());
    for p in &paragraphs {
        for width in WIDTHS {
            let (a, b) = (ours(p, width), textwrap_wrap(p, width));
            if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
                println!("differs at {width} columns: ours {x:?}, textwrap {y:?}");
            }
        }
    }
    for round in 1..=3 {
        let a = time(&paragraphs, ours);
        let b = time(&paragraphs, textwrap_wrap);
        println!(
            "round {round}: ours {a:?} per paragraph, textwrap {b:?} ({:.1}x)",
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
