//! Model → live: replaying `evs` checker traces on real daemon processes (`sgc daemon`, real
//! UDP sockets) in controlled mode (`runtime.controlled`, `sgc_daemon::controlled`), the
//! harness being their network and their clock.
//!
//! ```text
//!  trace step ──► harness ── start/restart: spawn `sgc daemon --config` (same data dir)
//!                   │      ── crash: SIGKILL
//!                   │      ── submit / timer: admin `submit` / `fire_timer`
//!                   │      ── deliver: forward the held datagram over UDP (lose: drop it)
//!                   ▼
//!   admin `controlled`: inputs handled + their commands ──► datagrams expected, observations
//!   harness sockets (one per ordered pair of daemons) ◄── every datagram the daemons send
//! ```
//!
//! Every packet a daemon sends reaches a harness socket (its peers' addresses, and its own via
//! the setup's loopback, are the harness's), is decoded with the daemon's own codec and held,
//! exactly as the model replayer holds packets in flight; the trace's `deliver` releases it
//! (FIFO links: only the oldest), `lose` drops it, a crash or a cut drops what can no longer
//! arrive. After each injected input the harness waits until the daemon reports it handled,
//! collects the datagrams its commands sent, and takes its `Deliver`/`DeliverConfig` commands
//! as the step's observations, compared with the trace's as in [`crate::replay`].
//!
//! Only `evs` traces run live; `tgdh` traces (TGDH over an abstract virtually synchronous
//! oracle, no daemon) are excluded, and every exclusion is listed in the summary.

pub mod net;
pub mod node;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sgc_daemon::admin::Request;
use sgc_daemon::controlled::Formed;
use sgc_daemon::transport::Codec;
use sgc_model::ring::{Command, NodeId, Packet};

use crate::replay::{Failure, Mismatch};
use crate::trace::{
    EvsEvent, EvsObs, EvsRun, EvsStart, NetworkKind, Run, Trace, WirePacket, decode, trace_files,
};
use net::{InFlight, Net, index};
use node::LiveNode;

/// Errors that stop a live replay before any comparison (not a mismatch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A file or socket operation failed.
    #[error("{0}: {1}")]
    Io(String, String),
    /// The daemon program could not be started.
    #[error("cannot start {0}: {1}")]
    Spawn(String, String),
    /// The trace's configuration cannot be set up.
    #[error("setup: {0}")]
    Setup(String),
    /// The trace directory could not be read.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
}

/// How to run the daemons.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// The `sgc` executable (`sgc daemon --config FILE` is run).
    pub program: PathBuf,
    /// Working directory: one subdirectory per trace (configurations, data dirs, logs).
    pub work: PathBuf,
    /// Bound on each wait for a daemon (start, one input, its datagrams).
    pub step_timeout: Duration,
    /// Bound on one trace.
    pub trace_timeout: Duration,
    /// Replay at most this many traces of a directory (the rest are counted as not run).
    pub max_traces: usize,
}

impl LiveOptions {
    /// Defaults: 5 s per wait, 60 s per trace, 1000 traces.
    pub fn new(program: PathBuf, work: PathBuf) -> Self {
        Self {
            program,
            work,
            step_timeout: Duration::from_secs(5),
            trace_timeout: Duration::from_secs(60),
            max_traces: 1000,
        }
    }
}

/// What the harness injected and released for one trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Packets forwarded to a daemon (`deliver`).
    pub packets_released: usize,
    /// Packets dropped by the trace (`lose`) or because they could no longer arrive.
    pub packets_dropped: usize,
    /// Datagrams received from the daemons.
    pub datagrams: usize,
    /// Timers fired through the admin `fire_timer`.
    pub timers_fired: usize,
    /// Client submissions through the admin `submit`.
    pub submits: usize,
    /// Daemon processes started (first starts and restarts).
    pub processes: usize,
    /// SIGKILLs (`crash`).
    pub crashes: usize,
}

impl Counts {
    fn add(&mut self, o: &Self) {
        self.packets_released += o.packets_released;
        self.packets_dropped += o.packets_dropped;
        self.datagrams += o.datagrams;
        self.timers_fired += o.timers_fired;
        self.submits += o.submits;
        self.processes += o.processes;
        self.crashes += o.crashes;
    }
}

/// The outcome of replaying one trace live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveOutcome {
    /// The trace's name.
    pub name: String,
    /// Steps replayed (all of them when matched).
    pub steps: usize,
    /// Observations compared.
    pub observations: usize,
    /// What was injected and released.
    pub counts: Counts,
    /// The first difference, if any.
    pub mismatch: Option<Mismatch>,
}

/// A trace that was not replayed live, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// The file.
    pub file: String,
    /// The trace's name.
    pub trace: String,
    /// Why.
    pub reason: String,
}

/// The summary `sgc conformance replay DIR --live` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LiveSummary {
    /// Trace files found.
    pub traces: usize,
    /// Traces replayed on live daemons.
    pub replayed: usize,
    /// Of those, traces whose observations all matched.
    pub matched: usize,
    /// Steps replayed.
    pub steps: usize,
    /// Observations compared.
    pub observations: usize,
    /// Totals over the replayed traces.
    pub counts: Counts,
    /// Traces not replayed live (another model, over the trace bound), with the reason.
    pub excluded: Vec<Excluded>,
    /// Every trace that did not load, could not run or did not match.
    pub mismatches: Vec<Failure>,
}

/// The daemons of one trace and the network between them.
struct World<'a> {
    run: &'a EvsRun,
    opts: &'a LiveOptions,
    net: Net,
    nodes: Vec<LiveNode>,
    in_flight: Vec<InFlight>,
    sides: Vec<u8>,
    counts: Counts,
    deadline: Instant,
}

type StepResult = Result<Vec<EvsObs>, String>;

impl<'a> World<'a> {
    fn new(run: &'a EvsRun, opts: &'a LiveOptions, dir: &Path) -> Result<Self, HarnessError> {
        let ring = &run.config.ring;
        let nodes = ring.nodes.clone();
        let addrs = net::free_addrs(nodes.len())?;
        let net = Net::bind(&nodes, &addrs, Codec::new("conformance", 65_507))?;
        let formed = match &run.config.start {
            EvsStart::Formed { ring, members } => Some(Formed {
                ring: *ring,
                members: members.clone(),
            }),
            EvsStart::Boot => None,
        };
        let mut live = Vec::new();
        for (i, (&n, a)) in nodes.iter().zip(&addrs).enumerate() {
            let peers = net.peers_of(i)?;
            live.push(LiveNode::prepare(
                &dir.join(format!("d{n}")),
                n,
                *a,
                &peers,
                ring,
                formed.clone(),
            )?);
        }
        Ok(Self {
            run,
            opts,
            sides: vec![0; nodes.len()],
            net,
            nodes: live,
            in_flight: Vec::new(),
            counts: Counts::default(),
            deadline: Instant::now() + opts.trace_timeout,
        })
    }

    fn at(&self, n: NodeId) -> Result<usize, String> {
        index(&self.net.nodes, n)
    }

    fn reachable(&self, from: NodeId, to: NodeId) -> bool {
        let (Ok(f), Ok(t)) = (self.at(from), self.at(to)) else {
            return false;
        };
        // As in the model: only a crashed daemon (started, not running) loses what is sent to it.
        let up = self.nodes.get(t).is_some_and(|d| d.running() || !d.started);
        up && self.sides.get(f) == self.sides.get(t)
    }

    fn purge(&mut self) {
        let keep: Vec<bool> = self
            .in_flight
            .iter()
            .map(|p| self.reachable(p.from, p.to))
            .collect();
        let before = self.in_flight.len();
        let mut k = keep.into_iter();
        self.in_flight.retain(|_| k.next().unwrap_or(false));
        self.counts.packets_dropped += before - self.in_flight.len();
    }

    fn wait_deadline(&self) -> Instant {
        (Instant::now() + self.opts.step_timeout).min(self.deadline)
    }

    /// Waits until daemon `n` has handled `target` inputs; carries out what it reported
    /// (datagrams collected and held, observations returned).
    fn settle(&mut self, n: NodeId, target: u64) -> StepResult {
        let i = self.at(n)?;
        let deadline = self.wait_deadline();
        let mut obs = Vec::new();
        loop {
            let node = self.nodes.get_mut(i).ok_or("no such daemon")?;
            if let Some(why) = node.exited() {
                return Err(why);
            }
            let drained = node.drain(deadline)?;
            if drained.overflow > 0 {
                return Err(format!("d{n} dropped {} reports", drained.overflow));
            }
            for r in &drained.reports {
                let cmds = r.decode().map_err(|e| format!("d{n}: undecodable report: {e}"))?;
                obs.extend(self.carry_out(i, n, &cmds, deadline)?);
            }
            let node = self.nodes.get_mut(i).ok_or("no such daemon")?;
            node.inputs = drained.inputs;
            if drained.inputs > target {
                return Err(format!(
                    "d{n} handled {} inputs, {target} were injected",
                    drained.inputs
                ));
            }
            if drained.inputs == target {
                return Ok(obs);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "d{n} did not handle input {target} in time ({} handled)",
                    drained.inputs
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// One input's commands: the datagrams to collect, the observations.
    fn carry_out(&mut self, i: usize, n: NodeId, cmds: &[Command], deadline: Instant) -> StepResult {
        let mut want = vec![0usize; self.net.nodes.len()];
        let mut obs = Vec::new();
        for c in cmds {
            match c {
                Command::SendToken { to, .. } => *want.get_mut(self.at(to.node)?).ok_or("no such node")? += 1,
                Command::Broadcast(_) => {
                    for (k, &m) in self.net.nodes.iter().enumerate() {
                        if m != n
                            && let Some(w) = want.get_mut(k)
                        {
                            *w += 1;
                        }
                    }
                }
                Command::Deliver {
                    id, service, config, ..
                } => {
                    if let Some(d) = self.nodes.get_mut(i) {
                        d.delivered.push((id.to_string(), config.to_string()));
                    }
                    obs.push(EvsObs::Deliver {
                        node: n,
                        id: *id,
                        service: *service,
                        config: *config,
                    });
                }
                Command::DeliverConfig { id, members, .. } => obs.push(EvsObs::Config {
                    node: n,
                    config: *id,
                    members: members.clone(),
                }),
                Command::SetTimer { .. } | Command::CancelTimer(_) | Command::Persist(_) => {}
            }
        }
        let got = self.net.collect(i, &want, deadline)?;
        self.counts.datagrams += got.len();
        for p in got {
            if self.reachable(p.from, p.to) {
                self.in_flight.push(p);
            } else {
                self.counts.packets_dropped += 1;
            }
        }
        Ok(obs)
    }

    /// Starts (or restarts) the process of `n` and waits for its first input (boot or formed
    /// start).
    fn spawn(&mut self, n: NodeId) -> StepResult {
        let i = self.at(n)?;
        let program = self.opts.program.clone();
        let node = self.nodes.get_mut(i).ok_or("no such daemon")?;
        node.spawn(&program).map_err(|e| e.to_string())?;
        self.counts.processes += 1;
        self.settle(n, 1)
    }

    /// Injects one admin request at `n` and waits for the input it queues.
    fn inject(&mut self, n: NodeId, req: &Request) -> StepResult {
        let i = self.at(n)?;
        let deadline = self.wait_deadline();
        let node = self.nodes.get(i).ok_or("no such daemon")?;
        if !node.running() {
            return Err(format!("d{n} is not running"));
        }
        let target = node.inputs + 1;
        node.call(req, deadline)
            .map_err(|e| format!("d{n} refused: {e}"))?;
        self.settle(n, target)
    }

    fn take(
        &mut self,
        from: NodeId,
        to: NodeId,
        p: &WirePacket,
        fifo_head: bool,
    ) -> Result<InFlight, String> {
        let pkt: Packet = decode("ring packet", &p.bytes).map_err(|e| e.to_string())?;
        let on_link: Vec<usize> = (0..self.in_flight.len())
            .filter(|&k| {
                self.in_flight
                    .get(k)
                    .is_some_and(|q| q.from == from && q.to == to)
            })
            .collect();
        let found = on_link.iter().copied().find(|&k| {
            self.in_flight
                .get(k)
                .is_some_and(|q| q.sender == p.sender && q.pkt == pkt)
        });
        let Some(at) = found else {
            return Err(format!(
                "packet not sent by the live daemon d{from} to d{to}: {} ({} other packets held on that link)",
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

    /// At the end: every running daemon's admin `log` holds exactly the deliveries its
    /// process reported (the runtime carried them out).
    fn check_logs(&self) -> Result<(), String> {
        let deadline = self.wait_deadline();
        for d in self.nodes.iter().filter(|d| d.running()) {
            let log = d.log(deadline)?;
            if log != d.delivered {
                return Err(format!(
                    "d{}'s admin log holds {} deliveries, its reports {}: {:?} vs {:?}",
                    d.id,
                    log.len(),
                    d.delivered.len(),
                    log,
                    d.delivered
                ));
            }
        }
        Ok(())
    }

    fn event(&mut self, ev: &EvsEvent) -> StepResult {
        if Instant::now() >= self.deadline {
            return Err("trace timeout".into());
        }
        let fifo = self.run.config.network == NetworkKind::Fifo;
        let obs = match ev {
            EvsEvent::Start { node } => {
                let i = self.at(*node)?;
                if self.nodes.get(i).is_some_and(|d| d.started) {
                    return Err(format!("d{node} has already started"));
                }
                self.spawn(*node)?
            }
            EvsEvent::Submit {
                node,
                id,
                service,
                payload,
            } => {
                let i = self.at(*node)?;
                let me = self.nodes.get(i).and_then(|d| d.me);
                if me != Some(id.origin) {
                    return Err(format!(
                        "d{node} is {}, the trace submits {id}",
                        me.map_or_else(|| "not running".to_owned(), |p| p.to_string())
                    ));
                }
                self.counts.submits += 1;
                self.inject(
                    *node,
                    &Request::Submit {
                        n: id.n,
                        service: *service,
                        payload: payload.to_string(),
                        incarnation: Some(id.origin.inc),
                    },
                )?
            }
            EvsEvent::Deliver { from, to, packet } => {
                if !self.reachable(*from, *to) {
                    return Err(format!("d{to} cannot be reached from d{from}"));
                }
                let t = self.at(*to)?;
                if !self.nodes.get(t).is_some_and(LiveNode::running) {
                    return Err(format!("d{to} is not running"));
                }
                let p = self.take(*from, *to, packet, fifo)?;
                let target = self.nodes.get(t).map_or(0, |d| d.inputs) + 1;
                self.net.forward(&p)?;
                self.counts.packets_released += 1;
                self.settle(*to, target)?
            }
            EvsEvent::Lose { from, to, packet } => {
                self.take(*from, *to, packet, false)?;
                self.counts.packets_dropped += 1;
                Vec::new()
            }
            EvsEvent::Timer { node, timer } => {
                self.counts.timers_fired += 1;
                self.inject(*node, &Request::FireTimer { timer: *timer })?
            }
            EvsEvent::Crash { node } => {
                let i = self.at(*node)?;
                let d = self.nodes.get_mut(i).ok_or("no such daemon")?;
                if !d.running() {
                    return Err(format!("d{node} is not running"));
                }
                d.kill();
                self.counts.crashes += 1;
                Vec::new()
            }
            EvsEvent::Restart { node } => {
                let i = self.at(*node)?;
                let d = self.nodes.get(i).ok_or("no such daemon")?;
                if d.running() || !d.started {
                    return Err(format!("d{node} is not crashed"));
                }
                self.spawn(*node)?
            }
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

/// Replays one `evs` run on live daemons under `dir`.
fn replay_run(name: &str, run: &EvsRun, opts: &LiveOptions, dir: &Path) -> Result<LiveOutcome, HarnessError> {
    let mut out = LiveOutcome {
        name: name.to_owned(),
        steps: 0,
        observations: 0,
        counts: Counts::default(),
        mismatch: None,
    };
    if let Err(e) = run.config.ring.validate() {
        out.mismatch = Some(Mismatch::inapplicable(0, Vec::new(), e.to_string()));
        return Ok(out);
    }
    let _ = std::fs::remove_dir_all(dir);
    let mut world = World::new(run, opts, dir)?;
    for (i, step) in run.steps.iter().enumerate() {
        let shown = || step.events.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut got = Vec::new();
        for ev in &step.events {
            match world.event(ev) {
                Ok(obs) => got.extend(obs),
                Err(why) => {
                    out.mismatch = Some(Mismatch::inapplicable(i, shown(), why));
                    out.counts = world.counts;
                    return Ok(out);
                }
            }
        }
        if got != step.expect {
            out.mismatch = Some(Mismatch::observations(i, shown(), &step.expect, &got));
            out.counts = world.counts;
            return Ok(out);
        }
        out.steps = i + 1;
        out.observations += got.len();
    }
    out.counts = world.counts;
    if let Err(why) = world.check_logs() {
        out.mismatch = Some(Mismatch::inapplicable(
            run.steps.len(),
            vec!["end: admin log".into()],
            why,
        ));
        return Ok(out);
    }
    drop(world);
    let _ = std::fs::remove_dir_all(dir);
    Ok(out)
}

/// Why a trace is not replayed live, if it is not.
pub fn exclusion(trace: &Trace) -> Option<String> {
    match &trace.run {
        Run::Evs(_) => None,
        Run::Tgdh(_) => Some(
            "tgdh traces run TGDH members over an abstract virtually synchronous oracle: no daemon to run"
                .to_owned(),
        ),
    }
}

/// Replays one trace on live daemons (an error for a trace [`exclusion`] names).
pub fn replay_live(trace: &Trace, opts: &LiveOptions) -> Result<LiveOutcome, HarnessError> {
    match &trace.run {
        Run::Evs(run) => replay_run(&trace.name, run, opts, &opts.work.join(&trace.name)),
        Run::Tgdh(_) => Err(HarnessError::Setup(exclusion(trace).unwrap_or_default())),
    }
}

/// Replays every `*.json` trace of `dir` (sorted by file name) on live daemons, at most
/// `opts.max_traces` of them; excluded traces are listed with their reason.
pub fn replay_dir_live(dir: &Path, opts: &LiveOptions) -> Result<LiveSummary, HarnessError> {
    let mut sum = LiveSummary::default();
    for file in trace_files(dir)? {
        sum.traces += 1;
        let shown = file.display().to_string();
        let trace = match Trace::load(&file) {
            Ok(t) => t,
            Err(e) => {
                sum.mismatches.push(Failure {
                    file: shown,
                    trace: String::new(),
                    diff: e.to_string(),
                });
                continue;
            }
        };
        if let Some(reason) = exclusion(&trace) {
            sum.excluded.push(Excluded {
                file: shown,
                trace: trace.name,
                reason,
            });
            continue;
        }
        if sum.replayed >= opts.max_traces {
            sum.excluded.push(Excluded {
                file: shown,
                trace: trace.name,
                reason: format!("over the bound of {} traces", opts.max_traces),
            });
            continue;
        }
        sum.replayed += 1;
        match replay_live(&trace, opts) {
            Err(e) => sum.mismatches.push(Failure {
                file: shown,
                trace: trace.name,
                diff: format!("harness: {e}"),
            }),
            Ok(o) => {
                sum.steps += o.steps;
                sum.observations += o.observations;
                sum.counts.add(&o.counts);
                match o.mismatch {
                    None => sum.matched += 1,
                    Some(m) => sum.mismatches.push(Failure {
                        file: shown,
                        trace: o.name,
                        diff: m.to_string(),
                    }),
                }
            }
        }
    }
    Ok(sum)
}
