//! Hostile input: randomly altered and forged protocol messages are delivered to members in
//! every phase of a run. Nothing may panic; a message whose signed content was altered is
//! rejected with a typed error and leaves the member's state unchanged; an authentic but
//! malicious message from an insider (re-signed after alteration) may be applied or rejected,
//! but never panics.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::MemberId;
use super::crypto::TgdhCrypto;
use super::member::{Command, Config, Event};
use super::message::{Body, Signed};
use super::sim::{NoMeter, SimGroup};
use super::symbolic::{Blind, SymSignature, Symbolic, Term};
use super::tree::Tree;

type Msg = Signed<Blind, SymSignature>;

/// A group in the middle of each kind of run, with the messages it is about to deliver.
fn scenarios() -> Vec<(SimGroup<Symbolic>, Vec<Msg>)> {
    let all: Vec<MemberId> = (0..7).map(|i| MemberId::new(format!("m{i}"))).collect();
    let views: [&[usize]; 3] = [&[0, 1, 2, 3, 4, 5, 6], &[0, 2, 3, 5], &[0, 1, 2, 3, 4, 5]];
    views
        .iter()
        .map(|v| {
            let mut g = SimGroup::grown(&Symbolic, "g", &all[..5]);
            let members: BTreeSet<MemberId> = v.iter().map(|&i| all[i].clone()).collect();
            g.install_view(&Symbolic, members, &mut NoMeter);
            let msgs = g.queue.iter().map(|(_, m)| m.clone()).collect();
            (g, msgs)
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Alteration {
    Epoch(u64, u32),
    Seq(u64),
    Sender(u8),
    Group,
    KeyIndex(usize, u64),
    KeyValue(usize, u8),
    DropTreeKey,
    SwapTreeChildren,
    GraftLeaf(u8),
    BodyToRefresh,
    BodyToKeys(u64),
}

fn alteration() -> impl Strategy<Value = Alteration> {
    prop_oneof![
        (0u64..12, 0u32..3).prop_map(|(v, r)| Alteration::Epoch(v, r)),
        (0u64..10).prop_map(Alteration::Seq),
        (0u8..9).prop_map(Alteration::Sender),
        Just(Alteration::Group),
        (0usize..4, any::<u64>()).prop_map(|(i, x)| Alteration::KeyIndex(i, x)),
        (0usize..4, 0u8..9).prop_map(|(i, m)| Alteration::KeyValue(i, m)),
        Just(Alteration::DropTreeKey),
        Just(Alteration::SwapTreeChildren),
        (0u8..9).prop_map(Alteration::GraftLeaf),
        Just(Alteration::BodyToRefresh),
        any::<u64>().prop_map(Alteration::BodyToKeys),
    ]
}

fn alter(m: &mut Msg, a: &Alteration) {
    let fake = |i: u8| {
        Blind(Term::Share {
            member: MemberId::new(format!("m{i}")),
            nonce: 77,
        })
    };
    let msg = &mut m.message;
    match (a, &mut msg.body) {
        (Alteration::Epoch(v, r), _) => {
            msg.epoch.view = *v;
            msg.epoch.refresh = *r;
        }
        (Alteration::Seq(s), _) => msg.seq = *s,
        (Alteration::Sender(i), _) => msg.sender = MemberId::new(format!("m{i}")),
        (Alteration::Group, _) => msg.group.push('x'),
        (Alteration::KeyIndex(i, x), Body::Keys(k)) if !k.is_empty() => {
            let n = k.len();
            k[i % n].0 = *x;
        }
        (Alteration::KeyValue(i, v), Body::Keys(k)) if !k.is_empty() => {
            let n = k.len();
            k[i % n].1 = fake(*v);
        }
        (Alteration::DropTreeKey, Body::Tree(t)) => t.set_bkey(None),
        (Alteration::SwapTreeChildren, Body::Tree(Tree::Node { left, right, .. })) => {
            std::mem::swap(left, right)
        }
        (Alteration::GraftLeaf(i), Body::Tree(t)) => {
            let old = std::mem::replace(t, Tree::leaf(MemberId::new(""), None));
            *t = Tree::Node {
                bkey: None,
                key: None,
                left: Box::new(old),
                right: Box::new(Tree::Leaf {
                    member: MemberId::new(format!("m{i}")),
                    bkey: Some(fake(*i)),
                    key: None,
                }),
            };
        }
        (Alteration::BodyToRefresh, _) => msg.body = Body::Refresh,
        (Alteration::BodyToKeys(x), _) => msg.body = Body::Keys(vec![(*x, fake(1))]),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn altered_messages_never_panic_and_forgeries_change_nothing(
        which in 0usize..3, pick in 0usize..8, alterations in proptest::collection::vec(alteration(), 1..4),
        resign in any::<bool>(), target in 0usize..7,
    ) {
        let (group, msgs) = scenarios().swap_remove(which);
        prop_assume!(!msgs.is_empty());
        let original = msgs[pick % msgs.len()].clone();
        let mut forged = original.clone();
        for a in &alterations {
            alter(&mut forged, a);
        }
        prop_assume!(forged != original);
        if resign {
            // An insider signing whatever it likes: authentic, possibly malicious.
            let resigned = forged.message.signing_bytes().ok().and_then(|b| Symbolic.sign(&forged.message.sender, &b).ok());
            if let Some(sig) = resigned {
                forged.signature = sig;
            }
        }
        let names: Vec<MemberId> = group.members.keys().cloned().collect();
        let me = names[target % names.len()].clone();
        let mut state = group.members[&me].clone();
        let before = state.clone();
        let out = state.handle(&Symbolic, &Config::new(me.clone(), "g"), Event::Deliver(forged.clone()), &[1; 32]);
        let authentic = forged.message.signing_bytes().ok().is_some_and(|b| {
            Symbolic.verify(&forged.message.sender, &b, &forged.signature).is_ok()
        });
        let rejected = out.commands.iter().any(|c| matches!(c, Command::Rejected(_)));
        if !authentic {
            prop_assert!(rejected);
        }
        if rejected {
            prop_assert_eq!(state, before);
        }
    }
}
