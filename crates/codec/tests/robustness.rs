//! Property tests of the decoder on hostile input: arbitrary and mutated bytes never panic it,
//! never make it report a packet from fewer bytes than the packet has, and a valid stream cut
//! into arbitrary chunks decodes to the same packets. Whatever decodes re-encodes to bytes that
//! decode to the same packet.

mod common;

use bytes::BytesMut;
use common::strategies;
use proptest::prelude::*;
use stratus_codec::{DecodeError, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// Every kind of decoder: server before CONNECT, and a client decoder per version.
fn decoders() -> Vec<Decoder> {
    let mut all = vec![Decoder::server(MAX_PACKET_SIZE)];
    all.extend(
        VERSIONS
            .iter()
            .map(|version| Decoder::client(*version, MAX_PACKET_SIZE)),
    );
    all
}

/// Re-encodes a decoded packet and checks that it decodes to itself.
fn re_encodes(packet: &Packet, decoder: &Decoder) -> Result<(), TestCaseError> {
    let version = match packet {
        Packet::Connect(connect) => connect.protocol,
        _ => decoder.version().expect("version known after a packet"),
    };
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .map_err(|err| TestCaseError::fail(err.to_string()))?;
    prop_assert_eq!(packet.encoded_len(version), Ok(buf.len()));
    let mut again = Decoder::client(version, MAX_PACKET_SIZE);
    prop_assert_eq!(again.decode(&mut buf), Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty());
    Ok(())
}

/// Decodes until more bytes are needed or an error, checking progress, prefixes and
/// re-encoding along the way.
fn drain(decoder: &mut Decoder, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.clone();
        let state = decoder.clone();
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => {
                let used = before.len() - buf.len();
                prop_assert!(used >= 2, "a packet is at least two bytes");
                for cut in 0..used {
                    let mut prefix = BytesMut::from(&before[..cut]);
                    let result = state.clone().decode(&mut prefix);
                    prop_assert!(
                        !matches!(result, Ok(Some(_))),
                        "a packet from {} of its {} bytes",
                        cut,
                        used
                    );
                    if let Ok(None) = result {
                        prop_assert_eq!(&prefix[..], &before[..cut], "Ok(None) touched the buffer");
                    }
                }
                re_encodes(&packet, decoder)?;
            }
            Ok(None) => {
                prop_assert_eq!(&buf[..], &before[..], "Ok(None) touched the buffer");
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Feeds `stream` in the given chunk sizes and collects every packet decoded.
fn decode_in_chunks(
    version: ProtocolVersion,
    stream: &[u8],
    chunks: &[usize],
) -> Result<Vec<Packet>, DecodeError> {
    let mut decoder = Decoder::client(version, MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut offset = 0;
    let mut sizes = chunks.iter().cycle();
    while offset < stream.len() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, stream.len() - offset);
        buf.extend_from_slice(&stream[offset..offset + size]);
        offset += size;
        while let Some(packet) = decoder.decode(&mut buf)? {
            packets.push(packet);
        }
    }
    assert!(buf.is_empty(), "bytes left after the last packet");
    Ok(packets)
}

/// A valid packet for `version`, encoded, with a few random byte edits.
fn mutated(version: ProtocolVersion) -> impl Strategy<Value = Vec<u8>> {
    (
        strategies::any_packet(version),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(move |(packet, edits)| {
            let mut buf = BytesMut::new();
            packet
                .encode(version, &mut buf)
                .expect("strategy packets encode");
            let mut bytes = buf.to_vec();
            for (index, value, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = index.index(bytes.len());
                match kind {
                    0 => bytes[at] = value,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, value),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6000))]

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for mut decoder in decoders() {
            drain(&mut decoder, &bytes)?;
        }
    }

    #[test]
    fn arbitrary_bytes_after_connect_never_panic(
        v5 in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V3_1_1 };
        let mut decoder = common::connected(version);
        drain(&mut decoder, &bytes)?;
    }

    #[test]
    fn mutated_v3_1_1_packets_never_panic(bytes in mutated(ProtocolVersion::V3_1_1)) {
        for mut decoder in decoders() {
            drain(&mut decoder, &bytes)?;
        }
        drain(&mut common::connected(ProtocolVersion::V3_1_1), &bytes)?;
    }

    #[test]
    fn mutated_v5_packets_never_panic(bytes in mutated(ProtocolVersion::V5)) {
        for mut decoder in decoders() {
            drain(&mut decoder, &bytes)?;
        }
        drain(&mut common::connected(ProtocolVersion::V5), &bytes)?;
    }

    #[test]
    fn valid_packets_are_never_reported_early(
        v5 in any::<bool>(),
        packet in strategies::any_packet(ProtocolVersion::V5),
        packet_v4 in strategies::any_packet(ProtocolVersion::V3_1_1),
    ) {
        let (version, packet) =
            if v5 { (ProtocolVersion::V5, packet) } else { (ProtocolVersion::V3_1_1, packet_v4) };
        let mut buf = BytesMut::new();
        packet.encode(version, &mut buf).expect("strategy packets encode");
        for cut in 0..buf.len() {
            let mut prefix = BytesMut::from(&buf[..cut]);
            let mut decoder = Decoder::client(version, MAX_PACKET_SIZE);
            prop_assert_eq!(decoder.decode(&mut prefix), Ok(None), "cut at {}", cut);
            prop_assert_eq!(prefix.len(), cut);
        }
    }

    #[test]
    fn chunked_v3_1_1_stream_decodes_to_the_same_packets(
        packets in prop::collection::vec(strategies::any_packet(ProtocolVersion::V3_1_1), 1..6),
        chunks in prop::collection::vec(1usize..40, 1..8),
    ) {
        let version = ProtocolVersion::V3_1_1;
        let mut stream = BytesMut::new();
        for packet in &packets {
            packet.encode(version, &mut stream).expect("strategy packets encode");
        }
        prop_assert_eq!(decode_in_chunks(version, &stream, &chunks), Ok(packets));
    }

    #[test]
    fn chunked_v5_stream_decodes_to_the_same_packets(
        packets in prop::collection::vec(strategies::any_packet(ProtocolVersion::V5), 1..6),
        chunks in prop::collection::vec(1usize..40, 1..8),
    ) {
        let version = ProtocolVersion::V5;
        let mut stream = BytesMut::new();
        for packet in &packets {
            packet.encode(version, &mut stream).expect("strategy packets encode");
        }
        prop_assert_eq!(decode_in_chunks(version, &stream, &chunks), Ok(packets));
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_decodes_connect_subscribe_publish() {
    let mut stream = common::hex(common::BASE_V4);
    stream.extend(common::hex("82 06 00 01 00 01 61 01 30 04 00 01 61 78"));
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut kinds = Vec::new();
    for byte in stream {
        buf.extend_from_slice(&[byte]);
        while let Some(packet) = decoder.decode(&mut buf).expect("valid stream") {
            kinds.push(packet.packet_type());
        }
    }
    use stratus_codec::PacketType::{Connect, Publish, Subscribe};
    assert_eq!(kinds, [Connect, Subscribe, Publish]);
}
