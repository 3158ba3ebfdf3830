//! Property lists in every 5.0 packet, checked against MQTT 5.0 table 2-4 written out here
//! independently of the codec's own table: every identifier 0x00-0x7F in every packet is either
//! accepted or Malformed (section 2.2.2.2); a second copy of a property that may appear once is
//! a Protocol Error; user properties repeat in order; value ranges are enforced.

mod common;

use common::{as_client, assert_malformed, assert_protocol, connect_v5, first, frame, hex, vbi};
use stratus_codec::{DecodeError, Packet, ProtocolVersion, ReasonCode};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// The places a property list appears.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

use Place::*;

const PLACES: [Place; 14] = [
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
];

/// MQTT 5.0 table 2-4: identifier, a valid encoded value, and where it may appear.
fn table() -> Vec<(u8, &'static str, Vec<Place>)> {
    let acks = vec![
        ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
    ];
    vec![
        (0x01, "01", vec![Publish, Will]),
        (0x02, "00 00 00 01", vec![Publish, Will]),
        (0x03, "00 01 61", vec![Publish, Will]),
        (0x08, "00 01 61", vec![Publish, Will]),
        (0x09, "00 01 AB", vec![Publish, Will]),
        (0x0B, "01", vec![Publish, Subscribe]),
        (0x11, "00 00 00 01", vec![Connect, ConnAck, Disconnect]),
        (0x12, "00 01 61", vec![ConnAck]),
        (0x13, "00 01", vec![ConnAck]),
        (0x15, "00 01 61", vec![Connect, ConnAck, Auth]),
        (0x16, "00 01 AB", vec![Connect, ConnAck, Auth]),
        (0x17, "01", vec![Connect]),
        (0x18, "00 00 00 01", vec![Will]),
        (0x19, "01", vec![Connect]),
        (0x1A, "00 01 61", vec![ConnAck]),
        (0x1C, "00 01 61", vec![ConnAck, Disconnect]),
        (0x1F, "00 01 61", acks),
        (0x21, "00 01", vec![Connect, ConnAck]),
        (0x22, "00 01", vec![Connect, ConnAck]),
        (0x23, "00 01", vec![Publish]),
        (0x24, "01", vec![ConnAck]),
        (0x25, "01", vec![ConnAck]),
        (0x26, "00 01 6B 00 01 76", PLACES.to_vec()),
        (0x27, "00 00 00 01", vec![Connect, ConnAck]),
        (0x28, "01", vec![ConnAck]),
        (0x29, "01", vec![ConnAck]),
        (0x2A, "01", vec![ConnAck]),
    ]
}

/// A 5.0 packet of `place` carrying the property list `props`.
fn packet_with(place: Place, props: &[u8]) -> Vec<u8> {
    let mut block = vbi(props.len());
    block.extend_from_slice(props);
    let with = |first_byte: u8, before: &[u8], after: &[u8]| {
        let mut body = before.to_vec();
        body.extend(&block);
        body.extend_from_slice(after);
        frame(first_byte, &body)
    };
    match place {
        Connect => connect_v5(0x02, props, &[]),
        Will => {
            let mut rest = block.clone();
            rest.extend(hex("00 01 74 00 01 70"));
            connect_v5(0x06, &[], &rest)
        }
        ConnAck => with(0x20, &[0x00, 0x00], &[]),
        Publish => with(0x30, &hex("00 01 61"), &hex("78")),
        PubAck => with(0x40, &hex("00 01 00"), &[]),
        PubRec => with(0x50, &hex("00 01 00"), &[]),
        PubRel => with(0x62, &hex("00 01 00"), &[]),
        PubComp => with(0x70, &hex("00 01 00"), &[]),
        Subscribe => with(0x82, &hex("00 01"), &hex("00 01 61 00")),
        SubAck => with(0x90, &hex("00 01"), &hex("00")),
        Unsubscribe => with(0xA2, &hex("00 01"), &hex("00 01 61")),
        UnsubAck => with(0xB0, &hex("00 01"), &hex("00")),
        Disconnect => with(0xE0, &hex("00"), &[]),
        Auth => with(0xF0, &hex("18"), &[]),
    }
}

/// Decodes a packet of `place`: CONNECT with a server decoder, the rest with a 5.0 client
/// decoder (which accepts a Subscription Identifier in PUBLISH).
fn decode(place: Place, props: &[u8]) -> Result<Option<Packet>, DecodeError> {
    let bytes = packet_with(place, props);
    match place {
        Connect | Will => first(&bytes),
        _ => as_client(V5, &bytes),
    }
}

#[test]
fn every_identifier_is_accepted_exactly_where_table_2_4_allows_it() {
    let table = table();
    let mut checked = 0;
    for ident in 0x00..=0x7Fu8 {
        let entry = table.iter().find(|(id, _, _)| *id == ident);
        for place in PLACES {
            let mut props = Vec::new();
            if ident == 0x16 {
                // Authentication Data needs an Authentication Method before it.
                props.extend(hex("15 00 01 6D"));
            }
            props.push(ident);
            props.extend(hex(entry.map_or("00", |(_, value, _)| *value)));
            let result = decode(place, &props);
            match entry {
                Some((_, _, places)) if places.contains(&place) => {
                    assert!(
                        matches!(result, Ok(Some(_))),
                        "{ident:#04x} in {place:?}: {result:?}"
                    );
                }
                _ => assert!(
                    matches!(
                        result,
                        Err(DecodeError::Malformed {
                            rule: "section 2.2.2.2",
                            ..
                        })
                    ),
                    "{ident:#04x} in {place:?}: {result:?}"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 128 * 14);
}

#[test]
fn a_second_copy_of_a_single_property_is_a_protocol_error() {
    for (ident, value, places) in table() {
        for place in places {
            let mut single = Vec::new();
            if ident == 0x16 {
                single.extend(hex("15 00 01 6D"));
            }
            let mut one = vec![ident];
            one.extend(hex(value));
            single.extend(&one);
            let mut twice = single.clone();
            twice.extend(&one);
            let repeatable = ident == 0x26 || (ident == 0x0B && place == Publish);
            let result = decode(place, &twice);
            if repeatable {
                assert!(
                    matches!(result, Ok(Some(_))),
                    "{ident:#04x} twice in {place:?}"
                );
            } else {
                assert!(
                    matches!(
                        result,
                        Err(DecodeError::Protocol {
                            reason: ReasonCode::ProtocolError,
                            ..
                        })
                    ),
                    "{ident:#04x} twice in {place:?}: {result:?}"
                );
            }
        }
    }
}

#[test]
fn user_properties_and_subscription_identifiers_keep_their_order() {
    let props = hex("26 00 01 61 00 01 31 0B 05 26 00 01 61 00 01 32 0B 80 01");
    let Ok(Some(Packet::Publish(publish))) = decode(Publish, &props) else {
        panic!("PUBLISH expected");
    };
    let values: Vec<&str> = publish
        .properties
        .user_properties
        .iter()
        .map(|user| &*user.value)
        .collect();
    assert_eq!(values, ["1", "2"]);
    let ids: Vec<u32> = publish
        .properties
        .subscription_identifiers
        .iter()
        .map(|id| id.get())
        .collect();
    assert_eq!(ids, [5, 128]);
}

#[test]
fn out_of_range_values_are_protocol_errors() {
    let cases = [
        (Connect, "21 00 00", "section 3.1.2.11.3"),
        (ConnAck, "21 00 00", "section 3.2.2.3.3"),
        (Connect, "27 00 00 00 00", "section 3.1.2.11.4"),
        (ConnAck, "27 00 00 00 00", "section 3.2.2.3.6"),
        (Connect, "17 02", "section 3.1.2.11.7"),
        (Connect, "19 FF", "section 3.1.2.11.6"),
        (Will, "01 02", "section 3.1.3.2.3"),
        (Publish, "01 02", "section 3.3.2.3.2"),
        (ConnAck, "24 02", "section 3.2.2.3.4"),
        (ConnAck, "25 02", "section 3.2.2.3.5"),
        (ConnAck, "28 02", "section 3.2.2.3.11"),
        (ConnAck, "29 02", "section 3.2.2.3.12"),
        (ConnAck, "2A 02", "section 3.2.2.3.13"),
        (Publish, "0B 00", "section 3.3.2.3.8"),
        (Subscribe, "0B 00", "section 3.8.2.1.2"),
        (Connect, "16 00 01 AB", "section 3.1.2.11.10"),
        (Auth, "16 00 01 AB", "section 3.15.2.2.3"),
    ];
    for (place, props, rule) in cases {
        assert_protocol(decode(place, &hex(props)), rule, ReasonCode::ProtocolError);
    }
    assert_protocol(
        decode(Publish, &hex("23 00 00")),
        "MQTT-3.3.2-8",
        ReasonCode::TopicAliasInvalid,
    );
}

#[test]
fn property_list_errors_are_malformed() {
    // Value cut short by the end of the property list.
    assert_malformed(decode(Connect, &hex("11 00 00")), "section 2.1.4");
    // Identifier as a non-minimal Variable Byte Integer.
    assert_malformed(decode(Connect, &hex("91 00 00 00 00 01")), "MQTT-1.5.5-1");
    // Identifiers above 0x7F (two-byte VBI) are unknown.
    assert_malformed(decode(ConnAck, &hex("80 01 00")), "section 2.2.2.2");
    // String property with invalid UTF-8.
    assert_malformed(decode(ConnAck, &hex("1F 00 01 FF")), "MQTT-1.5.4-1");
    // Property length past the end of the packet.
    assert_malformed(as_client(V5, &hex("40 04 00 01 00 05")), "section 2.2.2.1");
}

#[test]
fn maximum_qos_0_and_1_are_accepted() {
    for (value, qos) in [
        ("00", stratus_codec::QoS::AtMostOnce),
        ("01", stratus_codec::QoS::AtLeastOnce),
    ] {
        let Ok(Some(Packet::ConnAck(connack))) = decode(ConnAck, &hex(&format!("24 {value}")))
        else {
            panic!("CONNACK expected");
        };
        assert_eq!(connack.properties.maximum_qos, Some(qos));
    }
}
