//! PROXY protocol tests: header builders shared by the tables (`tables.rs`) and the socket tests
//! (`socket.rs`), and the property tests: no input panics the parser, and generated v1 and v2
//! headers parse back to their addresses when fed in arbitrary pieces.

mod socket;
mod tables;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::{ProxyHeader, parse};

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

fn parsed(buf: &[u8]) -> (ProxyHeader, usize) {
    parse(buf).unwrap().expect("a complete header")
}

fn v1_line(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    let (s, d) = (src.ip(), dst.ip());
    format!("PROXY {proto} {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
}

/// A v2 header: `ver_cmd`, `fam`, address block and TLVs (type, value).
fn v2(ver_cmd: u8, fam: u8, addresses: &[u8], tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = addresses.to_vec();
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[ver_cmd, fam]);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The AF_INET or AF_INET6 address block of `src` and `dst` (same family).
fn v2_addresses(src: SocketAddr, dst: SocketAddr) -> (u8, Vec<u8>) {
    let mut block = Vec::new();
    let fam = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            block.extend_from_slice(&s.octets());
            block.extend_from_slice(&d.octets());
            0x11
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            block.extend_from_slice(&s.octets());
            block.extend_from_slice(&d.octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    block.extend_from_slice(&src.port().to_be_bytes());
    block.extend_from_slice(&dst.port().to_be_bytes());
    (fam, block)
}

fn some_tlvs() -> Vec<(u8, Vec<u8>)> {
    vec![
        (0x01, b"mqtt".to_vec()),
        (0x02, b"a.example.com".to_vec()),
        (0x04, Vec::new()),
    ]
}

fn any_socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    let v4 = (
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<[u8; 4]>(),
        any::<u16>(),
    )
        .prop_map(|(a, p, b, q)| {
            (
                SocketAddr::new(Ipv4Addr::from(a).into(), p),
                SocketAddr::new(Ipv4Addr::from(b).into(), q),
            )
        });
    let v6 = (
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<u16>(),
    )
        .prop_map(|(a, p, b, q)| {
            (
                SocketAddr::new(Ipv6Addr::from(a).into(), p),
                SocketAddr::new(Ipv6Addr::from(b).into(), q),
            )
        });
    prop_oneof![v4, v6]
}

/// Feeds `bytes` in chunks of the given sizes: `Ok(None)` until `len` bytes are in, then the header.
fn feed_in_chunks(bytes: &[u8], chunks: &[usize], len: usize) -> ProxyHeader {
    let mut have = 0;
    for step in chunks.iter().cycle() {
        have = (have + step).min(bytes.len());
        match parse(&bytes[..have]).unwrap() {
            None => assert!(have < len, "incomplete at {have} of {len}"),
            Some((header, n)) => {
                assert!(have >= len);
                assert_eq!(n, len);
                return header;
            }
        }
    }
    unreachable!("cycle never ends")
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = parse(&bytes);
        let mut v2_prefixed = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2_prefixed.extend_from_slice(&bytes);
        let _ = parse(&v2_prefixed);
        let mut v1_prefixed = b"PROXY ".to_vec();
        v1_prefixed.extend_from_slice(&bytes);
        let _ = parse(&v1_prefixed);
    }

    #[test]
    fn generated_v1_headers_parse_back_in_any_split(
        (src, dst) in any_socket_pair(),
        chunks in prop::collection::vec(1usize..20, 1..8),
        trailing in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = v1_line(src, dst);
        let len = bytes.len();
        bytes.extend_from_slice(&trailing);
        let header = feed_in_chunks(&bytes, &chunks, len);
        prop_assert_eq!(header, ProxyHeader { source: Some(src), destination: Some(dst) });
    }

    #[test]
    fn generated_v2_headers_parse_back_in_any_split(
        (src, dst) in any_socket_pair(),
        local in any::<bool>(),
        tlvs in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 0..8),
        chunks in prop::collection::vec(1usize..40, 1..8),
        trailing in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let (fam, block) = v2_addresses(src, dst);
        let mut bytes = v2(if local { 0x20 } else { 0x21 }, fam, &block, &tlvs);
        let len = bytes.len();
        bytes.extend_from_slice(&trailing);
        let header = feed_in_chunks(&bytes, &chunks, len);
        let expected = if local {
            ProxyHeader::UNKNOWN
        } else {
            ProxyHeader { source: Some(src), destination: Some(dst) }
        };
        prop_assert_eq!(header, expected);
    }
}
