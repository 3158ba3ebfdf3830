//! CONNECT/CONNACK basics over raw bytes: both protocol versions are accepted and the CONNACK
//! carries the limits the server enforces.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use stratus_codec::{Packet, ProtocolVersion, ReasonCode};
use support::{CONNECT_V4, CONNECT_V5, RawClient, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_connect_is_accepted_with_session_present_zero() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr, ProtocolVersion::V3_1_1).await;
    c.send(CONNECT_V4).await;
    match c.recv(Duration::from_secs(2)).await {
        Some(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason, ReasonCode::Success);
            assert!(!ack.session_present);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connack_advertises_our_limits() {
    let server = TestServer::start_with(|c| {
        c.limits.receive_maximum = 77;
        c.limits.max_packet_size = 4096;
        c.limits.topic_alias_maximum = 9;
    })
    .await;
    let mut c = RawClient::connect(server.addr, ProtocolVersion::V5).await;
    c.send(CONNECT_V5).await;
    match c.recv(Duration::from_secs(2)).await {
        Some(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason, ReasonCode::Success);
            assert_eq!(ack.properties.receive_maximum.map(|v| v.get()), Some(77));
            assert_eq!(
                ack.properties.maximum_packet_size.map(|v| v.get()),
                Some(4096)
            );
            assert_eq!(ack.properties.topic_alias_maximum, Some(9));
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}
