//! The blocking VS client: [`super::VsClient`] over a [`crate::Client`], driven by a private
//! tokio runtime (one background worker for the batching writer), as [`crate::blocking::Client`]
//! does for the plain client.
//!
//! ```no_run
//! use sgc_client::vs::VsEvent;
//! use sgc_client::vs::blocking::VsClient;
//! use sgc_model::groups::{ClientService, GroupName};
//!
//! let mut c = VsClient::connect(&"127.0.0.1:4803".parse().unwrap(), Some("alice"))?;
//! let g = GroupName::new("chat").unwrap();
//! c.join(&g)?;
//! for _ in 0..10 {
//!     match c.recv()? {
//!         VsEvent::View(_) => c.multicast(&g, ClientService::Agreed, 0, b"hi")?,
//!         VsEvent::FlushRequest(g) => c.flush_ok(&g)?,
//!         other => println!("{other:?}"),
//!     }
//! }
//! c.disconnect()?;
//! # Ok::<(), sgc_client::vs::VsError>(())
//! ```

use std::time::Duration;

use sgc_model::groups::{ClientService, Gid, GroupName, Multicast, PrivateName};
use tokio::runtime::Runtime;

use super::{VsError, VsEvent};
use crate::{ClientError, Endpoint};

/// A blocking VS connection. Every method blocks the calling thread; end it with
/// [`VsClient::disconnect`] (dropping it may lose requests not yet written).
#[derive(Debug)]
pub struct VsClient {
    rt: Runtime,
    inner: super::VsClient,
}

impl VsClient {
    /// See [`super::VsClient::connect`].
    pub fn connect(ep: &Endpoint, user: Option<&str>) -> Result<Self, VsError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sgc-vs-writer")
            .enable_io()
            .enable_time()
            .build()
            .map_err(ClientError::Io)?;
        let inner = rt.block_on(super::VsClient::connect(ep, user))?;
        Ok(Self { rt, inner })
    }

    /// The session's private name.
    pub const fn private_name(&self) -> &PrivateName {
        self.inner.private_name()
    }

    /// See [`super::VsClient::view_key_id`].
    pub fn view_key_id(&self, group: &GroupName) -> Option<u64> {
        self.inner.view_key_id(group)
    }

    /// The group key of the last membership of `group` the connection received, if any.
    pub fn group_key(&self, group: &GroupName) -> Option<&crate::GroupKeyInfo> {
        self.inner.connection().group_key(group)
    }

    /// See [`super::VsClient::view`].
    pub fn view(&self, group: &GroupName) -> Option<Gid> {
        self.inner.view(group)
    }

    /// See [`super::VsClient::join`].
    pub fn join(&mut self, group: &GroupName) -> Result<(), VsError> {
        self.rt.block_on(self.inner.join(group))
    }

    /// See [`super::VsClient::leave`].
    pub fn leave(&mut self, group: &GroupName) -> Result<(), VsError> {
        self.rt.block_on(self.inner.leave(group))
    }

    /// See [`super::VsClient::flush_ok`].
    pub fn flush_ok(&mut self, group: &GroupName) -> Result<(), VsError> {
        self.rt.block_on(self.inner.flush_ok(group))
    }

    /// See [`super::VsClient::multicast`].
    pub fn multicast(
        &mut self,
        group: &GroupName,
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), VsError> {
        self.rt
            .block_on(self.inner.multicast(group, service, mess_type, body))
    }

    /// See [`super::VsClient::send`].
    pub fn send(&mut self, m: Multicast) -> Result<(), VsError> {
        self.rt.block_on(self.inner.send(m))
    }

    /// The next event, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<VsEvent, VsError> {
        self.rt.block_on(self.inner.recv())
    }

    /// The next event, or `Ok(None)` after `timeout` without one.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<VsEvent>, VsError> {
        let inner = &mut self.inner;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, inner.recv()).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        })
    }

    /// Send what is queued and disconnect cleanly.
    pub fn disconnect(self) -> Result<(), VsError> {
        let Self { rt, inner } = self;
        rt.block_on(inner.disconnect())
    }
}
