//! The NATS side: one task reads the subscription to [`CHANGE_SUBJECT`] and re-broadcasts each
//! [`ChangeEvent`] to the directory's receivers.
//!
//! Core NATS delivers nothing to a client while it is disconnected, so after the connection is
//! re-established (the client's connection count went up) the task flushes, which sends the
//! re-subscription the client queued on reconnecting, and then broadcasts
//! [`ChangeEvent::Resync`]. A subscription that ended (the client was closed or drained) is
//! re-created when possible, followed by a resync too. A message that is not a change event is
//! logged, counted and skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Message, Subscriber};
use futures_util::StreamExt;
use stratus_model::{CHANGE_SUBJECT, ChangeEvent};
use tokio::sync::broadcast;
use tokio::time::{MissedTickBehavior, interval, timeout};

/// How often the task checks whether the NATS connection was re-established.
const CONNECTION_CHECK: Duration = Duration::from_millis(500);
/// How long the flush after a reconnect may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the relay has seen so far (monotonic counters, for logs and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Change events received from NATS and broadcast (including resyncs the control plane
    /// sent).
    pub received: u64,
    /// Messages on the subject that were not a change event (skipped).
    pub malformed: u64,
    /// Resyncs broadcast because this edge's NATS connection or subscription was interrupted.
    pub local_resyncs: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    malformed: AtomicU64,
    local_resyncs: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> EventCounts {
        EventCounts {
            received: self.received.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            local_resyncs: self.local_resyncs.load(Ordering::Relaxed),
        }
    }
}

/// The relay task's state.
pub(crate) struct Relay {
    pub(crate) nats: async_nats::Client,
    pub(crate) subscriber: Option<Subscriber>,
    pub(crate) sender: broadcast::Sender<ChangeEvent>,
    pub(crate) counters: Arc<Counters>,
    /// The client's connection count when last checked.
    pub(crate) connects: u64,
}

/// The next message of the subscription; never, while there is none.
async fn next_message(subscriber: &mut Option<Subscriber>) -> Option<Message> {
    match subscriber {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

impl Relay {
    /// Runs until the task is aborted (the directory was dropped).
    pub(crate) async fn run(mut self) {
        let mut check = interval(CONNECTION_CHECK);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = next_message(&mut self.subscriber) => match message {
                    Some(message) => self.deliver(&message.payload),
                    None => {
                        tracing::error!(
                            subject = CHANGE_SUBJECT,
                            "the NATS subscription for control-plane change events ended; \
                             subscribing again once the NATS client allows it"
                        );
                        self.subscriber = None;
                    }
                },
                _ = check.tick() => self.check_connection().await,
            }
        }
    }

    /// Broadcasts one message's event, or counts and skips it.
    fn deliver(&self, payload: &[u8]) {
        match serde_json::from_slice::<ChangeEvent>(payload) {
            Ok(event) => {
                tracing::debug!(?event, "control-plane change event");
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                // No receiver is not an error: nothing is cached yet.
                let _ = self.sender.send(event);
            }
            Err(e) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    subject = CHANGE_SUBJECT,
                    bytes = payload.len(),
                    "skipping a message that is not a change event: {e}"
                );
            }
        }
    }

    /// Re-subscribes when the subscription ended, and resyncs after a reconnect.
    async fn check_connection(&mut self) {
        let connects = self.nats.statistics().connects.load(Ordering::Relaxed);
        let reconnected = connects != self.connects;
        self.connects = connects;
        let mut resubscribed = false;
        if self.subscriber.is_none() {
            match self.nats.subscribe(CHANGE_SUBJECT).await {
                Ok(subscriber) => {
                    tracing::info!(
                        subject = CHANGE_SUBJECT,
                        "subscribed to change events again"
                    );
                    self.subscriber = Some(subscriber);
                    resubscribed = true;
                }
                Err(e) => tracing::debug!("cannot subscribe to change events yet: {e}"),
            }
        }
        if !(reconnected || resubscribed) {
            return;
        }
        // The re-subscription is queued on the new connection: flush it out before telling
        // receivers to reload, so changes after their reload are delivered.
        match timeout(FLUSH_TIMEOUT, self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("flushing the NATS connection after a reconnect: {e}"),
            Err(_) => tracing::warn!("flushing the NATS connection after a reconnect timed out"),
        }
        tracing::info!(
            "NATS connection or subscription re-established; change events may have been missed: resync"
        );
        self.counters.local_resyncs.fetch_add(1, Ordering::Relaxed);
        let _ = self.sender.send(ChangeEvent::Resync);
    }
}
