//! [`ClientError`]: everything a client call can fail with, split into the daemon's decisions
//! (refused, closed), the daemon vanishing, TLS and identity failures, local limit violations, protocol violations by the
//! daemon, and I/O.

use sgc_model::groups::{ConnectRefusal, KillReason};
use sgc_wire::{WireError, refusal_code};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The daemon refused the connection (see [`ClientError::code`] for Spread's number).
    #[error("connection refused by the daemon: {0:?} ({code})", code = refusal_code(*.0))]
    Refused(ConnectRefusal),
    /// The daemon closed the connection (end of stream or reset): Spread's `CONNECTION_CLOSED`.
    #[error("the daemon closed the connection")]
    DaemonGone,
    /// The daemon ended the session and said why before closing.
    #[error("the daemon closed the session: {0:?}")]
    Closed(KillReason),
    /// This client already disconnected.
    #[error("the client has disconnected")]
    Disconnected,
    /// The request breaks a protocol limit (payload size, target count, name rules); nothing was
    /// sent and the connection is still usable.
    #[error("request outside the protocol limits: {0}")]
    LimitHit(WireError),
    /// The daemon sent bytes that break the protocol; the connection is unusable.
    #[error("protocol violation by the daemon: {0}")]
    Wire(WireError),
    /// The daemon sent a valid frame at a point where it is not allowed.
    #[error("unexpected frame from the daemon: {0}")]
    UnexpectedFrame(&'static str),
    /// Connecting, reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed, or the daemon ended TLS with an alert (typically: it does not
    /// accept this client certificate, or the daemon's certificate is not from the trusted CA).
    #[error("tls: {0}")]
    Tls(String),
    /// The client's identity (certificate, key, CA) could not be loaded.
    #[error("identity: {0}")]
    Identity(#[from] sgc_crypto::pki::PkiError),
}

impl ClientError {
    /// Spread's error number for this error, where there is one (`REJECT_*`, `CONNECTION_CLOSED`
    /// −8, `NET_ERROR_ON_SESSION` −18, `MESSAGE_TOO_LONG` −17, `ILLEGAL_MESSAGE` −13).
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Refused(r) => Some(i32::from(refusal_code(*r))),
            Self::DaemonGone | Self::Closed(_) | Self::Disconnected => Some(-8),
            Self::LimitHit(WireError::MessageTooLong(_)) => Some(-17),
            Self::LimitHit(_) => Some(-13),
            Self::Tls(_) => Some(-9),
            Self::Wire(_) | Self::UnexpectedFrame(_) | Self::Io(_) => Some(-18),
            Self::Identity(_) => None,
        }
    }

    /// Map an I/O error of an established connection: a reset, broken pipe or early end of
    /// stream means the daemon is gone.
    pub(crate) fn from_io(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Self::Tls(t.to_string());
        }
        match e.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => Self::DaemonGone,
            _ => Self::Io(e),
        }
    }
}
