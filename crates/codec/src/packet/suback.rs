//! SUBACK (MQTT 3.1.1 section 3.9, MQTT 5.0 section 3.9).
//!
//! 3.1.1 return codes are 0x00, 0x01, 0x02 and 0x80; any 5.0 error code encodes as 0x80.

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

/// The answer to SUBSCRIBE: one reason code per requested filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet Identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// Properties (5.0 only).
    pub properties: AckProperties,
    /// One code per filter.
    pub reasons: Vec<ReasonCode>,
}

/// The 3.1.1 SUBACK return code for `reason` (0x00, 0x01, 0x02, or 0x80 for any failure).
fn v3_return_code(reason: ReasonCode) -> Option<u8> {
    match reason {
        ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => {
            Some(reason.as_u8())
        }
        other if other.is_error() => Some(0x80),
        _ => None,
    }
}

fn from_v3_return_code(code: u8) -> Result<ReasonCode, DecodeError> {
    match code {
        0x00 => Ok(ReasonCode::Success),
        0x01 => Ok(ReasonCode::GrantedQoS1),
        0x02 => Ok(ReasonCode::GrantedQoS2),
        0x80 => Ok(ReasonCode::UnspecifiedError),
        _ => Err(DecodeError::malformed(
            "SUBACK return code is reserved",
            "MQTT-3.9.3-2",
        )),
    }
}

impl SubAck {
    /// Decodes the variable header and payload (section 3.9.2 and 3.9.3).
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let packet_id = reader.packet_id(version)?;
        let properties = if version.is_v5() {
            decode_properties(&mut reader, &scope::SUBACK)?
        } else {
            AckProperties::default()
        };
        if reader.is_empty() {
            return Err(DecodeError::protocol(
                "SUBACK carries no reason code",
                "section 3.9.3",
            ));
        }
        let codes = reader.rest();
        let reasons = codes
            .iter()
            .map(|&code| {
                if version.is_v5() {
                    ReasonCode::from_u8(code)
                        .filter(|reason| reason.is_valid_for(PacketType::SubAck))
                        .ok_or(DecodeError::malformed(
                            "reason code is not one SUBACK may carry",
                            "section 3.9.3",
                        ))
                } else {
                    from_v3_return_code(code)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            packet_id,
            properties,
            reasons,
        })
    }

    /// Measures the packet for `version`.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if self.reasons.is_empty() {
            return Err(EncodeError::InvalidValue {
                what: "SUBACK with no reason code",
            });
        }
        let mut layout = Layout::plain(2usize.saturating_add(self.reasons.len()));
        if version.is_v5() {
            if !self
                .reasons
                .iter()
                .all(|reason| reason.is_valid_for(PacketType::SubAck))
            {
                return Err(EncodeError::InvalidValue {
                    what: "reason code not allowed in SUBACK",
                });
            }
            layout.properties = self.properties.measure()?;
            layout.remaining = layout
                .remaining
                .saturating_add(block_len(layout.properties));
        } else if !self
            .reasons
            .iter()
            .all(|reason| v3_return_code(*reason).is_some())
        {
            return Err(EncodeError::NotInVersion {
                what: "this SUBACK reason code",
                version,
            });
        }
        Ok(layout)
    }

    /// Writes the variable header and payload measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            put_block(buf, &self.properties, layout.properties);
            for reason in &self.reasons {
                buf.put_u8(reason.as_u8());
            }
        } else {
            for reason in &self.reasons {
                buf.put_u8(v3_return_code(*reason).unwrap_or(0x80));
            }
        }
    }
}
