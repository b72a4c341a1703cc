//! Virtual synchrony for clients: [`VsClient`] drives the flush layer of `sgc_model::vs`
//! (`FlushLayer::handle(FlIn) -> Vec<FlOut>`, the machine the VS model checker explores) over an
//! [`SpConnection`] (a [`crate::Client`], or a fake in tests). It adds no flush logic of its own:
//! it feeds application calls in as `FlIn::App`, every daemon event as `FlIn::Sp`, carries out
//! `FlOut::ToDaemon` requests in order and turns `FlOut::ToApp` into typed [`VsEvent`]s.
//!
//! ```text
//!  app ── join/leave/multicast/flush_ok ──► FlushLayer ──ToDaemon──► outgoing ──► SpConnection
//!  app ◄──────── recv: VsEvent ◄── ready ◄── FlushLayer ◄──────── FlIn::Sp ◄─── SpConnection
//! ```
//!
//! Groups are closed: only installed members multicast to a group ([`VsError::NotMember`]
//! otherwise). A view change comes as [`VsEvent::FlushRequest`]; the application may still
//! send, then calls [`VsClient::flush_ok`], and the new [`VsEvent::View`] follows once every
//! member of it has flushed. Every data message comes with the view it is delivered in, which is
//! the view its sender sent it in.
//!
//! **Integrated VS** (`docs/security.md`): when the daemon hands group keys (KEYED_MEMBERSHIP,
//! security on), every multicast to a group is encrypted end to end with `K(g, v)` of the view it
//! is sent in (`sgc_crypto::e2e`: AES-256-GCM, key id in a clear header), and every message is
//! opened with the key of the view it is delivered in, which is the same view. A message that
//! does not open comes as [`VsEvent::Undecryptable`], never as data; [`VsData::decrypted`]
//! says whether a data message was encrypted. Views without key (security off) carry
//! plaintext.
//!
//! [`VsClient::recv`] is cancel-safe (usable in `tokio::select!`): requests the flush layer
//! produced while receiving are kept in order and sent before any later request.
//! [`blocking::VsClient`] is the same over a private runtime.

pub mod blocking;
mod event;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use sgc_crypto::e2e::{E2eContext, E2eError, open_with};
use sgc_model::groups::{
    ClientEvent, ClientReq, ClientService, DataMsg, Gid, GroupName, Multicast, PrivateName, Target,
};
use sgc_model::keys::Undecryptable;
use sgc_model::vs::{FlCall, FlEvent, FlIn, FlOut, FlushLayer};

pub use event::{VsData, VsError, VsEvent, VsUndecryptable, VsView};
pub use keys::MAX_KEYS_PER_VIEW;
use keys::ViewKeys;

use crate::{Client, ClientError, Endpoint, SpConnection};

/// A client with virtual synchrony on closed groups.
///
/// ```no_run
/// use sgc_client::vs::{VsClient, VsEvent};
/// use sgc_model::groups::{ClientService, GroupName};
///
/// # async fn demo() -> Result<(), sgc_client::vs::VsError> {
/// let mut c = VsClient::connect(&"127.0.0.1:4803".parse().unwrap(), Some("alice")).await?;
/// let chat = GroupName::new("chat").unwrap();
/// c.join(&chat).await?;
/// loop {
///     match c.recv().await? {
///         VsEvent::View(v) => {
///             println!("view {} of {}: {:?}", v.view, v.group, v.members);
///             c.multicast(&chat, ClientService::Agreed, 0, b"hello").await?;
///         }
///         VsEvent::FlushRequest(g) => c.flush_ok(&g).await?,
///         VsEvent::Data(d) => println!("{} in view {:?}: {:?}", d.msg.sender, d.view, d.msg.body),
///         other => println!("{other:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct VsClient<C: SpConnection = Client> {
    conn: C,
    fl: FlushLayer,
    /// Requests for the daemon, in the flush layer's order, not yet handed to the connection.
    outgoing: VecDeque<ClientReq>,
    /// Events for the application, oldest first.
    ready: VecDeque<VsEvent>,
    /// Per group, the last view handed to `ready` (tags data with its delivery view).
    views: BTreeMap<GroupName, Gid>,
    /// Group keys of the known views (Integrated VS).
    keys: ViewKeys,
    /// This connection's private name as text (bound into every encrypted message).
    me: String,
}

impl VsClient<Client> {
    /// Connect to the daemon at `ep` as `user` (membership events are always asked for: the
    /// flush layer needs them).
    pub async fn connect(ep: &Endpoint, user: Option<&str>) -> Result<Self, VsError> {
        let c = Client::connect(ep, user, true).await?;
        let me = c.private_name().clone();
        Ok(Self::new(c, me))
    }

    /// Send what is queued and disconnect cleanly.
    pub async fn disconnect(mut self) -> Result<(), VsError> {
        self.send_outgoing().await?;
        self.conn.disconnect().await?;
        Ok(())
    }
}

impl<C: SpConnection> VsClient<C> {
    /// Drive a flush layer for the connection `conn`, whose private name is `me`.
    pub fn new(conn: C, me: PrivateName) -> Self {
        Self::with_layer(conn, FlushLayer::new(me, None))
    }

    /// Drive the given flush layer (made with `FlushLayer::new(name, mutant)`: tests use it to
    /// run a seeded bug of `sgc_model::vs::VsMutant` against live daemons) for `conn`, which
    /// must be the connection with the layer's private name and in no group yet.
    pub fn with_layer(conn: C, fl: FlushLayer) -> Self {
        let me = fl.me().to_string();
        Self {
            conn,
            fl,
            outgoing: VecDeque::new(),
            ready: VecDeque::new(),
            views: BTreeMap::new(),
            keys: ViewKeys::default(),
            me,
        }
    }

    /// This connection's private name.
    pub const fn private_name(&self) -> &PrivateName {
        self.fl.me()
    }

    /// The view the flush layer has installed for `group`, the one a multicast now would be sent
    /// in (it may be ahead of the events [`VsClient::recv`] has returned so far).
    pub fn view(&self, group: &GroupName) -> Option<Gid> {
        self.fl.record(group).and_then(|r| r.view.gid)
    }

    /// The id of the key a multicast to `group` is now encrypted with (the newest key of the
    /// installed view), `None` if that view has no key.
    pub fn view_key_id(&self, group: &GroupName) -> Option<u64> {
        self.view(group)
            .and_then(|v| self.keys.sending(group, v))
            .map(sgc_crypto::e2e::E2eKey::key_id)
    }

    /// The flush layer (read-only: its state, for diagnostics and tests).
    pub const fn flush_layer(&self) -> &FlushLayer {
        &self.fl
    }

    /// The underlying connection (for calls outside the flush layer, e.g. private messages).
    pub const fn connection(&self) -> &C {
        &self.conn
    }

    /// Join a closed group; the first [`VsEvent::View`] holding this client confirms it.
    pub async fn join(&mut self, group: &GroupName) -> Result<(), VsError> {
        self.call(FlCall::Join(group.clone()), Some(group)).await
    }

    /// Leave a group; [`VsEvent::SelfLeave`] confirms it.
    pub async fn leave(&mut self, group: &GroupName) -> Result<(), VsError> {
        self.call(FlCall::Leave(group.clone()), Some(group)).await
    }

    /// Answer the pending [`VsEvent::FlushRequest`] of `group`.
    pub async fn flush_ok(&mut self, group: &GroupName) -> Result<(), VsError> {
        self.call(FlCall::Flush(group.clone()), Some(group)).await
    }

    /// Multicast `body` to the closed group `group`, in the current view.
    pub async fn multicast(
        &mut self,
        group: &GroupName,
        service: ClientService,
        mess_type: i16,
        body: &[u8],
    ) -> Result<(), VsError> {
        self.send(Multicast {
            targets: vec![Target::Group(group.clone())],
            service,
            self_discard: false,
            mess_type,
            body: body.to_vec(),
        })
        .await
    }

    /// Send any multicast through the flush layer: to exactly one group (of which this client is
    /// a member), or to private names only (passed through). A multicast to a group whose
    /// current view has a key is encrypted with it (Integrated VS).
    pub async fn send(&mut self, mut m: Multicast) -> Result<(), VsError> {
        let group = m.targets.iter().find_map(|t| match t {
            Target::Group(g) => Some(g.clone()),
            Target::Private(_) => None,
        });
        if let Some(g) = &group
            && let Some(key) = self.view(g).and_then(|v| self.keys.sending(g, v))
        {
            let ctx = E2eContext {
                group: g.as_str(),
                sender: &self.me,
                mess_type: m.mess_type,
            };
            m.body = key.seal(&ctx, &m.body).map_err(VsError::Encrypt)?;
        }
        self.call(FlCall::Send(m), group.as_ref()).await
    }

    /// The next event. Cancel-safe.
    pub async fn recv(&mut self) -> Result<VsEvent, VsError> {
        // Bounded: each round either returns or consumes one daemon event.
        loop {
            self.send_outgoing().await?;
            if let Some(ev) = self.ready.pop_front() {
                return Ok(ev);
            }
            let ev = self.conn.recv().await?;
            if let ClientEvent::Membership(m) = &ev {
                self.keys.on_membership(m, self.conn.group_key(&m.group));
            }
            let outs = self.fl.handle(FlIn::Sp(ev));
            // daemon input has no call result
            let _none = self.absorb(outs);
        }
    }

    /// Hand every queued request to the connection (in order).
    pub async fn send_outgoing(&mut self) -> Result<(), ClientError> {
        while let Some(req) = self.outgoing.front() {
            self.conn.request(req).await?;
            self.outgoing.pop_front();
        }
        Ok(())
    }

    /// Give the connection back (after [`VsClient::send_outgoing`], if queued requests matter).
    pub fn into_inner(self) -> C {
        self.conn
    }

    async fn call(&mut self, call: FlCall, group: Option<&GroupName>) -> Result<(), VsError> {
        self.send_outgoing().await?;
        let outs = self.fl.handle(FlIn::App(call));
        let reply = self.absorb(outs);
        self.send_outgoing().await?;
        reply.map_err(|e| VsError::from_fl(e, group))
    }

    /// Queue the outputs of one `handle` call; returns the call's result (`Ok` for SP input).
    fn absorb(&mut self, outs: Vec<FlOut>) -> Result<(), sgc_model::vs::FlError> {
        let mut reply = Ok(());
        for o in outs {
            match o {
                FlOut::ToDaemon(req) => self.outgoing.push_back(req),
                FlOut::Reply(r) => reply = r,
                FlOut::ToApp(ev) => {
                    let ev = self.event(ev);
                    self.ready.push_back(ev);
                }
            }
        }
        reply
    }

    fn event(&mut self, ev: FlEvent) -> VsEvent {
        match ev {
            FlEvent::View(m) => {
                self.views.insert(m.group.clone(), m.gid);
                self.keys.on_install(&m.group, m.gid);
                VsEvent::View(VsView {
                    vs_set: m.vs_sets.get(m.my_vs).cloned().unwrap_or_default(),
                    group: m.group,
                    view: m.gid,
                    cause: m.cause,
                    members: m.members,
                })
            }
            FlEvent::Data(msg) => self.data(msg),
            FlEvent::FlushReq(g) => VsEvent::FlushRequest(g),
            FlEvent::Transition { group, gid } => VsEvent::Transition { group, view: gid },
            FlEvent::SelfLeave(g) => {
                self.views.remove(&g);
                self.keys.on_self_leave(&g);
                VsEvent::SelfLeave(g)
            }
            FlEvent::Reject { reason, req } => VsEvent::Rejected { reason, req },
            FlEvent::Undecryptable(u) => {
                let view = self.views.get(&u.group).copied();
                let error = match (u.reason, u.key_id) {
                    (Undecryptable::NotEncrypted, _) | (_, None) => E2eError::NotEncrypted,
                    (Undecryptable::KeyNotHeld, Some(id)) => E2eError::UnknownKey(id),
                    (Undecryptable::Unauthentic, Some(id)) => E2eError::Unauthentic(id),
                };
                let msg = DataMsg {
                    sender: u.sender,
                    targets: vec![Target::Group(u.group)],
                    service: ClientService::Reliable,
                    mess_type: u.mess_type,
                    body: Vec::new(),
                };
                VsEvent::Undecryptable(VsUndecryptable { msg, view, error })
            }
        }
    }

    /// A delivered message: opened with the keys of its delivery view when that view has keys.
    fn data(&self, mut msg: DataMsg) -> VsEvent {
        let group = msg.targets.iter().find_map(|t| match t {
            Target::Group(g) => self.views.get_key_value(g),
            Target::Private(_) => None,
        });
        let view = group.map(|(_, v)| *v);
        let keys = group.map_or(&[][..], |(g, v)| self.keys.of_view(g, *v));
        let Some((g, _)) = group.filter(|_| !keys.is_empty()) else {
            return VsEvent::Data(VsData {
                msg,
                view,
                decrypted: false,
            });
        };
        let sender = msg.sender.to_string();
        let ctx = E2eContext {
            group: g.as_str(),
            sender: &sender,
            mess_type: msg.mess_type,
        };
        match open_with(keys, &ctx, &msg.body) {
            Ok((_, plain)) => {
                msg.body = plain;
                VsEvent::Data(VsData {
                    msg,
                    view,
                    decrypted: true,
                })
            }
            Err(error) => VsEvent::Undecryptable(VsUndecryptable { msg, view, error }),
        }
    }
}
