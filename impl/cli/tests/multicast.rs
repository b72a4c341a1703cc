//! Multi-process test of IP multicast (`[network] multicast`, `sgc cluster up --multicast`):
//! three real daemons on loopback (`IP_MULTICAST_LOOP`, interface 127.0.0.1).
//!
//! - m10: the daemons form one ring and deliver the same messages in the same order and
//!   configuration; broadcasts went to the group (`multicast_out`), each daemon dropped its own
//!   looped-back datagrams in the kernel (`multicast_own` stays 0); a datagram sent to the group from an address that
//!   is no daemon's is counted and dropped.
//! - m20: the partition hook (which makes broadcasts fall back to unicast to the reachable peers)
//!   splits {d0,d1} | {d2}; heal merges them back over multicast.
//!
//! The group port is derived from the process id (outside the ephemeral range, checked free);
//! every wait is bounded; dropping the cluster kills its processes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Cluster, WAIT, up_with};
use sgc_daemon::admin::{Request, SendService};
use sgc_daemon::transport::Codec;
use sgc_model::ring::{Packet, Pid, RingId};

/// A group address and a port free right now, both derived from the process id and `salt`.
fn group(salt: u32) -> SocketAddr {
    let pid = std::process::id();
    for attempt in 0..64u32 {
        let slot = pid
            .wrapping_mul(7919)
            .wrapping_add(salt.wrapping_mul(31))
            .wrapping_add(attempt.wrapping_mul(104_729))
            % 1000;
        // Ports 20000 + 40k + 37..39: above the ranges `free_base` hands out (base + 3i, i < 12).
        let port = u16::try_from(20_000 + slot * 40 + 37 + salt % 3).unwrap_or(20_037);
        if UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            let [a, b] = u16::try_from(pid % 65_000).unwrap_or(1).to_be_bytes();
            return SocketAddr::from((
                [239, 255, a, b.wrapping_add(u8::try_from(salt % 7).unwrap_or(0))],
                port,
            ));
        }
    }
    panic!("no free port for the multicast group");
}

fn up_multicast(name: &str, salt: u32) -> (Cluster, SocketAddr) {
    let g = group(salt);
    (up_with(name, 3, &["--multicast", &g.to_string()]), g)
}

fn counter(c: &Cluster, d: &str, k: &str) -> u64 {
    c.status(d).and_then(|s| s.counters.get(k).copied()).unwrap_or(0)
}

fn assert_same_logs(c: &Cluster, names: &[&str], k: usize) {
    let first = c.log(names[0], k);
    assert_eq!(first.len(), k);
    for n in &names[1..] {
        assert_eq!(c.log(n, k), first, "{n} and {} delivered differently", names[0]);
    }
}

#[test]
fn m10_three_daemons_deliver_in_order_over_multicast() {
    let (c, g) = up_multicast("m10", 1);
    let all = ["d0", "d1", "d2"];
    c.wait_rings(&[&all]);
    for d in all {
        c.send(d, 150, SendService::Agreed);
    }
    c.send("d1", 20, SendService::Safe);
    c.wait_delivered(&all, 470);
    assert_same_logs(&c, &all, 470);
    for d in all {
        let (out, own) = (counter(&c, d, "multicast_out"), counter(&c, d, "multicast_own"));
        assert!(
            out > 0 && own == 0,
            "{d}: multicast_out {out}, multicast_own {own}"
        );
        assert_eq!(counter(&c, d, "dropped_unknown_sender"), 0, "{d}");
    }

    // A well-formed datagram of this cluster sent to the group from an address that is no
    // daemon's: every daemon counts and drops it.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_multicast_ttl_v4(1).expect("ttl");
    let pkt = Packet::Probe {
        ring: RingId {
            seq: 1,
            rep: Pid::new(1, 1),
        },
    };
    let good = Codec::new(&c.info.cluster, 65_507).encode(Pid::new(1, 1), &pkt);
    sock.send_to(&good, g).expect("send to the group");
    let deadline = Instant::now() + WAIT;
    while !all.iter().all(|d| counter(&c, d, "dropped_unknown_sender") >= 1) {
        assert!(
            Instant::now() < deadline,
            "the foreign datagram was not counted everywhere"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.wait_rings(&[&all]);
}

#[test]
fn m20_partition_and_heal_with_multicast_on() {
    let (c, _) = up_multicast("m20", 2);
    let all = ["d0", "d1", "d2"];
    c.wait_rings(&[&all]);
    let p = |d: &str, from: &[&str]| {
        c.call(
            d,
            &Request::Partition {
                from: from.iter().map(ToString::to_string).collect(),
            },
        )
    };
    p("d2", &["d0", "d1"]);
    p("d0", &["d2"]);
    p("d1", &["d2"]);
    c.wait_rings(&[&["d0", "d1"], &["d2"]]);
    c.send("d0", 30, SendService::Agreed);
    c.send("d2", 30, SendService::Agreed);
    c.wait_delivered(&["d0", "d1"], 30);
    c.wait_delivered(&["d2"], 30);
    assert_same_logs(&c, &["d0", "d1"], 30);

    for d in all {
        c.call(d, &Request::Heal);
    }
    c.wait_rings(&[&all]);
    let before = counter(&c, "d0", "multicast_out");
    for d in all {
        c.send(d, 40, SendService::Agreed);
    }
    c.wait_delivered(&["d0", "d1"], 150);
    c.wait_delivered(&["d2"], 150);
    assert_same_logs(&c, &all, 120);
    assert!(
        counter(&c, "d0", "multicast_out") > before,
        "no multicast after heal"
    );
}
