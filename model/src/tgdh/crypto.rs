//! The cryptographic provider trait that TGDH is generic over.
//!
//! The state machine never touches numbers or curve points: it asks a provider to create a
//! leaf share, to blind a secret (`g^x`), to combine an own secret with a peer's blinded key
//! (`BK^x`, then a KDF to the next node secret), to validate a received blinded key, to derive
//! the session key from the root secret, and to sign and verify protocol messages.
//!
//! Two kinds of providers exist:
//! - [`super::symbolic::Symbolic`] (in this crate): hashable terms, **no security**, used by the
//!   model checker and the secrecy audits;
//! - the real ones in `sgc-crypto` (finite-field DH over RFC 7919 / RFC 3526 groups, X25519,
//!   Ed25519 signatures, HKDF-SHA256).

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::MemberId;

/// Epoch of a TGDH run: the group view it runs in and the number of key refreshes within it.
///
/// Every protocol message carries the epoch it was sent in; receivers reject other epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Epoch {
    /// The group view identifier handed in by the group communication system.
    pub view: u64,
    /// Key refreshes (without a membership change) delivered so far in this view.
    pub refresh: u32,
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.view, self.refresh)
    }
}

/// Errors a provider reports. Every one of them is the peer's fault or a configuration fault,
/// never a reason to panic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CryptoError {
    /// A blinded key is not a valid group element (out of range, outside the prime-order
    /// subgroup, a low-order point, or malformed bytes).
    #[error("invalid blinded key: {0}")]
    InvalidPublic(&'static str),
    /// A Diffie-Hellman result was degenerate (e.g. X25519 all-zero output).
    #[error("non-contributory Diffie-Hellman result")]
    NonContributory,
    /// A signature did not verify under the claimed signer's key.
    #[error("bad signature from {0}")]
    BadSignature(MemberId),
    /// No signing or verifying key is known for this member.
    #[error("no key known for member {0}")]
    UnknownSigner(MemberId),
}

/// The operations TGDH needs from a Diffie-Hellman group and a signature scheme.
///
/// Implementations must be deterministic functions of their inputs (randomness enters only
/// through the `entropy` argument of [`TgdhCrypto::new_share`]), so that the same inputs replay
/// to the same outputs.
pub trait TgdhCrypto {
    /// A node secret (leaf share or internal node key). Real providers zeroize it on drop and
    /// redact it in `Debug`.
    type Secret: Clone + Eq + Hash + Debug;
    /// A blinded key `g^secret`, broadcast to the group.
    type Public: Clone + Eq + Hash + Debug + Serialize + DeserializeOwned;
    /// A signature over an encoded protocol message.
    type Signature: Clone + Eq + Hash + Debug + Serialize + DeserializeOwned;
    /// The session key derived from the group secret (never the group secret itself).
    type SessionKey: Clone + Eq + Hash + Debug;

    /// A fresh leaf share for `who`. `nonce` counts the shares `who` has drawn; `entropy` is
    /// fresh randomness from the driver (real providers must use it; the symbolic one names
    /// the share by `who` and `nonce`).
    fn new_share(&self, who: &MemberId, nonce: u64, entropy: &[u8; 32]) -> Self::Secret;

    /// The blinded key of a secret: `g^x` (one exponentiation).
    fn blind(&self, secret: &Self::Secret) -> Self::Public;

    /// The parent's secret from an own child secret and the sibling's blinded key:
    /// `KDF(BK^x)` (one exponentiation). Must be symmetric: `combine(a, blind(b)) ==
    /// combine(b, blind(a))`.
    fn combine(&self, own: &Self::Secret, sibling: &Self::Public) -> Result<Self::Secret, CryptoError>;

    /// Checks that a received blinded key is a valid element of the group.
    fn validate_public(&self, public: &Self::Public) -> Result<(), CryptoError>;

    /// The session key for `group` in `epoch`, derived from the root secret with a KDF and a
    /// label (HKDF-SHA256 in real providers).
    fn session_key(&self, root: &Self::Secret, group: &str, epoch: Epoch, label: &str) -> Self::SessionKey;

    /// A short, public identifier of a session key (safe to log and show).
    fn key_id(&self, key: &Self::SessionKey) -> u64;

    /// Signs an encoded message as `signer`.
    fn sign(&self, signer: &MemberId, message: &[u8]) -> Result<Self::Signature, CryptoError>;

    /// Verifies `signature` over `message` as signed by `signer`.
    fn verify(
        &self,
        signer: &MemberId,
        message: &[u8],
        signature: &Self::Signature,
    ) -> Result<(), CryptoError>;
}
