//! The flush layer: view synchrony (VS) for closed groups over the daemons' EVS group views, on
//! the client-library side (`/work/shared/design/groups-and-flush.md` §3, Flush Spread's `fl.c`).
//!
//! - [`flush`]: the sans-IO machine [`FlushLayer`] (one per client connection, all its groups):
//!   application calls and SP (daemon) events in, requests to the daemon, events for the
//!   application and call results out;
//! - [`check`]: a Stateright model driving several `FlushLayer`s from an abstract SP oracle, with
//!   the VS-* properties of `spec/vs.md` ([`props`]) and the seeded bugs of [`VsMutant`].

pub mod check;
pub mod flush;
pub mod props;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod tests;

pub use flush::*;

use serde::{Deserialize, Serialize};

/// A deliberately seeded bug of the flush layer, selectable at run time, that the model checker
/// must catch (groups-and-flush.md §6, flush-layer bugs 1–4, and a few more so that every
/// always-property is shown to fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VsMutant {
    /// Bug 1: the install waits only for the `FLUSH_OK`s of the members of the old view that
    /// are in the new one (a joiner's or merged member's `FLUSH_OK` is not awaited).
    OldViewFloks,
    /// Bug 2: `FLUSH_OK` is multicast RELIABLE, not FIFO, so it may overtake its sender's
    /// earlier messages.
    ReliableFlushOk,
    /// Bug 3a: no vulnerable tagging: unordered/FIFO messages sent in `Authorize`/`Verify` go
    /// out as plain data.
    NoVulnerableTag,
    /// Bug 3b: a vulnerable message for the view being flushed is delivered at once in `Agree`
    /// instead of being held for the install.
    NoEarlyBuffer,
    /// Bug 4: a pending change is not invalidated when a member leaves before flushing for it.
    NoInvalidation,
    /// The application may still send after `FL_flush` (in `Agree`).
    SendInAgree,
    /// No `alive` sender filter: data from any sender is delivered.
    NoAliveFilter,
    /// A joiner starts in `Steady`, so it gets a flush request before its first view.
    JoinerFlushReq,
    /// `trans_sent` is ignored: every transitional trigger gives a `TRANSITION`.
    RepeatTransition,
}

impl VsMutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Self; 9] = [
        Self::OldViewFloks,
        Self::ReliableFlushOk,
        Self::NoVulnerableTag,
        Self::NoEarlyBuffer,
        Self::NoInvalidation,
        Self::SendInAgree,
        Self::NoAliveFilter,
        Self::JoinerFlushReq,
        Self::RepeatTransition,
    ];

    /// Command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::OldViewFloks => "old-view-floks",
            Self::ReliableFlushOk => "reliable-flush-ok",
            Self::NoVulnerableTag => "no-vulnerable-tag",
            Self::NoEarlyBuffer => "no-early-buffer",
            Self::NoInvalidation => "no-invalidation",
            Self::SendInAgree => "send-in-agree",
            Self::NoAliveFilter => "no-alive-filter",
            Self::JoinerFlushReq => "joiner-flush-req",
            Self::RepeatTransition => "repeat-transition",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// One-line description.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::OldViewFloks => "bug 1: install waits only for the FLUSH_OKs of old-view members",
            Self::ReliableFlushOk => "bug 2: FLUSH_OK sent RELIABLE, may overtake the sender's data",
            Self::NoVulnerableTag => "bug 3a: no vulnerable tagging in Authorize/Verify",
            Self::NoEarlyBuffer => "bug 3b: vulnerable messages delivered at once in Agree",
            Self::NoInvalidation => "bug 4: no invalidation when a member leaves before flushing",
            Self::SendInAgree => "sends allowed after FL_flush, before the install",
            Self::NoAliveFilter => "no alive sender filter on data",
            Self::JoinerFlushReq => "a joiner gets a flush request before its first view",
            Self::RepeatTransition => "trans_sent ignored: several TRANSITIONs per view",
        }
    }
}
