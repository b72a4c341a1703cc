//! The vocabulary shared by the group layer (daemon), the flush layer (client library) and the
//! client wire protocol (`/work/shared/design/groups-and-flush.md` §1.1, §1.7, §2, §5): names,
//! group view ids, services, client requests and the events a client receives, and the inputs
//! and outputs of the group-layer machine.
//!
//! Names are validated when they are built ([`GroupName::new`], [`PrivateName::new`]), so every
//! value of these types is well formed ("parse, don't validate").

use serde::{Deserialize, Serialize};

use crate::ring::{ConfigId, NodeId, RingId};

/// Longest group name, in bytes (Spread's `MAX_GROUP_NAME` − 1).
pub const MAX_GROUP_NAME: usize = 31;
/// Longest user part of a private name.
pub const MAX_USER_NAME: usize = 10;
/// Longest daemon name.
pub const MAX_DAEMON_NAME: usize = 19;
/// Most targets of one multicast.
pub const MAX_TARGETS: usize = 100;

/// Errors of building names and requests from untrusted input.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty or too long.
    #[error("{what} must be 1..={max} bytes, got {len}")]
    Length {
        /// Which kind of name.
        what: &'static str,
        /// The bound.
        max: usize,
        /// The length given.
        len: usize,
    },
    /// A byte outside `'$'..='~'` (so `#`, space and control characters are refused).
    #[error("{what} may only hold characters '$'..='~', found {found:?}")]
    Character {
        /// Which kind of name.
        what: &'static str,
        /// The first offending character.
        found: char,
    },
    /// A private name is not of the form `#user#daemon`.
    #[error("private name {0:?} is not of the form #user#daemon")]
    PrivateShape(String),
}

fn check_part(what: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() || s.len() > max {
        return Err(NameError::Length {
            what,
            max,
            len: s.len(),
        });
    }
    match s.chars().find(|c| !('$'..='~').contains(c)) {
        Some(found) => Err(NameError::Character { what, found }),
        None => Ok(()),
    }
}

/// A group name: 1–31 characters in `'$'..='~'` (never starting with `#`, which marks private names).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    /// Validate a group name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        check_part("group name", &s, MAX_GROUP_NAME)?;
        Ok(Self(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl From<GroupName> for String {
    fn from(g: GroupName) -> Self {
        g.0
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connection's private name `#user#daemon`, globally unique: `user` is unique per daemon and
/// daemon names are unique. Ordered by daemon node first (the canonical member order of §1.3),
/// then user.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PrivateName {
    /// The daemon's configured node id (orders members by daemon).
    pub node: NodeId,
    /// The user part, 1–10 characters.
    pub user: String,
    /// The daemon's name, 1–19 characters.
    pub daemon: String,
}

impl PrivateName {
    /// Validate a private name.
    pub fn new(node: NodeId, user: impl Into<String>, daemon: impl Into<String>) -> Result<Self, NameError> {
        let (user, daemon) = (user.into(), daemon.into());
        check_part("user name", &user, MAX_USER_NAME)?;
        check_part("daemon name", &daemon, MAX_DAEMON_NAME)?;
        Ok(Self { node, user, daemon })
    }

    /// Split `#user#daemon` into its parts (the node id is looked up by the caller).
    pub fn parse_parts(s: &str) -> Result<(&str, &str), NameError> {
        let shape = || NameError::PrivateShape(s.to_owned());
        let rest = s.strip_prefix('#').ok_or_else(shape)?;
        let (user, daemon) = rest.split_once('#').ok_or_else(shape)?;
        check_part("user name", user, MAX_USER_NAME)?;
        check_part("daemon name", daemon, MAX_DAEMON_NAME)?;
        Ok((user, daemon))
    }
}

impl std::fmt::Display for PrivateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}#{}", self.user, self.daemon)
    }
}

/// Where a multicast goes: a group, or one connection (unicast to its private group).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// A light-weight group (open: the sender need not be a member).
    Group(GroupName),
    /// A connection's private group.
    Private(PrivateName),
}

/// A group view id (§1.4): the configuration it was created in and an index from an agreed,
/// configuration-wide counter of group events, so a gid is never reused, even by a group that
/// empties and is re-created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gid {
    /// The daemon configuration (regular or transitional) the view was formed in.
    pub conf: ConfigId,
    /// Position in that configuration's sequence of group events, from 1.
    pub index: u32,
}

impl std::fmt::Display for Gid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.conf, self.index)
    }
}

/// The delivery services a client may ask for (§1.8). Every client message is delivered in ring
/// sequence order, so the weaker services get the stronger guarantees for free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientService {
    /// May be lost (carried as reliable).
    Unreliable,
    /// Delivered within the configuration, no order promised.
    Reliable,
    /// Reliable, ordered per sending connection.
    Fifo,
    /// Causal order (carried as agreed).
    Causal,
    /// One total order over all agreed and safe messages.
    Agreed,
    /// Agreed, delivered once every daemon of the configuration holds it.
    Safe,
}

impl ClientService {
    /// Every service, weakest first.
    pub const ALL: [Self; 6] = [
        Self::Unreliable,
        Self::Reliable,
        Self::Fifo,
        Self::Causal,
        Self::Agreed,
        Self::Safe,
    ];

    /// The lower-case name used by the command line and JSON (`"agreed"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unreliable => "unreliable",
            Self::Reliable => "reliable",
            Self::Fifo => "fifo",
            Self::Causal => "causal",
            Self::Agreed => "agreed",
            Self::Safe => "safe",
        }
    }

    /// Parse a lower-case name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The ring service that carries it.
    pub const fn ring_service(self) -> crate::ring::Service {
        use crate::ring::Service;
        match self {
            Self::Unreliable | Self::Reliable => Service::Reliable,
            Self::Fifo => Service::Fifo,
            Self::Causal => Service::Causal,
            Self::Agreed => Service::Agreed,
            Self::Safe => Service::Safe,
        }
    }
}

/// Why a group's membership changed (§1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// A member joined.
    Join,
    /// A member left.
    Leave,
    /// A member's connection ended.
    Disconnect,
    /// Daemons were lost or merged.
    Network,
}

impl Cause {
    /// The lower-case name used in JSON (`"join"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Disconnect => "disconnect",
            Self::Network => "network",
        }
    }
}

/// Identifies one client connection at its daemon.
pub type SessionId = u64;

/// A request of a connected client (§2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientReq {
    /// Join a group.
    Join(GroupName),
    /// Leave a group.
    Leave(GroupName),
    /// Multicast to one or more targets atomically (one position in the total order).
    Send(Multicast),
    /// Disconnect cleanly.
    Disconnect,
}

/// One multicast as the client asks for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Multicast {
    /// 1..=[`MAX_TARGETS`] targets.
    pub targets: Vec<Target>,
    /// Delivery service.
    pub service: ClientService,
    /// Do not deliver to the sending connection.
    pub self_discard: bool,
    /// Application message type.
    pub mess_type: i16,
    /// Payload (a postcard byte string: same bytes as a sequence of `u8`, decoded in one copy).
    #[serde(with = "crate::ring::packing::byte_string")]
    pub body: Vec<u8>,
}

/// A data message as delivered to a client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataMsg {
    /// The sending connection.
    pub sender: PrivateName,
    /// Every target of the multicast.
    pub targets: Vec<Target>,
    /// Its service.
    pub service: ClientService,
    /// Application message type.
    pub mess_type: i16,
    /// Payload (a postcard byte string: same bytes as a sequence of `u8`, decoded in one copy).
    #[serde(with = "crate::ring::packing::byte_string")]
    pub body: Vec<u8>,
}

/// A regular membership of one group as delivered to one member (§1.7).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The group.
    pub group: GroupName,
    /// The view id.
    pub gid: Gid,
    /// Why it changed.
    pub cause: Cause,
    /// Members in canonical order (daemon, then user).
    pub members: Vec<PrivateName>,
    /// The vs_sets: for join/leave/disconnect one set holding the changed member; for network the
    /// sets of members that moved together, which partition `members`.
    pub vs_sets: Vec<Vec<PrivateName>>,
    /// Index in `vs_sets` of the receiver's own set (for network: who came along with it).
    pub my_vs: usize,
}

/// Why a client request was refused (sent back as [`ClientEvent::Reject`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The client is in too many groups.
    TooManyGroups,
    /// The group has too many members at this daemon.
    GroupFull,
    /// Access control refused it.
    Denied,
    /// The private target names no known daemon.
    UnknownTarget,
}

/// What a connected client receives (§1.7).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientEvent {
    /// A data message.
    Data(DataMsg),
    /// A regular membership.
    Membership(Membership),
    /// The transitional signal: messages that follow, up to the next membership of the group, lack
    /// full agreed/safe guarantees over the old view.
    Transition {
        /// The group.
        group: GroupName,
        /// The view id the signal belongs to.
        gid: Gid,
    },
    /// The receiver's own leave took effect; nothing of this group follows.
    SelfLeave(GroupName),
    /// A request was refused.
    Reject {
        /// Why.
        reason: RejectReason,
        /// The refused request.
        req: ClientReq,
    },
    /// Optimized EVS: a message that could not be delivered under the receiver's current group
    /// key (only from a daemon in `optimized-evs` mode, only to sessions of protocol ≥ 1.2).
    Undecryptable(UndecryptableMsg),
}

/// A message reported instead of delivered (Optimized EVS, [`crate::keys::evs`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UndecryptableMsg {
    /// Its group.
    pub group: GroupName,
    /// Its sender.
    pub sender: PrivateName,
    /// Its application type.
    pub mess_type: i16,
    /// The key id in its clear header, if it has one.
    pub key_id: Option<u64>,
    /// Why it could not be delivered.
    pub reason: crate::keys::Undecryptable,
}

/// Why the daemon ends a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KillReason {
    /// Its out-queue reached the bound: it does not read fast enough.
    SlowClient,
    /// It broke the protocol.
    ProtocolViolation,
}

/// Why a connection attempt is refused (§2; Spread's numbers in the wire protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConnectRefusal {
    /// The requested user name is already connected to this daemon.
    NotUnique,
    /// The name is malformed.
    IllegalName,
    /// The daemon has too many sessions.
    Quota,
    /// Authentication or access control failed.
    Auth,
    /// Unsupported protocol version.
    Version,
}

/// A message the group layer orders on the ring (§1.2, §1.6); the daemon that sent it is the
/// ring message's origin.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RingMsg {
    /// `member` joins `group`.
    Join {
        /// The group.
        group: GroupName,
        /// The joiner.
        member: PrivateName,
    },
    /// `member` leaves `group`.
    Leave {
        /// The group.
        group: GroupName,
        /// The leaver.
        member: PrivateName,
    },
    /// `member`'s session ended: it leaves every group.
    Kill {
        /// The connection.
        member: PrivateName,
    },
    /// After a merge: the sender's local members of every group, for the new regular ring `conf`.
    Groups {
        /// The regular ring this announcement is for.
        conf: RingId,
        /// Per group: the gid the sender last had for it and the sender's local members.
        groups: Vec<GroupAnnounce>,
    },
    /// A client multicast.
    Data(DataMsg),
}

/// One group in a [`RingMsg::Groups`] announcement.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupAnnounce {
    /// The group.
    pub group: GroupName,
    /// The gid of the view the sender's members were last in.
    pub gid: Gid,
    /// The sender's local members, sorted.
    pub members: Vec<PrivateName>,
}

/// What the ring delivers to the group layer, in ring order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RingDelivery {
    /// An ordered message.
    Message {
        /// The daemon that sent it.
        origin: NodeId,
        /// The configuration it is delivered in.
        config: ConfigId,
        /// The message.
        msg: RingMsg,
    },
    /// A transitional configuration (members sorted by node).
    Transitional {
        /// Its id.
        id: ConfigId,
        /// Its members.
        members: Vec<NodeId>,
    },
    /// A regular configuration (members sorted by node).
    Regular {
        /// Its id.
        id: ConfigId,
        /// Its members.
        members: Vec<NodeId>,
    },
}

/// Inputs of the group layer (§5).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupIn {
    /// A client asks to connect as `user` (`None`: assign a name).
    Connect {
        /// The new session.
        sess: SessionId,
        /// Requested user part.
        user: Option<String>,
        /// Whether it wants membership events.
        wants_membership: bool,
    },
    /// A request of a connected session.
    Client {
        /// The session.
        sess: SessionId,
        /// Its request.
        req: ClientReq,
    },
    /// The session's connection ended (or the daemon killed it).
    SessionClosed {
        /// The session.
        sess: SessionId,
    },
    /// The driver wrote `n` queued events of the session to its socket.
    Drained {
        /// The session.
        sess: SessionId,
        /// How many.
        n: u32,
    },
    /// The ring delivered something.
    Ring(RingDelivery),
}

/// Outputs of the group layer, to be carried out in order (§5).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupOut {
    /// The connection is accepted under this private name.
    Accepted {
        /// The session.
        sess: SessionId,
        /// Its private name.
        name: PrivateName,
    },
    /// The connection is refused.
    Refused {
        /// The session.
        sess: SessionId,
        /// Why.
        why: ConnectRefusal,
    },
    /// Order a message on the ring.
    RingSend {
        /// The message.
        msg: RingMsg,
        /// With which ring service.
        service: crate::ring::Service,
    },
    /// Queue an event for a session.
    ToSession {
        /// The session.
        sess: SessionId,
        /// The event.
        ev: ClientEvent,
    },
    /// Close a session.
    Kill {
        /// The session.
        sess: SessionId,
        /// Why.
        why: KillReason,
    },
    /// Stop (`true`) or resume (`false`) reading client sockets.
    BlockClients(bool),
    /// A view of a group was installed (at every daemon, whether or not it has local members;
    /// only with [`super::GroupConfig::report_views`]). It comes before the members'
    /// notifications of that view.
    View {
        /// The group.
        group: GroupName,
        /// Its new view.
        gid: Gid,
    },
}
