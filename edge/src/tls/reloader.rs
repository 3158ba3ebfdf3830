//! Reloading the TLS files without a restart: when a certificate, key or CA file changes on disk,
//! and on SIGHUP.
//!
//! The parent directories are watched, not the files: editors, certbot and Kubernetes replace a
//! file by renaming another over it (or by swapping a `..data` symlink), which a watch on the
//! file itself would miss. Events are debounced ([`DEBOUNCE`]) so a rotation that rewrites
//! certificate and key is one reload. The reload reads files on a blocking thread and logs one
//! line: what triggered it, and whether the new files serve or why the old ones still do.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use super::service::{ReloadOutcome, TlsService};

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A steady stream of events still reloads after this long.
const DEBOUNCE_MAX: Duration = Duration::from_secs(2);
/// File events buffered between reloads (more are coalesced into the pending reload).
const EVENT_BUFFER: usize = 64;

/// Stops the reloader task when the service goes away.
#[derive(Debug, Default)]
pub(super) struct ReloaderHandle(parking_lot::Mutex<Option<tokio::task::AbortHandle>>);

impl ReloaderHandle {
    fn replace(&self, task: tokio::task::AbortHandle) {
        if let Some(previous) = self.0.lock().replace(task) {
            previous.abort();
        }
    }
}

impl Drop for ReloaderHandle {
    fn drop(&mut self) {
        if let Some(task) = self.0.lock().take() {
            task.abort();
        }
    }
}

impl TlsService {
    /// Starts watching the TLS files and listening for SIGHUP; each reloads the files (see
    /// [`TlsService::reload`]). Must run inside the tokio runtime. The watch is in place when
    /// this returns. If the files cannot be watched, SIGHUP still works (logged as a warning).
    /// The task ends when the service is dropped.
    pub(crate) fn spawn_reloader(self: &Arc<Self>) {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let watcher = match watch(&self.files(), tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("TLS files are not watched for changes ({e}); reload with SIGHUP");
                None
            }
        };
        let hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP, TLS files reload on change only: {e}");
                None
            }
        };
        let task = tokio::spawn(run(Arc::downgrade(self), watcher, rx, hangup));
        self.reloader.replace(task.abort_handle());
    }
}

/// What asked for a reload.
enum Trigger {
    Files(Vec<PathBuf>),
    Hangup,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hangup => f.write_str("SIGHUP"),
            Self::Files(paths) => write!(f, "change of {}", DisplayPaths(paths)),
        }
    }
}

async fn run(
    service: Weak<TlsService>,
    _watcher: Option<RecommendedWatcher>,
    mut events: mpsc::Receiver<PathBuf>,
    mut hangup: Option<Signal>,
) {
    loop {
        let trigger = tokio::select! {
            Some(path) = events.recv() => Trigger::Files(debounce(path, &mut events).await),
            Some(()) = next_hangup(&mut hangup) => Trigger::Hangup,
            else => return,
        };
        let Some(service) = service.upgrade() else {
            return;
        };
        let files = service.files();
        let outcome = tokio::task::spawn_blocking(move || service.reload()).await;
        let files = DisplayPaths(&files);
        match outcome {
            Ok(Ok(ReloadOutcome::Reloaded)) => {
                tracing::info!("TLS reload after {trigger}: now serving {files}")
            }
            Ok(Ok(ReloadOutcome::Unchanged)) => {
                tracing::info!("TLS reload after {trigger}: {files} unchanged")
            }
            Ok(Err(e)) => tracing::warn!(
                "TLS reload after {trigger} failed, the previous certificates keep serving: {e}"
            ),
            Err(e) => tracing::error!("TLS reload after {trigger} did not finish: {e}"),
        }
    }
}

/// Collects events until none arrived for [`DEBOUNCE`] (at most [`DEBOUNCE_MAX`]).
async fn debounce(first: PathBuf, events: &mut mpsc::Receiver<PathBuf>) -> Vec<PathBuf> {
    let mut changed = BTreeSet::from([first]);
    let give_up = Instant::now() + DEBOUNCE_MAX;
    loop {
        let quiet = (Instant::now() + DEBOUNCE).min(give_up);
        match timeout_at(quiet, events.recv()).await {
            Ok(Some(path)) => {
                changed.insert(path);
            }
            Ok(None) | Err(_) => return changed.into_iter().collect(),
        }
    }
}

async fn next_hangup(hangup: &mut Option<Signal>) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Watches the directories of `files`; relevant events send the changed path to `tx`.
fn watch(files: &[PathBuf], tx: mpsc::Sender<PathBuf>) -> notify::Result<RecommendedWatcher> {
    let files: HashSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let dirs: HashSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let relevant = {
        let dirs = dirs.clone();
        move |path: &Path| {
            files.contains(path)
                || (path.parent().is_some_and(|dir| dirs.contains(dir))
                    && path
                        .file_name()
                        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"..")))
        }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) if is_change(&event.kind) => {
                for path in event.paths {
                    if relevant(&path) {
                        // Full: a reload is pending and will read this change too.
                        let _ = tx.try_send(path);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("watching the TLS files: {e}"),
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// Everything but reads (our own reloads read the files).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

struct DisplayPaths<'a>(&'a [PathBuf]);

impl fmt::Display for DisplayPaths<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, path) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", path.display())?;
        }
        Ok(())
    }
}
