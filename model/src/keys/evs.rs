//! Optimized EVS's *EVS-Fix-Messages* step (paper §V-C, issue 6 §3): under Extended Virtual
//! Synchrony a message may be delivered in a later view than the one it was encrypted in, so
//! before a daemon delivers a client message it checks the key id in the message's clear header
//! against the receiver's current key of the group and, if they differ, opens the message with
//! the stored old key and seals it again under the current one. Clients then always decrypt
//! with their current key.
//!
//! - Every daemon keeps, for **every** group (local members or not), the key of the group's
//!   current view and a bounded store of old keys ([`GroupKeys`]); the group layer reports each
//!   installed view ([`crate::groups::GroupOut::View`]) and the engine derives its key with one
//!   MAC, the paper's cost per group change.
//! - Old keys expire by **time-out** (no message under the key for
//!   [`EvsPolicy::key_timeout_ms`]) and by **key-out** (more than [`EvsPolicy::max_old_keys`] old
//!   keys of one group: the oldest goes).
//! - A message the daemon cannot fix (no end-to-end header, a key it does not hold: expired,
//!   keyed out, or from a view it never saw, e.g. of another partition; or a body that does not
//!   authenticate) is reported to the receiver as a typed [`Undecryptable`] event: never dropped
//!   silently, never delivered as garbage.
//!
//! The message format is the provider's ([`MessageCrypto`]): AES-256-GCM in `sgc-crypto`
//! (`docs/protocol.md` §11), a symbolic format here for the model checker.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::KeyView;
use super::mac::{SymGroupKey, SymbolicMac};
use crate::groups::{GroupName, PrivateName};

/// Old-key expiry of Optimized EVS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EvsPolicy {
    /// Time-out: an old key under which no message arrived for this many milliseconds expires
    /// (`None`: never). A key's clock starts when it stops being current.
    pub key_timeout_ms: Option<u64>,
    /// Key-out: old keys kept per group; beyond it the oldest expires.
    pub max_old_keys: usize,
}

impl Default for EvsPolicy {
    fn default() -> Self {
        Self {
            key_timeout_ms: Some(60_000),
            max_old_keys: 8,
        }
    }
}

/// Why a message could not be delivered under the receiver's current key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Undecryptable {
    /// The body has no end-to-end header (the sender did not encrypt).
    NotEncrypted,
    /// The daemon does not hold the key the header names: it expired (time-out or key-out) or
    /// belongs to a view this daemon never saw.
    KeyNotHeld,
    /// The body does not authenticate under the key its header names.
    Unauthentic,
}

impl Undecryptable {
    /// The JSON and counter name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotEncrypted => "not_encrypted",
            Self::KeyNotHeld => "key_not_held",
            Self::Unauthentic => "unauthentic",
        }
    }

    /// The wire code (UNDECRYPTABLE frame).
    pub const fn code(self) -> u8 {
        match self {
            Self::NotEncrypted => 1,
            Self::KeyNotHeld => 2,
            Self::Unauthentic => 3,
        }
    }

    /// The reason with this wire code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::NotEncrypted),
            2 => Some(Self::KeyNotHeld),
            3 => Some(Self::Unauthentic),
            _ => None,
        }
    }
}

impl std::fmt::Display for Undecryptable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an encrypted message is bound to besides its key.
#[derive(Clone, Copy, Debug)]
pub struct MessageContext<'a> {
    /// Its (only) target group.
    pub group: &'a GroupName,
    /// Its sender.
    pub sender: &'a PrivateName,
    /// Its application type.
    pub mess_type: i16,
}

/// The client message format over group keys `GK`, as the daemon needs it.
pub trait MessageCrypto<GK> {
    /// The key id in the clear header of an encrypted body; `None` if it has no header.
    fn message_key_id(&self, body: &[u8]) -> Option<u64>;

    /// Opens `body` with `old` (the key its header names) and seals the plaintext under
    /// `current` with `nonce`, in the same context.
    fn reseal(
        &self,
        old: (&GK, u64),
        current: (&GK, u64),
        ctx: &MessageContext<'_>,
        body: &[u8],
        nonce: [u8; 12],
    ) -> Result<Vec<u8>, Undecryptable>;
}

/// First byte of a symbolic encrypted body.
pub const SYM_MAGIC: u8 = 0xE2;

/// A symbolic encrypted body: `SYM_MAGIC`, the key id (u64 LE), the payload in clear. **NO
/// SECURITY: for the model checker only.**
pub fn sym_seal(key_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(9 + payload.len());
    b.push(SYM_MAGIC);
    b.extend_from_slice(&key_id.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

impl<K> MessageCrypto<SymGroupKey<K>> for SymbolicMac {
    fn message_key_id(&self, body: &[u8]) -> Option<u64> {
        if body.first() != Some(&SYM_MAGIC) {
            return None;
        }
        Some(u64::from_le_bytes(body.get(1..9)?.try_into().ok()?))
    }

    fn reseal(
        &self,
        old: (&SymGroupKey<K>, u64),
        current: (&SymGroupKey<K>, u64),
        _ctx: &MessageContext<'_>,
        body: &[u8],
        _nonce: [u8; 12],
    ) -> Result<Vec<u8>, Undecryptable> {
        if <Self as MessageCrypto<SymGroupKey<K>>>::message_key_id(self, body) != Some(old.1) {
            return Err(Undecryptable::Unauthentic);
        }
        Ok(sym_seal(current.1, body.get(9..).unwrap_or_default()))
    }
}

/// One stored group key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredKey<GK> {
    /// The view it belongs to.
    pub view: KeyView,
    /// Its public id.
    pub key_id: u64,
    /// The key.
    pub key: GK,
    /// When it was last used (or stopped being current), by the engine's clock.
    pub last_used: u64,
}

/// A daemon's keys of one group: the current view's and the old ones, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKeys<GK> {
    /// The key of the group's current view at this daemon.
    pub current: StoredKey<GK>,
    /// Old keys still accepted, oldest first.
    pub old: VecDeque<StoredKey<GK>>,
}

impl<GK> GroupKeys<GK> {
    /// A group whose first key is `current`.
    pub fn new(current: StoredKey<GK>) -> Self {
        Self {
            current,
            old: VecDeque::new(),
        }
    }

    /// Makes `next` current at time `now`; the previous key becomes old (unless `forget`, the
    /// seeded bug) and key-out applies.
    pub fn install(&mut self, next: StoredKey<GK>, now: u64, policy: &EvsPolicy, forget: bool) {
        if next.key_id == self.current.key_id {
            return;
        }
        let mut prev = std::mem::replace(&mut self.current, next);
        prev.last_used = now;
        if !forget {
            self.old.push_back(prev);
        }
        while self.old.len() > policy.max_old_keys {
            self.old.pop_front();
        }
    }

    /// Drops old keys that timed out by `now`.
    pub fn expire(&mut self, now: u64, policy: &EvsPolicy) {
        if let Some(t) = policy.key_timeout_ms {
            self.old.retain(|k| now.saturating_sub(k.last_used) < t);
        }
    }

    /// The old key with this id, if it has not expired by `now`; its use is recorded.
    pub fn use_old(&mut self, key_id: u64, now: u64, policy: &EvsPolicy) -> Option<&StoredKey<GK>> {
        self.expire(now, policy);
        let k = self.old.iter_mut().find(|k| k.key_id == key_id)?;
        k.last_used = now;
        Some(k)
    }
}

/// The reseal nonce of one step: the first 12 bytes of its fresh entropy. One step handles one
/// message: two reseals in a step are of the same plaintext, under different keys or giving the
/// same ciphertext.
pub fn nonce_of(entropy: &[u8; 32]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n.copy_from_slice(&entropy[..12]);
    n
}
