//! The per-destination rule of Three-Step packet protection, as a sans-IO machine: which epochs
//! this daemon holds, what each peer announced holding, and from that, how a packet to each
//! destination is protected ([`EpochRule::wire_for`]); plus when to tell a peer what this daemon
//! holds (announcements).
//!
//! The daemon (`impl/daemon/src/protection.rs`) owns the cryptography (key ring, signatures,
//! replay windows) and the datagram formats; every decision below is taken here, and the
//! Stateright model ([`super::check`]) explores the same code.
//!
//! Under the `seal` policy (`three-step`) a packet to `dest` is
//! 1. *sealed* under the newest epoch this daemon holds **and** `dest` announced holding in its
//!    newest datagram (of its newest incarnation): a daemon switches to a new key only once
//!    the peer has shown it holds it, so a key change loses no packet;
//! 2. else *signed*, if this daemon has a signing key;
//! 3. else *plaintext*.
//!
//! Announcements: every datagram carries the epochs its sender holds; installing a key queues
//! an announcement to every peer (in a ring a daemon sends to one neighbour and hears from the
//! other, so without it a peer may never learn the new key is held); a packet from a peer that
//! holds this daemon's current epoch but did not seal under it is answered with an
//! announcement, once per epoch and again every [`ANNOUNCE_EVERY`] such packets (a lost
//! announcement).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ring::{NodeId, Pid};

/// An unaware peer is told again after this many of its packets (a lost announcement).
pub const ANNOUNCE_EVERY: u32 = 64;

/// The epochs a daemon holds keys of (announced in every protected datagram).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Held {
    /// The newest epoch held.
    pub current: Option<u64>,
    /// The epoch before it, still accepted.
    pub previous: Option<u64>,
}

impl Held {
    /// Whether `epoch` is held.
    pub fn contains(&self, epoch: u64) -> bool {
        self.current == Some(epoch) || self.previous == Some(epoch)
    }
}

/// How a datagram to one destination is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Wire {
    /// Plaintext (transport version 1).
    Plain,
    /// Sealed under the keys of this epoch.
    Sealed(u64),
    /// Signed with this daemon's Ed25519 key.
    Signed,
}

/// Which packets are protected how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Policy {
    /// `three-step`: every packet sealed when possible, else signed.
    #[default]
    Seal,
    /// `integrated-vs`, `optimized-evs`: join messages and commit tokens signed, the rest
    /// plaintext (client data is encrypted end to end).
    SignMembership,
}

/// Seeded bugs, each of which a property of [`super::check`] must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProtectionMutant {
    /// Seal under this daemon's newest epoch whatever the destination announced.
    SealNewest,
    /// Installing a key does not announce it to the peers.
    NoAnnounce,
    /// A reordered older datagram's announcement replaces a newer one.
    OlderOverwrites,
}

impl ProtectionMutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Self; 3] = [Self::SealNewest, Self::NoAnnounce, Self::OlderOverwrites];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SealNewest => "seal-newest",
            Self::NoAnnounce => "no-announce",
            Self::OlderOverwrites => "older-overwrites",
        }
    }

    /// What the seeded bug does.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SealNewest => "seal under the newest own epoch, whatever the peer announced",
            Self::NoAnnounce => "a newly installed key is not announced to the peers",
            Self::OlderOverwrites => "an older datagram's announcement undoes a newer one",
        }
    }

    /// The mutant with this command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One daemon's protection decisions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EpochRule {
    /// This daemon.
    pub me: Pid,
    /// The policy.
    pub policy: Policy,
    /// The epochs whose keys this daemon holds.
    pub held: Held,
    /// Whether this daemon signs (has a signing key).
    pub signer: bool,
    /// Peers to announce to (those whose verifying key is known; never this daemon).
    pub peers: BTreeSet<NodeId>,
    /// What each daemon announced in its newest datagram: incarnation and epochs.
    pub announced: BTreeMap<NodeId, (u32, Held)>,
    /// Per daemon: the epoch last announced to it on its demand, and its unaware packets since.
    pub told: BTreeMap<NodeId, (u64, u32)>,
    /// Daemons to send an announcement to.
    pub outbox: BTreeSet<NodeId>,
    /// A seeded bug (model checking only).
    pub mutant: Option<ProtectionMutant>,
}

impl EpochRule {
    /// The rule of daemon `me` under `policy`: no key, no signer, no peer yet.
    pub fn new(me: Pid, policy: Policy) -> Self {
        Self {
            me,
            policy,
            held: Held::default(),
            signer: false,
            peers: BTreeSet::new(),
            announced: BTreeMap::new(),
            told: BTreeMap::new(),
            outbox: BTreeSet::new(),
            mutant: None,
        }
    }

    fn is(&self, m: ProtectionMutant) -> bool {
        self.mutant == Some(m)
    }

    /// Daemon `node` is a peer (its verifying key is known).
    pub fn add_peer(&mut self, node: NodeId) {
        if node != self.me.node {
            self.peers.insert(node);
        }
    }

    /// The keys of a newer `epoch` are installed (the caller's key ring accepted them): the
    /// current one becomes the previous one, and every peer is to be told. An epoch not newer
    /// than the current one changes nothing and returns `false`.
    pub fn install(&mut self, epoch: u64) -> bool {
        if self.held.current.is_some_and(|c| epoch <= c) {
            return false;
        }
        self.held = Held {
            current: Some(epoch),
            previous: self.held.current,
        };
        if !self.is(ProtectionMutant::NoAnnounce) {
            self.outbox.extend(self.peers.iter().copied());
        }
        true
    }

    /// How a packet to `dest` is protected; `membership`: it is a join message or a commit
    /// token.
    pub fn wire_for(&self, dest: NodeId, membership: bool) -> Wire {
        let signed_or_plain = if self.signer { Wire::Signed } else { Wire::Plain };
        match self.policy {
            Policy::SignMembership if membership => signed_or_plain,
            Policy::SignMembership => Wire::Plain,
            Policy::Seal if self.is(ProtectionMutant::SealNewest) => {
                self.held.current.map_or(signed_or_plain, Wire::Sealed)
            }
            Policy::Seal => {
                let theirs = self.announced.get(&dest).map(|(_, h)| *h).unwrap_or_default();
                [self.held.current, self.held.previous]
                    .into_iter()
                    .flatten()
                    .find(|e| theirs.contains(*e))
                    .map_or(signed_or_plain, Wire::Sealed)
            }
        }
    }

    /// Whether a plaintext packet is accepted.
    pub fn accepts_plaintext(&self, membership: bool) -> bool {
        !self.signer || (self.policy == Policy::SignMembership && !membership)
    }

    /// An accepted datagram from `from` announced `held`; `sealed`: the epoch it was sealed
    /// under; `packet`: it carried a packet (not only an announcement).
    pub fn on_datagram(&mut self, from: Pid, held: Held, sealed: Option<u64>, packet: bool) {
        self.note(from, held);
        if packet {
            self.answer_if_unaware(from, held, sealed);
        }
    }

    /// A plaintext datagram from `from` (it announces nothing held).
    pub fn on_plaintext(&mut self, from: Pid) {
        self.note(from, Held::default());
    }

    /// Remember what `from` announced: a newer incarnation replaces the old one's announcement;
    /// within one incarnation epochs only grow, so a reordered older datagram does not undo a
    /// newer announcement.
    fn note(&mut self, from: Pid, held: Held) {
        let older_overwrites = self.is(ProtectionMutant::OlderOverwrites);
        let e = self.announced.entry(from.node).or_insert((from.inc, held));
        if from.inc > e.0 || (from.inc == e.0 && (held.current >= e.1.current || older_overwrites)) {
            *e = (from.inc, held);
        }
    }

    /// `from` holds this daemon's current epoch but did not seal under it: it does not know
    /// this daemon holds it. Queue an announcement to it: once per epoch, repeated every
    /// [`ANNOUNCE_EVERY`] such packets in case it was lost.
    fn answer_if_unaware(&mut self, from: Pid, held: Held, sealed: Option<u64>) {
        let Some(mine) = self.held.current else {
            return;
        };
        if self.policy != Policy::Seal || sealed == Some(mine) || !held.contains(mine) {
            return;
        }
        let told = self.told.entry(from.node).or_insert((mine, 0));
        if told.0 != mine {
            *told = (mine, 0);
        }
        if told.1.is_multiple_of(ANNOUNCE_EVERY) {
            self.outbox.insert(from.node);
        }
        told.1 = told.1.wrapping_add(1);
    }

    /// Whether announcements are waiting.
    pub fn has_announcements(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// The daemons to send an announcement to now.
    pub fn take_announcements(&mut self) -> BTreeSet<NodeId> {
        std::mem::take(&mut self.outbox)
    }
}
