//! Byte builders for the bad-input suites: MQTT packets written field by field, so that a test
//! can corrupt exactly one field and its positive twin differs from it in that field only; and
//! the few client flows built on them (a connected client, a subscriber).
#![allow(dead_code, unused_imports, unreachable_pub, clippy::unwrap_used)]

mod expect;

use std::net::SocketAddr;

use stratus_codec::{Packet, ProtocolVersion, Publish, ReasonCode};

use crate::support::RawClient;

pub use expect::{
    WAIT, expect_connack_then_close, expect_disconnect, expect_only_pingresp, expect_packet,
    expect_publish, expect_refused, expect_silent_close, expect_suback, open, until_pingresp,
};

/// PINGREQ.
pub const PINGREQ: &[u8] = &[0xC0, 0x00];

/// A normal DISCONNECT (both versions).
pub const DISCONNECT: &[u8] = &[0xE0, 0x00];

/// Both protocol versions under test.
pub const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// A Variable Byte Integer in its minimal encoding.
pub fn vbi(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let digit = (value % 128) as u8;
        value /= 128;
        if value == 0 {
            out.push(digit);
            return out;
        }
        out.push(digit | 0x80);
    }
}

/// A whole packet: the first byte, the Remaining Length of `body`, and `body`.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(vbi(body.len()));
    out.extend_from_slice(body);
    out
}

/// A UTF-8 string or binary field: a two-byte length and the bytes.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("field longer than 65535 bytes");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A 5.0 property block: the Property Length and the list.
pub fn props(list: &[u8]) -> Vec<u8> {
    let mut out = vbi(list.len());
    out.extend_from_slice(list);
    out
}

/// One User Property (0x26) with `name` and `value`.
pub fn user_property(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x26];
    out.extend(field(name));
    out.extend(field(value));
    out
}

/// The property block for `version`: present (possibly empty) in 5.0, absent in 3.1.1.
fn block(version: ProtocolVersion, list: &[u8]) -> Vec<u8> {
    if version.is_v5() {
        props(list)
    } else {
        assert!(list.is_empty(), "3.1.1 packets carry no properties");
        Vec::new()
    }
}

/// A CONNECT built field by field; [`Connect::base`] is the checklist's base CONNECT.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Protocol name.
    pub name: Vec<u8>,
    /// Protocol level.
    pub level: u8,
    /// Connect Flags, as sent (the `with_*` builders set their bits).
    pub flags: u8,
    /// Keep Alive, seconds.
    pub keep_alive: u16,
    /// The whole property block (length included) for 5.0, empty for 3.1.1.
    pub properties: Vec<u8>,
    /// Client identifier bytes.
    pub client_id: Vec<u8>,
    /// Everything after the client identifier (will, user name, password), as sent.
    pub tail: Vec<u8>,
}

impl Connect {
    /// Client id `c1`, keep-alive 60, clean start, no properties.
    pub fn base(version: ProtocolVersion) -> Self {
        Self {
            name: b"MQTT".to_vec(),
            level: if version.is_v5() { 5 } else { 4 },
            flags: 0x02,
            keep_alive: 60,
            properties: block(version, &[]),
            client_id: b"c1".to_vec(),
            tail: Vec::new(),
        }
    }

    fn v5(&self) -> bool {
        self.level == 5
    }

    /// With another client identifier.
    pub fn client_id(mut self, id: impl AsRef<[u8]>) -> Self {
        self.client_id = id.as_ref().to_vec();
        self
    }

    /// With these Connect Flags.
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// With this keep-alive.
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    /// With this 5.0 property list (the length is computed).
    pub fn properties(mut self, list: &[u8]) -> Self {
        self.properties = props(list);
        self
    }

    /// With these raw bytes in place of the 5.0 property block, length included.
    pub fn raw_properties(mut self, raw: &[u8]) -> Self {
        self.properties = raw.to_vec();
        self
    }

    /// With a will: sets the Will Flag, Will QoS and Will Retain, and appends the will
    /// properties (5.0), topic and payload.
    pub fn will(
        mut self,
        qos: u8,
        retain: bool,
        will_props: &[u8],
        topic: &[u8],
        payload: &[u8],
    ) -> Self {
        self.flags |= 0x04 | (qos << 3) | if retain { 0x20 } else { 0 };
        if self.v5() {
            self.tail.extend(props(will_props));
        }
        self.tail.extend(field(topic));
        self.tail.extend(field(payload));
        self
    }

    /// With a user name field and its flag.
    pub fn username(mut self, name: &[u8]) -> Self {
        self.flags |= 0x80;
        self.tail.extend(field(name));
        self
    }

    /// With a password field and its flag.
    pub fn password(mut self, password: &[u8]) -> Self {
        self.flags |= 0x40;
        self.tail.extend(field(password));
        self
    }

    /// With raw bytes appended after the fields built so far.
    pub fn tail(mut self, raw: &[u8]) -> Self {
        self.tail.extend_from_slice(raw);
        self
    }

    /// The variable header and payload.
    pub fn body(&self) -> Vec<u8> {
        let mut body = field(&self.name);
        body.push(self.level);
        body.push(self.flags);
        body.extend(self.keep_alive.to_be_bytes());
        body.extend_from_slice(&self.properties);
        body.extend(field(&self.client_id));
        body.extend_from_slice(&self.tail);
        body
    }

    /// The whole packet.
    pub fn bytes(&self) -> Vec<u8> {
        packet(0x10, &self.body())
    }
}

/// The checklist base CONNECT for `version` with another client identifier.
pub fn connect(version: ProtocolVersion, client_id: &str) -> Vec<u8> {
    Connect::base(version).client_id(client_id).bytes()
}

/// A persistent-session CONNECT: clean start 0, and for 5.0 a Session Expiry of one hour.
pub fn connect_persistent(version: ProtocolVersion, client_id: &str) -> Vec<u8> {
    let c = Connect::base(version).client_id(client_id).flags(0x00);
    if version.is_v5() {
        c.properties(&[0x11, 0x00, 0x00, 0x0E, 0x10]).bytes()
    } else {
        c.bytes()
    }
}

/// A PUBLISH with this first byte (type 3 and flags), topic, packet identifier, 5.0 property
/// list and payload.
pub fn publish_with(
    version: ProtocolVersion,
    first_byte: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    property_list: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = packet_id {
        body.extend(id.to_be_bytes());
    }
    body.extend(block(version, property_list));
    body.extend_from_slice(payload);
    packet(first_byte, &body)
}

/// A QoS 0 PUBLISH without properties.
pub fn publish0(version: ProtocolVersion, topic: &[u8], payload: &[u8]) -> Vec<u8> {
    publish_with(version, 0x30, topic, None, &[], payload)
}

/// A QoS 1 PUBLISH without properties.
pub fn publish1(version: ProtocolVersion, topic: &[u8], packet_id: u16, payload: &[u8]) -> Vec<u8> {
    publish_with(version, 0x32, topic, Some(packet_id), &[], payload)
}

/// A QoS 2 PUBLISH without properties.
pub fn publish2(version: ProtocolVersion, topic: &[u8], packet_id: u16, payload: &[u8]) -> Vec<u8> {
    publish_with(version, 0x34, topic, Some(packet_id), &[], payload)
}

/// A SUBSCRIBE with a 5.0 property list and `(filter, options byte)` entries.
pub fn subscribe_with(
    version: ProtocolVersion,
    packet_id: u16,
    property_list: &[u8],
    filters: &[(&[u8], u8)],
) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(block(version, property_list));
    for (filter, options) in filters {
        body.extend(field(filter));
        body.push(*options);
    }
    packet(0x82, &body)
}

/// A SUBSCRIBE to one filter with maximum QoS `qos` and default options.
pub fn subscribe(version: ProtocolVersion, packet_id: u16, filter: &[u8], qos: u8) -> Vec<u8> {
    subscribe_with(version, packet_id, &[], &[(filter, qos)])
}

/// An UNSUBSCRIBE from these filters.
pub fn unsubscribe(version: ProtocolVersion, packet_id: u16, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(block(version, &[]));
    for filter in filters {
        body.extend(field(filter));
    }
    packet(0xA2, &body)
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP (`first_byte` 0x40, 0x50, 0x62, 0x70) in the short form.
pub fn ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    packet(first_byte, &packet_id.to_be_bytes())
}

/// A client connected with the base CONNECT and `client_id`.
pub async fn client(addr: SocketAddr, version: ProtocolVersion, client_id: &str) -> RawClient {
    open(addr, version, &connect(version, client_id)).await.0
}

/// A client connected as `client_id` and subscribed to `filter` at `qos`, the SUBACK checked.
pub async fn subscriber(
    addr: SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    filter: &[u8],
    qos: u8,
) -> RawClient {
    let mut c = client(addr, version, client_id).await;
    c.send(&subscribe(version, 1, filter, qos)).await;
    expect_suback(&mut c, &[granted(qos)]).await;
    c
}

/// The SUBACK reason granting `qos`.
pub fn granted(qos: u8) -> ReasonCode {
    match qos {
        0 => ReasonCode::Success,
        1 => ReasonCode::GrantedQoS1,
        _ => ReasonCode::GrantedQoS2,
    }
}

/// The PUBLISH packets among `packets`.
pub fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}
