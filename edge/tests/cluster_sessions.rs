//! Persistent sessions in the clustered shape: a session made on one edge resumes on another
//! with Session Present 1, its subscriptions, the messages published while it was offline, and
//! its in-flight messages resent with their original packet ids; QoS 2 state in both directions
//! survives the move; a new subscription does not deliver older messages; a clean start
//! discards the stored session. Every test uses its own pool.
#![allow(clippy::unwrap_used)]

mod cluster;
mod support;

use cluster::TestCluster;
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::raw::{self, pid, publish_packet};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

/// Publishes `payload` on `topic` at `qos` from a fresh clean client on `addr`, waiting for the
/// acknowledgement (so the message is in the stream when this returns).
async fn publish_acked(
    addr: std::net::SocketAddr,
    id: &str,
    topic: &str,
    qos: QoS,
    payload: &[u8],
) {
    let (mut p, _) = raw::open_ok(addr, raw::connect_packet(V5, id, true)).await;
    p.send_packet(
        &Packet::Publish(publish_packet(topic, qos, Some(1), payload)),
        V5,
    )
    .await;
    match (qos, raw::expect_packet(&mut p).await) {
        (QoS::AtLeastOnce, Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
        (QoS::ExactlyOnce, Packet::PubRec(a)) => {
            assert_eq!(a.reason, ReasonCode::Success);
            raw::send_ack(&mut p, Packet::PubRel, pid(1), V5).await;
            assert!(matches!(
                raw::expect_packet(&mut p).await,
                Packet::PubComp(_)
            ));
        }
        (q, other) => panic!("unexpected answer to a QoS {q:?} publish: {other:?}"),
    }
    raw::disconnect_v5(&mut p, ReasonCode::Success).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_on_another_edge_with_its_offline_messages() {
    let c = TestCluster::start(3).await;
    for (version, tag) in [(V5, "v5"), (V4, "v4")] {
        let id = format!("keeper-{tag}");
        let connect = |clean: bool| match version {
            V5 if !clean => raw::persistent_v5(&id, 600),
            _ => raw::connect_packet(version, &id, clean),
        };
        let (mut s, ack) = raw::open_ok(c.addrs[0], connect(false)).await;
        assert!(!ack.session_present);
        raw::subscribe(
            &mut s,
            version,
            1,
            &format!("{tag}/off/#"),
            QoS::ExactlyOnce,
        )
        .await;
        raw::subscribe(&mut s, version, 2, &format!("{tag}/zero"), QoS::AtMostOnce).await;
        match version {
            V5 => raw::disconnect_v5(&mut s, ReasonCode::Success).await,
            _ => {
                s.send_packet(
                    &Packet::Disconnect(stratus_codec::Disconnect::new(ReasonCode::Success)),
                    version,
                )
                .await
            }
        }
        drop(s);

        publish_acked(
            c.addrs[1],
            &format!("p1-{tag}"),
            &format!("{tag}/off/a"),
            QoS::AtLeastOnce,
            b"one",
        )
        .await;
        publish_acked(
            c.addrs[1],
            &format!("p2-{tag}"),
            &format!("{tag}/off/b"),
            QoS::ExactlyOnce,
            b"two",
        )
        .await;

        let (mut s, ack) = raw::open_ok(c.addrs[2], connect(false)).await;
        assert!(
            ack.session_present,
            "the session made on edge 0 resumes on edge 2"
        );
        let p = raw::expect_publish(&mut s).await;
        assert_eq!(
            (&*p.topic, &p.payload[..], p.qos),
            (&*format!("{tag}/off/a"), &b"one"[..], QoS::AtLeastOnce)
        );
        raw::send_ack(&mut s, Packet::PubAck, p.packet_id.unwrap(), version).await;
        let p = raw::expect_publish(&mut s).await;
        assert_eq!(
            (&*p.topic, &p.payload[..], p.qos),
            (&*format!("{tag}/off/b"), &b"two"[..], QoS::ExactlyOnce)
        );
        let q2 = p.packet_id.unwrap();
        raw::send_ack(&mut s, Packet::PubRec, q2, version).await;
        assert!(matches!(raw::expect_packet(&mut s).await, Packet::PubRel(a) if a.packet_id == q2));
        raw::send_ack(&mut s, Packet::PubComp, q2, version).await;

        // The subscriptions came along: live messages arrive too, QoS 0 included.
        publish_acked(
            c.addrs[0],
            &format!("p3-{tag}"),
            &format!("{tag}/off/c"),
            QoS::AtLeastOnce,
            b"three",
        )
        .await;
        let p = raw::expect_publish(&mut s).await;
        assert_eq!(&p.payload[..], b"three");
        raw::send_ack(&mut s, Packet::PubAck, p.packet_id.unwrap(), version).await;
        let (mut z, _) = raw::open_ok(
            c.addrs[1],
            raw::connect_packet(V5, &format!("z-{tag}"), true),
        )
        .await;
        z.send_packet(
            &Packet::Publish(publish_packet(
                &format!("{tag}/zero"),
                QoS::AtMostOnce,
                None,
                b"z",
            )),
            V5,
        )
        .await;
        let p = raw::expect_publish(&mut s).await;
        assert_eq!((&p.payload[..], p.qos), (&b"z"[..], QoS::AtMostOnce));

        // A clean start discards it everywhere.
        drop(s);
        let (mut s, ack) = raw::open_ok(c.addrs[1], connect(true)).await;
        assert!(!ack.session_present);
        match version {
            V5 => raw::disconnect_v5(&mut s, ReasonCode::Success).await,
            _ => {
                s.send_packet(
                    &Packet::Disconnect(stratus_codec::Disconnect::new(ReasonCode::Success)),
                    version,
                )
                .await
            }
        }
        drop(s);
        let (_s, ack) = raw::open_ok(c.addrs[0], connect(false)).await;
        assert!(
            !ack.session_present,
            "a clean start ended the stored session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_messages_keep_their_packet_ids_on_another_edge() {
    let c = TestCluster::start(2).await;
    let (mut s, _) = raw::open_ok(c.addrs[0], raw::persistent_v5("inflight", 600)).await;
    raw::subscribe(&mut s, V5, 1, "fly/#", QoS::ExactlyOnce).await;
    for (i, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publish_acked(
            c.addrs[1],
            &format!("fly-pub-{i}"),
            &format!("fly/{i}"),
            qos,
            format!("m{i}").as_bytes(),
        )
        .await;
    }
    let first = raw::expect_publish(&mut s).await;
    let second = raw::expect_publish(&mut s).await;
    let third = raw::expect_publish(&mut s).await;
    // The QoS 2 message in the middle moves on to PUBREL; the others stay unacknowledged.
    let second_id = second.packet_id.unwrap();
    raw::send_ack(&mut s, Packet::PubRec, second_id, V5).await;
    assert!(
        matches!(raw::expect_packet(&mut s).await, Packet::PubRel(a) if a.packet_id == second_id)
    );

    // Taken over on the other edge: the old connection is told, the new one gets the
    // in-flight messages again with their packet ids, in order, and the PUBREL again.
    let (mut s2, ack) = raw::open_ok(c.addrs[1], raw::persistent_v5("inflight", 600)).await;
    assert!(ack.session_present);
    match raw::expect_packet(&mut s).await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::SessionTakenOver),
        other => panic!("expected DISCONNECT 0x8E on the old connection, got {other:?}"),
    }
    let again = raw::expect_publish(&mut s2).await;
    assert!(again.dup);
    assert_eq!(
        (again.packet_id, &again.payload[..]),
        (first.packet_id, &b"m0"[..])
    );
    match raw::expect_packet(&mut s2).await {
        Packet::PubRel(a) => assert_eq!(a.packet_id, second_id),
        other => panic!("expected PUBREL for the released message, got {other:?}"),
    }
    let again = raw::expect_publish(&mut s2).await;
    assert!(again.dup);
    assert_eq!(
        (again.packet_id, &again.payload[..]),
        (third.packet_id, &b"m2"[..])
    );
    raw::send_ack(&mut s2, Packet::PubAck, first.packet_id.unwrap(), V5).await;
    raw::send_ack(&mut s2, Packet::PubComp, second_id, V5).await;
    raw::send_ack(&mut s2, Packet::PubRec, third.packet_id.unwrap(), V5).await;
    assert!(matches!(
        raw::expect_packet(&mut s2).await,
        Packet::PubRel(_)
    ));
    raw::send_ack(&mut s2, Packet::PubComp, third.packet_id.unwrap(), V5).await;

    // Nothing else is pending: a marker published now is the next thing to arrive.
    publish_acked(
        c.addrs[0],
        "fly-marker",
        "fly/marker",
        QoS::AtLeastOnce,
        b"marker",
    )
    .await;
    let p = raw::expect_publish(&mut s2).await;
    assert_eq!(&p.payload[..], b"marker");
    assert!(!p.dup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_qos2_message_is_delivered_once_across_a_move() {
    let c = TestCluster::start(2).await;
    let (mut watcher, _) =
        raw::open_ok(c.addrs[0], raw::connect_packet(V5, "q2-watch", true)).await;
    raw::subscribe(&mut watcher, V5, 1, "q2in/#", QoS::ExactlyOnce).await;

    let (mut p, _) = raw::open_ok(c.addrs[0], raw::persistent_v5("q2-pub", 600)).await;
    p.send_packet(
        &Packet::Publish(publish_packet("q2in/x", QoS::ExactlyOnce, Some(9), b"once")),
        V5,
    )
    .await;
    assert!(matches!(raw::expect_packet(&mut p).await, Packet::PubRec(a) if a.packet_id == pid(9)));
    // Moves to the other edge before releasing, and resends the PUBLISH (allowed until PUBREC
    // was seen; a client that lost the PUBREC does exactly this).
    let (mut p2, ack) = raw::open_ok(c.addrs[1], raw::persistent_v5("q2-pub", 600)).await;
    assert!(ack.session_present);
    let mut dup = publish_packet("q2in/x", QoS::ExactlyOnce, Some(9), b"once");
    dup.dup = true;
    p2.send_packet(&Packet::Publish(dup), V5).await;
    assert!(
        matches!(raw::expect_packet(&mut p2).await, Packet::PubRec(a) if a.packet_id == pid(9))
    );
    raw::send_ack(&mut p2, Packet::PubRel, pid(9), V5).await;
    assert!(
        matches!(raw::expect_packet(&mut p2).await, Packet::PubComp(a) if a.packet_id == pid(9))
    );
    p2.send_packet(
        &Packet::Publish(publish_packet(
            "q2in/marker",
            QoS::ExactlyOnce,
            Some(10),
            b"m",
        )),
        V5,
    )
    .await;
    assert!(matches!(
        raw::expect_packet(&mut p2).await,
        Packet::PubRec(_)
    ));

    let first = raw::expect_publish(&mut watcher).await;
    assert_eq!(&first.payload[..], b"once");
    raw::send_ack(&mut watcher, Packet::PubRec, first.packet_id.unwrap(), V5).await;
    let mut next = raw::expect_packet(&mut watcher).await;
    if let Packet::PubRel(a) = next {
        raw::send_ack(&mut watcher, Packet::PubComp, a.packet_id, V5).await;
        next = raw::expect_packet(&mut watcher).await;
    }
    match next {
        Packet::Publish(m) => assert_eq!(&m.payload[..], b"m", "the QoS 2 message arrived twice"),
        other => panic!("expected the marker, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscription_does_not_deliver_older_messages() {
    let c = TestCluster::start(2).await;
    publish_acked(c.addrs[1], "old-pub", "old/a", QoS::AtLeastOnce, b"before").await;
    let (mut s, _) = raw::open_ok(c.addrs[0], raw::persistent_v5("late", 600)).await;
    raw::subscribe(&mut s, V5, 1, "old/#", QoS::AtLeastOnce).await;
    publish_acked(c.addrs[1], "new-pub", "old/b", QoS::AtLeastOnce, b"after").await;
    let p = raw::expect_publish(&mut s).await;
    assert_eq!(&p.payload[..], b"after");
    raw::send_ack(&mut s, Packet::PubAck, p.packet_id.unwrap(), V5).await;
    // Resumed elsewhere: still nothing from before the subscription, nor a second copy.
    drop(s);
    publish_acked(
        c.addrs[0],
        "new-pub2",
        "old/c",
        QoS::AtLeastOnce,
        b"offline",
    )
    .await;
    let (mut s, ack) = raw::open_ok(c.addrs[1], raw::persistent_v5("late", 600)).await;
    assert!(ack.session_present);
    let p = raw::expect_publish(&mut s).await;
    assert_eq!(&p.payload[..], b"offline");
    raw::send_ack(&mut s, Packet::PubAck, p.packet_id.unwrap(), V5).await;
    publish_acked(c.addrs[0], "new-pub3", "old/d", QoS::AtLeastOnce, b"marker").await;
    let p = raw::expect_publish(&mut s).await;
    assert_eq!(
        &p.payload[..],
        b"marker",
        "nothing older or repeated comes first"
    );
}
