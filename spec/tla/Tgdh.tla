-------------------------------- MODULE Tgdh --------------------------------
(***************************************************************************)
(* TGDH (Tree-based Group Diffie-Hellman) key tree of sgc under membership *)
(* events, with symbolic keys. Follows the rules of the Rust state machine *)
(* model/src/tgdh/member.rs and tree.rs, and the audits of                 *)
(* model/src/tgdh/check.rs and symbolic.rs. Property IDs: spec/tgdh.md.    *)
(*                                                                         *)
(* One group (one component of the group communication system). Each      *)
(* event is a complete TGDH run, applied atomically: message rounds,      *)
(* sponsors and interleavings are abstracted away (no cascades, no        *)
(* replays). What is kept:                                                 *)
(*  - the key tree: full binary tree, leaves = members, blinded keys at   *)
(*    nodes (the inner term of each blinded key is stored);               *)
(*  - join  = merge with a one-member group: the rightmost member of the  *)
(*    existing tree renews its share and publishes its subgroup tree with *)
(*    every blinded key up to the root; the newcomer publishes its fresh  *)
(*    share blinded; the trees are sorted (taller first, then leftmost    *)
(*    member) and the second is inserted into the first at the insertion *)
(*    point (shallowest, then rightmost node that does not raise the      *)
(*    height; else the root); the new node and its ancestors lose keys;   *)
(*  - leave of a set of members (a single leave, or the side that stays   *)
(*    in a partition): each removed leaf's sibling subtree is promoted    *)
(*    into its parent's place, every node above a change loses its        *)
(*    blinded key; the refresher (shallowest, then rightmost, of the      *)
(*    rightmost members of the promoted subtrees) renews its share and   *)
(*    everyone clears its path;                                           *)
(*  - refresh: the shallowest, then rightmost, member renews its share;   *)
(*  - sponsors then fill every missing blinded key bottom-up with the     *)
(*    combination of its children's keys (abstracting the sponsor rounds);*)
(*    every non-root blinded key is published;                            *)
(*  - every member computes the group secret from its own share and the   *)
(*    blinded keys of its co-path (per-member computation, one shared     *)
(*    public tree).                                                       *)
(* Symbolic keys: a share is an atom Share(p, n) (the n-th share of p), an *)
(* internal node's key is the unordered pair {left key, right key}         *)
(* (Diffie-Hellman is commutative). An adversary derives a term if it     *)
(* holds it, or if it derives one child and derives or sees the blinded   *)
(* key of the other (Knowledge::derives in symbolic.rs).                  *)
(*                                                                         *)
(* Invariants <-> property IDs of spec/tgdh.md:                           *)
(*   TgdhTree             tgdh-tree                                       *)
(*   TgdhPathSecrets      tgdh-path-secrets (own share held; the keys a   *)
(*                        member computes on its path match the published *)
(*                        blinded keys)                                   *)
(*   TgdhAgreement        tgdh-agreement                                  *)
(*   TgdhLiveness         tgdh-liveness (every member can compute the key *)
(*                        once the run completed)                         *)
(*   TgdhKeyIndependence  tgdh-key-independence                           *)
(*   TgdhFreshness        tgdh-freshness                                  *)
(*   TgdhBackwardSecrecy  tgdh-backward-secrecy                           *)
(*   TgdhForwardSecrecy   tgdh-forward-secrecy                            *)
(* tgdh-epoch-hygiene is not modelled (no messages, no epochs on the wire).*)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    N,            \* principals are 1..N (their order is the member order)
    InitialSize,  \* the initial group 1..InitialSize, formed by joins in order
    MaxEvents,    \* membership events and refreshes after the initial group
    Mutant        \* "none" or the name of a seeded bug (see below)

Mutants == {"none",
            "leave-no-refresh",            \* leave/refresh: nobody renews a share
            "join-no-refresh",             \* join: the existing group's sponsor keeps its share
            "insert-at-root",              \* joining trees always go to the root
            "partition-keeps-last-leaver", \* several leavers: the last one stays in the tree
            "refresh-keeps-blinded-keys"}  \* the refresher's path keeps its old blinded keys

ASSUME /\ N \in Nat \ {0}
       /\ InitialSize \in 1..N
       /\ MaxEvents \in Nat
       /\ Mutant \in Mutants

Principals == 1..N

Max(a, b) == IF a >= b THEN a ELSE b
MaxOf(S) == CHOOSE x \in S : \A y \in S : x >= y
MinOf(S) == CHOOSE x \in S : \A y \in S : x <= y
CeilLog2(n) == CHOOSE k \in 0..n : 2^k >= n /\ (k = 0 \/ 2^(k - 1) < n)

(***************************************************************************)
(* Symbolic key terms (all records share one domain so TLC can compare).  *)
(***************************************************************************)
NoKey == [k |-> "none", p |-> 0, n |-> 0, c |-> {}]
Share(p, n) == [k |-> "share", p |-> p, n |-> n, c |-> {}]
NodeKey(a, b) == [k |-> "node", p |-> 0, n |-> 0, c |-> {a, b}]
Combine(a, b) == IF a = NoKey \/ b = NoKey THEN NoKey ELSE NodeKey(a, b)

RECURSIVE SharesOf(_)
SharesOf(t) ==
    IF t.k = "share" THEN {t}
    ELSE IF t.k = "node" THEN UNION {SharesOf(x) : x \in t.c}
    ELSE {}

\* Knowledge::derives: secrets S held outright, P the terms whose blinded key is public.
RECURSIVE Derives(_, _, _)
Derives(t, S, P) ==
    \/ t \in S
    \/ /\ t.k = "node"
       /\ \E a \in t.c : \E b \in t.c \ {a} :
             /\ Derives(a, S, P)
             /\ (b \in P \/ Derives(b, S, P))

(***************************************************************************)
(* Key trees. A path is a sequence of sides from the root (0 left, 1      *)
(* right); heap index: root 1, children 2i and 2i+1 (as in tree.rs).      *)
(***************************************************************************)
Leaf(p, bk) == [leaf |-> TRUE, m |-> p, bk |-> bk]
Node(l, r, bk) == [leaf |-> FALSE, l |-> l, r |-> r, bk |-> bk]

RECURSIVE Members(_)
Members(t) == IF t.leaf THEN {t.m} ELSE Members(t.l) \cup Members(t.r)

RECURSIVE LeafCount(_)
LeafCount(t) == IF t.leaf THEN 1 ELSE LeafCount(t.l) + LeafCount(t.r)

RECURSIVE Height(_)
Height(t) == IF t.leaf THEN 0 ELSE 1 + Max(Height(t.l), Height(t.r))

RECURSIVE Rightmost(_)
Rightmost(t) == IF t.leaf THEN t.m ELSE Rightmost(t.r)

RECURSIVE Leftmost(_)
Leftmost(t) == IF t.leaf THEN t.m ELSE Leftmost(t.l)

RECURSIVE PathTo(_, _)
PathTo(t, p) ==
    IF t.leaf THEN <<>>
    ELSE IF p \in Members(t.l) THEN <<0>> \o PathTo(t.l, p)
    ELSE <<1>> \o PathTo(t.r, p)

RECURSIVE At(_, _)
At(t, q) == IF q = <<>> THEN t ELSE At(IF Head(q) = 0 THEN t.l ELSE t.r, Tail(q))

RECURSIVE Index(_)
Index(q) == IF q = <<>> THEN 1 ELSE 2 * Index(SubSeq(q, 1, Len(q) - 1)) + q[Len(q)]

RECURSIVE Paths(_)
Paths(t) ==
    {<<>>} \cup
    (IF t.leaf THEN {}
     ELSE {<<0>> \o q : q \in Paths(t.l)} \cup {<<1>> \o q : q \in Paths(t.r)})

\* Shallowest, then rightmost (largest heap index) of the paths Q.
Best(Q) == CHOOSE q \in Q : \A r \in Q : Len(q) < Len(r) \/ (Len(q) = Len(r) /\ Index(q) >= Index(r))

\* Clears the blinded key at q and at every ancestor of q.
RECURSIVE ClearPath(_, _)
ClearPath(t, q) ==
    IF q = <<>> THEN [t EXCEPT !.bk = NoKey]
    ELSE IF Head(q) = 0 THEN [t EXCEPT !.bk = NoKey, !.l = ClearPath(t.l, Tail(q))]
    ELSE [t EXCEPT !.bk = NoKey, !.r = ClearPath(t.r, Tail(q))]

RECURSIVE ReplaceAt(_, _, _)
ReplaceAt(t, q, x) ==
    IF q = <<>> THEN x
    ELSE IF Head(q) = 0 THEN [t EXCEPT !.l = ReplaceAt(t.l, Tail(q), x)]
    ELSE [t EXCEPT !.r = ReplaceAt(t.r, Tail(q), x)]

\* Every blinded key (inner term) present in t.
RECURSIVE BKeys(_)
BKeys(t) ==
    (IF t.bk = NoKey THEN {} ELSE {t.bk}) \cup
    (IF t.leaf THEN {} ELSE BKeys(t.l) \cup BKeys(t.r))

\* Sponsors fill every missing blinded key, bottom-up: a leaf gets its member's current
\* share, a node the combination of its children's keys. FillAll includes the root
\* (round 1 of a merge publishes the subgroup root); Complete leaves the root without one.
RECURSIVE FillAll(_, _)
FillAll(t, sh) ==
    IF t.leaf THEN IF t.bk = NoKey THEN [t EXCEPT !.bk = sh[t.m]] ELSE t
    ELSE LET l == FillAll(t.l, sh)
             r == FillAll(t.r, sh)
         IN [t EXCEPT !.l = l, !.r = r,
                      !.bk = IF t.bk = NoKey THEN NodeKey(l.bk, r.bk) ELSE t.bk]
Complete(t, sh) == [FillAll(t, sh) EXCEPT !.bk = NoKey]

\* The key member p computes for the root of t: its own share combined up its path with
\* the blinded keys of its co-path (NoKey if one is missing).
RECURSIVE PathKey(_, _, _)
PathKey(t, p, sh) ==
    IF t.leaf THEN sh[p]
    ELSE IF p \in Members(t.l) THEN Combine(PathKey(t.l, p, sh), t.r.bk)
    ELSE Combine(PathKey(t.r, p, sh), t.l.bk)

\* Every node on p's path with a blinded key carries the key p computes for it.
RECURSIVE PathConsistent(_, _, _)
PathConsistent(t, p, sh) ==
    /\ t.bk = NoKey \/ t.bk = PathKey(t, p, sh)
    /\ ~t.leaf => PathConsistent(IF p \in Members(t.l) THEN t.l ELSE t.r, p, sh)

\* Blinded keys are downward closed.
RECURSIVE DownClosed(_)
DownClosed(t) ==
    t.leaf \/ /\ t.bk # NoKey => (t.l.bk # NoKey /\ t.r.bk # NoKey)
              /\ DownClosed(t.l)
              /\ DownClosed(t.r)

\* Removes the leaves of L (tree.rs prune): a removed leaf's sibling subtree takes its
\* parent's place keeping its keys; every node above a change loses its blinded key.
\* Result: gone (nothing left), t, changed, pr = paths (in the new tree) of promoted subtrees.
RECURSIVE Prune(_, _)
Prune(t, L) ==
    IF t.leaf
    THEN [gone |-> t.m \in L, t |-> t, ch |-> t.m \in L, pr |-> {}]
    ELSE LET a == Prune(t.l, L)
             b == Prune(t.r, L)
         IN CASE a.gone /\ b.gone -> [gone |-> TRUE, t |-> t, ch |-> TRUE, pr |-> {}]
              [] ~a.gone /\ b.gone -> [gone |-> FALSE, t |-> a.t, ch |-> TRUE, pr |-> a.pr \cup {<<>>}]
              [] a.gone /\ ~b.gone -> [gone |-> FALSE, t |-> b.t, ch |-> TRUE, pr |-> b.pr \cup {<<>>}]
              [] ~a.gone /\ ~b.gone ->
                   LET ch == a.ch \/ b.ch
                   IN [gone |-> FALSE,
                       t |-> Node(a.t, b.t, IF ch THEN NoKey ELSE t.bk),
                       ch |-> ch,
                       pr |-> {<<0>> \o q : q \in a.pr} \cup {<<1>> \o q : q \in b.pr}]

\* Insertion point for a tree of height h: shallowest, then rightmost, node where the
\* insertion does not raise the height; the root if there is none.
InsertionPoint(t, h) ==
    LET ok == {q \in Paths(t) : Len(q) + 1 + Max(Height(At(t, q)), h) <= Height(t)}
    IN IF ok = {} THEN <<>> ELSE Best(ok)

(***************************************************************************)
(* Runs. A state record s has the fields of the variables below.          *)
(***************************************************************************)

\* Member w renews its share: everyone clears w's leaf and path; w draws a new share.
Renew(r, w) ==
    [r EXCEPT !.nonce[w] = @ + 1,
              !.share[w] = Share(w, r.nonce[w] + 1),
              !.tree = IF Mutant = "refresh-keeps-blinded-keys" THEN @
                       ELSE ClearPath(@, PathTo(@, w))]

\* Completes a run without newcomers from tree t: the refresher among candidate members C
\* (shallowest, then rightmost) renews its share, then sponsors fill the holes.
RefreshRun(t, sh, nc, C) ==
    LET who == CHOOSE w \in C : PathTo(t, w) = Best({PathTo(t, x) : x \in C})
        r0 == [tree |-> t, share |-> sh, nonce |-> nc]
        r1 == IF Mutant = "leave-no-refresh" THEN r0 ELSE Renew(r0, who)
        t2 == Complete(r1.tree, r1.share)
    IN [tree |-> t2, share |-> r1.share, nonce |-> r1.nonce, public |-> BKeys(t2)]

\* Join of p (a merge with the one-member group {p}).
JoinRun(t, sh, nc, p) ==
    LET sponsor == Rightmost(t)
        skip == Mutant = "join-no-refresh" /\ LeafCount(t) > 1
        r0 == [tree |-> t, share |-> sh, nonce |-> nc]
        r1 == IF skip THEN r0 ELSE Renew(r0, sponsor)
        t1 == FillAll(r1.tree, r1.share)              \* round 1 tree of the existing group
        nc2 == [r1.nonce EXCEPT ![p] = @ + 1]
        sh2 == [r1.share EXCEPT ![p] = Share(p, nc2[p])] \* the newcomer's fresh share
        new == Leaf(p, sh2[p])                       \* its round 1 tree
        oldFirst == Height(t1) > 0 \/ Leftmost(t1) < p  \* taller first, then leftmost member
        base == IF oldFirst THEN t1 ELSE new
        other == IF oldFirst THEN new ELSE t1
        at == IF Mutant = "insert-at-root" THEN <<>> ELSE InsertionPoint(base, Height(other))
        t2 == ClearPath(ReplaceAt(base, at, Node(At(base, at), other, NoKey)), at)
        t3 == Complete(t2, sh2)
    IN [tree |-> t3, share |-> sh2, nonce |-> nc2,
        public |-> BKeys(t1) \cup {sh2[p]} \cup BKeys(t3)]

\* Leave of the set L (one member, or the other side of a partition).
LeaveRun(t, sh, nc, L) ==
    LET L1 == IF Mutant = "partition-keeps-last-leaver" /\ Cardinality(L) >= 2
              THEN L \ {MaxOf(L)} ELSE L
        pr == Prune(t, L1)
        C == {Rightmost(At(pr.t, q)) : q \in pr.pr}
    IN RefreshRun(pr.t, sh, nc, IF C = {} THEN Members(pr.t) ELSE C)

\* The group secret as its smallest member computes it.
Secret(r, g) == PathKey(r.tree, MinOf(g), r.share)

\* State after a run with result r, new group g, epoch (v, rf).
After(s, r, g, v, rf, jo, ev) ==
    [tree |-> r.tree, group |-> g, share |-> r.share, nonce |-> r.nonce,
     view |-> v, refresh |-> rf, events |-> s.events, joinsOnly |-> jo,
     public |-> s.public \cup r.public,
     held |-> [p \in Principals |-> IF p \in g THEN s.held[p] \cup {r.share[p]} ELSE s.held[p]],
     views |-> [p \in Principals |-> IF p \in g THEN s.views[p] \cup {v} ELSE s.views[p]],
     epochs |-> Append(s.epochs, [view |-> v, refresh |-> rf, members |-> g, root |-> Secret(r, g)]),
     last |-> ev]

AfterJoin(s, p) ==
    After(s, JoinRun(s.tree, s.share, s.nonce, p), s.group \cup {p}, s.view + 1, 0,
          s.joinsOnly, <<"join", p>>)

AfterLeave(s, L) ==
    After(s, LeaveRun(s.tree, s.share, s.nonce, L), s.group \ L, s.view + 1, 0,
          FALSE, <<"leave", L>>)

AfterRefresh(s) ==
    After(s, RefreshRun(s.tree, s.share, s.nonce, s.group), s.group, s.view, s.refresh + 1,
          s.joinsOnly, <<"refresh">>)

\* Principal 1 alone, then joins of 2 .. k in order.
First ==
    LET sh == [p \in Principals |-> IF p = 1 THEN Share(1, 1) ELSE NoKey]
    IN [tree |-> Leaf(1, NoKey), group |-> {1}, share |-> sh,
        nonce |-> [p \in Principals |-> IF p = 1 THEN 1 ELSE 0],
        view |-> 1, refresh |-> 0, events |-> 0, joinsOnly |-> TRUE, public |-> {},
        held |-> [p \in Principals |-> IF p = 1 THEN {sh[1]} ELSE {}],
        views |-> [p \in Principals |-> IF p = 1 THEN {1} ELSE {}],
        epochs |-> <<[view |-> 1, refresh |-> 0, members |-> {1}, root |-> sh[1]]>>,
        last |-> <<"start", 1>>]
RECURSIVE Setup(_)
Setup(k) == IF k = 1 THEN First ELSE AfterJoin(Setup(k - 1), k)

(***************************************************************************)
(* The specification.                                                      *)
(***************************************************************************)
VARIABLES
    tree,       \* the (public) key tree, with the inner terms of its blinded keys
    group,      \* members of the current view
    share,      \* each principal's current share (NoKey before its first)
    nonce,      \* shares drawn so far per principal
    view,       \* current view identifier
    refresh,    \* refreshes within the view
    events,     \* events so far (after the initial group)
    joinsOnly,  \* only joins shaped the tree
    public,     \* ghost: inner terms of every blinded key ever published
    held,       \* ghost: every share each principal ever held
    views,      \* ghost: views each principal was a member of
    epochs,     \* ghost: agreed group secret of every epoch, in order
    last        \* the last event (for reading traces)

vars == <<tree, group, share, nonce, view, refresh, events, joinsOnly, public, held, views,
          epochs, last>>

Cur == [tree |-> tree, group |-> group, share |-> share, nonce |-> nonce, view |-> view,
        refresh |-> refresh, events |-> events, joinsOnly |-> joinsOnly, public |-> public,
        held |-> held, views |-> views, epochs |-> epochs, last |-> last]

Assign(s, e) ==
    /\ tree' = s.tree /\ group' = s.group /\ share' = s.share /\ nonce' = s.nonce
    /\ view' = s.view /\ refresh' = s.refresh /\ events' = e /\ joinsOnly' = s.joinsOnly
    /\ public' = s.public /\ held' = s.held /\ views' = s.views /\ epochs' = s.epochs
    /\ last' = s.last

Init ==
    LET s == Setup(InitialSize)
    IN /\ tree = s.tree /\ group = s.group /\ share = s.share /\ nonce = s.nonce
       /\ view = s.view /\ refresh = s.refresh /\ events = 0 /\ joinsOnly = s.joinsOnly
       /\ public = s.public /\ held = s.held /\ views = s.views /\ epochs = s.epochs
       /\ last = s.last

Join(p) ==
    /\ p \notin group
    /\ Assign(AfterJoin(Cur, p), events + 1)

Leave(L) ==
    /\ L # {} /\ L # group
    /\ Assign(AfterLeave(Cur, L), events + 1)

Refresh ==
    Assign(AfterRefresh(Cur), events + 1)

\* When the events are used up no action is enabled: TLC runs with -deadlock (no
\* deadlock check); these terminal states are intended.
Next ==
    /\ events < MaxEvents
    /\ \/ \E p \in Principals \ group : Join(p)
       \/ \E L \in SUBSET group : Leave(L)
       \/ Refresh

Spec == Init /\ [][Next]_vars

(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)

\* tgdh-tree: full binary tree (by construction) of distinct members, leaves = the view,
\* blinded keys downward closed, minimal height ceil(log2 n) if shaped only by joins.
\* (Runs are atomic, so every state is quiescent.)
TgdhTree ==
    /\ LeafCount(tree) = Cardinality(Members(tree))
    /\ Members(tree) = group
    /\ DownClosed(tree)
    /\ joinsOnly => Height(tree) = CeilLog2(Cardinality(group))

\* tgdh-path-secrets: every member holds its share, and the keys it computes on its path
\* match the published blinded keys there (no stale keys).
TgdhPathSecrets ==
    \A p \in group : share[p] # NoKey /\ PathConsistent(tree, p, share)

\* tgdh-liveness: once the run completed, every member can compute the group secret.
TgdhLiveness ==
    \A p \in group : PathKey(tree, p, share) # NoKey

\* tgdh-agreement: all members compute the same group secret.
TgdhAgreement ==
    \A p, q \in group : PathKey(tree, p, share) = PathKey(tree, q, share)

\* tgdh-freshness: every epoch's secret is distinct from every other, and contains a share
\* that no earlier secret contained.
TgdhFreshness ==
    \A i \in DOMAIN epochs :
        /\ \A j \in DOMAIN epochs : i # j => epochs[i].root # epochs[j].root
        /\ ~(SharesOf(epochs[i].root) \subseteq UNION {SharesOf(epochs[j].root) : j \in 1..(i - 1)})

\* tgdh-key-independence: no epoch's secret follows from all the other epochs' secrets and
\* every published blinded key.
TgdhKeyIndependence ==
    \A i \in DOMAIN epochs :
        ~Derives(epochs[i].root, {epochs[j].root : j \in DOMAIN epochs \ {i}}, public)

\* Whether principals Q together (every share they ever held, every published blinded key)
\* derive the secret of epoch e.
CoalitionDerives(Q, e) == Derives(e.root, UNION {held[p] : p \in Q}, public)

\* tgdh-backward-secrecy: those who joined after an epoch cannot derive its secret.
TgdhBackwardSecrecy ==
    \A i \in DOMAIN epochs :
        LET e == epochs[i]
        IN ~CoalitionDerives({p \in Principals \ e.members : \E v \in views[p] : v > e.view}, e)

\* tgdh-forward-secrecy: those who left before an epoch cannot derive its secret.
TgdhForwardSecrecy ==
    \A i \in DOMAIN epochs :
        LET e == epochs[i]
        IN ~CoalitionDerives({p \in Principals \ e.members : \E v \in views[p] : v < e.view}, e)

(***************************************************************************)
(* Reachability: the invariants above are not vacuous. Each Never*        *)
(* predicate below must be violated (TgdhReach.cfg, one TLC run each).   *)
(***************************************************************************)
\* A join inserted below the root (insertion point is not the root).
NeverJoinBelowRoot == ~(last[1] = "join" /\ Len(PathTo(tree, last[2])) >= 2)
\* A single member left.
NeverLeave == ~(last[1] = "leave" /\ Cardinality(last[2]) = 1)
\* Several members left at once (the other side of a partition).
NeverPartition == ~(last[1] = "leave" /\ Cardinality(last[2]) >= 2)
\* A refresh.
NeverRefresh == ~(last[1] = "refresh")
\* A principal that had left joined again.
NeverRejoin == ~(last[1] = "join" /\ views[last[2]] # {view})

=============================================================================
