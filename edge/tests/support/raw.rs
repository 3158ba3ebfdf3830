//! Packet-level helpers (free functions, so they never collide with other helpers' methods) on
//! top of [`RawClient`]: CONNECT builders and the few exchanges the
//! behaviour tests repeat (connect, subscribe, publish, wait for a given packet), for checks that
//! a real client library hides (packet ids, DUP, the PUBREL/PUBCOMP exchange).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use stratus_codec::{
    Ack, ConnAck, Connect, ConnectProperties, Disconnect, LastWill, Packet, PacketId,
    ProtocolVersion, Publish, PublishProperties, QoS, ReasonCode, SubAck, Subscribe,
    SubscribeProperties, SubscriptionOptions, SubscriptionRequest,
};

use super::RawClient;

/// How long a helper waits for an expected packet.
pub const WAIT: Duration = Duration::from_secs(5);

/// A CONNECT with no will, no credentials and keep-alive 60.
pub fn connect_packet(version: ProtocolVersion, client_id: &str, clean_start: bool) -> Connect {
    Connect {
        protocol: version,
        clean_start,
        keep_alive: 60,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A 5.0 CONNECT with Clean Start 0 and the given Session Expiry Interval.
pub fn persistent_v5(client_id: &str, expiry_secs: u32) -> Connect {
    let mut c = connect_packet(ProtocolVersion::V5, client_id, false);
    c.properties.session_expiry_interval = Some(expiry_secs);
    c
}

/// A will without properties.
pub fn will(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: ByteString::from(topic),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        properties: Default::default(),
    }
}

/// A packet id from a literal (test data is never zero).
pub fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

/// A PUBLISH without properties.
pub fn publish_packet(topic: &str, qos: QoS, packet_id: Option<u16>, payload: &[u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from(topic),
        packet_id: packet_id.map(pid),
        properties: PublishProperties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Connects, sends `connect` and returns the client with the CONNACK (which may refuse).
pub async fn open(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
    let version = connect.protocol;
    let mut c = RawClient::connect(addr, version).await;
    c.send_packet(&Packet::Connect(Box::new(connect)), version)
        .await;
    match c.recv(WAIT).await {
        Some(Packet::ConnAck(ack)) => (c, ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Like [`open`], but panics unless the CONNACK is a success.
pub async fn open_ok(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
    let (c, ack) = open(addr, connect).await;
    assert_eq!(ack.reason, ReasonCode::Success, "CONNACK refused: {ack:?}");
    (c, ack)
}

/// The next packet, panicking if none arrives within [`WAIT`].
pub async fn expect_packet(c: &mut RawClient) -> Packet {
    match c.recv(WAIT).await {
        Some(p) => p,
        None => panic!("no packet within {WAIT:?} (connection closed or silent)"),
    }
}

/// The next packet, which must be a PUBLISH.
pub async fn expect_publish(c: &mut RawClient) -> Publish {
    match expect_packet(c).await {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// Subscribes to one filter with packet id `id` and returns the SUBACK.
pub async fn subscribe(
    c: &mut RawClient,
    version: ProtocolVersion,
    id: u16,
    filter: &str,
    qos: QoS,
) -> SubAck {
    let subscribe = Subscribe {
        packet_id: pid(id),
        properties: SubscribeProperties::default(),
        filters: vec![SubscriptionRequest {
            filter: ByteString::from(filter),
            options: SubscriptionOptions::with_qos(qos),
        }],
    };
    c.send_packet(&Packet::Subscribe(subscribe), version).await;
    match expect_packet(c).await {
        Packet::SubAck(ack) => {
            assert_eq!(ack.packet_id, pid(id), "SUBACK for another packet id");
            assert!(!ack.reasons[0].is_error(), "subscription refused: {ack:?}");
            ack
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Sends one acknowledgement packet (`kind` builds PUBACK, PUBREC, PUBREL or PUBCOMP).
pub async fn send_ack(
    c: &mut RawClient,
    kind: fn(Ack) -> Packet,
    packet_id: PacketId,
    version: ProtocolVersion,
) {
    c.send_packet(&kind(Ack::success(packet_id)), version).await;
}

/// Sends a 5.0 DISCONNECT with `reason`.
pub async fn disconnect_v5(c: &mut RawClient, reason: ReasonCode) {
    c.send_packet(
        &Packet::Disconnect(Disconnect::new(reason)),
        ProtocolVersion::V5,
    )
    .await;
}
