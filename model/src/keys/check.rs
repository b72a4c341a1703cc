//! The Stateright model of the keys engine over the group layer, and its properties
//! (`spec/keys.md`).
//!
//! Each daemon runs the real [`GroupLayer`] and the real [`KeysEngine`] (symbolic TGDH and MAC).
//! The ring is an abstract EVS oracle: daemons live in *components*, each with a regular ring
//! and one agreed-order queue of ring messages (group-layer messages and TGDH messages); the
//! head of a queue is delivered to every daemon of the component at once. A configuration
//! change (a partition of a component, or a merge of two) delivers, to each daemon, the
//! transitional configuration (the old members that move with it), then what was left in the
//! old queue (in the transitional configuration: an unfinished TGDH run is interrupted), then
//! the new regular configuration. Clients are connected to fixed daemons and join and leave
//! groups; the representative of a component may refresh the servers' key (a time-out).
//!
//! Ghost state records every key released to a client, with the ground truth of the view it
//! is for (the members the group layer put in the membership, or for an artificial change the
//! group's members in the daemon's table), whether the servers' key of the daemon's current
//! configuration had been agreed by TGDH among exactly that configuration's daemons, and every
//! blinded key broadcast by the servers (public knowledge).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use stateright::{Model, Property};

use super::KeyView;
use super::engine::{KeysConfig, KeysEngine, KeysIn, KeysMutant, KeysOut, RefreshPolicy, server_member};
use super::evs::{EvsPolicy, MessageCrypto, sym_seal};
use super::mac::{SymGroupKey, SymbolicMac};
use crate::groups::{
    Cause, ClientEvent, ClientReq, ClientService, GroupConfig, GroupIn, GroupLayer, GroupName, GroupOut,
    Multicast, PrivateName, RingDelivery, RingMsg, Target,
};
use crate::ring::{ConfigId, NodeId, Pid, RingId};
use crate::tgdh::message::{Body, Signed};
use crate::tgdh::symbolic::{Blind, Knowledge, SymSessionKey, SymSignature, Symbolic, Term};

type SymKey = SymGroupKey<SymSessionKey>;
type SymEngine = KeysEngine<Term, Blind, SymSessionKey, SymKey>;
type SymSigned = Signed<Blind, SymSignature>;

/// Scenarios whose keys were released, for the sometimes-properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// A join membership was keyed.
    Join,
    /// A leave membership was keyed.
    Leave,
    /// A network membership after a partition was keyed.
    Partition,
    /// A network membership after a merge was keyed.
    Merge,
    /// An artificial membership (servers' key refresh) was keyed.
    Refresh,
    /// A held membership was released when the servers' key was agreed.
    Held,
    /// Optimized EVS re-encrypted a message under the receiver's current key.
    Resealed,
    /// Optimized EVS reported a message as undecryptable.
    Reported,
}

/// The model's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeysModel {
    /// Daemons (2 or 3), all in one component at first.
    pub daemons: usize,
    /// The daemon of each client.
    pub clients: Vec<usize>,
    /// Groups (`g0`, `g1`, ...).
    pub groups: usize,
    /// Client joins and leaves per path (client 0 starts in `g0`).
    pub requests: u8,
    /// Partitions per path.
    pub partitions: u8,
    /// Merges per path.
    pub merges: u8,
    /// Servers' key refreshes (time-outs) per path.
    pub refreshes: u8,
    /// Client multicasts per path (encrypted under the sender's current key).
    pub sends: u8,
    /// Optimized EVS on, with this old-key expiry.
    pub evs: Option<EvsPolicy>,
    /// A seeded bug.
    pub mutant: Option<KeysMutant>,
}

impl KeysModel {
    /// The bounded configuration `cargo test` and `sgc check keys` run by default: 2 daemons,
    /// 3 clients (one at daemon 0, two at daemon 1), one group, 2 joins/leaves, one partition,
    /// one merge, one refresh, one encrypted multicast, Optimized EVS on (old keys never expire
    /// within these bounds).
    pub fn bounded(mutant: Option<KeysMutant>) -> Self {
        Self {
            daemons: 2,
            clients: vec![0, 1, 1],
            groups: 1,
            requests: 2,
            partitions: 1,
            merges: 1,
            refreshes: 1,
            sends: 1,
            evs: Some(EvsPolicy {
                key_timeout_ms: None,
                max_old_keys: 8,
            }),
            mutant,
        }
    }

    fn cfg(&self, d: usize) -> KeysConfig {
        KeysConfig {
            me: node(d),
            policy: RefreshPolicy {
                max_age_ms: Some(1),
                max_bytes: None,
            },
            evs: self.evs,
            mutant: self.mutant,
        }
    }
}

/// A ring message of the oracle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QMsg {
    /// A group-layer message.
    Group(RingMsg),
    /// A TGDH message among the daemons.
    Tgdh(SymSigned),
}

/// One daemon: its group layer and keys engine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Daemon {
    /// The group layer.
    pub layer: GroupLayer,
    /// The keys engine.
    pub engine: SymEngine,
}

/// A connected component of daemons with its regular ring and agreed-order queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Comp {
    /// Daemon indices.
    pub daemons: BTreeSet<usize>,
    /// The regular ring.
    pub ring: RingId,
    /// Undelivered messages, with their origin.
    pub queue: VecDeque<(NodeId, QMsg)>,
    /// How this component was formed (partition or merge), if not at boot.
    pub formed: Option<Scenario>,
}

/// A key released to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Release {
    /// The client.
    pub client: usize,
    /// The group.
    pub group: GroupName,
    /// The view id.
    pub view: KeyView,
    /// The key.
    pub key: SymKey,
    /// The clients that are members of that view (ground truth from the group layer).
    pub truth: BTreeSet<usize>,
    /// KEY-ORDER's condition at release time.
    pub ordered: bool,
}

/// Ghost state for the properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Every key released, in order.
    pub releases: Vec<Release>,
    /// Inner terms of every blinded key the servers broadcast.
    pub public: BTreeSet<Term>,
    /// Servers' keys each daemon obtained from TGDH, by daemon and epoch.
    pub agreed: BTreeSet<(usize, crate::tgdh::crypto::Epoch)>,
    /// Scenarios reached.
    pub reached: BTreeSet<Scenario>,
    /// Each client's current key id of each group (its last membership's).
    pub current: BTreeMap<(usize, GroupName), u64>,
    /// Key ids each daemon released to one of its clients.
    pub released_at: BTreeSet<(usize, u64)>,
    /// A data message was delivered to a client under another key than its current one.
    pub stale_delivery: bool,
    /// A message under a key its receiving daemon released (and, within the bounds, still
    /// holds) was reported undecryptable.
    pub lost_message: bool,
}

/// The model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The daemons.
    pub daemons: Vec<Daemon>,
    /// Components, sorted by their smallest daemon.
    pub comps: Vec<Comp>,
    /// Next ring sequence number.
    pub next_seq: u64,
    /// Groups each client asked to be in.
    pub joined: Vec<BTreeSet<usize>>,
    /// Joins and leaves left.
    pub requests_left: u8,
    /// Partitions left.
    pub partitions_left: u8,
    /// Merges left.
    pub merges_left: u8,
    /// Refreshes left.
    pub refreshes_left: u8,
    /// Multicasts left.
    pub sends_left: u8,
    /// Ghost state.
    pub ghost: Ghost,
}

/// Actions of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver the head of component `0`'s queue.
    Deliver(usize),
    /// Client `0` joins group `1`.
    Join(usize, usize),
    /// Client `0` leaves group `1`.
    Leave(usize, usize),
    /// Component `0` splits: these daemons form a component of their own.
    Partition(usize, BTreeSet<usize>),
    /// Components `0` and `1` merge.
    Merge(usize, usize),
    /// The representative of component `0` sees its servers' key time out.
    Refresh(usize),
    /// Client `0` multicasts to group `1` under its current key.
    Send(usize, usize),
}

fn node(d: usize) -> NodeId {
    NodeId::try_from(d).unwrap_or(NodeId::MAX)
}

fn group(g: usize) -> GroupName {
    GroupName::new(format!("g{g}")).unwrap_or_else(|_| unreachable!("short names are valid"))
}

fn client_of(p: &PrivateName) -> Option<usize> {
    p.user.strip_prefix('c')?.parse().ok()
}

fn sess_client(sess: u64) -> usize {
    usize::try_from(sess).unwrap_or(usize::MAX)
}

fn comp_of(s: &State, d: usize) -> Option<usize> {
    s.comps.iter().position(|c| c.daemons.contains(&d))
}

fn publish(public: &mut BTreeSet<Term>, body: &Body<Blind>) {
    match body {
        Body::Tree(t) => public.extend(t.bkeys().into_iter().map(|(_, b)| b.0.clone())),
        Body::Keys(k) => public.extend(k.iter().map(|(_, b)| b.0.clone())),
        Body::Refresh => {}
    }
}

impl KeysModel {
    /// Feeds the group layer of daemon `d`, then its outputs through the engine.
    fn layer(&self, s: &mut State, d: usize, input: GroupIn) {
        let outs = s.daemons[d].layer.handle(input);
        let mut drained = BTreeSet::new();
        for o in outs {
            if let GroupOut::ToSession { sess, .. } = &o {
                drained.insert(*sess);
            }
            self.engine(s, d, KeysIn::Group(o));
        }
        for sess in drained {
            // The model's clients read at once: keeps the layer's queue counters at zero.
            let rest = s.daemons[d].layer.handle(GroupIn::Drained { sess, n: u32::MAX });
            for o in rest {
                self.engine(s, d, KeysIn::Group(o));
            }
        }
    }

    /// Feeds the engine of daemon `d` and carries out its commands.
    fn engine(&self, s: &mut State, d: usize, input: KeysIn<Blind, SymSignature>) {
        let out = s.daemons[d]
            .engine
            .handle(&Symbolic, &SymbolicMac, &self.cfg(d), input, &[0; 32]);
        let Some(c) = comp_of(s, d) else { return };
        let mut released_on_key = false;
        if out.resealed > 0 {
            s.ghost.reached.insert(Scenario::Resealed);
        }
        for cmd in out.commands {
            match cmd {
                KeysOut::Group(GroupOut::ToSession {
                    sess,
                    ev: ClientEvent::Data(m),
                }) if self.evs.is_some() => {
                    let client = sess_client(sess);
                    let [Target::Group(g)] = m.targets.as_slice() else {
                        continue;
                    };
                    let id = <SymbolicMac as MessageCrypto<SymKey>>::message_key_id(&SymbolicMac, &m.body);
                    if id.is_none() || id != s.ghost.current.get(&(client, g.clone())).copied() {
                        s.ghost.stale_delivery = true;
                    }
                }
                KeysOut::Group(GroupOut::ToSession {
                    ev: ClientEvent::Undecryptable(u),
                    ..
                }) => {
                    let key_id = u.key_id;
                    s.ghost.reached.insert(Scenario::Reported);
                    if key_id.is_some_and(|k| s.ghost.released_at.contains(&(d, k))) {
                        s.ghost.lost_message = true;
                    }
                }
                KeysOut::Broadcast(m) => {
                    publish(&mut s.ghost.public, &m.message.body);
                    s.comps[c].queue.push_back((node(d), QMsg::Tgdh(m)));
                }
                KeysOut::Group(GroupOut::RingSend { msg, .. }) => {
                    s.comps[c].queue.push_back((node(d), QMsg::Group(msg)));
                }
                KeysOut::Group(_) | KeysOut::Rejected(_) => {}
                KeysOut::ServersKey { epoch, .. } => {
                    s.ghost.agreed.insert((d, epoch));
                    released_on_key = true;
                }
                KeysOut::Membership {
                    sess,
                    membership,
                    grant,
                    artificial,
                } => {
                    let truth: BTreeSet<usize> = if artificial {
                        s.daemons[d]
                            .layer
                            .table()
                            .into_iter()
                            .find(|(g, gid, _)| *g == membership.group && *gid == membership.gid)
                            .map(|(_, _, m)| m.iter().filter_map(client_of).collect())
                            .unwrap_or_default()
                    } else {
                        membership.members.iter().filter_map(client_of).collect()
                    };
                    let ordered = ordered(s, c, d, &grant.key);
                    let scenario = if artificial {
                        Scenario::Refresh
                    } else {
                        match membership.cause {
                            Cause::Join => Scenario::Join,
                            Cause::Leave | Cause::Disconnect => Scenario::Leave,
                            Cause::Network => s.comps[c].formed.unwrap_or(Scenario::Merge),
                        }
                    };
                    s.ghost.reached.insert(scenario);
                    if released_on_key && !artificial {
                        s.ghost.reached.insert(Scenario::Held);
                    }
                    s.ghost
                        .current
                        .insert((sess_client(sess), membership.group.clone()), grant.key_id);
                    s.ghost.released_at.insert((d, grant.key_id));
                    s.ghost.releases.push(Release {
                        client: sess_client(sess),
                        group: membership.group,
                        view: grant.view,
                        key: grant.key,
                        truth,
                        ordered,
                    });
                }
            }
        }
    }

    /// Delivers a configuration to daemon `d`: the engine first, then the group layer.
    fn configure(&self, s: &mut State, d: usize, delivery: RingDelivery) {
        self.engine(s, d, KeysIn::Ring(delivery.clone()));
        self.layer(s, d, GroupIn::Ring(delivery));
    }

    fn deliver(&self, s: &mut State, c: usize) {
        let Some((origin, msg)) = s.comps[c].queue.pop_front() else {
            return;
        };
        let config = ConfigId::Regular(s.comps[c].ring);
        let daemons: Vec<usize> = s.comps[c].daemons.iter().copied().collect();
        for d in daemons {
            self.deliver_to(s, d, origin, config, msg.clone());
        }
    }

    fn deliver_to(&self, s: &mut State, d: usize, origin: NodeId, config: ConfigId, msg: QMsg) {
        match msg {
            QMsg::Group(msg) => {
                self.layer(s, d, GroupIn::Ring(RingDelivery::Message { origin, config, msg }))
            }
            QMsg::Tgdh(msg) => self.engine(s, d, KeysIn::Tgdh { origin, config, msg }),
        }
    }

    /// Replaces the components `old` (already removed from the state) by components of the
    /// daemon sets `new`, formed by `scenario`.
    fn reconfigure(&self, s: &mut State, old: Vec<Comp>, new: Vec<BTreeSet<usize>>, scenario: Scenario) {
        let mut rings = Vec::new();
        for daemons in new {
            let Some(&rep) = daemons.first() else { continue };
            let ring = RingId {
                seq: s.next_seq,
                rep: Pid::new(node(rep), 1),
            };
            s.next_seq += 1;
            rings.push(ring);
            s.comps.push(Comp {
                daemons,
                ring,
                queue: VecDeque::new(),
                formed: Some(scenario),
            });
        }
        s.comps.sort_by_key(|c| c.daemons.first().copied());
        for o in old {
            let mut trans = BTreeMap::new();
            for &d in &o.daemons {
                let Some(n) = comp_of(s, d) else { continue };
                let members: Vec<NodeId> = o
                    .daemons
                    .intersection(&s.comps[n].daemons)
                    .map(|&x| node(x))
                    .collect();
                let id = ConfigId::Transitional(s.comps[n].ring, o.ring);
                trans.insert(d, id);
                self.configure(s, d, RingDelivery::Transitional { id, members });
            }
            for (origin, msg) in o.queue {
                for (&d, &id) in &trans {
                    self.deliver_to(s, d, origin, id, msg.clone());
                }
            }
        }
        for ring in rings {
            let Some(comp) = s.comps.iter().find(|c| c.ring == ring) else {
                continue;
            };
            let daemons = comp.daemons.clone();
            let members: Vec<NodeId> = daemons.iter().map(|&d| node(d)).collect();
            for d in daemons {
                self.configure(
                    s,
                    d,
                    RingDelivery::Regular {
                        id: ConfigId::Regular(ring),
                        members: members.clone(),
                    },
                );
            }
        }
    }

    fn drain(&self, s: &mut State) {
        for c in 0..s.comps.len() {
            // Bounded: every TGDH run and group exchange ends; the bound is a safety net only.
            for _ in 0..1000 {
                if s.comps[c].queue.is_empty() {
                    break;
                }
                self.deliver(s, c);
            }
        }
    }

    fn initial_state(&self) -> State {
        let mut s = State {
            daemons: (0..self.daemons)
                .map(|d| Daemon {
                    layer: GroupLayer::new(GroupConfig {
                        report_views: self.evs.is_some(),
                        ..GroupConfig::new(node(d), format!("d{d}"))
                    }),
                    engine: KeysEngine::new(),
                })
                .collect(),
            comps: Vec::new(),
            next_seq: 1,
            joined: vec![BTreeSet::new(); self.clients.len()],
            requests_left: self.requests,
            partitions_left: self.partitions,
            merges_left: self.merges,
            refreshes_left: self.refreshes,
            sends_left: self.sends,
            ghost: Ghost::default(),
        };
        let all: BTreeSet<usize> = (0..self.daemons).collect();
        self.reconfigure(&mut s, Vec::new(), vec![all], Scenario::Merge);
        s.comps.iter_mut().for_each(|c| c.formed = None);
        self.drain(&mut s);
        for (i, &d) in self.clients.iter().enumerate() {
            self.layer(
                &mut s,
                d,
                GroupIn::Connect {
                    sess: i as u64,
                    user: Some(format!("c{i}")),
                    wants_membership: true,
                },
            );
        }
        if !self.clients.is_empty() {
            s.joined[0].insert(0);
            self.request(&mut s, 0, ClientReq::Join(group(0)));
            self.drain(&mut s);
        }
        s.ghost.reached.clear();
        s
    }

    fn request(&self, s: &mut State, client: usize, req: ClientReq) {
        let d = self.clients[client];
        self.layer(
            s,
            d,
            GroupIn::Client {
                sess: client as u64,
                req,
            },
        );
    }
}

/// KEY-ORDER at release time: daemon `d` (in component `c`) obtained from TGDH the servers' key
/// the client key was derived from, and that key was agreed in its current configuration, by
/// exactly the daemons of that configuration (their shares make up the key). (A refresh run in
/// progress does not retire the current key: it stays in use until the new one is agreed.)
fn ordered(s: &State, c: usize, d: usize, key: &SymKey) -> bool {
    let comp = &s.comps[c];
    let mut shares = BTreeSet::new();
    key.servers.root.shares(&mut shares);
    let contributors: BTreeSet<_> = shares
        .into_iter()
        .filter_map(|t| match t {
            Term::Share { member, .. } => Some(member),
            Term::Node(_) => None,
        })
        .collect();
    let daemons: BTreeSet<_> = comp.daemons.iter().map(|&x| server_member(node(x))).collect();
    key.servers.epoch.view == comp.ring.seq
        && s.ghost.agreed.contains(&(d, key.servers.epoch))
        && contributors == daemons
}

/// Subsets of `members` that do not contain its smallest element (each split once).
fn splits(members: &BTreeSet<usize>) -> Vec<BTreeSet<usize>> {
    let rest: Vec<usize> = members.iter().copied().skip(1).collect();
    (1u32..(1 << rest.len()))
        .map(|mask| {
            rest.iter()
                .enumerate()
                .filter(|(b, _)| mask >> b & 1 == 1)
                .map(|(_, &i)| i)
                .collect()
        })
        .collect()
}

impl Model for KeysModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial_state()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (c, comp) in s.comps.iter().enumerate() {
            if !comp.queue.is_empty() {
                actions.push(Action::Deliver(c));
            }
        }
        if s.sends_left > 0 {
            for (i, joined) in s.joined.iter().enumerate() {
                for &g in joined {
                    if s.ghost.current.contains_key(&(i, group(g))) {
                        actions.push(Action::Send(i, g));
                    }
                }
            }
        }
        if s.requests_left > 0 {
            for (i, joined) in s.joined.iter().enumerate() {
                for g in 0..self.groups {
                    actions.push(if joined.contains(&g) {
                        Action::Leave(i, g)
                    } else {
                        Action::Join(i, g)
                    });
                }
            }
        }
        for (c, comp) in s.comps.iter().enumerate() {
            if s.partitions_left > 0 {
                actions.extend(
                    splits(&comp.daemons)
                        .into_iter()
                        .map(|side| Action::Partition(c, side)),
                );
            }
            if s.merges_left > 0 {
                actions.extend((c + 1..s.comps.len()).map(|e| Action::Merge(c, e)));
            }
            let rep = comp.daemons.first().map(|&d| &s.daemons[d].engine);
            if s.refreshes_left > 0 && rep.is_some_and(|e| !e.holding() && !e.refresh_requested) {
                actions.push(Action::Refresh(c));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Deliver(c) => self.deliver(&mut s, c),
            Action::Join(i, g) => {
                s.requests_left -= 1;
                s.joined[i].insert(g);
                self.request(&mut s, i, ClientReq::Join(group(g)));
            }
            Action::Leave(i, g) => {
                s.requests_left -= 1;
                s.joined[i].remove(&g);
                self.request(&mut s, i, ClientReq::Leave(group(g)));
            }
            Action::Partition(c, side) => {
                s.partitions_left -= 1;
                let old = s.comps.remove(c);
                let rest: BTreeSet<usize> = old.daemons.difference(&side).copied().collect();
                self.reconfigure(&mut s, vec![old], vec![rest, side], Scenario::Partition);
            }
            Action::Merge(c, e) => {
                s.merges_left -= 1;
                let second = s.comps.remove(e);
                let first = s.comps.remove(c);
                let all = first.daemons.union(&second.daemons).copied().collect();
                self.reconfigure(&mut s, vec![first, second], vec![all], Scenario::Merge);
            }
            Action::Send(i, g) => {
                s.sends_left -= 1;
                let key_id = *s.ghost.current.get(&(i, group(g)))?;
                let body = sym_seal(key_id, &[s.sends_left]);
                let req = ClientReq::Send(Multicast {
                    targets: vec![Target::Group(group(g))],
                    service: ClientService::Agreed,
                    self_discard: false,
                    mess_type: 0,
                    body,
                });
                self.request(&mut s, i, req);
            }
            Action::Refresh(c) => {
                s.refreshes_left -= 1;
                let rep = *s.comps[c].daemons.first()?;
                let now = s.daemons[rep].engine.key_since + 1;
                self.engine(&mut s, rep, KeysIn::Tick { now });
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("KEY-AGREE", |_, s| agree(&s.ghost)),
            Property::<Self>::always("KEY-FRESH", |_, s| fresh(&s.ghost)),
            Property::<Self>::always("KEY-MEMBERONLY", |_, s| member_only(&s.ghost)),
            Property::<Self>::always("KEY-ORDER", |_, s| s.ghost.releases.iter().all(|r| r.ordered)),
            Property::<Self>::always("KEY-FORWARD", |_, s| forward(&s.ghost)),
            Property::<Self>::always("KEY-BACKWARD", |_, s| backward(&s.ghost)),
            Property::<Self>::always("KEY-EVS-CURRENT", |_, s| !s.ghost.stale_delivery),
            Property::<Self>::always("KEY-EVS-KEPT", |_, s| !s.ghost.lost_message),
            Property::<Self>::sometimes("reach: keys after a join", |_, s| {
                s.ghost.reached.contains(&Scenario::Join)
            }),
            Property::<Self>::sometimes("reach: keys after a leave", |_, s| {
                s.ghost.reached.contains(&Scenario::Leave)
            }),
            Property::<Self>::sometimes("reach: keys after a partition", |_, s| {
                s.ghost.reached.contains(&Scenario::Partition)
            }),
            Property::<Self>::sometimes("reach: keys after a merge", |_, s| {
                s.ghost.reached.contains(&Scenario::Merge)
            }),
            Property::<Self>::sometimes("reach: keys after a refresh", |_, s| {
                s.ghost.reached.contains(&Scenario::Refresh)
            }),
            Property::<Self>::sometimes("reach: held memberships released", |_, s| {
                s.ghost.reached.contains(&Scenario::Held)
            }),
            Property::<Self>::sometimes("reach: a message re-encrypted", |m, s| {
                m.evs.is_none() || m.sends == 0 || s.ghost.reached.contains(&Scenario::Resealed)
            }),
            Property::<Self>::sometimes("reach: a message reported undecryptable", |m, s| {
                m.evs.is_none() || m.sends == 0 || s.ghost.reached.contains(&Scenario::Reported)
            }),
        ]
    }
}

/// KEY-AGREE: all keys released for one view of a group are the same key.
pub fn agree(g: &Ghost) -> bool {
    let mut key_of: BTreeMap<(&GroupName, &KeyView), &SymKey> = BTreeMap::new();
    g.releases
        .iter()
        .all(|r| *key_of.entry((&r.group, &r.view)).or_insert(&r.key) == &r.key)
}

/// KEY-FRESH: keys of different views or groups differ.
pub fn fresh(g: &Ghost) -> bool {
    let mut view_of: BTreeMap<&SymKey, (&GroupName, &KeyView)> = BTreeMap::new();
    g.releases
        .iter()
        .all(|r| *view_of.entry(&r.key).or_insert((&r.group, &r.view)) == (&r.group, &r.view))
}

/// KEY-MEMBERONLY: every key goes to a member of its view.
pub fn member_only(g: &Ghost) -> bool {
    g.releases.iter().all(|r| r.truth.contains(&r.client))
}

/// Whether `client` can derive `key`: it received it, or it derives the servers' key from the
/// broadcast blinded keys alone (clients hold no TGDH share).
fn derives(g: &Ghost, client: usize, key: &SymKey) -> bool {
    g.releases.iter().any(|r| r.client == client && r.key == *key)
        || Knowledge {
            secrets: BTreeSet::new(),
            public: &g.public,
        }
        .derives(&key.servers.root)
}

/// Pairs `(earlier, later)` of releases of different views of one group.
fn view_pairs(g: &Ghost) -> impl Iterator<Item = (&Release, &Release)> {
    g.releases.iter().enumerate().flat_map(move |(i, a)| {
        g.releases[i + 1..]
            .iter()
            .filter(move |b| b.group == a.group && b.view != a.view)
            .map(move |b| (a, b))
    })
}

/// KEY-FORWARD: a client that had a key of a view cannot derive the key of a later view of the
/// group that it is not a member of.
pub fn forward(g: &Ghost) -> bool {
    view_pairs(g).all(|(a, b)| b.truth.contains(&a.client) || !derives(g, a.client, &b.key))
}

/// KEY-BACKWARD: a client that gets a key of a view cannot derive the key of an earlier view of
/// the group that it was not a member of.
pub fn backward(g: &Ghost) -> bool {
    view_pairs(g).all(|(a, b)| a.truth.contains(&b.client) || !derives(g, b.client, &a.key))
}

/// The outcome of the checker for `model`.
pub fn check(model: KeysModel, opts: crate::check::CheckOptions) -> crate::check::CheckReport {
    let mutant = model.mutant.map(KeysMutant::name);
    crate::check::run("keys", mutant, model, opts)
}
