//! `sgc-wire`: the client↔daemon wire protocol of sgc, pure (no sockets, no clocks).
//!
//! ```text
//!  client library                                              daemon session
//!  ClientReq ─► encode_req ─► [u32 len][u8 kind][body] ─► FrameDecoder<ToDaemon> ─► ClientReq
//!  ClientEvent ◄─ FrameDecoder<ToClient> ◄─ [u32 len][u8 kind][body] ◄─ encode_event ◄─ ClientEvent
//! ```
//!
//! A connection starts with a [`Hello`] from the client, answered by [`Accept`] (with the
//! session's private name) or a refusal (Spread's error numbers, then close). Then the client
//! sends requests ([`sgc_model::groups::ClientReq`]) and the daemon events
//! ([`sgc_model::groups::ClientEvent`]), and a `Closing` frame before it closes a session itself.
//! Every field is little-endian with an explicit layout, documented byte by byte in
//! `docs/protocol.md`, so clients in other languages can be written from that document alone.
//!
//! Built for throughput: encoders append to a caller's buffer (`Vec<u8>` or `BytesMut`) so many
//! frames go out in one write; [`encode_send`] and [`encode_data`] take borrowed parts; decoding
//! works on a buffer holding many frames, and allocates only the decoded values (the payload and
//! the names). Limits ([`MAX_MESSAGE`], [`MAX_TO_DAEMON_FRAME`], [`MAX_TO_CLIENT_FRAME`], 100
//! targets, name rules) are checked on decode before anything is allocated, and on encode so
//! that a frame a peer would refuse is never written.
//!
//! ```
//! use sgc_model::groups::{ClientReq, GroupName};
//! use sgc_wire::{FrameDecoder, ToDaemon, encode_req};
//!
//! let mut out = Vec::new();
//! encode_req(&ClientReq::Join(GroupName::new("chat").unwrap()), &mut out).unwrap();
//! encode_req(&ClientReq::Disconnect, &mut out).unwrap();
//!
//! let mut dec = FrameDecoder::<ToDaemon>::new();
//! dec.feed(&out[..3]); // a partial frame waits for the rest
//! assert_eq!(dec.next_frame().unwrap(), None);
//! dec.feed(&out[3..]);
//! assert!(matches!(dec.next_frame().unwrap(), Some(ToDaemon::Req(ClientReq::Join(_)))));
//! assert_eq!(dec.next_frame().unwrap(), Some(ToDaemon::Req(ClientReq::Disconnect)));
//! assert_eq!(dec.next_frame().unwrap(), None);
//! ```

pub mod borrowed;
pub mod codec;
pub mod decoder;
pub mod error;
pub mod frame;

pub use borrowed::{DataRef, PrivateNameRef, TargetRef, TargetsRef, ToClientRef};
pub use codec::WireBuf;
pub use decoder::FrameDecoder;
pub use error::WireError;
pub use frame::{
    Accept, Frame, GroupKeyInfo, Hello, MAGIC, MAX_GROUP_KEY, MAX_TO_CLIENT_FRAME, MAX_TO_DAEMON_FRAME,
    RawFrame, ToClient, ToDaemon, decode_frame, encode_accept, encode_closing, encode_data, encode_event,
    encode_hello, encode_keyed_membership, encode_refuse, encode_req, encode_send, refusal_code,
    refusal_from_code, split_frame,
};

/// Largest payload of one multicast, in bytes.
pub const MAX_MESSAGE: usize = 1 << 20;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: Version = Version {
    major: 1,
    minor: 2,
    patch: 0,
};

/// A protocol version. Peers are compatible when their major versions are equal; a peer must not
/// send frames or flags newer than the minor version the other side announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u8,
    /// Additive changes (new frame kinds or flags, used only when both sides know them).
    pub minor: u8,
    /// Fixes that do not change the bytes.
    pub patch: u8,
}

impl Version {
    /// The first version with KEYED_MEMBERSHIP frames (group keys).
    pub const KEYED: Self = Self {
        major: 1,
        minor: 1,
        patch: 0,
    };

    /// The first version with UNDECRYPTABLE frames (Optimized EVS).
    pub const EVS_FIX: Self = Self {
        major: 1,
        minor: 2,
        patch: 0,
    };

    /// Whether a peer announcing this version accepts KEYED_MEMBERSHIP frames.
    pub fn accepts_keys(self) -> bool {
        self.major == Self::KEYED.major && self.minor >= Self::KEYED.minor
    }

    /// Whether a peer announcing this version accepts UNDECRYPTABLE frames.
    pub fn accepts_undecryptable(self) -> bool {
        self.major == Self::EVS_FIX.major && self.minor >= Self::EVS_FIX.minor
    }

    /// `Ok` if `theirs` can talk to this crate's [`PROTOCOL_VERSION`].
    pub fn check_compatible(theirs: Self) -> Result<(), WireError> {
        if theirs.major == PROTOCOL_VERSION.major {
            Ok(())
        } else {
            Err(WireError::Version {
                ours: PROTOCOL_VERSION,
                theirs,
            })
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}
