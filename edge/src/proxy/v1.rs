//! PROXY protocol v1: one ASCII line, `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or
//! `PROXY UNKNOWN[ <anything>]\r\n`, at most 107 bytes. Parsed strictly: single spaces, addresses
//! of the announced family, decimal ports without sign or leading zero.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{MAX_V1_HEADER, ProxyError, ProxyHeader};

/// Every v1 header starts with this.
const PREFIX: &[u8] = b"PROXY ";

/// Parses a v1 header at the start of `buf` (which starts with `P`).
pub(super) fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let start = &buf[..buf.len().min(PREFIX.len())];
    if !PREFIX.starts_with(start) {
        return Err(ProxyError::V1Syntax("does not start with \"PROXY \""));
    }
    let window = &buf[..buf.len().min(MAX_V1_HEADER)];
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() >= MAX_V1_HEADER {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    if window[end] == b'\n' {
        return Err(ProxyError::V1Syntax("line ends with LF without CR"));
    }
    match window.get(end + 1) {
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::V1Syntax("CR not followed by LF")),
        // The CR is the last byte of the window: either more is coming or the cap is reached.
        None if buf.len() > end + 1 => return Err(ProxyError::V1TooLong),
        None => return Ok(None),
    }
    let line = &window[..end];
    let Some(fields) = line.strip_prefix(PREFIX) else {
        return Err(ProxyError::V1Syntax("does not start with \"PROXY \""));
    };
    let header = parse_fields(fields)?;
    Ok(Some((header, end + 2)))
}

/// Parses what follows `PROXY ` up to (not including) the CRLF.
fn parse_fields(fields: &[u8]) -> Result<ProxyHeader, ProxyError> {
    if let Some(rest) = fields.strip_prefix(b"UNKNOWN") {
        // The receiver ignores whatever follows UNKNOWN (spec 2.1), but it must be a separate word.
        if rest.is_empty() || rest[0] == b' ' {
            return Ok(ProxyHeader::UNKNOWN);
        }
        return Err(ProxyError::V1Syntax(
            "unknown protocol (expected TCP4, TCP6 or UNKNOWN)",
        ));
    }
    let text = std::str::from_utf8(fields)
        .map_err(|_| ProxyError::V1Syntax("non-ASCII byte in the header"))?;
    let mut words = text.split(' ');
    let proto = words.next().unwrap_or_default();
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(ProxyError::V1Syntax(
            "expected exactly: protocol, source, destination, source port, destination port",
        ));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (ipv4(src)?.into(), ipv4(dst)?.into()),
        "TCP6" => (ipv6(src)?.into(), ipv6(dst)?.into()),
        _ => {
            return Err(ProxyError::V1Syntax(
                "unknown protocol (expected TCP4, TCP6 or UNKNOWN)",
            ));
        }
    };
    Ok(ProxyHeader {
        source: Some(SocketAddr::new(src, port(sport)?)),
        destination: Some(SocketAddr::new(dst, port(dport)?)),
    })
}

/// A dotted-quad IPv4 address (the standard parser refuses leading zeros and other forms).
fn ipv4(s: &str) -> Result<Ipv4Addr, ProxyError> {
    s.parse()
        .map_err(|_| ProxyError::V1Syntax("invalid IPv4 address for TCP4"))
}

/// An IPv6 address in any RFC 4291 text form, without brackets or zone.
fn ipv6(s: &str) -> Result<Ipv6Addr, ProxyError> {
    s.parse()
        .map_err(|_| ProxyError::V1Syntax("invalid IPv6 address for TCP6"))
}

/// A decimal port 0-65535 without sign or leading zero.
fn port(s: &str) -> Result<u16, ProxyError> {
    let digits_only = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return Err(ProxyError::V1Syntax("invalid port"));
    }
    s.parse()
        .map_err(|_| ProxyError::V1Syntax("port out of range"))
}
