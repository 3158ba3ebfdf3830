//! Encoder tests: errors for values a caller built wrongly (nothing written), exact bytes for
//! the short forms and the 3.x mappings, minimal Remaining Length, and property order.

mod common;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use common::hex;
use std::num::{NonZeroU16, NonZeroU32};
use stratus_codec::*;

const V3_1: ProtocolVersion = ProtocolVersion::V3_1;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn id(value: u16) -> PacketId {
    NonZeroU16::new(value).expect("non-zero")
}

fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).expect("encodes");
    assert_eq!(packet.encoded_len(version), Ok(buf.len()));
    buf.to_vec()
}

/// Encoding fails with `expected` and leaves the buffer as it was.
#[track_caller]
fn assert_encode_error(packet: &Packet, version: ProtocolVersion, expected: EncodeError) {
    let mut buf = BytesMut::from(&b"keep"[..]);
    assert_eq!(packet.encode(version, &mut buf), Err(expected.clone()));
    assert_eq!(&buf[..], b"keep");
    assert_eq!(packet.encoded_len(version), Err(expected));
}

fn publish(qos: QoS, packet_id: Option<PacketId>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from_static("a"),
        packet_id,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"x"),
    }
}

fn connect(version: ProtocolVersion) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from_static("c1"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

#[test]
fn base_connects_encode_to_the_checklist_bytes() {
    assert_eq!(
        encode(&Packet::Connect(Box::new(connect(V4))), V4),
        hex(common::BASE_V4)
    );
    assert_eq!(
        encode(&Packet::Connect(Box::new(connect(V5))), V5),
        hex(common::BASE_V5)
    );
    assert_eq!(
        encode(&Packet::Connect(Box::new(connect(V3_1))), V3_1),
        hex("10 10 00 06 4D 51 49 73 64 70 03 02 00 3C 00 02 63 31")
    );
}

#[test]
fn connect_for_another_version_is_refused() {
    let packet = Packet::Connect(Box::new(connect(V4)));
    assert_encode_error(
        &packet,
        V5,
        EncodeError::InvalidValue {
            what: "CONNECT protocol version (it must equal the encoding version)",
        },
    );
}

#[test]
fn v3_password_without_user_name_is_not_in_version() {
    let mut connect = connect(V4);
    connect.password = Some(Bytes::from_static(b"pw"));
    let packet = Packet::Connect(Box::new(connect.clone()));
    assert_encode_error(
        &packet,
        V4,
        EncodeError::NotInVersion {
            what: "a password without a user name",
            version: V4,
        },
    );
    connect.protocol = V5;
    assert!(
        Packet::Connect(Box::new(connect))
            .encode(V5, &mut BytesMut::new())
            .is_ok()
    );
}

#[test]
fn auth_is_not_in_v3() {
    let packet = Packet::Auth(Auth {
        reason: ReasonCode::Success,
        properties: AuthProperties::default(),
    });
    for version in [V3_1, V4] {
        assert_encode_error(
            &packet,
            version,
            EncodeError::NotInVersion {
                what: "AUTH",
                version,
            },
        );
    }
    assert_eq!(encode(&packet, V5), hex("F0 00"));
}

#[test]
fn strings_over_65535_bytes_are_too_long() {
    let long = ByteString::from("a".repeat(65_536));
    let mut too_long = publish(QoS::AtMostOnce, None);
    too_long.topic = long.clone();
    assert_encode_error(
        &Packet::Publish(too_long),
        V4,
        EncodeError::FieldTooLong {
            field: "topic name",
            len: 65_536,
        },
    );
    let mut with_user = publish(QoS::AtMostOnce, None);
    with_user.properties.user_properties.push(UserProperty {
        name: long,
        value: "v".into(),
    });
    assert_encode_error(
        &Packet::Publish(with_user.clone()),
        V5,
        EncodeError::FieldTooLong {
            field: "user property name",
            len: 65_536,
        },
    );
    // Properties do not exist in 3.1.1, so their length does not matter there.
    assert!(
        Packet::Publish(with_user)
            .encode(V4, &mut BytesMut::new())
            .is_ok()
    );
    let mut just_fits = publish(QoS::AtMostOnce, None);
    just_fits.topic = ByteString::from("a".repeat(65_535));
    assert!(
        Packet::Publish(just_fits)
            .encode(V4, &mut BytesMut::new())
            .is_ok()
    );
}

#[test]
fn packet_over_the_largest_remaining_length_is_too_large() {
    // Zeroed allocation: the pages are never touched, since nothing is written.
    let mut big = publish(QoS::AtMostOnce, None);
    big.payload = Bytes::from(vec![0u8; MAX_REMAINING_LENGTH - 2]);
    let len = MAX_REMAINING_LENGTH + 1;
    assert_encode_error(
        &Packet::Publish(big.clone()),
        V4,
        EncodeError::PacketTooLarge { len },
    );
    assert_eq!(
        big.encoded_len(V4),
        Err(EncodeError::PacketTooLarge { len })
    );
    big.payload = big.payload.slice(1..);
    assert_eq!(big.encoded_len(V4), Ok(MAX_PACKET_SIZE as usize));
}

#[test]
fn publish_qos_and_packet_identifier_must_agree() {
    assert_encode_error(
        &Packet::Publish(publish(QoS::AtMostOnce, Some(id(1)))),
        V4,
        EncodeError::PacketIdMismatch {
            qos: 0,
            expectation: "must not carry a packet identifier",
        },
    );
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        assert_encode_error(
            &Packet::Publish(publish(qos, None)),
            V5,
            EncodeError::PacketIdMismatch {
                qos: qos.as_u8(),
                expectation: "needs a packet identifier",
            },
        );
    }
}

#[test]
fn dup_on_qos_0_and_empty_topic_without_alias_are_refused() {
    let mut dup = publish(QoS::AtMostOnce, None);
    dup.dup = true;
    assert_encode_error(
        &Packet::Publish(dup),
        V4,
        EncodeError::InvalidValue {
            what: "DUP flag on a QoS 0 PUBLISH",
        },
    );
    let mut empty = publish(QoS::AtMostOnce, None);
    empty.topic = ByteString::new();
    let refused = EncodeError::InvalidValue {
        what: "empty topic name without a topic alias",
    };
    assert_encode_error(&Packet::Publish(empty.clone()), V5, refused.clone());
    empty.properties.topic_alias = NonZeroU16::new(3);
    assert_encode_error(&Packet::Publish(empty.clone()), V4, refused);
    assert_eq!(
        encode(&Packet::Publish(empty), V5),
        hex("30 07 00 00 03 23 00 03 78")
    );
}

#[test]
fn subscribe_and_unsubscribe_need_a_filter() {
    let subscribe = Subscribe {
        packet_id: id(1),
        properties: SubscribeProperties::default(),
        filters: Vec::new(),
    };
    assert_encode_error(
        &Packet::Subscribe(subscribe),
        V4,
        EncodeError::InvalidValue {
            what: "SUBSCRIBE with no topic filter",
        },
    );
    let unsubscribe = Unsubscribe {
        packet_id: id(1),
        properties: UnsubscribeProperties::default(),
        filters: Vec::new(),
    };
    assert_encode_error(
        &Packet::Unsubscribe(unsubscribe),
        V5,
        EncodeError::InvalidValue {
            what: "UNSUBSCRIBE with no topic filter",
        },
    );
}

#[test]
fn subscription_identifier_above_the_maximum_is_refused() {
    let too_big = NonZeroU32::new(MAX_SUBSCRIPTION_IDENTIFIER + 1).expect("non-zero");
    let expected = EncodeError::InvalidValue {
        what: "subscription identifier above 268435455",
    };
    let subscribe = Subscribe {
        packet_id: id(1),
        properties: SubscribeProperties {
            subscription_identifier: Some(too_big),
            ..Default::default()
        },
        filters: vec![SubscriptionRequest {
            filter: "a".into(),
            options: SubscriptionOptions::with_qos(QoS::AtMostOnce),
        }],
    };
    assert_encode_error(&Packet::Subscribe(subscribe), V5, expected.clone());
    let mut publish = publish(QoS::AtMostOnce, None);
    publish.properties.subscription_identifiers.push(too_big);
    assert_encode_error(&Packet::Publish(publish), V5, expected);
}

#[test]
fn remaining_length_is_written_minimally() {
    let mut publish = publish(QoS::AtMostOnce, None);
    // 3 topic bytes + 124 payload bytes = 127.
    publish.payload = Bytes::from(vec![7u8; 124]);
    let bytes = encode(&Packet::Publish(publish.clone()), V4);
    assert_eq!(&bytes[..2], &[0x30, 0x7F]);
    publish.payload = Bytes::from(vec![7u8; 125]);
    let bytes = encode(&Packet::Publish(publish), V4);
    assert_eq!(&bytes[..3], &[0x30, 0x80, 0x01]);
}

#[test]
fn v3_connack_uses_the_closest_return_code() {
    let expected = [
        (ReasonCode::Success, 0),
        (ReasonCode::UnsupportedProtocolVersion, 1),
        (ReasonCode::ClientIdentifierNotValid, 2),
        (ReasonCode::ServerUnavailable, 3),
        (ReasonCode::BadUserNameOrPassword, 4),
        (ReasonCode::NotAuthorized, 5),
        (ReasonCode::BadAuthenticationMethod, 5),
        (ReasonCode::Banned, 5),
        (ReasonCode::ServerBusy, 3),
        (ReasonCode::UnspecifiedError, 3),
        (ReasonCode::MalformedPacket, 3),
        (ReasonCode::PacketTooLarge, 3),
        (ReasonCode::QuotaExceeded, 3),
    ];
    for (reason, code) in expected {
        let packet = Packet::ConnAck(ConnAck {
            session_present: false,
            reason,
            properties: ConnAckProperties::default(),
        });
        assert_eq!(encode(&packet, V4), [0x20, 0x02, 0x00, code], "{reason:?}");
    }
    let odd = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::GrantedQoS1,
        properties: ConnAckProperties::default(),
    });
    assert_encode_error(
        &odd,
        V4,
        EncodeError::NotInVersion {
            what: "this CONNACK reason code",
            version: V4,
        },
    );
    assert_encode_error(
        &odd,
        V5,
        EncodeError::InvalidValue {
            what: "reason code not allowed in CONNACK",
        },
    );
}

#[test]
fn mqtt_3_1_connack_never_sets_session_present() {
    let packet = Packet::ConnAck(ConnAck {
        session_present: true,
        reason: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    });
    assert_eq!(encode(&packet, V3_1), hex("20 02 00 00"));
    assert_eq!(encode(&packet, V4), hex("20 02 01 00"));
}

#[test]
fn v3_suback_encodes_every_failure_as_0x80() {
    let packet = Packet::SubAck(SubAck {
        packet_id: id(1),
        properties: AckProperties::default(),
        reasons: vec![
            ReasonCode::GrantedQoS2,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
        ],
    });
    assert_eq!(encode(&packet, V4), hex("90 05 00 01 02 80 80"));
    assert_eq!(encode(&packet, V5), hex("90 06 00 01 00 02 87 8F"));
}

#[test]
fn v3_acknowledgements_drop_reason_and_properties() {
    let ack = Ack {
        packet_id: id(2),
        reason: ReasonCode::NotAuthorized,
        properties: AckProperties {
            reason_string: Some("no".into()),
            user_properties: Vec::new(),
        },
    };
    assert_eq!(encode(&Packet::PubAck(ack.clone()), V4), hex("40 02 00 02"));
    assert_eq!(
        encode(&Packet::PubAck(ack), V5),
        hex("40 09 00 02 87 05 1F 00 02 6E 6F")
    );
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: id(3),
        properties: AckProperties::default(),
        reasons: vec![ReasonCode::Success],
    });
    assert_eq!(encode(&unsuback, V4), hex("B0 02 00 03"));
    assert_eq!(encode(&unsuback, V5), hex("B0 04 00 03 00 00"));
}

#[test]
fn v5_short_forms_are_used_when_they_say_the_same() {
    assert_eq!(
        encode(&Packet::PubRel(Ack::success(id(1))), V5),
        hex("62 02 00 01")
    );
    let reason_only = Ack {
        reason: ReasonCode::PacketIdentifierNotFound,
        ..Ack::success(id(1))
    };
    assert_eq!(
        encode(&Packet::PubComp(reason_only), V5),
        hex("70 03 00 01 92")
    );
    assert_eq!(
        encode(
            &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            V5
        ),
        hex("E0 00")
    );
    assert_eq!(
        encode(
            &Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver)),
            V5
        ),
        hex("E0 01 8E")
    );
    assert_eq!(
        encode(
            &Packet::Disconnect(Disconnect::new(ReasonCode::KeepAliveTimeout)),
            V4
        ),
        hex("E0 00")
    );
    assert_eq!(encode(&Packet::PingReq, V4), hex("C0 00"));
    assert_eq!(encode(&Packet::PingResp, V5), hex("D0 00"));
}

#[test]
fn reason_codes_invalid_for_the_packet_are_refused_in_v5() {
    let ack = Ack {
        reason: ReasonCode::PacketIdentifierNotFound,
        ..Ack::success(id(1))
    };
    assert_encode_error(
        &Packet::PubAck(ack),
        V5,
        EncodeError::InvalidValue {
            what: "reason code not allowed in this acknowledgement",
        },
    );
    assert_encode_error(
        &Packet::Disconnect(Disconnect::new(ReasonCode::GrantedQoS1)),
        V5,
        EncodeError::InvalidValue {
            what: "reason code not allowed in DISCONNECT",
        },
    );
}

#[test]
fn properties_are_written_in_a_fixed_order_and_left_out_in_v3() {
    let mut publish = publish(QoS::AtLeastOnce, Some(id(9)));
    publish.properties = PublishProperties {
        content_type: Some("t".into()),
        message_expiry_interval: Some(10),
        payload_format_indicator: Some(true),
        user_properties: vec![
            UserProperty {
                name: "b".into(),
                value: "2".into(),
            },
            UserProperty {
                name: "a".into(),
                value: "1".into(),
            },
        ],
        ..Default::default()
    };
    let packet = Packet::Publish(publish);
    assert_eq!(
        encode(&packet, V5),
        hex("32 20 00 01 61 00 09 19 01 01 02 00 00 00 0A \
             26 00 01 62 00 01 32 26 00 01 61 00 01 31 03 00 01 74 78")
    );
    assert_eq!(encode(&packet, V4), hex("32 06 00 01 61 00 09 78"));
}

#[test]
fn publish_encode_appends_to_what_the_buffer_holds() {
    let publish = publish(QoS::AtMostOnce, None);
    let mut buf = BytesMut::from(&b"ab"[..]);
    publish.encode(V4, &mut buf).expect("encodes");
    assert_eq!(&buf[..], &[b'a', b'b', 0x30, 0x04, 0x00, 0x01, 0x61, 0x78]);
    assert_eq!(publish.encoded_len(V4), Ok(6));
}
