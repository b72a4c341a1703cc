//! [`GroupChoice`]: the DH group picked at run time (CLI flag, configuration file).
//!
//! The providers have different associated types, so a caller dispatches once on the choice
//! and runs generic code with the matching provider:
//!
//! ```
//! use sgc_crypto::{FfdhProvider, GroupChoice, X25519Provider};
//!
//! let choice: GroupChoice = "ffdhe2048".parse().unwrap();
//! match choice.ffdh_group() {
//!     Some(group) => drop(FfdhProvider::deterministic(group, 4)),
//!     None => drop(X25519Provider::deterministic(4)),
//! }
//! ```

use std::fmt;
use std::str::FromStr;

use crate::groups::{FfdhGroup, UnknownGroup};

/// A Diffie-Hellman group for TGDH.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupChoice {
    /// RFC 7919 `ffdhe2048` (the default: the paper's setting with today's TLS group).
    #[default]
    Ffdhe2048,
    /// RFC 7919 `ffdhe3072`.
    Ffdhe3072,
    /// RFC 3526 group 14 (2048-bit MODP).
    Modp2048,
    /// The X25519 tree (fast option).
    X25519,
}

impl GroupChoice {
    /// Every choice, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Ffdhe2048, Self::Ffdhe3072, Self::Modp2048, Self::X25519];

    /// The name: `ffdhe2048`, `ffdhe3072`, `modp2048` or `x25519`.
    pub fn name(self) -> &'static str {
        match self.ffdh_group() {
            Some(group) => group.name(),
            None => "x25519",
        }
    }

    /// The finite-field group, or `None` for X25519.
    pub fn ffdh_group(self) -> Option<FfdhGroup> {
        match self {
            Self::Ffdhe2048 => Some(FfdhGroup::Ffdhe2048),
            Self::Ffdhe3072 => Some(FfdhGroup::Ffdhe3072),
            Self::Modp2048 => Some(FfdhGroup::Modp2048),
            Self::X25519 => None,
        }
    }
}

impl From<FfdhGroup> for GroupChoice {
    fn from(group: FfdhGroup) -> Self {
        match group {
            FfdhGroup::Ffdhe2048 => Self::Ffdhe2048,
            FfdhGroup::Ffdhe3072 => Self::Ffdhe3072,
            FfdhGroup::Modp2048 => Self::Modp2048,
        }
    }
}

impl fmt::Display for GroupChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GroupChoice {
    type Err = UnknownGroup;

    fn from_str(s: &str) -> Result<Self, UnknownGroup> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownGroup(s.to_owned(), "ffdhe2048, ffdhe3072, modp2048, x25519"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let names: Vec<String> = GroupChoice::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["ffdhe2048", "ffdhe3072", "modp2048", "x25519"]);
        for choice in GroupChoice::ALL {
            assert_eq!(choice.name().parse::<GroupChoice>(), Ok(choice));
        }
        for group in FfdhGroup::ALL {
            assert_eq!(GroupChoice::from(group).ffdh_group(), Some(group));
        }
        let err = "X25519".parse::<GroupChoice>().unwrap_err();
        assert!(err.to_string().contains("x25519"));
        assert_eq!(GroupChoice::default(), GroupChoice::Ffdhe2048);
    }
}
