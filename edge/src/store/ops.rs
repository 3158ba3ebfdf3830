//! The changes the broker submits to the durable store.

use bytestring::ByteString;
use stratus_model::TenantId;

use super::record::{StoredMessage, StoredSubscription, StoredWill};

/// One change to durable state. Applied in submission order.
#[derive(Debug)]
pub(crate) enum StoreOp {
    /// Creates or updates a persistent session's own fields.
    UpsertSession {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// Session Expiry Interval in force, seconds.
        expiry_secs: u32,
        /// Last packet identifier allocated for outbound messages.
        next_packet_id: u16,
    },
    /// Records that the session went offline at `disconnected_at_ms` (unix milliseconds) with a
    /// pending will, or came online (`None`).
    SetOffline {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// When it went offline.
        disconnected_at_ms: Option<u64>,
        /// The will still waiting for its delay, if any.
        will: Option<StoredWill>,
    },
    /// Removes a session with its subscriptions, messages and packet-id state.
    DeleteSession {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
    },
    /// Adds or replaces a subscription.
    PutSubscription {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The subscription.
        subscription: StoredSubscription,
    },
    /// Removes a subscription.
    DeleteSubscription {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The filter as subscribed (including any `$share/group/` prefix).
        filter: ByteString,
    },
    /// Adds a message to a session's queue.
    PutMessage {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The message.
        message: StoredMessage,
        /// Clustered shape: the JetStream stream sequence it was read at (the session's read
        /// position moves past it once this change is applied).
        stream_seq: Option<u64>,
    },
    /// Records that a queued message was sent (packet id assigned) or moved on in the QoS 2 flow.
    UpdateMessage {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The message's sequence number in the session.
        seq: u64,
        /// Packet identifier it was sent with.
        packet_id: u16,
        /// Delivery state (see [`StoredMessage::state`]).
        state: u8,
    },
    /// Removes a message (acknowledged, dropped, or redispatched).
    DeleteMessage {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The message's sequence number in the session.
        seq: u64,
    },
    /// Records an inbound QoS 2 packet identifier awaiting PUBREL.
    AddIncomingQos2 {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The packet identifier.
        packet_id: u16,
        /// The ticket of the message's own publication: the clustered store records the packet
        /// id only once that publication is durable, so a resent PUBLISH is never taken for one
        /// already stored when it was not (0: nothing to wait for).
        after: super::Ticket,
    },
    /// Forgets an inbound QoS 2 packet identifier (PUBREL received).
    RemoveIncomingQos2 {
        /// Tenant.
        tenant: TenantId,
        /// Client identifier.
        client_id: ByteString,
        /// The packet identifier.
        packet_id: u16,
    },
    /// Sets the retained message of a topic.
    PutRetained {
        /// Tenant.
        tenant: TenantId,
        /// The topic.
        topic: ByteString,
        /// The message, encoded as an MQTT 5.0 PUBLISH.
        publish: bytes::Bytes,
        /// When it expires (unix milliseconds).
        expires_at_ms: Option<u64>,
    },
    /// Clears the retained message of a topic.
    DeleteRetained {
        /// Tenant.
        tenant: TenantId,
        /// The topic.
        topic: ByteString,
    },
}
