//! Bad-input checklist section B, CONNECT: items 16-32 for MQTT 3.1.1 and 5.0.
//!
//! A CONNECT that cannot be decoded is closed silently in 3.1.1; in 5.0, once the protocol level
//! is readable, it gets a CONNACK with the reason (0x81 malformed, 0x82 protocol error) and then
//! the close. A CONNECT refused by policy gets its CONNACK code in both versions. Every negative
//! case has a positive twin.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use std::time::Duration;

use stratus_codec::{Packet, ProtocolVersion, ReasonCode};
use support::{RawClient, TestServer};
use tokio::time::Instant;
use wire::{
    Connect, VERSIONS, client, connect, connect_persistent, expect_connack_then_close,
    expect_only_pingresp, expect_packet, expect_publish, expect_refused, expect_silent_close,
    field, open, publish0, publish1, subscribe, subscriber, user_property,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Sends `bytes` as the first packet and asserts the refusal: a silent close for 3.1.1, and for
/// 5.0 a CONNACK with `v5_reason` then the close.
async fn assert_connect_refused(
    server: &TestServer,
    version: ProtocolVersion,
    bytes: &[u8],
    v5_reason: ReasonCode,
) {
    let mut c = RawClient::connect(server.addr, version).await;
    c.send(bytes).await;
    if version.is_v5() {
        expect_connack_then_close(&mut c, v5_reason).await;
    } else {
        expect_silent_close(&mut c).await;
    }
}

/// Sends `bytes` as the first packet and asserts a successful CONNACK, then a healthy session.
async fn assert_connect_accepted(server: &TestServer, version: ProtocolVersion, bytes: &[u8]) {
    let (mut c, _) = open(server.addr, version, bytes).await;
    expect_only_pingresp(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_packet_other_than_connect_is_closed_silently() {
    let server = TestServer::start().await;
    let firsts: [&[u8]; 3] = [
        &[0xC0, 0x00],
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00],
        &[0x40, 0x02, 0x00, 0x01],
    ];
    for version in VERSIONS {
        for bytes in firsts {
            let mut c = RawClient::connect(server.addr, version).await;
            c.send(bytes).await;
            expect_silent_close(&mut c).await;
        }
        // Twin; and the SUBSCRIBE sent before CONNECT created nothing that a publish could reach.
        let mut c = client(server.addr, version, "twin").await;
        c.send(&publish1(version, b"a", 1, b"x")).await;
        match expect_packet(&mut c).await {
            Packet::PubAck(a) if version.is_v5() => {
                assert_eq!(a.reason, ReasonCode::NoMatchingSubscribers);
            }
            Packet::PubAck(a) => assert_eq!(a.reason, ReasonCode::Success),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_is_refused_and_the_existing_session_is_unaffected() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let first = connect_persistent(version, &format!("keeper{}", version.level()));
        let (mut c, ack) = open(server.addr, version, &first).await;
        assert!(!ack.session_present);
        c.send(&subscribe(version, 1, b"keep/t", 1)).await;
        wire::expect_suback(&mut c, &[ReasonCode::GrantedQoS1]).await;
        c.send(&first).await;
        expect_refused(&mut c, version, ReasonCode::ProtocolError).await;

        let (mut c, ack) = open(server.addr, version, &first).await;
        assert!(
            ack.session_present,
            "the session survived the second CONNECT"
        );
        let mut publisher = client(server.addr, version, "pub").await;
        publisher
            .send(&publish0(version, b"keep/t", b"still here"))
            .await;
        assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"still here");
        c.send(wire::DISCONNECT).await;
        expect_silent_close(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_protocol_name_is_closed_silently() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut bad = Connect::base(version);
        bad.name = b"MQTX".to_vec();
        let mut c = RawClient::connect(server.addr, version).await;
        c.send(&bad.bytes()).await;
        expect_silent_close(&mut c).await;
        assert_connect_accepted(&server, version, &connect(version, "twin")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqisdp_name_with_level_4_gets_unacceptable_protocol_version() {
    let server = TestServer::start().await;
    let mut bad = Connect::base(V4);
    bad.name = b"MQIsdp".to_vec();
    let mut c = RawClient::connect(server.addr, V4).await;
    c.send(&bad.bytes()).await;
    expect_connack_then_close(&mut c, ReasonCode::UnsupportedProtocolVersion).await;
    // Twin: MQIsdp is MQTT 3.1, level 3.
    bad.level = 3;
    assert_connect_accepted(&server, V4, &bad.bytes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_level_above_5_gets_connack_0x84_in_v5_format() {
    let server = TestServer::start().await;
    for level in [6, 7, 255] {
        let mut bad = Connect::base(V5);
        bad.level = level;
        let mut c = RawClient::connect(server.addr, V5).await;
        c.send(&bad.bytes()).await;
        expect_connack_then_close(&mut c, ReasonCode::UnsupportedProtocolVersion).await;
    }
    assert_connect_accepted(&server, V5, &connect(V5, "twin")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_levels_0_to_2_get_return_code_1_in_v311_format() {
    let server = TestServer::start().await;
    for level in [0, 1, 2] {
        let mut bad = Connect::base(V4);
        bad.level = level;
        // The 3.1.1 decoder only accepts the two-byte CONNACK `20 02 00 01`.
        let mut c = RawClient::connect(server.addr, V4).await;
        c.send(&bad.bytes()).await;
        expect_connack_then_close(&mut c, ReasonCode::UnsupportedProtocolVersion).await;
    }
    assert_connect_accepted(&server, V4, &connect(V4, "twin")).await;
}

/// CONNECT flag cases that cannot be decoded: the reserved bit (item 20), will QoS or retain
/// without the will flag (item 21), will QoS 3 (item 22), and a truncated user name or password
/// (item 24).
fn undecodable_flag_cases(version: ProtocolVersion) -> Vec<Vec<u8>> {
    let base = Connect::base(version);
    let mut truncated_user = base.clone().username(b"user").bytes();
    truncated_user.truncate(truncated_user.len() - 2);
    truncated_user[1] -= 2;
    let mut truncated_password = base.clone().username(b"u").password(b"secret").bytes();
    truncated_password.truncate(truncated_password.len() - 3);
    truncated_password[1] -= 3;
    vec![
        base.clone().flags(0x03).bytes(),
        base.clone().flags(0x0A).bytes(),
        base.clone().flags(0x22).bytes(),
        base.clone().will(3, false, &[], b"w", b"x").bytes(),
        base.clone().flags(0x82).bytes(),
        truncated_user,
        truncated_password,
    ]
}

/// The twins of [`undecodable_flag_cases`]: the same fields, consistent flags.
fn decodable_flag_twins(version: ProtocolVersion) -> Vec<Vec<u8>> {
    let base = Connect::base(version);
    vec![
        base.clone().flags(0x02).bytes(),
        base.clone().will(1, false, &[], b"w", b"x").bytes(),
        base.clone().will(0, true, &[], b"w", b"x").bytes(),
        base.clone().will(2, false, &[], b"w", b"x").bytes(),
        base.clone().username(b"user").bytes(),
        base.clone().username(b"u").password(b"secret").bytes(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_connect_with_inconsistent_or_truncated_flags_is_closed_silently() {
    let server = TestServer::start().await;
    for twin in decodable_flag_twins(V4) {
        assert_connect_accepted(&server, V4, &twin).await;
    }
    for bad in undecodable_flag_cases(V4) {
        assert_connect_refused(&server, V4, &bad, ReasonCode::MalformedPacket).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connect_with_inconsistent_or_truncated_flags_gets_connack_malformed() {
    let server = TestServer::start().await;
    for twin in decodable_flag_twins(V5) {
        assert_connect_accepted(&server, V5, &twin).await;
    }
    for bad in undecodable_flag_cases(V5) {
        assert_connect_refused(&server, V5, &bad, ReasonCode::MalformedPacket).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_without_user_name_is_refused_in_v311_and_accepted_in_v5() {
    let server = TestServer::start().await;
    let v4 = Connect::base(V4).password(b"secret").bytes();
    assert_eq!(v4[9], 0x42);
    assert_connect_refused(&server, V4, &v4, ReasonCode::MalformedPacket).await;
    assert_connect_accepted(
        &server,
        V4,
        &Connect::base(V4).username(b"u").password(b"secret").bytes(),
    )
    .await;
    assert_connect_accepted(&server, V5, &Connect::base(V5).password(b"secret").bytes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_is_assigned_with_clean_session_and_refused_without_in_v311() {
    let server = TestServer::start().await;
    assert_connect_accepted(&server, V4, &Connect::base(V4).client_id("").bytes()).await;
    let mut c = RawClient::connect(server.addr, V4).await;
    c.send(&Connect::base(V4).client_id("").flags(0x00).bytes())
        .await;
    expect_connack_then_close(&mut c, ReasonCode::ClientIdentifierNotValid).await;

    let mut assigned = Vec::new();
    for flags in [0x02, 0x00] {
        let bytes = Connect::base(V5).client_id("").flags(flags).bytes();
        let (mut c, ack) = open(server.addr, V5, &bytes).await;
        let id = ack
            .properties
            .assigned_client_identifier
            .expect("Assigned Client Identifier");
        assert!(!id.is_empty());
        assigned.push(id);
        expect_only_pingresp(&mut c).await;
    }
    assert_ne!(
        assigned[0], assigned[1],
        "each client gets its own identifier"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_client_id_with_invalid_utf8_or_nul_is_closed_silently() {
    let server = TestServer::start().await;
    for id in [&[0xC0, 0xAF][..], &[0xED, 0xA0, 0x80], &[0x61, 0x00, 0x62]] {
        let bytes = Connect::base(V4).client_id(id).bytes();
        assert_connect_refused(&server, V4, &bytes, ReasonCode::MalformedPacket).await;
    }
    assert_connect_accepted(
        &server,
        V4,
        &Connect::base(V4).client_id("a\u{e9}b").bytes(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_client_id_with_invalid_utf8_or_nul_gets_connack_malformed() {
    let server = TestServer::start().await;
    assert_connect_accepted(
        &server,
        V5,
        &Connect::base(V5).client_id("a\u{e9}b").bytes(),
    )
    .await;
    for id in [&[0xC0, 0xAF][..], &[0xED, 0xA0, 0x80], &[0x61, 0x00, 0x62]] {
        let bytes = Connect::base(V5).client_id(id).bytes();
        assert_connect_refused(&server, V5, &bytes, ReasonCode::MalformedPacket).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_with_topic_characters_or_up_to_the_limit_are_accepted_and_longer_refused() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for id in [
            "+".to_owned(),
            "#".to_owned(),
            "a/b".to_owned(),
            "x".repeat(24),
            "y".repeat(128),
        ] {
            assert_connect_accepted(&server, version, &connect(version, &id)).await;
        }
        // Longer than limits.max_client_id_length: 0x85 in 5.0, return code 2 in 3.1.1.
        let mut c = RawClient::connect(server.addr, version).await;
        c.send(&connect(version, &"z".repeat(65_535))).await;
        expect_connack_then_close(&mut c, ReasonCode::ClientIdentifierNotValid).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_2_then_silence_is_closed_after_3_seconds() {
    let server = TestServer::start().await;
    let silent = |version: ProtocolVersion, id: &'static str| {
        let addr = server.addr;
        async move {
            let started = Instant::now();
            let bytes = Connect::base(version).client_id(id).keep_alive(2).bytes();
            let (mut c, _) = open(addr, version, &bytes).await;
            let packets = c.expect_close(Duration::from_secs(5)).await;
            (started.elapsed(), packets)
        }
    };
    let pinging = |version: ProtocolVersion, id: &'static str| {
        let addr = server.addr;
        async move {
            let bytes = Connect::base(version).client_id(id).keep_alive(2).bytes();
            let (mut c, _) = open(addr, version, &bytes).await;
            for _ in 0..7 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                expect_only_pingresp(&mut c).await;
            }
        }
    };
    let ((t4, p4), (t5, p5), (), ()) = tokio::join!(
        silent(V4, "quiet4"),
        silent(V5, "quiet5"),
        pinging(V4, "busy4"),
        pinging(V5, "busy5")
    );
    for took in [t4, t5] {
        assert!(
            took >= Duration::from_millis(2950),
            "closed after {took:?}, before 1.5 x 2 s"
        );
        assert!(
            took < Duration::from_secs(4),
            "closed after {took:?}, later than 1.5 x 2 s + 1 s"
        );
    }
    assert!(p4.is_empty(), "3.1.1 is closed silently, got {p4:?}");
    assert!(
        matches!(p5.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::KeepAliveTimeout),
        "5.0 gets DISCONNECT 0x8D, got {p5:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_above_the_maximum_is_capped_in_v5_and_refused_in_v311() {
    let server = TestServer::start_with(|c| c.limits.max_keep_alive = 60).await;
    let (_c, ack) = open(
        server.addr,
        V5,
        &Connect::base(V5).keep_alive(65_535).bytes(),
    )
    .await;
    assert_eq!(ack.properties.server_keep_alive, Some(60));
    let mut c = RawClient::connect(server.addr, V4).await;
    c.send(&Connect::base(V4).keep_alive(65_535).bytes()).await;
    expect_connack_then_close(&mut c, ReasonCode::ClientIdentifierNotValid).await;
    // Twins: within the maximum, 5.0 is not told another value.
    let (_c, ack) = open(server.addr, V5, &connect(V5, "twin5")).await;
    assert_eq!(ack.properties.server_keep_alive, None);
    assert_connect_accepted(&server, V4, &connect(V4, "twin4")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connect_property_errors_get_connack_with_their_reason() {
    let server = TestServer::start().await;
    let expiry = [0x11, 0x00, 0x00, 0x00, 0x0A];
    let twin = [
        &expiry[..],
        &[0x21, 0x00, 0x0A],
        &[0x27, 0x00, 0x00, 0x10, 0x00],
        &[0x17, 0x01],
        &[0x19, 0x01],
    ]
    .concat();
    assert_connect_accepted(&server, V5, &Connect::base(V5).properties(&twin).bytes()).await;

    let protocol_errors: [&[u8]; 6] = [
        &[&expiry[..], &expiry[..]].concat(),
        &[0x21, 0x00, 0x00],
        &[0x27, 0x00, 0x00, 0x00, 0x00],
        &[0x17, 0x05],
        &[0x19, 0x02],
        &[0x16, 0x00, 0x01, 0xAB],
    ];
    for list in protocol_errors {
        let bytes = Connect::base(V5).properties(list).bytes();
        assert_connect_refused(&server, V5, &bytes, ReasonCode::ProtocolError).await;
    }
    let malformed = [
        Connect::base(V5).properties(&[0x24, 0x00]).bytes(),
        // Property length 0x30 with the client id (4 bytes) all that follows.
        Connect::base(V5).raw_properties(&[0x30]).bytes(),
        Connect::base(V5)
            .raw_properties(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
            .bytes(),
    ];
    for bytes in malformed {
        assert_connect_refused(&server, V5, &bytes, ReasonCode::MalformedPacket).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_unsupported_authentication_method_is_refused_and_trailing_packets_ignored() {
    let server = TestServer::start().await;
    let method = [&[0x15][..], &field(b"SCRAM-SHA-1")].concat();
    let trailing = wire::publish_with(V5, 0x31, b"auth/t", None, &[], b"sneaked in");
    let mut segment = Connect::base(V5)
        .client_id("scram")
        .properties(&method)
        .bytes();
    segment.extend(&trailing);
    let mut c = RawClient::connect(server.addr, V5).await;
    c.send(&segment).await;
    expect_connack_then_close(&mut c, ReasonCode::BadAuthenticationMethod).await;
    let mut later = subscriber(server.addr, V5, "later", b"auth/t", 0).await;
    expect_only_pingresp(&mut later).await;

    // Twin: without the method the same trailing PUBLISH is processed (and retained).
    let mut segment = connect(V5, "plain");
    segment.extend(&trailing);
    let mut c = RawClient::connect(server.addr, V5).await;
    c.send(&segment).await;
    assert!(
        matches!(expect_packet(&mut c).await, Packet::ConnAck(a) if a.reason == ReasonCode::Success)
    );
    let mut later = subscriber(server.addr, V5, "later2", b"auth/t", 0).await;
    assert_eq!(
        expect_publish(&mut later).await.payload.as_ref(),
        b"sneaked in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_connect_with_5001_user_properties_costs_like_a_65000_byte_client_id() {
    let server = TestServer::start_with(|c| c.limits.max_client_id_length = 65_535).await;
    let list: Vec<u8> = (0..5001)
        .flat_map(|_| user_property(b"key", b"value"))
        .collect();
    let time = |bytes: Vec<u8>| {
        let addr = server.addr;
        async move {
            let mut fastest = Duration::MAX;
            for _ in 0..7 {
                let started = Instant::now();
                let (_c, _) = open(addr, V5, &bytes).await;
                fastest = fastest.min(started.elapsed());
            }
            fastest
        }
    };
    let long_id = time(connect(V5, &"i".repeat(65_000))).await;
    let many_props = time(
        Connect::base(V5)
            .client_id("props")
            .properties(&list)
            .bytes(),
    )
    .await;
    let ratio = many_props.as_secs_f64() / long_id.as_secs_f64();
    assert!(
        ratio < 20.0,
        "5001 user properties took {many_props:?}, a 65000-byte client id {long_id:?} (x{ratio:.1})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_property_not_allowed_in_a_will_is_refused_and_the_will_never_published() {
    let server = TestServer::start().await;
    let mut watcher = subscriber(server.addr, V5, "watcher", b"w/#", 0).await;
    let delay = [0x18, 0x00, 0x00, 0x00, 0x00];
    let cases = [
        ([0x24, 0x00].to_vec(), ReasonCode::MalformedPacket),
        ([&delay[..], &delay[..]].concat(), ReasonCode::ProtocolError),
    ];
    for (will_props, reason) in cases {
        let bytes = Connect::base(V5)
            .client_id("bad-will")
            .will(0, false, &will_props, b"w/bad", b"x")
            .bytes();
        let mut c = RawClient::connect(server.addr, V5).await;
        c.send(&bytes).await;
        expect_connack_then_close(&mut c, reason).await;
    }
    expect_only_pingresp(&mut watcher).await;

    // Twin: a valid will property; the will is published when the connection drops.
    let bytes = Connect::base(V5)
        .client_id("good-will")
        .will(0, false, &delay, b"w/good", b"bye")
        .bytes();
    let (c, _) = open(server.addr, V5, &bytes).await;
    drop(c);
    let will = expect_publish(&mut watcher).await;
    assert_eq!(
        (will.topic.as_ref(), will.payload.as_ref()),
        ("w/good", &b"bye"[..])
    );
}
