//! Shared subscription groups at QoS 1/2 across edges: one durable JetStream consumer per
//! (tenant, `$share/<group>/<filter>`), pulled by every edge with a member of the group. Each
//! message of the stream that matches the filter is handed to one puller, which gives it to one
//! of its members; JetStream keeps it until it hears what became of it:
//!
//! - a member whose session ends with its connection (clean session) holds it as a
//!   [`StreamSettle`]: acknowledged when the member acknowledges it (PUBACK, or PUBREC for QoS
//!   2), handed back (NAK) if the delivery is dropped first (the member left, its queue was
//!   full), so JetStream redelivers it to a member on any edge;
//! - a persistent member's session stores it (Redis) like any queued message: acknowledged once
//!   stored, the session then owns it;
//! - no member could take it: handed back with a delay.
//!
//! If this edge dies, JetStream redelivers what it had not acknowledged after `ack_wait` to the
//! pullers of the other edges. QoS 0 messages still reach groups through core NATS queue
//! subscriptions (`interest.rs`), which now carry only the QoS 0 subjects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use bytestring::ByteString;
use futures_util::StreamExt;
use stratus_model::TenantId;
use stratus_topics::{FilterSpec, QosClass};
use tokio::sync::mpsc;

use super::{ClusterLink, wire};
use crate::broker::GroupOffer;
use crate::store::Ticket;

/// Messages one pull asks for: small, so a message waits on an edge whose members are busy
/// no longer than it must while members on other edges could take it.
const PULL_BATCH: usize = 16;

/// How long one pull waits for messages (a stopped puller ends within this).
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// How long a message no member could take waits before JetStream offers it again.
const UNPLACED_DELAY: Duration = Duration::from_millis(500);

/// What this edge tells JetStream about a shared group's message.
pub(crate) type Verdict = (Subject, AckKind);

/// A shared group's QoS 1/2 message on its way to one member: it tells JetStream once what
/// became of it. Dropped without a verdict, it hands the message back (NAK).
#[derive(Debug)]
pub(crate) struct StreamSettle {
    reply: Subject,
    verdicts: mpsc::UnboundedSender<Verdict>,
    done: AtomicBool,
}

impl StreamSettle {
    fn new(reply: Subject, verdicts: mpsc::UnboundedSender<Verdict>) -> Self {
        Self {
            reply,
            verdicts,
            done: AtomicBool::new(false),
        }
    }

    /// The member has the message: JetStream forgets it.
    pub(crate) fn ack(&self) {
        self.send(AckKind::Ack);
    }

    fn send(&self, kind: AckKind) {
        if !self.done.swap(true, Ordering::AcqRel) {
            // The settle task is gone only at shutdown; JetStream then redelivers after
            // `ack_wait`.
            let _ = self.verdicts.send((self.reply.clone(), kind));
        }
    }
}

impl Drop for StreamSettle {
    fn drop(&mut self) {
        self.send(AckKind::Nak(None));
    }
}

/// Sends the verdicts of this edge's shared group messages to JetStream (a verdict is a core
/// NATS publish to the message's reply subject; one lost is covered by `ack_wait`).
pub(super) async fn send_verdicts(
    nats: async_nats::Client,
    mut verdicts: mpsc::UnboundedReceiver<Verdict>,
) {
    while let Some((reply, kind)) = verdicts.recv().await {
        if let Err(e) = nats.publish(reply, kind.into()).await {
            tracing::warn!(
                "shared group acknowledgement not sent (JetStream redelivers after ack_wait): {e}"
            );
        }
    }
}

/// The durable consumer name of a share group: `sg_` and a digest of tenant and raw filter.
fn consumer_name(tenant: &TenantId, raw: &str) -> String {
    format!("sg_{}", stratus_topics::client_key(tenant.as_str(), raw))
}

impl ClusterLink {
    /// Creates (or opens) the durable consumer of a share group: the QoS 1/2 subjects of its
    /// filter in the tenant's space, explicit acknowledgements within `shared_ack_wait`, at most
    /// `shared_max_ack_pending` messages out at once, starting with messages published after its
    /// creation; JetStream deletes it once no edge pulled it for `stream_max_age`.
    pub(super) async fn group_consumer(
        &self,
        tenant: &TenantId,
        raw: &str,
        spec: &FilterSpec,
    ) -> Result<PullConsumer, String> {
        let space = self.space(tenant).map_err(|e| e.to_string())?;
        let mut subjects = space.filter_subjects(&spec.filter, Some(QosClass::Durable));
        let name = consumer_name(tenant, raw);
        let mut config = pull::Config {
            durable_name: Some(name.clone()),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.settings.shared_ack_wait,
            max_ack_pending: i64::try_from(self.settings.shared_max_ack_pending)
                .unwrap_or(i64::MAX),
            inactive_threshold: self.settings.stream_max_age,
            ..Default::default()
        };
        if subjects.len() == 1 {
            config.filter_subject = subjects.pop().unwrap_or_default();
        } else {
            config.filter_subjects = subjects;
        }
        let js = async_nats::jetstream::new(self.nats.clone());
        let stream = js
            .get_stream(super::publisher::stream_name(&self.settings.pool))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Pulls a share group's messages and gives each to one local member, until `stop` is set;
/// what the last pull brings after that goes straight back to JetStream.
pub(super) async fn pull_group(
    link: Arc<ClusterLink>,
    tenant_id: TenantId,
    raw: ByteString,
    consumer: PullConsumer,
    stop: Arc<AtomicBool>,
) {
    // Ends once this puller is stopped and what it handed over is acknowledged.
    let (stored_tx, stored_rx) = mpsc::unbounded_channel();
    tokio::spawn(ack_when_stored(Arc::clone(&link), stored_rx));
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        let mut messages = match consumer
            .batch()
            .max_messages(PULL_BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(tenant = %tenant_id, group = %raw, "share group consumer cannot pull, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        while let Some(item) = messages.next().await {
            let m = match item {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(tenant = %tenant_id, group = %raw, "share group consumer interrupted, pulling again: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    break;
                }
            };
            backoff = Duration::from_millis(100);
            let Some(reply) = m.reply.clone() else {
                continue;
            };
            let settle = Arc::new(StreamSettle::new(reply, link.verdicts.clone()));
            if stop.load(Ordering::Acquire) {
                // Dropping `settle` hands the message back at once.
                continue;
            }
            let Some(received) = wire::decode(&m.payload, m.headers.as_ref(), &link.incarnation)
            else {
                tracing::warn!(subject = %m.subject, "undecodable message in the stream dropped from a share group");
                settle.send(AckKind::Term);
                continue;
            };
            let Some(broker) = link.broker() else { return };
            let tenant = broker.tenant(&tenant_id);
            match broker.offer_to_group(&tenant, &raw, &received.msg, &settle) {
                GroupOffer::Held => {}
                GroupOffer::Stored(ticket) => {
                    let _ = stored_tx.send((ticket, settle));
                }
                GroupOffer::Unplaced => settle.send(AckKind::Nak(Some(UNPLACED_DELAY))),
            }
        }
    }
}

/// Acknowledges messages given to persistent members once their store writes committed (in
/// ticket order, which is commit order).
async fn ack_when_stored(
    link: Arc<ClusterLink>,
    mut stored: mpsc::UnboundedReceiver<(Ticket, Arc<StreamSettle>)>,
) {
    while let Some((ticket, settle)) = stored.recv().await {
        if ticket != 0 {
            let Some(broker) = link.broker() else { return };
            std::future::poll_fn(|cx| {
                if broker.store.wake_when_committed(ticket, cx.waker()) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
        settle.ack();
    }
}
