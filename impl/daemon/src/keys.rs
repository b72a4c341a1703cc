//! The servers' key agreement and group keys in the daemon (integrated security, paper §V-B):
//! the driver of `sgc_model::keys::KeysEngine`, the very engine the model checker explores,
//! with the real providers (`sgc-crypto`: TGDH over the configured DH group, Ed25519 signatures
//! of every daemon, HMAC group keys).
//!
//! ```text
//!  ring configuration ─────────────► KeysIn::Ring (before the group layer sees it)
//!  KEYS_TAG + postcard(Signed) ─────► KeysIn::Tgdh   (agreed ring messages, verified by TGDH)
//!  GroupOut of the group layer ─────► KeysIn::Group  ─► KeysAction::{Group, Membership}
//!  session closed / timer / data ───► KeysIn::{SessionClosed, Tick, DataOut}
//!  KeysOut::Broadcast ──────────────► KeysAction::Ring (KEYS_TAG + postcard, agreed)
//!  KeysOut::ServersKey ─────────────► Driver::on_servers_key (status, hook)
//! ```
//!
//! [`ServersKeys`] hides the provider type (the DH group is chosen in the configuration).
//! The single place where the servers' key becomes known is [`Driver::on_servers_key`]; a
//! [`ServersKeyHook`] set with [`ServersKeys::set_hook`] receives `(ring, epoch, key bytes)` there
//! (for the daemon-to-daemon packet protection of the Three-Step variant).
//!
//! A TGDH message that is undecodable, badly signed, of another epoch or configuration is
//! refused by the engine, counted in the status (`rejected`, by reason) and logged; it never
//! stops the daemon.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sgc_crypto::{
    Ed25519Signature, FfdhProvider, GroupChoice, GroupKey, HmacGroupKeys, SessionKey, SignatureDirectory,
    X25519Provider,
};
use sgc_model::groups::{ClientEvent, GroupOut, Membership, RingDelivery, SessionId};
use sgc_model::keys::engine::{EngineOf, KeysConfig};
use sgc_model::keys::{Grant, KeysEngine, KeysIn, KeysOut};
use sgc_model::ring::{ConfigId, NodeId, RingId};
use sgc_model::tgdh::crypto::{Epoch, TgdhCrypto};
use sgc_model::tgdh::message::Signed;
use tracing::{debug, info, warn};

use crate::config::KeysMaterial;

/// First byte of every servers' TGDH message on the ring (the group layer's is `0x47`).
pub const KEYS_TAG: u8 = 0x4b;

/// Called once per agreed servers' key with its ring, epoch and bytes (never logged).
pub type ServersKeyHook = Box<dyn FnMut(RingId, Epoch, &[u8; 32]) + Send>;

/// An input of the driver.
#[derive(Debug)]
pub enum DriverIn<'a> {
    /// A ring configuration (before the group layer gets it).
    Ring(RingDelivery),
    /// A ring message with [`KEYS_TAG`] (the tag stripped).
    Tgdh {
        /// The daemon that ordered it.
        origin: NodeId,
        /// The configuration it was delivered in.
        config: ConfigId,
        /// postcard of the signed TGDH message.
        body: &'a [u8],
    },
    /// An output of the group layer.
    Group(GroupOut),
    /// A session ended.
    SessionClosed(SessionId),
    /// The time, in milliseconds since the daemon started.
    Tick(u64),
    /// Bytes of client data delivered.
    DataOut(u64),
}

/// What the sessions carry out.
#[derive(Debug)]
pub enum KeysAction {
    /// Order this payload on the ring (agreed service).
    Ring(Vec<u8>),
    /// A group-layer output, unchanged.
    Group(GroupOut),
    /// A membership with its group key.
    Membership {
        /// The session.
        sess: SessionId,
        /// The membership.
        membership: Membership,
        /// Its key, key id and key view.
        grant: Grant<GroupKey>,
        /// A servers' key refresh (same members, new key).
        artificial: bool,
    },
}

/// The `keys` part of the admin status (never the key itself).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeysStatus {
    /// The DH group of the servers' TGDH.
    pub tgdh_group: String,
    /// The group key MAC.
    pub group_key_mac: String,
    /// Whether client events are held (no servers' key for the current configuration).
    pub holding: bool,
    /// The ring of the current servers' key.
    pub ring: Option<String>,
    /// Its epoch: the ring sequence number (TGDH view).
    pub epoch_view: Option<u64>,
    /// Its epoch: refreshes in that ring.
    pub epoch_refresh: Option<u32>,
    /// Its public id, 16 hex digits.
    pub key_id: Option<String>,
    /// Servers' keys agreed since start.
    pub agreements: u64,
    /// Milliseconds from the last regular configuration (or refresh request) to its key.
    pub last_agreement_ms: Option<f64>,
    /// Keyed memberships sent to sessions (artificial ones included).
    pub keyed_memberships: u64,
    /// Artificial memberships (refreshes).
    pub artificial_memberships: u64,
    /// TGDH work: exponentiations, signatures, verifications.
    pub exps: u64,
    /// Signatures made.
    pub signatures: u64,
    /// Signatures verified.
    pub verifications: u64,
    /// Refused inputs by reason (`bad_signature`, `undecodable`, `other_configuration`, ...).
    pub rejected: BTreeMap<String, u64>,
    /// Optimized EVS: messages re-encrypted under the receiver's current group key.
    #[serde(default)]
    pub evs_resealed: u64,
    /// Optimized EVS: messages reported undecryptable instead, by reason.
    #[serde(default)]
    pub evs_undecryptable: BTreeMap<String, u64>,
}

/// The servers' keys driver, whatever the DH group.
pub trait ServersKeys: Send {
    /// Handle one input; the actions are to be carried out in order.
    fn handle(&mut self, input: DriverIn<'_>) -> Vec<KeysAction>;
    /// The admin status.
    fn status(&self) -> KeysStatus;
    /// Set the hook called with every agreed servers' key.
    fn set_hook(&mut self, hook: ServersKeyHook);
    /// Whether client events are held.
    fn holding(&self) -> bool;
}

/// A driver for the material's DH group.
pub fn driver(me: NodeId, m: KeysMaterial) -> Box<dyn ServersKeys> {
    let sigs = Arc::new(m.signatures);
    let cfg = KeysConfig {
        evs: m.evs,
        ..KeysConfig::new(me, m.policy)
    };
    let mac = HmacGroupKeys::new(m.mac);
    match m.group.ffdh_group() {
        Some(g) => Box::new(Driver::new(FfdhProvider::new(g, sigs), mac, cfg, m.group)),
        None => Box::new(Driver::new(X25519Provider::new(sigs), mac, cfg, m.group)),
    }
}

/// The driver for provider `C`.
pub struct Driver<C: TgdhCrypto<SessionKey = SessionKey>> {
    crypto: C,
    mac: HmacGroupKeys,
    cfg: KeysConfig,
    engine: EngineOf<C, HmacGroupKeys>,
    group: GroupChoice,
    status: KeysStatus,
    /// When the current run started (configuration or refresh request).
    run_started: Option<Instant>,
    hook: Option<ServersKeyHook>,
}

impl<C> Driver<C>
where
    C: TgdhCrypto<SessionKey = SessionKey, Signature = Ed25519Signature> + Send,
    C::Secret: Clone + Eq + Send,
    C::Public: Send,
{
    /// A driver with this provider (which holds this daemon's signing key and every peer's
    /// verifying key).
    pub fn new(crypto: C, mac: HmacGroupKeys, cfg: KeysConfig, group: GroupChoice) -> Self {
        Self {
            crypto,
            mac,
            cfg,
            engine: KeysEngine::new(),
            group,
            status: KeysStatus {
                tgdh_group: group.name().to_owned(),
                group_key_mac: mac.alg.name().to_owned(),
                holding: true,
                ..KeysStatus::default()
            },
            run_started: None,
            hook: None,
        }
    }

    fn reject(&mut self, why: &str) {
        *self.status.rejected.entry(why.to_owned()).or_default() += 1;
    }

    /// The one place where a servers' key becomes known: status, log (id only) and the hook.
    fn on_servers_key(&mut self, ring: RingId, epoch: Epoch, key_id: u64) {
        let ms = self
            .run_started
            .take()
            .map(|t| t.elapsed().as_secs_f64() * 1000.0);
        let s = &mut self.status;
        s.ring = Some(ring.to_string());
        s.epoch_view = Some(epoch.view);
        s.epoch_refresh = Some(epoch.refresh);
        s.key_id = Some(format!("{key_id:016x}"));
        s.agreements += 1;
        if ms.is_some() {
            s.last_agreement_ms = ms;
        }
        info!(ring = %ring, epoch = %epoch, key_id = %format!("{key_id:016x}"), ms = ?ms, "servers' key agreed");
        if let (Some(hook), Some(key)) = (self.hook.as_mut(), self.engine.servers_key()) {
            hook(ring, epoch, key.as_bytes());
        }
    }

    fn run(&mut self, input: KeysIn<C::Public, Ed25519Signature>) -> Vec<KeysAction> {
        let entropy: [u8; 32] = rand::random();
        let out = self
            .engine
            .handle(&self.crypto, &self.mac, &self.cfg, input, &entropy);
        self.status.exps += u64::from(out.cost.exps);
        self.status.signatures += u64::from(out.cost.signatures);
        self.status.verifications += u64::from(out.cost.verifications);
        self.status.evs_resealed += u64::from(out.resealed);
        let mut actions = Vec::new();
        for cmd in out.commands {
            match cmd {
                KeysOut::Broadcast(m) => match postcard::to_extend(&m, vec![KEYS_TAG]) {
                    Ok(payload) => actions.push(KeysAction::Ring(payload)),
                    Err(e) => warn!(error = %e, "a TGDH message could not be encoded"),
                },
                KeysOut::Group(o) => {
                    if let GroupOut::ToSession {
                        ev: ClientEvent::Undecryptable(u),
                        ..
                    } = &o
                    {
                        debug!(group = %u.group, sender = %u.sender, reason = %u.reason, "undecryptable message reported");
                        *self
                            .status
                            .evs_undecryptable
                            .entry(u.reason.name().to_owned())
                            .or_default() += 1;
                    }
                    actions.push(KeysAction::Group(o));
                }
                KeysOut::Membership {
                    sess,
                    membership,
                    grant,
                    artificial,
                } => {
                    self.status.keyed_memberships += 1;
                    if artificial {
                        self.status.artificial_memberships += 1;
                    }
                    actions.push(KeysAction::Membership {
                        sess,
                        membership,
                        grant,
                        artificial,
                    });
                }
                KeysOut::ServersKey { ring, epoch, key_id } => {
                    self.on_servers_key(ring, epoch, key_id);
                }
                KeysOut::Rejected(e) => {
                    let why = rejection_label(&e);
                    warn!(error = %e, "servers' keys: input refused");
                    self.reject(why);
                }
            }
        }
        self.status.holding = self.engine.holding();
        actions
    }
}

/// A short counter label of a refusal.
fn rejection_label(e: &sgc_model::keys::KeysError) -> &'static str {
    use sgc_model::keys::KeysError;
    use sgc_model::tgdh::crypto::CryptoError;
    use sgc_model::tgdh::error::TgdhError;
    match e {
        KeysError::Tgdh(TgdhError::Crypto(CryptoError::BadSignature(_))) => "bad_signature",
        KeysError::Tgdh(TgdhError::Crypto(CryptoError::UnknownSigner(_))) => "unknown_signer",
        KeysError::Tgdh(_) => "tgdh",
        KeysError::OtherConfiguration { .. } => "other_configuration",
        KeysError::SenderMismatch { .. } => "sender_mismatch",
        _ => "other",
    }
}

impl<C> ServersKeys for Driver<C>
where
    C: TgdhCrypto<SessionKey = SessionKey, Signature = Ed25519Signature> + Send,
    C::Secret: Clone + Eq + Send,
    C::Public: Send,
{
    fn handle(&mut self, input: DriverIn<'_>) -> Vec<KeysAction> {
        let input = match input {
            DriverIn::Ring(d) => {
                if matches!(d, RingDelivery::Regular { .. }) {
                    self.run_started = Some(Instant::now());
                }
                KeysIn::Ring(d)
            }
            DriverIn::Tgdh { origin, config, body } => {
                match postcard::from_bytes::<Signed<C::Public, Ed25519Signature>>(body) {
                    Ok(msg) => KeysIn::Tgdh { origin, config, msg },
                    Err(e) => {
                        warn!(origin, error = %e, "undecodable TGDH message on the ring");
                        self.reject("undecodable");
                        return Vec::new();
                    }
                }
            }
            DriverIn::Group(o) => KeysIn::Group(o),
            DriverIn::SessionClosed(s) => KeysIn::SessionClosed(s),
            DriverIn::Tick(now) => {
                let refreshing = self.engine.refresh_requested;
                let actions = self.run(KeysIn::Tick { now });
                if !refreshing && self.engine.refresh_requested {
                    debug!("servers' key refresh requested (time-out)");
                    self.run_started = Some(Instant::now());
                }
                return actions;
            }
            DriverIn::DataOut(bytes) => {
                let refreshing = self.engine.refresh_requested;
                let actions = self.run(KeysIn::DataOut { bytes });
                if !refreshing && self.engine.refresh_requested {
                    debug!("servers' key refresh requested (data-out)");
                    self.run_started = Some(Instant::now());
                }
                return actions;
            }
        };
        self.run(input)
    }

    fn status(&self) -> KeysStatus {
        self.status.clone()
    }

    fn set_hook(&mut self, hook: ServersKeyHook) {
        self.hook = Some(hook);
    }

    fn holding(&self) -> bool {
        self.engine.holding()
    }
}

impl<C: TgdhCrypto<SessionKey = SessionKey>> std::fmt::Debug for Driver<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("group", &self.group)
            .field("me", &self.cfg.me)
            .field("holding", &self.status.holding)
            .finish_non_exhaustive()
    }
}

/// A deterministic directory for daemons `0..n` (tests only: the seed is public).
pub fn test_signatures(n: u16) -> SignatureDirectory {
    let mut dir = SignatureDirectory::new();
    for i in 0..n {
        dir.add_identity(sgc_crypto::Identity::from_seed(
            sgc_model::keys::engine::server_member(i),
            sgc_crypto::TEST_SEED,
        ));
    }
    dir
}

#[cfg(test)]
mod tests;
