//! Application messages as the broker holds them: received once, shared by every subscriber
//! (`Arc<Message>`), and turned into a PUBLISH per delivery without copying topic or payload.

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use smallvec::SmallVec;
use stratus_codec::{PublishProperties, QoS};
use stratus_topics::TopicName;
use tokio::time::Instant;

use super::shared::SharedGroup;

/// One application message, immutable once routed.
#[derive(Debug)]
pub(crate) struct Message {
    /// Topic the publisher used (aliases already resolved).
    pub(crate) topic: TopicName,
    /// Payload, a slice of the publisher's read buffer (or a compact copy once queued long-term).
    pub(crate) payload: Bytes,
    /// QoS the publisher used.
    pub(crate) qos: QoS,
    /// RETAIN flag as published.
    pub(crate) retain: bool,
    /// 5.0 properties to forward (never a topic alias or subscription identifiers), boxed because
    /// most messages have none.
    pub(crate) properties: Option<Box<PublishProperties>>,
    /// When the Message Expiry Interval runs out.
    pub(crate) expires_at: Option<Instant>,
}

impl Message {
    /// True once the message's expiry interval has passed.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Seconds left of the expiry interval, rounded up, to forward to a subscriber.
    pub(crate) fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// Bytes this message accounts for in queue limits.
    pub(crate) fn weight(&self) -> usize {
        self.payload.len() + self.topic.as_str().len()
    }

    /// A copy whose payload and topic own exactly their bytes, so that a message kept for long
    /// (offline queue, retained store) does not pin the publisher's whole read buffer.
    pub(crate) fn compacted(self: &Arc<Self>) -> Arc<Self> {
        Arc::new(Self {
            topic: TopicName::try_from(self.topic.as_str()).unwrap_or_else(|_| self.topic.clone()),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
            expires_at: self.expires_at,
        })
    }
}

/// Subscription identifiers attached to one delivery (almost always zero or one).
pub(crate) type SubscriptionIds = SmallVec<[NonZeroU32; 1]>;

/// A message on its way to one session, with the QoS and flags of that subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The message.
    pub(crate) msg: Arc<Message>,
    /// QoS for this subscriber: min(message QoS, granted QoS).
    pub(crate) qos: QoS,
    /// RETAIN flag as sent to this subscriber.
    pub(crate) retain: bool,
    /// Subscription identifiers of every matching subscription.
    pub(crate) subscription_ids: SubscriptionIds,
    /// The shared-subscription group that chose this session, if any (for redispatch).
    pub(crate) group: Option<Arc<SharedGroup>>,
    /// Clustered shape: a share group's QoS 1/2 message held by a member whose session ends
    /// with its connection. JetStream keeps it until this reports the member's acknowledgement
    /// (or hands it back when the delivery is dropped first).
    pub(crate) settle: Option<Arc<crate::cluster::StreamSettle>>,
    /// Key of this delivery in the durable store (0 when it is not persisted).
    pub(crate) seq: u64,
}
