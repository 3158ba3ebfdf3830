//! Raw-byte tests of PUBLISH and the acknowledgements (checklist section C, items 34-38 and
//! 41), CONNACK, DISCONNECT, AUTH and PINGRESP.

mod common;

use common::{after_connect, as_client, assert_malformed, assert_protocol, hex, packet};
use stratus_codec::{Packet, ProtocolVersion, ReasonCode};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn publish(packet: Packet) -> stratus_codec::Publish {
    match packet {
        Packet::Publish(publish) => publish,
        other => panic!("PUBLISH expected, got {other:?}"),
    }
}

#[test]
fn empty_topic_is_refused_in_v3_1_1() {
    assert_protocol(
        after_connect(V4, &hex("30 03 00 00 78")),
        "MQTT-4.7.3-1",
        ReasonCode::ProtocolError,
    );
}

#[test]
fn empty_topic_without_topic_alias_is_a_protocol_error_in_v5() {
    assert_protocol(
        after_connect(V5, &hex("30 04 00 00 00 78")),
        "section 3.3.2.3.4",
        ReasonCode::ProtocolError,
    );
    let aliased = publish(packet(after_connect(
        V5,
        &hex("30 07 00 00 03 23 00 01 78"),
    )));
    assert_eq!(aliased.topic, "");
    assert_eq!(aliased.properties.topic_alias.map(|a| a.get()), Some(1));
}

#[test]
fn topic_with_nul_surrogate_or_overlong_utf8_is_malformed() {
    for version in [V4, V5] {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        for (topic, rule) in [
            ("61 00 62", "MQTT-1.5.4-2"),
            ("ED A0 80", "MQTT-1.5.4-1"),
            ("C0 AF 61", "MQTT-1.5.4-1"),
        ] {
            let mut body = vec![0x00, 0x03];
            body.extend(hex(topic));
            body.extend(props);
            assert_malformed(after_connect(version, &common::frame(0x30, &body)), rule);
        }
    }
}

#[test]
fn topic_with_byte_order_mark_is_kept_byte_exact() {
    let publish = publish(packet(after_connect(
        V4,
        &hex("30 07 00 04 EF BB BF 61 78"),
    )));
    assert_eq!(publish.topic.as_bytes().as_ref(), &hex("EF BB BF 61")[..]);
}

#[test]
fn topic_filter_syntax_in_a_topic_name_is_left_to_the_engine() {
    let publish = publish(packet(after_connect(V4, &hex("30 05 00 03 61 2F 2B"))));
    assert_eq!(publish.topic, "a/+");
}

#[test]
fn packet_identifier_zero_is_a_protocol_error() {
    assert_protocol(
        after_connect(V4, &hex("32 05 00 01 61 00 00")),
        "MQTT-2.3.1-1",
        ReasonCode::ProtocolError,
    );
    assert_protocol(
        after_connect(V5, &hex("34 06 00 01 61 00 00 00")),
        "MQTT-2.2.1-3",
        ReasonCode::ProtocolError,
    );
    for first_byte in [0x40, 0x50, 0x62, 0x70, 0xB0] {
        let result = after_connect(V4, &[first_byte, 0x02, 0x00, 0x00]);
        assert_protocol(result, "MQTT-2.3.1-1", ReasonCode::ProtocolError);
    }
    assert_protocol(
        after_connect(V4, &hex("82 06 00 00 00 01 61 00")),
        "MQTT-2.3.1-1",
        ReasonCode::ProtocolError,
    );
}

#[test]
fn qos_1_publish_ending_after_the_topic_is_malformed() {
    assert_malformed(after_connect(V4, &hex("32 03 00 01 61")), "section 2.1.4");
    assert_malformed(after_connect(V5, &hex("32 03 00 01 61")), "section 2.1.4");
}

#[test]
fn v5_publish_without_property_length_is_malformed() {
    assert_malformed(after_connect(V5, &hex("30 03 00 01 61")), "section 2.1.4");
}

#[test]
fn qos_2_publish_decodes_flags_id_and_payload() {
    let publish = publish(packet(after_connect(
        V4,
        &hex("3D 07 00 01 61 12 34 78 79"),
    )));
    assert!(publish.dup);
    assert!(publish.retain);
    assert_eq!(publish.qos, stratus_codec::QoS::ExactlyOnce);
    assert_eq!(publish.packet_id.map(|id| id.get()), Some(0x1234));
    assert_eq!(&publish.payload[..], b"xy");
}

#[test]
fn client_publish_with_subscription_identifier_is_a_protocol_error() {
    let bytes = hex("30 07 00 01 61 02 0B 01 78");
    assert_protocol(
        after_connect(V5, &bytes),
        "MQTT-3.3.4-6",
        ReasonCode::ProtocolError,
    );
    // A server may send one, so a client decoder accepts it.
    let publish = publish(packet(as_client(V5, &bytes)));
    assert_eq!(publish.properties.subscription_identifiers.len(), 1);
}

#[test]
fn publish_property_errors_are_protocol_errors() {
    for (props, rule, reason) in [
        ("01 02", "section 3.3.2.3.2", ReasonCode::ProtocolError),
        (
            "02 00 00 00 01 02 00 00 00 01",
            "section 3.3.2.3.3",
            ReasonCode::ProtocolError,
        ),
        ("23 00 00", "MQTT-3.3.2-8", ReasonCode::TopicAliasInvalid),
        ("0B 00", "section 3.3.2.3.8", ReasonCode::ProtocolError),
    ] {
        let props = hex(props);
        let mut body = hex("00 01 61");
        body.extend(common::vbi(props.len()));
        body.extend(&props);
        assert_protocol(as_client(V5, &common::frame(0x30, &body)), rule, reason);
    }
}

#[test]
fn v3_acknowledgements_must_have_remaining_length_2() {
    for first_byte in [0x40, 0x50, 0x62, 0x70, 0xB0] {
        assert_malformed(
            after_connect(V4, &[first_byte, 0x03, 0x00, 0x01, 0x00]),
            "section 2.1.4",
        );
        assert_malformed(
            after_connect(V4, &[first_byte, 0x01, 0x00]),
            "section 2.1.4",
        );
        let ok = packet(after_connect(V4, &[first_byte, 0x02, 0x00, 0x01]));
        assert_eq!(ok.packet_type() as u8, first_byte >> 4);
    }
}

#[test]
fn v5_acknowledgement_lengths_select_the_short_forms() {
    let Packet::PubAck(short) = packet(after_connect(V5, &hex("40 02 00 07"))) else {
        panic!("PUBACK expected");
    };
    assert_eq!(short.reason, ReasonCode::Success);
    let Packet::PubAck(reason_only) = packet(after_connect(V5, &hex("40 03 00 07 10"))) else {
        panic!("PUBACK expected");
    };
    assert_eq!(reason_only.reason, ReasonCode::NoMatchingSubscribers);
    let Packet::PubRec(with_props) =
        packet(after_connect(V5, &hex("50 08 00 07 97 04 1F 00 01 71")))
    else {
        panic!("PUBREC expected");
    };
    assert_eq!(with_props.reason, ReasonCode::QuotaExceeded);
    assert_eq!(with_props.properties.reason_string.as_deref(), Some("q"));
}

#[test]
fn acknowledgement_reason_must_be_valid_for_its_type() {
    assert_malformed(after_connect(V5, &hex("40 03 00 01 92")), "section 3.4.2.1");
    assert_malformed(after_connect(V5, &hex("50 03 00 01 04")), "section 3.5.2.1");
    assert_malformed(after_connect(V5, &hex("62 03 00 01 10")), "section 3.6.2.1");
    assert_malformed(after_connect(V5, &hex("70 03 00 01 87")), "section 3.7.2.1");
    assert_malformed(after_connect(V5, &hex("40 03 00 01 FF")), "section 3.4.2.1");
    let Packet::PubComp(ack) = packet(after_connect(V5, &hex("70 03 00 01 92"))) else {
        panic!("PUBCOMP expected");
    };
    assert_eq!(ack.reason, ReasonCode::PacketIdentifierNotFound);
}

#[test]
fn bytes_after_acknowledgement_properties_are_malformed() {
    assert_malformed(
        after_connect(V5, &hex("40 05 00 01 00 00 FF")),
        "section 2.1.4",
    );
}

#[test]
fn v3_connack_return_codes_map_to_reason_codes() {
    let expected = [
        ReasonCode::Success,
        ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::ClientIdentifierNotValid,
        ReasonCode::ServerUnavailable,
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
    ];
    for (code, reason) in expected.into_iter().enumerate() {
        let Packet::ConnAck(connack) = packet(as_client(V4, &[0x20, 0x02, 0x00, code as u8]))
        else {
            panic!("CONNACK expected");
        };
        assert_eq!(connack.reason, reason);
    }
    assert_malformed(as_client(V4, &hex("20 02 00 06")), "section 3.2.2.3");
}

#[test]
fn connack_flags_bits_1_to_7_are_malformed() {
    assert_malformed(as_client(V4, &hex("20 02 02 00")), "MQTT-3.2.2-1");
    assert_malformed(as_client(V5, &hex("20 03 80 00 00")), "MQTT-3.2.2-1");
    let Packet::ConnAck(connack) = packet(as_client(V4, &hex("20 02 01 00"))) else {
        panic!("CONNACK expected");
    };
    assert!(connack.session_present);
}

#[test]
fn mqtt_3_1_connack_ignores_its_reserved_first_byte() {
    let Packet::ConnAck(connack) = packet(as_client(ProtocolVersion::V3_1, &hex("20 02 FF 05")))
    else {
        panic!("CONNACK expected");
    };
    assert!(!connack.session_present);
    assert_eq!(connack.reason, ReasonCode::NotAuthorized);
}

#[test]
fn v5_connack_reason_must_be_valid_for_connack() {
    assert_malformed(as_client(V5, &hex("20 03 00 01 00")), "section 3.2.2.2");
    assert_malformed(as_client(V5, &hex("20 03 00 8E 00")), "section 3.2.2.2");
    let Packet::ConnAck(connack) = packet(as_client(V5, &hex("20 03 00 8C 00"))) else {
        panic!("CONNACK expected");
    };
    assert_eq!(connack.reason, ReasonCode::BadAuthenticationMethod);
}

#[test]
fn v5_connack_needs_its_property_length() {
    assert_malformed(as_client(V5, &hex("20 02 00 00")), "section 2.1.4");
}

#[test]
fn v5_disconnect_lengths_and_reasons() {
    let reason = |bytes: &str| match packet(after_connect(V5, &hex(bytes))) {
        Packet::Disconnect(disconnect) => disconnect.reason,
        other => panic!("DISCONNECT expected, got {other:?}"),
    };
    assert_eq!(reason("E0 00"), ReasonCode::Success);
    assert_eq!(reason("E0 01 04"), ReasonCode::DisconnectWithWill);
    assert_eq!(reason("E0 02 8E 00"), ReasonCode::SessionTakenOver);
    assert_malformed(after_connect(V5, &hex("E0 01 01")), "section 3.14.2.1");
    assert_malformed(after_connect(V5, &hex("E0 01 84")), "section 3.14.2.1");
    assert_malformed(after_connect(V5, &hex("E0 03 00 00 00")), "section 2.1.4");
}

#[test]
fn v5_auth_lengths_and_reasons() {
    let Packet::Auth(auth) = packet(after_connect(V5, &hex("F0 02 18 00"))) else {
        panic!("AUTH expected");
    };
    assert_eq!(auth.reason, ReasonCode::ContinueAuthentication);
    assert_malformed(after_connect(V5, &hex("F0 02 01 00")), "section 3.15.2.1");
    assert_malformed(after_connect(V5, &hex("F0 01 19")), "section 2.1.4");
    assert_protocol(
        after_connect(V5, &hex("F0 06 18 04 16 00 01 AB")),
        "section 3.15.2.2.3",
        ReasonCode::ProtocolError,
    );
}

#[test]
fn pingresp_decodes_and_pingreq_with_flags_is_malformed() {
    assert_eq!(packet(as_client(V4, &hex("D0 00"))), Packet::PingResp);
    assert_malformed(as_client(V4, &hex("C8 00")), "MQTT-2.2.2-1");
}
