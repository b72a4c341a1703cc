//! EVS properties (ring-protocol.md §4) as plain predicates over per-daemon observation logs.
//!
//! A [`History`] is what one daemon incarnation was observed to do: client submissions, the
//! first broadcast of its own messages (which fixes `reg(m)`), deliveries and configuration
//! installs, plus the set of message ids it ever held. The same predicates run on the model
//! checker's ghost state and, later, on logs of a live cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::machine::Daemon;
use super::types::{Body, Command, ConfigId, DataPkt, MsgId, Packet, Pid, RingId, Service};

/// One observation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LogEntry {
    /// A client submitted `id` to this daemon.
    Submitted {
        /// Message.
        id: MsgId,
    },
    /// This daemon first broadcast (a packet of) its message `id`, on `ring`: `reg(id) = ring`.
    Sent {
        /// Message.
        id: MsgId,
        /// The ring stamped on the packet.
        ring: RingId,
    },
    /// A delivery.
    Delivered {
        /// Message.
        id: MsgId,
        /// Service.
        service: Service,
        /// Configuration delivered in.
        config: ConfigId,
        /// Delivered in the same step as a configuration change (installation phase A or C).
        at_install: bool,
    },
    /// A configuration install.
    Installed {
        /// Configuration.
        config: ConfigId,
        /// Its members.
        members: Vec<Pid>,
    },
}

/// The observations of one daemon incarnation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct History {
    /// Who.
    pub pid: Pid,
    /// What it did, in order.
    pub log: Vec<LogEntry>,
    /// Every message id it ever held a packet of.
    pub received: BTreeSet<MsgId>,
}

/// The ids of the client messages (chunks) a data packet carries, recovered packets unwrapped.
pub fn chunk_ids(p: &DataPkt) -> Vec<MsgId> {
    match &p.body {
        Body::Chunks(c) => c.iter().map(|c| c.id).collect(),
        Body::Recovered(inner) => chunk_ids(inner),
    }
}

impl History {
    /// An empty history.
    pub const fn new(pid: Pid) -> Self {
        Self {
            pid,
            log: Vec::new(),
            received: BTreeSet::new(),
        }
    }

    /// Record the observable effects of one `handle` call's commands.
    pub fn observe(&mut self, cmds: &[Command]) {
        let at_install = cmds.iter().any(|c| matches!(c, Command::DeliverConfig { .. }));
        for c in cmds {
            match c {
                Command::Broadcast(Packet::Data(p)) if p.sender == self.pid => {
                    if let Body::Chunks(chunks) = &p.body {
                        for ch in chunks {
                            let seen = self
                                .log
                                .iter()
                                .any(|e| matches!(e, LogEntry::Sent { id, .. } if *id == ch.id));
                            if !seen {
                                self.log.push(LogEntry::Sent {
                                    id: ch.id,
                                    ring: p.ring,
                                });
                            }
                            self.received.insert(ch.id);
                        }
                    }
                }
                Command::Deliver {
                    id, service, config, ..
                } => {
                    self.log.push(LogEntry::Delivered {
                        id: *id,
                        service: *service,
                        config: *config,
                        at_install,
                    });
                }
                Command::DeliverConfig { id, members, .. } => {
                    self.log.push(LogEntry::Installed {
                        config: *id,
                        members: members.clone(),
                    });
                }
                _ => {}
            }
        }
    }

    /// Record every message the daemon now holds (ring buffer and frozen old buffer).
    pub fn observe_holdings(&mut self, d: &Daemon) {
        let bufs = std::iter::once(&d.order.buffer).chain(d.old.as_ref().map(|o| &o.order.buffer));
        for b in bufs {
            for p in b.values() {
                self.received.extend(chunk_ids(p));
            }
        }
    }

    fn delivered(&self) -> impl Iterator<Item = (MsgId, Service, ConfigId)> + '_ {
        self.log.iter().filter_map(|e| match e {
            LogEntry::Delivered {
                id, service, config, ..
            } => Some((*id, *service, *config)),
            _ => None,
        })
    }

    fn installs(&self) -> impl Iterator<Item = (ConfigId, &Vec<Pid>)> + '_ {
        self.log.iter().filter_map(|e| match e {
            LogEntry::Installed { config, members } => Some((*config, members)),
            _ => None,
        })
    }

    fn regulars(&self) -> Vec<RingId> {
        self.installs()
            .filter_map(|(c, _)| match c {
                ConfigId::Regular(r) => Some(r),
                ConfigId::Transitional(..) => None,
            })
            .collect()
    }

    fn has_delivered(&self, id: MsgId) -> bool {
        self.delivered().any(|(m, _, _)| m == id)
    }
}

/// `reg(m)` for every message: the ring of its first broadcast.
pub fn reg_of(hs: &[&History]) -> BTreeMap<MsgId, RingId> {
    let mut m = BTreeMap::new();
    for h in hs {
        for e in &h.log {
            if let LogEntry::Sent { id, ring } = e {
                m.entry(*id).or_insert(*ring);
            }
        }
    }
    m
}

/// Members of every installed configuration, as the first installer reported them.
fn members_of(hs: &[&History]) -> BTreeMap<ConfigId, Vec<Pid>> {
    let mut m = BTreeMap::new();
    for h in hs {
        for (c, mem) in h.installs() {
            m.entry(c).or_insert_with(|| mem.clone());
        }
    }
    m
}

/// EVS-NODUP: each message delivered at most once per daemon, and only if submitted.
pub fn evs_nodup(hs: &[&History]) -> bool {
    let submitted: BTreeSet<MsgId> = hs
        .iter()
        .flat_map(|h| h.log.iter())
        .filter_map(|e| match e {
            LogEntry::Submitted { id } => Some(*id),
            _ => None,
        })
        .collect();
    hs.iter().all(|h| {
        let mut seen = BTreeSet::new();
        h.delivered()
            .all(|(id, _, _)| submitted.contains(&id) && seen.insert(id))
    })
}

/// EVS-SELF (to be checked in quiescent states): every live daemon delivered what it submitted.
pub fn evs_self(hs: &[&History], live: &BTreeSet<Pid>) -> bool {
    hs.iter().filter(|h| live.contains(&h.pid)).all(|h| {
        h.log.iter().all(|e| match e {
            LogEntry::Submitted { id } => h.has_delivered(*id),
            _ => true,
        })
    })
}

/// EVS-CONFAGREE: installs of one id agree on members; the installer is a member; regular ids
/// increase at each daemon; each regular configuration but a daemon's first follows its
/// transitional `(N, R)`, `R` the daemon's previous regular one, with `T ⊆ members(R) ∩ members(N)`.
pub fn evs_confagree(hs: &[&History]) -> bool {
    let members = members_of(hs);
    for h in hs {
        let mut prev_reg: Option<RingId> = None;
        let mut prev: Option<(ConfigId, &Vec<Pid>)> = None;
        for (c, mem) in h.installs() {
            if members.get(&c) != Some(mem) || !mem.contains(&h.pid) {
                return false;
            }
            if let ConfigId::Regular(n) = c {
                if let Some(r) = prev_reg {
                    if n <= r {
                        return false;
                    }
                    let Some((ConfigId::Transitional(tn, tr), t)) = prev else {
                        return false;
                    };
                    if tn != n || tr != r {
                        return false;
                    }
                    let in_r = members.get(&ConfigId::Regular(r));
                    if !t
                        .iter()
                        .all(|p| mem.contains(p) && in_r.is_some_and(|m| m.contains(p)))
                    {
                        return false;
                    }
                }
                prev_reg = Some(n);
            }
            prev = Some((c, mem));
        }
    }
    true
}

/// EVS-TRANS: every member of `(N, R)` had `R` as its latest regular configuration, and every
/// message delivered in `(N, R)` has `reg(m) = R`.
pub fn evs_trans(hs: &[&History]) -> bool {
    let reg = reg_of(hs);
    let by_pid: BTreeMap<Pid, &History> = hs.iter().map(|h| (h.pid, *h)).collect();
    for h in hs {
        for (c, t) in h.installs() {
            let ConfigId::Transitional(n, r) = c else { continue };
            for q in t {
                let Some(qh) = by_pid.get(q) else { continue };
                let regs = qh.regulars();
                let Some(i) = regs.iter().position(|x| *x == r) else {
                    return false;
                };
                if regs.get(i + 1).is_some_and(|next| *next != n) {
                    return false;
                }
            }
        }
        for (id, _, c) in h.delivered() {
            if let ConfigId::Transitional(_, r) = c
                && reg.get(&id).is_some_and(|x| *x != r)
            {
                return false;
            }
        }
    }
    true
}

/// EVS-SAMEVIEW: every delivery of `m` is in `reg(m)` or a transitional configuration of it.
pub fn evs_sameview(hs: &[&History]) -> bool {
    let reg = reg_of(hs);
    hs.iter().all(|h| {
        h.delivered()
            .all(|(id, _, c)| reg.get(&id).is_none_or(|r| c.belongs_to() == *r))
    })
}

/// Per configuration: the set delivered in it and the configuration installed next.
fn per_config(h: &History) -> BTreeMap<ConfigId, (BTreeSet<MsgId>, Option<ConfigId>)> {
    let mut m: BTreeMap<ConfigId, (BTreeSet<MsgId>, Option<ConfigId>)> = BTreeMap::new();
    let mut cur: Option<ConfigId> = None;
    for e in &h.log {
        match e {
            LogEntry::Delivered { id, config, .. } => {
                m.entry(*config).or_default().0.insert(*id);
            }
            LogEntry::Installed { config, .. } => {
                if let Some(c) = cur {
                    m.entry(c).or_default().1 = Some(*config);
                }
                m.entry(*config).or_default();
                cur = Some(*config);
            }
            _ => {}
        }
    }
    m
}

/// EVS-VSYNC: daemons that install `c` and then the same next configuration delivered the same
/// set in `c`.
pub fn evs_vsync(hs: &[&History]) -> bool {
    let per: Vec<_> = hs.iter().map(|h| per_config(h)).collect();
    for (i, a) in per.iter().enumerate() {
        for b in &per[i + 1..] {
            for (c, (set_a, next_a)) in a {
                if let Some((set_b, next_b)) = b.get(c)
                    && next_a.is_some()
                    && next_a == next_b
                    && set_a != set_b
                {
                    return false;
                }
            }
        }
    }
    true
}

/// EVS-AGREED: one global order fits every daemon's delivery sequence (acyclic union of
/// consecutive-delivery edges), and in each regular configuration of two daemons' delivery
/// lists one is a prefix of the other.
pub fn evs_agreed(hs: &[&History]) -> bool {
    let mut succ: BTreeMap<MsgId, BTreeSet<MsgId>> = BTreeMap::new();
    let mut indeg: BTreeMap<MsgId, usize> = BTreeMap::new();
    for h in hs {
        let ids: Vec<MsgId> = h.delivered().map(|(id, _, _)| id).collect();
        for id in &ids {
            indeg.entry(*id).or_insert(0);
        }
        for w in ids.windows(2) {
            if succ.entry(w[0]).or_default().insert(w[1]) {
                *indeg.entry(w[1]).or_insert(0) += 1;
            }
        }
    }
    let mut ready: Vec<MsgId> = indeg.iter().filter(|(_, d)| **d == 0).map(|(k, _)| *k).collect();
    let mut seen = 0;
    while let Some(k) = ready.pop() {
        seen += 1;
        for n in succ.get(&k).into_iter().flatten() {
            if let Some(d) = indeg.get_mut(n) {
                *d -= 1;
                if *d == 0 {
                    ready.push(*n);
                }
            }
        }
    }
    if seen != indeg.len() {
        return false;
    }
    let mut lists: BTreeMap<ConfigId, Vec<Vec<MsgId>>> = BTreeMap::new();
    for h in hs {
        let mut mine: BTreeMap<ConfigId, Vec<MsgId>> = BTreeMap::new();
        for (id, _, c) in h.delivered() {
            if matches!(c, ConfigId::Regular(_)) {
                mine.entry(c).or_default().push(id);
            }
        }
        for (c, l) in mine {
            lists.entry(c).or_default().push(l);
        }
    }
    lists.values().all(|ls| {
        ls.iter().all(|a| {
            ls.iter().all(|b| {
                let k = a.len().min(b.len());
                a[..k] == b[..k]
            })
        })
    })
}

/// EVS-CAUSAL: if `m'` was sent after its sender sent or delivered `m`, both of one ring, then
/// whoever delivers `m'` delivered `m` before.
pub fn evs_causal(hs: &[&History]) -> bool {
    let reg = reg_of(hs);
    let mut preds: BTreeMap<MsgId, BTreeSet<MsgId>> = BTreeMap::new();
    for h in hs {
        let mut before: Vec<MsgId> = Vec::new();
        for e in &h.log {
            match e {
                LogEntry::Sent { id, ring } => {
                    let p: BTreeSet<MsgId> = before
                        .iter()
                        .copied()
                        .filter(|m| reg.get(m) == Some(ring) && m != id)
                        .collect();
                    preds.insert(*id, p);
                    before.push(*id);
                }
                LogEntry::Delivered { id, .. } => before.push(*id),
                _ => {}
            }
        }
    }
    hs.iter().all(|h| {
        let mut done: BTreeSet<MsgId> = BTreeSet::new();
        for (id, _, _) in h.delivered() {
            if preds.get(&id).is_some_and(|p| !p.is_subset(&done)) {
                return false;
            }
            done.insert(id);
        }
        true
    })
}

/// EVS-SAFE (first half, an invariant): when `p` delivers Safe `m` in `c`, every member of `c`
/// has received `m`.
pub fn evs_safe(hs: &[&History]) -> bool {
    let by_pid: BTreeMap<Pid, &History> = hs.iter().map(|h| (h.pid, *h)).collect();
    hs.iter().all(|h| {
        let members: BTreeMap<ConfigId, &Vec<Pid>> = h.installs().collect();
        h.delivered().filter(|(_, s, _)| s.is_safe()).all(|(id, _, c)| {
            members.get(&c).is_none_or(|mem| {
                mem.iter()
                    .all(|q| by_pid.get(q).is_none_or(|qh| qh.received.contains(&id)))
            })
        })
    })
}

/// EVS-SAFE (second half, in quiescent states): every live member of a configuration a Safe
/// message was delivered in delivered it too.
pub fn evs_safe_eventually(hs: &[&History], live: &BTreeSet<Pid>) -> bool {
    let by_pid: BTreeMap<Pid, &History> = hs.iter().map(|h| (h.pid, *h)).collect();
    hs.iter().all(|h| {
        let members: BTreeMap<ConfigId, &Vec<Pid>> = h.installs().collect();
        h.delivered().filter(|(_, s, _)| s.is_safe()).all(|(id, _, c)| {
            members.get(&c).is_none_or(|mem| {
                mem.iter()
                    .filter(|q| live.contains(q))
                    .all(|q| by_pid.get(q).is_none_or(|qh| qh.has_delivered(id)))
            })
        })
    })
}
