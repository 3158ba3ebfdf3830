//! `stratus-codec`: the MQTT 3.1, 3.1.1 and 5.0 wire format.
//!
//! No I/O and no async: bytes in, [`Packet`]s out, and back. Topics and payloads are zero-copy
//! slices (`bytes::Bytes`) of the input buffer. The declared packet size is checked against the
//! limit from the fixed header alone, before any allocation; an incomplete packet is "need more
//! bytes" (`Ok(None)`), never an error; no input can make the decoder panic.
//!
//! Validation here is everything the grammar decides (flags, lengths, UTF-8, property tables and
//! duplicates, value ranges). Rules that need the connection's state (topic alias mapping, receive
//! maximum, topic name versus filter syntax) belong to the protocol engine.

mod decoder;
mod encoder;
mod error;
pub mod packet;
mod properties;
mod qos;
mod reason;
mod version;
mod wire;

pub use decoder::{Decoder, peek_protocol_version};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, Publish, RetainHandling,
    SubAck, Subscribe, SubscriptionOptions, SubscriptionRequest, UnsubAck, Unsubscribe,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperty, WillProperties,
};
pub use qos::{PacketId, QoS};
pub use reason::ReasonCode;
pub use version::ProtocolVersion;

/// The largest Remaining Length the four-byte variable byte integer can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The largest whole packet (fixed header included): 1 type byte, 4 length bytes and the body.
pub const MAX_PACKET_SIZE: u32 = 268_435_460;

/// The largest value a Subscription Identifier may take.
pub const MAX_SUBSCRIPTION_IDENTIFIER: u32 = 268_435_455;
