//! Proptest strategies producing packets that are representable in a given protocol version, so
//! that decode(encode(x)) == x must hold exactly: 3.x packets carry no properties and only the
//! reason codes 3.x can express; 5.0 packets carry only codes valid for their type, and never
//! Authentication Data without an Authentication Method.

use bytes::Bytes;
use bytestring::ByteString;
use proptest::prelude::*;
use proptest::sample::select;
use std::num::{NonZeroU16, NonZeroU32};
use stratus_codec::*;

/// A UTF-8 string without U+0000, sometimes starting with a byte order mark.
pub(crate) fn string() -> impl Strategy<Value = ByteString> + Clone {
    prop_oneof![
        8 => "[^\\x00]{0,6}",
        1 => "\u{FEFF}[a-z/+#]{0,4}",
        1 => "[a-z]{120,140}",
    ]
    .prop_map(ByteString::from)
}

/// A string that is not empty (topic names in 3.x).
pub(crate) fn nonempty_string() -> impl Strategy<Value = ByteString> + Clone {
    "[^\\x00]{1,8}".prop_map(ByteString::from)
}

/// Binary data.
pub(crate) fn binary() -> impl Strategy<Value = Bytes> + Clone {
    prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..16),
        1 => prop::collection::vec(any::<u8>(), 100..300),
    ]
    .prop_map(Bytes::from)
}

fn users() -> impl Strategy<Value = Vec<UserProperty>> {
    prop::collection::vec(
        (string(), string()).prop_map(|(name, value)| UserProperty { name, value }),
        0..3,
    )
}

fn nonzero_u16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|v| NonZeroU16::new(v).expect("non-zero"))
}

fn nonzero_u32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|v| NonZeroU32::new(v).expect("non-zero"))
}

fn subscription_identifier() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![1..=200u32, 1..=MAX_SUBSCRIPTION_IDENTIFIER]
        .prop_map(|v| NonZeroU32::new(v).expect("non-zero"))
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    nonzero_u16()
}

/// A reason code valid for `kind` in 5.0.
pub(crate) fn reason_for(kind: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|code| code.is_valid_for(kind))
        .collect();
    select(codes)
}

/// Authentication Method and Data, never Data alone.
fn authentication() -> impl Strategy<Value = (Option<ByteString>, Option<Bytes>)> {
    prop_oneof![
        Just((None, None)),
        (string(), prop::option::of(binary())).prop_map(|(m, d)| (Some(m), d)),
    ]
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        prop::option::of(any::<u32>()),
        prop::option::of(nonzero_u16()),
        prop::option::of(nonzero_u32()),
        prop::option::of(any::<u16>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        users(),
        authentication(),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, user_properties, (method, data))| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties,
                authentication_method: method,
                authentication_data: data,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        prop::option::of(any::<u32>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<u32>()),
        prop::option::of(string()),
        prop::option::of(string()),
        prop::option::of(binary()),
        users(),
    )
        .prop_map(
            |(wdi, pfi, mei, ct, rt, cd, user_properties)| WillProperties {
                will_delay_interval: wdi,
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                content_type: ct,
                response_topic: rt,
                correlation_data: cd,
                user_properties,
            },
        )
}

fn will(version: ProtocolVersion) -> impl Strategy<Value = LastWill> {
    let properties = if version.is_v5() {
        will_properties().boxed()
    } else {
        Just(WillProperties::default()).boxed()
    };
    (string(), binary(), qos(), any::<bool>(), properties).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

/// A CONNECT for `version`.
pub(crate) fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = if version.is_v5() {
        connect_properties().boxed()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    let credentials = if version.is_v5() {
        (prop::option::of(string()), prop::option::of(binary())).boxed()
    } else {
        // 3.x: a password only with a user name [MQTT-3.1.2-22].
        prop_oneof![
            Just((None, None)),
            (string(), prop::option::of(binary())).prop_map(|(u, p)| (Some(u), p)),
        ]
        .boxed()
    };
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        prop::option::of(will(version)),
        credentials,
        properties,
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, (username, password), properties)| {
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let numbers = (
        prop::option::of(any::<u32>()),
        prop::option::of(nonzero_u16()),
        prop::option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        prop::option::of(any::<bool>()),
        prop::option::of(nonzero_u32()),
        prop::option::of(any::<u16>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<u16>()),
    );
    let strings = (
        prop::option::of(string()),
        prop::option::of(string()),
        users(),
        prop::option::of(string()),
        prop::option::of(string()),
        prop::option::of(string()),
        prop::option::of(binary()),
    );
    (numbers, strings).prop_map(|(n, s)| ConnAckProperties {
        session_expiry_interval: n.0,
        receive_maximum: n.1,
        maximum_qos: n.2,
        retain_available: n.3,
        maximum_packet_size: n.4,
        topic_alias_maximum: n.5,
        wildcard_subscription_available: n.6,
        subscription_identifiers_available: n.7,
        shared_subscription_available: n.8,
        server_keep_alive: n.9,
        assigned_client_identifier: s.0,
        reason_string: s.1,
        user_properties: s.2,
        response_information: s.3,
        server_reference: s.4,
        authentication_method: s.5,
        authentication_data: s.6,
    })
}

/// A CONNACK for `version`.
pub(crate) fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let body = if version.is_v5() {
        (reason_for(PacketType::ConnAck), connack_properties()).boxed()
    } else {
        let codes = vec![
            ReasonCode::Success,
            ReasonCode::UnsupportedProtocolVersion,
            ReasonCode::ClientIdentifierNotValid,
            ReasonCode::ServerUnavailable,
            ReasonCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized,
        ];
        (select(codes), Just(ConnAckProperties::default())).boxed()
    };
    // MQTT 3.1 has no Session Present flag.
    let session_present = if version == ProtocolVersion::V3_1 {
        Just(false).boxed()
    } else {
        any::<bool>().boxed()
    };
    (session_present, body).prop_map(|(session_present, (reason, properties))| {
        Packet::ConnAck(ConnAck {
            session_present,
            reason,
            properties,
        })
    })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(any::<u32>()),
        prop::option::of(nonzero_u16()),
        prop::option::of(string()),
        prop::option::of(binary()),
        users(),
        prop::collection::vec(subscription_identifier(), 0..3),
        prop::option::of(string()),
    )
        .prop_map(
            |(pfi, mei, ta, rt, cd, user_properties, ids, ct)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                topic_alias: ta,
                response_topic: rt,
                correlation_data: cd,
                user_properties,
                subscription_identifiers: ids,
                content_type: ct,
            },
        )
}

/// A PUBLISH for `version` (in 5.0 an empty topic always comes with a Topic Alias).
pub(crate) fn publish(version: ProtocolVersion) -> impl Strategy<Value = Publish> {
    let properties = if version.is_v5() {
        publish_properties().boxed()
    } else {
        Just(PublishProperties::default()).boxed()
    };
    let topic = if version.is_v5() {
        string().boxed()
    } else {
        nonempty_string().boxed()
    };
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic,
        packet_id(),
        properties,
        payload(),
    )
        .prop_map(|(qos, dup, retain, topic, id, mut properties, payload)| {
            if topic.is_empty() && properties.topic_alias.is_none() {
                properties.topic_alias = NonZeroU16::new(1);
            }
            let at_most_once = qos == QoS::AtMostOnce;
            Publish {
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                packet_id: (!at_most_once).then_some(id),
                properties,
                payload,
            }
        })
}

fn ack_properties(version: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    if version.is_v5() {
        (prop::option::of(string()), users())
            .prop_map(|(reason_string, user_properties)| AckProperties {
                reason_string,
                user_properties,
            })
            .boxed()
    } else {
        Just(AckProperties::default()).boxed()
    }
}

fn reason_or_success(version: ProtocolVersion, kind: PacketType) -> BoxedStrategy<ReasonCode> {
    if version.is_v5() {
        reason_for(kind).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    }
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP (`kind`) for `version`.
pub(crate) fn ack(version: ProtocolVersion, kind: PacketType) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        reason_or_success(version, kind),
        ack_properties(version),
    )
        .prop_map(move |(packet_id, reason, properties)| {
            let ack = Ack {
                packet_id,
                reason,
                properties,
            };
            match kind {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        })
}

fn subscription_options(version: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    if !version.is_v5() {
        return qos().prop_map(SubscriptionOptions::with_qos).boxed();
    }
    let handling = select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendIfNew,
        RetainHandling::DoNotSend,
    ]);
    (qos(), any::<bool>(), any::<bool>(), handling)
        .prop_map(
            |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        )
        .boxed()
}

/// A SUBSCRIBE for `version`.
pub(crate) fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = if version.is_v5() {
        (prop::option::of(subscription_identifier()), users())
            .prop_map(
                |(subscription_identifier, user_properties)| SubscribeProperties {
                    subscription_identifier,
                    user_properties,
                },
            )
            .boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    let request = (string(), subscription_options(version))
        .prop_map(|(filter, options)| SubscriptionRequest { filter, options });
    (
        packet_id(),
        properties,
        prop::collection::vec(request, 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

/// A SUBACK for `version`.
pub(crate) fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reason = if version.is_v5() {
        reason_for(PacketType::SubAck).boxed()
    } else {
        select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed()
    };
    (
        packet_id(),
        ack_properties(version),
        prop::collection::vec(reason, 1..5),
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reasons,
            })
        })
}

/// An UNSUBSCRIBE for `version`.
pub(crate) fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = if version.is_v5() {
        users()
            .prop_map(|user_properties| UnsubscribeProperties { user_properties })
            .boxed()
    } else {
        Just(UnsubscribeProperties::default()).boxed()
    };
    (
        packet_id(),
        properties,
        prop::collection::vec(string(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

/// An UNSUBACK for `version` (no reason codes in 3.x).
pub(crate) fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reasons = if version.is_v5() {
        prop::collection::vec(reason_for(PacketType::UnsubAck), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (packet_id(), ack_properties(version), reasons).prop_map(|(packet_id, properties, reasons)| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            properties,
            reasons,
        })
    })
}

/// A DISCONNECT for `version`.
pub(crate) fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = if version.is_v5() {
        (
            prop::option::of(any::<u32>()),
            prop::option::of(string()),
            users(),
            prop::option::of(string()),
        )
            .prop_map(|(sei, rs, user_properties, sr)| DisconnectProperties {
                session_expiry_interval: sei,
                reason_string: rs,
                user_properties,
                server_reference: sr,
            })
            .boxed()
    } else {
        Just(DisconnectProperties::default()).boxed()
    };
    (
        reason_or_success(version, PacketType::Disconnect),
        properties,
    )
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
}

/// An AUTH (5.0 only).
pub(crate) fn auth() -> impl Strategy<Value = Packet> {
    (
        reason_for(PacketType::Auth),
        authentication(),
        prop::option::of(string()),
        users(),
    )
        .prop_map(|(reason, (method, data), reason_string, user_properties)| {
            Packet::Auth(Auth {
                reason,
                properties: AuthProperties {
                    authentication_method: method,
                    authentication_data: data,
                    reason_string,
                    user_properties,
                },
            })
        })
}

/// Any packet representable in `version`.
pub(crate) fn any_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut choices = vec![
        connect(version).boxed(),
        connack(version).boxed(),
        publish(version).prop_map(Packet::Publish).boxed(),
        ack(version, PacketType::PubAck).boxed(),
        ack(version, PacketType::PubRec).boxed(),
        ack(version, PacketType::PubRel).boxed(),
        ack(version, PacketType::PubComp).boxed(),
        subscribe(version).boxed(),
        suback(version).boxed(),
        unsubscribe(version).boxed(),
        unsuback(version).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(version).boxed(),
    ];
    if version.is_v5() {
        choices.push(auth().boxed());
    }
    proptest::strategy::Union::new(choices).boxed()
}
