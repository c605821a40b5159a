//! The crypto policy, checked by ssh-audit (from PyPI; `.ci/run` installs it). The assertions
//! are the policy itself (which algorithms are offered, in which order, and that nothing fails),
//! not a count of ssh-audit's warnings, which changes with its version. With
//! `--strict-crypto --pq-only-kex` it reports nothing at all; by default no failures, and
//! warnings only about what is kept for older clients: X25519 key exchange (before OpenSSH 9.9)
//! and the CTR ciphers and plain SHA-2 MACs (libssh2 before 1.11, paramiko before 3.5).
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

/// The algorithm names ssh-audit lists under `(kind)`, in the server's order.
fn offered<'a>(report: &'a str, kind: &str) -> Vec<&'a str> {
    let prefix = format!("({kind}) ");
    report
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// Lines of `report` that carry `[fail]`, or `[warn]` about an algorithm not in `may_warn`.
fn problems<'a>(report: &'a str, may_warn: &[&str]) -> Vec<&'a str> {
    let mut current = "";
    let mut out = Vec::new();
    for line in report.lines() {
        if line.starts_with('(') {
            current = line.split_whitespace().nth(1).unwrap_or("");
        }
        let warn_allowed = may_warn.contains(&current);
        if line.contains("[fail]") || (line.contains("[warn]") && !warn_allowed) {
            out.push(line);
        }
    }
    out
}

/// The modern ciphers and MACs, in the server's order of preference.
const MODERN_ENC: [&str; 3] =
    ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com"];
const MODERN_MAC: [&str; 2] = ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com"];
/// The last-resort additions for older clients, after the modern ones (off with --strict-crypto).
const LAST_RESORT_ENC: [&str; 2] = ["aes128-ctr", "aes256-ctr"];
const LAST_RESORT_MAC: [&str; 2] = ["hmac-sha2-256", "hmac-sha2-512"];

/// What every policy has beyond its key exchanges; `strict` drops the last-resort additions.
fn assert_common_policy(report: &str, strict: bool) {
    assert_eq!(offered(report, "key"), ["ssh-ed25519"], "{report}");
    let (mut enc, mut mac) = (MODERN_ENC.to_vec(), MODERN_MAC.to_vec());
    if !strict {
        enc.extend(LAST_RESORT_ENC);
        mac.extend(LAST_RESORT_MAC);
    }
    assert_eq!(offered(report, "enc"), enc, "{report}");
    assert_eq!(offered(report, "mac"), mac, "{report}");
    assert!(report.contains("(gen) compression: disabled"), "{report}");
    assert!(report.contains("(gen) banner: SSH-2.0-sshbio\n"), "no version number in the id: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_pq_only_policy_offers_only_ml_kem_and_modern_ciphers_with_no_warnings() {
    let settings = Settings { pq_only_kex: true, strict_crypto: true, ..Settings::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    let (code, report) = audit(&server).await;
    assert_eq!(code, 0, "{report}");
    let kex: Vec<&str> = offered(&report, "kex").into_iter().filter(|k| !is_pseudo(k)).collect();
    assert_eq!(kex, ["mlkem768x25519-sha256"], "{report}");
    assert!(offered(&report, "kex").contains(&"kex-strict-s-v00@openssh.com"), "Terrapin: strict kex");
    assert_common_policy(&report, true);
    assert_eq!(problems(&report, &[]), Vec::<&str>::new(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_fails_nothing_and_warns_only_about_what_old_clients_need() {
    let server = TestServer::start().await;
    let (_, report) = audit(&server).await;
    let kex: Vec<&str> = offered(&report, "kex").into_iter().filter(|k| !is_pseudo(k)).collect();
    assert_eq!(
        kex,
        ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"],
        "{report}"
    );
    assert!(offered(&report, "kex").contains(&"kex-strict-s-v00@openssh.com"), "Terrapin: strict kex");
    assert_common_policy(&report, false);
    // Clients older than OpenSSH 9.9 have no ML-KEM, and older libssh2/paramiko have no AEAD
    // cipher or ETM MAC: these stay, whatever ssh-audit thinks of them.
    let kept = [
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "aes128-ctr",
        "aes256-ctr",
        "hmac-sha2-256",
        "hmac-sha2-512",
    ];
    assert_eq!(problems(&report, &kept), Vec::<&str>::new(), "{report}");
}

/// Names in the key exchange list that are markers, not algorithms.
fn is_pseudo(name: &str) -> bool {
    name.starts_with("ext-info-") || name.starts_with("kex-strict-")
}
