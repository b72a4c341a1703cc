//! The Servers' Agreement Engine and Group Keys Engine of one daemon, as one sans-IO machine.
//!
//! **Servers' Agreement Engine.** Every regular configuration of the daemon ring starts a TGDH
//! run among its daemons ([`crate::tgdh::member::Member`], unchanged: the daemons are its
//! members, the ring's sequence number is the TGDH view id). TGDH messages are ordered on the
//! ring (agreed service) like any other daemon message and come back as [`KeysIn::Tgdh`]; a
//! message delivered in another configuration (a transitional one, or an older ring) is refused,
//! so an interrupted run never yields a key. The run's session key is the servers' key
//! `K_servers`. The representative (smallest node) of the configuration also asks TGDH for a
//! refresh when the key is older than [`RefreshPolicy::max_age_ms`] (time is an input:
//! [`KeysIn::Tick`]) or protected more than [`RefreshPolicy::max_bytes`] ([`KeysIn::DataOut`]).
//!
//! **Group Keys Engine.** Outputs of the group layer ([`GroupOut`]) go through the engine on
//! their way to the sessions:
//! - from a configuration change (transitional or regular) until TGDH among the daemons of the
//!   new regular configuration has produced `K_servers`, every event for a session is **held**,
//!   in order (so a client never sees a membership after a message that followed it);
//!   everything else (ring sends, accept/refuse, kills, flow control) passes at once, or the
//!   group layer's own exchange could not proceed;
//! - when `K_servers` is ready the held events are released in order; each membership
//!   notification is released with its group key `K(g, v) = MAC(K_servers, label || g ||
//!   view_id)` and key id ([`KeysOut::Membership`]), where the view id is the [`KeyView`]
//!   (gid, ring of the servers' key, refresh count);
//! - in steady state a membership is keyed at once (one MAC);
//! - a refresh of `K_servers` without a configuration change is delivered to every member of
//!   every group at this daemon as an artificial membership change: same membership, a new view
//!   id (same gid, next refresh count) and a new key (`artificial: true`). Groups that did not
//!   change at a configuration change keep their key, as in the paper (the group keys engine
//!   "refreshes the key for each group that suffered changes in membership").
//!
//! **Daemon integration (done: `impl/daemon/src/keys.rs`, wired in `sessions.rs`; see
//! `docs/security.md`).** The daemon runs one engine per process
//! between `GroupLayer::handle` and the sessions: every `GroupOut` is passed in as
//! [`KeysIn::Group`]; [`KeysOut::Group`] is carried out as the group layer's output was before;
//! [`KeysOut::Membership`] is written to the session with the key and key id (the wire protocol
//! needs a key field and the key view in its membership message, and the client's JSON shows
//! `key_id` only); [`KeysOut::Broadcast`] is encoded and ordered on the ring (agreed) and
//! delivered back as [`KeysIn::Tgdh`]; ring configurations go to both machines, in the same
//! order; session closures are forwarded; a timer feeds [`KeysIn::Tick`] and the data path feeds
//! [`KeysIn::DataOut`]. With security off the daemon bypasses the engine.
//!
//! Seeded bugs ([`KeysMutant`]) are selectable at run time so that the model checker can show
//! that its properties catch them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::evs::{EvsPolicy, GroupKeys, MessageContext, MessageCrypto, StoredKey, Undecryptable, nonce_of};
use super::mac::{GroupKeyMac, key_input};
use super::{Grant, KeyView};
use crate::groups::{
    ClientEvent, DataMsg, GroupName, GroupOut, Membership, RingDelivery, SessionId, Target, UndecryptableMsg,
};
use crate::ring::{ConfigId, NodeId, RingId};
use crate::tgdh::MemberId;
use crate::tgdh::crypto::{Epoch, TgdhCrypto};
use crate::tgdh::error::TgdhError;
use crate::tgdh::member::{self, Command, Cost, Event, Member};
use crate::tgdh::message::Signed;
use crate::vs::MIN_APP_TYPE;

/// The TGDH group name of the daemons' run.
pub const SERVERS_GROUP: &str = "sgc servers";

/// The TGDH member name of a daemon (the name its signing key is registered under).
pub fn server_member(node: NodeId) -> MemberId {
    MemberId::new(format!("daemon{node}"))
}

/// Seeded bugs, each of which some checked property must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeysMutant {
    /// Client notifications are not held at a configuration change: they are keyed at once with
    /// the previous configuration's servers' key.
    ReleaseBeforeAgreement,
    /// The MAC input omits the view id: every view of a group gets the same key.
    KeyInputOmitsView,
    /// A member's self-leave does not end its tracking: it still gets the next (refresh) key.
    LeaverGetsNextKey,
    /// A refresh gives new keys under the old view id (no artificial membership change).
    RefreshKeepsView,
    /// Optimized EVS: a message under an old key is delivered as it is, not re-encrypted.
    EvsDeliversStale,
    /// Optimized EVS: a group's old key is forgotten as soon as the view changes.
    EvsForgetsOldKeys,
}

impl KeysMutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Self; 6] = [
        Self::ReleaseBeforeAgreement,
        Self::KeyInputOmitsView,
        Self::LeaverGetsNextKey,
        Self::RefreshKeepsView,
        Self::EvsDeliversStale,
        Self::EvsForgetsOldKeys,
    ];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ReleaseBeforeAgreement => "release-before-agreement",
            Self::KeyInputOmitsView => "key-input-omits-view",
            Self::LeaverGetsNextKey => "leaver-gets-next-key",
            Self::RefreshKeepsView => "refresh-keeps-view",
            Self::EvsDeliversStale => "evs-delivers-stale",
            Self::EvsForgetsOldKeys => "evs-forgets-old-keys",
        }
    }

    /// What the seeded bug does.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::ReleaseBeforeAgreement => {
                "memberships of a new configuration are keyed with the old servers' key, not held"
            }
            Self::KeyInputOmitsView => "K(g, v) = MAC(K_servers, g): the view id is left out",
            Self::LeaverGetsNextKey => "a member that left still gets the next refresh key",
            Self::RefreshKeepsView => "a refresh re-keys groups under their old view id",
            Self::EvsDeliversStale => {
                "Optimized EVS delivers a message under an old key without re-encrypting it"
            }
            Self::EvsForgetsOldKeys => "Optimized EVS drops a group's old key at every view change",
        }
    }

    /// The mutant with this command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// When the representative asks for a servers' key refresh without a membership change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefreshPolicy {
    /// Time-out: refresh a key this many milliseconds old (`None`: never).
    pub max_age_ms: Option<u64>,
    /// Data-out: refresh after this many bytes of client data (`None`: never).
    pub max_bytes: Option<u64>,
}

/// Static configuration of one daemon's engine (not part of its state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeysConfig {
    /// This daemon's node id.
    pub me: NodeId,
    /// The servers' key refresh policy.
    pub policy: RefreshPolicy,
    /// Optimized EVS (re-encrypt messages under old keys before delivery), with its old-key
    /// expiry; `None` in the other modes.
    pub evs: Option<EvsPolicy>,
    /// A seeded bug, for model checking only.
    pub mutant: Option<KeysMutant>,
}

impl KeysConfig {
    /// A correct configuration for daemon `me` with refresh policy `policy`.
    pub const fn new(me: NodeId, policy: RefreshPolicy) -> Self {
        Self {
            me,
            policy,
            evs: None,
            mutant: None,
        }
    }

    /// The configuration of this daemon's TGDH member.
    pub fn tgdh(&self) -> member::Config {
        member::Config::new(server_member(self.me), SERVERS_GROUP)
    }

    fn has(&self, m: KeysMutant) -> bool {
        self.mutant == Some(m)
    }
}

/// Why an input was refused. A refused input changes nothing; the driver logs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The TGDH machine refused a message or view.
    #[error("servers' TGDH: {0}")]
    Tgdh(#[from] TgdhError),
    /// A TGDH message delivered in another configuration than the current regular one (an
    /// interrupted run: it must not produce a key).
    #[error("TGDH message of configuration {got}, current is {current:?}")]
    OtherConfiguration {
        /// The configuration it was delivered in.
        got: ConfigId,
        /// The current regular ring.
        current: Option<RingId>,
    },
    /// A TGDH message whose signer is not the daemon that ordered it on the ring.
    #[error("TGDH message signed as {sender} ordered by daemon {origin}")]
    SenderMismatch {
        /// The ring origin.
        origin: NodeId,
        /// The claimed signer.
        sender: MemberId,
    },
    /// A configuration without this daemon, or a regular one with a transitional id.
    #[error("malformed configuration: {0}")]
    Configuration(&'static str),
    /// An ordered group-layer message: it belongs to the group layer, not here.
    #[error("ordered group-layer messages are not for the keys engine")]
    NotForKeys,
}

/// Inputs of the engine, in the daemon's order of events.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeysIn<P, G> {
    /// A ring configuration ([`RingDelivery::Regular`] or [`RingDelivery::Transitional`]), also
    /// given to the group layer (the engine first).
    Ring(RingDelivery),
    /// A TGDH message among the daemons, delivered by the ring.
    Tgdh {
        /// The daemon that ordered it.
        origin: NodeId,
        /// The configuration it was delivered in.
        config: ConfigId,
        /// The signed message.
        msg: Signed<P, G>,
    },
    /// An output of the group layer.
    Group(GroupOut),
    /// A session's connection ended: its held events and keys are dropped.
    SessionClosed(SessionId),
    /// The time now, in milliseconds of the daemon's monotonic clock.
    Tick {
        /// Milliseconds.
        now: u64,
    },
    /// Bytes of client data protected since the last report.
    DataOut {
        /// Bytes.
        bytes: u64,
    },
}

/// Outputs of the engine, to be carried out in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeysOut<P, G, K> {
    /// Order this TGDH message on the ring (agreed service), to every daemon of the configuration.
    Broadcast(Signed<P, G>),
    /// A group-layer output, to carry out unchanged.
    Group(GroupOut),
    /// A membership notification for a session, with its group key.
    Membership {
        /// The session.
        sess: SessionId,
        /// The membership (for an artificial change: the session's current one, unchanged).
        membership: Membership,
        /// The group key of the view.
        grant: Grant<K>,
        /// An artificial membership change (a servers' key refresh, same members).
        artificial: bool,
    },
    /// The servers' key of the current configuration is agreed (for logs and metrics).
    ServersKey {
        /// The regular ring.
        ring: RingId,
        /// The TGDH epoch (ring sequence, refresh count).
        epoch: Epoch,
        /// The key's public identifier.
        key_id: u64,
    },
    /// An input was refused and changed nothing.
    Rejected(KeysError),
}

/// Everything one input produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysOutput<P, G, K> {
    /// Commands, in order.
    pub commands: Vec<KeysOut<P, G, K>>,
    /// TGDH work (exponentiations, signatures, verifications).
    pub cost: Cost,
    /// MAC computations (one per group key).
    pub macs: u32,
    /// Messages re-encrypted under the receiver's current key (Optimized EVS).
    pub resealed: u32,
}

/// A session's current key of one group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Current<K> {
    /// The last membership the session received for the group.
    pub membership: Membership,
    /// Its key.
    pub grant: Grant<K>,
}

/// The state of one daemon's engine: `S`, `P` the TGDH secret and public types, `K` the
/// servers' (session) key, `GK` the client group key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeysEngine<S, P, K, GK> {
    /// The daemons' TGDH member.
    pub tgdh: Member<S, P>,
    /// The current regular ring (`None` before the first).
    pub ring: Option<RingId>,
    /// Its daemons.
    pub servers: BTreeSet<NodeId>,
    /// The servers' key of the current configuration, once agreed (`None`: holding).
    pub servers_key: Option<(Epoch, K)>,
    /// Session events held until the servers' key is agreed, in order.
    pub held: VecDeque<GroupOut>,
    /// Per session, per group: the current membership and key.
    pub tracked: BTreeMap<SessionId, BTreeMap<GroupName, Current<GK>>>,
    /// Optimized EVS: every group's current and old keys at this daemon.
    pub group_keys: BTreeMap<GroupName, GroupKeys<GK>>,
    /// The latest time seen.
    pub now: u64,
    /// When the current servers' key was agreed (by the latest time seen then).
    pub key_since: u64,
    /// Client data bytes since the current servers' key was agreed.
    pub bytes_since: u64,
    /// This daemon asked for a refresh of the current key.
    pub refresh_requested: bool,
}

impl<S, P, K, GK> Default for KeysEngine<S, P, K, GK> {
    fn default() -> Self {
        Self {
            tgdh: Member::default(),
            ring: None,
            servers: BTreeSet::new(),
            servers_key: None,
            held: VecDeque::new(),
            tracked: BTreeMap::new(),
            group_keys: BTreeMap::new(),
            now: 0,
            key_since: 0,
            bytes_since: 0,
            refresh_requested: false,
        }
    }
}

/// The providers, configuration, entropy and output of one step.
struct Step<'a, C: TgdhCrypto, M, G, GK> {
    crypto: &'a C,
    mac: &'a M,
    cfg: &'a KeysConfig,
    entropy: &'a [u8; 32],
    out: KeysOutput<<C as TgdhCrypto>::Public, G, GK>,
}

/// An engine for TGDH provider `C` and MAC provider `M`.
pub type EngineOf<C, M> = KeysEngine<
    <C as TgdhCrypto>::Secret,
    <C as TgdhCrypto>::Public,
    <C as TgdhCrypto>::SessionKey,
    <M as GroupKeyMac<<C as TgdhCrypto>::SessionKey>>::GroupKey,
>;
/// An input for provider `C`.
pub type InputOf<C> = KeysIn<<C as TgdhCrypto>::Public, <C as TgdhCrypto>::Signature>;
/// An output for providers `C` and `M`.
pub type OutputOf<C, M> = KeysOutput<
    <C as TgdhCrypto>::Public,
    <C as TgdhCrypto>::Signature,
    <M as GroupKeyMac<<C as TgdhCrypto>::SessionKey>>::GroupKey,
>;
/// A command for providers `C` and `M`.
pub type OutOf<C, M> = KeysOut<
    <C as TgdhCrypto>::Public,
    <C as TgdhCrypto>::Signature,
    <M as GroupKeyMac<<C as TgdhCrypto>::SessionKey>>::GroupKey,
>;

impl<S, P, K, GK> KeysEngine<S, P, K, GK>
where
    S: Clone + Eq,
    P: Clone + Eq + Serialize,
    K: Clone,
    GK: Clone,
{
    /// An engine that has seen no configuration yet (it holds every session event).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether session events are being held (no servers' key for the current configuration).
    pub const fn holding(&self) -> bool {
        self.servers_key.is_none()
    }

    /// The servers' key of the current configuration (for the data path of the Three-Step
    /// variant), once agreed.
    pub fn servers_key(&self) -> Option<&K> {
        self.servers_key.as_ref().map(|(_, k)| k)
    }

    /// Handles one input. `entropy` is fresh randomness (used only when TGDH draws a share).
    pub fn handle<C, M>(
        &mut self,
        crypto: &C,
        mac: &M,
        cfg: &KeysConfig,
        input: KeysIn<P, C::Signature>,
        entropy: &[u8; 32],
    ) -> KeysOutput<P, C::Signature, GK>
    where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let mut st = Step {
            crypto,
            mac,
            cfg,
            entropy,
            out: KeysOutput {
                commands: Vec::new(),
                cost: Cost::default(),
                macs: 0,
                resealed: 0,
            },
        };
        match input {
            KeysIn::Ring(delivery) => self.on_ring(&mut st, delivery),
            KeysIn::Tgdh { origin, config, msg } => self.on_tgdh(&mut st, origin, config, msg),
            KeysIn::Group(o) => self.on_group(&mut st, o),
            KeysIn::SessionClosed(sess) => {
                self.tracked.remove(&sess);
                self.held
                    .retain(|o| !matches!(o, GroupOut::ToSession { sess: s, .. } if *s == sess));
            }
            KeysIn::Tick { now } => {
                self.now = self.now.max(now);
                if let Some(policy) = cfg.evs {
                    for keys in self.group_keys.values_mut() {
                        keys.expire(self.now, &policy);
                    }
                }
                self.maybe_refresh(&mut st);
            }
            KeysIn::DataOut { bytes } => {
                self.bytes_since = self.bytes_since.saturating_add(bytes);
                self.maybe_refresh(&mut st);
            }
        }
        st.out
    }

    fn on_ring<C, M>(&mut self, st: &mut Step<'_, C, M, C::Signature, GK>, delivery: RingDelivery)
    where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let keep_key = st.cfg.has(KeysMutant::ReleaseBeforeAgreement);
        match delivery {
            RingDelivery::Regular {
                id: ConfigId::Regular(ring),
                members,
            } => {
                if !members.contains(&st.cfg.me) {
                    return reject(st, KeysError::Configuration("this daemon is not a member"));
                }
                self.ring = Some(ring);
                self.servers = members.iter().copied().collect();
                if !keep_key {
                    self.servers_key = None;
                }
                self.refresh_requested = false;
                let view = Event::View {
                    view: ring.seq,
                    members: members.iter().map(|&n| server_member(n)).collect(),
                };
                self.run_tgdh(st, view);
            }
            RingDelivery::Regular { .. } => {
                reject(
                    st,
                    KeysError::Configuration("a regular configuration with a transitional id"),
                );
            }
            RingDelivery::Transitional { members, .. } => {
                if !members.contains(&st.cfg.me) {
                    return reject(st, KeysError::Configuration("this daemon is not a member"));
                }
                if !keep_key {
                    self.servers_key = None;
                }
            }
            RingDelivery::Message { .. } => reject(st, KeysError::NotForKeys),
        }
    }

    fn on_tgdh<C, M>(
        &mut self,
        st: &mut Step<'_, C, M, C::Signature, GK>,
        origin: NodeId,
        config: ConfigId,
        msg: Signed<P, C::Signature>,
    ) where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        if self.ring.map(ConfigId::Regular) != Some(config) {
            return reject(
                st,
                KeysError::OtherConfiguration {
                    got: config,
                    current: self.ring,
                },
            );
        }
        if msg.message.sender != server_member(origin) {
            return reject(
                st,
                KeysError::SenderMismatch {
                    origin,
                    sender: msg.message.sender,
                },
            );
        }
        self.run_tgdh(st, Event::Deliver(msg));
    }

    /// Feeds the daemons' TGDH member and carries out its commands.
    fn run_tgdh<C, M>(&mut self, st: &mut Step<'_, C, M, C::Signature, GK>, event: member::EventOf<C>)
    where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let out = self.tgdh.handle(st.crypto, &st.cfg.tgdh(), event, st.entropy);
        st.out.cost.exps += out.cost.exps;
        st.out.cost.signatures += out.cost.signatures;
        st.out.cost.verifications += out.cost.verifications;
        for cmd in out.commands {
            match cmd {
                Command::Broadcast(m) => st.out.commands.push(KeysOut::Broadcast(m)),
                Command::Rejected(e) => reject(st, e.into()),
                Command::KeyReady { epoch, key, key_id } => self.on_servers_key(st, epoch, key, key_id),
            }
        }
    }

    /// The servers' key is agreed: release what was held, and re-key every group after a refresh.
    fn on_servers_key<C, M>(
        &mut self,
        st: &mut Step<'_, C, M, C::Signature, GK>,
        epoch: Epoch,
        key: K,
        key_id: u64,
    ) where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let Some(ring) = self.ring else { return };
        self.servers_key = Some((epoch, key));
        self.key_since = self.now;
        self.bytes_since = 0;
        self.refresh_requested = false;
        st.out.commands.push(KeysOut::ServersKey { ring, epoch, key_id });
        for o in std::mem::take(&mut self.held) {
            self.on_group(st, o);
        }
        if epoch.refresh == 0 {
            return;
        }
        let mut tracked = std::mem::take(&mut self.tracked);
        for (&sess, groups) in &mut tracked {
            for (group, cur) in groups.iter_mut() {
                if cur.grant.view.ring == ring && cur.grant.view.refresh == epoch.refresh {
                    continue;
                }
                let view = if st.cfg.has(KeysMutant::RefreshKeepsView) {
                    cur.grant.view
                } else {
                    KeyView {
                        gid: cur.membership.gid,
                        ring,
                        refresh: epoch.refresh,
                    }
                };
                let Some(grant) = self.derive(st, group, view) else {
                    continue;
                };
                cur.grant = grant.clone();
                st.out.commands.push(KeysOut::Membership {
                    sess,
                    membership: cur.membership.clone(),
                    grant,
                    artificial: true,
                });
            }
        }
        self.tracked = tracked;
        let Some(policy) = st.cfg.evs else { return };
        let groups: Vec<(GroupName, KeyView)> = self
            .group_keys
            .iter()
            .map(|(g, k)| (g.clone(), k.current.view))
            .collect();
        for (group, old) in groups {
            if old.ring == ring && old.refresh == epoch.refresh {
                continue;
            }
            let view = if st.cfg.has(KeysMutant::RefreshKeepsView) {
                old
            } else {
                KeyView {
                    gid: old.gid,
                    ring,
                    refresh: epoch.refresh,
                }
            };
            self.store_view(st, &policy, group, view);
        }
    }

    /// Optimized EVS: `view` is the group's current view at this daemon; its key becomes the
    /// current one of the store.
    fn store_view<C, M>(
        &mut self,
        st: &mut Step<'_, C, M, C::Signature, GK>,
        policy: &EvsPolicy,
        group: GroupName,
        view: KeyView,
    ) where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let Some(grant) = self.derive(st, &group, view) else {
            return;
        };
        let next = StoredKey {
            view,
            key_id: grant.key_id,
            key: grant.key,
            last_used: self.now,
        };
        let forget = st.cfg.has(KeysMutant::EvsForgetsOldKeys);
        match self.group_keys.get_mut(&group) {
            Some(keys) => keys.install(next, self.now, policy, forget),
            None => {
                self.group_keys.insert(group, GroupKeys::new(next));
            }
        }
    }

    /// Optimized EVS's fix of one data message for session `sess`: delivered as it is under
    /// the session's current key, re-encrypted from a stored old key, or reported.
    fn fix_message<C, M>(
        &mut self,
        st: &mut Step<'_, C, M, C::Signature, GK>,
        policy: &EvsPolicy,
        sess: SessionId,
        mut d: DataMsg,
    ) where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let deliver = |st: &mut Step<'_, C, M, C::Signature, GK>, d: DataMsg| {
            st.out.commands.push(KeysOut::Group(GroupOut::ToSession {
                sess,
                ev: ClientEvent::Data(d),
            }));
        };
        // flush-layer control messages, private and multi-group messages, and sessions
        // without a key of the group pass as they are
        let group = match d.targets.as_slice() {
            [Target::Group(g)] if d.mess_type >= MIN_APP_TYPE => g.clone(),
            _ => return deliver(st, d),
        };
        let Some(cur) = self.tracked.get(&sess).and_then(|m| m.get(&group)) else {
            return deliver(st, d);
        };
        let report = |st: &mut Step<'_, C, M, C::Signature, GK>, d: DataMsg, key_id, reason| {
            let ev = ClientEvent::Undecryptable(UndecryptableMsg {
                group: group.clone(),
                sender: d.sender,
                mess_type: d.mess_type,
                key_id,
                reason,
            });
            st.out
                .commands
                .push(KeysOut::Group(GroupOut::ToSession { sess, ev }));
        };
        let Some(id) = st.mac.message_key_id(&d.body) else {
            return report(st, d, None, Undecryptable::NotEncrypted);
        };
        if id == cur.grant.key_id || st.cfg.has(KeysMutant::EvsDeliversStale) {
            return deliver(st, d);
        }
        let (cur_key, cur_id) = (cur.grant.key.clone(), cur.grant.key_id);
        let now = self.now;
        let Some(old) = self
            .group_keys
            .get_mut(&group)
            .and_then(|k| k.find(id, now, policy))
        else {
            return report(st, d, Some(id), Undecryptable::KeyNotHeld);
        };
        let ctx = MessageContext {
            group: &group,
            sender: &d.sender,
            mess_type: d.mess_type,
        };
        match st.mac.reseal(
            (&old.key, id),
            (&cur_key, cur_id),
            &ctx,
            &d.body,
            nonce_of(st.entropy),
        ) {
            Ok(body) => {
                d.body = body;
                st.out.resealed += 1;
                deliver(st, d);
            }
            Err(reason) => report(st, d, Some(id), reason),
        }
    }

    /// `K(g, v)` under the current servers' key, with its key id.
    fn derive<C, M>(
        &self,
        st: &mut Step<'_, C, M, C::Signature, GK>,
        group: &GroupName,
        view: KeyView,
    ) -> Option<Grant<GK>>
    where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let (_, servers) = self.servers_key.as_ref()?;
        let omit = st.cfg.has(KeysMutant::KeyInputOmitsView);
        let input = key_input(group, (!omit).then_some(&view));
        let key = st.mac.group_key(servers, &input);
        st.out.macs += 1;
        let key_id = st.mac.key_id(&key);
        Some(Grant { view, key, key_id })
    }

    fn on_group<C, M>(&mut self, st: &mut Step<'_, C, M, C::Signature, GK>, o: GroupOut)
    where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let (sess, ev) = match o {
            GroupOut::ToSession { sess, ev } => (sess, ev),
            GroupOut::Kill { sess, why } => {
                self.tracked.remove(&sess);
                return st.out.commands.push(KeysOut::Group(GroupOut::Kill { sess, why }));
            }
            GroupOut::View { group, gid } => {
                let Some(policy) = st.cfg.evs else { return };
                let (Some(ring), Some((epoch, _))) = (self.ring, self.servers_key.as_ref()) else {
                    return self.held.push_back(GroupOut::View { group, gid });
                };
                let view = KeyView {
                    gid,
                    ring,
                    refresh: epoch.refresh,
                };
                return self.store_view(st, &policy, group, view);
            }
            other => return st.out.commands.push(KeysOut::Group(other)),
        };
        let (Some(ring), Some((epoch, _))) = (self.ring, self.servers_key.as_ref()) else {
            return self.held.push_back(GroupOut::ToSession { sess, ev });
        };
        match ev {
            ClientEvent::Membership(membership) => {
                let view = KeyView {
                    gid: membership.gid,
                    ring,
                    refresh: epoch.refresh,
                };
                let Some(grant) = self.derive(st, &membership.group, view) else {
                    return;
                };
                self.tracked.entry(sess).or_default().insert(
                    membership.group.clone(),
                    Current {
                        membership: membership.clone(),
                        grant: grant.clone(),
                    },
                );
                st.out.commands.push(KeysOut::Membership {
                    sess,
                    membership,
                    grant,
                    artificial: false,
                });
            }
            ClientEvent::SelfLeave(group) => {
                if !st.cfg.has(KeysMutant::LeaverGetsNextKey)
                    && let Some(groups) = self.tracked.get_mut(&sess)
                {
                    groups.remove(&group);
                    if groups.is_empty() {
                        self.tracked.remove(&sess);
                    }
                }
                st.out.commands.push(KeysOut::Group(GroupOut::ToSession {
                    sess,
                    ev: ClientEvent::SelfLeave(group),
                }));
            }
            ClientEvent::Data(d) if st.cfg.evs.is_some() => {
                let policy = st.cfg.evs.unwrap_or_default();
                self.fix_message(st, &policy, sess, d);
            }
            ev => st
                .out
                .commands
                .push(KeysOut::Group(GroupOut::ToSession { sess, ev })),
        }
    }

    /// The representative asks TGDH for a refresh when the policy says the key is due.
    fn maybe_refresh<C, M>(&mut self, st: &mut Step<'_, C, M, C::Signature, GK>)
    where
        C: TgdhCrypto<Secret = S, Public = P, SessionKey = K>,
        M: GroupKeyMac<K, GroupKey = GK> + MessageCrypto<GK>,
    {
        let policy = st.cfg.policy;
        let old = policy
            .max_age_ms
            .is_some_and(|max| self.now.saturating_sub(self.key_since) >= max);
        let used = policy.max_bytes.is_some_and(|max| self.bytes_since >= max);
        let representative = self.servers.first() == Some(&st.cfg.me);
        if (old || used) && representative && !self.refresh_requested && self.servers_key.is_some() {
            self.refresh_requested = true;
            self.run_tgdh(st, Event::RequestRefresh);
        }
    }
}

fn reject<C: TgdhCrypto, M, G, GK>(st: &mut Step<'_, C, M, G, GK>, e: KeysError) {
    st.out.commands.push(KeysOut::Rejected(e));
}
