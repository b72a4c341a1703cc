//! Identifiers, packets and the event/command vocabulary of the ring machine (ring-protocol.md §1,
//! §2.1, §3.2, §3.3, §5).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A daemon's configured identity (position in the daemon configuration file).
pub type NodeId = u16;
/// Start counter of a daemon, persisted and incremented at every start (§3.8).
pub type Incarnation = u32;
/// A sequence number on one ring.
pub type Seq = u64;

/// Protocol identity of a daemon: `(node, incarnation)`, ordered by node then incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pid {
    /// Configured node id.
    pub node: NodeId,
    /// Incarnation of that node.
    pub inc: Incarnation,
}

impl Pid {
    /// A pid.
    pub const fn new(node: NodeId, inc: Incarnation) -> Self {
        Self { node, inc }
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.inc)
    }
}

/// A ring id, ordered by `seq` then `rep` (§1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RingId {
    /// Ring sequence, above every ring seq its representative had seen.
    pub seq: u64,
    /// The representative that created the ring.
    pub rep: Pid,
}

impl std::fmt::Display for RingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "R{}@{}", self.seq, self.rep)
    }
}

/// Identity of a client message: its originating daemon incarnation and a per-incarnation counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId {
    /// The daemon (incarnation) the message was submitted to.
    pub origin: Pid,
    /// Counter chosen by the submitter, unique per origin.
    pub n: u32,
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m{}#{}", self.origin, self.n)
    }
}

/// Delivery service requested for a message (§1 "Services").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Service {
    /// Reliable: delivered as Agreed.
    Reliable,
    /// FIFO: delivered as Agreed.
    Fifo,
    /// Causal: delivered as Agreed.
    Causal,
    /// Agreed: total order.
    Agreed,
    /// Safe: total order, delivered only once every member holds it.
    Safe,
}

impl Service {
    /// Whether the message must wait for the safe line.
    pub const fn is_safe(self) -> bool {
        matches!(self, Self::Safe)
    }
}

/// A configuration as clients see it (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigId {
    /// The regular configuration of a ring.
    Regular(RingId),
    /// The transitional configuration `(N, R)` between old ring `R` and new ring `N`.
    Transitional(RingId, RingId),
}

impl ConfigId {
    /// The kind of this configuration.
    pub const fn kind(self) -> ConfigKind {
        match self {
            Self::Regular(_) => ConfigKind::Regular,
            Self::Transitional(..) => ConfigKind::Transitional,
        }
    }

    /// The regular ring this configuration belongs to (`R` for `(N, R)`).
    pub const fn belongs_to(self) -> RingId {
        match self {
            Self::Regular(r) | Self::Transitional(_, r) => r,
        }
    }
}

impl std::fmt::Display for ConfigId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Regular(r) => write!(f, "reg({r})"),
            Self::Transitional(n, r) => write!(f, "trans({n},{r})"),
        }
    }
}

/// Regular or transitional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigKind {
    /// A regular configuration.
    Regular,
    /// A transitional configuration.
    Transitional,
}

/// One piece of a client message inside a data packet (§2.4): a whole small message
/// (`frag == 0 && last`) or a fragment of a large one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Chunk {
    /// The message this chunk belongs to.
    pub id: MsgId,
    /// Index of the fragment, from 0.
    pub frag: u32,
    /// Whether this is the message's last fragment.
    pub last: bool,
    /// Payload bytes of this fragment (one byte string on the wire).
    #[serde(with = "super::packing::byte_string")]
    pub bytes: Vec<u8>,
}

/// What a data packet carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Body {
    /// Client message chunks, all of the packet's service, all from its sender.
    Chunks(Vec<Chunk>),
    /// Recovery (§3.4): an old-ring packet re-broadcast on the new ring; its own `ring` and `seq`
    /// are the old ones.
    Recovered(Box<DataPkt>),
}

/// A data packet (§2.1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataPkt {
    /// Ring the packet was sequenced on.
    pub ring: RingId,
    /// Sequence number on that ring.
    pub seq: Seq,
    /// The daemon that sequenced it.
    pub sender: Pid,
    /// `token_seq` of the token it was sent under.
    pub round: u64,
    /// Delivery service of every chunk in the body.
    pub service: Service,
    /// Contents.
    pub body: Body,
}

/// The regular token (§2.1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Token {
    /// Ring id; tokens of other rings are dropped.
    pub ring: RingId,
    /// +1 at every hop.
    pub token_seq: u64,
    /// Highest seq assigned on the ring.
    pub seq: Seq,
    /// All-received-up-to.
    pub aru: Seq,
    /// Who last lowered `aru` (`None` once `aru == seq`).
    pub aru_id: Option<Pid>,
    /// Seqs some member misses (bounded by `RingConfig::max_rtr`).
    pub rtr: std::collections::BTreeSet<Seq>,
    /// Packets broadcast in the last rotation.
    pub fcc: u32,
    /// Sum of members' queue lengths.
    pub backlog: u32,
    /// Recovery: members still re-sending old messages.
    pub rtx_pending: std::collections::BTreeSet<Pid>,
    /// Recovery: members past their commit point.
    pub done: std::collections::BTreeSet<Pid>,
    /// Recovery: set once everybody is done, to the seq that ends recovery.
    pub installed: Option<Seq>,
}

/// A join message (§3.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Join {
    /// Daemons the sender wants in the ring.
    pub proc_set: std::collections::BTreeSet<Pid>,
    /// Daemons the sender considers failed.
    pub fail_set: std::collections::BTreeSet<Pid>,
    /// The sender's `cur_ring.seq`.
    pub ring_seq: u64,
}

/// A member's description of its old ring in the commit token (§3.3).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The member's last installed ring.
    pub old_ring: RingId,
    /// Its all-received-up-to on the old ring.
    pub my_aru: Seq,
    /// Highest old seq it knows of.
    pub high_seq: Seq,
    /// Highest old seq it delivered.
    pub high_delivered: Seq,
    /// `my_aru == high_seq`.
    pub received: bool,
    /// Its commit set (§3.7).
    pub committed: std::collections::BTreeSet<Pid>,
}

/// The commit token (§3.3).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommitToken {
    /// The new ring.
    pub ring: RingId,
    /// Its members, sorted.
    pub members: Vec<Pid>,
    /// One entry per member that filled it.
    pub entries: std::collections::BTreeMap<Pid, Entry>,
    /// 1 or 2.
    pub rotation: u8,
}

/// Every packet a daemon sends to another (§5).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Packet {
    /// A regular token.
    Token(Token),
    /// A data packet.
    Data(DataPkt),
    /// A join.
    Join(Join),
    /// A commit token.
    Commit(CommitToken),
    /// A merge-detection probe from an operational representative.
    Probe {
        /// The sender's ring.
        ring: RingId,
    },
}

/// The daemon's timers (§2.3, §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// No token for too long: start a membership change.
    TokenLoss,
    /// Re-send the last forwarded token.
    TokenRetransmit,
    /// Re-broadcast the join.
    Join,
    /// Fail the daemons that did not reach consensus.
    Consensus,
    /// Operational representative: broadcast a probe.
    MergeDetect,
}

/// What is kept on stable storage (§3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Durable {
    /// Incarnation of the running daemon.
    pub incarnation: Incarnation,
    /// Highest ring seq ever used or accepted.
    pub ring_seq_high: u64,
}

/// Inputs of the machine.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// The daemon starts, after [`super::Daemon::new`] loaded its `Durable` record.
    Boot,
    /// A packet from a peer.
    Recv {
        /// The sending daemon as stamped on the packet.
        from: Pid,
        /// The packet.
        pkt: Packet,
    },
    /// A timer fired.
    Timer(TimerKind),
    /// A client message to broadcast.
    Submit {
        /// Its id (origin must be this daemon).
        id: MsgId,
        /// Requested service.
        service: Service,
        /// Bytes.
        payload: Vec<u8>,
    },
}

/// Outputs of the machine, to be carried out in order (§5).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Send a regular or commit token to one daemon (the successor).
    SendToken {
        /// Destination.
        to: Pid,
        /// The token.
        pkt: Packet,
    },
    /// Send a packet to every configured daemon but this one.
    Broadcast(Packet),
    /// Arm (or re-arm) a timer.
    SetTimer {
        /// Which.
        kind: TimerKind,
        /// After how long.
        after: Duration,
    },
    /// Disarm a timer.
    CancelTimer(TimerKind),
    /// Deliver a client message.
    Deliver {
        /// Message id.
        id: MsgId,
        /// Daemon that sequenced it (its origin).
        sender: Pid,
        /// Service.
        service: Service,
        /// Configuration it is delivered in.
        config: ConfigId,
        /// Bytes (reassembled).
        payload: Vec<u8>,
    },
    /// Deliver a configuration change.
    DeliverConfig {
        /// Regular or transitional.
        kind: ConfigKind,
        /// Which configuration.
        id: ConfigId,
        /// Its members, sorted.
        members: Vec<Pid>,
    },
    /// Make this record durable before carrying out the next command.
    Persist(Durable),
}

/// Errors of the machine's API (never caused by packet contents, which are ignored and counted).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// A submitted message claims another daemon as its origin.
    #[error("message {0} was not submitted to this daemon ({1})")]
    ForeignSubmit(MsgId, Pid),
    /// The configuration is unusable.
    #[error("invalid ring configuration: {0}")]
    InvalidConfig(&'static str),
}
