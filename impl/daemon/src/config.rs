//! The daemon's TOML configuration: identity, addresses, peers, timeouts and window sizes.
//!
//! Parsing is two steps: `toml` + `serde` into [`DaemonConfig`] (unknown keys rejected), then
//! [`DaemonConfig::validate`], which names the offending key in every error. The ring machine's
//! own [`RingConfig`] is derived from it by [`DaemonConfig::ring_config`]. See `docs/daemon.md`.
//!
//! The `[security]` section ([`SecuritySection`], `docs/security.md`) names the deployment CA,
//! the daemon's certificate and key and the access-control policy; paths are relative to the
//! config file. [`DaemonConfig::load_security`] loads them into a [`SecurityMaterial`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sgc_model::ring::{NodeId, RingConfig};

mod network;
pub use network::NetworkSection;

/// Errors of loading a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (the message names the key).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key has an unacceptable value.
    #[error("config key `{key}`: {problem}")]
    Invalid {
        /// Dotted key path, e.g. `timeouts.token_loss_ms`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// One daemon of the configuration (the peer list includes this daemon).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Node id (unique).
    pub id: NodeId,
    /// Name (unique), used by the admin commands.
    pub name: String,
    /// Its UDP ring address.
    pub addr: SocketAddr,
    /// Its Ed25519 TGDH verifying key, 64 hex digits (the `sign.pub` of its identity
    /// directory); required for every peer when `security.mode` is not `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_pub: Option<String>,
}

/// This daemon's identity and addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Node id; must appear in `peers`.
    pub id: NodeId,
    /// Name; must match the `peers` entry of `id`.
    pub name: String,
    /// UDP address of the ring socket; must equal this daemon's `peers` address.
    pub listen: SocketAddr,
    /// TCP admin endpoint (loopback only).
    pub admin: SocketAddr,
    /// Client endpoint (reserved for the client protocol; not served yet).
    pub client: SocketAddr,
    /// Directory of the durable record, relative to the config file's directory.
    pub data_dir: PathBuf,
}

/// Timeouts in milliseconds (ring-protocol.md §2.3, §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// No token for this long starts a membership change.
    pub token_loss_ms: u64,
    /// Re-send the last forwarded token after this long.
    pub token_retransmit_ms: u64,
    /// Join re-broadcast period.
    pub join_ms: u64,
    /// Consensus timeout.
    pub consensus_ms: u64,
    /// Merge-detection probe period.
    pub merge_detect_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        let r = RingConfig::new(vec![0]);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            token_loss_ms: ms(r.token_loss),
            token_retransmit_ms: ms(r.token_retransmit),
            join_ms: ms(r.join),
            consensus_ms: ms(r.consensus),
            merge_detect_ms: ms(r.merge_detect),
        }
    }
}

/// Flow control and packing (ring-protocol.md §2.3, §2.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Window {
    /// Packets per token visit.
    pub max_messages: u32,
    /// Packets per rotation.
    pub window_size: u32,
    /// Bound on `seq - safe_line`.
    pub max_gap: u64,
    /// Bytes of message chunks per data packet (chunk headers counted); with the packet and
    /// datagram headers it must fit `runtime.max_datagram` (see [`DATA_PACKET_OVERHEAD`]).
    pub packet_payload: usize,
}

impl Default for Window {
    /// Larger than the machine's Spread/Corosync-like defaults (17 per visit, 50 per rotation,
    /// gap 256): a token visit costs a scheduling hop per daemon, so more packets per visit
    /// amortize it (`sgc bench ring`, `docs/benchmarks.md`); the gap covers about two
    /// rotations of a full window. Bursts of 64 datagrams need the larger socket buffers of
    /// `runtime.socket_buffer`.
    fn default() -> Self {
        let r = RingConfig::new(vec![0]);
        Self {
            max_messages: 64,
            window_size: 192,
            max_gap: 1024,
            packet_payload: r.max_packet_payload,
        }
    }
}

/// Bytes a data packet's datagram adds to its `packet_payload` in the worst case: the
/// transport header, the packet's own fields and those of the recovery wrapper (a recovered
/// packet carries the old packet whole), every integer at its longest postcard varint. The
/// per-chunk headers are counted inside the payload (`RingConfig::chunk_overhead`).
pub const DATA_PACKET_OVERHEAD: usize = 122;

/// Runtime knobs that change timing only, never protocol decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Hold an idle regular token this long before forwarding it (0: never), so an idle ring
    /// does not spin; must be below `timeouts.token_retransmit_ms`.
    pub idle_token_delay_ms: u64,
    /// Idle tokens forwarded at once, one after another, before this daemon starts holding them:
    /// a ring that was busy a moment ago (a request/reply exchange, a series of joins) keeps
    /// its sub-millisecond latency; a ring idle for longer stops spinning.
    pub idle_token_spins: u32,
    /// Largest datagram accepted (bytes, at most 65507).
    pub max_datagram: usize,
    /// Entries kept in the delivery log served by the admin `log` command.
    pub delivery_log: usize,
    /// Kernel send and receive buffer requested for the ring socket, bytes (0: OS default;
    /// Linux grants at most `net.core.rmem_max`/`wmem_max`).
    pub socket_buffer: usize,
    /// Record every input of the ring machine and the commands it returned to
    /// `daemon.data_dir/record-<incarnation>.bin`, for `sgc conformance` (off: no cost but a
    /// branch per input).
    pub record: bool,
    /// TESTING (`sgc conformance replay --live`): the harness is this daemon's network and
    /// clock (`crate::controlled`): no timer is armed, timers fire on the admin `fire_timer`
    /// request, tokens to itself leave through the harness, the group layer is detached.
    pub controlled: bool,
    /// With `controlled`: the JSON setup file the harness wrote (ring parameters, start,
    /// the harness's address standing for this daemon), relative to the config file.
    pub controlled_setup: Option<PathBuf>,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            idle_token_delay_ms: 2,
            idle_token_spins: 32,
            max_datagram: 65_507,
            delivery_log: 100_000,
            socket_buffer: 4 << 20,
            record: false,
            controlled: false,
            controlled_setup: None,
        }
    }
}

/// Client sessions and light-weight groups (`docs/daemon.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsSection {
    /// Local Unix socket for clients (relative to `daemon.data_dir`; default `client.sock`).
    pub socket: Option<PathBuf>,
    /// Events queued for one session before the daemon disconnects it as a slow client.
    pub max_session_queue: u32,
    /// Groups one session may be in.
    pub max_groups_per_session: u32,
    /// Members of one group at this daemon.
    pub max_members_per_group: u32,
    /// Client messages on the ring and not yet delivered back before client sockets stop being read.
    pub max_ring_backlog: u32,
    /// Sessions connected at once.
    pub max_sessions: u32,
}

impl Default for ClientsSection {
    fn default() -> Self {
        Self {
            socket: None,
            max_session_queue: 1000,
            max_groups_per_session: 1000,
            max_members_per_group: 3100,
            max_ring_backlog: 500,
            max_sessions: 10_000,
        }
    }
}

/// Which integrated-security variant the daemon runs (issue 6 §3).
///
/// Every mode other than `none` turns on mutual TLS on the client TCP port, uid
/// identification on the Unix socket, the policy, and the servers' key agreement with group
/// keys delivered in memberships (`crate::keys`). `three-step` also protects daemon↔daemon
/// packets (`protection.rs`, `[security] transport_suite`) under keys derived from the servers'
/// key; end-to-end client encryption (the other two variants) is not implemented yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityMode {
    /// No authentication, no access control, plaintext.
    #[default]
    None,
    /// Three-Step Client-Server.
    ThreeStep,
    /// Integrated virtual synchrony.
    IntegratedVs,
    /// Optimized extended virtual synchrony.
    OptimizedEvs,
}

impl SecurityMode {
    /// The name used in the configuration and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ThreeStep => "three-step",
            Self::IntegratedVs => "integrated-vs",
            Self::OptimizedEvs => "optimized-evs",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            Self::None,
            Self::ThreeStep,
            Self::IntegratedVs,
            Self::OptimizedEvs,
        ]
        .into_iter()
        .find(|m| m.name() == s)
    }
}

/// `[security]`: identities, client authentication and access control (`docs/security.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// The variant; anything but `none` requires `ca`, `cert`, `key` and `policy`.
    pub mode: SecurityMode,
    /// The deployment CA's certificate (PEM): client certificates must chain to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// This daemon's certificate (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// This daemon's private key (PEM, mode 0600 or stricter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The access-control policy (TOML, `policy.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    /// This daemon's Ed25519 TGDH signing key (`sign.key` of its identity directory, 64 hex
    /// digits, mode 0600 or stricter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_key: Option<PathBuf>,
    /// The MAC of the client group keys: `hmac-sha256` (default) or `hmac-sha1` (the paper's).
    #[serde(skip_serializing_if = "default_mac")]
    pub group_key_mac: String,
    /// The DH group of the servers' TGDH: `ffdhe2048` (default), `ffdhe3072`, `modp2048`,
    /// `x25519`.
    #[serde(skip_serializing_if = "default_group")]
    pub tgdh_group: String,
    /// Refresh the servers' key when it is this many milliseconds old (0: never).
    #[serde(skip_serializing_if = "default_refresh_ms")]
    pub refresh_ms: u64,
    /// Refresh the servers' key after this many bytes of client data (0: never).
    #[serde(skip_serializing_if = "default_refresh_bytes")]
    pub refresh_bytes: u64,
    /// The cipher suite sealing daemon↔daemon packets in `three-step` mode.
    #[serde(skip_serializing_if = "TransportSuite::is_default")]
    pub transport_suite: TransportSuite,
    /// `optimized-evs`: an old group key under which no message arrived for this many
    /// milliseconds expires (time-out; 0: never).
    #[serde(skip_serializing_if = "default_evs_timeout")]
    pub evs_key_timeout_ms: u64,
    /// `optimized-evs`: old keys kept per group (key-out; the oldest goes first).
    #[serde(skip_serializing_if = "default_evs_old_keys")]
    pub evs_max_old_keys: u32,
}

/// `[security] transport_suite`: how `three-step` protects daemon↔daemon packets
/// (`sgc_crypto::seal::Suite`, `docs/security.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransportSuite {
    /// AES-256-GCM (default).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// AES-128-CBC + HMAC-SHA1.
    #[serde(rename = "aes128-cbc-hmac-sha1")]
    Aes128CbcHmacSha1,
    /// Blowfish-CBC + HMAC-SHA1.
    #[serde(rename = "blowfish-cbc-hmac-sha1")]
    BlowfishCbcHmacSha1,
    /// HMAC-SHA1 only (integrity, no confidentiality).
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
}

impl TransportSuite {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The sealing suite.
    pub const fn suite(self) -> sgc_crypto::seal::Suite {
        use sgc_crypto::seal::Suite;
        match self {
            Self::Aes256Gcm => Suite::Aes256Gcm,
            Self::Aes128CbcHmacSha1 => Suite::Aes128CbcHmacSha1,
            Self::BlowfishCbcHmacSha1 => Suite::BlowfishCbcHmacSha1,
            Self::HmacSha1 => Suite::HmacSha1,
        }
    }
}

impl std::str::FromStr for TransportSuite {
    type Err = String;

    /// The configuration's names: `aes-256-gcm`, `aes128-cbc-hmac-sha1`,
    /// `blowfish-cbc-hmac-sha1`, `hmac-sha1`.
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Aes256Gcm,
            Self::Aes128CbcHmacSha1,
            Self::BlowfishCbcHmacSha1,
            Self::HmacSha1,
        ]
        .into_iter()
        .find(|t| t.suite().name() == s)
        .ok_or_else(|| {
            format!("unknown transport suite {s:?} (aes-256-gcm, aes128-cbc-hmac-sha1, blowfish-cbc-hmac-sha1, hmac-sha1)")
        })
    }
}

/// Default `security.refresh_ms`: one hour.
pub const DEFAULT_REFRESH_MS: u64 = 3_600_000;
/// Default `security.refresh_bytes`: 1 GiB.
pub const DEFAULT_REFRESH_BYTES: u64 = 1 << 30;

fn default_mac(v: &str) -> bool {
    v == sgc_crypto::GroupKeyAlg::default().name()
}
fn default_group(v: &str) -> bool {
    v == sgc_crypto::GroupChoice::default().name()
}
const fn default_refresh_ms(v: &u64) -> bool {
    *v == DEFAULT_REFRESH_MS
}
const fn default_refresh_bytes(v: &u64) -> bool {
    *v == DEFAULT_REFRESH_BYTES
}
/// Default `security.evs_key_timeout_ms`: one minute.
pub const DEFAULT_EVS_KEY_TIMEOUT_MS: u64 = 60_000;
/// Default `security.evs_max_old_keys`.
pub const DEFAULT_EVS_MAX_OLD_KEYS: u32 = 8;
const fn default_evs_timeout(v: &u64) -> bool {
    *v == DEFAULT_EVS_KEY_TIMEOUT_MS
}
const fn default_evs_old_keys(v: &u32) -> bool {
    *v == DEFAULT_EVS_MAX_OLD_KEYS
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            mode: SecurityMode::None,
            ca: None,
            cert: None,
            key: None,
            policy: None,
            sign_key: None,
            group_key_mac: sgc_crypto::GroupKeyAlg::default().name().to_owned(),
            tgdh_group: sgc_crypto::GroupChoice::default().name().to_owned(),
            refresh_ms: DEFAULT_REFRESH_MS,
            refresh_bytes: DEFAULT_REFRESH_BYTES,
            transport_suite: TransportSuite::default(),
            evs_key_timeout_ms: DEFAULT_EVS_KEY_TIMEOUT_MS,
            evs_max_old_keys: DEFAULT_EVS_MAX_OLD_KEYS,
        }
    }
}

/// What `[security]` names, loaded: the TLS server configuration, the policy and the servers'
/// key agreement material.
#[derive(Debug)]
pub struct SecurityMaterial {
    /// The servers' TGDH and group keys configuration.
    pub keys: KeysMaterial,
    /// Mutual-TLS server configuration for the client TCP port.
    pub tls: std::sync::Arc<sgc_crypto::pki::ServerConfig>,
    /// The access-control policy.
    pub policy: crate::policy::Policy,
    /// The identity (CN) of the daemon's own certificate.
    pub identity: String,
}

/// The servers' key agreement material (`docs/security.md`).
#[derive(Debug)]
pub struct KeysMaterial {
    /// This daemon's signing key and every peer's verifying key (TGDH member `daemon{id}`).
    pub signatures: sgc_crypto::SignatureDirectory,
    /// The group key MAC.
    pub mac: sgc_crypto::GroupKeyAlg,
    /// The DH group of the servers' TGDH.
    pub group: sgc_crypto::GroupChoice,
    /// The refresh policy.
    pub policy: sgc_model::keys::RefreshPolicy,
    /// Optimized EVS's old-key expiry (`None` in the other modes).
    pub evs: Option<sgc_model::keys::EvsPolicy>,
}

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Cluster name; packets of other clusters are dropped.
    pub cluster: String,
    /// This daemon.
    pub daemon: DaemonSection,
    /// Every daemon of the cluster, this one included.
    pub peers: Vec<Peer>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Flow control.
    #[serde(default)]
    pub window: Window,
    /// Runtime knobs.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Client sessions and groups.
    #[serde(default)]
    pub clients: ClientsSection,
    /// Identities, client authentication, access control.
    #[serde(default)]
    pub security: SecuritySection,
    /// Transport options (IP multicast); not written out when unset.
    #[serde(default, skip_serializing_if = "NetworkSection::is_default")]
    pub network: NetworkSection,
}

impl DaemonConfig {
    /// Read, parse and validate a file; a relative `data_dir` is resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if cfg.daemon.data_dir.is_relative() {
            let base = path.parent().unwrap_or_else(|| Path::new("."));
            cfg.daemon.data_dir = base.join(&cfg.daemon.data_dir);
        }
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let sec = &mut cfg.security;
        for p in [
            &mut sec.ca,
            &mut sec.cert,
            &mut sec.key,
            &mut sec.policy,
            &mut sec.sign_key,
            &mut cfg.runtime.controlled_setup,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// Parse and validate TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Render as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Check every key; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.is_empty() {
            return Err(invalid("cluster", "must not be empty"));
        }
        self.validate_peers()?;
        let d = &self.daemon;
        if d.name.is_empty() {
            return Err(invalid("daemon.name", "must not be empty"));
        }
        let Some(me) = self.peers.iter().find(|p| p.id == d.id) else {
            return Err(invalid("daemon.id", format!("{} is not in `peers`", d.id)));
        };
        if me.name != d.name {
            return Err(invalid(
                "daemon.name",
                format!(
                    "`{}` differs from the peers entry of id {} (`{}`)",
                    d.name, d.id, me.name
                ),
            ));
        }
        if me.addr != d.listen {
            return Err(invalid(
                "daemon.listen",
                format!(
                    "{} differs from the peers entry of id {} ({})",
                    d.listen, d.id, me.addr
                ),
            ));
        }
        if !d.admin.ip().is_loopback() {
            return Err(invalid("daemon.admin", "the admin endpoint must be on loopback"));
        }
        if d.admin == d.client || (d.admin.port() == d.listen.port() && d.admin.ip() == d.listen.ip()) {
            return Err(invalid(
                "daemon.admin",
                "must differ from daemon.listen and daemon.client",
            ));
        }
        self.validate_timeouts()?;
        self.validate_window()?;
        self.validate_clients()?;
        self.validate_security()?;
        self.network.validate(d.listen)?;
        let r = &self.runtime;
        if !(512..=65_507).contains(&r.max_datagram) {
            return Err(invalid("runtime.max_datagram", "must be between 512 and 65507"));
        }
        if r.socket_buffer > 1 << 30 {
            return Err(invalid("runtime.socket_buffer", "must be at most 1 GiB"));
        }
        if r.controlled {
            if r.controlled_setup.is_none() {
                return Err(invalid(
                    "runtime.controlled_setup",
                    "required with runtime.controlled",
                ));
            }
            if r.record || self.security.mode != SecurityMode::None {
                return Err(invalid(
                    "runtime.controlled",
                    "a testing mode: excludes runtime.record and security",
                ));
            }
        }
        let chunk = RingConfig::new(vec![0]).chunk_overhead;
        let p = self.window.packet_payload;
        if p <= chunk {
            return Err(invalid(
                "window.packet_payload",
                format!("must exceed the {chunk}-byte chunk header"),
            ));
        }
        let overhead = DATA_PACKET_OVERHEAD
            + if self.security.mode == SecurityMode::ThreeStep {
                crate::protection::PROTECTION_OVERHEAD
            } else {
                0
            };
        if p.saturating_add(overhead) > r.max_datagram {
            return Err(invalid(
                "window.packet_payload",
                format!(
                    "{p} + {overhead} bytes of headers exceeds runtime.max_datagram ({})",
                    r.max_datagram
                ),
            ));
        }
        if r.idle_token_delay_ms >= self.timeouts.token_retransmit_ms {
            return Err(invalid(
                "runtime.idle_token_delay_ms",
                "must be below timeouts.token_retransmit_ms",
            ));
        }
        Ok(())
    }

    fn validate_peers(&self) -> Result<(), ConfigError> {
        if self.peers.is_empty() {
            return Err(invalid("peers", "at least this daemon must be listed"));
        }
        let (mut ids, mut names, mut addrs) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (i, p) in self.peers.iter().enumerate() {
            if !ids.insert(p.id) {
                return Err(invalid(
                    format!("peers[{i}].id"),
                    format!("duplicate id {}", p.id),
                ));
            }
            if p.name.is_empty() || p.name.contains(',') {
                return Err(invalid(
                    format!("peers[{i}].name"),
                    "must be non-empty, without commas",
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(invalid(
                    format!("peers[{i}].name"),
                    format!("duplicate name `{}`", p.name),
                ));
            }
            if !addrs.insert(p.addr) {
                return Err(invalid(
                    format!("peers[{i}].addr"),
                    format!("duplicate address {}", p.addr),
                ));
            }
            if p.addr.port() == 0 || p.addr.ip().is_unspecified() {
                return Err(invalid(
                    format!("peers[{i}].addr"),
                    "needs a concrete IP and a non-zero port",
                ));
            }
        }
        Ok(())
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        let c = &self.clients;
        for (key, v) in [
            ("clients.max_session_queue", c.max_session_queue),
            ("clients.max_groups_per_session", c.max_groups_per_session),
            ("clients.max_members_per_group", c.max_members_per_group),
            ("clients.max_ring_backlog", c.max_ring_backlog),
            ("clients.max_sessions", c.max_sessions),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        for (i, p) in self.peers.iter().enumerate() {
            if let Err(e) = sgc_model::groups::PrivateName::new(p.id, "x", p.name.as_str()) {
                return Err(invalid(
                    format!("peers[{i}].name"),
                    format!("unusable in private names: {e}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_security(&self) -> Result<(), ConfigError> {
        let s = &self.security;
        if s.mode == SecurityMode::None {
            return Ok(());
        }
        for (key, v) in [
            ("security.ca", &s.ca),
            ("security.cert", &s.cert),
            ("security.key", &s.key),
            ("security.policy", &s.policy),
            ("security.sign_key", &s.sign_key),
        ] {
            match v {
                None => {
                    return Err(invalid(
                        key,
                        format!("required when security.mode = \"{}\"", s.mode.name()),
                    ));
                }
                Some(p) if p.as_os_str().is_empty() => return Err(invalid(key, "must not be empty")),
                Some(_) => {}
            }
        }
        if s.group_key_mac.parse::<sgc_crypto::GroupKeyAlg>().is_err() {
            return Err(invalid("security.group_key_mac", "use hmac-sha256 or hmac-sha1"));
        }
        if s.tgdh_group.parse::<sgc_crypto::GroupChoice>().is_err() {
            return Err(invalid(
                "security.tgdh_group",
                "use ffdhe2048, ffdhe3072, modp2048 or x25519",
            ));
        }
        for (i, p) in self.peers.iter().enumerate() {
            match &p.sign_pub {
                None => {
                    return Err(invalid(
                        format!("peers[{i}].sign_pub"),
                        format!("required when security.mode = \"{}\"", s.mode.name()),
                    ));
                }
                Some(h) if sgc_crypto::sign_key::from_hex(h).is_none() => {
                    return Err(invalid(format!("peers[{i}].sign_pub"), "expected 64 hex digits"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The servers' key agreement material: the signing key named by `security.sign_key`
    /// (loose permissions refused) and the peers' `sign_pub` keys.
    fn load_keys(&self) -> Result<KeysMaterial, ConfigError> {
        use sgc_crypto::{Identity, SignatureDirectory, sign_key};
        use sgc_model::keys::engine::server_member;
        let s = &self.security;
        let path = s
            .sign_key
            .clone()
            .ok_or_else(|| invalid("security.sign_key", "required when security is on"))?;
        let secret =
            sign_key::read_signing_key(&path).map_err(|e| invalid("security.sign_key", e.to_string()))?;
        let me = Identity::from_secret_bytes(server_member(self.daemon.id), &secret);
        let mut signatures = SignatureDirectory::new();
        for (i, p) in self.peers.iter().enumerate() {
            let key = p
                .sign_pub
                .as_deref()
                .and_then(sign_key::from_hex)
                .ok_or_else(|| invalid(format!("peers[{i}].sign_pub"), "expected 64 hex digits"))?;
            signatures
                .add_verifying_key_bytes(server_member(p.id), &key)
                .map_err(|e| invalid(format!("peers[{i}].sign_pub"), e.to_string()))?;
        }
        let mine = signatures.verifying_key(me.id()).copied();
        if mine != Some(me.verifying_key()) {
            return Err(invalid(
                "security.sign_key",
                "does not match this daemon's peers entry sign_pub",
            ));
        }
        signatures.add_identity(me);
        let nonzero = |v: u64| (v > 0).then_some(v);
        Ok(KeysMaterial {
            signatures,
            mac: s
                .group_key_mac
                .parse()
                .map_err(|e: sgc_crypto::group_key::UnknownGroupKeyAlg| {
                    invalid("security.group_key_mac", e.to_string())
                })?,
            group: s
                .tgdh_group
                .parse()
                .map_err(|e: sgc_crypto::UnknownGroup| invalid("security.tgdh_group", e.to_string()))?,
            policy: sgc_model::keys::RefreshPolicy {
                max_age_ms: nonzero(s.refresh_ms),
                max_bytes: nonzero(s.refresh_bytes),
            },
            evs: (s.mode == SecurityMode::OptimizedEvs).then(|| sgc_model::keys::EvsPolicy {
                key_timeout_ms: nonzero(s.evs_key_timeout_ms),
                max_old_keys: usize::try_from(s.evs_max_old_keys).unwrap_or(usize::MAX),
            }),
        })
    }

    /// Load the CA, certificate, key and policy named by `[security]`; `None` when the mode
    /// is `none`. Every error names its key; a key file readable by group or others is refused.
    pub fn load_security(&self) -> Result<Option<SecurityMaterial>, ConfigError> {
        use sgc_crypto::pki;
        let s = &self.security;
        if s.mode == SecurityMode::None {
            return Ok(None);
        }
        let path = |key: &str, v: &Option<PathBuf>| {
            v.clone().ok_or_else(|| {
                invalid(
                    key,
                    format!("required when security.mode = \"{}\"", s.mode.name()),
                )
            })
        };
        let (ca, cert, key, policy) = (
            path("security.ca", &s.ca)?,
            path("security.cert", &s.cert)?,
            path("security.key", &s.key)?,
            path("security.policy", &s.policy)?,
        );
        let creds = pki::Credentials {
            roots: pki::read_certs(&ca).map_err(|e| invalid("security.ca", e.to_string()))?,
            certs: pki::read_certs(&cert).map_err(|e| invalid("security.cert", e.to_string()))?,
            key: pki::read_private_key(&key).map_err(|e| invalid("security.key", e.to_string()))?,
        };
        let identity = creds
            .identity()
            .ok_or_else(|| invalid("security.cert", "the certificate has no subject common name"))?;
        let tls = pki::server_config(&creds).map_err(|e| invalid("security.cert", e.to_string()))?;
        let policy =
            crate::policy::Policy::load(&policy).map_err(|e| invalid("security.policy", e.to_string()))?;
        let keys = self.load_keys()?;
        Ok(Some(SecurityMaterial {
            keys,
            tls,
            policy,
            identity,
        }))
    }

    /// The local client socket path.
    pub fn client_socket(&self) -> PathBuf {
        let rel = self
            .clients
            .socket
            .clone()
            .unwrap_or_else(|| PathBuf::from("client.sock"));
        self.daemon.data_dir.join(rel)
    }

    fn validate_timeouts(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        for (key, v) in [
            ("timeouts.token_loss_ms", t.token_loss_ms),
            ("timeouts.token_retransmit_ms", t.token_retransmit_ms),
            ("timeouts.join_ms", t.join_ms),
            ("timeouts.consensus_ms", t.consensus_ms),
            ("timeouts.merge_detect_ms", t.merge_detect_ms),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        if t.token_retransmit_ms >= t.token_loss_ms {
            return Err(invalid(
                "timeouts.token_retransmit_ms",
                "must be below timeouts.token_loss_ms",
            ));
        }
        if t.join_ms >= t.consensus_ms {
            return Err(invalid("timeouts.join_ms", "must be below timeouts.consensus_ms"));
        }
        Ok(())
    }

    fn validate_window(&self) -> Result<(), ConfigError> {
        let w = &self.window;
        if w.max_messages == 0 {
            return Err(invalid("window.max_messages", "must be positive"));
        }
        if w.window_size < w.max_messages {
            return Err(invalid(
                "window.window_size",
                "must be at least window.max_messages",
            ));
        }
        if w.max_gap == 0 {
            return Err(invalid("window.max_gap", "must be positive"));
        }
        Ok(())
    }

    /// The ring machine's parameters.
    pub fn ring_config(&self) -> RingConfig {
        let mut nodes: Vec<NodeId> = self.peers.iter().map(|p| p.id).collect();
        nodes.sort_unstable();
        let t = &self.timeouts;
        let mut r = RingConfig::new(nodes);
        r.token_loss = Duration::from_millis(t.token_loss_ms);
        r.token_retransmit = Duration::from_millis(t.token_retransmit_ms);
        r.join = Duration::from_millis(t.join_ms);
        r.consensus = Duration::from_millis(t.consensus_ms);
        r.merge_detect = Duration::from_millis(t.merge_detect_ms);
        r.max_messages = self.window.max_messages;
        r.window_size = self.window.window_size;
        r.max_gap = self.window.max_gap;
        r.max_packet_payload = self.window.packet_payload;
        r
    }

    /// The generated configuration of daemon `i` of a local cluster of `n` on loopback, the
    /// default a newcomer uses (`sgc cluster up`): daemon `i` is named `d{i}` and uses ports
    /// `base + 3i` (UDP ring), `base + 3i + 1` (admin), `base + 3i + 2` (client, reserved).
    pub fn local(cluster: &str, n: u16, i: u16, base_port: u16) -> Self {
        let addr = |j: u16, k: u16| SocketAddr::from(([127, 0, 0, 1], base_port + 3 * j + k));
        let peers = (0..n)
            .map(|j| Peer {
                id: j,
                name: format!("d{j}"),
                addr: addr(j, 0),
                sign_pub: None,
            })
            .collect();
        Self {
            cluster: cluster.to_owned(),
            daemon: DaemonSection {
                id: i,
                name: format!("d{i}"),
                listen: addr(i, 0),
                admin: addr(i, 1),
                client: addr(i, 2),
                data_dir: PathBuf::from("data"),
            },
            peers,
            timeouts: Timeouts::default(),
            window: Window::default(),
            runtime: RuntimeSection::default(),
            clients: ClientsSection::default(),
            security: SecuritySection::default(),
            network: NetworkSection::default(),
        }
    }

    /// Name of a node, or its id as text.
    pub fn name_of(&self, node: NodeId) -> String {
        self.peers
            .iter()
            .find(|p| p.id == node)
            .map_or_else(|| node.to_string(), |p| p.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> String {
        DaemonConfig::local("c", 3, 1, 40_000).to_toml()
    }

    fn err_key(text: &str) -> String {
        match DaemonConfig::parse(text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn generated_config_round_trips() {
        let cfg = DaemonConfig::parse(&text()).expect("valid");
        assert_eq!(cfg, DaemonConfig::local("c", 3, 1, 40_000));
        assert_eq!(cfg.ring_config().nodes, vec![0, 1, 2]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let t = text();
        assert_eq!(
            err_key(&t.replace("token_loss_ms = 1250", "token_loss_ms = 0")),
            "timeouts.token_loss_ms"
        );
        let mut c = DaemonConfig::local("c", 3, 1, 40_000);
        c.daemon.id = 7;
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { key, .. }) if key == "daemon.id"));
        assert_eq!(
            err_key(&t.replace("admin = \"127.0.0.1:40004\"", "admin = \"10.0.0.1:40004\"")),
            "daemon.admin"
        );
        assert_eq!(
            err_key(&t.replace("window_size = 192", "window_size = 1")),
            "window.window_size"
        );
        assert_eq!(err_key(&t.replace("\"d2\"", "\"d0\"")), "peers[2].name");
    }

    #[test]
    fn controlled_mode_needs_its_setup_and_excludes_recording() {
        let key = |c: &DaemonConfig| match c.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        };
        let mut c = DaemonConfig::local("c", 3, 1, 40_000);
        c.runtime.controlled = true;
        assert_eq!(key(&c), "runtime.controlled_setup");
        c.runtime.controlled_setup = Some(PathBuf::from("setup.json"));
        assert!(c.validate().is_ok());
        c.runtime.record = true;
        assert_eq!(key(&c), "runtime.controlled");
    }

    #[test]
    fn packet_payload_must_fit_the_datagram() {
        let mut c = DaemonConfig::local("c", 3, 1, 40_000);
        c.runtime.max_datagram = 1472;
        assert!(
            c.validate().is_ok(),
            "the default payload fits 1472-byte datagrams"
        );
        assert_eq!(c.ring_config().max_packet_payload, 1350);
        c.window.packet_payload = 1351;
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { key, .. }) if key == "window.packet_payload")
        );
        c.window.packet_payload = 10;
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { key, .. }) if key == "window.packet_payload")
        );
        c.runtime.max_datagram = 65_507;
        c.window.packet_payload = 65_507 - DATA_PACKET_OVERHEAD;
        assert!(c.validate().is_ok());
        c.runtime.socket_buffer = 2 << 30;
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { key, .. }) if key == "runtime.socket_buffer")
        );
    }

    #[test]
    fn security_section() {
        let t = text().replace("\n[security]\nmode = \"none\"\n", "\n");
        assert!(!t.contains("[security]"), "{t}");
        let cfg = DaemonConfig::parse(&t).expect("valid");
        assert_eq!(cfg.security.mode, SecurityMode::None);
        assert!(cfg.load_security().expect("none").is_none());
        let on = format!("{t}\n[security]\nmode = \"three-step\"\nca = \"ca.pem\"\n");
        assert_eq!(err_key(&on), "security.cert");
        let on =
            format!("{t}\n[security]\nmode = \"integrated-vs\"\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n");
        assert_eq!(err_key(&on), "security.policy");
        let e = DaemonConfig::parse(&format!("{t}\n[security]\nmode = \"paranoid\"\n")).unwrap_err();
        assert!(e.to_string().contains("paranoid"), "{e}");
        assert_eq!(
            SecurityMode::from_name("optimized-evs"),
            Some(SecurityMode::OptimizedEvs)
        );
        assert_eq!(SecurityMode::from_name("x"), None);
    }

    #[test]
    fn transport_suite_and_the_protected_datagram_bound() {
        let mut c = DaemonConfig::local("c", 3, 1, 40_000);
        for p in &mut c.peers {
            p.sign_pub = Some("11".repeat(32));
        }
        let t = c.to_toml().replace("\n[security]\nmode = \"none\"\n", "\n");
        let sec = "\n[security]\nmode = \"three-step\"\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\npolicy = \"d\"\nsign_key = \"e\"\n";
        let cfg = DaemonConfig::parse(&format!("{t}{sec}")).expect("valid");
        assert_eq!(cfg.security.transport_suite, TransportSuite::Aes256Gcm);
        assert!(
            !cfg.to_toml().contains("transport_suite"),
            "the default is not written"
        );
        for (name, suite) in [
            ("aes-256-gcm", sgc_crypto::seal::Suite::Aes256Gcm),
            ("aes128-cbc-hmac-sha1", sgc_crypto::seal::Suite::Aes128CbcHmacSha1),
            (
                "blowfish-cbc-hmac-sha1",
                sgc_crypto::seal::Suite::BlowfishCbcHmacSha1,
            ),
            ("hmac-sha1", sgc_crypto::seal::Suite::HmacSha1),
        ] {
            let cfg = DaemonConfig::parse(&format!("{t}{sec}transport_suite = \"{name}\"\n")).expect(name);
            assert_eq!(cfg.security.transport_suite.suite(), suite);
            assert_eq!(suite.name(), name);
            let back = DaemonConfig::parse(&cfg.to_toml()).expect("round trip");
            assert_eq!(back.security.transport_suite, cfg.security.transport_suite);
        }
        let e = DaemonConfig::parse(&format!("{t}{sec}transport_suite = \"rot13\"\n")).unwrap_err();
        assert!(e.to_string().contains("rot13"), "{e}");
        // In three-step mode the payload must leave room for the protected formats.
        let mut c = DaemonConfig::parse(&format!("{t}{sec}")).expect("valid");
        c.runtime.max_datagram = 1472;
        c.window.packet_payload = 1350;
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { key, .. }) if key == "window.packet_payload")
        );
        c.window.packet_payload = 1472 - DATA_PACKET_OVERHEAD - crate::protection::PROTECTION_OVERHEAD;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn security_files_are_loaded_relative_to_the_config() {
        use sgc_crypto::pki;
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("sgc-config-sec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        pki::init_ca(&dir.join("ca"), "t").expect("ca");
        let id = pki::issue(&dir.join("ca"), pki::Role::Daemon, "d1", &[]).expect("issue");
        std::fs::write(
            dir.join("policy.toml"),
            crate::policy::allow_all_text(&["alice".into()]),
        )
        .expect("policy");
        let rel = |p: &Path| p.strip_prefix(&dir).expect("inside").display().to_string();
        let sec = format!(
            "\n[security]\nmode = \"three-step\"\nca = {:?}\ncert = {:?}\nkey = {:?}\npolicy = \"policy.toml\"\nsign_key = {:?}\n",
            rel(&dir.join("ca").join(pki::CA_CERT)),
            rel(&id.join(pki::CERT_FILE)),
            rel(&id.join(pki::KEY_FILE)),
            rel(&id.join(sgc_crypto::sign_key::SIGN_KEY_FILE)),
        );
        let file = dir.join("config.toml");
        let mut c = DaemonConfig::local("c", 3, 1, 40_000);
        let other = sgc_crypto::sign_key::to_hex(&[0x11; 32]);
        for p in &mut c.peers {
            p.sign_pub = Some(other.clone());
        }
        if let Some(p) = c.peers.get_mut(1) {
            let mine = sgc_crypto::sign_key::read_public_key(&id.join(sgc_crypto::sign_key::SIGN_PUB_FILE));
            p.sign_pub = Some(sgc_crypto::sign_key::to_hex(&mine.expect("pub")));
        }
        let t = c.to_toml().replace("\n[security]\nmode = \"none\"\n", "\n");
        std::fs::write(&file, format!("{t}{sec}")).expect("write");
        let cfg = DaemonConfig::load(&file).expect("load");
        let m = cfg.load_security().expect("material").expect("on");
        assert_eq!(m.identity, "d1");
        assert_eq!(m.policy.len(), 1);
        std::fs::set_permissions(id.join(pki::KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        match cfg.load_security() {
            Err(ConfigError::Invalid { key, problem }) => {
                assert_eq!(key, "security.key");
                assert!(problem.contains("0644"), "{problem}");
            }
            other => panic!("expected a refused key, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn schema_errors_name_the_key() {
        let e = DaemonConfig::parse(&text().replace("token_loss_ms", "token_lost_ms")).unwrap_err();
        assert!(e.to_string().contains("token_lost_ms"), "{e}");
        let e = DaemonConfig::parse(&text().replace("max_gap = 1024", "max_gap = \"big\"")).unwrap_err();
        assert!(e.to_string().contains("max_gap"), "{e}");
    }
}
