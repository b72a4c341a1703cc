//! Unit tests of the flush-layer machine with exact outputs: joins, leaves, network changes,
//! cascading flushes, invalidation, vulnerable buffering and the refused calls.

use super::*;
use crate::groups::{
    Cause, ClientEvent, ClientReq, ClientService, DataMsg, Gid, GroupName, Membership, Multicast,
    PrivateName, Target,
};
use crate::ring::{ConfigId, Pid, RingId};

fn pn(u: &str) -> PrivateName {
    PrivateName::new(0, u, "d").expect("valid name")
}

fn grp() -> GroupName {
    GroupName::new("g").expect("valid name")
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

fn names(xs: &[&str]) -> Vec<PrivateName> {
    xs.iter().map(|x| pn(x)).collect()
}

fn memb(id: u32, cause: Cause, members: &[&str], vs_sets: &[&[&str]], my_vs: usize) -> Membership {
    Membership {
        group: grp(),
        gid: gid(id),
        cause,
        members: names(members),
        vs_sets: vs_sets.iter().map(|s| names(s)).collect(),
        my_vs,
    }
}

fn sp_memb(id: u32, cause: Cause, members: &[&str], vs_sets: &[&[&str]], my_vs: usize) -> FlIn {
    FlIn::Sp(ClientEvent::Membership(memb(id, cause, members, vs_sets, my_vs)))
}

fn control_msg(mess_type: i16, id: u32, service: ClientService) -> Multicast {
    let mut body = Vec::new();
    append_trailer(&mut body, &gid(id)).expect("encodes");
    Multicast {
        targets: vec![Target::Group(grp())],
        service,
        self_discard: false,
        mess_type,
        body,
    }
}

fn sent_fok(id: u32) -> FlOut {
    FlOut::ToDaemon(ClientReq::Send(control_msg(
        FLUSH_OK_TYPE,
        id,
        ClientService::Fifo,
    )))
}

fn sent_frecv(id: u32) -> FlOut {
    FlOut::ToDaemon(ClientReq::Send(control_msg(
        FLUSH_RECV_TYPE,
        id,
        ClientService::Fifo,
    )))
}

fn as_data(sender: &str, m: Multicast) -> FlIn {
    FlIn::Sp(ClientEvent::Data(DataMsg {
        sender: pn(sender),
        targets: m.targets,
        service: m.service,
        mess_type: m.mess_type,
        body: m.body,
    }))
}

fn fok(sender: &str, id: u32) -> FlIn {
    as_data(sender, control_msg(FLUSH_OK_TYPE, id, ClientService::Fifo))
}

fn frecv(sender: &str, id: u32) -> FlIn {
    as_data(sender, control_msg(FLUSH_RECV_TYPE, id, ClientService::Fifo))
}

fn user(service: ClientService, body: u8) -> Multicast {
    Multicast {
        targets: vec![Target::Group(grp())],
        service,
        self_discard: false,
        mess_type: 7,
        body: vec![body],
    }
}

fn delivered(sender: &str, service: ClientService, body: u8) -> FlOut {
    FlOut::ToApp(FlEvent::Data(DataMsg {
        sender: pn(sender),
        targets: vec![Target::Group(grp())],
        service,
        mess_type: 7,
        body: vec![body],
    }))
}

fn view(id: u32, cause: Cause, members: &[&str], vs: &[&str]) -> FlOut {
    FlOut::ToApp(FlEvent::View(memb(id, cause, members, &[vs], 0)))
}

fn app(fl: &mut FlushLayer, call: FlCall) -> Vec<FlOut> {
    fl.handle(FlIn::App(call))
}

const OK: FlOut = FlOut::Reply(Ok(()));

fn vstate(fl: &FlushLayer) -> Option<VState> {
    fl.record(&grp()).map(|r| r.vstate)
}

/// `me` alone in view 1, Steady.
fn alone(me: &str) -> FlushLayer {
    let mut fl = FlushLayer::new(pn(me), None);
    assert_eq!(
        app(&mut fl, FlCall::Join(grp())),
        vec![FlOut::ToDaemon(ClientReq::Join(grp())), OK]
    );
    // the first SP view: no flush request, the FLUSH_OK goes out at once
    assert_eq!(
        fl.handle(sp_memb(1, Cause::Join, &[me], &[&[me]], 0)),
        vec![sent_fok(1)]
    );
    assert_eq!(
        fl.handle(fok(me, 1)),
        vec![view(1, Cause::Join, &[me], &[me]), sent_frecv(1)]
    );
    assert_eq!(vstate(&fl), Some(VState::Verify));
    assert_eq!(fl.handle(frecv(me, 1)), vec![]);
    assert_eq!(vstate(&fl), Some(VState::Steady));
    fl
}

/// `a` and `b` both in view 2 = {a, b} (b joined a), Steady.
fn pair() -> (FlushLayer, FlushLayer) {
    let mut a = alone("a");
    let mut b = FlushLayer::new(pn("b"), None);
    app(&mut b, FlCall::Join(grp()));
    let v2 = sp_memb(2, Cause::Join, &["a", "b"], &[&["b"]], 0);
    assert_eq!(a.handle(v2.clone()), vec![FlOut::ToApp(FlEvent::FlushReq(grp()))]);
    assert_eq!(b.handle(v2), vec![sent_fok(2)]);
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(2), OK]);
    for fl in [&mut a, &mut b] {
        assert_eq!(fl.handle(fok("b", 2)), vec![]);
        assert_eq!(
            fl.handle(fok("a", 2)),
            vec![view(2, Cause::Join, &["a", "b"], &["b"]), sent_frecv(2)]
        );
        fl.handle(frecv("a", 2));
        fl.handle(frecv("b", 2));
        assert_eq!(vstate(fl), Some(VState::Steady));
    }
    (a, b)
}

#[test]
fn join_gives_the_first_view_without_a_flush_request() {
    let fl = alone("a");
    let rec = fl.record(&grp()).expect("record");
    assert_eq!(rec.mstate, MState::Joined);
    assert_eq!(rec.view.gid, Some(gid(1)));
}

#[test]
fn second_member_joins_after_a_flush() {
    let (mut a, _b) = pair();
    // data from the new member is now delivered in view 2
    assert_eq!(
        a.handle(as_data("b", user(ClientService::Agreed, 1))),
        vec![delivered("b", ClientService::Agreed, 1)]
    );
}

#[test]
fn flush_is_refused_unless_asked_once() {
    let (mut a, _b) = pair();
    assert_eq!(
        app(&mut a, FlCall::Flush(grp())),
        vec![FlOut::Reply(Err(FlError::IllegalState))]
    );
    a.handle(sp_memb(3, Cause::Join, &["a", "b", "c"], &[&["c"]], 0));
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(3), OK]);
    assert_eq!(
        app(&mut a, FlCall::Flush(grp())),
        vec![FlOut::Reply(Err(FlError::IllegalState))]
    );
    let other = GroupName::new("h").expect("valid");
    assert_eq!(
        app(&mut a, FlCall::Flush(other)),
        vec![FlOut::Reply(Err(FlError::IllegalGroup))]
    );
    // flushed: no sends until the install
    assert_eq!(
        app(&mut a, FlCall::Send(user(ClientService::Agreed, 1))),
        vec![FlOut::Reply(Err(FlError::IllegalState))]
    );
}

#[test]
fn leave_shrinks_the_view_with_a_transition() {
    let (mut a, mut b) = pair();
    assert_eq!(
        app(&mut b, FlCall::Leave(grp())),
        vec![FlOut::ToDaemon(ClientReq::Leave(grp())), OK]
    );
    // a second leave, a send and a flush are refused while leaving
    assert_eq!(
        app(&mut b, FlCall::Leave(grp())),
        vec![FlOut::Reply(Err(FlError::IllegalGroup))]
    );
    assert_eq!(
        app(&mut b, FlCall::Send(user(ClientService::Fifo, 1))),
        vec![FlOut::Reply(Err(FlError::IllegalGroup))]
    );
    let v3 = sp_memb(3, Cause::Leave, &["a"], &[&["b"]], 0);
    assert_eq!(
        a.handle(v3),
        vec![
            FlOut::ToApp(FlEvent::FlushReq(grp())),
            FlOut::ToApp(FlEvent::Transition {
                group: grp(),
                gid: gid(2)
            }),
        ]
    );
    // data of the leaver after its leave is dropped by the sender filter
    assert_eq!(a.handle(as_data("b", user(ClientService::Agreed, 9))), vec![]);
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(3), OK]);
    assert_eq!(
        a.handle(fok("a", 3)),
        vec![view(3, Cause::Leave, &["a"], &["b"]), sent_frecv(3)]
    );
    assert_eq!(
        b.handle(FlIn::Sp(ClientEvent::SelfLeave(grp()))),
        vec![FlOut::ToApp(FlEvent::SelfLeave(grp()))]
    );
    assert!(b.record(&grp()).is_none());
}

#[test]
fn network_change_transition_then_view_of_the_survivors() {
    let (mut a, _b) = pair();
    let trans = FlIn::Sp(ClientEvent::Transition {
        group: grp(),
        gid: gid(9),
    });
    assert_eq!(
        a.handle(trans.clone()),
        vec![FlOut::ToApp(FlEvent::Transition {
            group: grp(),
            gid: gid(2)
        })]
    );
    assert_eq!(a.handle(trans), vec![], "one TRANSITION per view");
    assert_eq!(
        a.handle(sp_memb(3, Cause::Network, &["a"], &[&["a"]], 0)),
        vec![FlOut::ToApp(FlEvent::FlushReq(grp()))]
    );
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(3), OK]);
    assert_eq!(
        a.handle(fok("a", 3)),
        vec![view(3, Cause::Network, &["a"], &["a"]), sent_frecv(3)]
    );
}

#[test]
fn cascading_flush_asks_again_after_the_install() {
    let (mut a, _b) = pair();
    a.handle(sp_memb(3, Cause::Join, &["a", "b", "c"], &[&["c"]], 0));
    // a further change while the first is being flushed waits
    assert_eq!(
        a.handle(sp_memb(4, Cause::Join, &["a", "b", "c", "e"], &[&["e"]], 0)),
        vec![]
    );
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(3), OK]);
    a.handle(fok("a", 3));
    a.handle(fok("b", 3));
    assert_eq!(
        a.handle(fok("c", 3)),
        vec![
            view(3, Cause::Join, &["a", "b", "c"], &["c"]),
            FlOut::ToApp(FlEvent::FlushReq(grp())),
        ],
        "no FLUSH_RECV: the next change is flushed at once"
    );
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(4), OK]);
}

#[test]
fn a_change_a_member_left_before_flushing_collapses_into_network() {
    // a, b, c in view 4; d joins (gid 5); a flushes, c leaves before flushing (gid 6)
    let (mut a, _b) = pair();
    a.handle(sp_memb(3, Cause::Join, &["a", "b", "c"], &[&["c"]], 0));
    app(&mut a, FlCall::Flush(grp()));
    for s in ["a", "b", "c"] {
        a.handle(fok(s, 3));
    }
    for s in ["a", "b", "c"] {
        a.handle(frecv(s, 3));
    }
    assert_eq!(vstate(&a), Some(VState::Steady));
    a.handle(sp_memb(5, Cause::Join, &["a", "b", "c", "d"], &[&["d"]], 0));
    assert_eq!(app(&mut a, FlCall::Flush(grp())), vec![sent_fok(5), OK]);
    a.handle(fok("b", 5));
    // c leaves without flushing for 5: change 5 is invalidated, a re-flushes for 6 by itself
    assert_eq!(
        a.handle(sp_memb(6, Cause::Leave, &["a", "b", "d"], &[&["c"]], 0)),
        vec![
            sent_fok(6),
            FlOut::ToApp(FlEvent::Transition {
                group: grp(),
                gid: gid(3)
            }),
        ]
    );
    let rec = a.record(&grp()).expect("record");
    assert_eq!(rec.queue, vec![gid(6)]);
    assert_eq!(rec.cur, Some(gid(6)));
    for s in ["a", "b"] {
        assert_eq!(a.handle(fok(s, 6)), vec![]);
    }
    assert_eq!(
        a.handle(fok("d", 6)),
        vec![
            view(6, Cause::Network, &["a", "b", "d"], &["a", "b"]),
            sent_frecv(6)
        ]
    );
}

#[test]
fn a_member_that_flushed_then_left_does_not_invalidate() {
    let (mut a, _b) = pair();
    a.handle(sp_memb(3, Cause::Join, &["a", "b", "c"], &[&["c"]], 0));
    app(&mut a, FlCall::Flush(grp()));
    a.handle(fok("b", 3));
    // b leaves view 2 (installed): its TRANSITION; change 3 waits, b having flushed for it
    assert_eq!(
        a.handle(sp_memb(4, Cause::Leave, &["a", "c"], &[&["b"]], 0)),
        vec![FlOut::ToApp(FlEvent::Transition {
            group: grp(),
            gid: gid(2)
        })]
    );
    a.handle(fok("a", 3));
    // view 3 is installed with b flushed-then-left: a TRANSITION follows it, then view 4 is asked
    assert_eq!(
        a.handle(fok("c", 3)),
        vec![
            view(3, Cause::Join, &["a", "b", "c"], &["c"]),
            FlOut::ToApp(FlEvent::FlushReq(grp())),
            FlOut::ToApp(FlEvent::Transition {
                group: grp(),
                gid: gid(3)
            }),
        ]
    );
}

#[test]
fn vulnerable_messages_are_held_until_the_install() {
    let (mut a, mut b) = pair();
    let v3 = sp_memb(3, Cause::Join, &["a", "b", "c"], &[&["c"]], 0);
    a.handle(v3.clone());
    b.handle(v3);
    app(&mut a, FlCall::Flush(grp()));
    app(&mut b, FlCall::Flush(grp()));
    for s in ["a", "b", "c"] {
        a.handle(fok(s, 3));
    }
    assert_eq!(vstate(&a), Some(VState::Verify));
    // a sends FIFO in Verify: tagged vulnerable with its view's gid
    let out = app(&mut a, FlCall::Send(user(ClientService::Fifo, 5)));
    let Some(FlOut::ToDaemon(ClientReq::Send(m))) = out.first().cloned() else {
        panic!("no send: {out:?}");
    };
    assert_eq!(m.mess_type, VULNERABLE_TYPE);
    let mut body = vec![5];
    append_trailer(&mut body, &(7_i16, gid(3))).expect("encodes");
    assert_eq!(m.body, body);
    // AGREED messages are not tagged
    let out = app(&mut a, FlCall::Send(user(ClientService::Agreed, 6)));
    assert!(matches!(&out[0], FlOut::ToDaemon(ClientReq::Send(m)) if m.mess_type == 7));
    // b, still in Agree for 3, gets it ahead of c's FLUSH_OK: held
    b.handle(fok("a", 3));
    b.handle(fok("b", 3));
    assert_eq!(b.handle(as_data("a", m)), vec![]);
    assert_eq!(b.record(&grp()).map(|r| r.early.len()), Some(1));
    assert_eq!(
        b.handle(fok("c", 3)),
        vec![
            view(3, Cause::Join, &["a", "b", "c"], &["c"]),
            sent_frecv(3),
            delivered("a", ClientService::Fifo, 5),
        ]
    );
}

#[test]
fn sends_are_refused_to_non_members_and_reserved_types() {
    let mut fl = FlushLayer::new(pn("a"), None);
    let refused = |e| vec![FlOut::Reply(Err(e))];
    assert_eq!(
        app(&mut fl, FlCall::Send(user(ClientService::Agreed, 1))),
        refused(FlError::IllegalGroup),
        "closed group: a non-member may not send"
    );
    app(&mut fl, FlCall::Join(grp()));
    assert_eq!(
        app(&mut fl, FlCall::Send(user(ClientService::Agreed, 1))),
        refused(FlError::IllegalGroup),
        "joining: not yet a member"
    );
    assert_eq!(app(&mut fl, FlCall::Join(grp())), refused(FlError::IllegalGroup));
    assert_eq!(app(&mut fl, FlCall::Leave(grp())), refused(FlError::IllegalGroup));
    let mut m = user(ClientService::Agreed, 1);
    m.mess_type = VULNERABLE_TYPE;
    assert_eq!(
        app(&mut fl, FlCall::Send(m)),
        refused(FlError::IllegalMessageType)
    );
    let mut m = user(ClientService::Agreed, 1);
    m.targets.push(Target::Group(GroupName::new("h").expect("valid")));
    assert_eq!(app(&mut fl, FlCall::Send(m)), refused(FlError::IllegalReceivers));
    let mut m = user(ClientService::Agreed, 1);
    m.targets.clear();
    assert_eq!(app(&mut fl, FlCall::Send(m)), refused(FlError::IllegalReceivers));
    let mut m = user(ClientService::Agreed, 1);
    m.targets = vec![Target::Private(pn("b"))];
    assert_eq!(
        app(&mut fl, FlCall::Send(m.clone())),
        vec![FlOut::ToDaemon(ClientReq::Send(m)), OK],
        "unicast passes through"
    );
}

#[test]
fn data_from_outside_the_view_is_dropped() {
    let mut fl = alone("a");
    assert_eq!(fl.handle(as_data("z", user(ClientService::Agreed, 1))), vec![]);
    assert_eq!(
        fl.handle(as_data("a", user(ClientService::Agreed, 1))),
        vec![delivered("a", ClientService::Agreed, 1)]
    );
}

#[test]
fn malformed_control_messages_and_unknown_groups_are_dropped() {
    let mut fl = alone("a");
    let mut bad = control_msg(FLUSH_OK_TYPE, 2, ClientService::Fifo);
    bad.body = vec![200, 1];
    assert_eq!(fl.handle(as_data("a", bad)), vec![]);
    let mut bad = user(ClientService::Fifo, 1);
    bad.mess_type = VULNERABLE_TYPE;
    assert_eq!(fl.handle(as_data("a", bad)), vec![]);
    let mut other = memb(2, Cause::Join, &["a"], &[&["a"]], 0);
    other.group = GroupName::new("h").expect("valid");
    assert_eq!(fl.handle(FlIn::Sp(ClientEvent::Membership(other))), vec![]);
    assert_eq!(split_trailer::<Gid>(&[]), None);
}

#[test]
fn stale_flush_oks_age_out() {
    let mut fl = alone("a");
    fl.handle(fok("z", 77));
    assert!(
        fl.record(&grp())
            .is_some_and(|r| r.pending.contains_key(&gid(77)))
    );
    // each SP view ages it: after MAX_AGE views it is gone
    for i in 0..=MAX_AGE {
        let id = 100 + i;
        fl.handle(sp_memb(id, Cause::Network, &["a"], &[&["a"]], 0));
        if i < MAX_AGE {
            assert!(
                fl.record(&grp())
                    .is_some_and(|r| r.pending.contains_key(&gid(77)))
            );
        }
    }
    assert!(
        fl.record(&grp())
            .is_some_and(|r| !r.pending.contains_key(&gid(77)))
    );
}

#[test]
fn service_words_parse() {
    assert_eq!(parse_service(0x10), Ok((ClientService::Agreed, false)));
    assert_eq!(parse_service(0x44), Ok((ClientService::Fifo, true)));
    assert_eq!(parse_service(0x18), Err(FlError::IllegalService));
    assert_eq!(parse_service(0x100), Err(FlError::IllegalService));
    assert_eq!(parse_service(0), Err(FlError::IllegalService));
}

#[test]
fn mutant_names_round_trip() {
    for m in VsMutant::ALL {
        assert_eq!(VsMutant::from_name(m.name()), Some(m));
    }
}
