//! Raw-byte tests of CONNECT (checklist section B, items 16-24, 26, 29-32) and of
//! `peek_protocol_version`.

mod common;

use bytes::BytesMut;
use common::{
    BASE_V4, BASE_V5, assert_malformed, assert_protocol, connect_v4, connect_v5, first, hex, packet,
};
use stratus_codec::{
    DecodeError, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion, QoS, ReasonCode,
    peek_protocol_version,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn connect(result: Result<Option<Packet>, DecodeError>) -> stratus_codec::Connect {
    match packet(result) {
        Packet::Connect(connect) => *connect,
        other => panic!("CONNECT expected, got {other:?}"),
    }
}

#[test]
fn base_connects_decode() {
    let v4 = connect(first(&hex(BASE_V4)));
    assert_eq!(v4.protocol, V4);
    assert!(v4.clean_start);
    assert_eq!(v4.keep_alive, 60);
    assert_eq!(v4.client_id, "c1");
    let v5 = connect(first(&hex(BASE_V5)));
    assert_eq!(v5.protocol, V5);
    assert_eq!(v5.client_id, "c1");
}

#[test]
fn mqtt_3_1_connect_decodes_and_sets_the_version() {
    let bytes = hex("10 10 00 06 4D 51 49 73 64 70 03 02 00 3C 00 02 63 31");
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    let packet = decoder.decode(&mut BytesMut::from(&bytes[..]));
    assert_eq!(connect(packet).protocol, ProtocolVersion::V3_1);
    assert_eq!(decoder.version(), Some(ProtocolVersion::V3_1));
}

#[test]
fn first_packet_that_is_not_connect_is_refused() {
    for bytes in ["C0 00", "82 06 00 01 00 01 61 00", "40 02 00 01"] {
        let bytes = hex(bytes);
        let result = first(&bytes);
        assert_eq!(
            result,
            Err(DecodeError::FirstPacketNotConnect {
                first_byte: bytes[0]
            })
        );
        // Already from the first byte.
        assert_eq!(first(&bytes[..1]), result);
    }
}

#[test]
fn second_connect_decodes_and_keeps_the_first_version() {
    // Refusing it is the engine's rule [MQTT-3.1.0-2]; the codec keeps the first version.
    let mut decoder = common::connected(V4);
    let packet = decoder.decode(&mut BytesMut::from(&hex(BASE_V5)[..]));
    assert_eq!(connect(packet).protocol, V5);
    assert_eq!(decoder.version(), Some(V4));
}

#[test]
fn unknown_protocol_name_is_a_protocol_error() {
    let bytes = hex("10 0E 00 04 4D 51 54 58 04 02 00 3C 00 02 63 31");
    assert_protocol(
        first(&bytes),
        "MQTT-3.1.2-1",
        ReasonCode::UnsupportedProtocolVersion,
    );
    assert_eq!(peek_protocol_version(&bytes), None);
}

#[test]
fn known_name_with_another_level_is_an_unsupported_version() {
    for level in [0u8, 2, 3, 6, 255] {
        let mut bytes = hex(BASE_V4);
        bytes[8] = level;
        let result = first(&bytes);
        assert_eq!(
            result,
            Err(DecodeError::UnsupportedProtocolVersion { level })
        );
        assert_eq!(
            result.unwrap_err().reason_code(),
            ReasonCode::UnsupportedProtocolVersion
        );
        assert_eq!(peek_protocol_version(&bytes), None);
    }
    // MQIsdp speaks level 3 only.
    let bytes = hex("10 10 00 06 4D 51 49 73 64 70 04 02 00 3C 00 02 63 31");
    assert_eq!(
        first(&bytes),
        Err(DecodeError::UnsupportedProtocolVersion { level: 4 })
    );
}

#[test]
fn reserved_connect_flag_is_malformed() {
    let mut v4 = hex(BASE_V4);
    v4[9] = 0x03;
    assert_malformed(first(&v4), "MQTT-3.1.2-3");
    let mut v5 = hex(BASE_V5);
    v5[9] = 0x03;
    assert_malformed(first(&v5), "MQTT-3.1.2-3");
}

#[test]
fn will_qos_or_retain_without_will_flag_is_malformed() {
    assert_malformed(first(&connect_v4(0x0A, &[])), "MQTT-3.1.2-13");
    assert_malformed(first(&connect_v4(0x22, &[])), "MQTT-3.1.2-15");
    assert_malformed(first(&connect_v5(0x0A, &[], &[])), "MQTT-3.1.2-11");
    assert_malformed(first(&connect_v5(0x22, &[], &[])), "MQTT-3.1.2-13");
}

#[test]
fn will_qos_3_is_malformed() {
    let will = hex("00 01 74 00 01 70");
    assert_malformed(first(&connect_v4(0x1E, &will)), "MQTT-3.1.2-14");
    let mut will_v5 = vec![0x00];
    will_v5.extend(&will);
    assert_malformed(first(&connect_v5(0x1E, &[], &will_v5)), "MQTT-3.1.2-12");
}

#[test]
fn will_is_decoded_with_its_qos_and_retain() {
    let connect = connect(first(&connect_v4(0x36, &hex("00 01 74 00 02 70 71"))));
    let will = connect.will.expect("will");
    assert_eq!(will.topic, "t");
    assert_eq!(&will.payload[..], b"pq");
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert!(will.retain);
}

#[test]
fn password_without_user_name_is_malformed_in_v3_1_1_only() {
    assert_malformed(
        first(&connect_v4(0x42, &hex("00 02 70 77"))),
        "MQTT-3.1.2-22",
    );
    let connect = connect(first(&connect_v5(0x42, &[], &hex("00 02 70 77"))));
    assert_eq!(connect.username, None);
    assert_eq!(connect.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn truncated_user_name_or_password_is_malformed() {
    // User name flag set, nothing after the client id.
    assert_malformed(first(&connect_v4(0x82, &[])), "section 2.1.4");
    assert_malformed(first(&connect_v5(0x82, &[], &[])), "section 2.1.4");
    // User name present, password cut short.
    assert_malformed(
        first(&connect_v4(0xC2, &hex("00 01 75 00 05 70"))),
        "section 2.1.4",
    );
    assert_malformed(
        first(&connect_v5(0xC2, &[], &hex("00 01 75 00 05 70"))),
        "section 2.1.4",
    );
    // Will flag set, will topic missing.
    assert_malformed(first(&connect_v4(0x06, &[])), "section 2.1.4");
}

#[test]
fn bytes_after_the_connect_payload_are_malformed() {
    assert_malformed(first(&connect_v4(0x02, &[0x00])), "section 2.1.4");
}

#[test]
fn empty_client_id_is_left_to_the_engine() {
    let bytes = hex("10 0C 00 04 4D 51 54 54 04 02 00 3C 00 00");
    assert_eq!(connect(first(&bytes)).client_id, "");
}

#[test]
fn client_id_with_invalid_utf8_or_nul_is_malformed() {
    for (id, rule) in [
        ("C0 AF", "MQTT-1.5.4-1"),
        ("ED A0 80", "MQTT-1.5.4-1"),
        ("FF", "MQTT-1.5.4-1"),
        ("61 00 62", "MQTT-1.5.4-2"),
    ] {
        let id = hex(id);
        let mut body = hex("00 04 4D 51 54 54 04 02 00 3C");
        body.extend([0, id.len() as u8]);
        body.extend(&id);
        assert_malformed(first(&common::frame(0x10, &body)), rule);
    }
}

#[test]
fn client_id_with_byte_order_mark_is_kept_byte_exact() {
    let bytes = hex("10 0F 00 04 4D 51 54 54 04 02 00 3C 00 03 EF BB BF");
    assert_eq!(
        connect(first(&bytes)).client_id.as_bytes().as_ref(),
        &hex("EF BB BF")[..]
    );
}

#[test]
fn connect_property_errors_are_reported_with_their_rule() {
    let protocol = [
        ("11 00 00 00 0A 11 00 00 00 0A", "section 3.1.2.11.2"),
        ("21 00 00", "section 3.1.2.11.3"),
        ("27 00 00 00 00", "section 3.1.2.11.4"),
        ("17 05", "section 3.1.2.11.7"),
        ("19 02", "section 3.1.2.11.6"),
        ("16 00 01 AB", "section 3.1.2.11.10"),
    ];
    for (props, rule) in protocol {
        let bytes = connect_v5(0x02, &hex(props), &[]);
        assert_protocol(first(&bytes), rule, ReasonCode::ProtocolError);
    }
    // A CONNACK-only property.
    assert_malformed(
        first(&connect_v5(0x02, &hex("24 00"), &[])),
        "section 2.2.2.2",
    );
}

#[test]
fn connect_property_length_past_the_packet_is_malformed() {
    // Property length 0x10 but only two bytes of properties and the client id follow.
    let bytes = hex("10 12 00 04 4D 51 54 54 05 02 00 3C 10 21 00 0A 00 02 63 31");
    assert_malformed(first(&bytes), "section 2.2.2.1");
}

#[test]
fn connect_property_length_of_five_bytes_is_malformed() {
    let bytes = hex("10 13 00 04 4D 51 54 54 05 02 00 3C FF FF FF FF 7F 00 02 63 31");
    assert_malformed(first(&bytes), "section 1.5.5");
}

#[test]
fn authentication_method_is_decoded_and_trailing_packets_are_left_in_the_buffer() {
    let method = hex("15 00 0B 53 43 52 41 4D 2D 53 48 41 2D 31");
    let mut bytes = connect_v5(0x02, &method, &[]);
    bytes.extend(hex("C0 00"));
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    let connect = connect(decoder.decode(&mut buf));
    assert_eq!(
        connect.properties.authentication_method.as_deref(),
        Some("SCRAM-SHA-1")
    );
    assert_eq!(&buf[..], &hex("C0 00")[..]);
}

#[test]
fn thousands_of_user_properties_are_kept_in_order() {
    let mut props = Vec::new();
    for index in 0..5001u32 {
        let name = format!("k{index}");
        props.push(0x26);
        props.extend([0, name.len() as u8]);
        props.extend(name.as_bytes());
        props.extend(hex("00 01 76"));
    }
    let connect = connect(first(&connect_v5(0x02, &props, &[])));
    let users = &connect.properties.user_properties;
    assert_eq!(users.len(), 5001);
    assert_eq!(users[0].name, "k0");
    assert_eq!(users[5000].name, "k5000");
    assert!(users.iter().all(|user| user.value == "v"));
}

#[test]
fn will_property_not_allowed_for_wills_is_malformed() {
    // Will properties `24 00` (Maximum QoS), topic `t`, payload `p`.
    let rest = hex("02 24 00 00 01 74 00 01 70");
    assert_malformed(first(&connect_v5(0x06, &[], &rest)), "section 2.2.2.2");
}

#[test]
fn will_properties_are_decoded_with_the_will() {
    let rest = hex("07 18 00 00 00 05 01 01 00 01 74 00 01 70");
    let connect = connect(first(&connect_v5(0x06, &[], &rest)));
    let will = connect.will.expect("will");
    assert_eq!(will.properties.will_delay_interval, Some(5));
    assert_eq!(will.properties.payload_format_indicator, Some(true));
}

#[test]
fn peek_reads_the_version_from_a_partial_connect() {
    let v5 = hex(BASE_V5);
    assert_eq!(peek_protocol_version(&v5), Some(V5));
    assert_eq!(peek_protocol_version(&v5[..9]), Some(V5));
    assert_eq!(peek_protocol_version(&v5[..8]), None);
    assert_eq!(peek_protocol_version(&hex(BASE_V4)), Some(V4));
    let v3 = hex("10 10 00 06 4D 51 49 73 64 70 03 02 00 3C 00 02 63 31");
    assert_eq!(
        peek_protocol_version(&v3[..11]),
        Some(ProtocolVersion::V3_1)
    );
}

#[test]
fn peek_needs_a_connect_whose_name_and_level_fit_inside_it() {
    assert_eq!(peek_protocol_version(&[]), None);
    assert_eq!(
        peek_protocol_version(&hex("30 0F 00 04 4D 51 54 54 05")),
        None
    );
    assert_eq!(peek_protocol_version(&hex("10 80")), None);
    assert_eq!(
        peek_protocol_version(&hex("10 80 00 00 04 4D 51 54 54 05")),
        None
    );
    assert_eq!(
        peek_protocol_version(&hex("10 06 00 04 4D 51 54 54 05")),
        None
    );
    assert_eq!(
        peek_protocol_version(&hex("10 07 00 04 4D 51 54 54 05")),
        Some(V5)
    );
}

#[test]
fn connect_errors_after_the_version_is_known_still_let_peek_choose_the_connack() {
    let bytes = connect_v5(0x02, &hex("21 00 00"), &[]);
    assert!(first(&bytes).is_err());
    assert_eq!(peek_protocol_version(&bytes), Some(V5));
}
