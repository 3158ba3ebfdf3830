//! Outbound messages: QoS 0 by core NATS publish, QoS 1/2 by JetStream publish. A QoS 1/2
//! publish holds a store ticket that completes only when JetStream acknowledged the message, so
//! the PUBACK/PUBREC waiting behind it never promises a message the stream does not hold. A
//! publish that keeps failing is retried with the same message id (JetStream drops duplicates)
//! until `publish_deadline`; then its publisher is disconnected (0x89 Server busy) before the
//! ticket completes, so the acknowledgement is never sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage as Publish, stream};
use bytes::Bytes;
use parking_lot::Mutex;
use stratus_codec::ReasonCode;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ClusterError, ClusterSettings};
use crate::broker::ConnControl;
use crate::store::{Store, Ticket};

/// One message to publish.
#[derive(Debug)]
pub(super) enum Item {
    /// QoS 0: fire and forget.
    Core {
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    },
    /// QoS 1/2: acknowledged by JetStream, then `ticket` completes.
    Durable {
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
        message_id: String,
        ticket: Ticket,
        publisher: Option<Arc<ConnControl>>,
    },
}

/// QoS 0 bytes (payload, subject and bookkeeping) waiting for the publishing task beyond which
/// new QoS 0 messages are dropped (counted and logged): publishers faster than NATS must not
/// grow the edge's memory. QoS 1/2 messages are bounded by each publisher's receive maximum
/// (their acknowledgements wait).
const MAX_QUEUED_QOS0_BYTES: usize = 32 * 1024 * 1024;
/// Above this many queued QoS 0 bytes, publishers are paused (as for a congested subscriber in
/// the embedded shape, up to `limits.max_publisher_pause_ms`).
const CONGESTED_QOS0_BYTES: usize = 4 * 1024 * 1024;
/// Paused publishers are woken once the queued QoS 0 bytes fall below this.
const RESUME_QOS0_BYTES: usize = CONGESTED_QOS0_BYTES / 2;
/// Bookkeeping counted per queued message on top of its payload and subject.
const ITEM_OVERHEAD: usize = 160;

/// The queue into the publishing task.
#[derive(Debug)]
pub(super) struct Outbound {
    tx: mpsc::UnboundedSender<Item>,
    /// QoS 0 payload bytes queued.
    queued: Arc<AtomicUsize>,
    /// QoS 0 messages dropped because the queue was full.
    dropped: AtomicU64,
    /// Publishers paused because the queue was congested, woken when it drains.
    paused: Arc<Paused>,
}

/// Publishers waiting for the QoS 0 queue to drain.
#[derive(Debug, Default)]
struct Paused {
    /// Whether `waiters` may be non-empty (read for every message sent; the lock is taken
    /// only when it is set).
    any: AtomicBool,
    waiters: Mutex<Vec<Arc<ConnControl>>>,
}

impl Paused {
    fn add(&self, publisher: &Arc<ConnControl>) {
        let mut waiters = self.waiters.lock();
        if !waiters.iter().any(|w| Arc::ptr_eq(w, publisher)) {
            waiters.push(Arc::clone(publisher));
        }
        self.any.store(true, Ordering::Release);
    }

    fn wake_all(&self) {
        // A plain load first: the common case (nobody paused) then costs no write to the line.
        if self.any.load(Ordering::Acquire) && self.any.swap(false, Ordering::AcqRel) {
            for w in std::mem::take(&mut *self.waiters.lock()) {
                w.wake();
            }
        }
    }
}

impl Outbound {
    /// Starts the publishing task.
    pub(super) fn start(
        nats: async_nats::Client,
        js: jetstream::Context,
        store: Store,
        deadline: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let paused = Arc::new(Paused::default());
        tokio::spawn(run(
            nats,
            js,
            store,
            deadline,
            rx,
            Arc::clone(&queued),
            Arc::clone(&paused),
        ));
        Self {
            tx,
            queued,
            dropped: AtomicU64::new(0),
            paused,
        }
    }

    /// Whether `publisher` should pause because NATS is not keeping up; it is then woken when
    /// the queue has drained to half the congestion mark (or its pause limit passes).
    pub(super) fn congested(&self, publisher: Option<&Arc<ConnControl>>) -> bool {
        if self.queued.load(Ordering::Acquire) <= CONGESTED_QOS0_BYTES {
            return false;
        }
        let Some(publisher) = publisher else {
            return true;
        };
        self.paused.add(publisher);
        // Drained meanwhile: the publishing task may have looked before the registration.
        if self.queued.load(Ordering::Acquire) < RESUME_QOS0_BYTES {
            self.paused.wake_all();
        }
        true
    }

    /// Queues one message (never blocks: the broker core is synchronous). A QoS 0 message is
    /// dropped when `MAX_QUEUED_QOS0_BYTES` are already waiting.
    pub(super) fn send(&self, item: Item) {
        if let Item::Core {
            payload, subject, ..
        } = &item
        {
            let len = payload.len() + subject.len() + ITEM_OVERHEAD;
            if self.queued.fetch_add(len, Ordering::AcqRel) + len > MAX_QUEUED_QOS0_BYTES {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped,
                        "QoS 0 messages dropped: publishers outpace NATS and 64 MiB are waiting \
                         to be sent (check the NATS connection and cluster capacity)"
                    );
                }
                return;
            }
        }
        if let Err(mpsc::error::SendError(item)) = self.tx.send(item) {
            tracing::error!(
                ?item,
                "the NATS publishing task has stopped; message not sent"
            );
        }
    }
}

/// The stream of QoS 1/2 messages of a pool: `MQ_<pool>`.
pub(super) fn stream_name(pool: &str) -> String {
    format!("MQ_{pool}")
}

/// Creates the pool's message stream if it does not exist.
pub(super) async fn ensure_stream(
    js: &jetstream::Context,
    settings: &ClusterSettings,
) -> Result<(), ClusterError> {
    let name = stream_name(&settings.pool);
    let subjects =
        stratus_topics::stream_subjects(&settings.pool).map_err(|e| ClusterError::Setting {
            name: "--pool",
            problem: e.to_string(),
        })?;
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![subjects],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: settings.stream_max_age,
        duplicate_window: Duration::from_secs(120),
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::JetStream {
            what: format!("stream {name} with {} replicas", settings.replicas),
            reason: e.to_string(),
        })
}

async fn run(
    nats: async_nats::Client,
    js: jetstream::Context,
    store: Store,
    deadline: Duration,
    mut rx: mpsc::UnboundedReceiver<Item>,
    queued: Arc<AtomicUsize>,
    paused: Arc<Paused>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Item::Core {
                subject,
                headers,
                payload,
            } => {
                let len = payload.len() + subject.len() + ITEM_OVERHEAD;
                if queued.fetch_sub(len, Ordering::AcqRel) - len < RESUME_QOS0_BYTES {
                    paused.wake_all();
                }
                if let Err(e) = nats.publish_with_headers(subject, headers, payload).await {
                    tracing::warn!("QoS 0 message not published to NATS: {e}");
                }
            }
            Item::Durable {
                subject,
                headers,
                payload,
                message_id,
                ticket,
                publisher,
            } => {
                let publish = Publish::build()
                    .payload(payload)
                    .headers(headers)
                    .message_id(message_id);
                let first = js.send_publish(subject.clone(), publish.clone()).await;
                let js = js.clone();
                let store = store.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let acked = match first {
                        Ok(ack) => {
                            ack.await.is_ok()
                                || retry(&js, &subject, &publish, started, deadline).await
                        }
                        Err(_) => retry(&js, &subject, &publish, started, deadline).await,
                    };
                    if !acked {
                        tracing::error!(
                            subject,
                            "JetStream did not acknowledge a QoS 1/2 message within the publish \
                             deadline; its publisher is disconnected without an acknowledgement \
                             (check the NATS cluster's health)"
                        );
                        if let Some(p) = &publisher {
                            p.kick(ReasonCode::ServerBusy);
                        }
                    }
                    store.complete(ticket);
                });
            }
        }
    }
}

/// Publishes again (same message id) until JetStream acknowledges or the deadline passes.
async fn retry(
    js: &jetstream::Context,
    subject: &str,
    publish: &Publish,
    started: Instant,
    deadline: Duration,
) -> bool {
    let mut backoff = Duration::from_millis(50);
    while started.elapsed() < deadline {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
        match js.send_publish(subject.to_owned(), publish.clone()).await {
            Ok(ack) => match ack.await {
                Ok(_) => return true,
                Err(e) => {
                    tracing::warn!(subject, "JetStream publish not acknowledged, retrying: {e}")
                }
            },
            Err(e) => tracing::warn!(subject, "JetStream publish failed, retrying: {e}"),
        }
    }
    false
}
