//! QoS 0/1/2 through the broker for MQTT 3.1.1 and 5.0 clients, in both directions: the delivered
//! QoS is the lower of the publish and subscription QoS, packet identifiers follow their life
//! cycle (PUBACK; PUBREC, PUBREL, PUBCOMP), one topic keeps its order, and deliveries left
//! unacknowledged when a connection drops are resent with DUP and their original packet ids.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashSet};

use rumqttc::v5::mqttbytes::QoS as Qos5;
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::raw::{self, pid, publish_packet};
use support::{TestServer, v4, v5};

const LEVELS: [u8; 3] = [0, 1, 2];

fn qos4(level: u8) -> rumqttc::QoS {
    rumqttc::qos(level).unwrap()
}

fn qos5(level: u8) -> Qos5 {
    rumqttc::v5::mqttbytes::qos(level).unwrap()
}

/// Publishes one message per QoS level from a 3.1.1 and a 5.0 publisher; payload `v<ver>-q<qos>`.
async fn publish_every_level(server: &TestServer, prefix: &str, topic: &str) {
    let mut p4 = v4::Conn::connect(v4::options(server.addr, &format!("{prefix}-pub4"))).await;
    let mut p5 = v5::Conn::connect(v5::options(server.addr, &format!("{prefix}-pub5"))).await;
    for level in LEVELS {
        p4.publish(topic, qos4(level), false, format!("v4-q{level}"))
            .await;
        p5.publish(topic, qos5(level), false, format!("v5-q{level}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_subscribers_receive_the_lower_of_publish_and_subscription_qos() {
    let server = TestServer::start().await;
    let topic = "matrix/v311";
    let mut subs = Vec::new();
    for level in LEVELS {
        let mut s = v4::Conn::connect(v4::options(server.addr, &format!("m4-sub{level}"))).await;
        s.subscribe(topic, qos4(level)).await;
        subs.push(s);
    }
    publish_every_level(&server, "m4", topic).await;
    for (sub_level, s) in LEVELS.into_iter().zip(&mut subs) {
        let mut got = BTreeMap::new();
        for _ in 0..6 {
            let p = s.expect_publish().await;
            got.insert(v4::text(&p).to_owned(), p.qos as u8);
        }
        for ver in ["v4", "v5"] {
            for pub_level in LEVELS {
                assert_eq!(
                    got.get(&format!("{ver}-q{pub_level}")),
                    Some(&pub_level.min(sub_level)),
                    "subscription QoS {sub_level}, {ver} publish QoS {pub_level}: {got:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscribers_receive_the_lower_of_publish_and_subscription_qos() {
    let server = TestServer::start().await;
    let topic = "matrix/v5";
    let mut subs = Vec::new();
    for level in LEVELS {
        let mut s = v5::Conn::connect(v5::options(server.addr, &format!("m5-sub{level}"))).await;
        s.subscribe(topic, qos5(level)).await;
        subs.push(s);
    }
    publish_every_level(&server, "m5", topic).await;
    for (sub_level, s) in LEVELS.into_iter().zip(&mut subs) {
        let mut got = BTreeMap::new();
        for _ in 0..6 {
            let p = s.expect_publish().await;
            got.insert(v5::text(&p).to_owned(), p.qos as u8);
        }
        for ver in ["v4", "v5"] {
            for pub_level in LEVELS {
                assert_eq!(
                    got.get(&format!("{ver}-q{pub_level}")),
                    Some(&pub_level.min(sub_level)),
                    "subscription QoS {sub_level}, {ver} publish QoS {pub_level}: {got:?}"
                );
            }
        }
    }
}

/// Publisher side at the packet level: PUBACK and PUBREC carry the PUBLISH's packet id, a resent
/// QoS 2 PUBLISH is acknowledged again but routed once, PUBREL gets PUBCOMP, and the id can be
/// reused afterwards for a new message.
async fn inbound_acknowledgements_follow_the_packet_id(version: ProtocolVersion, id: &str) {
    let server = TestServer::start().await;
    let topic = format!("inbound/{id}");
    let mut sub = v5::Conn::connect(v5::options(server.addr, &format!("{id}-sub"))).await;
    sub.subscribe(&topic, Qos5::ExactlyOnce).await;
    let (mut c, _) = raw::open_ok(server.addr, raw::connect_packet(version, id, true)).await;

    c.send_packet(
        &Packet::Publish(publish_packet(&topic, QoS::AtLeastOnce, Some(11), b"one")),
        version,
    )
    .await;
    match raw::expect_packet(&mut c).await {
        Packet::PubAck(a) => assert_eq!(a.packet_id, pid(11)),
        other => panic!("expected PUBACK 11, got {other:?}"),
    }

    let mut two = publish_packet(&topic, QoS::ExactlyOnce, Some(12), b"two");
    c.send_packet(&Packet::Publish(two.clone()), version).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubRec(a) => assert_eq!(a.packet_id, pid(12)),
        other => panic!("expected PUBREC 12, got {other:?}"),
    }
    two.dup = true;
    c.send_packet(&Packet::Publish(two), version).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubRec(a) => assert_eq!(a.packet_id, pid(12), "a resend is acknowledged again"),
        other => panic!("expected PUBREC 12 for the resend, got {other:?}"),
    }
    raw::send_ack(&mut c, Packet::PubRel, pid(12), version).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubComp(a) => {
            assert_eq!(a.packet_id, pid(12));
            assert_eq!(a.reason, ReasonCode::Success);
        }
        other => panic!("expected PUBCOMP 12, got {other:?}"),
    }

    // The released id starts a new exchange.
    c.send_packet(
        &Packet::Publish(publish_packet(&topic, QoS::ExactlyOnce, Some(12), b"three")),
        version,
    )
    .await;
    assert!(
        matches!(raw::expect_packet(&mut c).await, Packet::PubRec(a) if a.packet_id == pid(12))
    );
    raw::send_ack(&mut c, Packet::PubRel, pid(12), version).await;
    assert!(
        matches!(raw::expect_packet(&mut c).await, Packet::PubComp(a) if a.packet_id == pid(12))
    );

    let got: Vec<String> = [
        sub.expect_publish().await,
        sub.expect_publish().await,
        sub.expect_publish().await,
    ]
    .iter()
    .map(|p| v5::text(p).to_owned())
    .collect();
    assert_eq!(
        got,
        ["one", "two", "three"],
        "the resent QoS 2 PUBLISH must not be routed twice"
    );

    // PUBREL for an id that is not pending still completes (5.0 says which).
    raw::send_ack(&mut c, Packet::PubRel, pid(99), version).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubComp(a) => {
            assert_eq!(a.packet_id, pid(99));
            if version.is_v5() {
                assert_eq!(a.reason, ReasonCode::PacketIdentifierNotFound);
            }
        }
        other => panic!("expected PUBCOMP 99, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_inbound_qos1_and_qos2_are_acknowledged_with_their_packet_ids() {
    inbound_acknowledgements_follow_the_packet_id(ProtocolVersion::V3_1_1, "in-v311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_inbound_qos1_and_qos2_are_acknowledged_with_their_packet_ids() {
    inbound_acknowledgements_follow_the_packet_id(ProtocolVersion::V5, "in-v5").await;
}

/// Subscriber side at the packet level: outbound QoS 1/2 deliveries carry distinct non-zero ids,
/// PUBREC is answered by PUBREL with the same id, and once every flow is complete nothing is
/// resent.
async fn outbound_packet_ids_complete_their_flows(version: ProtocolVersion, id: &str) {
    let server = TestServer::start().await;
    let topic = format!("outbound/{id}");
    let (mut c, _) = raw::open_ok(server.addr, raw::connect_packet(version, id, true)).await;
    raw::subscribe(&mut c, version, 1, &topic, QoS::ExactlyOnce).await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, &format!("{id}-pub"))).await;
    publisher
        .publish(&topic, Qos5::AtLeastOnce, false, "a")
        .await;
    publisher
        .publish(&topic, Qos5::ExactlyOnce, false, "b")
        .await;
    publisher
        .publish(&topic, Qos5::ExactlyOnce, false, "c")
        .await;

    let a = raw::expect_publish(&mut c).await;
    let b = raw::expect_publish(&mut c).await;
    let d = raw::expect_publish(&mut c).await;
    assert_eq!(
        [&a.payload[..], &b.payload[..], &d.payload[..]],
        [b"a", b"b", b"c"]
    );
    assert_eq!(
        [a.qos, b.qos, d.qos],
        [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::ExactlyOnce]
    );
    assert!(
        !a.dup && !b.dup && !d.dup,
        "first deliveries are not duplicates"
    );
    let ids: HashSet<_> = [a.packet_id, b.packet_id, d.packet_id]
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 3, "in-flight ids must be distinct: {ids:?}");
    let (a_id, b_id, c_id) = (
        a.packet_id.unwrap(),
        b.packet_id.unwrap(),
        d.packet_id.unwrap(),
    );

    raw::send_ack(&mut c, Packet::PubAck, a_id, version).await;
    for qos2 in [b_id, c_id] {
        raw::send_ack(&mut c, Packet::PubRec, qos2, version).await;
        match raw::expect_packet(&mut c).await {
            Packet::PubRel(r) => assert_eq!(r.packet_id, qos2, "PUBREL must echo the PUBREC id"),
            other => panic!("expected PUBREL {qos2}, got {other:?}"),
        }
        raw::send_ack(&mut c, Packet::PubComp, qos2, version).await;
    }

    publisher
        .publish(&topic, Qos5::AtLeastOnce, false, "e")
        .await;
    let e = raw::expect_publish(&mut c).await;
    assert_eq!(
        &e.payload[..],
        b"e",
        "nothing may be resent once its flow completed"
    );
    assert!(!e.dup);
    raw::send_ack(&mut c, Packet::PubAck, e.packet_id.unwrap(), version).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_outbound_packet_ids_are_distinct_and_released_by_their_acks() {
    outbound_packet_ids_complete_their_flows(ProtocolVersion::V3_1_1, "out-v311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_outbound_packet_ids_are_distinct_and_released_by_their_acks() {
    outbound_packet_ids_complete_their_flows(ProtocolVersion::V5, "out-v5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_thousand_qos1_messages_on_one_topic_arrive_in_publish_order() {
    let server = TestServer::start().await;
    let mut sub = v4::Conn::connect(v4::options(server.addr, "order-v311-sub")).await;
    sub.subscribe("order/v311", rumqttc::QoS::AtLeastOnce).await;
    let mut publisher = v4::Conn::connect(v4::options(server.addr, "order-v311-pub")).await;
    publisher.publish_numbered("order/v311", 1000).await;
    for i in 0..1000 {
        let p = sub.expect_publish().await;
        assert_eq!(v4::text(&p), i.to_string(), "message {i} out of order");
        assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_thousand_qos1_messages_on_one_topic_arrive_in_publish_order() {
    let server = TestServer::start().await;
    let mut sub = v5::Conn::connect(v5::options(server.addr, "order-v5-sub")).await;
    sub.subscribe("order/v5", Qos5::AtLeastOnce).await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "order-v5-pub")).await;
    publisher.publish_numbered("order/v5", 1000).await;
    for i in 0..1000 {
        let p = sub.expect_publish().await;
        assert_eq!(v5::text(&p), i.to_string(), "message {i} out of order");
        assert_eq!(p.qos, Qos5::AtLeastOnce);
    }
}

/// A persistent subscriber receives QoS 1 and QoS 2 deliveries, acknowledges none but a PUBREC,
/// and drops the TCP connection. On resuming, the server resends the PUBLISHes with DUP and the
/// same packet ids, in their original order, and the PUBREL for the message it had a PUBREC for.
async fn unacknowledged_deliveries_are_resent_after_reconnect(version: ProtocolVersion, id: &str) {
    let server = TestServer::start().await;
    let topic = format!("resend/{id}");
    let connect = || match version {
        ProtocolVersion::V5 => raw::persistent_v5(id, 60),
        _ => raw::connect_packet(version, id, false),
    };
    let (mut c, ack) = raw::open_ok(server.addr, connect()).await;
    assert!(!ack.session_present);
    raw::subscribe(&mut c, version, 1, &topic, QoS::ExactlyOnce).await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, &format!("{id}-pub"))).await;
    publisher
        .publish(&topic, Qos5::AtLeastOnce, false, "m1")
        .await;
    publisher
        .publish(&topic, Qos5::ExactlyOnce, false, "m2")
        .await;
    publisher
        .publish(&topic, Qos5::ExactlyOnce, false, "m3")
        .await;
    let first: Vec<_> = vec![
        raw::expect_publish(&mut c).await,
        raw::expect_publish(&mut c).await,
        raw::expect_publish(&mut c).await,
    ];
    let ids: Vec<_> = first.iter().map(|p| p.packet_id.unwrap()).collect();
    raw::send_ack(&mut c, Packet::PubRec, ids[2], version).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubRel(r) => assert_eq!(r.packet_id, ids[2]),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    drop(c);

    let (mut c, ack) = raw::open_ok(server.addr, connect()).await;
    assert!(ack.session_present, "the session must be resumed");
    let mut resent = Vec::new();
    let mut pubrel = None;
    for _ in 0..3 {
        match raw::expect_packet(&mut c).await {
            Packet::Publish(p) => resent.push(p),
            Packet::PubRel(r) => pubrel = Some(r.packet_id),
            other => panic!("unexpected {other:?} while resending"),
        }
    }
    assert_eq!(
        pubrel,
        Some(ids[2]),
        "the PUBREL must be resent with its original id"
    );
    assert_eq!(resent.len(), 2, "{resent:?}");
    for (p, (orig, qos)) in resent
        .iter()
        .zip([(&first[0], QoS::AtLeastOnce), (&first[1], QoS::ExactlyOnce)])
    {
        assert!(p.dup, "a resent PUBLISH must have DUP set: {p:?}");
        assert_eq!(
            p.packet_id, orig.packet_id,
            "resent with its original packet id"
        );
        assert_eq!(p.qos, qos);
        assert_eq!(p.payload, orig.payload);
    }

    // A new delivery while the resent ones are unacknowledged gets an id not in flight.
    publisher
        .publish(&topic, Qos5::AtLeastOnce, false, "m4")
        .await;
    let m4 = raw::expect_publish(&mut c).await;
    assert_eq!((&m4.payload[..], m4.dup), (&b"m4"[..], false));
    let m4_id = m4.packet_id.unwrap();
    assert!(
        !ids.contains(&m4_id),
        "m4 got id {m4_id}, still in flight: {ids:?}"
    );

    // Completing every flow leaves nothing behind.
    raw::send_ack(&mut c, Packet::PubAck, ids[0], version).await;
    raw::send_ack(&mut c, Packet::PubAck, m4_id, version).await;
    raw::send_ack(&mut c, Packet::PubRec, ids[1], version).await;
    assert!(matches!(raw::expect_packet(&mut c).await, Packet::PubRel(r) if r.packet_id == ids[1]));
    raw::send_ack(&mut c, Packet::PubComp, ids[1], version).await;
    raw::send_ack(&mut c, Packet::PubComp, ids[2], version).await;
    publisher
        .publish(&topic, Qos5::AtLeastOnce, false, "m5")
        .await;
    let next = raw::expect_publish(&mut c).await;
    assert_eq!((&next.payload[..], next.dup), (&b"m5"[..], false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_unacknowledged_deliveries_are_resent_with_dup_and_original_ids() {
    unacknowledged_deliveries_are_resent_after_reconnect(ProtocolVersion::V3_1_1, "resend-v311")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_unacknowledged_deliveries_are_resent_with_dup_and_original_ids() {
    unacknowledged_deliveries_are_resent_after_reconnect(ProtocolVersion::V5, "resend-v5").await;
}

/// A persistent publisher sends a QoS 2 PUBLISH, gets PUBREC and loses its connection before
/// PUBREL. After resuming it resends the PUBLISH (DUP): it is acknowledged again but must not be
/// delivered a second time ([MQTT-4.3.3-10]).
async fn inbound_qos2_resent_after_reconnect_is_delivered_once(version: ProtocolVersion, id: &str) {
    let server = TestServer::start().await;
    let topic = format!("once/{id}");
    let mut sub = v5::Conn::connect(v5::options(server.addr, &format!("{id}-sub"))).await;
    sub.subscribe(&topic, Qos5::ExactlyOnce).await;
    let connect = || match version {
        ProtocolVersion::V5 => raw::persistent_v5(id, 60),
        _ => raw::connect_packet(version, id, false),
    };
    let mut once = publish_packet(&topic, QoS::ExactlyOnce, Some(5), b"once");
    let (mut c, _) = raw::open_ok(server.addr, connect()).await;
    c.send_packet(&Packet::Publish(once.clone()), version).await;
    assert!(matches!(raw::expect_packet(&mut c).await, Packet::PubRec(a) if a.packet_id == pid(5)));
    drop(c);

    let (mut c, ack) = raw::open_ok(server.addr, connect()).await;
    assert!(ack.session_present);
    once.dup = true;
    c.send_packet(&Packet::Publish(once), version).await;
    assert!(matches!(raw::expect_packet(&mut c).await, Packet::PubRec(a) if a.packet_id == pid(5)));
    raw::send_ack(&mut c, Packet::PubRel, pid(5), version).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubComp(a) => assert_eq!((a.packet_id, a.reason), (pid(5), ReasonCode::Success)),
        other => panic!("expected PUBCOMP 5, got {other:?}"),
    }
    c.send_packet(
        &Packet::Publish(publish_packet(&topic, QoS::AtLeastOnce, Some(6), b"fence")),
        version,
    )
    .await;
    assert!(matches!(raw::expect_packet(&mut c).await, Packet::PubAck(a) if a.packet_id == pid(6)));

    assert_eq!(v5::text(&sub.expect_publish().await), "once");
    assert_eq!(
        v5::text(&sub.expect_publish().await),
        "fence",
        "the resent QoS 2 message was delivered twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_qos2_publish_resent_after_reconnect_is_delivered_once() {
    inbound_qos2_resent_after_reconnect_is_delivered_once(ProtocolVersion::V3_1_1, "once-v311")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_qos2_publish_resent_after_reconnect_is_delivered_once() {
    inbound_qos2_resent_after_reconnect_is_delivered_once(ProtocolVersion::V5, "once-v5").await;
}

/// A subscriber that acknowledges nothing gets at most two QoS 1 deliveries in flight; a QoS 0
/// message published after five QoS 1 messages overtakes the three held back (it shows the broker
/// had them and did not send them), and each PUBACK lets exactly one more out.
async fn outbound_window_of_two_holds_back_the_rest(
    server: &TestServer,
    connect: stratus_codec::Connect,
) {
    let version = connect.protocol;
    let topic = format!("window/{}", connect.client_id);
    let (mut c, _) = raw::open_ok(server.addr, connect).await;
    raw::subscribe(&mut c, version, 1, &topic, QoS::AtLeastOnce).await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, &format!("{topic}-pub"))).await;
    publisher.publish_numbered(&topic, 5).await;
    publisher
        .publish(&topic, Qos5::AtMostOnce, false, "fence")
        .await;

    // MQTT orders deliveries per QoS level only: the QoS 0 fence may come before, between or
    // after the first two QoS 1 messages.
    let mut in_flight = std::collections::VecDeque::new();
    let mut got = Vec::new();
    let mut fenced = false;
    while !(fenced && in_flight.len() == 2) {
        let p = raw::expect_publish(&mut c).await;
        if p.qos == QoS::AtMostOnce {
            assert_eq!(&p.payload[..], b"fence");
            fenced = true;
            continue;
        }
        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
        in_flight.push_back(p.packet_id.unwrap());
        assert!(
            in_flight.len() <= 2,
            "more than 2 deliveries in flight: {got:?}"
        );
    }
    assert_eq!(got, ["0", "1"]);
    // Every message was queued before the fence, so nothing more is on its way: the answer to a
    // PINGREQ sent now is the next packet.
    c.send_packet(&Packet::PingReq, version).await;
    let next = raw::expect_packet(&mut c).await;
    assert!(matches!(next, Packet::PingResp), "{next:?}");
    for next in ["2", "3", "4"] {
        let acked = in_flight.pop_front().unwrap();
        raw::send_ack(&mut c, Packet::PubAck, acked, version).await;
        let p = raw::expect_publish(&mut c).await;
        assert_eq!(&p.payload[..], next.as_bytes(), "one PUBACK frees one slot");
        in_flight.push_back(p.packet_id.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_in_flight_window_is_capped_by_max_inflight_messages() {
    let server = TestServer::start_with(|c| c.limits.max_inflight_messages = 2).await;
    let connect = raw::connect_packet(ProtocolVersion::V3_1_1, "window-limit", true);
    outbound_window_of_two_holds_back_the_rest(&server, connect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_outbound_in_flight_window_is_capped_by_the_client_receive_maximum() {
    let server = TestServer::start().await;
    let mut connect = raw::connect_packet(ProtocolVersion::V5, "window-rm", true);
    connect.properties.receive_maximum = std::num::NonZeroU16::new(2);
    outbound_window_of_two_holds_back_the_rest(&server, connect).await;
}
