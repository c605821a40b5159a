//! The crypto policy, checked by ssh-audit (from PyPI; `.ci/run` installs it). With
//! `--strict-crypto --pq-only-kex` it reports no failures and no warnings; by default it reports
//! no failures, and its warnings are only about what is kept for older clients: X25519 key
//! exchange (before OpenSSH 9.9) and the plain SHA-2 MACs (libraries without ETM).
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
async fn strict_pq_only_policy_has_no_failures_or_warnings() {
    let settings = Settings { pq_only_kex: true, strict_crypto: true, ..Settings::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    let (code, report) = audit(&server).await;
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("[fail]") && !report.contains("[warn]"), "{report}");
    assert!(report.contains("mlkem768x25519-sha256") && report.contains("ssh-ed25519"));
    for dropped in ["aes128-ctr", "aes256-ctr", "(mac) hmac-sha2-256 ", "(mac) hmac-sha2-512 "] {
        assert!(!report.contains(dropped), "{dropped} offered in strict mode:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_fails_nothing_and_warns_only_about_what_older_clients_need() {
    let server = TestServer::start().await;
    let (_, report) = audit(&server).await;
    assert!(!report.contains("[fail]"), "{report}");
    for w in report.lines().filter(|l| l.contains("[warn]")) {
        let x25519 = w.contains("curve25519-sha256") && w.contains("post-quantum");
        let plain_mac = w.starts_with("(mac) hmac-sha2-") && w.contains("encrypt-and-MAC");
        assert!(x25519 || plain_mac, "unexpected warning: {w}\n{report}");
    }
    // The last-resort additions are offered, after the modern choices.
    for offered in ["(enc) aes128-ctr", "(enc) aes256-ctr", "(mac) hmac-sha2-256 ", "(mac) hmac-sha2-512 "] {
        assert!(report.contains(offered), "{offered} missing:\n{report}");
    }
    let position = |needle: &str| report.find(needle).unwrap_or(usize::MAX);
    assert!(position("(enc) chacha20-poly1305") < position("(enc) aes128-ctr"), "{report}");
    assert!(position("(mac) hmac-sha2-256-etm") < position("(mac) hmac-sha2-256 "), "{report}");
    for weak in ["sha1", "cbc", "nistp", "group14", "group1-", "ssh-rsa", "umac", "3des"] {
        let offered = report
            .lines()
            .any(|l| l.starts_with('(') && l.to_lowercase().contains(weak) && !l.starts_with("(nfo)"));
        assert!(!offered, "{weak} offered:\n{report}");
    }
}
