//! Integrated security, part 1, with real processes: `sgc cluster up --security three-step`
//! (daemons agree on a servers' key with TGDH, Ed25519-signed, ordered on the ring) and clients
//! over mutual TLS that get the group key of each view with its membership.
//!
//! - k10: two clients on different daemons see the same key id for the same view; a join and a
//!   leave change it; after a partition the two sides have different key ids, after the merge
//!   they agree again; every daemon reports the same servers' key id (and never the key).
//! - k20: a servers' key refresh (`--refresh-ms`) reaches a client as an artificial membership:
//!   same members and view, a new key id; `sgc user --json` shows `key_id` (and `artificial`)
//!   on membership events, never the key.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, SGC, WAIT};
use sgc_client::blocking::Client;
use sgc_client::{Endpoint, GroupKeyInfo};
use sgc_daemon::admin::Request;
use sgc_model::groups::{ClientEvent, ClientService, GroupName, Membership, Target};

/// `sgc cluster up --security three-step` with `n` daemons, retried if ports were taken.
fn up_secure(name: &str, n: u16, refresh_ms: Option<u64>) -> Cluster {
    up_secure_with(name, n, refresh_ms, &[])
}

/// The same with more `sgc cluster up` arguments.
fn up_secure_with(name: &str, n: u16, refresh_ms: Option<u64>, more: &[&str]) -> Cluster {
    let ms = refresh_ms.map(|ms| ms.to_string());
    let mut args = vec!["--security", "three-step"];
    if let Some(ms) = &ms {
        args.extend(["--refresh-ms", ms.as_str()]);
    }
    args.extend_from_slice(more);
    common::up_with(name, n, &args)
}

/// Connect over mutual TLS, retrying while the ring forms (bounded).
fn connect(c: &Cluster, daemon: &str, who: &str) -> Client {
    let ep = Endpoint::Tls {
        addr: c.d(daemon).client,
        identity: c.identity(who),
    };
    let deadline = Instant::now() + WAIT;
    loop {
        match Client::connect(&ep, Some(who), true) {
            Ok(cl) => return cl,
            Err(e) => assert!(Instant::now() < deadline, "{who} cannot connect to {ep}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first membership of `group` that `pick` accepts, with its group key (within [`WAIT`]).
fn membership(
    cl: &mut Client,
    group: &GroupName,
    what: &str,
    pick: impl Fn(&Membership, &GroupKeyInfo) -> bool,
) -> (Membership, GroupKeyInfo) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match cl.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(ClientEvent::Membership(m))) if &m.group == group => {
                let k = cl.group_key(group).cloned().expect("a keyed membership");
                if pick(&m, &k) {
                    return (m, k);
                }
                seen.push(format!("{} {:?} key {:016x}", m.gid, names(&m), k.key_id));
            }
            Ok(Some(ev)) => seen.push(format!("{ev:?}")),
            Ok(None) => {}
            Err(e) => panic!("waiting for {what}: {e}; seen {seen:#?}"),
        }
    }
    panic!("no {what} within {WAIT:?}; seen {seen:#?}");
}

fn names(m: &Membership) -> Vec<String> {
    m.members.iter().map(|p| p.user.clone()).collect()
}

fn with<'a>(users: &'a [&'a str]) -> impl Fn(&Membership, &GroupKeyInfo) -> bool + 'a {
    move |m, _| names(m) == users
}

fn partition(c: &Cluster, sides: &[&[&str]]) {
    for side in sides {
        let others: Vec<String> = sides
            .iter()
            .filter(|s| *s != side)
            .flat_map(|s| s.iter().map(ToString::to_string))
            .collect();
        for d in *side {
            c.call(d, &Request::Partition { from: others.clone() });
        }
    }
}

/// Every daemon of `names` reports the same servers' key id, not holding; returns the id and
/// the agreement times (ms).
fn servers_key(c: &Cluster, names: &[&str]) -> (String, Vec<f64>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let st: Vec<_> = names
            .iter()
            .filter_map(|n| c.status(n).and_then(|s| s.keys))
            .collect();
        let id = st.first().and_then(|k| k.key_id.clone());
        if st.len() == names.len() && id.is_some() && st.iter().all(|k| k.key_id == id && !k.holding) {
            let ms = st.iter().filter_map(|k| k.last_agreement_ms).collect();
            return (id.unwrap_or_default(), ms);
        }
        assert!(Instant::now() < deadline, "servers' keys differ: {st:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn k10_group_keys_follow_views_partitions_and_merges() {
    let c = up_secure("keys10", 3, None);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let (sk1, ms) = servers_key(&c, &["d0", "d1", "d2"]);
    eprintln!("servers' key {sk1}: agreed in {ms:?} ms after the configuration");
    let status = c.call("d0", &Request::Status).to_string();
    assert!(status.contains("\"key_id\""), "{status}");

    let chat = GroupName::new("chat").expect("name");
    let mut alice = connect(&c, "d0", "alice");
    let mut bob = connect(&c, "d1", "bob");
    alice.join(&chat).expect("join");
    bob.join(&chat).expect("join");
    let (ma, ka) = membership(&mut alice, &chat, "alice+bob at alice", with(&["alice", "bob"]));
    let (mb, kb) = membership(&mut bob, &chat, "alice+bob at bob", with(&["alice", "bob"]));
    assert_eq!(ma.gid, mb.gid);
    assert_eq!((ka.ring, ka.refresh), (kb.ring, kb.refresh));
    assert_eq!(ka.key_id, kb.key_id, "same view, same key id");
    assert_eq!(ka.key, kb.key);
    assert_eq!(ka.key.len(), 32, "HMAC-SHA-256 by default");
    assert!(!ka.artificial);

    // A join and a leave change the key.
    let mut carol = connect(&c, "d2", "carol");
    carol.join(&chat).expect("join");
    let three = ["alice", "bob", "carol"];
    let (_, ka3) = membership(&mut alice, &chat, "3 members at alice", with(&three));
    let (_, kb3) = membership(&mut bob, &chat, "3 members at bob", with(&three));
    let (_, kc3) = membership(&mut carol, &chat, "3 members at carol", with(&three));
    assert_eq!(ka3.key_id, kb3.key_id);
    assert_eq!(ka3.key_id, kc3.key_id);
    assert_ne!(ka3.key_id, ka.key_id, "a join changes the key");
    carol.leave(&chat).expect("leave");
    let (_, ka4) = membership(&mut alice, &chat, "carol gone at alice", with(&["alice", "bob"]));
    let (_, kb4) = membership(&mut bob, &chat, "carol gone at bob", with(&["alice", "bob"]));
    assert_eq!(ka4.key_id, kb4.key_id);
    assert!(
        ![ka.key_id, ka3.key_id].contains(&ka4.key_id),
        "a leave changes the key"
    );
    drop(carol);

    // Partition d0 | d1 d2: each side gets its own servers' key and group keys.
    partition(&c, &[&["d0"], &["d1", "d2"]]);
    c.wait_rings(&[&["d0"], &["d1", "d2"]]);
    let (_, kpa) = membership(&mut alice, &chat, "alice alone", with(&["alice"]));
    let (_, kpb) = membership(&mut bob, &chat, "bob alone", with(&["bob"]));
    assert_ne!(kpa.key_id, kpb.key_id, "the two sides have different keys");
    assert_ne!(kpa.ring, kpb.ring);
    let (side0, _) = servers_key(&c, &["d0"]);
    let (side1, _) = servers_key(&c, &["d1", "d2"]);
    assert_ne!(side0, side1);

    // Merge: one servers' key again, one group key.
    for d in ["d0", "d1", "d2"] {
        c.call(d, &Request::Heal);
    }
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let (mma, kma) = membership(&mut alice, &chat, "merged at alice", with(&["alice", "bob"]));
    let (mmb, kmb) = membership(&mut bob, &chat, "merged at bob", with(&["alice", "bob"]));
    assert_eq!(mma.gid, mmb.gid);
    assert_eq!(kma.key_id, kmb.key_id, "after the merge the sides agree");
    for old in [ka.key_id, ka3.key_id, ka4.key_id, kpa.key_id, kpb.key_id] {
        assert_ne!(kma.key_id, old);
    }
    let (sk2, ms) = servers_key(&c, &["d0", "d1", "d2"]);
    eprintln!("servers' key {sk2} after the merge: agreed in {ms:?} ms after the configuration");
    assert_ne!(sk1, sk2);
    // Three-step: after the merge every daemon seals to both others again.
    let deadline = Instant::now() + WAIT;
    let sealing = |d: &str| {
        c.status(d)
            .and_then(|s| s.protection)
            .is_some_and(|p| p.policy == "seal" && p.sealed_to.len() == 2)
    };
    while !["d0", "d1", "d2"].into_iter().all(sealing) {
        assert!(
            Instant::now() < deadline,
            "not sealing to every peer after the merge"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The key itself is never in a log.
    let hexkey: String = kma.key.iter().map(|b| format!("{b:02x}")).collect();
    for d in ["d0", "d1", "d2"] {
        let log = std::fs::read_to_string(c.dir.join(d).join("daemon.log")).unwrap_or_default();
        assert!(log.contains("servers' key agreed"), "{d}: {log}");
        assert!(!log.contains(&hexkey));
    }
}

#[test]
fn k20_a_refresh_is_an_artificial_membership_with_a_new_key() {
    let c = up_secure("keys20", 2, Some(1500));
    c.wait_rings(&[&["d0", "d1"]]);
    let g = GroupName::new("refresh").expect("name");
    let mut alice = connect(&c, "d0", "alice");
    let mut bob = connect(&c, "d1", "bob");
    alice.join(&g).expect("join");
    bob.join(&g).expect("join");
    let (m0, k0) = membership(&mut alice, &g, "both at alice", with(&["alice", "bob"]));
    let (m1, k1) = membership(&mut alice, &g, "a refresh", |m, k| {
        k.artificial && m.members.len() == 2
    });
    assert_eq!(m1.gid, m0.gid, "same group view");
    assert_eq!(m1.members, m0.members);
    assert_ne!(k1.key_id, k0.key_id, "a new key");
    assert!(k1.refresh > k0.refresh || k1.ring != k0.ring);
    // bob gets the same refreshed key for the same key view.
    let (_, kb) = membership(&mut bob, &g, "the same refresh at bob", |_, k| {
        k.artificial && k.ring == k1.ring && k.refresh == k1.refresh
    });
    assert_eq!(kb.key_id, k1.key_id);
    let st = c.status("d0").and_then(|s| s.keys).expect("keys status");
    assert!(st.epoch_refresh.unwrap_or(0) >= 1, "{st:?}");
    assert!(st.artificial_memberships >= 1, "{st:?}");

    // `sgc user --json` shows the key id of every membership (and refreshes), never the key.
    let mut user = Command::new(SGC)
        .args(["user", "--json", "--name", "carol", "--daemon"])
        .arg(c.d("d1").client.to_string())
        .arg("--identity")
        .arg(c.identity("carol"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sgc user");
    let mut stdin = user.stdin.take().expect("stdin");
    let stdout = user.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    writeln!(stdin, "join refresh").expect("write");
    let deadline = Instant::now() + WAIT;
    let (mut keyed, mut artificial) = (None, false);
    while Instant::now() < deadline && !(keyed.is_some() && artificial) {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
        if v["event"] == "membership" {
            let id = v["key_id"].as_str().expect("key_id on a membership").to_owned();
            assert_eq!(id.len(), 16, "{line}");
            assert!(v.get("key").is_none(), "{line}");
            artificial |= v["artificial"] == true;
            keyed = Some(id);
        }
    }
    assert!(
        keyed.is_some() && artificial,
        "sgc user: key ids {keyed:?}, refresh seen {artificial}"
    );
    drop(stdin);
    let _ = user.kill();
    let _ = user.wait();
}

#[test]
fn k30_a_data_out_refresh_rekeys_after_the_configured_bytes() {
    // No time-out refresh; a new servers' key after 20 kB of client data.
    let c = up_secure_with("keys30", 2, Some(0), &["--refresh-bytes", "20000"]);
    c.wait_rings(&[&["d0", "d1"]]);
    let g = GroupName::new("dataout").expect("name");
    let mut alice = connect(&c, "d0", "alice");
    let mut bob = connect(&c, "d1", "bob");
    alice.join(&g).expect("join");
    bob.join(&g).expect("join");
    let (m0, k0) = membership(&mut alice, &g, "both at alice", with(&["alice", "bob"]));
    membership(&mut bob, &g, "both at bob", with(&["alice", "bob"]));
    let before = c.status("d0").and_then(|s| s.keys).expect("keys status");
    // 30 messages of 1000 B: past the 20 kB bound, so exactly one data-out refresh is due.
    for _ in 0..30 {
        alice
            .multicast(
                &[Target::Group(g.clone())],
                ClientService::Agreed,
                0,
                &[7u8; 1000],
            )
            .expect("send");
    }
    let (m1, k1) = membership(&mut bob, &g, "a data-out refresh at bob", |m, k| {
        k.artificial && m.members.len() == 2
    });
    assert_eq!(m1.gid, m0.gid, "same group view");
    assert_ne!(k1.key_id, k0.key_id, "a new key");
    assert_eq!((k1.ring, k1.refresh), (k0.ring, k0.refresh + 1));
    let agreements = || c.status("d0").and_then(|s| s.keys).map_or(0, |k| k.agreements);
    let deadline = Instant::now() + WAIT;
    while agreements() <= before.agreements {
        assert!(Instant::now() < deadline, "d0 did not refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = c.status("d0").and_then(|s| s.keys).expect("keys status");
    assert_eq!(after.agreements, before.agreements + 1, "one refresh: {after:?}");
    assert!(
        after.artificial_memberships > before.artificial_memberships,
        "{after:?}"
    );
}
