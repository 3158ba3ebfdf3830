//! Property tests: decode(encode(x)) == x for every packet type in 3.1.1 and 5.0 (and 3.1),
//! with `encoded_len` equal to the bytes written and the whole packet consumed.

mod common;

use bytes::BytesMut;
use common::strategies;
use proptest::prelude::*;
use stratus_codec::{Decoder, MAX_PACKET_SIZE, Packet, PacketType, ProtocolVersion};

const V3_1: ProtocolVersion = ProtocolVersion::V3_1;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn round_trip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .map_err(|err| TestCaseError::fail(err.to_string()))?;
    prop_assert_eq!(packet.encoded_len(version), Ok(buf.len()));
    if let Packet::Publish(publish) = packet {
        prop_assert_eq!(publish.encoded_len(version), Ok(buf.len()));
    }
    let mut decoder = Decoder::client(version, MAX_PACKET_SIZE);
    let decoded = decoder.decode(&mut buf);
    prop_assert_eq!(decoded, Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(())
}

/// CONNECT also goes through the server decoder, which adopts its version.
fn connect_round_trip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    round_trip(packet, version)?;
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .map_err(|err| TestCaseError::fail(err.to_string()))?;
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    prop_assert_eq!(decoder.decode(&mut buf), Ok(Some(packet.clone())));
    prop_assert_eq!(decoder.version(), Some(version));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8192))]

    #[test]
    fn connect_round_trips_in_v3_1(packet in strategies::connect(V3_1)) {
        connect_round_trip(&packet, V3_1)?;
    }

    #[test]
    fn connect_round_trips_in_v3_1_1(packet in strategies::connect(V4)) {
        connect_round_trip(&packet, V4)?;
    }

    #[test]
    fn connect_round_trips_in_v5(packet in strategies::connect(V5)) {
        connect_round_trip(&packet, V5)?;
    }

    #[test]
    fn connack_round_trips_in_v3_1_1(packet in strategies::connack(V4)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn connack_round_trips_in_v5(packet in strategies::connack(V5)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn publish_round_trips_in_v3_1_1(publish in strategies::publish(V4)) {
        round_trip(&Packet::Publish(publish), V4)?;
    }

    #[test]
    fn publish_round_trips_in_v5(publish in strategies::publish(V5)) {
        round_trip(&Packet::Publish(publish), V5)?;
    }

    #[test]
    fn puback_round_trips_in_v3_1_1(packet in strategies::ack(V4, PacketType::PubAck)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn puback_round_trips_in_v5(packet in strategies::ack(V5, PacketType::PubAck)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn pubrec_round_trips_in_v3_1_1(packet in strategies::ack(V4, PacketType::PubRec)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn pubrec_round_trips_in_v5(packet in strategies::ack(V5, PacketType::PubRec)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn pubrel_round_trips_in_v3_1_1(packet in strategies::ack(V4, PacketType::PubRel)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn pubrel_round_trips_in_v5(packet in strategies::ack(V5, PacketType::PubRel)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn pubcomp_round_trips_in_v3_1_1(packet in strategies::ack(V4, PacketType::PubComp)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn pubcomp_round_trips_in_v5(packet in strategies::ack(V5, PacketType::PubComp)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn subscribe_round_trips_in_v3_1_1(packet in strategies::subscribe(V4)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn subscribe_round_trips_in_v5(packet in strategies::subscribe(V5)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn suback_round_trips_in_v3_1_1(packet in strategies::suback(V4)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn suback_round_trips_in_v5(packet in strategies::suback(V5)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn unsubscribe_round_trips_in_v3_1_1(packet in strategies::unsubscribe(V4)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn unsubscribe_round_trips_in_v5(packet in strategies::unsubscribe(V5)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn unsuback_round_trips_in_v3_1_1(packet in strategies::unsuback(V4)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn unsuback_round_trips_in_v5(packet in strategies::unsuback(V5)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn disconnect_round_trips_in_v3_1_1(packet in strategies::disconnect(V4)) {
        round_trip(&packet, V4)?;
    }

    #[test]
    fn disconnect_round_trips_in_v5(packet in strategies::disconnect(V5)) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn auth_round_trips_in_v5(packet in strategies::auth()) {
        round_trip(&packet, V5)?;
    }

    #[test]
    fn any_packet_round_trips_in_v3_1(packet in strategies::any_packet(V3_1)) {
        round_trip(&packet, V3_1)?;
    }
}

#[test]
fn pings_round_trip_in_every_version() {
    for version in [V3_1, V4, V5] {
        for packet in [Packet::PingReq, Packet::PingResp] {
            round_trip(&packet, version).unwrap();
        }
    }
}
