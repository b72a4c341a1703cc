//! Membership: gather and consensus, the commit token, recovery of old-ring messages and
//! installation with the EVS delivery rule (ring-protocol.md §3).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::{RingConfig, RingMutant};
use super::machine::{Daemon, OldRing, OrderState, Out, Phase, RecoveryState};
use super::types::{
    Body, Command, CommitToken, ConfigId, ConfigKind, DataPkt, Entry, Join, Packet, Pid, RingId, TimerKind,
    Token,
};

impl Daemon {
    /// The join this daemon broadcasts.
    pub(super) fn join_msg(&self) -> Join {
        Join {
            proc_set: self.proc_set.clone(),
            fail_set: self.fail_set.clone(),
            ring_seq: self.cur_ring.seq,
        }
    }

    /// `active = proc_set \ fail_set`, sorted.
    pub fn active(&self) -> Vec<Pid> {
        self.proc_set.difference(&self.fail_set).copied().collect()
    }

    /// §3.2 `enter_gather` (and §3.7: leaving Commit or Recovery drops the new-ring state).
    pub(super) fn enter_gather(&mut self, cfg: &RingConfig, out: &mut Out) {
        if matches!(self.phase, Phase::Commit | Phase::Recovery) {
            self.order = OrderState::default();
            self.recovery = None;
        }
        self.last_forwarded = None;
        self.proc_set.insert(self.me);
        self.consensus = BTreeSet::from([self.me]);
        self.phase = Phase::Gather;
        out.push(Command::CancelTimer(TimerKind::TokenLoss));
        out.push(Command::CancelTimer(TimerKind::TokenRetransmit));
        out.push(Command::CancelTimer(TimerKind::MergeDetect));
        out.push(Command::Broadcast(Packet::Join(self.join_msg())));
        out.push(Command::SetTimer {
            kind: TimerKind::Join,
            after: cfg.join,
        });
        out.push(Command::SetTimer {
            kind: TimerKind::Consensus,
            after: cfg.consensus,
        });
    }

    /// A join arrives in any phase (§3.1, §3.7).
    pub(super) fn on_join_packet(&mut self, cfg: &RingConfig, from: Pid, j: Join, out: &mut Out) {
        match self.phase {
            Phase::Operational => {
                let stale = (self.reg_members.contains(&from) && j.ring_seq < self.cur_ring.seq)
                    || j.fail_set.contains(&self.me);
                if stale {
                    self.stats.stale_joins += 1;
                    return;
                }
                self.enter_gather(cfg, out);
                self.on_join(cfg, from, j, out);
            }
            Phase::Commit | Phase::Recovery => {
                if self.cur_members.contains(&from) && j.ring_seq >= self.cur_ring.seq {
                    self.enter_gather(cfg, out);
                    self.on_join(cfg, from, j, out);
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
            Phase::Gather => self.on_join(cfg, from, j, out),
        }
    }

    /// Drop pids of incarnations known to be dead.
    fn live_pids(&self, set: &BTreeSet<Pid>) -> BTreeSet<Pid> {
        set.iter()
            .copied()
            .filter(|p| self.known_inc.get(&p.node).is_none_or(|k| p.inc >= *k))
            .filter(|p| p.node != self.me.node || *p == self.me)
            .collect()
    }

    /// §3.2 `on_join`.
    fn on_join(&mut self, cfg: &RingConfig, s: Pid, j: Join, out: &mut Out) {
        self.max_ring_seq = self.max_ring_seq.max(j.ring_seq);
        if self.fail_set.contains(&s) {
            return;
        }
        let jp = self.live_pids(&j.proc_set);
        let jf = self.live_pids(&j.fail_set);
        if jp == self.proc_set && jf == self.fail_set {
            self.consensus.insert(s);
            self.check_consensus(cfg, out);
            return;
        }
        if jp.is_subset(&self.proc_set) && jf.is_subset(&self.fail_set) {
            return;
        }
        self.proc_set.extend(jp);
        if jf.contains(&self.me) {
            self.fail_set.insert(s);
        } else if self.reg_members.contains(&s) {
            self.fail_set.extend(jf);
        }
        self.enter_gather(cfg, out);
    }

    /// §3.2 `check_consensus`.
    fn check_consensus(&mut self, cfg: &RingConfig, out: &mut Out) {
        let active = self.active();
        if active.iter().all(|p| self.consensus.contains(p)) && active.first() == Some(&self.me) {
            self.create_commit_token(cfg, active, out);
        }
    }

    /// §3.2 consensus timeout: fail the silent daemons, restart Gather, form if alone.
    pub(super) fn on_consensus_timeout(&mut self, cfg: &RingConfig, out: &mut Out) {
        let silent: Vec<Pid> = self
            .active()
            .into_iter()
            .filter(|p| !self.consensus.contains(p))
            .collect();
        self.fail_set.extend(silent);
        self.enter_gather(cfg, out);
        self.check_consensus(cfg, out);
    }

    /// §3.3 Freeze: at the first Commit entry the ring state becomes the old ring.
    fn freeze(&mut self) {
        if self.old.is_none() {
            self.old = Some(OldRing {
                ring: self.reg_ring,
                members: self.reg_members.clone(),
                order: std::mem::take(&mut self.order),
            });
        } else {
            self.order = OrderState::default();
        }
    }

    fn my_entry(&self) -> Entry {
        let o = self.old.as_ref().map(|o| o.order.clone()).unwrap_or_default();
        Entry {
            old_ring: self.reg_ring,
            my_aru: o.my_aru,
            high_seq: o.high_seq,
            high_delivered: o.high_delivered,
            received: o.my_aru == o.high_seq,
            committed: self.committed.clone(),
        }
    }

    fn forward_commit(&mut self, cfg: &RingConfig, ct: CommitToken, out: &mut Out) {
        let to = self.successor();
        let pkt = Packet::Commit(ct);
        self.last_forwarded = Some((to, pkt.clone()));
        out.push(Command::SendToken { to, pkt });
        out.push(Command::SetTimer {
            kind: TimerKind::TokenRetransmit,
            after: cfg.token_retransmit,
        });
    }

    fn enter_commit(&mut self, cfg: &RingConfig, ring: RingId, members: Vec<Pid>, out: &mut Out) {
        self.durable.ring_seq_high = self.durable.ring_seq_high.max(ring.seq);
        self.max_ring_seq = self.max_ring_seq.max(ring.seq);
        out.push(Command::Persist(self.durable));
        self.freeze();
        self.cur_ring = ring;
        self.cur_members = members;
        self.phase = Phase::Commit;
        out.push(Command::CancelTimer(TimerKind::Join));
        out.push(Command::CancelTimer(TimerKind::Consensus));
        out.push(Command::SetTimer {
            kind: TimerKind::TokenLoss,
            after: cfg.token_loss,
        });
    }

    /// §3.3 the representative creates the commit token.
    fn create_commit_token(&mut self, cfg: &RingConfig, active: Vec<Pid>, out: &mut Out) {
        let seq = self
            .max_ring_seq
            .max(self.cur_ring.seq)
            .max(self.durable.ring_seq_high)
            + 1;
        let ring = RingId { seq, rep: self.me };
        self.enter_commit(cfg, ring, active.clone(), out);
        let entries = BTreeMap::from([(self.me, self.my_entry())]);
        let ct = CommitToken {
            ring,
            members: active,
            entries,
            rotation: 1,
        };
        self.forward_commit(cfg, ct, out);
    }

    /// §3.3 a commit token arrives.
    pub(super) fn on_commit_token(
        &mut self,
        cfg: &RingConfig,
        from: Pid,
        mut ct: CommitToken,
        out: &mut Out,
    ) {
        let complete = ct.members.iter().all(|m| ct.entries.contains_key(m));
        match self.phase {
            Phase::Gather => {
                let acceptable = ct.rotation == 1
                    && ct.members == self.active()
                    && ct.ring.seq > self.cur_ring.seq
                    && ct.members.first() == Some(&ct.ring.rep)
                    && !ct.entries.contains_key(&self.me);
                if acceptable {
                    self.enter_commit(cfg, ct.ring, ct.members.clone(), out);
                    ct.entries.insert(self.me, self.my_entry());
                    self.forward_commit(cfg, ct, out);
                } else if ct.ring == self.cur_ring {
                    self.stats.out_of_phase += 1;
                } else {
                    self.foreign(cfg, from, ct.ring, out);
                }
            }
            Phase::Commit => {
                if ct.ring != self.cur_ring {
                    self.stats.foreign_ignored += 1;
                } else if !complete {
                    self.stats.malformed += 1;
                } else if (self.me == ct.ring.rep && ct.rotation == 1)
                    || (self.me != ct.ring.rep && ct.rotation == 2)
                {
                    ct.rotation = 2;
                    out.push(Command::SetTimer {
                        kind: TimerKind::TokenLoss,
                        after: cfg.token_loss,
                    });
                    self.enter_recovery(cfg, &ct);
                    self.forward_commit(cfg, ct, out);
                } else {
                    self.stats.out_of_phase += 1;
                }
            }
            Phase::Recovery => {
                let first = self.me == ct.ring.rep
                    && ct.ring == self.cur_ring
                    && ct.rotation == 2
                    && self.recovery.as_ref().is_some_and(|r| !r.first_token_sent);
                if !first {
                    self.stats.out_of_phase += 1;
                    return;
                }
                if let Some(r) = self.recovery.as_mut() {
                    r.first_token_sent = true;
                }
                out.push(Command::SetTimer {
                    kind: TimerKind::TokenLoss,
                    after: cfg.token_loss,
                });
                let to = self.successor();
                let pkt = Packet::Token(Self::first_token(self.cur_ring, &self.cur_members));
                self.last_forwarded = Some((to, pkt.clone()));
                out.push(Command::SendToken { to, pkt });
                out.push(Command::SetTimer {
                    kind: TimerKind::TokenRetransmit,
                    after: cfg.token_retransmit,
                });
            }
            Phase::Operational => {
                if ct.ring == self.cur_ring {
                    self.stats.out_of_phase += 1;
                } else {
                    self.foreign(cfg, from, ct.ring, out);
                }
            }
        }
    }

    /// §3.4 entering Recovery: everything computed from the commit token alone.
    fn enter_recovery(&mut self, cfg: &RingConfig, ct: &CommitToken) {
        let reg = self.reg_ring;
        let trans: BTreeSet<Pid> = if cfg.is(RingMutant::TransByMembership) {
            ct.members
                .iter()
                .copied()
                .filter(|m| self.reg_members.contains(m) || *m == self.me)
                .collect()
        } else {
            ct.members
                .iter()
                .copied()
                .filter(|m| ct.entries.get(m).is_some_and(|e| e.old_ring == reg))
                .collect()
        };
        let entries: Vec<&Entry> = trans.iter().filter_map(|m| ct.entries.get(m)).collect();
        let mut trusted = trans.clone();
        for e in &entries {
            trusted.extend(e.committed.iter().copied());
        }
        let low = entries.iter().map(|e| e.my_aru).min().unwrap_or(0);
        let hd_max = entries.iter().map(|e| e.high_delivered).max().unwrap_or(0);
        let needed = entries.iter().any(|e| !e.received || e.my_aru != low);
        let old = self.old.as_ref().map(|o| &o.order);
        let from = match (cfg.is(RingMutant::RecoverFromOwnAru), old) {
            (true, Some(o)) => o.my_aru,
            _ => low,
        };
        let queue: VecDeque<DataPkt> = match old {
            Some(o) if needed => o
                .buffer
                .range(from + 1..)
                .map(|(_, p)| p.clone())
                .filter(|p| matches!(p.body, Body::Chunks(_)))
                .collect(),
            _ => VecDeque::new(),
        };
        self.order = OrderState::default();
        self.recovery = Some(RecoveryState {
            members: ct.members.clone(),
            trans,
            trusted,
            hd_max,
            queue,
            first_token_sent: false,
        });
        self.phase = Phase::Recovery;
    }

    /// §3.5 step 7 of `on_token` in Recovery.
    pub(super) fn recovery_bookkeeping(&mut self, t: &mut Token) {
        let Some(r) = self.recovery.as_ref() else { return };
        if r.queue.is_empty() {
            t.rtx_pending.remove(&self.me);
        }
        if t.rtx_pending.is_empty() && self.order.my_aru == t.seq && !t.done.contains(&self.me) {
            self.committed = r.trusted.clone();
            t.done.insert(self.me);
        }
        if r.members.iter().all(|m| t.done.contains(m)) && t.installed.is_none() {
            t.installed = Some(t.seq);
        }
    }

    /// §3.6 installation: finish the old regular configuration, deliver the transitional one,
    /// install the new ring.
    pub(super) fn install(&mut self, cfg: &RingConfig, installed: u64, out: &mut Out) {
        let Some(rec) = self.recovery.take() else { return };
        let old = self.old.take();
        let (r_id, n_id) = (self.reg_ring, self.cur_ring);
        let empty = BTreeMap::new();
        let (buffer, old_hd) = match &old {
            Some(o) => (&o.order.buffer, o.order.high_delivered),
            None => (&empty, 0),
        };
        let last = buffer.last_key_value().map_or(0, |(s, _)| *s);
        let mut s = old_hd + 1;
        // A. finish the old regular configuration
        if cfg.is(RingMutant::SkipTransitional) {
            for p in buffer.range(s..).map(|(_, p)| p) {
                self.deliver_packet(p, ConfigId::Regular(r_id), out);
            }
            s = last + 1;
        } else {
            while let Some(p) = buffer.get(&s) {
                if s > rec.hd_max && p.service.is_safe() {
                    break;
                }
                self.deliver_packet(p, ConfigId::Regular(r_id), out);
                s += 1;
            }
        }
        // B. the transitional configuration (none after a boot: the boot ring was never a ring)
        let trans_id = ConfigId::Transitional(n_id, r_id);
        if r_id.seq > 0 {
            out.push(Command::DeliverConfig {
                kind: ConfigKind::Transitional,
                id: trans_id,
                members: rec.trans.iter().copied().collect(),
            });
        }
        // C. the rest, in the transitional configuration, with the hole rule
        let mut hole = false;
        for seq in s..=last {
            match buffer.get(&seq) {
                None => hole = true,
                Some(p) if !hole || rec.trusted.contains(&p.sender) => self.deliver_packet(p, trans_id, out),
                Some(_) => {}
            }
        }
        // D. the regular configuration
        self.reassembly.clear();
        if let Some(h) = self.pending.front_mut() {
            h.restart();
        }
        out.push(Command::DeliverConfig {
            kind: ConfigKind::Regular,
            id: ConfigId::Regular(n_id),
            members: rec.members.clone(),
        });
        self.reg_ring = n_id;
        self.reg_members.clone_from(&rec.members);
        self.committed = BTreeSet::from([self.me]);
        self.proc_set = rec.members.iter().copied().collect();
        self.fail_set.clear();
        self.consensus.clear();
        self.phase = Phase::Operational;
        self.order.high_delivered = self.order.high_delivered.max(installed);
        if self.me == n_id.rep && cfg.probes {
            out.push(Command::SetTimer {
                kind: TimerKind::MergeDetect,
                after: cfg.merge_detect,
            });
        }
        self.deliver_ready(cfg, out);
        self.order.discard_stable();
    }
}
