//! Counting live connection tasks, so shutdown can wait for them to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A count of live connection tasks with a "reached zero" signal.
#[derive(Debug, Default, Clone)]
pub(crate) struct LiveConnections {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    count: AtomicUsize,
    idle: Notify,
}

/// Held by a connection task while it runs.
#[derive(Debug)]
pub(crate) struct LiveGuard {
    inner: Arc<Inner>,
}

impl LiveConnections {
    /// Registers a running connection.
    pub(crate) fn enter(&self) -> LiveGuard {
        self.inner.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Connections running now.
    pub(crate) fn count(&self) -> usize {
        self.inner.count.load(Ordering::Acquire)
    }

    /// Completes when no connection is running.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.inner.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}
