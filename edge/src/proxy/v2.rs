//! PROXY protocol v2: a 16-byte binary prefix (12-byte signature, version and command, address
//! family and transport, big-endian length of the rest), the addresses of the family, then TLVs.
//! TLVs are checked to lie within the declared length and otherwise skipped.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{ProxyError, ProxyHeader};

/// The v2 signature.
pub(super) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Signature, version/command, family/transport and the 2-byte length.
const FIXED: usize = 16;

/// Address block sizes per family.
const INET_LEN: usize = 12;
const INET6_LEN: usize = 36;
const UNIX_LEN: usize = 216;

/// The command nibble.
const LOCAL: u8 = 0x0;
const PROXY: u8 = 0x1;

/// Parses a v2 header at the start of `buf`; `max` caps the whole header.
pub(super) fn parse(buf: &[u8], max: usize) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let sig_seen = buf.len().min(SIGNATURE.len());
    if buf[..sig_seen] != SIGNATURE[..sig_seen] {
        return Err(ProxyError::V2Signature);
    }
    let Some(fixed) = buf.get(..FIXED) else {
        return Ok(None);
    };
    // In bounds: `fixed` is 16 bytes long.
    let (ver_cmd, fam) = (fixed[12], fixed[13]);
    let declared = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let version = ver_cmd >> 4;
    if version != 2 {
        return Err(ProxyError::V2Version(version));
    }
    let command = ver_cmd & 0x0f;
    if command != LOCAL && command != PROXY {
        return Err(ProxyError::V2Command(command));
    }
    let family = fam >> 4;
    let transport = fam & 0x0f;
    if family > 3 || transport > 2 {
        return Err(ProxyError::V2Family(fam));
    }
    let total = FIXED + declared;
    if total > max {
        return Err(ProxyError::V2TooLong { len: total, max });
    }
    let Some(body) = buf.get(FIXED..total) else {
        return Ok(None);
    };
    if command == LOCAL {
        // The receiver uses the real connection endpoints and discards the block (spec 2.2).
        return Ok(Some((ProxyHeader::UNKNOWN, total)));
    }
    let needed = match family {
        1 => INET_LEN,
        2 => INET6_LEN,
        3 => UNIX_LEN,
        _ => 0,
    };
    let Some((addresses, tlvs)) = body.split_at_checked(needed) else {
        return Err(ProxyError::V2AddressTooShort { declared, needed });
    };
    check_tlvs(tlvs, FIXED + needed)?;
    let header = match family {
        1 => inet(addresses),
        2 => inet6(addresses),
        // AF_UNSPEC: the receiver ignores the addresses; AF_UNIX has no socket address.
        _ => ProxyHeader::UNKNOWN,
    };
    Ok(Some((header, total)))
}

/// Walks the TLVs (type, 2-byte length, value) and refuses one that overruns the block.
fn check_tlvs(mut tlvs: &[u8], mut offset: usize) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let len = match tlvs {
            [_, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return Err(ProxyError::V2Tlv { offset }),
        };
        let Some(rest) = tlvs.get(3 + len..) else {
            return Err(ProxyError::V2Tlv { offset });
        };
        tlvs = rest;
        offset += 3 + len;
    }
    Ok(())
}

/// AF_INET: source address, destination address, source port, destination port.
fn inet(a: &[u8]) -> ProxyHeader {
    let ip = |at: usize| Ipv4Addr::from(octets::<4>(a, at));
    endpoints(ip(0).into(), ip(4).into(), port(a, 8), port(a, 10))
}

/// AF_INET6: as AF_INET with 16-byte addresses.
fn inet6(a: &[u8]) -> ProxyHeader {
    let ip = |at: usize| Ipv6Addr::from(octets::<16>(a, at));
    endpoints(ip(0).into(), ip(16).into(), port(a, 32), port(a, 34))
}

fn endpoints(src: std::net::IpAddr, dst: std::net::IpAddr, sport: u16, dport: u16) -> ProxyHeader {
    ProxyHeader {
        source: Some(SocketAddr::new(src, sport)),
        destination: Some(SocketAddr::new(dst, dport)),
    }
}

/// `N` bytes of `a` from `at`; zeros past the end (callers pass a block of the family's size).
fn octets<const N: usize>(a: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = a.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

fn port(a: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(octets::<2>(a, at))
}
