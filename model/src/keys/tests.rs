//! Unit tests of the keys engine with exact outputs: holding and releasing in order, keys at a
//! lone daemon and after a two-daemon TGDH run, refused TGDH messages, the refresh policy and
//! the artificial membership change, session closure; and a real HMAC-SHA-256 provider behind
//! the MAC trait.

use std::collections::VecDeque;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::engine::{EngineOf, InputOf, KeysConfig, KeysError, KeysIn, KeysOut, OutOf, RefreshPolicy};
use super::mac::{GroupKeyMac, SymbolicMac, key_input};
use super::{Grant, KeyView};
use crate::groups::{
    Cause, ClientEvent, Gid, GroupName, GroupOut, Membership, PrivateName, RingDelivery, RingMsg, SessionId,
};
use crate::ring::{ConfigId, NodeId, Pid, RingId, Service};
use crate::tgdh::message::Signed;
use crate::tgdh::symbolic::{Blind, SymSessionKey, SymSignature, Symbolic};

type Engine = EngineOf<Symbolic, SymbolicMac>;
type Out = OutOf<Symbolic, SymbolicMac>;

fn ring(seq: u64) -> RingId {
    RingId {
        seq,
        rep: Pid::new(0, 1),
    }
}

fn regular(seq: u64, members: &[NodeId]) -> InputOf<Symbolic> {
    KeysIn::Ring(RingDelivery::Regular {
        id: ConfigId::Regular(ring(seq)),
        members: members.to_vec(),
    })
}

fn g(name: &str) -> GroupName {
    GroupName::new(name).expect("valid")
}

fn pn(node: NodeId, user: &str) -> PrivateName {
    PrivateName::new(node, user, format!("d{node}")).expect("valid")
}

fn membership(group: &str, seq: u64, index: u32, members: Vec<PrivateName>) -> Membership {
    Membership {
        group: g(group),
        gid: Gid {
            conf: ConfigId::Regular(ring(seq)),
            index,
        },
        cause: Cause::Join,
        vs_sets: vec![members.clone()],
        members,
        my_vs: 0,
    }
}

fn to(sess: SessionId, ev: ClientEvent) -> InputOf<Symbolic> {
    KeysIn::Group(GroupOut::ToSession { sess, ev })
}

fn cfg(me: NodeId) -> KeysConfig {
    KeysConfig::new(
        me,
        RefreshPolicy {
            max_age_ms: Some(100),
            max_bytes: Some(1000),
        },
    )
}

fn step(e: &mut Engine, me: NodeId, input: InputOf<Symbolic>) -> Vec<Out> {
    e.handle(&Symbolic, &SymbolicMac, &cfg(me), input, &[0; 32])
        .commands
}

/// Daemons `0..n` in regular configuration `seq`: each engine's commands, after every TGDH
/// broadcast was delivered to all of them in order (the agreed order of the ring).
fn run_ring(engines: &mut [Engine], seq: u64, first: Vec<(usize, InputOf<Symbolic>)>) -> Vec<Vec<Out>> {
    let mut outs = vec![Vec::new(); engines.len()];
    let mut queue: VecDeque<(NodeId, Signed<Blind, SymSignature>)> = VecDeque::new();
    let absorb = |d: usize, cmds: Vec<Out>, queue: &mut VecDeque<_>, outs: &mut Vec<Vec<Out>>| {
        for c in cmds {
            if let KeysOut::Broadcast(m) = &c {
                queue.push_back((NodeId::try_from(d).expect("small"), m.clone()));
            }
            outs[d].push(c);
        }
    };
    for (d, input) in first {
        let cmds = step(&mut engines[d], NodeId::try_from(d).expect("small"), input);
        absorb(d, cmds, &mut queue, &mut outs);
    }
    for _ in 0..100 {
        let Some((origin, msg)) = queue.pop_front() else {
            break;
        };
        for (d, engine) in engines.iter_mut().enumerate() {
            let input = KeysIn::Tgdh {
                origin,
                config: ConfigId::Regular(ring(seq)),
                msg: msg.clone(),
            };
            let cmds = step(engine, NodeId::try_from(d).expect("small"), input);
            absorb(d, cmds, &mut queue, &mut outs);
        }
    }
    assert!(queue.is_empty(), "the TGDH run ends");
    outs
}

fn expected_grant(e: &Engine, group: &str, view: KeyView) -> Grant<super::SymGroupKey<SymSessionKey>> {
    let servers = e.servers_key().expect("servers' key");
    let key = SymbolicMac.group_key(servers, &key_input(&g(group), Some(&view)));
    let key_id = GroupKeyMac::<SymSessionKey>::key_id(&SymbolicMac, &key);
    Grant { view, key, key_id }
}

#[test]
fn before_any_configuration_session_events_are_held_and_ring_sends_pass() {
    let mut e = Engine::new();
    let m = membership("g", 1, 1, vec![pn(0, "a")]);
    assert!(step(&mut e, 0, to(7, ClientEvent::Membership(m))).is_empty());
    let send = GroupOut::RingSend {
        msg: RingMsg::Kill { member: pn(0, "a") },
        service: Service::Agreed,
    };
    assert_eq!(
        step(&mut e, 0, KeysIn::Group(send.clone())),
        vec![KeysOut::Group(send)]
    );
    assert!(e.holding());
    assert_eq!(e.held.len(), 1);
}

#[test]
fn a_lone_daemon_agrees_at_once_and_releases_held_events_in_order_with_keys() {
    let mut e = Engine::new();
    let m = membership("g", 1, 1, vec![pn(0, "a")]);
    let signal = ClientEvent::Transition {
        group: g("g"),
        gid: m.gid,
    };
    step(&mut e, 0, to(7, signal.clone()));
    step(&mut e, 0, to(7, ClientEvent::Membership(m.clone())));
    let out = step(&mut e, 0, regular(1, &[0]));
    assert!(!e.holding());
    let view = KeyView {
        gid: m.gid,
        ring: ring(1),
        refresh: 0,
    };
    let grant = expected_grant(&e, "g", view);
    assert!(
        matches!(&out[0], KeysOut::ServersKey { ring: r, .. } if *r == ring(1)),
        "{out:?}"
    );
    assert_eq!(
        out[1..],
        [
            KeysOut::Group(GroupOut::ToSession { sess: 7, ev: signal }),
            KeysOut::Membership {
                sess: 7,
                membership: m,
                grant,
                artificial: false,
            },
        ]
    );
}

#[test]
fn two_daemons_hold_until_tgdh_completes_then_agree_on_group_keys() {
    let mut engines = vec![Engine::new(), Engine::new()];
    let m = membership("g", 1, 1, vec![pn(0, "a"), pn(1, "b")]);
    // The group layer's memberships of the new configuration come before the TGDH run ends.
    let first = vec![
        (0, regular(1, &[0, 1])),
        (1, regular(1, &[0, 1])),
        (0, to(0, ClientEvent::Membership(m.clone()))),
        (1, to(1, ClientEvent::Membership(m.clone()))),
    ];
    let outs = run_ring(&mut engines, 1, first);
    for out in &outs {
        let key_at = out.iter().position(|c| matches!(c, KeysOut::ServersKey { .. }));
        let released_at = out.iter().position(|c| matches!(c, KeysOut::Membership { .. }));
        assert!(
            key_at.is_some() && key_at < released_at,
            "held until the servers' key: {out:?}"
        );
        assert!(key_at > Some(0), "not agreed at once: {out:?}");
    }
    let view = KeyView {
        gid: m.gid,
        ring: ring(1),
        refresh: 0,
    };
    let mut keys = Vec::new();
    for (d, out) in outs.iter().enumerate() {
        let released: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                KeysOut::Membership {
                    sess,
                    grant,
                    artificial,
                    ..
                } => Some((*sess, grant.clone(), *artificial)),
                _ => None,
            })
            .collect();
        assert_eq!(released.len(), 1, "{out:?}");
        assert_eq!(released[0].0, d as SessionId);
        assert_eq!(released[0].1.view, view);
        assert!(!released[0].2);
        keys.push(released[0].1.key.clone());
    }
    assert_eq!(keys[0], keys[1], "both members of the view get the same key");
    assert_eq!(engines[0].servers_key(), engines[1].servers_key());
}

#[test]
fn tgdh_messages_of_another_configuration_or_signer_are_refused() {
    let mut engines = [Engine::new(), Engine::new()];
    let out = step(&mut engines[0], 0, regular(1, &[0, 1]));
    let Some(KeysOut::Broadcast(msg)) = out.first().cloned() else {
        panic!("a merge round-1 tree: {out:?}");
    };
    step(&mut engines[1], 1, regular(1, &[0, 1]));
    let trans = ConfigId::Transitional(ring(2), ring(1));
    let out = step(
        &mut engines[1],
        1,
        KeysIn::Tgdh {
            origin: 0,
            config: trans,
            msg: msg.clone(),
        },
    );
    assert_eq!(
        out,
        vec![KeysOut::Rejected(KeysError::OtherConfiguration {
            got: trans,
            current: Some(ring(1)),
        })]
    );
    let out = step(
        &mut engines[1],
        1,
        KeysIn::Tgdh {
            origin: 1,
            config: ConfigId::Regular(ring(1)),
            msg,
        },
    );
    assert!(
        matches!(
            out.as_slice(),
            [KeysOut::Rejected(KeysError::SenderMismatch { origin: 1, .. })]
        ),
        "{out:?}"
    );
    let out = step(&mut engines[1], 1, regular(2, &[0]));
    assert!(
        matches!(out.as_slice(), [KeysOut::Rejected(KeysError::Configuration(_))]),
        "{out:?}"
    );
}

#[test]
fn a_refresh_by_time_out_is_an_artificial_membership_change_of_every_group() {
    let mut engines = vec![Engine::new(), Engine::new()];
    let first = vec![(0, regular(1, &[0, 1])), (1, regular(1, &[0, 1]))];
    run_ring(&mut engines, 1, first);
    let ma = membership("g", 1, 1, vec![pn(0, "a"), pn(1, "b")]);
    let mh = membership("h", 1, 2, vec![pn(0, "a")]);
    let before = {
        let out = step(&mut engines[0], 0, to(7, ClientEvent::Membership(ma.clone())));
        step(&mut engines[0], 0, to(7, ClientEvent::Membership(mh.clone())));
        let Some(KeysOut::Membership { grant, .. }) = out.first().cloned() else {
            panic!("keyed at once: {out:?}");
        };
        grant
    };
    step(&mut engines[1], 1, to(8, ClientEvent::Membership(ma.clone())));
    // Not yet due; the non-representative never asks; the representative asks once.
    assert!(step(&mut engines[0], 0, KeysIn::Tick { now: 99 }).is_empty());
    assert!(step(&mut engines[1], 1, KeysIn::Tick { now: 500 }).is_empty());
    let first = vec![(0, KeysIn::Tick { now: 100 })];
    let outs = run_ring(&mut engines, 1, first);
    assert!(step(&mut engines[0], 0, KeysIn::Tick { now: 150 }).is_empty());
    let artificial: Vec<_> = outs[0]
        .iter()
        .filter_map(|c| match c {
            KeysOut::Membership {
                sess,
                membership,
                grant,
                artificial: true,
            } => Some((*sess, membership.group.clone(), grant.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(artificial.len(), 2, "{:?}", outs[0]);
    let (sess, group, grant) = &artificial[0];
    assert_eq!((*sess, group.as_str()), (7, "g"));
    assert_eq!(
        grant.view,
        KeyView {
            refresh: 1,
            ..before.view
        }
    );
    assert_ne!(grant.key, before.key);
    assert_eq!(*grant, expected_grant(&engines[0], "g", grant.view));
    let other = outs[1].iter().find_map(|c| match c {
        KeysOut::Membership {
            grant,
            artificial: true,
            ..
        } => Some(grant.clone()),
        _ => None,
    });
    assert_eq!(
        other.as_ref(),
        Some(grant),
        "the other daemon's member gets the same key"
    );
}

#[test]
fn data_out_triggers_a_refresh_and_closed_sessions_are_forgotten() {
    let mut engines = vec![Engine::new()];
    run_ring(&mut engines, 1, vec![(0, regular(1, &[0]))]);
    let m = membership("g", 1, 1, vec![pn(0, "a")]);
    step(&mut engines[0], 0, to(7, ClientEvent::Membership(m)));
    step(&mut engines[0], 0, KeysIn::SessionClosed(7));
    assert!(engines[0].tracked.is_empty());
    assert!(step(&mut engines[0], 0, KeysIn::DataOut { bytes: 999 }).is_empty());
    let outs = run_ring(&mut engines, 1, vec![(0, KeysIn::DataOut { bytes: 1 })]);
    assert!(
        outs[0]
            .iter()
            .any(|c| matches!(c, KeysOut::ServersKey { epoch, .. } if epoch.refresh == 1))
    );
    assert!(!outs[0].iter().any(|c| matches!(c, KeysOut::Membership { .. })));
}

/// HMAC-SHA-256 keyed with the (encoded) symbolic servers' key: a real MAC behind the trait.
struct TestHmac;

impl GroupKeyMac<SymSessionKey> for TestHmac {
    type GroupKey = [u8; 32];

    fn group_key(&self, servers: &SymSessionKey, input: &[u8]) -> [u8; 32] {
        let key = postcard::to_allocvec(servers).expect("encodes");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
        mac.update(input);
        mac.finalize().into_bytes().into()
    }

    fn key_id(&self, key: &[u8; 32]) -> u64 {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(b"sgc key id");
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        u64::from_be_bytes([tag[0], tag[1], tag[2], tag[3], tag[4], tag[5], tag[6], tag[7]])
    }
}

/// Messages are not used with this provider (no Optimized EVS in these tests).
impl super::MessageCrypto<[u8; 32]> for TestHmac {
    fn message_key_id(&self, _body: &[u8]) -> Option<u64> {
        None
    }

    fn reseal(
        &self,
        _old: (&[u8; 32], u64),
        _current: (&[u8; 32], u64),
        _ctx: &super::MessageContext<'_>,
        _body: &[u8],
        _nonce: [u8; 12],
    ) -> Result<Vec<u8>, super::Undecryptable> {
        Err(super::Undecryptable::Unauthentic)
    }
}

#[test]
fn a_real_hmac_provider_gives_distinct_keys_per_view_and_the_same_key_id_everywhere() {
    let mut e: EngineOf<Symbolic, TestHmac> = super::KeysEngine::new();
    let c = cfg(0);
    e.handle(&Symbolic, &TestHmac, &c, regular(1, &[0]), &[0; 32]);
    let mut grants = Vec::new();
    for index in 1..=2 {
        let m = membership("g", 1, index, vec![pn(0, "a")]);
        let out = e.handle(
            &Symbolic,
            &TestHmac,
            &c,
            to(7, ClientEvent::Membership(m)),
            &[0; 32],
        );
        assert_eq!(out.macs, 1);
        let Some(KeysOut::Membership { grant, .. }) = out.commands.first().cloned() else {
            panic!("keyed: {out:?}");
        };
        assert_eq!(grant.key_id, TestHmac.key_id(&grant.key));
        grants.push(grant);
    }
    assert_ne!(grants[0].key, grants[1].key);
    assert_ne!(grants[0].key_id, grants[1].key_id);
}
