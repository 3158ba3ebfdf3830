//! Deadlines of offline sessions: delayed wills and session expiry. One heap for the whole broker
//! (a few dozen bytes per offline session, no task per session), served by one task. An entry
//! carries the session generation it was set for, so a session that reconnected in the meantime
//! ignores it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::session::Session;
use super::tenant::Tenant;

/// What happens when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// Publish the pending will.
    Will,
    /// End the session.
    Expiry,
}

/// One deadline.
#[derive(Debug)]
pub(crate) struct TimerEntry {
    /// When.
    pub(crate) due: Instant,
    /// What.
    pub(crate) kind: TimerKind,
    /// Whose tenant.
    pub(crate) tenant: Arc<Tenant>,
    /// Whose session.
    pub(crate) session: Arc<Session>,
    /// The session generation it was set for.
    pub(crate) generation: u64,
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}

impl Eq for TimerEntry {}

impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimerEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        other.due.cmp(&self.due)
    }
}

/// The deadline heap.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<TimerEntry>>,
    notify: Notify,
}

impl Timers {
    /// Schedules a deadline.
    pub(crate) fn schedule(&self, entry: TimerEntry) {
        let mut heap = self.heap.lock();
        let earliest = heap.peek().is_none_or(|first| entry.due < first.due);
        heap.push(entry);
        drop(heap);
        if earliest {
            self.notify.notify_one();
        }
    }

    /// Removes and returns every entry due at `now`.
    pub(crate) fn take_due(&self, now: Instant) -> Vec<TimerEntry> {
        let mut heap = self.heap.lock();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|e| e.due <= now) {
            if let Some(e) = heap.pop() {
                due.push(e);
            }
        }
        due
    }

    /// The next deadline, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.lock().peek().map(|e| e.due)
    }

    /// Completes when an earlier deadline was scheduled.
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }
}
