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
//!   view to the next together delivered the same messages in it) and that every view change was
//!   preceded by a flush request.
//!
//! Every wait is bounded; the guards kill every process they started.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{Cluster, SGC, WAIT, up};
use serde_json::Value;
use sgc_client::Endpoint;
use sgc_client::vs::{VsClient, VsError, VsEvent};
use sgc_daemon::admin::Request;
use sgc_model::groups::{Cause, ClientService, GroupName};

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
        let mut child = Command::new(SGC)
            .args(["user", "--vs", "--json", "--name", name])
            .args(extra)
            .arg("--daemon")
            .arg(c.d(daemon).client.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sgc user");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
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
/// and then flushes, until told to stop. Returns its private name and observations.
async fn member(
    ep: Endpoint,
    user: String,
    seen: Seen,
    mut ctl: tokio::sync::mpsc::UnboundedReceiver<Ctl>,
) -> Result<(String, Vec<Obs>), String> {
    let g = GroupName::new("chat").map_err(|e| e.to_string())?;
    let mut vs = VsClient::connect(&ep, Some(&user))
        .await
        .map_err(|e| e.to_string())?;
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
                VsEvent::Rejected { .. } => {}
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

#[test]
fn v20_sending_view_delivery_and_virtual_synchrony_across_join_leave_partition_merge() {
    let started = Instant::now();
    let c = up("v20", 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
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
        tasks.push(rt.spawn(member(ep, user.to_owned(), Arc::clone(&seen), rx)));
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

    for tx in ctls.values() {
        let _ = tx.send(Ctl::Stop);
    }
    let logs: BTreeMap<String, Vec<Obs>> = rt.block_on(async {
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
    });

    let mut delivered = 0usize;
    let mut network_views = 0usize;
    let mut installs: BTreeMap<&str, (Cause, &[String])> = BTreeMap::new();
    for (me, log) in &logs {
        let mut current: Option<(&str, &[String])> = None;
        let mut transitions = 0;
        let mut flushed = false;
        for o in log {
            match o {
                Obs::View {
                    gid, cause, members, ..
                } => {
                    // VS-PERMIT (client side): every view after the first follows a flush request
                    assert!(
                        current.is_none() || flushed,
                        "{me}: view {gid} without a flush request"
                    );
                    // VS-SELFINC
                    assert!(members.contains(me), "{me}: not in its view {gid} {members:?}");
                    // VS-VIEWAGREE
                    let first = installs.entry(gid).or_insert((*cause, members));
                    assert_eq!(*first, (*cause, members.as_slice()), "{me}: view {gid} differs");
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
                    assert!(
                        transitions <= 1,
                        "{me}: two transition signals in one view (VS-ONETRANS)"
                    );
                }
                Obs::Data { payload, view } => {
                    let mut parts = payload.split('|');
                    let (sender, sent_in) =
                        (parts.next().unwrap_or_default(), parts.nth(1).unwrap_or_default());
                    // VS-SENDVIEW: the view named in the payload is the delivery view
                    assert_eq!(sent_in, view, "{me}: {payload} delivered in view {view}");
                    // VS-CLOSED: only from a member of the receiver's view
                    let (cur, members) = current.expect("data before any view");
                    assert_eq!(cur, view, "{me}: tagged with a view that is not installed");
                    assert!(
                        members.iter().any(|m| m == sender),
                        "{me}: {payload} from a non-member"
                    );
                    delivered += 1;
                }
                Obs::SelfLeave => current = None,
            }
        }
    }
    assert!(delivered > 100, "only {delivered} deliveries");
    assert!(network_views >= 4, "partition and merge views: {network_views}");

    // virtual synchrony: members moving together from V to V' delivered the same set in V
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
                    assert_eq!(
                        t.delivered, s.delivered,
                        "{p} and {q} moved from {} to {next} with different deliveries",
                        s.gid
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared >= 10, "only {compared} view transitions compared");
    eprintln!(
        "v20: {delivered} deliveries checked, {network_views} network views, {compared} view \
         transitions compared, {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
