//! Replaying a `tgdh` trace into TGDH [`Member`] machines (symbolic provider).
//!
//! The replayer is the group communication system: components of members, each in one view
//! with one agreed-order queue of broadcasts; a delivery hands the queue's head to every
//! member of the component in ascending order, and their broadcasts join the queue's tail.
//! A member's `KeyReady` commands are the step's observations (compared sorted by member).

use std::collections::{BTreeSet, VecDeque};

use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::member::{Command, Config, Event, Member, Mutant};
use sgc_model::tgdh::message::Signed;
use sgc_model::tgdh::symbolic::{Blind, SymSignature, Symbolic, Term};

use super::Mismatch;
use crate::export::tgdh::summary;
use crate::trace::{TgdhEvent, TgdhObs, TgdhRun, WireMessage, decode};

type Msg = Signed<Blind, SymSignature>;

/// A connected component: its view and queue.
#[derive(Debug)]
struct Comp {
    view: u64,
    members: BTreeSet<usize>,
    queue: VecDeque<Msg>,
}

/// The members and their group communication system.
struct World {
    group: String,
    mutant: Option<Mutant>,
    /// Each principal's member state (`None` outside the group) and share counter.
    slots: Vec<(Option<Member<Term, Blind>>, u64)>,
    comps: Vec<Comp>,
}

type Step = Result<Vec<TgdhObs>, String>;

fn name(i: usize) -> MemberId {
    MemberId::new(format!("m{i}"))
}

impl World {
    fn comp(&mut self, view: u64) -> Result<usize, String> {
        self.comps
            .iter()
            .position(|c| c.view == view)
            .ok_or_else(|| format!("no component is in view {view}"))
    }

    /// Feeds `ev` to principal `i` of component `c`; broadcasts join the component's queue.
    fn step(&mut self, c: usize, i: usize, ev: Event<Blind, SymSignature>) -> Step {
        let cfg = Config {
            me: name(i),
            group: self.group.clone(),
            mutant: self.mutant,
        };
        let slot = self
            .slots
            .get_mut(i)
            .ok_or_else(|| format!("m{i} is not a principal"))?;
        let member = slot
            .0
            .as_mut()
            .ok_or_else(|| format!("m{i} is not in the group"))?;
        let out = member.handle(&Symbolic, &cfg, ev, &[0; 32]);
        slot.1 = member.share_nonce;
        let mut obs = Vec::new();
        for cmd in out.commands {
            match cmd {
                Command::Broadcast(m) => {
                    if let Some(comp) = self.comps.get_mut(c) {
                        comp.queue.push_back(m);
                    }
                }
                Command::KeyReady { epoch, key_id, .. } => obs.push(TgdhObs::Key {
                    member: i,
                    epoch,
                    key_id,
                }),
                Command::Rejected(_) => {}
            }
        }
        Ok(obs)
    }

    fn view(&mut self, view: u64, members: &[usize]) -> Step {
        let set: BTreeSet<usize> = members.iter().copied().collect();
        if set.is_empty() || set.len() != members.len() {
            return Err(format!(
                "view {view} has an empty or repeated member list {members:?}"
            ));
        }
        if self.comps.iter().any(|c| c.view >= view) {
            return Err(format!("view {view} does not increase"));
        }
        for &i in &set {
            let slot = self
                .slots
                .get_mut(i)
                .ok_or_else(|| format!("m{i} is not a principal"))?;
            if slot.0.is_none() {
                let mut fresh = Member::new();
                fresh.share_nonce = slot.1;
                slot.0 = Some(fresh);
            }
        }
        for c in &mut self.comps {
            c.members.retain(|i| !set.contains(i));
        }
        self.comps.retain(|c| !c.members.is_empty());
        self.comps.push(Comp {
            view,
            members: set.clone(),
            queue: VecDeque::new(),
        });
        let c = self.comps.len() - 1;
        let names: BTreeSet<MemberId> = set.iter().map(|&i| name(i)).collect();
        let mut obs = Vec::new();
        for &i in &set {
            obs.extend(self.step(
                c,
                i,
                Event::View {
                    view,
                    members: names.clone(),
                },
            )?);
        }
        Ok(obs)
    }

    /// Delivers the head of component `c`'s queue (which must be `want`, when given).
    fn deliver(&mut self, c: usize, want: Option<&Msg>) -> Step {
        let comp = self.comps.get_mut(c).ok_or("no such component")?;
        let head = comp
            .queue
            .pop_front()
            .ok_or_else(|| format!("nothing is queued in view {}", comp.view))?;
        if let Some(w) = want.filter(|w| **w != head) {
            return Err(format!(
                "the queue's head in view {} is {}, not {}",
                comp.view,
                summary(&head),
                summary(w)
            ));
        }
        let members: Vec<usize> = comp.members.iter().copied().collect();
        let mut obs = Vec::new();
        for i in members {
            obs.extend(self.step(c, i, Event::Deliver(head.clone()))?);
        }
        Ok(obs)
    }

    fn event(&mut self, ev: &TgdhEvent) -> Step {
        let msg = |m: &WireMessage| decode::<Msg>("tgdh message", &m.bytes).map_err(|e| e.to_string());
        match ev {
            TgdhEvent::View { view, members } => self.view(*view, members),
            TgdhEvent::Leave { member } => {
                let slot = self
                    .slots
                    .get_mut(*member)
                    .ok_or_else(|| format!("m{member} is not a principal"))?;
                if slot.0.take().is_none() {
                    return Err(format!("m{member} is not in the group"));
                }
                for c in &mut self.comps {
                    c.members.remove(member);
                }
                self.comps.retain(|c| !c.members.is_empty());
                Ok(Vec::new())
            }
            TgdhEvent::Deliver { view, message } => {
                let m = msg(message)?;
                let c = self.comp(*view)?;
                self.deliver(c, Some(&m))
            }
            TgdhEvent::Quiesce { view } => {
                let c = self.comp(*view)?;
                let mut obs = Vec::new();
                while self.comps.get(c).is_some_and(|comp| !comp.queue.is_empty()) {
                    obs.extend(self.deliver(c, None)?);
                }
                Ok(obs)
            }
            TgdhEvent::Refresh { member } => {
                let c = self
                    .comps
                    .iter()
                    .position(|c| c.members.contains(member))
                    .ok_or_else(|| format!("m{member} is in no component"))?;
                self.step(c, *member, Event::RequestRefresh)
            }
            TgdhEvent::Replay { view, message } => {
                let m = msg(message)?;
                let c = self.comp(*view)?;
                if let Some(comp) = self.comps.get_mut(c) {
                    comp.queue.push_back(m);
                }
                Ok(Vec::new())
            }
        }
    }
}

/// Replays `run`; returns the steps replayed, the observations compared and the first
/// mismatch.
pub fn replay(run: &TgdhRun) -> (usize, usize, Option<Mismatch>) {
    let cfg = &run.config;
    let mutant = match cfg.mutant.as_deref().map(|n| (n, Mutant::from_name(n))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((n, None)) => {
            return (
                0,
                0,
                Some(Mismatch::inapplicable(
                    0,
                    Vec::new(),
                    format!("unknown mutant {n:?}"),
                )),
            );
        }
    };
    if cfg.provider != "symbolic" {
        let why = format!(
            "provider {:?}: only \"symbolic\" replays into the model",
            cfg.provider
        );
        return (0, 0, Some(Mismatch::inapplicable(0, Vec::new(), why)));
    }
    let mut world = World {
        group: cfg.group.clone(),
        mutant,
        slots: vec![(None, 0); cfg.universe],
        comps: Vec::new(),
    };
    let mut compared = 0;
    for (i, step) in run.steps.iter().enumerate() {
        let shown = || step.events.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut got = Vec::new();
        for ev in &step.events {
            match world.event(ev) {
                Ok(obs) => got.extend(obs),
                Err(why) => return (i, compared, Some(Mismatch::inapplicable(i, shown(), why))),
            }
        }
        got.sort();
        let mut want = step.expect.clone();
        want.sort();
        if got != want {
            return (i, compared, Some(Mismatch::observations(i, shown(), &want, &got)));
        }
        compared += got.len();
    }
    (run.steps.len(), compared, None)
}
