//! The Stateright model of the Three-Step per-destination rule ([`EpochRule`], `spec/protection.md`).
//!
//! `n` daemons in a ring, each with a signing key, install the servers' keys of epochs `1..=E`
//! in order, each at its own time (the real daemons install a key when the TGDH run that
//! produced it completes, at slightly different times). Traffic follows the ring: a daemon
//! sends packets only to its successor (as tokens go), so it hears only from its predecessor;
//! announcements go to every peer. The network reorders datagrams (any in-flight datagram may
//! arrive next) and loses none. Every datagram carries the epochs its sender holds and, if
//! sealed, its epoch.
//!
//! Properties:
//! - **PROT-HELD** (always): a daemon seals a packet to a peer only under an epoch that peer
//!   holds when it is sent;
//! - **PROT-OPENS** (always): every sealed datagram arrives under an epoch its receiver holds
//!   (no packet is lost to a key change);
//! - **PROT-CONVERGE** (always, on quiescent states): once every key is installed and the
//!   network is empty, every daemon seals to its successor under the newest epoch;
//! - reachability: a key change while sealed traffic flows, and an announcement overtaken by
//!   an older datagram.

use std::collections::BTreeSet;

use stateright::{Model, Property};

use super::rule::{EpochRule, Held, Policy, ProtectionMutant, Wire};
use crate::ring::{NodeId, Pid};

/// The model's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProtectionModel {
    /// Daemons in the ring (2 or 3).
    pub daemons: usize,
    /// Epochs each daemon installs, in order (`1..=epochs`).
    pub epochs: u64,
    /// Packets each daemon sends to its successor.
    pub sends: u8,
    /// A seeded bug.
    pub mutant: Option<ProtectionMutant>,
}

impl ProtectionModel {
    /// The bounded configuration `cargo test` and `sgc check protection` run: 2 daemons, 2
    /// epochs, one packet per daemon (every datagram may overtake every other).
    pub const fn bounded(mutant: Option<ProtectionMutant>) -> Self {
        Self {
            daemons: 2,
            epochs: 2,
            sends: 1,
            mutant,
        }
    }

    fn successor(&self, d: usize) -> usize {
        (d + 1) % self.daemons
    }
}

/// A datagram in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Datagram {
    /// Sender.
    pub from: usize,
    /// Receiver.
    pub to: usize,
    /// The epochs the sender held.
    pub held: Held,
    /// How it is protected (`Plain` never occurs: every daemon signs).
    pub wire: Wire,
    /// It carries a packet (else an announcement).
    pub packet: bool,
    /// Its sender's datagram number (to see reorderings).
    pub seq: u32,
}

/// Ghost state for the properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// A packet was sealed under an epoch its destination did not hold.
    pub sealed_unheld: bool,
    /// A sealed datagram arrived under an epoch its receiver did not hold.
    pub unopenable: bool,
    /// A sealed packet was sent while some daemon held a different newest epoch.
    pub sealed_during_change: bool,
    /// A datagram arrived after a later one of the same sender to the same receiver.
    pub overtaken: bool,
}

/// The model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Each daemon's rule.
    pub rules: Vec<EpochRule>,
    /// Datagrams in flight.
    pub net: BTreeSet<Datagram>,
    /// Packets each daemon may still send.
    pub sends_left: Vec<u8>,
    /// Datagrams each daemon sent.
    pub sent: Vec<u32>,
    /// Per (sender, receiver): the highest datagram number delivered.
    pub last_seen: Vec<Vec<Option<u32>>>,
    /// Ghost state.
    pub ghost: Ghost,
}

/// Actions of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Daemon `0` installs its next epoch.
    Install(usize),
    /// Daemon `0` sends a packet to its successor.
    Send(usize),
    /// Daemon `0` sends its queued announcements.
    Announce(usize),
    /// This datagram arrives.
    Deliver(Datagram),
}

fn node(d: usize) -> NodeId {
    NodeId::try_from(d).unwrap_or(NodeId::MAX)
}

fn pid(d: usize) -> Pid {
    Pid::new(node(d), 1)
}

impl ProtectionModel {
    fn emit(s: &mut State, from: usize, to: usize, wire: Wire, packet: bool) {
        let seq = s.sent[from];
        s.sent[from] += 1;
        s.net.insert(Datagram {
            from,
            to,
            held: s.rules[from].held,
            wire,
            packet,
            seq,
        });
    }

    /// Whether nothing is left to happen: every key installed, nothing queued or in flight.
    pub fn quiescent(&self, s: &State) -> bool {
        s.net.is_empty()
            && s.rules
                .iter()
                .all(|r| r.held.current == Some(self.epochs) && !r.has_announcements())
    }
}

impl Model for ProtectionModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let rules = (0..self.daemons)
            .map(|d| {
                let mut r = EpochRule::new(pid(d), Policy::Seal);
                r.signer = true;
                r.mutant = self.mutant;
                for p in 0..self.daemons {
                    r.add_peer(node(p));
                }
                r
            })
            .collect();
        vec![State {
            rules,
            net: BTreeSet::new(),
            sends_left: vec![self.sends; self.daemons],
            sent: vec![0; self.daemons],
            last_seen: vec![vec![None; self.daemons]; self.daemons],
            ghost: Ghost::default(),
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (d, r) in s.rules.iter().enumerate() {
            if r.held.current.unwrap_or(0) < self.epochs {
                actions.push(Action::Install(d));
            }
            if s.sends_left[d] > 0 {
                actions.push(Action::Send(d));
            }
            if r.has_announcements() {
                actions.push(Action::Announce(d));
            }
        }
        actions.extend(s.net.iter().cloned().map(Action::Deliver));
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Install(d) => {
                let next = s.rules[d].held.current.unwrap_or(0) + 1;
                s.rules[d].install(next);
            }
            Action::Send(d) => {
                s.sends_left[d] -= 1;
                let to = self.successor(d);
                let wire = s.rules[d].wire_for(node(to), false);
                if let Wire::Sealed(e) = wire {
                    if !s.rules[to].held.contains(e) {
                        s.ghost.sealed_unheld = true;
                    }
                    let newest: BTreeSet<_> = s.rules.iter().map(|r| r.held.current).collect();
                    if newest.len() > 1 {
                        s.ghost.sealed_during_change = true;
                    }
                }
                Self::emit(&mut s, d, to, wire, true);
            }
            Action::Announce(d) => {
                for to in s.rules[d].take_announcements() {
                    Self::emit(&mut s, d, usize::from(to), Wire::Signed, false);
                }
            }
            Action::Deliver(m) => {
                s.net.remove(&m);
                let seen = &mut s.last_seen[m.from][m.to];
                if seen.is_some_and(|x| x > m.seq) {
                    s.ghost.overtaken = true;
                }
                *seen = Some(seen.map_or(m.seq, |x| x.max(m.seq)));
                let sealed = match m.wire {
                    Wire::Sealed(e) => {
                        if !s.rules[m.to].held.contains(e) {
                            // dropped by the receiver: it cannot open it
                            s.ghost.unopenable = true;
                            return Some(s);
                        }
                        Some(e)
                    }
                    Wire::Signed | Wire::Plain => None,
                };
                s.rules[m.to].on_datagram(pid(m.from), m.held, sealed, m.packet);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::<Self>::always("PROT-HELD", |_, s| !s.ghost.sealed_unheld),
            Property::<Self>::always("PROT-OPENS", |_, s| !s.ghost.unopenable),
            Property::<Self>::always("PROT-CONVERGE", |m, s| !m.quiescent(s) || converged(m, s)),
            Property::<Self>::sometimes("reach: sealed traffic during a key change", |_, s| {
                s.ghost.sealed_during_change
            }),
            Property::<Self>::sometimes("reach: a datagram overtaken by a later one", |_, s| {
                s.ghost.overtaken
            }),
        ]
    }
}

/// Every daemon seals to its successor under the newest epoch.
pub fn converged(m: &ProtectionModel, s: &State) -> bool {
    (0..m.daemons).all(|d| s.rules[d].wire_for(node(m.successor(d)), false) == Wire::Sealed(m.epochs))
}

/// The outcome of the checker for `model`.
pub fn check(model: ProtectionModel, opts: crate::check::CheckOptions) -> crate::check::CheckReport {
    let mutant = model.mutant.map(ProtectionMutant::name);
    crate::check::run("protection", mutant, model, opts)
}
