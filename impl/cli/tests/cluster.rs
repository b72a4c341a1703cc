//! Multi-process tests of the daemon: real `sgc` processes on loopback, started with
//! `sgc cluster up`, observed and steered through the admin endpoint.
//!
//! - t10: three daemons form one ring; every daemon delivers the same messages in the same
//!   order and configuration; hostile datagrams are counted and dropped; `cluster down` stops all.
//! - t20: a killed daemon leaves a ring of two; restarted, it rejoins with a new incarnation.
//! - t30: the partition hook splits {d0,d1} | {d2} into two rings; heal merges them into one.
//! - t40: a bad configuration fails at start, naming the key.
//!
//! Every wait is bounded; a guard kills every started process, even when a test fails.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, SGC, WAIT, kill, test_dir, up};
use sgc_daemon::admin::{Request, SendService};
use sgc_daemon::transport::Codec;
use sgc_model::ring::{Packet, Pid, RingId};

fn assert_same_logs(c: &Cluster, names: &[&str], k: usize) {
    let first = c.log(names[0], k);
    assert_eq!(first.len(), k);
    for n in &names[1..] {
        assert_eq!(c.log(n, k), first, "{n} and {} delivered differently", names[0]);
    }
}

#[test]
fn t10_three_daemons_form_one_ring_and_agree_on_order() {
    let c = up("t10", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);

    // The CLI prints the documented status shape.
    let out = Command::new(SGC)
        .args([
            "admin",
            "--daemon",
            &c.d("d1").admin.to_string(),
            "status",
            "--json",
        ])
        .output()
        .expect("sgc admin");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(v["daemon"], "d1");
    assert_eq!(v["ring"]["members"], serde_json::json!(["d0", "d1", "d2"]));
    assert!(v["ring"]["id"].is_string() && v["delivered"].is_u64());

    // Bad admin input is answered with an error, never fatal; an oversized line closes.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(c.d("d1").admin).expect("admin");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(b"{\"cmd\":\"explode\"}\nnot json\n").expect("write");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        for _ in 0..2 {
            let mut line = String::new();
            r.read_line(&mut line).expect("answer");
            assert!(line.contains("\"ok\":false"), "{line}");
        }
        let _ = s.write_all(&vec![b'x'; 70_000]);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        assert!(line.contains("too long"), "{line}");
    }

    // Concurrent senders, Agreed and Safe: same messages, same order, same configuration.
    for d in ["d0", "d1", "d2"] {
        c.send(d, 40, SendService::Agreed);
    }
    c.send("d0", 10, SendService::Safe);
    c.wait_delivered(&["d0", "d1", "d2"], 130);
    assert_same_logs(&c, &["d0", "d1", "d2"], 130);

    // Hostile datagrams are counted and dropped; the daemon keeps running.
    let target = c.d("d0").listen;
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let pkt = Packet::Probe {
        ring: RingId {
            seq: 1,
            rep: Pid::new(1, 1),
        },
    };
    let good = Codec::new(&c.info.cluster, 65_507).encode(Pid::new(1, 1), &pkt);
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let foreign = Codec::new("another-cluster", 65_507).encode(Pid::new(1, 1), &pkt);
    let mut garbage = good[..20].to_vec();
    garbage.extend_from_slice(&[0xff; 40]);
    for bytes in [&bad_magic, &foreign, &garbage, &good] {
        sock.send_to(bytes, target).expect("send");
    }
    let deadline = Instant::now() + WAIT;
    let counters = loop {
        let s = c.status("d0").expect("d0 alive");
        let n = |k: &str| s.counters.get(k).copied().unwrap_or(0);
        if n("dropped_bad_magic") >= 1
            && n("dropped_wrong_cluster") >= 1
            && n("dropped_undecodable") >= 1
            && n("dropped_unknown_sender") >= 1
        {
            break s.counters;
        }
        assert!(Instant::now() < deadline, "drops not counted: {:?}", s.counters);
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("d0 counters: {counters:?}");
    c.wait_rings(&[&["d0", "d1", "d2"]]);

    // `cluster down` stops every daemon.
    let out = Command::new(SGC)
        .args(["cluster", "down", "--dir"])
        .arg(&c.dir)
        .output()
        .expect("sgc cluster down");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(c.info.daemons.iter().all(|d| !alive(d.pid)));
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_none_or(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
    })
}

#[test]
fn t20_killed_daemon_leaves_a_ring_of_two_and_rejoins_after_restart() {
    let mut c = up("t20", 3);
    let before = c.wait_rings(&[&["d0", "d1", "d2"]]);
    kill(c.d("d2").pid);
    let two = c.wait_rings(&[&["d0", "d1"]]);
    assert!(two[0].ring.seq > before[0].ring.seq);

    // Restart d2 from its directory: a new incarnation rejoins.
    let cfg = c.dir.join("d2").join("config.toml");
    let child = Command::new(SGC)
        .args(["daemon", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart d2");
    c.extra.push(child);
    let three = c.wait_rings(&[&["d0", "d1", "d2"]]);
    let d2 = three.iter().find(|s| s.daemon == "d2").expect("d2");
    assert_eq!(d2.incarnation, 2);
    assert!(d2.ring.pids.contains(&"2.2".to_owned()));
    assert!(durable(&c.dir.join("d2")).contains("\"incarnation\":2"));
}

fn durable(ddir: &Path) -> String {
    std::fs::read_to_string(ddir.join("data").join("durable.json")).unwrap_or_default()
}

#[test]
fn t30_partition_makes_two_rings_and_heal_merges_them() {
    let c = up("t30", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
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
    c.send("d0", 5, SendService::Agreed);
    c.send("d2", 5, SendService::Agreed);
    c.wait_delivered(&["d0", "d1"], 5);
    c.wait_delivered(&["d2"], 5);
    assert_same_logs(&c, &["d0", "d1"], 5);

    for d in ["d0", "d1", "d2"] {
        c.call(d, &Request::Heal);
    }
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    for d in ["d0", "d1", "d2"] {
        c.send(d, 10, SendService::Agreed);
    }
    c.wait_delivered(&["d0", "d1"], 35);
    c.wait_delivered(&["d2"], 35);
    assert_same_logs(&c, &["d0", "d1", "d2"], 30);
}

#[test]
fn t40_bad_config_fails_at_start_naming_the_key() {
    let dir = test_dir("t40");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let good = Command::new(SGC)
        .args(["daemon", "--example-config"])
        .output()
        .expect("example config");
    let text = String::from_utf8(good.stdout).expect("utf8");
    assert!(text.contains("token_loss_ms = 1250"), "{text}");
    for (from, to, key) in [
        (
            "token_loss_ms = 1250",
            "token_loss_ms = 0",
            "timeouts.token_loss_ms",
        ),
        ("max_gap = 1024", "max_gap = -1", "max_gap"),
        ("cluster = ", "clusterr = ", "clusterr"),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
        let out = Command::new(SGC)
            .args(["daemon", "--config"])
            .arg(&path)
            .output()
            .expect("sgc daemon");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(key), "`{key}` not named in: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
