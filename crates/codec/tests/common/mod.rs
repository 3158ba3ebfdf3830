//! Helpers shared by the integration tests: hex input, decoders in a known state, error
//! assertions, and (in `strategies`) proptest generators of packets valid for a version.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

pub(crate) mod strategies;

use bytes::BytesMut;
use stratus_codec::{DecodeError, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion, ReasonCode};

/// The checklist's base 3.1.1 CONNECT: client id `c1`, keep-alive 60, clean session.
pub(crate) const BASE_V4: &str = "10 0E 00 04 4D 51 54 54 04 02 00 3C 00 02 63 31";
/// The checklist's base 5.0 CONNECT: client id `c1`, keep-alive 60, clean start.
pub(crate) const BASE_V5: &str = "10 0F 00 04 4D 51 54 54 05 02 00 3C 00 00 02 63 31";

/// Parses space-separated hex bytes.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

/// Builds a packet from its first byte and body, with a minimal Remaining Length.
pub(crate) fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(vbi(body.len()));
    out.extend_from_slice(body);
    out
}

/// A Variable Byte Integer.
pub(crate) fn vbi(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let digit = (value % 128) as u8;
        value /= 128;
        if value == 0 {
            out.push(digit);
            return out;
        }
        out.push(digit | 0x80);
    }
}

/// A 5.0 CONNECT (client id `c1`) with the given connect flags, property list and payload
/// after the client identifier.
pub(crate) fn connect_v5(flags: u8, properties: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut body = hex("00 04 4D 51 54 54 05");
    body.push(flags);
    body.extend(hex("00 3C"));
    body.extend(vbi(properties.len()));
    body.extend_from_slice(properties);
    body.extend(hex("00 02 63 31"));
    body.extend_from_slice(rest);
    frame(0x10, &body)
}

/// A 3.1.1 CONNECT (client id `c1`) with the given connect flags and payload after the client
/// identifier.
pub(crate) fn connect_v4(flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = hex("00 04 4D 51 54 54 04");
    body.push(flags);
    body.extend(hex("00 3C 00 02 63 31"));
    body.extend_from_slice(rest);
    frame(0x10, &body)
}

/// A server decoder that has already decoded the base CONNECT of `version`.
pub(crate) fn connected(version: ProtocolVersion) -> Decoder {
    let mut decoder = Decoder::server(MAX_PACKET_SIZE);
    let base = match version {
        ProtocolVersion::V5 => BASE_V5,
        _ => BASE_V4,
    };
    let mut buf = BytesMut::from(&hex(base)[..]);
    let packet = decoder.decode(&mut buf).expect("base CONNECT decodes");
    assert!(matches!(packet, Some(Packet::Connect(_))));
    assert_eq!(decoder.version(), Some(version));
    decoder
}

/// Decodes `bytes` with a fresh server decoder (first packet).
pub(crate) fn first(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    Decoder::server(MAX_PACKET_SIZE).decode(&mut BytesMut::from(bytes))
}

/// Decodes `bytes` with a server decoder past the base CONNECT of `version`.
pub(crate) fn after_connect(
    version: ProtocolVersion,
    bytes: &[u8],
) -> Result<Option<Packet>, DecodeError> {
    connected(version).decode(&mut BytesMut::from(bytes))
}

/// Decodes `bytes` with a client decoder of `version`.
pub(crate) fn as_client(
    version: ProtocolVersion,
    bytes: &[u8],
) -> Result<Option<Packet>, DecodeError> {
    Decoder::client(version, MAX_PACKET_SIZE).decode(&mut BytesMut::from(bytes))
}

/// Asserts a Malformed Packet naming `rule`.
#[track_caller]
pub(crate) fn assert_malformed(result: Result<Option<Packet>, DecodeError>, rule: &str) {
    match result {
        Err(err @ DecodeError::Malformed { rule: got, .. }) => {
            assert_eq!(got, rule, "wrong rule in {err}");
            assert_eq!(err.reason_code(), ReasonCode::MalformedPacket);
        }
        other => panic!("expected Malformed [{rule}], got {other:?}"),
    }
}

/// Asserts a protocol error naming `rule` with reason `reason`.
#[track_caller]
pub(crate) fn assert_protocol(
    result: Result<Option<Packet>, DecodeError>,
    rule: &str,
    reason: ReasonCode,
) {
    match result {
        Err(
            err @ DecodeError::Protocol {
                rule: got,
                reason: got_reason,
                ..
            },
        ) => {
            assert_eq!(got, rule, "wrong rule in {err}");
            assert_eq!(got_reason, reason, "wrong reason in {err}");
            assert_eq!(err.reason_code(), reason);
        }
        other => panic!("expected Protocol error [{rule}] {reason:?}, got {other:?}"),
    }
}

/// Unwraps a decoded packet.
#[track_caller]
pub(crate) fn packet(result: Result<Option<Packet>, DecodeError>) -> Packet {
    match result {
        Ok(Some(packet)) => packet,
        other => panic!("expected a packet, got {other:?}"),
    }
}
