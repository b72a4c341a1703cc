//! Three-Step packet protection between real daemons (in-process, UDP on loopback): d0 and d1
//! hold the same epoch key and form a ring and exchange messages over sealed datagrams; d2
//! holds another key for the same epoch and is rejected (`dropped_seal_unauthentic`); a
//! datagram sent twice from a configured address (d3, played by the test) is dropped the
//! second time (`dropped_seal_replay`). Without an epoch key, daemons with signing keys form a
//! ring over signed datagrams and refuse unknown signers and plaintext.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use sgc_crypto::pki;
use sgc_daemon::admin::{self, Request, SendService};
use sgc_daemon::config::{SecurityMode, SecuritySection};
use sgc_daemon::protection::{Protection, Wire};
use sgc_daemon::transport::Codec;
use sgc_daemon::{DaemonConfig, Runtime};
use sgc_model::ring::{Packet, Pid, RingId};

const KEY: &[u8] = b"servers' key of epoch 1 for d0d1";
const WRONG: &[u8] = b"another key of epoch 1, for d2!!";
const CLUSTER: &str = "sealed-test";

struct Cluster {
    admins: Vec<std::net::SocketAddr>,
    threads: Vec<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in &self.admins {
            let _ = admin::call(*a, &Request::Shutdown, Duration::from_secs(2));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki_for(dir: &Path, n: u16) {
    let ca = dir.join("pki");
    pki::init_ca(&ca, "sealed test CA").expect("ca");
    for i in 0..n {
        pki::issue(
            &ca,
            pki::Role::Daemon,
            &format!("d{i}"),
            &["127.0.0.1".to_owned()],
        )
        .expect("issue");
    }
    std::fs::write(dir.join("policy.toml"), "").expect("policy");
}

fn config(dir: &Path, i: u16, base: u16) -> DaemonConfig {
    let mut cfg = DaemonConfig::local(CLUSTER, 4, i, base);
    cfg.daemon.data_dir = dir.join(format!("d{i}"));
    let id = dir.join("pki").join("daemons").join(format!("d{i}"));
    cfg.security = SecuritySection {
        mode: SecurityMode::ThreeStep,
        ca: Some(dir.join("pki").join(pki::CA_CERT)),
        cert: Some(id.join(pki::CERT_FILE)),
        key: Some(id.join(pki::KEY_FILE)),
        policy: Some(dir.join("policy.toml")),
        sign_key: Some(id.join(sgc_crypto::sign_key::SIGN_KEY_FILE)),
        ..SecuritySection::default()
    };
    for p in &mut cfg.peers {
        let file = dir
            .join("pki")
            .join("daemons")
            .join(&p.name)
            .join(sgc_crypto::sign_key::SIGN_PUB_FILE);
        let key = sgc_crypto::sign_key::read_public_key(&file).expect("sign.pub");
        p.sign_pub = Some(sgc_crypto::sign_key::to_hex(&key));
    }
    cfg
}

/// How a daemon's protection is set up before it runs.
type Setup = fn(u16, &mut Protection);

fn keyed(i: u16, p: &mut Protection) {
    let key = if i == 2 { WRONG } else { KEY };
    p.install_key(1, key, (0..4).map(|n| Pid::new(n, 1)))
        .expect("install");
}

fn signing_key(i: u16) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(i).expect("small") + 1; 32])
}

/// Signing keys only (no epoch key): d0 and d1 know each other's verifying keys, nobody
/// knows d2's.
fn signed(i: u16, p: &mut Protection) {
    p.set_signing_key(signing_key(i));
    for n in [0, 1] {
        p.add_peer_key(n, signing_key(n).verifying_key());
    }
}

/// Start daemon `i` on its own thread; Err if it could not bind (port taken).
fn spawn(cfg: DaemonConfig, setup: Setup) -> Result<std::thread::JoinHandle<()>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let id = cfg.daemon.id;
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(async move {
            let mut d = match Runtime::bind(cfg).await {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let p = d.protection_mut().expect("three-step has protection");
            setup(id, p);
            let _ = tx.send(Ok(()));
            let _ = d.run(std::future::pending()).await;
        });
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(())) => Ok(t),
        Ok(Err(e)) => {
            let _ = t.join();
            Err(e)
        }
        Err(e) => Err(format!("daemon did not bind: {e}")),
    }
}

fn status(addr: std::net::SocketAddr) -> serde_json::Value {
    admin::call(addr, &Request::Status, Duration::from_secs(2)).expect("status")
}

fn counter(s: &serde_json::Value, name: &str) -> u64 {
    s["counters"][name].as_u64().unwrap_or(0)
}

fn members(s: &serde_json::Value) -> Vec<String> {
    s["ring"]["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three daemons and a UDP socket for d3 on ports below the ephemeral range, retried
/// elsewhere if one is taken.
fn start(name: &str, slot: u32, setup: Setup) -> (Cluster, UdpSocket, DaemonConfig) {
    let dir = std::env::temp_dir().join(format!("sgc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    pki_for(&dir, 4);
    let mut last = String::new();
    for attempt in 0..20u32 {
        let spread = (std::process::id() + attempt * 7919 + slot * 51_329) % 700;
        let base = 20_000 + u16::try_from(spread).expect("small") * 16;
        let cfgs: Vec<DaemonConfig> = (0..4).map(|i| config(&dir, i, base)).collect();
        let Ok(sock) = UdpSocket::bind(cfgs[3].daemon.listen) else {
            continue;
        };
        let mut cluster = Cluster {
            admins: Vec::new(),
            threads: Vec::new(),
            dir: dir.clone(),
        };
        let mut failed = false;
        for cfg in cfgs.iter().take(3) {
            match spawn(cfg.clone(), setup) {
                Ok(t) => {
                    cluster.threads.push(t);
                    cluster.admins.push(cfg.daemon.admin);
                }
                Err(e) => {
                    last = e;
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            // Dropping the cluster would delete the PKI: stop the daemons by hand.
            for a in cluster.admins.drain(..) {
                let _ = admin::call(a, &Request::Shutdown, Duration::from_secs(2));
            }
            for t in cluster.threads.drain(..) {
                let _ = t.join();
            }
            std::mem::forget(cluster);
            continue;
        }
        return (cluster, sock, cfgs[3].clone());
    }
    panic!("could not start the daemons: {last}");
}

#[test]
fn same_key_daemons_form_a_ring_other_key_and_replays_are_dropped() {
    let (cluster, sock, d3) = start("sealed", 1, keyed);
    let (a0, a1, a2) = (cluster.admins[0], cluster.admins[1], cluster.admins[2]);

    // d0 and d1 form a ring over sealed datagrams; d2's (another key) are dropped.
    wait_for("a ring of d0 and d1", 30, || {
        members(&status(a0)) == ["d0", "d1"] && members(&status(a1)) == ["d0", "d1"]
    });
    wait_for("d2's datagrams to be refused", 30, || {
        counter(&status(a0), "dropped_seal_unauthentic") > 0
    });
    let s2 = status(a2);
    assert_eq!(members(&s2), ["d2"], "d2 must stay alone: {s2}");
    assert!(counter(&s2, "dropped_seal_unauthentic") > 0, "{s2}");
    // Stop d2, so that the counters below move only because of the test's datagrams.
    let _ = admin::call(a2, &Request::Shutdown, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));

    // Messages flow between d0 and d1.
    let before = status(a1)["delivered"].as_u64().unwrap_or(0);
    admin::call(
        a0,
        &Request::Send {
            count: 200,
            size: 1000,
            service: SendService::Agreed,
        },
        Duration::from_secs(2),
    )
    .expect("send");
    wait_for("200 deliveries at d1", 30, || {
        status(a1)["delivered"].as_u64().unwrap_or(0) >= before + 200
    });
    let s1 = status(a1);
    assert_eq!(counter(&s1, "dropped_plaintext"), 0);
    assert_eq!(counter(&s1, "dropped_seal_replay"), 0, "{s1}");

    // A datagram sent twice from d3's configured address: the copy is dropped as a replay.
    let mut p3 = Protection::new(Codec::new(CLUSTER, 65_507), Pid::new(3, 1), Default::default());
    p3.install_key(1, KEY, (0..4).map(|i| Pid::new(i, 1)))
        .expect("d3 key");
    let probe = Packet::Probe {
        ring: RingId {
            seq: 1,
            rep: Pid::new(3, 1),
        },
    };
    let captured = p3.encode(Wire::Sealed(1), &probe).expect("seal");
    let target = cluster_peer(&d3, 0);
    let replays_before = counter(&status(a0), "dropped_seal_replay");
    sock.send_to(&captured, target).expect("send");
    sock.send_to(&captured, target).expect("send again");
    wait_for("the replay to be counted", 10, || {
        counter(&status(a0), "dropped_seal_replay") == replays_before + 1
    });
    // And a tampered copy of a fresh one is unauthentic.
    let unauth_before = counter(&status(a0), "dropped_seal_unauthentic");
    let mut tampered = p3.encode(Wire::Sealed(1), &probe).expect("seal");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    sock.send_to(&tampered, target).expect("send tampered");
    wait_for("the tampered datagram to be counted", 10, || {
        counter(&status(a0), "dropped_seal_unauthentic") > unauth_before
    });
    drop(cluster);
}

fn cluster_peer(cfg: &DaemonConfig, node: u16) -> std::net::SocketAddr {
    cfg.peers
        .iter()
        .find(|p| p.id == node)
        .map(|p| p.addr)
        .expect("peer")
}

/// The bootstrap rule: without an epoch key, daemons with signing keys form a ring over
/// signed datagrams; a daemon whose key nobody knows is refused (`dropped_bad_signature`), and
/// plaintext is refused once a daemon has a signing key (`dropped_plaintext`).
#[test]
fn without_a_key_daemons_form_a_ring_over_signed_datagrams() {
    let (cluster, sock, d3) = start("signed", 2, signed);
    let (a0, a1, a2) = (cluster.admins[0], cluster.admins[1], cluster.admins[2]);
    wait_for("a ring of d0 and d1", 30, || {
        members(&status(a0)) == ["d0", "d1"] && members(&status(a1)) == ["d0", "d1"]
    });
    wait_for("d2's datagrams to be refused", 30, || {
        counter(&status(a0), "dropped_bad_signature") > 0
    });
    assert_eq!(members(&status(a2)), ["d2"]);
    let _ = admin::call(a2, &Request::Shutdown, Duration::from_secs(2));
    let before = status(a1)["delivered"].as_u64().unwrap_or(0);
    admin::call(
        a0,
        &Request::Send {
            count: 100,
            size: 500,
            service: SendService::Agreed,
        },
        Duration::from_secs(2),
    )
    .expect("send");
    wait_for("100 deliveries at d1", 30, || {
        status(a1)["delivered"].as_u64().unwrap_or(0) >= before + 100
    });
    // A plaintext datagram from a configured address is refused.
    let plain = Codec::new(CLUSTER, 65_507).encode(
        Pid::new(3, 1),
        &Packet::Probe {
            ring: RingId {
                seq: 1,
                rep: Pid::new(3, 1),
            },
        },
    );
    let target = cluster_peer(&d3, 0);
    sock.send_to(&plain, target).expect("send");
    wait_for("the plaintext datagram to be counted", 10, || {
        counter(&status(a0), "dropped_plaintext") == 1
    });
    drop(cluster);
}
