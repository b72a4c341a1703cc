//! The keyed-MAC provider the Group Keys Engine is generic over: `K(g, v) = MAC(K_servers,
//! input)` and a short public key id of a group key.
//!
//! The engine builds the MAC input itself ([`key_input`]: a domain label, the group name and
//! the key view, canonically encoded), so that the provider is a plain keyed MAC:
//! - [`SymbolicMac`] (here): the group key is the term `Mac(K_servers, input)`, **no
//!   security**, for the model checker: equal terms mean equal keys, and a client can learn a
//!   group key only by receiving it or by deriving the servers' key;
//! - real providers (HMAC-SHA-256 by default, HMAC-SHA1 in the paper-faithful mode) belong in
//!   `sgc-crypto`, keyed with the bytes of its TGDH session key; a test-only HMAC-SHA-256 over
//!   the symbolic servers' key lives in `keys/tests.rs`.

use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

use super::KeyView;
use crate::groups::GroupName;

/// Domain separation label of the MAC input.
pub const KEY_INPUT_LABEL: &str = "sgc group key v1";

/// A keyed MAC over the servers' key `K` (the TGDH session key of the daemons).
pub trait GroupKeyMac<K> {
    /// A client group key. Real providers zeroize it on drop and redact it in `Debug`.
    type GroupKey: Clone + Eq + Hash + Debug;

    /// `MAC(servers, input)`: the group key for the canonical `input` of [`key_input`].
    fn group_key(&self, servers: &K, input: &[u8]) -> Self::GroupKey;

    /// A short public identifier of a group key (safe to log and to show to clients), derived
    /// from the key with a one-way function.
    fn key_id(&self, key: &Self::GroupKey) -> u64;
}

/// What the MAC input encodes.
#[derive(Serialize)]
struct KeyInput<'a> {
    label: &'static str,
    group: &'a str,
    /// `None` only under the seeded bug `key-input-omits-view`.
    view: Option<&'a KeyView>,
}

/// The canonical MAC input `label || g || view_id` (postcard: length-prefixed strings, varint
/// integers, so distinct `(g, view)` give distinct inputs). `view = None` is the seeded bug
/// `key-input-omits-view`.
pub fn key_input(group: &GroupName, view: Option<&KeyView>) -> Vec<u8> {
    let input = KeyInput {
        label: KEY_INPUT_LABEL,
        group: group.as_str(),
        view,
    };
    // Encoding into a Vec cannot fail for these types; an empty input would still be a
    // deterministic (if weak) input, never a panic.
    postcard::to_allocvec(&input).unwrap_or_default()
}

/// A symbolic group key: the servers' key term and the MAC input. **NO SECURITY.**
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SymGroupKey<K> {
    /// The servers' key it was derived from.
    pub servers: K,
    /// The MAC input.
    pub input: Vec<u8>,
}

/// The symbolic MAC provider. **NO SECURITY: for the model checker only.**
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SymbolicMac;

impl<K: Clone + Eq + Hash + Debug> GroupKeyMac<K> for SymbolicMac {
    type GroupKey = SymGroupKey<K>;

    fn group_key(&self, servers: &K, input: &[u8]) -> SymGroupKey<K> {
        SymGroupKey {
            servers: servers.clone(),
            input: input.to_vec(),
        }
    }

    fn key_id(&self, key: &SymGroupKey<K>) -> u64 {
        // DefaultHasher::new() uses fixed keys: deterministic across runs, as the checker needs.
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish() & 0xffff_ffff
    }
}
