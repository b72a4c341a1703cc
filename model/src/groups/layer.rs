//! The daemon's group layer (`/work/shared/design/groups-and-flush.md` §1.2–§1.8, §2): a sans-IO
//! machine turning ring deliveries and client requests into client events.
//!
//! ```text
//!   GroupIn (client requests, ring deliveries, drains) ──► GroupLayer::handle ──► Vec<GroupOut>
//! ```
//!
//! Choices where the design leaves room (see `spec/groups.md`):
//! - gids come from one agreed counter per configuration (`(conf, n)`, `n` = the n-th group
//!   event of that configuration), so a gid is never reused, even by a re-created group;
//! - every client message is delivered in ring order (no early delivery of any service);
//! - after a merge every daemon announces its own local members in one AGREED
//!   [`RingMsg::Groups`]; the new table is built from the announcements only (so it is the same
//!   everywhere); vs_sets are members grouped by announced gid; a group is changed when the
//!   announced gids differ or one of them was formed in a transitional configuration;
//! - a [`ClientEvent::Transition`] carries the group's gid after the change that caused it;
//! - the self-discard flag never travels on the ring: the origin daemon keeps, per local
//!   sender, the flags of its messages still on the ring (a daemon delivers its own messages in
//!   the order it submitted them);
//! - a Join, Leave, Kill or Data delivered while gathering *before* its origin's `Groups`
//!   message was handed to the ring before the configuration change (the ring's send queue
//!   survives it): every member delivers it there too, so it is deferred and applied in ring
//!   order once the exchange completes ([`GroupStats::deferred`]); one delivered *after* its
//!   origin's `Groups` was sent while gathering, a bug (GRP-QUIET): it is counted in
//!   [`GroupStats::quiet_violations`] (and deferred too), never a panic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::config::{GroupConfig, GroupMutant};
use super::types::{
    Cause, ClientEvent, ClientReq, ConnectRefusal, DataMsg, Gid, GroupAnnounce, GroupIn, GroupName, GroupOut,
    KillReason, MAX_TARGETS, Membership, PrivateName, RejectReason, RingDelivery, RingMsg, SessionId, Target,
};
use crate::ring::{ConfigId, NodeId, RingId, Service};

/// The layer's phase (Spread's GOP, GTRANS, GGATHER, GGT), plus `Boot` before the first
/// regular configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// No regular configuration yet: client requests are held.
    Boot,
    /// Operational.
    Op,
    /// In a transitional configuration.
    Trans,
    /// Exchanging group tables after a merge: client requests are held.
    Gather,
    /// A transitional configuration arrived while gathering.
    GatherTrans,
}

/// Counters of events that should not happen (never a panic).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupStats {
    /// Join, Leave, Kill or Data delivered in `Gather`/`GatherTrans` after its origin's
    /// `Groups` message, i.e. sent while the origin was gathering (GRP-QUIET).
    pub quiet_violations: u32,
    /// Client messages delivered while gathering before their origin's `Groups` message (sent
    /// before the configuration change, ordered in the new one): applied after the exchange.
    pub deferred: u32,
    /// Requests of unknown or closed sessions, ignored.
    pub unknown_session: u32,
    /// Ring deliveries that make no sense in the current phase (stale exchange messages, a
    /// regular configuration without a transitional one), handled conservatively.
    pub unexpected: u32,
    /// Sessions killed as slow clients.
    pub slow_kills: u32,
}

/// One member of a group, as seen in the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct MemberInfo {
    /// The gid of the last view the member was in (`None`: joined during a transition).
    prev: Option<Gid>,
}

/// A daemon's part of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Part {
    /// Partitioned away: absent from the current transitional configuration.
    away: bool,
    /// The members at that daemon.
    members: BTreeMap<PrivateName, MemberInfo>,
}

/// One group of the table (§1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Group {
    /// The current gid.
    gid: Gid,
    /// The gid of the last join/leave/disconnect view (what a stale tag would announce).
    jl_gid: Gid,
    /// Changed by the current transitional configuration.
    changed: bool,
    /// Per daemon (configuration-file order) its part.
    parts: BTreeMap<NodeId, Part>,
}

impl Group {
    fn members(&self) -> Vec<PrivateName> {
        self.parts
            .values()
            .flat_map(|p| p.members.keys().cloned())
            .collect()
    }

    fn contains(&self, p: &PrivateName) -> bool {
        self.parts
            .get(&p.node)
            .is_some_and(|part| part.members.contains_key(p))
    }

    fn is_empty(&self) -> bool {
        self.parts.values().all(|p| p.members.is_empty())
    }
}

/// A client connection at this daemon.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Session {
    name: PrivateName,
    wants_membership: bool,
    /// Still connected (a closed session keeps its name until its Kill is delivered).
    open: bool,
    /// Events queued and not yet drained.
    queued: u32,
}

/// A request held while gathering (or before the first regular configuration).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Held {
    Req(SessionId, ClientReq),
    Kill(PrivateName, Service),
}

/// A configuration as the ring delivered it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Conf {
    id: ConfigId,
    members: BTreeSet<NodeId>,
}

/// The merge exchange in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Exchange {
    conf: RingId,
    members: BTreeSet<NodeId>,
    got: BTreeMap<NodeId, Vec<GroupAnnounce>>,
}

/// What the origin remembers of one of its data messages still on the ring.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Sent {
    self_discard: bool,
    /// Already delivered to local receivers (mutant `EarlyLocalDelivery` only).
    early: bool,
}

/// The group layer of one daemon.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupLayer {
    cfg: GroupConfig,
    phase: Phase,
    reg: Option<Conf>,
    trans: Option<Conf>,
    /// A transitional configuration deferred while gathering.
    deferred: Option<Conf>,
    /// The configuration the gid counter belongs to, and the counter.
    gid_conf: Option<ConfigId>,
    counter: u32,
    groups: BTreeMap<GroupName, Group>,
    sessions: BTreeMap<SessionId, Session>,
    by_user: BTreeMap<String, SessionId>,
    held: VecDeque<Held>,
    exchange: Option<Exchange>,
    /// Client messages delivered while gathering, applied in order once the exchange completes.
    deferred_msgs: Vec<(NodeId, RingMsg)>,
    backlog: u32,
    blocked: bool,
    sent: BTreeMap<String, VecDeque<Sent>>,
    next_name: u32,
    stats: GroupStats,
}

impl GroupLayer {
    /// A fresh layer (phase `Boot`).
    pub fn new(cfg: GroupConfig) -> Self {
        Self {
            cfg,
            phase: Phase::Boot,
            reg: None,
            trans: None,
            deferred: None,
            gid_conf: None,
            counter: 0,
            groups: BTreeMap::new(),
            sessions: BTreeMap::new(),
            by_user: BTreeMap::new(),
            held: VecDeque::new(),
            exchange: None,
            deferred_msgs: Vec::new(),
            backlog: 0,
            blocked: false,
            sent: BTreeMap::new(),
            next_name: 0,
            stats: GroupStats::default(),
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// The current phase.
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// Anomaly counters.
    pub const fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// Client messages on the ring not yet delivered back.
    pub const fn backlog(&self) -> u32 {
        self.backlog
    }

    /// The private name of a session.
    pub fn session_name(&self, sess: SessionId) -> Option<&PrivateName> {
        self.sessions.get(&sess).map(|s| &s.name)
    }

    /// Group names with their gid and members, in canonical order (for tests and tracing).
    pub fn table(&self) -> Vec<(GroupName, Gid, Vec<PrivateName>)> {
        self.groups
            .iter()
            .map(|(n, g)| (n.clone(), g.gid, g.members()))
            .collect()
    }

    /// Handles one input.
    pub fn handle(&mut self, input: GroupIn) -> Vec<GroupOut> {
        let mut out = Vec::new();
        match input {
            GroupIn::Connect {
                sess,
                user,
                wants_membership,
            } => self.connect(sess, user, wants_membership, &mut out),
            GroupIn::Client { sess, req } => self.client(sess, req, &mut out),
            GroupIn::SessionClosed { sess } => self.closed(sess, &mut out),
            GroupIn::Drained { sess, n } => {
                if let Some(s) = self.sessions.get_mut(&sess) {
                    s.queued = s.queued.saturating_sub(n);
                } else {
                    self.stats.unknown_session += 1;
                }
            }
            GroupIn::Ring(d) => self.ring(d, &mut out),
        }
        out
    }

    // ---------------------------------------------------------------- sessions

    fn connect(
        &mut self,
        sess: SessionId,
        user: Option<String>,
        wants_membership: bool,
        out: &mut Vec<GroupOut>,
    ) {
        if self.sessions.contains_key(&sess) {
            out.push(GroupOut::Refused {
                sess,
                why: ConnectRefusal::NotUnique,
            });
            return;
        }
        let user = match user {
            Some(u) => u,
            None => loop {
                self.next_name = self.next_name.wrapping_add(1);
                let u = format!("u{}", self.next_name);
                if !self.by_user.contains_key(&u) {
                    break u;
                }
            },
        };
        let Ok(name) = PrivateName::new(self.cfg.me, user, self.cfg.daemon_name.clone()) else {
            out.push(GroupOut::Refused {
                sess,
                why: ConnectRefusal::IllegalName,
            });
            return;
        };
        if self.by_user.contains_key(&name.user) {
            out.push(GroupOut::Refused {
                sess,
                why: ConnectRefusal::NotUnique,
            });
            return;
        }
        self.by_user.insert(name.user.clone(), sess);
        self.sessions.insert(
            sess,
            Session {
                name: name.clone(),
                wants_membership,
                open: true,
                queued: 0,
            },
        );
        out.push(GroupOut::Accepted { sess, name });
    }

    fn closed(&mut self, sess: SessionId, out: &mut Vec<GroupOut>) {
        match self.sessions.get_mut(&sess) {
            Some(s) if s.open => {
                s.open = false;
                let name = s.name.clone();
                self.submit_or_hold(Held::Kill(name, Service::Safe), out);
            }
            _ => self.stats.unknown_session += 1,
        }
    }

    const fn holding(&self) -> bool {
        match self.phase {
            Phase::Boot => true,
            Phase::Gather | Phase::GatherTrans => {
                !matches!(self.cfg.mutant, Some(GroupMutant::NoHoldInGather))
            }
            Phase::Op | Phase::Trans => false,
        }
    }

    fn client(&mut self, sess: SessionId, req: ClientReq, out: &mut Vec<GroupOut>) {
        if !self.sessions.get(&sess).is_some_and(|s| s.open) {
            self.stats.unknown_session += 1;
            return;
        }
        if let ClientReq::Disconnect = req {
            if let Some(s) = self.sessions.get_mut(&sess) {
                s.open = false;
                let name = s.name.clone();
                self.submit_or_hold(Held::Kill(name, Service::Agreed), out);
            }
            return;
        }
        self.submit_or_hold(Held::Req(sess, req), out);
    }

    fn submit_or_hold(&mut self, h: Held, out: &mut Vec<GroupOut>) {
        if self.holding() {
            self.held.push_back(h);
        } else {
            self.submit(h, out);
        }
    }

    fn release(&mut self, out: &mut Vec<GroupOut>) {
        while !self.holding() {
            let Some(h) = self.held.pop_front() else { break };
            self.submit(h, out);
        }
    }

    fn ring_send(&mut self, msg: RingMsg, service: Service, out: &mut Vec<GroupOut>) {
        if !matches!(msg, RingMsg::Groups { .. }) {
            self.backlog = self.backlog.saturating_add(1);
            if self.backlog >= self.cfg.max_ring_backlog && !self.blocked {
                self.blocked = true;
                out.push(GroupOut::BlockClients(true));
            }
        }
        out.push(GroupOut::RingSend { msg, service });
    }

    fn groups_of(&self, p: &PrivateName) -> usize {
        self.groups.values().filter(|g| g.contains(p)).count()
    }

    fn submit(&mut self, h: Held, out: &mut Vec<GroupOut>) {
        let (sess, req) = match h {
            Held::Kill(member, service) => {
                self.ring_send(RingMsg::Kill { member }, service, out);
                return;
            }
            Held::Req(sess, req) => (sess, req),
        };
        let Some(s) = self.sessions.get(&sess) else {
            self.stats.unknown_session += 1;
            return;
        };
        if !s.open {
            // closed while its request was held: the Kill is already queued
            return;
        }
        let name = s.name.clone();
        match req {
            ClientReq::Join(group) => {
                let cap = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                let local = self
                    .groups
                    .get(&group)
                    .and_then(|g| g.parts.get(&self.cfg.me))
                    .map_or(0, |p| p.members.len());
                let reason = if cap(self.groups_of(&name)) >= self.cfg.max_groups_per_session {
                    Some(RejectReason::TooManyGroups)
                } else if cap(local) >= self.cfg.max_members_per_group {
                    Some(RejectReason::GroupFull)
                } else {
                    None
                };
                match reason {
                    Some(reason) => self.queue_event(
                        sess,
                        ClientEvent::Reject {
                            reason,
                            req: ClientReq::Join(group),
                        },
                        out,
                    ),
                    None => self.ring_send(RingMsg::Join { group, member: name }, Service::Agreed, out),
                }
            }
            ClientReq::Leave(group) => {
                self.ring_send(RingMsg::Leave { group, member: name }, Service::Agreed, out);
            }
            ClientReq::Send(mc) => {
                if mc.targets.is_empty() || mc.targets.len() > MAX_TARGETS {
                    self.kill_session(sess, KillReason::ProtocolViolation, out);
                    return;
                }
                let msg = DataMsg {
                    sender: name.clone(),
                    targets: mc.targets,
                    service: mc.service,
                    mess_type: mc.mess_type,
                    body: mc.body,
                };
                let early = self.cfg.is(GroupMutant::EarlyLocalDelivery);
                if early {
                    self.deliver_data(&msg, mc.self_discard, Some(sess), out);
                }
                self.sent.entry(name.user.clone()).or_default().push_back(Sent {
                    self_discard: mc.self_discard,
                    early,
                });
                self.ring_send(RingMsg::Data(msg), mc.service.ring_service(), out);
            }
            ClientReq::Disconnect => {}
        }
    }

    /// Closes a session at the daemon's initiative and orders its SAFE Kill.
    fn kill_session(&mut self, sess: SessionId, why: KillReason, out: &mut Vec<GroupOut>) {
        let Some(s) = self.sessions.get_mut(&sess) else {
            return;
        };
        if !s.open {
            return;
        }
        s.open = false;
        let name = s.name.clone();
        out.push(GroupOut::Kill { sess, why });
        self.submit_or_hold(Held::Kill(name, Service::Safe), out);
    }

    /// Queues an event for a session; kills it when its queue is full.
    fn queue_event(&mut self, sess: SessionId, ev: ClientEvent, out: &mut Vec<GroupOut>) {
        let Some(s) = self.sessions.get_mut(&sess) else {
            return;
        };
        if !s.open {
            return;
        }
        if s.queued >= self.cfg.max_session_queue {
            self.stats.slow_kills += 1;
            self.kill_session(sess, KillReason::SlowClient, out);
            return;
        }
        s.queued += 1;
        out.push(GroupOut::ToSession { sess, ev });
    }

    fn session_of(&self, p: &PrivateName) -> Option<SessionId> {
        if p.node != self.cfg.me {
            return None;
        }
        self.by_user
            .get(&p.user)
            .copied()
            .filter(|s| self.sessions.get(s).is_some_and(|x| x.name == *p))
    }

    // ---------------------------------------------------------------- ring deliveries

    fn ring(&mut self, d: RingDelivery, out: &mut Vec<GroupOut>) {
        match d {
            RingDelivery::Transitional { id, members } => {
                let conf = Conf {
                    id,
                    members: members.into_iter().collect(),
                };
                self.on_trans(conf, out);
            }
            RingDelivery::Regular { id, members } => {
                let conf = Conf {
                    id,
                    members: members.into_iter().collect(),
                };
                self.on_reg(conf, out);
            }
            RingDelivery::Message { origin, msg, .. } => self.on_message(origin, msg, out),
        }
    }

    fn next_gid(&mut self, group: Option<&GroupName>) -> Gid {
        let conf = self.gid_conf.unwrap_or(ConfigId::Regular(RingId {
            seq: 0,
            rep: crate::ring::Pid::new(self.cfg.me, 0),
        }));
        if self.cfg.is(GroupMutant::GidPerGroup) {
            let index = group
                .and_then(|g| self.groups.get(g))
                .filter(|g| g.gid.conf == conf)
                .map_or(1, |g| g.gid.index + 1);
            return Gid { conf, index };
        }
        self.counter += 1;
        Gid {
            conf,
            index: self.counter,
        }
    }

    fn set_conf(&mut self, id: ConfigId) {
        self.gid_conf = Some(id);
        self.counter = 0;
    }

    fn on_trans(&mut self, t: Conf, out: &mut Vec<GroupOut>) {
        match self.phase {
            Phase::Op => {
                self.set_conf(t.id);
                self.signal_losses(&t, out);
                self.trans = Some(t);
                self.phase = Phase::Trans;
            }
            Phase::Gather => {
                self.deferred = Some(t);
                self.phase = Phase::GatherTrans;
            }
            Phase::Boot | Phase::Trans | Phase::GatherTrans => self.stats.unexpected += 1,
        }
    }

    /// Marks the parts of daemons outside `t` away and signals the affected groups.
    fn signal_losses(&mut self, t: &Conf, out: &mut Vec<GroupOut>) {
        let names: Vec<GroupName> = self.groups.keys().cloned().collect();
        for name in names {
            let lost = self.groups.get(&name).is_some_and(|g| {
                g.parts
                    .iter()
                    .any(|(n, p)| !p.away && !t.members.contains(n) && !p.members.is_empty())
            });
            if !lost {
                continue;
            }
            let gid = self.next_gid(Some(&name));
            if let Some(g) = self.groups.get_mut(&name) {
                for (n, p) in &mut g.parts {
                    if !t.members.contains(n) {
                        p.away = true;
                    }
                }
                g.changed = true;
                g.gid = gid;
            }
            if !self.cfg.is(GroupMutant::NoTransition) {
                self.signal(&name, gid, out);
            }
        }
    }

    fn signal(&mut self, name: &GroupName, gid: Gid, out: &mut Vec<GroupOut>) {
        for sess in self.local_sessions(name, true) {
            self.queue_event(
                sess,
                ClientEvent::Transition {
                    group: name.clone(),
                    gid,
                },
                out,
            );
        }
    }

    /// Local sessions in `name` (only those wanting membership events when `membership`).
    fn local_sessions(&self, name: &GroupName, membership: bool) -> Vec<SessionId> {
        let Some(part) = self.groups.get(name).and_then(|g| g.parts.get(&self.cfg.me)) else {
            return Vec::new();
        };
        part.members
            .keys()
            .filter_map(|p| self.session_of(p))
            .filter(|s| !membership || self.sessions.get(s).is_some_and(|x| x.wants_membership))
            .collect()
    }

    /// Drops away parts (and groups left empty).
    fn drop_away(&mut self) {
        for g in self.groups.values_mut() {
            g.parts.retain(|_, p| !p.away && !p.members.is_empty());
        }
        self.groups.retain(|_, g| !g.is_empty());
    }

    fn on_reg(&mut self, r: Conf, out: &mut Vec<GroupOut>) {
        let Some(ring) = regular_ring(r.id) else {
            self.stats.unexpected += 1;
            return;
        };
        match self.phase {
            Phase::Boot => {
                self.set_conf(r.id);
                let alone = r.members.len() == 1 && r.members.contains(&self.cfg.me);
                self.reg = Some(r.clone());
                if alone {
                    self.phase = Phase::Op;
                    self.release(out);
                } else {
                    self.start_exchange(ring, &r, out);
                }
            }
            Phase::Op => {
                // a regular configuration without its transitional one: treat as if
                // the surviving old members formed the transitional configuration
                self.stats.unexpected += 1;
                let old = self.reg.as_ref().map(|c| c.members.clone()).unwrap_or_default();
                let t = Conf {
                    id: ConfigId::Transitional(
                        ring,
                        self.reg.as_ref().and_then(|c| regular_ring(c.id)).unwrap_or(ring),
                    ),
                    members: old.intersection(&r.members).copied().collect(),
                };
                self.on_trans(t, out);
                self.on_reg(r, out);
            }
            Phase::Trans => {
                let t_members = self.trans.take().map(|t| t.members).unwrap_or_default();
                self.set_conf(r.id);
                self.reg = Some(r.clone());
                if t_members == r.members {
                    self.network_views_subtractive(out);
                    self.phase = Phase::Op;
                    self.release(out);
                } else {
                    self.drop_away();
                    self.start_exchange(ring, &r, out);
                }
            }
            Phase::Gather => {
                self.stats.unexpected += 1;
                self.set_conf(r.id);
                self.reg = Some(r.clone());
                self.start_exchange(ring, &r, out);
            }
            Phase::GatherTrans => {
                // the exchange did not complete: keep the last agreed table, drop the daemons
                // lost meanwhile (signalling them), and exchange again for the new ring
                let t = self.deferred.take();
                if let Some(t) = &t {
                    self.set_conf(t.id);
                    self.signal_losses(t, out);
                }
                self.set_conf(r.id);
                self.reg = Some(r.clone());
                self.drop_away();
                self.start_exchange(ring, &r, out);
            }
        }
    }

    fn start_exchange(&mut self, ring: RingId, r: &Conf, out: &mut Vec<GroupOut>) {
        self.phase = Phase::Gather;
        let me = self.cfg.me;
        let stale = self.cfg.is(GroupMutant::StaleExchangeTag);
        let groups = self
            .groups
            .iter()
            .filter_map(|(name, g)| {
                let part = g.parts.get(&me).filter(|p| !p.members.is_empty())?;
                Some(GroupAnnounce {
                    group: name.clone(),
                    gid: if stale { g.jl_gid } else { g.gid },
                    members: part.members.keys().cloned().collect(),
                })
            })
            .collect();
        self.exchange = Some(Exchange {
            conf: ring,
            members: r.members.clone(),
            got: BTreeMap::new(),
        });
        self.ring_send(RingMsg::Groups { conf: ring, groups }, Service::Agreed, out);
    }

    /// Subtractive change: each changed group gets a NETWORK view in the new configuration.
    fn network_views_subtractive(&mut self, out: &mut Vec<GroupOut>) {
        self.drop_away();
        let names: Vec<GroupName> = self
            .groups
            .iter()
            .filter(|(_, g)| g.changed)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let gid = self.next_gid(Some(&name));
            self.install_view(&name, gid, Cause::Network, None, false, out);
        }
    }

    /// Sets the group's gid, computes the vs_sets, tells local members and updates their tags.
    fn install_view(
        &mut self,
        name: &GroupName,
        gid: Gid,
        cause: Cause,
        changed_member: Option<&PrivateName>,
        one_vs_set: bool,
        out: &mut Vec<GroupOut>,
    ) {
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        g.gid = gid;
        g.changed = false;
        if self.cfg.report_views {
            out.push(GroupOut::View {
                group: name.clone(),
                gid,
            });
        }
        if cause != Cause::Network {
            g.jl_gid = gid;
        }
        let members = g.members();
        let vs_sets: Vec<Vec<PrivateName>> = match (cause, changed_member) {
            (Cause::Network, _) if one_vs_set => vec![members.clone()],
            (Cause::Network, _) => {
                // key: (joined now, away daemon, previous gid)
                let mut sets: BTreeMap<(bool, Option<NodeId>, Option<Gid>), Vec<PrivateName>> =
                    BTreeMap::new();
                for (n, part) in &g.parts {
                    for (p, info) in &part.members {
                        let key = (info.prev.is_none(), part.away.then_some(*n), info.prev);
                        sets.entry(key).or_default().push(p.clone());
                    }
                }
                sets.into_values().collect()
            }
            (_, Some(p)) => vec![vec![p.clone()]],
            (_, None) => vec![members.clone()],
        };
        for part in g.parts.values_mut() {
            if !part.away {
                for info in part.members.values_mut() {
                    info.prev = Some(gid);
                }
            }
        }
        for sess in self.local_sessions(name, true) {
            let Some(me) = self.sessions.get(&sess).map(|s| s.name.clone()) else {
                continue;
            };
            let my_vs = vs_sets.iter().position(|s| s.contains(&me)).unwrap_or(0);
            self.queue_event(
                sess,
                ClientEvent::Membership(Membership {
                    group: name.clone(),
                    gid,
                    cause,
                    members: members.clone(),
                    vs_sets: vs_sets.clone(),
                    my_vs,
                }),
                out,
            );
        }
    }

    fn on_message(&mut self, origin: NodeId, msg: RingMsg, out: &mut Vec<GroupOut>) {
        let gathering = matches!(self.phase, Phase::Gather | Phase::GatherTrans);
        if let RingMsg::Groups { conf, groups } = msg {
            self.on_groups(origin, conf, groups, out);
            return;
        }
        if origin == self.cfg.me {
            self.backlog = self.backlog.saturating_sub(1);
            if self.blocked && self.backlog < self.cfg.max_ring_backlog {
                self.blocked = false;
                out.push(GroupOut::BlockClients(false));
            }
        }
        if gathering {
            // a carry-over (its origin's Groups not seen yet) is agreed: every member of the
            // new configuration delivers it before that Groups message
            let carry = self
                .exchange
                .as_ref()
                .is_some_and(|x| !x.got.contains_key(&origin));
            if carry {
                self.stats.deferred += 1;
            } else {
                self.stats.quiet_violations += 1;
            }
            self.deferred_msgs.push((origin, msg));
            return;
        }
        self.apply_message(origin, msg, out);
    }

    fn apply_message(&mut self, origin: NodeId, msg: RingMsg, out: &mut Vec<GroupOut>) {
        match msg {
            RingMsg::Join { group, member } => self.on_join(group, member, out),
            RingMsg::Leave { group, member } => self.on_leave(&group, &member, out),
            RingMsg::Kill { member } => self.on_kill(&member, out),
            RingMsg::Data(d) => {
                let mut self_discard = false;
                let mut early = false;
                if origin == self.cfg.me
                    && let Some(q) = self.sent.get_mut(&d.sender.user)
                {
                    if let Some(s) = q.pop_front() {
                        self_discard = s.self_discard;
                        early = s.early;
                    }
                    if q.is_empty() {
                        self.sent.remove(&d.sender.user);
                    }
                }
                if !early {
                    let sender = self.session_of(&d.sender);
                    self.deliver_data(&d, self_discard, sender, out);
                }
            }
            RingMsg::Groups { .. } => {}
        }
    }

    /// Delivers a data message to every local receiver once.
    fn deliver_data(
        &mut self,
        d: &DataMsg,
        self_discard: bool,
        sender: Option<SessionId>,
        out: &mut Vec<GroupOut>,
    ) {
        let discard = self_discard && !self.cfg.is(GroupMutant::IgnoreSelfDiscard);
        let mut receivers: Vec<SessionId> = Vec::new();
        for t in &d.targets {
            match t {
                Target::Group(g) => receivers.extend(self.local_sessions(g, false)),
                Target::Private(p) => receivers.extend(self.session_of(p)),
            }
        }
        if !self.cfg.is(GroupMutant::DuplicatePerGroup) {
            let set: BTreeSet<SessionId> = receivers.into_iter().collect();
            receivers = set.into_iter().collect();
        }
        for sess in receivers {
            if discard && Some(sess) == sender {
                continue;
            }
            self.queue_event(sess, ClientEvent::Data(d.clone()), out);
        }
    }

    /// Whether a group change in the current phase is reported as NETWORK (design §1.6: a
    /// changed group during a transition).
    fn network_change(&self, name: &GroupName) -> bool {
        self.phase == Phase::Trans && self.groups.get(name).is_some_and(|g| g.changed)
    }

    fn after_change(&mut self, name: &GroupName, network: bool, out: &mut Vec<GroupOut>) {
        if network && let Some(g) = self.groups.get_mut(name) {
            g.changed = true;
            let gid = g.gid;
            self.signal(name, gid, out);
        }
    }

    fn on_join(&mut self, name: GroupName, member: PrivateName, out: &mut Vec<GroupOut>) {
        if self.groups.get(&name).is_some_and(|g| g.contains(&member)) {
            return;
        }
        let network = self.network_change(&name);
        let gid = self.next_gid(Some(&name));
        let g = self.groups.entry(name.clone()).or_insert_with(|| Group {
            gid,
            jl_gid: gid,
            changed: false,
            parts: BTreeMap::new(),
        });
        g.parts
            .entry(member.node)
            .or_default()
            .members
            .insert(member.clone(), MemberInfo { prev: None });
        let cause = if network { Cause::Network } else { Cause::Join };
        self.install_view(&name, gid, cause, Some(&member), false, out);
        self.after_change(&name, network, out);
    }

    fn on_leave(&mut self, name: &GroupName, member: &PrivateName, out: &mut Vec<GroupOut>) {
        if !self.groups.get(name).is_some_and(|g| g.contains(member)) {
            return;
        }
        let network = self.network_change(name);
        let leaver = self.session_of(member);
        self.remove_member(name, member);
        let leaver_view = self.cfg.is(GroupMutant::LeaverGetsView);
        if let Some(sess) = leaver
            && !leaver_view
        {
            self.queue_event(sess, ClientEvent::SelfLeave(name.clone()), out);
        }
        if self.groups.contains_key(name) {
            let gid = self.next_gid(Some(name));
            let cause = if network { Cause::Network } else { Cause::Leave };
            self.install_view(name, gid, cause, Some(member), false, out);
            if let (Some(sess), true) = (leaver, leaver_view) {
                let members = self.groups.get(name).map(Group::members).unwrap_or_default();
                self.queue_event(
                    sess,
                    ClientEvent::Membership(Membership {
                        group: name.clone(),
                        gid,
                        cause,
                        members,
                        vs_sets: vec![vec![member.clone()]],
                        my_vs: 0,
                    }),
                    out,
                );
            }
            self.after_change(name, network, out);
        }
    }

    fn remove_member(&mut self, name: &GroupName, member: &PrivateName) {
        if let Some(g) = self.groups.get_mut(name) {
            if let Some(part) = g.parts.get_mut(&member.node) {
                part.members.remove(member);
                if part.members.is_empty() {
                    g.parts.remove(&member.node);
                }
            }
            if g.is_empty() {
                self.groups.remove(name);
            }
        }
    }

    fn on_kill(&mut self, member: &PrivateName, out: &mut Vec<GroupOut>) {
        let names: Vec<GroupName> = self
            .groups
            .iter()
            .filter(|(_, g)| g.contains(member))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let network = self.network_change(&name);
            self.remove_member(&name, member);
            if self.groups.contains_key(&name) {
                let gid = self.next_gid(Some(&name));
                let cause = if network {
                    Cause::Network
                } else {
                    Cause::Disconnect
                };
                self.install_view(&name, gid, cause, Some(member), false, out);
                self.after_change(&name, network, out);
            }
        }
        // the name is free again once its Kill is delivered
        if member.node == self.cfg.me
            && let Some(sess) = self.by_user.get(&member.user).copied()
            && self.sessions.get(&sess).is_some_and(|s| !s.open)
        {
            self.by_user.remove(&member.user);
            self.sessions.remove(&sess);
            self.sent.remove(&member.user);
        }
    }

    fn on_groups(
        &mut self,
        origin: NodeId,
        conf: RingId,
        groups: Vec<GroupAnnounce>,
        out: &mut Vec<GroupOut>,
    ) {
        let Some(x) = self.exchange.as_mut() else {
            self.stats.unexpected += 1;
            return;
        };
        if x.conf != conf || !x.members.contains(&origin) {
            self.stats.unexpected += 1;
            return;
        }
        x.got.insert(origin, groups);
        if x.got.len() == x.members.len() {
            self.finish_exchange(out);
        }
    }

    fn finish_exchange(&mut self, out: &mut Vec<GroupOut>) {
        let Some(x) = self.exchange.take() else { return };
        let mut table: BTreeMap<GroupName, (BTreeSet<Gid>, Group)> = BTreeMap::new();
        for (node, anns) in x.got {
            for a in anns {
                let (gids, g) = table.entry(a.group.clone()).or_insert_with(|| {
                    (
                        BTreeSet::new(),
                        Group {
                            gid: a.gid,
                            jl_gid: a.gid,
                            changed: false,
                            parts: BTreeMap::new(),
                        },
                    )
                });
                gids.insert(a.gid);
                let part = g.parts.entry(node).or_default();
                for m in a.members {
                    if m.node == node {
                        part.members.insert(m, MemberInfo { prev: Some(a.gid) });
                    }
                }
            }
        }
        let mut changed = Vec::new();
        self.groups = BTreeMap::new();
        for (name, (gids, mut g)) in table {
            g.parts.retain(|_, p| !p.members.is_empty());
            if g.is_empty() {
                continue;
            }
            if gids.len() > 1
                || gids
                    .iter()
                    .any(|gid| gid.conf.kind() == crate::ring::ConfigKind::Transitional)
            {
                changed.push(name.clone());
            }
            if let Some(first) = gids.iter().next() {
                g.gid = *first;
                g.jl_gid = *first;
            }
            self.groups.insert(name, g);
        }
        self.phase = Phase::Op;
        let one = self.cfg.is(GroupMutant::MergeOneVsSet);
        for name in changed {
            let gid = self.next_gid(Some(&name));
            self.install_view(&name, gid, Cause::Network, None, one, out);
        }
        for (origin, msg) in std::mem::take(&mut self.deferred_msgs) {
            self.apply_message(origin, msg, out);
        }
        self.release(out);
        if let Some(t) = self.deferred.take() {
            self.on_trans(t, out);
        }
    }
}

const fn regular_ring(id: ConfigId) -> Option<RingId> {
    match id {
        ConfigId::Regular(r) => Some(r),
        ConfigId::Transitional(..) => None,
    }
}
