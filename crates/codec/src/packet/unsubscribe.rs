//! UNSUBSCRIBE (MQTT 3.1.1 section 3.10, MQTT 5.0 section 3.10).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::encoder::Layout;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{
    EncodeProperties, UnsubscribeProperties, block_len, decode_properties, put_block, scope,
};
use crate::qos::PacketId;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, field_len, put_str};

/// A request to remove one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// Properties (5.0 only).
    pub properties: UnsubscribeProperties,
    /// Topic filters as received, at least one ([MQTT-3.10.3-2]).
    pub filters: Vec<ByteString>,
}

impl Unsubscribe {
    /// Decodes the variable header and payload (section 3.10.2 and 3.10.3).
    pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(body);
        let packet_id = reader.packet_id(version)?;
        let properties = if version.is_v5() {
            decode_properties(&mut reader, &scope::UNSUBSCRIBE)?
        } else {
            UnsubscribeProperties::default()
        };
        if reader.is_empty() {
            return Err(DecodeError::protocol(
                "UNSUBSCRIBE carries no topic filter",
                "MQTT-3.10.3-2",
            ));
        }
        let mut filters = Vec::new();
        while !reader.is_empty() {
            filters.push(reader.string("topic filter truncated")?);
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    /// Measures the packet for `version`.
    pub(crate) fn layout(&self, version: ProtocolVersion) -> Result<Layout, EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::InvalidValue {
                what: "UNSUBSCRIBE with no topic filter",
            });
        }
        let mut layout = Layout::plain(2);
        if version.is_v5() {
            layout.properties = self.properties.measure()?;
            layout.remaining = layout
                .remaining
                .saturating_add(block_len(layout.properties));
        }
        for filter in &self.filters {
            layout.remaining = layout
                .remaining
                .saturating_add(field_len(filter.len(), "topic filter")?);
        }
        Ok(layout)
    }

    /// Writes the variable header and payload measured by `layout`.
    pub(crate) fn write(&self, version: ProtocolVersion, layout: &Layout, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            put_block(buf, &self.properties, layout.properties);
        }
        for filter in &self.filters {
            put_str(buf, filter);
        }
    }
}
