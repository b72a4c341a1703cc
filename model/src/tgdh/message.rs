//! TGDH protocol messages: what a member broadcasts to its group, in agreed order.
//!
//! Every message carries the group name, the epoch it was sent in, the sender, the sender's
//! sequence number and a signature over the canonical encoding of all of these and the body.

use serde::{Deserialize, Serialize};

use super::MemberId;
use super::crypto::Epoch;
use super::error::TgdhError;
use super::tree::PublicTree;

/// Domain separation prefix of the signed encoding.
const SIGNING_CONTEXT: &[u8] = b"sgc tgdh message v1\0";

/// The body of a protocol message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Body<P> {
    /// Merge round 1: a subgroup's whole tree (structure and every blinded key), sent by the
    /// subgroup's rightmost member after refreshing its share.
    Tree(PublicTree<P>),
    /// Blinded keys a sponsor computed, by heap index, all on the sponsor's key path.
    Keys(Vec<(u64, P)>),
    /// A request to refresh the group key without a membership change.
    Refresh,
}

/// An unsigned protocol message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Message<P> {
    /// Group name.
    pub group: String,
    /// Epoch the message was sent in.
    pub epoch: Epoch,
    /// Sender.
    pub sender: MemberId,
    /// Sender's sequence number (strictly increasing per sender).
    pub seq: u64,
    /// Content.
    pub body: Body<P>,
}

impl<P: Serialize> Message<P> {
    /// The canonical bytes that are signed.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, TgdhError> {
        let mut out = SIGNING_CONTEXT.to_vec();
        let body = postcard::to_allocvec(self).map_err(|_| TgdhError::Encoding)?;
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// A signed protocol message, as broadcast and delivered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signed<P, G> {
    /// The message.
    pub message: Message<P>,
    /// Signature by `message.sender` over [`Message::signing_bytes`].
    pub signature: G,
}
