//! The clustered shape with three edges sharing one NATS and one Redis: messages, retained
//! messages, shared subscriptions and takeovers cross edges; QoS 1/2 acknowledgements wait for
//! JetStream. Every test uses its own pool (subjects, stream, bucket, Redis keys).
#![allow(clippy::unwrap_used)]

mod cluster;
mod support;

use std::collections::HashMap;

use bytes::Bytes;
use cluster::TestCluster;
use stratus_codec::{Ack, Packet, ProtocolVersion, QoS, ReasonCode};
use support::raw::{self, pid, publish_packet};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_edges_at_every_qos() {
    let c = TestCluster::start(3).await;
    for (version, tag) in [(V5, "v5"), (V4, "v4")] {
        let (mut sub, _) = raw::open_ok(
            c.addrs[0],
            raw::connect_packet(version, &format!("sub-{tag}"), true),
        )
        .await;
        raw::subscribe(&mut sub, version, 1, &format!("{tag}/#"), QoS::ExactlyOnce).await;
        let (mut publ, _) = raw::open_ok(
            c.addrs[1],
            raw::connect_packet(version, &format!("pub-{tag}"), true),
        )
        .await;
        publ.send_packet(
            &Packet::Publish(publish_packet(
                &format!("{tag}/q0"),
                QoS::AtMostOnce,
                None,
                b"zero",
            )),
            version,
        )
        .await;
        publ.send_packet(
            &Packet::Publish(publish_packet(
                &format!("{tag}/q1"),
                QoS::AtLeastOnce,
                Some(7),
                b"one",
            )),
            version,
        )
        .await;
        match raw::expect_packet(&mut publ).await {
            Packet::PubAck(a) => {
                assert_eq!(a.packet_id, pid(7));
                assert_eq!(a.reason, ReasonCode::Success);
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
        publ.send_packet(
            &Packet::Publish(publish_packet(
                &format!("{tag}/q2"),
                QoS::ExactlyOnce,
                Some(8),
                b"two",
            )),
            version,
        )
        .await;
        assert!(
            matches!(raw::expect_packet(&mut publ).await, Packet::PubRec(a) if a.packet_id == pid(8))
        );
        raw::send_ack(&mut publ, Packet::PubRel, pid(8), version).await;
        assert!(
            matches!(raw::expect_packet(&mut publ).await, Packet::PubComp(a) if a.packet_id == pid(8))
        );

        let p0 = raw::expect_publish(&mut sub).await;
        assert_eq!(
            (&*p0.topic, p0.qos, &p0.payload[..]),
            (&*format!("{tag}/q0"), QoS::AtMostOnce, &b"zero"[..])
        );
        let p1 = raw::expect_publish(&mut sub).await;
        assert_eq!(
            (&*p1.topic, p1.qos, &p1.payload[..]),
            (&*format!("{tag}/q1"), QoS::AtLeastOnce, &b"one"[..])
        );
        raw::send_ack(&mut sub, Packet::PubAck, p1.packet_id.unwrap(), version).await;
        let p2 = raw::expect_publish(&mut sub).await;
        assert_eq!(
            (&*p2.topic, p2.qos, &p2.payload[..]),
            (&*format!("{tag}/q2"), QoS::ExactlyOnce, &b"two"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_get_one_copy_at_the_highest_qos() {
    let c = TestCluster::start(2).await;
    let (mut sub, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "overlap", true)).await;
    raw::subscribe(&mut sub, V5, 1, "a/+", QoS::AtMostOnce).await;
    raw::subscribe(&mut sub, V5, 2, "a/b", QoS::AtLeastOnce).await;
    raw::subscribe(&mut sub, V5, 3, "#", QoS::AtLeastOnce).await;
    // Another session on the same edge with only one of the filters.
    let (mut other, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "other", true)).await;
    raw::subscribe(&mut other, V5, 1, "a/+", QoS::AtMostOnce).await;
    let (mut publ, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "pub", true)).await;
    publ.send_packet(
        &Packet::Publish(publish_packet("a/b", QoS::AtLeastOnce, Some(1), b"x")),
        V5,
    )
    .await;
    publ.send_packet(
        &Packet::Publish(publish_packet("fence", QoS::AtLeastOnce, Some(2), b"f")),
        V5,
    )
    .await;
    let first = raw::expect_publish(&mut sub).await;
    assert_eq!((&*first.topic, first.qos), ("a/b", QoS::AtLeastOnce));
    raw::send_ack(&mut sub, Packet::PubAck, first.packet_id.unwrap(), V5).await;
    // The fence (matched by `#` only, QoS 1 like the copy it fences) comes next: no second copy
    // of a/b in between.
    let fence = raw::expect_publish(&mut sub).await;
    assert_eq!(&*fence.topic, "fence");
    let o = raw::expect_publish(&mut other).await;
    assert_eq!((&*o.topic, o.qos), ("a/b", QoS::AtMostOnce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_on_another_edge_takes_the_session_over() {
    let c = TestCluster::start(3).await;
    let (mut old, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "roamer", true)).await;
    let (mut new, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "roamer", true)).await;
    // The old connection was closed with 0x8E before the new one's CONNACK was sent.
    let closed = old.expect_close(raw::WAIT).await;
    assert!(
        closed.iter().any(
            |p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::SessionTakenOver)
        ),
        "old connection got {closed:?}"
    );
    // And again to the third edge, 3.1.1 this time: the 5.0 one is closed.
    let (_v4, _) = raw::open_ok(c.addrs[2], raw::connect_packet(V4, "roamer", true)).await;
    let closed = new.expect_close(raw::WAIT).await;
    assert!(
        closed.iter().any(
            |p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::SessionTakenOver)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_served_by_every_edge() {
    let c = TestCluster::start(3).await;
    let (mut publ, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "pub", true)).await;
    let mut p = publish_packet("status/door", QoS::AtLeastOnce, Some(1), b"open");
    p.retain = true;
    publ.send_packet(&Packet::Publish(p), V5).await;
    assert!(matches!(
        raw::expect_packet(&mut publ).await,
        Packet::PubAck(_)
    ));
    // An edge that never saw the tenant loads it from Redis.
    let (mut sub, _) = raw::open_ok(c.addrs[2], raw::connect_packet(V5, "late", true)).await;
    raw::subscribe(&mut sub, V5, 1, "status/+", QoS::AtLeastOnce).await;
    let r = raw::expect_publish(&mut sub).await;
    assert_eq!(
        (&*r.topic, &r.payload[..], r.retain),
        ("status/door", &b"open"[..], true)
    );
    raw::send_ack(&mut sub, Packet::PubAck, r.packet_id.unwrap(), V5).await;

    // Replaced on another edge: an edge that already holds the tenant follows the change.
    let (mut publ2, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "pub2", true)).await;
    let mut p = publish_packet("status/door", QoS::AtLeastOnce, Some(1), b"closed");
    p.retain = true;
    publ2.send_packet(&Packet::Publish(p), V5).await;
    assert!(matches!(
        raw::expect_packet(&mut publ2).await,
        Packet::PubAck(_)
    ));
    let live = raw::expect_publish(&mut sub).await;
    assert_eq!(&live.payload[..], b"closed");
    raw::send_ack(&mut sub, Packet::PubAck, live.packet_id.unwrap(), V5).await;
    let (mut sub2, _) = raw::open_ok(c.addrs[2], raw::connect_packet(V5, "later", true)).await;
    raw::subscribe(&mut sub2, V5, 1, "status/#", QoS::AtMostOnce).await;
    let r = raw::expect_publish(&mut sub2).await;
    assert_eq!(&r.payload[..], b"closed");

    // Cleared on edge 1: a new subscriber on edge 2 gets nothing (fenced by another retained
    // message it must get).
    let mut clear = publish_packet("status/door", QoS::AtLeastOnce, Some(2), b"");
    clear.retain = true;
    publ2.send_packet(&Packet::Publish(clear), V5).await;
    assert!(matches!(
        raw::expect_packet(&mut publ2).await,
        Packet::PubAck(_)
    ));
    let mut fence = publish_packet("status/zz-fence", QoS::AtLeastOnce, Some(3), b"f");
    fence.retain = true;
    publ2.send_packet(&Packet::Publish(fence), V5).await;
    assert!(matches!(
        raw::expect_packet(&mut publ2).await,
        Packet::PubAck(_)
    ));
    // Both changes reached edge 2 once the live copies did.
    let _cleared = raw::expect_publish(&mut sub2).await;
    let _fence = raw::expect_publish(&mut sub2).await;
    let (mut sub3, _) = raw::open_ok(c.addrs[2], raw::connect_packet(V5, "last", true)).await;
    raw::subscribe(&mut sub3, V5, 1, "status/#", QoS::AtMostOnce).await;
    let only = raw::expect_publish(&mut sub3).await;
    assert_eq!(&*only.topic, "status/zz-fence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_group_spread_over_edges_gets_each_message_once() {
    let c = TestCluster::start(3).await;
    let (mut m0, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "m0", true)).await;
    raw::subscribe(&mut m0, V5, 1, "$share/g/jobs/#", QoS::AtLeastOnce).await;
    let (mut m1, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "m1", true)).await;
    raw::subscribe(&mut m1, V5, 1, "$share/g/jobs/#", QoS::AtLeastOnce).await;
    let (mut publ, _) = raw::open_ok(c.addrs[2], raw::connect_packet(V5, "pub", true)).await;
    let n = 40u16;
    for i in 1..=n {
        publ.send_packet(
            &Packet::Publish(publish_packet(
                &format!("jobs/{i}"),
                QoS::AtLeastOnce,
                Some(i),
                b"j",
            )),
            V5,
        )
        .await;
        assert!(matches!(
            raw::expect_packet(&mut publ).await,
            Packet::PubAck(_)
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    while total < usize::from(n) {
        tokio::select! {
            Some(Packet::Publish(p)) = m0.recv(raw::WAIT) => {
                raw::send_ack(&mut m0, Packet::PubAck, p.packet_id.unwrap(), V5).await;
                *seen.entry(p.topic.to_string()).or_default() += 1;
                total += 1;
            }
            Some(Packet::Publish(p)) = m1.recv(raw::WAIT) => {
                raw::send_ack(&mut m1, Packet::PubAck, p.packet_id.unwrap(), V5).await;
                *seen.entry(p.topic.to_string()).or_default() += 1;
                total += 1;
            }
            else => panic!("share group members stopped receiving after {total} messages"),
        }
    }
    assert_eq!(seen.len(), usize::from(n));
    assert!(seen.values().all(|&k| k == 1), "duplicates: {seen:?}");
    // Nothing more arrives: a fence on a non-shared subscription proves the queues are empty.
    let (mut watch, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "watch", true)).await;
    raw::subscribe(&mut watch, V5, 1, "fence", QoS::AtLeastOnce).await;
    publ.send_packet(
        &Packet::Publish(publish_packet("fence", QoS::AtLeastOnce, Some(999), b"f")),
        V5,
    )
    .await;
    let _ = raw::expect_publish(&mut watch).await;
    assert!(
        m0.recv(std::time::Duration::from_millis(200))
            .await
            .is_none()
    );
    assert!(
        m1.recv(std::time::Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_holds_across_the_backbone() {
    let c = TestCluster::start(1).await;
    let (mut me, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "me", true)).await;
    let sub = stratus_codec::Subscribe {
        packet_id: pid(1),
        properties: Default::default(),
        filters: vec![stratus_codec::SubscriptionRequest {
            filter: "chat/#".into(),
            options: stratus_codec::SubscriptionOptions {
                no_local: true,
                ..stratus_codec::SubscriptionOptions::with_qos(QoS::AtLeastOnce)
            },
        }],
    };
    me.send_packet(&Packet::Subscribe(sub), V5).await;
    assert!(matches!(
        raw::expect_packet(&mut me).await,
        Packet::SubAck(_)
    ));
    raw::subscribe(&mut me, V5, 2, "fence", QoS::AtLeastOnce).await;
    me.send_packet(
        &Packet::Publish(publish_packet("chat/mine", QoS::AtLeastOnce, Some(5), b"x")),
        V5,
    )
    .await;
    me.send_packet(
        &Packet::Publish(publish_packet("fence", QoS::AtLeastOnce, Some(6), b"f")),
        V5,
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        match raw::expect_packet(&mut me).await {
            Packet::PubAck(Ack { packet_id, .. }) => got.push(format!("ack{}", packet_id.get())),
            Packet::Publish(p) => {
                raw::send_ack(&mut me, Packet::PubAck, p.packet_id.unwrap(), V5).await;
                got.push(p.topic.to_string());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got.contains(&"fence".to_owned()), "{got:?}");
    assert!(!got.contains(&"chat/mine".to_owned()), "{got:?}");
    let _ = Bytes::new();
}
