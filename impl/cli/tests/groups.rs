//! Multi-process tests of clients and groups: real daemons (`sgc cluster up`) and real clients
//! (`sgc user --json`, driven through their stdin, observed on their stdout).
//!
//! - g10: clients on three daemons join one group, see each other's memberships, and receive
//!   every message of every sender in one agreed order;
//! - g20: a partition {d0,d1} | {d2} gives the members a transitional signal, then a NETWORK
//!   membership without the lost member; the heal gives a NETWORK membership with both sides, one
//!   vs_set each;
//! - g30: a client killed abruptly is removed with cause `disconnect`.
//!
//! Every wait is bounded; the guards kill every process they started.

mod common;

use std::io::Write;
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::Instant;

use common::{Cluster, WAIT, spawn_user, up};
use serde_json::Value;
use sgc_daemon::admin::Request;

/// One `sgc user --json` process.
struct User {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    name: String,
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl User {
    fn start(c: &Cluster, daemon: &str, name: &str) -> Self {
        let (child, stdin, events) = spawn_user(&["--json", "--name", name], c.d(daemon).client);
        let mut u = Self {
            child,
            stdin,
            events,
            name: String::new(),
        };
        let hello = u.next_where(|e| e["event"] == "connected");
        u.name = hello["name"].as_str().expect("name").to_owned();
        u
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to sgc user");
        self.stdin.flush().expect("flush");
    }

    /// The next event satisfying `pred`, skipping others.
    fn next_where(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("{}: no expected event within {WAIT:?} ({e})", self.name),
            }
        }
    }

    /// The next event, whatever it is.
    fn next(&self) -> Value {
        self.next_where(|_| true)
    }

    /// Wait for the membership of `group` whose member list is exactly `members`.
    fn membership(&self, group: &str, members: &[&str]) -> Value {
        self.next_where(|e| {
            e["event"] == "membership"
                && e["group"] == group
                && e["members"].as_array().is_some_and(|m| {
                    m.iter()
                        .map(|x| x.as_str().unwrap_or_default())
                        .collect::<Vec<_>>()
                        == members
                })
        })
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn g10_clients_on_three_daemons_share_one_agreed_order() {
    let c = up("g10", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let mut us: Vec<User> = ["d0", "d1", "d2"]
        .iter()
        .zip(["alice", "bob", "carol"])
        .map(|(d, n)| User::start(&c, d, n))
        .collect();
    let all = ["#alice#d0", "#bob#d1", "#carol#d2"];
    for u in &mut us {
        u.say("join chat");
    }
    let views: Vec<Value> = us.iter().map(|u| u.membership("chat", &all)).collect();
    assert!(
        views
            .iter()
            .all(|v| v["view"] == views[0]["view"] && v["cause"] == "join")
    );
    let per_sender = 20;
    for k in 0..per_sender {
        for u in &mut us {
            let service = if k % 2 == 0 { "agreed" } else { "safe" };
            let line = format!("send chat --service {service} m{k}");
            u.say(&line);
        }
    }
    let orders: Vec<Vec<String>> = us
        .iter()
        .map(|u| {
            (0..3 * per_sender)
                .map(|_| {
                    let m = u.next_where(|e| e["event"] == "message");
                    format!("{}:{}", m["sender"].as_str().unwrap_or_default(), m["payload"])
                })
                .collect()
        })
        .collect();
    assert_eq!(
        orders[0], orders[1],
        "alice and bob delivered in different orders"
    );
    assert_eq!(
        orders[0], orders[2],
        "alice and carol delivered in different orders"
    );
    for s in all {
        let mine: Vec<&String> = orders[0].iter().filter(|m| m.starts_with(s)).collect();
        assert_eq!(mine.len(), per_sender, "{s}: FIFO count");
        for (k, m) in mine.iter().enumerate() {
            assert!(
                m.ends_with(&format!("\"m{k}\"")),
                "{s}: FIFO order broken at {k}: {m}"
            );
        }
    }
}

#[test]
fn g20_partition_and_merge_give_transitional_and_network_memberships() {
    let c = up("g20", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let mut a = User::start(&c, "d0", "alice");
    let mut b = User::start(&c, "d2", "bob");
    a.say("join chat");
    a.membership("chat", &["#alice#d0"]);
    b.say("join chat");
    let joined = a.membership("chat", &["#alice#d0", "#bob#d2"]);
    b.membership("chat", &["#alice#d0", "#bob#d2"]);

    for (d, from) in [("d0", vec!["d2"]), ("d1", vec!["d2"]), ("d2", vec!["d0", "d1"])] {
        let from = from.into_iter().map(str::to_owned).collect();
        c.call(d, &Request::Partition { from });
    }
    c.wait_rings(&[&["d0", "d1"], &["d2"]]);
    let t = a.next_where(|e| e["event"] == "transition");
    assert_eq!(t["group"], "chat");
    let alone = a.membership("chat", &["#alice#d0"]);
    assert_eq!(alone["cause"], "network");
    assert_eq!(names(&alone["vs_set"]), ["#alice#d0"]);
    assert_ne!(alone["view"], joined["view"]);
    b.next_where(|e| e["event"] == "transition");
    let b_alone = b.membership("chat", &["#bob#d2"]);
    assert_eq!(b_alone["cause"], "network");

    // Messages sent while partitioned stay on their side.
    a.say("send chat only-left");
    b.say("send chat only-right");
    let ma = a.next_where(|e| e["event"] == "message");
    assert_eq!(ma["payload"], "only-left");
    let mb = b.next_where(|e| e["event"] == "message");
    assert_eq!(mb["payload"], "only-right");

    for d in ["d0", "d1", "d2"] {
        c.call(d, &Request::Heal);
    }
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let merged = a.membership("chat", &["#alice#d0", "#bob#d2"]);
    assert_eq!(merged["cause"], "network");
    assert_eq!(
        names(&merged["vs_set"]),
        ["#alice#d0"],
        "alice came alone from her side"
    );
    let b_merged = b.membership("chat", &["#alice#d0", "#bob#d2"]);
    assert_eq!(
        b_merged["view"], merged["view"],
        "one view id for the merged group"
    );
    assert_eq!(names(&b_merged["vs_set"]), ["#bob#d2"]);
    a.say("send chat together");
    assert_eq!(b.next_where(|e| e["event"] == "message")["payload"], "together");
    let _ = a.next();
}

#[test]
fn g30_a_killed_client_is_removed_with_cause_disconnect() {
    let c = up("g30", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let mut a = User::start(&c, "d0", "alice");
    let mut b = User::start(&c, "d1", "bob");
    a.say("join chat");
    a.membership("chat", &["#alice#d0"]);
    b.say("join chat");
    a.membership("chat", &["#alice#d0", "#bob#d1"]);
    drop(b);
    let m = a.membership("chat", &["#alice#d0"]);
    assert_eq!(m["cause"], "disconnect");
    assert_eq!(names(&m["vs_set"]), ["#bob#d1"], "the vs_set names who left");
}
