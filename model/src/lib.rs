//! `sgc-model`: the pure, deterministic, sans-IO protocol core of sgc.
//!
//! ```text
//!   events (messages, membership views, timers, entropy) ──► state machine ──► commands
//!                                                              │
//!             Stateright checker (check/) ◄── same code ──► tokio drivers (impl/)
//! ```
//!
//! Nothing here reads a clock, draws OS randomness or touches a socket or file (enforced by
//! `model/clippy.toml`): time, randomness and I/O are inputs handed in by the caller.
//!
//! Modules:
//! - [`check`]: running a Stateright model and reporting as `sgc check` prints it;
//! - [`groups`]: light-weight client groups over the ring (group layer, client vocabulary);
//! - [`keys`]: the servers' agreement engine and group keys engine (integrated security);
//! - [`protection`]: Three-Step packet protection's per-destination rule (which key, announcements);
//! - [`ring`]: the daemon ring protocol (Totem-style token ring, membership, Extended Virtual Synchrony);
//! - [`tgdh`]: Tree-based Group Diffie-Hellman key agreement, generic over a crypto provider;
//! - [`vs`]: the flush layer (view synchrony over EVS group views, client-library side), its
//!   Stateright model and seeded bugs.

pub mod check;
pub mod groups;
pub mod keys;
pub mod protection;
pub mod ring;
pub mod tgdh;
pub mod vs;
