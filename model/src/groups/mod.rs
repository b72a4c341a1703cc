//! Light-weight groups over the daemon ring (`/work/shared/design/groups-and-flush.md` §1–§2):
//! the vocabulary shared with the client protocol and the flush layer ([`types`]), the daemon's
//! group layer ([`layer`]) and its configuration and seeded mutants ([`config`]).

pub mod check;
pub mod config;
pub mod layer;
pub mod props;
pub mod types;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;

pub use config::{GroupConfig, GroupConfigError, GroupMutant};
pub use layer::{GroupLayer, GroupStats, Phase};
pub use types::*;
