//! Raw-byte tests of the fixed header (checklist section A, items 1-14) and the sweep of all
//! 256 first bytes against MQTT 3.1.1 table 2.2 / 5.0 table 2-2.

mod common;

use bytes::BytesMut;
use common::{after_connect, assert_malformed, connected, first, frame, hex};
use stratus_codec::{
    DecodeError, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion, ReasonCode,
    peek_protocol_version,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

#[test]
fn packet_type_0_as_first_bytes_is_not_connect() {
    assert_eq!(
        first(&hex("00 00")),
        Err(DecodeError::FirstPacketNotConnect { first_byte: 0 })
    );
}

#[test]
fn packet_type_0_after_connect_is_malformed() {
    for version in [V4, V5] {
        assert_malformed(after_connect(version, &hex("00 00")), "section 2.1.2");
    }
}

#[test]
fn packet_type_15_before_connect_is_not_connect() {
    assert_eq!(
        first(&hex("F0 00")),
        Err(DecodeError::FirstPacketNotConnect { first_byte: 0xF0 })
    );
}

#[test]
fn packet_type_15_is_malformed_in_v3_1_1() {
    assert_malformed(after_connect(V4, &hex("F0 00")), "section 2.2.1");
}

#[test]
fn packet_type_15_is_auth_in_v5() {
    // Whether an AUTH is expected ([MQTT-4.12.0-6/-7]) is the engine's call.
    let packet = common::packet(after_connect(V5, &hex("F0 00")));
    assert!(matches!(packet, Packet::Auth(auth) if auth.reason == ReasonCode::Success));
}

#[test]
fn connect_with_flags_is_malformed_from_its_first_byte() {
    for byte in 0x11..=0x1F {
        assert_malformed(first(&[byte]), "MQTT-2.1.3-1");
    }
}

#[test]
fn wrong_reserved_flags_after_connect_are_malformed() {
    for (version, reserved) in [(V4, "MQTT-2.2.2-1"), (V5, "MQTT-2.1.3-1")] {
        let cases = [
            ("80 06 00 01 00 01 61 00", "MQTT-3.8.1-1"),
            ("A0 05 00 01 00 01 61", "MQTT-3.10.1-1"),
            ("60 02 00 01", "MQTT-3.6.1-1"),
            ("41 02 00 01", reserved),
            ("C1 00", reserved),
            ("E1 00", reserved),
        ];
        for (bytes, rule) in cases {
            assert_malformed(after_connect(version, &hex(bytes)), rule);
        }
    }
}

#[test]
fn publish_with_qos_bits_3_is_malformed() {
    for version in [V4, V5] {
        assert_malformed(
            after_connect(version, &hex("36 05 00 01 61 00 01")),
            "MQTT-3.3.1-4",
        );
        // Detected from the first byte alone.
        assert_malformed(after_connect(version, &hex("36")), "MQTT-3.3.1-4");
    }
}

#[test]
fn qos_0_publish_with_dup_is_malformed() {
    for version in [V4, V5] {
        assert_malformed(
            after_connect(version, &hex("38 04 00 01 61 78")),
            "MQTT-3.3.1-2",
        );
    }
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    assert_malformed(first(&hex("10 FF FF FF FF 7F")), "section 1.5.5");
    for version in [V4, V5] {
        assert_malformed(
            after_connect(version, &hex("30 FF FF FF FF 7F")),
            "section 1.5.5",
        );
    }
}

#[test]
fn non_minimal_remaining_length_is_malformed_in_every_version() {
    for version in [V4, V5] {
        assert_malformed(after_connect(version, &hex("C0 80 00")), "MQTT-1.5.5-1");
    }
    assert_malformed(first(&hex("10 8E 00")), "MQTT-1.5.5-1");
}

#[test]
fn oversized_first_packet_of_another_type_is_not_connect() {
    for kind in 2u8..=15 {
        let first_byte = kind << 4;
        let mut bytes = vec![first_byte];
        bytes.extend(hex("80 80 80 74"));
        assert_eq!(
            first(&bytes),
            Err(DecodeError::FirstPacketNotConnect { first_byte })
        );
    }
}

#[test]
fn oversized_packet_is_rejected_from_five_bytes() {
    let declared = 0x74u64 << 21;
    let max = 1024 * 1024;
    // CONNECT first.
    let mut decoder = Decoder::server(max);
    let result = decoder.decode(&mut BytesMut::from(&hex("10 80 80 80 74")[..]));
    assert_eq!(
        result,
        Err(DecodeError::PacketTooLarge {
            size: declared + 5,
            max
        })
    );
    // Every other type (with valid flags) after CONNECT.
    for version in [V4, V5] {
        for first_byte in [
            0x20, 0x30, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xA2, 0xB0, 0xC0, 0xD0, 0xE0,
        ] {
            let mut decoder = connected(version);
            decoder.set_max_packet_size(max);
            let mut buf = BytesMut::from(&[first_byte, 0x80, 0x80, 0x80, 0x74][..]);
            assert_eq!(
                decoder.decode(&mut buf),
                Err(DecodeError::PacketTooLarge {
                    size: declared + 5,
                    max
                }),
                "first byte {first_byte:#04x}"
            );
        }
    }
}

#[test]
fn packet_of_exactly_the_maximum_size_is_accepted() {
    let bytes = hex("30 05 00 01 61 78 79"); // 7 bytes
    let mut decoder = connected(V4);
    decoder.set_max_packet_size(7);
    assert_eq!(decoder.max_packet_size(), 7);
    assert!(matches!(
        decoder.decode(&mut BytesMut::from(&bytes[..])),
        Ok(Some(_))
    ));
    decoder.set_max_packet_size(6);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&bytes[..])),
        Err(DecodeError::PacketTooLarge { size: 7, max: 6 })
    );
}

#[test]
fn connect_over_the_pre_auth_limit_is_rejected_before_its_body_and_its_version_is_known() {
    // A 5.0 CONNECT declaring over 1 MiB (trailing bytes after a will), of which only the first
    // 64 bytes have arrived.
    let mut rest = hex("00 00 01 74");
    rest.extend(hex("FF FF"));
    rest.extend(vec![0u8; 1 << 20]);
    let connect = common::connect_v5(0x06, &[], &rest);
    let head = &connect[..64];
    let mut decoder = Decoder::server(64 * 1024);
    match decoder.decode(&mut BytesMut::from(head)) {
        Err(err @ DecodeError::PacketTooLarge { .. }) => {
            assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
        }
        other => panic!("expected PacketTooLarge, got {other:?}"),
    }
    assert_eq!(peek_protocol_version(head), Some(V5));
}

#[test]
fn half_a_packet_waits_for_more_bytes_and_leaves_the_buffer_alone() {
    let bytes = hex("10 C8 01 00 00 00 00 00 00 00 00 00 00");
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &bytes[..]);
    assert_eq!(decoder.version(), None);
}

#[test]
fn empty_and_partial_headers_need_more_bytes() {
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    assert_eq!(decoder.decode(&mut BytesMut::new()), Ok(None));
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&hex("10")[..])),
        Ok(None)
    );
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&hex("10 80 80")[..])),
        Ok(None)
    );
}

#[test]
fn string_length_past_the_packet_end_is_malformed() {
    assert_malformed(first(&hex("10 06 00 28 4D 51 54 54")), "section 2.1.4");
}

#[test]
fn pingreq_with_a_body_is_malformed() {
    for version in [V4, V5] {
        assert_malformed(after_connect(version, &hex("C0 01 FF")), "section 3.12.1");
        // Without waiting for the body.
        assert_malformed(after_connect(version, &hex("C0 01")), "section 3.12.1");
        assert_malformed(after_connect(version, &hex("D0 01 00")), "section 3.13.1");
    }
}

#[test]
fn v3_disconnect_with_a_body_is_malformed() {
    assert_malformed(after_connect(V4, &hex("E0 01 00")), "section 3.14.1");
    assert_malformed(after_connect(V4, &hex("E0 01")), "section 3.14.1");
}

#[test]
fn decoded_packet_removes_exactly_its_bytes() {
    let mut buf = BytesMut::from(&hex("C0 00 C0 00 C0")[..]);
    let mut decoder = connected(V4);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert_eq!(buf.len(), 3);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &[0xC0]);
}

#[test]
fn publish_topic_and_payload_share_the_input_buffer() {
    let mut buf = BytesMut::from(&hex("30 06 00 01 61 78 79 7A")[..]);
    let start = buf.as_ptr() as usize;
    let Ok(Some(Packet::Publish(publish))) = connected(V4).decode(&mut buf) else {
        panic!("PUBLISH expected");
    };
    assert_eq!(publish.topic.as_bytes().as_ptr() as usize, start + 4);
    assert_eq!(publish.payload.as_ptr() as usize, start + 5);
    assert_eq!(&publish.payload[..], b"xyz");
}

/// Whether table 2.2 (3.1.1) / 2-2 (5.0) accepts `first_byte` after CONNECT.
fn table_accepts(first_byte: u8, v5: bool) -> bool {
    let (kind, flags) = (first_byte >> 4, first_byte & 0x0F);
    match kind {
        1 | 2 | 4 | 5 | 7 | 9 | 11 | 12 | 13 | 14 => flags == 0,
        6 | 8 | 10 => flags == 0b0010,
        3 => {
            let qos = (flags >> 1) & 0b11;
            qos != 3 && !(qos == 0 && flags & 0b1000 != 0)
        }
        15 => v5 && flags == 0,
        _ => false,
    }
}

/// A minimal valid body for the packet type of `first_byte`.
fn minimal_body(first_byte: u8, v5: bool) -> Vec<u8> {
    let props: &[u8] = if v5 { &[0x00] } else { &[] };
    let mut body = Vec::new();
    match first_byte >> 4 {
        1 => body = hex(if v5 { common::BASE_V5 } else { common::BASE_V4 })[2..].to_vec(),
        2 => {
            body.extend([0x00, 0x00]);
            body.extend(props);
        }
        3 => {
            body.extend(hex("00 01 61"));
            if (first_byte >> 1) & 0b11 != 0 {
                body.extend([0x00, 0x01]);
            }
            body.extend(props);
            body.push(0x78);
        }
        4..=7 => body.extend([0x00, 0x01]),
        8 => {
            body.extend([0x00, 0x01]);
            body.extend(props);
            body.extend(hex("00 01 61 00"));
        }
        9 => {
            body.extend([0x00, 0x01]);
            body.extend(props);
            body.push(0x00);
        }
        10 => {
            body.extend([0x00, 0x01]);
            body.extend(props);
            body.extend(hex("00 01 61"));
        }
        11 => {
            body.extend([0x00, 0x01]);
            if v5 {
                body.extend([0x00, 0x00]);
            }
        }
        _ => {}
    }
    body
}

#[test]
fn before_connect_only_first_byte_0x10_proceeds() {
    for first_byte in 0..=255u8 {
        let result = first(&[first_byte]);
        match first_byte {
            0x10 => assert_eq!(result, Ok(None)),
            0x11..=0x1F => assert_malformed(result, "MQTT-2.1.3-1"),
            _ => assert_eq!(
                result,
                Err(DecodeError::FirstPacketNotConnect { first_byte })
            ),
        }
    }
}

#[test]
fn after_connect_exactly_the_first_bytes_of_the_flag_table_are_accepted() {
    for (version, expected_count) in [(V4, 23), (V5, 24)] {
        let v5 = version.is_v5();
        let mut accepted = 0;
        for first_byte in 0..=255u8 {
            let bytes = frame(first_byte, &minimal_body(first_byte, v5));
            let result = after_connect(version, &bytes);
            if table_accepts(first_byte, v5) {
                let packet = common::packet(result);
                assert_eq!(packet.packet_type() as u8, first_byte >> 4);
                accepted += 1;
            } else {
                assert!(
                    matches!(result, Err(DecodeError::Malformed { .. })),
                    "{version} first byte {first_byte:#04x}: {result:?}"
                );
            }
        }
        assert_eq!(accepted, expected_count, "{version}");
    }
}
