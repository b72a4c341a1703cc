//! [`NodeSecret`]: the 32-byte secret of a TGDH tree node, shared by both providers.
//!
//! For the finite-field groups it is a 256-bit exponent (big-endian, nonzero); for X25519 it is
//! a scalar (clamped by `x25519-dalek` when used). It is wiped on drop, compared in constant
//! time and never printed.

use std::fmt;
use std::hash::{Hash, Hasher};

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The secret of a tree node (leaf share or internal node key): 32 bytes, zeroized on drop,
/// redacted in `Debug` (`Secret(***)`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NodeSecret([u8; 32]);

impl NodeSecret {
    /// A secret from raw bytes (known-answer tests, state restored by a driver).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes. Crate-private: secrets leave the crate only through KDFs.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Constant-time equality of two 32-byte secrets (no early exit on the first differing byte).
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PartialEq for NodeSecret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for NodeSecret {}

impl Hash for NodeSecret {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = NodeSecret::from_bytes([0xab; 32]);
        let shown = format!("{s:?} {s:#?}");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!shown.contains("ab") && !shown.contains("171"));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(NodeSecret::from_bytes([1; 32]), NodeSecret::from_bytes([1; 32]));
        let mut other = [1; 32];
        other[31] = 2;
        assert_ne!(NodeSecret::from_bytes([1; 32]), NodeSecret::from_bytes(other));
    }
}
