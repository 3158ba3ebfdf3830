//! Bad-input checklist section A, framing and fixed header: items 1-4, 6-9 and 11-15 for MQTT
//! 3.1.1 and 5.0 (item 5 is `first_byte_sweep.rs`, item 10 is `bad_input_oversized.rs`).
//!
//! Before a successful CONNACK a bad packet is closed silently (a 5.0 CONNECT whose level is
//! readable may get a CONNACK with the reason first); after it, 3.1.1 is closed silently and
//! 5.0 gets DISCONNECT with the reason, then the close. Every negative case has a positive twin.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;

use std::time::Duration;

use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use support::{CONNECT_V4, CONNECT_V5, RawClient, TestServer};
use tokio::time::Instant;
use wire::{
    Connect, PINGREQ, VERSIONS, WAIT, ack, client, connect, expect_connack_then_close,
    expect_only_pingresp, expect_packet, expect_publish, expect_refused, expect_silent_close,
    expect_suback, open, publish0, publish2, subscribe, subscriber,
};

/// Opens a connection, sends `bytes` before any CONNECT and asserts a silent close.
async fn assert_closed_before_connect(server: &TestServer, version: ProtocolVersion, bytes: &[u8]) {
    let mut c = RawClient::connect(server.addr, version).await;
    c.send(bytes).await;
    expect_silent_close(&mut c).await;
}

/// The positive twin of every pre-CONNECT case: the base CONNECT is accepted.
async fn assert_base_connect_accepted(server: &TestServer, version: ProtocolVersion) {
    open(server.addr, version, &connect(version, "twin")).await;
}

/// Sends `bytes` on a fresh connected client and asserts the connected-phase refusal.
async fn assert_refused_after_connack(
    server: &TestServer,
    version: ProtocolVersion,
    bytes: &[u8],
    v5_reason: ReasonCode,
) {
    let mut c = client(server.addr, version, "bad").await;
    c.send(bytes).await;
    expect_refused(&mut c, version, v5_reason).await;
}

#[test]
fn the_byte_builders_reproduce_the_checklist_base_connects() {
    assert_eq!(connect(ProtocolVersion::V3_1_1, "c1"), CONNECT_V4);
    assert_eq!(connect(ProtocolVersion::V5, "c1"), CONNECT_V5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_type_0_before_connect_is_closed_silently() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        assert_closed_before_connect(&server, version, &[0x00, 0x00]).await;
        assert_base_connect_accepted(&server, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_type_0_after_connack_is_malformed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        assert_refused_after_connack(&server, version, &[0x00, 0x00], ReasonCode::MalformedPacket)
            .await;
        expect_only_pingresp(&mut client(server.addr, version, "twin").await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_type_15_before_connect_is_closed_silently() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        assert_closed_before_connect(&server, version, &[0xF0, 0x00]).await;
        assert_base_connect_accepted(&server, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_type_15_after_connack_is_reserved_in_v311_and_auth_without_method_in_v5() {
    let server = TestServer::start().await;
    let v4 = ProtocolVersion::V3_1_1;
    assert_refused_after_connack(&server, v4, &[0xF0, 0x00], ReasonCode::MalformedPacket).await;
    let v5 = ProtocolVersion::V5;
    assert_refused_after_connack(&server, v5, &[0xF0, 0x00], ReasonCode::ProtocolError).await;
    for version in VERSIONS {
        expect_only_pingresp(&mut client(server.addr, version, "twin").await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_nonzero_fixed_header_flags_is_closed_silently() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for first in [0x11, 0x12, 0x18, 0x1F] {
            let mut bytes = connect(version, "c1");
            bytes[0] = first;
            assert_closed_before_connect(&server, version, &bytes).await;
        }
        assert_base_connect_accepted(&server, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_fixed_header_flags_after_connack_are_malformed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let bad: [Vec<u8>; 6] = [
            {
                let mut s = subscribe(version, 1, b"a", 0);
                s[0] = 0x80;
                s
            },
            {
                let mut u = wire::unsubscribe(version, 1, &[b"a"]);
                u[0] = 0xA0;
                u
            },
            ack(0x60, 1),
            ack(0x41, 1),
            vec![0xC1, 0x00],
            vec![0xE1, 0x00],
        ];
        for bytes in &bad {
            assert_refused_after_connack(&server, version, bytes, ReasonCode::MalformedPacket)
                .await;
        }

        // Twins with the flags of table 2.2.
        let mut c = client(server.addr, version, "twin").await;
        c.send(&subscribe(version, 1, b"a", 0)).await;
        expect_suback(&mut c, &[ReasonCode::Success]).await;
        c.send(&wire::unsubscribe(version, 2, &[b"a"])).await;
        assert!(
            matches!(expect_packet(&mut c).await, Packet::UnsubAck(u) if u.packet_id.get() == 2)
        );
        c.send(&ack(0x62, 1)).await;
        match expect_packet(&mut c).await {
            Packet::PubComp(a) if version.is_v5() => {
                assert_eq!(a.reason, ReasonCode::PacketIdentifierNotFound);
            }
            Packet::PubComp(a) => assert_eq!(a.reason, ReasonCode::Success),
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
        c.send(&ack(0x40, 1)).await;
        expect_only_pingresp(&mut c).await;
        c.send(&[0xE0, 0x00]).await;
        expect_silent_close(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_qos_bits_3_is_malformed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for first in [0x36, 0x37, 0x3E, 0x3F] {
            let bytes = wire::publish_with(version, first, b"t", Some(1), &[], b"x");
            assert_refused_after_connack(&server, version, &bytes, ReasonCode::MalformedPacket)
                .await;
        }
        let mut c = client(server.addr, version, "twin").await;
        c.send(&publish2(version, b"t", 1, b"x")).await;
        assert!(matches!(expect_packet(&mut c).await, Packet::PubRec(a) if a.packet_id.get() == 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_publish_with_dup_is_malformed_and_not_routed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut sub = subscriber(server.addr, version, "sub", b"#", 0).await;
        for first in [0x38, 0x39] {
            let bytes = wire::publish_with(version, first, b"t", None, &[], b"bad");
            assert_refused_after_connack(&server, version, &bytes, ReasonCode::MalformedPacket)
                .await;
        }
        expect_only_pingresp(&mut sub).await;

        let mut c = client(server.addr, version, "twin").await;
        c.send(&publish0(version, b"t", b"good")).await;
        assert_eq!(expect_publish(&mut sub).await.payload.as_ref(), b"good");
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_byte_remaining_length_is_closed_silently_before_connect_and_malformed_after() {
    let server = TestServer::start().await;
    let five = [0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    for version in VERSIONS {
        let mut before = vec![0x10];
        before.extend(five);
        assert_closed_before_connect(&server, version, &before).await;
        assert_base_connect_accepted(&server, version).await;

        let mut after = vec![0x30];
        after.extend(five);
        assert_refused_after_connack(&server, version, &after, ReasonCode::MalformedPacket).await;
        // Twin: the same PUBLISH with its real length.
        let mut c = client(server.addr, version, "twin").await;
        c.send(&publish0(version, b"t", b"x")).await;
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_minimal_remaining_length_is_malformed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        for bytes in [
            &[0xC0, 0x80, 0x00][..],
            &[0xC0, 0x80, 0x80, 0x00],
            &[0x30, 0x83, 0x00, 0x00, 0x01, b't'],
        ] {
            assert_refused_after_connack(&server, version, bytes, ReasonCode::MalformedPacket)
                .await;
        }
        // Twin: the minimal encodings.
        let mut c = client(server.addr, version, "twin").await;
        c.send(&[0xC0, 0x00]).await;
        assert_eq!(expect_packet(&mut c).await, Packet::PingResp);
        c.send(&publish0(version, b"t", b"")).await;
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_larger_than_max_packet_size_is_refused_from_its_header() {
    // A will payload holds at most 65,535 bytes, so the limit is lowered to make it too large.
    let server = TestServer::start_with(|c| c.limits.max_packet_size = 16 * 1024).await;
    for version in VERSIONS {
        let big = Connect::base(version)
            .will(0, false, &[], b"w", &[b'x'; 65_000])
            .bytes();
        // The header and the protocol level alone decide; the body is never sent.
        let mut c = RawClient::connect(server.addr, version).await;
        c.send(&big[..16]).await;
        if version.is_v5() {
            expect_connack_then_close(&mut c, ReasonCode::PacketTooLarge).await;
        } else {
            expect_silent_close(&mut c).await;
        }
        // Sent whole, it is refused the same way and promptly.
        let mut c = RawClient::connect(server.addr, version).await;
        let started = Instant::now();
        c.send(&big).await;
        if version.is_v5() {
            expect_connack_then_close(&mut c, ReasonCode::PacketTooLarge).await;
        } else {
            expect_silent_close(&mut c).await;
        }
        assert!(started.elapsed() < WAIT);
        // Twin: a will that fits.
        let small = Connect::base(version)
            .will(0, false, &[], b"w", &[b'x'; 1024])
            .bytes();
        open(server.addr, version, &small).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_connect_then_silence_is_closed_at_the_connect_deadline() {
    let server = TestServer::start_with(|c| c.limits.connect_timeout_secs = 1).await;
    for version in VERSIONS {
        let mut c = RawClient::connect(server.addr, version).await;
        let started = Instant::now();
        let mut half = vec![0x10, 0xC8, 0x01];
        half.extend([0u8; 10]);
        c.send(&half).await;
        assert!(c.expect_close(Duration::from_millis(2500)).await.is_empty());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "closed after {took:?}, before the deadline"
        );

        // Twin: a whole CONNECT in time, and the deadline no longer applies once connected.
        let (mut c, _) = open(server.addr, version, &connect(version, "twin")).await;
        assert!(c.stays_open(Duration::from_millis(1500)).await);
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_name_length_past_the_packet_end_is_closed_silently() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut bytes = connect(version, "c1");
        bytes[2..4].copy_from_slice(&[0x00, 0x28]);
        assert_closed_before_connect(&server, version, &bytes).await;
        assert_base_connect_accepted(&server, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingreq_with_a_body_is_malformed() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        assert_refused_after_connack(
            &server,
            version,
            &[0xC0, 0x01, 0xFF],
            ReasonCode::MalformedPacket,
        )
        .await;
        let mut c = client(server.addr, version, "twin").await;
        c.send(PINGREQ).await;
        assert_eq!(expect_packet(&mut c).await, Packet::PingResp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_written_one_byte_at_a_time_is_accepted() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut c = RawClient::connect(server.addr, version).await;
        for byte in connect(version, "slow") {
            c.send(&[byte]).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match expect_packet(&mut c).await {
            Packet::ConnAck(ack) => assert_eq!(ack.reason, ReasonCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        expect_only_pingresp(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_connect_subscribe_publish_are_answered_in_order() {
    let server = TestServer::start().await;
    for version in VERSIONS {
        let mut segment = connect(version, "coalesced");
        segment.extend(subscribe(version, 7, b"loop/t", 1));
        segment.extend(publish0(version, b"loop/t", b"hello"));
        let mut c = RawClient::connect(server.addr, version).await;
        c.send(&segment).await;
        assert!(
            matches!(expect_packet(&mut c).await, Packet::ConnAck(a) if a.reason == ReasonCode::Success)
        );
        expect_suback(&mut c, &[ReasonCode::GrantedQoS1]).await;
        let p = expect_publish(&mut c).await;
        assert_eq!(
            (p.topic.as_ref(), p.payload.as_ref(), p.qos),
            ("loop/t", &b"hello"[..], QoS::AtMostOnce)
        );
    }
}
