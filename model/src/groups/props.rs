//! Ghost observations of the group-layer model and the GRP-* predicates over them
//! (`/work/shared/design/groups-and-flush.md` §4, §6).
//!
//! Clients and groups are named by small indices (client `i` is `#c<i>#d<node>`, group `j` is
//! `g<j>`); each client's log is what it was handed, in order. The predicates are plain
//! functions over [`Ghost`] so that they can also run on logs recorded elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::types::{Cause, Gid};
use crate::ring::{ConfigId, ConfigKind};

fn is_trans(c: &ConfigId) -> bool {
    c.kind() == ConfigKind::Transitional
}

/// A client index.
pub type Client = u8;
/// A group index.
pub type GroupIx = u8;
/// A data message: its sender and the sender's send counter.
pub type MsgId = (Client, u8);

/// One event as a client received it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Obs {
    /// A regular membership.
    View {
        /// The group.
        group: GroupIx,
        /// Its gid.
        gid: Gid,
        /// Why.
        cause: Cause,
        /// Members, in the order delivered.
        members: Vec<Client>,
        /// The vs_sets.
        vs_sets: Vec<Vec<Client>>,
        /// Index of the receiver's own set.
        my_vs: usize,
    },
    /// A transitional signal.
    Trans {
        /// The group.
        group: GroupIx,
    },
    /// The receiver's own leave.
    SelfLeave {
        /// The group.
        group: GroupIx,
    },
    /// A data message.
    Data {
        /// Which message.
        id: MsgId,
        /// Per target group, the receiver's installed gid at delivery (`None`: not a member).
        gids: Vec<(GroupIx, Option<Gid>)>,
        /// The ring configuration it was delivered in.
        conf: ConfigId,
    },
}

/// One data message as sent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SendRec {
    /// Which message.
    pub id: MsgId,
    /// Per target group, the sender's installed gid at send time.
    pub gids: Vec<(GroupIx, Option<Gid>)>,
    /// Sent with `SELF_DISCARD`.
    pub self_discard: bool,
}

/// Everything the properties look at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ghost {
    /// Per client, what it received.
    pub logs: Vec<Vec<Obs>>,
    /// Per client, whether its session ended (disconnect, kill or crash of its daemon).
    pub gone: Vec<bool>,
    /// Per client, whether the daemon killed it as a slow client.
    pub slow_killed: Vec<bool>,
    /// Every data message sent.
    pub sent: Vec<SendRec>,
    /// A layer left `GatherTrans` (the cascade completed).
    pub cascade_done: bool,
}

fn views(log: &[Obs], g: GroupIx) -> impl Iterator<Item = (usize, Gid, &Vec<Client>)> {
    log.iter().enumerate().filter_map(move |(i, o)| match o {
        Obs::View {
            group, gid, members, ..
        } if *group == g => Some((i, *gid, members)),
        _ => None,
    })
}

fn groups_in(g: &Ghost) -> BTreeSet<GroupIx> {
    g.logs
        .iter()
        .flatten()
        .filter_map(|o| match o {
            Obs::View { group, .. } | Obs::Trans { group } | Obs::SelfLeave { group } => Some(*group),
            Obs::Data { .. } => None,
        })
        .collect()
}

/// GRP-VIEWAGREE: every delivery of one (group, gid) shows the same members, order, cause and vs_sets.
pub fn view_agree(g: &Ghost) -> bool {
    type Shown<'a> = (&'a Vec<Client>, Cause, &'a Vec<Vec<Client>>);
    let mut seen: BTreeMap<(GroupIx, Gid), Shown<'_>> = BTreeMap::new();
    for o in g.logs.iter().flatten() {
        if let Obs::View {
            group,
            gid,
            cause,
            members,
            vs_sets,
            ..
        } = o
        {
            let v = (members, *cause, vs_sets);
            if *seen.entry((*group, *gid)).or_insert(v) != v {
                return false;
            }
        }
    }
    true
}

/// GRP-GIDUNIQ: a (group, gid) names one membership, and a member's successive views of a
/// group have distinct gids.
pub fn gid_unique(g: &Ghost) -> bool {
    let mut seen: BTreeMap<(GroupIx, Gid), &Vec<Client>> = BTreeMap::new();
    for log in &g.logs {
        for grp in groups_in(g) {
            let mut mine = BTreeSet::new();
            for (_, gid, members) in views(log, grp) {
                if !mine.insert(gid) || *seen.entry((grp, gid)).or_insert(members) != members {
                    return false;
                }
            }
        }
    }
    true
}

/// GRP-SELFINC: a member is in each view it gets; its first event of a group is a view whose
/// own vs_set is itself alone (its join); nothing of the group follows its self-leave.
pub fn self_inclusion(g: &Ghost) -> bool {
    for (c, log) in g.logs.iter().enumerate() {
        let c = u8::try_from(c).unwrap_or(u8::MAX);
        let mut state: BTreeMap<GroupIx, u8> = BTreeMap::new(); // 0 never, 1 member, 2 left
        for o in log {
            match o {
                Obs::View {
                    group,
                    members,
                    vs_sets,
                    my_vs,
                    ..
                } => {
                    if !members.contains(&c) {
                        return false;
                    }
                    match state.get(group).copied().unwrap_or(0) {
                        0 if vs_sets.get(*my_vs) != Some(&vec![c]) => return false,
                        2 => return false,
                        _ => {}
                    }
                    state.insert(*group, 1);
                }
                Obs::Trans { group } => {
                    if state.get(group).copied().unwrap_or(0) != 1 {
                        return false;
                    }
                }
                Obs::SelfLeave { group } => {
                    if state.get(group).copied().unwrap_or(0) != 1 {
                        return false;
                    }
                    state.insert(*group, 2);
                }
                Obs::Data { .. } => {}
            }
        }
    }
    true
}

/// GRP-SAMEVIEW: the receivers that are members of a target group and deliver the message in
/// the same ring configuration deliver it in the same gid of that group. (As for EVS-SAMEVIEW,
/// a daemon that crashes or is cut off may deliver a message in the regular configuration that
/// the survivors deliver in their transitional one, after a different view.)
pub fn same_view(g: &Ghost) -> bool {
    let mut seen: BTreeMap<(MsgId, GroupIx, ConfigId), Gid> = BTreeMap::new();
    for o in g.logs.iter().flatten() {
        if let Obs::Data { id, gids, conf } = o {
            for (grp, gid) in gids {
                if let Some(gid) = gid
                    && *seen.entry((*id, *grp, *conf)).or_insert(*gid) != *gid
                {
                    return false;
                }
            }
        }
    }
    true
}

fn data_ids(log: &[Obs]) -> Vec<MsgId> {
    log.iter()
        .filter_map(|o| match o {
            Obs::Data { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// GRP-ORDER: all clients deliver the messages they have in common in one order (a single
/// total order across groups), and each sender's messages in the order sent.
pub fn order(g: &Ghost) -> bool {
    let lists: Vec<Vec<MsgId>> = g.logs.iter().map(|l| data_ids(l)).collect();
    for l in &lists {
        let mut last: BTreeMap<Client, u8> = BTreeMap::new();
        for (s, k) in l {
            if last.get(s).is_some_and(|p| p >= k) {
                return false;
            }
            last.insert(*s, *k);
        }
    }
    for (i, a) in lists.iter().enumerate() {
        for b in lists.iter().skip(i + 1) {
            let bs: BTreeSet<&MsgId> = b.iter().collect();
            let common_a: Vec<&MsgId> = a.iter().filter(|m| bs.contains(m)).collect();
            let as_: BTreeSet<&MsgId> = a.iter().collect();
            let common_b: Vec<&MsgId> = b.iter().filter(|m| as_.contains(m)).collect();
            if common_a != common_b {
                return false;
            }
        }
    }
    true
}

/// GRP-TRANS: between two views of a group a member gets at most one `TRANSITION`; a NETWORK
/// view that lost members of the previous view is preceded by one; the data delivered between
/// a `TRANSITION` and the next view was delivered in a transitional configuration.
pub fn transition(g: &Ghost) -> bool {
    for log in &g.logs {
        let mut prev: BTreeMap<GroupIx, &Vec<Client>> = BTreeMap::new();
        let mut signalled: BTreeSet<GroupIx> = BTreeSet::new();
        for o in log {
            match o {
                Obs::View {
                    group,
                    cause,
                    members,
                    ..
                } => {
                    let lost = prev
                        .get(group)
                        .is_some_and(|p| p.iter().any(|m| !members.contains(m)));
                    if *cause == Cause::Network && lost && !signalled.contains(group) {
                        return false;
                    }
                    signalled.remove(group);
                    prev.insert(*group, members);
                }
                Obs::Trans { group } => {
                    if !signalled.insert(*group) {
                        return false;
                    }
                }
                Obs::SelfLeave { group } => {
                    prev.remove(group);
                    signalled.remove(group);
                }
                Obs::Data { gids, conf, .. } => {
                    if !is_trans(conf)
                        && gids
                            .iter()
                            .any(|(grp, gid)| gid.is_some() && signalled.contains(grp))
                    {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// The view of `grp` a client had right before the view `gid`, and the data of `grp` it
/// delivered in between; `None` when it has not (yet) delivered `gid`.
fn before(log: &[Obs], grp: GroupIx, gid: Gid) -> Option<(Option<Gid>, Vec<MsgId>)> {
    let mut last = None;
    let mut since = Vec::new();
    for o in log {
        match o {
            Obs::View { group, gid: v, .. } if *group == grp => {
                if *v == gid {
                    return Some((last, since));
                }
                last = Some(*v);
                since.clear();
            }
            Obs::Data { id, gids, .. } if gids.iter().any(|(x, g)| *x == grp && g.is_some()) => {
                since.push(*id)
            }
            _ => {}
        }
    }
    None
}

/// GRP-VSSET: the vs_sets of a NETWORK view partition its members, the receiver is in its own
/// set, and every member of that set that delivered the view came from the receiver's previous
/// view and delivered the same messages of the group since.
pub fn vs_set(g: &Ghost) -> bool {
    for (c, log) in g.logs.iter().enumerate() {
        let c = u8::try_from(c).unwrap_or(u8::MAX);
        for o in log {
            let Obs::View {
                group,
                gid,
                cause: Cause::Network,
                members,
                vs_sets,
                my_vs,
            } = o
            else {
                continue;
            };
            let mut all: Vec<Client> = vs_sets.iter().flatten().copied().collect();
            all.sort_unstable();
            let mut m = members.clone();
            m.sort_unstable();
            if all != m {
                return false;
            }
            let Some(mine) = vs_sets.get(*my_vs) else {
                return false;
            };
            if !mine.contains(&c) {
                return false;
            }
            let Some(me) = before(log, *group, *gid) else {
                return false;
            };
            for p in mine {
                if let Some(other) = g.logs.get(usize::from(*p)).and_then(|l| before(l, *group, *gid))
                    && other != me
                {
                    return false;
                }
            }
        }
    }
    true
}

/// GRP-SELF, safety half: a message sent with `SELF_DISCARD` never comes back to its sender,
/// and a client delivers a message only when it was sent.
pub fn self_discard(g: &Ghost) -> bool {
    let sent: BTreeMap<MsgId, &SendRec> = g.sent.iter().map(|s| (s.id, s)).collect();
    for (c, log) in g.logs.iter().enumerate() {
        for id in data_ids(log) {
            match sent.get(&id) {
                None => return false,
                Some(s) if s.self_discard && usize::from(id.0) == c => return false,
                Some(_) => {}
            }
        }
    }
    true
}

/// GRP-SELF, liveness half (call in quiescent states only): a sender that was a member of a
/// target group when it sent, did not discard and is not gone delivered its message.
pub fn self_delivery(g: &Ghost) -> bool {
    g.sent.iter().all(|s| {
        let c = usize::from(s.id.0);
        s.self_discard
            || g.gone.get(c).copied().unwrap_or(true)
            || s.gids.iter().all(|(_, gid)| gid.is_none())
            || g.logs.get(c).is_some_and(|l| data_ids(l).contains(&s.id))
    })
}

/// GRP-NODUP: at most one copy per client, and only to a member of a target group.
pub fn no_dup(g: &Ghost) -> bool {
    for log in &g.logs {
        let mut seen = BTreeSet::new();
        for o in log {
            if let Obs::Data { id, gids, .. } = o
                && (!seen.insert(*id) || gids.iter().all(|(_, gid)| gid.is_none()))
            {
                return false;
            }
        }
    }
    true
}

/// S-JOINVIEW: some member got a JOIN view.
pub fn s_join_view(g: &Ghost) -> bool {
    g.logs.iter().flatten().any(|o| {
        matches!(
            o,
            Obs::View {
                cause: Cause::Join,
                ..
            }
        )
    })
}

/// S-MERGE-2VS: some NETWORK view has two vs_sets.
pub fn s_merge_2vs(g: &Ghost) -> bool {
    g.logs
        .iter()
        .flatten()
        .any(|o| matches!(o, Obs::View { cause: Cause::Network, vs_sets, .. } if vs_sets.len() == 2))
}

/// S-TRANSMSG: a data message delivered between a `TRANSITION` and the next view.
pub fn s_trans_msg(g: &Ghost) -> bool {
    g.logs.iter().any(|log| {
        let mut signalled = BTreeSet::new();
        log.iter().any(|o| match o {
            Obs::Trans { group } => {
                signalled.insert(*group);
                false
            }
            Obs::View { group, .. } => {
                signalled.remove(group);
                false
            }
            Obs::Data { gids, .. } => gids.iter().any(|(grp, _)| signalled.contains(grp)),
            Obs::SelfLeave { .. } => false,
        })
    })
}

/// S-EVS-NEXTVIEW: a message sent while its sender had view V of a group is delivered in
/// another view V′ of that group.
pub fn s_evs_next_view(g: &Ghost) -> bool {
    let sent: BTreeMap<MsgId, &SendRec> = g.sent.iter().map(|s| (s.id, s)).collect();
    g.logs.iter().flatten().any(|o| match o {
        Obs::Data { id, gids, .. } => sent.get(id).is_some_and(|s| {
            gids.iter().any(|(grp, gid)| {
                gid.is_some() && s.gids.iter().any(|(x, sg)| x == grp && sg.is_some() && sg != gid)
            })
        }),
        _ => false,
    })
}

/// S-OPEN-SEND: a member delivered a message whose sender was in none of its target groups.
pub fn s_open_send(g: &Ghost) -> bool {
    let sent: BTreeMap<MsgId, &SendRec> = g.sent.iter().map(|s| (s.id, s)).collect();
    g.logs.iter().flatten().any(|o| match o {
        Obs::Data { id, .. } => sent
            .get(id)
            .is_some_and(|s| s.gids.iter().all(|(_, gid)| gid.is_none())),
        _ => false,
    })
}

/// S-SLOW-KILL: a client was killed for not reading.
pub fn s_slow_kill(g: &Ghost) -> bool {
    g.slow_killed.iter().any(|k| *k)
}
