//! Three-Step packet protection between real daemons (in-process, UDP on loopback), keys from
//! the configuration and the servers' key agreement, nothing installed by hand:
//! - three daemons form a ring over signed datagrams, agree on the servers' key, announce it and
//!   from then on seal every packet; refreshes under load switch keys without losing a packet
//!   (no `dropped_seal_unknown_epoch` / `_future_epoch`);
//! - a datagram sent twice from a configured address (d3, played by the test) is dropped the
//!   second time (`dropped_seal_replay`), a tampered one is unauthentic;
//! - a daemon whose signing key its peers do not know stays alone (`dropped_bad_signature`),
//!   plaintext is refused (`dropped_plaintext`).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sgc_crypto::pki;
use sgc_daemon::admin::{self, Request, SendService};
use sgc_daemon::config::{SecurityMode, SecuritySection};
use sgc_daemon::protection::{Protection, Wire};
use sgc_daemon::transport::Codec;
use sgc_daemon::{DaemonConfig, Runtime};
use sgc_model::ring::{Packet, Pid, RingId};

const WRONG: &[u8] = b"not the servers' key, 32 bytes!!";
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

/// How a daemon's configuration is changed before it runs.
type Setup = fn(u16, &mut DaemonConfig);

/// Key refreshes every 400 ms (three-step keys change under load).
fn refreshing(_: u16, cfg: &mut DaemonConfig) {
    cfg.security.refresh_ms = 400;
}

/// d0 and d1 list d3's verifying key for d2: d2's signatures are not accepted.
fn unknown_d2(i: u16, cfg: &mut DaemonConfig) {
    if i < 2 {
        let d3 = cfg
            .peers
            .iter()
            .find(|p| p.id == 3)
            .and_then(|p| p.sign_pub.clone());
        if let Some(p) = cfg.peers.iter_mut().find(|p| p.id == 2) {
            p.sign_pub = d3;
        }
    }
}

/// Start daemon `i` on its own thread; Err if it could not bind (port taken).
fn spawn(cfg: DaemonConfig) -> Result<std::thread::JoinHandle<()>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(async move {
            let d = match Runtime::bind(cfg).await {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
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
        let cfgs: Vec<DaemonConfig> = (0..4)
            .map(|i| {
                let mut c = config(&dir, i, base);
                setup(i, &mut c);
                c
            })
            .collect();
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
            match spawn(cfg.clone()) {
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

fn send(admin_addr: std::net::SocketAddr, count: u32, size: usize) {
    admin::call(
        admin_addr,
        &Request::Send {
            count,
            size,
            service: SendService::Agreed,
        },
        Duration::from_secs(2),
    )
    .expect("send");
}

fn delivered(s: &serde_json::Value) -> u64 {
    s["delivered_testing"].as_u64().unwrap_or(0)
}

fn epoch(s: &serde_json::Value) -> Option<String> {
    s["protection"]["current"].as_str().map(str::to_owned)
}

fn sealed_to(s: &serde_json::Value) -> usize {
    s["protection"]["sealed_to"].as_array().map_or(0, Vec::len)
}

#[test]
fn three_step_daemons_agree_on_a_key_then_seal_and_rekey_under_load_losing_nothing() {
    let (cluster, sock, d3) = start("sealed", 1, refreshing);
    let a = cluster.admins.clone();
    wait_for("a ring of three", 30, || {
        a.iter().all(|x| members(&status(*x)) == ["d0", "d1", "d2"])
    });
    wait_for("one servers' key, sealed to both peers", 30, || {
        let s: Vec<_> = a.iter().map(|x| status(*x)).collect();
        epoch(&s[0]).is_some() && s.iter().all(|x| epoch(x) == epoch(&s[0]) && sealed_to(x) == 2)
    });
    // Sends from every daemon over several refreshes; every message reaches every daemon.
    let before: Vec<u64> = a.iter().map(|x| delivered(&status(*x))).collect();
    let installed: Vec<u64> = a.iter().map(|x| counter(&status(*x), "keys_installed")).collect();
    for _ in 0..10 {
        for x in &a {
            send(*x, 100, 1000);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_for("3000 deliveries at each daemon", 60, || {
        a.iter()
            .zip(&before)
            .all(|(x, b)| delivered(&status(*x)) >= b + 3000)
    });
    for (x, i) in a.iter().zip(&installed) {
        let s = status(*x);
        assert_eq!(members(&s), ["d0", "d1", "d2"], "no ring change: {s}");
        assert!(counter(&s, "keys_installed") >= i + 2, "keys were refreshed: {s}");
        assert!(counter(&s, "datagrams_sealed_out") > 1000, "{s}");
        for lost in [
            "dropped_seal_unknown_epoch",
            "dropped_seal_future_epoch",
            "dropped_seal_unauthentic",
            "send_seal_errors",
            "keys_install_errors",
        ] {
            assert_eq!(counter(&s, lost), 0, "{lost}: {s}");
        }
    }

    // d3, played by the test, signs with its configured key: a copy is a replay, a tampered
    // datagram is refused, a datagram sealed under the ring's epoch with another key is
    // unauthentic.
    let mut p3 = Protection::from_config(&d3, Codec::new(CLUSTER, 65_507), Pid::new(3, 1))
        .expect("d3's keys")
        .expect("three-step");
    let probe = Packet::Probe {
        ring: RingId {
            seq: 1,
            rep: Pid::new(3, 1),
        },
    };
    let target = cluster_peer(&d3, 0);
    let s0 = status(a[0]);
    let signed = p3.encode(Wire::Signed, &probe).expect("sign");
    sock.send_to(&signed, target).expect("send");
    sock.send_to(&signed, target).expect("send again");
    wait_for("the replay to be counted", 10, || {
        counter(&status(a[0]), "dropped_seal_replay") == counter(&s0, "dropped_seal_replay") + 1
    });
    let mut tampered = p3.encode(Wire::Signed, &probe).expect("sign");
    tampered[30] ^= 1;
    sock.send_to(&tampered, target).expect("send tampered");
    wait_for("the tampered datagram to be counted", 10, || {
        counter(&status(a[0]), "dropped_bad_signature") > counter(&s0, "dropped_bad_signature")
    });
    let current = epoch(&status(a[0])).and_then(|e| u64::from_str_radix(&e, 16).ok());
    let current = current.expect("an epoch");
    p3.install_key(current, WRONG).expect("wrong key");
    let forged = p3.encode(Wire::Sealed(current), &probe).expect("seal");
    sock.send_to(&forged, target).expect("send forged");
    wait_for("the forged datagram to be counted", 10, || {
        counter(&status(a[0]), "dropped_seal_unauthentic") > counter(&s0, "dropped_seal_unauthentic")
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

/// A daemon whose signing key its peers do not know is refused (`dropped_bad_signature`) and
/// stays alone; plaintext is refused (`dropped_plaintext`).
#[test]
fn an_unknown_signer_and_plaintext_are_refused() {
    let (cluster, sock, d3) = start("signed", 2, unknown_d2);
    let (a0, a1, a2) = (cluster.admins[0], cluster.admins[1], cluster.admins[2]);
    wait_for("a ring of d0 and d1", 30, || {
        members(&status(a0)) == ["d0", "d1"] && members(&status(a1)) == ["d0", "d1"]
    });
    wait_for("d2's datagrams to be refused", 30, || {
        counter(&status(a0), "dropped_bad_signature") > 0
    });
    assert_eq!(members(&status(a2)), ["d2"]);
    let _ = admin::call(a2, &Request::Shutdown, Duration::from_secs(2));
    let before = delivered(&status(a1));
    send(a0, 100, 500);
    wait_for("100 deliveries at d1", 30, || {
        delivered(&status(a1)) >= before + 100
    });
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
