//! Integrated security's key management (paper §V-B, the Servers' Agreement Engine and the
//! Group Keys Engine; issue 6 §2 and §4): the daemons agree on a servers' key with TGDH after
//! every daemon configuration change, and derive each client group key from it with one MAC,
//! `K(g, v) = MAC(K_servers, g || view_id)`.
//!
//! ```text
//!  ring configurations, TGDH messages ─┐
//!  group-layer outputs (GroupOut)     ─┼─► KeysEngine::handle ─► TGDH broadcasts,
//!  session closed, Tick{now}, DataOut ─┘                         GroupOut passed on in order,
//!                                                                keyed memberships
//! ```
//!
//! - [`engine`]: the per-daemon machine (holds client notifications until the servers' key of
//!   the new configuration is agreed, then releases them with keys; refresh policy);
//! - [`mac`]: the keyed-MAC provider trait and its symbolic provider;
//! - [`evs`]: Optimized EVS's per-group key store and message re-encryption;
//! - [`check`]: the Stateright model (group layers and engines of 2–3 daemons over an abstract
//!   EVS oracle), its properties (`spec/keys.md`) and seeded mutants.

pub mod check;
pub mod engine;
pub mod evs;
pub mod mac;

use serde::{Deserialize, Serialize};

use crate::groups::Gid;
use crate::ring::RingId;

pub use engine::{KeysConfig, KeysEngine, KeysError, KeysIn, KeysMutant, KeysOut, RefreshPolicy};
pub use evs::{EvsPolicy, MessageContext, MessageCrypto, Undecryptable};
pub use mac::{GroupKeyMac, SymGroupKey, SymbolicMac};

/// The view id a client group key is bound to: the group view (its gid from the group layer)
/// and the servers' key it was derived under (the regular ring whose daemons agreed it, and
/// the number of refreshes of that key). A refresh without a membership change keeps the gid
/// and gives a new view id (the "artificial membership change" of the paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyView {
    /// The group view.
    pub gid: Gid,
    /// The regular ring whose daemons agreed the servers' key.
    pub ring: RingId,
    /// Refreshes of the servers' key in that ring.
    pub refresh: u32,
}

impl std::fmt::Display for KeyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}~{}.{}", self.gid, self.ring, self.refresh)
    }
}

/// A client group key as delivered with a membership notification.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant<K> {
    /// The view id the key belongs to.
    pub view: KeyView,
    /// The key (sent only over the member's confidential channel, never logged).
    pub key: K,
    /// Its short public identifier (what `sgc user --json` shows).
    pub key_id: u64,
}

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;
