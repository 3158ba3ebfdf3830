//! Raw-byte tests of SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (checklist section D, items
//! 47, 48 and 53).

mod common;

use common::{after_connect, as_client, assert_malformed, assert_protocol, hex, packet};
use stratus_codec::{Packet, ProtocolVersion, QoS, ReasonCode, RetainHandling};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn subscribe(packet: Packet) -> stratus_codec::Subscribe {
    match packet {
        Packet::Subscribe(subscribe) => subscribe,
        other => panic!("SUBSCRIBE expected, got {other:?}"),
    }
}

#[test]
fn subscribe_without_filters_is_a_protocol_error() {
    assert_protocol(
        after_connect(V4, &hex("82 02 00 01")),
        "MQTT-3.8.3-3",
        ReasonCode::ProtocolError,
    );
    assert_protocol(
        after_connect(V5, &hex("82 03 00 01 00")),
        "MQTT-3.8.3-2",
        ReasonCode::ProtocolError,
    );
}

#[test]
fn unsubscribe_without_filters_is_a_protocol_error() {
    assert_protocol(
        after_connect(V4, &hex("A2 02 00 01")),
        "MQTT-3.10.3-2",
        ReasonCode::ProtocolError,
    );
    assert_protocol(
        after_connect(V5, &hex("A2 03 00 01 00")),
        "MQTT-3.10.3-2",
        ReasonCode::ProtocolError,
    );
}

#[test]
fn v3_subscription_options_allow_only_qos_0_to_2() {
    for options in ["03", "04", "08", "10", "C0", "FF"] {
        let bytes = hex(&format!("82 06 00 01 00 01 61 {options}"));
        assert_malformed(after_connect(V4, &bytes), "MQTT-3.8.3-4");
    }
    let subscribe = subscribe(packet(after_connect(V4, &hex("82 06 00 01 00 01 61 02"))));
    assert_eq!(subscribe.filters[0].options.qos, QoS::ExactlyOnce);
}

#[test]
fn v5_subscription_option_errors() {
    let sub =
        |options: &str| after_connect(V5, &hex(&format!("82 07 00 01 00 00 01 61 {options}")));
    assert_malformed(sub("C0"), "MQTT-3.8.3-5");
    assert_malformed(sub("40"), "MQTT-3.8.3-5");
    assert_protocol(sub("03"), "section 3.8.3.1", ReasonCode::ProtocolError);
    assert_protocol(sub("30"), "section 3.8.3.1", ReasonCode::ProtocolError);
}

#[test]
fn v5_subscription_options_decode_every_field() {
    let subscribe = subscribe(packet(after_connect(
        V5,
        &hex("82 07 00 01 00 00 01 61 2D"),
    )));
    let options = subscribe.filters[0].options;
    assert_eq!(options.qos, QoS::AtLeastOnce);
    assert!(options.no_local);
    assert!(options.retain_as_published);
    assert_eq!(options.retain_handling, RetainHandling::DoNotSend);
}

#[test]
fn subscribe_truncated_after_a_filter_is_malformed() {
    assert_malformed(
        after_connect(V4, &hex("82 05 00 01 00 01 61")),
        "section 2.1.4",
    );
    assert_malformed(
        after_connect(V5, &hex("82 06 00 01 00 00 01 61")),
        "section 2.1.4",
    );
    assert_malformed(
        after_connect(V4, &hex("82 07 00 01 00 01 61 00 00")),
        "section 2.1.4",
    );
}

#[test]
fn invalid_filter_syntax_is_left_to_the_engine() {
    let mut body = hex("00 01");
    for filter in ["a/#/b", "a#", "#a", "a/b+", "+a", ""] {
        body.extend([0, filter.len() as u8]);
        body.extend(filter.as_bytes());
        body.push(0x01);
    }
    let subscribe = subscribe(packet(after_connect(V4, &common::frame(0x82, &body))));
    let filters: Vec<&str> = subscribe.filters.iter().map(|f| &*f.filter).collect();
    assert_eq!(filters, ["a/#/b", "a#", "#a", "a/b+", "+a", ""]);
}

#[test]
fn filter_with_invalid_utf8_is_malformed() {
    assert_malformed(
        after_connect(V4, &hex("82 06 00 01 00 01 FF 00")),
        "MQTT-1.5.4-1",
    );
    assert_malformed(
        after_connect(V4, &hex("A2 05 00 01 00 01 00")),
        "MQTT-1.5.4-2",
    );
}

#[test]
fn subscribe_keeps_filters_in_order_with_the_subscription_identifier() {
    let bytes = hex("82 0D 00 05 02 0B 07 00 01 61 01 00 01 62 02");
    let subscribe = subscribe(packet(after_connect(V5, &bytes)));
    assert_eq!(subscribe.packet_id.get(), 5);
    assert_eq!(
        subscribe
            .properties
            .subscription_identifier
            .map(|id| id.get()),
        Some(7)
    );
    assert_eq!(subscribe.filters.len(), 2);
    assert_eq!(subscribe.filters[1].filter, "b");
}

#[test]
fn v3_suback_codes() {
    let Packet::SubAck(suback) = packet(as_client(V4, &hex("90 06 00 01 00 01 02 80"))) else {
        panic!("SUBACK expected");
    };
    assert_eq!(
        suback.reasons,
        [
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError
        ]
    );
    assert_malformed(as_client(V4, &hex("90 03 00 01 03")), "MQTT-3.9.3-2");
    assert_malformed(as_client(V4, &hex("90 03 00 01 87")), "MQTT-3.9.3-2");
}

#[test]
fn v5_suback_codes_must_be_valid_for_suback() {
    assert_malformed(as_client(V5, &hex("90 04 00 01 00 11")), "section 3.9.3");
    let Packet::SubAck(suback) = packet(as_client(V5, &hex("90 05 00 01 00 8F A2"))) else {
        panic!("SUBACK expected");
    };
    assert_eq!(
        suback.reasons,
        [
            ReasonCode::TopicFilterInvalid,
            ReasonCode::WildcardSubscriptionsNotSupported
        ]
    );
}

#[test]
fn suback_without_codes_is_a_protocol_error() {
    assert_protocol(
        as_client(V4, &hex("90 02 00 01")),
        "section 3.9.3",
        ReasonCode::ProtocolError,
    );
}

#[test]
fn v3_unsuback_is_the_packet_identifier_alone() {
    let Packet::UnsubAck(unsuback) = packet(as_client(V4, &hex("B0 02 00 09"))) else {
        panic!("UNSUBACK expected");
    };
    assert_eq!(unsuback.packet_id.get(), 9);
    assert!(unsuback.reasons.is_empty());
    assert_malformed(as_client(V4, &hex("B0 03 00 01 00")), "section 2.1.4");
}

#[test]
fn v5_unsuback_has_one_valid_code_per_filter() {
    let Packet::UnsubAck(unsuback) = packet(as_client(V5, &hex("B0 05 00 01 00 11 00"))) else {
        panic!("UNSUBACK expected");
    };
    assert_eq!(
        unsuback.reasons,
        [ReasonCode::NoSubscriptionExisted, ReasonCode::Success]
    );
    assert_malformed(as_client(V5, &hex("B0 04 00 01 00 02")), "section 3.11.3");
    assert_protocol(
        as_client(V5, &hex("B0 03 00 01 00")),
        "section 3.11.3",
        ReasonCode::ProtocolError,
    );
}
