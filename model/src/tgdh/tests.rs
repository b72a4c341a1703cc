//! Scenario tests of the TGDH machine over the symbolic provider: every event kind, cascades,
//! message counts against the paper, and rejection of bad input with typed errors.

use std::collections::BTreeSet;

use super::MemberId;
use super::crypto::Epoch;
use super::error::TgdhError;
use super::member::{Command, Config, Event, Member};
use super::message::{Body, Message, Signed};
use super::sim::{NoMeter, SimGroup};
use super::symbolic::{Blind, SymSignature, Symbolic, Term};

fn ids(range: std::ops::Range<usize>) -> Vec<MemberId> {
    range.map(|i| MemberId::new(format!("m{i:02}"))).collect()
}

fn set(v: &[MemberId]) -> BTreeSet<MemberId> {
    v.iter().cloned().collect()
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - (n.max(1) - 1).leading_zeros()
}

#[test]
fn joins_agree_and_keep_the_height_minimal() {
    let all = ids(0..12);
    let mut g = SimGroup::<Symbolic>::new("g", None);
    for n in 1..=all.len() {
        g.install_view(&Symbolic, set(&all[..n]), &mut NoMeter);
        let s = g.run(&Symbolic, &mut NoMeter);
        assert!(g.agreed(), "{n} members disagree");
        assert_eq!(g.height(), ceil_log2(n), "height after {n} joins");
        if n > 1 {
            // Into a full tree the newcomer goes at the root: both children's blinded keys
            // are known after round 1, so no sponsor round is needed.
            let full = (n - 1).is_power_of_two();
            let expected = if full { (1, 2) } else { (2, 3) };
            assert_eq!((s.rounds, s.messages), expected, "join of member {n}");
        }
        assert_eq!(s.rejected, 0);
    }
}

#[test]
fn leave_takes_one_round_and_one_message() {
    let all = ids(0..9);
    let mut g = SimGroup::grown(&Symbolic, "g", &all);
    let before = g.root_keys()[0].cloned();
    g.install_view(&Symbolic, set(&all[1..]), &mut NoMeter);
    let s = g.run(&Symbolic, &mut NoMeter);
    assert!(g.agreed());
    assert_eq!((s.rounds, s.messages, s.signatures_total), (1, 1, 1));
    assert_ne!(g.root_keys()[0].cloned(), before);
}

#[test]
fn partition_and_merge_back() {
    let all = ids(0..10);
    let mut g = SimGroup::grown(&Symbolic, "g", &all);
    let leaving: BTreeSet<MemberId> = [0, 3, 4, 7].iter().map(|&i| all[i].clone()).collect();
    let mut other = g.split(&Symbolic, &leaving, &mut NoMeter);
    let s = g.run(&Symbolic, &mut NoMeter);
    other.run(&Symbolic, &mut NoMeter);
    assert!(g.agreed() && other.agreed());
    assert!(
        s.rounds <= g.height().max(1),
        "partition rounds {} > h {}",
        s.rounds,
        g.height()
    );
    assert_ne!(g.root_keys()[0], other.root_keys()[0]);
    g.merge(&Symbolic, vec![other], &mut NoMeter);
    let s = g.run(&Symbolic, &mut NoMeter);
    assert!(g.agreed());
    assert!(
        (1..=2).contains(&s.rounds),
        "merge of two groups took {} rounds",
        s.rounds
    );
    assert_eq!(g.members.len(), 10);
}

#[test]
fn merge_of_three_groups() {
    let a = SimGroup::grown(&Symbolic, "g", &ids(0..3));
    let b = SimGroup::grown(&Symbolic, "g", &ids(3..5));
    let mut c = SimGroup::grown(&Symbolic, "g", &ids(5..9));
    c.merge(&Symbolic, vec![a, b], &mut NoMeter);
    let s = c.run(&Symbolic, &mut NoMeter);
    assert!(c.agreed());
    assert_eq!(s.rejected, 0);
    assert!(s.rounds >= 2);
}

#[test]
fn refresh_changes_the_key() {
    let all = ids(0..5);
    let mut g = SimGroup::grown(&Symbolic, "g", &all);
    let before = g.root_keys()[0].cloned();
    g.request_refresh(&Symbolic, &all[2]);
    let s = g.run(&Symbolic, &mut NoMeter);
    assert!(g.agreed());
    assert_ne!(g.root_keys()[0].cloned(), before);
    assert_eq!(s.rejected, 0);
    let epoch = g.members.values().next().and_then(|m| m.epoch);
    assert_eq!(epoch.map(|e| e.refresh), Some(1));
}

#[test]
fn cascaded_views_never_deadlock() {
    let all = ids(0..8);
    let mut g = SimGroup::grown(&Symbolic, "g", &all[..6]);
    // A join interrupted by a leave interrupted by a merge-like join of two more.
    g.install_view(&Symbolic, set(&all[..7]), &mut NoMeter);
    g.queue.truncate(1);
    g.install_view(&Symbolic, set(&all[1..7]), &mut NoMeter);
    if let Some(first) = g.queue.pop_front() {
        let msg = first.1;
        let names: Vec<MemberId> = g.members.keys().cloned().collect();
        for n in names {
            let cfg = Config::new(n.clone(), "g");
            let st = g.members.get_mut(&n).expect("member");
            st.handle(&Symbolic, &cfg, Event::Deliver(msg.clone()), &[0; 32]);
        }
    }
    g.install_view(&Symbolic, set(&all[1..]), &mut NoMeter);
    g.run(&Symbolic, &mut NoMeter);
    assert!(g.agreed());
}

fn member_in_view(me: &MemberId, members: &[MemberId]) -> Member<Term, Blind> {
    let mut m = Member::new();
    let cfg = Config::new(me.clone(), "g");
    m.handle(
        &Symbolic,
        &cfg,
        Event::View {
            view: 5,
            members: set(members),
        },
        &[0; 32],
    );
    m
}

fn rejection(m: &mut Member<Term, Blind>, me: &MemberId, signed: Signed<Blind, SymSignature>) -> TgdhError {
    let cfg = Config::new(me.clone(), "g");
    let out = m.handle(&Symbolic, &cfg, Event::Deliver(signed), &[0; 32]);
    out.commands
        .into_iter()
        .find_map(|c| {
            if let Command::Rejected(e) = c {
                Some(e)
            } else {
                None
            }
        })
        .expect("the message must be rejected")
}

fn signed(sender: &MemberId, epoch: Epoch, seq: u64, body: Body<Blind>) -> Signed<Blind, SymSignature> {
    use super::crypto::TgdhCrypto;
    let message = Message {
        group: "g".into(),
        epoch,
        sender: sender.clone(),
        seq,
        body,
    };
    let signature = Symbolic
        .sign(sender, &message.signing_bytes().expect("encodes"))
        .expect("signs");
    Signed { message, signature }
}

#[test]
fn bad_messages_are_rejected_with_typed_errors() {
    let all = ids(0..3);
    let me = &all[0];
    let mut m = member_in_view(me, &all);
    let now = Epoch { view: 5, refresh: 0 };
    let old = Epoch { view: 4, refresh: 0 };
    assert!(matches!(
        rejection(&mut m, me, signed(&all[1], old, 1, Body::Refresh)),
        TgdhError::WrongEpoch { .. }
    ));
    let stranger = MemberId::new("zz");
    assert!(matches!(
        rejection(&mut m, me, signed(&stranger, now, 1, Body::Refresh)),
        TgdhError::NotAMember(_)
    ));
    let mut forged = signed(&all[1], now, 1, Body::Refresh);
    forged.message.seq = 2;
    assert!(matches!(rejection(&mut m, me, forged), TgdhError::Crypto(_)));
    let mut other_group = signed(&all[1], now, 1, Body::Refresh);
    other_group.message.group = "h".into();
    assert!(matches!(
        rejection(&mut m, me, other_group),
        TgdhError::WrongGroup(_)
    ));
    // A tree from someone who is not its rightmost member.
    let bogus = super::tree::Tree::leaf(all[2].clone(), None);
    assert!(matches!(
        rejection(&mut m, me, signed(&all[1], now, 3, Body::Tree(bogus))),
        TgdhError::MalformedTree(_)
    ));
}

#[test]
fn replays_and_off_path_keys_are_rejected() {
    let all = ids(0..4);
    let mut g = SimGroup::grown(&Symbolic, "g", &all);
    g.install_view(&Symbolic, set(&all[..3]), &mut NoMeter);
    let (_, sponsor_msg) = g.queue.front().cloned().expect("a sponsor message");
    g.run(&Symbolic, &mut NoMeter);
    assert!(g.agreed());
    let me = all[0].clone();
    let state = g.members.get_mut(&me).expect("member");
    let err = rejection(state, &me, sponsor_msg.clone());
    assert!(matches!(err, TgdhError::Replay { .. }), "{err:?}");
    // Keys for a node off the sender's path (the other subtree's root) are refused.
    let sender = sponsor_msg.message.sender.clone();
    let tree = state.tree.as_ref().expect("tree");
    let sender_path = tree.path_to(&sender).expect("sender in tree");
    let off = super::tree::index_of(&[!sender_path[0]]);
    let epoch = state.epoch.expect("epoch");
    let fake = Blind(Term::Share {
        member: sender.clone(),
        nonce: 99,
    });
    let err = rejection(
        state,
        &me,
        signed(&sender, epoch, 100, Body::Keys(vec![(off, fake.clone())])),
    );
    assert!(matches!(err, TgdhError::NotOnSenderPath { .. }), "{err:?}");
    let err = rejection(
        state,
        &me,
        signed(&sender, epoch, 101, Body::Keys(vec![(0, fake)])),
    );
    assert!(matches!(err, TgdhError::NotOnSenderPath { .. }), "{err:?}");
}

#[test]
fn a_dealt_group_equals_a_grown_group_in_shape_and_agrees_after_events() {
    let all = ids(0..11);
    let grown = SimGroup::grown(&Symbolic, "g", &all);
    let mut dealt = SimGroup::dealt(&Symbolic, "g", &all).expect("dealt");
    assert!(dealt.agreed());
    let shape = |g: &SimGroup<Symbolic>| {
        g.members
            .values()
            .next()
            .and_then(|m| m.tree.as_ref())
            .map(|t| t.leaves().into_iter().map(|m| t.path_to(m)).collect::<Vec<_>>())
    };
    assert_eq!(shape(&grown), shape(&dealt));
    dealt.install_view(&Symbolic, set(&all[1..]), &mut NoMeter);
    dealt.run(&Symbolic, &mut NoMeter);
    assert!(dealt.agreed());
}

#[test]
fn large_partition_with_many_holes_agrees() {
    for total in [20usize, 40, 90, 134] {
        let all: Vec<MemberId> = (0..total).map(|i| MemberId::new(format!("m{i}"))).collect();
        let mut g = SimGroup::dealt(&Symbolic, "g", &all).expect("dealt");
        let leaving: BTreeSet<MemberId> = all.iter().skip(1).step_by(4).take(total / 4).cloned().collect();
        let mut other = g.split(&Symbolic, &leaving, &mut NoMeter);
        let s = g.run(&Symbolic, &mut NoMeter);
        let t = other.run(&Symbolic, &mut NoMeter);
        assert_eq!((s.rejected, t.rejected), (0, 0), "rejections at {total}");
        assert!(g.agreed() && other.agreed(), "disagreement at {total}");
    }
}
