//! Tree-based Group Diffie-Hellman (Kim, Perrig, Tsudik) as Secure Spread runs it: members
//! receive membership views and protocol messages in agreed order within views and agree on a
//! group key that changes with every view and every refresh.

pub mod crypto;
pub mod symbolic;

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
