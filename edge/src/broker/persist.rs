//! Conversions between the broker's in-memory messages and their stored form: an MQTT 5.0
//! PUBLISH packet (so read-back data goes through the same hardened decoder as network input),
//! with expiry times converted between the monotonic clock and unix milliseconds.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use stratus_codec::{Decoder, Packet, PacketId, ProtocolVersion, Publish, QoS};
use stratus_topics::TopicName;
use tokio::time::Instant;

use super::message::{Delivery, Message, SubscriptionIds};
use crate::store::StoredMessage;

/// Unix milliseconds now.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Converts a monotonic instant to unix milliseconds.
pub(crate) fn instant_to_unix_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = unix_ms_now();
    if at >= now {
        wall.saturating_add(u64::try_from((at - now).as_millis()).unwrap_or(u64::MAX))
    } else {
        wall.saturating_sub(u64::try_from((now - at).as_millis()).unwrap_or(u64::MAX))
    }
}

/// Converts unix milliseconds to a monotonic instant (clamped to now for past times).
pub(crate) fn unix_ms_to_instant(ms: u64) -> Instant {
    let wall = unix_ms_now();
    let now = Instant::now();
    if ms > wall {
        now + Duration::from_millis(ms - wall)
    } else {
        now
    }
}

/// Encodes a message with the per-delivery QoS, RETAIN and subscription identifiers.
pub(crate) fn encode_message(
    msg: &Message,
    qos: QoS,
    retain: bool,
    sub_ids: &SubscriptionIds,
) -> Bytes {
    let mut properties = msg.properties.as_deref().cloned().unwrap_or_default();
    properties.subscription_identifiers = sub_ids.to_vec();
    properties.message_expiry_interval = None;
    let publish = Publish {
        dup: false,
        qos,
        retain,
        topic: msg.topic.clone().into_inner(),
        packet_id: (qos != QoS::AtMostOnce).then_some(PacketId::MIN),
        properties,
        payload: msg.payload.clone(),
    };
    let mut buf = BytesMut::new();
    if let Err(e) = Packet::Publish(publish).encode(ProtocolVersion::V5, &mut buf) {
        // Every message we hold was decoded from a packet no larger than ours, so this means a
        // bug; store nothing rather than something undecodable.
        tracing::error!(error = %e, topic = %msg.topic, "cannot encode a message for the store");
        return Bytes::new();
    }
    buf.freeze()
}

/// The store record of a delivery.
pub(crate) fn stored_message(
    d: &Delivery,
    packet_id: Option<PacketId>,
    state: u8,
) -> StoredMessage {
    StoredMessage {
        seq: d.seq,
        packet_id: packet_id.map(PacketId::get),
        state,
        publish: encode_message(&d.msg, d.qos, d.retain, &d.subscription_ids),
        expires_at_ms: d.msg.expires_at.map(instant_to_unix_ms),
    }
}

/// A decoded stored message: the message and the per-delivery flags it was stored with.
#[derive(Debug)]
pub(crate) struct DecodedMessage {
    /// The message (its own `qos`/`retain` are the stored delivery's).
    pub(crate) msg: Arc<Message>,
    /// QoS of the delivery.
    pub(crate) qos: QoS,
    /// RETAIN of the delivery.
    pub(crate) retain: bool,
    /// Subscription identifiers of the delivery.
    pub(crate) subscription_ids: SubscriptionIds,
}

/// Decodes a stored PUBLISH; `None` (logged) when the record is corrupt.
pub(crate) fn decode_message(
    publish: &Bytes,
    expires_at_ms: Option<u64>,
) -> Option<DecodedMessage> {
    let mut decoder = Decoder::client(ProtocolVersion::V5, stratus_codec::MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(&publish[..]);
    let p = match decoder.decode(&mut buf) {
        Ok(Some(Packet::Publish(p))) if buf.is_empty() => p,
        other => {
            tracing::error!(result = ?other.map(|p| p.map(|p| p.packet_type())), "skipping a corrupt stored message");
            return None;
        }
    };
    let topic = match TopicName::new(p.topic) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "skipping a stored message with an invalid topic");
            return None;
        }
    };
    let mut properties = p.properties;
    let subscription_ids =
        SubscriptionIds::from_vec(std::mem::take(&mut properties.subscription_identifiers));
    properties.topic_alias = None;
    properties.message_expiry_interval = None;
    let has_properties = !properties.is_empty();
    Some(DecodedMessage {
        msg: Arc::new(Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: has_properties.then(|| Box::new(properties)),
            expires_at: expires_at_ms.map(unix_ms_to_instant),
        }),
        qos: p.qos,
        retain: p.retain,
        subscription_ids,
    })
}
