//! SUBSCRIBE (MQTT 3.1.1 section 3.8, MQTT 5.0 section 3.8).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{
    EncodeProperties, SubscribeProperties, block_len, decode_properties, put_block, scope,
};
use crate::qos::{PacketId, QoS};
use crate::version::ProtocolVersion;
use crate::wire::{Reader, field_len, put_str};

/// A subscription request with one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// Properties (5.0 only).
    pub properties: SubscribeProperties,
    /// The requested filters, at least one ([MQTT-3.8.3-3] / [MQTT-3.8.3-2]).
    pub filters: Vec<SubscriptionRequest>,
}

/// One topic filter and its options. The filter is a UTF-8 string, not yet validated as a topic
/// filter: an invalid filter fails only its own entry (SUBACK 0x8F), not the whole packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// Topic filter as received.
    pub filter: ByteString,
    /// Subscription options.
    pub options: SubscriptionOptions,
}

/// Subscription Options byte (5.0 section 3.8.3.1; 3.1.1 only has the QoS bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (5.0).
    pub no_local: bool,
    /// Retain As Published (5.0).
    pub retain_as_published: bool,
    /// Retain Handling (5.0).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with the given QoS and every 5.0 option at its default.
    pub fn with_qos(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }
}

/// When retained messages are sent for a new subscription (5.0 section 3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    SendAtSubscribe = 0,
    /// 1: send only if the subscription does not already exist.
    SendIfNew = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

const QOS_MASK: u8 = 0b0000_0011;
const NO_LOCAL: u8 = 0b0000_0100;
const RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const RETAIN_HANDLING_SHIFT: u8 = 4;
const RESERVED_V5: u8 = 0b1100_0000;

impl SubscriptionOptions {
    /// Parses a Subscription Options byte (5.0 section 3.8.3.1; 3.1.1 section 3.8.3, where only
    /// the two QoS bits exist).
    pub(crate) fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        if !version.is_v5() {
            return match QoS::from_bits(byte) {
                Some(qos) => Ok(Self::with_qos(qos)),
                None => Err(DecodeError::malformed(
                    "requested QoS is 3 or a reserved bit is set",
                    "MQTT-3.8.3-4",
                )),
            };
        }
        if byte & RESERVED_V5 != 0 {
            return Err(DecodeError::malformed(
                "subscription options reserved bits 6-7 are set",
                "MQTT-3.8.3-5",
            ));
        }
        let qos = QoS::from_bits(byte & QOS_MASK).ok_or(DecodeError::protocol(
            "subscription maximum QoS is 3",
            "section 3.8.3.1",
        ))?;
        let retain_handling = match (byte >> RETAIN_HANDLING_SHIFT) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => {
                return Err(DecodeError::protocol(
                    "retain handling is 3",
                    "section 3.8.3.1",
                ));
            }
        };
        Ok(Self {
            qos,
            no_local: byte & NO_LOCAL != 0,
            retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    /// The options byte for `version`; 3.1.1 carries the QoS only.
    pub(crate) fn encode(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos.as_u8();
        if version.is_v5() {
            byte |= (self.retain_handling as u8) << RETAIN_HANDLING_SHIFT;
            if self.no_local {
                byte |= NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= RETAIN_AS_PUBLISHED;
            }
        }
        byte
    }
}

impl Subscribe {
    /// Decodes the variable header and payload (section 3.8.2 and 3.8.3). Filters are checked as
    /// UTF-8 strings only: filter syntax is for the engine, per filter.
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let packet_id = reader.packet_id(version)?;
        let properties = if version.is_v5() {
            decode_properties(&mut reader, &scope::SUBSCRIBE)?
        } else {
            SubscribeProperties::default()
        };
        if reader.is_empty() {
            return Err(DecodeError::protocol(
                "SUBSCRIBE carries no topic filter",
                if version.is_v5() {
                    "MQTT-3.8.3-2"
                } else {
                    "MQTT-3.8.3-3"
                },
            ));
        }
        let mut filters = Vec::new();
        while !reader.is_empty() {
            let filter = reader.string("topic filter truncated")?;
            let options = reader.u8("subscription options missing")?;
            let options = SubscriptionOptions::decode(options, version)?;
            filters.push(SubscriptionRequest { filter, options });
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    /// Measures the packet for `version`.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::InvalidValue {
                what: "SUBSCRIBE with no topic filter",
            });
        }
        let mut layout = Layout::plain(2);
        if version.is_v5() {
            layout.properties = self.properties.measure()?;
            layout.remaining = layout
                .remaining
                .saturating_add(block_len(layout.properties));
        }
        for request in &self.filters {
            let entry = field_len(request.filter.len(), "topic filter")? + 1;
            layout.remaining = layout.remaining.saturating_add(entry);
        }
        Ok(layout)
    }

    /// Writes the variable header and payload measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            put_block(buf, &self.properties, layout.properties);
        }
        for request in &self.filters {
            put_str(buf, &request.filter);
            buf.put_u8(request.options.encode(version));
        }
    }
}
