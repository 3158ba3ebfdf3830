//! DISCONNECT (MQTT 3.1.1 section 3.14, MQTT 5.0 section 3.14).

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::properties::{
    DisconnectProperties, EncodeProperties, block_len, decode_properties, put_block, scope,
};
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::Reader;

/// A disconnect notification, from either side in 5.0 (client only in 3.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (5.0; Success in 3.1.1). Remaining length 0 decodes as Success.
    pub reason: ReasonCode,
    /// Properties (5.0 only).
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A disconnect with the given reason and no properties.
    pub fn new(reason: ReasonCode) -> Self {
        Self {
            reason,
            properties: DisconnectProperties::default(),
        }
    }
}

impl Disconnect {
    /// Decodes the variable header (section 3.14.2). In 3.1.1 the Remaining Length is 0; in 5.0,
    /// 0 means Success, 1 a reason code alone, more a reason code and properties.
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        if !version.is_v5() {
            if !reader.is_empty() {
                return Err(DecodeError::malformed(
                    "DISCONNECT has a non-zero remaining length",
                    "section 3.14.1",
                ));
            }
            return Ok(Self::new(ReasonCode::Success));
        }
        if reader.is_empty() {
            return Ok(Self::new(ReasonCode::Success));
        }
        let code = reader.u8("reason code truncated")?;
        let reason = ReasonCode::from_u8(code)
            .filter(|reason| reason.is_valid_for(PacketType::Disconnect))
            .ok_or(DecodeError::malformed(
                "reason code is not one DISCONNECT may carry",
                "section 3.14.2.1",
            ))?;
        let properties = if reader.is_empty() {
            DisconnectProperties::default()
        } else {
            decode_properties(&mut reader, &scope::DISCONNECT)?
        };
        reader.finish("bytes left over after the DISCONNECT properties")?;
        Ok(Self { reason, properties })
    }

    /// Measures the packet for `version`; 3.1.1 has an empty DISCONNECT.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if !version.is_v5() {
            return Ok(Layout::plain(0));
        }
        if !self.reason.is_valid_for(PacketType::Disconnect) {
            return Err(EncodeError::InvalidValue {
                what: "reason code not allowed in DISCONNECT",
            });
        }
        let properties = self.properties.measure()?;
        let remaining = match (self.reason, properties) {
            (ReasonCode::Success, 0) => 0,
            (_, 0) => 1,
            _ => block_len(properties).saturating_add(1),
        };
        Ok(Layout {
            remaining,
            properties,
            will_properties: 0,
        })
    }

    /// Writes the variable header measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        if version.is_v5() && layout.remaining > 0 {
            buf.put_u8(self.reason.as_u8());
            if layout.remaining > 1 {
                put_block(buf, &self.properties, layout.properties);
            }
        }
    }
}
