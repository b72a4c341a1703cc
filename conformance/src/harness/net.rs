//! The harness as the daemons' network: one UDP socket per ordered pair of daemons
//! (`sock[d][p]` is where daemon `d` sends to `p`, and where packets from `p` reach `d` from;
//! `sock[d][d]` is `d`'s loopback), the packets in flight as the model's network holds them,
//! and the port choice for the daemons' own endpoints.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sgc_daemon::transport::Codec;
use sgc_model::ring::{NodeId, Packet, Pid};

use super::HarnessError;
use super::node::Addrs;

/// A packet the harness holds: sent by a daemon, not yet delivered or lost.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// Sending node.
    pub from: NodeId,
    /// Destination node.
    pub to: NodeId,
    /// Sender pid (datagram header).
    pub sender: Pid,
    /// The decoded packet.
    pub pkt: Packet,
    /// The datagram as the daemon sent it (forwarded unchanged).
    pub bytes: Vec<u8>,
}

/// The sockets of the harness.
#[derive(Debug)]
pub struct Net {
    /// Node ids, by index.
    pub nodes: Vec<NodeId>,
    socks: Vec<Vec<UdpSocket>>,
    /// The daemons' listen addresses, by index.
    pub listen: Vec<SocketAddr>,
    codec: Codec,
}

/// Index of `n` in `nodes`.
pub fn index(nodes: &[NodeId], n: NodeId) -> Result<usize, String> {
    nodes
        .iter()
        .position(|&m| m == n)
        .ok_or_else(|| format!("d{n} is not configured"))
}

impl Net {
    /// Binds the sockets (OS-chosen loopback ports).
    pub fn bind(nodes: &[NodeId], addrs: &[Addrs], codec: Codec) -> Result<Self, HarnessError> {
        let mut socks = Vec::new();
        for _ in nodes {
            let mut row = Vec::new();
            for _ in nodes {
                let s = UdpSocket::bind(("127.0.0.1", 0))
                    .map_err(|e| HarnessError::Io("udp bind".into(), e.to_string()))?;
                s.set_nonblocking(true)
                    .map_err(|e| HarnessError::Io("udp".into(), e.to_string()))?;
                row.push(s);
            }
            socks.push(row);
        }
        Ok(Self {
            nodes: nodes.to_vec(),
            socks,
            listen: addrs.iter().map(|a| a.listen).collect(),
            codec,
        })
    }

    /// The peers table of daemon index `d`: where it sends to each node.
    pub fn peers_of(&self, d: usize) -> Result<Vec<(NodeId, SocketAddr)>, HarnessError> {
        let row = self
            .socks
            .get(d)
            .ok_or_else(|| HarnessError::Setup(format!("no daemon {d}")))?;
        self.nodes
            .iter()
            .zip(row)
            .map(|(&n, s)| {
                s.local_addr()
                    .map(|a| (n, a))
                    .map_err(|e| HarnessError::Io("udp".into(), e.to_string()))
            })
            .collect()
    }

    /// Forwards `p` to its destination daemon, from the socket that stands for its sender there.
    pub fn forward(&self, p: &InFlight) -> Result<(), String> {
        let (f, t) = (index(&self.nodes, p.from)?, index(&self.nodes, p.to)?);
        let sock = self
            .socks
            .get(t)
            .and_then(|r| r.get(f))
            .ok_or_else(|| "no socket".to_owned())?;
        let dest = self
            .listen
            .get(t)
            .copied()
            .ok_or_else(|| "no address".to_owned())?;
        sock.send_to(&p.bytes, dest)
            .map(|_| ())
            .map_err(|e| format!("forwarding to d{}: {e}", p.to))
    }

    /// Receives the datagrams daemon index `d` sent: `want[p]` to each node index `p`, within
    /// `deadline`. Returns them decoded, per destination in arrival order.
    pub fn collect(&self, d: usize, want: &[usize], deadline: Instant) -> Result<Vec<InFlight>, String> {
        let row = self.socks.get(d).ok_or_else(|| format!("no daemon {d}"))?;
        let from = self
            .nodes
            .get(d)
            .copied()
            .ok_or_else(|| format!("no daemon {d}"))?;
        let mut got = vec![0usize; want.len()];
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let mut idle = true;
            for (p, s) in row.iter().enumerate() {
                match s.recv_from(&mut buf) {
                    Ok((n, src)) => {
                        idle = false;
                        if self.listen.get(d) != Some(&src) {
                            return Err(format!("a datagram from {src}, not from d{from}"));
                        }
                        let bytes = buf.get(..n).unwrap_or_default().to_vec();
                        let (sender, pkt) = self
                            .codec
                            .decode(&bytes)
                            .map_err(|e| format!("d{from} sent an undecodable datagram: {e}"))?;
                        let to = self.nodes.get(p).copied().unwrap_or_default();
                        if got.get(p).copied().unwrap_or(0) >= want.get(p).copied().unwrap_or(0) {
                            return Err(format!(
                                "d{from} sent more datagrams to d{to} than its commands say"
                            ));
                        }
                        if let Some(g) = got.get_mut(p) {
                            *g += 1;
                        }
                        out.push(InFlight {
                            from,
                            to,
                            sender,
                            pkt,
                            bytes,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("receiving from d{from}: {e}")),
                }
            }
            if got == want {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "d{from}'s datagrams did not all arrive: {got:?} of {want:?} per destination"
                ));
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// Spreads concurrent harnesses of one process over different port ranges.
static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Free loopback endpoints for `n` daemons (three consecutive ports each: ring, admin,
/// client), chosen as `sgc cluster up` does (`free_base`): a range derived from the process
/// id and a per-process counter, in 20000..32000 (below the ephemeral range), checked by
/// binding.
pub fn free_addrs(n: usize) -> Result<Vec<Addrs>, HarnessError> {
    let span = 3 * u32::try_from(n).map_err(|_| HarnessError::Setup("too many daemons".into()))?;
    let pid = std::process::id();
    for _ in 0..64u32 {
        let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let slot = pid.wrapping_mul(7919).wrapping_add(attempt.wrapping_mul(104_729)) % 600;
        let base = 20_000 + slot * 20;
        if base + span > 32_000 {
            continue;
        }
        let port = |i: u32, k: u32| u16::try_from(base + 3 * i + k).unwrap_or(0);
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let addrs: Vec<Addrs> = (0..span / 3)
            .map(|i| Addrs {
                listen: addr(port(i, 0)),
                admin: addr(port(i, 1)),
                client: addr(port(i, 2)),
            })
            .collect();
        let free = addrs.iter().all(|a| {
            UdpSocket::bind(a.listen).is_ok()
                && std::net::TcpListener::bind(a.admin).is_ok()
                && std::net::TcpListener::bind(a.client).is_ok()
        });
        if free {
            return Ok(addrs);
        }
    }
    Err(HarnessError::Setup("no free port range found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgc_model::ring::{Daemon, RingId};

    fn fake_daemon() -> UdpSocket {
        let s = UdpSocket::bind(("127.0.0.1", 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        s
    }

    #[test]
    fn datagrams_are_held_decoded_and_forwarded_from_the_senders_stand_in() {
        let (d0, d1) = (fake_daemon(), fake_daemon());
        let addr = |s: &UdpSocket| s.local_addr().expect("addr");
        let addrs: Vec<Addrs> = [&d0, &d1]
            .iter()
            .map(|s| Addrs {
                listen: addr(s),
                admin: addr(s),
                client: addr(s),
            })
            .collect();
        let codec = Codec::new("t", 65_507);
        let net = Net::bind(&[0, 1], &addrs, codec.clone()).expect("net");
        let me = Pid::new(0, 1);
        let members = [me, Pid::new(1, 1)];
        let pkt = Packet::Token(Daemon::first_token(RingId { seq: 1, rep: me }, &members));
        let bytes = codec.encode(me, &pkt);
        let to_d1 = net.peers_of(0).expect("peers")[1].1;
        d0.send_to(&bytes, to_d1).expect("send");
        let deadline = Instant::now() + Duration::from_secs(2);
        let got = net.collect(0, &[0, 1], deadline).expect("one datagram to d1");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].from, got[0].to, got[0].sender), (0, 1, me));
        assert_eq!(got[0].pkt, pkt);
        net.forward(&got[0]).expect("forward");
        let mut buf = [0u8; 2048];
        let (n, src) = d1.recv_from(&mut buf).expect("d1 receives");
        assert_eq!(&buf[..n], bytes.as_slice());
        assert_eq!(
            src,
            net.peers_of(1).expect("peers")[0].1,
            "from d0's stand-in at d1"
        );
    }
}
