//! Symbolic cryptography for the model checker. **NO SECURITY**: keys are terms, not numbers.
//!
//! A leaf share is an atom `Share(member, nonce)`; a node key is the unordered pair of its
//! children's keys `Node{a, b}` (Diffie-Hellman is commutative, so the pair is stored sorted);
//! a blinded key is `Blind(t)`. Equality of terms means "the same key". This makes agreement,
//! freshness and the secrecy audits exact and cheap: an adversary *can derive* a term if it
//! holds it, or if it can derive one child of a node and holds (or can derive) the blinded key
//! of the other child ([`Knowledge::derives`]).
//!
//! Signatures are `(signer, digest of the message)`; a forged or altered message fails
//! verification exactly as with a real scheme.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::MemberId;
use super::crypto::{CryptoError, Epoch, TgdhCrypto};

/// A symbolic key term.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Term {
    /// A leaf share drawn by `member` (its `nonce`-th share).
    Share {
        /// Who drew the share.
        member: MemberId,
        /// Which of its shares this is.
        nonce: u64,
    },
    /// The key of an internal node: the Diffie-Hellman combination of two keys (sorted pair).
    Node(Arc<(Self, Self)>),
}

impl Term {
    /// The node key combining `a` and `b` (order-insensitive).
    pub fn node(a: Self, b: Self) -> Self {
        if a <= b {
            Self::Node(Arc::new((a, b)))
        } else {
            Self::Node(Arc::new((b, a)))
        }
    }

    /// Every share atom occurring in this term.
    pub fn shares(&self, out: &mut BTreeSet<Self>) {
        match self {
            Self::Share { .. } => {
                out.insert(self.clone());
            }
            Self::Node(pair) => {
                pair.0.shares(out);
                pair.1.shares(out);
            }
        }
    }
}

/// A symbolic blinded key `g^t`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Blind(pub Term);

/// A symbolic signature: the signer and a digest of what was signed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SymSignature {
    /// Who signed.
    pub signer: MemberId,
    /// Digest of the signed bytes.
    pub digest: u64,
}

/// A symbolic session key: the root term, the group and the epoch it was derived for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SymSessionKey {
    /// The group secret (root key term) it was derived from.
    pub root: Term,
    /// The group name.
    pub group: String,
    /// The epoch.
    pub epoch: Epoch,
}

/// The symbolic provider. **NO SECURITY: for the model checker only.**
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Symbolic;

fn digest(bytes: &[u8]) -> u64 {
    // DefaultHasher::new() uses fixed keys: deterministic across runs, as the checker needs.
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl TgdhCrypto for Symbolic {
    type Secret = Term;
    type Public = Blind;
    type Signature = SymSignature;
    type SessionKey = SymSessionKey;

    fn new_share(&self, who: &MemberId, nonce: u64, _entropy: &[u8; 32]) -> Term {
        Term::Share {
            member: who.clone(),
            nonce,
        }
    }

    fn blind(&self, secret: &Term) -> Blind {
        Blind(secret.clone())
    }

    fn combine(&self, own: &Term, sibling: &Blind) -> Result<Term, CryptoError> {
        Ok(Term::node(own.clone(), sibling.0.clone()))
    }

    fn validate_public(&self, _public: &Blind) -> Result<(), CryptoError> {
        Ok(())
    }

    fn session_key(&self, root: &Term, group: &str, epoch: Epoch, _label: &str) -> SymSessionKey {
        SymSessionKey {
            root: root.clone(),
            group: group.to_owned(),
            epoch,
        }
    }

    fn key_id(&self, key: &SymSessionKey) -> u64 {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish() & 0xffff_ffff
    }

    fn sign(&self, signer: &MemberId, message: &[u8]) -> Result<SymSignature, CryptoError> {
        Ok(SymSignature {
            signer: signer.clone(),
            digest: digest(message),
        })
    }

    fn verify(&self, signer: &MemberId, message: &[u8], signature: &SymSignature) -> Result<(), CryptoError> {
        if &signature.signer == signer && signature.digest == digest(message) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature(signer.clone()))
        }
    }
}

/// What an adversary knows: share atoms (and other terms) it holds, and the inner terms of
/// every blinded key it has seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knowledge<'a> {
    /// Secret terms held outright.
    pub secrets: BTreeSet<&'a Term>,
    /// Terms whose blinded key is public.
    pub public: &'a BTreeSet<Term>,
}

impl Knowledge<'_> {
    /// Whether the adversary can compute `t`: it holds `t`, or `t = Node{a, b}` and it can
    /// derive one child and knows (or can derive) the blinded key of the other.
    pub fn derives(&self, t: &Term) -> bool {
        if self.secrets.contains(t) {
            return true;
        }
        match t {
            Term::Share { .. } => false,
            Term::Node(pair) => {
                let (a, b) = (&pair.0, &pair.1);
                let da = self.derives(a);
                let db = self.derives(b);
                (da && (db || self.public.contains(b))) || (db && self.public.contains(a))
            }
        }
    }
}
