//! A small deterministic in-memory simulation of several daemons: a FIFO network with link cuts,
//! explicit timer firing, crashes and restarts. It drives the very same [`Daemon::handle`] and
//! records a [`History`] per incarnation, for tests and examples.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::RingConfig;
use super::machine::{Daemon, Phase};
use super::props::{History, LogEntry};
use super::types::{
    Command, ConfigId, ConfigKind, Durable, Event, MsgId, NodeId, Packet, Pid, RingId, Service, TimerKind,
};

/// The simulated cluster.
#[derive(Clone, Debug)]
pub struct Sim {
    /// Shared configuration.
    pub cfg: RingConfig,
    /// Running daemons.
    pub daemons: BTreeMap<NodeId, Daemon>,
    /// Crashed nodes.
    pub crashed: BTreeSet<NodeId>,
    /// Packets in flight: sender, destination, packet.
    pub net: VecDeque<(Pid, NodeId, Packet)>,
    /// Armed timers per node.
    pub timers: BTreeMap<NodeId, BTreeSet<TimerKind>>,
    /// Stable storage per node.
    pub storage: BTreeMap<NodeId, Durable>,
    /// One history per incarnation.
    pub histories: BTreeMap<Pid, History>,
    /// Cut links (both directions are listed separately).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Packets dropped by cuts or crashes.
    pub dropped: u64,
}

impl Sim {
    fn empty(cfg: RingConfig) -> Self {
        Self {
            cfg,
            daemons: BTreeMap::new(),
            crashed: BTreeSet::new(),
            net: VecDeque::new(),
            timers: BTreeMap::new(),
            storage: BTreeMap::new(),
            histories: BTreeMap::new(),
            cut: BTreeSet::new(),
            dropped: 0,
        }
    }

    /// Daemons `0..n` booting from nothing.
    pub fn boot(n: u16, cfg: RingConfig) -> Self {
        let mut sim = Self::empty(cfg);
        for node in 0..n {
            sim.start(node);
        }
        sim
    }

    /// Daemons `0..n` already in ring `R1` (incarnation 1), the first token sent by node 0.
    pub fn formed(n: u16, cfg: RingConfig) -> Self {
        let mut sim = Self::empty(cfg);
        let members: Vec<Pid> = (0..n).map(|i| Pid::new(i, 1)).collect();
        let ring = RingId {
            seq: 1,
            rep: members[0],
        };
        for p in &members {
            let d = Daemon::formed(*p, ring, members.clone());
            sim.storage.insert(p.node, d.durable);
            let mut h = History::new(*p);
            h.observe(&[Command::DeliverConfig {
                kind: ConfigKind::Regular,
                id: ConfigId::Regular(ring),
                members: members.clone(),
            }]);
            sim.histories.insert(*p, h);
            sim.timers.insert(p.node, BTreeSet::from([TimerKind::TokenLoss]));
            sim.daemons.insert(p.node, d);
        }
        let to = members[1 % members.len()];
        let t = Daemon::first_token(ring, &members);
        sim.net.push_back((members[0], to.node, Packet::Token(t)));
        sim
    }

    fn start(&mut self, node: NodeId) {
        let d = Daemon::new(node, self.storage.get(&node).copied());
        self.histories.insert(d.me, History::new(d.me));
        self.daemons.insert(node, d);
        self.crashed.remove(&node);
        self.timers.insert(node, BTreeSet::new());
        self.input(node, Event::Boot);
    }

    /// Feed an event to a running daemon and carry out its commands.
    pub fn input(&mut self, node: NodeId, ev: Event) -> Vec<Command> {
        if self.crashed.contains(&node) {
            return Vec::new();
        }
        let Some(d) = self.daemons.get_mut(&node) else {
            return Vec::new();
        };
        let cmds = d.handle(&self.cfg, ev);
        let me = d.me;
        if let Some(h) = self.histories.get_mut(&me) {
            h.observe(&cmds);
            h.observe_holdings(d);
        }
        for c in &cmds {
            match c {
                Command::SendToken { to, pkt } => self.net.push_back((me, to.node, pkt.clone())),
                Command::Broadcast(pkt) => {
                    for n in self.cfg.nodes.clone() {
                        if n != node {
                            self.net.push_back((me, n, pkt.clone()));
                        }
                    }
                }
                Command::SetTimer { kind, .. } => {
                    self.timers.entry(node).or_default().insert(*kind);
                }
                Command::CancelTimer(kind) => {
                    self.timers.entry(node).or_default().remove(kind);
                }
                Command::Persist(d) => {
                    self.storage.insert(node, *d);
                }
                Command::Deliver { .. } | Command::DeliverConfig { .. } => {}
            }
        }
        cmds
    }

    /// A client submits message `n` to `node`.
    pub fn submit(&mut self, node: NodeId, n: u32, service: Service, payload: Vec<u8>) -> MsgId {
        let me = self.daemons[&node].me;
        let id = MsgId { origin: me, n };
        if let Some(h) = self.histories.get_mut(&me) {
            h.log.push(LogEntry::Submitted { id });
        }
        self.input(node, Event::Submit { id, service, payload });
        id
    }

    /// Deliver the next packet in flight (dropped if its link is cut or its receiver crashed).
    /// Returns false when nothing is in flight.
    pub fn step(&mut self) -> bool {
        let Some((from, to, pkt)) = self.net.pop_front() else {
            return false;
        };
        if self.cut.contains(&(from.node, to)) || self.crashed.contains(&to) {
            self.dropped += 1;
        } else {
            self.input(to, Event::Recv { from, pkt });
        }
        true
    }

    /// Deliver up to `n` packets.
    pub fn run(&mut self, n: usize) {
        for _ in 0..n {
            if !self.step() {
                break;
            }
        }
    }

    /// Drop every packet in flight that satisfies `pred`.
    pub fn drop_where(&mut self, pred: impl Fn(&Pid, NodeId, &Packet) -> bool) {
        let before = self.net.len();
        self.net.retain(|(f, t, p)| !pred(f, *t, p));
        self.dropped += (before - self.net.len()) as u64;
    }

    /// Fire a timer if it is armed.
    pub fn fire(&mut self, node: NodeId, kind: TimerKind) -> bool {
        let armed = self.timers.get_mut(&node).is_some_and(|t| t.remove(&kind));
        if armed {
            self.input(node, Event::Timer(kind));
        }
        armed
    }

    /// Run until the network is idle, then fire one armed timer, round-robin over the armed
    /// `(node, timer)` pairs (TokenRetransmit last, as it only matters after a loss); repeat
    /// `rounds` times.
    pub fn settle(&mut self, rounds: usize, steps_per_round: usize) {
        for round in 0..rounds {
            self.run(steps_per_round);
            if !self.net.is_empty() {
                continue;
            }
            let mut armed: Vec<(NodeId, TimerKind)> = Vec::new();
            for (n, ts) in &self.timers {
                if !self.crashed.contains(n) {
                    armed.extend(
                        ts.iter()
                            .filter(|k| **k != TimerKind::TokenRetransmit)
                            .map(|k| (*n, *k)),
                    );
                }
            }
            if armed.is_empty() {
                for (n, ts) in &self.timers {
                    if !self.crashed.contains(n) {
                        armed.extend(ts.iter().map(|k| (*n, *k)));
                    }
                }
            }
            if let Some((n, k)) = armed.get(round % armed.len().max(1)).copied() {
                self.fire(n, k);
            }
        }
    }

    /// Isolate the given groups from each other.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        self.cut.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in *a {
                        for y in *b {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Remove every cut.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crash a node (its packets in flight stay; packets to it are dropped).
    pub fn crash(&mut self, node: NodeId) {
        self.crashed.insert(node);
        self.timers.insert(node, BTreeSet::new());
    }

    /// Restart a crashed node with a new incarnation.
    pub fn restart(&mut self, node: NodeId) {
        self.start(node);
    }

    /// Whether the given nodes are all Operational in one ring with exactly them as members.
    pub fn is_ring(&self, nodes: &[NodeId]) -> bool {
        let ds: Vec<&Daemon> = nodes.iter().filter_map(|n| self.daemons.get(n)).collect();
        let Some(first) = ds.first() else { return false };
        ds.len() == nodes.len()
            && ds.iter().all(|d| {
                d.phase == Phase::Operational
                    && d.reg_ring == first.reg_ring
                    && d.reg_members.iter().map(|p| p.node).collect::<Vec<_>>() == nodes
            })
    }

    /// All histories.
    pub fn histories(&self) -> Vec<&History> {
        self.histories.values().collect()
    }
}
