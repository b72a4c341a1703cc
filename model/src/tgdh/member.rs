//! The TGDH member state machine: membership views and protocol messages in, broadcasts and
//! keys out.
//!
//! One run per epoch (a view, or a refresh within a view). Every member applies the same
//! deterministic rules to the same agreed sequence of inputs, so all agree on the tree, on who
//! refreshes and on who sponsors:
//!
//! 1. **View.** Members that left are pruned (each removed leaf's sibling subtree is promoted
//!    into its parent's place; everything above a change loses its keys).
//! 2. **No newcomers** (leave, partition, refresh): one *refresher* draws a new share: the
//!    shallowest, then rightmost, of the rightmost members of the promoted subtrees (for a plain
//!    refresh: the shallowest, then rightmost, member). Everyone clears the refresher's leaf and
//!    path.
//! 3. **Newcomers** (join, merge of any number of groups): round 1: the rightmost member of every
//!    subgroup refreshes its share and broadcasts its subgroup's tree with all blinded keys it
//!    can compute. When the trees cover the view, all merge them: sorted by height (tallest
//!    first), then by leftmost member, each inserted into the first at its *insertion point*
//!    (the shallowest, then rightmost, node where it does not raise the height; else the root).
//! 4. **Sponsors** until done: a *hole* is a non-root node without a blinded key whose children
//!    have one (or a leaf without one). Its sponsor — the leaf's member, or the rightmost member
//!    of the hole's left subtree — computes keys up its path as far as it can and broadcasts
//!    the new blinded keys. Holes are disjoint, every message fills at least one, and the loop
//!    ends when every non-root node has a blinded key; then every member computes the root key
//!    and derives the session key with a KDF.
//!
//! A new view or refresh in the middle of a run simply starts the next run from the current
//! tree: missing blinded keys are holes like any other (cascaded events never deadlock).
//!
//! Seeded bugs ([`Mutant`]) are selectable at run time so that the model checker can prove
//! that its properties catch them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::MemberId;
use super::crypto::{Epoch, TgdhCrypto};
use super::error::TgdhError;
use super::message::{Body, Message, Signed};
use super::tree::{Path, PublicTree, Tree, index_of, path_of};

/// The label of the session key derived from the root secret.
pub const GROUP_KEY_LABEL: &str = "sgc tgdh group key";

/// Seeded bugs, each of which some checked property must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mutant {
    /// Merge round 1: an existing subgroup's sponsor does not refresh its share.
    JoinNoRefresh,
    /// Leave, partition and refresh: nobody draws a new share.
    LeaveNoRefresh,
    /// Joining trees are always inserted at the root instead of the insertion point.
    InsertAtRoot,
    /// Messages of another epoch are accepted.
    AcceptOtherEpoch,
    /// When several members leave at once, the last of them is not removed from the tree.
    PartitionKeepsLastLeaver,
    /// Clearing a refreshed path removes blinded keys but keeps stale secret keys above.
    KeepStalePathKeys,
}

impl Mutant {
    /// Every mutant, in a fixed order.
    pub const ALL: [Self; 6] = [
        Self::JoinNoRefresh,
        Self::LeaveNoRefresh,
        Self::InsertAtRoot,
        Self::AcceptOtherEpoch,
        Self::PartitionKeepsLastLeaver,
        Self::KeepStalePathKeys,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::JoinNoRefresh => "join-no-refresh",
            Self::LeaveNoRefresh => "leave-no-refresh",
            Self::InsertAtRoot => "insert-at-root",
            Self::AcceptOtherEpoch => "accept-other-epoch",
            Self::PartitionKeepsLastLeaver => "partition-keeps-last-leaver",
            Self::KeepStalePathKeys => "keep-stale-path-keys",
        }
    }

    /// What the seeded bug does.
    pub fn describe(self) -> &'static str {
        match self {
            Self::JoinNoRefresh => "merge round 1: an existing subgroup's sponsor does not renew its share",
            Self::LeaveNoRefresh => "leave, partition and refresh: nobody draws a new share",
            Self::InsertAtRoot => "joining trees always go to the root, not the insertion point",
            Self::AcceptOtherEpoch => "messages of another epoch are accepted",
            Self::PartitionKeepsLastLeaver => "with several leavers, the last one stays in the tree",
            Self::KeepStalePathKeys => "clearing a renewed path keeps stale secret keys above it",
        }
    }

    /// The mutant with this command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Static configuration of a member (not part of its state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This member.
    pub me: MemberId,
    /// The group the key is agreed for.
    pub group: String,
    /// A seeded bug, for model checking only.
    pub mutant: Option<Mutant>,
}

impl Config {
    /// A correct (mutant-free) configuration.
    pub fn new(me: MemberId, group: impl Into<String>) -> Self {
        Self {
            me,
            group: group.into(),
            mutant: None,
        }
    }

    fn has(&self, m: Mutant) -> bool {
        self.mutant == Some(m)
    }
}

/// Inputs of the machine, in the group's agreed order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event<P, G> {
    /// A new membership view (`view` strictly increases).
    View {
        /// View identifier from the group communication system.
        view: u64,
        /// Members of the view (this member included).
        members: BTreeSet<MemberId>,
    },
    /// A protocol message delivered in agreed order (own messages included).
    Deliver(Signed<P, G>),
    /// The local policy asks for a key refresh: broadcasts a refresh request.
    RequestRefresh,
}

/// Outputs of the machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command<P, G, K> {
    /// Broadcast this message to the group (in agreed order, to all members, self included).
    Broadcast(Signed<P, G>),
    /// The group key of `epoch` is ready.
    KeyReady {
        /// Epoch of the key.
        epoch: Epoch,
        /// The session key (derived from the group secret).
        key: K,
        /// Its public identifier.
        key_id: u64,
    },
    /// An input was rejected and changed nothing.
    Rejected(TgdhError),
}

/// Cryptographic work done while handling one input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cost {
    /// Modular exponentiations (or scalar multiplications): one per blind, one per combine.
    pub exps: u32,
    /// Signatures made.
    pub signatures: u32,
    /// Signatures verified.
    pub verifications: u32,
}

/// Everything one input produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output<P, G, K> {
    /// Commands, in order.
    pub commands: Vec<Command<P, G, K>>,
    /// Work done.
    pub cost: Cost,
}

/// Where the current run is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase<P> {
    /// Sponsors are filling holes (or the key is ready).
    Agreeing,
    /// Merge round 1: subgroup trees received so far, by sender.
    Collecting(BTreeMap<MemberId, PublicTree<P>>),
}

/// The state of one member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member<S, P> {
    /// Current epoch (`None` before the first view).
    pub epoch: Option<Epoch>,
    /// Members of the current view.
    pub view: BTreeSet<MemberId>,
    /// The key tree (`None` before the first view).
    pub tree: Option<Tree<S, P>>,
    /// Phase of the current run.
    pub phase: Phase<P>,
    /// Shares drawn so far.
    pub share_nonce: u64,
    /// Last sequence number used in an own message.
    pub seq: u64,
    /// Highest sequence number accepted per sender (replay protection).
    pub last_seq: BTreeMap<MemberId, u64>,
    /// An own broadcast of this run has not come back yet.
    pub awaiting_own: bool,
    /// The key of the current epoch has been reported.
    pub key_ready: bool,
}

impl<S, P> Default for Member<S, P> {
    fn default() -> Self {
        Self {
            epoch: None,
            view: BTreeSet::new(),
            tree: None,
            phase: Phase::Agreeing,
            share_nonce: 0,
            seq: 0,
            last_seq: BTreeMap::new(),
            awaiting_own: false,
            key_ready: false,
        }
    }
}

/// The crypto provider, configuration, entropy and output of one step.
struct Step<'a, C: TgdhCrypto> {
    crypto: &'a C,
    cfg: &'a Config,
    entropy: &'a [u8; 32],
    out: Output<C::Public, C::Signature, C::SessionKey>,
}

impl<C: TgdhCrypto> Step<'_, C> {
    fn reject(&mut self, e: TgdhError) {
        self.out.commands.push(Command::Rejected(e));
    }
}

/// A member's state for provider `C`.
pub type MemberOf<C> = Member<<C as TgdhCrypto>::Secret, <C as TgdhCrypto>::Public>;
/// A signed message for provider `C`.
pub type SignedOf<C> = Signed<<C as TgdhCrypto>::Public, <C as TgdhCrypto>::Signature>;
/// An event for provider `C`.
pub type EventOf<C> = Event<<C as TgdhCrypto>::Public, <C as TgdhCrypto>::Signature>;
/// An output for provider `C`.
pub type OutputOf<C> =
    Output<<C as TgdhCrypto>::Public, <C as TgdhCrypto>::Signature, <C as TgdhCrypto>::SessionKey>;
/// A command for provider `C`.
pub type CommandOf<C> =
    Command<<C as TgdhCrypto>::Public, <C as TgdhCrypto>::Signature, <C as TgdhCrypto>::SessionKey>;

impl<S: Clone + Eq, P: Clone + Eq + Serialize> Member<S, P> {
    /// A member that has not yet seen a view.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root secret, once computed.
    pub fn root_key(&self) -> Option<&S> {
        self.tree.as_ref()?.key()
    }

    /// This member's current share (its leaf secret).
    pub fn share(&self, me: &MemberId) -> Option<&S> {
        let tree = self.tree.as_ref()?;
        tree.at(&tree.path_to(me)?)?.key()
    }

    /// Handles one input. `entropy` is fresh randomness (used only when a share is drawn).
    pub fn handle<C>(
        &mut self,
        crypto: &C,
        cfg: &Config,
        event: EventOf<C>,
        entropy: &[u8; 32],
    ) -> OutputOf<C>
    where
        C: TgdhCrypto<Secret = S, Public = P>,
    {
        let mut st = Step {
            crypto,
            cfg,
            entropy,
            out: Output {
                commands: Vec::new(),
                cost: Cost::default(),
            },
        };
        match event {
            Event::View { view, members } => self.on_view(&mut st, view, members),
            Event::Deliver(signed) => {
                if let Err(e) = self.on_deliver(&mut st, signed) {
                    st.reject(e);
                }
            }
            Event::RequestRefresh => {
                if self.epoch.is_some() {
                    self.broadcast(&mut st, Body::Refresh);
                } else {
                    st.reject(TgdhError::InvalidView("no view yet"));
                }
            }
        }
        st.out
    }

    fn on_view<C: TgdhCrypto<Secret = S, Public = P>>(
        &mut self,
        st: &mut Step<'_, C>,
        view: u64,
        members: BTreeSet<MemberId>,
    ) {
        let me = &st.cfg.me;
        if !members.contains(me) {
            return st.reject(TgdhError::InvalidView("view does not contain this member"));
        }
        if self.epoch.is_some_and(|e| view <= e.view) {
            return st.reject(TgdhError::InvalidView("view identifier did not increase"));
        }
        self.epoch = Some(Epoch { view, refresh: 0 });
        // A member that left and comes back is a new incarnation whose sequence numbers start
        // again; replays of its old messages carry an old epoch and are rejected for that.
        self.last_seq.retain(|m, _| members.contains(m));
        self.view = members;
        let (tree, fresh) = match self.tree.take() {
            Some(t) => (t, false),
            None => (Tree::leaf(me.clone(), Some(self.new_share(st))), true),
        };
        let mut leavers: BTreeSet<MemberId> = tree.members().difference(&self.view).cloned().collect();
        if st.cfg.has(Mutant::PartitionKeepsLastLeaver) && leavers.len() >= 2 {
            leavers.pop_last();
        }
        let pruned = tree.prune(&leavers);
        self.tree = pruned.tree;
        self.start_run(st, &pruned.promoted, fresh);
    }

    /// Starts the run of the current epoch from the current tree.
    fn start_run<C: TgdhCrypto<Secret = S, Public = P>>(
        &mut self,
        st: &mut Step<'_, C>,
        promoted: &[Path],
        fresh: bool,
    ) {
        self.awaiting_own = false;
        self.key_ready = false;
        self.phase = Phase::Agreeing;
        let Some(tree) = self.tree.as_ref() else { return };
        let tree_members = tree.members();
        let newcomers = self.view.difference(&tree_members).next().is_some();
        if newcomers {
            self.phase = Phase::Collecting(BTreeMap::new());
            let sponsor = tree.rightmost().clone();
            let skip = fresh || (st.cfg.has(Mutant::JoinNoRefresh) && tree_members.len() > 1);
            if !skip {
                self.refresh(st, &sponsor);
            }
            if sponsor == st.cfg.me {
                self.send_subgroup_tree(st);
            }
        } else {
            let refresher = choose_refresher(tree, promoted);
            if !fresh && !st.cfg.has(Mutant::LeaveNoRefresh) {
                self.refresh(st, &refresher);
            }
            self.progress(st);
        }
    }

    /// `who` renews its share: everyone clears its leaf and path; `who` draws the new share.
    fn refresh<C: TgdhCrypto<Secret = S, Public = P>>(&mut self, st: &mut Step<'_, C>, who: &MemberId) {
        let share = (who == &st.cfg.me).then(|| self.new_share(st));
        let keep_stale = st.cfg.has(Mutant::KeepStalePathKeys);
        let Some(tree) = self.tree.as_mut() else { return };
        let Some(path) = tree.path_to(who) else { return };
        for depth in (0..=path.len()).rev() {
            if let Some(node) = tree.at_mut(&path[..depth]) {
                node.set_bkey(None);
                if !keep_stale || depth == path.len() {
                    node.set_key(None);
                }
            }
        }
        if let (Some(share), Some(leaf)) = (share, tree.at_mut(&path)) {
            leaf.set_key(Some(share));
        }
    }

    fn new_share<C: TgdhCrypto<Secret = S, Public = P>>(&mut self, st: &Step<'_, C>) -> S {
        self.share_nonce += 1;
        st.crypto.new_share(&st.cfg.me, self.share_nonce, st.entropy)
    }

    /// Merge round 1: broadcast this subgroup's tree with every blinded key computable here.
    fn send_subgroup_tree<C: TgdhCrypto<Secret = S, Public = P>>(&mut self, st: &mut Step<'_, C>) {
        self.compute_path(st);
        let Some(tree) = self.tree.as_ref() else { return };
        let Some(path) = tree.path_to(&st.cfg.me) else {
            return;
        };
        let mut public = tree.to_public();
        for depth in (0..=path.len()).rev() {
            let Some(node) = tree.at(&path[..depth]) else {
                continue;
            };
            if let (Some(key), None) = (node.key(), node.bkey()) {
                st.out.cost.exps += 1;
                let bkey = st.crypto.blind(key);
                if let Some(p) = public.at_mut(&path[..depth]) {
                    p.set_bkey(Some(bkey));
                }
            }
        }
        self.broadcast(st, Body::Tree(public));
    }

    /// Computes keys up the own path, reports the key when the tree is complete, and sponsors
    /// when this member sponsors a hole.
    fn progress<C: TgdhCrypto<Secret = S, Public = P>>(&mut self, st: &mut Step<'_, C>) {
        self.compute_path(st);
        let Some(tree) = self.tree.as_ref() else { return };
        if tree.complete() {
            if let (Some(root), false, Some(epoch)) = (tree.key(), self.key_ready, self.epoch) {
                let key = st.crypto.session_key(root, &st.cfg.group, epoch, GROUP_KEY_LABEL);
                let key_id = st.crypto.key_id(&key);
                self.key_ready = true;
                st.out.commands.push(Command::KeyReady { epoch, key, key_id });
            }
            return;
        }
        if self.awaiting_own || matches!(self.phase, Phase::Collecting(_)) {
            return;
        }
        let me = &st.cfg.me;
        if !tree.holes().iter().any(|h| tree.sponsor_of(h) == Some(me)) {
            return;
        }
        let Some(path) = tree.path_to(me) else { return };
        let mut bkeys = Vec::new();
        for depth in (1..=path.len()).rev() {
            let Some(node) = tree.at(&path[..depth]) else {
                continue;
            };
            if let (Some(key), None) = (node.key(), node.bkey()) {
                st.out.cost.exps += 1;
                bkeys.push((index_of(&path[..depth]), st.crypto.blind(key)));
            }
        }
        if !bkeys.is_empty() {
            self.awaiting_own = true;
            self.broadcast(st, Body::Keys(bkeys));
        }
    }

    /// Computes secret keys up the own key path as far as the sibling blinded keys allow.
    fn compute_path<C: TgdhCrypto<Secret = S, Public = P>>(&mut self, st: &mut Step<'_, C>) {
        let Some(tree) = self.tree.as_mut() else { return };
        let Some(path) = tree.path_to(&st.cfg.me) else {
            return;
        };
        for depth in (0..path.len()).rev() {
            if tree.at(&path[..depth]).and_then(Tree::key).is_some() {
                continue;
            }
            let Some(child_key) = tree.at(&path[..=depth]).and_then(Tree::key) else {
                break;
            };
            let mut sibling = path[..depth].to_vec();
            sibling.push(!path[depth]);
            let Some(sibling_bkey) = tree.at(&sibling).and_then(Tree::bkey) else {
                break;
            };
            st.out.cost.exps += 1;
            match st.crypto.combine(child_key, sibling_bkey) {
                Ok(key) => {
                    if let Some(parent) = tree.at_mut(&path[..depth]) {
                        parent.set_key(Some(key));
                    }
                }
                Err(e) => {
                    st.reject(e.into());
                    break;
                }
            }
        }
    }

    fn broadcast<C: TgdhCrypto<Secret = S, Public = P>>(&mut self, st: &mut Step<'_, C>, body: Body<P>) {
        let Some(epoch) = self.epoch else { return };
        let message = Message {
            group: st.cfg.group.clone(),
            epoch,
            sender: st.cfg.me.clone(),
            seq: self.seq + 1,
            body,
        };
        let signed = message
            .signing_bytes()
            .and_then(|bytes| st.crypto.sign(&st.cfg.me, &bytes).map_err(TgdhError::from));
        match signed {
            Ok(signature) => {
                self.seq += 1;
                st.out.cost.signatures += 1;
                st.out
                    .commands
                    .push(Command::Broadcast(Signed { message, signature }));
            }
            Err(e) => st.reject(e),
        }
    }

    fn on_deliver<C: TgdhCrypto<Secret = S, Public = P>>(
        &mut self,
        st: &mut Step<'_, C>,
        signed: SignedOf<C>,
    ) -> Result<(), TgdhError> {
        let Signed { message, signature } = signed;
        if message.group != st.cfg.group {
            return Err(TgdhError::WrongGroup(message.group));
        }
        let current = self.epoch;
        if current != Some(message.epoch) && !st.cfg.has(Mutant::AcceptOtherEpoch) {
            return Err(TgdhError::WrongEpoch {
                got: message.epoch,
                current,
            });
        }
        let sender = &message.sender;
        if !self.view.contains(sender) {
            return Err(TgdhError::NotAMember(sender.clone()));
        }
        let last = self.last_seq.get(sender).copied().unwrap_or(0);
        if message.seq <= last {
            return Err(TgdhError::Replay {
                sender: sender.clone(),
                seq: message.seq,
                last,
            });
        }
        st.out.cost.verifications += 1;
        st.crypto.verify(sender, &message.signing_bytes()?, &signature)?;
        match message.body {
            Body::Refresh => {
                let epoch = current.map(|e| Epoch {
                    view: e.view,
                    refresh: e.refresh + 1,
                });
                self.epoch = epoch;
                self.start_run(st, &[], false);
            }
            Body::Tree(tree) => self.on_tree(st, sender, tree)?,
            Body::Keys(bkeys) => self.on_keys(st, sender, bkeys)?,
        }
        self.last_seq.insert(message.sender, message.seq);
        Ok(())
    }

    fn on_tree<C: TgdhCrypto<Secret = S, Public = P>>(
        &mut self,
        st: &mut Step<'_, C>,
        sender: &MemberId,
        tree: PublicTree<P>,
    ) -> Result<(), TgdhError> {
        let Phase::Collecting(trees) = &self.phase else {
            return Err(TgdhError::Unexpected("a tree outside a merge"));
        };
        tree.check_well_formed()?;
        if tree.rightmost() != sender {
            return Err(TgdhError::MalformedTree(
                "sender is not the tree's rightmost member",
            ));
        }
        let members = tree.members();
        if !members.is_subset(&self.view) {
            return Err(TgdhError::MalformedTree("tree holds non-members"));
        }
        if trees.values().any(|t| !t.members().is_disjoint(&members)) {
            return Err(TgdhError::MalformedTree("trees overlap"));
        }
        // Blinded keys of a received tree are validated by the provider when they are used as
        // a base (every `combine` validates its input): validating all of them here would
        // cost one Legendre symbol per node of the whole tree on the critical path.
        let mut trees = trees.clone();
        trees.insert(sender.clone(), tree);
        let covered: usize = trees.values().map(|t| t.leaves().len()).sum();
        if covered < self.view.len() {
            self.phase = Phase::Collecting(trees);
            return Ok(());
        }
        self.merge(st, trees)?;
        self.progress(st);
        Ok(())
    }

    /// Merges the subgroup trees deterministically; this member's own subgroup keeps its keys.
    fn merge<C: TgdhCrypto<Secret = S, Public = P>>(
        &mut self,
        st: &mut Step<'_, C>,
        trees: BTreeMap<MemberId, PublicTree<P>>,
    ) -> Result<(), TgdhError> {
        let me = &st.cfg.me;
        let mut parts = Vec::with_capacity(trees.len());
        for public in trees.values() {
            if public.members().contains(me) {
                // A copy: a malformed tree must leave our state untouched.
                let mut local = self.tree.clone().ok_or(TgdhError::Unexpected("no local tree"))?;
                adopt(&mut local, public, me)?;
                parts.push(local);
            } else {
                parts.push(public.without_keys());
            }
        }
        parts.sort_by(|a, b| {
            b.height()
                .cmp(&a.height())
                .then_with(|| a.leftmost().cmp(b.leftmost()))
        });
        let mut parts = parts.into_iter();
        let mut base = parts.next().ok_or(TgdhError::Unexpected("no trees to merge"))?;
        for other in parts {
            let at = if st.cfg.has(Mutant::InsertAtRoot) {
                Vec::new()
            } else {
                base.insertion_point(other.height())
            };
            base.insert_at(&at, other);
        }
        self.tree = Some(base);
        self.phase = Phase::Agreeing;
        Ok(())
    }

    fn on_keys<C: TgdhCrypto<Secret = S, Public = P>>(
        &mut self,
        st: &mut Step<'_, C>,
        sender: &MemberId,
        bkeys: Vec<(u64, P)>,
    ) -> Result<(), TgdhError> {
        if matches!(self.phase, Phase::Collecting(_)) {
            return Err(TgdhError::Unexpected("blinded keys during a merge"));
        }
        let tree = self.tree.as_mut().ok_or(TgdhError::Unexpected("no tree"))?;
        let sender_path = tree
            .path_to(sender)
            .ok_or(TgdhError::MalformedTree("sender not in the tree"))?;
        let mut updates = Vec::with_capacity(bkeys.len());
        for (index, bkey) in bkeys {
            let path = path_of(index)
                .filter(|p| !p.is_empty() && sender_path.starts_with(p))
                .ok_or(TgdhError::NotOnSenderPath { index })?;
            st.crypto.validate_public(&bkey)?;
            updates.push((path, bkey));
        }
        let my_leaf = tree.path_to(&st.cfg.me);
        for (path, bkey) in updates {
            let Some(node) = tree.at_mut(&path) else { continue };
            let stale = node.bkey().is_some_and(|b| *b != bkey);
            node.set_bkey(Some(bkey));
            if stale {
                if my_leaf.as_deref() != Some(&path[..]) {
                    node.set_key(None);
                }
                tree.clear_keys_above(&path);
            }
        }
        if sender == &st.cfg.me {
            self.awaiting_own = false;
        }
        self.progress(st);
        Ok(())
    }
}

/// The refresher after a leave or partition (`promoted` non-empty) or a plain refresh: among
/// the rightmost members of the promoted subtrees (or all members), the shallowest, then the
/// rightmost.
fn choose_refresher<S, P>(tree: &Tree<S, P>, promoted: &[Path]) -> MemberId {
    let candidates: Vec<&MemberId> = if promoted.is_empty() {
        tree.leaves()
    } else {
        promoted
            .iter()
            .filter_map(|p| tree.at(p))
            .map(Tree::rightmost)
            .collect()
    };
    candidates
        .into_iter()
        .filter_map(|m| {
            tree.path_to(m)
                .map(|p| (p.len(), std::cmp::Reverse(index_of(&p)), m))
        })
        .min()
        .map(|(_, _, m)| m.clone())
        .unwrap_or_else(|| tree.rightmost().clone())
}

/// Copies the blinded keys of `public` (same structure) into `local`, dropping secret keys
/// that a changed blinded key made stale.
fn adopt<S, P: Clone + Eq>(
    local: &mut Tree<S, P>,
    public: &PublicTree<P>,
    me: &MemberId,
) -> Result<bool, TgdhError> {
    let mismatch = TgdhError::MalformedTree("own subgroup's tree differs from ours");
    match (local, public) {
        (
            Tree::Leaf { member, bkey, key },
            Tree::Leaf {
                member: pm, bkey: pb, ..
            },
        ) => {
            if member != pm {
                return Err(mismatch);
            }
            let stale = bkey.is_some() && bkey != pb;
            bkey.clone_from(pb);
            if stale && member != me {
                *key = None;
            }
            Ok(stale)
        }
        (
            Tree::Node {
                bkey,
                key,
                left,
                right,
            },
            Tree::Node {
                bkey: pb,
                left: pl,
                right: pr,
                ..
            },
        ) => {
            let stale_left = adopt(left, pl, me)?;
            let stale_right = adopt(right, pr, me)?;
            let stale = stale_left || stale_right || (bkey.is_some() && bkey != pb);
            bkey.clone_from(pb);
            if stale {
                *key = None;
            }
            Ok(stale)
        }
        _ => Err(mismatch),
    }
}
