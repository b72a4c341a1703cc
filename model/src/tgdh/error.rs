//! Typed errors of the TGDH state machine. A rejected message changes nothing; the driver
//! logs the error and goes on.

use super::MemberId;
use super::crypto::{CryptoError, Epoch};

/// Why an input was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TgdhError {
    /// The message names another group.
    #[error("message for group {0:?}, not ours")]
    WrongGroup(String),
    /// The message was sent in another epoch (an older view, an older refresh, or the future).
    #[error("message from epoch {got}, current epoch is {current:?}")]
    WrongEpoch {
        /// Epoch carried by the message.
        got: Epoch,
        /// Our epoch, if we are in a view.
        current: Option<Epoch>,
    },
    /// The sender is not a member of the current view.
    #[error("sender {0} is not a member of the view")]
    NotAMember(MemberId),
    /// The sequence number was already seen from this sender (a replay).
    #[error("replayed message from {sender}: sequence {seq}, last accepted {last}")]
    Replay {
        /// Claimed sender.
        sender: MemberId,
        /// Sequence number carried.
        seq: u64,
        /// Highest sequence number accepted from this sender.
        last: u64,
    },
    /// Signature, key or group-element validation failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The message cannot be applied in the current phase (e.g. a tree outside a merge).
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// A received tree is malformed or inconsistent with the view.
    #[error("malformed tree: {0}")]
    MalformedTree(&'static str),
    /// A blinded key was sent for a node that is not on the sender's key path.
    #[error("blinded key for node {index} is not on the sender's key path")]
    NotOnSenderPath {
        /// Heap index of the node.
        index: u64,
    },
    /// A view that does not contain this member, or that is older than the current one.
    #[error("invalid view: {0}")]
    InvalidView(&'static str),
    /// The message could not be encoded for signing (should not happen).
    #[error("message encoding failed")]
    Encoding,
}
