//! Ed25519 signatures on protocol messages, and the key directory both providers share.
//!
//! **Why Ed25519** (measured on the project's build machine, `keys.md` §4.2): sign 20 µs,
//! `verify_strict` 44 µs, 32-byte keys and 64-byte signatures, deterministic signing (no
//! per-signature randomness to get wrong). RSA-2048, the Secure Spread paper's choice, signs in
//! 2.7 ms (verify 73 µs): with one signature per TGDH broadcast, RSA signing alone would cost
//! more than the X25519 tree's whole key computation. Verification uses
//! [`VerifyingKey::verify_strict`] (rejects small-order keys and non-canonical encodings).
//!
//! A [`SignatureDirectory`] holds the signing keys of the identities this process speaks for
//! (usually one; a test or a local cluster holds many) and the verifying keys of every member.
//!
//! Deterministic keys ([`Identity::from_seed`], [`SignatureDirectory::deterministic`]) are for
//! tests and local clusters only: anyone who knows the seed can sign.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::CryptoError;
use zeroize::Zeroizing;

use crate::bytes_serde;
use crate::kdf::hkdf_32;

/// The seed of [`SignatureDirectory::deterministic`]: public, so its keys are test keys.
pub const TEST_SEED: [u8; 32] = *b"sgc deterministic test key seed!";

/// An Ed25519 signature (64 bytes), serialized as a byte string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ed25519Signature([u8; 64]);

impl Ed25519Signature {
    /// The signature bytes (`R ‖ s`).
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// A signature from its bytes (checked only when verified).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Ed25519Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for Ed25519Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        bytes_serde::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Ed25519Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bytes_serde::deserialize_array(deserializer).map(Self)
    }
}

/// A member's signing identity: its id and Ed25519 signing key (zeroized on drop).
#[derive(Clone)]
pub struct Identity {
    id: MemberId,
    key: SigningKey,
}

impl Identity {
    /// A fresh identity with a signing key from OS randomness (`rand::rng()`).
    pub fn generate(id: MemberId) -> Self {
        let secret = Zeroizing::new(rand::random::<[u8; 32]>());
        Self {
            key: SigningKey::from_bytes(&secret),
            id,
        }
    }

    /// A deterministic identity: the signing key is `HKDF-SHA256(seed, salt = "sgc ed25519
    /// seed", info = id)`, so one seed gives every member name its own key. **Tests and local
    /// clusters only**: whoever knows the seed can sign as this member.
    pub fn from_seed(id: MemberId, seed: [u8; 32]) -> Self {
        let secret = Zeroizing::new(hkdf_32(&seed, b"sgc ed25519 seed", id.0.as_bytes()));
        Self {
            key: SigningKey::from_bytes(&secret),
            id,
        }
    }

    /// An identity from an existing Ed25519 secret key (32 bytes, e.g. read from a key file).
    pub fn from_secret_bytes(id: MemberId, secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
            id,
        }
    }

    /// The member this identity signs for.
    pub fn id(&self) -> &MemberId {
        &self.id
    }

    /// The public verifying key, to publish in other members' directories.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id)
            .field("key", &"***")
            .finish()
    }
}

/// Signing keys of the identities this process speaks for, and verifying keys of all members.
#[derive(Clone, Default)]
pub struct SignatureDirectory {
    signing: BTreeMap<MemberId, SigningKey>,
    verifying: BTreeMap<MemberId, VerifyingKey>,
}

impl SignatureDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory with `n` deterministic members `m0` … `m{n-1}` (seeded by [`TEST_SEED`]),
    /// holding all of their signing keys: one process can play every member. Tests and
    /// benchmarks only.
    pub fn deterministic(n: usize) -> Self {
        let mut dir = Self::new();
        for i in 0..n {
            dir.add_identity(Identity::from_seed(MemberId(format!("m{i}")), TEST_SEED));
        }
        dir
    }

    /// Adds an identity this process may sign for (and its verifying key).
    pub fn add_identity(&mut self, identity: Identity) {
        self.verifying
            .insert(identity.id.clone(), identity.key.verifying_key());
        self.signing.insert(identity.id.clone(), identity.key.clone());
    }

    /// Adds (or replaces) the verifying key of a member.
    pub fn add_verifying_key(&mut self, id: MemberId, key: VerifyingKey) {
        self.verifying.insert(id, key);
    }

    /// Adds a member's verifying key from its 32-byte encoding; rejects an invalid point.
    pub fn add_verifying_key_bytes(&mut self, id: MemberId, bytes: &[u8; 32]) -> Result<(), CryptoError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| CryptoError::InvalidPublic("not an Ed25519 public key"))?;
        self.add_verifying_key(id, key);
        Ok(())
    }

    /// The verifying key of `id`, if known.
    pub fn verifying_key(&self, id: &MemberId) -> Option<&VerifyingKey> {
        self.verifying.get(id)
    }

    /// The members this directory can sign for.
    pub fn signers(&self) -> impl Iterator<Item = &MemberId> {
        self.signing.keys()
    }

    /// The members whose verifying keys are known.
    pub fn members(&self) -> impl Iterator<Item = &MemberId> {
        self.verifying.keys()
    }

    /// A copy holding every verifying key but only `keep`'s signing key: the directory one
    /// member of a [`Self::deterministic`] cluster would have.
    pub fn restricted_to(&self, keep: &MemberId) -> Self {
        let signing = self.signing.iter().filter(|(id, _)| *id == keep);
        Self {
            signing: signing.map(|(id, key)| (id.clone(), key.clone())).collect(),
            verifying: self.verifying.clone(),
        }
    }

    /// Signs `message` as `signer`; [`CryptoError::UnknownSigner`] without its signing key.
    pub fn sign(&self, signer: &MemberId, message: &[u8]) -> Result<Ed25519Signature, CryptoError> {
        let key = self
            .signing
            .get(signer)
            .ok_or_else(|| CryptoError::UnknownSigner(signer.clone()))?;
        Ok(Ed25519Signature(key.sign(message).to_bytes()))
    }

    /// Verifies (strictly) that `signer` signed `message`.
    pub fn verify(
        &self,
        signer: &MemberId,
        message: &[u8],
        signature: &Ed25519Signature,
    ) -> Result<(), CryptoError> {
        let key = self
            .verifying
            .get(signer)
            .ok_or_else(|| CryptoError::UnknownSigner(signer.clone()))?;
        let signature = Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature)
            .map_err(|_| CryptoError::BadSignature(signer.clone()))
    }
}

impl fmt::Debug for SignatureDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureDirectory")
            .field("signers", &self.signing.keys().collect::<Vec<_>>())
            .field("members", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str) -> MemberId {
        MemberId(name.to_owned())
    }

    #[test]
    fn sign_and_verify() {
        let dir = SignatureDirectory::deterministic(3);
        let sig = dir.sign(&m("m1"), b"hello").unwrap();
        assert_eq!(dir.verify(&m("m1"), b"hello", &sig), Ok(()));
    }

    #[test]
    fn tampered_wrong_signer_and_unknown_signer_are_typed_errors() {
        let dir = SignatureDirectory::deterministic(3);
        let sig = dir.sign(&m("m1"), b"hello").unwrap();
        assert_eq!(
            dir.verify(&m("m1"), b"hellO", &sig),
            Err(CryptoError::BadSignature(m("m1")))
        );
        assert_eq!(
            dir.verify(&m("m2"), b"hello", &sig),
            Err(CryptoError::BadSignature(m("m2")))
        );
        assert_eq!(
            dir.verify(&m("m9"), b"hello", &sig),
            Err(CryptoError::UnknownSigner(m("m9")))
        );
        assert_eq!(
            dir.sign(&m("m9"), b"hello"),
            Err(CryptoError::UnknownSigner(m("m9")))
        );
        let mut bytes = sig.to_bytes();
        bytes[40] ^= 1;
        let bad = Ed25519Signature::from_bytes(bytes);
        assert_eq!(
            dir.verify(&m("m1"), b"hello", &bad),
            Err(CryptoError::BadSignature(m("m1")))
        );
    }

    #[test]
    fn restricted_directory_signs_only_for_its_member() {
        let all = SignatureDirectory::deterministic(3);
        let mine = all.restricted_to(&m("m0"));
        assert_eq!(mine.signers().collect::<Vec<_>>(), vec![&m("m0")]);
        assert_eq!(mine.members().count(), 3);
        let sig = all.sign(&m("m2"), b"x").unwrap();
        assert_eq!(mine.verify(&m("m2"), b"x", &sig), Ok(()));
        assert_eq!(
            mine.sign(&m("m2"), b"x"),
            Err(CryptoError::UnknownSigner(m("m2")))
        );
    }

    #[test]
    fn seeded_identities_are_deterministic_and_distinct() {
        let a = Identity::from_seed(m("a"), [1; 32]);
        assert_eq!(
            a.verifying_key(),
            Identity::from_seed(m("a"), [1; 32]).verifying_key()
        );
        assert_ne!(
            a.verifying_key(),
            Identity::from_seed(m("b"), [1; 32]).verifying_key()
        );
        assert_ne!(
            a.verifying_key(),
            Identity::from_seed(m("a"), [2; 32]).verifying_key()
        );
        assert_ne!(
            Identity::generate(m("a")).verifying_key(),
            Identity::generate(m("a")).verifying_key()
        );
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.key.to_bytes())));
    }

    #[test]
    fn published_keys_can_be_added_from_bytes() {
        let id = Identity::generate(m("x"));
        let mut dir = SignatureDirectory::new();
        dir.add_verifying_key_bytes(m("x"), &id.verifying_key().to_bytes())
            .unwrap();
        let mut signer = SignatureDirectory::new();
        signer.add_identity(id);
        let sig = signer.sign(&m("x"), b"msg").unwrap();
        assert_eq!(dir.verify(&m("x"), b"msg", &sig), Ok(()));
    }

    #[test]
    fn signature_serde_is_64_bytes() {
        let dir = SignatureDirectory::deterministic(1);
        let sig = dir.sign(&m("m0"), b"hello").unwrap();
        let encoded = postcard::to_allocvec(&sig).unwrap();
        assert_eq!(encoded.len(), 65); // varint length 64, then the bytes
        assert_eq!(postcard::from_bytes::<Ed25519Signature>(&encoded).unwrap(), sig);
        let json = serde_json::to_string(&sig).unwrap();
        assert_eq!(serde_json::from_str::<Ed25519Signature>(&json).unwrap(), sig);
        assert!(
            postcard::from_bytes::<Ed25519Signature>(&postcard::to_allocvec(&[1u8; 3]).unwrap()).is_err()
        );
    }
}
