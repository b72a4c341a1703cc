//! `sgc-client`: the client library of sgc. It connects to a daemon over TCP, TCP with mutual
//! TLS ([`Endpoint::Tls`], `docs/security.md`) or a Unix socket,
//! speaks the [`sgc_wire`] protocol, and gives the application the group-layer events of
//! `sgc_model::groups` (data, memberships, transitional signals, self-leaves, rejections).
//!
//! ```text
//!  application ──join/leave/multicast──► Sender ─► outbox ─► writer task ─► socket ─► daemon
//!  application ◄──────── recv ────────── Receiver ◄─ FrameDecoder<ToClient> ◄─ socket ◄┘
//! ```
//!
//! - [`Client`] (async, tokio) and [`blocking::Client`] (its own runtime, one background
//!   worker) have the same calls: [`Client::connect`], [`Client::join`], [`Client::leave`],
//!   [`Client::multicast`], [`Client::multicast_self_discard`], [`Client::recv`],
//!   [`Client::disconnect`].
//! - Writes are batched: frames are encoded straight into one buffer and a writer task sends all
//!   that accumulated in one write, so fast senders get many frames per system call with no
//!   allocation per message; senders wait above a high-water mark (see the `outbox` module).
//! - Receiving can be zero-copy: [`Client::recv_with`] lends a data message straight from the
//!   receive buffer ([`EventRef`]); [`Client::recv`] returns owned events.
//! - Errors are typed ([`ClientError`]): refusals carry Spread's codes, a vanished daemon is
//!   [`ClientError::DaemonGone`], limit violations are caught before sending.
//!
//! # The seam for virtual synchrony (flush layer)
//!
//! This crate delivers the daemon's *SP-level* events (extended virtual synchrony). Virtual
//! synchrony on closed groups is the flush layer of `groups-and-flush.md` §3, a sans-IO machine
//! (`FlushLayer::handle(FlIn) -> Vec<FlOut>`, `model/src/vs/flush.rs`) that sits on top of this
//! crate without changing it: feed every [`Client::recv`] result in as `FlIn::Sp(event)`, carry
//! out `FlOut::ToDaemon(req)` with [`Client::request`] (the flush layer's `FLUSH_OK` must be sent
//! FIFO, which [`Client::request`] preserves: requests leave in call order on one connection),
//! and hand `FlOut::ToApp` to the application. The [`SpConnection`] trait names exactly these two
//! operations, so the flush driver can be written and tested against a fake. [`vs::VsClient`] is
//! that driver: it runs the model-checked `FlushLayer` itself (no flush logic of its own) and
//! gives the application typed VS events ([`vs::VsEvent`]).

pub mod blocking;
mod client;
mod endpoint;
mod error;
pub mod evs;
pub mod outbox;
pub mod vs;

pub use client::{Client, EventRef, HANDSHAKE_TIMEOUT, Receiver, Sender};
pub use endpoint::{Endpoint, EndpointParseError};
pub use error::ClientError;
use sgc_model::groups::{ClientEvent, ClientReq, GroupName};
pub use sgc_wire::GroupKeyInfo;

/// What a layer above the daemon connection (the VS flush layer) needs: send a request in
/// order, receive the next SP-level event.
pub trait SpConnection {
    /// Queue a request; requests reach the daemon in call order.
    fn request(&self, req: &ClientReq) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// The next SP-level event.
    fn recv(&mut self) -> impl Future<Output = Result<ClientEvent, ClientError>> + Send;
    /// The group key that came with the last membership of `group` (integrated security), if
    /// any; asked right after [`SpConnection::recv`] returned a membership.
    fn group_key(&self, group: &GroupName) -> Option<&GroupKeyInfo> {
        let _ = group;
        None
    }
}

impl SpConnection for Client {
    fn request(&self, req: &ClientReq) -> impl Future<Output = Result<(), ClientError>> + Send {
        Self::request(self, req)
    }
    fn recv(&mut self) -> impl Future<Output = Result<ClientEvent, ClientError>> + Send {
        Self::recv(self)
    }
    fn group_key(&self, group: &GroupName) -> Option<&GroupKeyInfo> {
        Self::group_key(self, group)
    }
}
