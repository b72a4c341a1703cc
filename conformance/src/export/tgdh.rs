//! TGDH model paths → `tgdh` traces.
//!
//! The model's initial state (the first `initial` principals joined one at a time, each run
//! completed) becomes one step per join: a `view` and a `quiesce`, expecting the keys that the
//! model's initial state with that many members holds. Every checker action then becomes one
//! step: a delivery, a refresh request, a replay, or a membership change (a `leave` and/or the
//! views it installs, in view order). A step expects the keys that became ready in it.

use sgc_model::tgdh::check::{Action, State, TgdhModel};
use sgc_model::tgdh::crypto::TgdhCrypto;
use sgc_model::tgdh::member::{GROUP_KEY_LABEL, Mutant};
use sgc_model::tgdh::message::{Body, Signed};
use sgc_model::tgdh::symbolic::{Blind, SymSignature, Symbolic};
use stateright::Model;

use crate::trace::{Step, TgdhConfig, TgdhEvent, TgdhObs, TgdhRun, TraceError, WireMessage, encode};

/// The group name the model's members agree a key for.
pub const GROUP: &str = "g";

type TgdhStep = Step<TgdhEvent, TgdhObs>;

/// The trace configuration of a model.
pub fn config(model: &TgdhModel) -> TgdhConfig {
    TgdhConfig {
        universe: model.universe,
        group: GROUP.to_owned(),
        provider: "symbolic".to_owned(),
        mutant: model.mutant.map(|m| Mutant::name(m).to_owned()),
    }
}

/// The key id of the key a member holds (its root term in `epoch`), as `KeyReady` reports it.
pub fn key_id(
    root: &sgc_model::tgdh::symbolic::Term,
    group: &str,
    epoch: sgc_model::tgdh::crypto::Epoch,
) -> u64 {
    Symbolic.key_id(&Symbolic.session_key(root, group, epoch, GROUP_KEY_LABEL))
}

/// Keys that became ready between two states, by principal.
fn keys(before: Option<&State>, after: &State) -> Vec<TgdhObs> {
    let mut out = Vec::new();
    for (i, (slot, _)) in after.slots.iter().enumerate() {
        let Some(m) = slot else { continue };
        let (Some(root), Some(epoch), true) = (m.root_key(), m.epoch, m.key_ready) else {
            continue;
        };
        let old = before.and_then(|b| b.slots.get(i)).and_then(|s| s.0.as_ref());
        let same = old.is_some_and(|o| o.key_ready && o.epoch == Some(epoch) && o.root_key() == Some(root));
        if !same {
            out.push(TgdhObs::Key {
                member: i,
                epoch,
                key_id: key_id(root, GROUP, epoch),
            });
        }
    }
    out
}

/// A one-line description of a protocol message.
pub fn summary(m: &Signed<Blind, SymSignature>) -> String {
    let body = match &m.message.body {
        Body::Tree(_) => "tree".to_owned(),
        Body::Keys(k) => format!("keys at {:?}", k.iter().map(|(i, _)| *i).collect::<Vec<_>>()),
        Body::Refresh => "refresh".to_owned(),
    };
    format!(
        "{} seq {} epoch {}: {body}",
        m.message.sender.0, m.message.seq, m.message.epoch
    )
}

fn message(m: &Signed<Blind, SymSignature>) -> Result<WireMessage, TraceError> {
    Ok(WireMessage {
        bytes: encode("tgdh message", m)?,
        summary: summary(m),
    })
}

/// Views installed between two states, in view order.
fn new_views(before: &State, after: &State) -> Vec<TgdhEvent> {
    let mut views: Vec<TgdhEvent> = after
        .comps
        .iter()
        .filter(|c| c.view >= before.next_view)
        .map(|c| TgdhEvent::View {
            view: c.view,
            members: c.members.iter().copied().collect(),
        })
        .collect();
    views.sort_by_key(|v| match v {
        TgdhEvent::View { view, .. } => *view,
        _ => 0,
    });
    views
}

fn events(before: &State, after: &State, a: &Action) -> Result<Vec<TgdhEvent>, TraceError> {
    let comp = |c: usize| {
        before
            .comps
            .get(c)
            .ok_or_else(|| TraceError::Export(format!("no component {c}")))
    };
    Ok(match a {
        Action::Deliver(c) => {
            let comp = comp(*c)?;
            let (_, m) = comp
                .queue
                .front()
                .ok_or_else(|| TraceError::Export("delivery from an empty queue".into()))?;
            vec![TgdhEvent::Deliver {
                view: comp.view,
                message: message(m)?,
            }]
        }
        Action::Replay(c) => {
            let comp = comp(*c)?;
            let m = comp
                .last_delivered
                .as_ref()
                .ok_or_else(|| TraceError::Export("replay of nothing".into()))?;
            vec![TgdhEvent::Replay {
                view: comp.view,
                message: message(m)?,
            }]
        }
        Action::Refresh(c) => {
            let member = comp(*c)?
                .members
                .first()
                .copied()
                .ok_or_else(|| TraceError::Export("refresh in an empty component".into()))?;
            vec![TgdhEvent::Refresh { member }]
        }
        Action::Leave(i) => {
            let mut evs = vec![TgdhEvent::Leave { member: *i }];
            evs.extend(new_views(before, after));
            evs
        }
        Action::Join(..) | Action::Start(_) | Action::Partition(..) | Action::Merge(..) => {
            new_views(before, after)
        }
    })
}

/// The steps growing the initial group: one `view` + `quiesce` per member joined.
fn initial(model: &TgdhModel) -> Vec<TgdhStep> {
    let mut steps = Vec::new();
    let mut prev: Option<State> = None;
    for k in 1..=model.initial.min(model.universe) {
        let grown = TgdhModel {
            initial: k,
            ..model.clone()
        };
        let Some(s) = grown.init_states().into_iter().next() else {
            break;
        };
        let view = u64::try_from(k).unwrap_or(u64::MAX);
        steps.push(Step {
            events: vec![
                TgdhEvent::View {
                    view,
                    members: (0..k).collect(),
                },
                TgdhEvent::Quiesce { view },
            ],
            expect: keys(prev.as_ref(), &s),
        });
        prev = Some(s);
    }
    steps
}

/// The `tgdh` run of a model path.
pub fn run(model: &TgdhModel, path: &[(State, Option<Action>)]) -> Result<TgdhRun, TraceError> {
    let mut steps = initial(model);
    for pair in path.windows(2) {
        let ((before, Some(a)), (after, _)) = (&pair[0], &pair[1]) else {
            return Err(TraceError::Export("a path step without an action".into()));
        };
        steps.push(Step {
            events: events(before, after, a)?,
            expect: keys(Some(before), after),
        });
    }
    Ok(TgdhRun {
        config: config(model),
        steps,
    })
}
