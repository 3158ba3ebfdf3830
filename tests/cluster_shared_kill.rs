//! A share group member's edge killed with SIGKILL, as real processes (`stratus control-plane`,
//! two `stratus edge` of a pool of their own over the shared NATS and Redis): the QoS 1 messages
//! its member held unacknowledged go to a member on the surviving edge once the group's
//! acknowledgement wait (`--shared-ack-wait-secs`, 2 s here) ran out, each once.
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_support::codec_client::{CodecClient, ConnectSpec};
use cluster_support::{ControlPlane, Edge};
use stratus_codec::{Ack, Packet, ProtocolVersion, QoS};

const GROUP: &str = "$share/g/shk/#";
const MESSAGES: usize = 10;

fn clean(id: &str) -> ConnectSpec<'_> {
    ConnectSpec {
        version: ProtocolVersion::V5,
        client_id: id,
        clean_start: true,
        expiry_secs: None,
        will: None,
        will_delay_secs: 0,
    }
}

/// The payload of the next PUBLISH within `wait`, acknowledged if `ack`.
async fn next_message(c: &mut CodecClient, wait: Duration, ack: bool) -> Option<String> {
    loop {
        if let Packet::Publish(p) = c.recv(wait).await.unwrap()? {
            if ack {
                c.send(&Packet::PubAck(Ack::success(p.packet_id.unwrap())))
                    .await
                    .unwrap();
            }
            return Some(String::from_utf8(p.payload.to_vec()).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edges_unacknowledged_group_messages_go_to_a_member_on_another_edge() {
    let nats_url = stratus_testkit::shared_nats_url();
    let redis_url = stratus_testkit::shared_redis_url();
    let pool = stratus_testkit::unique_name("shk");
    let plane = ControlPlane::start(&nats_url).await;
    let ack_wait = ["--shared-ack-wait-secs", "2"];
    let edge_a = Edge::start_with(&plane, &nats_url, &redis_url, &pool, "edge-a", 3, &ack_wait);
    let edge_b = Edge::start_with(&plane, &nats_url, &redis_url, &pool, "edge-b", 3, &ack_wait);

    let (mut m0, _) = CodecClient::connect(edge_a.mqtt, &clean(&format!("{pool}-m0")))
        .await
        .unwrap();
    m0.subscribe(GROUP, QoS::AtLeastOnce).await.unwrap();
    let (mut publisher, _) = CodecClient::connect(edge_b.mqtt, &clean(&format!("{pool}-pub")))
        .await
        .unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..MESSAGES {
        let payload = format!("k{i}");
        let id = u16::try_from(i + 1).unwrap();
        assert!(
            publisher
                .publish(
                    &format!("shk/{i}"),
                    QoS::AtLeastOnce,
                    id,
                    payload.as_bytes()
                )
                .await
                .unwrap()
        );
        sent.insert(payload);
    }
    // The only member holds every message, unacknowledged.
    let mut held = BTreeSet::new();
    for _ in 0..MESSAGES {
        held.insert(
            next_message(&mut m0, Duration::from_secs(10), false)
                .await
                .expect("the member got every message"),
        );
    }
    assert_eq!(held, sent);

    let (mut m1, _) = CodecClient::connect(edge_b.mqtt, &clean(&format!("{pool}-m1")))
        .await
        .unwrap();
    m1.subscribe(GROUP, QoS::AtLeastOnce).await.unwrap();
    edge_a.process.signal("-KILL");

    let mut moved = BTreeSet::new();
    while moved.len() < MESSAGES {
        let Some(payload) = next_message(&mut m1, Duration::from_secs(20), true).await else {
            panic!(
                "{} of {MESSAGES} messages reached the other member",
                moved.len()
            );
        };
        assert!(moved.insert(payload.clone()), "{payload} delivered twice");
    }
    assert_eq!(moved, sent);
    drop(edge_b);
    drop(edge_a);
    plane.stop().await;
}
