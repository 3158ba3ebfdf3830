//! PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4-3.7): one shape, four packet types.
//!
//! In 5.0 the reason code and properties may be omitted when the reason is Success and there are
//! no properties (remaining length 2); the encoder uses that short form.

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::properties::scope::{self, Scope};
use crate::properties::{AckProperties, EncodeProperties, block_len, decode_properties, put_block};
use crate::qos::PacketId;
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::Reader;

/// The body of a publish acknowledgement packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet Identifier being acknowledged.
    pub packet_id: PacketId,
    /// Reason code (5.0; always Success in 3.1.1).
    pub reason: ReasonCode,
    /// Properties (5.0 only).
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgement without properties.
    pub fn success(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// The property scope and reason-code section of each acknowledgement type.
fn scope_of(kind: PacketType) -> (&'static Scope, &'static str) {
    match kind {
        PacketType::PubRec => (&scope::PUBREC, "section 3.5.2.1"),
        PacketType::PubRel => (&scope::PUBREL, "section 3.6.2.1"),
        PacketType::PubComp => (&scope::PUBCOMP, "section 3.7.2.1"),
        _ => (&scope::PUBACK, "section 3.4.2.1"),
    }
}

impl Ack {
    /// Decodes the variable header of a PUBACK, PUBREC, PUBREL or PUBCOMP (`kind`). In 3.1.1
    /// the Remaining Length is exactly 2; in 5.0, 2 means Success without properties, 3 a
    /// reason code only, and 4 or more a reason code and properties.
    pub(crate) fn decode(
        kind: PacketType,
        body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let packet_id = reader.packet_id(version)?;
        if !version.is_v5() || reader.is_empty() {
            reader.finish("bytes left over after the packet identifier")?;
            return Ok(Self::success(packet_id));
        }
        let (scope, section) = scope_of(kind);
        let code = reader.u8("reason code truncated")?;
        let reason = ReasonCode::from_u8(code)
            .filter(|reason| reason.is_valid_for(kind))
            .ok_or(DecodeError::malformed(
                "reason code not allowed in this acknowledgement",
                section,
            ))?;
        let properties = if reader.is_empty() {
            AckProperties::default()
        } else {
            decode_properties(&mut reader, scope)?
        };
        reader.finish("bytes left over after the properties")?;
        Ok(Self {
            packet_id,
            reason,
            properties,
        })
    }

    /// Measures the packet for `version`; the short forms are used whenever they say the same.
    pub(crate) fn layout(
        &self,
        kind: PacketType,
        version: ProtocolVersion,
    ) -> Result<Layout, EncodeError> {
        if !version.is_v5() {
            return Ok(Layout::plain(2));
        }
        if !self.reason.is_valid_for(kind) {
            return Err(EncodeError::InvalidValue {
                what: "reason code not allowed in this acknowledgement",
            });
        }
        let properties = self.properties.measure()?;
        let remaining = match (self.reason, properties) {
            (ReasonCode::Success, 0) => 2,
            (_, 0) => 3,
            _ => block_len(properties).saturating_add(3),
        };
        Ok(Layout {
            remaining,
            properties,
            will_properties: 0,
        })
    }

    /// Writes the variable header measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() && layout.remaining > 2 {
            buf.put_u8(self.reason.as_u8());
            if layout.remaining > 3 {
                put_block(buf, &self.properties, layout.properties);
            }
        }
    }
}
