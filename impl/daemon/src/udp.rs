//! The ring's UDP sockets and their batched system calls; no protocol knowledge.
//!
//! ```text
//!  runtime step ─► push(bytes, destinations) ─► queue ─► flush(): sendmmsg, one call per batch
//!  ring socket  ─┐
//!  group socket ─┴► readable() ─► recv(): recvmmsg into a RecvBatch (one call, many datagrams)
//! ```
//!
//! - The **ring socket** is bound to `daemon.listen`: unicast in and out, and the sender of
//!   multicast datagrams (so a multicast datagram's source is the sender's `listen` address,
//!   checked like any other).
//! - The optional **group socket** (`[network] multicast`) is bound to the group address and
//!   port with `SO_REUSEADDR` (several daemons of one host share it) and joined on the
//!   interface of `daemon.listen`; with `IP_MULTICAST_LOOP` on, a daemon also receives its own
//!   multicast datagrams: a classic BPF filter on the group socket drops them in the kernel
//!   (source address and port = `daemon.listen`), and the runtime drops any that pass (the
//!   filter could not be attached) by source address.
//!
//! Datagrams queued during one step of the ring machine leave in order in one `sendmmsg` (up to
//! [`SEND_BATCH`] per call); a partial send is resumed, a refused datagram is counted and
//! skipped. `nix` provides the safe wrappers of `sendmmsg`/`recvmmsg` (the workspace forbids
//! `unsafe`).

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

/// Datagrams per `sendmmsg` call (Linux accepts up to 1024).
pub const SEND_BATCH: usize = 256;
/// Datagrams per `recvmmsg` call, hence buffers per [`RecvBatch`].
pub const RECV_BATCH: usize = 32;

/// Errors of setting the sockets up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The ring socket could not be bound.
    #[error("cannot bind daemon.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The multicast group could not be set up (bind, join, or socket options).
    #[error("network.multicast {group}: {what}: {source}")]
    Multicast {
        /// The group address and port.
        group: SocketAddr,
        /// The step that failed.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Multicast settings (`[network]` of the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multicast {
    /// Group address (IPv4 multicast) and port.
    pub group: SocketAddrV4,
    /// Interface address to send from and join on (the IP of `daemon.listen`).
    pub interface: Ipv4Addr,
    /// `IP_MULTICAST_TTL`.
    pub ttl: u32,
}

/// Which socket a datagram came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The ring socket (unicast).
    Ring,
    /// The multicast group socket.
    Group,
}

/// What a [`Udp::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams refused (counted and skipped).
    pub errors: u64,
    /// `sendmmsg` calls made.
    pub calls: u64,
}

/// Receive buffers for one `recvmmsg` call, and what it received.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl RecvBatch {
    /// [`RECV_BATCH`] buffers of `max_datagram + 1` bytes each (one more than accepted, so a
    /// larger datagram shows as oversize rather than silently truncated).
    pub fn new(max_datagram: usize) -> Self {
        Self {
            bufs: (0..RECV_BATCH).map(|_| vec![0; max_datagram + 1]).collect(),
            got: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Datagrams received by the last call.
    pub const fn len(&self) -> usize {
        self.got.len()
    }

    /// Whether the last call received nothing.
    pub const fn is_empty(&self) -> bool {
        self.got.is_empty()
    }

    /// The `i`-th datagram of the last call and its source address (`None`: not IP).
    pub fn get(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        let (n, from) = *self.got.get(i)?;
        let buf = self.bufs.get(i)?;
        Some((buf.get(..n).unwrap_or(buf), from))
    }
}

/// The ring's sockets and the queue of datagrams of the current step.
pub struct Udp {
    sock: UdpSocket,
    group: Option<(UdpSocket, SocketAddr)>,
    /// Encoded datagrams queued since the last flush.
    out: Vec<Vec<u8>>,
    /// `(destination, index into out)`, in sending order.
    dests: Vec<(SocketAddr, usize)>,
}

impl Udp {
    /// Bind the ring socket (and join the group), asking for `socket_buffer` bytes of kernel
    /// buffers on each socket (0: OS default).
    pub async fn bind(
        listen: SocketAddr,
        multicast: Option<Multicast>,
        socket_buffer: usize,
    ) -> Result<Self, UdpError> {
        let sock = UdpSocket::bind(listen)
            .await
            .map_err(|source| UdpError::Bind { addr: listen, source })?;
        set_socket_buffers(&sock, socket_buffer);
        let group = match multicast {
            None => None,
            Some(m) => Some(join_group(&sock, m, socket_buffer)?),
        };
        if let (Some((g, _)), SocketAddr::V4(me)) = (&group, sock.local_addr().unwrap_or(listen)) {
            drop_own(g, me);
        }
        Ok(Self {
            sock,
            group,
            out: Vec::new(),
            dests: Vec::new(),
        })
    }

    /// The multicast group address, if on.
    pub fn group(&self) -> Option<SocketAddr> {
        self.group.as_ref().map(|(_, a)| *a)
    }

    /// Queue one datagram for each destination (sent in queue order at the next flush).
    pub fn push(&mut self, bytes: Vec<u8>, dests: impl IntoIterator<Item = SocketAddr>) {
        let i = self.out.len();
        let before = self.dests.len();
        self.dests.extend(dests.into_iter().map(|d| (d, i)));
        if self.dests.len() > before {
            self.out.push(bytes);
        }
    }

    /// Whether datagrams are queued.
    pub fn pending(&self) -> bool {
        !self.dests.is_empty()
    }

    /// Send every queued datagram, in order, with as few `sendmmsg` calls as the kernel allows;
    /// waits for the socket to be writable when its buffer is full.
    pub async fn flush(&mut self) -> Flushed {
        let mut r = Flushed::default();
        let mut done = 0;
        while done < self.dests.len() {
            let end = self.dests.len().min(done + SEND_BATCH);
            let chunk = self.dests.get(done..end).unwrap_or_default();
            let out = &self.out;
            let fd = self.sock.as_raw_fd();
            match self
                .sock
                .try_io(Interest::WRITABLE, || send_batch(fd, out, chunk))
            {
                Ok(n) => {
                    r.calls += 1;
                    // n == 0 cannot happen for a non-empty batch; never loop on it.
                    let n = n.max(1);
                    r.sent += n as u64;
                    done += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.sock.writable().await {
                        warn!(error = %e, "ring socket not writable; queued datagrams dropped");
                        r.errors += (self.dests.len() - done) as u64;
                        break;
                    }
                }
                Err(e) => {
                    // The first datagram of the batch was refused: skip it.
                    r.calls += 1;
                    r.errors += 1;
                    debug!(to = ?chunk.first().map(|c| c.0), error = %e, "send failed");
                    done += 1;
                }
            }
        }
        self.dests.clear();
        self.out.clear();
        r
    }

    /// Wait until a socket has datagrams (or may have: readiness can be spurious).
    pub async fn readable(&self) -> std::io::Result<Source> {
        match &self.group {
            None => self.sock.readable().await.map(|()| Source::Ring),
            Some((g, _)) => tokio::select! {
                r = self.sock.readable() => r.map(|()| Source::Ring),
                r = g.readable() => r.map(|()| Source::Group),
            },
        }
    }

    /// Receive up to [`RECV_BATCH`] datagrams queued on `src` without waiting (an empty batch:
    /// nothing queued, or no group socket).
    pub fn recv(&self, src: Source, batch: &mut RecvBatch) -> std::io::Result<()> {
        batch.got.clear();
        let sock = match (src, &self.group) {
            (Source::Ring, _) => &self.sock,
            (Source::Group, Some((g, _))) => g,
            (Source::Group, None) => return Ok(()),
        };
        let fd = sock.as_raw_fd();
        match sock.try_io(Interest::READABLE, || recv_batch(fd, batch)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// One `sendmmsg` of `chunk`: how many datagrams the kernel took.
fn send_batch(fd: i32, out: &[Vec<u8>], chunk: &[(SocketAddr, usize)]) -> std::io::Result<usize> {
    let iovs: Vec<[IoSlice<'_>; 1]> = chunk
        .iter()
        .map(|(_, i)| [IoSlice::new(out.get(*i).map_or(&[][..], Vec::as_slice))])
        .collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(a, _)| Some(SockaddrStorage::from(*a)))
        .collect();
    let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let sent =
        sendmmsg(fd, &mut hdrs, &iovs, &addrs, [], MsgFlags::MSG_DONTWAIT).map_err(std::io::Error::from)?;
    Ok(sent.count())
}

/// One `recvmmsg` into the batch's buffers.
fn recv_batch(fd: i32, batch: &mut RecvBatch) -> std::io::Result<()> {
    let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(batch.bufs.len(), None);
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = batch.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
    let got = recvmmsg(fd, &mut hdrs, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
        .map_err(std::io::Error::from)?;
    for m in got {
        batch.got.push((m.bytes, m.address.as_ref().and_then(to_std)));
    }
    Ok(())
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(std::net::SocketAddrV6::from(*v6)))
}

/// Set the ring socket up for sending to the group and bind the group socket.
fn join_group(
    ring: &UdpSocket,
    m: Multicast,
    socket_buffer: usize,
) -> Result<(UdpSocket, SocketAddr), UdpError> {
    let group = SocketAddr::V4(m.group);
    let err = |what: &'static str| move |source| UdpError::Multicast { group, what, source };
    let r = socket2::SockRef::from(ring);
    r.set_multicast_if_v4(&m.interface)
        .map_err(err("IP_MULTICAST_IF"))?;
    r.set_multicast_loop_v4(true).map_err(err("IP_MULTICAST_LOOP"))?;
    r.set_multicast_ttl_v4(m.ttl).map_err(err("IP_MULTICAST_TTL"))?;
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(err("socket"))?;
    s.set_reuse_address(true).map_err(err("SO_REUSEADDR"))?;
    s.bind(&group.into()).map_err(err("bind"))?;
    s.join_multicast_v4(m.group.ip(), &m.interface)
        .map_err(err("IP_ADD_MEMBERSHIP"))?;
    s.set_nonblocking(true).map_err(err("O_NONBLOCK"))?;
    let sock = UdpSocket::from_std(s.into()).map_err(err("register"))?;
    set_socket_buffers(&sock, socket_buffer);
    debug!(%group, interface = %m.interface, "joined the multicast group");
    Ok((sock, group))
}

/// Attach a classic BPF filter to the group socket that drops datagrams whose IPv4 source
/// address and UDP source port are `me` (this daemon's own broadcasts, looped back by
/// `IP_MULTICAST_LOOP`), so they cost neither a wake-up nor a copy. Best effort: without it the
/// runtime drops them by source address.
fn drop_own(group: &UdpSocket, me: SocketAddrV4) {
    use socket2::SockFilter;
    // Opcodes of linux/filter.h.
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    // SKF_NET_OFF (-0x100000): offsets from the IP header; offset 0 is the UDP header.
    const NET_OFF: u32 = 0xfff0_0000;
    let prog = [
        SockFilter::new(LD_W_ABS, 0, 0, NET_OFF + 12), // A = IPv4 source address
        SockFilter::new(JEQ_K, 0, 3, u32::from(*me.ip())), // not ours: accept
        SockFilter::new(LD_H_ABS, 0, 0, 0),            // A = UDP source port
        SockFilter::new(JEQ_K, 0, 1, u32::from(me.port())), // not ours: accept
        SockFilter::new(RET_K, 0, 0, 0),               // ours: drop
        SockFilter::new(RET_K, 0, 0, u32::MAX),        // accept the whole datagram
    ];
    if let Err(e) = socket2::SockRef::from(group).attach_filter(&prog) {
        warn!(error = %e, "cannot attach the own-datagram filter to the multicast socket");
    }
}

/// Ask for `bytes` of kernel send and receive buffer (0: keep the OS default). The kernel may
/// grant less (Linux caps it at `net.core.rmem_max`/`wmem_max`); a refusal is logged, not
/// fatal: it only makes bursts more likely to be dropped (and retransmitted).
fn set_socket_buffers(sock: &UdpSocket, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let s = socket2::SockRef::from(sock);
    if let Err(e) = s.set_recv_buffer_size(bytes) {
        warn!(error = %e, bytes, "cannot set SO_RCVBUF");
    }
    if let Err(e) = s.set_send_buffer_size(bytes) {
        warn!(error = %e, bytes, "cannot set SO_SNDBUF");
    }
    debug!(
        rcvbuf = ?s.recv_buffer_size().ok(),
        sndbuf = ?s.send_buffer_size().ok(),
        "socket buffers"
    );
}

/// The interface for `listen`'s multicast: its IPv4 address (`None` for IPv6).
pub fn interface_of(listen: SocketAddr) -> Option<Ipv4Addr> {
    match listen.ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `readable()` with a bound, so a lost datagram fails the test instead of hanging it.
    async fn ready(u: &Udp) -> Source {
        tokio::time::timeout(std::time::Duration::from_secs(5), u.readable())
            .await
            .expect("a datagram within 5 s")
            .expect("readable")
    }

    /// Two sockets on loopback: a batch of datagrams to two destinations goes out in one
    /// flush, in order, and comes back in one `recvmmsg`.
    #[tokio::test]
    async fn batched_send_and_receive_keep_order() {
        let a = Udp::bind("127.0.0.1:0".parse().unwrap(), None, 0).await.unwrap();
        let b = Udp::bind("127.0.0.1:0".parse().unwrap(), None, 0).await.unwrap();
        let c = Udp::bind("127.0.0.1:0".parse().unwrap(), None, 0).await.unwrap();
        let (ab, ac) = (b.sock.local_addr().unwrap(), c.sock.local_addr().unwrap());
        let mut a = a;
        for i in 0..10u8 {
            a.push(vec![i; 100 + usize::from(i)], [ab, ac]);
        }
        a.push(Vec::new(), []);
        assert!(a.pending());
        let f = a.flush().await;
        assert_eq!((f.sent, f.errors, f.calls), (20, 0, 1));
        assert!(!a.pending());
        for r in [&b, &c] {
            let mut batch = RecvBatch::new(1000);
            let mut seen = Vec::new();
            for _ in 0..100 {
                ready(r).await;
                r.recv(Source::Ring, &mut batch).unwrap();
                for i in 0..batch.len() {
                    let (bytes, from) = batch.get(i).unwrap();
                    assert_eq!(from, Some(a.sock.local_addr().unwrap()));
                    assert_eq!(bytes.len(), 100 + usize::from(bytes[0]));
                    seen.push(bytes[0]);
                }
                if seen.len() == 10 {
                    break;
                }
            }
            assert_eq!(seen, (0..10).collect::<Vec<u8>>());
        }
    }

    /// An oversized datagram shows one byte longer than the bound.
    #[tokio::test]
    async fn oversize_is_visible() {
        let mut a = Udp::bind("127.0.0.1:0".parse().unwrap(), None, 0).await.unwrap();
        let b = Udp::bind("127.0.0.1:0".parse().unwrap(), None, 0).await.unwrap();
        a.push(vec![7; 600], [b.sock.local_addr().unwrap()]);
        assert_eq!(a.flush().await.sent, 1);
        let mut batch = RecvBatch::new(512);
        for _ in 0..100 {
            ready(&b).await;
            b.recv(Source::Ring, &mut batch).unwrap();
            if !batch.is_empty() {
                break;
            }
        }
        assert_eq!(batch.get(0).map(|(d, _)| d.len()), Some(513));
    }

    /// Loopback multicast: the other member receives a datagram sent to the group; the sender's
    /// own copy is dropped by the filter (a datagram from a third socket still reaches it).
    #[tokio::test]
    async fn multicast_on_loopback() {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let m = Multicast {
            group: SocketAddrV4::new(Ipv4Addr::new(239, 255, 91, 7), port),
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
        };
        let mut a = Udp::bind("127.0.0.1:0".parse().unwrap(), Some(m), 0)
            .await
            .unwrap();
        let b = Udp::bind("127.0.0.1:0".parse().unwrap(), Some(m), 0)
            .await
            .unwrap();
        let g = a.group().unwrap();
        a.push(b"hello".to_vec(), [g]);
        assert_eq!(a.flush().await.sent, 1);
        let third = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        third.send_to(b"other", g).unwrap();
        let all = |r: &Udp| {
            let mut batch = RecvBatch::new(100);
            r.recv(Source::Group, &mut batch).unwrap();
            (0..batch.len())
                .filter_map(|i| batch.get(i).map(|(b, f)| (b.to_vec(), f)))
                .collect::<Vec<_>>()
        };
        let mut got = Vec::new();
        for _ in 0..100 {
            if ready(&b).await == Source::Group {
                got.extend(all(&b));
                if got.len() >= 2 {
                    break;
                }
            }
        }
        let (sa, st) = (a.sock.local_addr().unwrap(), third.local_addr().unwrap());
        assert_eq!(
            got,
            vec![(b"hello".to_vec(), Some(sa)), (b"other".to_vec(), Some(st))]
        );
        let mut got = Vec::new();
        for _ in 0..100 {
            if ready(&a).await == Source::Group {
                got.extend(all(&a));
                if !got.is_empty() {
                    break;
                }
            }
        }
        assert_eq!(
            got,
            vec![(b"other".to_vec(), Some(st))],
            "own datagram not filtered"
        );
    }
}
