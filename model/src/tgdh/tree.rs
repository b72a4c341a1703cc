//! The TGDH key tree: a binary tree whose leaves are members and whose nodes carry a blinded
//! key (public) and, on the holder's own key path only, a secret key.
//!
//! Nodes are numbered as in the Cliques C code: heap indices, root 1, children `2i` and
//! `2i + 1` (so `<level, position>` is `(floor(log2 i), i - 2^level)`). The tree is stored
//! recursively so that subtrees keep their keys when a leave or a merge moves them; indices
//! are recomputed from positions.
//!
//! Invariants kept by every operation here (and checked by the model, `TGDH-TREE`):
//! - full binary tree, leaves are distinct members, height at most [`MAX_HEIGHT`];
//! - blinded keys are *downward closed*: a node with a blinded key has children with blinded
//!   keys (clearing a node clears all its ancestors);
//! - a secret key at a node is consistent with the current blinded keys below it (stale keys
//!   are cleared together with the blinded keys they depended on).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::MemberId;
use super::error::TgdhError;

/// Trees taller than this are rejected: heap indices must fit in a `u64`.
pub const MAX_HEIGHT: u32 = 62;

/// A position in the tree: the sides taken from the root (`false` = left, `true` = right).
pub type Path = Vec<bool>;

/// The uninhabited secret type of public trees (what is broadcast carries no secrets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NoSecret {}

/// A key tree with secret keys of type `S` and blinded keys of type `P`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tree<S, P> {
    /// A member's leaf; its secret is the member's share.
    Leaf {
        /// The member at this leaf.
        member: MemberId,
        /// Blinded key `g^share`, if known.
        bkey: Option<P>,
        /// The share (only at the holder's own leaf).
        key: Option<S>,
    },
    /// An internal node: its key is the Diffie-Hellman combination of its children's keys.
    Node {
        /// Blinded key, if known.
        bkey: Option<P>,
        /// Secret key (only on the holder's key path).
        key: Option<S>,
        /// Left subtree.
        left: Box<Self>,
        /// Right subtree.
        right: Box<Self>,
    },
}

/// The public part of a tree: structure and blinded keys.
pub type PublicTree<P> = Tree<NoSecret, P>;

/// Heap index of a path (root = 1).
pub fn index_of(path: &[bool]) -> u64 {
    path.iter().fold(1u64, |i, &right| 2 * i + u64::from(right))
}

/// Path of a heap index, or `None` for 0 or an index deeper than [`MAX_HEIGHT`].
pub fn path_of(index: u64) -> Option<Path> {
    if index == 0 {
        return None;
    }
    let depth = 63 - index.leading_zeros();
    if depth > MAX_HEIGHT {
        return None;
    }
    Some((0..depth).rev().map(|bit| (index >> bit) & 1 == 1).collect())
}

impl<S, P> Tree<S, P> {
    /// A leaf for `member`.
    pub fn leaf(member: MemberId, key: Option<S>) -> Self {
        Self::Leaf {
            member,
            bkey: None,
            key,
        }
    }

    /// The blinded key of this node.
    pub fn bkey(&self) -> Option<&P> {
        match self {
            Self::Leaf { bkey, .. } | Self::Node { bkey, .. } => bkey.as_ref(),
        }
    }

    /// The secret key of this node.
    pub fn key(&self) -> Option<&S> {
        match self {
            Self::Leaf { key, .. } | Self::Node { key, .. } => key.as_ref(),
        }
    }

    fn slots(&mut self) -> (&mut Option<P>, &mut Option<S>) {
        match self {
            Self::Leaf { bkey, key, .. } | Self::Node { bkey, key, .. } => (bkey, key),
        }
    }

    /// Sets the secret key of this node.
    pub fn set_key(&mut self, value: Option<S>) {
        *self.slots().1 = value;
    }

    /// Sets the blinded key of this node.
    pub fn set_bkey(&mut self, value: Option<P>) {
        *self.slots().0 = value;
    }

    /// Height: a leaf has height 0.
    pub fn height(&self) -> u32 {
        match self {
            Self::Leaf { .. } => 0,
            Self::Node { left, right, .. } => 1 + left.height().max(right.height()),
        }
    }

    /// Members from left to right.
    pub fn leaves(&self) -> Vec<&MemberId> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, out: &mut Vec<&'a MemberId>) {
        match self {
            Self::Leaf { member, .. } => out.push(member),
            Self::Node { left, right, .. } => {
                left.collect_leaves(out);
                right.collect_leaves(out);
            }
        }
    }

    /// The set of members.
    pub fn members(&self) -> BTreeSet<MemberId> {
        self.leaves().into_iter().cloned().collect()
    }

    /// The rightmost member.
    pub fn rightmost(&self) -> &MemberId {
        match self {
            Self::Leaf { member, .. } => member,
            Self::Node { right, .. } => right.rightmost(),
        }
    }

    /// The leftmost member.
    pub fn leftmost(&self) -> &MemberId {
        match self {
            Self::Leaf { member, .. } => member,
            Self::Node { left, .. } => left.leftmost(),
        }
    }

    /// The node at `path`.
    pub fn at(&self, path: &[bool]) -> Option<&Self> {
        let Some((&first, rest)) = path.split_first() else {
            return Some(self);
        };
        match self {
            Self::Leaf { .. } => None,
            Self::Node { left, right, .. } => if first { right } else { left }.at(rest),
        }
    }

    /// The node at `path`, mutably.
    pub fn at_mut(&mut self, path: &[bool]) -> Option<&mut Self> {
        let Some((&first, rest)) = path.split_first() else {
            return Some(self);
        };
        match self {
            Self::Leaf { .. } => None,
            Self::Node { left, right, .. } => if first { right } else { left }.at_mut(rest),
        }
    }

    /// The path from the root to `member`'s leaf.
    pub fn path_to(&self, member: &MemberId) -> Option<Path> {
        match self {
            Self::Leaf { member: m, .. } => (m == member).then(Vec::new),
            Self::Node { left, right, .. } => {
                if let Some(mut p) = left.path_to(member) {
                    p.insert(0, false);
                    Some(p)
                } else {
                    let mut p = right.path_to(member)?;
                    p.insert(0, true);
                    Some(p)
                }
            }
        }
    }

    /// Clears the blinded key and secret key at `path` and at every ancestor. With
    /// `keep_leaf_key`, the secret key at `path` itself is kept (a refresher replaces its share).
    pub fn clear_up(&mut self, path: &[bool], keep_leaf_key: bool) {
        for depth in (0..=path.len()).rev() {
            if let Some(node) = self.at_mut(&path[..depth]) {
                node.set_bkey(None);
                if !(keep_leaf_key && depth == path.len()) {
                    node.set_key(None);
                }
            }
        }
    }

    /// Clears the secret keys of the strict ancestors of `path`.
    pub fn clear_keys_above(&mut self, path: &[bool]) {
        for depth in 0..path.len() {
            if let Some(node) = self.at_mut(&path[..depth]) {
                node.set_key(None);
            }
        }
    }

    /// Whether every node except the root has a blinded key.
    pub fn complete(&self) -> bool {
        match self {
            Self::Leaf { .. } => true,
            Self::Node { left, right, .. } => left.bkeys_full() && right.bkeys_full(),
        }
    }

    fn bkeys_full(&self) -> bool {
        self.bkey().is_some()
            && match self {
                Self::Leaf { .. } => true,
                Self::Node { left, right, .. } => left.bkeys_full() && right.bkeys_full(),
            }
    }

    /// Whether blinded keys are downward closed (a node with a blinded key has children with
    /// blinded keys).
    pub fn bkeys_downward_closed(&self) -> bool {
        match self {
            Self::Leaf { .. } => true,
            Self::Node {
                bkey, left, right, ..
            } => {
                (bkey.is_none() || (left.bkey().is_some() && right.bkey().is_some()))
                    && left.bkeys_downward_closed()
                    && right.bkeys_downward_closed()
            }
        }
    }

    /// Holes: nodes other than the root that lack a blinded key while all their children have
    /// one (or leaves lacking one). Each hole's key can be computed by its sponsor.
    pub fn holes(&self) -> Vec<Path> {
        let mut out = Vec::new();
        if let Self::Node { left, right, .. } = self {
            left.collect_holes(&mut vec![false], &mut out);
            right.collect_holes(&mut vec![true], &mut out);
        }
        out
    }

    fn collect_holes(&self, here: &mut Path, out: &mut Vec<Path>) {
        if self.bkey().is_some() {
            return;
        }
        match self {
            Self::Leaf { .. } => out.push(here.clone()),
            Self::Node { left, right, .. } => {
                if left.bkey().is_some() && right.bkey().is_some() {
                    out.push(here.clone());
                    return;
                }
                here.push(false);
                left.collect_holes(here, out);
                here.pop();
                here.push(true);
                right.collect_holes(here, out);
                here.pop();
            }
        }
    }

    /// The sponsor of the hole at `path`: the leaf's member for a leaf, else the rightmost
    /// member of the hole's left subtree (the subtree that was there before an insertion).
    pub fn sponsor_of(&self, path: &[bool]) -> Option<&MemberId> {
        match self.at(path)? {
            Self::Leaf { member, .. } => Some(member),
            Self::Node { left, .. } => Some(left.rightmost()),
        }
    }

    /// The public part of this tree.
    pub fn to_public(&self) -> PublicTree<P>
    where
        P: Clone,
    {
        self.without_keys()
    }

    /// This tree's structure and blinded keys, with no secret keys (of any secret type).
    pub fn without_keys<T>(&self) -> Tree<T, P>
    where
        P: Clone,
    {
        match self {
            Self::Leaf { member, bkey, .. } => Tree::Leaf {
                member: member.clone(),
                bkey: bkey.clone(),
                key: None,
            },
            Self::Node {
                bkey, left, right, ..
            } => Tree::Node {
                bkey: bkey.clone(),
                key: None,
                left: Box::new(left.without_keys()),
                right: Box::new(right.without_keys()),
            },
        }
    }

    /// Every blinded key with its heap index, in breadth-first order.
    pub fn bkeys(&self) -> Vec<(u64, &P)> {
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([(1u64, self)]);
        while let Some((i, node)) = queue.pop_front() {
            if let Some(b) = node.bkey() {
                out.push((i, b));
            }
            if let Self::Node { left, right, .. } = node {
                queue.push_back((2 * i, left));
                queue.push_back((2 * i + 1, right));
            }
        }
        out
    }

    /// Paths of every node that holds a secret key.
    pub fn key_paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_key_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_key_paths(&self, here: &mut Path, out: &mut Vec<Path>) {
        if self.key().is_some() {
            out.push(here.clone());
        }
        if let Self::Node { left, right, .. } = self {
            here.push(false);
            left.collect_key_paths(here, out);
            here.pop();
            here.push(true);
            right.collect_key_paths(here, out);
            here.pop();
        }
    }
}

impl<P: Clone> PublicTree<P> {
    /// Checks a received tree: distinct members, height bounded, blinded keys downward closed.
    pub fn check_well_formed(&self) -> Result<(), TgdhError> {
        if self.height() > MAX_HEIGHT {
            return Err(TgdhError::MalformedTree("tree too tall"));
        }
        let leaves = self.leaves();
        if leaves.len() != self.members().len() {
            return Err(TgdhError::MalformedTree("a member appears twice"));
        }
        if !self.bkeys_downward_closed() {
            return Err(TgdhError::MalformedTree("blinded key above a missing one"));
        }
        Ok(())
    }
}

/// Result of removing members from a tree.
#[derive(Debug)]
pub struct Pruned<S, P> {
    /// What is left (`None` if every member left).
    pub tree: Option<Tree<S, P>>,
    /// Positions (in the new tree) of the subtrees promoted into a removed parent's place.
    pub promoted: Vec<Path>,
}

impl<S, P> Tree<S, P> {
    /// Removes the leaves of `leavers`: each removed leaf's sibling subtree takes its parent's
    /// place (partition compaction falls out of the recursion), and every node above a change
    /// loses its blinded and secret key.
    pub fn prune(self, leavers: &BTreeSet<MemberId>) -> Pruned<S, P> {
        let (tree, _changed, mut promoted) = self.prune_rec(leavers);
        promoted.sort();
        promoted.dedup();
        Pruned { tree, promoted }
    }

    fn prune_rec(self, leavers: &BTreeSet<MemberId>) -> (Option<Self>, bool, Vec<Path>) {
        // Returned paths are relative to the returned subtree.
        match self {
            Self::Leaf { ref member, .. } => {
                if leavers.contains(member) {
                    (None, true, Vec::new())
                } else {
                    (Some(self), false, Vec::new())
                }
            }
            Self::Node {
                bkey,
                key,
                left,
                right,
            } => {
                let (l, lc, lp) = left.prune_rec(leavers);
                let (r, rc, rp) = right.prune_rec(leavers);
                match (l, r) {
                    (None, None) => (None, true, Vec::new()),
                    // The surviving child takes this node's place, keeping its own keys.
                    (Some(only), None) => (Some(only), true, with_root(lp)),
                    (None, Some(only)) => (Some(only), true, with_root(rp)),
                    (Some(l), Some(r)) => {
                        let changed = lc || rc;
                        let (bkey, key) = if changed { (None, None) } else { (bkey, key) };
                        let promoted = prefixed(false, lp).chain(prefixed(true, rp)).collect();
                        (
                            Some(Self::Node {
                                bkey,
                                key,
                                left: Box::new(l),
                                right: Box::new(r),
                            }),
                            changed,
                            promoted,
                        )
                    }
                }
            }
        }
    }

    /// The insertion point for a subtree of height `other_height`: the shallowest, then
    /// rightmost, node where inserting does not increase the tree's height; the root if none.
    pub fn insertion_point(&self, other_height: u32) -> Path {
        let total = self.height();
        let mut best: Option<(usize, u64, Path)> = None;
        let mut stack: Vec<(Path, &Self)> = vec![(Vec::new(), self)];
        while let Some((path, node)) = stack.pop() {
            let depth = path.len() as u32;
            if depth + 1 + node.height().max(other_height) <= total {
                let key = (path.len(), index_of(&path));
                let better = match &best {
                    None => true,
                    Some((d, i, _)) => key.0 < *d || (key.0 == *d && key.1 > *i),
                };
                if better {
                    best = Some((key.0, key.1, path.clone()));
                }
            }
            if let Self::Node { left, right, .. } = node {
                let mut l = path.clone();
                l.push(false);
                let mut r = path;
                r.push(true);
                stack.push((l, left));
                stack.push((r, right));
            }
        }
        best.map(|(_, _, p)| p).unwrap_or_default()
    }

    /// Inserts `other` at `at`: a new node takes that place with the old subtree as its left
    /// child and `other` as its right child; the new node and its ancestors lose their keys.
    /// Returns the path of the new node.
    pub fn insert_at(&mut self, at: &[bool], other: Self) -> Path {
        if let Some(slot) = self.at_mut(at) {
            let placeholder = Self::Leaf {
                member: MemberId::new(""),
                bkey: None,
                key: None,
            };
            let old = std::mem::replace(slot, placeholder);
            *slot = Self::Node {
                bkey: None,
                key: None,
                left: Box::new(old),
                right: Box::new(other),
            };
        }
        self.clear_up(at, false);
        at.to_vec()
    }
}

fn with_root(mut paths: Vec<Path>) -> Vec<Path> {
    paths.push(Vec::new());
    paths
}

fn prefixed(side: bool, paths: Vec<Path>) -> impl Iterator<Item = Path> {
    paths
        .into_iter()
        .map(move |p| std::iter::once(side).chain(p).collect())
}
