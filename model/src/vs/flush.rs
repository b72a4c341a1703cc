//! The flush-layer machine (`/work/shared/design/groups-and-flush.md` §3.1–§3.4): one
//! [`FlushLayer`] per client connection keeps, per group, the membership state (`mstate`), the
//! view-synchrony state (`vstate`), the installed FL view, the queue of pending SP changes with
//! the `FLUSH_OK`s seen for each (`floks`), and the vulnerable messages held for the next view.
//!
//! ```text
//!   FlIn::App(FlCall)  ──►                 ──► FlOut::ToDaemon(ClientReq)   (SP requests)
//!                          FlushLayer::handle ──► FlOut::ToApp(FlEvent)     (FL deliveries)
//!   FlIn::Sp(ClientEvent) ──►              ──► FlOut::Reply(Result)       (one per App call)
//! ```
//!
//! Control messages are FIFO multicasts to the group with a reserved `mess_type`
//! ([`FLUSH_OK_TYPE`], [`FLUSH_RECV_TYPE`]) and the target gid appended to the body; vulnerable
//! messages carry [`VULNERABLE_TYPE`] with the user's type and the sender's gid appended. An
//! appended trailer is `postcard(value) ++ [len]` (one length byte), so it is split off the end.
//!
//! Every input from the daemon is untrusted: malformed control messages, unknown groups and
//! stale gids are dropped, never a panic.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::VsMutant;
use crate::groups::{
    Cause, ClientEvent, ClientReq, ClientService, DataMsg, Gid, GroupName, Membership, Multicast,
    PrivateName, RejectReason, Target, UndecryptableMsg,
};

/// Reserved `mess_type` of a `FLUSH_OK` control message.
pub const FLUSH_OK_TYPE: i16 = -32768;
/// Reserved `mess_type` of a `FLUSH_RECV` control message.
pub const FLUSH_RECV_TYPE: i16 = -32767;
/// Reserved `mess_type` of a vulnerable data message (user type and gid appended).
pub const VULNERABLE_TYPE: i16 = -32766;
/// Lowest `mess_type` an application may use.
pub const MIN_APP_TYPE: i16 = -32765;
/// `FLUSH_OK`s for a gid this member never sees as an SP view are dropped after this many SP
/// views (Spread's guard; with in-sequence delivery such entries are always stale).
pub const MAX_AGE: u32 = 200;

/// Errors of application calls (Flush Spread's names).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, thiserror::Error,
)]
#[non_exhaustive]
pub enum FlError {
    /// Not a member (or joining, or leaving) where the call needs one, or already in the group.
    #[error("illegal group for this call (ILLEGAL_GROUP)")]
    IllegalGroup,
    /// The call is not allowed in this view-synchrony state (e.g. a second flush, a send after flushing).
    #[error("illegal state for this call (ILLEGAL_STATE)")]
    IllegalState,
    /// A service word with reserved bits or not exactly one service ([`parse_service`]).
    #[error("illegal service (ILLEGAL_SERVICE)")]
    IllegalService,
    /// A reserved message type (below [`MIN_APP_TYPE`]).
    #[error("illegal message type (ILLEGAL_MESSAGE_TYPE)")]
    IllegalMessageType,
    /// The receivers are not one group (or only private names).
    #[error("illegal receivers (ILLEGAL_RECEIVERS)")]
    IllegalReceivers,
    /// The message body cannot carry the flush layer's trailer.
    #[error("message too long for the flush trailer (MESSAGE_TOO_LONG)")]
    MessageTooLong,
}

/// Spread's service bits (`sp.h`): `UNRELIABLE_MESS` … `SAFE_MESS`, and `SELF_DISCARD`.
const SERVICE_BITS: [(u32, ClientService); 6] = [
    (0x01, ClientService::Unreliable),
    (0x02, ClientService::Reliable),
    (0x04, ClientService::Fifo),
    (0x08, ClientService::Causal),
    (0x10, ClientService::Agreed),
    (0x20, ClientService::Safe),
];
const SELF_DISCARD_BIT: u32 = 0x40;

/// Decode an application's service word (the client library's `FL_multicast` argument): exactly
/// one service bit, optionally `SELF_DISCARD`; anything else is [`FlError::IllegalService`].
/// Returns the service and whether self-discard is asked.
pub fn parse_service(word: u32) -> Result<(ClientService, bool), FlError> {
    let self_discard = word & SELF_DISCARD_BIT != 0;
    let rest = word & !SELF_DISCARD_BIT;
    SERVICE_BITS
        .iter()
        .find(|(bit, _)| *bit == rest)
        .map(|(_, s)| (*s, self_discard))
        .ok_or(FlError::IllegalService)
}

/// An application call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FlCall {
    /// `FL_join(g)`.
    Join(GroupName),
    /// `FL_leave(g)`.
    Leave(GroupName),
    /// `FL_flush(g)`: answer the pending flush request.
    Flush(GroupName),
    /// `FL_multicast`: to exactly one group, or to private names only (passed through).
    Send(Multicast),
}

/// An input of the flush layer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FlIn {
    /// A call of the application.
    App(FlCall),
    /// An event from the daemon (SP level), in the order the daemon delivers them.
    Sp(ClientEvent),
}

/// An event for the application (FL level).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FlEvent {
    /// A data message, in the installed view (user type and body restored).
    Data(DataMsg),
    /// Flush request: call `FL_flush(g)` once (sends may come first).
    FlushReq(GroupName),
    /// A VS view: `vs_sets` holds one set, the receiver's (for NETWORK: the members of the
    /// previous VS view that moved with it; otherwise the changed member), `my_vs` is 0.
    View(Membership),
    /// The current view lost members; its guarantees are now those of a transitional view.
    Transition {
        /// The group.
        group: GroupName,
        /// The installed view it belongs to.
        gid: Gid,
    },
    /// The member's own leave took effect; nothing of this group follows.
    SelfLeave(GroupName),
    /// The daemon refused a request (a refused join or leave is undone).
    Reject {
        /// Why.
        reason: RejectReason,
        /// The refused request.
        req: ClientReq,
    },
    /// The daemon could not deliver a message under the current group key (Optimized EVS).
    Undecryptable(UndecryptableMsg),
}

/// An output of the flush layer, to be carried out in order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FlOut {
    /// A request for the daemon.
    ToDaemon(ClientReq),
    /// An event for the application.
    ToApp(FlEvent),
    /// The result of the application call (exactly one per [`FlIn::App`], last).
    Reply(Result<(), FlError>),
}

/// Membership state of a group record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MState {
    /// `FL_join` called, first view not installed.
    Joining,
    /// A view is installed.
    Joined,
    /// `FL_leave` called, self-leave not yet delivered.
    Leaving,
}

/// View-synchrony state of a group record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VState {
    /// Every member installed the current view; no change pending.
    Steady,
    /// A flush request was delivered; the application has not flushed yet.
    Authorize,
    /// Flushed for `cur`; waiting for the other members' `FLUSH_OK`s.
    Agree,
    /// Installed; waiting for every member's `FLUSH_RECV`.
    Verify,
}

/// The installed FL view of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FlView {
    /// Its gid (`None` before the joiner's first view).
    pub gid: Option<Gid>,
    /// Why it was installed.
    pub cause: Cause,
    /// Members in canonical order.
    pub members: Vec<PrivateName>,
    /// The members not known to have left since (the sender filter).
    pub alive: BTreeSet<PrivateName>,
    /// Whether the view's `TRANSITION` was delivered.
    pub trans_sent: bool,
}

/// An SP view waiting to become a VS view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpView {
    /// Cause (NETWORK once earlier changes collapsed into it).
    pub cause: Cause,
    /// Members in canonical order.
    pub members: Vec<PrivateName>,
    /// Members not known to have left since.
    pub alive: BTreeSet<PrivateName>,
    /// The changed member of a JOIN/LEAVE/DISCONNECT change.
    pub delta: Option<PrivateName>,
}

/// A pending change: its SP view (once delivered) and the `FLUSH_OK`s seen for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Change {
    /// The SP view, `None` while only `FLUSH_OK`s for the gid were seen.
    pub view: Option<SpView>,
    /// Senders of a `FLUSH_OK` for this gid.
    pub floks: BTreeSet<PrivateName>,
    /// SP views since the entry was created without a view (see [`MAX_AGE`]).
    pub age: u32,
}

/// The flush layer's state for one group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Record {
    /// Membership state.
    pub mstate: MState,
    /// View-synchrony state.
    pub vstate: VState,
    /// The installed view.
    pub view: FlView,
    /// The members of the latest SP view (to compute leavers).
    pub sp_members: Vec<PrivateName>,
    /// Pending SP changes, oldest first.
    pub queue: Vec<Gid>,
    /// Per gid: SP view and `FLUSH_OK`s.
    pub pending: BTreeMap<Gid, Change>,
    /// The change being flushed (head of `queue`).
    pub cur: Option<Gid>,
    /// Senders of a `FLUSH_RECV` for the installed view (in `Verify`).
    pub recvs: BTreeSet<PrivateName>,
    /// Vulnerable messages held for the install of `cur`.
    pub early: Vec<DataMsg>,
}

/// The flush layer of one client connection (all its groups).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FlushLayer {
    me: PrivateName,
    mutant: Option<VsMutant>,
    groups: BTreeMap<GroupName, Record>,
}

/// Append `postcard(value) ++ [len]` to `body`.
pub fn append_trailer<T: Serialize>(body: &mut Vec<u8>, value: &T) -> Result<(), FlError> {
    let enc = postcard::to_allocvec(value).map_err(|_| FlError::MessageTooLong)?;
    let len = u8::try_from(enc.len()).map_err(|_| FlError::MessageTooLong)?;
    body.extend_from_slice(&enc);
    body.push(len);
    Ok(())
}

/// Split a trailer written by [`append_trailer`] off the end of `body`: the rest and the value.
pub fn split_trailer<T: DeserializeOwned>(body: &[u8]) -> Option<(&[u8], T)> {
    let (&len, rest) = body.split_last()?;
    let at = rest.len().checked_sub(usize::from(len))?;
    let (front, enc) = rest.split_at(at);
    let value = postcard::from_bytes(enc).ok()?;
    Some((front, value))
}

/// The group a data message is about: its first group target.
fn group_of(d: &DataMsg) -> Option<&GroupName> {
    d.targets.iter().find_map(|t| match t {
        Target::Group(g) => Some(g),
        Target::Private(_) => None,
    })
}

fn deliver(out: &mut Vec<FlOut>, ev: FlEvent) {
    out.push(FlOut::ToApp(ev));
}

impl Record {
    /// The record `FL_join` creates: flushed already (`Agree`), so the joiner's first view comes
    /// with no flush request; its view is itself alone.
    fn joining(me: &PrivateName, mutant: Option<VsMutant>) -> Self {
        let vstate = if mutant == Some(VsMutant::JoinerFlushReq) {
            VState::Steady
        } else {
            VState::Agree
        };
        Self {
            mstate: MState::Joining,
            vstate,
            view: FlView {
                gid: None,
                cause: Cause::Join,
                members: vec![me.clone()],
                alive: BTreeSet::from([me.clone()]),
                trans_sent: true,
            },
            sp_members: Vec::new(),
            queue: Vec::new(),
            pending: BTreeMap::new(),
            cur: None,
            recvs: BTreeSet::new(),
            early: Vec::new(),
        }
    }
}

impl FlushLayer {
    /// A connection's flush layer, in no group.
    pub const fn new(me: PrivateName, mutant: Option<VsMutant>) -> Self {
        Self {
            me,
            mutant,
            groups: BTreeMap::new(),
        }
    }

    /// The connection's private name.
    pub const fn me(&self) -> &PrivateName {
        &self.me
    }

    /// The record of a group, if the connection joined it.
    pub fn record(&self, g: &GroupName) -> Option<&Record> {
        self.groups.get(g)
    }

    /// Every group record.
    pub const fn records(&self) -> &BTreeMap<GroupName, Record> {
        &self.groups
    }

    fn is(&self, m: VsMutant) -> bool {
        self.mutant == Some(m)
    }

    /// Handle one input; the outputs are to be carried out in order.
    pub fn handle(&mut self, input: FlIn) -> Vec<FlOut> {
        let mut out = Vec::new();
        match input {
            FlIn::App(call) => {
                let r = self.call(call, &mut out);
                out.push(FlOut::Reply(r));
            }
            FlIn::Sp(ev) => self.sp(ev, &mut out),
        }
        out
    }

    fn call(&mut self, call: FlCall, out: &mut Vec<FlOut>) -> Result<(), FlError> {
        match call {
            FlCall::Join(g) => {
                if self.groups.contains_key(&g) {
                    return Err(FlError::IllegalGroup);
                }
                self.groups
                    .insert(g.clone(), Record::joining(&self.me, self.mutant));
                out.push(FlOut::ToDaemon(ClientReq::Join(g)));
                Ok(())
            }
            FlCall::Leave(g) => {
                let rec = self.groups.get_mut(&g).ok_or(FlError::IllegalGroup)?;
                if rec.mstate != MState::Joined {
                    return Err(FlError::IllegalGroup);
                }
                rec.mstate = MState::Leaving;
                out.push(FlOut::ToDaemon(ClientReq::Leave(g)));
                Ok(())
            }
            FlCall::Flush(g) => {
                let rec = self.groups.get(&g).ok_or(FlError::IllegalGroup)?;
                if rec.mstate == MState::Leaving {
                    return Err(FlError::IllegalGroup);
                }
                let (VState::Authorize, Some(cur)) = (rec.vstate, rec.cur) else {
                    return Err(FlError::IllegalState);
                };
                let msg = self.flush_ok(&g, cur)?;
                if let Some(rec) = self.groups.get_mut(&g) {
                    rec.vstate = VState::Agree;
                }
                out.push(msg);
                Ok(())
            }
            FlCall::Send(m) => self.send(m, out),
        }
    }

    fn send(&self, mut m: Multicast, out: &mut Vec<FlOut>) -> Result<(), FlError> {
        if m.mess_type < MIN_APP_TYPE {
            return Err(FlError::IllegalMessageType);
        }
        if m.targets.is_empty() {
            return Err(FlError::IllegalReceivers);
        }
        if m.targets.iter().all(|t| matches!(t, Target::Private(_))) {
            out.push(FlOut::ToDaemon(ClientReq::Send(m)));
            return Ok(());
        }
        let [Target::Group(g)] = m.targets.as_slice() else {
            return Err(FlError::IllegalReceivers);
        };
        let rec = self.groups.get(g).ok_or(FlError::IllegalGroup)?;
        if rec.mstate != MState::Joined {
            return Err(FlError::IllegalGroup);
        }
        if rec.vstate == VState::Agree && !self.is(VsMutant::SendInAgree) {
            return Err(FlError::IllegalState);
        }
        let unordered = matches!(
            m.service,
            ClientService::Unreliable | ClientService::Reliable | ClientService::Fifo
        );
        let vulnerable = matches!(rec.vstate, VState::Authorize | VState::Verify)
            && unordered
            && !self.is(VsMutant::NoVulnerableTag);
        if vulnerable {
            let gid = rec.view.gid.ok_or(FlError::IllegalState)?;
            append_trailer(&mut m.body, &(m.mess_type, gid))?;
            m.mess_type = VULNERABLE_TYPE;
        }
        out.push(FlOut::ToDaemon(ClientReq::Send(m)));
        Ok(())
    }

    /// A control multicast to `g` with `gid` as its body.
    fn control(g: &GroupName, mess_type: i16, service: ClientService, gid: Gid) -> Result<FlOut, FlError> {
        let mut body = Vec::new();
        append_trailer(&mut body, &gid)?;
        Ok(FlOut::ToDaemon(ClientReq::Send(Multicast {
            targets: vec![Target::Group(g.clone())],
            service,
            self_discard: false,
            mess_type,
            body,
        })))
    }

    fn flush_ok(&self, g: &GroupName, gid: Gid) -> Result<FlOut, FlError> {
        let service = if self.is(VsMutant::ReliableFlushOk) {
            ClientService::Reliable
        } else {
            ClientService::Fifo
        };
        Self::control(g, FLUSH_OK_TYPE, service, gid)
    }

    fn sp(&mut self, ev: ClientEvent, out: &mut Vec<FlOut>) {
        match ev {
            ClientEvent::Data(d) => self.on_data(d, out),
            ClientEvent::Membership(m) => self.on_membership(m, out),
            ClientEvent::Transition { group, .. } => {
                let repeat = self.is(VsMutant::RepeatTransition);
                if let Some(rec) = self.groups.get_mut(&group)
                    && (!rec.view.trans_sent || repeat)
                    && let Some(gid) = rec.view.gid
                {
                    rec.view.trans_sent = true;
                    deliver(out, FlEvent::Transition { group, gid });
                }
            }
            ClientEvent::SelfLeave(g) => {
                if self.groups.remove(&g).is_some() {
                    deliver(out, FlEvent::SelfLeave(g));
                }
            }
            ClientEvent::Undecryptable(u) => deliver(out, FlEvent::Undecryptable(u)),
            ClientEvent::Reject { reason, req } => {
                match &req {
                    ClientReq::Join(g) => {
                        let undo = self
                            .groups
                            .get(g)
                            .is_some_and(|r| r.mstate == MState::Joining && r.sp_members.is_empty());
                        if undo {
                            self.groups.remove(g);
                        }
                    }
                    ClientReq::Leave(g) => {
                        if let Some(r) = self.groups.get_mut(g)
                            && r.mstate == MState::Leaving
                        {
                            r.mstate = MState::Joined;
                        }
                    }
                    ClientReq::Send(_) | ClientReq::Disconnect => {}
                }
                deliver(out, FlEvent::Reject { reason, req });
            }
        }
    }

    fn on_data(&mut self, d: DataMsg, out: &mut Vec<FlOut>) {
        let Some(g) = group_of(&d).cloned() else {
            // private (unicast) traffic passes through
            deliver(out, FlEvent::Data(d));
            return;
        };
        match d.mess_type {
            FLUSH_OK_TYPE => {
                if let Some((_, gid)) = split_trailer::<Gid>(&d.body) {
                    self.on_flush_ok(&g, d.sender, gid, out);
                }
            }
            FLUSH_RECV_TYPE => {
                if let (Some(rec), Some((_, gid))) = (self.groups.get_mut(&g), split_trailer::<Gid>(&d.body))
                    && rec.vstate == VState::Verify
                    && rec.view.gid == Some(gid)
                    && rec.view.members.contains(&d.sender)
                {
                    rec.recvs.insert(d.sender);
                    if rec.recvs.len() == rec.view.members.len() {
                        rec.vstate = VState::Steady;
                        rec.recvs.clear();
                    }
                }
            }
            _ => self.on_user_data(&g, d, out),
        }
    }

    fn on_user_data(&mut self, g: &GroupName, mut d: DataMsg, out: &mut Vec<FlOut>) {
        let no_filter = self.is(VsMutant::NoAliveFilter);
        let no_buffer = self.is(VsMutant::NoEarlyBuffer);
        let Some(rec) = self.groups.get_mut(g) else {
            return;
        };
        if d.mess_type == VULNERABLE_TYPE {
            let Some((body, (user_type, vgid))) = split_trailer::<(i16, Gid)>(&d.body) else {
                return;
            };
            d.body = body.to_vec();
            d.mess_type = user_type;
            let hold = rec.vstate == VState::Agree
                && rec.cur == Some(vgid)
                && rec
                    .pending
                    .get(&vgid)
                    .and_then(|c| c.view.as_ref())
                    .is_some_and(|v| v.alive.contains(&d.sender));
            if hold && !no_buffer {
                rec.early.push(d);
                return;
            }
        }
        if no_filter || rec.view.alive.contains(&d.sender) {
            deliver(out, FlEvent::Data(d));
        }
    }

    fn on_flush_ok(&mut self, g: &GroupName, s: PrivateName, gid: Gid, out: &mut Vec<FlOut>) {
        let old_view_floks = self.is(VsMutant::OldViewFloks);
        let Some(rec) = self.groups.get_mut(g) else {
            return;
        };
        if rec.view.gid == Some(gid) {
            return; // a late FLUSH_OK for the installed view
        }
        let ch = rec.pending.entry(gid).or_insert_with(|| Change {
            view: None,
            floks: BTreeSet::new(),
            age: 0,
        });
        ch.floks.insert(s);
        let complete = ch.view.as_ref().is_some_and(|v| {
            v.members
                .iter()
                .filter(|m| !old_view_floks || rec.view.members.contains(m))
                .all(|m| ch.floks.contains(m))
        });
        if rec.vstate == VState::Agree && rec.cur == Some(gid) && complete {
            self.install(g, gid, out);
        }
    }

    fn on_membership(&mut self, m: Membership, out: &mut Vec<FlOut>) {
        let no_invalidation = self.is(VsMutant::NoInvalidation);
        let repeat = self.is(VsMutant::RepeatTransition);
        let g = m.group.clone();
        let Some(rec) = self.groups.get_mut(&g) else {
            return;
        };
        if rec.queue.contains(&m.gid) || rec.view.gid == Some(m.gid) {
            return; // a duplicate SP view
        }
        let delta = match m.cause {
            Cause::Join | Cause::Leave | Cause::Disconnect => {
                m.vs_sets.first().and_then(|s| s.first()).cloned()
            }
            Cause::Network => None,
        };
        let leavers: BTreeSet<PrivateName> = match m.cause {
            Cause::Join => BTreeSet::new(),
            Cause::Leave | Cause::Disconnect => delta.iter().cloned().collect(),
            Cause::Network => {
                let mine = m.vs_sets.get(m.my_vs).map(Vec::as_slice).unwrap_or_default();
                rec.sp_members
                    .iter()
                    .filter(|x| !mine.contains(x))
                    .cloned()
                    .collect()
            }
        };
        // age out FLUSH_OKs of gids never seen as SP views
        rec.pending.retain(|_, c| {
            if c.view.is_none() {
                c.age += 1;
            }
            c.age <= MAX_AGE
        });
        let shrank = leavers.iter().any(|l| rec.view.alive.contains(l));
        rec.view.alive.retain(|x| !leavers.contains(x));
        // invalidate the pending changes a leaver did not flush for
        let mut collapse = false;
        let mut kept = Vec::with_capacity(rec.queue.len());
        for x in std::mem::take(&mut rec.queue) {
            let Some(c) = rec.pending.get_mut(&x) else {
                continue;
            };
            let Some(v) = c.view.as_mut() else {
                continue;
            };
            let dropped = leavers
                .iter()
                .any(|l| v.alive.contains(l) && !c.floks.contains(l) && !no_invalidation);
            if dropped {
                rec.pending.remove(&x);
                collapse = true;
                continue;
            }
            v.alive.retain(|a| !leavers.contains(a));
            if collapse {
                v.cause = Cause::Network;
                v.delta = None;
                collapse = false;
            }
            kept.push(x);
        }
        rec.queue = kept;
        let ch = rec.pending.entry(m.gid).or_insert_with(|| Change {
            view: None,
            floks: BTreeSet::new(),
            age: 0,
        });
        ch.age = 0;
        ch.view = Some(SpView {
            cause: if collapse { Cause::Network } else { m.cause },
            alive: m.members.iter().cloned().collect(),
            members: m.members.clone(),
            delta: if collapse { None } else { delta },
        });
        rec.queue.push(m.gid);
        rec.sp_members = m.members;
        if rec.queue.first() != rec.cur.as_ref() {
            rec.early.clear();
            self.next_change(&g, out);
        }
        if let Some(rec) = self.groups.get_mut(&g)
            && shrank
            && (!rec.view.trans_sent || repeat)
            && let Some(gid) = rec.view.gid
        {
            rec.view.trans_sent = true;
            deliver(out, FlEvent::Transition { group: g, gid });
        }
    }

    /// Make the head of the queue the change in progress.
    fn next_change(&mut self, g: &GroupName, out: &mut Vec<FlOut>) {
        let Some(rec) = self.groups.get_mut(g) else {
            return;
        };
        rec.cur = rec.queue.first().copied();
        rec.recvs.clear();
        let Some(cur) = rec.cur else {
            return;
        };
        match rec.vstate {
            VState::Steady | VState::Verify => {
                rec.vstate = VState::Authorize;
                deliver(out, FlEvent::FlushReq(g.clone()));
            }
            VState::Authorize => {}
            VState::Agree => {
                // automatic re-flush: the application already flushed
                if let Ok(msg) = self.flush_ok(g, cur) {
                    out.push(msg);
                }
            }
        }
    }

    fn install(&mut self, g: &GroupName, gid: Gid, out: &mut Vec<FlOut>) {
        let me = self.me.clone();
        let Some(rec) = self.groups.get_mut(g) else {
            return;
        };
        let has_me = rec
            .pending
            .get(&gid)
            .and_then(|c| c.view.as_ref())
            .is_some_and(|v| v.members.contains(&me));
        if !has_me {
            return; // an SP view without this member cannot come from a correct daemon
        }
        let Some(SpView {
            cause,
            members,
            alive,
            delta,
        }) = rec.pending.remove(&gid).and_then(|c| c.view)
        else {
            return;
        };
        let vs: Vec<PrivateName> = match cause {
            Cause::Join | Cause::Leave | Cause::Disconnect => delta.into_iter().collect(),
            Cause::Network => rec
                .view
                .members
                .iter()
                .filter(|x| rec.view.alive.contains(*x))
                .cloned()
                .collect(),
        };
        deliver(
            out,
            FlEvent::View(Membership {
                group: g.clone(),
                gid,
                cause,
                members: members.clone(),
                vs_sets: vec![vs],
                my_vs: 0,
            }),
        );
        let shrunk = alive.len() != members.len();
        rec.view = FlView {
            gid: Some(gid),
            cause,
            members,
            alive,
            trans_sent: false,
        };
        if rec.queue.first() == Some(&gid) {
            rec.queue.remove(0);
        }
        if rec.mstate == MState::Joining {
            rec.mstate = MState::Joined;
        }
        rec.vstate = VState::Verify;
        rec.recvs.clear();
        let early = std::mem::take(&mut rec.early);
        if rec.queue.is_empty() {
            rec.cur = None;
            if let Ok(msg) = Self::control(g, FLUSH_RECV_TYPE, ClientService::Fifo, gid) {
                out.push(msg);
            }
        } else {
            self.next_change(g, out);
        }
        if shrunk && let Some(rec) = self.groups.get_mut(g) {
            rec.view.trans_sent = true;
            deliver(
                out,
                FlEvent::Transition {
                    group: g.clone(),
                    gid,
                },
            );
        }
        for d in early {
            deliver(out, FlEvent::Data(d));
        }
    }
}
