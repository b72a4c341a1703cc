//! Replaying an `evs` trace into ring [`Daemon`] machines.
//!
//! The replayer plays the daemons' environment exactly as the model does: a packet sent
//! (`SendToken`, `Broadcast` to every other configured node) is in flight until the trace
//! delivers or loses it; packets to a crashed node or across a cut are lost at once; a timer
//! can fire only while armed (`SetTimer` .. `CancelTimer`, firing disarms it, a crash disarms
//! all); `Persist` is the record a restart boots from. Each event's `Deliver`/`DeliverConfig`
//! commands are the step's observations.

use std::collections::BTreeSet;

use sgc_model::ring::check::formed_start;
use sgc_model::ring::{Command, Daemon, Durable, Event, NodeId, Packet, Pid, RingConfig, TimerKind};

use super::Mismatch;
use crate::trace::{EvsConfig, EvsEvent, EvsObs, EvsRun, EvsStart, NetworkKind, WirePacket, decode};

/// A packet in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    sender: Pid,
    pkt: Packet,
}

/// One configured node.
#[derive(Debug, Default)]
struct Node {
    daemon: Option<Daemon>,
    crashed: bool,
    stored: Option<Durable>,
    timers: BTreeSet<TimerKind>,
}

/// The daemons and their environment.
struct World<'a> {
    cfg: &'a EvsConfig,
    ring: &'a RingConfig,
    nodes: Vec<Node>,
    in_flight: Vec<InFlight>,
    sides: Vec<u8>,
}

type Step = Result<Vec<EvsObs>, String>;

impl<'a> World<'a> {
    fn new(cfg: &'a EvsConfig) -> Self {
        let n = cfg
            .ring
            .nodes
            .iter()
            .map(|&n| usize::from(n) + 1)
            .max()
            .unwrap_or(0);
        Self {
            cfg,
            ring: &cfg.ring,
            nodes: (0..n).map(|_| Node::default()).collect(),
            in_flight: Vec::new(),
            sides: vec![0; n],
        }
    }

    fn node(&mut self, n: NodeId) -> Result<&mut Node, String> {
        self.nodes
            .get_mut(usize::from(n))
            .ok_or_else(|| format!("d{n} is not configured"))
    }

    fn side(&self, n: NodeId) -> u8 {
        self.sides.get(usize::from(n)).copied().unwrap_or(0)
    }

    fn reachable(&self, from: NodeId, to: NodeId) -> bool {
        let up = self.nodes.get(usize::from(to)).is_some_and(|t| !t.crashed);
        up && self.side(from) == self.side(to)
    }

    /// Drops what can no longer arrive (to crashed nodes, across the cut).
    fn purge(&mut self) {
        let keep: Vec<bool> = self
            .in_flight
            .iter()
            .map(|p| self.reachable(p.from, p.to))
            .collect();
        let mut k = keep.into_iter();
        self.in_flight.retain(|_| k.next().unwrap_or(false));
    }

    fn send(&mut self, from: NodeId, sender: Pid, to: NodeId, pkt: &Packet) {
        if self.reachable(from, to) {
            self.in_flight.push(InFlight {
                from,
                to,
                sender,
                pkt: pkt.clone(),
            });
        }
    }

    /// Carries out one handle call's commands; returns the observations.
    fn apply(&mut self, n: NodeId, me: Pid, cmds: &[Command]) -> Vec<EvsObs> {
        let mut obs = Vec::new();
        for c in cmds {
            match c {
                Command::SendToken { to, pkt } => self.send(n, me, to.node, pkt),
                Command::Broadcast(pkt) => {
                    for &to in &self.ring.nodes {
                        if to != n {
                            self.send(n, me, to, pkt);
                        }
                    }
                }
                Command::SetTimer { kind, .. } => {
                    if let Some(node) = self.nodes.get_mut(usize::from(n)) {
                        node.timers.insert(*kind);
                    }
                }
                Command::CancelTimer(kind) => {
                    if let Some(node) = self.nodes.get_mut(usize::from(n)) {
                        node.timers.remove(kind);
                    }
                }
                Command::Persist(d) => {
                    if let Some(node) = self.nodes.get_mut(usize::from(n)) {
                        node.stored = Some(*d);
                    }
                }
                Command::Deliver {
                    id, service, config, ..
                } => obs.push(EvsObs::Deliver {
                    node: n,
                    id: *id,
                    service: *service,
                    config: *config,
                }),
                Command::DeliverConfig { id, members, .. } => obs.push(EvsObs::Config {
                    node: n,
                    config: *id,
                    members: members.clone(),
                }),
            }
        }
        obs
    }

    /// Feeds `ev` to the running daemon of `n`.
    fn handle(&mut self, n: NodeId, ev: Event) -> Step {
        let ring = self.ring;
        let node = self.node(n)?;
        if node.crashed {
            return Err(format!("d{n} is crashed"));
        }
        let d = node
            .daemon
            .as_mut()
            .ok_or_else(|| format!("d{n} has not started"))?;
        let cmds = d.handle(ring, ev);
        let me = d.me;
        Ok(self.apply(n, me, &cmds))
    }

    fn start(&mut self, n: NodeId) -> Step {
        let (cfg, ring) = (self.cfg, self.ring);
        let node = self.node(n)?;
        if node.daemon.is_some() {
            return Err(format!("d{n} has already started"));
        }
        let (daemon, cmds) = match &cfg.start {
            EvsStart::Formed { ring: r, members } => {
                let (d, cmds) = formed_start(ring, n, *r, members);
                node.stored = Some(d.durable);
                (d, cmds)
            }
            EvsStart::Boot => {
                let mut d = Daemon::new(n, None);
                let cmds = d.handle(ring, Event::Boot);
                (d, cmds)
            }
        };
        let me = daemon.me;
        node.daemon = Some(daemon);
        Ok(self.apply(n, me, &cmds))
    }

    fn restart(&mut self, n: NodeId) -> Step {
        let ring = self.ring;
        let node = self.node(n)?;
        if !node.crashed {
            return Err(format!("d{n} is not crashed"));
        }
        let mut d = Daemon::new(n, node.stored);
        let cmds = d.handle(ring, Event::Boot);
        let me = d.me;
        node.daemon = Some(d);
        node.crashed = false;
        Ok(self.apply(n, me, &cmds))
    }

    /// Removes the packet `p` in flight from `from` to `to`; for a FIFO delivery it must be the
    /// oldest on its link.
    fn take(
        &mut self,
        from: NodeId,
        to: NodeId,
        p: &WirePacket,
        fifo_head: bool,
    ) -> Result<InFlight, String> {
        let pkt: Packet = decode("ring packet", &p.bytes).map_err(|e| e.to_string())?;
        let want = InFlight {
            from,
            to,
            sender: p.sender,
            pkt,
        };
        let on_link: Vec<usize> = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].from == from && self.in_flight[i].to == to)
            .collect();
        let Some(&at) = on_link.iter().find(|&&i| self.in_flight[i] == want) else {
            return Err(format!(
                "packet not in flight d{from}->d{to}: {} ({} other packets on that link)",
                p.summary,
                on_link.len()
            ));
        };
        if fifo_head && on_link.first() != Some(&at) {
            return Err(format!(
                "packet is not the oldest on FIFO link d{from}->d{to}: {}",
                p.summary
            ));
        }
        Ok(self.in_flight.remove(at))
    }

    fn event(&mut self, ev: &EvsEvent) -> Step {
        let fifo = self.cfg.network == NetworkKind::Fifo;
        let obs = match ev {
            EvsEvent::Start { node } => self.start(*node)?,
            EvsEvent::Submit {
                node,
                id,
                service,
                payload,
            } => {
                let ev = Event::Submit {
                    id: *id,
                    service: *service,
                    payload: payload.0.clone(),
                };
                self.handle(*node, ev)?
            }
            EvsEvent::Deliver { from, to, packet } => {
                if !self.reachable(*from, *to) {
                    return Err(format!("d{to} cannot be reached from d{from}"));
                }
                let p = self.take(*from, *to, packet, fifo)?;
                self.handle(
                    *to,
                    Event::Recv {
                        from: p.sender,
                        pkt: p.pkt,
                    },
                )?
            }
            EvsEvent::Lose { from, to, packet } => {
                self.take(*from, *to, packet, false)?;
                Vec::new()
            }
            EvsEvent::Timer { node, timer } => {
                if !self.node(*node)?.timers.remove(timer) {
                    return Err(format!("timer {timer:?} of d{node} is not armed"));
                }
                self.handle(*node, Event::Timer(*timer))?
            }
            EvsEvent::Crash { node } => {
                let st = self.node(*node)?;
                if st.crashed || st.daemon.is_none() {
                    return Err(format!("d{node} is not running"));
                }
                st.crashed = true;
                st.timers.clear();
                Vec::new()
            }
            EvsEvent::Restart { node } => self.restart(*node)?,
            EvsEvent::Partition { sides } => {
                if sides.len() != self.sides.len() {
                    return Err(format!("{} sides for {} nodes", sides.len(), self.sides.len()));
                }
                self.sides.clone_from(sides);
                Vec::new()
            }
            EvsEvent::Heal => {
                self.sides.iter_mut().for_each(|s| *s = 0);
                Vec::new()
            }
        };
        self.purge();
        Ok(obs)
    }
}

/// Replays `run`; returns the steps replayed, the observations compared and the first
/// mismatch.
pub fn replay(run: &EvsRun) -> (usize, usize, Option<Mismatch>) {
    if let Err(e) = run.config.ring.validate() {
        return (0, 0, Some(Mismatch::inapplicable(0, Vec::new(), e.to_string())));
    }
    let mut world = World::new(&run.config);
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
        if got != step.expect {
            return (
                i,
                compared,
                Some(Mismatch::observations(i, shown(), &step.expect, &got)),
            );
        }
        compared += got.len();
    }
    (run.steps.len(), compared, None)
}
