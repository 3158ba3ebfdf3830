//! The streaming decoder: bytes from a connection in, one [`Packet`] at a time out.
//!
//! The fixed header is checked first: the type and flags against MQTT 5.0 table 2-2 (3.1.1 table
//! 2.2), then the Remaining Length, whose total is compared with the maximum packet size before
//! the body is waited for, so no declared length is ever buffered or allocated for. Only a whole
//! packet is decoded; it is split off the input and frozen, and its strings and payload are
//! zero-copy slices of it.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::packet::connect::protocol_version;
use crate::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, PacketType, Publish, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use crate::qos::QoS;
use crate::version::ProtocolVersion;
use crate::wire::parse_vbi;

/// Which end of the connection the decoder serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Decodes what a client sends; the first packet must be CONNECT.
    Server,
    /// Decodes what a server sends (or anything, for tools), version known up front.
    Client,
}

/// Decodes MQTT packets from a byte stream.
///
/// ```
/// use bytes::BytesMut;
/// use stratus_codec::{Decoder, Packet, ProtocolVersion};
///
/// let mut decoder = Decoder::server(1024);
/// let mut buf = BytesMut::from(&b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1\xc0"[..]);
/// let Some(Packet::Connect(connect)) = decoder.decode(&mut buf)? else { panic!() };
/// assert_eq!(connect.client_id, "c1");
/// assert_eq!(decoder.version(), Some(ProtocolVersion::V3_1_1));
/// assert_eq!(decoder.decode(&mut buf)?, None); // a PINGREQ has begun; need more bytes
/// # Ok::<(), stratus_codec::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    side: Side,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// A server-side decoder: the version is unknown until CONNECT, which must come first
    /// ([MQTT-3.1.0-1]); after it decodes, the decoder speaks its version. `max_packet_size`
    /// counts the whole packet, fixed header included.
    pub fn server(max_packet_size: u32) -> Self {
        Self {
            side: Side::Server,
            version: None,
            max_packet_size,
        }
    }

    /// A client-side decoder for `version`, accepting any packet type from the start.
    pub fn client(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            side: Side::Client,
            version: Some(version),
            max_packet_size,
        }
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The largest packet accepted, fixed header included.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the largest packet accepted (e.g. from a pre-authentication limit to the
    /// tenant's limit once CONNECT is accepted).
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Decodes the next packet from the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed and `buf` is untouched. `Ok(Some(packet))`: exactly
    /// that packet's bytes were removed from `buf`. `Err`: the connection must be closed (after
    /// a CONNACK or DISCONNECT with [`DecodeError::reason_code`] where the protocol allows);
    /// what is left in `buf` is then unspecified.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some((&first_byte, rest)) = buf.split_first() else {
            return Ok(None);
        };
        let kind = self.packet_type(first_byte)?;
        let Some((remaining, length_bytes)) = parse_vbi(rest)? else {
            return Ok(None);
        };
        let header = 1 + length_bytes;
        let size = header as u64 + u64::from(remaining);
        if size > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        self.check_fixed_size(kind, remaining)?;
        let size = usize::try_from(size).map_err(|_| DecodeError::PacketTooLarge {
            size,
            max: self.max_packet_size,
        })?;
        if buf.len() < size {
            return Ok(None);
        }
        let mut body = buf.split_to(size).freeze();
        body.advance(header);
        self.decode_body(kind, first_byte, body).map(Some)
    }

    fn packet_type(&self, first_byte: u8) -> Result<PacketType, DecodeError> {
        match self.version {
            Some(version) => packet_type(first_byte, version),
            None if first_byte == 0x10 => Ok(PacketType::Connect),
            None if first_byte >> 4 == 1 => Err(DecodeError::malformed(
                "CONNECT fixed-header flags are not 0",
                "MQTT-2.1.3-1",
            )),
            None => Err(DecodeError::FirstPacketNotConnect { first_byte }),
        }
    }

    /// Rejects, from the fixed header alone, a Remaining Length that a fixed-size packet cannot
    /// have, so that the body is not waited for.
    fn check_fixed_size(&self, kind: PacketType, remaining: u32) -> Result<(), DecodeError> {
        let v3 = self.version.is_some_and(|version| !version.is_v5());
        let (what, rule) = match kind {
            PacketType::PingReq if remaining != 0 => {
                ("PINGREQ has a non-zero remaining length", "section 3.12.1")
            }
            PacketType::PingResp if remaining != 0 => {
                ("PINGRESP has a non-zero remaining length", "section 3.13.1")
            }
            PacketType::Disconnect if v3 && remaining != 0 => (
                "DISCONNECT has a non-zero remaining length",
                "section 3.14.1",
            ),
            PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::UnsubAck
                if v3 && remaining != 2 =>
            {
                ("acknowledgement remaining length is not 2", "section 2.1.4")
            }
            _ => return Ok(()),
        };
        Err(DecodeError::malformed(what, rule))
    }

    fn decode_body(
        &mut self,
        kind: PacketType,
        first_byte: u8,
        body: Bytes,
    ) -> Result<Packet, DecodeError> {
        // Every packet but CONNECT needs the version, which the server side knows from CONNECT
        // on (`packet_type` let nothing else through before it).
        let known = self.version;
        let version = || known.ok_or(DecodeError::FirstPacketNotConnect { first_byte });
        let flags = first_byte & 0x0F;
        let packet = match kind {
            PacketType::Connect => {
                let connect = Connect::decode(body)?;
                if self.version.is_none() {
                    self.version = Some(connect.protocol);
                }
                Packet::Connect(Box::new(connect))
            }
            PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(body, version()?)?),
            PacketType::Publish => {
                let from_client = self.side == Side::Server;
                Packet::Publish(Publish::decode(flags, body, version()?, from_client)?)
            }
            PacketType::PubAck => Packet::PubAck(Ack::decode(kind, body, version()?)?),
            PacketType::PubRec => Packet::PubRec(Ack::decode(kind, body, version()?)?),
            PacketType::PubRel => Packet::PubRel(Ack::decode(kind, body, version()?)?),
            PacketType::PubComp => Packet::PubComp(Ack::decode(kind, body, version()?)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(body, version()?)?),
            PacketType::SubAck => Packet::SubAck(SubAck::decode(body, version()?)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(body, version()?)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(body, version()?)?),
            PacketType::PingReq => Packet::PingReq,
            PacketType::PingResp => Packet::PingResp,
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(body, version()?)?),
            PacketType::Auth => Packet::Auth(Auth::decode(body)?),
        };
        Ok(packet)
    }
}

/// Checks a fixed header's first byte for a connection speaking `version`: the packet type must
/// exist and the flags must be those of MQTT 5.0 table 2-2 (3.1.1 table 2.2).
fn packet_type(first_byte: u8, version: ProtocolVersion) -> Result<PacketType, DecodeError> {
    let flags = first_byte & 0x0F;
    let reserved_rule = if version.is_v5() {
        "MQTT-2.1.3-1"
    } else {
        "MQTT-2.2.2-1"
    };
    let (kind, expected, rule) = match first_byte >> 4 {
        1 => (PacketType::Connect, 0, reserved_rule),
        2 => (PacketType::ConnAck, 0, reserved_rule),
        3 => {
            if (flags >> 1) & 0b11 == 3 {
                return Err(DecodeError::malformed(
                    "PUBLISH QoS bits are 3",
                    "MQTT-3.3.1-4",
                ));
            }
            if QoS::from_bits((flags >> 1) & 0b11) == Some(QoS::AtMostOnce) && flags & 0b1000 != 0 {
                return Err(DecodeError::malformed(
                    "DUP flag on a QoS 0 PUBLISH",
                    "MQTT-3.3.1-2",
                ));
            }
            return Ok(PacketType::Publish);
        }
        4 => (PacketType::PubAck, 0, reserved_rule),
        5 => (PacketType::PubRec, 0, reserved_rule),
        6 => (PacketType::PubRel, 0b0010, "MQTT-3.6.1-1"),
        7 => (PacketType::PubComp, 0, reserved_rule),
        8 => (PacketType::Subscribe, 0b0010, "MQTT-3.8.1-1"),
        9 => (PacketType::SubAck, 0, reserved_rule),
        10 => (PacketType::Unsubscribe, 0b0010, "MQTT-3.10.1-1"),
        11 => (PacketType::UnsubAck, 0, reserved_rule),
        12 => (PacketType::PingReq, 0, reserved_rule),
        13 => (PacketType::PingResp, 0, reserved_rule),
        14 => (PacketType::Disconnect, 0, reserved_rule),
        15 if version.is_v5() => (PacketType::Auth, 0, reserved_rule),
        15 => {
            return Err(DecodeError::malformed(
                "packet type 15 is reserved before MQTT 5.0",
                "section 2.2.1",
            ));
        }
        _ => {
            return Err(DecodeError::malformed(
                "packet type 0 is reserved",
                "section 2.1.2",
            ));
        }
    };
    if flags != expected {
        return Err(DecodeError::malformed(
            "fixed-header flags are not the reserved value",
            rule,
        ));
    }
    Ok(kind)
}

/// Reads the protocol version from the first bytes of a connection, which may hold only part
/// of a CONNECT: `Some` once the fixed header, protocol name and level are readable, lie within
/// the declared Remaining Length and name a version we speak.
///
/// Lets a server answer a CONNECT that is too large or broken with a CONNACK in the client's
/// format.
pub fn peek_protocol_version(buf: &[u8]) -> Option<ProtocolVersion> {
    let (&first_byte, rest) = buf.split_first()?;
    if first_byte != 0x10 {
        return None;
    }
    let (remaining, length_bytes) = parse_vbi(rest).ok()??;
    let body = rest.get(length_bytes..)?;
    let name_len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
    // Name length prefix, name and level must all lie inside the packet.
    if 2 + name_len + 1 > usize::try_from(remaining).ok()? {
        return None;
    }
    let name = body.get(2..2 + name_len)?;
    let level = *body.get(2 + name_len)?;
    protocol_version(name, level).ok()
}
