//! Change events to NATS: one task forwards every [`ChangeEvent`] the store broadcasts to the
//! subject [`CHANGE_SUBJECT`] as JSON (core NATS publish, then flush), so every edge drops its
//! cached answers about what changed.
//!
//! Core NATS delivers at most once, so the forwarder publishes [`ChangeEvent::Resync`] whenever
//! an event may not have reached the subscribers: when it fell behind the store's broadcast
//! (lagged), when a publish or flush failed (retried until it succeeds), and after its NATS
//! connection was re-established (whatever sat in the old connection's buffers is lost). Edges
//! publish nothing: they follow the subject and resync on their own reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stratus_model::{CHANGE_SUBJECT, ChangeEvent};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, timeout};

/// How often the forwarder checks whether its NATS connection was re-established, and retries a
/// pending resync.
const CONNECTION_CHECK: Duration = Duration::from_millis(500);
/// How long one publish and its flush may take before it counts as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`ChangeForwarder::stop`] waits for queued events to be published.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the forwarder has done so far (monotonic counters, for logs and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwarderCounts {
    /// Events published and flushed (including resyncs).
    pub published: u64,
    /// Of those, [`ChangeEvent::Resync`]s.
    pub resyncs: u64,
    /// Publishes or flushes that failed or timed out (each is followed by a resync).
    pub failures: u64,
    /// Times the forwarder fell behind the store and skipped events (each followed by a resync).
    pub lagged: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    resyncs: AtomicU64,
    failures: AtomicU64,
    lagged: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ForwarderCounts {
        ForwarderCounts {
            published: self.published.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            lagged: self.lagged.load(Ordering::Relaxed),
        }
    }
}

/// The running forwarder. Dropping it stops the task at once; [`ChangeForwarder::stop`] first
/// publishes what is queued.
#[derive(Debug)]
pub struct ChangeForwarder {
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts forwarding `changes` (a receiver of the store's change events, e.g.
/// [`crate::Store::changes`]) to NATS through `nats`. Must be called inside a tokio runtime.
pub fn forward_changes(
    changes: broadcast::Receiver<ChangeEvent>,
    nats: async_nats::Client,
) -> ChangeForwarder {
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = oneshot::channel();
    let forwarder = Forwarder {
        connects: nats.statistics().connects.load(Ordering::Relaxed),
        changes,
        nats,
        counters: Arc::clone(&counters),
        resync_pending: false,
        failing: false,
    };
    ChangeForwarder {
        counters,
        stop: Some(stop_tx),
        task: Some(tokio::spawn(forwarder.run(stop_rx))),
    }
}

impl ChangeForwarder {
    /// The counters so far.
    pub fn counts(&self) -> ForwarderCounts {
        self.counters.snapshot()
    }

    /// Publishes the events already queued, flushes, and ends the task (giving up after a few
    /// seconds when NATS does not answer). Returns the final counters.
    pub async fn stop(mut self) -> ForwarderCounts {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && timeout(STOP_TIMEOUT, &mut task).await.is_err()
        {
            tracing::warn!("change events still queued at shutdown were not all published");
            task.abort();
        }
        self.counters.snapshot()
    }
}

impl Drop for ChangeForwarder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The task's state.
struct Forwarder {
    changes: broadcast::Receiver<ChangeEvent>,
    nats: async_nats::Client,
    counters: Arc<Counters>,
    /// The NATS client's connection count when last checked.
    connects: u64,
    /// A resync must be published (an event may have been lost).
    resync_pending: bool,
    /// The last publish failed (so a recovery is logged once).
    failing: bool,
}

impl Forwarder {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        tracing::info!(subject = CHANGE_SUBJECT, "forwarding change events to NATS");
        let mut check = interval(CONNECTION_CHECK);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    self.drain().await;
                    return;
                }
                received = self.changes.recv() => match received {
                    Ok(event) => self.publish(&event).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "change event forwarder fell behind; publishing a resync");
                        Counters::bump(&self.counters.lagged);
                        self.resync_pending = true;
                        self.publish(&ChangeEvent::Resync).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.flush_before_exit().await;
                        return;
                    }
                },
                _ = check.tick() => {
                    let connects = self.nats.statistics().connects.load(Ordering::Relaxed);
                    if connects != self.connects {
                        self.connects = connects;
                        tracing::info!("NATS connection re-established; publishing a resync");
                        self.resync_pending = true;
                    }
                    if self.resync_pending {
                        self.publish(&ChangeEvent::Resync).await;
                    }
                }
            }
        }
    }

    /// Publishes `event` and flushes; a failure is counted and leaves a resync pending.
    async fn publish(&mut self, event: &ChangeEvent) {
        let payload = match serde_json::to_vec(event) {
            Ok(payload) => payload,
            Err(e) => {
                // Cannot happen for these types; if it did, receivers must resync.
                tracing::error!(?event, "cannot encode change event: {e}");
                Counters::bump(&self.counters.failures);
                self.resync_pending = true;
                return;
            }
        };
        let nats = &self.nats;
        let sent = timeout(PUBLISH_TIMEOUT, async {
            nats.publish(CHANGE_SUBJECT, payload.into())
                .await
                .map_err(|e| format!("publish failed: {e}"))?;
            nats.flush().await.map_err(|e| format!("flush failed: {e}"))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", PUBLISH_TIMEOUT.as_secs())));
        match sent {
            Ok(()) => {
                Counters::bump(&self.counters.published);
                if *event == ChangeEvent::Resync {
                    Counters::bump(&self.counters.resyncs);
                    self.resync_pending = false;
                }
                if self.failing {
                    self.failing = false;
                    tracing::info!("change events reach NATS again");
                }
                tracing::debug!(?event, "change event published");
            }
            Err(e) => {
                Counters::bump(&self.counters.failures);
                self.resync_pending = true;
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        ?event,
                        "cannot publish change events to NATS ({e}); a resync follows when NATS is back"
                    );
                }
            }
        }
    }

    /// Publishes every event already queued, then flushes.
    async fn drain(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(event) => self.publish(&event).await,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    Counters::bump(&self.counters.lagged);
                    self.resync_pending = true;
                }
                Err(_) => break,
            }
        }
        if self.resync_pending {
            self.publish(&ChangeEvent::Resync).await;
        }
        self.flush_before_exit().await;
    }

    async fn flush_before_exit(&self) {
        match timeout(PUBLISH_TIMEOUT, self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot flush change events to NATS at exit: {e}"),
            Err(_) => tracing::warn!("flushing change events to NATS at exit timed out"),
        }
    }
}
