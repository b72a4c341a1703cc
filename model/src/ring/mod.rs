//! The daemon ring protocol: a Totem-style token ring giving Extended Virtual Synchrony
//! (`/work/shared/design/ring-protocol.md`, cited by section).
//!
//! ```text
//!  Event::{Boot, Recv, Timer, Submit} ──► Daemon::handle(&RingConfig, Event) ──► Vec<Command>
//!                                                                          SendToken, Broadcast,
//!                                                                          Set/CancelTimer, Deliver,
//!                                                                          DeliverConfig, Persist
//! ```
//!
//! - [`types`]: ids, packets, events and commands (§1, §2.1, §3, §5);
//! - [`config`]: static parameters and the seeded mutants ([`RingMutant`]);
//! - [`machine`]: the state, dispatch and normal operation (§2);
//! - `membership`: gather, commit, recovery, installation (§3), as more `impl Daemon`;
//! - [`packing`]: packing and fragmentation of client messages (§2.4);
//! - [`props`]: the EVS properties of §4 as predicates over observation logs;
//! - [`sim`]: a deterministic in-memory multi-daemon simulation;
//! - [`check`]: the Stateright model, its properties, and [`check::check`] returning a [`check::CheckReport`].

pub mod check;
pub mod config;
pub mod machine;
mod membership;
pub mod packing;
pub mod props;
pub mod sim;
pub mod types;

pub use config::{RingConfig, RingMutant};
pub use machine::{Daemon, Phase, Stats};
pub use types::*;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;
