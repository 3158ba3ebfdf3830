//! Quotas on what a tenant or a session holds, each configured low: connections and sessions per
//! tenant (CONNACK 0x97 / 3.1.1 return code 3), retained messages per tenant (5.0 PUBACK 0x97;
//! 3.1.1 dropped), and the messages and bytes queued for one session (beyond them new messages
//! are dropped while the earlier ones are still delivered).
#![allow(clippy::unwrap_used)]

mod support;

use rumqttc::v5::mqttbytes::v5::PubAckReason;
use stratus_codec::{ProtocolVersion, ReasonCode};
use support::TestServer;
use support::clients::packets::{Raw, connect_packet};
use support::clients::{Q4, Q5, V4Client, V5Client};

fn accepted(reason: &PubAckReason) -> bool {
    matches!(
        reason,
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
    )
}

/// Connects `id` with a session that outlives the connection.
async fn persistent(server: &TestServer, id: &str, clean_start: bool) -> V5Client {
    V5Client::connect_with(server.addr, id, |o| {
        o.set_clean_start(clean_start);
        o.set_session_expiry_interval(Some(300));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_tenant_maximum_are_refused_with_0x97() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_tenant = 2).await;
    let first = V5Client::connect(server.addr, "conn-1").await;
    let _second = V5Client::try_connect_with(server.addr, "conn-2", |_| {})
        .await
        .unwrap_or_else(|e| panic!("the 2nd of 2 allowed connections was refused: {e}"));

    let err = V5Client::try_connect_with(server.addr, "conn-3", |_| {})
        .await
        .err()
        .unwrap();
    assert!(err.contains("ConnectionRefused(QuotaExceeded)"), "{err}");
    let (_, ack) = Raw::open(
        server.addr,
        connect_packet(ProtocolVersion::V3_1_1, "conn-3-v4"),
    )
    .await;
    assert_eq!(
        ack.reason,
        ReasonCode::ServerUnavailable,
        "3.1.1 return code 3"
    );

    first.disconnect().await;
    V5Client::try_connect_with(server.addr, "conn-4", |_| {})
        .await
        .unwrap_or_else(|e| panic!("a freed connection slot is reusable: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_tenant_maximum_are_refused_with_0x97() {
    let server = TestServer::start_with(|c| c.limits.max_sessions_per_tenant = 2).await;
    persistent(&server, "sess-offline", true)
        .await
        .disconnect()
        .await;
    let _online = V5Client::connect(server.addr, "sess-online").await;

    let err = V5Client::try_connect_with(server.addr, "sess-new", |_| {})
        .await
        .err()
        .unwrap();
    assert!(err.contains("ConnectionRefused(QuotaExceeded)"), "{err}");
    let (_, ack) = Raw::open(
        server.addr,
        connect_packet(ProtocolVersion::V3_1_1, "sess-new-v4"),
    )
    .await;
    assert_eq!(
        ack.reason,
        ReasonCode::ServerUnavailable,
        "3.1.1 return code 3"
    );

    let resumed = persistent(&server, "sess-offline", false).await;
    assert!(
        resumed.connack.session_present,
        "an existing session can still be resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_beyond_the_tenant_maximum_are_refused_with_0x97() {
    let server = TestServer::start_with(|c| c.limits.max_retained_messages = 2).await;
    let mut c = V5Client::connect(server.addr, "retq-pub").await;
    assert!(accepted(
        &c.publish_acked("retq/1", true, "one").await.reason
    ));
    assert!(accepted(
        &c.publish_acked("retq/2", true, "two").await.reason
    ));
    let refused = c.publish_acked("retq/3", true, "three").await;
    assert_eq!(refused.reason, PubAckReason::QuotaExceeded);
    assert!(
        accepted(&c.publish_acked("retq/1", true, "one again").await.reason),
        "replacing is within quota"
    );
    assert!(
        accepted(
            &c.publish_acked("retq/3", false, "not retained")
                .await
                .reason
        ),
        "only retaining is refused"
    );

    let mut v4 = V4Client::connect(server.addr, "retq-v4").await;
    v4.publish_acked("retq/4", true, "four").await;

    let mut sub = V5Client::connect(server.addr, "retq-sub").await;
    sub.subscribe("retq/+", Q5::AtLeastOnce).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = sub.recv().await;
        got.push(String::from_utf8_lossy(&p.payload).into_owned());
    }
    got.sort();
    assert_eq!(got, ["one again", "two"]);

    assert!(
        accepted(&c.publish_acked("retq/2", true, "").await.reason),
        "clearing frees a slot"
    );
    assert!(accepted(
        &c.publish_acked("retq/3", true, "three").await.reason
    ));
    let mut late = V5Client::connect(server.addr, "retq-late").await;
    late.subscribe("retq/+", Q5::AtLeastOnce).await;
    let mut got: Vec<_> = Vec::new();
    for _ in 0..2 {
        got.push(String::from_utf8_lossy(&late.recv().await.payload).into_owned());
    }
    got.sort();
    assert_eq!(
        got,
        ["one again", "three"],
        "retq/4 from 3.1.1 was over quota and not kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_the_session_queue_maximum_are_dropped() {
    let server = TestServer::start_with(|c| c.limits.max_queued_messages = 3).await;
    let mut sub = persistent(&server, "qm-sub", true).await;
    sub.subscribe("qm/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = V5Client::connect(server.addr, "qm-pub").await;
    for i in 0..5 {
        publisher
            .publish_acked("qm/t", false, format!("m{i}"))
            .await;
    }

    let mut sub = persistent(&server, "qm-sub", false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(String::from_utf8_lossy(&sub.recv().await.payload).into_owned());
    }
    assert_eq!(got, ["m0", "m1", "m2"], "the earlier messages are kept");
    publisher.publish_acked("qm/t", false, "live").await;
    assert_eq!(
        &sub.recv().await.payload[..],
        b"live",
        "m3 and m4 were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_the_session_queue_byte_maximum_are_dropped() {
    // Each message weighs its topic (4 bytes) plus its payload (30 bytes): two fit in 100.
    let server = TestServer::start_with(|c| c.limits.max_queued_bytes = 100).await;
    let mut sub = V4Client::connect_with(server.addr, "qb-sub", |o| {
        o.set_clean_session(false);
    })
    .await;
    sub.subscribe("qb/t", Q4::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = V4Client::connect(server.addr, "qb-pub").await;
    for i in 0..4 {
        publisher
            .publish_acked("qb/t", false, format!("{i:0>30}"))
            .await;
    }

    let mut sub = V4Client::connect_with(server.addr, "qb-sub", |o| {
        o.set_clean_session(false);
    })
    .await;
    assert!(sub.connack.session_present);
    let first = sub.recv().await;
    let second = sub.recv().await;
    assert_eq!(
        [&first.payload[..], &second.payload[..]],
        [
            format!("{:0>30}", 0).as_bytes(),
            format!("{:0>30}", 1).as_bytes()
        ]
    );
    publisher.publish_acked("qb/t", false, "live").await;
    assert_eq!(
        &sub.recv().await.payload[..],
        b"live",
        "the messages over the byte limit were dropped"
    );
}
