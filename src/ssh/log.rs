//! russh's own log records (it logs through the `log` crate) forwarded to tracing, with the
//! client quirks it warns about demoted to debug: PuTTY's `simple@putty.projects.tartarus.org`
//! and `winadj@putty.projects.tartarus.org`, OpenSSH's `keepalive@openssh.com` and other vendor
//! (`name@domain`) channel requests. russh already answers them properly (a failure reply when
//! one is wanted, nothing otherwise); the warning is only noise a client can cause at will.
//! russh's debug records that print a client's public key are dropped. Touches nothing but the
//! global logger.

use log::{Level, Log, Metadata, Record};
use tracing_log::{AsLog, LogTracer};

/// The `log` logger: tracing-log's bridge, with quirks demoted.
struct RusshLog {
    /// Turns a `log` record into a tracing event (and checks tracing's filter for it).
    bridge: LogTracer,
}

impl Log for RusshLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.bridge.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if carries_a_visitors_key(record) {
            return;
        }
        if is_client_quirk(record) {
            let demoted = Record::builder()
                .level(Level::Debug)
                .target(record.target())
                .args(*record.args())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            self.bridge.log(&demoted);
        } else {
            self.bridge.log(record);
        }
    }

    fn flush(&self) {
        self.bridge.flush();
    }
}

/// True for russh's warning about a vendor channel request it does not know.
fn is_client_quirk(record: &Record<'_>) -> bool {
    if record.level() != Level::Warn || !record.target().starts_with("russh") {
        return false;
    }
    let message = record.args().to_string();
    message.strip_prefix("unknown channel request ").is_some_and(|name| name.contains('@'))
}

/// True for russh's debug records that print an offered public key (its bytes, or the
/// authentication state holding them): a visitor's key is never logged, even at debug level.
fn carries_a_visitors_key(record: &Record<'_>) -> bool {
    if record.level() < Level::Debug || !record.target().starts_with("russh") {
        return false;
    }
    let message = record.args().to_string();
    message.starts_with("pubkey_key:") || message.starts_with("rejecting AuthRequest")
}

/// Installs the forwarding logger. Call once, after tracing's global subscriber is set, so
/// `log`'s level filter matches tracing's. Fails if a `log` logger is already installed.
pub fn forward_russh_logs() -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(RusshLog { bridge: LogTracer::new() }))?;
    log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quirk(level: Level, target: &str, message: &str) -> bool {
        is_client_quirk(
            &Record::builder().level(level).target(target).args(format_args!("{message}")).build(),
        )
    }

    #[test]
    fn vendor_channel_requests_are_quirks_and_nothing_else_is() {
        let target = "russh::server::encrypted";
        assert!(quirk(Level::Warn, target, "unknown channel request simple@putty.projects.tartarus.org"));
        assert!(quirk(Level::Warn, target, "unknown channel request winadj@putty.projects.tartarus.org"));
        assert!(quirk(Level::Warn, target, "unknown channel request keepalive@openssh.com"));
        assert!(!quirk(Level::Warn, target, "unknown channel request foo"));
        assert!(!quirk(Level::Warn, target, "something else@example.com"));
        assert!(!quirk(Level::Warn, "sshbio", "unknown channel request winadj@putty.projects.tartarus.org"));
        assert!(!quirk(Level::Error, target, "unknown channel request winadj@putty.projects.tartarus.org"));
    }

    #[test]
    fn records_with_a_visitors_key_are_dropped() {
        let record = |message: &str| {
            carries_a_visitors_key(
                &Record::builder()
                    .level(Level::Debug)
                    .target("russh::server::encrypted")
                    .args(format_args!("{message}"))
                    .build(),
            )
        };
        assert!(record("pubkey_key: [0, 0, 0, 11, 115, 115, 104]"));
        assert!(record("rejecting AuthRequest { methods: MethodSet([]), current: Some(PublicKey { .. }) }"));
        assert!(!record("name: \"visitor\" \"ssh-connection\" \"publickey\""));
    }
}
