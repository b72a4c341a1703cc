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
//! - [`record`]: recordings of a live daemon's machine (inputs and commands), for replay;
//! - [`sim`]: a deterministic in-memory multi-daemon simulation;
//! - [`check`]: the Stateright model, its properties, and [`check::check`] returning a [`check::CheckReport`].
//!
//! # Choices where the specification leaves room
//!
//! - A packet of an older ring from a member of this daemon's ring is *stale* and ignored in
//!   Operational, like a stale join (§3.1 would start Gather on every late packet).
//! - The consensus timeout calls `check_consensus` after restarting Gather, so a daemon whose
//!   peers were all failed forms a singleton ring (otherwise a lone daemon never forms one).
//! - Data packets of `cur_ring` are buffered in Operational, Recovery, and Gather before the
//!   freeze only; in Commit, and in Gather after a failed attempt, they are dropped (counted).
//!   Recovery packets are unpacked in Recovery only, and only above the old `high_delivered`.
//! - A commit token is accepted in Gather only if its representative is its first member and it
//!   holds no entry of this daemon yet; TokenRetransmit also re-sends a commit token.
//! - The first installation after a boot delivers no transitional configuration (the boot ring
//!   `RingId { seq: 0, rep: me }` was never a ring), so a daemon's first regular configuration
//!   has no predecessor.
//! - At installation every partial reassembly is dropped and this daemon's partially broadcast
//!   message is re-sent whole (§2.4).
//! - Packets from this node under another incarnation, from unconfigured nodes and from older
//!   incarnations are ignored; join sets are filtered of known-dead incarnations (§3.8).
//! - `rtr` is a bounded `BTreeSet`; TokenLoss is not re-armed by data packets; flow control
//!   counts retransmissions against the per-visit budget and does not scale by `backlog`; no
//!   token hold, no accelerated ring (§2.4, §7).

pub mod check;
pub mod config;
pub mod machine;
mod membership;
pub mod packing;
pub mod props;
pub mod record;
pub mod sim;
pub mod types;

pub use config::{RingConfig, RingMutant};
pub use machine::{Daemon, Phase, Stats};
pub use types::*;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;
