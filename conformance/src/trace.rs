//! The trace format (version 1, documented in `docs/conformance.md`): one JSON object per
//! file holding the configuration of a model run, its external events step by step, and the
//! observations each step is expected to produce.
//!
//! ```json
//! {"format": "sgc-trace", "version": 1, "name": "evs-correct-s-all-delivered",
//!  "origin": {"kind": "example", "property": "S-ALL-DELIVERED", "mutant": null, "seed": null},
//!  "run": {"model": "evs", "config": {...}, "steps": [{"events": [...], "expect": [...]}]}}
//! ```
//!
//! The vocabulary is the machines' (pids, ring ids, packets, timers, member indices, views,
//! epochs, key ids), never Stateright's: actor ids, envelopes and checker actions do not
//! appear. Packets and protocol messages are carried as hex of their `postcard` encoding (the
//! machines' own types), with a one-line summary for readers. Key bytes never appear: a key is
//! named by its epoch and key id.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sgc_model::ring::{ConfigId, MsgId, NodeId, Pid, RingConfig, RingId, Service, TimerKind};
use sgc_model::tgdh::crypto::Epoch;

/// The `format` field of every trace.
pub const FORMAT: &str = "sgc-trace";
/// The trace format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// Errors of loading, saving, exporting and decoding traces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a trace in JSON.
    #[error("{path}: not a trace: {source}")]
    Json {
        /// The path (empty when parsed from a string).
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file is a trace of another format or version.
    #[error(
        "unsupported trace format {format:?} version {version} (this build reads {FORMAT:?} version {VERSION})"
    )]
    Version {
        /// The `format` field found.
        format: String,
        /// The `version` field found.
        version: u32,
    },
    /// A hex field is malformed.
    #[error("malformed hex: {0}")]
    Hex(String),
    /// A packet or message could not be encoded or decoded.
    #[error("{what} does not decode: {reason}")]
    Codec {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The codec's message.
        reason: String,
    },
    /// A path of the checker does not fit the trace vocabulary (a bug of the exporter).
    #[error("cannot export: {0}")]
    Export(String),
}

/// Bytes written as a lowercase hex string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl Hex {
    /// Parses a hex string.
    pub fn parse(s: &str) -> Result<Self, TraceError> {
        if !s.len().is_multiple_of(2) {
            return Err(TraceError::Hex(format!("odd length {}", s.len())));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(TraceError::Hex(format!("bad digit {:?}", char::from(c)))),
        };
        s.as_bytes()
            .chunks(2)
            .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
            .collect::<Result<Vec<u8>, TraceError>>()
            .map(Self)
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Encodes a machine value (packet, protocol message) for a trace.
pub fn encode<T: Serialize>(what: &'static str, v: &T) -> Result<Hex, TraceError> {
    postcard::to_allocvec(v).map(Hex).map_err(|e| TraceError::Codec {
        what,
        reason: e.to_string(),
    })
}

/// Decodes a machine value of a trace.
pub fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, h: &Hex) -> Result<T, TraceError> {
    postcard::from_bytes(&h.0).map_err(|e| TraceError::Codec {
        what,
        reason: e.to_string(),
    })
}

/// Why a path was exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// The checker's example of a `sometimes` property.
    Example,
    /// The checker's counterexample of an `always` property (under a seeded mutant).
    Counterexample,
    /// A seeded random walk.
    Walk,
}

/// Where a trace comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Example, counterexample or walk.
    pub kind: OriginKind,
    /// The property discovered (examples and counterexamples).
    pub property: Option<String>,
    /// The seeded bug the run was made with.
    pub mutant: Option<String>,
    /// The walk's seed (walks).
    pub seed: Option<u64>,
}

/// One step: external events applied together, and every observation they must produce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step<E, O> {
    /// The events, in order.
    pub events: Vec<E>,
    /// The observations, in order (`evs`) or as a set sorted by member (`tgdh`).
    pub expect: Vec<O>,
}

/// A trace file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    /// A file-name-safe name, unique within an export.
    pub name: String,
    /// Why it was exported.
    pub origin: Origin,
    /// The model run.
    pub run: Run,
}

impl Trace {
    /// A trace of the current format.
    pub fn new(name: String, origin: Origin, run: Run) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            name,
            origin,
            run,
        }
    }

    /// The model's name (`evs`, `tgdh`).
    pub const fn model(&self) -> &'static str {
        match self.run {
            Run::Evs(_) => "evs",
            Run::Tgdh(_) => "tgdh",
        }
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        match &self.run {
            Run::Evs(r) => r.steps.len(),
            Run::Tgdh(r) => r.steps.len(),
        }
    }

    /// Parses a trace, refusing other formats and versions.
    pub fn from_json(text: &str) -> Result<Self, TraceError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let json = |source| TraceError::Json {
            path: PathBuf::new(),
            source,
        };
        let h: Header = serde_json::from_str(text).map_err(json)?;
        if h.format != FORMAT || h.version != VERSION {
            return Err(TraceError::Version {
                format: h.format,
                version: h.version,
            });
        }
        serde_json::from_str(text).map_err(json)
    }

    /// The trace as pretty JSON.
    pub fn to_json(&self) -> String {
        // a Trace holds only strings, numbers, sequences and string-keyed maps
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads one trace file.
    pub fn load(path: &Path) -> Result<Self, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            TraceError::Json { source, .. } => TraceError::Json {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }
}

/// The `*.json` files of `dir`, sorted by name.
pub fn trace_files(dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let io = |source| TraceError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Writes each trace to `dir/<name>.json` (creating `dir`); returns the paths written.
pub fn write_traces(dir: &Path, traces: &[Trace]) -> Result<Vec<PathBuf>, TraceError> {
    std::fs::create_dir_all(dir).map_err(|source| TraceError::Io {
        path: dir.to_owned(),
        source,
    })?;
    traces
        .iter()
        .map(|t| {
            let path = dir.join(format!("{}.json", t.name));
            std::fs::write(&path, t.to_json() + "\n").map_err(|source| TraceError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// A model run: its configuration and steps. New models (`groups`, `vs`) add a variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum Run {
    /// The daemon ring (`sgc check evs`).
    Evs(EvsRun),
    /// TGDH key agreement (`sgc check tgdh`).
    Tgdh(TgdhRun),
}

// ---------------------------------------------------------------------------------------------
// evs: the daemon ring

/// A ring run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvsRun {
    /// The configuration.
    pub config: EvsConfig,
    /// The steps.
    pub steps: Vec<Step<EvsEvent, EvsObs>>,
}

/// How the daemons' first incarnations start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvsStart {
    /// `Daemon::new` and `Event::Boot`.
    Boot,
    /// Already installed in `ring` with `members` (`ring::check::formed_start`).
    Formed {
        /// The ring.
        ring: RingId,
        /// Its members, sorted.
        members: Vec<Pid>,
    },
}

/// The network's ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// Per-link FIFO: a delivery is of the oldest packet in flight on its link.
    Fifo,
    /// Unordered (UDP-like).
    Unordered,
}

/// The configuration of a ring run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvsConfig {
    /// The machine configuration every daemon is handed (node ids, timeouts, mutant).
    pub ring: RingConfig,
    /// How first incarnations start.
    pub start: EvsStart,
    /// Network ordering.
    pub network: NetworkKind,
}

/// A packet on the wire: the sender's stamped pid, the `postcard` bytes of the
/// `ring::Packet`, and a summary for readers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePacket {
    /// The sending daemon incarnation (the `from` of `Event::Recv`).
    pub sender: Pid,
    /// `postcard` encoding of the packet.
    pub bytes: Hex,
    /// One line for readers (not compared).
    pub summary: String,
}

/// An external event of a ring run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvsEvent {
    /// The first incarnation of `node` starts (per [`EvsConfig::start`]).
    Start {
        /// Node.
        node: NodeId,
    },
    /// A client submits a message to `node` (`Event::Submit`).
    Submit {
        /// Node.
        node: NodeId,
        /// Message id (origin is the node's current incarnation).
        id: MsgId,
        /// Service.
        service: Service,
        /// Payload.
        payload: Hex,
    },
    /// The network delivers a packet in flight from `from` to `to` (`Event::Recv`).
    Deliver {
        /// Sending node.
        from: NodeId,
        /// Receiving node.
        to: NodeId,
        /// The packet.
        packet: WirePacket,
    },
    /// The network loses a packet in flight.
    Lose {
        /// Sending node.
        from: NodeId,
        /// Receiving node.
        to: NodeId,
        /// The packet.
        packet: WirePacket,
    },
    /// An armed timer of `node` fires (`Event::Timer`).
    Timer {
        /// Node.
        node: NodeId,
        /// Which timer.
        timer: TimerKind,
    },
    /// `node` crashes: its timers and the packets in flight to it are lost.
    Crash {
        /// Node.
        node: NodeId,
    },
    /// A crashed `node` restarts from its persisted record (`Daemon::new` + `Event::Boot`).
    Restart {
        /// Node.
        node: NodeId,
    },
    /// The network is cut: nodes with different side numbers (indexed by node) no longer reach
    /// each other; packets in flight across the cut are lost.
    Partition {
        /// Side of each node.
        sides: Vec<u8>,
    },
    /// Every cut is healed.
    Heal,
}

/// What a daemon's client sees: a delivery or a configuration change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EvsObs {
    /// `Command::Deliver`.
    Deliver {
        /// Delivering node.
        node: NodeId,
        /// Message.
        id: MsgId,
        /// Service.
        service: Service,
        /// Configuration it is delivered in.
        config: ConfigId,
    },
    /// `Command::DeliverConfig`.
    Config {
        /// Installing node.
        node: NodeId,
        /// Configuration.
        config: ConfigId,
        /// Its members.
        members: Vec<Pid>,
    },
}

impl fmt::Display for EvsObs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deliver {
                node,
                id,
                service,
                config,
            } => write!(f, "d{node} deliver {id} {service:?} in {config}"),
            Self::Config {
                node,
                config,
                members,
            } => {
                let m: Vec<String> = members.iter().map(Pid::to_string).collect();
                write!(f, "d{node} config {config} [{}]", m.join(", "))
            }
        }
    }
}

impl fmt::Display for EvsEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start { node } => write!(f, "start d{node}"),
            Self::Submit {
                node, id, service, ..
            } => write!(f, "submit {id} {service:?} to d{node}"),
            Self::Deliver { from, to, packet } => write!(f, "d{from}->d{to}: {}", packet.summary),
            Self::Lose { from, to, packet } => write!(f, "LOSE d{from}->d{to}: {}", packet.summary),
            Self::Timer { node, timer } => write!(f, "timer {timer:?} at d{node}"),
            Self::Crash { node } => write!(f, "CRASH d{node}"),
            Self::Restart { node } => write!(f, "RESTART d{node}"),
            Self::Partition { sides } => write!(f, "PARTITION {sides:?}"),
            Self::Heal => write!(f, "HEAL"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tgdh: key agreement over a virtually synchronous group oracle

/// A TGDH run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TgdhRun {
    /// The configuration.
    pub config: TgdhConfig,
    /// The steps.
    pub steps: Vec<Step<TgdhEvent, TgdhObs>>,
}

/// The configuration of a TGDH run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TgdhConfig {
    /// Principals `0..universe`, named `m0`, `m1`, ...
    pub universe: usize,
    /// The group name handed to every member.
    pub group: String,
    /// The crypto provider the key ids are computed with (`symbolic`).
    pub provider: String,
    /// The seeded bug (`tgdh::member::Mutant` name).
    pub mutant: Option<String>,
}

/// A protocol message: the `postcard` bytes of a `tgdh::message::Signed` and a summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    /// `postcard` encoding.
    pub bytes: Hex,
    /// One line for readers (not compared).
    pub summary: String,
}

/// An external event of a TGDH run: what the group communication system (an agreed-order,
/// virtually synchronous oracle) and the adversary do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TgdhEvent {
    /// A view is installed at `members` (ascending): members not in the group are created
    /// (keeping their share counter across incarnations), each leaves its old component, and
    /// each is handed `Event::View` in ascending order; the new component's queue is empty.
    View {
        /// View id (strictly increasing).
        view: u64,
        /// Principals.
        members: Vec<usize>,
    },
    /// `member` leaves: its state is discarded.
    Leave {
        /// Principal.
        member: usize,
    },
    /// The head of the queue of the component in `view` is delivered to each of its members in
    /// ascending order; it must be `message`.
    Deliver {
        /// View of the component.
        view: u64,
        /// The message.
        message: WireMessage,
    },
    /// Every queued message of the component in `view` is delivered, in order, until none is
    /// left (used to grow the initial group).
    Quiesce {
        /// View of the component.
        view: u64,
    },
    /// `member`'s policy requests a key refresh (`Event::RequestRefresh`).
    Refresh {
        /// Principal.
        member: usize,
    },
    /// The adversary appends an old message to the queue of the component in `view`.
    Replay {
        /// View of the component.
        view: u64,
        /// The message.
        message: WireMessage,
    },
}

impl fmt::Display for TgdhEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::View { view, members } => write!(f, "view {view} {members:?}"),
            Self::Leave { member } => write!(f, "leave m{member}"),
            Self::Deliver { view, message } => write!(f, "deliver in view {view}: {}", message.summary),
            Self::Quiesce { view } => write!(f, "deliver everything queued in view {view}"),
            Self::Refresh { member } => write!(f, "refresh requested by m{member}"),
            Self::Replay { view, message } => write!(f, "REPLAY into view {view}: {}", message.summary),
        }
    }
}

/// What a member reports: a key installed (`Command::KeyReady`), by epoch and key id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TgdhObs {
    /// A group key is ready.
    Key {
        /// Principal.
        member: usize,
        /// Epoch of the key.
        epoch: Epoch,
        /// Its public id (never the key).
        key_id: u64,
    },
}

impl fmt::Display for TgdhObs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key {
                member,
                epoch,
                key_id,
            } => write!(f, "m{member} key {key_id:08x} epoch {epoch}"),
        }
    }
}
