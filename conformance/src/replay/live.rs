//! Live → model: recordings made by running daemons (`runtime.record`, see
//! [`sgc_model::ring::record`]) replayed into fresh ring machines, and the EVS properties of
//! `spec/evs.md` evaluated over what the live daemons did.
//!
//! Each recording is one daemon incarnation: its header rebuilds the machine exactly as the
//! daemon built it (`Daemon::new(node, durable)` with the same `RingConfig`), then every
//! recorded input is fed again and the commands must be identical, step for step. The recorded
//! commands of all incarnations together are then read as per-daemon observation logs
//! ([`History`]) and the always-properties that need no knowledge of who crashed are checked:
//! EVS-NODUP, EVS-CONFAGREE, EVS-TRANS, EVS-SAMEVIEW, EVS-VSYNC, EVS-AGREED, EVS-CAUSAL and
//! the invariant half of EVS-SAFE. A daemon's `received` set is read from the data packets it
//! was fed and the ones it broadcast (the checker reads the machine's buffers instead).

use std::path::{Path, PathBuf};

use serde::Serialize;
use sgc_model::ring::props::{self, History, LogEntry, chunk_ids};
use sgc_model::ring::record::{self, Recording};
use sgc_model::ring::{Daemon, Event, Packet};

use super::Mismatch;

/// Longest rendering of one event or command in a mismatch (payloads make them long).
const LINE: usize = 240;

/// The outcome of replaying one recording.
#[derive(Clone, Debug, Serialize)]
pub struct LiveOutcome {
    /// The recording file.
    pub file: PathBuf,
    /// The daemon and its incarnation.
    pub pid: String,
    /// Steps replayed (all of them when matched).
    pub steps: usize,
    /// Commands compared.
    pub commands: usize,
    /// The file ended inside a frame (the daemon was killed while writing).
    pub torn_tail: bool,
    /// The first difference, if any.
    pub mismatch: Option<Mismatch>,
    /// What the live daemon did, as an observation log.
    #[serde(skip)]
    pub history: History,
}

fn line(x: &impl std::fmt::Debug) -> String {
    let mut s = format!("{x:?}");
    if s.len() > LINE {
        let mut cut = LINE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Replays one recording into a fresh machine.
pub fn replay_recording(file: PathBuf, rec: &Recording) -> LiveOutcome {
    let h = &rec.header;
    let mut machine = Daemon::new(h.node, h.durable);
    let mut history = History::new(machine.me);
    let mut commands = 0;
    let mut mismatch = None;
    let mut steps = 0;
    for (i, step) in rec.steps.iter().enumerate() {
        match &step.event {
            Event::Submit { id, .. } => history.log.push(LogEntry::Submitted { id: *id }),
            Event::Recv {
                pkt: Packet::Data(p), ..
            } => history.received.extend(chunk_ids(p)),
            _ => {}
        }
        let got = machine.handle(&h.ring, step.event.clone());
        if got != step.commands {
            mismatch = Some(Mismatch {
                step: i,
                events: vec![line(&step.event)],
                reason: "observations differ".to_owned(),
                expected: step.commands.iter().map(line).collect(),
                actual: got.iter().map(line).collect(),
            });
            break;
        }
        commands += got.len();
        history.observe(&got);
        steps += 1;
    }
    LiveOutcome {
        file,
        pid: machine.me.to_string(),
        steps,
        commands,
        torn_tail: rec.torn_tail,
        mismatch,
        history,
    }
}

/// One property evaluated over the live histories.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveProperty {
    /// Its ID (`spec/evs.md`).
    pub name: &'static str,
    /// Whether it holds.
    pub holds: bool,
}

/// Everything replayed from one directory.
#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    /// Per recording.
    pub recordings: Vec<LiveOutcome>,
    /// Steps replayed in all.
    pub steps: usize,
    /// Recordings whose replay differs.
    pub mismatches: usize,
    /// Files without even a whole header (a daemon killed as it started), skipped.
    pub empty: usize,
    /// Messages delivered (all daemons).
    pub deliveries: usize,
    /// Configurations installed (all daemons, regular and transitional).
    pub configurations: usize,
    /// The properties checked over the histories.
    pub properties: Vec<LiveProperty>,
}

impl LiveReport {
    /// Every replay matched and every property holds.
    pub fn ok(&self) -> bool {
        self.mismatches == 0 && self.properties.iter().all(|p| p.holds)
    }
}

/// Why recordings could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A directory or file could not be read.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A file is not a readable recording.
    #[error("{0}: {1}")]
    Record(PathBuf, record::RecordError),
    /// No recording was found.
    #[error("no record-*.bin under {0}")]
    Empty(PathBuf),
}

/// Every `record-*.bin` under `dir` (recursively), sorted.
pub fn recording_files(dir: &Path) -> Result<Vec<PathBuf>, LiveError> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| LiveError::Io(d.clone(), e))?;
        for e in entries {
            let path = e.map_err(|e| LiveError::Io(d.clone(), e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                todo.push(path);
            } else if name.starts_with("record-") && name.ends_with(".bin") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Replays every recording under `dir` and checks the properties over all of them.
pub fn replay_dir(dir: &Path) -> Result<LiveReport, LiveError> {
    let files = recording_files(dir)?;
    if files.is_empty() {
        return Err(LiveError::Empty(dir.to_path_buf()));
    }
    let mut recordings = Vec::new();
    let mut empty = 0;
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| LiveError::Io(f.clone(), e))?;
        match record::read(&bytes) {
            Ok(rec) => recordings.push(replay_recording(f, &rec)),
            Err(record::RecordError::Empty) => empty += 1,
            Err(e) => return Err(LiveError::Record(f, e)),
        }
    }
    let mut r = report(recordings);
    r.empty = empty;
    Ok(r)
}

/// A property over the histories of every daemon incarnation.
type Predicate = fn(&[&History]) -> bool;

/// The summary and property checks of replayed recordings.
pub fn report(recordings: Vec<LiveOutcome>) -> LiveReport {
    let hs: Vec<&History> = recordings.iter().map(|r| &r.history).collect();
    let count = |f: fn(&LogEntry) -> bool| hs.iter().flat_map(|h| h.log.iter()).filter(|e| f(e)).count();
    let checks: [(&'static str, Predicate); 8] = [
        ("EVS-NODUP", props::evs_nodup),
        ("EVS-CONFAGREE", props::evs_confagree),
        ("EVS-TRANS", props::evs_trans),
        ("EVS-SAMEVIEW", props::evs_sameview),
        ("EVS-VSYNC", props::evs_vsync),
        ("EVS-AGREED", props::evs_agreed),
        ("EVS-CAUSAL", props::evs_causal),
        ("EVS-SAFE", props::evs_safe),
    ];
    let properties = checks
        .iter()
        .map(|(name, f)| LiveProperty { name, holds: f(&hs) })
        .collect();
    LiveReport {
        steps: recordings.iter().map(|r| r.steps).sum(),
        mismatches: recordings.iter().filter(|r| r.mismatch.is_some()).count(),
        empty: 0,
        deliveries: count(|e| matches!(e, LogEntry::Delivered { .. })),
        configurations: count(|e| matches!(e, LogEntry::Installed { .. })),
        properties,
        recordings,
    }
}

/// Commands of a recording that a replay compares (for tests that alter recordings).
pub fn command_count(rec: &Recording) -> usize {
    rec.steps.iter().map(|s| s.commands.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use sgc_model::ring::record::{Header, RECORD_VERSION, Step};
    use sgc_model::ring::{Command, RingConfig, TimerKind};

    use super::*;

    /// A recording made the way the daemon's runtime makes it: a lone daemon boots, its
    /// consensus timer fires, and tokens it sends to itself come back as input, until its
    /// singleton ring is installed.
    fn recorded() -> Recording {
        let ring = RingConfig::new(vec![0]);
        let mut d = Daemon::new(0, None);
        let mut steps = Vec::new();
        let mut queue = vec![Event::Boot, Event::Timer(TimerKind::Consensus)];
        queue.reverse();
        let mut installed = false;
        for _ in 0..64 {
            let Some(ev) = queue.pop() else { break };
            let commands = d.handle(&ring, ev.clone());
            for c in &commands {
                match c {
                    Command::SendToken { to, pkt } if *to == d.me => queue.insert(
                        0,
                        Event::Recv {
                            from: d.me,
                            pkt: pkt.clone(),
                        },
                    ),
                    Command::DeliverConfig { .. } => installed = true,
                    _ => {}
                }
            }
            steps.push(Step { event: ev, commands });
            if installed {
                break;
            }
        }
        assert!(installed, "the lone daemon formed its ring");
        Recording {
            header: Header {
                version: RECORD_VERSION,
                node: 0,
                durable: None,
                ring,
            },
            steps,
            torn_tail: false,
        }
    }

    #[test]
    fn a_faithful_recording_replays_identically_and_satisfies_the_properties() {
        let rec = recorded();
        assert!(command_count(&rec) > 0);
        let out = replay_recording(PathBuf::from("r"), &rec);
        assert!(out.mismatch.is_none(), "{:?}", out.mismatch);
        assert_eq!(out.steps, rec.steps.len());
        let r = report(vec![out]);
        assert!(r.ok());
        assert!(r.configurations >= 1, "the singleton ring was installed");
    }

    #[test]
    fn an_altered_command_is_a_mismatch_with_a_diff() {
        let mut rec = recorded();
        let step = rec.steps.iter().position(|s| !s.commands.is_empty()).unwrap();
        rec.steps[step].commands.pop();
        let out = replay_recording(PathBuf::from("r"), &rec);
        let m = out.mismatch.expect("mismatch");
        assert_eq!(m.step, step);
        assert!(m.diff_lines().iter().any(|l| l.starts_with("+ ")));
        assert!(!report(vec![replay_recording(PathBuf::from("r"), &rec)]).ok());
    }

    #[test]
    fn two_daemons_delivering_in_different_orders_violate_evs_agreed() {
        use sgc_model::ring::{ConfigId, MsgId, Pid, RingId, Service};
        let (p, q) = (Pid::new(0, 1), Pid::new(1, 1));
        let ring = RingId { seq: 4, rep: p };
        let config = ConfigId::Regular(ring);
        let (a, b) = (MsgId { origin: p, n: 1 }, MsgId { origin: q, n: 1 });
        let history = |pid, order: [MsgId; 2]| {
            let mut h = History::new(pid);
            h.log.push(LogEntry::Installed {
                config,
                members: vec![p, q],
            });
            h.log.push(LogEntry::Submitted {
                id: if pid == p { a } else { b },
            });
            for id in order {
                h.log.push(LogEntry::Delivered {
                    id,
                    service: Service::Agreed,
                    config,
                    at_install: false,
                });
            }
            h.received.extend([a, b]);
            h
        };
        let outcome = |h| LiveOutcome {
            file: PathBuf::from("r"),
            pid: String::new(),
            steps: 0,
            commands: 0,
            torn_tail: false,
            mismatch: None,
            history: h,
        };
        let same = report(vec![outcome(history(p, [a, b])), outcome(history(q, [a, b]))]);
        assert!(same.ok(), "{:?}", same.properties);
        let r = report(vec![outcome(history(p, [a, b])), outcome(history(q, [b, a]))]);
        let violated: Vec<_> = r.properties.iter().filter(|x| !x.holds).map(|x| x.name).collect();
        assert!(violated.contains(&"EVS-AGREED"), "{violated:?}");
    }
}
