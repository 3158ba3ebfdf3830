//! UNSUBACK (MQTT 3.1.1 section 3.11, MQTT 5.0 section 3.11).

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::properties::{
    AckProperties, EncodeProperties, block_len, decode_properties, put_block, scope,
};
use crate::qos::PacketId;
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::Reader;

/// The answer to UNSUBSCRIBE. In 3.1.1 there are no reason codes (`reasons` decodes empty and is
/// not encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet Identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// Properties (5.0 only).
    pub properties: AckProperties,
    /// One code per filter (5.0 only).
    pub reasons: Vec<ReasonCode>,
}

impl UnsubAck {
    /// Decodes the variable header and payload (section 3.11.2 and 3.11.3). A 3.1.1 UNSUBACK is
    /// the packet identifier alone.
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let packet_id = reader.packet_id(version)?;
        if !version.is_v5() {
            reader.finish("bytes left over after the packet identifier")?;
            return Ok(Self {
                packet_id,
                properties: AckProperties::default(),
                reasons: Vec::new(),
            });
        }
        let properties = decode_properties(&mut reader, &scope::UNSUBACK)?;
        if reader.is_empty() {
            return Err(DecodeError::protocol(
                "UNSUBACK carries no reason code",
                "section 3.11.3",
            ));
        }
        let codes = reader.rest();
        let reasons = codes
            .iter()
            .map(|&code| {
                ReasonCode::from_u8(code)
                    .filter(|reason| reason.is_valid_for(PacketType::UnsubAck))
                    .ok_or(DecodeError::malformed(
                        "reason code is not one UNSUBACK may carry",
                        "section 3.11.3",
                    ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            packet_id,
            properties,
            reasons,
        })
    }

    /// Measures the packet for `version`; 3.1.1 has neither properties nor reason codes.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if !version.is_v5() {
            return Ok(Layout::plain(2));
        }
        if self.reasons.is_empty() {
            return Err(EncodeError::InvalidValue {
                what: "UNSUBACK with no reason code",
            });
        }
        if !self
            .reasons
            .iter()
            .all(|reason| reason.is_valid_for(PacketType::UnsubAck))
        {
            return Err(EncodeError::InvalidValue {
                what: "reason code not allowed in UNSUBACK",
            });
        }
        let properties = self.properties.measure()?;
        let remaining = block_len(properties)
            .saturating_add(2)
            .saturating_add(self.reasons.len());
        Ok(Layout {
            remaining,
            properties,
            will_properties: 0,
        })
    }

    /// Writes the variable header and payload measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            put_block(buf, &self.properties, layout.properties);
            for reason in &self.reasons {
                buf.put_u8(reason.as_u8());
            }
        }
    }
}
