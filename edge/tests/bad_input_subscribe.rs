//! Bad-input checklist section D, SUBSCRIBE and UNSUBSCRIBE: items 47-54 for MQTT 3.1.1 and 5.0.
//!
//! A SUBSCRIBE that cannot be decoded closes a 3.1.1 connection and gets a 5.0 DISCONNECT with
//! the reason; an invalid topic filter closes 3.1.1 and fails only its own entry in a 5.0
//! SUBACK (0x8F), never "granted but inert". Every negative case has a positive twin.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use std::time::Duration;

use stratus_codec::{Packet, ProtocolVersion, ReasonCode};
use support::{RawClient, TestServer};
use tokio::time::Instant;
use wire::{
    VERSIONS, client, expect_only_pingresp, expect_packet, expect_publish, expect_refused,
    expect_suback, packet, publish0, publishes, subscribe, subscribe_with, subscriber, unsubscribe,
    until_pingresp,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Sends `bad` from a fresh client and asserts the connected-phase refusal.
async fn assert_refused(
    server: &TestServer,
    version: ProtocolVersion,
    bad: &[u8],
    reason: ReasonCode,
) {
    let mut c = client(server.addr, version, "subscriber").await;
    c.send(bad).await;
    expect_refused(&mut c, version, reason).await;
}

/// Asserts the next packet is an UNSUBACK for `packet_id` (5.0: with these reasons).
async fn expect_unsuback(c: &mut RawClient, packet_id: u16, reasons: &[ReasonCode]) {
    match expect_packet(c).await {
        Packet::UnsubAck(u) => {
            assert_eq!(u.packet_id.get(), packet_id);
            assert_eq!(u.reasons, reasons);
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

/// What an UNSUBACK carries for `version` when every filter was `reason`.
fn unsuback_reasons(version: ProtocolVersion, reason: ReasonCode, n: usize) -> Vec<ReasonCode> {
    if version.is_v5() {
        vec![reason; n]
    } else {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_or_unsubscribe_without_a_filter_is_a_protocol_error() {
    let server = TestServer::start().await;
    assert_refused(
        &server,
        V4,
        &[0x82, 0x02, 0x00, 0x01],
        ReasonCode::ProtocolError,
    )
    .await;
    assert_refused(
        &server,
        V5,
        &[0x82, 0x03, 0x00, 0x01, 0x00],
        ReasonCode::ProtocolError,
    )
    .await;
    assert_refused(
        &server,
        V4,
        &[0xA2, 0x02, 0x00, 0x01],
        ReasonCode::ProtocolError,
    )
    .await;
    assert_refused(
        &server,
        V5,
        &[0xA2, 0x03, 0x00, 0x01, 0x00],
        ReasonCode::ProtocolError,
    )
    .await;
    for version in VERSIONS {
        let mut c = subscriber(server.addr, version, "twin", b"a", 0).await;
        c.send(&unsubscribe(version, 2, &[b"a"])).await;
        expect_unsuback(
            &mut c,
            2,
            &unsuback_reasons(version, ReasonCode::Success, 1),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_options_with_qos_3_reserved_bits_or_retain_handling_3_are_refused() {
    let server = TestServer::start().await;
    for options in [0x03, 0xC0, 0x30] {
        assert_refused(
            &server,
            V4,
            &subscribe(V4, 1, b"a", options),
            ReasonCode::MalformedPacket,
        )
        .await;
    }
    // 5.0 section 3.8.3.1: QoS 3 and Retain Handling 3 are Protocol Errors; non-zero reserved
    // bits make the packet Malformed [MQTT-3.8.3-5].
    let v5_cases = [
        (0x03, ReasonCode::ProtocolError),
        (0xC0, ReasonCode::MalformedPacket),
        (0x40, ReasonCode::MalformedPacket),
        (0x30, ReasonCode::ProtocolError),
    ];
    for (options, reason) in v5_cases {
        assert_refused(&server, V5, &subscribe(V5, 1, b"a", options), reason).await;
    }
    // Twins: QoS 2, and in 5.0 every defined option at once (No Local, Retain As Published,
    // Retain Handling 2).
    subscriber(server.addr, V4, "twin4", b"a", 2).await;
    let mut c = client(server.addr, V5, "twin5").await;
    c.send(&subscribe(V5, 1, b"a", 0x2E)).await;
    expect_suback(&mut c, &[ReasonCode::GrantedQoS2]).await;
}

const INVALID_FILTERS: [&[u8]; 6] = [b"a/#/b", b"a#", b"#a", b"a/b+", b"+a", b""];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_subscribe_with_an_invalid_filter_is_closed() {
    let server = TestServer::start().await;
    for filter in INVALID_FILTERS {
        let bad = subscribe_with(V4, 1, &[], &[(b"ok/1", 0), (filter, 0)]);
        assert_refused(&server, V4, &bad, ReasonCode::TopicFilterInvalid).await;
    }
    let mut c = subscriber(server.addr, V4, "twin", b"ok/#", 0).await;
    c.send(&publish0(V4, b"ok/1", b"x")).await;
    assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_invalid_filter_fails_only_its_own_suback_entry() {
    let server = TestServer::start().await;
    let mut c = client(server.addr, V5, "mixed").await;
    for (i, filter) in INVALID_FILTERS.into_iter().enumerate() {
        let id = u16::try_from(i + 1).unwrap();
        c.send(&subscribe_with(
            V5,
            id,
            &[],
            &[(b"ok/1", 0), (filter, 1), (b"ok/2", 1)],
        ))
        .await;
        expect_suback(
            &mut c,
            &[
                ReasonCode::Success,
                ReasonCode::TopicFilterInvalid,
                ReasonCode::GrantedQoS1,
            ],
        )
        .await;
    }
    // The granted entries work; nothing else was added ("granted but inert" would be a bug).
    let mut publisher = client(server.addr, V5, "publisher").await;
    for topic in [&b"ok/1"[..], b"ok/2", b"a/x/b", b"a", b"x"] {
        publisher.send(&publish0(V5, topic, topic)).await;
    }
    expect_only_pingresp(&mut publisher).await;
    let got = until_pingresp(&mut c).await;
    let mut received: Vec<&[u8]> = publishes(&got).iter().map(|p| p.payload.as_ref()).collect();
    received.sort();
    assert_eq!(received, [b"ok/1", b"ok/2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_invalid_shared_subscriptions_are_refused() {
    let server = TestServer::start().await;
    let mut c = client(server.addr, V5, "sharer").await;
    let invalid: [&[u8]; 6] = [
        b"$share//t",
        b"$share/g",
        b"$share/g/",
        b"$share/g+/t",
        b"$share/g#/t",
        b"$share/",
    ];
    for (i, filter) in invalid.into_iter().enumerate() {
        let id = u16::try_from(i + 1).unwrap();
        c.send(&subscribe(V5, id, filter, 0)).await;
        expect_suback(&mut c, &[ReasonCode::TopicFilterInvalid]).await;
    }
    // Twin: a valid shared subscription, and it receives.
    c.send(&subscribe(V5, 20, b"$share/g/t", 0)).await;
    expect_suback(&mut c, &[ReasonCode::Success]).await;
    let mut publisher = client(server.addr, V5, "publisher").await;
    publisher.send(&publish0(V5, b"t", b"shared")).await;
    assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"shared");
    // No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].
    c.send(&subscribe(V5, 21, b"$share/g/t", 0x04)).await;
    expect_refused(&mut c, V5, ReasonCode::ProtocolError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscription_identifier_0_is_a_protocol_error() {
    let server = TestServer::start().await;
    let bad = subscribe_with(V5, 1, &[0x0B, 0x00], &[(b"a", 0)]);
    assert_refused(&server, V5, &bad, ReasonCode::ProtocolError).await;
    // Twin: identifier 5 is granted (we advertise identifiers as available, so 0xA1 never
    // applies) and delivered with the message.
    let (_, connack) = wire::open(server.addr, V5, &wire::connect(V5, "probe")).await;
    assert_eq!(connack.properties.subscription_identifiers_available, None);
    let mut c = client(server.addr, V5, "twin").await;
    c.send(&subscribe_with(V5, 1, &[0x0B, 0x05], &[(b"a", 0)]))
        .await;
    expect_suback(&mut c, &[ReasonCode::Success]).await;
    c.send(&publish0(V5, b"a", b"x")).await;
    let p = expect_publish(&mut c).await;
    assert_eq!(
        p.properties
            .subscription_identifiers
            .iter()
            .map(|i| i.get())
            .collect::<Vec<_>>(),
        [5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_of_65535_slashes_or_too_many_levels_is_refused_quickly() {
    let server = TestServer::start().await;
    let deep = vec![b'/'; 65_535];
    let too_many = vec!["a"; 129].join("/");
    let at_cap = vec!["a"; 128].join("/");
    for version in VERSIONS {
        let mut c = client(server.addr, version, "deep").await;
        for filter in [&deep[..], too_many.as_bytes()] {
            let started = Instant::now();
            c.send(&subscribe(version, 1, filter, 0)).await;
            // 5.0: 0x8F; 3.1.1 has one failure code, 0x80.
            let refused = if version.is_v5() {
                ReasonCode::TopicFilterInvalid
            } else {
                ReasonCode::UnspecifiedError
            };
            expect_suback(&mut c, &[refused]).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "took {:?}",
                started.elapsed()
            );
        }
        c.send(&subscribe(version, 2, at_cap.as_bytes(), 0)).await;
        expect_suback(&mut c, &[ReasonCode::Success]).await;
        c.send(&publish0(version, at_cap.as_bytes(), b"deep")).await;
        assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"deep");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_truncated_before_the_options_byte_is_malformed() {
    let server = TestServer::start().await;
    assert_refused(
        &server,
        V4,
        &packet(0x82, &[0x00, 0x01, 0x00, 0x01, b'a']),
        ReasonCode::MalformedPacket,
    )
    .await;
    assert_refused(
        &server,
        V5,
        &packet(0x82, &[0x00, 0x01, 0x00, 0x00, 0x01, b'a']),
        ReasonCode::MalformedPacket,
    )
    .await;
    for version in VERSIONS {
        subscriber(server.addr, version, "twin", b"a", 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_a_filter_leaves_its_shared_twin_and_vice_versa() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for (drop_filter, keep) in [(&b"a/b"[..], "shared"), (b"$share/g/a/b", "plain")] {
            let mut c = client(server.addr, version, "both").await;
            c.send(&subscribe_with(
                version,
                1,
                &[],
                &[(b"a/b", 0), (b"$share/g/a/b", 0)],
            ))
            .await;
            expect_suback(&mut c, &[ReasonCode::Success, ReasonCode::Success]).await;
            let mut publisher = client(server.addr, version, "publisher").await;
            publisher.send(&publish0(version, b"a/b", b"both")).await;
            for _ in 0..2 {
                assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"both");
            }
            c.send(&unsubscribe(version, 2, &[drop_filter])).await;
            expect_unsuback(
                &mut c,
                2,
                &unsuback_reasons(version, ReasonCode::Success, 1),
            )
            .await;
            publisher
                .send(&publish0(version, b"a/b", keep.as_bytes()))
                .await;
            assert_eq!(
                expect_publish(&mut c).await.payload.as_ref(),
                keep.as_bytes()
            );
            expect_only_pingresp(&mut c).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscribe_unsubscribe_rounds_leave_a_healthy_connection() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut c = client(server.addr, version, "churner").await;
        let mut round = subscribe(version, 1, b"churn/+", 1);
        round.extend(unsubscribe(version, 2, &[b"churn/+"]));
        let batch: Vec<u8> = round
            .iter()
            .copied()
            .cycle()
            .take(round.len() * 500)
            .collect();
        for _ in 0..20 {
            c.send(&batch).await;
            for _ in 0..500 {
                expect_suback(&mut c, &[ReasonCode::GrantedQoS1]).await;
                expect_unsuback(
                    &mut c,
                    2,
                    &unsuback_reasons(version, ReasonCode::Success, 1),
                )
                .await;
            }
        }
        // Nothing is left subscribed, and a new subscription still works.
        let mut publisher = client(server.addr, version, "publisher").await;
        publisher
            .send(&publish0(version, b"churn/x", b"gone"))
            .await;
        expect_only_pingresp(&mut publisher).await;
        expect_only_pingresp(&mut c).await;
        c.send(&subscribe(version, 3, b"churn/+", 0)).await;
        expect_suback(&mut c, &[ReasonCode::Success]).await;
        publisher
            .send(&publish0(version, b"churn/x", b"back"))
            .await;
        assert_eq!(expect_publish(&mut c).await.payload.as_ref(), b"back");
    }
}
