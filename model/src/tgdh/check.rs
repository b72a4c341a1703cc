//! The Stateright model of TGDH and its audits.
//!
//! The group communication system is an oracle: members live in *components* (connected
//! partitions); each component has a view and one agreed-order queue; a message is delivered
//! to every member of its component at once (virtual synchrony), and a view change discards
//! what was not yet delivered (so runs are interrupted: cascaded events). Actions: deliver the
//! head of a queue, join, leave, partition a component, merge two, request a refresh, and an
//! adversary that replays an old message into a queue. Keys are symbolic terms
//! ([`super::symbolic`]); ghost state records every broadcast blinded key, every share each
//! principal ever held, the views each principal was in, and the agreed key of every epoch.
//!
//! Properties (IDs as in `spec/tgdh.md`): `tgdh-tree`, `tgdh-path-secrets`, `tgdh-agreement`,
//! `tgdh-liveness`, `tgdh-key-independence`, `tgdh-freshness`, `tgdh-backward-secrecy`,
//! `tgdh-forward-secrecy`, `tgdh-epoch-hygiene`, and sometimes-properties proving that each
//! scenario is reached.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use stateright::{Model, Property};

use super::MemberId;
use super::crypto::Epoch;
use super::member::{Command, Config, Event, Member, Mutant};
use super::message::{Body, Signed};
use super::symbolic::{Blind, Knowledge, SymSignature, Symbolic, Term};
use super::tree::{MAX_HEIGHT, Tree};

type SymMember = Member<Term, Blind>;
type SymSigned = Signed<Blind, SymSignature>;

/// Scenario kinds, for the sometimes-properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// A join completed.
    Join,
    /// A leave completed.
    Leave,
    /// A partition completed (on either side).
    Partition,
    /// A merge of two components completed.
    Merge,
    /// A refresh completed.
    Refresh,
    /// A key was agreed after a run had been interrupted by a view change.
    Cascade,
    /// A replayed message was rejected.
    ReplayRejected,
}

/// The model's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TgdhModel {
    /// Principals that may ever be members.
    pub universe: usize,
    /// Members (the first ones) of the initial group, formed by joins.
    pub initial: usize,
    /// Membership events and refresh requests allowed.
    pub max_events: u8,
    /// Adversarial replays allowed.
    pub max_replays: u8,
    /// A seeded bug.
    pub mutant: Option<Mutant>,
}

impl TgdhModel {
    /// The bounded configuration `cargo test` and `sgc check tgdh` run by default.
    pub fn bounded(members: usize, mutant: Option<Mutant>) -> Self {
        Self {
            universe: members,
            initial: members.saturating_sub(2).max(1),
            max_events: 3,
            max_replays: 1,
            mutant,
        }
    }
}

/// One connected component with its view and agreed-order queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Comp {
    /// View identifier.
    pub view: u64,
    /// Members (principal indices).
    pub members: BTreeSet<usize>,
    /// Ordered, undelivered messages (`true` marks an adversarial replay).
    pub queue: VecDeque<(bool, SymSigned)>,
    /// Only joins (since the component formed by joins) shaped its tree.
    pub joins_only: bool,
    /// The scenario that started the current run.
    pub scenario: Option<Scenario>,
    /// A run of this component was cut short by a view change.
    pub interrupted: bool,
    /// The last message delivered here (what the adversary replays).
    pub last_delivered: Option<SymSigned>,
}

/// An agreed key of one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EpochRecord {
    /// The epoch.
    pub epoch: Epoch,
    /// Its members.
    pub members: BTreeSet<usize>,
    /// Its group secret (root term).
    pub root: Term,
}

/// Ghost state: what the audits need, invisible to members.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Inner terms of every blinded key ever broadcast.
    pub public: BTreeSet<Term>,
    /// Shares each principal ever held.
    pub held: Vec<BTreeSet<Term>>,
    /// Views each principal was a member of.
    pub views: Vec<BTreeSet<u64>>,
    /// Agreed keys, in the order they were agreed.
    pub epochs: Vec<EpochRecord>,
    /// A member applied a message of another epoch.
    pub hygiene_violated: bool,
    /// Scenarios reached.
    pub reached: BTreeSet<Scenario>,
}

/// The model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Each principal's member state (`None` when not in the group) and its share counter.
    pub slots: Vec<(Option<SymMember>, u64)>,
    /// Components, sorted by their smallest member.
    pub comps: Vec<Comp>,
    /// Next view identifier.
    pub next_view: u64,
    /// Membership events and refreshes left.
    pub events_left: u8,
    /// Replays left.
    pub replays_left: u8,
    /// Ghost state.
    pub ghost: Ghost,
}

/// Actions of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver the head of component `0`'s queue.
    Deliver(usize),
    /// Principal `0` joins component `1`.
    Join(usize, usize),
    /// Principal `0` forms a group of its own.
    Start(usize),
    /// Principal leaves.
    Leave(usize),
    /// Component `0` splits: these principals go to a component of their own.
    Partition(usize, BTreeSet<usize>),
    /// Components `0` and `1` merge.
    Merge(usize, usize),
    /// The smallest member of the component requests a refresh.
    Refresh(usize),
    /// The adversary re-injects the component's last delivered message.
    Replay(usize),
}

fn name(i: usize) -> MemberId {
    MemberId::new(format!("m{i}"))
}

fn index(m: &MemberId) -> Option<usize> {
    m.0.strip_prefix('m')?.parse().ok()
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - (n.max(1) - 1).leading_zeros()
}

impl TgdhModel {
    fn config(&self, i: usize) -> Config {
        Config {
            me: name(i),
            group: "g".into(),
            mutant: self.mutant,
        }
    }

    /// Feeds `event` to principal `i`, applying broadcasts to its component's queue and
    /// updating the ghost state. Returns whether the input was rejected.
    fn step(&self, s: &mut State, comp: usize, i: usize, event: Event<Blind, SymSignature>) -> bool {
        let epoch_before = s.slots[i].0.as_ref().and_then(|m| m.epoch);
        let delivered_epoch = match &event {
            Event::Deliver(m) => Some(m.message.epoch),
            _ => None,
        };
        let slot = &mut s.slots[i];
        let Some(member) = slot.0.as_mut() else {
            return true;
        };
        let out = member.handle(&Symbolic, &self.config(i), event, &[0; 32]);
        slot.1 = member.share_nonce;
        if let Some(share) = member.share(&name(i)) {
            s.ghost.held[i].insert(share.clone());
        }
        let mut rejected = false;
        for cmd in out.commands {
            match cmd {
                Command::Broadcast(m) => {
                    publish(&mut s.ghost.public, &m.message.body);
                    s.comps[comp].queue.push_back((false, m));
                }
                Command::Rejected(_) => rejected = true,
                Command::KeyReady { .. } => {}
            }
        }
        if delivered_epoch.is_some_and(|got| !rejected && epoch_before != Some(got)) {
            s.ghost.hygiene_violated = true;
        }
        rejected
    }

    /// Installs a new view in component `c` (members already set).
    fn install(&self, s: &mut State, c: usize, scenario: Scenario) {
        let view = s.next_view;
        s.next_view += 1;
        let comp = &mut s.comps[c];
        let cut = !comp.queue.is_empty() || comp.scenario.is_some();
        comp.interrupted |= cut;
        comp.queue.clear();
        comp.view = view;
        comp.scenario = Some(scenario);
        let members: Vec<usize> = comp.members.iter().copied().collect();
        let names: BTreeSet<MemberId> = members.iter().map(|&i| name(i)).collect();
        for &i in &members {
            s.ghost.views[i].insert(view);
            if s.slots[i].0.is_none() {
                let mut fresh = Member::new();
                fresh.share_nonce = s.slots[i].1;
                s.slots[i].0 = Some(fresh);
            }
            self.step(
                s,
                c,
                i,
                Event::View {
                    view,
                    members: names.clone(),
                },
            );
        }
    }

    /// Records agreed keys of quiescent components.
    fn record(s: &mut State) {
        for comp in &mut s.comps {
            if !comp.queue.is_empty() {
                continue;
            }
            let mut states = comp.members.iter().filter_map(|&i| s.slots[i].0.as_ref());
            let Some(first) = states.next() else { continue };
            let (Some(root), Some(epoch)) = (first.root_key(), first.epoch) else {
                continue;
            };
            let agreed = first.key_ready
                && states.all(|m| m.key_ready && m.root_key() == Some(root) && m.epoch == Some(epoch));
            if !agreed
                || s.ghost
                    .epochs
                    .iter()
                    .any(|r| r.epoch == epoch && r.members == comp.members)
            {
                continue;
            }
            s.ghost.epochs.push(EpochRecord {
                epoch,
                members: comp.members.clone(),
                root: root.clone(),
            });
            if let Some(sc) = comp.scenario.take() {
                s.ghost.reached.insert(sc);
            }
            if std::mem::take(&mut comp.interrupted) {
                s.ghost.reached.insert(Scenario::Cascade);
            }
        }
    }

    fn initial_state(&self) -> State {
        let mut s = State {
            slots: vec![(None, 0); self.universe],
            comps: Vec::new(),
            next_view: 1,
            events_left: self.max_events,
            replays_left: self.max_replays,
            ghost: Ghost {
                held: vec![BTreeSet::new(); self.universe],
                views: vec![BTreeSet::new(); self.universe],
                ..Ghost::default()
            },
        };
        s.comps.push(Comp {
            view: 0,
            members: BTreeSet::from([0]),
            queue: VecDeque::new(),
            joins_only: true,
            scenario: None,
            interrupted: false,
            last_delivered: None,
        });
        self.install(&mut s, 0, Scenario::Join);
        for i in 1..self.initial.min(self.universe) {
            drain(self, &mut s, 0);
            s.comps[0].members.insert(i);
            self.install(&mut s, 0, Scenario::Join);
        }
        drain(self, &mut s, 0);
        Self::record(&mut s);
        s.ghost.reached.clear();
        s.comps[0].interrupted = false;
        s
    }

    fn deliver(&self, s: &mut State, c: usize) {
        let Some((replayed, msg)) = s.comps[c].queue.pop_front() else {
            return;
        };
        let members: Vec<usize> = s.comps[c].members.iter().copied().collect();
        let mut rejected = false;
        for i in members {
            rejected |= self.step(s, c, i, Event::Deliver(msg.clone()));
        }
        if replayed && rejected {
            s.ghost.reached.insert(Scenario::ReplayRejected);
        }
        if !replayed {
            s.comps[c].last_delivered = Some(msg);
        }
    }
}

fn drain(model: &TgdhModel, s: &mut State, c: usize) {
    while !s.comps[c].queue.is_empty() {
        model.deliver(s, c);
    }
}

fn publish(public: &mut BTreeSet<Term>, body: &Body<Blind>) {
    match body {
        Body::Tree(t) => public.extend(t.bkeys().into_iter().map(|(_, b)| b.0.clone())),
        Body::Keys(k) => public.extend(k.iter().map(|(_, b)| b.0.clone())),
        Body::Refresh => {}
    }
}

fn sort_comps(s: &mut State) {
    s.comps.retain(|c| !c.members.is_empty());
    s.comps.sort_by_key(|c| c.members.first().copied());
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

impl Model for TgdhModel {
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
        if s.events_left > 0 {
            let present: BTreeSet<usize> = s.comps.iter().flat_map(|c| c.members.iter().copied()).collect();
            for i in 0..self.universe {
                if present.contains(&i) {
                    actions.push(Action::Leave(i));
                } else if s.comps.is_empty() {
                    actions.push(Action::Start(i));
                } else {
                    actions.extend((0..s.comps.len()).map(|c| Action::Join(i, c)));
                }
            }
            for (c, comp) in s.comps.iter().enumerate() {
                actions.extend(
                    splits(&comp.members)
                        .into_iter()
                        .map(|side| Action::Partition(c, side)),
                );
                actions.push(Action::Refresh(c));
                actions.extend((c + 1..s.comps.len()).map(|d| Action::Merge(c, d)));
            }
        }
        if s.replays_left > 0 {
            for (c, comp) in s.comps.iter().enumerate() {
                if comp.last_delivered.is_some() {
                    actions.push(Action::Replay(c));
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Deliver(c) => self.deliver(&mut s, c),
            Action::Replay(c) => {
                s.replays_left -= 1;
                let msg = s.comps[c].last_delivered.clone()?;
                s.comps[c].queue.push_back((true, msg));
            }
            Action::Refresh(c) => {
                s.events_left -= 1;
                let first = *s.comps[c].members.first()?;
                s.comps[c].scenario = Some(Scenario::Refresh);
                self.step(&mut s, c, first, Event::RequestRefresh);
            }
            Action::Join(i, c) => {
                s.events_left -= 1;
                s.comps[c].members.insert(i);
                self.install(&mut s, c, Scenario::Join);
            }
            Action::Start(i) => {
                s.events_left -= 1;
                s.comps.push(Comp {
                    view: 0,
                    members: BTreeSet::from([i]),
                    queue: VecDeque::new(),
                    joins_only: true,
                    scenario: None,
                    interrupted: false,
                    last_delivered: None,
                });
                let c = s.comps.len() - 1;
                self.install(&mut s, c, Scenario::Join);
            }
            Action::Leave(i) => {
                s.events_left -= 1;
                s.slots[i].0 = None;
                let c = s.comps.iter().position(|c| c.members.contains(&i))?;
                s.comps[c].members.remove(&i);
                s.comps[c].joins_only = false;
                if !s.comps[c].members.is_empty() {
                    self.install(&mut s, c, Scenario::Leave);
                }
            }
            Action::Partition(c, side) => {
                s.events_left -= 1;
                let mut other = s.comps[c].clone();
                s.comps[c].members.retain(|i| !side.contains(i));
                s.comps[c].joins_only = false;
                other.members = side;
                other.joins_only = false;
                s.comps.push(other);
                let d = s.comps.len() - 1;
                self.install(&mut s, c, Scenario::Partition);
                self.install(&mut s, d, Scenario::Partition);
            }
            Action::Merge(c, d) => {
                s.events_left -= 1;
                let moved = s.comps[d].members.clone();
                s.comps[d].members.clear();
                s.comps[c].members.extend(moved);
                s.comps[c].joins_only = false;
                self.install(&mut s, c, Scenario::Merge);
            }
        }
        sort_comps(&mut s);
        Self::record(&mut s);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("tgdh-tree", |_, s| tree_invariants(s)),
            Property::<Self>::always("tgdh-path-secrets", |_, s| path_secrets(s)),
            Property::<Self>::always("tgdh-agreement", |_, s| agreement(s)),
            Property::<Self>::always("tgdh-liveness", |_, s| liveness(s)),
            Property::<Self>::always("tgdh-key-independence", |_, s| key_independence(&s.ghost)),
            Property::<Self>::always("tgdh-freshness", |_, s| freshness(&s.ghost)),
            Property::<Self>::always("tgdh-backward-secrecy", |_, s| backward_secrecy(&s.ghost)),
            Property::<Self>::always("tgdh-forward-secrecy", |_, s| forward_secrecy(&s.ghost)),
            Property::<Self>::always("tgdh-epoch-hygiene", |_, s| !s.ghost.hygiene_violated),
            Property::<Self>::sometimes("reach: join", |_, s| s.ghost.reached.contains(&Scenario::Join)),
            Property::<Self>::sometimes("reach: leave", |_, s| s.ghost.reached.contains(&Scenario::Leave)),
            Property::<Self>::sometimes("reach: partition", |_, s| {
                s.ghost.reached.contains(&Scenario::Partition)
            }),
            Property::<Self>::sometimes("reach: merge", |_, s| s.ghost.reached.contains(&Scenario::Merge)),
            Property::<Self>::sometimes("reach: refresh", |_, s| {
                s.ghost.reached.contains(&Scenario::Refresh)
            }),
            Property::<Self>::sometimes("reach: cascade", |_, s| {
                s.ghost.reached.contains(&Scenario::Cascade)
            }),
            Property::<Self>::sometimes("reach: replay rejected", |_, s| {
                s.ghost.reached.contains(&Scenario::ReplayRejected)
            }),
        ]
    }
}

fn members_of<'a>(s: &'a State, comp: &'a Comp) -> impl Iterator<Item = (usize, &'a SymMember)> + 'a {
    comp.members
        .iter()
        .filter_map(|&i| s.slots[i].0.as_ref().map(|m| (i, m)))
}

/// `tgdh-tree`: well-formed trees holding their owner; at quiescence the leaves are exactly
/// the view; a tree shaped only by joins has the minimal height.
pub fn tree_invariants(s: &State) -> bool {
    s.comps.iter().all(|comp| {
        members_of(s, comp).all(|(i, m)| {
            let Some(tree) = &m.tree else { return false };
            let leaves = tree.leaves();
            let well_formed = tree.height() <= MAX_HEIGHT
                && leaves.len() == tree.members().len()
                && tree.bkeys_downward_closed()
                && tree.path_to(&name(i)).is_some();
            let quiescent = comp.queue.is_empty();
            let view: BTreeSet<MemberId> = comp.members.iter().map(|&j| name(j)).collect();
            let exact = !quiescent || tree.members() == view;
            let minimal = !quiescent || !comp.joins_only || tree.height() == ceil_log2(view.len());
            well_formed && exact && minimal
        })
    })
}

/// `tgdh-path-secrets`: a member holds secret keys only on its own key path, always its share,
/// and every held key matches the public blinded key of its node.
pub fn path_secrets(s: &State) -> bool {
    s.comps.iter().all(|comp| {
        members_of(s, comp).all(|(i, m)| {
            let Some(tree) = &m.tree else { return false };
            let Some(own) = tree.path_to(&name(i)) else {
                return false;
            };
            tree.at(&own).and_then(Tree::key).is_some()
                && tree.key_paths().iter().all(|p| own.starts_with(p))
                && consistent(tree)
        })
    })
}

fn consistent(t: &Tree<Term, Blind>) -> bool {
    let ok = match (t.key(), t.bkey()) {
        (Some(k), Some(b)) => b.0 == *k,
        _ => true,
    };
    ok && match t {
        Tree::Leaf { .. } => true,
        Tree::Node { left, right, .. } => consistent(left) && consistent(right),
    }
}

/// `tgdh-agreement`: in a quiescent component all members hold the same public tree and
/// the same group secret.
pub fn agreement(s: &State) -> bool {
    s.comps.iter().filter(|c| c.queue.is_empty()).all(|comp| {
        let views: Vec<_> = members_of(s, comp)
            .map(|(_, m)| (m.tree.as_ref().map(Tree::to_public), m.root_key()))
            .collect();
        views.windows(2).all(|w| w[0] == w[1])
    })
}

/// `tgdh-liveness`: a quiescent component (nothing left to deliver) has its key: every member
/// of the view computed it. With no new events, every run therefore terminates with a key.
pub fn liveness(s: &State) -> bool {
    s.comps
        .iter()
        .filter(|c| c.queue.is_empty())
        .all(|comp| members_of(s, comp).all(|(_, m)| m.key_ready))
}

/// `tgdh-key-independence`: no epoch's key follows from all other epochs' keys and every
/// broadcast blinded key.
pub fn key_independence(g: &Ghost) -> bool {
    g.epochs.iter().enumerate().all(|(n, e)| {
        let others = g
            .epochs
            .iter()
            .enumerate()
            .filter(|(m, _)| *m != n)
            .map(|(_, r)| &r.root)
            .collect();
        !Knowledge {
            secrets: others,
            public: &g.public,
        }
        .derives(&e.root)
    })
}

/// `tgdh-freshness`: every epoch's key is new, and contains a share that no earlier key did.
pub fn freshness(g: &Ghost) -> bool {
    let mut seen = BTreeSet::new();
    for e in &g.epochs {
        let mut shares = BTreeSet::new();
        e.root.shares(&mut shares);
        if shares.is_subset(&seen) {
            return false;
        }
        seen.extend(shares);
    }
    let roots: BTreeSet<&Term> = g.epochs.iter().map(|e| &e.root).collect();
    roots.len() == g.epochs.len()
}

/// Whether the coalition of `principals` (all the shares they ever held, plus every broadcast
/// blinded key) derives the key of `e`.
fn coalition_derives(g: &Ghost, principals: impl Iterator<Item = usize>, e: &EpochRecord) -> bool {
    let secrets = principals.flat_map(|p| g.held[p].iter()).collect();
    Knowledge {
        secrets,
        public: &g.public,
    }
    .derives(&e.root)
}

/// `tgdh-backward-secrecy`: the members who joined after an epoch (all of them together)
/// cannot derive its key.
pub fn backward_secrecy(g: &Ghost) -> bool {
    g.epochs.iter().all(|e| {
        let later = (0..g.views.len())
            .filter(|p| !e.members.contains(p) && g.views[*p].iter().any(|&v| v > e.epoch.view));
        !coalition_derives(g, later, e)
    })
}

/// `tgdh-forward-secrecy`: the members who left before an epoch (all of them together)
/// cannot derive its key.
pub fn forward_secrecy(g: &Ghost) -> bool {
    g.epochs.iter().all(|e| {
        let earlier = (0..g.views.len())
            .filter(|p| !e.members.contains(p) && g.views[*p].iter().any(|&v| v < e.epoch.view));
        !coalition_derives(g, earlier, e)
    })
}

/// Which principal index a member name stands for (for reading counterexamples).
pub fn principal(m: &MemberId) -> Option<usize> {
    index(m)
}

/// The outcome of the checker for `model`.
pub fn check(model: TgdhModel, opts: crate::check::CheckOptions) -> crate::check::CheckReport {
    let mutant = model.mutant.map(Mutant::name);
    crate::check::run("tgdh", mutant, model, opts)
}

/// A map from property name to whether it holds, for compact assertions in tests.
pub fn verdicts(report: &crate::check::CheckReport) -> BTreeMap<String, bool> {
    report
        .properties
        .iter()
        .map(|p| (p.name.clone(), p.holds))
        .collect()
}
