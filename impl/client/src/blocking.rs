//! The blocking client: the async [`crate::Client`] driven by a private tokio runtime whose one
//! worker thread runs the batching writer in the background, so a blocking `multicast` returns as
//! soon as the frame is in the outbox and fast senders still get many frames per write.
//!
//! ```no_run
//! use sgc_client::blocking::Client;
//! use sgc_model::groups::{ClientService, GroupName, Target};
//!
//! let mut c = Client::connect(&"127.0.0.1:4803".parse().unwrap(), None, true)?;
//! let g = GroupName::new("chat").unwrap();
//! c.join(&g)?;
//! c.multicast(&[Target::Group(g)], ClientService::Fifo, 1, b"hi")?;
//! println!("{:?}", c.recv()?);
//! c.disconnect()?;
//! # Ok::<(), sgc_client::ClientError>(())
//! ```

use std::time::Duration;

use sgc_model::groups::{ClientEvent, ClientReq, ClientService, GroupName, PrivateName, Target};
use tokio::runtime::Runtime;

use crate::{ClientError, Endpoint};

/// A blocking connection to a daemon. Every method blocks the calling thread.
#[derive(Debug)]
pub struct Client {
    rt: Runtime,
    inner: crate::Client,
}

impl Client {
    /// See [`crate::Client::connect`].
    pub fn connect(ep: &Endpoint, user: Option<&str>, wants_membership: bool) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sgc-client-writer")
            .enable_io()
            .enable_time()
            .build()?;
        let inner = rt.block_on(crate::Client::connect(ep, user, wants_membership))?;
        Ok(Self { rt, inner })
    }

    /// The session's private name.
    pub fn private_name(&self) -> &PrivateName {
        self.inner.private_name()
    }

    /// See [`crate::Client::join`].
    pub fn join(&self, group: &GroupName) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.join(group))
    }

    /// See [`crate::Client::leave`].
    pub fn leave(&self, group: &GroupName) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.leave(group))
    }

    /// See [`crate::Client::multicast`].
    pub fn multicast(
        &self,
        targets: &[Target],
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.rt
            .block_on(self.inner.multicast(targets, service, mess_type, body))
    }

    /// See [`crate::Client::multicast_self_discard`].
    pub fn multicast_self_discard(
        &self,
        targets: &[Target],
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.rt.block_on(
            self.inner
                .multicast_self_discard(targets, service, mess_type, body),
        )
    }

    /// See [`crate::Client::request`].
    pub fn request(&self, req: &ClientReq) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.request(req))
    }

    /// See [`crate::Client::flush`].
    pub fn flush(&self) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.flush())
    }

    /// The group key of the last membership of `group` (see [`crate::Client::group_key`]).
    pub fn group_key(&self, group: &GroupName) -> Option<&sgc_wire::GroupKeyInfo> {
        self.inner.group_key(group)
    }

    /// The next event, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<ClientEvent, ClientError> {
        self.rt.block_on(self.inner.recv())
    }

    /// Zero-copy receive (see [`crate::Client::recv_with`]).
    pub fn recv_with<R>(&mut self, f: impl FnOnce(crate::EventRef<'_>) -> R) -> Result<R, ClientError> {
        self.rt.block_on(self.inner.recv_with(f))
    }

    /// The next event, or `Ok(None)` after `timeout` without one (Spread's `DONT_BLOCK` with a
    /// zero timeout).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<ClientEvent>, ClientError> {
        let inner = &mut self.inner;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, inner.recv()).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        })
    }

    /// See [`crate::Client::disconnect`].
    pub fn disconnect(self) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.sender().disconnect())
    }
}

impl Drop for Client {
    /// Write what is still queued before the runtime (and its writer) stops; errors are moot.
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.inner.flush());
    }
}
