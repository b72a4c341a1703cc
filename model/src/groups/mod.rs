//! Light-weight groups over the daemon ring (`/work/shared/design/groups-and-flush.md` §1–§2):
//! the vocabulary shared with the client protocol and the flush layer ([`types`]).

pub mod types;

pub use types::*;
