//! Key trees computed two ways with the real providers: top-down by someone who knows every
//! secret, and bottom-up by each member from its own share and the co-path blinded keys only
//! (TGDH's Fact 1). All members must reach the same root secret and session key.

use proptest::prelude::*;
use sgc_crypto::{FfdhGroup, FfdhProvider, X25519Provider};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::{Epoch, TgdhCrypto};

/// A key tree shape: leaves are indices into the members' shares.
enum Shape {
    Leaf(usize),
    Node(Box<Self>, Box<Self>),
}

fn leaf(i: usize) -> Shape {
    Shape::Leaf(i)
}

fn node(l: Shape, r: Shape) -> Shape {
    Shape::Node(Box::new(l), Box::new(r))
}

/// The secret of `shape` computed by someone who knows every share: `combine(left,
/// blind(right))` at every internal node.
fn secret_of<C: TgdhCrypto>(c: &C, shape: &Shape, shares: &[C::Secret]) -> C::Secret {
    match shape {
        Shape::Leaf(i) => shares[*i].clone(),
        Shape::Node(l, r) => {
            let left = secret_of(c, l, shares);
            let right = secret_of(c, r, shares);
            c.combine(&left, &c.blind(&right))
                .expect("honest blinded keys are valid")
        }
    }
}

/// The root secret as `member` computes it: its own share, then at each level up the
/// sibling's blinded key (validated, as received from the network) combined with its own
/// path secret, whichever side it is on. `None` if `member` is not below `shape`.
fn member_view<C: TgdhCrypto>(
    c: &C,
    shape: &Shape,
    shares: &[C::Secret],
    member: usize,
) -> Option<C::Secret> {
    match shape {
        Shape::Leaf(i) => (*i == member).then(|| shares[*i].clone()),
        Shape::Node(l, r) => {
            let (own, sibling) = match member_view(c, l, shares, member) {
                Some(own) => (own, r),
                None => (member_view(c, r, shares, member)?, l),
            };
            let bk = c.blind(&secret_of(c, sibling, shares));
            c.validate_public(&bk).expect("honest blinded keys are valid");
            Some(c.combine(&own, &bk).expect("honest blinded keys are valid"))
        }
    }
}

fn shares<C: TgdhCrypto>(c: &C, n: usize, seed: u8) -> Vec<C::Secret> {
    (0..n)
        .map(|i| c.new_share(&MemberId(format!("m{i}")), 0, &[seed.wrapping_add(i as u8); 32]))
        .collect()
}

/// Every member of `shape` (with `n` leaves) computes the same root and session key.
fn all_members_agree<C: TgdhCrypto>(c: &C, shape: &Shape, n: usize) {
    let shares = shares(c, n, 1);
    let root = secret_of(c, shape, &shares);
    let epoch = Epoch { view: 7, refresh: 0 };
    let key = c.session_key(&root, "group", epoch, "data");
    for member in 0..n {
        let view = member_view(c, shape, &shares, member).expect("every leaf is a member");
        assert_eq!(view, root, "member {member}");
        assert_eq!(
            c.key_id(&c.session_key(&view, "group", epoch, "data")),
            c.key_id(&key)
        );
    }
    // A different share anywhere changes the root.
    let mut other = shares.clone();
    other[n - 1] = c.new_share(&MemberId(format!("m{}", n - 1)), 1, &[99; 32]);
    assert_ne!(secret_of(c, shape, &other), root);
}

/// A full three-level tree of eight members.
fn full_tree() -> Shape {
    let quad = |b: usize| node(node(leaf(b), leaf(b + 1)), node(leaf(b + 2), leaf(b + 3)));
    node(quad(0), quad(4))
}

/// An unbalanced five-member tree of height 3: ((m0, m1), (m2, (m3, m4))).
fn unbalanced_tree() -> Shape {
    node(node(leaf(0), leaf(1)), node(leaf(2), node(leaf(3), leaf(4))))
}

#[test]
fn ffdhe2048_three_level_trees_agree() {
    let c = FfdhProvider::deterministic(FfdhGroup::Ffdhe2048, 0);
    all_members_agree(&c, &full_tree(), 8);
    all_members_agree(&c, &unbalanced_tree(), 5);
}

#[test]
fn modp2048_and_ffdhe3072_trees_agree() {
    for group in [FfdhGroup::Modp2048, FfdhGroup::Ffdhe3072] {
        let c = FfdhProvider::deterministic(group, 0);
        all_members_agree(&c, &unbalanced_tree(), 5);
    }
}

#[test]
fn x25519_three_level_trees_agree() {
    let c = X25519Provider::deterministic(0);
    all_members_agree(&c, &full_tree(), 8);
    all_members_agree(&c, &unbalanced_tree(), 5);
}

#[test]
fn subtree_keys_survive_a_move() {
    // The node KDF has no position: the key of (m3, m4) is the same wherever the pair sits.
    let c = X25519Provider::deterministic(0);
    let shares = shares(&c, 5, 3);
    let pair = || node(leaf(3), leaf(4));
    let alone = secret_of(&c, &pair(), &shares);
    let moved = node(pair(), node(leaf(0), leaf(1)));
    let Shape::Node(left, _) = &moved else {
        unreachable!("built as a node")
    };
    assert_eq!(secret_of(&c, left, &shares), alone);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn ffdhe2048_combine_is_symmetric(ea in any::<[u8; 32]>(), eb in any::<[u8; 32]>(), nonce in any::<u64>()) {
        let c = FfdhProvider::deterministic(FfdhGroup::Ffdhe2048, 0);
        let a = c.new_share(&MemberId("a".into()), nonce, &ea);
        let b = c.new_share(&MemberId("b".into()), nonce, &eb);
        prop_assert_eq!(c.combine(&a, &c.blind(&b)).unwrap(), c.combine(&b, &c.blind(&a)).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn x25519_combine_is_symmetric(ea in any::<[u8; 32]>(), eb in any::<[u8; 32]>()) {
        let c = X25519Provider::deterministic(0);
        let a = c.new_share(&MemberId("a".into()), 0, &ea);
        let b = c.new_share(&MemberId("b".into()), 0, &eb);
        prop_assert_eq!(c.combine(&a, &c.blind(&b)).unwrap(), c.combine(&b, &c.blind(&a)).unwrap());
    }
}
