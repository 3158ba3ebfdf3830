//! PROXY protocol v1 (text) and v2 (binary), as sent by HAProxy, AWS NLB, nginx and others in
//! front of a listener: the header carries the client's real address.
//!
//! [`parse`] is a pure parser over the bytes received so far (`Ok(None)` means "need more").
//! [`read_header`] takes exactly the header off a socket and leaves everything after it (MQTT, or
//! a TLS ClientHello) unread for the next layer. A listener that expects the header refuses a
//! connection without a valid one; the caller uses [`ProxyHeader::source`] as the peer address
//! when present (`None` for v2 LOCAL, v1 UNKNOWN and non-IP families: keep the socket's peer).

mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest v1 header, CRLF included (HAProxy spec section 2.1).
pub(crate) const MAX_V1_HEADER: usize = 107;

/// Default cap on a whole v2 header (16-byte fixed part, addresses and TLVs). 216 bytes of
/// AF_UNIX addresses plus room for the usual TLVs (ALPN, authority, unique id, SSL details).
pub(crate) const MAX_V2_HEADER: usize = 536;

/// The addresses a PROXY header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// The original client address; `None` for v2 LOCAL, v1 UNKNOWN, AF_UNSPEC and AF_UNIX.
    pub(crate) source: Option<SocketAddr>,
    /// The address the client connected to (the proxy's listener), when known.
    pub(crate) destination: Option<SocketAddr>,
}

impl ProxyHeader {
    /// A header that says nothing about the addresses (v2 LOCAL, v1 UNKNOWN, ...).
    const UNKNOWN: Self = Self {
        source: None,
        destination: None,
    };
}

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The first byte starts neither a v1 (`PROXY `) nor a v2 header.
    #[error("no PROXY protocol header: the connection starts with byte {0:#04x}")]
    Missing(u8),
    /// A v1 header that breaks the syntax.
    #[error("malformed PROXY v1 header: {0}")]
    V1Syntax(&'static str),
    /// No CRLF within the first 107 bytes of a v1 header.
    #[error("PROXY v1 header has no CRLF within {MAX_V1_HEADER} bytes")]
    V1TooLong,
    /// The 12-byte v2 signature does not match.
    #[error("PROXY v2 signature mismatch")]
    V2Signature,
    /// The version nibble of a v2 header is not 2.
    #[error("PROXY v2 header declares version {0}, expected 2")]
    V2Version(u8),
    /// The command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("PROXY v2 header has unknown command {0:#x}")]
    V2Command(u8),
    /// Unknown address family or transport protocol.
    #[error("PROXY v2 header has unknown address family/transport byte {0:#04x}")]
    V2Family(u8),
    /// The declared length cannot hold the addresses of the declared family.
    #[error(
        "PROXY v2 address block of {declared} bytes is shorter than the {needed} bytes its family needs"
    )]
    V2AddressTooShort {
        /// Bytes after the fixed 16-byte part.
        declared: usize,
        /// Bytes the address family needs.
        needed: usize,
    },
    /// A TLV runs past the declared header length.
    #[error("PROXY v2 TLV at byte {offset} runs past the declared header length")]
    V2Tlv {
        /// Offset of the TLV from the start of the header.
        offset: usize,
    },
    /// The declared v2 length is over the cap.
    #[error("PROXY v2 header of {len} bytes exceeds the limit of {max} bytes")]
    V2TooLong {
        /// Declared total length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The peer closed the connection before the header was complete.
    #[error("connection closed after {0} bytes, before the PROXY header was complete")]
    Truncated(usize),
    /// The header did not arrive in time.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The socket failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Parses a v1 or v2 header at the start of `buf`, with the default v2 cap.
///
/// `Ok(None)`: `buf` is a valid beginning but the header is incomplete. `Ok(Some((header, n)))`:
/// the header occupies `buf[..n]`; what follows belongs to the next layer.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    parse_with_limit(buf, MAX_V2_HEADER)
}

/// [`parse`] with a cap of `max_v2` bytes on a whole v2 header (v1 is capped by the spec).
pub(crate) fn parse_with_limit(
    buf: &[u8],
    max_v2: usize,
) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => v1::parse(buf),
        Some(&b) if b == v2::SIGNATURE[0] => v2::parse(buf, max_v2),
        Some(&b) => Err(ProxyError::Missing(b)),
    }
}

/// Reads exactly one PROXY header from `stream`, leaving the bytes after it in the socket.
///
/// Refuses a connection that does not start with a valid header, that closes early, or whose
/// header is incomplete after `timeout`. At most [`MAX_V2_HEADER`] bytes are ever held.
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<ProxyHeader, ProxyError> {
    match tokio::time::timeout(timeout, read_exact_header(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::Timeout(timeout)),
    }
}

/// Peeks at the pending bytes and consumes only those that belong to the header: when the
/// header is incomplete, every byte seen so far is part of it, so it is safe to take them all
/// and wait for more (peeking again without consuming would spin on the same bytes).
async fn read_exact_header(stream: &mut TcpStream) -> Result<ProxyHeader, ProxyError> {
    let mut taken = [0u8; MAX_V2_HEADER];
    let mut have = 0;
    let mut peeked = [0u8; MAX_V2_HEADER];
    loop {
        let room = MAX_V2_HEADER - have;
        if room == 0 {
            return Err(ProxyError::V2TooLong {
                len: have,
                max: MAX_V2_HEADER,
            });
        }
        let n = stream.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(ProxyError::Truncated(have));
        }
        taken[have..have + n].copy_from_slice(&peeked[..n]);
        match parse(&taken[..have + n])? {
            Some((header, len)) => {
                // `len > have`: the previous round found the header incomplete within `have`.
                stream
                    .read_exact(&mut peeked[..len.saturating_sub(have)])
                    .await?;
                return Ok(header);
            }
            None => {
                stream.read_exact(&mut peeked[..n]).await?;
                have += n;
            }
        }
    }
}
