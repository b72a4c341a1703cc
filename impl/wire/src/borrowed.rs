//! Zero-copy decoding of the receive hot path: a DATA frame viewed in place ([`DataRef`]), its
//! names and payload borrowed from the receive buffer, so delivering a message to the
//! application allocates nothing. Every other frame decodes to the owned [`ToClient`].
//!
//! The borrowed path checks exactly what the owned one checks (same layout, limits and name
//! rules; `tests/borrowed.rs` compares the two on valid and mutated frames), and
//! [`DataRef::to_owned`] gives the owned [`DataMsg`].

use sgc_model::groups::{
    ClientService, DataMsg, GroupName, MAX_DAEMON_NAME, MAX_GROUP_NAME, MAX_TARGETS, MAX_USER_NAME,
    NameError, PrivateName, Target,
};
use sgc_model::ring::NodeId;

use crate::codec::Reader;
use crate::frame::{Frame, SELF_DISCARD, bad, get_str8, kind, service_from_bit};
use crate::{MAX_MESSAGE, ToClient, WireError};

/// A private name borrowed from a frame (validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrivateNameRef<'a> {
    /// The daemon's node id.
    pub node: NodeId,
    /// The user part.
    pub user: &'a str,
    /// The daemon's name.
    pub daemon: &'a str,
}

impl PrivateNameRef<'_> {
    /// The owned name.
    pub fn to_owned(&self) -> PrivateName {
        PrivateName {
            node: self.node,
            user: self.user.to_owned(),
            daemon: self.daemon.to_owned(),
        }
    }
}

/// A multicast target borrowed from a frame (validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetRef<'a> {
    /// A group name.
    Group(&'a str),
    /// A private name.
    Private(PrivateNameRef<'a>),
}

impl TargetRef<'_> {
    /// The owned target.
    pub fn to_owned(&self) -> Target {
        match self {
            // The name was checked with the group-name rules when the frame was decoded.
            Self::Group(g) => Target::Group(GroupName::new(*g).unwrap_or_else(|_| unreachable_name())),
            Self::Private(p) => Target::Private(p.to_owned()),
        }
    }
}

/// Never called: names in a decoded frame are valid (checked by `name_ref` with the group-name
/// rules). Should that invariant break, the conversion yields this recognisable name instead of
/// panicking on data that came from the network.
#[cold]
fn unreachable_name() -> GroupName {
    GroupName::new("$invalid$").expect("a constant, valid group name")
}

/// The targets of a DATA frame, decoded lazily (they were validated with the frame).
#[derive(Clone, Copy, Debug)]
pub struct TargetsRef<'a> {
    raw: &'a [u8],
    len: usize,
}

impl<'a> TargetsRef<'a> {
    /// Number of targets (1–100).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: a multicast has at least one target.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The targets, in order.
    pub fn iter(&self) -> impl Iterator<Item = TargetRef<'a>> + 'a {
        let mut r = Reader::new(self.raw);
        (0..self.len).map_while(move |_| get_target_ref(&mut r).ok())
    }
}

/// A DATA event viewed in place.
#[derive(Clone, Copy, Debug)]
pub struct DataRef<'a> {
    /// The sending connection.
    pub sender: PrivateNameRef<'a>,
    /// Every target of the multicast.
    pub targets: TargetsRef<'a>,
    /// Its service.
    pub service: ClientService,
    /// Application message type.
    pub mess_type: i16,
    /// The payload.
    pub body: &'a [u8],
}

impl DataRef<'_> {
    /// The owned message.
    pub fn to_owned(&self) -> DataMsg {
        DataMsg {
            sender: self.sender.to_owned(),
            targets: self.targets.iter().map(|t| t.to_owned()).collect(),
            service: self.service,
            mess_type: self.mess_type,
            body: self.body.to_vec(),
        }
    }
}

/// A daemon→client frame: DATA in place, everything else owned.
#[derive(Clone, Debug)]
pub enum ToClientRef<'a> {
    /// A data event, borrowed.
    Data(DataRef<'a>),
    /// Any other frame.
    Owned(ToClient),
}

impl<'a> ToClientRef<'a> {
    /// Decode a body of this kind.
    pub fn decode_body(k: u8, body: &'a [u8]) -> Result<Self, WireError> {
        if k != kind::DATA {
            return ToClient::decode_body(k, body).map(Self::Owned);
        }
        let mut r = Reader::new(body);
        let sender = get_private_ref(&mut r)?;
        let svc = r.u8("service")?;
        if svc & SELF_DISCARD != 0 {
            return Err(bad("data service", svc));
        }
        let service = service_from_bit(svc).ok_or_else(|| bad("service", svc))?;
        let mess_type = r.i16("mess_type")?;
        let n = usize::from(r.u8("target count")?);
        if n == 0 {
            return Err(WireError::NoTargets);
        }
        if n > MAX_TARGETS {
            return Err(WireError::TooManyTargets(n));
        }
        let start = r.remaining();
        let raw_all = r.peek_rest();
        for _ in 0..n {
            get_target_ref(&mut r)?;
        }
        let raw = raw_all.get(..start - r.remaining()).unwrap_or_default();
        let len = r.u32("body length")? as usize;
        if len > MAX_MESSAGE {
            return Err(WireError::MessageTooLong(len));
        }
        let body = r.bytes(len, "body")?;
        r.finish()?;
        Ok(Self::Data(DataRef {
            sender,
            targets: TargetsRef { raw, len: n },
            service,
            mess_type,
            body,
        }))
    }

    /// The owned frame.
    pub fn into_owned(self) -> ToClient {
        match self {
            Self::Data(d) => ToClient::Event(sgc_model::groups::ClientEvent::Data(d.to_owned())),
            Self::Owned(f) => f,
        }
    }
}

/// Check a name part with the rules of `sgc_model::groups` (`'$'..='~'`, length bound) without
/// allocating.
fn name_ref<'a>(r: &mut Reader<'a>, what: &'static str, max: usize) -> Result<&'a str, WireError> {
    let s = get_str8(r, what, max)?;
    match s.chars().find(|c| !('$'..='~').contains(c)) {
        Some(found) => Err(NameError::Character { what, found }.into()),
        None => Ok(s),
    }
}

fn get_private_ref<'a>(r: &mut Reader<'a>) -> Result<PrivateNameRef<'a>, WireError> {
    Ok(PrivateNameRef {
        node: r.u16("private name node")?,
        user: name_ref(r, "user name", MAX_USER_NAME)?,
        daemon: name_ref(r, "daemon name", MAX_DAEMON_NAME)?,
    })
}

fn get_target_ref<'a>(r: &mut Reader<'a>) -> Result<TargetRef<'a>, WireError> {
    match r.u8("target kind")? {
        0 => Ok(TargetRef::Group(name_ref(r, "group name", MAX_GROUP_NAME)?)),
        1 => Ok(TargetRef::Private(get_private_ref(r)?)),
        v => Err(bad("target kind", v)),
    }
}
