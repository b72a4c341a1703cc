//! Static configuration of a daemon's ring machine and the seeded mutants (ring-protocol.md §2.3, §6).
//!
//! The configuration is not part of the machine's state: the model checker and the daemon hand
//! the same `RingConfig` to every `handle` call.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::{NodeId, RingError};

/// A deliberately seeded bug, selectable at run time, that the model checker must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RingMutant {
    /// M1: the safe line is taken from the current token's `aru` only (one visit, not two).
    SafeOneVisit,
    /// M3: a member re-sends old messages above its own `my_aru`, not above the lowest one.
    RecoverFromOwnAru,
    /// M4: a token copy is accepted when `token_seq >= last_token_seq`.
    AcceptDuplicateToken,
    /// M5: the transitional set is `members(R) ∩ members(N)`, not derived from old ring ids.
    TransByMembership,
    /// Safe messages are delivered like Agreed ones, without waiting for the safe line.
    AgreedAsSafe,
    /// Installation delivers every held old message in the old regular configuration, holes
    /// and unstable Safe messages included (no transitional deliveries).
    SkipTransitional,
    /// Regular delivery skips a missing seq instead of waiting for its retransmission.
    DeliverPastGap,
}

impl RingMutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Self; 7] = [
        Self::SafeOneVisit,
        Self::RecoverFromOwnAru,
        Self::AcceptDuplicateToken,
        Self::TransByMembership,
        Self::AgreedAsSafe,
        Self::SkipTransitional,
        Self::DeliverPastGap,
    ];

    /// Command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SafeOneVisit => "safe-one-visit",
            Self::RecoverFromOwnAru => "recover-from-own-aru",
            Self::AcceptDuplicateToken => "accept-duplicate-token",
            Self::TransByMembership => "trans-by-membership",
            Self::AgreedAsSafe => "agreed-as-safe",
            Self::SkipTransitional => "skip-transitional",
            Self::DeliverPastGap => "deliver-past-gap",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// One-line description.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SafeOneVisit => "M1: safe line from the current token's aru only",
            Self::RecoverFromOwnAru => "M3: recovery re-sends from the member's own my_aru, not the lowest",
            Self::AcceptDuplicateToken => "M4: token accepted if token_seq >= last_token_seq",
            Self::TransByMembership => "M5: transitional members = members(R) ∩ members(N)",
            Self::AgreedAsSafe => "Safe messages delivered without waiting for the safe line",
            Self::SkipTransitional => {
                "installation delivers all held old messages in the old regular configuration"
            }
            Self::DeliverPastGap => "regular delivery skips a missing seq",
        }
    }
}

/// Static parameters of the ring machine (timeouts after Spread/Corosync defaults, §2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingConfig {
    /// Every configured daemon node id (broadcast reaches all of them).
    pub nodes: Vec<NodeId>,
    /// TokenLoss timeout.
    pub token_loss: Duration,
    /// TokenRetransmit timeout.
    pub token_retransmit: Duration,
    /// Join re-broadcast period.
    pub join: Duration,
    /// Consensus timeout.
    pub consensus: Duration,
    /// Merge-detection probe period.
    pub merge_detect: Duration,
    /// Flow control: packets (new plus retransmitted) per token visit.
    pub max_messages: u32,
    /// Flow control: packets per rotation.
    pub window_size: u32,
    /// Bound on `seq - safe_line` (buffer bound).
    pub max_gap: u64,
    /// Bound on the token's retransmission-request list.
    pub max_rtr: usize,
    /// Maximum bytes of chunks per data packet, their headers included (packing and
    /// fragmentation, §2.4).
    pub max_packet_payload: usize,
    /// Per-chunk header overhead counted against `max_packet_payload`: an upper bound of the
    /// encoded chunk header, so that a packet's encoded chunks never exceed the payload bound.
    pub chunk_overhead: usize,
    /// Whether the operational representative sends merge-detection probes.
    pub probes: bool,
    /// A seeded bug, or `None` for the correct protocol.
    pub mutant: Option<RingMutant>,
}

impl RingConfig {
    /// Defaults for a LAN of the given daemons.
    pub fn new(nodes: Vec<NodeId>) -> Self {
        Self {
            nodes,
            token_loss: Duration::from_millis(1250),
            token_retransmit: Duration::from_millis(300),
            join: Duration::from_millis(100),
            consensus: Duration::from_millis(1500),
            merge_detect: Duration::from_millis(1000),
            max_messages: 17,
            window_size: 50,
            max_gap: 256,
            max_rtr: 48,
            // 1350 + the worst-case data-packet headers (122 B, recovery wrapper included)
            // fit a 1472-byte datagram, i.e. an Ethernet MTU of 1500 minus IP and UDP.
            max_packet_payload: 1350,
            // postcard worst case of a chunk header: MsgId (Pid 3 + 5, n 5), frag 5, last 1,
            // byte-string length 3 (payloads < 2 MiB).
            chunk_overhead: 22,
            probes: true,
            mutant: None,
        }
    }

    /// Check the parameters.
    pub fn validate(&self) -> Result<(), RingError> {
        if self.nodes.is_empty() {
            return Err(RingError::InvalidConfig("no daemons configured"));
        }
        if self.max_messages == 0 || self.window_size == 0 {
            return Err(RingError::InvalidConfig("flow control allows no packet"));
        }
        if self.max_gap == 0 {
            return Err(RingError::InvalidConfig("max_gap must be positive"));
        }
        if self.max_packet_payload <= self.chunk_overhead {
            return Err(RingError::InvalidConfig("packets too small for one chunk"));
        }
        Ok(())
    }

    /// Whether `m` is the seeded mutant.
    pub(crate) fn is(&self, m: RingMutant) -> bool {
        self.mutant == Some(m)
    }
}
