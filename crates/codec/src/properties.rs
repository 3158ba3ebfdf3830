//! MQTT 5.0 properties (section 2.2.2): identifiers, the per-packet allowed table, duplicate
//! detection, and the typed property sets each packet carries.
//!
//! Every property set keeps `Option` for "absent" so that decode(encode(x)) == x holds exactly.
//! Decoding (`decode`) and encoding (`encode`) are driven by the per-packet table in `scope`.

mod decode;
mod encode;
pub(crate) mod scope;

pub(crate) use decode::decode_properties;
pub(crate) use encode::{EncodeProperties, block_len, put_block};

use bytes::Bytes;
use bytestring::ByteString;
use std::num::{NonZeroU16, NonZeroU32};

use crate::qos::QoS;

/// A User Property (0x26): a name/value pair, kept in the order received ([MQTT-3.3.2-18]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The property name.
    pub name: ByteString,
    /// The property value.
    pub value: ByteString,
}

/// Properties of CONNECT (section 3.1.2.11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// 0x11 Session Expiry Interval, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum; 0 is a Protocol Error.
    pub receive_maximum: Option<NonZeroU16>,
    /// 0x27 Maximum Packet Size; 0 is a Protocol Error.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x19 Request Response Information (0 or 1).
    pub request_response_information: Option<bool>,
    /// 0x17 Request Problem Information (0 or 1).
    pub request_problem_information: Option<bool>,
    /// 0x26 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data (only with a method).
    pub authentication_data: Option<Bytes>,
}

/// Properties of a Will message in CONNECT (section 3.1.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// 0x18 Will Delay Interval, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x01 Payload Format Indicator: `true` for UTF-8 payload.
    pub payload_format_indicator: Option<bool>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteString>,
    /// 0x08 Response Topic.
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of CONNACK (section 3.2.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// 0x11 Session Expiry Interval the server will use.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum of the server.
    pub receive_maximum: Option<NonZeroU16>,
    /// 0x24 Maximum QoS (only 0 or 1 may be sent; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25 Retain Available.
    pub retain_available: Option<bool>,
    /// 0x27 Maximum Packet Size the server accepts.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<ByteString>,
    /// 0x22 Topic Alias Maximum the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: Vec<UserProperty>,
    /// 0x28 Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29 Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// 0x2A Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// 0x13 Server Keep Alive, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x1A Response Information.
    pub response_information: Option<ByteString>,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteString>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// Properties of PUBLISH (section 3.3.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// 0x01 Payload Format Indicator: `true` for UTF-8 payload.
    pub payload_format_indicator: Option<bool>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x23 Topic Alias; 0 is invalid (0x94).
    pub topic_alias: Option<NonZeroU16>,
    /// 0x08 Response Topic.
    pub response_topic: Option<ByteString>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// 0x0B Subscription Identifiers (server to client only; may repeat).
    pub subscription_identifiers: Vec<NonZeroU32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteString>,
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: a reason string and user
/// properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl PublishProperties {
    /// True when nothing would be encoded (cheaper than comparing with `default()`).
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
            && self.content_type.is_none()
    }
}

impl AckProperties {
    /// True when nothing would be encoded.
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

/// Properties of SUBSCRIBE (section 3.8.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// 0x0B Subscription Identifier; 0 is a Protocol Error.
    pub subscription_identifier: Option<NonZeroU32>,
    /// 0x26 User Properties.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of UNSUBSCRIBE (section 3.10.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// 0x26 User Properties.
    pub user_properties: Vec<UserProperty>,
}

/// Properties of DISCONNECT (section 3.14.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// 0x11 Session Expiry Interval.
    pub session_expiry_interval: Option<u32>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: Vec<UserProperty>,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteString>,
}

impl DisconnectProperties {
    /// True when nothing would be encoded.
    pub fn is_empty(&self) -> bool {
        self.session_expiry_interval.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
            && self.server_reference.is_none()
    }
}

/// Properties of AUTH (section 3.15.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteString>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteString>,
    /// 0x26 User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl AuthProperties {
    /// True when nothing would be encoded.
    pub fn is_empty(&self) -> bool {
        self.authentication_method.is_none()
            && self.authentication_data.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
    }
}
