//! The event loop: the only owner of the ring machine. It translates, and decides nothing about
//! the protocol:
//!
//! ```text
//!  UDP datagram ─decode─► Event::Recv ─┐                         ┌─► SendToken / Broadcast ─► UDP
//!  deadline table ──────► Event::Timer ┼─► Daemon::handle ─► Vec<Command> ─► Set/CancelTimer ─► table
//!  admin `send` ────────► Event::Submit┘                         ├─► Persist ─► data_dir (atomic)
//!                                                                └─► Deliver/DeliverConfig ─► log, counters
//! ```
//!
//! Timers live in a `BTreeMap<TimerKind, Instant>`; the loop sleeps until the earliest one.
//! Two runtime-only mechanisms change timing, never decisions: once this daemon has forwarded
//! `runtime.idle_token_spins` idle regular tokens (nothing sent, requested or queued) in a row,
//! each further idle token is held `runtime.idle_token_delay_ms` before it is forwarded, so an
//! idle ring does not spin while a recently busy one keeps its latency; and the TESTING partition hook drops datagrams from and to
//! chosen daemons, as a lossy network would.
//!
//! TESTING: in controlled mode (`runtime.controlled`, [`crate::controlled`]) no timer is armed
//! (the harness fires them through the admin endpoint), tokens to itself leave through the
//! harness, nothing is held, the group layer is detached and every input's commands are reported.
//!
//! Socket I/O is batched (`udp.rs`): the datagrams of one step leave in one `sendmmsg` at the
//! end of the step, and queued datagrams are read with `recvmmsg`. With `[network] multicast`
//! a broadcast goes once to the group instead of to each peer (tokens stay unicast); the
//! multicast socket is drained before the ring socket, so a token is handled after the data
//! packets sent before it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use sgc_model::ring::{
    Command, ConfigId, ConfigKind, Daemon, Event, MsgId, NodeId, Packet, Phase, Pid, RingConfig, Service,
    TimerKind,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use sgc_model::ring::record::{Header, RECORD_VERSION, Recorder};

use crate::admin::{self, Pending, Request, Response, RingStatus, SendService, Status};
use crate::clients::{self, Channels, SessionCtl, SessionMsg};
use crate::config::{DaemonConfig, SecurityMode};
use crate::controlled::Controlled;
use crate::protection::{AgreedKeys, Policy, Protection, Wire};
use crate::sessions::{RingSubmit, Sessions};
use crate::store::{Store, StoreError};
use crate::transport::Codec;
use crate::udp::{RecvBatch, Source, Udp};

/// Creates `data_dir/record-<incarnation>.bin` and writes its header.
fn open_recorder(
    cfg: &DaemonConfig,
    machine: &Daemon,
    durable: Option<sgc_model::ring::Durable>,
    ring: &RingConfig,
) -> Result<Recorder<std::io::BufWriter<std::fs::File>>, DaemonError> {
    let path = cfg.daemon.data_dir.join(format!("record-{}.bin", machine.me.inc));
    let file = std::fs::File::create(&path).map_err(|e| DaemonError::Record(path.clone(), e.to_string()))?;
    let header = Header {
        version: RECORD_VERSION,
        node: cfg.daemon.id,
        durable,
        ring: ring.clone(),
    };
    info!(path = %path.display(), "recording the ring machine's inputs and commands");
    Recorder::new(std::io::BufWriter::with_capacity(1 << 16, file), &header)
        .map_err(|e| DaemonError::Record(path, e.to_string()))
}

/// Bound on `count × size` of one admin `send` (testing hook).
pub const MAX_SEND_BYTES: u64 = 1 << 30;

/// `recvmmsg` calls per wake-up of the ring sockets before timers and admin requests are looked
/// at again (each call reads up to [`crate::udp::RECV_BATCH`] datagrams).
const RECV_CALLS: usize = 4;

/// Errors that stop a daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A socket could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// Which endpoint (`daemon.listen`, `daemon.admin`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The client Unix socket could not be bound.
    #[error("cannot bind the client socket {path}: {source}")]
    BindUnix {
        /// The socket path.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The durable record could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The derived ring configuration is unusable.
    #[error("{0}")]
    Ring(String),
    /// `runtime.record` is on and the recording cannot be created.
    #[error("cannot record to {0}: {1}")]
    Record(std::path::PathBuf, String),
    /// TESTING: the controlled mode's setup is unusable.
    #[error(transparent)]
    Controlled(#[from] crate::controlled::ControlledError),
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// The ring socket or the multicast group could not be set up.
    #[error(transparent)]
    Udp(#[from] crate::udp::UdpError),
    /// The `[security]` files could not be loaded (the message names the key).
    #[error(transparent)]
    Security(#[from] crate::config::ConfigError),
}

/// Capacity of the channel of client requests (a full channel stops reading client sockets).
const CLIENT_CHANNEL: usize = 1024;

/// Receive buffers of the ring socket and of the multicast group socket.
struct Bufs {
    ring: RecvBatch,
    group: Option<RecvBatch>,
}

/// The runtime loop's input channels besides the ring socket.
struct Inbox {
    admin: mpsc::Receiver<Pending>,
    clients: mpsc::Receiver<SessionMsg>,
    ctl: mpsc::UnboundedReceiver<SessionCtl>,
}

/// One delivered client message in the delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// Message id, `m{node}.{inc}#{n}`.
    pub id: String,
    /// Sender pid.
    pub sender: String,
    /// Configuration it was delivered in (`reg(..)` or `trans(..,..)`).
    pub config: String,
}

/// A bound, not yet running daemon.
pub struct Runtime {
    cfg: DaemonConfig,
    ring: RingConfig,
    machine: Daemon,
    store: Store,
    codec: Codec,
    /// Daemon↔daemon packet protection with security on (`crate::protection`): sealing
    /// (three-step) or signed membership packets.
    protection: Option<Protection>,
    /// Servers' keys agreed and not yet given to `protection` (three-step).
    agreed: AgreedKeys,
    udp: Udp,
    admin: Option<TcpListener>,
    client_tcp: Option<TcpListener>,
    client_unix: Option<UnixListener>,
    client_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    sessions: Sessions,
    peers: BTreeMap<NodeId, SocketAddr>,
    timers: BTreeMap<TimerKind, Instant>,
    held: Option<(Instant, Pid, Packet)>,
    /// Idle tokens forwarded in a row (reset by any token that is not idle).
    idle_streak: u32,
    /// `runtime.record`: the machine's inputs and commands, to `record-<incarnation>.bin`.
    recorder: Option<Recorder<std::io::BufWriter<std::fs::File>>>,
    local: VecDeque<Event>,
    blocked: BTreeSet<NodeId>,
    counters: BTreeMap<String, u64>,
    /// Delivery log, formatted only when the admin `log` command reads it.
    log: VecDeque<(MsgId, Pid, ConfigId)>,
    delivered: u64,
    delivered_testing: u64,
    configs: u64,
    next_msg: u32,
    span: tracing::Span,
    ring_span: tracing::Span,
    stopping: bool,
    /// Integrated security: the keys driver needs its clock.
    keys_on: bool,
    /// TESTING: controlled mode (`runtime.controlled`), the harness is network and clock.
    ctl: Option<Controlled>,
}

impl Runtime {
    /// Load the durable record (a new incarnation) and bind the ring and admin sockets.
    pub async fn bind(cfg: DaemonConfig) -> Result<Self, DaemonError> {
        let ring = cfg.ring_config();
        ring.validate().map_err(|e| DaemonError::Ring(e.to_string()))?;
        let security = cfg.load_security()?;
        let store = Store::open(&cfg.daemon.data_dir)?;
        let durable = store.load()?;
        let (ring, machine, ctl) = match crate::controlled::start(&cfg, durable)? {
            Some(s) => {
                if let Some(d) = &s.persist {
                    store.save(d)?;
                }
                (s.ring, s.machine, Some(s.ctl))
            }
            None => (ring, Daemon::new(cfg.daemon.id, durable), None),
        };
        let recorder = if cfg.runtime.record {
            Some(open_recorder(&cfg, &machine, durable, &ring)?)
        } else {
            None
        };
        let udp = Udp::bind(
            cfg.daemon.listen,
            cfg.network.multicast_for(cfg.daemon.listen),
            cfg.runtime.socket_buffer,
        )
        .await?;
        let admin = TcpListener::bind(cfg.daemon.admin)
            .await
            .map_err(|source| DaemonError::Bind {
                what: "daemon.admin",
                addr: cfg.daemon.admin,
                source,
            })?;
        let client_tcp = TcpListener::bind(cfg.daemon.client)
            .await
            .map_err(|source| DaemonError::Bind {
                what: "daemon.client",
                addr: cfg.daemon.client,
                source,
            })?;
        let socket_path = cfg.client_socket();
        let client_unix = clients::bind_unix(&socket_path).map_err(|source| DaemonError::BindUnix {
            path: socket_path.clone(),
            source,
        })?;
        let mut sessions = Sessions::new(&cfg).map_err(DaemonError::Ring)?;
        let client_tls = security.map(|m| {
            info!(mode = cfg.security.mode.name(), identity = %m.identity, rules = m.policy.len(), "client authentication and access control on");
            sessions.set_policy(m.policy);
            info!(
                tgdh_group = m.keys.group.name(),
                group_key_mac = m.keys.mac.name(),
                refresh_ms = cfg.security.refresh_ms,
                refresh_bytes = cfg.security.refresh_bytes,
                "servers' key agreement and group keys on"
            );
            sessions.set_keys(crate::keys::driver(cfg.daemon.id, m.keys));
            m.tls
        });
        let span = tracing::info_span!("daemon", name = %cfg.daemon.name, pid = %machine.me);
        let ring_span = tracing::info_span!(parent: &span, "ring", id = %machine.reg_ring);
        let codec = Codec::new(&cfg.cluster, cfg.runtime.max_datagram);
        let protection = Protection::from_config(&cfg, codec.clone(), machine.me)?;
        let agreed = AgreedKeys::default();
        if protection.as_ref().map(Protection::policy) == Some(Policy::Seal) {
            sessions.set_servers_key_hook(agreed.hook());
        }
        let mut peers: BTreeMap<NodeId, SocketAddr> = cfg.peers.iter().map(|p| (p.id, p.addr)).collect();
        if let Some(c) = &ctl {
            peers.insert(machine.me.node, c.loopback());
        }
        Ok(Self {
            codec,
            protection,
            agreed,
            peers,
            ctl,
            ring,
            machine,
            store,
            udp,
            admin: Some(admin),
            client_tcp: Some(client_tcp),
            client_unix: Some(client_unix),
            client_tls,
            sessions,
            timers: BTreeMap::new(),
            held: None,
            idle_streak: 0,
            recorder,
            local: VecDeque::new(),
            blocked: BTreeSet::new(),
            counters: BTreeMap::new(),
            log: VecDeque::new(),
            delivered: 0,
            delivered_testing: 0,
            configs: 0,
            next_msg: 0,
            span,
            ring_span,
            stopping: false,
            keys_on: cfg.security.mode != SecurityMode::None,
            cfg,
        })
    }

    /// The packet protection of a daemon with security on (keys come from the configuration
    /// and the servers' key agreement; tests adjust them here).
    pub fn protection_mut(&mut self) -> Option<&mut Protection> {
        self.protection.as_mut()
    }

    /// The period of the keys driver's clock: a quarter of the shortest of
    /// `security.refresh_ms` and (in `optimized-evs` mode) `security.evs_key_timeout_ms`, between
    /// 10 ms and 1 s.
    fn tick_period(&self) -> Duration {
        let s = &self.cfg.security;
        let evs = (s.mode == SecurityMode::OptimizedEvs).then_some(s.evs_key_timeout_ms);
        let shortest = [Some(s.refresh_ms), evs]
            .into_iter()
            .flatten()
            .filter(|&v| v > 0)
            .min();
        let ms = shortest.map_or(1000, |v| (v / 4).clamp(10, 1000));
        Duration::from_millis(ms)
    }

    /// Set the hook called with each servers' key when it is agreed (epoch, key bytes): the
    /// place to plug the daemon-to-daemon packet protection in (see [`crate::keys`]).
    pub fn set_servers_key_hook(&mut self, hook: crate::keys::ServersKeyHook) {
        self.sessions.set_servers_key_hook(hook);
    }

    /// Run until `shutdown` resolves or an admin `shutdown` request.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let span = self.span.clone();
        async move {
            let (tx, admin_rx) = mpsc::channel::<Pending>(64);
            if let Some(listener) = self.admin.take() {
                tokio::spawn(admin::serve(listener, tx).in_current_span());
            }
            let (msgs, clients_rx) = mpsc::channel::<SessionMsg>(CLIENT_CHANNEL);
            let (ctl, ctl_rx) = mpsc::unbounded_channel::<SessionCtl>();
            let ch = Channels { msgs, ctl };
            let ids = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
            if let Some(l) = self.client_tcp.take() {
                tokio::spawn(
                    clients::serve_tcp(l, ch.clone(), ids.clone(), self.client_tls.clone()).in_current_span(),
                );
            }
            if let Some(l) = self.client_unix.take() {
                tokio::spawn(clients::serve_unix(l, ch, ids).in_current_span());
            }
            let mut rx = Inbox {
                admin: admin_rx,
                clients: clients_rx,
                ctl: ctl_rx,
            };
            info!(
                listen = %self.cfg.daemon.listen,
                admin = %self.cfg.daemon.admin,
                client = %self.cfg.daemon.client,
                socket = %self.cfg.client_socket().display(),
                "daemon started"
            );
            match self.ctl.as_mut().and_then(Controlled::take_start) {
                Some(cmds) => self.carry_out(cmds).await?,
                None => self.step(Event::Boot).await?,
            }
            let mut bufs = Bufs {
                ring: RecvBatch::new(self.cfg.runtime.max_datagram),
                group: self
                    .udp
                    .group()
                    .map(|_| RecvBatch::new(self.cfg.runtime.max_datagram)),
            };
            tokio::pin!(shutdown);
            let started = std::time::Instant::now();
            let mut tick = tokio::time::interval(self.tick_period());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !self.stopping {
                let ring_span = self.ring_span.clone();
                let go_on = self
                    .iterate(&mut bufs, &mut rx, shutdown.as_mut(), &mut tick, started)
                    .instrument(ring_span)
                    .await?;
                if !go_on {
                    break;
                }
            }
            if let Some(rec) = self.recorder.as_mut()
                && let Err(e) = rec.flush()
            {
                warn!(error = %e, "recording not flushed");
            }
            info!("daemon stopping");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Wait for one input and handle it; false once `shutdown` resolved.
    async fn iterate(
        &mut self,
        bufs: &mut Bufs,
        rx: &mut Inbox,
        shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
        tick: &mut tokio::time::Interval,
        started: std::time::Instant,
    ) -> Result<bool, DaemonError> {
        if let Some(ev) = self.local.pop_front() {
            self.step(ev).await?;
            return Ok(true);
        }
        let deadline = self.next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.udp.readable() => match r {
                Ok(_) => self.drain_sockets(bufs).await?,
                Err(e) => {
                    self.count("recv_errors");
                    debug!(error = %e, "socket readiness failed");
                }
            },
            () = sleep => self.on_deadline().await?,
            req = rx.admin.recv() => if let Some((req, reply)) = req {
                self.on_admin(req, reply);
            },
            msg = rx.clients.recv(), if !self.sessions.blocked => if let Some(msg) = msg {
                let subs = self.sessions.on_session(msg);
                self.submit_group(subs);
            },
            ctl = rx.ctl.recv() => if let Some(ctl) = ctl {
                let subs = self.sessions.on_ctl(ctl);
                self.submit_group(subs);
            },
            _ = tick.tick(), if self.keys_on => {
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let subs = self.sessions.tick(now);
                self.submit_group(subs);
            }
            () = shutdown => return Ok(false),
        }
        Ok(true)
    }

    fn count(&mut self, what: &str) {
        self.add(what, 1);
    }

    /// Add `n` to a counter (none created for 0).
    fn add(&mut self, what: &str, n: u64) {
        // Hot path (every datagram): allocate the key only the first time.
        if let Some(c) = self.counters.get_mut(what) {
            *c += n;
        } else if n > 0 {
            self.counters.insert(what.to_owned(), n);
        }
    }

    /// Handle the datagrams already queued on the sockets without going back through the
    /// `select!` (one poll, one timer registration per batch, not per datagram): at most
    /// [`RECV_CALLS`] `recvmmsg` calls on the ring socket, each followed by draining the
    /// multicast socket, whose datagrams are handled first (a data packet multicast before a
    /// token is queued there before the token is queued on the ring socket). Stops starting new
    /// calls once a local event is queued, so local events keep their place.
    async fn drain_sockets(&mut self, bufs: &mut Bufs) -> Result<(), DaemonError> {
        for _ in 0..RECV_CALLS {
            if !self.local.is_empty() {
                break;
            }
            self.recv_into(Source::Ring, &mut bufs.ring);
            let mut any = !bufs.ring.is_empty();
            if let Some(group) = bufs.group.as_mut() {
                for _ in 0..RECV_CALLS * 2 {
                    self.recv_into(Source::Group, group);
                    if group.is_empty() {
                        break;
                    }
                    any = true;
                    self.handle_batch(group, Source::Group).await?;
                }
            }
            self.handle_batch(&bufs.ring, Source::Ring).await?;
            if !any {
                break;
            }
        }
        Ok(())
    }

    /// One `recvmmsg` on `src` into `batch` (empty on error, counted).
    fn recv_into(&mut self, src: Source, batch: &mut RecvBatch) {
        if let Err(e) = self.udp.recv(src, batch) {
            self.count("recv_errors");
            debug!(error = %e, ?src, "recv failed");
        }
    }

    /// Feed the datagrams of one batch to the machine, in order.
    async fn handle_batch(&mut self, batch: &RecvBatch, src: Source) -> Result<(), DaemonError> {
        for i in 0..batch.len() {
            let Some((bytes, from)) = batch.get(i) else {
                continue;
            };
            let Some(from) = from else {
                self.count("recv_errors");
                continue;
            };
            if src == Source::Group && from == self.cfg.daemon.listen {
                // Our own broadcast, looped back by IP_MULTICAST_LOOP.
                self.count("multicast_own");
                continue;
            }
            if let Some(ev) = self.on_datagram(bytes, from) {
                self.step(ev).await?;
            }
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let t = self.timers.values().min().copied();
        let h = self.held.as_ref().map(|(d, ..)| *d);
        match (t, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes from the network: an event, or a counted and logged drop.
    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) -> Option<Event> {
        self.count("datagrams_in");
        let peers = &self.peers;
        let decoded = match &mut self.protection {
            Some(p) => p.decode(bytes, |pid| peers.get(&pid.node) == Some(&from)),
            None => self.codec.decode(bytes).map(Some),
        };
        let (pid, pkt) = match decoded {
            Ok(Some(x)) => x,
            Ok(None) => {
                self.count("announcements_in");
                return None;
            }
            Err(crate::transport::DecodeError::UnknownSender) => {
                self.count("dropped_unknown_sender");
                warn!(%from, "dropped a datagram from an unknown sender address");
                return None;
            }
            Err(e) => {
                self.count(&format!("dropped_{}", e.label()));
                warn!(%from, error = %e, "dropped a malformed, foreign or unauthentic datagram");
                return None;
            }
        };
        if self.peers.get(&pid.node) != Some(&from) {
            self.count("dropped_unknown_sender");
            warn!(%from, claimed = %pid, "dropped a datagram from an unknown sender address");
            return None;
        }
        if self.blocked.contains(&pid.node) {
            self.count("dropped_partition_in");
            return None;
        }
        Some(Event::Recv { from: pid, pkt })
    }

    /// The earliest deadline passed: a held token goes out, or a timer fires.
    async fn on_deadline(&mut self) -> Result<(), DaemonError> {
        let now = Instant::now();
        if let Some((d, ..)) = &self.held
            && *d <= now
            && let Some((_, to, pkt)) = self.held.take()
        {
            self.send_token_now(to, &pkt);
            self.flush().await;
            return Ok(());
        }
        let due = self
            .timers
            .iter()
            .filter(|(_, d)| **d <= now)
            .min_by_key(|(_, d)| **d)
            .map(|(k, _)| *k);
        if let Some(kind) = due {
            self.timers.remove(&kind);
            debug!(?kind, "timer fired");
            self.step(Event::Timer(kind)).await?;
        }
        Ok(())
    }

    /// Feed one event to the machine and carry out its commands in order.
    async fn step(&mut self, ev: Event) -> Result<(), DaemonError> {
        let cmds = match self.recorder.as_mut() {
            None => self.machine.handle(&self.ring, ev),
            Some(rec) => {
                let input = ev.clone();
                let cmds = self.machine.handle(&self.ring, ev);
                let config_change = cmds.iter().any(|c| matches!(c, Command::DeliverConfig { .. }));
                let written = rec
                    .step(&input, &cmds)
                    .and_then(|()| if config_change { rec.flush() } else { Ok(()) });
                if let Err(e) = written {
                    warn!(error = %e, "recording stopped");
                    self.recorder = None;
                    self.count("record_errors");
                }
                cmds
            }
        };
        self.carry_out(cmds).await
    }

    /// Carry out one input's commands in order (reported first in controlled mode).
    async fn carry_out(&mut self, cmds: Vec<Command>) -> Result<(), DaemonError> {
        if let Some(c) = self.ctl.as_mut() {
            c.on_input(&cmds);
        }
        for c in cmds {
            self.apply(c)?;
        }
        if self
            .protection
            .as_ref()
            .is_some_and(Protection::has_announcements)
        {
            self.send_announcements();
        }
        self.flush().await;
        Ok(())
    }

    /// Queue the announcements of the servers' keys this daemon holds (see
    /// `crate::protection`); they leave with the step's other datagrams.
    fn send_announcements(&mut self) {
        let announcements = match &mut self.protection {
            Some(p) => p.take_announcements(),
            None => return,
        };
        for (node, bytes) in announcements {
            self.count("announcements_out");
            self.send_to(&[node], bytes);
        }
    }

    /// Send the datagrams queued by the last step, in one batch.
    async fn flush(&mut self) {
        if !self.udp.pending() {
            return;
        }
        let f = self.udp.flush().await;
        self.add("datagrams_out", f.sent);
        self.add("send_errors", f.errors);
        self.add("send_calls", f.calls);
    }

    fn apply(&mut self, c: Command) -> Result<(), DaemonError> {
        match c {
            Command::SendToken { to, pkt } => self.send_token(to, pkt),
            Command::Broadcast(pkt) => self.broadcast(&pkt),
            Command::SetTimer { kind, after } => {
                // Controlled mode: the harness fires timers (armed in `self.ctl`).
                if self.ctl.is_none() {
                    self.timers.insert(kind, Instant::now() + after);
                }
            }
            Command::CancelTimer(kind) => {
                self.timers.remove(&kind);
            }
            Command::Persist(d) => {
                self.store.save(&d)?;
                debug!(?d, "persisted");
            }
            Command::Deliver {
                id,
                sender,
                config,
                payload,
                ..
            } => {
                let subs = self.sessions.on_deliver(sender.node, config, &payload);
                self.install_agreed_keys();
                self.submit_group(subs);
                self.delivered += 1;
                if payload.first() != Some(&crate::sessions::GROUP_TAG) {
                    self.delivered_testing += 1;
                }
                if self.log.len() >= self.cfg.runtime.delivery_log.max(1) {
                    self.log.pop_front();
                }
                self.log.push_back((id, sender, config));
            }
            Command::DeliverConfig { kind, id, members } => {
                self.configs += 1;
                let names: Vec<String> = members.iter().map(|p| self.cfg.name_of(p.node)).collect();
                if let (ConfigKind::Regular, ConfigId::Regular(r)) = (kind, id) {
                    self.ring_span = tracing::info_span!(parent: &self.span, "ring", id = %r);
                }
                info!(config = %id, members = ?names, "configuration installed");
                let nodes = members.iter().map(|p| p.node).collect();
                let subs = self.sessions.on_config(kind, id, nodes);
                self.submit_group(subs);
            }
        }
        Ok(())
    }

    /// Give the servers' keys the last delivery completed to the packet protection.
    fn install_agreed_keys(&mut self) {
        let Some(p) = &mut self.protection else {
            return;
        };
        for (epoch, outcome) in p.install_agreed(&self.agreed) {
            match outcome {
                Ok(()) => {
                    self.count("keys_installed");
                    info!(epoch = %format!("{epoch:016x}"), "servers' key installed for the ring's packets");
                }
                Err(e) => {
                    self.count("keys_install_errors");
                    warn!(epoch = %format!("{epoch:016x}"), error = %e, "servers' key not installed");
                }
            }
        }
    }

    /// Queue the group layer's messages for the ring machine.
    fn submit_group(&mut self, subs: Vec<RingSubmit>) {
        if self.ctl.is_some() {
            // Controlled mode replays ring traces: the group layer is detached.
            for _ in subs {
                self.count("controlled_group_dropped");
            }
            return;
        }
        for RingSubmit { service, payload } in subs {
            let id = MsgId {
                origin: self.machine.me,
                n: self.next_msg,
            };
            self.next_msg = self.next_msg.wrapping_add(1);
            self.local.push_back(Event::Submit { id, service, payload });
        }
    }

    /// Whether a token may be held: the ring is idle here and in the token.
    fn idle_token(&self, pkt: &Packet) -> bool {
        matches!(pkt, Packet::Token(t) if t.fcc == 0 && t.backlog == 0 && t.rtr.is_empty())
            && self.machine.phase == Phase::Operational
            && self.machine.pending.is_empty()
            && self.local.is_empty()
    }

    fn send_token(&mut self, to: Pid, pkt: Packet) {
        if let Some((_, t, p)) = self.held.take() {
            self.send_token_now(t, &p);
        }
        let delay = if self.ctl.is_some() {
            0
        } else {
            self.cfg.runtime.idle_token_delay_ms
        };
        self.idle_streak = if self.idle_token(&pkt) {
            self.idle_streak.saturating_add(1)
        } else {
            0
        };
        if delay > 0 && self.idle_streak > self.cfg.runtime.idle_token_spins {
            self.held = Some((Instant::now() + Duration::from_millis(delay), to, pkt));
        } else {
            self.send_token_now(to, &pkt);
        }
    }

    /// Queue a token for `to` (or hand it to this machine); sent at the next flush.
    fn send_token_now(&mut self, to: Pid, pkt: &Packet) {
        if to == self.machine.me && self.ctl.is_none() {
            self.local.push_back(Event::Recv {
                from: to,
                pkt: pkt.clone(),
            });
            return;
        }
        if let Some(bytes) = self.encode_for(None, to.node, pkt) {
            self.send_to(&[to.node], bytes);
        }
    }

    /// Encode `pkt` for `dest`: plaintext without protection, else in the format
    /// `wire`, or else the one [`Protection::wire_for`] picks. `None` (counted) if sealing
    /// failed.
    fn encode_for(&mut self, wire: Option<Wire>, dest: NodeId, pkt: &Packet) -> Option<Vec<u8>> {
        let Some(p) = &mut self.protection else {
            return Some(self.codec.encode(self.machine.me, pkt));
        };
        let wire = wire.unwrap_or_else(|| p.wire_for(dest, pkt));
        match p.encode(wire, pkt) {
            Ok(b) => {
                self.count(match wire {
                    Wire::Sealed(_) => "datagrams_sealed_out",
                    Wire::Signed => "datagrams_signed_out",
                    Wire::Plain => "datagrams_plain_out",
                });
                Some(b)
            }
            Err(e) => {
                self.count("send_seal_errors");
                warn!(error = %e, "cannot protect a packet; not sent");
                None
            }
        }
    }

    /// Queue a packet for every other daemon: once to the multicast group when it is on, no
    /// peer is cut off by the partition hook and all peers take the same protection format;
    /// else one unicast datagram per peer.
    fn broadcast(&mut self, pkt: &Packet) {
        let others: Vec<NodeId> = self
            .ring
            .nodes
            .iter()
            .copied()
            .filter(|n| *n != self.machine.me.node)
            .collect();
        // One encoding per protection format (all destinations alike without protection).
        let mut groups: BTreeMap<Wire, Vec<NodeId>> = BTreeMap::new();
        for n in others {
            let w = self
                .protection
                .as_ref()
                .map_or(Wire::Plain, |p| p.wire_for(n, pkt));
            groups.entry(w).or_default().push(n);
        }
        let group = self
            .udp
            .group()
            .filter(|_| groups.len() == 1 && self.blocked.is_empty());
        for (wire, nodes) in groups {
            let Some(first) = nodes.first().copied() else {
                continue;
            };
            let Some(bytes) = self.encode_for(Some(wire), first, pkt) else {
                continue;
            };
            if let Some(g) = group {
                self.count("multicast_out");
                self.udp.push(bytes, [g]);
            } else {
                self.send_to(&nodes, bytes);
            }
        }
    }

    /// Queue `bytes` for each of `nodes` (one buffer, several destinations).
    fn send_to(&mut self, nodes: &[NodeId], bytes: Vec<u8>) {
        let mut dests = Vec::with_capacity(nodes.len());
        for node in nodes {
            if self.blocked.contains(node) {
                self.count("dropped_partition_out");
            } else if let Some(addr) = self.peers.get(node).copied() {
                dests.push(addr);
            } else {
                self.count("send_unknown_peer");
            }
        }
        self.udp.push(bytes, dests);
    }

    fn on_admin(&mut self, req: Request, reply: oneshot::Sender<Response>) {
        let resp = match req {
            Request::Status => serde_json::to_value(self.status())
                .map_or_else(|e| Response::err(e.to_string()), Response::ok),
            Request::Log { last } => {
                let k = last.unwrap_or(self.log.len()).min(self.log.len());
                let entries: Vec<Delivered> = self
                    .log
                    .iter()
                    .skip(self.log.len() - k)
                    .map(|(id, sender, config)| Delivered {
                        id: id.to_string(),
                        sender: sender.to_string(),
                        config: config.to_string(),
                    })
                    .collect();
                Response::ok(serde_json::json!({ "delivered": self.delivered, "entries": entries }))
            }
            Request::Groups => {
                let groups: Vec<serde_json::Value> = self
                    .sessions
                    .layer()
                    .table()
                    .into_iter()
                    .map(|(name, gid, members)| {
                        serde_json::json!({
                            "name": name.as_str(),
                            "view": gid.to_string(),
                            "members": members.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                Response::ok(serde_json::json!({ "groups": groups }))
            }
            Request::Partition { from } => self.partition(&from),
            Request::Heal => {
                warn!("TESTING: partition healed");
                self.blocked.clear();
                Response::ok(serde_json::json!({ "partitioned_from": [] }))
            }
            Request::Send { count, size, service } => self.submit(count, size, service),
            Request::Shutdown => {
                self.stopping = true;
                Response::ok(serde_json::json!({ "stopping": true }))
            }
            r @ (Request::FireTimer { .. } | Request::Submit { .. } | Request::Controlled) => {
                let (me, queued) = (self.machine.me, self.local.len());
                match self.ctl.as_mut() {
                    None => Response::err("not in controlled mode (runtime.controlled)"),
                    Some(c) => {
                        let (answer, ev) = c.request(me, queued, r);
                        self.local.extend(ev);
                        answer
                    }
                }
            }
        };
        let _ = reply.send(resp);
    }

    fn partition(&mut self, from: &[String]) -> Response {
        let mut nodes = BTreeSet::new();
        for name in from {
            match self.cfg.peers.iter().find(|p| &p.name == name) {
                Some(p) if p.id != self.cfg.daemon.id => {
                    nodes.insert(p.id);
                }
                Some(_) => return Response::err(format!("cannot partition a daemon from itself ({name})")),
                None => return Response::err(format!("unknown daemon `{name}`")),
            }
        }
        warn!(from = ?from, "TESTING: dropping every packet from and to these daemons");
        self.blocked = nodes;
        Response::ok(serde_json::json!({ "partitioned_from": self.blocked_names() }))
    }

    fn submit(&mut self, count: u32, size: usize, service: SendService) -> Response {
        let service = match service {
            SendService::Agreed => Service::Agreed,
            SendService::Safe => Service::Safe,
        };
        if u64::from(count).saturating_mul(size.max(1) as u64) > MAX_SEND_BYTES {
            return Response::err(format!(
                "count × size above the {MAX_SEND_BYTES} byte bound of the testing hook"
            ));
        }
        let first = self.next_msg;
        for _ in 0..count {
            let id = MsgId {
                origin: self.machine.me,
                n: self.next_msg,
            };
            self.next_msg = self.next_msg.wrapping_add(1);
            let mut payload = vec![u8::try_from(id.n % 251).unwrap_or(0); size];
            // Not a group-layer message (those start with `sessions::GROUP_TAG`).
            if let Some(b) = payload.first_mut() {
                *b = 0;
            }
            self.local.push_back(Event::Submit { id, service, payload });
        }
        Response::ok(serde_json::json!({ "submitted": count, "first": first }))
    }

    fn blocked_names(&self) -> Vec<String> {
        self.blocked.iter().map(|n| self.cfg.name_of(*n)).collect()
    }

    /// The admin status.
    pub fn status(&self) -> Status {
        let m = &self.machine;
        Status {
            daemon: self.cfg.daemon.name.clone(),
            node: m.me.node,
            incarnation: m.me.inc,
            phase: format!("{:?}", m.phase),
            ring: RingStatus {
                id: m.reg_ring.to_string(),
                seq: m.reg_ring.seq,
                members: m.reg_members.iter().map(|p| self.cfg.name_of(p.node)).collect(),
                pids: m.reg_members.iter().map(ToString::to_string).collect(),
            },
            delivered: self.delivered,
            delivered_testing: self.delivered_testing,
            configs: self.configs,
            pending: m.pending.len(),
            partitioned_from: self.blocked_names(),
            counters: self.counters.clone(),
            machine: serde_json::to_value(&m.stats).unwrap_or_default(),
            clients: self.sessions.status(),
            keys: self.sessions.keys_status(),
            protection: self.protection.as_ref().map(Protection::status),
        }
    }
}

/// Bind and run a daemon on a current-thread tokio runtime until SIGINT/SIGTERM or an admin
/// `shutdown`.
pub fn run_blocking(cfg: DaemonConfig) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(async {
        let daemon = Runtime::bind(cfg).await?;
        daemon.run(stop_signal()).await
    })
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
