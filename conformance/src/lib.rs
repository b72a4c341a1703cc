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
//! The same traces are replayed on live daemon processes by [`harness`] (model → live: the
//! harness is the daemons' network and clock, `runtime.controlled`).
//!
//! - [`trace`]: the versioned trace format, loading and writing;
//! - [`export`]: checker paths (discoveries, random walks) → traces;
//! - [`replay`]: traces → machines → [`replay::Outcome`] / [`replay::Summary`];
//! - [`harness`]: `evs` traces → live daemons → [`harness::LiveOutcome`] / [`harness::LiveSummary`].

pub mod export;
pub mod harness;
pub mod replay;
pub mod trace;

pub use replay::{Mismatch, Outcome, Summary, replay, replay_dir};
pub use trace::{Trace, TraceError};
