//! The frames of the protocol and their byte layouts (`docs/protocol.md` §3–§5).
//!
//! A frame is `u32 LE length` + `u8 kind` + body, where `length` counts the kind byte and the
//! body. [`ToDaemon`] are the frames a client sends (hello, then requests), [`ToClient`] the
//! frames a daemon sends (accept or refuse, then events, and a last `Closing`). Each direction has
//! its own frame limit ([`MAX_TO_DAEMON_FRAME`], [`MAX_TO_CLIENT_FRAME`]); kinds of the other
//! direction are unknown kinds.
//!
//! Encoders append one frame to a [`WireBuf`] and leave the buffer unchanged when they fail;
//! decoders read one frame from the front of a byte slice and say how many bytes it used.

use sgc_model::groups::{
    Cause, ClientEvent, ClientReq, ClientService, ConnectRefusal, DataMsg, Gid, GroupName, KillReason,
    MAX_DAEMON_NAME, MAX_GROUP_NAME, MAX_TARGETS, MAX_USER_NAME, Membership, Multicast, PrivateName,
    RejectReason, Target, UndecryptableMsg,
};
use sgc_model::keys::Undecryptable;
use sgc_model::ring::{ConfigId, Pid, RingId};

use crate::codec::{Put, Reader, WireBuf};
use crate::{MAX_MESSAGE, PROTOCOL_VERSION, Version, WireError};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// The first four bytes of a hello body.
pub const MAGIC: [u8; 4] = *b"SGC1";
/// Largest client→daemon frame (`length` value): a full-size multicast with 100 targets fits.
pub const MAX_TO_DAEMON_FRAME: usize = MAX_MESSAGE + 16 * 1024;
/// Largest daemon→client frame (`length` value): data as above; memberships of up to about
/// 240,000 members.
pub const MAX_TO_CLIENT_FRAME: usize = 16 << 20;
/// `SELF_DISCARD` bit of the service byte (Spread's value).
pub const SELF_DISCARD: u8 = 0x40;

/// Frame kinds (the byte after the length prefix).
pub mod kind {
    /// Client hello (client→daemon, first frame).
    pub const HELLO: u8 = 0x01;
    /// Session accepted (daemon→client, first frame).
    pub const ACCEPT: u8 = 0x02;
    /// Session refused (daemon→client, first and last frame).
    pub const REFUSE: u8 = 0x03;
    /// Join a group.
    pub const JOIN: u8 = 0x10;
    /// Leave a group.
    pub const LEAVE: u8 = 0x11;
    /// Multicast.
    pub const SEND: u8 = 0x12;
    /// Disconnect cleanly.
    pub const DISCONNECT: u8 = 0x13;
    /// A data message.
    pub const DATA: u8 = 0x20;
    /// A regular membership.
    pub const MEMBERSHIP: u8 = 0x21;
    /// A transitional signal.
    pub const TRANSITION: u8 = 0x22;
    /// The receiver's own leave.
    pub const SELF_LEAVE: u8 = 0x23;
    /// A refused request.
    pub const REJECT: u8 = 0x24;
    /// A regular membership with the group key of its view (protocol 1.1, security on).
    pub const KEYED_MEMBERSHIP: u8 = 0x25;
    /// A message the daemon could not deliver under the current group key (protocol 1.2,
    /// Optimized EVS).
    pub const UNDECRYPTABLE: u8 = 0x26;
    /// The daemon closes the session (last frame).
    pub const CLOSING: u8 = 0x2f;
}

/// The client's first frame (`docs/protocol.md` §3.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The client's protocol version.
    pub version: Version,
    /// Whether the session wants membership events (flags bit 0).
    pub wants_membership: bool,
    /// The requested user part of the private name; `None` asks the daemon to assign one.
    pub user: Option<String>,
}

impl Hello {
    /// A hello of this library's protocol version.
    pub fn new(user: Option<&str>, wants_membership: bool) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            wants_membership,
            user: user.map(str::to_owned),
        }
    }
}

/// The daemon's answer to a hello it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accept {
    /// The daemon's protocol version.
    pub version: Version,
    /// The session's private name.
    pub name: PrivateName,
}

/// A frame sent by a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ToDaemon {
    /// The first frame of a connection.
    Hello(Hello),
    /// A request of an accepted session.
    Req(ClientReq),
}

/// Longest group key of a KEYED_MEMBERSHIP frame, in bytes.
pub const MAX_GROUP_KEY: usize = 64;

/// The group key part of a KEYED_MEMBERSHIP frame (`docs/protocol.md` §5, protocol 1.1): the
/// key of the membership's view, `K(g, v) = MAC(K_servers, g || view_id)`. The view id is the
/// membership's gid, the ring whose daemons agreed the servers' key and its refresh count.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GroupKeyInfo {
    /// The ring whose daemons agreed the servers' key the group key derives from.
    pub ring: RingId,
    /// Refreshes of that servers' key.
    pub refresh: u32,
    /// The key's public id.
    pub key_id: u64,
    /// A refresh without membership change (same members, new key).
    pub artificial: bool,
    /// The key (1 to [`MAX_GROUP_KEY`] bytes). Never log it.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for GroupKeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupKeyInfo")
            .field("ring", &self.ring)
            .field("refresh", &self.refresh)
            .field("key_id", &format_args!("{:016x}", self.key_id))
            .field("artificial", &self.artificial)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .finish()
    }
}

/// A frame sent by a daemon.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ToClient {
    /// The session is accepted.
    Accept(Accept),
    /// The session is refused; the daemon closes the connection.
    Refuse(ConnectRefusal),
    /// An event of an accepted session.
    Event(ClientEvent),
    /// A regular membership with its group key (protocol 1.1).
    KeyedMembership(Membership, GroupKeyInfo),
    /// The daemon closes the session for this reason.
    Closing(KillReason),
}

/// One direction's frame type, for [`crate::FrameDecoder`].
pub trait Frame: Sized {
    /// The direction's frame limit (value of the length prefix).
    const MAX_FRAME: usize;
    /// Decode a body of this kind.
    fn decode_body(kind: u8, body: &[u8]) -> Result<Self, WireError>;
    /// Append the frame to `buf`.
    fn encode<B: WireBuf + ?Sized>(&self, buf: &mut B) -> Result<(), WireError>;
}

impl Frame for ToDaemon {
    const MAX_FRAME: usize = MAX_TO_DAEMON_FRAME;
    fn decode_body(kind: u8, body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let frame = if kind == kind::HELLO {
            Self::Hello(get_hello(&mut r)?)
        } else {
            Self::Req(get_req(kind, &mut r)?)
        };
        r.finish()?;
        Ok(frame)
    }
    fn encode<B: WireBuf + ?Sized>(&self, buf: &mut B) -> Result<(), WireError> {
        match self {
            Self::Hello(h) => encode_hello(h, buf),
            Self::Req(req) => encode_req(req, buf),
        }
    }
}

impl Frame for ToClient {
    const MAX_FRAME: usize = MAX_TO_CLIENT_FRAME;
    fn decode_body(kind: u8, body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let frame = match kind {
            kind::ACCEPT => Self::Accept(Accept {
                version: get_version(&mut r)?,
                name: get_private(&mut r)?,
            }),
            kind::REFUSE => Self::Refuse(refusal_from_code(r.u8("refusal code")? as i8)?),
            kind::CLOSING => Self::Closing(get_kill(&mut r)?),
            kind::KEYED_MEMBERSHIP => {
                let m = get_membership(&mut r)?;
                Self::KeyedMembership(m, get_key_info(&mut r)?)
            }
            _ => Self::Event(get_event(kind, &mut r)?),
        };
        r.finish()?;
        Ok(frame)
    }
    fn encode<B: WireBuf + ?Sized>(&self, buf: &mut B) -> Result<(), WireError> {
        match self {
            Self::Accept(a) => encode_accept(a, buf),
            Self::Refuse(why) => encode_refuse(*why, buf),
            Self::Event(ev) => encode_event(ev, buf),
            Self::KeyedMembership(m, k) => encode_keyed_membership(m, k, buf),
            Self::Closing(why) => encode_closing(*why, buf),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Framing

/// One complete frame found at the front of a buffer, not yet decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// The kind byte.
    pub kind: u8,
    /// The body (after the kind byte).
    pub body: &'a [u8],
    /// Bytes of the buffer the frame occupies, length prefix included.
    pub used: usize,
}

/// Split the first complete frame off `buf`: `Ok(None)` while more bytes are needed.
/// `max` is the direction's frame limit.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<RawFrame<'_>>, WireError> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*prefix) as usize;
    if len == 0 {
        return Err(WireError::EmptyFrame);
    }
    if len > max {
        return Err(WireError::FrameTooLong { len, max });
    }
    let used = LEN_PREFIX + len;
    let Some(frame) = buf.get(LEN_PREFIX..used) else {
        return Ok(None);
    };
    match frame.split_first() {
        Some((&kind, body)) => Ok(Some(RawFrame { kind, body, used })),
        None => Err(WireError::EmptyFrame),
    }
}

/// Decode the first complete frame of `buf`: `Ok(None)` while it is incomplete, else the frame
/// and the bytes it used.
pub fn decode_frame<F: Frame>(buf: &[u8]) -> Result<Option<(F, usize)>, WireError> {
    match split_frame(buf, F::MAX_FRAME)? {
        None => Ok(None),
        Some(raw) => Ok(Some((F::decode_body(raw.kind, raw.body)?, raw.used))),
    }
}

/// Write one frame: prefix placeholder, kind, `body`, then patch the length; undo on failure.
fn frame<B, F>(buf: &mut B, kind: u8, max: usize, body: F) -> Result<(), WireError>
where
    B: WireBuf + ?Sized,
    F: FnOnce(&mut B) -> Result<(), WireError>,
{
    let start = buf.pos();
    buf.put(&[0; LEN_PREFIX]);
    buf.u8(kind);
    let done = body(buf).and_then(|()| {
        let len = buf.pos() - start - LEN_PREFIX;
        if len > max {
            return Err(WireError::FrameTooLong { len, max });
        }
        // `len <= max <= 16 MiB` fits in a u32.
        buf.patch_u32(start, len as u32);
        Ok(())
    });
    if done.is_err() {
        buf.cut(start);
    }
    done
}

// ---------------------------------------------------------------------------------------------
// Encoders

/// Append a hello frame.
pub fn encode_hello<B: WireBuf + ?Sized>(h: &Hello, buf: &mut B) -> Result<(), WireError> {
    let user = h.user.as_deref().unwrap_or("");
    if user.len() > MAX_USER_NAME {
        return Err(sgc_model::groups::NameError::Length {
            what: "user name",
            max: MAX_USER_NAME,
            len: user.len(),
        }
        .into());
    }
    frame(buf, kind::HELLO, MAX_TO_DAEMON_FRAME, |b| {
        b.put(&MAGIC);
        put_version(b, h.version);
        b.u8(u8::from(h.wants_membership));
        put_str8(b, user);
        Ok(())
    })
}

/// Append a request frame.
pub fn encode_req<B: WireBuf + ?Sized>(req: &ClientReq, buf: &mut B) -> Result<(), WireError> {
    match req {
        ClientReq::Send(m) => encode_send(buf, &m.targets, m.service, m.self_discard, m.mess_type, &m.body),
        _ => frame(buf, req_kind(req), MAX_TO_DAEMON_FRAME, |b| put_req_body(b, req)),
    }
}

/// Append a multicast request frame straight from borrowed parts (no [`Multicast`] is built).
pub fn encode_send<B: WireBuf + ?Sized>(
    buf: &mut B,
    targets: &[Target],
    service: ClientService,
    self_discard: bool,
    mess_type: i16,
    body: &[u8],
) -> Result<(), WireError> {
    check_send(targets, body)?;
    buf.reserve_more(LEN_PREFIX + 16 + targets.len() * 34 + body.len());
    frame(buf, kind::SEND, MAX_TO_DAEMON_FRAME, |b| {
        put_send(b, targets, service, self_discard, mess_type, body);
        Ok(())
    })
}

/// Append an accept frame.
pub fn encode_accept<B: WireBuf + ?Sized>(a: &Accept, buf: &mut B) -> Result<(), WireError> {
    frame(buf, kind::ACCEPT, MAX_TO_CLIENT_FRAME, |b| {
        put_version(b, a.version);
        put_private(b, &a.name)
    })
}

/// Append a refusal frame.
pub fn encode_refuse<B: WireBuf + ?Sized>(why: ConnectRefusal, buf: &mut B) -> Result<(), WireError> {
    frame(buf, kind::REFUSE, MAX_TO_CLIENT_FRAME, |b| {
        b.u8(refusal_code(why) as u8);
        Ok(())
    })
}

/// Append a closing frame.
pub fn encode_closing<B: WireBuf + ?Sized>(why: KillReason, buf: &mut B) -> Result<(), WireError> {
    frame(buf, kind::CLOSING, MAX_TO_CLIENT_FRAME, |b| {
        b.u8(kill_code(why));
        Ok(())
    })
}

/// Append an event frame.
pub fn encode_event<B: WireBuf + ?Sized>(ev: &ClientEvent, buf: &mut B) -> Result<(), WireError> {
    match ev {
        ClientEvent::Data(d) => encode_data(buf, &d.sender, &d.targets, d.service, d.mess_type, &d.body),
        ClientEvent::Membership(m) => frame(buf, kind::MEMBERSHIP, MAX_TO_CLIENT_FRAME, |b| {
            put_membership(b, m)
        }),
        ClientEvent::Transition { group, gid } => frame(buf, kind::TRANSITION, MAX_TO_CLIENT_FRAME, |b| {
            put_group(b, group);
            put_gid(b, gid);
            Ok(())
        }),
        ClientEvent::SelfLeave(group) => frame(buf, kind::SELF_LEAVE, MAX_TO_CLIENT_FRAME, |b| {
            put_group(b, group);
            Ok(())
        }),
        ClientEvent::Reject { reason, req } => {
            if let ClientReq::Send(m) = req {
                check_send(&m.targets, &m.body)?;
            }
            frame(buf, kind::REJECT, MAX_TO_CLIENT_FRAME, |b| {
                b.u8(reject_code(reason));
                b.u8(req_kind(req));
                put_req_body(b, req)
            })
        }
        ClientEvent::Undecryptable(u) => frame(buf, kind::UNDECRYPTABLE, MAX_TO_CLIENT_FRAME, |b| {
            put_group(b, &u.group);
            put_private(b, &u.sender)?;
            b.i16(u.mess_type);
            b.u8(u.reason.code());
            b.u8(u8::from(u.key_id.is_some()));
            b.u64(u.key_id.unwrap_or(0));
            Ok(())
        }),
    }
}

/// Append a keyed membership frame (protocol 1.1; only to sessions that announced minor ≥ 1).
pub fn encode_keyed_membership<B: WireBuf + ?Sized>(
    m: &Membership,
    k: &GroupKeyInfo,
    buf: &mut B,
) -> Result<(), WireError> {
    if k.key.is_empty() || k.key.len() > MAX_GROUP_KEY {
        return Err(bad(
            "group key length",
            i64::try_from(k.key.len()).unwrap_or(i64::MAX),
        ));
    }
    frame(buf, kind::KEYED_MEMBERSHIP, MAX_TO_CLIENT_FRAME, |b| {
        put_membership(b, m)?;
        b.u8(u8::from(k.artificial));
        put_ring(b, &k.ring);
        b.u32(k.refresh);
        b.u64(k.key_id);
        b.u8(k.key.len() as u8);
        b.put(&k.key);
        Ok(())
    })
}

fn put_membership<B: WireBuf + ?Sized>(b: &mut B, m: &Membership) -> Result<(), WireError> {
    put_group(b, &m.group);
    put_gid(b, &m.gid);
    b.u8(cause_code(m.cause));
    put_names(b, &m.members)?;
    b.u32(len32(m.vs_sets.len()));
    for set in &m.vs_sets {
        put_names(b, set)?;
    }
    let my_vs = u32::try_from(m.my_vs).map_err(|_| bad("my_vs", i64::MAX))?;
    b.u32(my_vs);
    Ok(())
}

/// Append a data event frame straight from borrowed parts (no [`DataMsg`] is built).
pub fn encode_data<B: WireBuf + ?Sized>(
    buf: &mut B,
    sender: &PrivateName,
    targets: &[Target],
    service: ClientService,
    mess_type: i16,
    body: &[u8],
) -> Result<(), WireError> {
    check_send(targets, body)?;
    buf.reserve_more(LEN_PREFIX + 48 + targets.len() * 34 + body.len());
    frame(buf, kind::DATA, MAX_TO_CLIENT_FRAME, |b| {
        put_private(b, sender)?;
        put_send(b, targets, service, false, mess_type, body);
        Ok(())
    })
}

fn check_send(targets: &[Target], body: &[u8]) -> Result<(), WireError> {
    if targets.is_empty() {
        return Err(WireError::NoTargets);
    }
    if targets.len() > MAX_TARGETS {
        return Err(WireError::TooManyTargets(targets.len()));
    }
    if body.len() > MAX_MESSAGE {
        return Err(WireError::MessageTooLong(body.len()));
    }
    for t in targets {
        if let Target::Private(p) = t {
            check_private(p)?;
        }
    }
    Ok(())
}

const fn req_kind(req: &ClientReq) -> u8 {
    match req {
        ClientReq::Join(_) => kind::JOIN,
        ClientReq::Leave(_) => kind::LEAVE,
        ClientReq::Send(_) => kind::SEND,
        ClientReq::Disconnect => kind::DISCONNECT,
    }
}

fn put_req_body<B: WireBuf + ?Sized>(b: &mut B, req: &ClientReq) -> Result<(), WireError> {
    match req {
        ClientReq::Join(g) | ClientReq::Leave(g) => put_group(b, g),
        ClientReq::Send(m) => {
            check_send(&m.targets, &m.body)?;
            put_send(b, &m.targets, m.service, m.self_discard, m.mess_type, &m.body);
        }
        ClientReq::Disconnect => {}
    }
    Ok(())
}

/// service|flags, mess_type, targets, body — shared by requests and data events. The targets
/// have been checked by [`check_send`].
fn put_send<B: WireBuf + ?Sized>(
    b: &mut B,
    targets: &[Target],
    service: ClientService,
    self_discard: bool,
    mess_type: i16,
    body: &[u8],
) {
    b.u8(service_bit(service) | if self_discard { SELF_DISCARD } else { 0 });
    b.i16(mess_type);
    b.u8(targets.len() as u8);
    for t in targets {
        match t {
            Target::Group(g) => {
                b.u8(0);
                put_group(b, g);
            }
            Target::Private(p) => {
                b.u8(1);
                put_private_unchecked(b, p);
            }
        }
    }
    b.u32(body.len() as u32);
    b.put(body);
}

fn put_version<B: WireBuf + ?Sized>(b: &mut B, v: Version) {
    b.put(&[v.major, v.minor, v.patch]);
}

/// `u8 len` + bytes; callers guarantee `s.len() <= 255`.
fn put_str8<B: WireBuf + ?Sized>(b: &mut B, s: &str) {
    b.u8(s.len() as u8);
    b.put(s.as_bytes());
}

fn put_group<B: WireBuf + ?Sized>(b: &mut B, g: &GroupName) {
    // A GroupName holds 1..=31 bytes by construction.
    put_str8(b, g.as_str());
}

fn check_private(p: &PrivateName) -> Result<(), WireError> {
    for (what, s, max) in [
        ("user name", &p.user, MAX_USER_NAME),
        ("daemon name", &p.daemon, MAX_DAEMON_NAME),
    ] {
        if s.is_empty() || s.len() > max {
            let len = s.len();
            return Err(sgc_model::groups::NameError::Length { what, max, len }.into());
        }
    }
    Ok(())
}

fn put_private<B: WireBuf + ?Sized>(b: &mut B, p: &PrivateName) -> Result<(), WireError> {
    check_private(p)?;
    put_private_unchecked(b, p);
    Ok(())
}

fn put_private_unchecked<B: WireBuf + ?Sized>(b: &mut B, p: &PrivateName) {
    b.u16(p.node);
    put_str8(b, &p.user);
    put_str8(b, &p.daemon);
}

fn put_names<B: WireBuf + ?Sized>(b: &mut B, names: &[PrivateName]) -> Result<(), WireError> {
    b.u32(len32(names.len()));
    names.iter().try_for_each(|p| put_private(b, p))
}

/// A count as `u32`; larger values saturate and then fail the frame limit check.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_ring<B: WireBuf + ?Sized>(b: &mut B, r: &RingId) {
    b.u64(r.seq);
    b.u16(r.rep.node);
    b.u32(r.rep.inc);
}

fn put_gid<B: WireBuf + ?Sized>(b: &mut B, gid: &Gid) {
    match gid.conf {
        ConfigId::Regular(r) => {
            b.u8(0);
            put_ring(b, &r);
        }
        ConfigId::Transitional(new, old) => {
            b.u8(1);
            put_ring(b, &new);
            put_ring(b, &old);
        }
    }
    b.u32(gid.index);
}

// ---------------------------------------------------------------------------------------------
// Decoders

fn get_version(r: &mut Reader<'_>) -> Result<Version, WireError> {
    Ok(Version {
        major: r.u8("version")?,
        minor: r.u8("version")?,
        patch: r.u8("version")?,
    })
}

fn get_hello(r: &mut Reader<'_>) -> Result<Hello, WireError> {
    if r.bytes(MAGIC.len(), "magic")? != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = get_version(r)?;
    let flags = r.u8("hello flags")?;
    let len = usize::from(r.u8("user name length")?);
    let raw = r.bytes(len, "user name")?;
    let user = if len == 0 {
        None
    } else {
        let s = std::str::from_utf8(raw).map_err(|_| WireError::NotUtf8 { what: "user name" })?;
        // Validated with the private-name rules (the daemon part is a placeholder).
        PrivateName::new(0, s, "x")?;
        Some(s.to_owned())
    };
    Ok(Hello {
        version,
        wants_membership: flags & 1 != 0,
        user,
    })
}

pub(crate) fn get_str8<'a>(r: &mut Reader<'a>, what: &'static str, max: usize) -> Result<&'a str, WireError> {
    let len = usize::from(r.u8(what)?);
    if len == 0 || len > max {
        return Err(sgc_model::groups::NameError::Length { what, max, len }.into());
    }
    std::str::from_utf8(r.bytes(len, what)?).map_err(|_| WireError::NotUtf8 { what })
}

fn get_group(r: &mut Reader<'_>) -> Result<GroupName, WireError> {
    Ok(GroupName::new(get_str8(r, "group name", MAX_GROUP_NAME)?)?)
}

fn get_private(r: &mut Reader<'_>) -> Result<PrivateName, WireError> {
    let node = r.u16("private name node")?;
    let user = get_str8(r, "user name", MAX_USER_NAME)?;
    let daemon = get_str8(r, "daemon name", MAX_DAEMON_NAME)?;
    Ok(PrivateName::new(node, user, daemon)?)
}

/// Smallest encoded private name: node (2) + two 1-byte names with their lengths (4).
const MIN_PRIVATE: usize = 6;

fn get_names(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<PrivateName>, WireError> {
    let n = r.count(MIN_PRIVATE, what)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get_private(r)?);
    }
    Ok(out)
}

fn get_ring(r: &mut Reader<'_>) -> Result<RingId, WireError> {
    Ok(RingId {
        seq: r.u64("ring seq")?,
        rep: Pid::new(r.u16("ring rep node")?, r.u32("ring rep incarnation")?),
    })
}

fn get_gid(r: &mut Reader<'_>) -> Result<Gid, WireError> {
    let conf = match r.u8("gid configuration kind")? {
        0 => ConfigId::Regular(get_ring(r)?),
        1 => ConfigId::Transitional(get_ring(r)?, get_ring(r)?),
        v => return Err(bad("gid configuration kind", v)),
    };
    Ok(Gid {
        conf,
        index: r.u32("gid index")?,
    })
}

pub(crate) fn bad(what: &'static str, value: impl Into<i64>) -> WireError {
    WireError::BadValue {
        what,
        value: value.into(),
    }
}

/// The parts shared by a multicast request and a data event.
struct SendParts {
    service: ClientService,
    self_discard: bool,
    mess_type: i16,
    targets: Vec<Target>,
    body: Vec<u8>,
}

fn get_send(r: &mut Reader<'_>) -> Result<SendParts, WireError> {
    let svc = r.u8("service")?;
    let service = service_from_bit(svc & !SELF_DISCARD).ok_or_else(|| bad("service", svc))?;
    let mess_type = r.i16("mess_type")?;
    let n = usize::from(r.u8("target count")?);
    if n == 0 {
        return Err(WireError::NoTargets);
    }
    if n > MAX_TARGETS {
        return Err(WireError::TooManyTargets(n));
    }
    let mut targets = Vec::with_capacity(n);
    for _ in 0..n {
        targets.push(match r.u8("target kind")? {
            0 => Target::Group(get_group(r)?),
            1 => Target::Private(get_private(r)?),
            v => return Err(bad("target kind", v)),
        });
    }
    let len = r.u32("body length")? as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::MessageTooLong(len));
    }
    let body = r.bytes(len, "body")?.to_vec();
    Ok(SendParts {
        service,
        self_discard: svc & SELF_DISCARD != 0,
        mess_type,
        targets,
        body,
    })
}

fn get_req(kind: u8, r: &mut Reader<'_>) -> Result<ClientReq, WireError> {
    Ok(match kind {
        kind::JOIN => ClientReq::Join(get_group(r)?),
        kind::LEAVE => ClientReq::Leave(get_group(r)?),
        kind::DISCONNECT => ClientReq::Disconnect,
        kind::SEND => {
            let s = get_send(r)?;
            ClientReq::Send(Multicast {
                targets: s.targets,
                service: s.service,
                self_discard: s.self_discard,
                mess_type: s.mess_type,
                body: s.body,
            })
        }
        k => return Err(WireError::UnknownKind(k)),
    })
}

fn get_event(kind: u8, r: &mut Reader<'_>) -> Result<ClientEvent, WireError> {
    Ok(match kind {
        kind::DATA => {
            let sender = get_private(r)?;
            let s = get_send(r)?;
            if s.self_discard {
                return Err(bad(
                    "data service",
                    i64::from(SELF_DISCARD | service_bit(s.service)),
                ));
            }
            ClientEvent::Data(DataMsg {
                sender,
                targets: s.targets,
                service: s.service,
                mess_type: s.mess_type,
                body: s.body,
            })
        }
        kind::MEMBERSHIP => ClientEvent::Membership(get_membership(r)?),
        kind::TRANSITION => ClientEvent::Transition {
            group: get_group(r)?,
            gid: get_gid(r)?,
        },
        kind::SELF_LEAVE => ClientEvent::SelfLeave(get_group(r)?),
        kind::REJECT => {
            let reason = get_reject(r)?;
            let inner = r.u8("rejected request kind")?;
            ClientEvent::Reject {
                reason,
                req: get_req(inner, r)?,
            }
        }
        kind::UNDECRYPTABLE => {
            let group = get_group(r)?;
            let sender = get_private(r)?;
            let mess_type = r.i16("mess_type")?;
            let code = r.u8("undecryptable reason")?;
            let reason = Undecryptable::from_code(code).ok_or_else(|| bad("undecryptable reason", code))?;
            let has_key = r.u8("key id flag")?;
            let key_id = r.u64("key id")?;
            let key_id = match has_key {
                0 => None,
                1 => Some(key_id),
                f => return Err(bad("key id flag", f)),
            };
            ClientEvent::Undecryptable(UndecryptableMsg {
                group,
                sender,
                mess_type,
                key_id,
                reason,
            })
        }
        k => return Err(WireError::UnknownKind(k)),
    })
}

fn get_membership(r: &mut Reader<'_>) -> Result<Membership, WireError> {
    let group = get_group(r)?;
    let gid = get_gid(r)?;
    let cause = get_cause(r)?;
    let members = get_names(r, "members")?;
    let n = r.count(4, "vs_set count")?;
    let mut vs_sets = Vec::with_capacity(n);
    for _ in 0..n {
        vs_sets.push(get_names(r, "vs_set")?);
    }
    let my_vs = r.u32("my_vs")? as usize;
    Ok(Membership {
        group,
        gid,
        cause,
        members,
        vs_sets,
        my_vs,
    })
}

fn get_key_info(r: &mut Reader<'_>) -> Result<GroupKeyInfo, WireError> {
    let flags = r.u8("key flags")?;
    if flags > 1 {
        return Err(bad("key flags", flags));
    }
    let ring = get_ring(r)?;
    let refresh = r.u32("key refresh")?;
    let key_id = r.u64("key id")?;
    let len = usize::from(r.u8("group key length")?);
    if len == 0 || len > MAX_GROUP_KEY {
        return Err(bad("group key length", i64::try_from(len).unwrap_or(i64::MAX)));
    }
    let key = r.bytes(len, "group key")?.to_vec();
    Ok(GroupKeyInfo {
        ring,
        refresh,
        key_id,
        artificial: flags & 1 != 0,
        key,
    })
}

// ---------------------------------------------------------------------------------------------
// Enumerations

/// The service byte of a service (Spread's bit values).
pub const fn service_bit(s: ClientService) -> u8 {
    match s {
        ClientService::Unreliable => 0x01,
        ClientService::Reliable => 0x02,
        ClientService::Fifo => 0x04,
        ClientService::Causal => 0x08,
        ClientService::Agreed => 0x10,
        ClientService::Safe => 0x20,
    }
}

pub(crate) fn service_from_bit(b: u8) -> Option<ClientService> {
    ClientService::ALL.into_iter().find(|s| service_bit(*s) == b)
}

/// Spread's error number of a connection refusal.
pub const fn refusal_code(why: ConnectRefusal) -> i8 {
    match why {
        ConnectRefusal::Quota => -3,
        ConnectRefusal::IllegalName => -5,
        ConnectRefusal::NotUnique => -6,
        ConnectRefusal::Version => -7,
        ConnectRefusal::Auth => -9,
    }
}

/// The refusal of a Spread error number.
pub fn refusal_from_code(code: i8) -> Result<ConnectRefusal, WireError> {
    Ok(match code {
        -3 => ConnectRefusal::Quota,
        -5 => ConnectRefusal::IllegalName,
        -6 => ConnectRefusal::NotUnique,
        -7 => ConnectRefusal::Version,
        -9 => ConnectRefusal::Auth,
        v => return Err(bad("refusal code", v)),
    })
}

const fn kill_code(why: KillReason) -> u8 {
    match why {
        KillReason::SlowClient => 1,
        KillReason::ProtocolViolation => 2,
    }
}

fn get_kill(r: &mut Reader<'_>) -> Result<KillReason, WireError> {
    match r.u8("closing reason")? {
        1 => Ok(KillReason::SlowClient),
        2 => Ok(KillReason::ProtocolViolation),
        v => Err(bad("closing reason", v)),
    }
}

const fn cause_code(c: Cause) -> u8 {
    match c {
        Cause::Join => 1,
        Cause::Leave => 2,
        Cause::Disconnect => 3,
        Cause::Network => 4,
    }
}

fn get_cause(r: &mut Reader<'_>) -> Result<Cause, WireError> {
    match r.u8("cause")? {
        1 => Ok(Cause::Join),
        2 => Ok(Cause::Leave),
        3 => Ok(Cause::Disconnect),
        4 => Ok(Cause::Network),
        v => Err(bad("cause", v)),
    }
}

const fn reject_code(why: &RejectReason) -> u8 {
    match why {
        RejectReason::TooManyGroups => 1,
        RejectReason::GroupFull => 2,
        RejectReason::Denied => 3,
        RejectReason::UnknownTarget => 4,
    }
}

fn get_reject(r: &mut Reader<'_>) -> Result<RejectReason, WireError> {
    match r.u8("reject reason")? {
        1 => Ok(RejectReason::TooManyGroups),
        2 => Ok(RejectReason::GroupFull),
        3 => Ok(RejectReason::Denied),
        4 => Ok(RejectReason::UnknownTarget),
        v => Err(bad("reject reason", v)),
    }
}
