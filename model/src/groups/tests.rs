//! Unit tests of the group layer: exact output vectors for the steady-state changes, data
//! delivery, session limits, and the configuration changes (partition, merge, join during a
//! transition, gid uniqueness).

use super::*;
use crate::ring::{ConfigId, NodeId, Pid, RingId, Service};

fn ring(seq: u64) -> RingId {
    RingId {
        seq,
        rep: Pid::new(0, 1),
    }
}

fn reg(seq: u64) -> ConfigId {
    ConfigId::Regular(ring(seq))
}

fn trans(new: u64, old: u64) -> ConfigId {
    ConfigId::Transitional(ring(new), ring(old))
}

fn gid(conf: ConfigId, index: u32) -> Gid {
    Gid { conf, index }
}

fn dname(node: NodeId) -> String {
    format!("d{node}")
}

fn pn(node: NodeId, user: &str) -> PrivateName {
    PrivateName::new(node, user, dname(node)).expect("valid")
}

fn g(s: &str) -> GroupName {
    GroupName::new(s).expect("valid")
}

fn cfg(node: NodeId) -> GroupConfig {
    GroupConfig::new(node, dname(node))
}

/// A layer of daemon `node` alone in regular configuration 1.
fn alone(node: NodeId) -> GroupLayer {
    let mut l = GroupLayer::new(cfg(node));
    let out = l.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(1),
        members: vec![node],
    }));
    assert!(out.is_empty());
    assert_eq!(l.phase(), Phase::Op);
    l
}

fn connect(l: &mut GroupLayer, sess: SessionId, user: &str) {
    let out = l.handle(GroupIn::Connect {
        sess,
        user: Some(user.to_owned()),
        wants_membership: true,
    });
    assert!(matches!(out.as_slice(), [GroupOut::Accepted { .. }]), "{out:?}");
}

fn msg(origin: NodeId, config: ConfigId, msg: RingMsg) -> GroupIn {
    GroupIn::Ring(RingDelivery::Message { origin, config, msg })
}

fn req(sess: SessionId, req: ClientReq) -> GroupIn {
    GroupIn::Client { sess, req }
}

/// The ring messages of an output vector.
fn sent(out: &[GroupOut]) -> Vec<RingMsg> {
    out.iter()
        .filter_map(|o| match o {
            GroupOut::RingSend { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// Submits a request and delivers the resulting ring message back at once (a one-daemon ring).
fn round_trip(
    l: &mut GroupLayer,
    node: NodeId,
    conf: ConfigId,
    sess: SessionId,
    r: ClientReq,
) -> Vec<GroupOut> {
    let out = l.handle(req(sess, r));
    let msgs = sent(&out);
    assert_eq!(msgs.len(), 1, "{out:?}");
    l.handle(msg(node, conf, msgs[0].clone()))
}

fn memb(
    group: &str,
    gid: Gid,
    cause: Cause,
    members: Vec<PrivateName>,
    vs_sets: Vec<Vec<PrivateName>>,
    my_vs: usize,
) -> ClientEvent {
    ClientEvent::Membership(Membership {
        group: g(group),
        gid,
        cause,
        members,
        vs_sets,
        my_vs,
    })
}

fn to(sess: SessionId, ev: ClientEvent) -> GroupOut {
    GroupOut::ToSession { sess, ev }
}

fn data(sender: PrivateName, targets: Vec<Target>, body: u8) -> DataMsg {
    DataMsg {
        sender,
        targets,
        service: ClientService::Agreed,
        mess_type: 0,
        body: vec![body],
    }
}

fn send(targets: Vec<Target>, self_discard: bool, body: u8) -> ClientReq {
    ClientReq::Send(Multicast {
        targets,
        service: ClientService::Agreed,
        self_discard,
        mess_type: 0,
        body: vec![body],
    })
}

#[test]
fn config_validates() {
    assert!(cfg(0).validate().is_ok());
    let mut c = cfg(0);
    c.max_session_queue = 0;
    assert!(matches!(c.validate(), Err(GroupConfigError::ZeroBound(_))));
    assert!(GroupConfig::new(0, "bad name").validate().is_err());
    for m in GroupMutant::ALL {
        assert_eq!(GroupMutant::from_name(m.name()), Some(m));
    }
}

#[test]
fn connect_assigns_and_refuses_names() {
    let mut l = alone(0);
    connect(&mut l, 1, "alice");
    assert_eq!(
        l.handle(GroupIn::Connect {
            sess: 2,
            user: Some("alice".into()),
            wants_membership: true
        }),
        vec![GroupOut::Refused {
            sess: 2,
            why: ConnectRefusal::NotUnique
        }]
    );
    assert_eq!(
        l.handle(GroupIn::Connect {
            sess: 3,
            user: Some("has space".into()),
            wants_membership: true
        }),
        vec![GroupOut::Refused {
            sess: 3,
            why: ConnectRefusal::IllegalName
        }]
    );
    assert_eq!(
        l.handle(GroupIn::Connect {
            sess: 4,
            user: None,
            wants_membership: false
        }),
        vec![GroupOut::Accepted {
            sess: 4,
            name: pn(0, "u1")
        }]
    );
    // unknown sessions are ignored and counted
    assert!(l.handle(req(99, ClientReq::Join(g("G")))).is_empty());
    assert_eq!(l.stats().unknown_session, 1);
}

#[test]
fn join_leave_and_self_leave() {
    let mut l = alone(0);
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    let out = l.handle(req(1, ClientReq::Join(g("G"))));
    let join_a = RingMsg::Join {
        group: g("G"),
        member: pn(0, "a"),
    };
    assert_eq!(
        out,
        vec![GroupOut::RingSend {
            msg: join_a.clone(),
            service: Service::Agreed
        }]
    );
    let out = l.handle(msg(0, reg(1), join_a));
    assert_eq!(
        out,
        vec![to(
            1,
            memb(
                "G",
                gid(reg(1), 1),
                Cause::Join,
                vec![pn(0, "a")],
                vec![vec![pn(0, "a")]],
                0
            )
        )]
    );
    let out = round_trip(&mut l, 0, reg(1), 2, ClientReq::Join(g("G")));
    let both = vec![pn(0, "a"), pn(0, "b")];
    assert_eq!(
        out,
        vec![
            to(
                1,
                memb(
                    "G",
                    gid(reg(1), 2),
                    Cause::Join,
                    both.clone(),
                    vec![vec![pn(0, "b")]],
                    0
                )
            ),
            to(
                2,
                memb("G", gid(reg(1), 2), Cause::Join, both, vec![vec![pn(0, "b")]], 0)
            ),
        ]
    );
    // a duplicate join is ignored
    assert!(round_trip(&mut l, 0, reg(1), 2, ClientReq::Join(g("G"))).is_empty());
    let out = round_trip(&mut l, 0, reg(1), 1, ClientReq::Leave(g("G")));
    assert_eq!(
        out,
        vec![
            to(1, ClientEvent::SelfLeave(g("G"))),
            to(
                2,
                memb(
                    "G",
                    gid(reg(1), 3),
                    Cause::Leave,
                    vec![pn(0, "b")],
                    vec![vec![pn(0, "a")]],
                    0
                )
            ),
        ]
    );
    // a non-member's leave is ignored
    assert!(round_trip(&mut l, 0, reg(1), 1, ClientReq::Leave(g("G"))).is_empty());
}

#[test]
fn disconnect_is_a_kill_in_every_group() {
    let mut l = alone(0);
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    for (s, grp) in [(1, "G"), (1, "H"), (2, "G"), (2, "H")] {
        round_trip(&mut l, 0, reg(1), s, ClientReq::Join(g(grp)));
    }
    let out = l.handle(req(1, ClientReq::Disconnect));
    let kill = RingMsg::Kill { member: pn(0, "a") };
    assert_eq!(
        out,
        vec![GroupOut::RingSend {
            msg: kill.clone(),
            service: Service::Agreed
        }]
    );
    // requests of a closed session are ignored
    assert!(l.handle(req(1, ClientReq::Join(g("K")))).is_empty());
    let out = l.handle(msg(0, reg(1), kill));
    let b = vec![pn(0, "b")];
    assert_eq!(
        out,
        vec![
            to(
                2,
                memb(
                    "G",
                    gid(reg(1), 5),
                    Cause::Disconnect,
                    b.clone(),
                    vec![vec![pn(0, "a")]],
                    0
                )
            ),
            to(
                2,
                memb(
                    "H",
                    gid(reg(1), 6),
                    Cause::Disconnect,
                    b,
                    vec![vec![pn(0, "a")]],
                    0
                )
            ),
        ]
    );
    // the name is free again
    connect(&mut l, 3, "a");
    // a broken connection is killed SAFE
    let out = l.handle(GroupIn::SessionClosed { sess: 2 });
    assert_eq!(
        out,
        vec![GroupOut::RingSend {
            msg: RingMsg::Kill { member: pn(0, "b") },
            service: Service::Safe
        }]
    );
}

#[test]
fn multi_group_send_is_delivered_once_with_every_target() {
    let mut l = alone(0);
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Join(g("G")));
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Join(g("H")));
    round_trip(&mut l, 0, reg(1), 2, ClientReq::Join(g("H")));
    let targets = vec![Target::Group(g("G")), Target::Group(g("H"))];
    let out = round_trip(&mut l, 0, reg(1), 2, send(targets.clone(), false, 7));
    let d = ClientEvent::Data(data(pn(0, "b"), targets, 7));
    assert_eq!(out, vec![to(1, d.clone()), to(2, d)]);
}

#[test]
fn self_discard_skips_the_sender_only() {
    let mut l = alone(0);
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Join(g("G")));
    round_trip(&mut l, 0, reg(1), 2, ClientReq::Join(g("G")));
    let targets = vec![Target::Group(g("G"))];
    let out = round_trip(&mut l, 0, reg(1), 1, send(targets.clone(), true, 1));
    assert_eq!(
        out,
        vec![to(2, ClientEvent::Data(data(pn(0, "a"), targets.clone(), 1)))]
    );
    let out = round_trip(&mut l, 0, reg(1), 1, send(targets.clone(), false, 2));
    let d = ClientEvent::Data(data(pn(0, "a"), targets, 2));
    assert_eq!(out, vec![to(1, d.clone()), to(2, d)]);
}

#[test]
fn private_send_reaches_one_session_of_the_named_daemon() {
    let mut l = alone(0);
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Join(g("G")));
    let targets = vec![Target::Private(pn(0, "b")), Target::Group(g("G"))];
    let out = round_trip(&mut l, 0, reg(1), 1, send(targets.clone(), false, 3));
    let d = ClientEvent::Data(data(pn(0, "a"), targets, 3));
    assert_eq!(out, vec![to(1, d.clone()), to(2, d)]);
    // a private target at another daemon is not delivered here
    let targets = vec![Target::Private(pn(1, "b"))];
    assert!(round_trip(&mut l, 0, reg(1), 1, send(targets, false, 4)).is_empty());
    // an empty target list breaks the protocol: the session is killed
    let out = l.handle(req(2, send(vec![], false, 5)));
    assert_eq!(
        out,
        vec![
            GroupOut::Kill {
                sess: 2,
                why: KillReason::ProtocolViolation
            },
            GroupOut::RingSend {
                msg: RingMsg::Kill { member: pn(0, "b") },
                service: Service::Safe
            },
        ]
    );
}

#[test]
fn slow_client_is_killed_at_the_queue_bound() {
    let mut c = cfg(0);
    c.max_session_queue = 2;
    let mut l = GroupLayer::new(c);
    l.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(1),
        members: vec![0],
    }));
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Join(g("G"))); // a: 1 queued
    round_trip(&mut l, 0, reg(1), 2, ClientReq::Join(g("G"))); // a: 2, b: 1
    l.handle(GroupIn::Drained { sess: 2, n: 1 }); // b: 0
    let targets = vec![Target::Group(g("G"))];
    let out = round_trip(&mut l, 0, reg(1), 2, send(targets.clone(), false, 1));
    assert_eq!(
        out,
        vec![
            GroupOut::Kill {
                sess: 1,
                why: KillReason::SlowClient
            },
            GroupOut::RingSend {
                msg: RingMsg::Kill { member: pn(0, "a") },
                service: Service::Safe
            },
            to(2, ClientEvent::Data(data(pn(0, "b"), targets, 1))),
        ]
    );
    assert_eq!(l.stats().slow_kills, 1);
    let out = l.handle(msg(0, reg(1), RingMsg::Kill { member: pn(0, "a") }));
    assert_eq!(
        out,
        vec![to(
            2,
            memb(
                "G",
                gid(reg(1), 3),
                Cause::Disconnect,
                vec![pn(0, "b")],
                vec![vec![pn(0, "a")]],
                0
            )
        )]
    );
}

#[test]
fn back_pressure_blocks_and_unblocks_client_input() {
    let mut c = cfg(0);
    c.max_ring_backlog = 2;
    let mut l = GroupLayer::new(c);
    l.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(1),
        members: vec![0],
    }));
    connect(&mut l, 1, "a");
    let out1 = l.handle(req(1, ClientReq::Join(g("G"))));
    assert_eq!(out1.len(), 1);
    let out2 = l.handle(req(1, ClientReq::Join(g("H"))));
    assert_eq!(
        out2,
        vec![
            GroupOut::BlockClients(true),
            GroupOut::RingSend {
                msg: RingMsg::Join {
                    group: g("H"),
                    member: pn(0, "a")
                },
                service: Service::Agreed
            }
        ]
    );
    assert_eq!(l.backlog(), 2);
    let out = l.handle(msg(0, reg(1), sent(&out1)[0].clone()));
    assert_eq!(
        out,
        vec![
            GroupOut::BlockClients(false),
            to(
                1,
                memb(
                    "G",
                    gid(reg(1), 1),
                    Cause::Join,
                    vec![pn(0, "a")],
                    vec![vec![pn(0, "a")]],
                    0
                )
            )
        ]
    );
}

/// Two daemons 0 and 1 formed in regular configuration 1 (the boot exchange done), with
/// sessions 1 = `#a#d0` and 2 = `#b#d1` both in group `G`.
fn pair() -> (GroupLayer, GroupLayer) {
    let mut ls = [GroupLayer::new(cfg(0)), GroupLayer::new(cfg(1))];
    let mut anns = Vec::new();
    for l in &mut ls {
        let out = l.handle(GroupIn::Ring(RingDelivery::Regular {
            id: reg(1),
            members: vec![0, 1],
        }));
        assert_eq!(l.phase(), Phase::Gather);
        anns.push(sent(&out).remove(0));
    }
    for (origin, m) in anns.iter().enumerate() {
        for l in &mut ls {
            assert!(l.handle(msg(origin as NodeId, reg(1), m.clone())).is_empty());
        }
    }
    connect(&mut ls[0], 1, "a");
    connect(&mut ls[1], 2, "b");
    for (origin, sess) in [(0, 1), (1, 2)] {
        let out = ls[origin].handle(req(sess, ClientReq::Join(g("G"))));
        let m = sent(&out).remove(0);
        for l in &mut ls {
            l.handle(msg(origin as NodeId, reg(1), m.clone()));
        }
    }
    let [a, b] = ls;
    (a, b)
}

#[test]
fn partition_signals_delivers_transitional_messages_then_network_view() {
    let (mut a, mut b) = pair();
    let ab = vec![pn(0, "a"), pn(1, "b")];
    assert_eq!(a.table(), vec![(g("G"), gid(reg(1), 2), ab)]);
    // a sends; the ring orders it but the partition comes before a delivers it
    let targets = vec![Target::Group(g("G"))];
    let m = sent(&a.handle(req(1, send(targets.clone(), false, 9)))).remove(0);
    let out = a.handle(GroupIn::Ring(RingDelivery::Transitional {
        id: trans(2, 1),
        members: vec![0],
    }));
    let t = gid(trans(2, 1), 1);
    assert_eq!(
        out,
        vec![to(
            1,
            ClientEvent::Transition {
                group: g("G"),
                gid: t
            }
        )]
    );
    let out = a.handle(msg(0, trans(2, 1), m));
    assert_eq!(out, vec![to(1, ClientEvent::Data(data(pn(0, "a"), targets, 9)))]);
    let out = a.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(2),
        members: vec![0],
    }));
    assert_eq!(
        out,
        vec![to(
            1,
            memb(
                "G",
                gid(reg(2), 1),
                Cause::Network,
                vec![pn(0, "a")],
                vec![vec![pn(0, "a")]],
                0
            )
        )]
    );
    assert_eq!(a.phase(), Phase::Op);
    // the other side, with nothing in transit
    b.handle(GroupIn::Ring(RingDelivery::Transitional {
        id: trans(3, 1),
        members: vec![1],
    }));
    let out = b.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(3),
        members: vec![1],
    }));
    assert_eq!(
        out,
        vec![to(
            2,
            memb(
                "G",
                gid(reg(3), 1),
                Cause::Network,
                vec![pn(1, "b")],
                vec![vec![pn(1, "b")]],
                0
            )
        )]
    );
}

fn split(a: &mut GroupLayer, b: &mut GroupLayer) {
    for (l, n, new) in [(&mut *a, 0, 2), (&mut *b, 1, 3)] {
        l.handle(GroupIn::Ring(RingDelivery::Transitional {
            id: trans(new, 1),
            members: vec![n],
        }));
        l.handle(GroupIn::Ring(RingDelivery::Regular {
            id: reg(new),
            members: vec![n],
        }));
    }
}

#[test]
fn merge_exchanges_tables_and_gives_two_vs_sets_without_transition() {
    let (mut a, mut b) = pair();
    split(&mut a, &mut b);
    // merge into ring 4: each side's transitional configuration is itself
    let mut anns = Vec::new();
    for (l, n, old) in [(&mut a, 0, 2), (&mut b, 1, 3)] {
        let out = l.handle(GroupIn::Ring(RingDelivery::Transitional {
            id: trans(4, old),
            members: vec![n],
        }));
        assert!(out.is_empty(), "no signal on a merge: {out:?}");
        let out = l.handle(GroupIn::Ring(RingDelivery::Regular {
            id: reg(4),
            members: vec![0, 1],
        }));
        assert_eq!(l.phase(), Phase::Gather);
        let m = sent(&out);
        assert_eq!(
            m,
            vec![RingMsg::Groups {
                conf: ring(4),
                groups: vec![GroupAnnounce {
                    group: g("G"),
                    gid: gid(reg(old), 1),
                    members: vec![pn(n, if n == 0 { "a" } else { "b" })],
                }]
            }]
        );
        anns.push(m[0].clone());
    }
    // a client request while gathering is held
    let held = a.handle(req(1, ClientReq::Join(g("H"))));
    assert!(held.is_empty());
    assert!(a.handle(msg(0, reg(4), anns[0].clone())).is_empty());
    let out_a = a.handle(msg(1, reg(4), anns[1].clone()));
    let ab = vec![pn(0, "a"), pn(1, "b")];
    let sets = vec![vec![pn(0, "a")], vec![pn(1, "b")]];
    let view = |my_vs| {
        memb(
            "G",
            gid(reg(4), 1),
            Cause::Network,
            ab.clone(),
            sets.clone(),
            my_vs,
        )
    };
    assert_eq!(
        out_a,
        vec![
            to(1, view(0)),
            GroupOut::RingSend {
                msg: RingMsg::Join {
                    group: g("H"),
                    member: pn(0, "a")
                },
                service: Service::Agreed
            }
        ]
    );
    b.handle(msg(0, reg(4), anns[0].clone()));
    let out_b = b.handle(msg(1, reg(4), anns[1].clone()));
    assert_eq!(out_b, vec![to(2, view(1))]);
    assert_eq!(a.table(), b.table());
    assert_eq!(a.stats().quiet_violations, 0);
}

#[test]
fn join_during_a_transition_is_a_network_view_then_transition_again() {
    let mut ls = [
        GroupLayer::new(cfg(0)),
        GroupLayer::new(cfg(1)),
        GroupLayer::new(cfg(2)),
    ];
    // boot: all three form ring 1
    let mut anns = Vec::new();
    for l in &mut ls {
        let out = l.handle(GroupIn::Ring(RingDelivery::Regular {
            id: reg(1),
            members: vec![0, 1, 2],
        }));
        anns.push(sent(&out).remove(0));
    }
    for (o, m) in anns.iter().enumerate() {
        for l in &mut ls {
            l.handle(msg(o as NodeId, reg(1), m.clone()));
        }
    }
    let [mut a, mut b, mut c] = ls;
    connect(&mut a, 1, "a");
    connect(&mut b, 2, "b");
    connect(&mut c, 3, "c");
    let ja = sent(&a.handle(req(1, ClientReq::Join(g("G"))))).remove(0);
    let jc = sent(&c.handle(req(3, ClientReq::Join(g("G"))))).remove(0);
    for l in [&mut a, &mut b, &mut c] {
        l.handle(msg(0, reg(1), ja.clone()));
        l.handle(msg(2, reg(1), jc.clone()));
    }
    // b's join is ordered in ring 1, but 2 is lost before it is delivered
    let jb = sent(&b.handle(req(2, ClientReq::Join(g("G"))))).remove(0);
    let t = trans(5, 1);
    for l in [&mut a, &mut b] {
        l.handle(GroupIn::Ring(RingDelivery::Transitional {
            id: t,
            members: vec![0, 1],
        }));
    }
    let out = a.handle(msg(1, t, jb.clone()));
    let abc = vec![pn(0, "a"), pn(1, "b"), pn(2, "c")];
    // survivors, the partitioned daemon's members, the joiner last
    let sets = vec![vec![pn(0, "a")], vec![pn(2, "c")], vec![pn(1, "b")]];
    let g2 = gid(t, 2);
    assert_eq!(
        out,
        vec![
            to(1, memb("G", g2, Cause::Network, abc, sets, 0)),
            to(
                1,
                ClientEvent::Transition {
                    group: g("G"),
                    gid: g2
                }
            ),
        ]
    );
    let out_b = b.handle(msg(1, t, jb));
    assert!(matches!(
        out_b.as_slice(),
        [
            GroupOut::ToSession { sess: 2, .. },
            GroupOut::ToSession { sess: 2, .. }
        ]
    ));
    let out = a.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(5),
        members: vec![0, 1],
    }));
    let ab = vec![pn(0, "a"), pn(1, "b")];
    assert_eq!(
        out,
        vec![to(
            1,
            memb("G", gid(reg(5), 1), Cause::Network, ab.clone(), vec![ab], 0)
        )]
    );
}

#[test]
fn gid_is_never_reused_when_a_group_is_recreated() {
    let mut l = alone(0);
    connect(&mut l, 1, "a");
    connect(&mut l, 2, "b");
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Join(g("G")));
    round_trip(&mut l, 0, reg(1), 1, ClientReq::Leave(g("G")));
    assert!(l.table().is_empty());
    let out = round_trip(&mut l, 0, reg(1), 2, ClientReq::Join(g("G")));
    assert_eq!(
        out,
        vec![to(
            2,
            memb(
                "G",
                gid(reg(1), 2),
                Cause::Join,
                vec![pn(0, "b")],
                vec![vec![pn(0, "b")]],
                0
            )
        )]
    );
    // Spread's per-group index (the mutant) would reuse (reg 1, 1)
    let mut c = cfg(0);
    c.mutant = Some(GroupMutant::GidPerGroup);
    let mut m = GroupLayer::new(c);
    m.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(1),
        members: vec![0],
    }));
    connect(&mut m, 1, "a");
    connect(&mut m, 2, "b");
    round_trip(&mut m, 0, reg(1), 1, ClientReq::Join(g("G")));
    round_trip(&mut m, 0, reg(1), 1, ClientReq::Leave(g("G")));
    let out = round_trip(&mut m, 0, reg(1), 2, ClientReq::Join(g("G")));
    assert!(
        matches!(&out[0], GroupOut::ToSession { ev: ClientEvent::Membership(v), .. } if v.gid == gid(reg(1), 1))
    );
}

#[test]
fn requests_before_the_first_regular_configuration_are_held() {
    let mut l = GroupLayer::new(cfg(0));
    connect(&mut l, 1, "a");
    assert!(l.handle(req(1, ClientReq::Join(g("G")))).is_empty());
    let out = l.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(1),
        members: vec![0],
    }));
    assert_eq!(
        out,
        vec![GroupOut::RingSend {
            msg: RingMsg::Join {
                group: g("G"),
                member: pn(0, "a")
            },
            service: Service::Agreed
        }]
    );
}

#[test]
fn a_client_message_in_gather_is_counted_not_a_panic() {
    let mut l = GroupLayer::new(cfg(0));
    l.handle(GroupIn::Ring(RingDelivery::Regular {
        id: reg(1),
        members: vec![0, 1],
    }));
    assert_eq!(l.phase(), Phase::Gather);
    let join = |user: &str| RingMsg::Join {
        group: g("G"),
        member: pn(1, user),
    };
    // sent by daemon 1 before the change, ordered before its Groups: deferred, not a bug
    assert!(l.handle(msg(1, reg(1), join("x"))).is_empty());
    assert_eq!((l.stats().deferred, l.stats().quiet_violations), (1, 0));
    let groups = RingMsg::Groups {
        conf: ring(1),
        groups: vec![],
    };
    assert!(l.handle(msg(1, reg(1), groups)).is_empty());
    // sent by daemon 1 after its Groups, while gathering: a GRP-QUIET violation
    assert!(l.handle(msg(1, reg(1), join("y"))).is_empty());
    assert_eq!(l.stats().quiet_violations, 1);
    // daemon 0's own Groups completes the exchange; the two joins are then applied in order
    let own = RingMsg::Groups {
        conf: ring(1),
        groups: vec![],
    };
    assert!(l.handle(msg(0, reg(1), own)).is_empty());
    assert_eq!(l.phase(), Phase::Op);
    assert_eq!(
        l.table(),
        vec![(g("G"), gid(reg(1), 2), vec![pn(1, "x"), pn(1, "y")])]
    );
}
