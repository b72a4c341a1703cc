//! `sgc-conformance`: checker traces of sgc's models, and their replay into the sans-IO
//! machines outside the model checker.
//!
//! ```text
//!   Stateright checker ──paths──► export ──► trace (JSON, docs/conformance.md)
//!                                              │ config, external events, expected observations
//!                                              ▼
//!                         replay: the replayer is the machines' network, clock, clients
//!                         (evs) or group communication system (tgdh); every observation
//!                         is compared with the trace; the first difference is a Mismatch
//! ```
//!
//! This is the model → model half of conformance: the live-cluster harness (the harness drives
//! real daemons as their network and clock) reads the same traces.
//!
//! - [`trace`]: the versioned trace format, loading and writing;
//! - [`export`]: checker paths (discoveries, random walks) → traces;
//! - [`replay`]: traces → machines → [`replay::Outcome`] / [`replay::Summary`].

pub mod export;
pub mod replay;
pub mod trace;

pub use replay::{Mismatch, Outcome, Summary, replay, replay_dir};
pub use trace::{Trace, TraceError};
