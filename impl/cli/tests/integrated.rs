//! Integrated VS end to end with real processes: `sgc cluster up --daemons 3 --security
//! integrated-vs`, VS clients over mutual TLS on three daemons encrypting every multicast with
//! the group key `K(g, v)` of its view (`sgc_crypto::e2e`) and decrypting with the key of the
//! view it is delivered in.
//!
//! - i10: alice (d0), bob (d1) and carol (d2) share one key id per view and talk: every message
//!   arrives decrypted, none undecryptable. Carol leaves: alice and bob get a new view with a
//!   new key and carol's connection holds no key of the group any more. Carol then rejoins with
//!   a raw (non-VS) connection to capture traffic; alice sends while the flush for that join is
//!   pending, so the message travels under the key of the view carol was evicted from: carol's
//!   raw connection receives only ciphertext (the header names a key id carol never received),
//!   and neither carol's old key nor the key of her new membership opens it; bob opens it.
//! - i20: `sgc user --vs --json` processes (alice on d0, bob on d1) on an integrated-vs cluster
//!   print `"decrypted": true` on the message they exchange. (Undecryptable messages — plaintext,
//!   a key of another view, altered bytes — are unit-tested in `sgc-client`'s `vs::tests`; on a
//!   live cluster the flush layer already drops data from senders outside the view.)
//! - i30: `sgc flood --compare-e2e` over the daemons' Unix sockets: a plaintext and an
//!   encrypted throughput run in one process, every message delivered and opened.
//!
//! Every wait is bounded; the guards kill every process they started.

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, SGC, WAIT, spawn_user};
use sgc_client::blocking::Client;
use sgc_client::vs::VsEvent;
use sgc_client::vs::blocking::VsClient;
use sgc_client::{Endpoint, GroupKeyInfo, evs};
use sgc_crypto::e2e::{E2eContext, E2eError, E2eKey, header_key_id};
use sgc_model::groups::{ClientEvent, ClientService, GroupName, Target};
use sgc_model::keys::Undecryptable;
use sgc_model::vs::flush::MIN_APP_TYPE;

/// `sgc cluster up --security MODE` with `n` daemons, retried if ports were taken.
fn up_secure(name: &str, n: u16, mode: &str) -> Cluster {
    up_secure_with(name, n, mode, &[])
}

/// [`up_secure`] with `extra` options for `sgc cluster up`.
fn up_secure_with(name: &str, n: u16, mode: &str, extra: &[&str]) -> Cluster {
    let mut args = vec!["--security", mode];
    args.extend_from_slice(extra);
    common::up_with(name, n, &args)
}

fn tls(c: &Cluster, daemon: &str, who: &str) -> Endpoint {
    Endpoint::Tls {
        addr: c.d(daemon).client,
        identity: c.identity(who),
    }
}

/// Retry `f` while the ring forms (bounded by [`WAIT`]).
fn retry<T, E: std::fmt::Display>(what: &str, mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match f() {
            Ok(x) => return x,
            Err(e) => assert!(Instant::now() < deadline, "{what}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A VS member driven by the test.
struct Member {
    name: &'static str,
    c: VsClient,
    log: Vec<VsEvent>,
    auto_flush: bool,
}

impl Member {
    fn connect(c: &Cluster, daemon: &str, name: &'static str) -> Self {
        let ep = tls(c, daemon, name);
        let c = retry(&format!("{name} connects"), || VsClient::connect(&ep, Some(name)));
        Self {
            name,
            c,
            log: Vec::new(),
            auto_flush: true,
        }
    }

    /// Members of the last view installed.
    fn members(&self) -> Vec<String> {
        self.log
            .iter()
            .rev()
            .find_map(|e| match e {
                VsEvent::View(v) => Some(v.members.iter().map(|p| p.user.clone()).collect()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Decrypted payloads received.
    fn texts(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|e| match e {
                VsEvent::Data(d) => {
                    assert!(d.decrypted, "{}: a message was not encrypted: {d:?}", self.name);
                    Some(String::from_utf8_lossy(&d.msg.body).into_owned())
                }
                _ => None,
            })
            .collect()
    }

    fn undecryptable(&self) -> usize {
        self.log
            .iter()
            .filter(|e| matches!(e, VsEvent::Undecryptable(_)))
            .count()
    }
}

/// Receive on every member until `done` holds (within [`WAIT`]).
fn pump(ms: &mut [&mut Member], what: &str, done: impl Fn(&[&mut Member]) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(ms) {
        assert!(
            Instant::now() < deadline,
            "no {what} within {WAIT:?}: {:#?}",
            logs(ms)
        );
        for m in ms.iter_mut() {
            while let Some(ev) = m.c.recv_timeout(Duration::from_millis(20)).expect("vs recv") {
                if let (VsEvent::FlushRequest(g), true) = (&ev, m.auto_flush) {
                    m.c.flush_ok(g).expect("flush_ok");
                }
                m.log.push(ev);
            }
        }
    }
}

fn logs(ms: &[&mut Member]) -> Vec<String> {
    ms.iter().map(|m| format!("{}: {:?}", m.name, m.log)).collect()
}

fn ctx<'a>(g: &'a GroupName, sender: &'a str) -> E2eContext<'a> {
    E2eContext {
        group: g.as_str(),
        sender,
        mess_type: 0,
    }
}

#[test]
fn i10_members_talk_an_evicted_member_cannot_decrypt() {
    let c = up_secure("integrated-i10", 3, "integrated-vs");
    let g = GroupName::new("secret").expect("name");
    let mut a = Member::connect(&c, "d0", "alice");
    let mut b = Member::connect(&c, "d1", "bob");
    let mut k = Member::connect(&c, "d2", "carol");
    for m in [&mut a, &mut b, &mut k] {
        m.c.join(&g).expect("join");
    }
    let all = ["alice", "bob", "carol"];
    pump(&mut [&mut a, &mut b, &mut k], "view of three", |ms| {
        ms.iter().all(|m| m.members() == all)
    });
    let v1 = a.c.view_key_id(&g).expect("alice has a key for the view");
    assert_eq!(b.c.view_key_id(&g), Some(v1));
    assert_eq!(k.c.view_key_id(&g), Some(v1));
    let carol_v1: GroupKeyInfo = k.c.group_key(&g).cloned().expect("carol's key");
    assert_eq!(carol_v1.key_id, v1);

    for m in [&mut a, &mut b, &mut k] {
        let text = format!("hello from {}", m.name);
        m.c.multicast(&g, ClientService::Agreed, 0, text.as_bytes())
            .expect("send");
    }
    pump(&mut [&mut a, &mut b, &mut k], "three messages each", |ms| {
        ms.iter().all(|m| m.texts().len() == 3)
    });
    let expect: BTreeSet<String> = all.iter().map(|n| format!("hello from {n}")).collect();
    for m in [&a, &b, &k] {
        assert_eq!(
            m.texts().into_iter().collect::<BTreeSet<_>>(),
            expect,
            "{}",
            m.name
        );
        assert_eq!(m.undecryptable(), 0, "{}", m.name);
    }

    // carol is evicted (leaves): alice and bob move to a view with a new key
    k.c.leave(&g).expect("leave");
    pump(&mut [&mut a, &mut b, &mut k], "view without carol", |ms| {
        ms[0].members() == ["alice", "bob"]
            && ms[1].members() == ["alice", "bob"]
            && ms[2]
                .log
                .iter()
                .any(|e| matches!(e, VsEvent::SelfLeave(x) if *x == g))
    });
    let v2 = a.c.view_key_id(&g).expect("key of the view without carol");
    assert_ne!(v2, v1, "the view without carol has a new key");
    assert_eq!(b.c.view_key_id(&g), Some(v2));
    assert!(
        k.c.group_key(&g).is_none(),
        "carol holds no key of the group after leaving"
    );
    a.c.multicast(&g, ClientService::Agreed, 0, b"after carol left")
        .expect("send");
    pump(&mut [&mut a, &mut b], "message in the view without carol", |ms| {
        ms.iter()
            .all(|m| m.texts().contains(&"after carol left".to_owned()))
    });

    // carol captures: a raw connection joins the group at the daemon (no flush layer); over
    // mutual TLS its name is her certificate's, so it connects where she is not connected yet.
    let cap_ep = tls(&c, "d0", "carol");
    let mut cap = retry("carol's capture connects", || {
        Client::connect(&cap_ep, None, true)
    });
    cap.join(&g).expect("capture join");
    a.auto_flush = false;
    b.auto_flush = false;
    pump(
        &mut [&mut a, &mut b],
        "flush request for the capture's join",
        |ms| {
            ms.iter()
                .all(|m| matches!(m.log.last(), Some(VsEvent::FlushRequest(x)) if *x == g))
        },
    );
    // still in the view without carol: sent under v2
    let secret = b"the plan, after carol was evicted";
    a.c.multicast(&g, ClientService::Agreed, 0, secret).expect("send");
    assert_eq!(a.c.view_key_id(&g), Some(v2));
    for m in [&mut a, &mut b] {
        m.c.flush_ok(&g).expect("flush_ok");
    }
    pump(&mut [&mut b], "bob decrypts the secret", |ms| {
        ms[0]
            .texts()
            .contains(&String::from_utf8_lossy(secret).into_owned())
    });

    let deadline = Instant::now() + WAIT;
    let mut cap_keys: Vec<GroupKeyInfo> = Vec::new();
    let captured = loop {
        assert!(Instant::now() < deadline, "the capture got no message");
        match cap
            .recv_timeout(Duration::from_millis(100))
            .expect("capture recv")
        {
            Some(ClientEvent::Membership(m)) if m.group == g => {
                cap_keys.extend(cap.group_key(&g).cloned());
            }
            // the flush layer's FLUSH_OKs travel as data with reserved types; bob's goes
            // through another daemon and may be ordered before alice's secret
            Some(ClientEvent::Data(d)) if d.mess_type >= MIN_APP_TYPE => break d,
            _ => {}
        }
    };
    let alice = a.c.private_name().to_string();
    assert_eq!(
        header_key_id(&captured.body),
        Some(v2),
        "captured under the key carol lacks"
    );
    assert!(
        !captured
            .body
            .windows(8)
            .any(|w| secret.windows(8).any(|s| s == w)),
        "no plaintext on the wire"
    );
    assert!(!cap_keys.is_empty(), "the capture's membership came with a key");
    let mut carol_keys = vec![carol_v1];
    carol_keys.extend(cap_keys);
    for held in &carol_keys {
        assert_ne!(
            held.key_id, v2,
            "carol never received the key of the view without her"
        );
        let by_id = E2eKey::new(held.key_id, &held.key).expect("key");
        assert_eq!(
            by_id.open(&ctx(&g, &alice), &captured.body),
            Err(E2eError::UnknownKey(v2))
        );
        // even forcing the id: her keys do not authenticate it
        let forced = E2eKey::new(v2, &held.key).expect("key");
        assert_eq!(
            forced.open(&ctx(&g, &alice), &captured.body),
            Err(E2eError::Unauthentic(v2))
        );
    }
    cap.disconnect().expect("disconnect");
    for m in [a, b, k] {
        m.c.disconnect().expect("disconnect");
    }
}

/// The next JSON event of an `sgc user` for which `f` holds (within [`WAIT`]).
fn next_event(
    rx: &std::sync::mpsc::Receiver<serde_json::Value>,
    what: &str,
    f: &dyn Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if f(&v) => return v,
            Ok(v) => seen.push(v),
            Err(_) => panic!("no {what} within {WAIT:?}; seen {seen:#?}"),
        }
    }
}

#[test]
fn i20_sgc_user_vs_prints_decrypted_messages() {
    let c = up_secure("integrated-i20", 3, "integrated-vs");
    let start = |d: &str, who: &str| {
        let id = c.identity(who);
        let id = id.to_str().expect("utf-8 path").to_owned();
        spawn_user(
            &["--vs", "--json", "--name", who, "--identity", &id],
            c.d(d).client,
        )
    };
    let (mut ca, mut ia, ea) = start("d0", "alice");
    let (mut cb, mut ib, eb) = start("d1", "bob");
    let next = next_event;
    for (i, rx) in [(&mut ia, &ea), (&mut ib, &eb)] {
        next(rx, "connected", &|v| v["event"] == "connected");
        writeln!(i, "join chat").expect("stdin");
    }
    for rx in [&ea, &eb] {
        next(rx, "view of two", &|v| {
            v["event"] == "membership" && v["members"].as_array().is_some_and(|m| m.len() == 2)
        });
    }
    writeln!(ia, "send chat hello bob").expect("stdin");
    for rx in [&ea, &eb] {
        let m = next(rx, "the message", &|v| v["event"] == "message");
        assert_eq!(m["payload"], "hello bob");
        assert_eq!(m["decrypted"], true);
    }
    for (ch, mut i) in [(&mut ca, ia), (&mut cb, ib)] {
        let _ = writeln!(i, "quit");
        drop(i);
        let _ = ch.wait();
    }
}

/// The three daemons' Unix sockets, as `sgc flood --daemon` takes them.
fn unix_sockets(c: &Cluster) -> String {
    ["d0", "d1", "d2"]
        .iter()
        .map(|d| {
            format!(
                "unix:{}",
                c.dir.join(d).join("data").join("client.sock").display()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn i30_flood_compares_plaintext_and_end_to_end_throughput() {
    let c = up_secure("integrated-i30", 3, "integrated-vs");
    let socks = unix_sockets(&c);
    let out = Command::new(SGC)
        .args(["flood", "--daemon", &socks, "--compare-e2e", "--size", "200"])
        .args(["--count", "500", "--timeout-s", "60", "--json"])
        .output()
        .expect("run sgc flood");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = common::json(&out);
    assert_eq!(v["mode"], "e2e_compare");
    for run in ["plain", "integrated_vs"] {
        assert_eq!(v[run]["delivered"], 1500, "{run}: {v}");
        assert_eq!(v[run]["order_errors"], 0, "{run}: {v}");
    }
    assert_eq!(v["integrated_vs"]["undecryptable"], 0, "{v}");
    assert!(v["plain"].get("undecryptable").is_none());
    assert!(v["ratio"].as_f64().is_some_and(|r| r > 0.0), "{v}");
}

#[test]
fn o20_flood_e2e_only_runs_on_an_optimized_evs_cluster() {
    let c = up_secure("integrated-o20", 3, "optimized-evs");
    let out = Command::new(SGC)
        .args(["flood", "--daemon", &unix_sockets(&c), "--e2e-only"])
        .args(["--size", "200", "--count", "500", "--timeout-s", "60", "--json"])
        .output()
        .expect("run sgc flood");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = common::json(&out);
    assert_eq!(v["delivered"], 1500, "{v}");
    assert_eq!(v["order_errors"], 0, "{v}");
    assert_eq!(v["undecryptable"], 0, "{v}");
    assert!(v["messages_per_s"].as_f64().is_some_and(|r| r > 0.0), "{v}");
}

#[test]
fn o30_sgc_user_e2e_encrypts_opens_and_reports_plaintext() {
    let c = up_secure("integrated-o30", 3, "optimized-evs");
    let start = |d: &str, who: &str, e2e: bool| {
        let id = c.identity(who);
        let id = id.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["--json", "--name", who, "--identity", &id];
        if e2e {
            args.push("--e2e");
        }
        spawn_user(&args, c.d(d).client)
    };
    let (mut ca, mut ia, ea) = start("d0", "alice", true);
    let (mut cb, mut ib, eb) = start("d1", "bob", true);
    let (mut ck, mut ik, ek) = start("d2", "carol", false);
    for (i, rx) in [(&mut ia, &ea), (&mut ib, &eb), (&mut ik, &ek)] {
        next_event(rx, "connected", &|v| v["event"] == "connected");
        writeln!(i, "join chat").expect("stdin");
    }
    for rx in [&ea, &eb, &ek] {
        next_event(rx, "view of three", &|v| {
            v["event"] == "membership" && v["members"].as_array().is_some_and(|m| m.len() == 3)
        });
    }
    writeln!(ia, "send chat hello bob").expect("stdin");
    for rx in [&ea, &eb] {
        let m = next_event(rx, "the message", &|v| v["event"] == "message");
        assert_eq!(m["payload"], "hello bob");
        assert_eq!(m["decrypted"], true);
    }
    // carol does not decrypt: she gets the ciphertext, never the text
    let m = next_event(&ek, "the sealed message", &|v| v["event"] == "message");
    assert_ne!(m["payload"], "hello bob");
    assert!(m.get("decrypted").is_none());
    // her plaintext is reported to the others, never shown as a message
    writeln!(ik, "send chat in clear").expect("stdin");
    for rx in [&ea, &eb] {
        let u = next_event(rx, "the report", &|v| v["event"] == "undecryptable");
        assert_eq!(u["reason"], "not_encrypted", "{u}");
        assert_eq!(u["group"], "chat");
        assert!(u["sender"].as_str().is_some_and(|s| s.contains("carol")), "{u}");
    }
    // with --e2e nothing is sent that cannot be sealed
    writeln!(ia, "send nokey secret").expect("stdin");
    let e = next_event(&ea, "an error", &|v| v["event"] == "error");
    assert!(
        e["text"]
            .as_str()
            .is_some_and(|t| t.contains("no key for group nokey")),
        "{e}"
    );
    writeln!(ia, "send chat,other two groups").expect("stdin");
    let e = next_event(&ea, "an error", &|v| v["event"] == "error");
    assert!(
        e["text"]
            .as_str()
            .is_some_and(|t| t.contains("exactly one group")),
        "{e}"
    );
    for (ch, mut i) in [(&mut ca, ia), (&mut cb, ib), (&mut ck, ik)] {
        let _ = writeln!(i, "quit");
        drop(i);
        let _ = ch.wait();
    }
}

/// An EVS client of an `optimized-evs` cluster, with everything it received (opened).
struct EvsMember {
    c: Client,
    log: Vec<ClientEvent>,
}

impl EvsMember {
    fn connect(c: &Cluster, daemon: &str, name: &str) -> Self {
        let ep = tls(c, daemon, name);
        let c = retry(&format!("{name} connects"), || {
            Client::connect(&ep, Some(name), true)
        });
        Self { c, log: Vec::new() }
    }

    fn members(&self, g: &GroupName) -> Vec<String> {
        self.log
            .iter()
            .rev()
            .find_map(|e| match e {
                ClientEvent::Membership(m) if m.group == *g => {
                    Some(m.members.iter().map(|p| p.user.clone()).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    fn texts(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Data(d) => Some(String::from_utf8_lossy(&d.body).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn reports(&self) -> Vec<&sgc_model::groups::UndecryptableMsg> {
        self.log
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Undecryptable(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// Seal `text` under `key` (the current key, or an old one on purpose) and send it.
    fn send_under(&self, g: &GroupName, key: &GroupKeyInfo, text: &str) {
        let body = evs::seal(key, g, self.c.private_name(), 0, text.as_bytes()).expect("seal");
        let to = [Target::Group(g.clone())];
        self.c
            .multicast(&to, ClientService::Agreed, 0, &body)
            .expect("send");
    }
}

fn pump_evs(ms: &mut [&mut EvsMember], what: &str, done: impl Fn(&[&mut EvsMember]) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(ms) {
        assert!(
            Instant::now() < deadline,
            "no {what} within {WAIT:?}: {:#?}",
            ms.iter().map(|m| &m.log).collect::<Vec<_>>()
        );
        for m in ms.iter_mut() {
            while let Some(ev) = m.c.recv_timeout(Duration::from_millis(20)).expect("recv") {
                let ev = evs::open(|g| m.c.group_key(g), ev);
                m.log.push(ev);
            }
        }
    }
}

#[test]
fn o10_optimized_evs_reencrypts_old_key_messages_and_reports_expired_ones() {
    let c = up_secure_with(
        "integrated-o10",
        3,
        "optimized-evs",
        &["--evs-key-timeout-ms", "3000"],
    );
    // one ring of the three daemons first: a view installed while d2 was still apart would be
    // one d2 never saw, and its key one d2 cannot re-encrypt from (reported instead)
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let g = GroupName::new("evs").expect("name");
    let mut a = EvsMember::connect(&c, "d0", "alice");
    let mut b = EvsMember::connect(&c, "d1", "bob");
    a.c.join(&g).expect("join");
    b.c.join(&g).expect("join");
    pump_evs(&mut [&mut a, &mut b], "view of two", |ms| {
        ms.iter().all(|m| m.members(&g) == ["alice", "bob"])
    });
    let v1 =
        a.c.group_key(&g)
            .cloned()
            .expect("alice's key of the view of two");
    assert_eq!(b.c.group_key(&g).map(|k| k.key_id), Some(v1.key_id));
    a.send_under(&g, &v1, "under the current key");
    pump_evs(&mut [&mut a, &mut b], "first message", |ms| {
        ms.iter()
            .all(|m| m.texts().contains(&"under the current key".to_owned()))
    });

    // carol joins at the third daemon, which has no member of the group until now
    let mut k = EvsMember::connect(&c, "d2", "carol");
    k.c.join(&g).expect("join");
    pump_evs(&mut [&mut a, &mut b, &mut k], "view of three", |ms| {
        ms.iter().all(|m| m.members(&g) == ["alice", "bob", "carol"])
    });
    let v2 = k.c.group_key(&g).cloned().expect("carol's key");
    assert_ne!(v2.key_id, v1.key_id, "a new view, a new key");
    assert_eq!(a.c.group_key(&g).map(|k| k.key_id), Some(v2.key_id));

    // alice sends under the key of the view before carol (as if sent before she saw the join):
    // every daemon re-encrypts it under v2, carol's daemon included
    a.send_under(&g, &v1, "sent under the old key");
    pump_evs(
        &mut [&mut a, &mut b, &mut k],
        "the old-key message, re-encrypted",
        |ms| {
            ms.iter()
                .all(|m| m.texts().contains(&"sent under the old key".to_owned()))
        },
    );
    for m in [&a, &b, &k] {
        assert!(m.reports().is_empty(), "{:?}", m.log);
    }
    let keys = |d: &str| {
        c.status(d)
            .and_then(|s| s.keys)
            .expect("keys status of a secure daemon")
    };
    let resealed: u64 = ["d0", "d1", "d2"].iter().map(|d| keys(d).evs_resealed).sum();
    assert!(resealed >= 3, "each receiving daemon re-encrypted it: {resealed}");

    // a plaintext message is reported, never delivered as data
    a.c.multicast(&[Target::Group(g.clone())], ClientService::Agreed, 0, b"in clear")
        .expect("send");
    pump_evs(&mut [&mut a, &mut b, &mut k], "not-encrypted reports", |ms| {
        ms.iter().all(|m| {
            m.reports()
                .iter()
                .any(|u| u.reason == Undecryptable::NotEncrypted)
        })
    });

    // v1 expires (3 s without a message under it; the daemons' clock ticks every 750 ms):
    // the next one under v1 is reported. The time-out is long enough for the steps above to
    // finish well within it on a loaded machine.
    std::thread::sleep(Duration::from_millis(4500));
    a.send_under(&g, &v1, "too late");
    pump_evs(&mut [&mut a, &mut b, &mut k], "expired-key reports", |ms| {
        ms.iter().all(|m| {
            m.reports()
                .iter()
                .any(|u| u.reason == Undecryptable::KeyNotHeld && u.key_id == Some(v1.key_id))
        })
    });
    for m in [&a, &b, &k] {
        assert!(!m.texts().contains(&"too late".to_owned()), "{:?}", m.log);
        let u = m
            .reports()
            .into_iter()
            .find(|u| u.reason == Undecryptable::KeyNotHeld)
            .cloned()
            .expect("report");
        assert_eq!(u.group, g);
        assert_eq!(u.sender, *a.c.private_name());
    }
    let reported: u64 = ["d0", "d1", "d2"]
        .iter()
        .map(|d| {
            keys(d)
                .evs_undecryptable
                .get("key_not_held")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(reported, 3, "one report per receiving daemon");
    for m in [a, b, k] {
        m.c.disconnect().expect("disconnect");
    }
}
