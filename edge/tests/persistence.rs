//! Durable state across a graceful restart of `stratus dev` (same data directory): persistent
//! sessions with their subscriptions and offline queues, retained messages, and in-flight
//! deliveries, which are resent with their original packet ids.
#![allow(clippy::unwrap_used)]

mod support;

use rumqttc::v5::mqttbytes::QoS as Qos5;
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::{TestServer, raw, v4, v5};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_queue_and_retained_message_survive_a_graceful_restart() {
    let mut server = TestServer::start().await;
    let mut sub = v5::Conn::connect(v5::persistent(server.addr, "durable-v5", 300)).await;
    sub.subscribe("durable/v5", Qos5::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "durable-v5-pub")).await;
    publisher.publish_numbered("durable/v5", 3).await;
    publisher
        .publish("durable/v5-retained", Qos5::AtLeastOnce, true, "kept")
        .await;
    publisher.disconnect().await;

    server.restart().await;
    let restored = server.restored();
    assert_eq!(restored.sessions, 1, "{restored:?}");
    assert_eq!(restored.messages, 3, "{restored:?}");
    assert_eq!(restored.retained, 1, "{restored:?}");
    assert_eq!(restored.skipped, 0, "{restored:?}");

    let mut sub = v5::Conn::connect(v5::persistent(server.addr, "durable-v5", 300)).await;
    assert!(sub.session_present(), "the session survived the restart");
    for i in 0..3 {
        assert_eq!(v5::text(&sub.expect_publish().await), i.to_string());
    }

    let mut publisher = v5::Conn::connect(v5::options(server.addr, "durable-v5-pub")).await;
    publisher
        .publish("durable/v5", Qos5::AtLeastOnce, false, "after restart")
        .await;
    assert_eq!(
        v5::text(&sub.expect_publish().await),
        "after restart",
        "the restored subscription routes new messages"
    );

    let mut newcomer = v5::Conn::connect(v5::options(server.addr, "durable-v5-new")).await;
    newcomer
        .subscribe("durable/v5-retained", Qos5::AtLeastOnce)
        .await;
    let retained = newcomer.expect_publish().await;
    assert_eq!(v5::text(&retained), "kept");
    assert!(retained.retain, "delivered as a retained message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_session_and_its_queue_survive_a_graceful_restart() {
    let mut server = TestServer::start().await;
    let mut sub = v4::Conn::connect(v4::persistent(server.addr, "durable-v311")).await;
    sub.subscribe("durable/v311", rumqttc::QoS::ExactlyOnce)
        .await;
    sub.disconnect().await;
    let mut publisher = v4::Conn::connect(v4::options(server.addr, "durable-v311-pub")).await;
    publisher
        .publish("durable/v311", rumqttc::QoS::AtLeastOnce, false, "one")
        .await;
    publisher
        .publish("durable/v311", rumqttc::QoS::ExactlyOnce, false, "two")
        .await;
    publisher.disconnect().await;

    server.restart().await;

    let mut sub = v4::Conn::connect(v4::persistent(server.addr, "durable-v311")).await;
    assert!(sub.session_present());
    let one = sub.expect_publish().await;
    let two = sub.expect_publish().await;
    assert_eq!(
        (v4::text(&one), one.qos),
        ("one", rumqttc::QoS::AtLeastOnce)
    );
    assert_eq!(
        (v4::text(&two), two.qos),
        ("two", rumqttc::QoS::ExactlyOnce)
    );
}

/// A persistent subscriber holds a QoS 1 and a QoS 2 delivery unacknowledged and a third QoS 2
/// delivery after PUBREC; the broker restarts gracefully (5.0 clients are told 0x8B). On resuming
/// against the restarted broker, the PUBLISHes come again with DUP and their original ids, and the
/// PUBREL with its id.
async fn inflight_deliveries_are_resent_after_restart(version: ProtocolVersion, id: &str) {
    let mut server = TestServer::start().await;
    let topic = format!("inflight/{id}");
    let connect = || match version {
        ProtocolVersion::V5 => raw::persistent_v5(id, 300),
        _ => raw::connect_packet(version, id, false),
    };
    let (mut c, _) = raw::open_ok(server.addr, connect()).await;
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
    publisher.disconnect().await;
    let first = [
        raw::expect_publish(&mut c).await,
        raw::expect_publish(&mut c).await,
        raw::expect_publish(&mut c).await,
    ];
    let ids: Vec<_> = first.iter().map(|p| p.packet_id.unwrap()).collect();
    raw::send_ack(&mut c, Packet::PubRec, ids[2], version).await;
    assert!(matches!(raw::expect_packet(&mut c).await, Packet::PubRel(r) if r.packet_id == ids[2]));

    server.restart().await;
    let farewell = c.expect_close(raw::WAIT).await;
    if version.is_v5() {
        assert!(
            matches!(&farewell[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ServerShuttingDown),
            "5.0 clients are told 0x8B: {farewell:?}"
        );
    }

    let (mut c, ack) = raw::open_ok(server.addr, connect()).await;
    assert!(ack.session_present, "the session survived the restart");
    let mut resent = Vec::new();
    let mut pubrel = None;
    for _ in 0..3 {
        match raw::expect_packet(&mut c).await {
            Packet::Publish(p) => resent.push(p),
            Packet::PubRel(r) => pubrel = Some(r.packet_id),
            other => panic!("unexpected {other:?} while resending"),
        }
    }
    assert_eq!(pubrel, Some(ids[2]), "PUBREL resent with its original id");
    assert_eq!(resent.len(), 2, "{resent:?}");
    for (p, orig) in resent.iter().zip(&first) {
        assert!(p.dup, "resent with DUP: {p:?}");
        assert_eq!(
            p.packet_id, orig.packet_id,
            "resent with the original packet id"
        );
        assert_eq!((p.qos, &p.payload), (orig.qos, &orig.payload));
    }

    let mut publisher = v5::Conn::connect(v5::options(server.addr, &format!("{id}-pub"))).await;
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
async fn v311_inflight_deliveries_are_resent_with_original_ids_after_restart() {
    inflight_deliveries_are_resent_after_restart(ProtocolVersion::V3_1_1, "inflight-v311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_inflight_deliveries_are_resent_with_original_ids_after_restart() {
    inflight_deliveries_are_resent_after_restart(ProtocolVersion::V5, "inflight-v5").await;
}

/// A crash leaves the stored packet-id counter behind the ids in flight (it is written at CONNECT
/// and DISCONNECT only). Here the counter is rewound to 0 by hand while the broker is stopped, as a
/// `kill -9` between sends would leave it. After the restart a new delivery must still get an id
/// that is not in flight: a client holding a QoS 2 id awaiting PUBREL would drop a new message
/// sent under it as a retransmission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_id_counter_behind_the_ids_in_flight_never_reuses_one() {
    let mut server = TestServer::start().await;
    let id = "counter-behind";
    let topic = "counter/behind";
    let (mut c, _) = raw::open_ok(server.addr, raw::persistent_v5(id, 300)).await;
    raw::subscribe(&mut c, ProtocolVersion::V5, 1, topic, QoS::ExactlyOnce).await;
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "counter-behind-pub")).await;
    for m in ["m1", "m2"] {
        publisher.publish(topic, Qos5::ExactlyOnce, false, m).await;
    }
    publisher.disconnect().await;
    let in_flight: Vec<_> = [
        raw::expect_publish(&mut c).await,
        raw::expect_publish(&mut c).await,
    ]
    .iter()
    .map(|p| p.packet_id.unwrap())
    .collect();
    // The client took the second message (PUBREC) and holds its id until PUBREL.
    raw::send_ack(&mut c, Packet::PubRec, in_flight[1], ProtocolVersion::V5).await;
    assert!(
        matches!(raw::expect_packet(&mut c).await, Packet::PubRel(r) if r.packet_id == in_flight[1])
    );

    server
        .restart_after(|dir| {
            let db = rusqlite::Connection::open(dir.join("state.sqlite3")).unwrap();
            let changed = db
                .execute(
                    "UPDATE sessions SET next_packet_id = 0 WHERE client_id = ?1",
                    [id],
                )
                .unwrap();
            assert_eq!(changed, 1, "the session row exists");
        })
        .await;

    let (mut c, ack) = raw::open_ok(server.addr, raw::persistent_v5(id, 300)).await;
    assert!(ack.session_present);
    let mut publisher = v5::Conn::connect(v5::options(server.addr, "counter-behind-pub")).await;
    publisher
        .publish(topic, Qos5::ExactlyOnce, false, "m3")
        .await;
    publisher.disconnect().await;
    let mut fresh = None;
    while fresh.is_none() {
        match raw::expect_packet(&mut c).await {
            Packet::Publish(p) if p.dup => assert_eq!(p.packet_id, Some(in_flight[0])),
            Packet::Publish(p) => fresh = Some(p),
            Packet::PubRel(r) => assert_eq!(r.packet_id, in_flight[1]),
            other => panic!("unexpected {other:?} after resuming"),
        }
    }
    let fresh = fresh.unwrap();
    assert_eq!(&fresh.payload[..], b"m3");
    let fresh_id = fresh.packet_id.unwrap();
    assert!(
        !in_flight.contains(&fresh_id),
        "m3 got id {fresh_id}, still in flight: {in_flight:?}"
    );
}

/// A 5.0 publisher's QoS 2 PUBLISH got PUBREC but no PUBREL before the broker restarted. After the
/// restart the resent PUBLISH is acknowledged again and must not be routed a second time: the
/// packet id it holds is part of the durable session state ([MQTT-4.3.3-10]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_qos2_state_survives_a_graceful_restart() {
    let mut server = TestServer::start().await;
    let v = ProtocolVersion::V5;
    let topic = "durable/qos2-in";
    let mut once = raw::publish_packet(topic, QoS::ExactlyOnce, Some(9), b"once");
    let (mut c, _) = raw::open_ok(server.addr, raw::persistent_v5("qos2-in", 300)).await;
    c.send_packet(&Packet::Publish(once.clone()), v).await;
    assert!(
        matches!(raw::expect_packet(&mut c).await, Packet::PubRec(a) if a.packet_id == raw::pid(9))
    );

    server.restart().await;
    c.expect_close(raw::WAIT).await;
    let mut sub = v5::Conn::connect(v5::options(server.addr, "qos2-in-sub")).await;
    sub.subscribe(topic, Qos5::ExactlyOnce).await;

    let (mut c, ack) = raw::open_ok(server.addr, raw::persistent_v5("qos2-in", 300)).await;
    assert!(ack.session_present);
    once.dup = true;
    c.send_packet(&Packet::Publish(once), v).await;
    assert!(
        matches!(raw::expect_packet(&mut c).await, Packet::PubRec(a) if a.packet_id == raw::pid(9))
    );
    raw::send_ack(&mut c, Packet::PubRel, raw::pid(9), v).await;
    match raw::expect_packet(&mut c).await {
        Packet::PubComp(a) => assert_eq!(
            (a.packet_id, a.reason),
            (raw::pid(9), ReasonCode::Success),
            "the pending id was restored"
        ),
        other => panic!("expected PUBCOMP 9, got {other:?}"),
    }
    c.send_packet(
        &Packet::Publish(raw::publish_packet(
            topic,
            QoS::AtLeastOnce,
            Some(10),
            b"fence",
        )),
        v,
    )
    .await;
    assert!(matches!(
        raw::expect_packet(&mut c).await,
        Packet::PubAck(_)
    ));
    assert_eq!(
        v5::text(&sub.expect_publish().await),
        "fence",
        "the resent QoS 2 message was routed again after the restart"
    );
}
