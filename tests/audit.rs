//! The crypto policy, checked by ssh-audit (from PyPI; `.ci/run` installs it). The assertions
//! are the policy itself (which algorithms are offered, in which order, and that nothing fails),
//! not a count of ssh-audit's warnings, which changes with its version.
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

/// What every policy has beyond its key exchanges.
fn assert_common_policy(report: &str) {
    assert_eq!(offered(report, "key"), ["ssh-ed25519"], "{report}");
    assert_eq!(
        offered(report, "enc"),
        ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com"],
        "{report}"
    );
    assert_eq!(offered(report, "mac"), ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com"]);
    assert!(report.contains("(gen) compression: disabled"), "{report}");
    assert!(report.contains("(gen) banner: SSH-2.0-sshbio\n"), "no version number in the id: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pq_only_policy_offers_only_ml_kem_and_fails_nothing() {
    let settings = Settings { pq_only_kex: true, ..Settings::default() };
    let server = TestServer::start_with(Options { settings, ..Options::default() }).await;
    let (code, report) = audit(&server).await;
    assert_eq!(code, 0, "{report}");
    let kex: Vec<&str> = offered(&report, "kex").into_iter().filter(|k| !is_pseudo(k)).collect();
    assert_eq!(kex, ["mlkem768x25519-sha256"], "{report}");
    assert!(offered(&report, "kex").contains(&"kex-strict-s-v00@openssh.com"), "Terrapin: strict kex");
    assert_common_policy(&report);
    assert_eq!(problems(&report, &[]), Vec::<&str>::new(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_fails_nothing_and_warns_only_about_the_x25519_kept_for_old_clients() {
    let server = TestServer::start().await;
    let (_, report) = audit(&server).await;
    let kex: Vec<&str> = offered(&report, "kex").into_iter().filter(|k| !is_pseudo(k)).collect();
    assert_eq!(
        kex,
        ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"],
        "{report}"
    );
    assert!(offered(&report, "kex").contains(&"kex-strict-s-v00@openssh.com"), "Terrapin: strict kex");
    assert_common_policy(&report);
    // Clients older than OpenSSH 9.9 have no ML-KEM: these two stay, whatever ssh-audit thinks.
    let kept = ["curve25519-sha256", "curve25519-sha256@libssh.org"];
    assert_eq!(problems(&report, &kept), Vec::<&str>::new(), "{report}");
}

/// Names in the key exchange list that are markers, not algorithms.
fn is_pseudo(name: &str) -> bool {
    name.starts_with("ext-info-") || name.starts_with("kex-strict-")
}
