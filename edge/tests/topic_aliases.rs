//! MQTT 5.0 topic aliases (section 3.3.2.3.4) in both directions: a client sets an alias with a
//! topic and then uses it alone; an alias above our Topic Alias Maximum is 0x94 and an unknown
//! one with an empty topic is 0x82; towards a client that allows aliases we assign them and then
//! send an empty topic, towards a client that allows none we never do.
#![allow(clippy::unwrap_used)]

mod support;

use std::num::NonZeroU16;
use std::time::Duration;

use stratus_codec::{ConnectProperties, Packet, Publish, QoS, ReasonCode};
use support::TestServer;
use support::clients::packets::{Raw, publish_packet};
use support::clients::{Q5, V5Client, topic5};

fn aliased(topic: &str, alias: u16, packet_id: u16, payload: &[u8]) -> Publish {
    let mut p = publish_packet(topic, QoS::AtLeastOnce, Some(packet_id), payload);
    p.properties.topic_alias = NonZeroU16::new(alias);
    p
}

async fn expect_disconnect(c: &mut Raw, reason: ReasonCode, rule: &str) {
    let packets = c.expect_close(Duration::from_secs(3)).await;
    match packets.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, reason, "{rule}"),
        other => panic!("expected DISCONNECT {reason:?} then close ({rule}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_set_with_a_topic_can_then_be_used_alone() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect(server.addr, "ali-sub").await;
    sub.subscribe("ali/#", Q5::AtLeastOnce).await;
    let mut c = Raw::v5(server.addr, "ali-pub", ConnectProperties::default()).await;

    c.put(Packet::Publish(aliased("ali/t", 1, 1, b"set"))).await;
    c.put(Packet::Publish(aliased("", 1, 2, b"reused"))).await;
    c.put(Packet::Publish(aliased("ali/u", 1, 3, b"remapped")))
        .await;
    c.put(Packet::Publish(aliased("", 1, 4, b"reused again")))
        .await;
    for id in 1..=4 {
        match c.next_packet().await {
            Packet::PubAck(ack) => {
                assert_eq!((ack.packet_id.get(), ack.reason), (id, ReasonCode::Success))
            }
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = sub.recv().await;
        got.push((
            topic5(&p).to_owned(),
            String::from_utf8_lossy(&p.payload).into_owned(),
        ));
    }
    let expected = [
        ("ali/t", "set"),
        ("ali/t", "reused"),
        ("ali/u", "remapped"),
        ("ali/u", "reused again"),
    ]
    .map(|(t, m)| (t.to_owned(), m.to_owned()));
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_above_our_maximum_is_disconnected_with_0x94() {
    let server = TestServer::start_with(|c| c.limits.topic_alias_maximum = 4).await;
    let mut c = Raw::v5(server.addr, "ali-max", ConnectProperties::default()).await;
    c.put(Packet::Publish(aliased("ali/t", 4, 1, b"at the maximum")))
        .await;
    assert!(
        matches!(c.next_packet().await, Packet::PubAck(_)),
        "alias 4 of 4 is accepted"
    );
    c.put(Packet::Publish(aliased("ali/t", 5, 2, b"above")))
        .await;
    expect_disconnect(&mut c, ReasonCode::TopicAliasInvalid, "[MQTT-3.3.2-9]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_alias_with_an_empty_topic_is_a_protocol_error() {
    let server = TestServer::start().await;
    let mut c = Raw::v5(server.addr, "ali-unknown", ConnectProperties::default()).await;
    c.put(Packet::Publish(aliased("", 3, 1, b"who knows")))
        .await;
    expect_disconnect(&mut c, ReasonCode::ProtocolError, "[MQTT-3.3.2-8]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_assigns_topic_aliases_to_a_client_that_allows_them() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect_with(server.addr, "alo-sub", |o| {
        o.set_topic_alias_max(Some(5));
    })
    .await;
    sub.subscribe("alo/+", Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "alo-pub").await;
    for (topic, payload) in [
        ("alo/t", "1"),
        ("alo/t", "2"),
        ("alo/u", "3"),
        ("alo/t", "4"),
    ] {
        publisher.publish_acked(topic, false, payload).await;
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = sub.recv().await;
        let alias = p.properties.as_ref().and_then(|pr| pr.topic_alias);
        got.push((
            topic5(&p).to_owned(),
            alias,
            String::from_utf8_lossy(&p.payload).into_owned(),
        ));
    }
    let t_alias = got[0]
        .1
        .expect("the first PUBLISH on a topic establishes an alias");
    assert!(
        (1..=5).contains(&t_alias),
        "alias within the client's maximum: {got:?}"
    );
    assert_eq!(
        got[0].0, "alo/t",
        "an alias is established together with the topic"
    );
    assert_eq!(
        (got[1].0.as_str(), got[1].1),
        ("", Some(t_alias)),
        "repeated topic is sent as its alias: {got:?}"
    );
    let u_alias = got[2].1.expect("a second topic gets its own alias");
    assert_eq!(got[2].0, "alo/u");
    assert_ne!(u_alias, t_alias);
    assert_eq!(
        (got[3].0.as_str(), got[3].1),
        ("", Some(t_alias)),
        "{got:?}"
    );
    let payloads: Vec<_> = got.iter().map(|g| g.2.as_str()).collect();
    assert_eq!(payloads, ["1", "2", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_never_assigns_topic_aliases_to_a_client_that_allows_none() {
    let server = TestServer::start().await;
    let mut silent = V5Client::connect(server.addr, "alz-absent").await;
    silent.subscribe("alz/t", Q5::AtLeastOnce).await;
    let mut zero = V5Client::connect_with(server.addr, "alz-zero", |o| {
        o.set_topic_alias_max(Some(0));
    })
    .await;
    zero.subscribe("alz/t", Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "alz-pub").await;
    for i in 0..3 {
        publisher
            .publish_acked("alz/t", false, format!("m{i}"))
            .await;
    }
    for sub in [&mut silent, &mut zero] {
        for _ in 0..3 {
            let p = sub.recv().await;
            assert_eq!(topic5(&p), "alz/t");
            assert_eq!(
                p.properties.as_ref().and_then(|pr| pr.topic_alias),
                None,
                "{p:?}"
            );
        }
    }
}
