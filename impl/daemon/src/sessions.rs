//! The daemon's client side: the group-layer machine ([`GroupLayer`]) and the I/O of its sessions.
//! It translates and decides nothing about groups:
//!
//! ```text
//!  SessionMsg (hello, request, close) ─► GroupIn::{Connect, Client, SessionClosed} ─┐
//!  SessionCtl::Drained ───────────────► GroupIn::Drained ───────────────────────────┼─► GroupLayer::handle
//!  ring Deliver / DeliverConfig ──────► GroupIn::Ring(..) ──────────────────────────┘        │
//!    ┌──────────────────────────────────────────────────────────────────────────────────────┘
//!    ├─ Accepted / Refused / ToSession / Kill ─► encoded frames to the session's writer
//!    ├─ RingSend ─► [`RingSubmit`]s the runtime hands to the ring machine
//!    └─ BlockClients ─► stop / resume reading client requests
//! ```
//!
//! Access control (`docs/security.md`): with a policy set ([`Sessions::set_policy`], every
//! `security.mode` but `none`) a hello without an authenticated identity is refused with
//! `REJECT_AUTH`, and a join or send the policy denies is answered with
//! `ClientEvent::Reject { reason: Denied }` and never reaches the group layer.
//!
//! Group-layer messages travel on the ring as `GROUP_TAG` + postcard; any other payload (the admin
//! `send` testing hook) is counted and not handed to the layer.
//!
//! Integrated security ([`Sessions::set_keys`], every `security.mode` but `none`): the servers'
//! keys driver ([`crate::keys`]) sits between the group layer and the sessions. Ring
//! configurations reach it before the layer; every `GroupOut` passes through it (client events
//! are held until the servers' key of the configuration is agreed, memberships come out with
//! their group key); its TGDH messages travel as `KEYS_TAG` + postcard (agreed); delivered client
//! data feeds its data-out counter and [`Sessions::tick`] its clock. A membership goes to a
//! session as KEYED_MEMBERSHIP when the client announced protocol 1.1 and the channel is
//! confidential (TLS or the local Unix socket); otherwise as a plain MEMBERSHIP, without key.

use std::collections::BTreeMap;

use sgc_model::groups::{
    ClientEvent, ClientReq, ConnectRefusal, GroupConfig, GroupIn, GroupLayer, GroupOut, KillReason,
    RingDelivery, RingMsg, SessionId, Target,
};
use sgc_model::ring::{ConfigId, ConfigKind, NodeId, Service};
use sgc_wire::{
    Accept, GroupKeyInfo, PROTOCOL_VERSION, Version, encode_accept, encode_closing, encode_event,
    encode_keyed_membership, encode_refuse,
};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::admin::ClientsStatus;
use crate::clients::{Outgoing, SessionCtl, SessionMsg, Via, kill_text};
use crate::config::DaemonConfig;
use crate::keys::{DriverIn, KEYS_TAG, KeysAction, KeysStatus, ServersKeyHook, ServersKeys};
use crate::policy::Policy;

/// First byte of every group-layer payload on the ring.
pub const GROUP_TAG: u8 = 0x47;

/// A message the group layer wants ordered on the ring.
#[derive(Debug)]
pub struct RingSubmit {
    /// Service.
    pub service: Service,
    /// Encoded payload (`GROUP_TAG` + postcard).
    pub payload: Vec<u8>,
}

struct SessionIo {
    out: mpsc::UnboundedSender<Outgoing>,
    tasks: [AbortHandle; 2],
    /// Who the client proved to be (see `Via::identity`).
    identity: Option<String>,
    /// Whether group keys may be sent (protocol ≥ 1.1 over TLS or the Unix socket).
    keyed: bool,
    /// Whether UNDECRYPTABLE frames may be sent (protocol ≥ 1.2).
    evs_fix: bool,
}

impl SessionIo {
    fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The group layer and its sessions.
pub struct Sessions {
    layer: GroupLayer,
    io: BTreeMap<SessionId, SessionIo>,
    nodes_by_name: BTreeMap<String, NodeId>,
    max_sessions: usize,
    /// Whether client requests are not read (ring backlog too long).
    pub blocked: bool,
    counters: BTreeMap<&'static str, u64>,
    /// Access control; `None`: security off, everything allowed.
    policy: Option<Policy>,
    /// The servers' keys driver; `None`: security off, the layer's outputs go straight out.
    keys: Option<Box<dyn ServersKeys>>,
}

impl Sessions {
    /// The client side of a daemon with this configuration.
    pub fn new(cfg: &DaemonConfig) -> Result<Self, String> {
        let c = &cfg.clients;
        let gc = GroupConfig {
            max_session_queue: c.max_session_queue,
            max_groups_per_session: c.max_groups_per_session,
            max_members_per_group: c.max_members_per_group,
            max_ring_backlog: c.max_ring_backlog,
            report_views: cfg.security.mode == crate::config::SecurityMode::OptimizedEvs,
            ..GroupConfig::new(cfg.daemon.id, cfg.daemon.name.clone())
        };
        gc.validate().map_err(|e| e.to_string())?;
        Ok(Self {
            layer: GroupLayer::new(gc),
            io: BTreeMap::new(),
            nodes_by_name: cfg.peers.iter().map(|p| (p.name.clone(), p.id)).collect(),
            max_sessions: usize::try_from(c.max_sessions).unwrap_or(usize::MAX),
            blocked: false,
            counters: BTreeMap::new(),
            policy: None,
            keys: None,
        })
    }

    /// Turn on the servers' key agreement and group keys with this driver.
    pub fn set_keys(&mut self, keys: Box<dyn ServersKeys>) {
        self.keys = Some(keys);
    }

    /// Set the hook called with every agreed servers' key (no effect with security off).
    pub fn set_servers_key_hook(&mut self, hook: ServersKeyHook) {
        if let Some(k) = self.keys.as_mut() {
            k.set_hook(hook);
        }
    }

    /// The servers' keys status (`None` with security off).
    pub fn keys_status(&self) -> Option<KeysStatus> {
        self.keys.as_ref().map(|k| k.status())
    }

    /// The keys driver's clock: `now` milliseconds since the daemon started.
    pub fn tick(&mut self, now: u64) -> Vec<RingSubmit> {
        self.keys_input(DriverIn::Tick(now))
    }

    /// Feed the keys driver (if any) and carry out its actions.
    fn keys_input(&mut self, input: DriverIn<'_>) -> Vec<RingSubmit> {
        let Some(k) = self.keys.as_mut() else {
            return Vec::new();
        };
        let actions = k.handle(input);
        let mut submits = Vec::new();
        let mut last_data = None;
        for a in actions {
            self.carry_out_keys(a, &mut submits, &mut last_data);
        }
        submits
    }

    /// Turn on authentication and access control with this policy (default deny).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = Some(policy);
    }

    /// Whether the policy lets the session make this request; `Some(why)` for the log if not.
    fn denied(&self, sess: SessionId, req: &ClientReq) -> Option<String> {
        let policy = self.policy.as_ref()?;
        let Some(who) = self.io.get(&sess).and_then(|io| io.identity.as_deref()) else {
            return Some("no authenticated identity".to_owned());
        };
        let (what, result) = match req {
            ClientReq::Join(g) => (g.as_str(), policy.check_join(who, g.as_str())),
            ClientReq::Send(m) => {
                let denied = m.targets.iter().find_map(|t| match t {
                    Target::Group(g) => policy.check_send(who, g.as_str()).err().map(|d| (g.as_str(), d)),
                    Target::Private(_) => None,
                });
                match denied {
                    Some((g, d)) => (g, Err(d)),
                    None => return None,
                }
            }
            ClientReq::Leave(_) | ClientReq::Disconnect => return None,
        };
        result
            .err()
            .map(|d| format!("{who} lacks the {:?} permission on group {what}", d.missing))
    }

    /// The layer (for status).
    pub const fn layer(&self) -> &GroupLayer {
        &self.layer
    }

    /// Connected sessions.
    pub fn sessions(&self) -> usize {
        self.io.len()
    }

    /// The admin status of the client side.
    pub fn status(&self) -> ClientsStatus {
        let mut counters = serde_json::to_value(self.layer.stats()).unwrap_or_default();
        if let Some(obj) = counters.as_object_mut() {
            for (k, v) in &self.counters {
                obj.insert((*k).to_owned(), (*v).into());
            }
        }
        ClientsStatus {
            sessions: self.io.len(),
            groups: self.layer.table().len(),
            phase: format!("{:?}", self.layer.phase()),
            backlog: self.layer.backlog(),
            blocked: self.blocked,
            counters,
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    /// A message from a connection.
    pub fn on_session(&mut self, msg: SessionMsg) -> Vec<RingSubmit> {
        match msg {
            SessionMsg::Hello {
                sess,
                hello,
                out,
                tasks,
                via,
            } => {
                let identity = via.identity();
                let keyed = hello.version.accepts_keys() && matches!(via, Via::Tls { .. } | Via::Unix { .. });
                let refusal = if Version::check_compatible(hello.version).is_err() {
                    Some(ConnectRefusal::Version)
                } else if self.policy.is_some() && identity.is_none() {
                    warn!(
                        sess,
                        ?via,
                        "client refused: not authenticated (TLS client certificate or local uid required)"
                    );
                    self.count("sessions_refused_auth");
                    Some(ConnectRefusal::Auth)
                } else if let (Via::Tls { identity: cn, .. }, Some(user)) = (&via, &hello.user)
                    && user != cn
                {
                    warn!(
                        sess,
                        identity = %cn,
                        user = %user,
                        "client refused: the name it asks for is not its certificate's identity"
                    );
                    self.count("sessions_refused_name");
                    Some(ConnectRefusal::Auth)
                } else if self.io.len() >= self.max_sessions {
                    Some(ConnectRefusal::Quota)
                } else {
                    None
                };
                if let Some(why) = refusal {
                    info!(sess, ?via, ?why, "connection refused");
                    let _ = out.send(Outgoing::Close(frame(|b| encode_refuse(why, b))));
                    return Vec::new();
                }
                debug!(sess, ?via, user = ?hello.user, "hello");
                if let Some(id) = &identity {
                    info!(sess, identity = %id, user = ?hello.user, "client authenticated");
                }
                self.io.insert(
                    sess,
                    SessionIo {
                        out,
                        tasks,
                        identity,
                        keyed,
                        evs_fix: hello.version.accepts_undecryptable(),
                    },
                );
                // Over mutual TLS the private name is the certificate's identity: members see
                // who really sends.
                let user = match (&via, hello.user) {
                    (Via::Tls { identity, .. }, None) => Some(identity.clone()),
                    (_, user) => user,
                };
                self.step(GroupIn::Connect {
                    sess,
                    user,
                    wants_membership: hello.wants_membership,
                })
            }
            SessionMsg::Req { sess, req } => {
                if let Some(why) = self.denied(sess, &req) {
                    warn!(sess, %why, "request denied by the access policy");
                    self.count("requests_denied");
                    let ev = ClientEvent::Reject {
                        reason: sgc_model::groups::RejectReason::Denied,
                        req,
                    };
                    self.event_to(sess, &ev);
                    return Vec::new();
                }
                match self.resolve(req) {
                    Ok(req) => self.step(GroupIn::Client { sess, req }),
                    Err(ev) => {
                        self.event_to(sess, &ev);
                        Vec::new()
                    }
                }
            }
            SessionMsg::Closed { sess, why, violation } => {
                let Some(io) = self.io.remove(&sess) else {
                    return Vec::new();
                };
                if violation {
                    warn!(sess, %why, "client connection closed");
                    self.count("sessions_closed_protocol_violation");
                    let f = frame(|b| encode_closing(KillReason::ProtocolViolation, b));
                    let _ = io.out.send(Outgoing::Close(f));
                } else {
                    info!(sess, %why, "client connection closed");
                    io.abort();
                }
                let mut subs = self.keys_input(DriverIn::SessionClosed(sess));
                subs.extend(self.step(GroupIn::SessionClosed { sess }));
                subs
            }
        }
    }

    /// A writer's report.
    pub fn on_ctl(&mut self, ctl: SessionCtl) -> Vec<RingSubmit> {
        match ctl {
            SessionCtl::Drained { sess, n } => self.step(GroupIn::Drained { sess, n }),
        }
    }

    /// A message delivered by the ring.
    pub fn on_deliver(&mut self, origin: NodeId, config: ConfigId, payload: &[u8]) -> Vec<RingSubmit> {
        let body = match payload.split_first() {
            Some((&GROUP_TAG, body)) => body,
            Some((&KEYS_TAG, body)) if self.keys.is_some() => {
                return self.keys_input(DriverIn::Tgdh { origin, config, body });
            }
            _ => {
                self.count("ring_raw_messages");
                return Vec::new();
            }
        };
        match postcard::from_bytes::<RingMsg>(body) {
            Ok(msg) => {
                let data = match &msg {
                    RingMsg::Data(d) if self.keys.is_some() => d.body.len() as u64,
                    _ => 0,
                };
                let mut subs = self.step(GroupIn::Ring(RingDelivery::Message { origin, config, msg }));
                if data > 0 {
                    subs.extend(self.keys_input(DriverIn::DataOut(data)));
                }
                subs
            }
            Err(e) => {
                self.count("ring_undecodable_group_messages");
                warn!(origin, error = %e, "undecodable group message on the ring");
                Vec::new()
            }
        }
    }

    /// A configuration delivered by the ring.
    pub fn on_config(&mut self, kind: ConfigKind, id: ConfigId, members: Vec<NodeId>) -> Vec<RingSubmit> {
        let d = match kind {
            ConfigKind::Transitional => RingDelivery::Transitional { id, members },
            ConfigKind::Regular => RingDelivery::Regular { id, members },
        };
        // The keys engine first: it starts holding client events before the layer emits any.
        let mut subs = self.keys_input(DriverIn::Ring(d.clone()));
        subs.extend(self.step(GroupIn::Ring(d)));
        subs
    }

    /// Private targets name daemons; the node id typed by the client is replaced by the named one.
    fn resolve(&self, req: ClientReq) -> Result<ClientReq, Box<ClientEvent>> {
        let ClientReq::Send(mut m) = req else {
            return Ok(req);
        };
        for t in &mut m.targets {
            if let Target::Private(p) = t {
                match self.nodes_by_name.get(&p.daemon) {
                    Some(n) => p.node = *n,
                    None => {
                        return Err(Box::new(ClientEvent::Reject {
                            reason: sgc_model::groups::RejectReason::UnknownTarget,
                            req: ClientReq::Send(m),
                        }));
                    }
                }
            }
        }
        Ok(ClientReq::Send(m))
    }

    fn step(&mut self, input: GroupIn) -> Vec<RingSubmit> {
        let mut submits = Vec::new();
        // The layer emits one `ToSession` per local receiver of a data message, one after the
        // other: the frame is encoded once and shared (a cheap equality check against the last
        // data event instead of an encoding and an allocation per receiver).
        let mut last_data: Option<(ClientEvent, bytes::Bytes)> = None;
        for o in self.layer.handle(input) {
            match self.keys.as_mut() {
                Some(k) => {
                    for a in k.handle(DriverIn::Group(o)) {
                        self.carry_out_keys(a, &mut submits, &mut last_data);
                    }
                }
                None => self.carry_out(o, &mut submits, &mut last_data),
            }
        }
        submits
    }

    /// Carry out an action of the keys driver.
    fn carry_out_keys(
        &mut self,
        a: KeysAction,
        submits: &mut Vec<RingSubmit>,
        last_data: &mut Option<(ClientEvent, bytes::Bytes)>,
    ) {
        match a {
            KeysAction::Ring(payload) => submits.push(RingSubmit {
                service: Service::Agreed,
                payload,
            }),
            KeysAction::Group(o) => self.carry_out(o, submits, last_data),
            KeysAction::Membership {
                sess,
                membership,
                grant,
                artificial,
            } => {
                let keyed = self.io.get(&sess).is_some_and(|io| io.keyed);
                let f = if keyed {
                    let info = GroupKeyInfo {
                        ring: grant.view.ring,
                        refresh: grant.view.refresh,
                        key_id: grant.key_id,
                        artificial,
                        key: grant.key.as_bytes().to_vec(),
                    };
                    frame(|b| encode_keyed_membership(&membership, &info, b))
                } else if artificial {
                    // Without a key the refresh means nothing to the client.
                    return;
                } else {
                    frame(|b| encode_event(&ClientEvent::Membership(membership), b))
                };
                self.send(sess, Outgoing::Frame(f));
            }
        }
    }

    /// Carry out one output of the group layer.
    fn carry_out(
        &mut self,
        o: GroupOut,
        submits: &mut Vec<RingSubmit>,
        last_data: &mut Option<(ClientEvent, bytes::Bytes)>,
    ) {
        {
            match o {
                GroupOut::Accepted { sess, name } => {
                    info!(sess, name = %name, "client connected");
                    let a = Accept {
                        version: PROTOCOL_VERSION,
                        name,
                    };
                    self.send(sess, Outgoing::Frame(frame(|b| encode_accept(&a, b))));
                }
                GroupOut::Refused { sess, why } => {
                    info!(sess, ?why, "connection refused");
                    if let Some(io) = self.io.remove(&sess) {
                        let _ = io.out.send(Outgoing::Close(frame(|b| encode_refuse(why, b))));
                    }
                }
                GroupOut::RingSend { msg, service } => match postcard::to_extend(&msg, vec![GROUP_TAG]) {
                    Ok(payload) => submits.push(RingSubmit { service, payload }),
                    Err(e) => warn!(error = %e, "a group message could not be encoded"),
                },
                GroupOut::ToSession { sess, ev } if matches!(ev, ClientEvent::Data(_)) => {
                    let f = match &*last_data {
                        Some((prev, f)) if *prev == ev => f.clone(),
                        _ => {
                            let f = bytes::Bytes::from(frame(|b| encode_event(&ev, b)));
                            *last_data = Some((ev, f.clone()));
                            f
                        }
                    };
                    self.send(sess, Outgoing::Shared(f));
                }
                GroupOut::ToSession {
                    sess,
                    ev: ev @ ClientEvent::Undecryptable(_),
                } => {
                    if self.io.get(&sess).is_some_and(|io| io.evs_fix) {
                        self.event_to(sess, &ev);
                    } else {
                        debug!(
                            sess,
                            "an undecryptable message for a session older than protocol 1.2"
                        );
                        self.count("evs_unreported");
                    }
                }
                GroupOut::ToSession { sess, ev } => self.event_to(sess, &ev),
                GroupOut::Kill { sess, why } => self.kill(sess, why),
                // only the keys engine uses it (Optimized EVS); it never reaches here
                GroupOut::View { .. } => {}
                GroupOut::BlockClients(b) => {
                    if b != self.blocked {
                        debug!(blocked = b, backlog = self.layer.backlog(), "client input");
                    }
                    self.blocked = b;
                }
            }
        }
    }

    fn event_to(&mut self, sess: SessionId, ev: &ClientEvent) {
        let f = frame(|b| encode_event(ev, b));
        self.send(sess, Outgoing::Frame(f));
    }

    fn send(&mut self, sess: SessionId, o: Outgoing) {
        match self.io.get(&sess) {
            Some(io) => {
                if io.out.send(o).is_err() {
                    self.count("frames_to_closed_sessions");
                }
            }
            None => self.count("frames_to_unknown_sessions"),
        }
    }

    fn kill(&mut self, sess: SessionId, why: KillReason) {
        let Some(io) = self.io.remove(&sess) else {
            return;
        };
        warn!(sess, reason = kill_text(why), "disconnecting a client");
        match why {
            // Its socket is full: a last frame could never be written.
            KillReason::SlowClient => io.abort(),
            KillReason::ProtocolViolation => {
                let _ = io.out.send(Outgoing::Close(frame(|b| encode_closing(why, b))));
            }
        }
        self.count(match why {
            KillReason::SlowClient => "sessions_killed_slow",
            KillReason::ProtocolViolation => "sessions_killed_protocol",
        });
    }
}

/// Encode one frame; an event the wire refuses to encode (a bug) becomes an empty vector, logged.
fn frame(enc: impl FnOnce(&mut Vec<u8>) -> Result<(), sgc_wire::WireError>) -> Vec<u8> {
    let mut b = Vec::new();
    if let Err(e) = enc(&mut b) {
        warn!(error = %e, "a frame could not be encoded");
        b.clear();
    }
    b
}
