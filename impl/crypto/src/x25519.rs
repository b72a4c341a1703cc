//! TGDH over X25519 (as in ART): node secrets are X25519 scalars, blinded keys are X25519
//! public keys, and every DH output goes through a KDF before it becomes the parent's scalar.
//!
//! ```text
//!   leaf share   s = HKDF(entropy; salt "sgc tgdh share", info lp(who) ‖ nonce)
//!   blind        BK = X25519(s, 9)                      (32-byte u-coordinate)
//!   combine      s_parent = HKDF-SHA256(IKM = X25519(s, BK_sibling),
//!                                       salt "sgc tgdh v1", info "tgdh-x25519/node")
//! ```
//!
//! The raw X25519 output is a u-coordinate, not a uniform scalar, hence the KDF; as for the
//! finite-field groups it has no node position, epoch or group name, so the parent key is the
//! same from both children and survives subtree moves. X25519 clamps scalars on use.
//!
//! Validation rejects the points of small order (orders 1, 2, 4, 8 on the curve and its
//! twist), in all their encodings (high bit set, non-canonical `u ≥ 2^255 - 19`): with them
//! the DH output would be all-zero, independent of the own secret. `combine` checks
//! `was_contributory()` as well.
//!
//! About 61 µs per variable-base and 18 µs per fixed-base operation on the project machine
//! (`keys.md` §2.4): 6-11× faster than 256-bit exponents in `ffdhe2048`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::{CryptoError, Epoch, TgdhCrypto};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::bytes_serde;
use crate::kdf::{NODE_SALT, hkdf_32, push_length_prefixed};
use crate::secret::NodeSecret;
use crate::session::{SessionKey, derive_session_key, key_id};
use crate::sign::{Ed25519Signature, SignatureDirectory};

/// The HKDF salt of leaf shares.
const SHARE_SALT: &[u8] = b"sgc tgdh share";
/// The HKDF info of X25519 node secrets.
const NODE_INFO: &[u8] = b"tgdh-x25519/node";

/// The canonical u-coordinates (little-endian) of the small-order points of Curve25519 and its
/// twist: 0, 1, p - 1 and the two points of order 8 (the list libsodium rejects).
const SMALL_ORDER: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda,
        0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04,
        0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ],
];

/// The canonical form of a u-coordinate as X25519 reads it: bit 255 ignored, reduced mod
/// `p = 2^255 - 19` (only the 19 values `p ..= 2^255 - 1` change, to `0 ..= 18`).
fn canonical_u(bytes: &[u8; 32]) -> [u8; 32] {
    let mut u = *bytes;
    u[31] &= 0x7f;
    let at_least_p = u[0] >= 0xed && u[1..31].iter().all(|&b| b == 0xff) && u[31] == 0x7f;
    if at_least_p {
        let low = u[0] - 0xed;
        u = [0; 32];
        u[0] = low;
    }
    u
}

/// An X25519 blinded key (public key, 32-byte u-coordinate), serialized as a byte string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519Public([u8; 32]);

impl X25519Public {
    /// A blinded key from its encoding (not validated).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for X25519Public {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519Public(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for X25519Public {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        bytes_serde::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for X25519Public {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bytes_serde::deserialize_array(deserializer).map(Self)
    }
}

/// The X25519 TGDH provider, with a shared signature directory.
#[derive(Clone, Debug)]
pub struct X25519Provider {
    signatures: Arc<SignatureDirectory>,
}

impl X25519Provider {
    /// A provider that signs and verifies with `signatures`.
    pub fn new(signatures: Arc<SignatureDirectory>) -> Self {
        Self { signatures }
    }

    /// A provider with [`SignatureDirectory::deterministic`] members `m0` … `m{n-1}`, all of
    /// whose signing keys it holds. Tests and benchmarks only.
    pub fn deterministic(n: usize) -> Self {
        Self::new(Arc::new(SignatureDirectory::deterministic(n)))
    }

    /// The signature directory.
    pub fn signatures(&self) -> &Arc<SignatureDirectory> {
        &self.signatures
    }

    fn scalar(secret: &NodeSecret) -> StaticSecret {
        StaticSecret::from(*secret.expose())
    }
}

impl TgdhCrypto for X25519Provider {
    type Secret = NodeSecret;
    type Public = X25519Public;
    type Signature = Ed25519Signature;
    type SessionKey = SessionKey;

    fn new_share(&self, who: &MemberId, nonce: u64, entropy: &[u8; 32]) -> NodeSecret {
        let mut info = Vec::with_capacity(who.0.len() + 12);
        push_length_prefixed(&mut info, who.0.as_bytes());
        info.extend_from_slice(&nonce.to_be_bytes());
        NodeSecret::from_bytes(hkdf_32(entropy, SHARE_SALT, &info))
    }

    fn blind(&self, secret: &NodeSecret) -> X25519Public {
        X25519Public(PublicKey::from(&Self::scalar(secret)).to_bytes())
    }

    fn combine(&self, own: &NodeSecret, sibling: &X25519Public) -> Result<NodeSecret, CryptoError> {
        self.validate_public(sibling)?;
        let shared = Self::scalar(own).diffie_hellman(&PublicKey::from(sibling.0));
        if !shared.was_contributory() {
            return Err(CryptoError::NonContributory);
        }
        let dh = Zeroizing::new(shared.to_bytes());
        Ok(NodeSecret::from_bytes(hkdf_32(
            dh.as_slice(),
            NODE_SALT,
            NODE_INFO,
        )))
    }

    fn validate_public(&self, public: &X25519Public) -> Result<(), CryptoError> {
        if SMALL_ORDER.contains(&canonical_u(&public.0)) {
            return Err(CryptoError::InvalidPublic("small-order X25519 point"));
        }
        Ok(())
    }

    fn session_key(&self, root: &NodeSecret, group: &str, epoch: Epoch, label: &str) -> SessionKey {
        derive_session_key(root, group, epoch, label)
    }

    fn key_id(&self, key: &SessionKey) -> u64 {
        key_id(key)
    }

    fn sign(&self, signer: &MemberId, message: &[u8]) -> Result<Ed25519Signature, CryptoError> {
        self.signatures.sign(signer, message)
    }

    fn verify(
        &self,
        signer: &MemberId,
        message: &[u8],
        signature: &Ed25519Signature,
    ) -> Result<(), CryptoError> {
        self.signatures.verify(signer, message, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(p: &X25519Provider) -> NodeSecret {
        p.new_share(&MemberId("a".into()), 0, &rand::random())
    }

    /// Every encoding of the small-order points: canonical, high bit set, and `u + p` where
    /// that still fits in 255 bits.
    fn small_order_encodings() -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        for u in SMALL_ORDER {
            out.push(u);
            let mut high = u;
            high[31] |= 0x80;
            out.push(high);
            if u[1..].iter().all(|&b| b == 0) && u[0] < 19 {
                let mut plus_p = [0xff; 32];
                plus_p[0] = 0xed + u[0];
                plus_p[31] = 0x7f;
                out.push(plus_p);
                plus_p[31] = 0xff;
                out.push(plus_p);
            }
        }
        out
    }

    #[test]
    fn combine_is_symmetric() {
        let p = X25519Provider::deterministic(0);
        for _ in 0..16 {
            let (a, b) = (share(&p), share(&p));
            assert_eq!(
                p.combine(&a, &p.blind(&b)).unwrap(),
                p.combine(&b, &p.blind(&a)).unwrap()
            );
        }
    }

    #[test]
    fn every_small_order_encoding_is_rejected_and_would_be_non_contributory() {
        let p = X25519Provider::deterministic(0);
        let encodings = small_order_encodings();
        assert_eq!(encodings.len(), 5 * 2 + 2 * 2);
        for bytes in encodings {
            let public = X25519Public(bytes);
            assert!(
                matches!(p.validate_public(&public), Err(CryptoError::InvalidPublic(_))),
                "{public:?}"
            );
            assert!(p.combine(&share(&p), &public).is_err());
            // The list is right: the raw DH with these points is all-zero for any scalar.
            let raw = StaticSecret::from(rand::random::<[u8; 32]>()).diffie_hellman(&PublicKey::from(bytes));
            assert!(!raw.was_contributory(), "{public:?} is not of small order");
        }
    }

    #[test]
    fn all_zero_public_key_is_rejected() {
        let p = X25519Provider::deterministic(0);
        let zero = X25519Public([0; 32]);
        assert_eq!(
            p.validate_public(&zero),
            Err(CryptoError::InvalidPublic("small-order X25519 point"))
        );
        assert_eq!(
            p.combine(&share(&p), &zero),
            Err(CryptoError::InvalidPublic("small-order X25519 point"))
        );
    }

    #[test]
    fn honest_keys_validate() {
        let p = X25519Provider::deterministic(0);
        for _ in 0..32 {
            assert_eq!(p.validate_public(&p.blind(&share(&p))), Ok(()));
        }
        // The base point u = 9 is fine.
        let mut nine = [0; 32];
        nine[0] = 9;
        assert_eq!(p.validate_public(&X25519Public(nine)), Ok(()));
    }

    #[test]
    fn canonicalization_reduces_mod_p() {
        let mut p_plus_2 = [0xff; 32];
        p_plus_2[0] = 0xef;
        p_plus_2[31] = 0x7f;
        let mut two = [0; 32];
        two[0] = 2;
        assert_eq!(canonical_u(&p_plus_2), two);
        let mut below_p = [0xff; 32];
        below_p[0] = 0xec;
        below_p[31] = 0xff;
        assert_eq!(canonical_u(&below_p)[31], 0x7f);
    }

    #[test]
    fn public_serde_round_trips() {
        let p = X25519Provider::deterministic(0);
        let bk = p.blind(&share(&p));
        let encoded = postcard::to_allocvec(&bk).unwrap();
        assert_eq!(encoded.len(), 33);
        assert_eq!(postcard::from_bytes::<X25519Public>(&encoded).unwrap(), bk);
        let json = serde_json::to_string(&bk).unwrap();
        assert_eq!(serde_json::from_str::<X25519Public>(&json).unwrap(), bk);
    }
}
