//! Connection-level rules: keep-alive enforced at 1.5 times the interval, a second CONNECT on a
//! connection refused, and session takeover (a new connection with the same client id closes the
//! old one, 5.0 with DISCONNECT 0x8E, and gets its session; rapid takeovers never leave two
//! connections receiving).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS as Qos5;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::{TestServer, raw, v4, v5};
use tokio::time::{Instant, sleep_until};

/// Connects with keep-alive 2 s, sends nothing, and returns what the server sent before closing
/// and how long after CONNACK it closed.
async fn silent_keep_alive_2(
    server: &TestServer,
    version: ProtocolVersion,
) -> (Vec<Packet>, Duration) {
    let mut connect = raw::connect_packet(version, &format!("silent-{}", version.level()), true);
    connect.keep_alive = 2;
    let (mut c, _) = raw::open_ok(server.addr, connect).await;
    let connected = Instant::now();
    let packets = c.expect_close(Duration::from_secs(6)).await;
    (packets, connected.elapsed())
}

fn assert_closed_at_one_and_a_half_keep_alives(elapsed: Duration) {
    assert!(
        elapsed >= Duration::from_millis(2900) && elapsed < Duration::from_secs(4),
        "keep-alive 2 s: closed after 3 s (1.5x) and well before 4 s, took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_silent_connection_with_keep_alive_2_is_closed_after_3_seconds() {
    let server = TestServer::start().await;
    let (packets, elapsed) = silent_keep_alive_2(&server, ProtocolVersion::V3_1_1).await;
    assert!(
        packets.is_empty(),
        "3.1.1 has no DISCONNECT from the server: {packets:?}"
    );
    assert_closed_at_one_and_a_half_keep_alives(elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_silent_connection_with_keep_alive_2_is_closed_after_3_seconds_with_0x8d() {
    let server = TestServer::start().await;
    let (packets, elapsed) = silent_keep_alive_2(&server, ProtocolVersion::V5).await;
    assert!(
        matches!(&packets[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::KeepAliveTimeout),
        "expected DISCONNECT 0x8D, got {packets:?}"
    );
    assert_closed_at_one_and_a_half_keep_alives(elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingreq_within_the_keep_alive_keeps_the_connection_open() {
    let server = TestServer::start().await;
    let v = ProtocolVersion::V3_1_1;
    let mut connect = raw::connect_packet(v, "pinger", true);
    connect.keep_alive = 2;
    let (mut c, _) = raw::open_ok(server.addr, connect).await;
    let connected = Instant::now();
    for at in [1500, 3000] {
        sleep_until(connected + Duration::from_millis(at)).await;
        c.send_packet(&Packet::PingReq, v).await;
        assert_eq!(raw::expect_packet(&mut c).await, Packet::PingResp);
    }
    // 4 s after CONNECT, past the 3 s a silent connection gets, yet 1 s after the last PINGREQ.
    sleep_until(connected + Duration::from_millis(4000)).await;
    c.send_packet(&Packet::PingReq, v).await;
    assert_eq!(
        raw::expect_packet(&mut c).await,
        Packet::PingResp,
        "the connection must still be open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_second_connect_on_a_connection_gets_disconnect_protocol_error() {
    let server = TestServer::start().await;
    let connect = raw::connect_packet(ProtocolVersion::V5, "twice-v5", true);
    let (mut c, _) = raw::open_ok(server.addr, connect.clone()).await;
    c.send_packet(&Packet::Connect(Box::new(connect)), ProtocolVersion::V5)
        .await;
    let packets = c.expect_close(raw::WAIT).await;
    assert!(
        matches!(&packets[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
        "expected DISCONNECT 0x82 then close [MQTT-3.1.0-2], got {packets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_second_connect_on_a_connection_closes_it() {
    let server = TestServer::start().await;
    let connect = raw::connect_packet(ProtocolVersion::V3_1_1, "twice-v311", true);
    let (mut c, _) = raw::open_ok(server.addr, connect.clone()).await;
    c.send_packet(&Packet::Connect(Box::new(connect)), ProtocolVersion::V3_1_1)
        .await;
    let packets = c.expect_close(raw::WAIT).await;
    assert!(
        packets.is_empty(),
        "3.1.1: closed without a reply, got {packets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_takeover_disconnects_the_first_connection_with_0x8e_and_hands_over_the_session() {
    let server = TestServer::start().await;
    let mut first = v5::Conn::connect(v5::persistent(server.addr, "takeover-v5", 60)).await;
    first.subscribe("takeover/v5", Qos5::AtLeastOnce).await;

    let mut second = v5::Conn::connect(v5::persistent(server.addr, "takeover-v5", 60)).await;
    assert!(
        second.session_present(),
        "the new connection gets the existing session"
    );
    assert_eq!(
        first.server_disconnect(raw::WAIT).await,
        DisconnectReasonCode::SessionTakenOver
    );

    let mut publisher = v5::Conn::connect(v5::options(server.addr, "takeover-v5-pub")).await;
    publisher
        .publish("takeover/v5", Qos5::AtLeastOnce, false, "after")
        .await;
    assert_eq!(
        v5::text(&second.expect_publish().await),
        "after",
        "the subscription moved with the session"
    );
    assert!(first.next_publish(Duration::ZERO).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_takeover_closes_the_first_connection_and_hands_over_the_session() {
    let server = TestServer::start().await;
    let mut first = v4::Conn::connect(v4::persistent(server.addr, "takeover-v311")).await;
    first
        .subscribe("takeover/v311", rumqttc::QoS::AtLeastOnce)
        .await;

    let mut second = v4::Conn::connect(v4::persistent(server.addr, "takeover-v311")).await;
    assert!(second.session_present());
    first.closed(raw::WAIT).await;

    let mut publisher = v4::Conn::connect(v4::options(server.addr, "takeover-v311-pub")).await;
    publisher
        .publish("takeover/v311", rumqttc::QoS::AtLeastOnce, false, "after")
        .await;
    assert_eq!(v4::text(&second.expect_publish().await), "after");
    assert!(first.next_publish(Duration::ZERO).await.is_none());
}

/// Twenty connections take the same session over in a row, each waiting only for its own
/// CONNACK; a QoS 1 message `m<i>` is published after connection `i` is accepted, and nobody
/// acknowledges anything. Connection `j` may see `m0..=m<j>` (first sends and DUP resends) but
/// never a message published after its successor took over; all but the last end with DISCONNECT
/// 0x8E, and the last one has every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rapid_takeovers_never_leave_two_connections_receiving() {
    let server = TestServer::start().await;
    let v = ProtocolVersion::V5;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "rapid-pub")).await;
    let mut conns = Vec::new();
    for i in 0..20 {
        let (mut c, ack) = raw::open_ok(server.addr, raw::persistent_v5("rapid", 60)).await;
        assert_eq!(ack.session_present, i > 0, "connection {i}");
        if i == 0 {
            raw::subscribe(&mut c, v, 1, "rapid/t", QoS::AtLeastOnce).await;
        }
        conns.push(c);
        publisher
            .publish("rapid/t", Qos5::AtLeastOnce, false, format!("m{i}"))
            .await;
    }
    let index = |p: &stratus_codec::Publish| -> usize {
        std::str::from_utf8(&p.payload).unwrap()[1..]
            .parse()
            .unwrap()
    };

    let mut last = conns.pop().unwrap();
    for (j, c) in conns.iter_mut().enumerate() {
        let packets = c.expect_close(raw::WAIT).await;
        for p in &packets {
            if let Packet::Publish(p) = p {
                assert!(
                    index(p) <= j,
                    "connection {j} received m{} after it was taken over",
                    index(p)
                );
            }
        }
        assert!(
            matches!(packets.last(), Some(Packet::Disconnect(d)) if d.reason == ReasonCode::SessionTakenOver),
            "connection {j} must end with DISCONNECT 0x8E: {packets:?}"
        );
    }

    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 20 {
        seen.insert(index(&raw::expect_publish(&mut last).await));
    }
    publisher
        .publish("rapid/t", Qos5::AtLeastOnce, false, "m20")
        .await;
    loop {
        let p = raw::expect_publish(&mut last).await;
        if index(&p) == 20 {
            break;
        }
        assert!(p.dup, "only resends may precede the new message: {p:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_taking_over_a_clean_session_with_clean_session_0_does_not_resume_it() {
    let server = TestServer::start().await;
    let mut first = v4::Conn::connect(v4::options(server.addr, "clean-takeover-v311")).await;
    first
        .subscribe("clean-takeover/v311", rumqttc::QoS::AtLeastOnce)
        .await;
    let mut second = v4::Conn::connect(v4::persistent(server.addr, "clean-takeover-v311")).await;
    first.closed(raw::WAIT).await;
    assert!(
        !second.session_present(),
        "a Clean Session 1 session lasts as long as its connection and must not be reused \
         [MQTT-3.1.2-6]"
    );
    // Nor may its subscription be.
    second
        .subscribe("clean-takeover/v311/marker", rumqttc::QoS::AtLeastOnce)
        .await;
    let mut publisher =
        v4::Conn::connect(v4::options(server.addr, "clean-takeover-v311-pub")).await;
    for topic in ["clean-takeover/v311", "clean-takeover/v311/marker"] {
        publisher
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, topic)
            .await;
    }
    assert_eq!(
        second.expect_publish().await.topic,
        "clean-takeover/v311/marker",
        "the first connection's subscription was carried into the new session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_taking_over_a_session_without_expiry_does_not_resume_it() {
    let server = TestServer::start().await;
    let mut first = v5::Conn::connect(v5::options(server.addr, "clean-takeover-v5")).await;
    first
        .subscribe("clean-takeover/v5", Qos5::AtLeastOnce)
        .await;
    let mut second = v5::Conn::connect(v5::persistent(server.addr, "clean-takeover-v5", 60)).await;
    assert_eq!(
        first.server_disconnect(raw::WAIT).await,
        DisconnectReasonCode::SessionTakenOver
    );
    assert!(
        !second.session_present(),
        "Session Expiry 0: the session ends when its connection closes [MQTT-3.1.2-23]"
    );
    second
        .subscribe("clean-takeover/v5/marker", Qos5::AtLeastOnce)
        .await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "clean-takeover-v5-pub")).await;
    for topic in ["clean-takeover/v5", "clean-takeover/v5/marker"] {
        publisher
            .publish(topic, Qos5::AtLeastOnce, false, topic)
            .await;
    }
    assert_eq!(
        v5::topic(&second.expect_publish().await),
        "clean-takeover/v5/marker",
        "the first connection's subscription was carried into the new session"
    );
}
