//! Wire primitives (MQTT 5.0 section 1.5, MQTT 3.1.1 section 1.5 and 2.2.3): big-endian
//! integers, the Variable Byte Integer, UTF-8 strings, binary data and string pairs.
//!
//! Decoding goes through [`Reader`], a cursor over one packet's `Bytes`: every read checks the
//! length first, so no untrusted length can index out of range, and strings and binary data are
//! zero-copy slices of the packet. Encoding is split in two: the packet's length is measured
//! (and every limit checked) first, then the `put_*` writers, which cannot fail, fill a buffer
//! already reserved to the exact size.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::qos::PacketId;
use crate::version::ProtocolVersion;

/// The rule a field breaks when it runs past the end of its packet: the Remaining Length is the
/// number of bytes in the variable header and payload (5.0 section 2.1.4).
pub(crate) const TRUNCATED: &str = "section 2.1.4";

/// The largest string or binary field: its length prefix is a Two Byte Integer.
pub(crate) const MAX_FIELD_LEN: usize = u16::MAX as usize;

/// Parses a Variable Byte Integer at the start of `buf`.
///
/// `Ok(None)` means more bytes are needed. A fourth byte with its continuation bit set is
/// Malformed (at most four bytes), and so is an encoding longer than the minimum, i.e. one whose
/// last byte is zero after a continuation byte ([MQTT-1.5.5-1], applied to every version).
pub(crate) fn parse_vbi(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (index, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            if index > 0 && byte == 0 {
                return Err(DecodeError::malformed(
                    "variable byte integer is not minimally encoded",
                    "MQTT-1.5.5-1",
                ));
            }
            return Ok(Some((value, index + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::malformed(
            "variable byte integer is longer than four bytes",
            "section 1.5.5",
        ))
    } else {
        Ok(None)
    }
}

/// A read cursor over the variable header and payload of one packet.
#[derive(Debug)]
pub(crate) struct Reader {
    bytes: Bytes,
}

impl Reader {
    /// A reader over `bytes`.
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self { bytes }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// True when every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Fails unless every byte has been read: bytes after a packet's last field are Malformed.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::malformed(what, TRUNCATED))
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let head: [u8; N] = self
            .bytes
            .get(..N)
            .and_then(|slice| slice.try_into().ok())
            .ok_or(DecodeError::malformed(what, TRUNCATED))?;
        self.bytes.advance(N);
        Ok(head)
    }

    /// One byte; `what` names the field for the truncation error.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.array::<1>(what).map(|[byte]| byte)
    }

    /// A Two Byte Integer.
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array::<2>(what).map(u16::from_be_bytes)
    }

    /// A Four Byte Integer.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array::<4>(what).map(u32::from_be_bytes)
    }

    /// A Variable Byte Integer.
    pub(crate) fn vbi(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        match parse_vbi(&self.bytes)? {
            Some((value, len)) => {
                self.bytes.advance(len);
                Ok(value)
            }
            None => Err(DecodeError::malformed(what, TRUNCATED)),
        }
    }

    /// The next `len` bytes, zero-copy.
    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if len > self.bytes.len() {
            return Err(DecodeError::malformed(what, TRUNCATED));
        }
        Ok(self.bytes.split_to(len))
    }

    /// Everything not yet read (the PUBLISH payload), zero-copy.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.bytes)
    }

    /// Binary Data: a Two Byte Integer length and that many bytes.
    pub(crate) fn binary(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// A UTF-8 Encoded String: well-formed UTF-8 ([MQTT-1.5.4-1]) without U+0000
    /// ([MQTT-1.5.4-2]). A U+FEFF is kept as received ([MQTT-1.5.4-3]).
    pub(crate) fn string(&mut self, what: &'static str) -> Result<ByteString, DecodeError> {
        let raw = self.binary(what)?;
        utf8(raw)
    }

    /// A Packet Identifier, which is never zero ([MQTT-2.3.1-1] in 3.1.1, [MQTT-2.2.1-3] in 5.0).
    pub(crate) fn packet_id(&mut self, version: ProtocolVersion) -> Result<PacketId, DecodeError> {
        let raw = self.u16("packet identifier truncated")?;
        PacketId::new(raw).ok_or(DecodeError::protocol(
            "packet identifier is zero",
            if version.is_v5() {
                "MQTT-2.2.1-3"
            } else {
                "MQTT-2.3.1-1"
            },
        ))
    }
}

/// Checks raw string bytes and wraps them without copying.
pub(crate) fn utf8(raw: Bytes) -> Result<ByteString, DecodeError> {
    // In well-formed UTF-8 a zero byte can only be U+0000.
    if raw.contains(&0) {
        return Err(DecodeError::malformed(
            "string contains U+0000",
            "MQTT-1.5.4-2",
        ));
    }
    ByteString::try_from(raw)
        .map_err(|_| DecodeError::malformed("string is not well-formed UTF-8", "MQTT-1.5.4-1"))
}

/// Bytes a Variable Byte Integer holding `value` takes (values above the four-byte maximum are
/// rejected before anything is written, so they only need a size that keeps the sum growing).
pub(crate) const fn vbi_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The size of a whole packet whose Remaining Length is `remaining`.
pub(crate) const fn packet_len(remaining: usize) -> usize {
    1 + vbi_len(remaining) + remaining
}

/// Bytes a string or binary field takes, length prefix included; fails past 65,535 bytes.
pub(crate) fn field_len(len: usize, field: &'static str) -> Result<usize, EncodeError> {
    if len > MAX_FIELD_LEN {
        Err(EncodeError::FieldTooLong { field, len })
    } else {
        Ok(2 + len)
    }
}

/// Writes a Variable Byte Integer in the fewest bytes ([MQTT-1.5.5-1]); `value` was checked to
/// fit in four bytes.
pub(crate) fn put_vbi(buf: &mut BytesMut, value: usize) {
    let mut rest = value;
    loop {
        let digit = (rest % 128) as u8;
        rest /= 128;
        if rest == 0 {
            buf.put_u8(digit);
            return;
        }
        buf.put_u8(digit | 0x80);
    }
}

/// Writes Binary Data (or the bytes of a string) with its Two Byte Integer length; the length
/// was checked by [`field_len`].
pub(crate) fn put_binary(buf: &mut BytesMut, bytes: &[u8]) {
    debug_assert!(
        bytes.len() <= MAX_FIELD_LEN,
        "field length is checked while measuring"
    );
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

/// Writes a UTF-8 Encoded String.
pub(crate) fn put_str(buf: &mut BytesMut, value: &str) {
    put_binary(buf, value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: usize) -> Vec<u8> {
        let mut buf = BytesMut::new();
        put_vbi(&mut buf, value);
        buf.to_vec()
    }

    #[test]
    fn vbi_boundaries_encode_minimally_and_decode_back() {
        for (value, bytes) in [
            (0, vec![0x00]),
            (127, vec![0x7F]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xFF, 0x7F]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_151, vec![0xFF, 0xFF, 0x7F]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
            (268_435_455, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            assert_eq!(encoded(value), bytes, "encoding {value}");
            assert_eq!(vbi_len(value), bytes.len(), "length of {value}");
            let parsed = parse_vbi(&bytes).unwrap().unwrap();
            assert_eq!(parsed, (u32::try_from(value).unwrap(), bytes.len()));
        }
    }

    #[test]
    fn vbi_with_a_fifth_byte_is_malformed() {
        let err = parse_vbi(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Malformed {
                rule: "section 1.5.5",
                ..
            }
        ));
    }

    #[test]
    fn vbi_with_a_zero_last_byte_is_malformed() {
        for bytes in [
            &[0x80, 0x00][..],
            &[0x80, 0x80, 0x00],
            &[0xFF, 0x80, 0x80, 0x00],
        ] {
            let err = parse_vbi(bytes).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::Malformed {
                        rule: "MQTT-1.5.5-1",
                        ..
                    }
                ),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn vbi_cut_short_needs_more_bytes() {
        assert_eq!(parse_vbi(&[]).unwrap(), None);
        assert_eq!(parse_vbi(&[0x80]).unwrap(), None);
        assert_eq!(parse_vbi(&[0x80, 0x80, 0x80]).unwrap(), None);
    }

    #[test]
    fn string_keeps_a_byte_order_mark() {
        let mut reader = Reader::new(Bytes::from_static(&[0x00, 0x04, 0xEF, 0xBB, 0xBF, 0x61]));
        let value = reader.string("s").unwrap();
        assert_eq!(value.as_bytes().as_ref(), &[0xEF, 0xBB, 0xBF, 0x61]);
    }

    #[test]
    fn string_rejects_nul_surrogates_and_overlong_forms() {
        for (raw, rule) in [
            (&[0x00, 0x03, 0x61, 0x00, 0x62][..], "MQTT-1.5.4-2"),
            (&[0x00, 0x02, 0xC0, 0xAF], "MQTT-1.5.4-1"),
            (&[0x00, 0x03, 0xED, 0xA0, 0x80], "MQTT-1.5.4-1"),
        ] {
            let err = Reader::new(Bytes::copy_from_slice(raw))
                .string("s")
                .unwrap_err();
            assert!(
                matches!(err, DecodeError::Malformed { rule: r, .. } if r == rule),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn string_longer_than_the_packet_is_malformed() {
        let err = Reader::new(Bytes::from_static(&[0x00, 0x28, 0x4D, 0x51]))
            .string("s")
            .unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Malformed {
                rule: TRUNCATED,
                ..
            }
        ));
    }

    #[test]
    fn decoded_strings_share_the_packet_buffer() {
        let packet = Bytes::from_static(&[0x00, 0x02, 0x61, 0x62]);
        let start = packet.as_ptr() as usize;
        let value = Reader::new(packet).string("s").unwrap();
        assert_eq!(value.as_bytes().as_ptr() as usize, start + 2);
    }
}
