//! One MQTT topic level as one NATS subject token, and back.
//!
//! The encoding is total and bijective. The empty string becomes the token `=`. Any other
//! string keeps its bytes from `[A-Za-z0-9_-]` and writes every other byte as `=` and two
//! uppercase hex digits, so the token never holds `.`, `*`, `>`, whitespace or anything else a
//! NATS subject gives a meaning to. Decoding accepts exactly the tokens encoding produces: one
//! string has one spelling, so a NATS-native publisher cannot create a second subject for a topic.

use super::SubjectError;

/// The escape byte, and on its own the token of the empty level.
const ESCAPE: u8 = b'=';
/// The token of the empty level.
const EMPTY_LEVEL: &str = "=";
/// Uppercase hex digits, indexed by nibble.
const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `byte` stands for itself in a token: `[A-Za-z0-9_-]`.
pub(super) fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Appends the token for `level` to `out`.
///
/// Total: any string has a token, including ones with `/` (which no topic level holds). The
/// token is never empty and holds only `[A-Za-z0-9_=-]`; it is at most three times as long as
/// `level`.
///
/// ```
/// let mut token = String::new();
/// stratus_topics::encode_level("spBv1.0", &mut token);
/// assert_eq!(token, "spBv1=2E0");
/// ```
pub fn encode_level(level: &str, out: &mut String) {
    if level.is_empty() {
        out.push_str(EMPTY_LEVEL);
        return;
    }
    out.reserve(level.len());
    for byte in level.bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push(char::from(ESCAPE));
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0F)]));
        }
    }
}

/// The string whose token is `token`: the inverse of [`encode_level`].
///
/// Rejects every token [`encode_level`] cannot produce: an empty token, a byte outside
/// `[A-Za-z0-9_=-]`, `=` not followed by two hex digits (which covers a lone `=` inside a
/// longer token), lowercase hex, an escaped byte from `[A-Za-z0-9_-]`, and escapes that decode
/// to something other than UTF-8.
pub fn decode_level(token: &str) -> Result<String, SubjectError> {
    if token.is_empty() {
        return Err(SubjectError::EmptyToken);
    }
    if token == EMPTY_LEVEL {
        return Ok(String::new());
    }
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        let offset = token.len() - rest.len();
        if is_plain(byte) {
            bytes.push(byte);
            rest = after;
            continue;
        }
        if byte != ESCAPE {
            return Err(SubjectError::UnescapedByte {
                token: token.to_owned(),
                offset,
                byte,
            });
        }
        let [high, low, tail @ ..] = after else {
            return Err(malformed(token, offset));
        };
        let (Some(high_value), Some(low_value)) = (hex_value(*high), hex_value(*low)) else {
            return Err(malformed(token, offset));
        };
        if high.is_ascii_lowercase() || low.is_ascii_lowercase() {
            return Err(SubjectError::LowercaseEscape {
                token: token.to_owned(),
                offset,
            });
        }
        let decoded = (high_value << 4) | low_value;
        if is_plain(decoded) {
            return Err(SubjectError::EscapedPlainByte {
                token: token.to_owned(),
                offset,
                byte: decoded,
            });
        }
        bytes.push(decoded);
        rest = tail;
    }
    String::from_utf8(bytes).map_err(|_| SubjectError::InvalidUtf8 {
        token: token.to_owned(),
    })
}

fn malformed(token: &str, offset: usize) -> SubjectError {
    SubjectError::MalformedEscape {
        token: token.to_owned(),
        offset,
    }
}

/// The value of a hex digit of either case; the caller rejects lowercase separately, so that
/// its error says what is wrong.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an error is the one a case expects.
    type Expectation = fn(&SubjectError) -> bool;

    fn encoded(level: &str) -> String {
        let mut token = String::new();
        encode_level(level, &mut token);
        token
    }

    #[test]
    fn plain_bytes_stay_and_everything_else_is_escaped() {
        let table = [
            ("", "="),
            ("=", "=3D"),
            ("a", "a"),
            ("Dev-17_x", "Dev-17_x"),
            ("spBv1.0", "spBv1=2E0"),
            ("*", "=2A"),
            (">", "=3E"),
            ("$SYS", "=24SYS"),
            ("a b", "a=20b"),
            ("%41", "=2541"),
            ("\u{1}", "=01"),
            ("é", "=C3=A9"),
            ("/", "=2F"),
        ];
        for (level, token) in table {
            assert_eq!(encoded(level), token, "{level:?}");
            assert_eq!(decode_level(token).as_deref(), Ok(level), "{token:?}");
        }
    }

    #[test]
    fn encoding_appends() {
        let mut out = String::from("m.");
        encode_level("a.b", &mut out);
        encode_level("", &mut out);
        assert_eq!(out, "m.a=2Eb=");
    }

    #[test]
    fn non_canonical_tokens_are_rejected_with_the_reason() {
        use SubjectError as E;
        let cases: [(&str, Expectation); 14] = [
            ("", |e| matches!(e, E::EmptyToken)),
            ("=2a", |e| matches!(e, E::LowercaseEscape { offset: 0, .. })),
            ("x=c3=a9", |e| {
                matches!(e, E::LowercaseEscape { offset: 1, .. })
            }),
            ("=4", |e| matches!(e, E::MalformedEscape { offset: 0, .. })),
            ("=G1", |e| matches!(e, E::MalformedEscape { offset: 0, .. })),
            ("a=", |e| matches!(e, E::MalformedEscape { offset: 1, .. })),
            ("==", |e| matches!(e, E::MalformedEscape { offset: 0, .. })),
            ("a=3D=", |e| {
                matches!(e, E::MalformedEscape { offset: 4, .. })
            }),
            ("=41", |e| {
                matches!(e, E::EscapedPlainByte { byte: b'A', .. })
            }),
            ("=2D", |e| {
                matches!(e, E::EscapedPlainByte { byte: b'-', .. })
            }),
            ("a.b", |e| matches!(e, E::UnescapedByte { byte: b'.', .. })),
            ("*", |e| matches!(e, E::UnescapedByte { byte: b'*', .. })),
            ("é", |e| matches!(e, E::UnescapedByte { offset: 0, .. })),
            ("=C3", |e| matches!(e, E::InvalidUtf8 { .. })),
        ];
        for (token, expected) in cases {
            match decode_level(token) {
                Err(e) => assert!(expected(&e), "{token:?}: {e}"),
                Ok(level) => panic!("{token:?} decoded to {level:?}"),
            }
        }
    }
}
