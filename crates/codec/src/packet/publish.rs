//! PUBLISH (MQTT 3.1.1 section 3.3, MQTT 5.0 section 3.3).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::MAX_REMAINING_LENGTH;
use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{
    EncodeProperties, PublishProperties, block_len, decode_properties, put_block, scope,
};
use crate::qos::{PacketId, QoS};
use crate::version::ProtocolVersion;
use crate::wire::{Reader, field_len, packet_len, put_str, put_vbi};

/// An application message in either direction.
///
/// Invariant kept by decode and checked by encode: `packet_id` is `Some` exactly when `qos` is 1
/// or 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS level.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic Name as received (may be empty in 5.0 when a Topic Alias is used).
    pub topic: ByteString,
    /// Packet Identifier (QoS 1 and 2 only).
    pub packet_id: Option<PacketId>,
    /// Properties (5.0 only).
    pub properties: PublishProperties,
    /// Application payload, a zero-copy slice of the input.
    pub payload: Bytes,
}

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;
const QOS_SHIFT: u8 = 1;

impl Publish {
    /// Decodes the variable header and payload (section 3.3.2 and 3.3.3). `flags` are the fixed
    /// header's low four bits, already checked by the decoder; `from_client` is true when a
    /// server decodes what a client sent.
    pub(crate) fn decode(
        flags: u8,
        body: Bytes,
        version: ProtocolVersion,
        from_client: bool,
    ) -> Result<Self, DecodeError> {
        let qos = QoS::from_bits((flags >> QOS_SHIFT) & 0b11).ok_or(DecodeError::malformed(
            "PUBLISH QoS bits are 3",
            "MQTT-3.3.1-4",
        ))?;
        let mut reader = Reader::new(body);
        let topic = reader.string("topic name truncated")?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce | QoS::ExactlyOnce => Some(reader.packet_id(version)?),
        };
        let properties: PublishProperties = if version.is_v5() {
            decode_properties(&mut reader, &scope::PUBLISH)?
        } else {
            PublishProperties::default()
        };
        if topic.is_empty() {
            if !version.is_v5() {
                return Err(DecodeError::protocol("topic name is empty", "MQTT-4.7.3-1"));
            }
            if properties.topic_alias.is_none() {
                return Err(DecodeError::protocol(
                    "topic name is empty and there is no topic alias",
                    "section 3.3.2.3.4",
                ));
            }
        }
        if from_client && !properties.subscription_identifiers.is_empty() {
            return Err(DecodeError::protocol(
                "PUBLISH from a client carries a subscription identifier",
                "MQTT-3.3.4-6",
            ));
        }
        Ok(Self {
            dup: flags & DUP != 0,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload: reader.rest(),
        })
    }

    /// The fixed header's low four bits: DUP, QoS and RETAIN.
    pub(crate) fn flags(&self) -> u8 {
        let mut flags = self.qos.as_u8() << QOS_SHIFT;
        if self.dup {
            flags |= DUP;
        }
        if self.retain {
            flags |= RETAIN;
        }
        flags
    }

    /// Measures the packet for `version`, checking QoS against the packet identifier, the DUP
    /// flag, the topic and every length.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, Some(_)) => {
                return Err(EncodeError::PacketIdMismatch {
                    qos: 0,
                    expectation: "must not carry a packet identifier",
                });
            }
            (QoS::AtLeastOnce | QoS::ExactlyOnce, None) => {
                return Err(EncodeError::PacketIdMismatch {
                    qos: self.qos.as_u8(),
                    expectation: "needs a packet identifier",
                });
            }
            _ => {}
        }
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(EncodeError::InvalidValue {
                what: "DUP flag on a QoS 0 PUBLISH",
            });
        }
        let v5 = version.is_v5();
        if self.topic.is_empty() && !(v5 && self.properties.topic_alias.is_some()) {
            return Err(EncodeError::InvalidValue {
                what: "empty topic name without a topic alias",
            });
        }
        let mut layout = Layout::plain(field_len(self.topic.len(), "topic name")?);
        if self.packet_id.is_some() {
            layout.remaining += 2;
        }
        if v5 {
            layout.properties = self.properties.measure()?;
            layout.remaining = layout
                .remaining
                .saturating_add(block_len(layout.properties));
        }
        layout.remaining = layout.remaining.saturating_add(self.payload.len());
        if layout.remaining > MAX_REMAINING_LENGTH {
            return Err(EncodeError::PacketTooLarge {
                len: layout.remaining,
            });
        }
        Ok(layout)
    }

    /// The exact number of bytes [`Publish::encode`] writes for `version`.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(packet_len(self.layout(version)?.remaining))
    }

    /// Appends this PUBLISH, encoded for `version`, to `buf`: the length is computed once, the
    /// buffer reserved once, and the payload copied once. On error nothing is written.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let layout = self.layout(version)?;
        buf.reserve(packet_len(layout.remaining));
        buf.put_u8(0x30 | self.flags());
        put_vbi(buf, layout.remaining);
        self.write(version, &layout, buf);
        Ok(())
    }

    /// Writes the variable header and payload measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        put_str(buf, &self.topic);
        if let Some(packet_id) = self.packet_id {
            buf.put_u16(packet_id.get());
        }
        if version.is_v5() {
            put_block(buf, &self.properties, layout.properties);
        }
        buf.put_slice(&self.payload);
    }
}
