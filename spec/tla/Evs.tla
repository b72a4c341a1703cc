-------------------------------- MODULE Evs ---------------------------------
(***************************************************************************)
(* Extended Virtual Synchrony (EVS) of the sgc ring, abstractly. Follows   *)
(* /work/shared/design/ring-protocol.md: configurations (section 3), the   *)
(* installation and its delivery rule (3.4-3.6) and the EVS guarantees     *)
(* (section 4). Property IDs: spec/evs.md.                                 *)
(*                                                                         *)
(* What is kept:                                                           *)
(*  - daemons 1..N, each in one regular configuration (ring) at a time;    *)
(*    they start together in ring 1;                                       *)
(*  - the token ring of a regular configuration as one agreed sequence of  *)
(*    messages (seq[r]): a submit appends (the token holder's next seq);  *)
(*    each member holds any subset of the positions (loss, out of order;   *)
(*    the sender holds its own at once) and delivers contiguously: Agreed *)
(*    when the next position is held, Safe only once every member of the  *)
(*    ring holds every position up to it (the safe line);                 *)
(*  - a membership change is one atomic step Install(S): the live daemons  *)
(*    S (from one or several rings: partition, merge, crash exclusion,    *)
(*    or the same members again) form the new ring n. Per old ring R, the *)
(*    transitional members are T = {p in S : reg[p] = R} (by old ring id). *)
(*    Recovery gives every member of T the union of T's holdings of R;    *)
(*    then each member of T runs the delivery rule of 3.6: A) deliver in  *)
(*    R up to hd_max, then on while the next message is held and not Safe; *)
(*    B) install the transitional configuration (n, R) with members T;    *)
(*    C) deliver the remaining held messages of R in (n, R), after the    *)
(*    first hole only those whose sender is in F = T; D) install regular  *)
(*    n with members S;                                                   *)
(*  - daemons of R outside S stay in R: they go on receiving, delivering  *)
(*    and sending there (the token may still reach them), and meet the    *)
(*    departed only in later rings;                                       *)
(*  - crashes: a crashed daemon stops; it is never restarted.             *)
(* Abstracted away: tokens, retransmission requests, gather/commit (the   *)
(* commit token is the atomic Install), ring-id choice (ring ids are      *)
(* 1, 2, ... in installation order), cascaded failures during Commit or   *)
(* Recovery and configurations installed by some but not all members     *)
(* (hence the commit set: F = T), restarts and incarnations, pending      *)
(* (not yet broadcast) messages: a submit is its broadcast. A departed   *)
(* member's holdings of R, as the safe line of R's remaining members sees *)
(* them, are frozen at its departure (before its recovery exchange).      *)
(*                                                                         *)
(* Ghost history per daemon (hist): the configurations it installed, in   *)
(* order, each with its members and the messages delivered in it, in      *)
(* order (the install/delivery log of model/src/ring/props.rs, grouped).  *)
(* Bound: messages are submitted only while a further membership change  *)
(* can still happen (a message of the last ring never meets a change).   *)
(*                                                                         *)
(* Invariants <-> property IDs of spec/evs.md:                            *)
(*   EvsNoDup      EVS-NODUP                                              *)
(*   EvsSelf       EVS-SELF (a live sender has delivered its message once *)
(*                 it left the message's ring)                            *)
(*   EvsConfAgree  EVS-CONFAGREE                                          *)
(*   EvsTrans      EVS-TRANS                                              *)
(*   EvsSameView   EVS-SAMEVIEW                                           *)
(*   EvsVsync      EVS-VSYNC                                              *)
(*   EvsAgreed     EVS-AGREED                                             *)
(*   EvsCausal     EVS-CAUSAL                                             *)
(*   EvsSafe       EVS-SAFE (both halves; "eventually" as: a live member  *)
(*                 that moved on from the configuration delivered it)     *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    N,           \* daemons are 1..N
    MaxMsgs,     \* client messages in all
    SafeMsgs,    \* ids of the messages sent Safe (the others are Agreed)
    MaxChanges,  \* membership changes (installations of a new ring)
    MaxCrashes,  \* crashes
    Mutant       \* "none" or the name of a seeded bug (see below)

Mutants == {"none",
            "skip-trans-delivery",   \* phase C omitted: the transitional configuration delivers nothing
            "no-hole-rule",          \* phase C delivers after a hole from any sender (M2)
            "no-exchange",           \* no recovery exchange: each member of T uses its own holdings (M3)
            "safe-own-receipt",      \* Safe delivered once the daemon itself holds it (M1)
            "trans-by-membership",   \* T = S \cap members(R), not by old ring id (M5)
            "deliver-past-gap"}      \* in a regular configuration, deliver past one missing message

ASSUME /\ N \in Nat \ {0}
       /\ MaxMsgs \in Nat
       /\ SafeMsgs \subseteq 1..MaxMsgs
       /\ MaxChanges \in Nat
       /\ MaxCrashes \in Nat
       /\ Mutant \in Mutants

Daemons == 1..N
Rings == 1..(MaxChanges + 1)

MaxOf(S) == CHOOSE x \in S : \A y \in S : x >= y
MinOf(S) == CHOOSE x \in S : \A y \in S : x <= y

\* Configuration ids: regular n, transitional (n, r) (belongs to r). Log entries.
Reg(n) == [k |-> "reg", n |-> n, r |-> 0]
Trans(n, r) == [k |-> "trans", n |-> n, r |-> r]
NoConf == [k |-> "none", n |-> 0, r |-> 0]
\* One entry of a daemon's history: configuration c installed with members M; then the
\* messages dl delivered in it.
Conf(c, M, dl) == [c |-> c, mem |-> M, dl |-> dl]
\* A history h with the messages ms delivered in its latest configuration.
AddDl(h, ms) == [h EXCEPT ![Len(h)].dl = @ \o ms]

VARIABLES
    up,        \* live daemons
    reg,       \* each daemon's current (latest installed) regular configuration
    hd,        \* positions of its current ring delivered (a prefix 1..hd)
    rcv,       \* rcv[p][r]: positions of ring r that p holds (frozen once p left r)
    seq,       \* seq[r]: the agreed sequence of ring r (message ids)
    mem,       \* mem[r]: members of regular configuration r
    msgs,      \* msgs[m]: sender, ring and position, service, causal predecessors
    hist,      \* ghost: per daemon, its configurations and deliveries in order
    everRcv,   \* ghost: message ids each daemon ever held
    crashes,   \* crashes so far
    seen       \* ghost: scenario tags reached (for the reachability witnesses)

vars == <<up, reg, hd, rcv, seq, mem, msgs, hist, everRcv, crashes, seen>>

Init ==
    /\ up = [p \in Daemons |-> TRUE]
    /\ reg = [p \in Daemons |-> 1]
    /\ hd = [p \in Daemons |-> 0]
    /\ rcv = [p \in Daemons |-> [r \in Rings |-> {}]]
    /\ seq = [r \in Rings |-> <<>>]
    /\ mem = [r \in Rings |-> IF r = 1 THEN Daemons ELSE {}]
    /\ msgs = <<>>
    /\ hist = [p \in Daemons |-> <<Conf(Reg(1), Daemons, <<>>)>>]
    /\ everRcv = [p \in Daemons |-> {}]
    /\ crashes = 0
    /\ seen = {}

\* Rings are numbered in installation order (ring 1 is the initial one).
NextRing == Cardinality({r \in Rings : mem[r] # {}}) + 1
ChangesLeft == NextRing <= MaxChanges + 1
IsSafe(m) == msgs[m].safe

(***************************************************************************)
(* Normal operation in a regular configuration.                            *)
(***************************************************************************)

\* A client of p submits message k; p broadcasts it on its ring (next position) and holds it.
Submit(p) ==
    LET R == reg[p]
        k == Len(msgs) + 1
        pos == Len(seq[R]) + 1
    IN /\ up[p]
       /\ Len(msgs) < MaxMsgs
       /\ ChangesLeft
       /\ seq' = [seq EXCEPT ![R] = Append(@, k)]
       /\ rcv' = [rcv EXCEPT ![p][R] = @ \cup {pos}]
       /\ everRcv' = [everRcv EXCEPT ![p] = @ \cup {k}]
       /\ msgs' = Append(msgs,
             [snd |-> p, ring |-> R, pos |-> pos, safe |-> k \in SafeMsgs,
              \* EVS-CAUSAL: what p delivered or sent in this ring before
              pre |-> {seq[R][i] : i \in 1..hd[p]}
                      \cup {m \in 1..Len(msgs) : msgs[m].snd = p /\ msgs[m].ring = R}])
       /\ UNCHANGED <<up, reg, hd, mem, hist, crashes, seen>>

\* p receives position i of its ring (a broadcast or a retransmission; any order).
Receive(p, i) ==
    LET R == reg[p]
    IN /\ up[p]
       /\ i \in 1..Len(seq[R]) \ rcv[p][R]
       /\ rcv' = [rcv EXCEPT ![p][R] = @ \cup {i}]
       /\ everRcv' = [everRcv EXCEPT ![p] = @ \cup {seq[R][i]}]
       /\ UNCHANGED <<up, reg, hd, seq, mem, msgs, hist, crashes, seen>>

\* Every member of ring R holds every position 1..i (the safe line of R is at least i).
SafeLine(R, i, p) ==
    IF Mutant = "safe-own-receipt" THEN i \in rcv[p][R]
    ELSE \A q \in mem[R] : 1..i \subseteq rcv[q][R]

\* p delivers the next position of its ring in the regular configuration. (Mutant
\* deliver-past-gap: if the next one is missing, the one after it is delivered.)
Deliver(p) ==
    LET R == reg[p]
        i == IF Mutant = "deliver-past-gap" /\ hd[p] + 1 \notin rcv[p][R]
             THEN hd[p] + 2 ELSE hd[p] + 1
        m == seq[R][i]
    IN /\ up[p]
       /\ i \in rcv[p][R]
       /\ IsSafe(m) => SafeLine(R, i, p)
       /\ hd' = [hd EXCEPT ![p] = i]
       /\ hist' = [hist EXCEPT ![p] = AddDl(@, <<m>>)]
       /\ UNCHANGED <<up, reg, rcv, seq, mem, msgs, everRcv, crashes, seen>>

Crash(p) ==
    /\ up[p]
    /\ crashes < MaxCrashes
    /\ up' = [up EXCEPT ![p] = FALSE]
    /\ crashes' = crashes + 1
    /\ seen' = seen \cup {"crash"}
    /\ UNCHANGED <<reg, hd, rcv, seq, mem, msgs, hist, everRcv>>

(***************************************************************************)
(* Installation of ring n by the live daemons S (ring-protocol.md 3.4-3.6). *)
(***************************************************************************)

\* The members of T that really come from R (for the mutant trans-by-membership T may
\* name others; holdings and hd_max come from these).
FromR(T, R) == {q \in T : reg[q] = R}

\* The transitional members announced for old ring R (by old ring id).
TOf(S, R) == IF Mutant = "trans-by-membership" THEN S \cap mem[R]
             ELSE {q \in S : reg[q] = R}

\* What member p of T holds of R after the recovery exchange.
Held(p, T, R) == IF Mutant = "no-exchange" THEN rcv[p][R]
                 ELSE UNION {rcv[q][R] : q \in FromR(T, R)}

HdMax(T, R) == MaxOf({hd[q] : q \in FromR(T, R)})

\* Phase A: the first position not delivered in R.
RECURSIVE EndA(_, _, _, _)
EndA(R, H, hm, s) ==
    IF s <= hm \/ (s \in H /\ ~IsSafe(seq[R][s])) THEN EndA(R, H, hm, s + 1) ELSE s

\* Phase C from position s on (hole: a position before s is held by nobody in T).
RECURSIVE PosC(_, _, _, _, _)
PosC(R, H, T, s, hole) ==
    IF s > Len(seq[R]) THEN <<>>
    ELSE IF s \notin H THEN PosC(R, H, T, s + 1, TRUE)
    ELSE IF ~hole \/ msgs[seq[R][s]].snd \in T \/ Mutant = "no-hole-rule"
         THEN <<s>> \o PosC(R, H, T, s + 1, hole)
    ELSE PosC(R, H, T, s + 1, hole)

\* Held positions of R from s on that phase C discards (for the witness).
Discarded(R, H, T, s) ==
    LET C == PosC(R, H, T, s, FALSE)
    IN {x \in H : x >= s} \ {C[i] : i \in 1..Len(C)}

\* The new history of member p of S installing ring n, and what happened.
InstallSteps(p, S, n) ==
    LET R == reg[p]
        T == TOf(S, R)
        H == Held(p, T, R)
        e == EndA(R, H, HdMax(T, R), hd[p] + 1)
        A == [i \in 1..(e - 1 - hd[p]) |-> seq[R][hd[p] + i]]
        C == IF Mutant = "skip-trans-delivery" THEN <<>> ELSE PosC(R, H, T, e, FALSE)
    IN [hist |-> AddDl(hist[p], A)
                  \o <<Conf(Trans(n, R), T, [i \in 1..Len(C) |-> seq[R][C[i]]]),
                      Conf(Reg(n), S, <<>>)>>,
        held |-> {seq[R][x] : x \in H},
        phaseA |-> Len(A) > 0 /\ e - 1 > HdMax(T, R),
        transDlv |-> Len(C) > 0,
        safeTransDlv |-> \E i \in 1..Len(C) : IsSafe(seq[R][C[i]]),
        discard |-> Discarded(R, H, T, e) # {},
        smallTrans |-> T # S]

Install(S) ==
    LET n == NextRing
        st == [p \in S |-> InstallSteps(p, S, n)]
        olds == {reg[p] : p \in S}
        tags == (IF \E R \in olds : \E q \in mem[R] \ S : up[q] THEN {"partition"} ELSE {})
                \cup (IF Cardinality(olds) >= 2 THEN {"merge"} ELSE {})
                \cup (IF \E p \in S : st[p].phaseA THEN {"phase-a-past-hdmax"} ELSE {})
                \cup (IF \E p \in S : st[p].transDlv THEN {"trans-delivery"} ELSE {})
                \cup (IF \E p \in S : st[p].safeTransDlv THEN {"safe-trans-delivery"} ELSE {})
                \cup (IF \E p \in S : st[p].discard THEN {"hole-discard"} ELSE {})
                \cup (IF Cardinality(olds) >= 2 /\ \E p \in S : st[p].smallTrans
                      THEN {"merge-small-trans"} ELSE {})
                \cup (IF \E p \in S : \E q \in mem[reg[p]] : ~up[q] THEN {"crash-excluded"} ELSE {})
    IN /\ n <= MaxChanges + 1
       /\ S # {}
       /\ \A p \in S : up[p]
       /\ hist' = [p \in Daemons |-> IF p \in S THEN st[p].hist ELSE hist[p]]
       /\ everRcv' = [p \in Daemons |-> IF p \in S THEN everRcv[p] \cup st[p].held ELSE everRcv[p]]
       /\ reg' = [p \in Daemons |-> IF p \in S THEN n ELSE reg[p]]
       /\ hd' = [p \in Daemons |-> IF p \in S THEN 0 ELSE hd[p]]
       /\ mem' = [mem EXCEPT ![n] = S]
       /\ seen' = seen \cup tags
       /\ UNCHANGED <<up, rcv, seq, msgs, crashes>>

\* When the budgets are used up and everything is delivered no action is enabled: TLC runs
\* with -deadlock (no deadlock check); such terminal states are intended.
Next ==
    \/ \E p \in Daemons : Submit(p) \/ Deliver(p) \/ Crash(p)
    \/ \E p \in Daemons : \E i \in 1..MaxMsgs : Receive(p, i)
    \/ \E S \in SUBSET Daemons : Install(S)

Spec == Init /\ [][Next]_vars

(***************************************************************************)
(* Reading the ghost histories.                                            *)
(***************************************************************************)
Range(f) == {f[i] : i \in DOMAIN f}
RECURSIVE Flat(_, _)
Flat(h, i) == IF i > Len(h) THEN <<>> ELSE h[i].dl \o Flat(h, i + 1)
\* Everything p delivered, in order.
Dl(p) == Flat(hist[p], 1)
Delivered(p) == Range(Dl(p))
\* Total order key of a message: (ring, position) (ring-protocol.md: (ring.seq, ring.rep, seq)).
Before(m1, m2) ==
    \/ msgs[m1].ring < msgs[m2].ring
    \/ msgs[m1].ring = msgs[m2].ring /\ msgs[m1].pos < msgs[m2].pos
\* p installed configuration c and moved on from it.
MovedOn(q, c) == \E j \in 1..(Len(hist[q]) - 1) : hist[q][j].c = c

(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)

\* EVS-NODUP: each message is delivered at most once per daemon, and only if submitted.
EvsNoDup ==
    \A p \in Daemons :
        LET d == Dl(p)
        IN /\ Range(d) \subseteq 1..Len(msgs)
           /\ Cardinality(Range(d)) = Len(d)

\* EVS-SELF: a daemon that submits m and does not crash delivers m -- at the latest when it
\* installs its next regular configuration (the ring of m is then over for it).
EvsSelf ==
    \A p \in Daemons :
        up[p] => \A m \in 1..Len(msgs) :
                    (msgs[m].snd = p /\ msgs[m].ring # reg[p]) => m \in Delivered(p)

\* EVS-CONFAGREE: installs of one configuration id agree on the members; the installer is a
\* member; regular ids increase at each daemon; each regular configuration but the first
\* follows its transitional (N, R), R the previous regular one, with T within R and N.
EvsConfAgree ==
    /\ \A p, q \in Daemons : \A i \in DOMAIN hist[p] : \A j \in DOMAIN hist[q] :
          hist[p][i].c = hist[q][j].c => hist[p][i].mem = hist[q][j].mem
    /\ \A p \in Daemons : \A i \in DOMAIN hist[p] :
          LET h == hist[p]
              c == h[i].c
          IN /\ p \in h[i].mem
             /\ c.k = "reg" => h[i].mem = mem[c.n]
             /\ (c.k = "reg" /\ i > 1) =>
                   LET PrevReg == {j \in 1..(i - 1) : h[j].c.k = "reg"}
                       R == h[MaxOf(PrevReg)].c.n
                   IN /\ PrevReg # {}
                      /\ R < c.n
                      /\ h[i - 1].c = Trans(c.n, R)
                      /\ h[i - 1].mem \subseteq mem[R] \cap h[i].mem

\* EVS-TRANS: every member of (N, R) had R as its latest regular configuration (its next
\* regular one, if any, is N); everything delivered in (N, R) was sent in R.
EvsTrans ==
    \A p \in Daemons : \A i \in DOMAIN hist[p] :
        LET c == hist[p][i].c
        IN c.k = "trans" =>
             /\ \A q \in hist[p][i].mem :
                   \E j \in DOMAIN hist[q] :
                      /\ hist[q][j].c = Reg(c.r)
                      /\ LET J == {x \in DOMAIN hist[q] : x > j /\ hist[q][x].c.k = "reg"}
                         IN J # {} => hist[q][MinOf(J)].c = Reg(c.n)
             /\ \A m \in Range(hist[p][i].dl) : msgs[m].ring = c.r

\* EVS-SAMEVIEW: every delivery of m is in reg(m) or in a transitional configuration of it.
EvsSameView ==
    \A p \in Daemons : \A i \in DOMAIN hist[p] :
        LET c == hist[p][i].c
        IN \A m \in Range(hist[p][i].dl) : msgs[m].ring = IF c.k = "reg" THEN c.n ELSE c.r

\* EVS-VSYNC: daemons that install c and then the same next configuration delivered the same
\* set in c.
EvsVsync ==
    \A p, q \in Daemons : \A i \in 1..(Len(hist[p]) - 1) : \A j \in 1..(Len(hist[q]) - 1) :
        (hist[p][i].c = hist[q][j].c /\ hist[p][i + 1].c = hist[q][j + 1].c)
        => Range(hist[p][i].dl) = Range(hist[q][j].dl)

\* EVS-AGREED: every daemon delivers in the one global order (ring, position); in a regular
\* configuration each delivers a gap-free prefix of its sequence (so of two daemons' lists
\* one prefixes the other).
EvsAgreed ==
    \A p \in Daemons :
        /\ LET d == Dl(p) IN \A i \in 1..(Len(d) - 1) : Before(d[i], d[i + 1])
        /\ \A i \in DOMAIN hist[p] :
              LET h == hist[p][i]
              IN h.c.k = "reg" => h.dl = SubSeq(seq[h.c.n], 1, Len(h.dl))

\* EVS-CAUSAL: if m' was sent after its sender sent or delivered m in the same ring, whoever
\* delivers m' delivered m before.
EvsCausal ==
    \A p \in Daemons :
        LET d == Dl(p)
        IN \A j \in DOMAIN d : msgs[d[j]].pre \subseteq Range(SubSeq(d, 1, j - 1))

\* EVS-SAFE: when p delivers Safe m in c, every member of c has received m; and every member
\* of c that does not crash delivers m (checked once it has moved on from c).
EvsSafe ==
    \A p \in Daemons : \A i \in DOMAIN hist[p] :
        LET h == hist[p][i]
        IN \A m \in Range(h.dl) :
              IsSafe(m) =>
                 \A q \in h.mem :
                    /\ m \in everRcv[q]
                    /\ (up[q] /\ MovedOn(q, h.c)) => m \in Delivered(q)

(***************************************************************************)
(* Reachability: the invariants above are not vacuous. Each Never*        *)
(* predicate below must be violated (EvsReach.cfg, one TLC run each).    *)
(***************************************************************************)
\* A ring split: some live member of an old ring did not move with the others.
NeverPartition == "partition" \notin seen
\* Daemons of two rings formed one.
NeverMerge == "merge" \notin seen
\* A merge with a transitional configuration smaller than the regular one.
NeverMergeSmallTrans == "merge-small-trans" \notin seen
\* A message delivered in a transitional configuration.
NeverTransDelivery == "trans-delivery" \notin seen
\* A Safe message delivered in a transitional configuration.
NeverSafeTransDelivery == "safe-trans-delivery" \notin seen
\* Phase A delivered beyond hd_max (an Agreed message no member of T had delivered).
NeverPhaseA == "phase-a-past-hdmax" \notin seen
\* A held message discarded by the hole rule.
NeverHoleDiscard == "hole-discard" \notin seen
\* A crashed daemon excluded from a new ring.
NeverCrashExcluded == "crash-excluded" \notin seen
\* Some daemon delivered a Safe message in a regular configuration.
NeverSafeRegDelivery ==
    ~\E p \in Daemons : \E i \in DOMAIN hist[p] :
        hist[p][i].c.k = "reg" /\ \E m \in Range(hist[p][i].dl) : IsSafe(m)

=============================================================================
