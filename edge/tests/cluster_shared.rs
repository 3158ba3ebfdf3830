//! Share groups at QoS 1/2 across edges: each message of the group's durable consumer goes to
//! one member on one edge, and what a member held unacknowledged when it left goes to a member
//! on another edge; what it acknowledged does not come again. Every test uses its own pool.
#![allow(clippy::unwrap_used)]

mod cluster;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cluster::TestCluster;
use stratus_codec::{Packet, ProtocolVersion, QoS};
use support::raw::{self, pid, publish_packet};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Publishes `payloads` at QoS 1 on `work/<payload>` from one clean client, each acknowledged.
async fn publish_work(addr: SocketAddr, id: &str, payloads: &[String]) {
    let (mut p, _) = raw::open_ok(addr, raw::connect_packet(V5, id, true)).await;
    for (i, payload) in payloads.iter().enumerate() {
        let packet_id = u16::try_from(i + 1).unwrap();
        p.send_packet(
            &Packet::Publish(publish_packet(
                &format!("work/{payload}"),
                QoS::AtLeastOnce,
                Some(packet_id),
                payload.as_bytes(),
            )),
            V5,
        )
        .await;
        match raw::expect_packet(&mut p).await {
            Packet::PubAck(a) => assert_eq!(a.packet_id, pid(packet_id)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departing_members_unacknowledged_messages_go_to_a_member_on_another_edge() {
    let c = TestCluster::start(2).await;
    let (mut m0, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "sh-m0", true)).await;
    raw::subscribe(&mut m0, V5, 1, "$share/g/work/#", QoS::AtLeastOnce).await;
    let work: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    publish_work(c.addrs[1], "sh-pub", &work).await;

    // The only member gets all ten, and acknowledges the first three.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(raw::expect_publish(&mut m0).await);
    }
    let got: BTreeSet<_> = held
        .iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(got, work.iter().cloned().collect());
    for p in &held[..3] {
        raw::send_ack(&mut m0, Packet::PubAck, p.packet_id.unwrap(), V5).await;
    }
    // Its acknowledgements are processed before its PINGRESP.
    m0.send_packet(&Packet::PingReq, V5).await;
    assert!(matches!(
        raw::expect_packet(&mut m0).await,
        Packet::PingResp
    ));

    // A member on the other edge joins; the first one's connection drops without DISCONNECT.
    let (mut m1, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "sh-m1", true)).await;
    raw::subscribe(&mut m1, V5, 1, "$share/g/work/#", QoS::AtLeastOnce).await;
    drop(m0);

    // The seven it had not acknowledged come to the other member, once each.
    let mut moved = BTreeSet::new();
    for _ in 0..7 {
        let p = raw::expect_publish(&mut m1).await;
        raw::send_ack(&mut m1, Packet::PubAck, p.packet_id.unwrap(), V5).await;
        assert!(
            moved.insert(String::from_utf8(p.payload.to_vec()).unwrap()),
            "delivered twice: {p:?}"
        );
    }
    let unacknowledged: BTreeSet<_> = held[3..]
        .iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(moved, unacknowledged);
    // Nothing else is owed to the group: the next message is a new one.
    publish_work(c.addrs[0], "sh-pub-2", &["fence".to_owned()]).await;
    let next = raw::expect_publish(&mut m1).await;
    assert_eq!(&next.payload[..], b"fence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_goes_to_one_member_across_edges_and_qos0_still_reaches_the_group() {
    let c = TestCluster::start(2).await;
    let (mut m0, _) = raw::open_ok(c.addrs[0], raw::connect_packet(V5, "one-m0", true)).await;
    raw::subscribe(&mut m0, V5, 1, "$share/g/work/#", QoS::AtLeastOnce).await;
    let (mut m1, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "one-m1", true)).await;
    raw::subscribe(&mut m1, V5, 1, "$share/g/work/#", QoS::AtLeastOnce).await;
    let work: Vec<String> = (0..40).map(|i| format!("j{i}")).collect();
    publish_work(c.addrs[0], "one-pub", &work).await;
    let mut seen = Vec::new();
    while seen.len() < work.len() {
        tokio::select! {
            Some(Packet::Publish(p)) = m0.recv(raw::WAIT) => {
                raw::send_ack(&mut m0, Packet::PubAck, p.packet_id.unwrap(), V5).await;
                seen.push(String::from_utf8(p.payload.to_vec()).unwrap());
            }
            Some(Packet::Publish(p)) = m1.recv(raw::WAIT) => {
                raw::send_ack(&mut m1, Packet::PubAck, p.packet_id.unwrap(), V5).await;
                seen.push(String::from_utf8(p.payload.to_vec()).unwrap());
            }
            else => panic!("members stopped receiving after {} messages", seen.len()),
        }
    }
    let distinct: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), seen.len(), "a message went to two members");
    assert_eq!(distinct, work.iter().cloned().collect());

    // QoS 0 messages reach the group through core NATS, once.
    let (mut p, _) = raw::open_ok(c.addrs[1], raw::connect_packet(V5, "one-pub0", true)).await;
    p.send_packet(
        &Packet::Publish(publish_packet("work/zero", QoS::AtMostOnce, None, b"z")),
        V5,
    )
    .await;
    tokio::select! {
        Some(Packet::Publish(p)) = m0.recv(raw::WAIT) => assert_eq!(&p.payload[..], b"z"),
        Some(Packet::Publish(p)) = m1.recv(raw::WAIT) => assert_eq!(&p.payload[..], b"z"),
        else => panic!("the QoS 0 message reached no member"),
    }
}
