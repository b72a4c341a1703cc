//! Known-answer tests. The expected values were computed independently of this crate (Python
//! `pow`, `hmac`, `hashlib`, and RFC 7748 §6.1 for X25519), so they pin both the arithmetic
//! and the exact KDF inputs (salts, infos, length prefixes, byte orders).

use sgc_crypto::{FfdhGroup, FfdhProvider, NodeSecret, X25519Provider, X25519Public};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::{Epoch, TgdhCrypto};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn leaf_share_kdf() {
    // HKDF-SHA256(IKM = 0x01^32, salt = "sgc tgdh share", info = lp("m0") ‖ u64 BE 5).
    let expected = unhex32("6342e0edfdfaa6863a17744f13f9b6727e0458f5e7b65e14b48ef3c6de403289");
    let ff = FfdhProvider::deterministic(FfdhGroup::Ffdhe2048, 0);
    let x = X25519Provider::deterministic(0);
    let who = MemberId("m0".into());
    assert_eq!(ff.new_share(&who, 5, &[1; 32]), NodeSecret::from_bytes(expected));
    assert_eq!(x.new_share(&who, 5, &[1; 32]), NodeSecret::from_bytes(expected));
}

#[test]
fn ffdhe2048_blind_combine_and_session_key() {
    let c = FfdhProvider::deterministic(FfdhGroup::Ffdhe2048, 0);
    let (a, b) = (
        NodeSecret::from_bytes([0x11; 32]),
        NodeSecret::from_bytes([0x22; 32]),
    );
    let bka = c.blind(&a);
    assert_eq!(bka.as_bytes().len(), 256);
    assert_eq!(
        hex(&Sha256::digest(bka.as_bytes())),
        "fa569bcaabef1d8f1f54479063612a15752ef5594fc9c4ff99cc74e552549a52"
    );
    let node = c.combine(&b, &bka).unwrap();
    let expected = unhex32("7390959b95bc628b2f2df7549cbe421aaac0179501e271d4966cee20fe374d63");
    assert_eq!(node, NodeSecret::from_bytes(expected));
    let key = c.session_key(&node, "g", Epoch { view: 1, refresh: 2 }, "data");
    assert_eq!(
        hex(key.as_bytes()),
        "d43e90b7940fc4513a66fe73aba308d4d4256b5db5feffad6db9cc9977b27125"
    );
    assert_eq!(c.key_id(&key), 0x1592_2f43_12f7_a830);
}

#[test]
fn x25519_rfc7748_blind_and_combine() {
    let c = X25519Provider::deterministic(0);
    let alice = NodeSecret::from_bytes(unhex32(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let bob_public = X25519Public::from_bytes(unhex32(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    ));
    assert_eq!(
        hex(c.blind(&alice).as_bytes()),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    // HKDF-SHA256(IKM = RFC 7748 shared secret, salt = "sgc tgdh v1", info = "tgdh-x25519/node").
    let expected = unhex32("ee9cc18db8b6a889fa3661ebcfffe8c42fcc6d776e81062b83b71d8312c4fb2d");
    assert_eq!(
        c.combine(&alice, &bob_public).unwrap(),
        NodeSecret::from_bytes(expected)
    );
}
