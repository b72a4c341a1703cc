//! TESTING: controlled mode (`runtime.controlled`), in which a harness is the daemon's network
//! and clock, for replaying model traces on live daemons (`sgc conformance replay --live`,
//! `sgc_conformance::harness`).
//!
//! ```text
//!   harness ──UDP (real socket, same codec)──► runtime ─► Daemon::handle ─► commands
//!      ▲  admin fire_timer / submit ──► local events ──┘                      │
//!      └── admin `controlled`: inputs handled, their commands, armed timers ◄─┘
//! ```
//!
//! In this mode the runtime arms no real timer: `SetTimer`/`CancelTimer` only mark a timer
//! armed or not, and the admin `fire_timer` request fires an armed one. A token addressed to
//! the daemon itself leaves through the harness's loopback address instead of the local queue,
//! so every packet goes through the harness. The group layer is detached (its ring messages are
//! dropped and counted), idle tokens are never held, and every machine input is reported with
//! its commands so that the harness knows what was sent and observed. The setup file gives the
//! ring parameters of the trace (mutant included) and, for traces whose daemons start already
//! installed, the formed ring (the model's `formed_start`); a restart boots from the durable
//! record as usual. Never enable this outside tests.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sgc_model::ring::check::formed_start;
use sgc_model::ring::{Command, Daemon, Durable, Event, MsgId, Pid, RingConfig, RingId, Service, TimerKind};

use crate::admin::{Request, Response};
use crate::config::DaemonConfig;

/// Reports kept before the harness drains them; beyond, the oldest are dropped and the
/// overflow is reported.
pub const MAX_REPORTS: usize = 4096;

/// Errors of the controlled mode's setup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlledError {
    /// The setup file could not be read.
    #[error("cannot read the controlled setup {0}: {1}")]
    Read(std::path::PathBuf, std::io::Error),
    /// The setup file is not valid JSON of a [`Setup`].
    #[error("bad controlled setup {0}: {1}")]
    Parse(std::path::PathBuf, String),
    /// The setup contradicts the configuration.
    #[error("controlled setup: {0}")]
    Invalid(String),
}

/// A ring the daemons start installed in (the model's first incarnations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formed {
    /// The ring.
    pub ring: RingId,
    /// Its members.
    pub members: Vec<Pid>,
}

/// The setup file the harness writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// The ring parameters to run (replace those derived from `[timeouts]` and `[window]`);
    /// `nodes` must be the configured peers.
    pub ring: RingConfig,
    /// Start installed in this ring when there is no durable record yet.
    #[serde(default)]
    pub formed: Option<Formed>,
    /// The harness's address standing for this daemon: tokens to itself are sent there, and
    /// datagrams from there are accepted as its own.
    pub loopback: SocketAddr,
}

impl Setup {
    /// Reads the setup file.
    pub fn load(path: &Path) -> Result<Self, ControlledError> {
        let text = std::fs::read_to_string(path).map_err(|e| ControlledError::Read(path.to_owned(), e))?;
        serde_json::from_str(&text).map_err(|e| ControlledError::Parse(path.to_owned(), e.to_string()))
    }
}

/// What a controlled daemon starts with.
#[derive(Debug)]
pub struct Started {
    /// The ring parameters of the setup.
    pub ring: RingConfig,
    /// The machine (installed in the formed ring, or to be booted).
    pub machine: Daemon,
    /// The controlled-mode state.
    pub ctl: Controlled,
    /// The durable record to persist before anything else (a formed start).
    pub persist: Option<Durable>,
}

/// With `runtime.controlled`: reads the setup and builds the machine from the durable record
/// (`None`: a first start, formed if the setup says so); without, `None`.
pub fn start(cfg: &DaemonConfig, durable: Option<Durable>) -> Result<Option<Started>, ControlledError> {
    if !cfg.runtime.controlled {
        return Ok(None);
    }
    let path = cfg
        .runtime
        .controlled_setup
        .as_deref()
        .ok_or_else(|| ControlledError::Invalid("runtime.controlled_setup is missing".into()))?;
    let setup = Setup::load(path)?;
    setup
        .ring
        .validate()
        .map_err(|e| ControlledError::Invalid(e.to_string()))?;
    let mut nodes: Vec<_> = cfg.peers.iter().map(|p| p.id).collect();
    nodes.sort_unstable();
    if nodes != setup.ring.nodes {
        return Err(ControlledError::Invalid(format!(
            "ring nodes {:?} are not the configured peers {nodes:?}",
            setup.ring.nodes
        )));
    }
    tracing::warn!("TESTING: controlled mode, the harness is this daemon's network and clock");
    let me = cfg.daemon.id;
    Ok(Some(match (durable, &setup.formed) {
        (None, Some(f)) => {
            let (machine, cmds) = formed_start(&setup.ring, me, f.ring, &f.members);
            Started {
                persist: Some(machine.durable),
                ring: setup.ring,
                machine,
                ctl: Controlled::new(setup.loopback, Some(cmds)),
            }
        }
        (durable, _) => Started {
            ring: setup.ring,
            machine: Daemon::new(me, durable),
            ctl: Controlled::new(setup.loopback, None),
            persist: None,
        },
    }))
}

/// One machine input and the commands it returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Inputs handled before this one in this process (from 0).
    pub input: u64,
    /// The commands, in order: hex of their `postcard` encoding (`Vec<Command>`; packets hold
    /// maps keyed by pids, which JSON cannot carry).
    pub commands: String,
}

impl Report {
    /// The commands, decoded.
    pub fn decode(&self) -> Result<Vec<Command>, String> {
        postcard::from_bytes(&unhex(&self.commands)?).map_err(|e| e.to_string())
    }
}

/// The answer to the admin `controlled` request: the reports since the last one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    /// The daemon's pid.
    pub me: Pid,
    /// Inputs handled by this process so far.
    pub inputs: u64,
    /// Inputs queued and not handled yet.
    pub queued: usize,
    /// Reports dropped because the harness did not drain them in time.
    pub overflow: u64,
    /// The reports, oldest first.
    pub reports: Vec<Report>,
    /// Timers armed now.
    pub armed: Vec<TimerKind>,
}

/// The controlled-mode state of a runtime.
#[derive(Debug)]
pub struct Controlled {
    armed: BTreeSet<TimerKind>,
    inputs: u64,
    reports: VecDeque<Report>,
    overflow: u64,
    start: Option<Vec<Command>>,
    loopback: SocketAddr,
}

impl Controlled {
    /// The state of a daemon that starts with `start` (the commands of a formed start) or by
    /// booting (`None`).
    pub const fn new(loopback: SocketAddr, start: Option<Vec<Command>>) -> Self {
        Self {
            armed: BTreeSet::new(),
            inputs: 0,
            reports: VecDeque::new(),
            overflow: 0,
            start,
            loopback,
        }
    }

    /// The harness's address standing for this daemon.
    pub const fn loopback(&self) -> SocketAddr {
        self.loopback
    }

    /// The commands of a formed start, once (then the daemon does not boot).
    pub const fn take_start(&mut self) -> Option<Vec<Command>> {
        self.start.take()
    }

    /// Records one input's commands and keeps the armed timers up to date.
    pub fn on_input(&mut self, commands: &[Command]) {
        for c in commands {
            match c {
                Command::SetTimer { kind, .. } => {
                    self.armed.insert(*kind);
                }
                Command::CancelTimer(kind) => {
                    self.armed.remove(kind);
                }
                _ => {}
            }
        }
        if self.reports.len() >= MAX_REPORTS {
            self.reports.pop_front();
            self.overflow += 1;
        }
        let bytes = postcard::to_allocvec(commands).unwrap_or_default();
        self.reports.push_back(Report {
            input: self.inputs,
            commands: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        });
        self.inputs += 1;
    }

    /// Fires an armed timer: the event to handle, or why not.
    pub fn fire(&mut self, kind: TimerKind) -> Result<Event, String> {
        if self.armed.remove(&kind) {
            Ok(Event::Timer(kind))
        } else {
            Err(format!("timer {kind:?} is not armed"))
        }
    }

    /// A client submission with the given message number, checked against this daemon's pid.
    pub fn submit(
        me: Pid,
        incarnation: Option<u32>,
        n: u32,
        service: Service,
        payload: &str,
    ) -> Result<Event, String> {
        if let Some(inc) = incarnation
            && inc != me.inc
        {
            return Err(format!("incarnation {inc} asked, the daemon is {me}"));
        }
        Ok(Event::Submit {
            id: MsgId { origin: me, n },
            service,
            payload: unhex(payload)?,
        })
    }

    /// Answers a controlled-mode admin request: the answer and the input to queue, if any.
    pub fn request(&mut self, me: Pid, queued: usize, req: Request) -> (Response, Option<Event>) {
        let ev = match req {
            Request::FireTimer { timer } => self.fire(timer),
            Request::Submit {
                n,
                service,
                payload,
                incarnation,
            } => Self::submit(me, incarnation, n, service, &payload),
            Request::Controlled => {
                let answer = serde_json::to_value(self.drain(me, queued))
                    .map_or_else(|e| Response::err(e.to_string()), Response::ok);
                return (answer, None);
            }
            other => {
                return (
                    Response::err(format!("not a controlled-mode request: {other:?}")),
                    None,
                );
            }
        };
        match ev {
            Ok(ev) => (
                Response::ok(serde_json::json!({ "queued": queued + 1 })),
                Some(ev),
            ),
            Err(e) => (Response::err(e), None),
        }
    }

    /// The reports since the last call.
    pub fn drain(&mut self, me: Pid, queued: usize) -> Drained {
        Drained {
            me,
            inputs: self.inputs,
            queued,
            overflow: self.overflow,
            reports: self.reports.drain(..).collect(),
            armed: self.armed.iter().copied().collect(),
        }
    }
}

/// Lowercase or uppercase hex to bytes.
fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("not a hex digit: {}", char::from(c))),
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| match p {
            [h, l] => Ok(digit(*h)? << 4 | digit(*l)?),
            _ => Err("odd number of hex digits".into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_armed_by_commands_and_fire_once() {
        let mut c = Controlled::new(SocketAddr::from(([127, 0, 0, 1], 1)), None);
        c.on_input(&[Command::SetTimer {
            kind: TimerKind::Join,
            after: std::time::Duration::from_millis(5),
        }]);
        assert_eq!(c.fire(TimerKind::Join), Ok(Event::Timer(TimerKind::Join)));
        assert!(c.fire(TimerKind::Join).is_err());
        let d = c.drain(Pid::new(0, 1), 0);
        assert_eq!((d.inputs, d.reports.len()), (1, 1));
        let cmds = d.reports[0].decode().expect("decodes");
        assert!(matches!(
            cmds.as_slice(),
            [Command::SetTimer {
                kind: TimerKind::Join,
                ..
            }]
        ));
        assert!(c.drain(Pid::new(0, 1), 0).reports.is_empty());
    }

    #[test]
    fn submit_checks_the_incarnation_and_the_hex() {
        let me = Pid::new(1, 2);
        assert!(Controlled::submit(me, Some(1), 0, Service::Agreed, "00").is_err());
        assert!(Controlled::submit(me, None, 0, Service::Agreed, "0").is_err());
        assert_eq!(
            Controlled::submit(me, Some(2), 3, Service::Safe, "0aFF"),
            Ok(Event::Submit {
                id: MsgId { origin: me, n: 3 },
                service: Service::Safe,
                payload: vec![10, 255],
            })
        );
    }
}
