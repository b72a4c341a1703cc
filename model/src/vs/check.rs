//! Stateright model of the flush layer: 2–3 [`FlushLayer`]s (one per client, one group) driven
//! by an **abstract SP oracle** and a scripted application, with the VS-* properties of
//! `spec/vs.md` ([`super::props`]) and the seeded bugs of [`VsMutant`].
//!
//! The oracle is an abstraction of the daemons' group layer (groups-and-flush.md §1.5–§1.7) with
//! the decided in-sequence delivery (§1.8), not the real group layer:
//! - each client has an inbound queue of `ClientEvent`s; the clients of one network component
//!   share one agreed order: a join, leave, data or control multicast is ordered at once and
//!   appended to the queue of every SP member of the group in the sender's component (the
//!   sender included), a self-leave to the leaver's queue;
//! - a partition splits the component: for each side that lost members, a `Transition` then a
//!   NETWORK membership (one vs_set: the side) are appended; EVS failure atomicity: messages
//!   ordered before the cut stay in the queues, except that the partition may (a second
//!   variant of the action) drop, on one side, every queued message from the other side that
//!   no member of this side has delivered yet (all of the side or none);
//! - a merge makes one component: a NETWORK membership with one vs_set per former side;
//! - **reordering** ([`VsModelCfg::reorder`]): within one SP view (never across a membership,
//!   transition or self-leave event) a client may take a RELIABLE/UNRELIABLE message ahead of
//!   any earlier message, and a FIFO message ahead of earlier messages of other senders. This
//!   is the service contract of the §1.8 table, weaker than sgc's in-sequence delivery, so the
//!   flush layer is checked not to rely on more than the services promise; it is what lets a
//!   RELIABLE `FLUSH_OK` overtake its sender's data (mutant 2) and a vulnerable FIFO message
//!   overtake the `FLUSH_OK`s of its view (mutant 3). AGREED/SAFE messages are taken in order.
//!
//! The application: each client sends up to `msgs.len()` messages (the `k`-th with service
//! `msgs[k]`) whenever the flush layer accepts a send, and calls `FL_flush` once per flush
//! request (maybe after sending). Scripted changes (`script`, at most two) happen in order, each
//! at any moment: a client joins or leaves, a partition, a merge. The initial state is reached
//! by the first `initial` clients joining one after another and settling (every queue drained,
//! every flush request answered, all `Steady`); the ghost logs then start with that view.

use std::collections::{BTreeMap, BTreeSet};

use stateright::{Checker, Expectation, HasDiscoveries, Model, Property};

use super::VsMutant;
use super::flush::{
    FLUSH_OK_TYPE, FlCall, FlEvent, FlIn, FlOut, FlushLayer, MIN_APP_TYPE, MState, VState, VULNERABLE_TYPE,
    split_trailer,
};
use super::props::{self, Cl, Obs};
use crate::check::{CheckReport, PropertyReport};
use crate::groups::{
    Cause, ClientEvent, ClientReq, ClientService, DataMsg, Gid, GroupName, Membership, Multicast,
    PrivateName, Target,
};
use crate::ring::{ConfigId, Pid, RingId};

/// `mess_type` of the model's application messages.
const APP_TYPE: i16 = 1;

/// One scripted change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Client joins the group (`FL_join`).
    Join(Cl),
    /// Client leaves the group (`FL_leave`; waits until it is `Joined`).
    Leave(Cl),
    /// The component splits: client `i` goes to side `sides[i]` (0 or 1).
    Partition(Vec<u8>),
    /// All sides merge.
    Merge,
}

/// Parameters and bounds of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VsModelCfg {
    /// A short name of the scenario.
    pub name: &'static str,
    /// Number of clients (2–3).
    pub clients: u8,
    /// The first `initial` clients start in one installed view.
    pub initial: u8,
    /// Services of each sending client's messages, in order (at most 2).
    pub msgs: Vec<ClientService>,
    /// Only the first `senders` clients send.
    pub senders: u8,
    /// Scripted changes (at most 2), in order.
    pub script: Vec<Step>,
    /// Let unordered/FIFO messages overtake within an SP view (see the module doc).
    pub reorder: bool,
    /// Seeded bug.
    pub mutant: Option<VsMutant>,
}

impl VsModelCfg {
    /// A third client joins a formed pair; client 0 sends one RELIABLE message.
    pub fn join() -> Self {
        Self {
            name: "join",
            clients: 3,
            initial: 2,
            msgs: vec![ClientService::Reliable],
            senders: 1,
            script: vec![Step::Join(2)],
            reorder: true,
            mutant: None,
        }
    }

    /// Two clients in one view; both send a FIFO and an AGREED message; one leaves.
    pub fn leave() -> Self {
        Self {
            name: "leave",
            clients: 2,
            initial: 2,
            msgs: vec![ClientService::Fifo, ClientService::Agreed],
            senders: 2,
            script: vec![Step::Leave(1)],
            reorder: true,
            mutant: None,
        }
    }

    /// A third client joins, then a member leaves (maybe before flushing for the join: the
    /// join's change is invalidated and collapses into a NETWORK view). No data.
    pub fn collapse() -> Self {
        Self {
            name: "collapse",
            clients: 3,
            initial: 2,
            msgs: vec![],
            senders: 0,
            script: vec![Step::Join(2), Step::Leave(1)],
            reorder: true,
            mutant: None,
        }
    }

    /// Two clients in one view, partitioned and merged again; each sends one FIFO message.
    pub fn partition_merge() -> Self {
        Self {
            name: "partition-merge",
            clients: 2,
            initial: 2,
            msgs: vec![ClientService::Fifo],
            senders: 2,
            script: vec![Step::Partition(vec![0, 1]), Step::Merge],
            reorder: true,
            mutant: None,
        }
    }

    /// Three clients in one view; one is cut off, then the sides merge; client 0 sends one
    /// AGREED message.
    pub fn partition3() -> Self {
        Self {
            name: "partition3",
            clients: 3,
            initial: 3,
            msgs: vec![ClientService::Agreed],
            senders: 1,
            script: vec![Step::Partition(vec![0, 0, 1]), Step::Merge],
            reorder: true,
            mutant: None,
        }
    }

    /// The scenarios `sgc check vs` runs ([`Self::partition3`] is a bigger run, not included).
    pub fn scenarios() -> Vec<Self> {
        vec![
            Self::join(),
            Self::leave(),
            Self::collapse(),
            Self::partition_merge(),
        ]
    }

    /// With a seeded bug.
    pub fn with_mutant(self, mutant: Option<VsMutant>) -> Self {
        Self { mutant, ..self }
    }
}

/// The model's group.
pub fn group() -> GroupName {
    GroupName::new("g").unwrap_or_else(|_| unreachable!("a valid constant name"))
}

/// Client `i`'s private name `#c<i>#d<i>` (node `i`: canonical order = index order).
pub fn name(i: Cl) -> PrivateName {
    PrivateName {
        node: u16::from(i),
        user: format!("c{i}"),
        daemon: format!("d{i}"),
    }
}

fn index(p: &PrivateName) -> Cl {
    Cl::try_from(p.node).unwrap_or(Cl::MAX)
}

fn gid(index: u32) -> Gid {
    Gid {
        conf: ConfigId::Regular(RingId {
            seq: 1,
            rep: Pid::new(0, 1),
        }),
        index,
    }
}

/// One client: its flush layer, inbound SP queue, application state and ghost log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    /// The machine under check.
    pub fl: FlushLayer,
    /// SP events ordered for it, not yet delivered.
    pub queue: Vec<ClientEvent>,
    /// Messages the application sent.
    pub sent: u8,
    /// A flush request is unanswered.
    pub asked: bool,
    /// Ghost log.
    pub log: Vec<Obs>,
}

/// The model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VsState {
    /// The clients.
    pub clients: Vec<Client>,
    /// Network side of each client.
    pub side: Vec<u8>,
    /// The oracle's SP view of the group per side: gid and members.
    pub sp: BTreeMap<u8, (Gid, BTreeSet<Cl>)>,
    /// Last gid index handed out.
    pub next_index: u32,
    /// Script steps done.
    pub done: u8,
    /// Ghost: the SP cause of each gid the oracle generated.
    pub sp_cause: BTreeMap<Gid, Cause>,
}

/// The model's actions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VsAction {
    /// Client takes entry `at` of its queue.
    Deliver {
        /// Client.
        client: Cl,
        /// Queue index (0 unless overtaking).
        at: u8,
    },
    /// Client's application sends its next message.
    Send(Cl),
    /// Client's application answers the flush request.
    Flush(Cl),
    /// The next scripted change (for a partition: `drop` chooses the EVS cut variant).
    Script {
        /// The step.
        step: Step,
        /// Partition only: drop the other side's undelivered messages.
        drop: bool,
    },
}

/// The flush-layer model.
#[derive(Clone, Debug)]
pub struct VsModel {
    /// Parameters.
    pub cfg: VsModelCfg,
}

impl VsState {
    fn client(&self, c: Cl) -> Option<&Client> {
        self.clients.get(usize::from(c))
    }

    fn logs(&self) -> Vec<&[Obs]> {
        self.clients.iter().map(|c| c.log.as_slice()).collect()
    }

    fn fresh_gid(&mut self, cause: Cause) -> Gid {
        self.next_index += 1;
        let g = gid(self.next_index);
        self.sp_cause.insert(g, cause);
        g
    }

    fn push(&mut self, to: Cl, ev: ClientEvent) {
        if let Some(c) = self.clients.get_mut(usize::from(to)) {
            c.queue.push(ev);
        }
    }

    fn membership(
        gid: Gid,
        cause: Cause,
        members: &BTreeSet<Cl>,
        vs_sets: Vec<Vec<PrivateName>>,
        my_vs: usize,
    ) -> ClientEvent {
        ClientEvent::Membership(Membership {
            group: group(),
            gid,
            cause,
            members: members.iter().map(|m| name(*m)).collect(),
            vs_sets,
            my_vs,
        })
    }

    /// The oracle orders a join of `c`.
    fn sp_join(&mut self, c: Cl) {
        let side = self.side.get(usize::from(c)).copied().unwrap_or(0);
        let mut members = self.sp.get(&side).map(|x| x.1.clone()).unwrap_or_default();
        members.insert(c);
        let g = self.fresh_gid(Cause::Join);
        for m in &members {
            let ev = Self::membership(g, Cause::Join, &members, vec![vec![name(c)]], 0);
            self.push(*m, ev);
        }
        self.sp.insert(side, (g, members));
    }

    /// The oracle orders a leave of `c`.
    fn sp_leave(&mut self, c: Cl) {
        let side = self.side.get(usize::from(c)).copied().unwrap_or(0);
        let Some((_, mut members)) = self.sp.get(&side).cloned() else {
            return;
        };
        if !members.remove(&c) {
            return;
        }
        self.push(c, ClientEvent::SelfLeave(group()));
        if members.is_empty() {
            self.sp.remove(&side);
            return;
        }
        let g = self.fresh_gid(Cause::Leave);
        for m in &members {
            let ev = Self::membership(g, Cause::Leave, &members, vec![vec![name(c)]], 0);
            self.push(*m, ev);
        }
        self.sp.insert(side, (g, members));
    }

    /// The oracle orders a multicast of `c` to the group in `c`'s component.
    fn sp_send(&mut self, c: Cl, m: Multicast) {
        let side = self.side.get(usize::from(c)).copied().unwrap_or(0);
        let Some((_, members)) = self.sp.get(&side).cloned() else {
            return;
        };
        let d = DataMsg {
            sender: name(c),
            targets: m.targets,
            service: m.service,
            mess_type: m.mess_type,
            body: m.body,
        };
        for r in members {
            if r != c || !m.self_discard {
                self.push(r, ClientEvent::Data(d.clone()));
            }
        }
    }

    fn partition(&mut self, sides: &[u8], drop: bool) {
        let old: Vec<(u8, (Gid, BTreeSet<Cl>))> = std::mem::take(&mut self.sp).into_iter().collect();
        self.side = sides.to_vec();
        for (_, (old_gid, members)) in old {
            for s in [0, 1] {
                let part: BTreeSet<Cl> = members
                    .iter()
                    .copied()
                    .filter(|m| sides.get(usize::from(*m)) == Some(&s))
                    .collect();
                if part.is_empty() {
                    continue;
                }
                if part.len() == members.len() {
                    self.sp.insert(s, (old_gid, part));
                    continue;
                }
                if drop {
                    self.cut(&part);
                }
                let g = self.fresh_gid(Cause::Network);
                let set: Vec<PrivateName> = part.iter().map(|m| name(*m)).collect();
                for m in &part {
                    self.push(
                        *m,
                        ClientEvent::Transition {
                            group: group(),
                            gid: old_gid,
                        },
                    );
                    self.push(
                        *m,
                        Self::membership(g, Cause::Network, &part, vec![set.clone()], 0),
                    );
                }
                self.sp.insert(s, (g, part));
            }
        }
    }

    /// EVS cut on the side `part`: the messages from outside it that every member of it still
    /// has queued (nobody on this side delivered them) are dropped for all of them.
    fn cut(&mut self, part: &BTreeSet<Cl>) {
        let foreign =
            |e: &ClientEvent| matches!(e, ClientEvent::Data(d) if !part.contains(&index(&d.sender)));
        let Some(first) = part.first().and_then(|f| self.client(*f)) else {
            return;
        };
        let droppable: Vec<ClientEvent> = first
            .queue
            .iter()
            .filter(|e| foreign(e))
            .filter(|e| {
                part.iter()
                    .all(|m| self.client(*m).is_some_and(|c| c.queue.contains(e)))
            })
            .cloned()
            .collect();
        for m in part {
            if let Some(c) = self.clients.get_mut(usize::from(*m)) {
                c.queue.retain(|e| !droppable.contains(e));
            }
        }
    }

    fn merge(&mut self) {
        let old: Vec<(Gid, BTreeSet<Cl>)> = std::mem::take(&mut self.sp).into_values().collect();
        self.side = vec![0; self.side.len()];
        let all: BTreeSet<Cl> = old.iter().flat_map(|(_, m)| m.iter().copied()).collect();
        if all.is_empty() {
            return;
        }
        if let [(g, m)] = old.as_slice() {
            self.sp.insert(0, (*g, m.clone()));
            return;
        }
        let mut sets: Vec<Vec<PrivateName>> = old
            .iter()
            .map(|(_, m)| m.iter().map(|x| name(*x)).collect())
            .collect();
        sets.sort();
        let g = self.fresh_gid(Cause::Network);
        for m in &all {
            let my_vs = sets.iter().position(|s| s.contains(&name(*m))).unwrap_or(0);
            self.push(*m, Self::membership(g, Cause::Network, &all, sets.clone(), my_vs));
        }
        self.sp.insert(0, (g, all));
    }
}

impl VsModel {
    /// The model of a configuration.
    pub const fn new(cfg: VsModelCfg) -> Self {
        Self { cfg }
    }

    /// Feed `input` to client `c`'s machine and carry out its outputs; `None` when an
    /// application call is refused (the action is then not enabled).
    fn step(&self, s: &mut VsState, c: Cl, input: FlIn) -> Option<()> {
        let from_sp = matches!(input, FlIn::Sp(_));
        let client = s.clients.get_mut(usize::from(c))?;
        let was_joined = client
            .fl
            .record(&group())
            .is_some_and(|r| r.mstate == MState::Joined);
        let outs = client.fl.handle(input);
        if outs.iter().any(|o| matches!(o, FlOut::Reply(Err(_)))) {
            return None;
        }
        for o in outs {
            match o {
                FlOut::ToDaemon(ClientReq::Join(_)) => s.sp_join(c),
                FlOut::ToDaemon(ClientReq::Leave(_)) => s.sp_leave(c),
                FlOut::ToDaemon(ClientReq::Send(m)) => {
                    if m.mess_type == FLUSH_OK_TYPE
                        && let Some((_, g)) = split_trailer::<Gid>(&m.body)
                    {
                        let auto = from_sp && was_joined;
                        s.clients
                            .get_mut(usize::from(c))?
                            .log
                            .push(Obs::Flushed { gid: g, auto });
                    }
                    s.sp_send(c, m);
                }
                FlOut::ToDaemon(ClientReq::Disconnect) | FlOut::Reply(_) => {}
                FlOut::ToApp(ev) => Self::observe(s.clients.get_mut(usize::from(c))?, ev),
            }
        }
        Some(())
    }

    /// The application sees an event: ghost log and flush-request flag.
    fn observe(client: &mut Client, ev: FlEvent) {
        let cur = client
            .log
            .iter()
            .rev()
            .find_map(|e| match e {
                Obs::Installed { gid, .. } => Some(Some(*gid)),
                Obs::SelfLeave | Obs::JoinCalled => Some(None),
                _ => None,
            })
            .flatten();
        let obs = match ev {
            FlEvent::Data(d) => match (d.mess_type, d.body.as_slice()) {
                (APP_TYPE, [n]) => Obs::Delivered {
                    from: index(&d.sender),
                    n: *n,
                    gid: cur,
                },
                _ => return,
            },
            FlEvent::FlushReq(_) => {
                client.asked = true;
                Obs::FlushReq
            }
            FlEvent::View(m) => Obs::Installed {
                gid: m.gid,
                cause: m.cause,
                members: m.members.iter().map(index).collect(),
                vs: m
                    .vs_sets
                    .get(m.my_vs)
                    .map(|s| s.iter().map(index).collect())
                    .unwrap_or_default(),
            },
            FlEvent::Transition { .. } => Obs::Trans,
            FlEvent::SelfLeave(_) => {
                client.asked = false;
                Obs::SelfLeave
            }
            FlEvent::Reject { .. } | FlEvent::Undecryptable(_) => return,
        };
        client.log.push(obs);
    }

    fn app_send(&self, s: &mut VsState, c: Cl) -> Option<()> {
        let client = s.client(c)?;
        let n = client.sent + 1;
        let service = *self.cfg.msgs.get(usize::from(client.sent))?;
        let rec = client.fl.record(&group());
        let gid = rec.and_then(|r| r.view.gid);
        let in_authorize = rec.is_some_and(|r| r.vstate == VState::Authorize);
        let m = Multicast {
            targets: vec![Target::Group(group())],
            service,
            self_discard: false,
            mess_type: APP_TYPE,
            body: vec![n],
        };
        self.step(s, c, FlIn::App(FlCall::Send(m)))?;
        let client = s.clients.get_mut(usize::from(c))?;
        client.sent = n;
        client.log.push(Obs::Sent { n, gid, in_authorize });
        Some(())
    }

    fn app_join(&self, s: &mut VsState, c: Cl) -> Option<()> {
        s.clients.get_mut(usize::from(c))?.log.push(Obs::JoinCalled);
        self.step(s, c, FlIn::App(FlCall::Join(group())))
    }

    /// Whether queue entry `at` of `q` may be taken now (see the module doc).
    fn takeable(&self, q: &[ClientEvent], at: usize) -> bool {
        if at == 0 {
            return !q.is_empty();
        }
        if !self.cfg.reorder {
            return false;
        }
        let Some(ClientEvent::Data(d)) = q.get(at) else {
            return false;
        };
        let ahead = q.get(..at).unwrap_or_default();
        if !ahead.iter().all(|e| matches!(e, ClientEvent::Data(_))) {
            return false;
        }
        let control = d.mess_type < MIN_APP_TYPE && d.mess_type != VULNERABLE_TYPE;
        match d.service {
            ClientService::Unreliable | ClientService::Reliable => true,
            // bound: FIFO control messages keep their place
            ClientService::Fifo if !control => !ahead.iter().any(|e| {
                matches!(e, ClientEvent::Data(x) if x.sender == d.sender
                    && !matches!(x.service, ClientService::Unreliable | ClientService::Reliable))
            }),
            _ => false,
        }
    }

    fn apply(&self, s: &VsState, a: &VsAction) -> Option<VsState> {
        let mut n = s.clone();
        match a {
            VsAction::Deliver { client, at } => {
                let c = n.clients.get_mut(usize::from(*client))?;
                let at = usize::from(*at);
                if at >= c.queue.len() {
                    return None;
                }
                let ev = c.queue.remove(at);
                self.step(&mut n, *client, FlIn::Sp(ev))?;
            }
            VsAction::Send(c) => self.app_send(&mut n, *c)?,
            VsAction::Flush(c) => {
                self.step(&mut n, *c, FlIn::App(FlCall::Flush(group())))?;
                n.clients.get_mut(usize::from(*c))?.asked = false;
            }
            VsAction::Script { step, drop } => {
                match step {
                    Step::Join(c) => self.app_join(&mut n, *c)?,
                    Step::Leave(c) => self.step(&mut n, *c, FlIn::App(FlCall::Leave(group())))?,
                    Step::Partition(sides) => n.partition(sides, *drop),
                    Step::Merge => n.merge(),
                }
                n.done += 1;
            }
        }
        Some(n)
    }

    /// Deterministic settling used to build the initial state: deliver queue heads and answer
    /// flush requests until nothing is left.
    fn settle(&self, s: &mut VsState) {
        loop {
            let next = (0..self.cfg.clients).find_map(|c| {
                let cl = s.client(c)?;
                if !cl.queue.is_empty() {
                    Some(VsAction::Deliver { client: c, at: 0 })
                } else if cl.asked {
                    Some(VsAction::Flush(c))
                } else {
                    None
                }
            });
            let Some(a) = next else { return };
            match self.apply(s, &a) {
                Some(n) => *s = n,
                None => return,
            }
        }
    }

    /// Whether no action is enabled.
    pub fn quiescent(&self, s: &VsState) -> bool {
        if s.clients.iter().any(|c| !c.queue.is_empty()) {
            return false;
        }
        let mut acts = Vec::new();
        self.actions(s, &mut acts);
        acts.iter().all(|a| self.apply(s, a).is_none())
    }

    /// VS-PROGRESS on a quiescent state: in every component, the SP members of the group share
    /// one installed view of exactly them, every one `Steady`, and no one else has a record.
    pub fn settled(s: &VsState) -> bool {
        let mut members_anywhere = BTreeSet::new();
        let each = s.sp.values().all(|(_, members)| {
            members_anywhere.extend(members.iter().copied());
            let names: Vec<PrivateName> = members.iter().map(|m| name(*m)).collect();
            let recs: Vec<_> = members
                .iter()
                .map(|m| s.client(*m).and_then(|c| c.fl.record(&group())))
                .collect();
            let first = recs.first().copied().flatten().and_then(|r| r.view.gid);
            recs.iter().all(|r| {
                r.is_some_and(|r| {
                    r.mstate == MState::Joined
                        && r.vstate == VState::Steady
                        && r.view.gid.is_some()
                        && r.view.gid == first
                        && r.view.members == names
                })
            })
        });
        let others = s
            .clients
            .iter()
            .enumerate()
            .filter(|(i, _)| !members_anywhere.contains(&Cl::try_from(*i).unwrap_or(Cl::MAX)))
            .all(|(_, c)| c.fl.record(&group()).is_none());
        each && others
    }
}

impl Model for VsModel {
    type State = VsState;
    type Action = VsAction;

    fn init_states(&self) -> Vec<VsState> {
        let n = self.cfg.clients;
        let mut s = VsState {
            clients: (0..n)
                .map(|i| Client {
                    fl: FlushLayer::new(name(i), self.cfg.mutant),
                    queue: Vec::new(),
                    sent: 0,
                    asked: false,
                    log: Vec::new(),
                })
                .collect(),
            side: vec![0; usize::from(n)],
            sp: BTreeMap::new(),
            next_index: 0,
            done: 0,
            sp_cause: BTreeMap::new(),
        };
        for c in 0..self.cfg.initial {
            if self.app_join(&mut s, c).is_none() {
                return Vec::new();
            }
            self.settle(&mut s);
        }
        // the logs start with the initial view's install, after the client's FLUSH_OK for it
        for c in &mut s.clients {
            let last = c.log.iter().rev().find_map(|e| match e {
                Obs::Installed { gid, .. } => Some((*gid, e.clone())),
                _ => None,
            });
            c.log = last
                .map(|(gid, e)| vec![Obs::Flushed { gid, auto: false }, e])
                .unwrap_or_default();
        }
        s.sp_cause.clear();
        vec![s]
    }

    fn actions(&self, s: &VsState, out: &mut Vec<VsAction>) {
        for (i, c) in s.clients.iter().enumerate() {
            let Ok(client) = Cl::try_from(i) else { continue };
            for at in 0..c.queue.len() {
                if self.takeable(&c.queue, at) {
                    out.push(VsAction::Deliver {
                        client,
                        at: u8::try_from(at).unwrap_or(u8::MAX),
                    });
                }
            }
            let rec = c.fl.record(&group());
            let can_send = rec.is_some_and(|r| {
                r.mstate == MState::Joined
                    && (r.vstate != VState::Agree || self.cfg.mutant == Some(VsMutant::SendInAgree))
            });
            if can_send && client < self.cfg.senders && usize::from(c.sent) < self.cfg.msgs.len() {
                out.push(VsAction::Send(client));
            }
            if c.asked && rec.is_some_and(|r| r.mstate != MState::Leaving) {
                out.push(VsAction::Flush(client));
            }
        }
        if let Some(step) = self.cfg.script.get(usize::from(s.done)) {
            out.push(VsAction::Script {
                step: step.clone(),
                drop: false,
            });
            if matches!(step, Step::Partition(_)) {
                out.push(VsAction::Script {
                    step: step.clone(),
                    drop: true,
                });
            }
        }
    }

    fn next_state(&self, s: &VsState, a: VsAction) -> Option<VsState> {
        self.apply(s, &a)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("VS-VIEWAGREE", |_, s| props::vs_viewagree(&s.logs())),
            Property::<Self>::always("VS-SELFINC", |_, s| props::vs_selfinc(&s.logs())),
            Property::<Self>::always("VS-SENDVIEW", |_, s| props::vs_sendview(&s.logs())),
            Property::<Self>::always("VS-VSYNC", |_, s| props::vs_vsync(&s.logs())),
            Property::<Self>::always("VS-CLOSED", |_, s| props::vs_closed(&s.logs())),
            Property::<Self>::always("VS-PERMIT", |_, s| props::vs_permit(&s.logs())),
            Property::<Self>::always("VS-ONETRANS", |_, s| props::vs_onetrans(&s.logs())),
            Property::<Self>::always("VS-PROGRESS", |m, s| !m.quiescent(s) || Self::settled(s)),
            Property::<Self>::sometimes("S-VS-INSTALL", |_, s| {
                s.clients.iter().any(|c| {
                    c.log
                        .iter()
                        .filter(|e| matches!(e, Obs::Installed { .. }))
                        .count()
                        >= 2
                        || c.log.first().is_some_and(|e| !matches!(e, Obs::Installed { .. }))
                            && c.log.iter().any(|e| matches!(e, Obs::Installed { .. }))
                })
            }),
            Property::<Self>::sometimes("S-FLUSH-INTERRUPTED", |_, s| {
                s.clients
                    .iter()
                    .any(|c| c.log.iter().any(|e| matches!(e, Obs::Flushed { auto: true, .. })))
            }),
            Property::<Self>::sometimes("S-COLLAPSE", |_, s| {
                s.clients.iter().any(|c| {
                    c.log.iter().any(|e| {
                        matches!(e, Obs::Installed { gid, cause: Cause::Network, .. }
                            if s.sp_cause.get(gid).is_some_and(|k| *k != Cause::Network))
                    })
                })
            }),
            Property::<Self>::sometimes("S-VULN-BUFFERED", |_, s| {
                s.clients
                    .iter()
                    .any(|c| c.fl.record(&group()).is_some_and(|r| !r.early.is_empty()))
            }),
            Property::<Self>::sometimes("S-SEND-IN-AUTHORIZE", |_, s| {
                s.clients.iter().any(|c| {
                    c.log.iter().any(|e| {
                        matches!(
                            e,
                            Obs::Sent {
                                in_authorize: true,
                                ..
                            }
                        )
                    })
                })
            }),
        ]
    }
}

/// Check one scenario exhaustively (depth-first); with `stop_at_first_failure`, stop at the
/// first counterexample of an always-property.
pub fn check_cfg(cfg: VsModelCfg, stop_at_first_failure: bool) -> CheckReport {
    check_capped(cfg, stop_at_first_failure, usize::MAX)
}

/// [`check_cfg`] stopping after about `max_states` generated states (then not `complete`).
pub fn check_capped(cfg: VsModelCfg, stop_at_first_failure: bool, max_states: usize) -> CheckReport {
    let mutant = cfg.mutant.map(|m| m.name().to_owned());
    let model = VsModel::new(cfg);
    let props: Vec<(&'static str, bool)> = model
        .properties()
        .iter()
        .map(|p| (p.name, matches!(p.expectation, Expectation::Always)))
        .collect();
    let mut builder = model.checker().target_state_count(max_states);
    if stop_at_first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let checker = builder.spawn_dfs().join();
    let discoveries = checker.discoveries();
    let mut failed = false;
    let properties = props
        .iter()
        .map(|(name, always)| {
            let found = discoveries.get(name);
            let counterexample = found.filter(|_| *always).map(|p| {
                failed = true;
                p.clone()
                    .into_actions()
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            PropertyReport {
                name: (*name).to_owned(),
                expectation: if *always { "always" } else { "sometimes" }.to_owned(),
                holds: if *always { found.is_none() } else { found.is_some() },
                counterexample,
            }
        })
        .collect();
    CheckReport {
        model: "vs".to_owned(),
        mutant,
        states: checker.unique_state_count(),
        complete: !(failed && stop_at_first_failure) && checker.state_count() < max_states,
        properties,
    }
}

/// Merge scenario reports: states add up; an always-property holds if it holds in every
/// scenario (the first counterexample is kept), a sometimes-property if reached in any.
pub fn merge(reports: Vec<CheckReport>) -> Option<CheckReport> {
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

/// The check behind `sgc check vs [--mutant NAME]`: every scenario of
/// [`VsModelCfg::scenarios`], exhaustively; with a mutant, stopping at the first counterexample
/// (scenarios after the first failing one are skipped).
pub fn check(mutant: Option<VsMutant>) -> CheckReport {
    let mut reports = Vec::new();
    for cfg in VsModelCfg::scenarios() {
        let r = check_cfg(cfg.with_mutant(mutant), mutant.is_some());
        let unsafe_run = !r.safe();
        reports.push(r);
        if mutant.is_some() && unsafe_run {
            break;
        }
    }
    merge(reports).unwrap_or_else(|| CheckReport {
        model: "vs".to_owned(),
        mutant: mutant.map(|m| m.name().to_owned()),
        states: 0,
        complete: false,
        properties: Vec::new(),
    })
}
