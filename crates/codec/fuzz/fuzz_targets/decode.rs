//! Fuzz target `decode`: arbitrary bytes go to every kind of decoder (server before and after a
//! CONNECT, client for each version, and one with a small packet-size limit). The decoder must
//! never panic, must always make progress, and every packet it returns must encode (with
//! `encoded_len` equal to the bytes written) to bytes that decode to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stratus_codec::{Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion};

/// The checklist's base CONNECTs, to reach the post-CONNECT server paths.
const BASE_V4: &[u8] = &[
    0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31,
];
const BASE_V5: &[u8] = &[
    0x10, 0x0F, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x02, 0x63,
    0x31,
];

fn re_encode(packet: &Packet, version: ProtocolVersion) {
    let version = match packet {
        Packet::Connect(connect) => connect.protocol,
        _ => version,
    };
    let mut buf = BytesMut::new();
    if let Err(err) = packet.encode(version, &mut buf) {
        panic!("decoded packet does not encode for {version}: {err}\n{packet:?}");
    }
    assert_eq!(packet.encoded_len(version), Ok(buf.len()), "encoded_len is not exact");
    let mut again = Decoder::client(version, MAX_PACKET_SIZE);
    assert_eq!(again.decode(&mut buf), Ok(Some(packet.clone())), "re-encoded packet differs");
    assert!(buf.is_empty(), "re-encoded packet left bytes over");
}

fn drain(mut decoder: Decoder, prefix: &[u8], data: &[u8]) {
    let mut buf = BytesMut::with_capacity(prefix.len() + data.len());
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(data);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => {
                assert!(buf.len() + 2 <= before, "a packet consumed fewer than two bytes");
                let version = decoder.version().expect("version known after a packet");
                re_encode(&packet, version);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                return;
            }
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    drain(Decoder::server(MAX_PACKET_SIZE), &[], data);
    drain(Decoder::server(MAX_PACKET_SIZE), BASE_V4, data);
    drain(Decoder::server(MAX_PACKET_SIZE), BASE_V5, data);
    drain(Decoder::server(64), BASE_V5, data);
    for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        drain(Decoder::client(version, MAX_PACKET_SIZE), &[], data);
    }
});
