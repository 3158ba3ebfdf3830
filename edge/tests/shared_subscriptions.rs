//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5.0 section 4.8.2, also offered to 3.1.1
//! clients): each message goes to exactly one member of the group, spread over the members;
//! what a departing member left unacknowledged goes to another member; shared subscriptions get
//! no retained messages; a session's shared and non-shared subscriptions both deliver; No Local
//! on a shared subscription is a Protocol Error.
//!
//! Every member also subscribes to a private fence topic: once the fence published after the
//! test's messages arrived, everything routed to that member before it has arrived too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, SubscribeReasonCode};
use stratus_codec::{ConnectProperties, Packet, QoS, ReasonCode, SubscriptionOptions};
use support::TestServer;
use support::clients::packets::Raw;
use support::clients::{Q4, Q5, V4Client, V5Client, WAIT};

/// A group member speaking either protocol version.
enum Member {
    V5(Box<V5Client>),
    V4(Box<V4Client>),
}

impl Member {
    async fn join(server: &TestServer, id: &str, v5: bool, filter: &str) -> Self {
        let fence = format!("fence/{id}");
        if v5 {
            let mut c = V5Client::connect(server.addr, id).await;
            c.subscribe(filter, Q5::AtLeastOnce).await;
            c.subscribe(&fence, Q5::AtLeastOnce).await;
            Self::V5(Box::new(c))
        } else {
            let mut c = V4Client::connect(server.addr, id).await;
            c.subscribe(filter, Q4::AtLeastOnce).await;
            c.subscribe(&fence, Q4::AtLeastOnce).await;
            Self::V4(Box::new(c))
        }
    }

    /// Payloads received before the member's fence.
    async fn payloads_until(&mut self, fence: &str) -> Vec<String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Self::V5(c) => c
                .recv_until(fence)
                .await
                .iter()
                .map(|p| text(&p.payload))
                .collect(),
            Self::V4(c) => c
                .recv_until(fence)
                .await
                .iter()
                .map(|p| text(&p.payload))
                .collect(),
        }
    }
}

/// Publishes `count` QoS 1 messages on `topic`, then each member's fence, and checks that every
/// message reached exactly one member and that every member got some.
async fn assert_spread_exactly_once(
    server: &TestServer,
    ids: &[(&str, bool)],
    filter: &str,
    topic: &str,
) {
    const COUNT: usize = 30;
    let mut members = Vec::new();
    for (id, v5) in ids {
        members.push(Member::join(server, id, *v5, filter).await);
    }
    let mut publisher = V5Client::connect(server.addr, &format!("{}-pub", ids[0].0)).await;
    for i in 0..COUNT {
        publisher.publish_acked(topic, false, format!("m{i}")).await;
    }
    for (id, _) in ids {
        publisher
            .publish_acked(&format!("fence/{id}"), false, "fence")
            .await;
    }
    let mut all = Vec::new();
    for ((id, _), member) in ids.iter().zip(&mut members) {
        let got = member.payloads_until(&format!("fence/{id}")).await;
        assert!(
            !got.is_empty(),
            "member {id} received nothing: messages are not spread over the group"
        );
        all.extend(got);
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        COUNT,
        "every message reaches the group: {all:?}"
    );
    assert_eq!(all.len(), COUNT, "no message reaches two members: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_gives_each_message_to_exactly_one_v5_member() {
    let server = TestServer::start().await;
    let ids = [("sh5-a", true), ("sh5-b", true), ("sh5-c", true)];
    assert_spread_exactly_once(&server, &ids, "$share/g5/sh5/t", "sh5/t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_gives_each_message_to_exactly_one_v311_member() {
    let server = TestServer::start().await;
    let ids = [("sh4-a", false), ("sh4-b", false), ("sh4-c", true)];
    assert_spread_exactly_once(&server, &ids, "$share/g4/sh4/+", "sh4/t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_messages_go_to_another_member_when_a_member_disconnects() {
    let server = TestServer::start().await;
    let filter = "$share/rd/rd/t";
    let mut steady = V5Client::connect(server.addr, "rd-steady").await;
    steady.subscribe(filter, Q5::AtLeastOnce).await;
    let mut silent = Raw::v5(server.addr, "rd-silent", ConnectProperties::default()).await;
    let qos1 = SubscriptionOptions::with_qos(QoS::AtLeastOnce);
    let ack = silent
        .subscribe_with(1, &[(filter, qos1), ("fence/rd-silent", qos1)], None)
        .await;
    assert_eq!(
        ack.reasons,
        [ReasonCode::GrantedQoS1, ReasonCode::GrantedQoS1]
    );

    let mut publisher = V5Client::connect(server.addr, "rd-pub").await;
    let sent: BTreeSet<String> = (0..4).map(|i| format!("m{i}")).collect();
    for m in &sent {
        publisher.publish_acked("rd/t", false, m.clone()).await;
    }
    publisher
        .publish_acked("fence/rd-silent", false, "fence")
        .await;
    // The silent member takes its share and acknowledges none of it.
    let mut unacked = Vec::new();
    loop {
        let p = silent.next_publish().await;
        if p.topic == "fence/rd-silent" {
            break;
        }
        unacked.push(String::from_utf8_lossy(&p.payload).into_owned());
    }
    assert!(
        !unacked.is_empty(),
        "precondition: the silent member was given messages"
    );
    drop(silent);

    let mut received = BTreeSet::new();
    while received != sent {
        let p = steady.try_recv(WAIT).await.unwrap_or_else(|| {
            panic!("steady member has {received:?}; the silent member's unacknowledged {unacked:?} were not redispatched")
        });
        received.insert(String::from_utf8_lossy(&p.payload).into_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_receive_no_retained_messages() {
    let server = TestServer::start().await;
    let mut publisher = V5Client::connect(server.addr, "shr-pub").await;
    publisher.publish_acked("shr/t", true, "retained").await;
    publisher.publish_acked("fence/shr", true, "fence").await;

    let mut v5 = V5Client::connect(server.addr, "shr-v5").await;
    let ack = v5
        .subscribe_filters(vec![Filter::new("$share/g/shr/t", Q5::AtLeastOnce)], None)
        .await;
    assert_eq!(
        ack.return_codes,
        [SubscribeReasonCode::Success(Q5::AtLeastOnce)]
    );
    v5.subscribe("fence/shr", Q5::AtLeastOnce).await;
    let got = v5.recv_until("fence/shr").await;
    assert!(
        got.is_empty(),
        "5.0 shared subscription was sent retained {got:?}"
    );

    let mut v4 = V4Client::connect(server.addr, "shr-v4").await;
    v4.subscribe("$share/g4/shr/t", Q4::AtLeastOnce).await;
    v4.subscribe("fence/shr", Q4::AtLeastOnce).await;
    let got = v4.recv_until("fence/shr").await;
    assert!(
        got.is_empty(),
        "3.1.1 shared subscription was sent retained {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_and_non_shared_subscriptions_of_one_session_both_deliver() {
    let server = TestServer::start().await;
    let mut sub = V5Client::connect(server.addr, "both-sub").await;
    sub.subscribe_filters(
        vec![Filter::new("$share/g/both/t", Q5::AtLeastOnce)],
        Some(1),
    )
    .await;
    sub.subscribe_filters(vec![Filter::new("both/t", Q5::AtLeastOnce)], Some(2))
        .await;
    sub.subscribe("fence/both", Q5::AtLeastOnce).await;
    let mut publisher = V5Client::connect(server.addr, "both-pub").await;
    publisher.publish_acked("both/t", false, "m").await;
    publisher.publish_acked("fence/both", false, "fence").await;

    let got = sub.recv_until("fence/both").await;
    let mut ids: Vec<Vec<usize>> = got
        .iter()
        .map(|p| {
            p.properties
                .as_ref()
                .map(|pr| pr.subscription_identifiers.clone())
                .unwrap_or_default()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [vec![1], vec![2]],
        "one copy per subscription: {got:?}"
    );
    assert!(got.iter().all(|p| &p.payload[..] == b"m"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let server = TestServer::start().await;
    let mut c = Raw::v5(server.addr, "nlshare", ConnectProperties::default()).await;
    let mut options = SubscriptionOptions::with_qos(QoS::AtLeastOnce);
    options.no_local = true;
    let subscribe = stratus_codec::Subscribe {
        packet_id: support::clients::packets::pid(1),
        properties: Default::default(),
        filters: vec![stratus_codec::SubscriptionRequest {
            filter: "$share/g/nl/t".into(),
            options,
        }],
    };
    c.put(Packet::Subscribe(subscribe)).await;
    let packets = c.expect_close(Duration::from_secs(3)).await;
    match packets.as_slice() {
        [Packet::Disconnect(d)] => {
            assert_eq!(d.reason, ReasonCode::ProtocolError, "[MQTT-3.8.3-4]")
        }
        other => panic!("expected DISCONNECT 0x82 and close, got {other:?}"),
    }
}
