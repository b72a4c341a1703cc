//! Unit tests of [`VsClient`] over a fake SP layer: a tiny in-memory "daemon" ([`Hub`]) that
//! orders every request of every fake connection in one sequence and delivers memberships and
//! data to the group's members, as the daemons' group layer does within one configuration.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use sgc_model::groups::{
    Cause, ClientEvent, ClientReq, ClientService, DataMsg, Gid, GroupName, Membership, PrivateName, Target,
};
use sgc_model::ring::{ConfigId, Pid, RingId};

use super::{VsClient, VsError, VsEvent};
use crate::{ClientError, SpConnection};

/// The fake daemon: group members, inboxes, and the next gid index.
#[derive(Debug, Default)]
struct Hub {
    members: BTreeMap<GroupName, Vec<PrivateName>>,
    inbox: BTreeMap<PrivateName, VecDeque<ClientEvent>>,
    next: u32,
    /// Hand a group key with every membership (integrated security): view `i` has key
    /// `[i; 32]` with id `i`.
    keyed: bool,
}

/// The fake group key of view `gid` (keyed hub).
fn fake_key(gid: Gid) -> crate::GroupKeyInfo {
    crate::GroupKeyInfo {
        ring: RingId {
            seq: 1,
            rep: Pid::new(0, 1),
        },
        refresh: 0,
        key_id: u64::from(gid.index),
        artificial: false,
        key: vec![gid.index as u8; 32],
    }
}

fn gid(index: u32) -> Gid {
    Gid {
        conf: ConfigId::Regular(RingId {
            seq: 1,
            rep: Pid::new(0, 1),
        }),
        index,
    }
}

impl Hub {
    fn view(&mut self, g: &GroupName, cause: Cause, who: &PrivateName) {
        self.next += 1;
        let members = self.members.get(g).cloned().unwrap_or_default();
        for m in &members {
            let ev = ClientEvent::Membership(Membership {
                group: g.clone(),
                gid: gid(self.next),
                cause,
                members: members.clone(),
                vs_sets: vec![vec![who.clone()]],
                my_vs: 0,
            });
            self.inbox.entry(m.clone()).or_default().push_back(ev);
        }
    }

    fn request(&mut self, from: &PrivateName, req: &ClientReq) {
        match req {
            ClientReq::Join(g) => {
                let ms = self.members.entry(g.clone()).or_default();
                ms.push(from.clone());
                ms.sort();
                self.view(g, Cause::Join, from);
            }
            ClientReq::Leave(g) => {
                if let Some(ms) = self.members.get_mut(g) {
                    ms.retain(|m| m != from);
                }
                self.inbox
                    .entry(from.clone())
                    .or_default()
                    .push_back(ClientEvent::SelfLeave(g.clone()));
                self.view(g, Cause::Leave, from);
            }
            ClientReq::Send(m) => {
                let Some(Target::Group(g)) = m.targets.first() else {
                    return;
                };
                for r in self.members.get(g).cloned().unwrap_or_default() {
                    let d = DataMsg {
                        sender: from.clone(),
                        targets: m.targets.clone(),
                        service: m.service,
                        mess_type: m.mess_type,
                        body: m.body.clone(),
                    };
                    self.inbox.entry(r).or_default().push_back(ClientEvent::Data(d));
                }
            }
            ClientReq::Disconnect => {}
        }
    }
}

/// One fake connection to the hub; `recv` on an empty inbox is "daemon gone" (no waiting).
#[derive(Debug)]
struct Fake {
    me: PrivateName,
    hub: Arc<Mutex<Hub>>,
    keys: BTreeMap<GroupName, crate::GroupKeyInfo>,
}

impl SpConnection for Fake {
    fn request(&self, req: &ClientReq) -> impl Future<Output = Result<(), ClientError>> + Send {
        self.hub.lock().expect("hub").request(&self.me, req);
        std::future::ready(Ok(()))
    }

    fn recv(&mut self) -> impl Future<Output = Result<ClientEvent, ClientError>> + Send {
        let ev = self
            .hub
            .lock()
            .expect("hub")
            .inbox
            .get_mut(&self.me)
            .and_then(VecDeque::pop_front);
        let keyed = self.hub.lock().expect("hub").keyed;
        if let (Some(ClientEvent::Membership(m)), true) = (&ev, keyed) {
            self.keys.insert(m.group.clone(), fake_key(m.gid));
        }
        std::future::ready(ev.ok_or(ClientError::DaemonGone))
    }

    fn group_key(&self, group: &GroupName) -> Option<&crate::GroupKeyInfo> {
        self.keys.get(group)
    }
}

fn pn(u: &str) -> PrivateName {
    PrivateName::new(0, u, "d").expect("name")
}

fn grp() -> GroupName {
    GroupName::new("chat").expect("name")
}

fn client(hub: &Arc<Mutex<Hub>>, u: &str) -> VsClient<Fake> {
    VsClient::new(
        Fake {
            me: pn(u),
            hub: Arc::clone(hub),
            keys: BTreeMap::new(),
        },
        pn(u),
    )
}

/// Every event `c` can get now (until its fake inbox is empty).
async fn drain(c: &mut VsClient<Fake>) -> Vec<VsEvent> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        match c.recv().await {
            Ok(ev) => out.push(ev),
            Err(VsError::Connection(ClientError::DaemonGone)) => return out,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    panic!("more than 1000 events");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn views(evs: &[VsEvent]) -> Vec<(Gid, Vec<PrivateName>)> {
    evs.iter()
        .filter_map(|e| match e {
            VsEvent::View(v) => Some((v.view, v.members.clone())),
            _ => None,
        })
        .collect()
}

fn payloads(evs: &[VsEvent]) -> Vec<(String, Option<Gid>)> {
    evs.iter()
        .filter_map(|e| match e {
            VsEvent::Data(d) => Some((String::from_utf8_lossy(&d.msg.body).into_owned(), d.view)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_joiner_gets_its_view_without_a_flush_request_and_members_flush_for_the_next() {
    rt().block_on(async {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let (mut a, mut b) = (client(&hub, "a"), client(&hub, "b"));
        let g = grp();
        a.join(&g).await.expect("join");
        let ev = drain(&mut a).await;
        assert_eq!(views(&ev), [(gid(1), vec![pn("a")])]);
        assert!(!ev.iter().any(|e| matches!(e, VsEvent::FlushRequest(_))));
        assert_eq!(a.view(&g), Some(gid(1)));

        b.join(&g).await.expect("join");
        let ev = drain(&mut a).await;
        assert_eq!(ev, [VsEvent::FlushRequest(g.clone())]);
        // a still sends in view 1 after the request, then flushes; no send after that
        a.multicast(&g, ClientService::Agreed, 0, b"late in 1")
            .await
            .expect("send in Authorize");
        a.flush_ok(&g).await.expect("flush");
        assert!(matches!(
            a.multicast(&g, ClientService::Agreed, 0, b"x").await,
            Err(VsError::IllegalState(_))
        ));
        assert!(matches!(a.flush_ok(&g).await, Err(VsError::IllegalState(_))));
        let ev_b = drain(&mut b).await;
        let ev_a = drain(&mut a).await;
        let both = vec![pn("a"), pn("b")];
        assert_eq!(views(&ev_a), [(gid(2), both.clone())]);
        assert_eq!(views(&ev_b), [(gid(2), both)]);
        assert!(!ev_b.iter().any(|e| matches!(e, VsEvent::FlushRequest(_))));
        // the message a sent in view 1 reached a in view 1 and never b (it was not in view 1)
        assert_eq!(payloads(&ev_a), [("late in 1".to_owned(), Some(gid(1)))]);
        assert!(payloads(&ev_b).is_empty());

        b.multicast(&g, ClientService::Fifo, 3, b"hello")
            .await
            .expect("send");
        for c in [&mut a, &mut b] {
            let ev = drain(c).await;
            assert_eq!(payloads(&ev), [("hello".to_owned(), Some(gid(2)))]);
            let VsEvent::Data(d) = &ev[0] else {
                panic!("data expected: {ev:?}");
            };
            assert_eq!((d.msg.sender.clone(), d.msg.mess_type), (pn("b"), 3));
        }
    });
}

#[test]
fn a_non_member_may_not_send_leave_or_flush() {
    rt().block_on(async {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let mut a = client(&hub, "a");
        let g = grp();
        for r in [
            a.multicast(&g, ClientService::Agreed, 0, b"x").await,
            a.leave(&g).await,
            a.flush_ok(&g).await,
        ] {
            assert!(matches!(r, Err(VsError::NotMember(ref x)) if *x == g), "{r:?}");
        }
        a.join(&g).await.expect("join");
        // joining, not yet installed: still not a member
        assert!(matches!(
            a.multicast(&g, ClientService::Agreed, 0, b"x").await,
            Err(VsError::NotMember(_))
        ));
        assert!(matches!(a.join(&g).await, Err(VsError::NotMember(_))));
        assert!(matches!(
            a.multicast(&g, ClientService::Agreed, -32768, b"x").await,
            Err(VsError::Refused(_))
        ));
        // nothing but the join reached the daemon: one membership for a
        assert_eq!(hub.lock().expect("hub").inbox[&pn("a")].len(), 1);
    });
}

#[test]
fn a_leave_gives_the_others_a_flushed_view_and_the_leaver_a_self_leave() {
    rt().block_on(async {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let (mut a, mut b) = (client(&hub, "a"), client(&hub, "b"));
        let g = grp();
        a.join(&g).await.expect("join");
        drain(&mut a).await;
        b.join(&g).await.expect("join");
        drain(&mut a).await;
        a.flush_ok(&g).await.expect("flush");
        drain(&mut b).await;
        drain(&mut a).await;
        b.leave(&g).await.expect("leave");
        assert_eq!(drain(&mut b).await, [VsEvent::SelfLeave(g.clone())]);
        assert_eq!(b.view(&g), None);
        let ev = drain(&mut a).await;
        assert_eq!(ev[0], VsEvent::FlushRequest(g.clone()));
        a.flush_ok(&g).await.expect("flush");
        let ev = drain(&mut a).await;
        assert_eq!(views(&ev), [(gid(3), vec![pn("a")])]);
        let VsEvent::View(v) = &ev[0] else {
            panic!("view expected: {ev:?}");
        };
        assert_eq!((v.cause, v.vs_set.clone()), (Cause::Leave, vec![pn("b")]));
    });
}

#[test]
fn requests_made_while_receiving_keep_their_order() {
    rt().block_on(async {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let mut a = client(&hub, "a");
        let g = grp();
        a.join(&g).await.expect("join");
        // the join view triggers the automatic FLUSH_OK and, on install, FLUSH_RECV: both are
        // sent by recv before it returns, so the view is complete after one drain
        let ev = drain(&mut a).await;
        assert_eq!(views(&ev).len(), 1);
        assert!(a.outgoing.is_empty());
        a.multicast(&g, ClientService::Safe, 0, b"m").await.expect("send");
        assert_eq!(payloads(&drain(&mut a).await), [("m".to_owned(), Some(gid(1)))]);
    });
}

/// Deliver `body` as a data message of `from` to every member of `g`, bypassing the sender's
/// VS client (what another kind of client, or an attacker with a send right, could put there).
fn inject(hub: &Arc<Mutex<Hub>>, from: &str, g: &GroupName, body: Vec<u8>) {
    let mut h = hub.lock().expect("hub");
    for r in h.members.get(g).cloned().unwrap_or_default() {
        let d = DataMsg {
            sender: pn(from),
            targets: vec![Target::Group(g.clone())],
            service: ClientService::Agreed,
            mess_type: 0,
            body: body.clone(),
        };
        h.inbox.entry(r).or_default().push_back(ClientEvent::Data(d));
    }
}

#[test]
fn integrated_vs_encrypts_with_the_view_key_and_reports_what_does_not_open() {
    use sgc_crypto::e2e::{E2eContext, E2eError, E2eKey, header_key_id};
    rt().block_on(async {
        let hub = Arc::new(Mutex::new(Hub {
            keyed: true,
            ..Hub::default()
        }));
        let (mut a, mut b) = (client(&hub, "a"), client(&hub, "b"));
        let g = grp();
        a.join(&g).await.expect("join");
        drain(&mut a).await;
        b.join(&g).await.expect("join");
        drain(&mut a).await;
        a.flush_ok(&g).await.expect("flush");
        drain(&mut b).await;
        drain(&mut a).await;
        assert_eq!((a.view(&g), a.view_key_id(&g)), (Some(gid(2)), Some(2)));
        assert_eq!(b.view_key_id(&g), Some(2));

        b.multicast(&g, ClientService::Agreed, 5, b"secret")
            .await
            .expect("send");
        // on the wire: ciphertext under view 2's key
        let wire = match hub
            .lock()
            .expect("hub")
            .inbox
            .get(&pn("a"))
            .and_then(|q| q.front())
        {
            Some(ClientEvent::Data(d)) => d.body.clone(),
            other => panic!("data expected: {other:?}"),
        };
        assert_eq!(header_key_id(&wire), Some(2));
        assert!(!wire.windows(6).any(|w| w == b"secret"));
        for c in [&mut a, &mut b] {
            let ev = drain(c).await;
            let [VsEvent::Data(d)] = ev.as_slice() else {
                panic!("one data event expected: {ev:?}");
            };
            assert!(d.decrypted);
            assert_eq!(
                (d.msg.body.as_slice(), d.msg.mess_type, d.view),
                (&b"secret"[..], 5, Some(gid(2)))
            );
        }

        // plaintext, a key of another view, and a flipped byte: typed events, never data
        let key1 = E2eKey::new(1, &[1; 32]).expect("key");
        let ctx = E2eContext {
            group: "chat",
            sender: "#a#d",
            mess_type: 0,
        };
        let mut flipped = E2eKey::new(2, &[2; 32])
            .expect("key")
            .seal(&ctx, b"x")
            .expect("seal");
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        inject(&hub, "a", &g, b"plain".to_vec());
        inject(&hub, "a", &g, key1.seal(&ctx, b"old view").expect("seal"));
        inject(&hub, "a", &g, flipped);
        for c in [&mut a, &mut b] {
            let errors: Vec<E2eError> = drain(c)
                .await
                .into_iter()
                .map(|e| match e {
                    VsEvent::Undecryptable(u) => {
                        assert_eq!(u.view, Some(gid(2)));
                        u.error
                    }
                    other => panic!("undecryptable expected: {other:?}"),
                })
                .collect();
            assert_eq!(
                errors,
                [
                    E2eError::NotEncrypted,
                    E2eError::UnknownKey(1),
                    E2eError::Unauthentic(2)
                ]
            );
        }
    });
}

#[test]
fn without_keys_messages_are_plaintext() {
    rt().block_on(async {
        let hub = Arc::new(Mutex::new(Hub::default()));
        let mut a = client(&hub, "a");
        let g = grp();
        a.join(&g).await.expect("join");
        drain(&mut a).await;
        assert_eq!(a.view_key_id(&g), None);
        a.multicast(&g, ClientService::Agreed, 0, b"open")
            .await
            .expect("send");
        let ev = drain(&mut a).await;
        let [VsEvent::Data(d)] = ev.as_slice() else {
            panic!("one data event expected: {ev:?}");
        };
        assert!(!d.decrypted);
        assert_eq!(d.msg.body, b"open");
    });
}
