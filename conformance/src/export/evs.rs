//! Ring model paths → `evs` traces.
//!
//! The initial state becomes one `start` step per daemon (in node order, as Stateright starts
//! its actors), each followed by a `submit` step per message the daemon's client submitted at
//! start. Every checker action then becomes one step: a delivery, a loss, a timer, a client
//! submission, a crash, a restart, a partition or a heal. A step's expected observations are
//! the deliveries and configuration installs the model's ghost histories recorded in it.

use sgc_model::ring::check::{self, ActorTimer, RAction, RState, RingModel, RingModelCfg, Wire};
use sgc_model::ring::props::{History, LogEntry};
use sgc_model::ring::{MsgId, NodeId, Pid, RingId};
use stateright::actor::{ActorModelAction, Id};

use crate::trace::{
    EvsConfig, EvsEvent, EvsObs, EvsRun, EvsStart, Hex, NetworkKind, Step, TraceError, WirePacket, encode,
};

type EvsStep = Step<EvsEvent, EvsObs>;

/// The trace configuration of a model configuration.
pub fn config(cfg: &RingModelCfg) -> EvsConfig {
    let members: Vec<Pid> = (0..cfg.daemons).map(|n| Pid::new(n, 1)).collect();
    EvsConfig {
        ring: cfg.ring_config(),
        start: if cfg.boot {
            EvsStart::Boot
        } else {
            EvsStart::Formed {
                ring: RingId {
                    seq: 1,
                    rep: members[0],
                },
                members,
            }
        },
        network: if cfg.fifo {
            NetworkKind::Fifo
        } else {
            NetworkKind::Unordered
        },
    }
}

fn node(id: Id) -> Result<NodeId, TraceError> {
    NodeId::try_from(usize::from(id))
        .map_err(|_| TraceError::Export(format!("actor id {id} is not a node id")))
}

fn obs_of(node: NodeId, e: &LogEntry) -> Option<EvsObs> {
    match e {
        LogEntry::Delivered {
            id, service, config, ..
        } => Some(EvsObs::Deliver {
            node,
            id: *id,
            service: *service,
            config: *config,
        }),
        LogEntry::Installed { config, members } => Some(EvsObs::Config {
            node,
            config: *config,
            members: members.clone(),
        }),
        LogEntry::Submitted { .. } | LogEntry::Sent { .. } => None,
    }
}

/// Observations recorded between two states, node by node.
fn diff(before: &RState, after: &RState) -> Vec<EvsObs> {
    let mut out = Vec::new();
    for (i, a) in after.inner.actor_states.iter().enumerate() {
        let Ok(n) = NodeId::try_from(i) else { continue };
        let old: Option<&History> = before.inner.actor_states.get(i).map(|b| &b.history);
        let from = match old {
            Some(h) if h.pid == a.history.pid => h.log.len(),
            _ => 0,
        };
        out.extend(a.history.log.iter().skip(from).filter_map(|e| obs_of(n, e)));
    }
    out
}

fn wire(w: &Wire) -> Result<WirePacket, TraceError> {
    Ok(WirePacket {
        sender: w.from,
        bytes: encode("ring packet", &w.pkt)?,
        summary: check::short(w),
    })
}

fn event(after: &RState, a: &RAction) -> Result<EvsEvent, TraceError> {
    Ok(match a {
        RAction::Net(ActorModelAction::Deliver { src, dst, msg }) => EvsEvent::Deliver {
            from: node(*src)?,
            to: node(*dst)?,
            packet: wire(msg)?,
        },
        RAction::Net(ActorModelAction::Drop(e)) => EvsEvent::Lose {
            from: node(e.src)?,
            to: node(e.dst)?,
            packet: wire(&e.msg)?,
        },
        RAction::Net(ActorModelAction::Timeout(id, ActorTimer::Ring(kind))) => EvsEvent::Timer {
            node: node(*id)?,
            timer: *kind,
        },
        RAction::Net(ActorModelAction::Timeout(id, ActorTimer::Submit)) => {
            let n = node(*id)?;
            let st = after
                .inner
                .actor_states
                .get(usize::from(*id))
                .ok_or_else(|| TraceError::Export(format!("no actor {id}")))?;
            submit(n, st.daemon.me, st.submitted)
        }
        RAction::Net(ActorModelAction::Crash(id)) => EvsEvent::Crash { node: node(*id)? },
        RAction::Net(ActorModelAction::Recover(id)) => EvsEvent::Restart { node: node(*id)? },
        RAction::Net(other @ ActorModelAction::SelectRandom { .. }) => {
            return Err(TraceError::Export(format!("unexpected action {other:?}")));
        }
        RAction::Partition(sides) => EvsEvent::Partition { sides: sides.clone() },
        RAction::Heal => EvsEvent::Heal,
    })
}

fn submit(node: NodeId, origin: Pid, n: u32) -> EvsEvent {
    EvsEvent::Submit {
        node,
        id: MsgId { origin, n },
        service: check::model_service(node),
        payload: Hex(check::model_payload(n)),
    }
}

/// The steps of the initial state: start each daemon, then its clients' submissions.
fn initial(s: &RState) -> Vec<EvsStep> {
    let mut steps = Vec::new();
    for (i, a) in s.inner.actor_states.iter().enumerate() {
        let Ok(n) = NodeId::try_from(i) else { continue };
        steps.push(Step {
            events: vec![EvsEvent::Start { node: n }],
            expect: Vec::new(),
        });
        for e in &a.history.log {
            match e {
                LogEntry::Submitted { id } => steps.push(Step {
                    events: vec![submit(n, id.origin, id.n)],
                    expect: Vec::new(),
                }),
                other => {
                    if let (Some(o), Some(last)) = (obs_of(n, other), steps.last_mut()) {
                        last.expect.push(o);
                    }
                }
            }
        }
    }
    steps
}

/// The `evs` run of a model path.
pub fn run(cfg: &RingModelCfg, path: &[(RState, Option<RAction>)]) -> Result<EvsRun, TraceError> {
    let mut steps = path.first().map(|(s, _)| initial(s)).unwrap_or_default();
    for pair in path.windows(2) {
        let ((before, Some(a)), (after, _)) = (&pair[0], &pair[1]) else {
            return Err(TraceError::Export("a path step without an action".into()));
        };
        steps.push(Step {
            events: vec![event(after, a)?],
            expect: diff(before, after),
        });
    }
    Ok(EvsRun {
        config: config(cfg),
        steps,
    })
}

/// The model whose paths [`run`] converts (for random walks).
pub fn model(cfg: &RingModelCfg) -> RingModel {
    cfg.clone().into_model()
}
