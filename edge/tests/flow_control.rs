//! Flow control in both directions: the client's Receive Maximum and our max_inflight_messages
//! bound the QoS 1 messages we leave unacknowledged at the client; a client exceeding our Receive
//! Maximum is disconnected with 0x93; nothing larger than the client's Maximum Packet Size is
//! sent to it; a packet larger than ours is refused with 0x95.
//!
//! "No more was sent" is checked without sleeping: a QoS 0 fence (not subject to the window)
//! shows the server has drained its queue, and a PINGREQ answered afterwards shows that
//! anything produced by that drain has been written.
#![allow(clippy::unwrap_used)]

mod support;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use stratus_codec::{
    ConnectProperties, Packet, ProtocolVersion, Publish, QoS, ReasonCode, SubscriptionOptions,
};
use support::TestServer;
use support::clients::packets::{Raw, connect_packet, publish_packet};
use support::clients::{Q5, V5Client};

const MESSAGES: usize = 5;

/// Subscribes `sub` to `topic` at QoS 1 and `fence` at QoS 0.
async fn subscribe_with_fence(sub: &mut Raw, topic: &str, fence: &str) {
    let ack = sub
        .subscribe_with(
            1,
            &[
                (topic, SubscriptionOptions::with_qos(QoS::AtLeastOnce)),
                (fence, SubscriptionOptions::with_qos(QoS::AtMostOnce)),
            ],
            None,
        )
        .await;
    assert_eq!(ack.reasons, [ReasonCode::GrantedQoS1, ReasonCode::Success]);
}

fn publishes(packets: Vec<Packet>) -> Vec<Publish> {
    packets
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => p,
            other => panic!("expected only PUBLISH, got {other:?}"),
        })
        .collect()
}

/// Publishes `MESSAGES` QoS 1 messages to `topic` and checks that `sub` never has more than
/// `window` of them unacknowledged, that acknowledging one releases one more, and that all
/// arrive in order.
async fn assert_outbound_window(server: &TestServer, sub: &mut Raw, topic: &str, window: usize) {
    let fence = format!("{topic}/fence");
    subscribe_with_fence(sub, topic, &fence).await;
    let mut publisher = V5Client::connect(server.addr, &format!("{topic}-pub")).await;
    for i in 0..MESSAGES {
        publisher.publish_acked(topic, false, format!("m{i}")).await;
    }
    publisher
        .publish(&fence, Q5::AtMostOnce, false, "fence")
        .await;

    let mut outstanding = Vec::new();
    loop {
        let p = sub.next_publish().await;
        if p.topic == fence.as_str() {
            break;
        }
        outstanding.push(p);
    }
    outstanding.extend(publishes(sub.until_pingresp().await));
    assert_eq!(
        outstanding.len(),
        window,
        "unacknowledged QoS 1 messages before any PUBACK"
    );

    let mut delivered = Vec::new();
    while let Some(oldest) = (!outstanding.is_empty()).then(|| outstanding.remove(0)) {
        assert_eq!(oldest.qos, QoS::AtLeastOnce);
        sub.puback(oldest.packet_id.unwrap()).await;
        delivered.push(String::from_utf8_lossy(&oldest.payload).into_owned());
        outstanding.extend(publishes(sub.until_pingresp().await));
        let expected = window.min(MESSAGES - delivered.len());
        assert_eq!(
            outstanding.len(),
            expected,
            "after {} PUBACKs: {outstanding:?}",
            delivered.len()
        );
    }
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
    assert_eq!(delivered, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_receive_maximum_bounds_unacknowledged_qos1_messages_sent_to_it() {
    let server = TestServer::start().await;
    let props = ConnectProperties {
        receive_maximum: NonZeroU16::new(2),
        ..Default::default()
    };
    let mut sub = Raw::v5(server.addr, "rmax-sub", props).await;
    assert_outbound_window(&server, &mut sub, "rmax", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_messages_bounds_unacknowledged_qos1_messages_to_a_v311_client() {
    let server = TestServer::start_with(|c| c.limits.max_inflight_messages = 3).await;
    let mut sub = Raw::v4(server.addr, "infl4-sub").await;
    assert_outbound_window(&server, &mut sub, "infl4", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_messages_caps_a_larger_client_receive_maximum() {
    let server = TestServer::start_with(|c| c.limits.max_inflight_messages = 2).await;
    let props = ConnectProperties {
        receive_maximum: NonZeroU16::new(100),
        ..Default::default()
    };
    let mut sub = Raw::v5(server.addr, "infl5-sub", props).await;
    assert_outbound_window(&server, &mut sub, "infl5", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_exceeding_our_receive_maximum_is_disconnected_with_0x93() {
    let server = TestServer::start_with(|c| c.limits.receive_maximum = 5).await;
    let mut c = Raw::v5(server.addr, "rmax-over", ConnectProperties::default()).await;
    for id in 1..=6 {
        c.put(Packet::Publish(publish_packet(
            "rmax/over",
            QoS::ExactlyOnce,
            Some(id),
            b"m",
        )))
        .await;
    }
    let packets = c.expect_close(Duration::from_secs(3)).await;
    let (last, pubrecs) = packets.split_last().expect("PUBRECs and a DISCONNECT");
    assert_eq!(
        pubrecs.len(),
        5,
        "the first 5 unreleased QoS 2 messages are within the maximum: {packets:?}"
    );
    assert!(
        pubrecs.iter().all(|p| matches!(p, Packet::PubRec(_))),
        "{packets:?}"
    );
    match last {
        Packet::Disconnect(d) => assert_eq!(
            d.reason,
            ReasonCode::ReceiveMaximumExceeded,
            "[MQTT-3.3.4-9]"
        ),
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_the_clients_maximum_packet_size_are_not_sent_to_it() {
    let server = TestServer::start().await;
    let props = ConnectProperties {
        maximum_packet_size: NonZeroU32::new(64),
        ..Default::default()
    };
    let mut sub = Raw::v5(server.addr, "mps-sub", props).await;
    sub.subscribe_to("mps/t", QoS::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "mps-pub").await;
    let big = vec![b'x'; 100];
    publisher.publish_acked("mps/t", false, big.clone()).await;
    publisher.publish_acked("mps/t", false, "small qos1").await;
    publisher.publish("mps/t", Q5::AtMostOnce, false, big).await;
    publisher
        .publish("mps/t", Q5::AtMostOnce, false, "small qos0")
        .await;

    for expected in ["small qos1", "small qos0"] {
        let p = sub.next_publish().await;
        assert_eq!(
            &p.payload[..],
            expected.as_bytes(),
            "oversized messages are dropped [MQTT-3.1.2-25]"
        );
        let len = Packet::Publish(p).encoded_len(ProtocolVersion::V5).unwrap();
        assert!(
            len <= 64,
            "a {len}-byte PUBLISH was sent to a client accepting 64"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_packet_larger_than_our_maximum_packet_size_is_disconnected_with_0x95() {
    let server = TestServer::start_with(|c| c.limits.max_packet_size = 128).await;
    let mut c = Raw::v5(server.addr, "mps-over", ConnectProperties::default()).await;
    c.put(Packet::Publish(publish_packet(
        "mps/ok",
        QoS::AtLeastOnce,
        Some(1),
        &[b'y'; 64],
    )))
    .await;
    assert!(
        matches!(c.next_packet().await, Packet::PubAck(_)),
        "a packet within the limit is accepted"
    );
    c.put(Packet::Publish(publish_packet(
        "mps/over",
        QoS::AtLeastOnce,
        Some(2),
        &[b'y'; 200],
    )))
    .await;
    let packets = c.expect_close(Duration::from_secs(3)).await;
    match packets.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, ReasonCode::PacketTooLarge),
        other => panic!("expected DISCONNECT 0x95 then close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_packet_larger_than_our_maximum_packet_size_closes_the_connection() {
    let server = TestServer::start_with(|c| c.limits.max_packet_size = 128).await;
    let (mut c, ack) = Raw::open(
        server.addr,
        connect_packet(ProtocolVersion::V3_1_1, "mps-over4"),
    )
    .await;
    assert_eq!(ack.reason, ReasonCode::Success);
    c.put(Packet::Publish(publish_packet(
        "mps/over",
        QoS::AtLeastOnce,
        Some(1),
        &[b'y'; 200],
    )))
    .await;
    let packets = c.expect_close(Duration::from_secs(3)).await;
    assert!(
        packets.is_empty(),
        "3.1.1 has no DISCONNECT from the server: {packets:?}"
    );
}
