//! [`client_key`]: a fixed-length, subject-safe stand-in for a client id, so that raw client ids
//! never appear in NATS subjects, consumer names or KV keys.

use sha2::{Digest, Sha256};

/// RFC 4648 base32 alphabet, lowercase.
const BASE32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Bytes of the digest kept: 128 bits, which makes collisions negligible at any client count.
const KEY_BYTES: usize = 16;

/// The key of a client within a tenant: the lowercase, unpadded RFC 4648 base32 form of the
/// first 128 bits of SHA-256(`tenant` ‖ 0x00 ‖ `client_id`). Always 26 characters from
/// `[a-z2-7]`, so valid as a NATS token and a KV key.
///
/// The 0x00 separator keeps (`ab`, `c`) and (`a`, `bc`) apart: tenant ids never contain it.
/// Records keyed this way should still hold the raw client id and compare it on load.
pub fn client_key(tenant: &str, client_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(tenant.as_bytes())
        .chain_update([0u8])
        .chain_update(client_id.as_bytes())
        .finalize();
    base32_lowercase(digest.get(..KEY_BYTES).unwrap_or_default())
}

/// RFC 4648 base32 of `bytes` in lowercase, without padding.
fn base32_lowercase(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    // Bits not yet written, right-aligned in `pending`; never more than 12 of them.
    let mut pending: u32 = 0;
    let mut pending_bits: u32 = 0;
    let mut push = |index: u32| {
        // `index` is masked to 5 bits, so the lookup is in range.
        let digit = BASE32_ALPHABET[(index & 0x1F) as usize];
        out.push(char::from(digit));
    };
    for &byte in bytes {
        pending = (pending << 8 | u32::from(byte)) & 0xFFF;
        pending_bits += 8;
        while pending_bits >= 5 {
            pending_bits -= 5;
            push(pending >> pending_bits);
        }
    }
    if pending_bits > 0 {
        push(pending << (5 - pending_bits));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_the_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base32_lowercase(input.as_bytes()), expected, "{input:?}");
        }
    }

    /// Expected values from Python's `hashlib` and `base64.b32encode`, computed independently.
    #[test]
    fn client_key_matches_reference_values() {
        assert_eq!(client_key("acme", "sensor-1"), "jxs3pgvl37fycm57ipfd2p5nw4");
        assert_eq!(client_key("", ""), "ny2axhh7wn5jrhffittlw6akfq");
    }

    #[test]
    fn client_key_separates_tenant_from_client_id() {
        let key = client_key("ab", "c");
        assert_eq!(key.len(), 26);
        assert!(key.bytes().all(|b| BASE32_ALPHABET.contains(&b)), "{key}");
        assert_ne!(key, client_key("a", "bc"));
        assert_ne!(key, client_key("c", "ab"));
    }
}
