//! Encoding [`Packet`]s for a protocol version.
//!
//! Every packet is encoded in two passes: `layout` measures the Remaining Length (and the
//! property-list lengths) while checking every limit, so an error leaves the buffer untouched;
//! then one `reserve` and the writers, which cannot fail. The Remaining Length is written in the
//! fewest bytes ([MQTT-1.5.5-1]). Properties are silently left out for 3.1 and 3.1.1, as are the
//! reason codes those versions cannot carry in acknowledgements and DISCONNECT.

use bytes::{BufMut, BytesMut};

use crate::MAX_REMAINING_LENGTH;
use crate::error::EncodeError;
use crate::packet::{Packet, PacketType};
use crate::version::ProtocolVersion;
use crate::wire::{packet_len, put_vbi};

/// The measured shape of one packet: its Remaining Length and the length of each property list
/// (without the Property Length prefix), computed once and used by the writers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Layout {
    /// The Remaining Length.
    pub(crate) remaining: usize,
    /// The packet's property list.
    pub(crate) properties: usize,
    /// CONNECT only: the Will's property list.
    pub(crate) will_properties: usize,
}

impl Layout {
    /// A packet without properties.
    pub(crate) const fn plain(remaining: usize) -> Self {
        Self {
            remaining,
            properties: 0,
            will_properties: 0,
        }
    }

    /// Fails when the Remaining Length cannot be expressed.
    pub(crate) fn checked(self) -> Result<Self, EncodeError> {
        if self.remaining > MAX_REMAINING_LENGTH {
            Err(EncodeError::PacketTooLarge {
                len: self.remaining,
            })
        } else {
            Ok(self)
        }
    }
}

impl Packet {
    /// The exact number of bytes [`Packet::encode`] writes for `version`, computed without
    /// allocating; use it to honour a peer's Maximum Packet Size before encoding.
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        Ok(packet_len(self.layout(version)?.remaining))
    }

    /// Appends the packet, encoded for `version`, to `buf`. On error nothing is written.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if let Self::Publish(publish) = self {
            return publish.encode(version, buf);
        }
        let layout = self.layout(version)?;
        buf.reserve(packet_len(layout.remaining));
        buf.put_u8(self.first_byte());
        put_vbi(buf, layout.remaining);
        match self {
            Self::Connect(connect) => connect.write(version, &layout, buf),
            Self::ConnAck(connack) => connack.write(version, &layout, buf),
            Self::Publish(publish) => publish.write(version, &layout, buf),
            Self::PubAck(ack) | Self::PubRec(ack) | Self::PubRel(ack) | Self::PubComp(ack) => {
                ack.write(version, &layout, buf);
            }
            Self::Subscribe(subscribe) => subscribe.write(version, &layout, buf),
            Self::SubAck(suback) => suback.write(version, &layout, buf),
            Self::Unsubscribe(unsubscribe) => unsubscribe.write(version, &layout, buf),
            Self::UnsubAck(unsuback) => unsuback.write(version, &layout, buf),
            Self::PingReq | Self::PingResp => {}
            Self::Disconnect(disconnect) => disconnect.write(version, &layout, buf),
            Self::Auth(auth) => auth.write(&layout, buf),
        }
        Ok(())
    }

    fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        let layout = match self {
            Self::Connect(connect) => connect.layout(version)?,
            Self::ConnAck(connack) => connack.layout(version)?,
            Self::Publish(publish) => publish.layout(version)?,
            Self::PubAck(ack) => ack.layout(PacketType::PubAck, version)?,
            Self::PubRec(ack) => ack.layout(PacketType::PubRec, version)?,
            Self::PubRel(ack) => ack.layout(PacketType::PubRel, version)?,
            Self::PubComp(ack) => ack.layout(PacketType::PubComp, version)?,
            Self::Subscribe(subscribe) => subscribe.layout(version)?,
            Self::SubAck(suback) => suback.layout(version)?,
            Self::Unsubscribe(unsubscribe) => unsubscribe.layout(version)?,
            Self::UnsubAck(unsuback) => unsuback.layout(version)?,
            Self::PingReq | Self::PingResp => Layout::plain(0),
            Self::Disconnect(disconnect) => disconnect.layout(version)?,
            Self::Auth(auth) => auth.layout(version)?,
        };
        layout.checked()
    }

    /// The first byte of the fixed header: type and flags (MQTT 5.0 table 2-2).
    fn first_byte(&self) -> u8 {
        let flags = match self {
            Self::Publish(publish) => publish.flags(),
            Self::PubRel(_) | Self::Subscribe(_) | Self::Unsubscribe(_) => 0b0010,
            _ => 0,
        };
        ((self.packet_type() as u8) << 4) | flags
    }
}
