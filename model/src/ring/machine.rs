//! The daemon's ring machine: state, event dispatch and normal operation (ring-protocol.md §2).
//!
//! Membership (gather, commit, recovery, installation) lives in `membership.rs` as a second
//! `impl Daemon` block. Everything here is deterministic: no clock, no randomness, no I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::config::{RingConfig, RingMutant};
use super::packing::{self, Outgoing, Partial, Reassembled};
use super::types::{
    Body, Command, ConfigId, DataPkt, Durable, Event, Incarnation, MsgId, NodeId, Packet, Pid, RingError,
    RingId, Seq, Service, TimerKind, Token,
};

/// Membership state of a daemon (§3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Collecting joins.
    Gather,
    /// Circulating the commit token.
    Commit,
    /// Exchanging old-ring messages on the new ring.
    Recovery,
    /// Ordering client messages on an installed ring.
    Operational,
}

/// Ordering state of one ring (§1 "Per-ring state").
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderState {
    /// Packets received and not yet discarded.
    pub buffer: BTreeMap<Seq, DataPkt>,
    /// Highest `s` with every seq `1..=s` received.
    pub my_aru: Seq,
    /// Highest seq known to exist.
    pub high_seq: Seq,
    /// Highest seq delivered.
    pub high_delivered: Seq,
    /// Highest seq known received by every member.
    pub safe_line: Seq,
    /// Every seq up to here was discarded as stable.
    pub discarded: Seq,
    /// `token_seq` of the last accepted token.
    pub last_token_seq: u64,
    /// `aru` of the token forwarded on the previous visit.
    pub aru_forwarded_prev: Seq,
    /// Packets this daemon added to `fcc` on its previous visit.
    pub sent_prev: u32,
    /// Queue length this daemon added to `backlog` on its previous visit.
    pub backlog_prev: u32,
}

impl OrderState {
    /// Insert a packet if new; advance `my_aru` and `high_seq`. Returns whether it was new.
    pub(super) fn insert(&mut self, p: DataPkt) -> bool {
        if p.seq <= self.discarded || self.buffer.contains_key(&p.seq) {
            return false;
        }
        self.high_seq = self.high_seq.max(p.seq);
        self.buffer.insert(p.seq, p);
        while self.buffer.contains_key(&(self.my_aru + 1)) {
            self.my_aru += 1;
        }
        true
    }

    /// Discard the packets every member holds and this daemon delivered.
    pub(super) fn discard_stable(&mut self) {
        let line = self.safe_line.min(self.high_delivered);
        if line > self.discarded {
            self.buffer = self.buffer.split_off(&(line + 1));
            self.discarded = line;
        }
    }
}

/// The frozen state of the last installed ring during a membership change (§3.3 "Freeze").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OldRing {
    /// Its id (`reg_ring`).
    pub ring: RingId,
    /// Its members.
    pub members: Vec<Pid>,
    /// Held old packets (plus those unpacked from recovery packets).
    pub order: OrderState,
}

/// What a daemon computed on entering Recovery, from the commit token alone (§3.4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecoveryState {
    /// Members of the new ring.
    pub members: Vec<Pid>,
    /// `T`: members coming from the same old ring as this daemon.
    pub trans: BTreeSet<Pid>,
    /// `F`: senders trusted after a hole.
    pub trusted: BTreeSet<Pid>,
    /// Highest old seq delivered by a member of `T`.
    pub hd_max: Seq,
    /// Old packets still to re-broadcast.
    pub queue: VecDeque<DataPkt>,
    /// Representative only: whether the first regular token was sent.
    pub first_token_sent: bool,
}

/// Counters of ignored input. They are observability only: equal for `Eq`/`Hash`, so they never
/// split model-checker states.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Packets stamped with another ring that changed nothing.
    pub foreign_ignored: u64,
    /// Token copies rejected by the `token_seq` check.
    pub duplicate_tokens: u64,
    /// Packets from an older incarnation, or from this node under another incarnation.
    pub stale_incarnation: u64,
    /// Packets that do not fit the current phase (e.g. a token in Gather).
    pub out_of_phase: u64,
    /// Malformed or inconsistent packets (orphan fragments, commit tokens listing unknown members…).
    pub malformed: u64,
    /// Stale joins ignored while operational.
    pub stale_joins: u64,
    /// Packets re-broadcast on retransmission requests.
    pub retransmitted: u64,
    /// API misuse reported by [`RingError`].
    pub api_errors: u64,
    /// Regular tokens accepted (one per visit, so the rotation rate is its rate; observability).
    #[serde(default)]
    pub tokens: u64,
}

impl PartialEq for Stats {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Stats {}
impl std::hash::Hash for Stats {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// One daemon's ring protocol machine (§5).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Daemon {
    /// This daemon.
    pub me: Pid,
    /// Persisted record.
    pub durable: Durable,
    /// Membership state.
    pub phase: Phase,
    /// Last installed ring.
    pub reg_ring: RingId,
    /// Its members.
    pub reg_members: Vec<Pid>,
    /// Last ring attempted or installed.
    pub cur_ring: RingId,
    /// Its members.
    pub cur_members: Vec<Pid>,
    /// Ordering state of `cur_ring` (of `reg_ring` before the freeze).
    pub order: OrderState,
    /// Frozen old ring, from the first Commit entry to installation.
    pub old: Option<OldRing>,
    /// Last forwarded token (regular or commit) and its destination.
    pub last_forwarded: Option<(Pid, Packet)>,
    /// Client messages not yet broadcast.
    pub pending: VecDeque<Outgoing>,
    /// Gather: daemons wanted in the ring.
    pub proc_set: BTreeSet<Pid>,
    /// Gather: daemons considered failed.
    pub fail_set: BTreeSet<Pid>,
    /// Gather: daemons whose join matched ours.
    pub consensus: BTreeSet<Pid>,
    /// Highest ring seq seen in joins.
    pub max_ring_seq: u64,
    /// Commit set (§3.7).
    pub committed: BTreeSet<Pid>,
    /// Recovery computation.
    pub recovery: Option<RecoveryState>,
    /// Highest incarnation known per node.
    pub known_inc: BTreeMap<NodeId, Incarnation>,
    /// Partial messages being reassembled, per sender.
    pub reassembly: BTreeMap<Pid, Partial>,
    /// Counters of ignored input.
    pub stats: Stats,
}

pub(super) type Out = Vec<Command>;

impl Daemon {
    /// A daemon starting from its stored record (`None` on first start): the incarnation is
    /// incremented; nothing is sent until [`Event::Boot`].
    pub fn new(node: NodeId, stored: Option<Durable>) -> Self {
        let stored = stored.unwrap_or_default();
        let durable = Durable {
            incarnation: stored.incarnation + 1,
            ring_seq_high: stored.ring_seq_high,
        };
        let me = Pid::new(node, durable.incarnation);
        let boot_ring = RingId { seq: 0, rep: me };
        Self {
            me,
            durable,
            phase: Phase::Gather,
            reg_ring: boot_ring,
            reg_members: vec![me],
            cur_ring: boot_ring,
            cur_members: vec![me],
            order: OrderState::default(),
            old: None,
            last_forwarded: None,
            pending: VecDeque::new(),
            proc_set: BTreeSet::from([me]),
            fail_set: BTreeSet::new(),
            consensus: BTreeSet::new(),
            max_ring_seq: durable.ring_seq_high,
            committed: BTreeSet::from([me]),
            recovery: None,
            known_inc: BTreeMap::from([(node, durable.incarnation)]),
            reassembly: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    /// A daemon that has just installed `ring` with `members` after a boot formation in which
    /// nothing was sent: the state of [`Daemon::new`] + [`Event::Boot`] + one membership round.
    /// The caller delivers the corresponding `DeliverConfig` and, at the representative, the
    /// first token ([`Daemon::first_token`]). Used by tests and the model to skip the boot phase.
    pub fn formed(me: Pid, ring: RingId, members: Vec<Pid>) -> Self {
        let mut d = Self::new(
            me.node,
            Some(Durable {
                incarnation: me.inc - 1,
                ring_seq_high: ring.seq,
            }),
        );
        d.phase = Phase::Operational;
        d.reg_ring = ring;
        d.cur_ring = ring;
        d.reg_members.clone_from(&members);
        d.proc_set = members.iter().copied().collect();
        d.known_inc.extend(members.iter().map(|p| (p.node, p.inc)));
        d.cur_members = members;
        d.max_ring_seq = ring.seq;
        d
    }

    /// The first regular token of a ring (§3.3).
    pub fn first_token(ring: RingId, members: &[Pid]) -> Token {
        Token {
            ring,
            token_seq: 1,
            seq: 0,
            aru: 0,
            aru_id: None,
            rtr: BTreeSet::new(),
            fcc: 0,
            backlog: 0,
            rtx_pending: members.iter().copied().collect(),
            done: BTreeSet::new(),
            installed: None,
        }
    }

    /// The successor of this daemon on `cur_ring`.
    pub(super) fn successor(&self) -> Pid {
        let pos = self.cur_members.iter().position(|p| *p == self.me);
        match pos {
            Some(i) => self.cur_members[(i + 1) % self.cur_members.len()],
            None => self.me,
        }
    }

    /// Handle one event; returns the commands to carry out, in order.
    pub fn handle(&mut self, cfg: &RingConfig, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::Boot => {
                out.push(Command::Persist(self.durable));
                self.enter_gather(cfg, &mut out);
            }
            Event::Recv { from, pkt } => self.on_recv(cfg, from, pkt, &mut out),
            Event::Timer(kind) => self.on_timer(cfg, kind, &mut out),
            Event::Submit { id, service, payload } => {
                if let Err(e) = self.submit(id, service, payload) {
                    self.stats.api_errors += 1;
                    let _ = e;
                }
            }
        }
        out
    }

    /// Queue a client message (it is broadcast on a later token visit).
    pub fn submit(&mut self, id: MsgId, service: Service, payload: Vec<u8>) -> Result<(), RingError> {
        if id.origin != self.me {
            return Err(RingError::ForeignSubmit(id, self.me));
        }
        self.pending.push_back(Outgoing::new(id, service, payload));
        Ok(())
    }

    fn on_recv(&mut self, cfg: &RingConfig, from: Pid, pkt: Packet, out: &mut Out) {
        if !self.check_incarnation(cfg, from, out) {
            return;
        }
        match pkt {
            Packet::Token(t) => self.on_token(cfg, from, t, out),
            Packet::Data(p) => self.on_data(cfg, from, p, out),
            Packet::Join(j) => self.on_join_packet(cfg, from, j, out),
            Packet::Commit(ct) => self.on_commit_token(cfg, from, ct, out),
            Packet::Probe { ring } => {
                if ring == self.cur_ring {
                    self.stats.out_of_phase += 1;
                } else {
                    self.foreign(cfg, from, ring, out);
                }
            }
        }
    }

    /// §3.8: reject packets of older incarnations (and of this node under another one); a newer
    /// incarnation fails the older one. Returns whether to process the packet.
    fn check_incarnation(&mut self, cfg: &RingConfig, from: Pid, out: &mut Out) -> bool {
        if from == self.me {
            return true; // a token to oneself (singleton ring)
        }
        if from.node == self.me.node || !cfg.nodes.contains(&from.node) {
            self.stats.stale_incarnation += 1;
            return false;
        }
        match self.known_inc.get(&from.node).copied() {
            Some(k) if from.inc < k => {
                self.stats.stale_incarnation += 1;
                false
            }
            Some(k) if from.inc > k => {
                self.known_inc.insert(from.node, from.inc);
                let old = Pid::new(from.node, k);
                let involved = self.proc_set.contains(&old) || self.reg_members.contains(&old);
                if involved {
                    self.fail_set.insert(old);
                    if self.phase == Phase::Operational {
                        self.proc_set.insert(from);
                        self.enter_gather(cfg, out);
                    }
                }
                true
            }
            Some(_) => true,
            None => {
                self.known_inc.insert(from.node, from.inc);
                true
            }
        }
    }

    fn on_timer(&mut self, cfg: &RingConfig, kind: TimerKind, out: &mut Out) {
        match kind {
            TimerKind::TokenLoss => match self.phase {
                Phase::Gather => self.stats.out_of_phase += 1,
                _ => self.enter_gather(cfg, out),
            },
            TimerKind::TokenRetransmit => match (&self.last_forwarded, self.phase) {
                (Some((to, pkt)), Phase::Operational | Phase::Recovery | Phase::Commit) => {
                    out.push(Command::SendToken {
                        to: *to,
                        pkt: pkt.clone(),
                    });
                    out.push(Command::SetTimer {
                        kind,
                        after: cfg.token_retransmit,
                    });
                }
                _ => self.stats.out_of_phase += 1,
            },
            TimerKind::Join => {
                if self.phase == Phase::Gather {
                    out.push(Command::Broadcast(Packet::Join(self.join_msg())));
                    out.push(Command::SetTimer {
                        kind,
                        after: cfg.join,
                    });
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
            TimerKind::Consensus => {
                if self.phase == Phase::Gather {
                    self.on_consensus_timeout(cfg, out);
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
            TimerKind::MergeDetect => {
                if self.phase == Phase::Operational && self.reg_ring.rep == self.me && cfg.probes {
                    out.push(Command::Broadcast(Packet::Probe { ring: self.reg_ring }));
                    out.push(Command::SetTimer {
                        kind,
                        after: cfg.merge_detect,
                    });
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
        }
    }

    /// §3.1: a packet stamped with another ring.
    pub(super) fn foreign(&mut self, cfg: &RingConfig, from: Pid, ring: RingId, out: &mut Out) {
        match self.phase {
            Phase::Operational => {
                // A late packet of an older ring from a ring-mate is stale, as a stale join is.
                if self.reg_members.contains(&from) && ring.seq < self.cur_ring.seq {
                    self.stats.foreign_ignored += 1;
                    return;
                }
                self.proc_set.insert(from);
                self.enter_gather(cfg, out);
            }
            Phase::Gather => {
                if self.proc_set.contains(&from) || self.fail_set.contains(&from) {
                    self.stats.foreign_ignored += 1;
                } else {
                    self.proc_set.insert(from);
                    self.enter_gather(cfg, out);
                }
            }
            Phase::Commit | Phase::Recovery => self.stats.foreign_ignored += 1,
        }
    }

    fn fc_budget(&self, cfg: &RingConfig, t: &Token) -> u32 {
        let others = t.fcc.saturating_sub(self.order.sent_prev);
        cfg.max_messages.min(cfg.window_size.saturating_sub(others))
    }

    /// §2.2 `on_token`.
    fn on_token(&mut self, cfg: &RingConfig, from: Pid, mut t: Token, out: &mut Out) {
        if t.ring != self.cur_ring {
            return self.foreign(cfg, from, t.ring, out);
        }
        if !matches!(self.phase, Phase::Operational | Phase::Recovery) {
            self.stats.out_of_phase += 1;
            return;
        }
        let dup = if cfg.is(RingMutant::AcceptDuplicateToken) {
            t.token_seq < self.order.last_token_seq
        } else {
            t.token_seq <= self.order.last_token_seq
        };
        if dup {
            self.stats.duplicate_tokens += 1;
            return;
        }
        self.order.last_token_seq = t.token_seq;
        self.stats.tokens += 1;
        out.push(Command::CancelTimer(TimerKind::TokenRetransmit));
        out.push(Command::SetTimer {
            kind: TimerKind::TokenLoss,
            after: cfg.token_loss,
        });
        self.order.high_seq = self.order.high_seq.max(t.seq);
        let mut budget = self.fc_budget(cfg, &t);
        let mut sent_now = 0u32;
        // 1. retransmit what others request
        for s in t.rtr.clone() {
            if budget == 0 {
                break;
            }
            if let Some(p) = self.order.buffer.get(&s) {
                out.push(Command::Broadcast(Packet::Data(p.clone())));
                t.rtr.remove(&s);
                budget -= 1;
                sent_now += 1;
                self.stats.retransmitted += 1;
            }
        }
        // 2. new packets
        while budget > 0 && t.seq.saturating_sub(self.order.safe_line) < cfg.max_gap {
            let Some((service, body)) = self.next_body(cfg) else {
                break;
            };
            t.seq += 1;
            let p = DataPkt {
                ring: self.cur_ring,
                seq: t.seq,
                sender: self.me,
                round: t.token_seq,
                service,
                body,
            };
            self.order.insert(p.clone());
            out.push(Command::Broadcast(Packet::Data(p)));
            budget -= 1;
            sent_now += 1;
        }
        self.order.high_seq = self.order.high_seq.max(t.seq);
        let my_aru = self.order.my_aru;
        // 3. Totem aru rule
        if my_aru < t.aru || t.aru_id == Some(self.me) || t.aru_id.is_none() {
            t.aru = my_aru;
            t.aru_id = if my_aru == t.seq { None } else { Some(self.me) };
        }
        // 4. request own gaps
        for s in my_aru + 1..=t.seq {
            if t.rtr.len() >= cfg.max_rtr {
                break;
            }
            if !self.order.buffer.contains_key(&s) {
                t.rtr.insert(s);
            }
        }
        // 5. flow control
        let backlog_now = u32::try_from(self.backlog()).unwrap_or(u32::MAX);
        t.fcc = t
            .fcc
            .saturating_sub(self.order.sent_prev)
            .saturating_add(sent_now);
        t.backlog = t
            .backlog
            .saturating_sub(self.order.backlog_prev)
            .saturating_add(backlog_now);
        self.order.sent_prev = sent_now;
        self.order.backlog_prev = backlog_now;
        // 6. safe line
        let candidate = if cfg.is(RingMutant::SafeOneVisit) {
            t.aru
        } else {
            t.aru.min(self.order.aru_forwarded_prev)
        };
        self.order.safe_line = self.order.safe_line.max(candidate);
        self.order.aru_forwarded_prev = t.aru;
        // 7. Recovery bookkeeping
        if self.phase == Phase::Recovery {
            self.recovery_bookkeeping(&mut t);
        }
        t.token_seq += 1;
        let to = self.successor();
        let installed = t.installed;
        let pkt = Packet::Token(t);
        self.last_forwarded = Some((to, pkt.clone()));
        out.push(Command::SendToken { to, pkt });
        out.push(Command::SetTimer {
            kind: TimerKind::TokenRetransmit,
            after: cfg.token_retransmit,
        });
        // 8. deliveries after the SendToken
        match self.phase {
            Phase::Operational => {
                self.deliver_ready(cfg, out);
                self.order.discard_stable();
            }
            Phase::Recovery => {
                if let Some(i) = installed {
                    self.install(cfg, i, out);
                }
            }
            Phase::Gather | Phase::Commit => {}
        }
    }

    fn backlog(&self) -> usize {
        match (&self.phase, &self.recovery) {
            (Phase::Recovery, Some(r)) => r.queue.len(),
            _ => self.pending.len(),
        }
    }

    /// The body of the next new packet: a client packet in Operational, a recovery packet in
    /// Recovery.
    fn next_body(&mut self, cfg: &RingConfig) -> Option<(Service, Body)> {
        match self.phase {
            Phase::Operational => {
                packing::next_packet(&mut self.pending, cfg).map(|(s, c)| (s, Body::Chunks(c)))
            }
            Phase::Recovery => {
                let r = self.recovery.as_mut()?;
                let p = r.queue.pop_front()?;
                Some((p.service, Body::Recovered(Box::new(p))))
            }
            Phase::Gather | Phase::Commit => None,
        }
    }

    /// §2.2 `on_data`.
    fn on_data(&mut self, cfg: &RingConfig, from: Pid, p: DataPkt, out: &mut Out) {
        if p.ring != self.cur_ring {
            return self.foreign(cfg, from, p.ring, out);
        }
        let accepting = match self.phase {
            Phase::Operational | Phase::Recovery => true,
            Phase::Gather => self.old.is_none(), // before the freeze `cur_ring == reg_ring`
            Phase::Commit => false,
        };
        if !accepting {
            self.stats.out_of_phase += 1;
            return;
        }
        if !self.cur_members.contains(&p.sender) || p.seq == 0 {
            self.stats.malformed += 1;
            return;
        }
        if let (Phase::Recovery, Body::Recovered(inner)) = (self.phase, &p.body)
            && let Some(old) = self.old.as_mut()
            && inner.ring == old.ring
            && inner.seq > old.order.high_delivered
        {
            old.order.insert((**inner).clone());
        }
        if !self.order.insert(p) {
            return;
        }
        if self.phase == Phase::Operational {
            self.deliver_ready(cfg, out);
        }
    }

    /// §2.2 `deliver_ready`: contiguous delivery, Safe messages only below the safe line.
    pub(super) fn deliver_ready(&mut self, cfg: &RingConfig, out: &mut Out) {
        loop {
            let next = self.order.high_delivered + 1;
            let found = match self.order.buffer.get(&next) {
                Some(m) => Some(m),
                None if cfg.is(RingMutant::DeliverPastGap) => {
                    self.order.buffer.range(next..).next().map(|(_, m)| m)
                }
                None => None,
            };
            let Some(m) = found else { break };
            if m.service.is_safe() && m.seq > self.order.safe_line && !cfg.is(RingMutant::AgreedAsSafe) {
                break;
            }
            // The packet stays in the buffer (for retransmission) and is read in place: the
            // fields borrowed are disjoint, so nothing is cloned but the delivered bytes.
            self.order.high_delivered = m.seq;
            let config = ConfigId::Regular(self.cur_ring);
            deliver_chunks(&mut self.reassembly, &mut self.stats, m, config, out);
        }
    }

    /// Emit the client messages a delivered packet completes.
    pub(super) fn deliver_packet(&mut self, p: &DataPkt, config: ConfigId, out: &mut Out) {
        deliver_chunks(&mut self.reassembly, &mut self.stats, p, config, out);
    }
}

/// Feed a delivered packet's chunks to the reassembler and emit the messages they complete.
fn deliver_chunks(
    reassembly: &mut BTreeMap<Pid, Partial>,
    stats: &mut Stats,
    p: &DataPkt,
    config: ConfigId,
    out: &mut Out,
) {
    let Body::Chunks(chunks) = &p.body else {
        stats.malformed += 1; // a recovery packet is never delivered
        return;
    };
    for c in chunks {
        match packing::reassemble(reassembly, p.sender, c) {
            Reassembled::Complete(id, payload) => {
                out.push(Command::Deliver {
                    id,
                    sender: p.sender,
                    service: p.service,
                    config,
                    payload,
                });
            }
            Reassembled::Pending => {}
            Reassembled::Orphan => stats.malformed += 1,
        }
    }
}
