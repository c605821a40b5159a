//! Load generator placeholder; replaced by the benchmark work (issue 6).
fn main() {}
