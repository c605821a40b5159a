//! Live content reload: watches the content file's directory (so editors' rename-replace and
//! Kubernetes' `..data` symlink swap are seen) and SIGHUP, validates the new file, and
//! publishes it to every session. An invalid edit is logged and the old content keeps serving.
//! File events are debounced by notify-debouncer-full.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use tokio::sync::{mpsc, watch};

use crate::content::{self, Content};
use crate::metrics::Metrics;

/// Edits often come as several events (truncate, write, rename): the debouncer waits this long
/// for quiet before it reports them.
const SETTLE: Duration = Duration::from_millis(150);

/// What asks for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Something changed in the content file's directory.
    Edit,
    /// The operator sent SIGHUP.
    Hangup,
}

/// Keeps a file watcher running for as long as it is held.
type WatchGuard = Box<dyn Send>;

/// Starts watching `path`; valid edits are sent on `tx`. Runs until the runtime stops. Must be
/// called inside the runtime: the SIGHUP handler is installed before it returns.
pub fn spawn(path: PathBuf, tx: watch::Sender<Arc<Content>>, metrics: Arc<Metrics>) {
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the file"))
        .ok();
    spawn_with(path, tx, metrics, watch_directory, hangups);
}

/// [`spawn`] with the watcher made by `watch` and SIGHUP from `hangups` (tests give a watcher
/// that fails, or no SIGHUP so that another test's signal cannot reload this one's content).
fn spawn_with(
    path: PathBuf,
    tx: watch::Sender<Arc<Content>>,
    metrics: Arc<Metrics>,
    watch: impl FnOnce(&Path, mpsc::Sender<Trigger>) -> notify::Result<WatchGuard>,
    hangups: Option<tokio::signal::unix::Signal>,
) {
    // One channel, one sender per source: the watcher's and SIGHUP's. Either can go away
    // without closing the channel for the other (a regression: the watcher's sender used to be
    // the only one, so when no watcher could be made, SIGHUP stopped reloading too).
    let (trigger_tx, triggers) = mpsc::channel::<Trigger>(1);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let watcher = match watch(&dir, trigger_tx.clone()) {
        Ok(guard) => Some(guard),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch content directory; reload with SIGHUP");
            None
        }
    };
    if let Some(mut hangups) = hangups {
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if trigger_tx.send(Trigger::Hangup).await.is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(Reloader { path, tx, metrics, _watcher: watcher }.run(triggers));
}

/// Watches `dir` (not recursively); every debounced batch of events is one [`Trigger::Edit`].
fn watch_directory(dir: &Path, triggers: mpsc::Sender<Trigger>) -> notify::Result<WatchGuard> {
    let mut debouncer = notify_debouncer_full::new_debouncer(
        SETTLE,
        None,
        move |events: notify_debouncer_full::DebounceEventResult| {
            // Only changes count: reading the file for a reload is itself an event (inotify's
            // access and close-nowrite), and counting it would reload forever.
            let changed =
                events.is_ok_and(|events| events.iter().any(|e| !e.kind.is_access() && !e.kind.is_other()));
            if changed {
                // Full means a reload is already queued, and it will read the newest file.
                let _ = triggers.try_send(Trigger::Edit);
            }
        },
    )?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(Box::new(debouncer))
}

/// The reload task: one reload per trigger, in order.
struct Reloader {
    /// The content file.
    path: PathBuf,
    /// Where valid new content goes (every session watches it).
    tx: watch::Sender<Arc<Content>>,
    /// Counts reloads, ok and failed.
    metrics: Arc<Metrics>,
    /// The file watcher, when one could be made; dropping it stops the watching.
    _watcher: Option<WatchGuard>,
}

impl Reloader {
    async fn run(self, mut triggers: mpsc::Receiver<Trigger>) {
        while let Some(trigger) = triggers.recv().await {
            if trigger == Trigger::Hangup {
                tracing::info!("SIGHUP: reloading content");
            }
            self.metrics.reloaded(reload_once(&self.path, &self.tx));
        }
    }
}

/// Loads `path` and publishes it when it is valid and different. Returns whether it was valid.
pub fn reload_once(path: &Path, tx: &watch::Sender<Arc<Content>>) -> bool {
    match content::load(path) {
        Ok(new) => {
            if **tx.borrow() != new {
                tracing::info!(path = %path.display(), sections = new.sections.len(), "content reloaded");
                tx.send_replace(Arc::new(new));
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "content not reloaded; still serving the previous version");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::fixtures;

    /// A directory of its own holding `text` as content.toml.
    fn content_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sshbio-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("content.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Waits (up to 10 s) until the published content's name is `name`.
    async fn wait_for_name(rx: &mut watch::Receiver<Arc<Content>>, name: &str) {
        let wanted = name.to_string();
        let seen = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| c.name == wanted)).await;
        assert!(seen.is_ok_and(|r| r.is_ok()), "content named {name:?} never published");
    }

    fn sighup_self() {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Regression: when no file watcher could be made, its sender (the only one) was dropped
    /// with it, the reload loop saw a closed channel and ended, and SIGHUP no longer reloaded.
    #[tokio::test]
    async fn sighup_reloads_when_the_file_watcher_cannot_be_created() {
        let path = content_file("nowatch", fixtures::SMALL);
        let (tx, mut rx) = watch::channel(fixtures::shared(fixtures::SMALL));
        let no_watcher = |_: &Path, _: mpsc::Sender<Trigger>| -> notify::Result<WatchGuard> {
            Err(notify::Error::generic("no inotify instances left"))
        };
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).expect("signal");
        spawn_with(path.clone(), tx, Arc::new(Metrics::new()), no_watcher, Some(hangups));
        // Let the reload task run once with its watcher gone (where the old loop ended).
        tokio::task::yield_now().await;
        std::fs::write(&path, fixtures::LONG).expect("write");
        sighup_self();
        wait_for_name(&mut rx, "Bartholomew Fennimore-Oakes").await;
        // And again: SIGHUP keeps working.
        std::fs::write(&path, fixtures::LINKS).expect("write");
        sighup_self();
        wait_for_name(&mut rx, "Cyrus Pell").await;
    }

    #[tokio::test]
    async fn an_edit_is_seen_by_the_watcher_and_an_invalid_one_keeps_the_old_content() {
        let path = content_file("watch", fixtures::SMALL);
        let (tx, mut rx) = watch::channel(fixtures::shared(fixtures::SMALL));
        let metrics = Arc::new(Metrics::new());
        spawn_with(path.clone(), tx, metrics.clone(), watch_directory, None);
        // Replace by rename, as editors do.
        let tmp = path.with_file_name(".content.toml.swp");
        std::fs::write(&tmp, fixtures::LONG).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        wait_for_name(&mut rx, "Bartholomew Fennimore-Oakes").await;
        std::fs::write(&path, "name = \"broken\n").expect("write");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !metrics.encode().contains("sshbio_content_reloads_total{result=\"failed\"} 1") {
            assert!(tokio::time::Instant::now() < deadline, "{}", metrics.encode());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(rx.borrow().name, "Bartholomew Fennimore-Oakes", "the last good content stays");
        // Reading the file for a reload is not an edit: the count stays at one failure and
        // one success (regression: access events made the watcher reload every 150 ms).
        let settled = tokio::time::Instant::now() + SETTLE * 4;
        while tokio::time::Instant::now() < settled {
            tokio::time::sleep(SETTLE).await;
        }
        let text = metrics.encode();
        assert!(text.contains("sshbio_content_reloads_total{result=\"failed\"} 1\n"), "{text}");
        assert!(text.contains("sshbio_content_reloads_total{result=\"ok\"} 1\n"), "{text}");
    }
}
