//! The typed events and errors of the VS client ([`super::VsClient`]): what the flush layer
//! (`sgc_model::vs::FlEvent`) hands the application, with each data message tagged by the VS
//! view it is delivered in.

use sgc_crypto::e2e::E2eError;
use sgc_model::groups::{Cause, ClientReq, DataMsg, Gid, GroupName, PrivateName, RejectReason};
use sgc_model::vs::FlError;

use crate::ClientError;

/// A VS view of a closed group, as installed by the flush layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsView {
    /// The group.
    pub group: GroupName,
    /// The view id (the daemons' group view id of the SP view it installs).
    pub view: Gid,
    /// Why it changed (`Network` once several changes collapsed into one).
    pub cause: Cause,
    /// Members in canonical order.
    pub members: Vec<PrivateName>,
    /// For `Network`: the members of the previous VS view that moved with this client into this
    /// one (virtual synchrony holds among them); otherwise the joined or departed member.
    pub vs_set: Vec<PrivateName>,
}

/// A data message and the VS view it is delivered in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsData {
    /// The message (user type and body as the sender gave them).
    pub msg: DataMsg,
    /// The receiver's installed view of the message's group when it is delivered, which is the
    /// view the sender sent it in (sending-view delivery); `None` for a private message.
    pub view: Option<Gid>,
    /// The message was encrypted end to end with the view's group key and opened (Integrated
    /// VS); `msg.body` is the plaintext. `false`: the view has no key, the body is as sent.
    pub decrypted: bool,
}

/// A message of a keyed view that does not open with the keys of the view it is delivered in
/// (not encrypted, under a key this client never had for the view, or altered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsUndecryptable {
    /// The message as delivered (`body` is the undecryptable bytes, never shown as data).
    pub msg: DataMsg,
    /// The view it was delivered in.
    pub view: Option<Gid>,
    /// Why it does not open (the key id its header names, if any, is in the error).
    pub error: E2eError,
}

/// An event for a VS application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VsEvent {
    /// A new VS view (the first one after a join comes without a flush request; every later
    /// one follows a [`VsEvent::FlushRequest`] answered with [`super::VsClient::flush_ok`]).
    View(VsView),
    /// The group's view is about to change: send what must go in the current view, then call
    /// [`super::VsClient::flush_ok`] once; no multicast to the group is allowed after that until
    /// the next [`VsEvent::View`].
    FlushRequest(GroupName),
    /// A data message, in the view it was sent in.
    Data(VsData),
    /// A message of a keyed view that does not decrypt (Integrated VS); never given as data.
    Undecryptable(VsUndecryptable),
    /// The current view lost members; its guarantees are now those of a transitional view.
    Transition {
        /// The group.
        group: GroupName,
        /// The installed view.
        view: Gid,
    },
    /// This client's own leave took effect; nothing of this group follows.
    SelfLeave(GroupName),
    /// The daemon refused a request (a refused join or leave is undone).
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The refused request.
        req: ClientReq,
    },
}

/// Why a VS client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VsError {
    /// The group is closed and this client is not (yet, or any more) a member of it: it may not
    /// send to it, leave it or flush it (or, for a join, it is already in it).
    #[error("not a member of group {0} (closed group; ILLEGAL_GROUP)")]
    NotMember(GroupName),
    /// A multicast after `flush_ok` and before the next view, a `flush_ok` without a pending
    /// flush request, or a second one.
    #[error("not allowed in this flush state of group {0} (ILLEGAL_STATE)")]
    IllegalState(GroupName),
    /// Any other refusal of the flush layer (reserved message type, several groups as targets).
    #[error("refused by the flush layer: {0}")]
    Refused(FlError),
    /// The message could not be encrypted (beyond AES-GCM's length limit).
    #[error("cannot encrypt: {0}")]
    Encrypt(E2eError),
    /// The connection to the daemon failed (or the request breaks a protocol limit).
    #[error(transparent)]
    Connection(#[from] ClientError),
}

impl VsError {
    /// The error for a flush-layer refusal of a call about `group`.
    pub(crate) fn from_fl(e: FlError, group: Option<&GroupName>) -> Self {
        match (e, group) {
            (FlError::IllegalGroup, Some(g)) => Self::NotMember(g.clone()),
            (FlError::IllegalState, Some(g)) => Self::IllegalState(g.clone()),
            (e, _) => Self::Refused(e),
        }
    }
}
