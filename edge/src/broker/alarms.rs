//! Alarms of connected clients: the deadlines a connection must act on (keep-alive, credential
//! expiry, the end of a publisher pause). One heap for the whole broker, served by one task,
//! instead of a tokio `Sleep` in every connection task: a `Sleep` is 112 bytes, and without it
//! an idle connection's task fits tokio's 384-byte task size instead of 512 (tokio rounds a task
//! up to 128 bytes).
//!
//! A connection arms an alarm for its next deadline and is woken through its [`ConnControl`]
//! when the alarm goes off; it then looks at its deadline again (the keep-alive deadline moves
//! later with every packet, so an alarm usually finds it moved and arms one more). An alarm is
//! armed only when none is pending at or before the deadline, so a connection has one or two
//! entries at a time. Entries are not removed when a deadline moves or a connection closes:
//! they go off harmlessly, and the heap drops those of closed connections whenever they could
//! make up half of it.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::session::ConnControl;

/// Size from which the heap is swept for alarms of closed connections.
const SWEEP_FROM: usize = 1024;

/// One alarm: wake `control`'s connection at `due` (nanoseconds after the epoch; 16 bytes an
/// alarm instead of 24 with an `Instant`).
#[derive(Debug)]
struct Alarm {
    due: u64,
    control: Weak<ConnControl>,
}

impl PartialEq for Alarm {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}

impl Eq for Alarm {}

impl PartialOrd for Alarm {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Alarm {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // Reversed: BinaryHeap is a max-heap and the earliest alarm goes first.
        other.due.cmp(&self.due)
    }
}

/// The alarms of every connected client.
#[derive(Debug)]
pub(crate) struct Alarms {
    heap: Mutex<Heap>,
    notify: Notify,
    /// Zero point of the alarm times.
    epoch: Instant,
}

#[derive(Debug, Default)]
struct Heap {
    alarms: BinaryHeap<Alarm>,
    /// Heap length after the last sweep; the next one waits until it has doubled.
    swept_at: usize,
}

impl Default for Alarms {
    fn default() -> Self {
        Self {
            heap: Mutex::default(),
            notify: Notify::new(),
            epoch: Instant::now(),
        }
    }
}

impl Alarms {
    /// Nanoseconds from the epoch to `at` (never 0, which a [`ConnControl`] reads as "none").
    fn ticks(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
    }

    /// Makes sure `control`'s connection is woken at `due` (or earlier): arms an alarm unless
    /// one is already pending at or before `due`.
    pub(crate) fn arm(&self, control: &Arc<ConnControl>, due: Instant, now: Instant) {
        let (due, now) = (self.ticks(due), self.ticks(now));
        if let Some(armed) = control.armed_alarm()
            && armed > now
            && armed <= due
        {
            return;
        }
        control.set_armed_alarm(due);
        let mut heap = self.heap.lock();
        let earliest = heap.alarms.peek().is_none_or(|first| due < first.due);
        heap.alarms.push(Alarm {
            due,
            control: Arc::downgrade(control),
        });
        if heap.alarms.len() >= SWEEP_FROM && heap.alarms.len() >= 2 * heap.swept_at {
            heap.alarms.retain(|a| a.control.strong_count() > 0);
            heap.swept_at = heap.alarms.len();
        }
        drop(heap);
        if earliest {
            self.notify.notify_one();
        }
    }

    /// Wakes the connections whose alarms are due at `now`; returns the next due time.
    fn ring(&self, now: Instant) -> Option<Instant> {
        let now = self.ticks(now);
        let mut due = Vec::new();
        let next = {
            let mut heap = self.heap.lock();
            while heap.alarms.peek().is_some_and(|a| a.due <= now) {
                if let Some(a) = heap.alarms.pop() {
                    due.push(a.control);
                }
            }
            heap.alarms
                .peek()
                .map(|a| self.epoch + std::time::Duration::from_nanos(a.due))
        };
        for control in due {
            if let Some(control) = control.upgrade() {
                control.alarm();
            }
        }
        next
    }

    /// Serves the alarms until the task is dropped.
    pub(crate) async fn run(&self) {
        loop {
            match self.ring(Instant::now()) {
                Some(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        () = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_alarm_is_armed_only_when_none_is_pending_at_or_before_the_deadline() {
        let alarms = Alarms::default();
        let control = Arc::new(ConnControl::default());
        let now = Instant::now();
        let later = now + Duration::from_secs(90);
        alarms.arm(&control, later, now);
        alarms.arm(&control, later + Duration::from_secs(1), now);
        assert_eq!(
            alarms.heap.lock().alarms.len(),
            1,
            "a pending earlier alarm suffices"
        );
        let sooner = now + Duration::from_millis(500);
        alarms.arm(&control, sooner, now);
        assert_eq!(
            alarms.heap.lock().alarms.len(),
            2,
            "an earlier deadline needs its own"
        );
        // Once the armed time has passed, the next deadline is armed anew.
        alarms.arm(&control, later, sooner);
        assert_eq!(alarms.heap.lock().alarms.len(), 3);
    }

    #[test]
    fn ringing_pops_the_due_alarms_in_order_and_skips_closed_connections() {
        let alarms = Alarms::default();
        let now = Instant::now();
        let open = Arc::new(ConnControl::default());
        let closed = Arc::new(ConnControl::default());
        alarms.arm(&open, now + Duration::from_secs(2), now);
        alarms.arm(&closed, now + Duration::from_secs(1), now);
        drop(closed);
        assert_eq!(
            alarms.ring(now + Duration::from_millis(1500)),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(alarms.ring(now + Duration::from_secs(2)), None);
        assert!(alarms.heap.lock().alarms.is_empty());
    }

    #[test]
    fn alarms_of_closed_connections_are_swept() {
        let alarms = Alarms::default();
        let now = Instant::now();
        let keep = Arc::new(ConnControl::default());
        alarms.arm(&keep, now + Duration::from_secs(60), now);
        for i in 0..2 * SWEEP_FROM {
            let gone = Arc::new(ConnControl::default());
            alarms.arm(&gone, now + Duration::from_secs(i as u64), now);
        }
        assert!(alarms.heap.lock().alarms.len() < SWEEP_FROM);
    }
}
