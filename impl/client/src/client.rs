//! The async client: [`Client`] (connect, requests, events), and its halves [`Sender`]
//! (cloneable, batched writes through the outbox) and [`Receiver`] (decodes events).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sgc_model::groups::{ClientEvent, ClientReq, ClientService, GroupName, PrivateName, Target};
use sgc_wire::{
    DataRef, FrameDecoder, GroupKeyInfo, Hello, ToClient, ToClientRef, Version, encode_hello, encode_req,
    encode_send,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::endpoint::ReadHalf;
use crate::outbox::Outbox;
use crate::{ClientError, Endpoint};

/// How long [`Client::connect`] waits for the daemon's answer to the hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a daemon: one session with a private name.
///
/// ```no_run
/// use sgc_client::{Client, Endpoint};
/// use sgc_model::groups::{ClientEvent, ClientService, GroupName, Target};
///
/// # async fn demo() -> Result<(), sgc_client::ClientError> {
/// let ep: Endpoint = "127.0.0.1:4803".parse().unwrap();
/// let mut c = Client::connect(&ep, Some("alice"), true).await?;
/// let chat = GroupName::new("chat").unwrap();
/// c.join(&chat).await?;
/// c.multicast(&[Target::Group(chat.clone())], ClientService::Agreed, 0, b"hello").await?;
/// loop {
///     match c.recv().await? {
///         ClientEvent::Data(d) => println!("{}: {:?}", d.sender, d.body),
///         ClientEvent::Membership(m) => println!("{} now has {} members", m.group, m.members.len()),
///         other => println!("{other:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    tx: Sender,
    rx: Receiver,
    name: PrivateName,
    daemon_version: Version,
}

/// The sending half of a client: cheap to clone, usable from several tasks.
#[derive(Clone, Debug)]
pub struct Sender {
    inner: Arc<SenderInner>,
}

/// Shuts the writer down when the last [`Sender`] is dropped.
#[derive(Debug)]
struct SenderInner {
    out: Arc<Outbox>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.out.shutdown();
    }
}

/// The receiving half of a client.
///
/// With integrated security on, the daemon sends each membership with the group key of its
/// view (KEYED_MEMBERSHIP, `docs/protocol.md`): [`Receiver::recv`] returns the membership as a
/// [`ClientEvent::Membership`] and keeps the key, which [`Receiver::group_key`] then returns
/// (until the next membership of that group, or the session's leave).
pub struct Receiver {
    read: ReadHalf,
    dec: FrameDecoder<ToClient>,
    keys: BTreeMap<GroupName, GroupKeyInfo>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("buffered", &self.dec.buffered())
            .finish()
    }
}

impl Client {
    /// Connect to the daemon at `ep` as `user` (`None`: the daemon assigns a name), asking for
    /// membership events if `wants_membership`. Fails with [`ClientError::Refused`] if the daemon
    /// refuses, [`ClientError::LimitHit`] for a malformed user name (checked before connecting).
    pub async fn connect(
        ep: &Endpoint,
        user: Option<&str>,
        wants_membership: bool,
    ) -> Result<Self, ClientError> {
        let mut hello = Vec::new();
        encode_hello(&Hello::new(user, wants_membership), &mut hello).map_err(ClientError::LimitHit)?;
        let (read, mut write) = ep.open().await?;
        write.write_all(&hello).await.map_err(ClientError::from_io)?;
        write.flush().await.map_err(ClientError::from_io)?;
        let mut rx = Receiver {
            read,
            dec: FrameDecoder::new(),
            keys: BTreeMap::new(),
        };
        let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, rx.next_frame())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer to the hello"))??;
        let accept = match answer {
            ToClient::Accept(a) => a,
            ToClient::Refuse(why) => return Err(ClientError::Refused(why)),
            ToClient::Closing(why) => return Err(ClientError::Closed(why)),
            ToClient::Event(_) | ToClient::KeyedMembership(..) => {
                return Err(ClientError::UnexpectedFrame("event before accept"));
            }
        };
        Version::check_compatible(accept.version).map_err(ClientError::Wire)?;
        let out = Arc::new(Outbox::default());
        let writer = tokio::spawn(Arc::clone(&out).run_writer(write));
        Ok(Self {
            tx: Sender {
                inner: Arc::new(SenderInner {
                    out,
                    writer: std::sync::Mutex::new(Some(writer)),
                }),
            },
            rx,
            name: accept.name,
            daemon_version: accept.version,
        })
    }

    /// The session's private name, `#user#daemon`.
    pub fn private_name(&self) -> &PrivateName {
        &self.name
    }

    /// The daemon's protocol version.
    pub fn daemon_version(&self) -> Version {
        self.daemon_version
    }

    /// A sender for other tasks (see [`Client::split`]).
    pub fn sender(&self) -> Sender {
        self.tx.clone()
    }

    /// Split into a cloneable sending half and the receiving half.
    pub fn split(self) -> (Sender, Receiver) {
        (self.tx, self.rx)
    }

    /// Join a group. The membership event (if asked for) arrives through [`Client::recv`].
    pub async fn join(&self, group: &GroupName) -> Result<(), ClientError> {
        self.tx.join(group).await
    }

    /// Leave a group; a [`ClientEvent::SelfLeave`] confirms it.
    pub async fn leave(&self, group: &GroupName) -> Result<(), ClientError> {
        self.tx.leave(group).await
    }

    /// Multicast `body` to `targets` (groups and private names, at most 100) atomically.
    pub async fn multicast(
        &self,
        targets: &[Target],
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.tx.multicast(targets, service, mess_type, body).await
    }

    /// As [`Client::multicast`], but not delivered back to this connection (`SELF_DISCARD`).
    pub async fn multicast_self_discard(
        &self,
        targets: &[Target],
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.tx
            .multicast_self_discard(targets, service, mess_type, body)
            .await
    }

    /// Send any request (the seam for layers above, e.g. the VS flush layer).
    pub async fn request(&self, req: &ClientReq) -> Result<(), ClientError> {
        self.tx.request(req).await
    }

    /// Wait until every request so far has been written to the socket.
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.tx.flush().await
    }

    /// Socket writes done so far (see [`Sender::write_batches`]).
    pub fn write_batches(&self) -> u64 {
        self.tx.write_batches()
    }

    /// The next event. Cancel-safe: usable in `tokio::select!`.
    pub async fn recv(&mut self) -> Result<ClientEvent, ClientError> {
        self.rx.recv().await
    }

    /// The group key that came with the last membership of `group` (integrated security), if
    /// any: its id, key view and bytes. See [`Receiver::group_key`].
    pub fn group_key(&self, group: &GroupName) -> Option<&GroupKeyInfo> {
        self.rx.group_key(group)
    }

    /// Zero-copy receive (see [`Receiver::recv_with`]).
    pub async fn recv_with<R>(&mut self, f: impl FnOnce(EventRef<'_>) -> R) -> Result<R, ClientError> {
        self.rx.recv_with(f).await
    }

    /// Disconnect cleanly: send the disconnect request, write everything, close.
    pub async fn disconnect(self) -> Result<(), ClientError> {
        self.tx.disconnect().await
    }
}

impl Sender {
    async fn push(
        &self,
        f: impl FnOnce(&mut Vec<u8>) -> Result<(), sgc_wire::WireError>,
    ) -> Result<(), ClientError> {
        self.inner.out.push(f).await
    }

    /// See [`Client::join`].
    pub async fn join(&self, group: &GroupName) -> Result<(), ClientError> {
        self.request(&ClientReq::Join(group.clone())).await
    }

    /// See [`Client::leave`].
    pub async fn leave(&self, group: &GroupName) -> Result<(), ClientError> {
        self.request(&ClientReq::Leave(group.clone())).await
    }

    /// See [`Client::multicast`].
    pub async fn multicast(
        &self,
        targets: &[Target],
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.push(|b| encode_send(b, targets, service, false, mess_type, body))
            .await
    }

    /// See [`Client::multicast_self_discard`].
    pub async fn multicast_self_discard(
        &self,
        targets: &[Target],
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), ClientError> {
        self.push(|b| encode_send(b, targets, service, true, mess_type, body))
            .await
    }

    /// See [`Client::request`].
    pub async fn request(&self, req: &ClientReq) -> Result<(), ClientError> {
        self.push(|b| encode_req(req, b)).await
    }

    /// See [`Client::flush`].
    pub async fn flush(&self) -> Result<(), ClientError> {
        self.inner.out.flush().await
    }

    /// Socket writes done so far; each carries every frame queued since the previous one (so
    /// requests ÷ writes is the batching factor).
    pub fn write_batches(&self) -> u64 {
        self.inner.out.writes()
    }

    /// Disconnect cleanly (every clone of this sender stops working).
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.request(&ClientReq::Disconnect).await?;
        self.flush().await?;
        self.inner.out.shutdown();
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = writer {
            // The writer only ends by returning; a join error would mean it panicked.
            let _ = w.await;
        }
        Ok(())
    }
}

impl Receiver {
    /// See [`Client::recv`].
    pub async fn recv(&mut self) -> Result<ClientEvent, ClientError> {
        match self.next_frame().await? {
            ToClient::Event(ev) => {
                self.note(&ev, None);
                Ok(ev)
            }
            ToClient::KeyedMembership(m, k) => {
                let ev = ClientEvent::Membership(m);
                self.note(&ev, Some(k));
                Ok(ev)
            }
            ToClient::Closing(why) => Err(ClientError::Closed(why)),
            ToClient::Accept(_) | ToClient::Refuse(_) => {
                Err(ClientError::UnexpectedFrame("handshake answer"))
            }
        }
    }

    /// Zero-copy receive: hand the next event to `f`, a data message borrowed from the receive
    /// buffer ([`EventRef::Data`], no allocation), any other event owned. Cancel-safe.
    pub async fn recv_with<R>(&mut self, f: impl FnOnce(EventRef<'_>) -> R) -> Result<R, ClientError> {
        let mut f = Some(f);
        loop {
            let keys = &mut self.keys;
            let step = self
                .dec
                .next_frame_ref(|fr| {
                    let ev = match fr {
                        ToClientRef::Data(d) => EventRef::Data(d),
                        ToClientRef::Owned(ToClient::Event(ev)) => {
                            note_key(keys, &ev, None);
                            EventRef::Other(ev)
                        }
                        ToClientRef::Owned(ToClient::KeyedMembership(m, k)) => {
                            let ev = ClientEvent::Membership(m);
                            note_key(keys, &ev, Some(k));
                            EventRef::Other(ev)
                        }
                        ToClientRef::Owned(ToClient::Closing(why)) => return Err(ClientError::Closed(why)),
                        ToClientRef::Owned(ToClient::Accept(_) | ToClient::Refuse(_)) => {
                            return Err(ClientError::UnexpectedFrame("handshake answer"));
                        }
                    };
                    // `f` is taken by the first frame, which ends the loop.
                    f.take()
                        .map(|f| f(ev))
                        .ok_or(ClientError::UnexpectedFrame("second frame"))
                })
                .map_err(ClientError::Wire)?;
            if let Some(out) = step {
                return out;
            }
            self.read_more().await?;
        }
    }

    /// The group key of the last membership of `group`, if it came with one.
    pub fn group_key(&self, group: &GroupName) -> Option<&GroupKeyInfo> {
        self.keys.get(group)
    }

    fn note(&mut self, ev: &ClientEvent, key: Option<GroupKeyInfo>) {
        note_key(&mut self.keys, ev, key);
    }

    async fn read_more(&mut self) -> Result<(), ClientError> {
        self.dec.reserve_for_next(64 * 1024);
        let n = self
            .read
            .read_buf(self.dec.buffer_mut())
            .await
            .map_err(ClientError::from_io)?;
        if n == 0 {
            return Err(ClientError::DaemonGone);
        }
        Ok(())
    }

    async fn next_frame(&mut self) -> Result<ToClient, ClientError> {
        loop {
            if let Some(f) = self.dec.next_frame().map_err(ClientError::Wire)? {
                return Ok(f);
            }
            self.read_more().await?;
        }
    }
}

/// Track the key of each group from its memberships and leaves.
fn note_key(keys: &mut BTreeMap<GroupName, GroupKeyInfo>, ev: &ClientEvent, key: Option<GroupKeyInfo>) {
    match (ev, key) {
        (ClientEvent::Membership(m), Some(k)) => {
            keys.insert(m.group.clone(), k);
        }
        (ClientEvent::Membership(m), None) => {
            keys.remove(&m.group);
        }
        (ClientEvent::SelfLeave(g), _) => {
            keys.remove(g);
        }
        _ => {}
    }
}

/// An event as [`Receiver::recv_with`] hands it over.
#[derive(Clone, Debug)]
pub enum EventRef<'a> {
    /// A data message, borrowed from the receive buffer.
    Data(DataRef<'a>),
    /// Any other event.
    Other(ClientEvent),
}

impl EventRef<'_> {
    /// The owned event.
    pub fn into_owned(self) -> ClientEvent {
        match self {
            Self::Data(d) => ClientEvent::Data(d.to_owned()),
            Self::Other(ev) => ev,
        }
    }
}
