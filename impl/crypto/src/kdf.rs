//! HKDF-SHA256 helpers shared by the providers, and the length-prefixed encoding of KDF inputs.
//!
//! Every variable-length field that enters a KDF `info` is prefixed with its length (`u32`,
//! big-endian), so that distinct field tuples can never encode to the same bytes.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

/// The salt of every node-secret derivation: a fixed protocol label, nothing positional.
pub(crate) const NODE_SALT: &[u8] = b"sgc tgdh v1";

/// HKDF-SHA256 (extract with `salt`, expand with `info`) to 32 bytes.
pub(crate) fn hkdf_32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    // Invariant: 32 bytes is far below HKDF-SHA256's limit of 255 * 32 output bytes.
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .expect("32 bytes is a valid HKDF length");
    okm
}

/// HKDF-SHA256 to 32 bytes that are not all zero: on the (probability 2^-256) all-zero output,
/// re-derives with a counter appended to `info`. Deterministic, so both sides of a DH agree.
pub(crate) fn hkdf_32_nonzero(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = hkdf_32(ikm, salt, info);
    let mut counter: u8 = 0;
    while okm.iter().all(|&b| b == 0) {
        counter = counter.wrapping_add(1);
        let mut retry_info = info.to_vec();
        retry_info.push(counter);
        okm = hkdf_32(ikm, salt, &retry_info);
        retry_info.zeroize();
    }
    okm
}

/// Appends `bytes` to `out`, prefixed with its length as a big-endian `u32`.
pub(crate) fn push_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Invariant: names and labels are far below 4 GiB; saturating keeps this total anyway.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_test_case_1_prefix() {
        // RFC 5869 A.1: IKM = 0x0b * 22, salt = 0x00..0x0c, info = 0xf0..0xf9, L = 42.
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_32(&ikm, &salt, &info);
        let expected = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf";
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn length_prefix_separates_fields() {
        let mut a = Vec::new();
        push_length_prefixed(&mut a, b"ab");
        push_length_prefixed(&mut a, b"c");
        let mut b = Vec::new();
        push_length_prefixed(&mut b, b"a");
        push_length_prefixed(&mut b, b"bc");
        assert_ne!(a, b);
        assert_eq!(&a[..6], &[0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn nonzero_output_is_plain_hkdf_when_nonzero() {
        assert_eq!(hkdf_32_nonzero(b"k", b"s", b"i"), hkdf_32(b"k", b"s", b"i"));
    }
}
