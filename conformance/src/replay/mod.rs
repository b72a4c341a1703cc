//! Replaying traces into the sans-IO machines, outside Stateright: the replayer is the
//! machines' network, clock and clients (for `evs`) or their group communication system (for
//! `tgdh`), applies each step's events in order, and compares what the machines emit with the
//! step's expected observations. The first difference stops the replay and is reported as a
//! [`Mismatch`] with a readable diff.
//!
//! - [`evs`]: ring `Daemon`s wired by a simulated network (packets in flight, cuts, crashes,
//!   armed timers, persisted records);
//! - [`tgdh`]: TGDH `Member`s (symbolic provider) over components with agreed-order queues;
//! - [`live`]: recordings of running daemons replayed into fresh ring machines (live → model).

pub mod evs;
pub mod live;
pub mod tgdh;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::trace::{Run, Trace, trace_files};

/// The first difference between a trace and its replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Step index (from 0).
    pub step: usize,
    /// The step's events, one line each.
    pub events: Vec<String>,
    /// What went wrong: `observations differ`, or why the trace cannot be applied (a packet
    /// not in flight, a timer not armed, ...).
    pub reason: String,
    /// The expected observations, one line each.
    pub expected: Vec<String>,
    /// The observations the machines produced, one line each.
    pub actual: Vec<String>,
}

impl Mismatch {
    /// A mismatch of observations.
    pub fn observations<O: fmt::Display>(
        step: usize,
        events: Vec<String>,
        expected: &[O],
        actual: &[O],
    ) -> Self {
        Self {
            step,
            events,
            reason: "observations differ".to_owned(),
            expected: expected.iter().map(ToString::to_string).collect(),
            actual: actual.iter().map(ToString::to_string).collect(),
        }
    }

    /// A step that cannot be applied.
    pub fn inapplicable(step: usize, events: Vec<String>, reason: impl Into<String>) -> Self {
        Self {
            step,
            events,
            reason: reason.into(),
            expected: Vec::new(),
            actual: Vec::new(),
        }
    }

    /// The unified diff of expected (`-`) and actual (`+`) observations, common ones with two
    /// spaces, in order (longest common subsequence).
    pub fn diff_lines(&self) -> Vec<String> {
        let (a, b) = (&self.expected, &self.actual);
        let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                out.push(format!("  {}", a[i]));
                i += 1;
                j += 1;
            } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
                out.push(format!("- {}", a[i]));
                i += 1;
            } else {
                out.push(format!("+ {}", b[j]));
                j += 1;
            }
        }
        out
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "step {}: {}", self.step, self.reason)?;
        for e in &self.events {
            writeln!(f, "  event: {e}")?;
        }
        if self.reason == "observations differ" {
            writeln!(f, "  (- expected, + actual)")?;
            for l in self.diff_lines() {
                writeln!(f, "  {l}")?;
            }
        }
        Ok(())
    }
}

/// The outcome of replaying one trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The trace's name.
    pub name: String,
    /// Steps replayed (all of them when matched).
    pub steps: usize,
    /// Observations compared.
    pub observations: usize,
    /// The first difference, if any.
    pub mismatch: Option<Mismatch>,
}

impl Outcome {
    /// Whether the replay matched the trace.
    pub const fn matched(&self) -> bool {
        self.mismatch.is_none()
    }
}

/// Replays one trace.
pub fn replay(trace: &Trace) -> Outcome {
    let (steps, observations, mismatch) = match &trace.run {
        Run::Evs(r) => evs::replay(r),
        Run::Tgdh(r) => tgdh::replay(r),
    };
    Outcome {
        name: trace.name.clone(),
        steps,
        observations,
        mismatch,
    }
}

/// One entry of a directory replay's summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The file.
    pub file: String,
    /// The trace's name (empty when the file did not load).
    pub trace: String,
    /// The first difference, or why the file did not load, as readable text.
    pub diff: String,
}

/// The summary `sgc conformance replay DIR` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Trace files found.
    pub traces: usize,
    /// Traces whose replay matched.
    pub matched: usize,
    /// Steps replayed over all traces.
    pub steps: usize,
    /// Observations compared over all traces.
    pub observations: usize,
    /// Every trace that did not load or did not match.
    pub mismatches: Vec<Failure>,
}

/// Replays every `*.json` trace in `dir` (sorted by file name). A file that does not load
/// counts as a mismatch; an unreadable directory is an error.
pub fn replay_dir(dir: &Path) -> Result<Summary, crate::trace::TraceError> {
    let mut sum = Summary::default();
    for file in trace_files(dir)? {
        sum.traces += 1;
        let shown = file.display().to_string();
        match Trace::load(&file) {
            Err(e) => sum.mismatches.push(Failure {
                file: shown,
                trace: String::new(),
                diff: e.to_string(),
            }),
            Ok(t) => {
                let o = replay(&t);
                sum.steps += o.steps;
                sum.observations += o.observations;
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
