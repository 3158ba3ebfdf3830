//! What the server answered: the outcomes the bad-input checklist distinguishes (silent close,
//! CONNACK then close, DISCONNECT then close, accepted), asserted within [`WAIT`].

use std::net::SocketAddr;
use std::time::Duration;

use stratus_codec::{ConnAck, Packet, ProtocolVersion, Publish, ReasonCode};

use super::PINGREQ;
use crate::support::RawClient;

/// How long a bad-input test waits for the server to answer or close.
pub const WAIT: Duration = Duration::from_secs(2);

/// Opens a connection, sends `connect` and asserts a successful CONNACK.
pub async fn open(
    addr: SocketAddr,
    version: ProtocolVersion,
    connect: &[u8],
) -> (RawClient, ConnAck) {
    let mut c = RawClient::connect(addr, version).await;
    c.send(connect).await;
    match c.recv(WAIT).await {
        Some(Packet::ConnAck(ack)) if ack.reason == ReasonCode::Success => (c, ack),
        other => panic!("expected CONNACK 0x00, got {other:?}"),
    }
}

/// The next packet from the server; panics if the connection closes or `WAIT` passes.
pub async fn expect_packet(c: &mut RawClient) -> Packet {
    match c.recv(WAIT).await {
        Some(p) => p,
        None => panic!("expected a packet within {WAIT:?}; the connection closed or stayed idle"),
    }
}

/// Asserts the next packet is a SUBACK with these reasons (3.1.1 failures decode as 0x80).
pub async fn expect_suback(c: &mut RawClient, reasons: &[ReasonCode]) {
    match expect_packet(c).await {
        Packet::SubAck(ack) => assert_eq!(ack.reasons, reasons, "SUBACK reasons"),
        other => panic!("expected SUBACK {reasons:?}, got {other:?}"),
    }
}

/// Asserts the next packet is a PUBLISH and returns it.
pub async fn expect_publish(c: &mut RawClient) -> Publish {
    match expect_packet(c).await {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// Asserts the server closes the connection within `WAIT` without sending anything.
pub async fn expect_silent_close(c: &mut RawClient) {
    let packets = c.expect_close(WAIT).await;
    assert!(
        packets.is_empty(),
        "expected a silent close, got {packets:?}"
    );
}

/// Asserts the server sends exactly one CONNACK with `reason`, then closes within `WAIT`.
pub async fn expect_connack_then_close(c: &mut RawClient, reason: ReasonCode) -> ConnAck {
    let packets = c.expect_close(WAIT).await;
    match packets.as_slice() {
        [Packet::ConnAck(ack)] if ack.reason == reason => ack.clone(),
        other => panic!("expected CONNACK {reason:?} then close, got {other:?}"),
    }
}

/// Asserts the server sends exactly one DISCONNECT with `reason`, then closes within `WAIT`.
pub async fn expect_disconnect(c: &mut RawClient, reason: ReasonCode) {
    let packets = c.expect_close(WAIT).await;
    match packets.as_slice() {
        [Packet::Disconnect(d)] if d.reason == reason => {}
        other => panic!("expected DISCONNECT {reason:?} then close, got {other:?}"),
    }
}

/// The outcome of a protocol violation after CONNACK: 5.0 gets DISCONNECT `v5_reason` then the
/// close, 3.1.1 a silent close.
pub async fn expect_refused(c: &mut RawClient, version: ProtocolVersion, v5_reason: ReasonCode) {
    if version.is_v5() {
        expect_disconnect(c, v5_reason).await;
    } else {
        expect_silent_close(c).await;
    }
}

/// Sends PINGREQ and returns every packet the server sent before the PINGRESP. The server
/// answers in order, so whatever an earlier packet caused is in the result.
pub async fn until_pingresp(c: &mut RawClient) -> Vec<Packet> {
    c.send(PINGREQ).await;
    let mut before = Vec::new();
    loop {
        match c.recv(WAIT).await {
            Some(Packet::PingResp) => return before,
            Some(p) => before.push(p),
            None => panic!("no PINGRESP within {WAIT:?}; received {before:?}"),
        }
    }
}

/// Asserts the connection is healthy with nothing pending: PINGREQ gets PINGRESP and only that.
pub async fn expect_only_pingresp(c: &mut RawClient) {
    let before = until_pingresp(c).await;
    assert!(
        before.is_empty(),
        "expected nothing before PINGRESP, got {before:?}"
    );
}
