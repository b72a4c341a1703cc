//! [`WireError`]: everything that can be wrong with bytes received from a peer, or with a value
//! that cannot be put on the wire. Decoding never panics and never allocates beyond the frame
//! limits; every refusal is one of these variants.

use sgc_model::groups::{ConnectRefusal, NameError};

use crate::Version;

/// Why a frame could not be decoded (peer misbehaviour) or encoded (a value outside the limits).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix announces a frame longer than the limit of this direction.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// The announced length (kind byte + body).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length prefix is 0: a frame must hold at least its kind byte.
    #[error("empty frame (length 0)")]
    EmptyFrame,
    /// The kind byte names no frame of this protocol version and direction.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The body ends before the field `what`.
    #[error("frame body truncated while reading {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The body has bytes after its last field.
    #[error("{0} trailing bytes after the frame body")]
    TrailingBytes(usize),
    /// The hello does not start with the magic `SGC1`.
    #[error("bad magic: not an sgc client hello")]
    BadMagic,
    /// The peer speaks another major version.
    #[error("protocol version {theirs} is not compatible with {ours}")]
    Version {
        /// Our version.
        ours: Version,
        /// The peer's version.
        theirs: Version,
    },
    /// A name is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    NotUtf8 {
        /// Which field.
        what: &'static str,
    },
    /// A name breaks the naming rules.
    #[error("invalid name: {0}")]
    Name(#[from] NameError),
    /// A multicast with no target.
    #[error("a multicast needs at least one target")]
    NoTargets,
    /// A multicast with more than [`sgc_model::groups::MAX_TARGETS`] targets.
    #[error("{0} targets exceed the limit of 100")]
    TooManyTargets(usize),
    /// A payload longer than [`crate::MAX_MESSAGE`].
    #[error("payload of {0} bytes exceeds the limit of {max}", max = crate::MAX_MESSAGE)]
    MessageTooLong(usize),
    /// An enumerated field holds a value this version does not define.
    #[error("invalid {what} value {value}")]
    BadValue {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: i64,
    },
}

impl WireError {
    /// The handshake refusal a daemon should answer for a bad hello, if any: an illegal name
    /// gives [`ConnectRefusal::IllegalName`], a version mismatch [`ConnectRefusal::Version`];
    /// anything else (not an sgc client at all) is answered by closing the connection.
    pub const fn refusal(&self) -> Option<ConnectRefusal> {
        match self {
            Self::Name(_) | Self::NotUtf8 { .. } => Some(ConnectRefusal::IllegalName),
            Self::Version { .. } => Some(ConnectRefusal::Version),
            _ => None,
        }
    }
}
