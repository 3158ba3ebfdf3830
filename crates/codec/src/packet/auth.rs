//! AUTH (MQTT 5.0 section 3.15; not part of 3.1.1).

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::properties::{
    AuthProperties, EncodeProperties, block_len, decode_properties, put_block, scope,
};
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::Reader;

/// An enhanced-authentication exchange step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// 0x00 Success, 0x18 Continue authentication or 0x19 Re-authenticate.
    pub reason: ReasonCode,
    /// Properties.
    pub properties: AuthProperties,
}

impl Auth {
    /// Decodes the variable header (section 3.15.2). Remaining Length 0 means Success without
    /// properties; otherwise a reason code and properties follow.
    pub(crate) fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        if reader.is_empty() {
            return Ok(Self {
                reason: ReasonCode::Success,
                properties: AuthProperties::default(),
            });
        }
        let code = reader.u8("reason code truncated")?;
        let reason = ReasonCode::from_u8(code)
            .filter(|reason| reason.is_valid_for(PacketType::Auth))
            .ok_or(DecodeError::malformed(
                "reason code is not one AUTH may carry",
                "section 3.15.2.1",
            ))?;
        let properties = decode_properties(&mut reader, &scope::AUTH)?;
        reader.finish("bytes left over after the AUTH properties")?;
        Ok(Self { reason, properties })
    }

    /// Measures the packet; AUTH exists in 5.0 only.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if !version.is_v5() {
            return Err(EncodeError::NotInVersion {
                what: "AUTH",
                version,
            });
        }
        if !self.reason.is_valid_for(PacketType::Auth) {
            return Err(EncodeError::InvalidValue {
                what: "reason code not allowed in AUTH",
            });
        }
        let properties = self.properties.measure()?;
        let remaining = if self.reason == ReasonCode::Success && properties == 0 {
            0
        } else {
            block_len(properties).saturating_add(1)
        };
        Ok(Layout {
            remaining,
            properties,
            will_properties: 0,
        })
    }

    /// Writes the variable header measured by `layout`.
    pub(crate) fn write(&self, layout: &Layout, buf: &mut BytesMut) {
        if layout.remaining > 0 {
            buf.put_u8(self.reason.as_u8());
            put_block(buf, &self.properties, layout.properties);
        }
    }
}
