//! Bad-input checklist section C, PUBLISH: items 33-41 (topics, packet identifiers, `$` topics,
//! tenants, topic aliases, PUBLISH properties) for MQTT 3.1.1 and 5.0.
//!
//! A refused PUBLISH closes a 3.1.1 connection silently and gets a 5.0 DISCONNECT with the
//! reason; either way a subscriber on `#` receives nothing and nothing is retained. Every
//! negative case has a positive twin that is delivered.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use stratus_codec::{Packet, ProtocolVersion, ReasonCode};
use support::TestServer;
use wire::{
    Connect, VERSIONS, client, expect_only_pingresp, expect_packet, expect_publish, expect_refused,
    field, open, publish_with, publish0, publish1, subscriber,
};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Sends `bad` from a fresh client, asserts the refusal, and that a subscriber on `#` got nothing.
async fn assert_refused_unrouted(
    server: &TestServer,
    version: ProtocolVersion,
    bad: &[u8],
    v5_reason: ReasonCode,
) {
    let mut watcher = subscriber(server.addr, version, "watcher", b"#", 0).await;
    let mut c = client(server.addr, version, "publisher").await;
    c.send(bad).await;
    expect_refused(&mut c, version, v5_reason).await;
    expect_only_pingresp(&mut watcher).await;
}

/// Sends `good` from a fresh client and asserts a subscriber on `#` receives `payload` on `topic`.
async fn assert_routed(
    server: &TestServer,
    version: ProtocolVersion,
    good: &[u8],
    topic: &[u8],
    payload: &[u8],
) {
    let mut watcher = subscriber(server.addr, version, "watcher", b"#", 0).await;
    let mut c = client(server.addr, version, "publisher").await;
    c.send(good).await;
    let p = expect_publish(&mut watcher).await;
    assert_eq!(
        (p.topic.as_bytes().as_ref(), p.payload.as_ref()),
        (topic, payload)
    );
}

/// The acknowledgement reason a 5.0 client gets for an accepted message with or without a
/// subscriber; 3.1.1 acknowledgements carry no reason and decode as Success.
fn accepted(version: ProtocolVersion, matched: bool) -> ReasonCode {
    if version.is_v5() && !matched {
        ReasonCode::NoMatchingSubscribers
    } else {
        ReasonCode::Success
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_a_topic_with_wildcards_is_refused_and_not_routed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for topic in [&b"a/+"[..], b"a/#", b"+", b"#", b"a/b+", b"a#"] {
            let qos0 = publish0(version, topic, b"bad");
            assert_refused_unrouted(&server, version, &qos0, ReasonCode::TopicNameInvalid).await;
            let qos1 = publish1(version, topic, 1, b"bad");
            assert_refused_unrouted(&server, version, &qos1, ReasonCode::TopicNameInvalid).await;
        }
        assert_routed(
            &server,
            version,
            &publish0(version, b"a/b", b"ok"),
            b"a/b",
            b"ok",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_an_empty_topic_and_no_alias_is_refused() {
    let server = TestServer::start().await;
    let v4 = [0x30, 0x03, 0x00, 0x00, b'x'];
    assert_refused_unrouted(
        &server,
        ProtocolVersion::V3_1_1,
        &v4,
        ReasonCode::ProtocolError,
    )
    .await;
    let v5 = [0x30, 0x04, 0x00, 0x00, 0x00, b'x'];
    assert_refused_unrouted(&server, V5, &v5, ReasonCode::ProtocolError).await;
    for version in VERSIONS {
        assert_routed(&server, version, &publish0(version, b"t", b"x"), b"t", b"x").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_topic_with_nul_surrogate_or_overlong_utf8_is_malformed_and_not_routed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for topic in [&b"a\x00b"[..], b"a/\xED\xA0\x80", b"a/\xC0\xAF"] {
            let bad = publish0(version, topic, b"bad");
            assert_refused_unrouted(&server, version, &bad, ReasonCode::MalformedPacket).await;
        }
        let twin = publish0(version, "a/\u{e9}".as_bytes(), b"ok");
        assert_routed(&server, version, &twin, "a/\u{e9}".as_bytes(), b"ok").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_topic_with_a_byte_order_mark_is_delivered_byte_exact() {
    let server = TestServer::start().await;
    let topic = b"a/\xEF\xBB\xBFb";
    for version in VERSIONS {
        let mut exact = subscriber(server.addr, version, "exact", topic, 0).await;
        let mut stripped = subscriber(server.addr, version, "stripped", b"a/b", 0).await;
        assert_routed(
            &server,
            version,
            &publish0(version, topic, b"bom"),
            topic,
            b"bom",
        )
        .await;
        let p = expect_publish(&mut exact).await;
        assert_eq!(p.topic.as_bytes().as_ref(), topic);
        expect_only_pingresp(&mut stripped).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_packet_identifier_0_is_a_protocol_error() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for first in [0x32, 0x34] {
            let bad = publish_with(version, first, b"t", Some(0), &[], b"bad");
            assert_refused_unrouted(&server, version, &bad, ReasonCode::ProtocolError).await;
        }
        let mut c = client(server.addr, version, "twin").await;
        c.send(&publish1(version, b"t", 1, b"ok")).await;
        assert!(matches!(expect_packet(&mut c).await, Packet::PubAck(a) if a.packet_id.get() == 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_publish_ending_after_the_topic_is_malformed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let bad = [0x32, 0x03, 0x00, 0x01, b't'];
        assert_refused_unrouted(&server, version, &bad, ReasonCode::MalformedPacket).await;
        let mut c = client(server.addr, version, "twin").await;
        c.send(&publish1(version, b"t", 9, b"")).await;
        assert!(matches!(expect_packet(&mut c).await, Packet::PubAck(a) if a.packet_id.get() == 9));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_sys_is_refused_in_v5_and_dropped_in_v311_never_routed_or_retained() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut watcher = subscriber(server.addr, version, "sys-watcher", b"$SYS/#", 0).await;
        let mut c = client(server.addr, version, "sys-writer").await;
        c.send(&publish_with(
            version,
            0x33,
            b"$SYS/broker/version",
            Some(1),
            &[],
            b"9",
        ))
        .await;
        let refused = if version.is_v5() {
            ReasonCode::NotAuthorized
        } else {
            ReasonCode::Success
        };
        assert!(matches!(expect_packet(&mut c).await, Packet::PubAck(a) if a.reason == refused));
        c.send(&publish_with(version, 0x35, b"$SYS/x", Some(2), &[], b"9"))
            .await;
        assert!(matches!(expect_packet(&mut c).await, Packet::PubRec(a) if a.reason == refused));
        c.send(&publish_with(version, 0x31, b"$SYS/x", None, &[], b"9"))
            .await;
        expect_only_pingresp(&mut c).await;
        expect_only_pingresp(&mut watcher).await;
        let mut later = subscriber(server.addr, version, "sys-later", b"$SYS/#", 0).await;
        expect_only_pingresp(&mut later).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_topics_are_accepted_but_never_matched_by_leading_wildcards() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut all = subscriber(server.addr, version, "all", b"#", 0).await;
        let mut plus = subscriber(server.addr, version, "plus", b"+/g/t", 0).await;
        let mut plain = subscriber(server.addr, version, "plain", b"t", 0).await;
        let mut shared = subscriber(server.addr, version, "shared", b"$share/g/t", 0).await;
        let mut literal = subscriber(server.addr, version, "literal", b"$foo/x", 0).await;
        let mut c = client(server.addr, version, "dollar").await;
        for (id, topic) in [(1, &b"$share/g/t"[..]), (2, b"$foo/g/t")] {
            c.send(&publish1(version, topic, id, b"d")).await;
            let reason = accepted(version, false);
            assert!(matches!(expect_packet(&mut c).await, Packet::PubAck(a) if a.reason == reason));
        }
        for s in [&mut all, &mut plus, &mut plain, &mut shared] {
            expect_only_pingresp(s).await;
        }
        // Twin: a subscription naming the `$` topic matches it.
        c.send(&publish1(version, b"$foo/x", 3, b"d")).await;
        let reason = accepted(version, true);
        assert!(matches!(expect_packet(&mut c).await, Packet::PubAck(a) if a.reason == reason));
        assert_eq!(&*expect_publish(&mut literal).await.topic, "$foo/x");
        expect_only_pingresp(&mut all).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_never_crosses_into_another_tenant() {
    let server = TestServer::start().await;
    server.add_tenant("acme", "allow", false).await;
    server.add_device("acme", "alice", "pw", None).await;
    for version in VERSIONS {
        let alice = Connect::base(version)
            .client_id("alice")
            .username(b"alice@acme")
            .password(b"pw");
        let (mut other_tenant, _) = open(server.addr, version, &alice.bytes()).await;
        other_tenant
            .send(&wire::subscribe(version, 1, b"#", 0))
            .await;
        wire::expect_suback(&mut other_tenant, &[ReasonCode::Success]).await;
        let mut same_tenant = subscriber(server.addr, version, "dev-sub", b"#", 0).await;
        let mut c = client(server.addr, version, "dev-pub").await;
        c.send(&publish0(version, b"acme/x", b"dev data")).await;
        assert_eq!(
            expect_publish(&mut same_tenant).await.payload.as_ref(),
            b"dev data"
        );
        expect_only_pingresp(&mut other_tenant).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_invalid_topic_aliases_are_refused() {
    let server = TestServer::start_with(|c| c.limits.topic_alias_maximum = 5).await;
    let alias = |n: u16| [&[0x23][..], &n.to_be_bytes()].concat();
    let zero = publish_with(V5, 0x30, b"t", None, &alias(0), b"bad");
    assert_refused_unrouted(&server, V5, &zero, ReasonCode::TopicAliasInvalid).await;
    let above = publish_with(V5, 0x30, b"t", None, &alias(6), b"bad");
    assert_refused_unrouted(&server, V5, &above, ReasonCode::TopicAliasInvalid).await;
    let unset = publish_with(V5, 0x30, b"", None, &alias(1), b"bad");
    assert_refused_unrouted(&server, V5, &unset, ReasonCode::ProtocolError).await;

    // Twin: alias 5 is set with the topic, then used alone.
    let mut watcher = subscriber(server.addr, V5, "watcher", b"#", 0).await;
    let mut c = client(server.addr, V5, "aliased").await;
    c.send(&publish_with(V5, 0x30, b"t/alias", None, &alias(5), b"1"))
        .await;
    c.send(&publish_with(V5, 0x30, b"", None, &alias(5), b"2"))
        .await;
    for payload in [b"1", b"2"] {
        let p = expect_publish(&mut watcher).await;
        assert_eq!(
            (p.topic.as_ref(), p.payload.as_ref()),
            ("t/alias", &payload[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_publish_property_violations_are_protocol_errors() {
    let server = TestServer::start().await;
    let expiry = [0x02, 0x00, 0x00, 0x00, 0x3C];
    let content = [&[0x03][..], &field(b"text/plain")].concat();
    let cases: [Vec<u8>; 6] = [
        vec![0x0B, 0x01],
        [&[0x08][..], &field(b"a/+/b")].concat(),
        [&[0x08][..], &field(b"a/#")].concat(),
        vec![0x01, 0x02],
        [&expiry[..], &expiry[..]].concat(),
        [&content[..], &content[..]].concat(),
    ];
    for list in &cases {
        for (first, id) in [(0x30, None), (0x32, Some(1))] {
            let bad = publish_with(V5, first, b"t", id, list, b"bad");
            assert_refused_unrouted(&server, V5, &bad, ReasonCode::ProtocolError).await;
        }
    }
    // Twin: each property once and valid; they reach the subscriber.
    let response = [&[0x08][..], &field(b"a/reply")].concat();
    let list = [&[0x01, 0x01][..], &expiry, &content, &response].concat();
    let mut watcher = subscriber(server.addr, V5, "watcher", b"#", 0).await;
    let mut c = client(server.addr, V5, "props").await;
    c.send(&publish_with(
        V5,
        0x30,
        b"t",
        None,
        &list,
        "caf\u{e9}".as_bytes(),
    ))
    .await;
    let p = expect_publish(&mut watcher).await;
    assert_eq!(p.properties.payload_format_indicator, Some(true));
    assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.properties.response_topic.as_deref(), Some("a/reply"));
    assert!(p.properties.subscription_identifiers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_utf8_payload_format_with_invalid_payload_is_refused() {
    let server = TestServer::start().await;
    let utf8 = [0x01, 0x01];
    // QoS 0 cannot be answered with an acknowledgement: DISCONNECT 0x99.
    let qos0 = publish_with(V5, 0x30, b"t", None, &utf8, b"\xFF\xFE");
    assert_refused_unrouted(&server, V5, &qos0, ReasonCode::PayloadFormatInvalid).await;
    // QoS 1 and 2: a negative acknowledgement, the connection stays, nothing routed or retained.
    let mut watcher = subscriber(server.addr, V5, "watcher", b"#", 0).await;
    let mut c = client(server.addr, V5, "pfi").await;
    c.send(&publish_with(V5, 0x33, b"t", Some(1), &utf8, b"\xC0\xAF"))
        .await;
    assert!(matches!(expect_packet(&mut c).await,
        Packet::PubAck(a) if a.reason == ReasonCode::PayloadFormatInvalid));
    c.send(&publish_with(
        V5,
        0x35,
        b"t",
        Some(2),
        &utf8,
        b"\xED\xA0\x80",
    ))
    .await;
    assert!(matches!(expect_packet(&mut c).await,
        Packet::PubRec(a) if a.reason == ReasonCode::PayloadFormatInvalid));
    expect_only_pingresp(&mut watcher).await;
    let mut later = subscriber(server.addr, V5, "later", b"t", 0).await;
    expect_only_pingresp(&mut later).await;
    // Twin: a valid UTF-8 payload.
    c.send(&publish_with(V5, 0x32, b"t", Some(3), &utf8, b"ok"))
        .await;
    assert!(
        matches!(expect_packet(&mut c).await, Packet::PubAck(a) if a.reason == ReasonCode::Success)
    );
    assert_eq!(expect_publish(&mut watcher).await.payload.as_ref(), b"ok");
}
