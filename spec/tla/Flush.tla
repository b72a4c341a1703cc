------------------------------- MODULE Flush --------------------------------
(***************************************************************************)
(* The Flush Spread layer (virtual synchrony, VS, over EVS) of sgc,        *)
(* abstractly: one closed group of members, VS views installed only after *)
(* every member of the view flushed for it. Follows                        *)
(* /work/shared/design/groups-and-flush.md section 3 (protocol) and        *)
(* section 4 (VS-* properties). Property IDs: spec/vs.md.                  *)
(*                                                                         *)
(* The layer below (daemons, ring, group layer) is an idealised EVS/SP     *)
(* oracle:                                                                 *)
(*  - each member p has one inbound queue inq[p] of SP events, processed  *)
(*    in order: SP views view(g, S), data(s, k) and FLUSH_OK fok(s, g);  *)
(*  - an SP view change Change(S) puts view(g, S) (g a fresh gid) into   *)
(*    the queue of every member of S (a partition, a merge, or both); the *)
(*    others keep their SP view;                                          *)
(*  - a multicast by s is stamped with s's current SP view (the latest   *)
(*    one enqueued to s, whether s processed it or not) and appended at  *)
(*    once to the queue of every member whose current SP view is the     *)
(*    same: one agreed (total, hence FIFO) order per SP view, members     *)
(*    that change view together have received the same messages (EVS     *)
(*    failure atomicity), a message never crosses into another SP view.  *)
(* The flush layer per member (groups-and-flush.md 3.2):                   *)
(*  - state steady (Steady/Verify), req (Authorize: FLUSH_REQ delivered to *)
(*    the application, which may still send), agree (Agree: flushed, no  *)
(*    sends);                                                            *)
(*  - on an SP view: the target becomes that view; steady -> req; in      *)
(*    agree the member flushes again for it at once (automatic re-flush); *)
(*  - Flush (application): req -> agree, multicast FLUSH_OK(target);      *)
(*  - install when in agree and a FLUSH_OK for the target gid arrived     *)
(*    from every member of the target view;                               *)
(*  - an SP view removes from alive (initially the installed view's       *)
(*    members) the members of p's previous SP view that did not move with *)
(*    p (leavers = previous SP members minus p's vs_set);                  *)
(*  - data is delivered in the installed view if its sender is alive      *)
(*    (the alive filter), else dropped.                                   *)
(* Abstracted away: joins and leaves of single members (membership        *)
(* changes are SP views of the network kind; everyone starts in view 1), *)
(* the pending-change queue and invalidation: a newer SP view always      *)
(* supersedes the change in progress (cascades collapse into one VS      *)
(* view), FLUSH_RECV and the Verify/Steady distinction, vulnerable       *)
(* messages (every message is AGREED: total order makes them unneeded),  *)
(* TRANSITION signals, vs_sets, gid aging, the client-daemon session.    *)
(*                                                                         *)
(* Invariants <-> property IDs of spec/vs.md:                              *)
(*   VsViewAgree  VS-VIEWAGREE                                             *)
(*   VsSelfInc    VS-SELFINC                                               *)
(*   VsSendView   VS-SENDVIEW                                              *)
(*   VsVsync      VS-VSYNC                                                 *)
(*   VsClosed     VS-CLOSED                                                *)
(*   VsPermit     VS-PERMIT                                                *)
(* VS-ONETRANS (no TRANSITION modelled) and VS-PROGRESS (liveness) are not *)
(* checked here.                                                           *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    N,           \* members are 1..N
    MaxMsgs,     \* data messages in all
    MaxChanges,  \* SP view changes
    Mutant       \* "none" or the name of a seeded bug (see below)

Mutants == {"none",
            "install-early",      \* install once the member itself flushed (no wait for the others)
            "send-after-flush",   \* the application may send after FL_flush, before the install
            "old-view-floks"}     \* the install waits only for the FLUSH_OKs of the members of the
                                  \* old view (those of the new one), not of the merging ones

ASSUME /\ N \in Nat \ {0}
       /\ MaxMsgs \in Nat
       /\ MaxChanges \in Nat
       /\ Mutant \in Mutants

Members == 1..N
Gids == 1..(MaxChanges + 1)

\* SP events. An SP view carries, per member, its previous SP view (from which the vs_set of
\* members that moved together is computed, as the group layer's vs_sets give it).
View(g, S, pv) == [t |-> "view", s |-> 0, g |-> g, m |-> 0, mem |-> S, prev |-> pv]
Data(s, k) == [t |-> "data", s |-> s, g |-> 0, m |-> k, mem |-> {}, prev |-> <<>>]
Fok(s, g)  == [t |-> "fok", s |-> s, g |-> g, m |-> 0, mem |-> {}, prev |-> <<>>]

Range(f) == {f[i] : i \in DOMAIN f}

VARIABLES
    inq,        \* inq[p]: SP events not yet processed by p, in order
    sp,         \* sp[p]: p's current SP view (the latest enqueued to it)
    spMem,      \* spMem[g]: members of SP view g
    inst,       \* inst[p]: the VS view p has installed
    alive,      \* alive[p]: members of p's installed view not known to have left
    vstate,     \* "steady", "req" (flush requested) or "agree" (flushed)
    target,     \* the SP view p is flushing for (0 if none)
    floks,      \* pairs <<s, g>>: FLUSH_OK of s for g received by p
    msgs,       \* msgs[k]: sender, its installed view at the send, sent after its flush
    hist,       \* ghost: per member, the views it installed, each with what it delivered in it
    flushed,    \* ghost: per member, the gids it sent FLUSH_OK for
    seen        \* ghost: scenario tags reached (for the reachability witnesses)

vars == <<inq, sp, spMem, inst, alive, vstate, target, floks, msgs, hist, flushed, seen>>

Init ==
    /\ inq = [p \in Members |-> <<>>]
    /\ sp = [p \in Members |-> 1]
    /\ spMem = [g \in Gids |-> IF g = 1 THEN Members ELSE {}]
    /\ inst = [p \in Members |-> 1]
    /\ alive = [p \in Members |-> Members]
    /\ vstate = [p \in Members |-> "steady"]
    /\ target = [p \in Members |-> 0]
    /\ floks = [p \in Members |-> {}]
    /\ msgs = <<>>
    /\ hist = [p \in Members |-> <<[g |-> 1, mem |-> Members, dl |-> <<>>, vs |-> Members]>>]
    /\ flushed = [p \in Members |-> {}]
    /\ seen = {}

\* Queues Q after a multicast of event e by s: e goes to every member in s's current SP view.
MulticastTo(Q, s, e) == [q \in Members |-> IF sp[q] = sp[s] THEN Append(Q[q], e) ELSE Q[q]]
Multicast(s, e) == inq' = MulticastTo(inq, s, e)

NextGid == Cardinality({g \in Gids : spMem[g] # {}}) + 1

(***************************************************************************)
(* The layer below: SP view changes.                                       *)
(***************************************************************************)
Change(S) ==
    LET g == NextGid
        olds == {sp[q] : q \in S}
    IN /\ g \in Gids
       /\ S # {}
       /\ inq' = [q \in Members |->
                    IF q \in S THEN Append(inq[q], View(g, S, [x \in S |-> sp[x]])) ELSE inq[q]]
       /\ sp' = [q \in Members |-> IF q \in S THEN g ELSE sp[q]]
       /\ spMem' = [spMem EXCEPT ![g] = S]
       /\ seen' = seen \cup (IF \E o \in olds : spMem[o] \ S # {} THEN {"partition"} ELSE {})
                       \cup (IF Cardinality(olds) >= 2 THEN {"merge"} ELSE {})
       /\ UNCHANGED <<inst, alive, vstate, target, floks, msgs, hist, flushed>>

(***************************************************************************)
(* Application calls.                                                      *)
(***************************************************************************)
Send(p) ==
    /\ Len(msgs) < MaxMsgs
    /\ vstate[p] # "agree" \/ Mutant = "send-after-flush"
    /\ Multicast(p, Data(p, Len(msgs) + 1))
    /\ msgs' = Append(msgs, [snd |-> p, view |-> inst[p], afterFlush |-> vstate[p] = "agree"])
    /\ seen' = seen \cup (IF vstate[p] = "req" THEN {"send-in-authorize"} ELSE {})
    /\ UNCHANGED <<sp, spMem, inst, alive, vstate, target, floks, hist, flushed>>

Flush(p) ==
    /\ vstate[p] = "req"
    /\ vstate' = [vstate EXCEPT ![p] = "agree"]
    /\ Multicast(p, Fok(p, target[p]))
    /\ flushed' = [flushed EXCEPT ![p] = @ \cup {target[p]}]
    /\ UNCHANGED <<sp, spMem, inst, alive, target, floks, msgs, hist, seen>>

(***************************************************************************)
(* The flush layer processes the next SP event.                             *)
(***************************************************************************)

\* Whether p, in agree, may install its target given the FLUSH_OKs F it has.
CanInstall(p, F) ==
    LET from == {s \in Members : <<s, target[p]>> \in F}
        need == IF Mutant = "install-early" THEN {p}
                ELSE IF Mutant = "old-view-floks" THEN hist[p][Len(hist[p])].mem \cap spMem[target[p]]
                ELSE spMem[target[p]]
    IN vstate[p] = "agree" /\ target[p] # 0 /\ need \subseteq from

\* p installs its target (a record of p's new state fields).
Installed(p, F) ==
    [inst |-> target[p], alive |-> spMem[target[p]], vstate |-> "steady", target |-> 0, floks |-> F,
     \* vs: the members that moved with p from its previous view (its survivors, still alive)
     hist |-> Append(hist[p], [g |-> target[p], mem |-> spMem[target[p]], dl |-> <<>>,
                               vs |-> hist[p][Len(hist[p])].mem \cap alive[p] \cap spMem[target[p]]])]

\* Q: the queues with e removed from p's.
RecvView(p, e, Q) ==
    LET myvs == {q \in e.mem : e.prev[q] = e.prev[p]}    \* moved with p
        leavers == spMem[e.prev[p]] \ myvs
    IN
    /\ target' = [target EXCEPT ![p] = e.g]
    /\ alive' = [alive EXCEPT ![p] = @ \ leavers]
    /\ IF vstate[p] = "agree"
       THEN \* automatic re-flush for the newer view (a flush interrupted)
            /\ inq' = MulticastTo(Q, p, Fok(p, e.g))
            /\ flushed' = [flushed EXCEPT ![p] = @ \cup {e.g}]
            /\ seen' = seen \cup {"flush-interrupted"}
            /\ UNCHANGED vstate
       ELSE /\ vstate' = [vstate EXCEPT ![p] = "req"]
            /\ inq' = Q
            /\ UNCHANGED <<flushed, seen>>
    /\ UNCHANGED <<inst, floks, hist>>

RecvFok(p, e, Q) ==
    LET F == floks[p] \cup {<<e.s, e.g>>}
        r == Installed(p, F)
    IN /\ IF CanInstall(p, F)
          THEN /\ inst' = [inst EXCEPT ![p] = r.inst]
               /\ alive' = [alive EXCEPT ![p] = r.alive]
               /\ vstate' = [vstate EXCEPT ![p] = r.vstate]
               /\ target' = [target EXCEPT ![p] = r.target]
               /\ hist' = [hist EXCEPT ![p] = r.hist]
          ELSE UNCHANGED <<inst, alive, vstate, target, hist>>
       /\ floks' = [floks EXCEPT ![p] = F]
       /\ inq' = Q
       /\ UNCHANGED <<flushed, seen>>

RecvData(p, e, Q) ==
    /\ inq' = Q
    /\ IF e.s \in alive[p]
       THEN /\ hist' = [hist EXCEPT ![p][Len(hist[p])].dl = Append(@, e.m)]
            /\ seen' = seen \cup (IF vstate[p] = "agree" THEN {"deliver-in-agree"} ELSE {})
       ELSE /\ seen' = seen \cup {"dropped-by-filter"}
            /\ UNCHANGED hist
    /\ UNCHANGED <<inst, alive, vstate, target, floks, flushed>>

Recv(p) ==
    /\ inq[p] # <<>>
    /\ LET e == Head(inq[p])
           Q == [inq EXCEPT ![p] = Tail(@)]
       IN CASE e.t = "view" -> RecvView(p, e, Q)
            [] e.t = "fok"  -> RecvFok(p, e, Q)
            [] e.t = "data" -> RecvData(p, e, Q)
    /\ UNCHANGED <<sp, spMem, msgs>>

\* When the budgets are used up and all queues are drained, no action is enabled: TLC runs
\* with -deadlock (no deadlock check); such terminal states are intended.
Next ==
    \/ \E S \in SUBSET Members : Change(S)
    \/ \E p \in Members : Send(p) \/ Flush(p) \/ Recv(p)

Spec == Init /\ [][Next]_vars

(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)

\* VS-VIEWAGREE: members that install the same gid see the same members.
VsViewAgree ==
    \A p, q \in Members : \A i \in DOMAIN hist[p] : \A j \in DOMAIN hist[q] :
        hist[p][i].g = hist[q][j].g => hist[p][i].mem = hist[q][j].mem

\* VS-SELFINC: a member is in each view it installs.
VsSelfInc ==
    \A p \in Members : \A i \in DOMAIN hist[p] : p \in hist[p][i].mem

\* VS-SENDVIEW: a message sent while its sender had V installed is delivered only while the
\* receiver has V installed.
VsSendView ==
    \A p \in Members : \A i \in DOMAIN hist[p] :
        \A k \in Range(hist[p][i].dl) : msgs[k].view = hist[p][i].g

\* VS-VSYNC: if p and q install V' right after V and q is in p's vs_set for V', they delivered
\* the same messages in V.
VsVsync ==
    \A p, q \in Members : \A i \in 1..(Len(hist[p]) - 1) : \A j \in 1..(Len(hist[q]) - 1) :
        (/\ hist[p][i].g = hist[q][j].g
         /\ hist[p][i + 1].g = hist[q][j + 1].g
         /\ q \in hist[p][i + 1].vs)
        => Range(hist[p][i].dl) = Range(hist[q][j].dl)

\* VS-CLOSED: only installed members send (the sender is a member of its sending view);
\* delivery only from senders in the receiver's current view.
VsClosed ==
    /\ \A k \in DOMAIN msgs : \E i \in DOMAIN hist[msgs[k].snd] :
          hist[msgs[k].snd][i].g = msgs[k].view /\ msgs[k].snd \in hist[msgs[k].snd][i].mem
    /\ \A p \in Members : \A i \in DOMAIN hist[p] :
          \A k \in Range(hist[p][i].dl) : msgs[k].snd \in hist[p][i].mem

\* VS-PERMIT: a view is installed only after every member of it flushed for it; no sends
\* between a flush and the next install.
VsPermit ==
    /\ \A p \in Members : \A i \in 2..Len(hist[p]) :
          \A q \in hist[p][i].mem : hist[p][i].g \in flushed[q]
    /\ \A k \in DOMAIN msgs : ~msgs[k].afterFlush

(***************************************************************************)
(* Reachability: each Never* predicate must be violated (FlushReach.cfg).  *)
(***************************************************************************)
\* An SP partition, and a VS view with fewer members installed after it.
NeverPartitionInstall ==
    ~("partition" \in seen /\ \E p \in Members : \E i \in 2..Len(hist[p]) :
                                 hist[p][i].mem \subseteq hist[p][i - 1].mem
                                 /\ hist[p][i].mem # hist[p][i - 1].mem)
\* An SP merge, and a VS view joining members of two earlier views installed.
NeverMergeInstall ==
    ~("merge" \in seen /\ \E p \in Members : \E i \in 2..Len(hist[p]) :
                             ~(hist[p][i].mem \subseteq hist[p][i - 1].mem))
\* A flush interrupted by a further SP view (automatic re-flush).
NeverFlushInterrupted == "flush-interrupted" \notin seen
\* A message sent after the flush request (Authorize), before the flush.
NeverSendInAuthorize == "send-in-authorize" \notin seen
\* A message delivered in the old view while the receiver waits for FLUSH_OKs.
NeverDeliverInAgree == "deliver-in-agree" \notin seen
\* A message dropped by the sender filter (sent in a view the receiver never had).
NeverDroppedByFilter == "dropped-by-filter" \notin seen
\* A message delivered in a view installed after a change.
NeverDeliveredAfterChange ==
    ~\E p \in Members : Len(hist[p]) >= 2 /\ hist[p][Len(hist[p])].dl # <<>>

=============================================================================
