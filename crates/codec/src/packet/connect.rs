//! CONNECT (MQTT 3.1.1 section 3.1, MQTT 5.0 section 3.1).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{
    ConnectProperties, EncodeProperties, WillProperties, block_len, decode_properties, put_block,
    scope,
};
use crate::qos::QoS;
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, field_len, put_binary, put_str};

/// A client's connection request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version from the protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep Alive, seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client Identifier; may be empty.
    pub client_id: ByteString,
    /// The Will, when the Will Flag is set.
    pub will: Option<LastWill>,
    /// User Name, when its flag is set.
    pub username: Option<ByteString>,
    /// Password, when its flag is set (binary data).
    pub password: Option<Bytes>,
    /// Properties (5.0 only; empty otherwise).
    pub properties: ConnectProperties,
}

/// A Will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will Topic (not yet validated as a topic name).
    pub topic: ByteString,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// Will Properties (5.0 only; empty otherwise).
    pub properties: WillProperties,
}

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

/// Maps a protocol name and level to a version (sections 3.1.2.1 and 3.1.2.2): `MQTT` with
/// level 4 or 5, `MQIsdp` with level 3.
pub(crate) fn protocol_version(name: &[u8], level: u8) -> Result<ProtocolVersion, DecodeError> {
    match (name, level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolVersion { level }),
        _ => Err(DecodeError::Protocol {
            what: "protocol name is neither MQTT nor MQIsdp",
            rule: "MQTT-3.1.2-1",
            reason: ReasonCode::UnsupportedProtocolVersion,
        }),
    }
}

/// Checks the Connect Flags byte (section 3.1.2.3) once the version is known.
fn check_flags(flags: u8, version: ProtocolVersion) -> Result<QoS, DecodeError> {
    let v5 = version.is_v5();
    if flags & RESERVED != 0 {
        return Err(DecodeError::malformed(
            "connect flags reserved bit is set",
            "MQTT-3.1.2-3",
        ));
    }
    let will_qos = (flags >> WILL_QOS_SHIFT) & 0x03;
    if flags & WILL == 0 {
        if will_qos != 0 {
            return Err(DecodeError::malformed(
                "will QoS is set without the will flag",
                if v5 { "MQTT-3.1.2-11" } else { "MQTT-3.1.2-13" },
            ));
        }
        if flags & WILL_RETAIN != 0 {
            return Err(DecodeError::malformed(
                "will retain is set without the will flag",
                if v5 { "MQTT-3.1.2-13" } else { "MQTT-3.1.2-15" },
            ));
        }
    }
    let will_qos = QoS::from_bits(will_qos).ok_or(DecodeError::malformed(
        "will QoS is 3",
        if v5 { "MQTT-3.1.2-12" } else { "MQTT-3.1.2-14" },
    ))?;
    if !v5 && flags & PASSWORD != 0 && flags & USERNAME == 0 {
        return Err(DecodeError::malformed(
            "password flag is set without the user name flag",
            "MQTT-3.1.2-22",
        ));
    }
    Ok(will_qos)
}

impl Connect {
    /// Decodes the variable header and payload (section 3.1.2 and 3.1.3).
    pub(crate) fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let name = reader.binary("protocol name truncated")?;
        let level = reader.u8("protocol level truncated")?;
        let protocol = protocol_version(&name, level)?;
        let v5 = protocol.is_v5();
        let flags = reader.u8("connect flags truncated")?;
        let will_qos = check_flags(flags, protocol)?;
        let keep_alive = reader.u16("keep alive truncated")?;
        let properties = if v5 {
            decode_properties(&mut reader, &scope::CONNECT)?
        } else {
            Default::default()
        };
        let client_id = reader.string("client identifier truncated")?;
        let will = if flags & WILL != 0 {
            let properties = if v5 {
                decode_properties(&mut reader, &scope::WILL)?
            } else {
                Default::default()
            };
            let topic = reader.string("will topic truncated")?;
            let payload = reader.binary("will payload truncated")?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: flags & WILL_RETAIN != 0,
                properties,
            })
        } else {
            None
        };
        let username = if flags & USERNAME != 0 {
            Some(reader.string("user name truncated")?)
        } else {
            None
        };
        let password = if flags & PASSWORD != 0 {
            Some(reader.binary("password truncated")?)
        } else {
            None
        };
        reader.finish("bytes left over after the CONNECT payload")?;
        Ok(Self {
            protocol,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    /// Measures the packet for `version`, which must be its own protocol version.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if self.protocol != version {
            return Err(EncodeError::InvalidValue {
                what: "CONNECT protocol version (it must equal the encoding version)",
            });
        }
        let v5 = version.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::NotInVersion {
                what: "a password without a user name",
                version,
            });
        }
        let mut layout = Layout::default();
        // Protocol name, level, flags and keep alive.
        let mut remaining = 2 + version.protocol_name().len() + 4;
        if v5 {
            layout.properties = self.properties.measure()?;
            remaining = remaining.saturating_add(block_len(layout.properties));
        }
        remaining += field_len(self.client_id.len(), "client identifier")?;
        if let Some(will) = &self.will {
            if v5 {
                layout.will_properties = will.properties.measure()?;
                remaining = remaining.saturating_add(block_len(layout.will_properties));
            }
            remaining = remaining
                .saturating_add(field_len(will.topic.len(), "will topic")?)
                .saturating_add(field_len(will.payload.len(), "will payload")?);
        }
        if let Some(username) = &self.username {
            remaining = remaining.saturating_add(field_len(username.len(), "user name")?);
        }
        if let Some(password) = &self.password {
            remaining = remaining.saturating_add(field_len(password.len(), "password")?);
        }
        layout.remaining = remaining;
        Ok(layout)
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL | (will.qos.as_u8() << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        flags
    }

    /// Writes the variable header and payload measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        put_str(buf, version.protocol_name());
        buf.put_u8(version.level());
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        if version.is_v5() {
            put_block(buf, &self.properties, layout.properties);
        }
        put_str(buf, &self.client_id);
        if let Some(will) = &self.will {
            if version.is_v5() {
                put_block(buf, &will.properties, layout.will_properties);
            }
            put_str(buf, &will.topic);
            put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_str(buf, username);
        }
        if let Some(password) = &self.password {
            put_binary(buf, password);
        }
    }
}
