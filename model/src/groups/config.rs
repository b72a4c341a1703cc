//! Static configuration of a daemon's group layer, its errors and the seeded mutants
//! (`/work/shared/design/groups-and-flush.md` §1.1, §2, §6).

use serde::{Deserialize, Serialize};

use super::types::{MAX_DAEMON_NAME, NameError};
use crate::ring::NodeId;

/// A deliberately seeded bug, selectable at run time, that the model checker must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupMutant {
    /// Design §6 bug 1: the merge exchange announces the gid of the group's last
    /// join/leave/disconnect view (a stale tag) instead of its current gid.
    StaleExchangeTag,
    /// Design §6 bug 2: no `TRANSITION` signal when a group loses a daemon.
    NoTransition,
    /// Design §6 bug 3: client requests are not held while gathering (a join reaches the ring
    /// during the exchange).
    NoHoldInGather,
    /// Design §6 bug 4: a merge puts every member into one vs_set.
    MergeOneVsSet,
    /// Spread 5.0.1's gid: the index restarts at 1 when a group is re-created.
    GidPerGroup,
    /// The leaver gets the leave membership (without itself) instead of a self-leave.
    LeaverGetsView,
    /// `SELF_DISCARD` is ignored.
    IgnoreSelfDiscard,
    /// A multi-group message is delivered once per target group, not once per session.
    DuplicatePerGroup,
    /// Local receivers get a local sender's message at once (Spread's early RELIABLE/FIFO
    /// delivery), not in ring order.
    EarlyLocalDelivery,
}

impl GroupMutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Self; 9] = [
        Self::StaleExchangeTag,
        Self::NoTransition,
        Self::NoHoldInGather,
        Self::MergeOneVsSet,
        Self::GidPerGroup,
        Self::LeaverGetsView,
        Self::IgnoreSelfDiscard,
        Self::DuplicatePerGroup,
        Self::EarlyLocalDelivery,
    ];

    /// Command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::StaleExchangeTag => "stale-exchange-tag",
            Self::NoTransition => "no-transition",
            Self::NoHoldInGather => "no-hold-in-gather",
            Self::MergeOneVsSet => "merge-one-vs-set",
            Self::GidPerGroup => "gid-per-group",
            Self::LeaverGetsView => "leaver-gets-view",
            Self::IgnoreSelfDiscard => "ignore-self-discard",
            Self::DuplicatePerGroup => "duplicate-per-group",
            Self::EarlyLocalDelivery => "early-local-delivery",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// One-line description.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::StaleExchangeTag => {
                "bug 1: the exchange announces a stale tag, not the group's current gid"
            }
            Self::NoTransition => "bug 2: no TRANSITION when a group loses a daemon",
            Self::NoHoldInGather => "bug 3: client requests not held while gathering",
            Self::MergeOneVsSet => "bug 4: a merge puts every member into one vs_set",
            Self::GidPerGroup => "gid index restarts at 1 when a group is re-created (Spread 5.0.1)",
            Self::LeaverGetsView => "the leaver gets the leave view instead of a self-leave",
            Self::IgnoreSelfDiscard => "SELF_DISCARD ignored",
            Self::DuplicatePerGroup => "a multi-group message delivered once per target group",
            Self::EarlyLocalDelivery => "local receivers get a local message at once, not in ring order",
        }
    }
}

/// Errors of a group-layer configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupConfigError {
    /// The daemon name is not a valid name part.
    #[error("daemon name: {0}")]
    DaemonName(#[from] NameError),
    /// A bound is zero.
    #[error("{0} must be at least 1")]
    ZeroBound(&'static str),
}

/// Static parameters of the group layer (not part of its state).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupConfig {
    /// This daemon's node id.
    pub me: NodeId,
    /// This daemon's name (the `daemon` part of private names), 1–19 characters.
    pub daemon_name: String,
    /// Events queued for a session before it is killed as a slow client (Spread's
    /// `MaxSessionMessages`).
    pub max_session_queue: u32,
    /// Groups one session may be in.
    pub max_groups_per_session: u32,
    /// Local members of one group at this daemon.
    pub max_members_per_group: u32,
    /// Client messages submitted to the ring and not yet delivered back before client input is
    /// blocked.
    pub max_ring_backlog: u32,
    /// Report every group view installed at this daemon, local members or not
    /// ([`super::GroupOut::View`]), for Optimized EVS's key store.
    pub report_views: bool,
    /// A seeded bug, or `None` for the correct protocol.
    pub mutant: Option<GroupMutant>,
}

impl GroupConfig {
    /// The defaults of §1.1 and §2 for daemon `me` named `daemon_name`.
    pub fn new(me: NodeId, daemon_name: impl Into<String>) -> Self {
        Self {
            me,
            daemon_name: daemon_name.into(),
            max_session_queue: 1000,
            max_groups_per_session: 1000,
            max_members_per_group: 3100,
            max_ring_backlog: 500,
            report_views: false,
            mutant: None,
        }
    }

    /// Checks the name and that every bound is positive.
    pub fn validate(&self) -> Result<(), GroupConfigError> {
        super::types::PrivateName::new(self.me, "x", self.daemon_name.clone())?;
        debug_assert!(self.daemon_name.len() <= MAX_DAEMON_NAME);
        for (what, v) in [
            ("max_session_queue", self.max_session_queue),
            ("max_groups_per_session", self.max_groups_per_session),
            ("max_members_per_group", self.max_members_per_group),
            ("max_ring_backlog", self.max_ring_backlog),
        ] {
            if v == 0 {
                return Err(GroupConfigError::ZeroBound(what));
            }
        }
        Ok(())
    }

    pub(crate) fn is(&self, m: GroupMutant) -> bool {
        self.mutant == Some(m)
    }
}
