//! CONNACK (MQTT 3.1.1 section 3.2, MQTT 5.0 section 3.2).
//!
//! 3.1.1 return codes map onto [`ReasonCode`]: 0 Success, 1 UnsupportedProtocolVersion,
//! 2 ClientIdentifierNotValid, 3 ServerUnavailable, 4 BadUserNameOrPassword, 5 NotAuthorized.
//! Encoding a 5.0-only code for 3.1.1 picks the closest 3.1.1 code (see `v3_return_code`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::properties::{
    ConnAckProperties, EncodeProperties, block_len, decode_properties, put_block, scope,
};
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::Reader;

/// The server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Connect reason code (5.0) or the mapped return code (3.1.1).
    pub reason: ReasonCode,
    /// Properties (5.0 only).
    pub properties: ConnAckProperties,
}

const SESSION_PRESENT: u8 = 0x01;

/// The 3.1.1 (and 3.1) return code for `reason`: the six codes those versions define, and the
/// closest of them for a 5.0-only failure. `None` for a success-class code other than Success.
pub(crate) fn v3_return_code(reason: ReasonCode) -> Option<u8> {
    let code = match reason {
        ReasonCode::Success => 0,
        ReasonCode::UnsupportedProtocolVersion => 1,
        ReasonCode::ClientIdentifierNotValid => 2,
        ReasonCode::BadUserNameOrPassword => 4,
        ReasonCode::NotAuthorized | ReasonCode::BadAuthenticationMethod | ReasonCode::Banned => 5,
        other if other.is_error() => 3,
        _ => return None,
    };
    Some(code)
}

/// The reason code a 3.1.1 return code stands for; `None` for the reserved values 6-255.
fn from_v3_return_code(code: u8) -> Option<ReasonCode> {
    Some(match code {
        0 => ReasonCode::Success,
        1 => ReasonCode::UnsupportedProtocolVersion,
        2 => ReasonCode::ClientIdentifierNotValid,
        3 => ReasonCode::ServerUnavailable,
        4 => ReasonCode::BadUserNameOrPassword,
        5 => ReasonCode::NotAuthorized,
        _ => return None,
    })
}

impl ConnAck {
    /// Decodes the variable header (section 3.2.2).
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let mut flags = reader.u8("connect acknowledge flags truncated")?;
        if version == ProtocolVersion::V3_1 {
            // MQTT 3.1 has no Session Present flag: the byte is reserved and not used.
            flags = 0;
        }
        if flags & !SESSION_PRESENT != 0 {
            return Err(DecodeError::malformed(
                "connect acknowledge flags bits 7-1 are set",
                "MQTT-3.2.2-1",
            ));
        }
        let code = reader.u8("connect reason code truncated")?;
        let (reason, properties) = if version.is_v5() {
            let reason = ReasonCode::from_u8(code)
                .filter(|reason| reason.is_valid_for(PacketType::ConnAck))
                .ok_or(DecodeError::malformed(
                    "reason code is not one CONNACK may carry",
                    "section 3.2.2.2",
                ))?;
            (reason, decode_properties(&mut reader, &scope::CONNACK)?)
        } else {
            let reason = from_v3_return_code(code).ok_or(DecodeError::malformed(
                "connect return code is reserved",
                "section 3.2.2.3",
            ))?;
            (reason, ConnAckProperties::default())
        };
        reader.finish("bytes left over after the CONNACK fields")?;
        Ok(Self {
            session_present: flags & SESSION_PRESENT != 0,
            reason,
            properties,
        })
    }

    /// Measures the packet for `version`.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if !version.is_v5() {
            return v3_return_code(self.reason).map(|_| Layout::plain(2)).ok_or(
                EncodeError::NotInVersion {
                    what: "this CONNACK reason code",
                    version,
                },
            );
        }
        if !self.reason.is_valid_for(PacketType::ConnAck) {
            return Err(EncodeError::InvalidValue {
                what: "reason code not allowed in CONNACK",
            });
        }
        let properties = self.properties.measure()?;
        Ok(Layout {
            remaining: block_len(properties).saturating_add(2),
            properties,
            will_properties: 0,
        })
    }

    /// Writes the variable header measured by `layout`. MQTT 3.1 has no Session Present flag
    /// (the byte is reserved), so it is written as 0 there.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        let session_present = self.session_present && version != ProtocolVersion::V3_1;
        buf.put_u8(if session_present { SESSION_PRESENT } else { 0 });
        if version.is_v5() {
            buf.put_u8(self.reason.as_u8());
            put_block(buf, &self.properties, layout.properties);
        } else {
            buf.put_u8(v3_return_code(self.reason).unwrap_or(3));
        }
    }
}
