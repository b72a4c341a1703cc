//! Multi-process tests of virtual synchrony for clients: real daemons (`sgc cluster up`), clients
//! through the flush layer.
//!
//! - v10: `sgc user --vs --json` processes on different daemons: a joiner's first view comes
//!   without a flush request, every later view after one; with `--manual-flush` the view waits
//!   for the `flush_ok G` command; messages carry the view they are delivered in; a non-member's
//!   send is refused (closed group).
//! - v20: library clients ([`VsClient`]) on three daemons send all the time while a fourth joins
//!   and leaves and while the ring is partitioned and healed; every payload names the view its
//!   sender sent it in. Asserts sending-view delivery, virtual synchrony (members that go from one
//!   view to the next together delivered the same messages in it), that every view change was
//!   preceded by a flush request, view agreement, self inclusion, closed groups and at most one
//!   transition signal per view.
//! - v30: the same clients with a seeded bug of the flush layer (`send-in-agree`: sends allowed
//!   after `flush_ok`) through a join and a leave: the same checks catch it (VS-SENDVIEW).
//!
//! Every wait is bounded; the guards kill every process they started.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, ChildStdin};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{Cluster, WAIT, spawn_user, up};
use serde_json::Value;
use sgc_client::vs::{VsClient, VsError, VsEvent};
use sgc_client::{Client, Endpoint};
use sgc_daemon::admin::Request;
use sgc_model::groups::{Cause, ClientService, GroupName};
use sgc_model::vs::{FlushLayer, VsMutant};

/// One `sgc user --vs --json` process.
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
    fn start(c: &Cluster, daemon: &str, name: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--vs", "--json", "--name", name];
        args.extend_from_slice(extra);
        let (child, stdin, events) = spawn_user(&args, c.d(daemon).client);
        let mut u = Self {
            child,
            stdin,
            events,
            name: String::new(),
        };
        let hello = u.next_within(WAIT).expect("connected");
        assert_eq!(hello["event"], "connected");
        u.name = hello["name"].as_str().expect("name").to_owned();
        u
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to sgc user");
        self.stdin.flush().expect("flush");
    }

    fn next_within(&self, d: Duration) -> Option<Value> {
        self.events.recv_timeout(d).ok()
    }

    /// Events up to and including the first satisfying `pred` (bounded by [`WAIT`]).
    fn until(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    let done = pred(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!(
                    "{}: no expected event within {WAIT:?} ({e}); saw {seen:?}",
                    self.name
                ),
            }
        }
    }

    /// Events up to the VS view of `chat` with exactly `members`.
    fn until_view(&self, members: &[&str]) -> Vec<Value> {
        self.until(|e| {
            e["event"] == "membership" && e["group"] == "chat" && e["members"] == serde_json::json!(members)
        })
    }
}

fn count(evs: &[Value], kind: &str) -> usize {
    evs.iter().filter(|e| e["event"] == kind).count()
}

#[test]
fn v10_sgc_user_vs_flushes_before_every_view_and_tags_messages_with_their_view() {
    let c = up("v10", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let mut a = User::start(&c, "d0", "alice", &[]);
    let mut b = User::start(&c, "d1", "bob", &["--manual-flush"]);
    let mut x = User::start(&c, "d2", "xavier", &[]);

    a.say("join chat");
    let evs = a.until_view(&["#alice#d0"]);
    assert_eq!(
        count(&evs, "flush_request"),
        0,
        "a joiner's first view has no flush: {evs:?}"
    );

    b.say("join chat");
    let evs = a.until_view(&["#alice#d0", "#bob#d1"]);
    assert_eq!(
        count(&evs, "flush_request"),
        1,
        "alice flushed (automatically): {evs:?}"
    );
    let v2 = evs.last().expect("view").clone();
    assert_eq!(v2["cause"], "join");
    assert_eq!(v2["vs_set"], serde_json::json!(["#bob#d1"]));
    let evs = b.until_view(&["#alice#d0", "#bob#d1"]);
    assert_eq!(count(&evs, "flush_request"), 0, "{evs:?}");
    assert_eq!(evs.last().expect("view")["view"], v2["view"]);

    // closed group: a non-member may not send to it
    x.say("send chat intruder");
    let e = x.until(|e| e["event"] == "error");
    assert!(
        e.last().expect("error")["text"]
            .as_str()
            .is_some_and(|t| t.contains("not a member")),
        "{e:?}"
    );

    b.say("send chat hello");
    for u in [&a, &b] {
        let m = u.until(|e| e["event"] == "message");
        let m = m.last().expect("message");
        assert_eq!(
            (&m["payload"], &m["sender"], &m["view"]),
            (&"hello".into(), &"#bob#d1".into(), &v2["view"])
        );
    }

    // bob flushes by hand: the view with xavier waits for him
    x.say("join chat");
    b.until(|e| e["event"] == "flush_request" && e["group"] == "chat");
    a.until(|e| e["event"] == "flush_request");
    if let Some(e) = a.next_within(Duration::from_millis(700)) {
        assert_ne!(e["event"], "membership", "installed before bob flushed: {e}");
    }
    b.say("send chat still-in-view-2");
    b.say("flush_ok chat");
    b.say("send chat too-late");
    let three = ["#alice#d0", "#bob#d1", "#xavier#d2"];
    let evs = b.until_view(&three);
    assert!(
        evs.iter().any(|e| e["event"] == "error"),
        "a send after flush_ok is refused: {evs:?}"
    );
    let v3 = evs.last().expect("view")["view"].clone();
    assert_ne!(v3, v2["view"]);
    let evs = a.until_view(&three);
    let late: Vec<&Value> = evs.iter().filter(|e| e["event"] == "message").collect();
    assert_eq!(late.len(), 1, "{evs:?}");
    assert_eq!(
        (&late[0]["payload"], &late[0]["view"]),
        (&"still-in-view-2".into(), &v2["view"])
    );
    let evs = x.until_view(&three);
    assert_eq!(count(&evs, "message"), 0, "xavier was not in view 2: {evs:?}");

    a.say("leave chat");
    a.until(|e| e["event"] == "self_leave" && e["group"] == "chat");
    b.until(|e| e["event"] == "flush_request");
    b.say("flush_ok chat");
    let evs = b.until_view(&["#bob#d1", "#xavier#d2"]);
    assert_eq!(evs.last().expect("view")["cause"], "leave");
    assert_eq!(
        evs.last().expect("view")["vs_set"],
        serde_json::json!(["#alice#d0"])
    );
    let evs = x.until_view(&["#bob#d1", "#xavier#d2"]);
    assert_eq!(count(&evs, "flush_request"), 1, "{evs:?}");
}

/// What a v20 member observed.
#[derive(Clone, Debug)]
enum Obs {
    View {
        gid: String,
        cause: Cause,
        members: Vec<String>,
        vs_set: Vec<String>,
    },
    Flush,
    Transition,
    Data {
        payload: String,
        view: String,
    },
    SelfLeave,
}

enum Ctl {
    Leave,
    Stop,
}

/// The current members as each client sees them (`name → members`).
type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// One member: joins `chat`, multicasts `name|seq|view` every few milliseconds whenever the flush
/// layer lets it (alternating FIFO and AGREED), sends one more message after each flush request
/// and then flushes, then tries one more at once (refused by a correct flush layer), until told
/// to stop. Its flush layer runs `mutant`, if any. Returns its private name and observations.
async fn member(
    ep: Endpoint,
    user: String,
    mutant: Option<VsMutant>,
    seen: Seen,
    mut ctl: tokio::sync::mpsc::UnboundedReceiver<Ctl>,
) -> Result<(String, Vec<Obs>), String> {
    let g = GroupName::new("chat").map_err(|e| e.to_string())?;
    let conn = Client::connect(&ep, Some(&user), true)
        .await
        .map_err(|e| e.to_string())?;
    let layer = FlushLayer::new(conn.private_name().clone(), mutant);
    let mut vs = VsClient::with_layer(conn, layer);
    let me = vs.private_name().to_string();
    vs.join(&g).await.map_err(|e| e.to_string())?;
    let mut log = Vec::new();
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
    loop {
        tokio::select! {
            ev = vs.recv() => match ev.map_err(|e| format!("{me}: recv: {e}"))? {
                VsEvent::View(v) => {
                    let members: Vec<String> = v.members.iter().map(ToString::to_string).collect();
                    seen.lock().map_err(|e| e.to_string())?.insert(me.clone(), members.clone());
                    log.push(Obs::View {
                        gid: v.view.to_string(),
                        cause: v.cause,
                        members,
                        vs_set: v.vs_set.iter().map(ToString::to_string).collect(),
                    });
                }
                VsEvent::FlushRequest(fg) => {
                    log.push(Obs::Flush);
                    send_one(&mut vs, &g, &me, &mut seq).await?;
                    vs.flush_ok(&fg).await.map_err(|e| format!("{me}: flush: {e}"))?;
                    send_one(&mut vs, &g, &me, &mut seq).await?;
                }
                VsEvent::Data(d) => log.push(Obs::Data {
                    payload: String::from_utf8_lossy(&d.msg.body).into_owned(),
                    view: d.view.map(|v| v.to_string()).unwrap_or_default(),
                }),
                VsEvent::SelfLeave(_) => {
                    log.push(Obs::SelfLeave);
                    seen.lock().map_err(|e| e.to_string())?.insert(me.clone(), Vec::new());
                }
                VsEvent::Transition { .. } => log.push(Obs::Transition),
                VsEvent::Rejected { .. } | VsEvent::Undecryptable(_) => {}
            },
            _ = tick.tick() => {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("{me}: not stopped in time"));
                }
                send_one(&mut vs, &g, &me, &mut seq).await?;
            }
            c = ctl.recv() => match c {
                Some(Ctl::Leave) => vs.leave(&g).await.map_err(|e| format!("{me}: leave: {e}"))?,
                Some(Ctl::Stop) | None => break,
            },
        }
    }
    vs.disconnect()
        .await
        .map_err(|e| format!("{me}: disconnect: {e}"))?;
    Ok((me, log))
}

/// Multicast `me|seq|view` to `g` if the flush layer lets this client send now (alternating
/// FIFO and AGREED).
async fn send_one(vs: &mut VsClient, g: &GroupName, me: &str, seq: &mut u64) -> Result<(), String> {
    let Some(view) = vs.view(g) else {
        return Ok(());
    };
    let service = if seq.is_multiple_of(2) {
        ClientService::Fifo
    } else {
        ClientService::Agreed
    };
    let body = format!("{me}|{seq}|{view}");
    match vs.multicast(g, service, 0, body.as_bytes()).await {
        Ok(()) => {
            *seq += 1;
            Ok(())
        }
        Err(VsError::IllegalState(_) | VsError::NotMember(_)) => Ok(()),
        Err(e) => Err(format!("{me}: send: {e}")),
    }
}

/// Wait until each named client's current view has exactly `members`.
fn wait_views(seen: &Seen, want: &[(&str, &[&str])]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = seen.lock().expect("seen").clone();
        if want.iter().all(|(who, m)| now.get(*who).is_some_and(|v| v == m)) {
            return;
        }
        assert!(Instant::now() < deadline, "views {now:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One view of one member: its gid, the messages delivered in it, and the next view.
struct Seg<'a> {
    gid: &'a str,
    members: &'a [String],
    delivered: BTreeSet<&'a str>,
    next: Option<(&'a str, Cause, &'a [String], &'a [String])>,
}

fn segments(log: &[Obs]) -> Vec<Seg<'_>> {
    let mut out: Vec<Seg<'_>> = Vec::new();
    for o in log {
        match o {
            Obs::View {
                gid,
                cause,
                members,
                vs_set,
            } => {
                if let Some(last) = out.last_mut() {
                    last.next = Some((gid, *cause, members, vs_set));
                }
                out.push(Seg {
                    gid,
                    members,
                    delivered: BTreeSet::new(),
                    next: None,
                });
            }
            Obs::Data { payload, .. } => {
                if let Some(last) = out.last_mut() {
                    last.delivered.insert(payload);
                }
            }
            Obs::Flush | Obs::Transition | Obs::SelfLeave => {}
        }
    }
    out
}

/// What a scenario run produced: each client's private name and observations, and its time.
type Logs = BTreeMap<String, Vec<Obs>>;

/// Run clients a (d0), b (d1), c (d2) sending all the time; d (d1) joins and leaves; then, if
/// `partition`, {d0,d1} | {d2} and a heal. Every flush layer runs `mutant`.
fn scenario(c: &Cluster, mutant: Option<VsMutant>, partition: bool) -> Logs {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seen: Seen = Arc::default();
    let mut ctls = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut spawn = |daemon: &str, user: &str| {
        let ep: Endpoint = c.d(daemon).client.to_string().parse().expect("endpoint");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ctls.insert(user.to_owned(), tx);
        tasks.push(rt.spawn(member(ep, user.to_owned(), mutant, Arc::clone(&seen), rx)));
    };
    let (a, b, cc, d) = ("#a#d0", "#b#d1", "#c#d2", "#d#d1");
    spawn("d0", "a");
    spawn("d1", "b");
    spawn("d2", "c");
    let abc: &[&str] = &[a, b, cc];
    wait_views(&seen, &[(a, abc), (b, abc), (cc, abc)]);
    std::thread::sleep(Duration::from_millis(300));

    spawn("d1", "d");
    let abdc: &[&str] = &[a, b, d, cc];
    wait_views(&seen, &[(a, abdc), (b, abdc), (cc, abdc), (d, abdc)]);
    std::thread::sleep(Duration::from_millis(300));
    ctls["d"].send(Ctl::Leave).expect("d alive");
    wait_views(&seen, &[(a, abc), (b, abc), (cc, abc), (d, &[])]);
    std::thread::sleep(Duration::from_millis(300));

    if partition {
        for (dm, from) in [("d0", vec!["d2"]), ("d1", vec!["d2"]), ("d2", vec!["d0", "d1"])] {
            let from = from.into_iter().map(str::to_owned).collect();
            c.call(dm, &Request::Partition { from });
        }
        wait_views(&seen, &[(a, &[a, b]), (b, &[a, b]), (cc, &[cc])]);
        std::thread::sleep(Duration::from_millis(300));
        for dm in ["d0", "d1", "d2"] {
            c.call(dm, &Request::Heal);
        }
        wait_views(&seen, &[(a, abc), (b, abc), (cc, abc)]);
        std::thread::sleep(Duration::from_millis(300));
    }

    for tx in ctls.values() {
        let _ = tx.send(Ctl::Stop);
    }
    rt.block_on(async {
        let mut logs = BTreeMap::new();
        for t in tasks {
            let r = tokio::time::timeout(WAIT, t)
                .await
                .expect("member stops in time")
                .expect("member task");
            let (me, log) = r.unwrap_or_else(|e| panic!("{e}"));
            logs.insert(me, log);
        }
        logs
    })
}

/// What the checks counted.
#[derive(Debug)]
struct Stats {
    delivered: usize,
    network_views: usize,
    compared: usize,
}

/// Every VS check over the observations; the first violation as text.
fn check(logs: &Logs) -> Result<Stats, String> {
    let mut delivered = 0usize;
    let mut network_views = 0usize;
    let mut installs: BTreeMap<&str, (Cause, &[String])> = BTreeMap::new();
    for (me, log) in logs {
        let mut current: Option<(&str, &[String])> = None;
        let mut transitions = 0;
        let mut flushed = false;
        for o in log {
            match o {
                Obs::View {
                    gid, cause, members, ..
                } => {
                    if current.is_some() && !flushed {
                        return Err(format!("VS-PERMIT: {me}: view {gid} without a flush request"));
                    }
                    if !members.contains(me) {
                        return Err(format!("VS-SELFINC: {me} not in its view {gid} {members:?}"));
                    }
                    let first = installs.entry(gid).or_insert((*cause, members));
                    if *first != (*cause, members.as_slice()) {
                        return Err(format!("VS-VIEWAGREE: {me}: view {gid} differs: {first:?}"));
                    }
                    if *cause == Cause::Network {
                        network_views += 1;
                    }
                    current = Some((gid, members));
                    transitions = 0;
                    flushed = false;
                }
                Obs::Flush => flushed = true,
                Obs::Transition => {
                    transitions += 1;
                    if transitions > 1 {
                        return Err(format!("VS-ONETRANS: {me}: two transition signals in one view"));
                    }
                }
                Obs::Data { payload, view } => {
                    let mut parts = payload.split('|');
                    let (sender, sent_in) =
                        (parts.next().unwrap_or_default(), parts.nth(1).unwrap_or_default());
                    if sent_in != view {
                        return Err(format!("VS-SENDVIEW: {me}: {payload} delivered in view {view}"));
                    }
                    let Some((cur, members)) = current else {
                        return Err(format!("{me}: {payload} before any view"));
                    };
                    if cur != view {
                        return Err(format!("{me}: {payload} tagged {view}, installed {cur}"));
                    }
                    if !members.iter().any(|m| m == sender) {
                        return Err(format!("VS-CLOSED: {me}: {payload} from a non-member"));
                    }
                    delivered += 1;
                }
                Obs::SelfLeave => current = None,
            }
        }
    }

    // VS-VSYNC: members moving together from V to V' delivered the same set in V
    let segs: BTreeMap<&String, Vec<Seg<'_>>> = logs.iter().map(|(k, l)| (k, segments(l))).collect();
    let mut compared = 0usize;
    for (p, mine) in &segs {
        for s in mine {
            let Some((next, cause, members, vs_set)) = s.next else {
                continue;
            };
            let moved: Vec<&String> = match cause {
                Cause::Network => vs_set.iter().collect(),
                _ => s.members.iter().filter(|m| members.contains(m)).collect(),
            };
            for q in moved.into_iter().filter(|q| *q != *p) {
                let Some(theirs) = segs.get(q) else { continue };
                for t in theirs
                    .iter()
                    .filter(|t| t.gid == s.gid && t.next.is_some_and(|n| n.0 == next))
                {
                    if t.delivered != s.delivered {
                        return Err(format!(
                            "VS-VSYNC: {p} and {q} moved from {} to {next} with different deliveries",
                            s.gid
                        ));
                    }
                    compared += 1;
                }
            }
        }
    }
    Ok(Stats {
        delivered,
        network_views,
        compared,
    })
}

#[test]
fn v20_sending_view_delivery_and_virtual_synchrony_across_join_leave_partition_merge() {
    let started = Instant::now();
    let c = up("v20", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let logs = scenario(&c, None, true);
    let st = check(&logs).unwrap_or_else(|e| panic!("{e}"));
    assert!(st.delivered > 100, "only {st:?}");
    assert!(st.network_views >= 4, "partition and merge views: {st:?}");
    assert!(st.compared >= 10, "too few view transitions compared: {st:?}");
    eprintln!("v20: {st:?}, {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn v30_a_seeded_flush_bug_is_caught_live() {
    let started = Instant::now();
    let c = up("v30", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    let logs = scenario(&c, Some(VsMutant::SendInAgree), false);
    let err = check(&logs).expect_err("send-in-agree must break a VS property");
    assert!(err.starts_with("VS-SENDVIEW"), "{err}");
    eprintln!("v30: caught {err}, {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
}
