//! Stateright model of the group layer driven by an abstract EVS oracle
//! (`/work/shared/design/groups-and-flush.md` §6), with the GRP-* properties of §4.
//!
//! What is checked is the very [`GroupLayer::handle`] the daemon runs. The ring is replaced by
//! an oracle with EVS's guarantees and nothing more:
//! - each regular configuration has one delivery sequence; a daemon appends (orders) its
//!   pending messages only to the configuration it has installed, and delivers a prefix of it;
//! - a scripted change (partition, merge, crash) closes every open configuration; for each new
//!   component, the daemons coming from one old configuration (its transitional set) share one
//!   split (what they deliver in the old regular configuration) and one cut (what they deliver
//!   in total, the rest in the transitional configuration); the cut covers every message the
//!   set itself ordered (self delivery) and is chosen from {the least allowed, everything};
//!   the split from {the least allowed, the cut};
//! - messages a daemon had not ordered yet move on with it to its next configuration.
//!
//! Abstractions: clients run fixed scripts (join, leave, send, disconnect); a fast client
//! drains each event at once, a slow one never reads; the per-daemon split of Safe messages
//! (a Safe message may be delivered in the regular configuration by one member and in the
//! transitional one by another) is not modelled: the oracle gives one split per transitional
//! set, which is what the ring's recovery gives Agreed messages.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use stateright::{Checker, Expectation, HasDiscoveries, Model, Property};

use super::config::{GroupConfig, GroupMutant};
use super::layer::{GroupLayer, Phase};
use super::props::{self, Client, Ghost, GroupIx, Obs, SendRec};
use super::types::{
    ClientEvent, ClientReq, ClientService, Gid, GroupIn, GroupName, GroupOut, KillReason, Multicast,
    PrivateName, RingDelivery, RingMsg, SessionId, Target,
};
use crate::check::{CheckReport, PropertyReport};
use crate::ring::{ConfigId, NodeId, Pid, RingId};

/// How deep the default check explores [`GroupsModelCfg::partition_merge`] (both changes and
/// a merge's exchange are within reach at this depth; see `spec/groups.md`).
pub const DEFAULT_PARTITION_MERGE_DEPTH: usize = 12;

/// One step of a client's script.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    /// Join a group.
    Join(GroupIx),
    /// Leave a group.
    Leave(GroupIx),
    /// Multicast to these groups.
    Send(Vec<GroupIx>),
    /// Disconnect.
    Disconnect,
}

/// A scripted client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientSpec {
    /// Its daemon.
    pub daemon: NodeId,
    /// What it does, in order.
    pub script: Vec<Step>,
    /// Sends with `SELF_DISCARD`.
    pub self_discard: bool,
    /// Never reads (its events pile up in its session queue).
    pub slow: bool,
}

/// One configuration of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupsModelCfg {
    /// Scenario name (for reports).
    pub name: &'static str,
    /// Daemons `0..daemons`.
    pub daemons: u16,
    /// The components formed at the start (every daemon in one of them).
    pub initial: Vec<Vec<NodeId>>,
    /// Scripted changes, in order: each is the new list of components of live daemons (a
    /// daemon in none of them crashes).
    pub changes: Vec<Vec<Vec<NodeId>>>,
    /// The clients.
    pub clients: Vec<ClientSpec>,
    /// Session queue bound.
    pub queue: u32,
    /// A seeded bug.
    pub mutant: Option<GroupMutant>,
    /// Explore only paths of at most this many actions (breadth-first): the scenario's state
    /// space is then exhausted up to that depth. `None`: no depth bound.
    pub max_depth: Option<usize>,
}

fn join(g: GroupIx) -> Step {
    Step::Join(g)
}

fn send(g: GroupIx) -> Step {
    Step::Send(vec![g])
}

fn client(daemon: NodeId, script: Vec<Step>) -> ClientSpec {
    ClientSpec {
        daemon,
        script,
        self_discard: false,
        slow: false,
    }
}

impl GroupsModelCfg {
    /// Partition then merge: two daemons in one ring, a member at each sending twice (the
    /// second one first sends as a non-member), then `{0}{1}` and back to `{0,1}`.
    pub fn partition_merge(mutant: Option<GroupMutant>) -> Self {
        Self {
            name: "partition-merge",
            daemons: 2,
            initial: vec![vec![0, 1]],
            changes: vec![vec![vec![0], vec![1]], vec![vec![0, 1]]],
            clients: vec![
                client(0, vec![join(0), send(0), send(0)]),
                client(1, vec![send(0), join(0), send(0)]),
            ],
            queue: 2,
            mutant,
            max_depth: None,
        }
    }

    /// Steady state on one ring of two daemons: joins, a leave, a re-created group, a
    /// two-group self-discarding send, and a slow client.
    pub fn steady(mutant: Option<GroupMutant>) -> Self {
        Self {
            name: "steady",
            daemons: 2,
            initial: vec![vec![0, 1]],
            changes: vec![],
            clients: vec![
                ClientSpec {
                    daemon: 0,
                    script: vec![join(0), join(1), Step::Send(vec![0, 1]), Step::Leave(0)],
                    self_discard: true,
                    slow: false,
                },
                client(0, vec![join(1), join(0), send(0)]),
                ClientSpec {
                    daemon: 1,
                    script: vec![join(1)],
                    self_discard: false,
                    slow: true,
                },
            ],
            queue: 2,
            mutant,
            max_depth: None,
        }
    }

    /// A merge interrupted by a crash: `{0}{1}` merge, then daemon 1 crashes (possibly while
    /// daemon 0 is still gathering).
    pub fn merge_crash(mutant: Option<GroupMutant>) -> Self {
        Self {
            name: "merge-crash",
            daemons: 2,
            initial: vec![vec![0], vec![1]],
            changes: vec![vec![vec![0, 1]], vec![vec![0]]],
            clients: vec![
                client(0, vec![join(0), send(0)]),
                client(1, vec![join(0), send(0)]),
            ],
            queue: 2,
            mutant,
            max_depth: None,
        }
    }

    /// A smaller partition-then-merge for hunting the merge mutants: one join and one send per
    /// client.
    pub fn split_merge(mutant: Option<GroupMutant>) -> Self {
        Self {
            name: "split-merge",
            daemons: 2,
            initial: vec![vec![0, 1]],
            changes: vec![vec![vec![0], vec![1]], vec![vec![0, 1]]],
            clients: vec![
                client(0, vec![join(0), send(0)]),
                client(1, vec![join(0), send(0)]),
            ],
            queue: 2,
            mutant,
            max_depth: None,
        }
    }

    /// [`Self::partition_merge`] explored breadth-first to `depth` actions only: its whole
    /// state space (two sends per client, two changes) is beyond 24 GB.
    pub fn partition_merge_to_depth(mutant: Option<GroupMutant>, depth: usize) -> Self {
        Self {
            max_depth: Some(depth),
            ..Self::partition_merge(mutant)
        }
    }

    /// The scenarios of the default check: three exhausted, and the largest one to
    /// [`DEFAULT_PARTITION_MERGE_DEPTH`].
    pub fn all(mutant: Option<GroupMutant>) -> Vec<Self> {
        vec![
            Self::split_merge(mutant),
            Self::steady(mutant),
            Self::merge_crash(mutant),
            Self::partition_merge_to_depth(mutant, DEFAULT_PARTITION_MERGE_DEPTH),
        ]
    }

    fn groups(&self) -> u8 {
        let mut n = 0;
        for c in &self.clients {
            for s in &c.script {
                let gs: Vec<GroupIx> = match s {
                    Step::Join(g) | Step::Leave(g) => vec![*g],
                    Step::Send(gs) => gs.clone(),
                    Step::Disconnect => vec![],
                };
                n = gs.iter().fold(n, |n, g| n.max(*g + 1));
            }
        }
        n
    }
}

/// A configuration of the oracle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OConf {
    /// Its ring.
    pub ring: RingId,
    /// Members.
    pub members: Vec<NodeId>,
    /// The delivery sequence: origin and message.
    pub seq: Vec<(NodeId, RingMsg)>,
    /// Once closed: per transitional set, the successor configuration, the set, the split and the cut.
    pub succ: Option<Vec<Succ>>,
}

/// How one transitional set leaves a closed configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Succ {
    /// Index of the next configuration.
    pub next: usize,
    /// The transitional set.
    pub t: Vec<NodeId>,
    /// Delivered in the regular configuration: `seq[..split]`.
    pub split: usize,
    /// Delivered in total: `seq[..cut]`.
    pub cut: usize,
}

/// A live daemon.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DState {
    /// The machine.
    pub layer: GroupLayer,
    /// The configuration it delivers from (it has installed it).
    pub at: usize,
    /// Delivered so far of that configuration's sequence.
    pub pos: usize,
    /// Delivered the transitional configuration out of `at`.
    pub in_trans: bool,
    /// Messages handed to the ring and not ordered yet.
    pub pending: Vec<RingMsg>,
}

/// A client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CState {
    /// Next script step.
    pub step: u8,
    /// Messages sent.
    pub sends: u8,
    /// Per group, the gid installed (from the events handed to it).
    pub installed: Vec<Option<Gid>>,
}

/// The model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct State {
    /// Per daemon, `None` once crashed.
    pub daemons: Vec<Option<DState>>,
    /// Every configuration so far.
    pub confs: Vec<OConf>,
    /// Scripted changes done.
    pub changes: u8,
    /// Clients.
    pub clients: Vec<CState>,
    /// Observations.
    pub ghost: Ghost,
}

/// The model's actions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// A client performs its next step.
    Client(Client),
    /// A daemon delivers the next thing the oracle has for it.
    Deliver(NodeId),
    /// The next scripted change, with (split, cut) per transitional set.
    Change(Vec<(usize, usize)>),
}

/// The model.
#[derive(Clone, Debug)]
pub struct GroupsModel {
    /// Its configuration.
    pub cfg: GroupsModelCfg,
}

fn gname(g: GroupIx) -> GroupName {
    GroupName::new(format!("g{g}")).unwrap_or_else(|_| unreachable!("g<n> is a valid group name"))
}

fn group_ix(g: &GroupName) -> GroupIx {
    g.as_str()[1..].parse().unwrap_or(u8::MAX)
}

fn client_ix(p: &PrivateName) -> Client {
    p.user[1..].parse().unwrap_or(u8::MAX)
}

fn ring_id(seq: u64, rep: NodeId) -> RingId {
    RingId {
        seq,
        rep: Pid::new(rep, 1),
    }
}

impl GroupsModel {
    fn sess(c: Client) -> SessionId {
        u64::from(c)
    }

    fn layer_cfg(&self, node: NodeId) -> GroupConfig {
        let mut c = GroupConfig::new(node, format!("d{node}"));
        c.max_session_queue = self.cfg.queue;
        c.mutant = self.cfg.mutant;
        c
    }

    /// Feeds one input to daemon `d` and carries out its outputs.
    fn feed(&self, s: &mut State, d: NodeId, input: GroupIn, conf: ConfigId) {
        let Some(ds) = s.daemons.get_mut(usize::from(d)).and_then(Option::as_mut) else {
            return;
        };
        let before = ds.layer.phase();
        let out = ds.layer.handle(input);
        if before == Phase::GatherTrans && ds.layer.phase() != Phase::GatherTrans {
            s.ghost.cascade_done = true;
        }
        for o in out {
            match o {
                GroupOut::RingSend { msg, .. } => {
                    if let Some(ds) = s.daemons.get_mut(usize::from(d)).and_then(Option::as_mut) {
                        ds.pending.push(msg);
                    }
                    // ordered at once while the daemon's configuration is open; otherwise
                    // the message moves on with the daemon to its next configuration
                    while Self::can_order(s, d) {
                        Self::order(s, d);
                    }
                }
                GroupOut::ToSession { sess, ev } => {
                    let c = u8::try_from(sess).unwrap_or(u8::MAX);
                    self.observe(s, c, ev, conf);
                    let slow = self.cfg.clients.get(usize::from(c)).is_some_and(|x| x.slow);
                    if !slow && let Some(ds) = s.daemons.get_mut(usize::from(d)).and_then(Option::as_mut) {
                        let _ = ds.layer.handle(GroupIn::Drained { sess, n: 1 });
                    }
                }
                GroupOut::Kill { sess, why } => {
                    let c = usize::try_from(sess).unwrap_or(usize::MAX);
                    if let Some(g) = s.ghost.gone.get_mut(c) {
                        *g = true;
                    }
                    if why == KillReason::SlowClient
                        && let Some(k) = s.ghost.slow_killed.get_mut(c)
                    {
                        *k = true;
                    }
                }
                GroupOut::Accepted { .. }
                | GroupOut::Refused { .. }
                | GroupOut::BlockClients(_)
                | GroupOut::View { .. } => {}
            }
        }
    }

    fn observe(&self, s: &mut State, c: Client, ev: ClientEvent, conf: ConfigId) {
        let ci = usize::from(c);
        let Some(cs) = s.clients.get_mut(ci) else { return };
        let obs = match ev {
            ClientEvent::Membership(m) => {
                let g = group_ix(&m.group);
                if let Some(slot) = cs.installed.get_mut(usize::from(g)) {
                    *slot = Some(m.gid);
                }
                Obs::View {
                    group: g,
                    gid: m.gid,
                    cause: m.cause,
                    members: m.members.iter().map(client_ix).collect(),
                    vs_sets: m
                        .vs_sets
                        .iter()
                        .map(|v| v.iter().map(client_ix).collect())
                        .collect(),
                    my_vs: m.my_vs,
                }
            }
            ClientEvent::Transition { group, .. } => Obs::Trans {
                group: group_ix(&group),
            },
            ClientEvent::SelfLeave(group) => {
                let g = group_ix(&group);
                if let Some(slot) = cs.installed.get_mut(usize::from(g)) {
                    *slot = None;
                }
                Obs::SelfLeave { group: g }
            }
            ClientEvent::Data(d) => {
                let id = (client_ix(&d.sender), d.body.get(1).copied().unwrap_or(0));
                let gids = d
                    .targets
                    .iter()
                    .filter_map(|t| match t {
                        Target::Group(g) => {
                            let g = group_ix(g);
                            Some((g, cs.installed.get(usize::from(g)).copied().flatten()))
                        }
                        Target::Private(_) => None,
                    })
                    .collect();
                Obs::Data { id, gids, conf }
            }
            ClientEvent::Reject { .. } | ClientEvent::Undecryptable(_) => return,
        };
        if let Some(log) = s.ghost.logs.get_mut(ci) {
            log.push(obs);
        }
    }

    /// The split/cut choices of each transitional set of the next change.
    fn change_choices(&self, s: &State) -> Option<Vec<Vec<(usize, usize)>>> {
        let comps = self.cfg.changes.get(usize::from(s.changes))?;
        let mut per_set = Vec::new();
        for (ci, conf) in s.confs.iter().enumerate() {
            if conf.succ.is_some() {
                continue;
            }
            for comp in comps {
                let t: Vec<NodeId> = conf
                    .members
                    .iter()
                    .copied()
                    .filter(|n| comp.contains(n) && Self::bound_for(s, *n, ci))
                    .collect();
                if t.is_empty() {
                    continue;
                }
                let max_pos = t
                    .iter()
                    .filter_map(|n| s.daemons.get(usize::from(*n)).and_then(Option::as_ref))
                    .map(|d| if d.at == ci { d.pos } else { 0 })
                    .max()
                    .unwrap_or(0);
                let own = conf
                    .seq
                    .iter()
                    .rposition(|(o, _)| t.contains(o))
                    .map_or(0, |i| i + 1);
                let lo = max_pos.max(own);
                let len = conf.seq.len();
                let mut opts = BTreeSet::new();
                for cut in [lo, len] {
                    for split in [max_pos, cut] {
                        opts.insert((split, cut));
                    }
                }
                per_set.push(opts.into_iter().collect::<Vec<_>>());
            }
        }
        // cartesian product
        let mut all: Vec<Vec<(usize, usize)>> = vec![vec![]];
        for opts in per_set {
            all = all
                .into_iter()
                .flat_map(|pre| {
                    opts.iter().map(move |o| {
                        let mut v = pre.clone();
                        v.push(*o);
                        v
                    })
                })
                .collect();
        }
        Some(all)
    }

    /// Whether live daemon `n` delivers from configuration `ci` or will: it is a member and
    /// has not moved past it (a member that has not installed it yet counts with position 0).
    fn bound_for(s: &State, n: NodeId, ci: usize) -> bool {
        s.daemons
            .get(usize::from(n))
            .and_then(Option::as_ref)
            .is_some_and(|d| d.at <= ci)
    }

    fn apply_change(&self, s: &mut State, choice: &[(usize, usize)]) {
        let Some(comps) = self.cfg.changes.get(usize::from(s.changes)).cloned() else {
            return;
        };
        s.changes += 1;
        let live: BTreeSet<NodeId> = comps.iter().flatten().copied().collect();
        for (n, d) in s.daemons.iter_mut().enumerate() {
            let n = NodeId::try_from(n).unwrap_or(NodeId::MAX);
            if !live.contains(&n) && d.is_some() {
                *d = None;
                for (c, spec) in self.cfg.clients.iter().enumerate() {
                    if spec.daemon == n
                        && let Some(g) = s.ghost.gone.get_mut(c)
                    {
                        *g = true;
                    }
                }
            }
        }
        let next_seq = s.confs.iter().map(|c| c.ring.seq).max().unwrap_or(0) + 1;
        let first_new = s.confs.len();
        for (k, comp) in comps.iter().enumerate() {
            let rep = comp.iter().copied().min().unwrap_or(0);
            s.confs.push(OConf {
                ring: ring_id(next_seq + k as u64, rep),
                members: comp.clone(),
                seq: vec![],
                succ: None,
            });
        }
        let mut choice = choice.iter();
        for ci in 0..first_new {
            if s.confs[ci].succ.is_some() {
                continue;
            }
            let mut succ = Vec::new();
            for (k, comp) in comps.iter().enumerate() {
                let t: Vec<NodeId> = s.confs[ci]
                    .members
                    .iter()
                    .copied()
                    .filter(|n| comp.contains(n) && Self::bound_for(s, *n, ci))
                    .collect();
                if t.is_empty() {
                    continue;
                }
                let (split, cut) = choice.next().copied().unwrap_or((0, 0));
                succ.push(Succ {
                    next: first_new + k,
                    t,
                    split,
                    cut,
                });
            }
            s.confs[ci].succ = Some(succ);
        }
    }

    /// What `Deliver(d)` would hand daemon `d`, and its new oracle position.
    fn next_delivery(s: &State, d: NodeId) -> Option<(RingDelivery, ConfigId, usize, usize, bool)> {
        let ds = s.daemons.get(usize::from(d))?.as_ref()?;
        let conf = s.confs.get(ds.at)?;
        let reg = ConfigId::Regular(conf.ring);
        let Some(succs) = &conf.succ else {
            let (origin, msg) = conf.seq.get(ds.pos)?.clone();
            let ev = RingDelivery::Message {
                origin,
                config: reg,
                msg,
            };
            return Some((ev, reg, ds.at, ds.pos + 1, false));
        };
        let su = succs.iter().find(|x| x.t.contains(&d))?;
        let next = s.confs.get(su.next)?;
        let tid = ConfigId::Transitional(next.ring, conf.ring);
        if !ds.in_trans && ds.pos < su.split {
            let (origin, msg) = conf.seq.get(ds.pos)?.clone();
            let ev = RingDelivery::Message {
                origin,
                config: reg,
                msg,
            };
            return Some((ev, reg, ds.at, ds.pos + 1, false));
        }
        if !ds.in_trans {
            let ev = RingDelivery::Transitional {
                id: tid,
                members: su.t.clone(),
            };
            return Some((ev, tid, ds.at, ds.pos, true));
        }
        if ds.pos < su.cut {
            let (origin, msg) = conf.seq.get(ds.pos)?.clone();
            let ev = RingDelivery::Message {
                origin,
                config: tid,
                msg,
            };
            return Some((ev, tid, ds.at, ds.pos + 1, true));
        }
        let id = ConfigId::Regular(next.ring);
        let ev = RingDelivery::Regular {
            id,
            members: next.members.clone(),
        };
        Some((ev, id, su.next, 0, false))
    }

    fn deliver(&self, s: &mut State, d: NodeId) -> bool {
        let Some((ev, conf, at, pos, trans_flag)) = Self::next_delivery(s, d) else {
            return false;
        };
        if let Some(ds) = s.daemons.get_mut(usize::from(d)).and_then(Option::as_mut) {
            ds.at = at;
            ds.pos = pos;
            ds.in_trans = trans_flag;
        }
        self.feed(s, d, GroupIn::Ring(ev), conf);
        while Self::can_order(s, d) {
            Self::order(s, d);
        }
        true
    }

    /// The ring configuration daemon `d` is in (what a delivery at a client step is stamped with).
    fn current_conf(s: &State, d: NodeId) -> ConfigId {
        let Some(ds) = s.daemons.get(usize::from(d)).and_then(Option::as_ref) else {
            return ConfigId::Regular(ring_id(0, d));
        };
        let Some(conf) = s.confs.get(ds.at) else {
            return ConfigId::Regular(ring_id(0, d));
        };
        let next = conf
            .succ
            .iter()
            .flatten()
            .find(|x| x.t.contains(&d))
            .and_then(|x| s.confs.get(x.next));
        match next {
            Some(n) if ds.in_trans => ConfigId::Transitional(n.ring, conf.ring),
            _ => ConfigId::Regular(conf.ring),
        }
    }

    fn can_order(s: &State, d: NodeId) -> bool {
        s.daemons
            .get(usize::from(d))
            .and_then(Option::as_ref)
            .is_some_and(|ds| !ds.pending.is_empty() && s.confs.get(ds.at).is_some_and(|c| c.succ.is_none()))
    }

    fn order(s: &mut State, d: NodeId) {
        let Some(ds) = s.daemons.get_mut(usize::from(d)).and_then(Option::as_mut) else {
            return;
        };
        if ds.pending.is_empty() {
            return;
        }
        let m = ds.pending.remove(0);
        if let Some(c) = s.confs.get_mut(ds.at) {
            c.seq.push((d, m));
        }
    }

    fn client_step(&self, s: &mut State, c: Client) {
        let ci = usize::from(c);
        let (Some(spec), Some(cs)) = (self.cfg.clients.get(ci), s.clients.get(ci)) else {
            return;
        };
        let Some(step) = spec.script.get(usize::from(cs.step)).cloned() else {
            return;
        };
        let installed = cs.installed.clone();
        let sends = cs.sends;
        if let Some(cs) = s.clients.get_mut(ci) {
            cs.step += 1;
        }
        let sess = Self::sess(c);
        let req = match step {
            Step::Join(g) => ClientReq::Join(gname(g)),
            Step::Leave(g) => ClientReq::Leave(gname(g)),
            Step::Disconnect => {
                if let Some(g) = s.ghost.gone.get_mut(ci) {
                    *g = true;
                }
                ClientReq::Disconnect
            }
            Step::Send(gs) => {
                let k = sends + 1;
                if let Some(cs) = s.clients.get_mut(ci) {
                    cs.sends = k;
                }
                s.ghost.sent.push(SendRec {
                    id: (c, k),
                    gids: gs
                        .iter()
                        .map(|g| (*g, installed.get(usize::from(*g)).copied().flatten()))
                        .collect(),
                    self_discard: spec.self_discard,
                });
                ClientReq::Send(Multicast {
                    targets: gs.iter().map(|g| Target::Group(gname(*g))).collect(),
                    service: ClientService::Agreed,
                    self_discard: spec.self_discard,
                    mess_type: 0,
                    body: vec![c, k],
                })
            }
        };
        let conf = Self::current_conf(s, spec.daemon);
        self.feed(s, spec.daemon, GroupIn::Client { sess, req }, conf);
    }

    fn client_enabled(&self, s: &State, c: Client) -> bool {
        let ci = usize::from(c);
        let (Some(spec), Some(cs)) = (self.cfg.clients.get(ci), s.clients.get(ci)) else {
            return false;
        };
        usize::from(cs.step) < spec.script.len()
            && !s.ghost.gone.get(ci).copied().unwrap_or(true)
            && s.daemons
                .get(usize::from(spec.daemon))
                .is_some_and(Option::is_some)
    }

    /// No delivery or ordering is possible any more (client steps may remain).
    pub fn quiet(&self, s: &State) -> bool {
        (0..self.cfg.daemons).all(|d| !Self::can_order(s, d) && Self::next_delivery(s, d).is_none())
    }
}

impl Model for GroupsModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let n = usize::from(self.cfg.daemons);
        let groups = usize::from(self.cfg.groups());
        let mut s = State {
            daemons: vec![None; n],
            confs: vec![],
            changes: 0,
            clients: vec![
                CState {
                    step: 0,
                    sends: 0,
                    installed: vec![None; groups],
                };
                self.cfg.clients.len()
            ],
            ghost: Ghost {
                logs: vec![vec![]; self.cfg.clients.len()],
                gone: vec![false; self.cfg.clients.len()],
                slow_killed: vec![false; self.cfg.clients.len()],
                sent: vec![],
                cascade_done: false,
            },
        };
        for (k, comp) in self.cfg.initial.iter().enumerate() {
            let rep = comp.iter().copied().min().unwrap_or(0);
            s.confs.push(OConf {
                ring: ring_id(k as u64 + 1, rep),
                members: comp.clone(),
                seq: vec![],
                succ: None,
            });
            for node in comp {
                if let Some(slot) = s.daemons.get_mut(usize::from(*node)) {
                    *slot = Some(DState {
                        layer: GroupLayer::new(self.layer_cfg(*node)),
                        at: k,
                        pos: 0,
                        in_trans: false,
                        pending: vec![],
                    });
                }
            }
        }
        // boot: install the initial configurations and run their exchanges to the end
        for (k, comp) in self.cfg.initial.clone().iter().enumerate() {
            let ring = s.confs[k].ring;
            for node in comp {
                let ev = RingDelivery::Regular {
                    id: ConfigId::Regular(ring),
                    members: comp.clone(),
                };
                self.feed(&mut s, *node, GroupIn::Ring(ev), ConfigId::Regular(ring));
            }
        }
        for d in 0..self.cfg.daemons {
            while Self::can_order(&s, d) {
                Self::order(&mut s, d);
            }
        }
        for d in 0..self.cfg.daemons {
            while self.deliver(&mut s, d) {}
        }
        for (c, spec) in self.cfg.clients.iter().enumerate() {
            let c = u8::try_from(c).unwrap_or(u8::MAX);
            let input = GroupIn::Connect {
                sess: Self::sess(c),
                user: Some(format!("c{c}")),
                wants_membership: true,
            };
            let conf = Self::current_conf(&s, spec.daemon);
            self.feed(&mut s, spec.daemon, input, conf);
        }
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for c in 0..self.cfg.clients.len() {
            let c = u8::try_from(c).unwrap_or(u8::MAX);
            if self.client_enabled(s, c) {
                actions.push(Action::Client(c));
            }
        }
        for d in 0..self.cfg.daemons {
            if Self::next_delivery(s, d).is_some() {
                actions.push(Action::Deliver(d));
            }
        }
        if let Some(choices) = self.change_choices(s) {
            actions.extend(choices.into_iter().map(Action::Change));
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Client(c) => self.client_step(&mut s, c),
            Action::Deliver(d) => {
                self.deliver(&mut s, d);
            }
            Action::Change(choice) => self.apply_change(&mut s, &choice),
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("GRP-VIEWAGREE", |_, s| props::view_agree(&s.ghost)),
            Property::<Self>::always("GRP-GIDUNIQ", |_, s| props::gid_unique(&s.ghost)),
            Property::<Self>::always("GRP-SELFINC", |_, s| props::self_inclusion(&s.ghost)),
            Property::<Self>::always("GRP-SAMEVIEW", |_, s| props::same_view(&s.ghost)),
            Property::<Self>::always("GRP-ORDER", |_, s| props::order(&s.ghost)),
            Property::<Self>::always("GRP-TRANS", |_, s| props::transition(&s.ghost)),
            Property::<Self>::always("GRP-VSSET", |_, s| props::vs_set(&s.ghost)),
            Property::<Self>::always("GRP-SELF", |m, s| {
                props::self_discard(&s.ghost) && (!m.quiet(s) || props::self_delivery(&s.ghost))
            }),
            Property::<Self>::always("GRP-NODUP", |_, s| props::no_dup(&s.ghost)),
            Property::<Self>::always("GRP-QUIET", |_, s| {
                s.daemons
                    .iter()
                    .flatten()
                    .all(|d| d.layer.stats().quiet_violations == 0)
            }),
            Property::<Self>::sometimes("S-JOINVIEW", |_, s| props::s_join_view(&s.ghost)),
            Property::<Self>::sometimes("S-MERGE-2VS", |_, s| props::s_merge_2vs(&s.ghost)),
            Property::<Self>::sometimes("S-TRANSMSG", |_, s| props::s_trans_msg(&s.ghost)),
            Property::<Self>::sometimes("S-EVS-NEXTVIEW", |_, s| props::s_evs_next_view(&s.ghost)),
            Property::<Self>::sometimes("S-GATHER-CASCADE", |_, s| s.ghost.cascade_done),
            Property::<Self>::sometimes("S-OPEN-SEND", |_, s| props::s_open_send(&s.ghost)),
            Property::<Self>::sometimes("S-SLOW-KILL", |_, s| props::s_slow_kill(&s.ghost)),
        ]
    }
}

/// Checks one configuration exhaustively (or, with `stop_at_first_failure`, until the first
/// counterexample) and reports.
pub fn check_cfg(cfg: GroupsModelCfg, stop_at_first_failure: bool) -> CheckReport {
    check_bounded(cfg, stop_at_first_failure, usize::MAX)
}

/// As [`check_cfg`], stopping after about `max_states` states (the report is then not complete).
pub fn check_bounded(cfg: GroupsModelCfg, stop_at_first_failure: bool, max_states: usize) -> CheckReport {
    check_search(cfg, stop_at_first_failure, max_states, false)
}

/// As [`check_bounded`], depth-first when `dfs` (the merge mutants show only deep in the
/// graph), breadth-first otherwise (shortest counterexamples).
pub fn check_search(
    cfg: GroupsModelCfg,
    stop_at_first_failure: bool,
    max_states: usize,
    dfs: bool,
) -> CheckReport {
    let mutant = cfg.mutant.map(|m| m.name().to_owned());
    let model = GroupsModel { cfg };
    let props: Vec<(&'static str, Expectation)> = model
        .properties()
        .into_iter()
        .map(|p| (p.name, p.expectation))
        .collect();
    let max_depth = model.cfg.max_depth;
    let mut builder = model.checker().threads(1).target_state_count(max_states);
    if let Some(depth) = max_depth {
        builder = builder.target_max_depth(depth);
    }
    if stop_at_first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    if dfs {
        report(
            &builder.spawn_dfs().join(),
            &props,
            mutant,
            stop_at_first_failure,
            max_states,
        )
    } else {
        report(
            &builder.spawn_bfs().join(),
            &props,
            mutant,
            stop_at_first_failure,
            max_states,
        )
    }
}

fn report(
    checker: &impl Checker<GroupsModel>,
    props: &[(&'static str, Expectation)],
    mutant: Option<String>,
    stop_at_first_failure: bool,
    max_states: usize,
) -> CheckReport {
    let mut failed = false;
    let properties = props
        .iter()
        .map(|(name, exp)| {
            let found = checker.discovery(name);
            let always = matches!(exp, Expectation::Always);
            let counterexample = match (&found, always) {
                (Some(path), true) => {
                    failed = true;
                    Some(
                        path.clone()
                            .into_actions()
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                }
                _ => None,
            };
            PropertyReport {
                name: (*name).to_owned(),
                expectation: if always { "always" } else { "sometimes" }.to_owned(),
                holds: if always { found.is_none() } else { found.is_some() },
                counterexample,
            }
        })
        .collect();
    CheckReport {
        model: "groups".to_owned(),
        mutant,
        states: checker.unique_state_count(),
        complete: !(failed && stop_at_first_failure) && checker.state_count() < max_states,
        properties,
    }
}

/// Merges the reports of several scenarios: states add up; an `always` property holds when it
/// holds in every scenario (the first counterexample is kept), a `sometimes` one when it is
/// reached in any.
pub fn merge_reports(reports: Vec<CheckReport>) -> Option<CheckReport> {
    let mut it = reports.into_iter();
    let mut acc = it.next()?;
    for r in it {
        acc.states += r.states;
        acc.complete &= r.complete;
        for (a, b) in acc.properties.iter_mut().zip(r.properties) {
            if a.expectation == "always" {
                if a.holds && !b.holds {
                    a.holds = false;
                    a.counterexample = b.counterexample;
                }
            } else {
                a.holds |= b.holds;
            }
        }
    }
    Some(acc)
}

/// The scenario that shows each mutant's counterexample.
pub fn hunting_cfg(m: GroupMutant) -> GroupsModelCfg {
    match m {
        GroupMutant::StaleExchangeTag | GroupMutant::MergeOneVsSet => GroupsModelCfg::split_merge(Some(m)),
        GroupMutant::NoTransition | GroupMutant::NoHoldInGather | GroupMutant::EarlyLocalDelivery => {
            GroupsModelCfg::partition_merge(Some(m))
        }
        GroupMutant::GidPerGroup
        | GroupMutant::LeaverGetsView
        | GroupMutant::IgnoreSelfDiscard
        | GroupMutant::DuplicatePerGroup => GroupsModelCfg::steady(Some(m)),
    }
}

/// `sgc check groups`: every scenario of [`GroupsModelCfg::all`] without a mutant; with one,
/// its hunting scenario until the first counterexample.
pub fn check(mutant: Option<GroupMutant>) -> CheckReport {
    match mutant {
        None => merge_reports(
            GroupsModelCfg::all(None)
                .into_iter()
                .map(|c| check_cfg(c, false))
                .collect(),
        )
        .unwrap_or_else(|| unreachable!("at least one scenario")),
        Some(m) => check_search(
            hunting_cfg(m),
            true,
            usize::MAX,
            matches!(m, GroupMutant::StaleExchangeTag | GroupMutant::MergeOneVsSet),
        ),
    }
}
