//! The crypto policy, checked by ssh-audit (from PyPI; `.ci/run` installs it). With
//! `--pq-only-kex` it reports no failures and no warnings; by default the only warnings are
//! for the X25519 key exchanges kept for clients older than OpenSSH 9.9.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use sshbio::ssh::Settings;

async fn audit(server: &TestServer) -> (i32, String) {
    assert!(have("ssh-audit"), "ssh-audit is needed: pip install ssh-audit (.ci/run does)");
    let out = tokio::process::Command::new("ssh-audit")
        .args(["--skip-rate-test", "--no-colors", "-p", &server.addr.port().to_string(), "127.0.0.1"])
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out).await.unwrap().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pq_only_policy_has_no_failures_or_warnings() {
    let settings = Settings { pq_only_kex: true, ..Settings::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    let (code, report) = audit(&server).await;
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("[fail]") && !report.contains("[warn]"), "{report}");
    assert!(report.contains("mlkem768x25519-sha256") && report.contains("ssh-ed25519"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_fails_nothing_and_warns_only_about_x25519() {
    let server = TestServer::start().await;
    let (_, report) = audit(&server).await;
    assert!(!report.contains("[fail]"), "{report}");
    let warnings: Vec<&str> = report.lines().filter(|l| l.contains("[warn]")).collect();
    assert_eq!(warnings.len(), 2, "{report}");
    for w in warnings {
        assert!(w.contains("curve25519-sha256") && w.contains("post-quantum"), "{w}");
    }
    for weak in ["sha1", "cbc", "nistp", "group14", "group1-", "ssh-rsa", "umac", "3des"] {
        let offered = report
            .lines()
            .any(|l| l.starts_with('(') && l.to_lowercase().contains(weak) && !l.starts_with("(nfo)"));
        assert!(!offered, "{weak} offered:\n{report}");
    }
}
