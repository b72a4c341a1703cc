//! TGDH over a finite-field safe-prime group ([`FfdhGroup`]) with 256-bit exponents.
//!
//! ```text
//!   leaf share   x = HKDF(entropy; salt "sgc tgdh share", info lp(who) ‖ nonce)    (256 bits)
//!   blind        BK = g^x mod p                        (fixed-length big-endian bytes)
//!   combine      K = KDF(BK_sibling^x mod p) = KDF(g^(x_l·x_r))                 (symmetric)
//!   KDF          HKDF-SHA256(IKM = K as len(p) bytes, salt "sgc tgdh v1", info "tgdh/node")
//! ```
//!
//! The node KDF deliberately has no node position, epoch or group name: subtrees move in the
//! tree and keep their keys across epochs, and both children must derive the same parent key.
//! Hashing every DH result to a 256-bit exponent (`keys.md` §2.1, "hash to exponent") makes
//! each exponentiation about 8× cheaper than full-length exponents; RFC 7919 §5.2 asks for at
//! least 225-bit exponents for `ffdhe2048`.
//!
//! Every received blinded key is validated: `1 < BK < p - 1` and the Legendre symbol
//! `(BK|p) = +1` (membership in the order-`q` subgroup of the safe prime).
//!
//! **Arithmetic** ([`crate::monty`], private): Montgomery multiplication on fixed-size `u64`
//! limbs; `blind` uses a per-group fixed-base table for `g` (built once, on first use, about
//! 0.7 MB for 2048-bit groups), `combine` a sliding-window exponentiation. Both are
//! cross-checked against num-bigint's `modpow` in the tests.
//!
//! **Side channels**: neither this exponentiation nor num-bigint's `modpow` is constant time
//! (table lookups indexed by secret exponent digits, exponent-dependent control flow), and
//! the `BigUint` temporaries (exponents, DH results) cannot be zeroized. The byte encodings of
//! secrets and DH results are zeroized. A constant-time backend (crypto-bigint) can replace
//! this one behind the same trait.

use std::fmt;
use std::sync::Arc;

use num_bigint::BigUint;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::{CryptoError, Epoch, TgdhCrypto};
use zeroize::Zeroizing;

use crate::bytes_serde;
use crate::groups::{FfdhGroup, FfdhParams};
use crate::jacobi::jacobi;
use crate::kdf::{NODE_SALT, hkdf_32_nonzero, push_length_prefixed};
use crate::monty::Arith;
use crate::secret::NodeSecret;
use crate::session::{SessionKey, derive_session_key, key_id};
use crate::sign::{Ed25519Signature, SignatureDirectory};

/// The HKDF salt of leaf shares.
const SHARE_SALT: &[u8] = b"sgc tgdh share";
/// The HKDF info of finite-field node secrets.
const NODE_INFO: &[u8] = b"tgdh/node";

/// A blinded key `g^x mod p`: a group element as fixed-length (`len(p)`) big-endian bytes,
/// serialized as a byte string. Deserialization accepts any bytes;
/// [`TgdhCrypto::validate_public`] checks length, range and subgroup membership.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FfdhPublic(Vec<u8>);

impl FfdhPublic {
    /// A blinded key from its encoding (not validated).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The big-endian encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The group element as a number.
    pub fn to_biguint(&self) -> BigUint {
        BigUint::from_bytes_be(&self.0)
    }
}

impl fmt::Debug for FfdhPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FfdhPublic({} bytes, ", self.0.len())?;
        for b in self.0.iter().rev().take(6).rev() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for FfdhPublic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        bytes_serde::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for FfdhPublic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bytes_serde::deserialize_vec(deserializer).map(Self)
    }
}

/// The finite-field TGDH provider: a group and a shared signature directory.
#[derive(Clone, Debug)]
pub struct FfdhProvider {
    params: Arc<FfdhParams>,
    signatures: Arc<SignatureDirectory>,
}

impl FfdhProvider {
    /// A provider for `group` that signs and verifies with `signatures`.
    pub fn new(group: FfdhGroup, signatures: Arc<SignatureDirectory>) -> Self {
        Self {
            params: Arc::new(group.params()),
            signatures,
        }
    }

    /// A provider with [`SignatureDirectory::deterministic`] members `m0` … `m{n-1}`, all of
    /// whose signing keys it holds. Tests and benchmarks only.
    pub fn deterministic(group: FfdhGroup, n: usize) -> Self {
        Self::new(group, Arc::new(SignatureDirectory::deterministic(n)))
    }

    /// The same group with another signature directory (e.g. one member's restricted one).
    pub fn with_signatures(&self, signatures: Arc<SignatureDirectory>) -> Self {
        Self {
            params: Arc::clone(&self.params),
            signatures,
        }
    }

    /// The group.
    pub fn group(&self) -> FfdhGroup {
        self.params.group
    }

    /// The group parameters.
    pub fn params(&self) -> &FfdhParams {
        &self.params
    }

    /// The signature directory.
    pub fn signatures(&self) -> &Arc<SignatureDirectory> {
        &self.signatures
    }

    /// The exponent of a node secret (256-bit big-endian, nonzero by construction).
    fn exponent(secret: &NodeSecret) -> BigUint {
        BigUint::from_bytes_be(secret.expose())
    }

    /// Parses and validates a blinded key.
    fn element(&self, public: &FfdhPublic) -> Result<BigUint, CryptoError> {
        if public.0.len() != self.params.byte_len {
            return Err(CryptoError::InvalidPublic("wrong length for the group"));
        }
        let x = public.to_biguint();
        if x <= BigUint::from(1u32) || x >= self.params.p_minus_1 {
            return Err(CryptoError::InvalidPublic(
                "out of range (must be 1 < BK < p - 1)",
            ));
        }
        if jacobi(&x, &self.params.p) != 1 {
            return Err(CryptoError::InvalidPublic("not in the prime-order subgroup"));
        }
        Ok(x)
    }
}

impl TgdhCrypto for FfdhProvider {
    type Secret = NodeSecret;
    type Public = FfdhPublic;
    type Signature = Ed25519Signature;
    type SessionKey = SessionKey;

    fn new_share(&self, who: &MemberId, nonce: u64, entropy: &[u8; 32]) -> NodeSecret {
        let mut info = Vec::with_capacity(who.0.len() + 12);
        push_length_prefixed(&mut info, who.0.as_bytes());
        info.extend_from_slice(&nonce.to_be_bytes());
        NodeSecret::from_bytes(hkdf_32_nonzero(entropy, SHARE_SALT, &info))
    }

    fn blind(&self, secret: &NodeSecret) -> FfdhPublic {
        let bk = Arith::of(self.params.group).pow_g(&Self::exponent(secret));
        FfdhPublic(self.params.encode(&bk))
    }

    fn combine(&self, own: &NodeSecret, sibling: &FfdhPublic) -> Result<NodeSecret, CryptoError> {
        let base = self.element(sibling)?;
        let shared = Arith::of(self.params.group).pow(&base, &Self::exponent(own));
        let encoded = Zeroizing::new(self.params.encode(&shared));
        Ok(NodeSecret::from_bytes(hkdf_32_nonzero(
            &encoded, NODE_SALT, NODE_INFO,
        )))
    }

    fn validate_public(&self, public: &FfdhPublic) -> Result<(), CryptoError> {
        self.element(public).map(drop)
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

    fn provider() -> FfdhProvider {
        FfdhProvider::deterministic(FfdhGroup::Ffdhe2048, 2)
    }

    fn share(p: &FfdhProvider, who: &str) -> NodeSecret {
        p.new_share(&MemberId(who.to_owned()), 0, &rand::random())
    }

    fn public_of(p: &FfdhProvider, x: &BigUint) -> FfdhPublic {
        FfdhPublic(p.params.encode(x))
    }

    #[test]
    fn combine_is_symmetric_in_every_group() {
        for group in FfdhGroup::ALL {
            let p = FfdhProvider::deterministic(group, 0);
            let (a, b) = (share(&p, "a"), share(&p, "b"));
            let (ba, bb) = (p.blind(&a), p.blind(&b));
            assert_eq!(ba.as_bytes().len(), p.params().byte_len);
            assert_eq!(p.validate_public(&ba), Ok(()));
            assert_eq!(
                p.combine(&a, &bb).unwrap(),
                p.combine(&b, &ba).unwrap(),
                "{group}"
            );
            assert_ne!(p.combine(&a, &bb).unwrap(), a);
        }
    }

    #[test]
    fn shares_depend_on_entropy_member_and_nonce() {
        let p = provider();
        let (m, n) = (MemberId("m".into()), MemberId("n".into()));
        let e = [3u8; 32];
        let base = p.new_share(&m, 0, &e);
        assert_eq!(base, p.new_share(&m, 0, &e));
        assert_ne!(base, p.new_share(&n, 0, &e));
        assert_ne!(base, p.new_share(&m, 1, &e));
        assert_ne!(base, p.new_share(&m, 0, &[4u8; 32]));
    }

    #[test]
    fn validation_rejects_bad_elements() {
        let p = provider();
        let params = p.params().clone();
        let invalid = |x: &FfdhPublic| matches!(p.validate_public(x), Err(CryptoError::InvalidPublic(_)));
        assert!(invalid(&public_of(&p, &BigUint::from(0u32))));
        assert!(invalid(&public_of(&p, &BigUint::from(1u32))));
        assert!(invalid(&public_of(&p, &params.p_minus_1)));
        assert!(invalid(&public_of(&p, &params.p)));
        assert!(invalid(&public_of(&p, &(&params.p + 5u32))));
        assert!(invalid(&FfdhPublic(vec![0xff; params.byte_len])));
        // A quadratic non-residue: -g = p - 2 ((−1|p) = −1 as p ≡ 3 mod 4).
        let non_residue = &params.p - 2u32;
        assert_eq!(jacobi(&non_residue, &params.p), -1);
        assert!(invalid(&public_of(&p, &non_residue)));
        // Wrong lengths, even for a valid value.
        let good = p.blind(&share(&p, "a"));
        assert_eq!(p.validate_public(&good), Ok(()));
        let mut long = vec![0u8];
        long.extend_from_slice(good.as_bytes());
        assert!(invalid(&FfdhPublic(long)));
        assert!(invalid(&FfdhPublic(good.as_bytes()[1..].to_vec())));
        assert!(invalid(&FfdhPublic(Vec::new())));
        // combine refuses what validation refuses.
        assert!(
            p.combine(&share(&p, "a"), &public_of(&p, &BigUint::from(1u32)))
                .is_err()
        );
        // g itself and g^2 are fine.
        assert_eq!(p.validate_public(&public_of(&p, &params.g)), Ok(()));
        assert_eq!(p.validate_public(&public_of(&p, &BigUint::from(4u32))), Ok(()));
    }

    #[test]
    fn public_serde_round_trips_as_fixed_length_bytes() {
        let p = provider();
        let bk = p.blind(&share(&p, "a"));
        let encoded = postcard::to_allocvec(&bk).unwrap();
        assert_eq!(encoded.len(), 2 + 256); // varint 256, then the bytes
        assert_eq!(postcard::from_bytes::<FfdhPublic>(&encoded).unwrap(), bk);
        let json = serde_json::to_string(&bk).unwrap();
        assert_eq!(serde_json::from_str::<FfdhPublic>(&json).unwrap(), bk);
    }

    #[test]
    fn secrets_are_redacted() {
        let p = provider();
        let s = share(&p, "a");
        let shown = format!("{s:?}");
        assert_eq!(shown, "Secret(***)");
        let hex: String = s.expose().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!format!("{s:#?}").contains(&hex[..8]));
    }

    #[test]
    fn provider_signs_with_its_directory() {
        let p = provider();
        let m0 = MemberId("m0".into());
        let sig = p.sign(&m0, b"token").unwrap();
        assert_eq!(p.verify(&m0, b"token", &sig), Ok(()));
        assert_eq!(
            p.verify(&m0, b"tokem", &sig),
            Err(CryptoError::BadSignature(m0.clone()))
        );
    }
}
