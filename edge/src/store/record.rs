//! What the store gives back at start-up. Read-back data is untrusted: messages are stored as
//! MQTT 5.0 PUBLISH packets and decoded with the same codec as network input.

use bytes::Bytes;
use bytestring::ByteString;

/// Everything loaded at start-up.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Persistent sessions with their state.
    pub(crate) sessions: Vec<StoredSession>,
    /// Retained messages.
    pub(crate) retained: Vec<StoredRetained>,
}

/// A persistent session as stored.
#[derive(Debug)]
pub(crate) struct StoredSession {
    /// Tenant slug (validated again on load).
    pub(crate) tenant: String,
    /// Client identifier.
    pub(crate) client_id: ByteString,
    /// Session Expiry Interval, seconds.
    pub(crate) expiry_secs: u32,
    /// When it went offline (unix ms); `None` if it was online when the process stopped.
    pub(crate) disconnected_at_ms: Option<u64>,
    /// Last outbound packet identifier allocated.
    pub(crate) next_packet_id: u16,
    /// Pending will.
    pub(crate) will: Option<StoredWill>,
    /// Subscriptions.
    pub(crate) subscriptions: Vec<StoredSubscription>,
    /// Queued and in-flight messages, in sequence order.
    pub(crate) messages: Vec<StoredMessage>,
    /// Inbound QoS 2 packet identifiers awaiting PUBREL.
    pub(crate) incoming_qos2: Vec<u16>,
}

/// A subscription as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredSubscription {
    /// The filter as subscribed, including any `$share/group/` prefix.
    pub(crate) filter: ByteString,
    /// The MQTT 5.0 subscription options byte.
    pub(crate) options: u8,
    /// Subscription identifier.
    pub(crate) subscription_id: Option<u32>,
}

/// A queued or in-flight message as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    /// Order within the session.
    pub(crate) seq: u64,
    /// Packet identifier, once sent.
    pub(crate) packet_id: Option<u16>,
    /// 0 queued, 1 awaiting PUBACK, 2 awaiting PUBREC, 3 awaiting PUBCOMP (PUBREL sent).
    pub(crate) state: u8,
    /// The delivery (QoS, RETAIN and subscription identifiers as sent to this session) encoded as
    /// an MQTT 5.0 PUBLISH.
    pub(crate) publish: Bytes,
    /// When it expires (unix ms).
    pub(crate) expires_at_ms: Option<u64>,
}

/// A will waiting for its delay, as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredWill {
    /// The will message encoded as an MQTT 5.0 PUBLISH.
    pub(crate) publish: Bytes,
    /// When it is due (unix ms).
    pub(crate) due_at_ms: u64,
    /// Its Message Expiry Interval, seconds, counted from when it is published.
    pub(crate) expiry_secs: Option<u32>,
}

/// A retained message as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredRetained {
    /// Tenant slug.
    pub(crate) tenant: String,
    /// The message encoded as an MQTT 5.0 PUBLISH.
    pub(crate) publish: Bytes,
    /// When it expires (unix ms).
    pub(crate) expires_at_ms: Option<u64>,
}
