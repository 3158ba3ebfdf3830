//! v1 and v2 parsing tables: each header kind, and each way a header can be malformed.

use super::{addr, parsed, some_tlvs, v2, v2_addresses};
use crate::proxy::{MAX_V2_HEADER, ProxyError, ProxyHeader, parse, parse_with_limit};

#[test]
fn v1_tcp4_yields_addresses_and_consumes_only_the_line() {
    let buf = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 1883\r\n\x10\x0e";
    let (header, len) = parsed(buf);
    assert_eq!(header.source, addr("192.0.2.10:56324"));
    assert_eq!(header.destination, addr("198.51.100.1:1883"));
    assert_eq!(len, buf.len() - 2);
}

#[test]
fn v1_tcp6_yields_addresses() {
    let (header, _) = parsed(b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 65535 0\r\n");
    assert_eq!(header.source, addr("[2001:db8::1]:65535"));
    assert_eq!(header.destination, addr("[::ffff:10.0.0.1]:0"));
}

#[test]
fn v1_unknown_has_no_addresses() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    ] {
        assert_eq!(parsed(line), (ProxyHeader::UNKNOWN, line.len()));
    }
}

#[test]
fn v1_longest_header_is_accepted() {
    let (a, b) = (
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
    );
    let line = format!("PROXY TCP6 {a} {b} 65535 65535\r\n");
    assert_eq!(line.len(), 104);
    let mut unknown = b"PROXY UNKNOWN ".to_vec();
    unknown.resize(105, b'x');
    unknown.extend_from_slice(b"\r\n");
    assert_eq!(parsed(line.as_bytes()).1, 104);
    assert_eq!(parsed(&unknown).1, 107);
}

#[test]
fn v1_incomplete_line_needs_more_bytes() {
    for prefix in [
        &b"P"[..],
        b"PROX",
        b"PROXY ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
        b"PROXY UNKNOWN\r",
    ] {
        assert!(parse(prefix).unwrap().is_none(), "{prefix:?}");
    }
}

#[test]
fn v1_malformed_lines_are_refused() {
    let cases: &[&[u8]] = &[
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999999 2\r\n",
        b"PROXY TCP4 ::1 ::2 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 [::1] [::2] 1 2\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n",
        b"PROXY\r\n",
        b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PRoXY TCP4",
    ];
    for case in cases {
        assert!(
            matches!(parse(case), Err(ProxyError::V1Syntax(_))),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn v1_without_crlf_within_107_bytes_is_refused() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(107, b'x');
    assert!(parse(&line[..106]).unwrap().is_none());
    assert!(matches!(parse(&line), Err(ProxyError::V1TooLong)));
    // CR as the 107th byte: the LF would be the 108th.
    line[106] = b'\r';
    assert!(parse(&line).unwrap().is_none());
    line.push(b'\n');
    assert!(matches!(parse(&line), Err(ProxyError::V1TooLong)));
}

#[test]
fn bytes_that_start_no_header_are_refused() {
    for garbage in [
        &b"\x10\x0e\x00\x04MQTT"[..],
        b" PROXY TCP4",
        b"GET /mqtt HTTP/1.1\r\n",
        b"\x16\x03\x01",
    ] {
        assert!(
            matches!(parse(garbage), Err(ProxyError::Missing(_))),
            "{garbage:?}"
        );
    }
    assert!(parse(b"").unwrap().is_none());
}

#[test]
fn v2_proxy_ipv4_with_tlvs_yields_addresses() {
    let (src, dst) = (
        "203.0.113.7:40000".parse().unwrap(),
        "10.0.0.2:8883".parse().unwrap(),
    );
    let (fam, block) = v2_addresses(src, dst);
    let mut buf = v2(0x21, fam, &block, &some_tlvs());
    let len = buf.len();
    buf.extend_from_slice(b"\x16\x03\x01 ClientHello");
    assert_eq!(
        parsed(&buf),
        (
            ProxyHeader {
                source: Some(src),
                destination: Some(dst)
            },
            len
        )
    );
}

#[test]
fn v2_proxy_ipv6_with_tlvs_yields_addresses() {
    let (src, dst) = (
        "[2001:db8::7]:1".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    );
    let (fam, block) = v2_addresses(src, dst);
    let buf = v2(0x21, fam, &block, &some_tlvs());
    assert_eq!(
        parsed(&buf),
        (
            ProxyHeader {
                source: Some(src),
                destination: Some(dst)
            },
            buf.len()
        )
    );
}

#[test]
fn v2_local_has_no_addresses_whatever_the_block() {
    let (fam, block) = v2_addresses("[::1]:1".parse().unwrap(), "[::2]:2".parse().unwrap());
    for buf in [
        v2(0x20, 0x00, &[], &[]),
        v2(0x20, fam, &block, &some_tlvs()),
        v2(0x20, 0x11, &[1, 2], &[]),
    ] {
        assert_eq!(parsed(&buf), (ProxyHeader::UNKNOWN, buf.len()));
    }
}

#[test]
fn v2_unspec_and_unix_families_have_no_addresses() {
    let unix = v2(0x21, 0x31, &[b'/'; 216], &some_tlvs());
    let unspec = v2(0x21, 0x00, &[], &some_tlvs());
    assert_eq!(parsed(&unix), (ProxyHeader::UNKNOWN, unix.len()));
    assert_eq!(parsed(&unspec), (ProxyHeader::UNKNOWN, unspec.len()));
}

#[test]
fn v2_malformed_headers_are_refused() {
    let (fam, block) = v2_addresses("1.2.3.4:1".parse().unwrap(), "5.6.7.8:2".parse().unwrap());
    let good = v2(0x21, fam, &block, &[]);
    let with = |at: usize, byte: u8| {
        let mut b = good.clone();
        b[at] = byte;
        b
    };
    assert!(matches!(
        parse(&with(3, b'X')),
        Err(ProxyError::V2Signature)
    ));
    assert!(matches!(parse(&with(11, 0)), Err(ProxyError::V2Signature)));
    assert!(matches!(
        parse(&with(12, 0x11)),
        Err(ProxyError::V2Version(1))
    ));
    assert!(matches!(
        parse(&with(12, 0x31)),
        Err(ProxyError::V2Version(3))
    ));
    assert!(matches!(
        parse(&with(12, 0x22)),
        Err(ProxyError::V2Command(2))
    ));
    assert!(matches!(
        parse(&with(13, 0x41)),
        Err(ProxyError::V2Family(0x41))
    ));
    assert!(matches!(
        parse(&with(13, 0x13)),
        Err(ProxyError::V2Family(0x13))
    ));
    let short = v2(0x21, 0x11, &block[..11], &[]);
    assert!(matches!(
        parse(&short),
        Err(ProxyError::V2AddressTooShort {
            declared: 11,
            needed: 12
        })
    ));
    let short6 = v2(0x21, 0x21, &block, &[]);
    assert!(matches!(
        parse(&short6),
        Err(ProxyError::V2AddressTooShort {
            declared: 12,
            needed: 36
        })
    ));
}

#[test]
fn v2_tlv_overrunning_the_declared_length_is_refused() {
    let (fam, block) = v2_addresses("1.2.3.4:1".parse().unwrap(), "5.6.7.8:2".parse().unwrap());
    let mut tail = block.clone();
    tail.extend_from_slice(&[0x01, 0x00, 0x05, b'a', b'b']);
    assert!(matches!(
        parse(&v2(0x21, fam, &tail, &[])),
        Err(ProxyError::V2Tlv { offset: 28 })
    ));
    let mut partial = block;
    partial.extend_from_slice(&[0x04, 0x00, 0x00, 0x01, 0x00]);
    assert!(matches!(
        parse(&v2(0x21, fam, &partial, &[])),
        Err(ProxyError::V2Tlv { offset: 31 })
    ));
}

#[test]
fn v2_oversized_header_is_refused_before_it_arrives() {
    let mut head = v2(0x21, 0x11, &[], &[]);
    head[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    assert!(matches!(
        parse(&head),
        Err(ProxyError::V2TooLong {
            len: 65551,
            max: MAX_V2_HEADER
        })
    ));
    let ok = v2(0x21, 0x00, &[], &[(0xee, vec![0; 97])]);
    assert!(parse(&ok).unwrap().is_some());
    assert!(matches!(
        parse_with_limit(&ok, 64),
        Err(ProxyError::V2TooLong { len: 116, max: 64 })
    ));
}

#[test]
fn v2_truncated_header_needs_more_bytes() {
    let (fam, block) = v2_addresses("1.2.3.4:1".parse().unwrap(), "5.6.7.8:2".parse().unwrap());
    let full = v2(0x21, fam, &block, &some_tlvs());
    for cut in 1..full.len() {
        assert!(parse(&full[..cut]).unwrap().is_none(), "cut at {cut}");
    }
}
