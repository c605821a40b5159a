//! A panic in one visitor's session ends that session alone. Needs the test-only trigger
//! (cargo feature `test-panic`: the user name `sshbio-test-panic` panics after the first
//! frame), so without that feature this file compiles to nothing (`cargo test` runs 0 tests
//! here) and `.ci/run` runs it as `cargo test --features test-panic --test panic`. (A
//! `[[test]]` entry with `required-features` would do the same, but every explicit target must
//! then be stubbed in the Dockerfile's dependency layer.)
#![cfg(feature = "test-panic")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;

#[tokio::test]
async fn a_panic_in_one_session_ends_only_that_session() {
    let metrics = std::sync::Arc::new(sshbio::metrics::Metrics::new());
    let server = TestServer::start_with(Options { metrics: metrics.clone(), ..Options::default() }).await;
    let conn = connect(server.addr, "visitor").await;
    let mut bystander = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    let victim_conn = connect(server.addr, "sshbio-test-panic").await;
    let mut victim = open_tui(&victim_conn, "xterm-256color", 80, 24, &[]).await;
    assert_eq!(victim.wait_close().await, Some(1));
    assert!(!victim.vt.screen().alternate_screen(), "terminal restored after the panic");
    assert!(victim.text().contains("something went wrong"), "{}", victim.text());
    // The bystander's session still answers, and new visitors still get in.
    bystander.press(b"2", &top(2)).await;
    let conn = connect(server.addr, "newcomer").await;
    let screen = open_tui(&conn, "xterm-256color", 80, 24, &[]).await;
    assert!(screen.text().contains(&top(1)));
    disconnect(conn).await;
}
