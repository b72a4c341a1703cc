//! Tree-based Group Diffie-Hellman (Kim, Perrig, Tsudik) as Secure Spread runs it: members
//! receive membership views and protocol messages in agreed order within views and agree on a
//! group key that changes with every view and every refresh.
//!
//! - [`tree`]: the key tree and its operations (prune, insertion point, holes, sponsors);
//! - [`member`]: the member state machine (views and messages in, broadcasts and keys out);
//! - [`message`]: signed protocol messages;
//! - [`crypto`]: the provider trait; [`symbolic`]: the no-security provider for the checker;
//! - [`sim`]: a deterministic in-memory group (atomic agreed delivery) used by tests,
//!   benchmarks and the model checker;
//! - [`check`]: the Stateright model, its properties and the audits.

pub mod check;
pub mod crypto;
pub mod error;
pub mod member;
pub mod message;
pub mod sim;
pub mod symbolic;
pub mod tree;

use serde::{Deserialize, Serialize};

/// The identity of a group member (a daemon or client name, including its incarnation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberId(pub String);

impl MemberId {
    /// A member id from a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
