//! Stateright model of the ring protocol: an `Actor` adapter over [`Daemon`] with ghost
//! histories, an `ActorModel` on a lossy unordered network, and a wrapper model adding
//! partitions and heals, drop and crash budgets, and the EVS properties of ring-protocol.md §4.
//!
//! What is checked is the very `Daemon::handle` the daemon runs. The model abstracts (§6):
//! one tiny message per packet (packing and fragmentation are exercised only by unit tests),
//! flow control at one new or retransmitted packet per visit, no `MAX_GAP`, no token hold;
//! `cur_ring.seq` and `token_seq` bounded by `within_boundary`; timers fire either at any moment
//! ([`Timeouts::Any`]: false suspicions) or only when what they wait for is really missing
//! ([`Timeouts::WhenQuiet`]: timers are long compared with packet delays, so they fire only when
//! no join is in flight anywhere and what they wait for is missing: TokenLoss/TokenRetransmit
//! when no token of the daemon's ring is in flight, Join only while a reachable peer in Gather
//! misses the daemon in its consensus, Consensus only when no such re-broadcast could complete
//! the daemon's consensus, MergeDetect only while some running daemon is outside the daemon's
//! ring and its last probe was consumed).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stateright::actor::{
    Actor, ActorModel, ActorModelAction, ActorModelState, Envelope, Id, LossyNetwork, Network, Out,
};
use stateright::{Checker, Expectation, HasDiscoveries, Model, Property};

use super::config::{RingConfig, RingMutant};
use super::machine::{Daemon, Phase};
use super::props::{self, History, LogEntry};
use super::types::{
    Command, ConfigId, ConfigKind, Durable, Event, MsgId, NodeId, Packet, Pid, RingId, Service, TimerKind,
};

/// A packet on the model's network, stamped with its sender.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Wire {
    /// Sender.
    pub from: Pid,
    /// Packet.
    pub pkt: Packet,
}

/// The adapter's timers: the machine's, plus a model-only "a client submits now".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActorTimer {
    /// A machine timer.
    Ring(TimerKind),
    /// The next client message of this daemon is submitted.
    Submit,
}

/// An actor's state: the machine and its ghost history.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ActorState {
    /// The protocol machine.
    pub daemon: Daemon,
    /// Ghost observations of this incarnation.
    pub history: History,
    /// Client messages submitted so far.
    pub submitted: u32,
}

/// The actor adapter over [`Daemon`].
#[derive(Clone, Debug)]
pub struct RingActor {
    /// Node id.
    pub node: NodeId,
    /// Shared machine configuration.
    pub cfg: Arc<RingConfig>,
    /// Client messages to originate (first incarnation only).
    pub msgs: u32,
    /// Submit every message at start instead of on a `Submit` timer.
    pub submit_at_start: bool,
    /// Start already installed in this ring (first incarnation only), or boot.
    pub formed: Option<(RingId, Vec<Pid>)>,
}

/// Service of a model message: node 0 sends Safe, the others Agreed (fixed per id, §6).
pub const fn model_service(node: NodeId) -> Service {
    if node == 0 { Service::Safe } else { Service::Agreed }
}

/// Payload of the `n`-th model message of a daemon (one byte).
pub fn model_payload(n: u32) -> Vec<u8> {
    vec![u8::try_from(n).unwrap_or(u8::MAX)]
}

/// A daemon of node `node` starting already installed in `ring` with `members` (the model's
/// first incarnation when [`RingModelCfg::boot`] is false): the machine, and the commands of
/// that start in order: the regular configuration's `DeliverConfig` (an observation only),
/// the TokenLoss timer, and at the representative the first token and the MergeDetect timer.
/// The caller persists `daemon.durable` first. Shared by the model and trace replay.
pub fn formed_start(cfg: &RingConfig, node: NodeId, ring: RingId, members: &[Pid]) -> (Daemon, Vec<Command>) {
    let me = members
        .iter()
        .copied()
        .find(|p| p.node == node)
        .unwrap_or(Pid::new(node, 1));
    let daemon = Daemon::formed(me, ring, members.to_vec());
    let mut cmds = vec![
        Command::DeliverConfig {
            kind: ConfigKind::Regular,
            id: ConfigId::Regular(ring),
            members: members.to_vec(),
        },
        Command::SetTimer {
            kind: TimerKind::TokenLoss,
            after: cfg.token_loss,
        },
    ];
    if ring.rep == me {
        let to = members.get(1).copied().unwrap_or(me);
        let pkt = Packet::Token(Daemon::first_token(ring, members));
        cmds.push(Command::SendToken { to, pkt });
        if cfg.probes {
            cmds.push(Command::SetTimer {
                kind: TimerKind::MergeDetect,
                after: cfg.merge_detect,
            });
        }
    }
    (daemon, cmds)
}

impl RingActor {
    fn apply(&self, me: Pid, cmds: &[Command], o: &mut Out<Self>) {
        for c in cmds {
            match c {
                Command::SendToken { to, pkt } => o.send(
                    Id::from(usize::from(to.node)),
                    Wire {
                        from: me,
                        pkt: pkt.clone(),
                    },
                ),
                Command::Broadcast(pkt) => {
                    for n in &self.cfg.nodes {
                        if *n != self.node {
                            o.send(
                                Id::from(usize::from(*n)),
                                Wire {
                                    from: me,
                                    pkt: pkt.clone(),
                                },
                            );
                        }
                    }
                }
                Command::SetTimer { kind, after } => o.set_timer(ActorTimer::Ring(*kind), *after..*after),
                Command::CancelTimer(kind) => o.cancel_timer(ActorTimer::Ring(*kind)),
                Command::Persist(d) => o.save(*d),
                Command::Deliver { .. } | Command::DeliverConfig { .. } => {}
            }
        }
    }

    fn submit_next(node: NodeId, st: &mut ActorState) {
        st.submitted += 1;
        let id = MsgId {
            origin: st.daemon.me,
            n: st.submitted,
        };
        st.history.log.push(LogEntry::Submitted { id });
        // submitting never emits commands
        let _ = st
            .daemon
            .submit(id, model_service(node), model_payload(st.submitted));
    }

    fn step(&self, state: &mut Cow<ActorState>, ev: Event, o: &mut Out<Self>) {
        let mut next = (**state).clone();
        let cmds = next.daemon.handle(&self.cfg, ev);
        next.history.observe(&cmds);
        next.history.observe_holdings(&next.daemon);
        self.apply(next.daemon.me, &cmds, o);
        if next != **state {
            *state = Cow::Owned(next);
        }
    }
}

impl Actor for RingActor {
    type Msg = Wire;
    type Timer = ActorTimer;
    type State = ActorState;
    type Storage = Durable;
    type Random = ();

    fn name(&self) -> String {
        format!("d{}", self.node)
    }

    fn on_start(&self, _id: Id, storage: &Option<Durable>, o: &mut Out<Self>) -> ActorState {
        let first = storage.is_none();
        let mut st = match (&self.formed, first) {
            (Some((ring, members)), true) => {
                let (daemon, cmds) = formed_start(&self.cfg, self.node, *ring, members);
                let me = daemon.me;
                let mut history = History::new(me);
                history.observe(&cmds);
                o.save(daemon.durable);
                self.apply(me, &cmds, o);
                ActorState {
                    daemon,
                    history,
                    submitted: 0,
                }
            }
            _ => {
                let mut daemon = Daemon::new(self.node, *storage);
                let cmds = daemon.handle(&self.cfg, Event::Boot);
                let mut history = History::new(daemon.me);
                history.observe(&cmds);
                self.apply(daemon.me, &cmds, o);
                ActorState {
                    daemon,
                    history,
                    submitted: 0,
                }
            }
        };
        if first && self.submit_at_start {
            for _ in 0..self.msgs {
                Self::submit_next(self.node, &mut st);
            }
        } else if first && self.msgs > 0 {
            o.set_timer(ActorTimer::Submit, Duration::ZERO..Duration::ZERO);
        }
        st
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<ActorState>, _src: Id, msg: Wire, o: &mut Out<Self>) {
        self.step(
            state,
            Event::Recv {
                from: msg.from,
                pkt: msg.pkt,
            },
            o,
        );
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<ActorState>, timer: &ActorTimer, o: &mut Out<Self>) {
        match timer {
            ActorTimer::Ring(kind) => self.step(state, Event::Timer(*kind), o),
            ActorTimer::Submit => {
                Self::submit_next(self.node, state.to_mut());
                if state.submitted < self.msgs {
                    o.set_timer(ActorTimer::Submit, Duration::ZERO..Duration::ZERO);
                }
            }
        }
    }
}

/// When the model lets timers fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timeouts {
    /// At any moment (false suspicions included).
    Any,
    /// Only when what the timer waits for is missing (see the module doc).
    WhenQuiet,
}

/// Parameters and bounds of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingModelCfg {
    /// Number of daemons.
    pub daemons: u16,
    /// Client messages each daemon originates.
    pub msgs_per_daemon: u32,
    /// Start by booting (true) or already installed in ring 1 (false).
    pub boot: bool,
    /// Bound on `cur_ring.seq`.
    pub max_ring_seq: u64,
    /// Bound on the token's `token_seq` on each ring.
    pub max_token_seq: u64,
    /// Bound on packets in flight.
    pub max_in_flight: usize,
    /// Crash budget (each crashed daemon may restart with a new incarnation).
    pub crashes: u8,
    /// Partition budget (isolating one daemon; healed by a Heal action).
    pub partitions: u8,
    /// Packet-loss budget.
    pub drops: u8,
    /// Timer firing policy.
    pub timeouts: Timeouts,
    /// Merge-detection probes.
    pub probes: bool,
    /// Per-link FIFO network (`true`) or unordered UDP-like network (`false`).
    pub fifo: bool,
    /// Clients submit all their messages at start (`true`) or at any moment (`false`).
    pub submit_at_start: bool,
    /// Seeded bug.
    pub mutant: Option<RingMutant>,
}

impl RingModelCfg {
    /// The bounded default configuration checked by `cargo test`: 3 daemons installed in ring 1,
    /// one message each (daemon 0's Safe), one packet loss, at most one membership change
    /// (`cur_ring.seq <= 2`), `token_seq <= 9`, FIFO links, at most 8 packets in flight.
    pub const fn small() -> Self {
        Self {
            daemons: 3,
            msgs_per_daemon: 1,
            boot: false,
            max_ring_seq: 2,
            max_token_seq: 9,
            max_in_flight: 8,
            crashes: 0,
            partitions: 0,
            drops: 1,
            timeouts: Timeouts::WhenQuiet,
            probes: true,
            fifo: true,
            submit_at_start: true,
            mutant: None,
        }
    }

    /// The machine configuration used in the model.
    pub fn ring_config(&self) -> RingConfig {
        RingConfig {
            max_messages: 1,
            probes: self.probes,
            mutant: self.mutant,
            ..RingConfig::new((0..self.daemons).collect())
        }
    }

    /// Partitions instead of loss: one partition (isolating one daemon) and its heal, up to two
    /// membership changes (`cur_ring.seq <= 3`: split, then merge).
    pub const fn partitioned() -> Self {
        Self {
            partitions: 1,
            drops: 0,
            max_ring_seq: 3,
            ..Self::small()
        }
    }

    /// The model.
    pub fn into_model(self) -> RingModel {
        let cfg = Arc::new(self.ring_config());
        let members: Vec<Pid> = (0..self.daemons).map(|n| Pid::new(n, 1)).collect();
        let formed = (!self.boot).then(|| {
            (
                RingId {
                    seq: 1,
                    rep: members[0],
                },
                members.clone(),
            )
        });
        let actors = (0..self.daemons).map(|node| RingActor {
            node,
            cfg: Arc::clone(&cfg),
            msgs: self.msgs_per_daemon,
            submit_at_start: self.submit_at_start,
            formed: formed.clone(),
        });
        let inner = ActorModel::new((), ())
            .actors(actors)
            .init_network(if self.fifo {
                Network::new_ordered([])
            } else {
                Network::new_unordered_nonduplicating([])
            })
            .lossy_network(if self.drops > 0 {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
            .max_crashes(usize::from(self.crashes.min(1)));
        RingModel { cfg: self, inner }
    }
}

/// The wrapper model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RState {
    /// The actor model's state.
    pub inner: ActorModelState<RingActor>,
    /// Partition side of each daemon.
    pub side: Vec<u8>,
    /// Partitions left.
    pub partitions_left: u8,
    /// Drops left.
    pub drops_left: u8,
    /// Crashes left.
    pub crashes_left: u8,
    /// Histories of dead incarnations (restarted daemons).
    pub past: Vec<History>,
}

/// The wrapper model's actions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RAction {
    /// An action of the actor model.
    Net(ActorModelAction<Wire, ActorTimer, ()>),
    /// Cut the network into the given sides (in-flight cross traffic is lost).
    Partition(Vec<u8>),
    /// Reconnect everything.
    Heal,
}

/// The ring model: an `ActorModel` of [`RingActor`]s inside a partition/budget wrapper.
pub struct RingModel {
    /// Parameters.
    pub cfg: RingModelCfg,
    /// The actor model.
    pub inner: ActorModel<RingActor, (), ()>,
}

fn idx(id: Id) -> usize {
    usize::from(id)
}

impl RingModel {
    /// Packets in flight that can still arrive (same side, receiver running), FIFO queues walked
    /// in full (`iter_all` never ends on ordered networks).
    fn in_flight(s: &RState) -> Vec<(Id, Id, &Wire)> {
        let ok = |a: Id, b: Id| {
            s.side.get(idx(a)) == s.side.get(idx(b)) && !s.inner.crashed.get(idx(b)).copied().unwrap_or(true)
        };
        match &s.inner.network {
            Network::Ordered(map) => map
                .iter()
                .filter(|((a, b), _)| ok(*a, *b))
                .flat_map(|((a, b), q)| q.iter().map(move |m| (*a, *b, m)))
                .collect(),
            other => other
                .iter_all()
                .filter(|e| ok(e.src, e.dst))
                .map(|e| (e.src, e.dst, e.msg))
                .collect(),
        }
    }

    /// The running daemons on the same side as `id`, except `id`.
    fn peers(s: &RState, id: Id) -> impl Iterator<Item = &Daemon> {
        let me = idx(id);
        s.inner.actor_states.iter().enumerate().filter_map(move |(i, a)| {
            let ok = i != me
                && !s.inner.crashed.get(i).copied().unwrap_or(true)
                && s.side.get(i) == s.side.get(me);
            ok.then_some(&a.daemon)
        })
    }

    fn timer_enabled(&self, s: &RState, id: Id, t: &ActorTimer) -> bool {
        if self.cfg.timeouts == Timeouts::Any {
            return true;
        }
        let Some(a) = s.inner.actor_states.get(idx(id)) else {
            return false;
        };
        let d = &a.daemon;
        let kind = match t {
            ActorTimer::Submit => return true,
            ActorTimer::Ring(k) => *k,
        };
        let token_of = |w: &Wire, ring: RingId| match &w.pkt {
            Packet::Token(t) => t.ring == ring,
            Packet::Commit(c) => c.ring == ring,
            _ => false,
        };
        let fl = Self::in_flight(s);
        let joins = fl
            .iter()
            .any(|(_, _, w)| matches!(w.pkt, Packet::Join(_) | Packet::Commit(_)));
        match kind {
            TimerKind::TokenLoss | TimerKind::TokenRetransmit => {
                !joins && !fl.iter().any(|(_, _, w)| token_of(w, d.cur_ring))
            }
            TimerKind::Consensus => {
                // only when re-broadcasting joins could not complete the consensus any more
                let active = d.active();
                !joins
                    && !Self::peers(s, id).any(|j| {
                        j.phase == Phase::Gather
                            && active.contains(&j.me)
                            && !d.consensus.contains(&j.me)
                            && j.proc_set == d.proc_set
                            && j.fail_set == d.fail_set
                    })
            }
            TimerKind::Join => {
                // only when some peer in Gather misses this daemon in its consensus
                !joins && Self::peers(s, id).any(|k| k.phase == Phase::Gather && !k.consensus.contains(&d.me))
            }
            TimerKind::MergeDetect => {
                let outsider = s
                    .inner
                    .actor_states
                    .iter()
                    .zip(&s.inner.crashed)
                    .any(|(a, c)| !*c && !d.reg_members.contains(&a.daemon.me));
                outsider
                    && !fl
                        .iter()
                        .any(|(a, _, w)| *a == id && matches!(w.pkt, Packet::Probe { .. }))
            }
        }
    }

    /// Every history of the state: dead incarnations, then the actors' current ones.
    pub fn histories(s: &RState) -> Vec<&History> {
        s.past
            .iter()
            .chain(s.inner.actor_states.iter().map(|a| &a.history))
            .collect()
    }

    /// Pids of the running (not crashed) daemons.
    pub fn live(s: &RState) -> BTreeSet<Pid> {
        s.inner
            .actor_states
            .iter()
            .zip(&s.inner.crashed)
            .filter(|(_, c)| !**c)
            .map(|(a, _)| a.daemon.me)
            .collect()
    }

    /// All running daemons Operational in one ring of exactly them, nothing pending, everything
    /// of the ring delivered.
    pub fn quiescent(s: &RState) -> bool {
        let live = Self::live(s);
        let running: Vec<&ActorState> = s
            .inner
            .actor_states
            .iter()
            .zip(&s.inner.crashed)
            .filter(|(_, c)| !**c)
            .map(|(a, _)| &**a)
            .collect();
        let Some(first) = running.first() else {
            return false;
        };
        running.iter().all(|a| {
            let d = &a.daemon;
            d.phase == Phase::Operational
                && d.reg_ring == first.daemon.reg_ring
                && d.reg_members.iter().copied().collect::<BTreeSet<_>>() == live
                && d.pending.is_empty()
                && d.order.high_delivered == d.order.high_seq
                && d.order.high_seq == first.daemon.order.high_seq
        })
    }

    /// Packets to a crashed daemon or across the cut are lost.
    fn purge_lost(s: &mut RState) {
        let crashed = s.inner.crashed.clone();
        let side = s.side.clone();
        let lost = |a: Id, b: Id| {
            crashed.get(idx(b)).copied().unwrap_or(false) || side.get(idx(a)) != side.get(idx(b))
        };
        match &mut s.inner.network {
            Network::UnorderedNonDuplicating(ms) => ms.retain(|e, _| !lost(e.src, e.dst)),
            Network::Ordered(map) => map.retain(|(a, b), _| !lost(*a, *b)),
            Network::UnorderedDuplicating(set, _) => set.retain(|e| !lost(e.src, e.dst)),
        }
    }
}

impl Model for RingModel {
    type State = RState;
    type Action = RAction;

    fn init_states(&self) -> Vec<RState> {
        let n = usize::from(self.cfg.daemons);
        self.inner
            .init_states()
            .into_iter()
            .map(|inner| RState {
                inner,
                side: vec![0; n],
                partitions_left: self.cfg.partitions,
                drops_left: self.cfg.drops,
                crashes_left: self.cfg.crashes,
                past: Vec::new(),
            })
            .collect()
    }

    fn actions(&self, s: &RState, out: &mut Vec<RAction>) {
        let mut inner = Vec::new();
        self.inner.actions(&s.inner, &mut inner);
        for a in inner {
            let keep = match &a {
                ActorModelAction::Deliver { src, dst, .. } => s.side.get(idx(*src)) == s.side.get(idx(*dst)),
                ActorModelAction::Drop(_) => s.drops_left > 0,
                ActorModelAction::Crash(_) => s.crashes_left > 0,
                ActorModelAction::Timeout(id, t) => self.timer_enabled(s, *id, t),
                _ => true,
            };
            if keep {
                out.push(RAction::Net(a));
            }
        }
        let connected = s.side.iter().all(|x| *x == 0);
        if connected && s.partitions_left > 0 {
            for i in 0..s.side.len() {
                let mut side = vec![0; s.side.len()];
                side[i] = 1;
                out.push(RAction::Partition(side));
            }
        }
        if !connected {
            out.push(RAction::Heal);
        }
    }

    fn next_state(&self, s: &RState, a: RAction) -> Option<RState> {
        match a {
            RAction::Net(a) => {
                let mut past = None;
                let (mut drops, mut crashes) = (s.drops_left, s.crashes_left);
                let inner = match &a {
                    ActorModelAction::Deliver { src, dst, msg } => {
                        self.inner.next_state(&s.inner, a.clone()).or_else(|| {
                            // a packet the daemon ignores is consumed all the same
                            let env = Envelope {
                                src: *src,
                                dst: *dst,
                                msg: msg.clone(),
                            };
                            self.inner.next_state(&s.inner, ActorModelAction::Drop(env))
                        })
                    }
                    ActorModelAction::Drop(_) => {
                        drops = drops.saturating_sub(1);
                        self.inner.next_state(&s.inner, a.clone())
                    }
                    ActorModelAction::Crash(_) => {
                        crashes = crashes.saturating_sub(1);
                        self.inner.next_state(&s.inner, a.clone())
                    }
                    ActorModelAction::Recover(id) => {
                        past = s.inner.actor_states.get(idx(*id)).map(|st| st.history.clone());
                        self.inner.next_state(&s.inner, a.clone())
                    }
                    _ => self.inner.next_state(&s.inner, a.clone()),
                }?;
                let mut n = RState {
                    inner,
                    drops_left: drops,
                    crashes_left: crashes,
                    ..s.clone()
                };
                n.past.extend(past);
                Self::purge_lost(&mut n);
                Some(n)
            }
            RAction::Partition(side) => {
                let mut n = s.clone();
                let same = |a: Id, b: Id| side.get(idx(a)) == side.get(idx(b));
                match &mut n.inner.network {
                    Network::UnorderedNonDuplicating(ms) => ms.retain(|e, _| same(e.src, e.dst)),
                    Network::Ordered(map) => map.retain(|(a, b), _| same(*a, *b)),
                    Network::UnorderedDuplicating(set, _) => set.retain(|e| same(e.src, e.dst)),
                }
                n.side = side;
                n.partitions_left -= 1;
                Some(n)
            }
            RAction::Heal => Some(RState {
                side: vec![0; s.side.len()],
                ..s.clone()
            }),
        }
    }

    fn within_boundary(&self, s: &RState) -> bool {
        s.inner.network.len() <= self.cfg.max_in_flight
            && s.inner.actor_states.iter().all(|a| {
                a.daemon.cur_ring.seq <= self.cfg.max_ring_seq
                    && a.daemon.order.last_token_seq <= self.cfg.max_token_seq
            })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut all = vec![
            Property::<Self>::always("EVS-NODUP", |_, s| props::evs_nodup(&Self::histories(s))),
            Property::<Self>::always("EVS-SELF", |_, s| {
                !Self::quiescent(s) || props::evs_self(&Self::histories(s), &Self::live(s))
            }),
            Property::<Self>::always("EVS-CONFAGREE", |_, s| props::evs_confagree(&Self::histories(s))),
            Property::<Self>::always("EVS-TRANS", |_, s| props::evs_trans(&Self::histories(s))),
            Property::<Self>::always("EVS-SAMEVIEW", |_, s| props::evs_sameview(&Self::histories(s))),
            Property::<Self>::always("EVS-VSYNC", |_, s| props::evs_vsync(&Self::histories(s))),
            Property::<Self>::always("EVS-AGREED", |_, s| props::evs_agreed(&Self::histories(s))),
            Property::<Self>::always("EVS-CAUSAL", |_, s| props::evs_causal(&Self::histories(s))),
            Property::<Self>::always("EVS-SAFE", |_, s| {
                let hs = Self::histories(s);
                props::evs_safe(&hs)
                    && (!Self::quiescent(s) || props::evs_safe_eventually(&hs, &Self::live(s)))
            }),
            Property::<Self>::sometimes("S-ALL-DELIVERED", |m, s| {
                let want = usize::from(m.cfg.daemons) * m.cfg.msgs_per_daemon as usize;
                Self::live(s).len() == usize::from(m.cfg.daemons)
                    && Self::quiescent(s)
                    && s.inner.actor_states.iter().all(|a| {
                        a.history
                            .log
                            .iter()
                            .filter(|e| matches!(e, LogEntry::Delivered { .. }))
                            .count()
                            == want
                    })
            }),
            Property::<Self>::sometimes("S-SPLIT", |_, s| {
                let rings: BTreeSet<RingId> = s
                    .inner
                    .actor_states
                    .iter()
                    .zip(&s.inner.crashed)
                    .filter(|(a, c)| {
                        !**c && a.daemon.phase == Phase::Operational && a.daemon.reg_ring.seq > 1
                    })
                    .map(|(a, _)| a.daemon.reg_ring)
                    .collect();
                rings.len() >= 2
            }),
            Property::<Self>::sometimes("S-MERGE", |_, s| {
                s.inner.actor_states.iter().any(|a| {
                    let mut last_trans = None;
                    a.history.log.iter().any(|e| match e {
                        LogEntry::Installed {
                            config: ConfigId::Transitional(..),
                            members,
                        } => {
                            last_trans = Some(members.len());
                            false
                        }
                        LogEntry::Installed {
                            config: ConfigId::Regular(_),
                            members,
                        } => last_trans.is_some_and(|t| t < members.len()),
                        _ => false,
                    })
                })
            }),
            Property::<Self>::sometimes("S-TRANS-DELIVERY", |_, s| {
                Self::histories(s).iter().any(|h| {
                    h.log.iter().any(|e| {
                        matches!(
                            e,
                            LogEntry::Delivered {
                                config: ConfigId::Transitional(..),
                                ..
                            }
                        )
                    })
                })
            }),
            Property::<Self>::sometimes("S-SAFE-IN-TRANS", |_, s| {
                Self::histories(s).iter().any(|h| {
                    h.log.iter().any(|e| {
                        matches!(
                            e,
                            LogEntry::Delivered {
                                config: ConfigId::Transitional(..),
                                service: Service::Safe,
                                ..
                            }
                        )
                    })
                })
            }),
            Property::<Self>::sometimes("S-PHASE-A", |_, s| {
                Self::histories(s).iter().any(|h| {
                    h.log.iter().any(|e| {
                        matches!(
                            e,
                            LogEntry::Delivered {
                                config: ConfigId::Regular(_),
                                at_install: true,
                                ..
                            }
                        )
                    })
                })
            }),
            Property::<Self>::sometimes("S-RESTART-REJOIN", |_, s| {
                Self::histories(s).iter().any(|h| {
                    h.log.iter().any(|e| match e {
                        LogEntry::Installed {
                            config: ConfigId::Regular(_),
                            members,
                        } => members.len() > 1 && members.iter().any(|p| p.inc > 1),
                        _ => false,
                    })
                })
            }),
        ];
        // Scenarios this configuration cannot produce are not listed (a report of "not
        // reached" would be noise, and `sgc check evs` exits 0 only when every property holds).
        let can_split = self.cfg.partitions > 0 || self.cfg.crashes > 0;
        all.retain(|p| match p.name {
            "S-SPLIT" | "S-MERGE" => can_split,
            "S-RESTART-REJOIN" => self.cfg.crashes > 0,
            _ => true,
        });
        all
    }
}

/// How to search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Search {
    /// Exhaustive depth-first search of the bounded space.
    Exhaustive,
    /// Breadth-first, stopping at the first failing `always` property (shortest counterexample).
    Hunt,
    /// Depth-first, stopping at the first failing `always` property (reaches deep scenarios
    /// sooner; longer counterexamples).
    HuntDeep,
}

pub use crate::check::{CheckReport, PropertyReport};

/// A one-line description of a packet on the model's network.
pub fn short(w: &Wire) -> String {
    match &w.pkt {
        Packet::Token(t) => format!(
            "token {} ts={} seq={} aru={} rtr={:?}{}",
            t.ring,
            t.token_seq,
            t.seq,
            t.aru,
            t.rtr,
            t.installed.map(|i| format!(" installed={i}")).unwrap_or_default()
        ),
        Packet::Data(p) => format!("data {} seq={} from {}", p.ring, p.seq, p.sender),
        Packet::Join(j) => format!(
            "join proc={:?} fail={:?} ring_seq={}",
            j.proc_set, j.fail_set, j.ring_seq
        ),
        Packet::Commit(c) => format!("commit {} rot={} members={:?}", c.ring, c.rotation, c.members),
        Packet::Probe { ring } => format!("probe {ring}"),
    }
}

/// A one-line description of an action.
pub fn describe(a: &RAction) -> String {
    match a {
        RAction::Net(ActorModelAction::Deliver { src, dst, msg }) => format!("{src}->{dst}: {}", short(msg)),
        RAction::Net(ActorModelAction::Drop(e)) => format!("DROP {}->{}: {}", e.src, e.dst, short(&e.msg)),
        RAction::Net(ActorModelAction::Timeout(id, t)) => format!("timeout {id}: {t:?}"),
        RAction::Net(ActorModelAction::Crash(id)) => format!("CRASH {id}"),
        RAction::Net(ActorModelAction::Recover(id)) => format!("RESTART {id}"),
        RAction::Net(other) => format!("{other:?}"),
        RAction::Partition(side) => format!("PARTITION {side:?}"),
        RAction::Heal => "HEAL".to_owned(),
    }
}

/// Run the checker on a model configuration. `Hunt` stops after about `max_states` generated
/// states; `Exhaustive` has no such cut-off (the model's bounds keep it finite).
pub fn check_with(cfg: RingModelCfg, search: Search, max_states: usize) -> CheckReport {
    check_with_paths(cfg, search, max_states).0
}

/// A discovery of the ring model: property, `always`/`sometimes`, and the path reaching it.
pub type RingDiscovery = crate::check::Discovery<RingModel>;

/// As [`check_with`], also returning every discovery's path (in property order).
pub fn check_with_paths(
    cfg: RingModelCfg,
    search: Search,
    max_states: usize,
) -> (CheckReport, Vec<RingDiscovery>) {
    let mutant = cfg.mutant.map(|m| m.name().to_owned());
    let model = cfg.into_model();
    let props: Vec<(&'static str, bool)> = model
        .properties()
        .into_iter()
        .map(|p| (p.name, matches!(p.expectation, Expectation::Always)))
        .collect();
    let builder = model.checker().threads(2);
    match search {
        Search::Exhaustive => summarize(builder.spawn_dfs().join(), &props, mutant, None),
        Search::Hunt => {
            let c = builder
                .finish_when(HasDiscoveries::AnyFailures)
                .target_state_count(max_states)
                .spawn_bfs()
                .join();
            summarize(c, &props, mutant, Some(max_states))
        }
        Search::HuntDeep => {
            let c = builder
                .finish_when(HasDiscoveries::AnyFailures)
                .target_state_count(max_states)
                .spawn_dfs()
                .join();
            summarize(c, &props, mutant, Some(max_states))
        }
    }
}

fn summarize(
    checker: impl Checker<RingModel>,
    props: &[(&'static str, bool)],
    mutant: Option<String>,
    cut: Option<usize>,
) -> (CheckReport, Vec<RingDiscovery>) {
    let discoveries = checker.discoveries();
    let mut properties = Vec::new();
    let mut paths = Vec::new();
    for (name, always) in props {
        let found = discoveries.get(name);
        properties.push(PropertyReport {
            name: (*name).to_owned(),
            expectation: if *always { "always" } else { "sometimes" }.to_owned(),
            holds: if *always { found.is_none() } else { found.is_some() },
            counterexample: found.filter(|_| *always).map(|p| {
                p.clone()
                    .into_actions()
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
        });
        if let Some(p) = found {
            paths.push(RingDiscovery {
                property: name,
                expectation: if *always { "always" } else { "sometimes" },
                path: p.clone().into_vec(),
            });
        }
    }
    let all_found = props.iter().all(|(n, _)| discoveries.contains_key(n));
    let failure_stop = cut.is_some() && props.iter().any(|(n, a)| *a && discoveries.contains_key(n));
    let truncated = cut.is_some_and(|c| checker.state_count() >= c);
    let report = CheckReport {
        model: "ring-evs".to_owned(),
        mutant,
        states: checker.unique_state_count(),
        complete: checker.is_done() && !all_found && !failure_stop && !truncated,
        properties,
    };
    (report, paths)
}

/// The model configuration a mutant is hunted in: [`RingModelCfg::small`], or
/// [`RingModelCfg::partitioned`] for the bugs that need a daemon to leave the ring.
pub fn hunting_cfg(mutant: RingMutant) -> RingModelCfg {
    let base = match mutant {
        RingMutant::SkipTransitional | RingMutant::TransByMembership => RingModelCfg::partitioned(),
        RingMutant::SafeOneVisit
        | RingMutant::RecoverFromOwnAru
        | RingMutant::AcceptDuplicateToken
        | RingMutant::AgreedAsSafe
        | RingMutant::DeliverPastGap => RingModelCfg::small(),
    };
    RingModelCfg {
        mutant: Some(mutant),
        ..base
    }
}

/// Generated-state budget of a mutant hunt.
pub const HUNT_BUDGET: usize = 3_000_000;

/// How a mutant is hunted: breadth-first (shortest trace), or depth-first for M5, whose
/// counterexample (split, singleton ring, merge) lies too deep for breadth-first search.
pub const fn hunting_search(mutant: RingMutant) -> Search {
    match mutant {
        RingMutant::TransByMembership => Search::HuntDeep,
        _ => Search::Hunt,
    }
}

/// The check behind `sgc check evs [--mutant NAME]`: without a mutant, the exhaustive check of
/// [`RingModelCfg::small`]; with one, a hunt ([`hunting_search`]) in [`hunting_cfg`] stopping at
/// the first counterexample (or after [`HUNT_BUDGET`] generated states).
pub fn check(mutant: Option<RingMutant>) -> CheckReport {
    let (cfg, search, budget) = check_plan(mutant);
    check_with(cfg, search, budget)
}

/// The configuration, search and budget [`check`] uses for `mutant`.
pub fn check_plan(mutant: Option<RingMutant>) -> (RingModelCfg, Search, usize) {
    match mutant {
        None => (RingModelCfg::small(), Search::Exhaustive, usize::MAX),
        Some(m) => (hunting_cfg(m), hunting_search(m), HUNT_BUDGET),
    }
}
