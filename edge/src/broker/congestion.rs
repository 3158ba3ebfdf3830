//! Back-pressure from a slow subscriber to the publishers feeding it.
//!
//! When an attached session's queue passes half of its limit (messages or bytes), each publisher
//! that adds to it stops reading its own connection until the queue drains below a quarter, so
//! messages wait in TCP buffers instead of being dropped. A subscriber that stays congested for
//! longer than `limits.max_publisher_pause_ms` is marked slow: publishers no longer wait for it,
//! and what does not fit its queue is dropped and counted, so one stuck client cannot stall the
//! others. Offline sessions never exert back-pressure (nothing would drain them).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::session::{ConnControl, SessionState};
use crate::config::Limits;

/// A congested session's waiting publishers.
#[derive(Debug)]
pub(crate) struct Congestion {
    since: Instant,
    slow: bool,
    waiters: Vec<Arc<ConnControl>>,
}

impl SessionState {
    fn above(&self, limits: &Limits, divisor: usize) -> bool {
        self.queued_len() >= (limits.max_queued_messages / divisor).max(1)
            || self.queued_bytes >= (limits.max_queued_bytes / divisor).max(1)
    }

    /// After queueing a message for this attached session: whether `publisher` should pause
    /// (it is then woken when the queue drains).
    pub(crate) fn note_congestion(
        &mut self,
        limits: &Limits,
        publisher: &Arc<ConnControl>,
        now: Instant,
    ) -> bool {
        if self.attachment.is_none() || !self.above(limits, 2) {
            return false;
        }
        let max_pause = Duration::from_millis(limits.max_publisher_pause_ms);
        let congestion = self.congestion.get_or_insert_with(|| {
            Box::new(Congestion {
                since: now,
                slow: false,
                waiters: Vec::new(),
            })
        });
        if !congestion.slow && now.duration_since(congestion.since) >= max_pause {
            congestion.slow = true;
            tracing::warn!(
                "a subscriber has been congested for {}ms: publishers stop waiting for it and \
                 messages beyond its queue limit are dropped",
                limits.max_publisher_pause_ms
            );
            let waiters = std::mem::take(&mut congestion.waiters);
            wake_all(waiters);
        }
        if congestion.slow {
            return false;
        }
        if !congestion.waiters.iter().any(|w| Arc::ptr_eq(w, publisher)) {
            congestion.waiters.push(Arc::clone(publisher));
        }
        true
    }

    /// Before a session's stream reader queues a message: whether it should wait (it is then
    /// woken when the queue drains below a quarter). Unlike a publisher, a reader is never
    /// released by marking the session slow: what it has not queued stays in the stream.
    pub(crate) fn reader_should_wait(
        &mut self,
        limits: &Limits,
        reader: &Arc<ConnControl>,
    ) -> bool {
        if !self.above(limits, 2) {
            return false;
        }
        let congestion = self.congestion.get_or_insert_with(|| {
            Box::new(Congestion {
                since: Instant::now(),
                slow: false,
                waiters: Vec::new(),
            })
        });
        if !congestion.waiters.iter().any(|w| Arc::ptr_eq(w, reader)) {
            congestion.waiters.push(Arc::clone(reader));
        }
        true
    }

    /// After draining: once below the low-water mark, wakes the waiting publishers.
    pub(crate) fn relieve_congestion(&mut self, limits: &Limits) {
        if self.congestion.is_some() && !self.above(limits, 4) {
            self.release_publishers();
        }
    }

    /// Wakes every waiting publisher (the queue drained, or the session went offline or ended).
    pub(crate) fn release_publishers(&mut self) {
        if let Some(congestion) = self.congestion.take() {
            wake_all(congestion.waiters);
        }
    }
}

fn wake_all(waiters: Vec<Arc<ConnControl>>) {
    for w in waiters {
        w.wake();
    }
}
