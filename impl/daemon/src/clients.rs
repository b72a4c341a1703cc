//! Client connections: the socket side of sessions. It decides nothing about groups; it turns
//! bytes into [`SessionMsg`]s for the event loop and writes the frames the loop queues.
//!
//! ```text
//!  TCP / Unix listener ─accept─► reader task ─ FrameDecoder<ToDaemon> ─► SessionMsg (bounded: back-pressure)
//!                                writer task ◄─ unbounded queue of encoded frames ◄─ event loop
//!                                     └─ batch of frames ─► one write ─► SessionCtl::Drained{n}
//! ```
//!
//! Each connection has a reader and a writer task, so a client that writes much and reads little
//! never deadlocks the daemon, and the loop never waits for a socket. The session's queue is
//! bounded by the group layer (it kills a session whose queue reaches `max_session_queue`), the
//! requests channel is bounded here (a full channel stops reading the sockets: TCP back-pressure).
//! A malformed frame, a wrong first frame or a silent client (no hello within
//! [`HELLO_TIMEOUT`]) ends only that connection, with a logged reason.
//!
//! Authentication (`docs/security.md`): with `security.mode` ≠ `none` the TCP port speaks TLS
//! 1.3 with client certificates required and verified against the deployment CA; the session's
//! identity is the certificate's common name ([`Via::Tls`]). A connection whose first byte is not
//! a TLS handshake record is served in plaintext as [`Via::Tcp`] so that the session layer can
//! answer its hello with REFUSE `REJECT_AUTH` (−9); a failed handshake (no certificate, another
//! CA, garbage) is logged and the connection closed — no frame can be sent there. The Unix socket
//! stays plaintext and identifies the peer by its uid (`SO_PEERCRED`): [`Via::Unix`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use sgc_model::groups::{ClientReq, KillReason, SessionId};
use sgc_wire::{FrameDecoder, Hello, ToDaemon, WireError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{Instrument, debug, warn};

/// How long a new connection may take to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes written in one batch.
const WRITE_BATCH: usize = 256 * 1024;

/// What a connection's reader tells the event loop, in the connection's order.
#[derive(Debug)]
pub enum SessionMsg {
    /// A new connection said hello; `out` is its writer's queue, `tasks` aborts its tasks.
    Hello {
        /// The session.
        sess: SessionId,
        /// Its hello.
        hello: Hello,
        /// Frames to write to it.
        out: mpsc::UnboundedSender<Outgoing>,
        /// Both tasks of the connection.
        tasks: [AbortHandle; 2],
        /// How it connected.
        via: Via,
    },
    /// A request.
    Req {
        /// The session.
        sess: SessionId,
        /// The request.
        req: ClientReq,
    },
    /// The connection ended (end of stream, an I/O error or a protocol violation).
    Closed {
        /// The session.
        sess: SessionId,
        /// Why, for the log.
        why: String,
        /// Whether the client broke the protocol (it gets a CLOSING frame).
        violation: bool,
    },
}

/// What a writer tells the event loop.
#[derive(Clone, Copy, Debug)]
pub enum SessionCtl {
    /// `n` frames were written.
    Drained {
        /// The session.
        sess: SessionId,
        /// How many.
        n: u32,
    },
}

/// A frame for a writer, or the order to close.
#[derive(Debug)]
pub enum Outgoing {
    /// An encoded frame.
    Frame(Vec<u8>),
    /// An encoded frame shared by several sessions (a data message encoded once for every
    /// local receiver).
    Shared(bytes::Bytes),
    /// Write this last frame, then close.
    Close(Vec<u8>),
}

/// How a client reached the daemon, and who it proved to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// Plaintext TCP from this address (unauthenticated).
    Tcp(std::net::SocketAddr),
    /// Mutual TLS from this address; `identity` is the verified certificate's common name.
    Tls {
        /// The peer address.
        peer: std::net::SocketAddr,
        /// The client certificate's CN.
        identity: String,
    },
    /// The local Unix socket; `uid` is the peer's user id, if the kernel told it.
    Unix {
        /// The peer's uid (`SO_PEERCRED`).
        uid: Option<u32>,
    },
}

impl Via {
    /// The authenticated identity: the certificate CN over TLS, `uid:N` on the Unix socket,
    /// none on plaintext TCP.
    pub fn identity(&self) -> Option<String> {
        match self {
            Self::Tcp(_) | Self::Unix { uid: None } => None,
            Self::Tls { identity, .. } => Some(identity.clone()),
            Self::Unix { uid: Some(u) } => Some(format!("uid:{u}")),
        }
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The channels from connections to the event loop.
#[derive(Clone)]
pub struct Channels {
    /// Hellos, requests and closes (bounded).
    pub msgs: mpsc::Sender<SessionMsg>,
    /// Write completions (unbounded: a writer never waits for the loop).
    pub ctl: mpsc::UnboundedSender<SessionCtl>,
}

/// Accept TCP clients forever; with `tls`, each connection is authenticated first (mutual TLS).
pub async fn serve_tcp(
    listener: TcpListener,
    ch: Channels,
    ids: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let sess = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match &acceptor {
                    None => {
                        let (r, w) = stream.into_split();
                        spawn_connection(sess, r, w, Via::Tcp(peer), ch.clone());
                    }
                    Some(a) => {
                        let span = tracing::debug_span!("session", sess);
                        tokio::spawn(
                            authenticate_tls(sess, stream, peer, a.clone(), ch.clone()).instrument(span),
                        );
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "accept failed on the client TCP port");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accept local clients on a Unix socket forever.
pub async fn serve_unix(
    listener: UnixListener,
    ch: Channels,
    ids: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let sess = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let uid = match stream.peer_cred() {
                    Ok(c) => Some(c.uid()),
                    Err(e) => {
                        warn!(sess, error = %e, "no peer credentials on the client Unix socket");
                        None
                    }
                };
                let (r, w) = stream.into_split();
                spawn_connection(sess, r, w, Via::Unix { uid }, ch.clone());
            }
            Err(e) => {
                warn!(error = %e, "accept failed on the client Unix socket");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Run the TLS handshake of one TCP connection, then serve it as [`Via::Tls`]. A client that
/// does not start with a TLS record is served in plaintext ([`Via::Tcp`]), to be refused by the
/// session layer with `REJECT_AUTH`; a failed handshake only logs and closes.
async fn authenticate_tls(
    sess: SessionId,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    ch: Channels,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HELLO_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        Ok(Ok(_)) => return debug!(%peer, "closed before saying anything"),
        Ok(Err(e)) => return debug!(%peer, error = %e, "read error before the handshake"),
        Err(_) => return warn!(%peer, "client refused: nothing sent within {HELLO_TIMEOUT:?}"),
    }
    if first[0] != TLS_HANDSHAKE {
        // A plaintext client on a TLS port: its hello gets REFUSE REJECT_AUTH (sessions.rs).
        let (r, w) = stream.into_split();
        return spawn_connection(sess, r, w, Via::Tcp(peer), ch);
    }
    let tls = match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return warn!(%peer, error = %e, "client refused: TLS handshake failed"),
        Err(_) => return warn!(%peer, "client refused: TLS handshake not done within {HELLO_TIMEOUT:?}"),
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(sgc_crypto::pki::common_name);
    let via = match identity {
        Some(identity) => Via::Tls { peer, identity },
        // Verified by the CA but nameless: served unauthenticated, so refused at its hello.
        None => {
            warn!(%peer, "client certificate has no common name");
            Via::Tcp(peer)
        }
    };
    let (r, w) = tokio::io::split(tls);
    spawn_connection(sess, r, w, via, ch);
}

/// Bind the Unix socket, replacing a stale socket file left by a previous run.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

/// The default Unix socket path inside a data directory.
pub fn default_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("client.sock")
}

fn spawn_connection<R, W>(sess: SessionId, r: R, w: W, via: Via, ch: Channels)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::debug_span!("session", sess);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sess, w, out_rx, ch.ctl.clone()).instrument(span.clone()));
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<AbortHandle>();
    let reader = tokio::spawn(
        async move {
            let Ok(me) = go_rx.await else { return };
            read_loop(sess, r, via, out_tx, [me, writer.abort_handle()], ch.msgs).await;
        }
        .instrument(span),
    );
    let _ = go_tx.send(reader.abort_handle());
}

async fn read_loop<R: AsyncRead + Unpin>(
    sess: SessionId,
    mut r: R,
    via: Via,
    out: mpsc::UnboundedSender<Outgoing>,
    tasks: [AbortHandle; 2],
    msgs: mpsc::Sender<SessionMsg>,
) {
    let mut dec = FrameDecoder::<ToDaemon>::new();
    let first = tokio::time::timeout(HELLO_TIMEOUT, next_frame(&mut r, &mut dec)).await;
    let end = match first {
        Err(_) => Ending::plain(format!("no hello within {HELLO_TIMEOUT:?}")),
        Ok(Err(end)) => {
            // A refusable hello (illegal name, other version) is answered; anything else is not.
            if let Some(code) = end.wire.as_ref().and_then(WireError::refusal) {
                let mut b = Vec::new();
                if sgc_wire::encode_refuse(code, &mut b).is_ok() {
                    let _ = out.send(Outgoing::Close(b));
                }
            }
            end
        }
        Ok(Ok(ToDaemon::Req(_))) => Ending::plain("the first frame was not a hello".to_owned()),
        Ok(Ok(ToDaemon::Hello(hello))) => {
            let hello_msg = SessionMsg::Hello {
                sess,
                hello,
                out,
                tasks,
                via,
            };
            if msgs.send(hello_msg).await.is_err() {
                return;
            }
            loop {
                match next_frame(&mut r, &mut dec).await {
                    Ok(ToDaemon::Req(req)) => {
                        if msgs.send(SessionMsg::Req { sess, req }).await.is_err() {
                            return;
                        }
                    }
                    Ok(ToDaemon::Hello(_)) => {
                        break Ending {
                            why: "protocol violation: a second hello".to_owned(),
                            wire: None,
                            violation: true,
                        };
                    }
                    Err(end) => break end,
                }
            }
        }
    };
    debug!(why = %end.why, "connection ends");
    let closed = SessionMsg::Closed {
        sess,
        why: end.why,
        violation: end.violation,
    };
    let _ = msgs.send(closed).await;
}

/// Why a connection's input ends.
struct Ending {
    why: String,
    wire: Option<WireError>,
    violation: bool,
}

impl Ending {
    const fn plain(why: String) -> Self {
        Self {
            why,
            wire: None,
            violation: false,
        }
    }
}

/// The next frame, or why the connection ends.
async fn next_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    dec: &mut FrameDecoder<ToDaemon>,
) -> Result<ToDaemon, Ending> {
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => {
                return Err(Ending {
                    why: format!("protocol violation: {e}"),
                    wire: Some(e),
                    violation: true,
                });
            }
        }
        dec.reserve_for_next(16 * 1024);
        match r.read_buf(dec.buffer_mut()).await {
            Ok(0) if dec.buffered() == 0 => return Err(Ending::plain("end of stream".to_owned())),
            Ok(0) => return Err(Ending::plain("end of stream inside a frame".to_owned())),
            Ok(_) => {}
            Err(e) => return Err(Ending::plain(format!("read error: {e}"))),
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    sess: SessionId,
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    ctl: mpsc::UnboundedSender<SessionCtl>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while let Some(first) = rx.recv().await {
        let mut n = 0u32;
        let mut closing = false;
        let mut next = Some(first);
        while let Some(o) = next.take() {
            match o {
                Outgoing::Frame(f) => batch.extend_from_slice(&f),
                Outgoing::Shared(f) => batch.extend_from_slice(&f),
                Outgoing::Close(f) => {
                    batch.extend_from_slice(&f);
                    closing = true;
                }
            }
            n += 1;
            if !closing && batch.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = w.write_all(&batch).await {
            debug!(error = %e, "write failed");
            return;
        }
        batch.clear();
        let _ = ctl.send(SessionCtl::Drained { sess, n });
        if closing {
            let _ = w.shutdown().await;
            return;
        }
    }
}

/// The reason text of a kill, for logs.
pub const fn kill_text(why: KillReason) -> &'static str {
    match why {
        KillReason::SlowClient => "slow client: its queue reached the bound",
        KillReason::ProtocolViolation => "protocol violation",
    }
}
