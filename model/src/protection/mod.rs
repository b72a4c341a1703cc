//! Three-Step packet protection's decisions (issue 6 §3, `docs/security.md`): per destination,
//! seal under which epoch, sign, or send in clear, and when to announce the epochs held.
//!
//! - [`rule`]: the sans-IO machine the daemon runs (`impl/daemon/src/protection.rs` wraps it
//!   with the cryptography and the datagram formats);
//! - [`check`]: its Stateright model, properties (`spec/protection.md`) and seeded mutants.

pub mod check;
pub mod rule;

pub use rule::{ANNOUNCE_EVERY, EpochRule, Held, Policy, ProtectionMutant, Wire};

#[cfg(test)]
mod check_tests;
