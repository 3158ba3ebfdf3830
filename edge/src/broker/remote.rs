//! Routing a message that arrived from the cluster backbone. NATS delivers one copy per
//! subscription of this edge, so a message matching several local filters arrives several
//! times: each session takes it from exactly one of them, the smallest (as a string) of its own
//! matching filters, and gets one delivery with the highest QoS and every subscription
//! identifier of its matching subscriptions, as in the embedded shape. Share groups receive
//! messages only through their own queue subscription.
//!
//! A persistent session takes QoS 1/2 messages matching one of its QoS 1/2 subscriptions from
//! its stream reader ([`Broker::offer_from_stream`]), never from these core subscriptions; the
//! core path gives it only QoS 0 deliveries, and only while it is attached.

use std::sync::Arc;

use bytestring::ByteString;
use stratus_codec::QoS;
use stratus_topics::{TopicFilter, TopicName};

use super::Broker;
use super::message::{Delivery, Message, SubscriptionIds};
use super::router::RouteResult;
use super::session::{EnqueueContext, Session, SessionId};
use super::tenant::{Subscriber, Tenant};
use crate::store::Ticket;

/// Which NATS subscription a message came through.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// The subscription of this (non-shared) filter.
    Filter(ByteString),
    /// The queue subscription of this share group (`$share/<group>/<filter>`).
    Group(ByteString),
}

impl Broker {
    /// Delivers a message from the backbone to the local subscribers it is meant for.
    pub(crate) fn route_remote(
        &self,
        tenant: &Tenant,
        msg: &Arc<Message>,
        origin: Option<SessionId>,
        via: &Via,
    ) -> RouteResult {
        let mut ctx = self.enqueue_context();
        let mut result = RouteResult::default();
        match via {
            Via::Group(raw) => {
                let group = tenant.shared_groups.lock().get(&**raw).cloned();
                if let Some(group) = group {
                    self.dispatch_shared(tenant, &group, msg, None, None, &mut ctx, &mut result);
                }
            }
            Via::Filter(filter) => {
                let mut matches = Vec::new();
                tenant
                    .subscriptions
                    .read()
                    .for_each_match(&msg.topic, |sub, entry| {
                        if let Subscriber::Session(s) = sub {
                            matches.push((Arc::clone(s), *entry));
                        }
                    });
                matches.sort_unstable_by_key(|(s, _)| s.id);
                let mut i = 0;
                while i < matches.len() {
                    let session = Arc::clone(&matches[i].0);
                    let mut j = i;
                    let mut qos: Option<QoS> = None;
                    let mut retain_as_published = false;
                    let mut ids = SubscriptionIds::new();
                    while j < matches.len() && matches[j].0.id == session.id {
                        let entry = &matches[j].1;
                        j += 1;
                        if entry.options.no_local && origin == Some(session.id) {
                            continue;
                        }
                        qos = Some(qos.map_or(entry.options.qos, |q| q.max(entry.options.qos)));
                        retain_as_published |= entry.options.retain_as_published;
                        if let Some(id) = entry.id {
                            ids.push(id);
                        }
                    }
                    let single = j - i == 1;
                    i = j;
                    let Some(granted) = qos else { continue };
                    if !takes_via(
                        &session,
                        &msg.topic,
                        filter,
                        single,
                        msg.qos,
                        self.config.limits.queue_qos0_messages,
                    ) {
                        continue;
                    }
                    let delivery = Delivery {
                        msg: Arc::clone(msg),
                        qos: msg.qos.min(granted),
                        retain: msg.retain && retain_as_published,
                        subscription_ids: ids,
                        group: None,
                        settle: None,
                        seq: 0,
                    };
                    let outcome = session.enqueue(delivery, &mut ctx);
                    self.count_outcome(tenant, outcome, &mut result);
                }
            }
        }
        result
    }
}

/// Whether `session` takes a message on `topic` from the copy that came through `via`: `via` is
/// the smallest of the session's own non-shared filters matching the topic. A persistent session
/// takes no QoS 1/2 message one of its QoS 1/2 subscriptions matches (its stream reader delivers
/// those), and while offline only QoS 0 deliveries, if `queue_qos0` (as in the embedded shape).
fn takes_via(
    session: &Session,
    topic: &TopicName,
    via: &str,
    single: bool,
    qos: QoS,
    queue_qos0: bool,
) -> bool {
    let st = session.state.lock();
    let persistent = st.is_persistent();
    if persistent && st.attachment.is_none() && !queue_qos0 {
        return false;
    }
    let mut smallest: Option<&str> = None;
    let mut matching = 0;
    for sub in st.subscriptions.iter() {
        let raw = &*sub.raw;
        if raw.starts_with("$share/") {
            continue;
        }
        let matches =
            raw == via || TopicFilter::new(ByteString::from(raw)).is_ok_and(|f| f.matches(topic));
        if matches {
            if persistent && qos != QoS::AtMostOnce && sub.options.qos != QoS::AtMostOnce {
                return false;
            }
            matching += 1;
            smallest = Some(smallest.map_or(raw, |s| s.min(raw)));
            // One matching subscription, and it is `via`: nothing else to compare.
            if single && raw == via && !persistent {
                return true;
            }
        }
    }
    matching > 0 && smallest == Some(via)
}

/// What became of a message a stream reader offered to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued (or dropped by a full queue, and counted): move on.
    Queued,
    /// Not for this session (a subscription made after it, No Local): move on.
    NotForSession,
    /// The session's queue is above half its limit: wait for the reader's wake-up, then offer
    /// it again.
    Full,
    /// The connection the reader serves is gone: stop.
    Detached,
}

impl Broker {
    /// Offers a message read from the stream at `seq` to one persistent session attached at
    /// `generation` (or, with `None`, offline and being caught up before its CONNACK): one delivery with the highest QoS granted by its matching subscriptions and
    /// every subscription identifier, if one of its QoS 1/2 subscriptions made before `seq`
    /// matches.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn offer_from_stream(
        &self,
        tenant: &Tenant,
        session: &Session,
        generation: Option<u64>,
        msg: &Arc<Message>,
        origin: Option<SessionId>,
        seq: u64,
        subs: &[crate::cluster::ReaderSub],
        waiter: &Arc<super::ConnControl>,
    ) -> Offer {
        let mut granted: Option<QoS> = None;
        let mut retain_as_published = false;
        let mut ids = SubscriptionIds::new();
        let mut started = false;
        for sub in subs {
            if !sub.filter.matches(&msg.topic) {
                continue;
            }
            if sub.options.no_local && origin == Some(session.id) {
                continue;
            }
            if sub.options.qos != QoS::AtMostOnce && sub.since < seq {
                started = true;
            }
            granted = Some(granted.map_or(sub.options.qos, |q| q.max(sub.options.qos)));
            retain_as_published |= sub.options.retain_as_published;
            if let Some(id) = sub.id {
                ids.push(id);
            }
        }
        let Some(granted) = granted.filter(|_| started) else {
            return Offer::NotForSession;
        };
        {
            let mut st = session.state.lock();
            if st.ended || generation.is_some_and(|g| !st.is_attached(g)) {
                return Offer::Detached;
            }
            if generation.is_some() && st.reader_should_wait(&self.config.limits, waiter) {
                return Offer::Full;
            }
        }
        let mut ctx = EnqueueContext {
            stream_seq: Some(seq),
            ..self.enqueue_context()
        };
        let delivery = Delivery {
            msg: Arc::clone(msg),
            qos: msg.qos.min(granted),
            retain: msg.retain && retain_as_published,
            subscription_ids: ids,
            group: None,
            settle: None,
            seq: 0,
        };
        let outcome = session.enqueue(delivery, &mut ctx);
        let mut result = RouteResult::default();
        self.count_outcome(tenant, outcome, &mut result);
        Offer::Queued
    }

    /// A message of a resumed session's offline backlog beyond `limits.max_queued_messages`:
    /// dropped and counted, as the embedded shape drops what does not fit an offline queue.
    pub(crate) fn drop_from_backlog(&self, tenant: &Tenant, session: &Session) {
        let mut st = session.state.lock();
        st.dropped += 1;
        if st.dropped.is_power_of_two() {
            tracing::warn!(
                tenant = %tenant.id,
                client_id = %session.client_id,
                dropped = st.dropped,
                "offline backlog beyond limits.max_queued_messages dropped on resume"
            );
        }
        drop(st);
        let mut result = RouteResult::default();
        self.count_outcome(tenant, super::session::EnqueueOutcome::Dropped, &mut result);
    }
}

/// What became of a share group's message pulled from its durable consumer.
#[derive(Debug)]
pub(crate) enum GroupOffer {
    /// A member whose session ends with its connection holds it, with its settle handle.
    Held,
    /// A persistent member's session took it (or a member at QoS 0 did): acknowledge once
    /// this ticket committed.
    Stored(Ticket),
    /// No member could take it.
    Unplaced,
}

impl Broker {
    /// Gives a message of share group `raw`'s durable consumer to one local member: attached
    /// members first, round-robin, then offline persistent ones, as [`Broker::dispatch_shared`].
    pub(crate) fn offer_to_group(
        &self,
        tenant: &Tenant,
        raw: &str,
        msg: &Arc<Message>,
        settle: &Arc<crate::cluster::StreamSettle>,
    ) -> GroupOffer {
        let Some(group) = tenant.shared_groups.lock().get(raw).cloned() else {
            return GroupOffer::Unplaced;
        };
        let mut ctx = self.enqueue_context();
        let mut result = RouteResult::default();
        self.dispatch_shared(
            tenant,
            &group,
            msg,
            None,
            Some(settle),
            &mut ctx,
            &mut result,
        )
    }
}
