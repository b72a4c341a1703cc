//! Engine tests (exact command vectors) and simulation tests of the ring machine.

use super::props::*;
use super::sim::Sim;
use super::*;

fn cfg3() -> RingConfig {
    RingConfig::new(vec![0, 1, 2])
}

fn all_props(sim: &Sim) {
    let hs = sim.histories();
    assert!(evs_nodup(&hs), "EVS-NODUP");
    assert!(evs_confagree(&hs), "EVS-CONFAGREE {hs:#?}");
    assert!(evs_trans(&hs), "EVS-TRANS");
    assert!(evs_sameview(&hs), "EVS-SAMEVIEW");
    assert!(evs_vsync(&hs), "EVS-VSYNC {hs:#?}");
    assert!(evs_agreed(&hs), "EVS-AGREED");
    assert!(evs_causal(&hs), "EVS-CAUSAL");
    assert!(evs_safe(&hs), "EVS-SAFE");
}

fn delivered(sim: &Sim, node: NodeId) -> Vec<MsgId> {
    let pid = sim.daemons[&node].me;
    sim.histories[&pid]
        .log
        .iter()
        .filter_map(|e| match e {
            LogEntry::Delivered { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn boot_forms_one_ring() {
    let mut sim = Sim::boot(3, cfg3());
    sim.settle(50, 200);
    assert!(sim.is_ring(&[0, 1, 2]), "{:#?}", sim.daemons);
    all_props(&sim);
}

#[test]
fn lone_daemon_forms_singleton_after_consensus_timeout() {
    let mut sim = Sim::boot(1, RingConfig::new(vec![0]));
    sim.run(10);
    assert!(sim.fire(0, TimerKind::Consensus));
    sim.run(20);
    assert!(sim.is_ring(&[0]), "{:#?} {:?}", sim.daemons, sim.net);
}

#[test]
fn agreed_and_safe_delivery_in_one_order() {
    let mut sim = Sim::formed(3, cfg3());
    let a = sim.submit(0, 1, Service::Safe, vec![1]);
    let b = sim.submit(1, 1, Service::Agreed, vec![2]);
    let c = sim.submit(2, 1, Service::Agreed, vec![3]);
    sim.run(40);
    let d0 = delivered(&sim, 0);
    assert_eq!(d0.len(), 3);
    for n in 1..3 {
        assert_eq!(delivered(&sim, n), d0);
    }
    assert!([a, b, c].iter().all(|m| d0.contains(m)));
    all_props(&sim);
}

#[test]
fn lost_data_packet_is_retransmitted() {
    let mut sim = Sim::formed(3, cfg3());
    sim.submit(1, 1, Service::Agreed, vec![7]);
    // node 1 broadcasts when it gets the first token; drop the copy to node 2
    sim.step();
    sim.drop_where(|_, to, p| to == 2 && matches!(p, Packet::Data(_)));
    sim.run(40);
    assert!(sim.daemons[&0].stats.retransmitted + sim.daemons[&1].stats.retransmitted > 0);
    assert_eq!(delivered(&sim, 2).len(), 1);
    all_props(&sim);
}

#[test]
fn partition_then_merge() {
    let mut sim = Sim::formed(3, cfg3());
    sim.submit(0, 1, Service::Safe, vec![1]);
    sim.run(10);
    sim.partition(&[&[0, 1], &[2]]);
    sim.submit(1, 2, Service::Agreed, vec![2]);
    sim.submit(2, 2, Service::Agreed, vec![3]);
    sim.settle(200, 100);
    // the token circulating on {0, 1} keeps the network busy: time passes for node 2 explicitly
    sim.fire(2, TimerKind::TokenLoss);
    sim.run(100);
    sim.fire(2, TimerKind::Consensus);
    sim.run(100);
    assert!(sim.is_ring(&[0, 1]), "{:#?}", sim.daemons);
    assert!(sim.is_ring(&[2]), "{:#?} {:?}", sim.daemons[&2], sim.timers);
    all_props(&sim);
    sim.heal();
    // merge detection: the representatives' probes
    sim.fire(0, TimerKind::MergeDetect);
    sim.fire(2, TimerKind::MergeDetect);
    sim.settle(200, 100);
    assert!(sim.is_ring(&[0, 1, 2]), "{:#?}", sim.daemons);
    all_props(&sim);
    let live: std::collections::BTreeSet<Pid> = sim.daemons.values().map(|d| d.me).collect();
    assert!(evs_self(&sim.histories(), &live));
    assert!(evs_safe_eventually(&sim.histories(), &live));
}

#[test]
fn crash_and_restart_rejoins_with_new_incarnation() {
    let mut sim = Sim::formed(3, cfg3());
    sim.submit(2, 1, Service::Agreed, vec![1]);
    sim.run(12);
    sim.crash(2);
    sim.settle(200, 100);
    assert!(sim.is_ring(&[0, 1]));
    sim.restart(2);
    assert_eq!(sim.daemons[&2].me, Pid::new(2, 2));
    sim.settle(300, 100);
    assert!(sim.is_ring(&[0, 1, 2]), "{:#?}", sim.daemons);
    all_props(&sim);
}

#[test]
fn token_handling_exact_commands() {
    let cfg = cfg3();
    let members: Vec<Pid> = (0..3).map(|i| Pid::new(i, 1)).collect();
    let ring = RingId {
        seq: 1,
        rep: members[0],
    };
    let mut d = Daemon::formed(members[1], ring, members.clone());
    let id = MsgId {
        origin: members[1],
        n: 1,
    };
    d.submit(id, Service::Agreed, vec![9]).unwrap();
    let t = Daemon::first_token(ring, &members);
    let cmds = d.handle(
        &cfg,
        Event::Recv {
            from: members[0],
            pkt: Packet::Token(t.clone()),
        },
    );
    let pkt = DataPkt {
        ring,
        seq: 1,
        sender: members[1],
        round: 1,
        service: Service::Agreed,
        body: Body::Chunks(vec![Chunk {
            id,
            frag: 0,
            last: true,
            bytes: vec![9],
        }]),
    };
    let fwd = Token {
        token_seq: 2,
        seq: 1,
        aru: 1,
        aru_id: None,
        fcc: 1,
        ..t.clone()
    };
    assert_eq!(
        cmds,
        vec![
            Command::CancelTimer(TimerKind::TokenRetransmit),
            Command::SetTimer {
                kind: TimerKind::TokenLoss,
                after: cfg.token_loss
            },
            Command::Broadcast(Packet::Data(pkt)),
            Command::SendToken {
                to: members[2],
                pkt: Packet::Token(fwd)
            },
            Command::SetTimer {
                kind: TimerKind::TokenRetransmit,
                after: cfg.token_retransmit
            },
            Command::Deliver {
                id,
                sender: members[1],
                service: Service::Agreed,
                config: ConfigId::Regular(ring),
                payload: vec![9]
            },
        ]
    );
    // the same copy again is a duplicate
    let again = d.handle(
        &cfg,
        Event::Recv {
            from: members[0],
            pkt: Packet::Token(t),
        },
    );
    assert!(again.is_empty());
    assert_eq!(d.stats.duplicate_tokens, 1);
}

#[test]
fn gap_blocks_delivery_and_is_requested() {
    let cfg = cfg3();
    let members: Vec<Pid> = (0..3).map(|i| Pid::new(i, 1)).collect();
    let ring = RingId {
        seq: 1,
        rep: members[0],
    };
    let mut d = Daemon::formed(members[2], ring, members.clone());
    let mk = |seq, n| DataPkt {
        ring,
        seq,
        sender: members[0],
        round: 1,
        service: Service::Agreed,
        body: Body::Chunks(vec![Chunk {
            id: MsgId {
                origin: members[0],
                n,
            },
            frag: 0,
            last: true,
            bytes: vec![],
        }]),
    };
    // seq 2 before seq 1: nothing delivered
    let cmds = d.handle(
        &cfg,
        Event::Recv {
            from: members[0],
            pkt: Packet::Data(mk(2, 2)),
        },
    );
    assert!(cmds.is_empty());
    let t = Token {
        seq: 2,
        aru: 2,
        token_seq: 3,
        ..Daemon::first_token(ring, &members)
    };
    let cmds = d.handle(
        &cfg,
        Event::Recv {
            from: members[1],
            pkt: Packet::Token(t.clone()),
        },
    );
    let fwd = Token {
        token_seq: 4,
        aru: 0,
        aru_id: Some(members[2]),
        rtr: [1].into(),
        ..t
    };
    assert_eq!(
        cmds,
        vec![
            Command::CancelTimer(TimerKind::TokenRetransmit),
            Command::SetTimer {
                kind: TimerKind::TokenLoss,
                after: cfg.token_loss
            },
            Command::SendToken {
                to: members[0],
                pkt: Packet::Token(fwd)
            },
            Command::SetTimer {
                kind: TimerKind::TokenRetransmit,
                after: cfg.token_retransmit
            },
        ]
    );
    // the gap is filled: both delivered in seq order
    let cmds = d.handle(
        &cfg,
        Event::Recv {
            from: members[0],
            pkt: Packet::Data(mk(1, 1)),
        },
    );
    let ids: Vec<u32> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Deliver { id, .. } => Some(id.n),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![1, 2]);
}

#[test]
fn safe_waits_two_visits() {
    let cfg = cfg3();
    let members: Vec<Pid> = (0..3).map(|i| Pid::new(i, 1)).collect();
    let ring = RingId {
        seq: 1,
        rep: members[0],
    };
    let mut d = Daemon::formed(members[1], ring, members.clone());
    let id = MsgId {
        origin: members[1],
        n: 1,
    };
    d.submit(id, Service::Safe, vec![]).unwrap();
    let t1 = Daemon::first_token(ring, &members);
    let c1 = d.handle(
        &cfg,
        Event::Recv {
            from: members[0],
            pkt: Packet::Token(t1),
        },
    );
    assert!(!c1.iter().any(|c| matches!(c, Command::Deliver { .. })));
    // next visit: aru 1 now, previous forwarded aru was 1 too -> safe
    let t2 = Token {
        token_seq: 4,
        seq: 1,
        aru: 1,
        ..Daemon::first_token(ring, &members)
    };
    let c2 = d.handle(
        &cfg,
        Event::Recv {
            from: members[0],
            pkt: Packet::Token(t2),
        },
    );
    assert!(c2.iter().any(|c| matches!(c, Command::Deliver { .. })));
}

#[test]
fn membership_change_from_token_loss() {
    let cfg = cfg3();
    let me = Pid::new(1, 1);
    let members: Vec<Pid> = (0..3).map(|i| Pid::new(i, 1)).collect();
    let ring = RingId {
        seq: 1,
        rep: members[0],
    };
    let mut d = Daemon::formed(me, ring, members.clone());
    let cmds = d.handle(&cfg, Event::Timer(TimerKind::TokenLoss));
    let join = Join {
        proc_set: members.iter().copied().collect(),
        fail_set: Default::default(),
        ring_seq: 1,
    };
    assert_eq!(
        cmds,
        vec![
            Command::CancelTimer(TimerKind::TokenLoss),
            Command::CancelTimer(TimerKind::TokenRetransmit),
            Command::CancelTimer(TimerKind::MergeDetect),
            Command::Broadcast(Packet::Join(join)),
            Command::SetTimer {
                kind: TimerKind::Join,
                after: cfg.join
            },
            Command::SetTimer {
                kind: TimerKind::Consensus,
                after: cfg.consensus
            },
        ]
    );
    assert_eq!(d.phase, Phase::Gather);
}

#[test]
fn garbage_packets_are_ignored_and_counted() {
    let cfg = cfg3();
    let members: Vec<Pid> = (0..3).map(|i| Pid::new(i, 1)).collect();
    let ring = RingId {
        seq: 1,
        rep: members[0],
    };
    let mut d = Daemon::formed(members[1], ring, members.clone());
    // from an unknown node, from myself, a data packet with seq 0, a commit token of nonsense
    assert!(
        d.handle(
            &cfg,
            Event::Recv {
                from: Pid::new(9, 1),
                pkt: Packet::Probe { ring }
            }
        )
        .is_empty()
    );
    assert!(
        d.handle(
            &cfg,
            Event::Recv {
                from: Pid::new(1, 0),
                pkt: Packet::Probe { ring }
            }
        )
        .is_empty()
    );
    let bad = DataPkt {
        ring,
        seq: 0,
        sender: Pid::new(7, 7),
        round: 0,
        service: Service::Safe,
        body: Body::Chunks(vec![]),
    };
    assert!(
        d.handle(
            &cfg,
            Event::Recv {
                from: members[0],
                pkt: Packet::Data(bad)
            }
        )
        .is_empty()
    );
    let ct = CommitToken {
        ring,
        members: vec![],
        entries: Default::default(),
        rotation: 9,
    };
    assert!(
        d.handle(
            &cfg,
            Event::Recv {
                from: members[0],
                pkt: Packet::Commit(ct)
            }
        )
        .is_empty()
    );
    assert!(d.stats.stale_incarnation >= 2 && d.stats.malformed >= 1);
    assert_eq!(d.phase, Phase::Operational);
}

#[test]
fn fragmented_and_packed_messages_are_delivered_whole_in_one_order() {
    let cfg = RingConfig {
        max_packet_payload: 40,
        chunk_overhead: 8,
        ..cfg3()
    };
    let mut sim = Sim::formed(3, cfg);
    let big: Vec<u8> = (0..100).collect();
    let a = sim.submit(1, 1, Service::Agreed, big.clone());
    let b = sim.submit(1, 2, Service::Agreed, vec![1, 2, 3]);
    let c = sim.submit(2, 1, Service::Agreed, vec![4]);
    let d = sim.submit(2, 2, Service::Agreed, vec![5]);
    sim.run(200);
    let d0 = delivered(&sim, 0);
    assert_eq!(d0.len(), 4);
    for n in 1..3 {
        assert_eq!(delivered(&sim, n), d0);
    }
    assert!([a, b, c, d].iter().all(|m| d0.contains(m)));
    // c and d were packed into one packet; a took four packets
    let packed = sim.daemons[&0].order.high_seq;
    assert!(packed <= 7, "{packed} packets");
    let pid0 = sim.daemons[&0].me;
    let got = sim.histories[&pid0]
        .log
        .iter()
        .any(|e| matches!(e, LogEntry::Delivered { id, .. } if *id == a));
    assert!(got);
    all_props(&sim);
}
