//! Live content reload: watches the content file's directory (so editors' rename-replace and
//! Kubernetes' `..data` symlink swap are seen) and SIGHUP, validates the new file, and
//! publishes it to every session. An invalid edit is logged and the old content keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::content::{self, Content};
use crate::metrics::Metrics;

/// Edits often come as several events (truncate, write, rename): wait this long for quiet.
const SETTLE: Duration = Duration::from_millis(150);

/// Starts watching `path`; valid edits are sent on `tx`. Runs until the runtime stops.
pub fn spawn(path: PathBuf, tx: watch::Sender<Arc<Content>>, metrics: Arc<Metrics>) {
    let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let watcher = {
        let wake_tx = wake_tx.clone();
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = wake_tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w))
    };
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch content directory; reload with SIGHUP");
            None
        }
    };
    tokio::spawn(async move {
        // Keep the watcher alive as long as this task.
        let _watcher = watcher;
        let mut wake_rx = wake_rx;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            tokio::select! {
                woke = wake_rx.recv() => if woke.is_none() { break },
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading content");
                }
            }
            tokio::time::sleep(SETTLE).await;
            while wake_rx.try_recv().is_ok() {}
            metrics.reloaded(reload_once(&path, &tx));
        }
    });
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
