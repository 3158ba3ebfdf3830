//! Bad-input checklist section C, flow control and acknowledgements: items 42-46 for MQTT 3.1.1
//! and 5.0 (maximum QoS and retain, receive maximum, maximum packet size, a QoS 2 packet
//! identifier repeated 10,000 times, acknowledgements for unknown identifiers, server-only
//! packets sent by a client).
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::{RawClient, TestServer};
use wire::{
    Connect, VERSIONS, ack, client, expect_only_pingresp, expect_packet, expect_publish,
    expect_refused, open, packet, publish_with, publish0, publish1, publish2, publishes,
    subscriber, until_pingresp,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Asserts the next packet is `kind` (PUBACK, PUBREC, PUBREL or PUBCOMP) for `packet_id` with
/// `reason` (3.1.1 acknowledgements decode as Success).
async fn expect_ack(c: &mut RawClient, kind: u8, packet_id: u16, reason: ReasonCode) {
    let got = expect_packet(c).await;
    let a = match (&got, kind) {
        (Packet::PubAck(a), 0x40) | (Packet::PubRec(a), 0x50) => a,
        (Packet::PubRel(a), 0x62) | (Packet::PubComp(a), 0x70) => a,
        _ => panic!("expected acknowledgement {kind:#04x} for {packet_id}, got {got:?}"),
    };
    assert_eq!(
        (a.packet_id.get(), a.reason),
        (packet_id, reason),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connack_advertises_qos_2_and_retain_and_a_retained_qos2_publish_is_accepted() {
    let server = TestServer::start().await;
    let (mut c, connack) = open(server.addr, V5, &wire::connect(V5, "retainer")).await;
    // Absent Maximum QoS means 2 and absent Retain Available means available (3.2.2.3.4/5):
    // neither 0x9B nor 0x9A can apply to what this client sends.
    assert_eq!(connack.properties.maximum_qos, None);
    assert_eq!(connack.properties.retain_available, None);
    c.send(&publish_with(V5, 0x35, b"kept", Some(1), &[], b"v"))
        .await;
    expect_ack(&mut c, 0x50, 1, ReasonCode::NoMatchingSubscribers).await;
    c.send(&ack(0x62, 1)).await;
    expect_ack(&mut c, 0x70, 1, ReasonCode::Success).await;
    let mut later = subscriber(server.addr, V5, "later", b"kept", 2).await;
    let p = expect_publish(&mut later).await;
    assert!(p.retain && p.qos == QoS::ExactlyOnce && p.payload.as_ref() == b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_more_unacknowledged_publishes_than_receive_maximum_is_disconnected() {
    let server = TestServer::start_with(|c| c.limits.receive_maximum = 2).await;
    let mut watcher = subscriber(server.addr, V5, "watcher", b"#", 0).await;
    // Twin first: with a PUBREL in between the window never overflows.
    let mut c = client(server.addr, V5, "polite").await;
    for id in 1..=2 {
        c.send(&publish2(V5, b"t", id, b"ok")).await;
        expect_ack(&mut c, 0x50, id, ReasonCode::Success).await;
    }
    c.send(&ack(0x62, 1)).await;
    expect_ack(&mut c, 0x70, 1, ReasonCode::Success).await;
    c.send(&publish2(V5, b"t", 3, b"ok")).await;
    expect_ack(&mut c, 0x50, 3, ReasonCode::Success).await;
    assert_eq!(publishes(&until_pingresp(&mut watcher).await).len(), 3);

    let mut c = client(server.addr, V5, "greedy").await;
    for id in 1..=2 {
        c.send(&publish2(V5, b"t", id, b"ok")).await;
        expect_ack(&mut c, 0x50, id, ReasonCode::Success).await;
    }
    c.send(&publish2(V5, b"t", 3, b"one too many")).await;
    expect_refused(&mut c, V5, ReasonCode::ReceiveMaximumExceeded).await;
    assert_eq!(publishes(&until_pingresp(&mut watcher).await).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_larger_than_the_maximum_packet_size_is_refused() {
    let server = TestServer::start_with(|c| c.limits.max_packet_size = 1024).await;
    for version in VERSIONS {
        let mut watcher = subscriber(server.addr, version, "watcher", b"#", 0).await;
        let mut c = client(server.addr, version, "big").await;
        c.send(&publish0(version, b"t", &[b'x'; 1100])).await;
        expect_refused(&mut c, version, ReasonCode::PacketTooLarge).await;
        // Declared but not sent: refused from the fixed header alone.
        let mut c = client(server.addr, version, "bigger").await;
        c.send(&[0x30, 0x80, 0x80, 0x80, 0x01]).await;
        expect_refused(&mut c, version, ReasonCode::PacketTooLarge).await;
        expect_only_pingresp(&mut watcher).await;
        // Twin: just under the limit.
        let mut c = client(server.addr, version, "fits").await;
        c.send(&publish0(version, b"t", &[b'x'; 1000])).await;
        assert_eq!(expect_publish(&mut watcher).await.payload.len(), 1000);
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_outbound_publish_larger_than_the_client_maximum_packet_size_is_dropped() {
    let server = TestServer::start().await;
    let small = Connect::base(V5)
        .client_id("small")
        .properties(&[0x27, 0x00, 0x00, 0x00, 0x64]);
    let (mut c, _) = open(server.addr, V5, &small.bytes()).await;
    c.send(&wire::subscribe(V5, 1, b"out/#", 1)).await;
    wire::expect_suback(&mut c, &[ReasonCode::GrantedQoS1]).await;
    let mut publisher = client(server.addr, V5, "publisher").await;
    publisher
        .send(&publish1(V5, b"out/big", 1, &[b'x'; 200]))
        .await;
    expect_ack(&mut publisher, 0x40, 1, ReasonCode::Success).await;
    publisher
        .send(&publish1(V5, b"out/small", 2, b"fits"))
        .await;
    expect_ack(&mut publisher, 0x40, 2, ReasonCode::Success).await;
    let p = expect_publish(&mut c).await;
    assert_eq!((&*p.topic, p.payload.as_ref()), ("out/small", &b"fits"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_publish_repeated_10000_times_without_pubrel_is_acknowledged_each_time_and_delivered_once()
 {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut watcher = subscriber(server.addr, version, "watcher", b"#", 0).await;
        let mut c = client(server.addr, version, "repeater").await;
        let one = publish2(version, b"t", 7, b"once");
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        for _ in 0..10 {
            c.send(&batch).await;
            for _ in 0..1000 {
                expect_ack(&mut c, 0x50, 7, ReasonCode::Success).await;
            }
        }
        c.send(&ack(0x62, 7)).await;
        expect_ack(&mut c, 0x70, 7, ReasonCode::Success).await;
        let got = until_pingresp(&mut watcher).await;
        assert_eq!(publishes(&got).len(), 1, "delivered once: {got:?}");
        // After PUBREL the identifier is free: the same id now carries a new message.
        c.send(&publish2(version, b"t", 7, b"again")).await;
        expect_ack(&mut c, 0x50, 7, ReasonCode::Success).await;
        assert_eq!(
            expect_publish(&mut watcher).await.payload.as_ref(),
            b"again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_for_unknown_packet_ids_are_ignored_or_answered_not_found() {
    let server = TestServer::start_with(|c| c.limits.max_inflight_messages = 1).await;
    for version in VERSIONS {
        let not_found = if version.is_v5() {
            ReasonCode::PacketIdentifierNotFound
        } else {
            ReasonCode::Success
        };
        let mut c = subscriber(server.addr, version, "acker", b"q/#", 1).await;
        c.send(&ack(0x40, 11)).await;
        c.send(&ack(0x70, 12)).await;
        expect_only_pingresp(&mut c).await;
        c.send(&ack(0x50, 13)).await;
        expect_ack(&mut c, 0x62, 13, not_found).await;
        c.send(&ack(0x62, 14)).await;
        expect_ack(&mut c, 0x70, 14, not_found).await;

        // A QoS 0 delivery acknowledged anyway.
        let mut publisher = client(server.addr, version, "publisher").await;
        publisher.send(&publish0(version, b"q/0", b"zero")).await;
        assert!(expect_publish(&mut c).await.packet_id.is_none());
        c.send(&ack(0x40, 1)).await;
        expect_only_pingresp(&mut c).await;

        // No state corruption: with one message in flight, a PUBCOMP or a PUBACK for another id
        // does not free the window; the right PUBACK does.
        publisher
            .send(&publish1(version, b"q/1", 1, b"first"))
            .await;
        publisher
            .send(&publish1(version, b"q/1", 2, b"second"))
            .await;
        let first = expect_publish(&mut c).await;
        assert_eq!(first.payload.as_ref(), b"first");
        let id = first.packet_id.unwrap().get();
        c.send(&ack(0x70, id)).await;
        c.send(&ack(0x40, id.wrapping_add(1).max(1))).await;
        expect_only_pingresp(&mut c).await;
        c.send(&ack(0x40, id)).await;
        assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"second");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_only_packets_from_a_client_are_protocol_errors() {
    let server = TestServer::start().await;
    let cases = [
        (V4, packet(0x20, &[0x00, 0x00])),
        (V5, packet(0x20, &[0x00, 0x00, 0x00])),
        (V4, packet(0x90, &[0x00, 0x01, 0x00])),
        (V5, packet(0x90, &[0x00, 0x01, 0x00, 0x00])),
        (V4, packet(0xB0, &[0x00, 0x01])),
        (V5, packet(0xB0, &[0x00, 0x01, 0x00, 0x00])),
        (V4, packet(0xD0, &[])),
        (V5, packet(0xD0, &[])),
    ];
    for (version, bytes) in cases {
        let mut c = client(server.addr, version, "impostor").await;
        c.send(&bytes).await;
        expect_refused(&mut c, version, ReasonCode::ProtocolError).await;
    }
    for version in VERSIONS {
        expect_only_pingresp(&mut client(server.addr, version, "twin").await).await;
    }
}
