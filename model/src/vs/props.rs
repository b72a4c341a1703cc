//! The VS-* properties of `spec/vs.md` as plain predicates over per-client ghost logs, so the
//! same functions can judge logs recorded elsewhere (e.g. a live client library).
//!
//! Clients are named by their index in the model. A log records what the application saw and
//! did: its calls (join, sends, flushes as observed on the wire) and the flush layer's events.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::groups::{Cause, Gid};

/// A client index in the model.
pub type Cl = u8;

/// One ghost observation of one client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Obs {
    /// The application called `FL_join`.
    JoinCalled,
    /// A VS view was installed.
    Installed {
        /// Its gid.
        gid: Gid,
        /// Its cause.
        cause: Cause,
        /// Its members.
        members: Vec<Cl>,
        /// The receiver's vs_set as reported.
        vs: Vec<Cl>,
    },
    /// The application sent its `n`-th message while `gid` was installed.
    Sent {
        /// Message number.
        n: u8,
        /// The sender's installed view (`None`: none).
        gid: Option<Gid>,
        /// Sent after a flush request, before flushing.
        in_authorize: bool,
    },
    /// A data message was delivered while `gid` was installed at the receiver.
    Delivered {
        /// Sender.
        from: Cl,
        /// Its message number.
        n: u8,
        /// The receiver's installed view.
        gid: Option<Gid>,
    },
    /// The client multicast a `FLUSH_OK` for `gid` (`auto`: without an application call, as an
    /// installed member).
    Flushed {
        /// The change flushed for.
        gid: Gid,
        /// Automatic re-flush.
        auto: bool,
    },
    /// A flush request was delivered.
    FlushReq,
    /// A `TRANSITION` was delivered.
    Trans,
    /// The client's own leave was delivered.
    SelfLeave,
}

fn installed_views<'a>(logs: &[&'a [Obs]]) -> BTreeMap<Gid, (Cause, &'a Vec<Cl>)> {
    let mut m = BTreeMap::new();
    for log in logs {
        for e in log.iter() {
            if let Obs::Installed {
                gid, cause, members, ..
            } = e
            {
                m.insert(*gid, (*cause, members));
            }
        }
    }
    m
}

/// VS-VIEWAGREE: every install of one gid has the same members (order) and cause.
pub fn vs_viewagree(logs: &[&[Obs]]) -> bool {
    let mut seen: BTreeMap<Gid, (Cause, &Vec<Cl>)> = BTreeMap::new();
    logs.iter().copied().flatten().all(|e| match e {
        Obs::Installed {
            gid, cause, members, ..
        } => *seen.entry(*gid).or_insert((*cause, members)) == (*cause, members),
        _ => true,
    })
}

/// VS-SELFINC: a member is in each view it installs; after `FL_join` the first event is the
/// join view; nothing follows a self-leave (until a new join).
pub fn vs_selfinc(logs: &[&[Obs]]) -> bool {
    logs.iter().enumerate().all(|(i, log)| {
        let me = Cl::try_from(i).unwrap_or(Cl::MAX);
        let mut awaiting_first = false;
        let mut left = false;
        log.iter().all(|e| match e {
            Obs::JoinCalled => {
                awaiting_first = true;
                left = false;
                true
            }
            Obs::Installed { members, .. } => {
                awaiting_first = false;
                !left && members.contains(&me)
            }
            Obs::Delivered { .. } | Obs::FlushReq | Obs::Trans => !awaiting_first && !left,
            Obs::SelfLeave => {
                let ok = !left;
                left = true;
                ok
            }
            Obs::Sent { .. } | Obs::Flushed { .. } => true,
        })
    })
}

fn send_views(logs: &[&[Obs]]) -> BTreeMap<(Cl, u8), Option<Gid>> {
    let mut m = BTreeMap::new();
    for (i, log) in logs.iter().enumerate() {
        let me = Cl::try_from(i).unwrap_or(Cl::MAX);
        for e in log.iter() {
            if let Obs::Sent { n, gid, .. } = e {
                m.insert((me, *n), *gid);
            }
        }
    }
    m
}

/// VS-SENDVIEW: a message is delivered only in the view its sender had installed when sending.
pub fn vs_sendview(logs: &[&[Obs]]) -> bool {
    let sent = send_views(logs);
    logs.iter().copied().flatten().all(|e| match e {
        Obs::Delivered { from, n, gid } => gid.is_some() && sent.get(&(*from, *n)) == Some(gid),
        _ => true,
    })
}

/// One installed view of one client: its gid and members, the messages delivered in it, and the
/// next install (gid, cause, members, vs) if any.
struct Segment<'a> {
    gid: Option<Gid>,
    members: &'a [Cl],
    delivered: BTreeSet<(Cl, u8)>,
    next: Option<(Gid, Cause, &'a [Cl], &'a [Cl])>,
}

fn segments(log: &[Obs]) -> Vec<Segment<'_>> {
    let mut out: Vec<Segment<'_>> = Vec::new();
    for e in log {
        match e {
            Obs::Installed {
                gid,
                cause,
                members,
                vs,
            } => {
                if let Some(last) = out.last_mut() {
                    last.next = Some((*gid, *cause, members, vs));
                }
                out.push(Segment {
                    gid: Some(*gid),
                    members,
                    delivered: BTreeSet::new(),
                    next: None,
                });
            }
            Obs::Delivered { from, n, .. } => {
                if let Some(last) = out.last_mut() {
                    last.delivered.insert((*from, *n));
                }
            }
            Obs::SelfLeave | Obs::JoinCalled => {
                if let Some(last) = out.last_mut() {
                    last.next = None;
                }
                // a later join starts afresh: no segment continues across it
                out.push(Segment {
                    gid: None,
                    members: &[],
                    delivered: BTreeSet::new(),
                    next: None,
                });
            }
            _ => {}
        }
    }
    out
}

/// VS-VSYNC: if `p` and `q` install `V'` right after `V` and `q` moved with `p` (for a NETWORK
/// view: `q` is in `p`'s reported vs_set; otherwise `q` is in both `V` and `V'`), they delivered
/// the same messages in `V`.
pub fn vs_vsync(logs: &[&[Obs]]) -> bool {
    let segs: Vec<Vec<Segment<'_>>> = logs.iter().map(|l| segments(l)).collect();
    segs.iter().all(|mine| {
        mine.iter().all(|s| {
            let (Some(gid), Some((next, cause, members, vs))) = (s.gid, s.next) else {
                return true;
            };
            let moved: Vec<Cl> = match cause {
                Cause::Network => vs.to_vec(),
                _ => s
                    .members
                    .iter()
                    .filter(|m| members.contains(m))
                    .copied()
                    .collect(),
            };
            moved.iter().all(|q| {
                segs.get(usize::from(*q)).is_none_or(|theirs| {
                    theirs
                        .iter()
                        .filter(|t| t.gid == Some(gid) && t.next.is_some_and(|n| n.0 == next))
                        .all(|t| t.delivered == s.delivered)
                })
            })
        })
    })
}

/// VS-CLOSED: a client sends only with a view installed that contains it; a message is
/// delivered only from a sender in the receiver's installed view.
pub fn vs_closed(logs: &[&[Obs]]) -> bool {
    logs.iter().enumerate().all(|(i, log)| {
        let me = Cl::try_from(i).unwrap_or(Cl::MAX);
        let mut cur: Option<(Gid, &Vec<Cl>)> = None;
        log.iter().all(|e| match e {
            Obs::Installed { gid, members, .. } => {
                cur = Some((*gid, members));
                true
            }
            Obs::SelfLeave | Obs::JoinCalled => {
                cur = None;
                true
            }
            Obs::Sent { gid, .. } => cur.is_some_and(|(g, ms)| Some(g) == *gid && ms.contains(&me)),
            Obs::Delivered { from, .. } => cur.is_some_and(|(_, ms)| ms.contains(from)),
            _ => true,
        })
    })
}

/// VS-PERMIT: a view is installed only when every one of its members multicast a `FLUSH_OK`
/// for it, and a member sends nothing between a `FLUSH_OK` and its next install.
pub fn vs_permit(logs: &[&[Obs]]) -> bool {
    let flushed: BTreeSet<(Cl, Gid)> = logs
        .iter()
        .enumerate()
        .flat_map(|(i, log)| {
            let me = Cl::try_from(i).unwrap_or(Cl::MAX);
            log.iter().filter_map(move |e| match e {
                Obs::Flushed { gid, .. } => Some((me, *gid)),
                _ => None,
            })
        })
        .collect();
    let all_flushed = installed_views(logs)
        .iter()
        .all(|(gid, (_, members))| members.iter().all(|m| flushed.contains(&(*m, *gid))));
    let quiet = logs.iter().all(|log| {
        let mut flushing = false;
        log.iter().all(|e| match e {
            Obs::Flushed { .. } => {
                flushing = true;
                true
            }
            Obs::Installed { .. } | Obs::SelfLeave => {
                flushing = false;
                true
            }
            Obs::Sent { .. } => !flushing,
            _ => true,
        })
    });
    all_flushed && quiet
}

/// VS-ONETRANS: at most one `TRANSITION` per installed view.
pub fn vs_onetrans(logs: &[&[Obs]]) -> bool {
    logs.iter().all(|log| {
        let mut n = 0;
        log.iter().all(|e| match e {
            Obs::Installed { .. } | Obs::JoinCalled => {
                n = 0;
                true
            }
            Obs::Trans => {
                n += 1;
                n <= 1
            }
            _ => true,
        })
    })
}
