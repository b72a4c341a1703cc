//! Packet sealing for the Three-Step variant: daemon↔daemon datagrams encrypted and
//! authenticated with keys derived from the servers' key (issue 6 §3, `docs/security.md`).
//!
//! ```text
//!   servers' key K (epoch e) ──HKDF──► PRK_e ──HKDF(label, suite, e, sender)──► K_enc, K_mac
//!
//!   datagram = header (clear, authenticated; carries SealInfo) ‖ sealed body ‖ tag
//!              └──────── AAD / MAC input ───────────────────┘
//! ```
//!
//! - [`Suite`]: AES-256-GCM (default), AES-128-CBC + HMAC-SHA1, Blowfish-CBC + HMAC-SHA1
//!   (encrypt-then-MAC) and HMAC-SHA1 only; the whole datagram, header included, is
//!   authenticated.
//! - [`KeyRing`]: current and previous epoch, per-sender keys, a 64-bit sequence number per
//!   sender and epoch (the GCM nonce is sender ‖ sequence number, never reused), a
//!   [`ReplayWindow`] per sender and epoch.
//! - [`SealInfo`]: the fields a receiver needs before it can open a packet, in a fixed
//!   25-byte encoding that framings embed in their header.
//!
//! Errors are typed ([`SealError`]) with a short [`label`](SealError::label) for drop
//! counters; no input makes this module panic (proptests in `tests/seal.rs`).

mod replay;
mod ring;
mod suite;

pub use replay::{ReplayWindow, WINDOW};
pub use ring::{KeyRing, MAX_SENDERS, MIN_KEY_LEN};
pub use suite::{GCM_TAG_LEN, HMAC_SHA1_LEN, Suite};

/// Why a packet could not be sealed or opened, or a key not installed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// No servers' key is installed.
    #[error("no servers' key installed")]
    NoKey,
    /// The packet's epoch is older than the previous one, or not held.
    #[error("epoch {0} is not held (only the current and previous are)")]
    UnknownEpoch(u64),
    /// The packet's epoch is newer than the current one (its key is not installed here yet).
    #[error("epoch {0} is newer than the installed key")]
    FutureEpoch(u64),
    /// `install` with an epoch not above the current one.
    #[error("epoch {epoch} is not newer than the current epoch {current}")]
    EpochNotNewer {
        /// The refused epoch.
        epoch: u64,
        /// The current epoch.
        current: u64,
    },
    /// A servers' key shorter than [`MIN_KEY_LEN`].
    #[error("servers' key of {0} bytes is too short")]
    KeyTooShort(usize),
    /// The packet names another suite than the ring's.
    #[error("packet sealed with {got}, expected {expected}")]
    WrongSuite {
        /// This ring's suite.
        expected: Suite,
        /// The packet's.
        got: Suite,
    },
    /// An unknown suite identifier in a header.
    #[error("unknown suite id {0}")]
    UnknownSuite(u8),
    /// The sequence number was already accepted from this sender in this epoch.
    #[error("replayed packet (sender {sender:#x}, seq {seq})")]
    Replay {
        /// Sender id.
        sender: u64,
        /// Sequence number.
        seq: u64,
    },
    /// The sequence number is below this sender's replay window.
    #[error("packet older than the replay window (sender {sender:#x}, seq {seq})")]
    TooOld {
        /// Sender id.
        sender: u64,
        /// Sequence number.
        seq: u64,
    },
    /// Tag or MAC mismatch: tampered, forged, or sealed under another key.
    #[error("authentication failed")]
    Unauthentic,
    /// Too short to hold a tag (or a header).
    #[error("truncated sealed packet")]
    Truncated,
    /// Authentic but not correctly padded (only a key holder can produce it).
    #[error("bad CBC padding in an authentic packet")]
    BadPadding,
    /// More distinct senders in one epoch than [`MAX_SENDERS`].
    #[error("too many senders in one epoch")]
    TooManySenders,
    /// 2^64 packets sent in one epoch.
    #[error("sequence numbers of this epoch exhausted")]
    SequenceExhausted,
    /// A broken internal invariant (never expected; reported, not panicked).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl SealError {
    /// A short label for counters (`dropped_seal_<label>`) and logs.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::NoKey => "no_key",
            Self::UnknownEpoch(_) => "unknown_epoch",
            Self::FutureEpoch(_) => "future_epoch",
            Self::EpochNotNewer { .. } => "epoch_not_newer",
            Self::KeyTooShort(_) => "key_too_short",
            Self::WrongSuite { .. } | Self::UnknownSuite(_) => "wrong_suite",
            Self::Replay { .. } => "replay",
            Self::TooOld { .. } => "too_old",
            Self::Unauthentic => "unauthentic",
            Self::Truncated => "truncated",
            Self::BadPadding => "bad_padding",
            Self::TooManySenders => "too_many_senders",
            Self::SequenceExhausted => "sequence_exhausted",
            Self::Internal(_) => "internal",
        }
    }
}

/// What a receiver reads from a sealed packet's header: suite, epoch, sender id and the
/// sender's sequence number. Encoded as 25 bytes: suite id (1), epoch, sender, seq (u64
/// big-endian each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealInfo {
    /// The suite.
    pub suite: Suite,
    /// The epoch of the key.
    pub epoch: u64,
    /// The sender id (the daemon transport uses `node << 32 | incarnation`).
    pub sender: u64,
    /// The sender's sequence number in this epoch.
    pub seq: u64,
}

impl SealInfo {
    /// Encoded length.
    pub const LEN: usize = 25;

    /// Write the 25-byte encoding into the start of `out` (no-op if `out` is shorter).
    pub fn write_to(&self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..Self::LEN) {
            o[0] = self.suite.id();
            o[1..9].copy_from_slice(&self.epoch.to_be_bytes());
            o[9..17].copy_from_slice(&self.sender.to_be_bytes());
            o[17..25].copy_from_slice(&self.seq.to_be_bytes());
        }
    }

    /// Read the encoding from the start of `bytes`.
    pub fn read_from(bytes: &[u8]) -> Result<Self, SealError> {
        let Some(b) = bytes.first_chunk::<{ Self::LEN }>() else {
            return Err(SealError::Truncated);
        };
        let suite = Suite::from_id(b[0]).ok_or(SealError::UnknownSuite(b[0]))?;
        let u = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(x)
        };
        Ok(Self {
            suite,
            epoch: u(1),
            sender: u(9),
            seq: u(17),
        })
    }
}
