//! Per-connection limits, each configured low and hit with the code the client must see: topic
//! length and depth (PUBLISH: 5.0 DISCONNECT 0x90, 3.1.1 close; SUBSCRIBE: 0x8F / 0x80 for that
//! filter), subscriptions per session (0x97 / 0x80), client identifier length (CONNACK 0x85 /
//! return code 2) and keep-alive (5.0 Server Keep Alive; 3.1.1 refused with return code 2).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, SubscribeReasonCode};
use stratus_codec::{
    ConnectProperties, Packet, ProtocolVersion, QoS, ReasonCode, SubscriptionOptions,
};
use support::TestServer;
use support::clients::packets::{Raw, connect_packet, publish_packet};
use support::clients::{Q4, Q5, V4Client, V5Client};

const LONG_TOPIC: &str = "limits/0123456789"; // 17 bytes, 2 levels
const DEEP_TOPIC: &str = "a/b/c/d"; // 7 bytes, 4 levels

async fn topic_limited_server() -> TestServer {
    TestServer::start_with(|c| {
        c.limits.max_topic_length = 16;
        c.limits.max_topic_levels = 3;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_publish_over_the_topic_limits_is_disconnected_with_0x90() {
    let server = topic_limited_server().await;
    for (id, topic) in [("tl5-long", LONG_TOPIC), ("tl5-deep", DEEP_TOPIC)] {
        let mut c = Raw::v5(server.addr, id, ConnectProperties::default()).await;
        c.put(Packet::Publish(publish_packet(
            "limits/012345678",
            QoS::AtLeastOnce,
            Some(1),
            b"16 bytes",
        )))
        .await;
        c.put(Packet::Publish(publish_packet(
            "a/b/c",
            QoS::AtLeastOnce,
            Some(2),
            b"3 levels",
        )))
        .await;
        for _ in 0..2 {
            assert!(
                matches!(c.next_packet().await, Packet::PubAck(_)),
                "topics within the limits are accepted"
            );
        }
        c.put(Packet::Publish(publish_packet(
            topic,
            QoS::AtLeastOnce,
            Some(3),
            b"over",
        )))
        .await;
        match c.expect_close(Duration::from_secs(3)).await.as_slice() {
            [Packet::Disconnect(d)] => {
                assert_eq!(d.reason, ReasonCode::TopicNameInvalid, "{topic}")
            }
            other => panic!("{topic}: expected DISCONNECT 0x90 then close, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_publish_over_the_topic_limits_closes_the_connection() {
    let server = topic_limited_server().await;
    for (id, topic) in [("tl4-long", LONG_TOPIC), ("tl4-deep", DEEP_TOPIC)] {
        let mut c = Raw::v4(server.addr, id).await;
        c.put(Packet::Publish(publish_packet(
            topic,
            QoS::AtLeastOnce,
            Some(1),
            b"over",
        )))
        .await;
        let packets = c.expect_close(Duration::from_secs(3)).await;
        assert!(
            packets.is_empty(),
            "{topic}: 3.1.1 closes without a PUBACK: {packets:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscribe_over_the_topic_limits_is_refused_with_0x8f_for_that_filter() {
    let server = topic_limited_server().await;
    let mut c = Raw::v5(server.addr, "tls5", ConnectProperties::default()).await;
    let qos1 = SubscriptionOptions::with_qos(QoS::AtLeastOnce);
    let ack = c
        .subscribe_with(
            1,
            &[
                ("ok/+/#", qos1),
                ("limits/01234567/#", qos1),
                ("a/+/c/#", qos1),
            ],
            None,
        )
        .await;
    assert_eq!(
        ack.reasons,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::TopicFilterInvalid
        ]
    );
    assert!(
        c.stays_open(Duration::from_millis(200)).await,
        "a refused filter does not close the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_subscribe_over_the_topic_limits_is_refused_with_0x80_for_that_filter() {
    let server = topic_limited_server().await;
    let mut c = V4Client::connect(server.addr, "tls4").await;
    for filter in ["limits/01234567/#", "a/+/c/#"] {
        let ack = c.try_subscribe(filter, Q4::AtLeastOnce).await;
        assert_eq!(
            ack.return_codes,
            [rumqttc::SubscribeReasonCode::Failure],
            "{filter}"
        );
    }
    c.subscribe("ok/+/#", Q4::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscriptions_beyond_the_session_maximum_are_refused_with_0x97() {
    let server = TestServer::start_with(|c| c.limits.max_subscriptions_per_session = 2).await;
    let mut c = V5Client::connect(server.addr, "maxsub5").await;
    c.subscribe("ms/a", Q5::AtLeastOnce).await;
    c.subscribe("ms/b", Q5::AtLeastOnce).await;
    let ack = c
        .subscribe_filters(vec![Filter::new("ms/c", Q5::AtLeastOnce)], None)
        .await;
    assert_eq!(ack.return_codes, [SubscribeReasonCode::QuotaExceeded]);
    c.subscribe("ms/a", Q5::AtMostOnce).await; // replacing an existing subscription is not a new one
    c.client.unsubscribe("ms/b").await.unwrap();
    c.subscribe("ms/c", Q5::AtLeastOnce).await; // (the UNSUBACK precedes this SUBACK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_subscriptions_beyond_the_session_maximum_are_refused_with_0x80() {
    let server = TestServer::start_with(|c| c.limits.max_subscriptions_per_session = 2).await;
    let mut c = V4Client::connect(server.addr, "maxsub4").await;
    c.subscribe("ms/a", Q4::AtLeastOnce).await;
    c.subscribe("ms/b", Q4::AtLeastOnce).await;
    let ack = c.try_subscribe("ms/c", Q4::AtLeastOnce).await;
    assert_eq!(ack.return_codes, [rumqttc::SubscribeReasonCode::Failure]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_client_id_over_the_maximum_length_is_refused_with_0x85() {
    let server = TestServer::start_with(|c| c.limits.max_client_id_length = 23).await;
    let ok = "x".repeat(23);
    V5Client::connect(server.addr, &ok).await;
    let err = V5Client::try_connect_with(server.addr, &"y".repeat(24), |_| {})
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("ConnectionRefused(ClientIdentifierNotValid)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_client_id_over_the_maximum_length_is_refused_with_return_code_2() {
    let server = TestServer::start_with(|c| c.limits.max_client_id_length = 23).await;
    V4Client::connect(server.addr, &"x".repeat(23)).await;
    let (_, ack) = Raw::open(
        server.addr,
        connect_packet(ProtocolVersion::V3_1_1, &"y".repeat(24)),
    )
    .await;
    assert_eq!(
        ack.reason,
        ReasonCode::ClientIdentifierNotValid,
        "return code 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_keep_alive_above_the_maximum_is_lowered_with_server_keep_alive() {
    let server = TestServer::start_with(|c| c.limits.max_keep_alive = 30).await;
    let within = V5Client::connect_with(server.addr, "ka-within", |o| {
        o.set_keep_alive(Duration::from_secs(20));
    })
    .await;
    let server_keep_alive = within
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.server_keep_alive);
    assert_eq!(
        server_keep_alive, None,
        "a keep-alive within the maximum is kept"
    );

    let above = V5Client::connect_with(server.addr, "ka-above", |o| {
        o.set_keep_alive(Duration::from_secs(120));
    })
    .await;
    assert_eq!(
        above
            .connack
            .properties
            .as_ref()
            .and_then(|p| p.server_keep_alive),
        Some(30)
    );

    let mut zero = connect_packet(ProtocolVersion::V5, "ka-zero");
    zero.keep_alive = 0;
    let (_, ack) = Raw::open(server.addr, zero).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    assert_eq!(
        ack.properties.server_keep_alive,
        Some(30),
        "no keep-alive is above any maximum"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_keep_alive_above_the_maximum_is_refused_with_return_code_2() {
    let server = TestServer::start_with(|c| c.limits.max_keep_alive = 30).await;
    V4Client::connect_with(server.addr, "ka4-within", |o| {
        o.set_keep_alive(Duration::from_secs(30));
    })
    .await;
    let err = V4Client::try_connect_with(server.addr, "ka4-above", |o| {
        o.set_keep_alive(Duration::from_secs(120));
    })
    .await
    .err()
    .unwrap();
    assert!(err.contains("ConnectionRefused(BadClientId)"), "{err}");
}
