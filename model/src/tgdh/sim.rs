//! A deterministic in-memory TGDH group: views and messages delivered atomically, in agreed
//! order, to every member of the group, as a virtually synchronous group communication system
//! delivers them. Used by unit and property tests and by `sgc bench tgdh`.
//!
//! It counts rounds, messages and cryptographic work per event. A [`Meter`] wraps every call
//! into a member's state machine so that a driver outside the model can time them (the model
//! itself never reads a clock).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use super::MemberId;
use super::crypto::{CryptoError, Epoch, TgdhCrypto};
use super::member::{Command, Config, Cost, Event, EventOf, Member, MemberOf, Mutant, OutputOf, SignedOf};
use super::tree::Tree;

/// Wraps every call into a member's state machine (e.g. to time it).
pub trait Meter {
    /// Runs `f`, a step of `member` in phase `phase` of the current event.
    fn step<R>(&mut self, member: &MemberId, phase: u32, f: impl FnOnce() -> R) -> R;
}

/// A meter that measures nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMeter;

impl Meter for NoMeter {
    fn step<R>(&mut self, _member: &MemberId, _phase: u32, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Counts for one membership event or refresh, from its view to quiescence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventStats {
    /// Broadcast rounds (waves of messages, each caused by the previous one).
    pub rounds: u32,
    /// Messages broadcast.
    pub messages: u32,
    /// Exponentiations by all members.
    pub exps_total: u32,
    /// Exponentiations on the critical path: per phase, the busiest member, summed.
    pub exps_serial: u32,
    /// Signatures made by all members.
    pub signatures_total: u32,
    /// Signatures on the critical path.
    pub signatures_serial: u32,
    /// Verifications by all members.
    pub verifications_total: u32,
    /// Verifications on the critical path.
    pub verifications_serial: u32,
    /// Exponentiations per member.
    pub exps_by_member: BTreeMap<MemberId, u32>,
    /// Messages rejected by some member (should be zero in a correct run).
    pub rejected: u32,
}

/// A group of members sharing one agreed-order channel.
#[derive(Clone, Debug)]
pub struct SimGroup<C: TgdhCrypto> {
    /// Group name.
    pub group: String,
    /// A seeded bug, if any.
    pub mutant: Option<Mutant>,
    /// The members and their states.
    pub members: BTreeMap<MemberId, MemberOf<C>>,
    /// Messages ordered but not yet delivered, with the round they belong to.
    pub queue: VecDeque<(u32, SignedOf<C>)>,
    /// The last view identifier used.
    pub view: u64,
    entropy_seed: u64,
    per_phase: BTreeMap<u32, BTreeMap<MemberId, Cost>>,
    stats: EventStats,
}

impl<C: TgdhCrypto> SimGroup<C>
where
    C::Secret: Clone + Eq,
    C::Public: Clone + Eq + Serialize,
{
    /// An empty group.
    pub fn new(group: impl Into<String>, mutant: Option<Mutant>) -> Self {
        Self {
            group: group.into(),
            mutant,
            members: BTreeMap::new(),
            queue: VecDeque::new(),
            view: 0,
            entropy_seed: 0,
            per_phase: BTreeMap::new(),
            stats: EventStats::default(),
        }
    }

    /// A group of `members`, formed by joining them one by one.
    pub fn grown(crypto: &C, group: &str, members: &[MemberId]) -> Self {
        let mut g = Self::new(group, None);
        let mut present = BTreeSet::new();
        for m in members {
            present.insert(m.clone());
            g.install_view(crypto, present.clone(), &mut NoMeter);
            g.run(crypto, &mut NoMeter);
        }
        g
    }

    /// A group of `members` whose key tree (shaped exactly as joins shape it) is dealt
    /// directly, as a fixture for benchmarks: each member gets its share and its key path, and
    /// everyone holds every blinded key. Costs about `3n` exponentiations instead of running
    /// `n` joins.
    pub fn dealt(crypto: &C, group: &str, members: &[MemberId]) -> Result<Self, CryptoError> {
        let mut g = Self::new(group, None);
        g.view = 1;
        let Some((first, rest)) = members.split_first() else {
            return Ok(g);
        };
        let mut shape: Tree<C::Secret, C::Public> = Tree::leaf(first.clone(), None);
        for m in rest {
            let at = shape.insertion_point(0);
            shape.insert_at(&at, Tree::leaf(m.clone(), None));
        }
        let mut entropy = 0u64;
        fill_keys(crypto, &mut shape, true, &mut entropy)?;
        let view: BTreeSet<MemberId> = members.iter().cloned().collect();
        for m in members {
            let mut tree = shape.clone();
            let own = tree.path_to(m).unwrap_or_default();
            strip_keys_off_path(&mut tree, &own, &mut Vec::new());
            let state = Member {
                epoch: Some(Epoch { view: 1, refresh: 0 }),
                view: view.clone(),
                tree: Some(tree),
                share_nonce: 1,
                key_ready: true,
                ..Member::default()
            };
            g.members.insert(m.clone(), state);
        }
        g.entropy_seed = entropy;
        Ok(g)
    }

    fn config(&self, me: &MemberId) -> Config {
        Config {
            me: me.clone(),
            group: self.group.clone(),
            mutant: self.mutant,
        }
    }

    fn entropy(&mut self) -> [u8; 32] {
        self.entropy_seed += 1;
        let mut e = [0u8; 32];
        e[..8].copy_from_slice(&self.entropy_seed.to_be_bytes());
        e
    }

    fn apply(&mut self, who: &MemberId, phase: u32, out: OutputOf<C>) {
        let c = self
            .per_phase
            .entry(phase)
            .or_default()
            .entry(who.clone())
            .or_default();
        c.exps += out.cost.exps;
        c.signatures += out.cost.signatures;
        c.verifications += out.cost.verifications;
        for cmd in out.commands {
            match cmd {
                Command::Broadcast(m) => {
                    self.stats.messages += 1;
                    self.stats.rounds = self.stats.rounds.max(phase + 1);
                    self.queue.push_back((phase + 1, m));
                }
                Command::Rejected(_) => self.stats.rejected += 1,
                Command::KeyReady { .. } => {}
            }
        }
    }

    /// Installs a new view with `members` (new members start fresh, absent ones are dropped).
    /// Undelivered messages of the previous view are discarded, as a view change does.
    pub fn install_view(&mut self, crypto: &C, members: BTreeSet<MemberId>, meter: &mut impl Meter) {
        self.stats = EventStats::default();
        self.per_phase.clear();
        self.queue.clear();
        self.members.retain(|m, _| members.contains(m));
        self.view += 1;
        for m in &members {
            self.members.entry(m.clone()).or_default();
        }
        self.deliver_event(crypto, 0, Event::View { view: 0, members }, meter);
    }

    /// Merges `others` into this group under one new view (the view id continues from the
    /// largest).
    pub fn merge(&mut self, crypto: &C, others: Vec<Self>, meter: &mut impl Meter) {
        for o in others {
            self.view = self.view.max(o.view);
            self.members.extend(o.members);
        }
        let all: BTreeSet<MemberId> = self.members.keys().cloned().collect();
        self.install_view(crypto, all, meter);
    }

    /// Splits off `leaving` into a group of its own (which gets its own view) and installs the
    /// view of the rest here.
    pub fn split(&mut self, crypto: &C, leaving: &BTreeSet<MemberId>, meter: &mut impl Meter) -> Self {
        let mut other = Self::new(self.group.clone(), self.mutant);
        other.view = self.view;
        other.entropy_seed = self.entropy_seed + 1_000_000;
        for m in leaving {
            if let Some(s) = self.members.remove(m) {
                other.members.insert(m.clone(), s);
            }
        }
        let rest: BTreeSet<MemberId> = self.members.keys().cloned().collect();
        self.install_view(crypto, rest, meter);
        let theirs: BTreeSet<MemberId> = other.members.keys().cloned().collect();
        other.install_view(crypto, theirs, &mut NoMeter);
        other
    }

    /// Asks `who` to request a refresh and queues its request.
    pub fn request_refresh(&mut self, crypto: &C, who: &MemberId) {
        self.stats = EventStats::default();
        self.per_phase.clear();
        let cfg = self.config(who);
        let e = self.entropy();
        if let Some(state) = self.members.get_mut(who) {
            let out = state.handle(crypto, &cfg, Event::RequestRefresh, &e);
            // The request itself is not part of the key agreement's rounds.
            for cmd in out.commands {
                if let Command::Broadcast(m) = cmd {
                    self.queue.push_back((0, m));
                }
            }
        }
    }

    fn deliver_event(&mut self, crypto: &C, phase: u32, event: EventOf<C>, meter: &mut impl Meter) {
        let names: Vec<MemberId> = self.members.keys().cloned().collect();
        for who in names {
            let cfg = self.config(&who);
            let entropy = self.entropy();
            let mut ev = event.clone();
            if let Event::View { view, .. } = &mut ev {
                *view = self.view;
            }
            let Some(state) = self.members.get_mut(&who) else {
                continue;
            };
            let out = meter.step(&who, phase, || state.handle(crypto, &cfg, ev, &entropy));
            self.apply(&who, phase, out);
        }
    }

    /// Delivers queued messages until none is left; returns the counts of the event.
    pub fn run(&mut self, crypto: &C, meter: &mut impl Meter) -> EventStats {
        while let Some((round, msg)) = self.queue.pop_front() {
            self.deliver_event(crypto, round, Event::Deliver(msg), meter);
        }
        self.finish_stats()
    }

    fn finish_stats(&mut self) -> EventStats {
        let mut s = std::mem::take(&mut self.stats);
        for costs in self.per_phase.values() {
            s.exps_serial += costs.values().map(|c| c.exps).max().unwrap_or(0);
            s.signatures_serial += costs.values().map(|c| c.signatures).max().unwrap_or(0);
            s.verifications_serial += costs.values().map(|c| c.verifications).max().unwrap_or(0);
            for (m, c) in costs {
                s.exps_total += c.exps;
                s.signatures_total += c.signatures;
                s.verifications_total += c.verifications;
                *s.exps_by_member.entry(m.clone()).or_default() += c.exps;
            }
        }
        self.per_phase.clear();
        s
    }

    /// The session keys members hold for the current epoch (`None` for a member without one).
    pub fn root_keys(&self) -> Vec<Option<&C::Secret>> {
        self.members.values().map(|m| m.root_key()).collect()
    }

    /// Whether every member holds the same root key and the same public tree.
    pub fn agreed(&self) -> bool {
        let mut states = self.members.values();
        let Some(first) = states.next() else { return true };
        let (Some(key), Some(tree)) = (first.root_key(), first.tree.as_ref()) else {
            return false;
        };
        let public = tree.to_public();
        first.key_ready
            && states.all(|m| {
                m.key_ready
                    && m.root_key() == Some(key)
                    && m.tree.as_ref().map(|t| t.to_public()).as_ref() == Some(&public)
            })
    }

    /// Height of the agreed tree.
    pub fn height(&self) -> u32 {
        self.members
            .values()
            .next()
            .and_then(|m| m.tree.as_ref())
            .map_or(0, |t| t.height())
    }
}

/// Computes every key of `tree` from fresh shares (a dealer's view), and every blinded key but
/// the root's.
fn fill_keys<C: TgdhCrypto>(
    crypto: &C,
    tree: &mut Tree<C::Secret, C::Public>,
    is_root: bool,
    entropy: &mut u64,
) -> Result<(), CryptoError> {
    let key = match tree {
        Tree::Leaf { member, .. } => {
            *entropy += 1;
            let mut e = [0u8; 32];
            e[..8].copy_from_slice(&entropy.to_be_bytes());
            crypto.new_share(member, 1, &e)
        }
        Tree::Node { left, right, .. } => {
            fill_keys(crypto, left, false, entropy)?;
            fill_keys(crypto, right, false, entropy)?;
            match (left.key(), right.bkey()) {
                (Some(k), Some(b)) => crypto.combine(k, b)?,
                _ => return Err(CryptoError::NonContributory),
            }
        }
    };
    if !is_root {
        tree.set_bkey(Some(crypto.blind(&key)));
    }
    tree.set_key(Some(key));
    Ok(())
}

/// Removes every secret key that is not on `own` (a member keeps only its key path).
fn strip_keys_off_path<S, P>(tree: &mut Tree<S, P>, own: &[bool], here: &mut Vec<bool>) {
    if !own.starts_with(here) {
        tree.set_key(None);
    }
    if let Tree::Node { left, right, .. } = tree {
        here.push(false);
        strip_keys_off_path(left, own, here);
        here.pop();
        here.push(true);
        strip_keys_off_path(right, own, here);
        here.pop();
    }
}
