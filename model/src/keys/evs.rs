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

    /// The stored key with this id — the group's current key at this daemon, or an old one
    /// that has not expired by `now` (its use is then recorded).
    pub fn find(&mut self, key_id: u64, now: u64, policy: &EvsPolicy) -> Option<&StoredKey<GK>> {
        if self.current.key_id == key_id {
            return Some(&self.current);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::Gid;
    use crate::ring::{ConfigId, Pid, RingId};

    fn key(id: u64) -> StoredKey<u64> {
        let ring = RingId {
            seq: 1,
            rep: Pid::new(0, 1),
        };
        StoredKey {
            view: KeyView {
                gid: Gid {
                    conf: ConfigId::Regular(ring),
                    index: u32::try_from(id).unwrap_or(0),
                },
                ring,
                refresh: 0,
            },
            key_id: id,
            key: id * 100,
            last_used: 0,
        }
    }

    const POLICY: EvsPolicy = EvsPolicy {
        key_timeout_ms: Some(1000),
        max_old_keys: 2,
    };

    #[test]
    fn a_new_view_makes_the_previous_key_old_and_key_out_drops_the_oldest() {
        let mut g = GroupKeys::new(key(1));
        for (id, now) in [(2, 10), (3, 20), (4, 30)] {
            g.install(key(id), now, &POLICY, false);
        }
        assert_eq!(g.current.key_id, 4);
        let old: Vec<u64> = g.old.iter().map(|k| k.key_id).collect();
        assert_eq!(old, [2, 3], "key 1 keyed out (at most 2 old keys)");
        assert!(g.find(1, 30, &POLICY).is_none());
        assert_eq!(g.find(3, 30, &POLICY).map(|k| k.key), Some(300));
        assert_eq!(
            g.find(4, 30, &POLICY).map(|k| k.key),
            Some(400),
            "the current key"
        );
        // installing the current key again changes nothing
        g.install(key(4), 40, &POLICY, false);
        assert_eq!(g.old.len(), 2);
    }

    #[test]
    fn an_old_key_times_out_unless_messages_keep_using_it() {
        let mut g = GroupKeys::new(key(1));
        g.install(key(2), 0, &POLICY, false);
        g.install(key(3), 0, &POLICY, false);
        // key 2 is used at 900: its clock restarts; key 1 is not
        assert!(g.find(2, 900, &POLICY).is_some());
        assert!(g.find(1, 1000, &POLICY).is_none(), "1000 ms idle: expired");
        assert!(g.find(2, 1899, &POLICY).is_some());
        g.expire(2899, &POLICY);
        assert!(g.old.is_empty());
        assert_eq!(g.current.key_id, 3, "the current key never expires");
        let never = EvsPolicy {
            key_timeout_ms: None,
            ..POLICY
        };
        let mut g = GroupKeys::new(key(1));
        g.install(key(2), 0, &never, false);
        assert!(g.find(1, u64::MAX, &never).is_some());
    }

    #[test]
    fn the_forgetting_mutant_keeps_no_old_key() {
        let mut g = GroupKeys::new(key(1));
        g.install(key(2), 0, &POLICY, true);
        assert!(g.old.is_empty());
        assert!(g.find(1, 0, &POLICY).is_none());
    }

    #[test]
    fn the_symbolic_format_reseals_only_from_the_key_its_header_names() {
        let sym = SymbolicMac;
        let k = |id| SymGroupKey {
            servers: 0u8,
            input: vec![id],
        };
        let g = GroupName::new("g").unwrap_or_else(|_| unreachable!());
        let p = PrivateName::new(0, "u", "d").unwrap_or_else(|_| unreachable!());
        let ctx = MessageContext {
            group: &g,
            sender: &p,
            mess_type: 0,
        };
        let body = sym_seal(1, b"x");
        assert_eq!(
            MessageCrypto::<SymGroupKey<u8>>::message_key_id(&sym, &body),
            Some(1)
        );
        let out = sym.reseal((&k(1), 1), (&k(2), 2), &ctx, &body, [0; 12]);
        assert_eq!(out, Ok(sym_seal(2, b"x")));
        assert_eq!(
            sym.reseal((&k(3), 3), (&k(2), 2), &ctx, &body, [0; 12]),
            Err(Undecryptable::Unauthentic)
        );
        assert_eq!(
            MessageCrypto::<SymGroupKey<u8>>::message_key_id(&sym, b"plain"),
            None
        );
        for r in [
            Undecryptable::NotEncrypted,
            Undecryptable::KeyNotHeld,
            Undecryptable::Unauthentic,
        ] {
            assert_eq!(Undecryptable::from_code(r.code()), Some(r));
        }
        assert_eq!(Undecryptable::from_code(0), None);
    }
}
