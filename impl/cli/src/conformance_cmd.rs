//! `sgc conformance live DIR [--json]` replays daemon recordings (live → model) and
//! `sgc conformance fuzz ...` runs a seeded fault run first (`fuzz.rs`).
//!
//! `sgc conformance replay DIR [--json]`: replays every checker trace of `DIR` into the
//! sans-IO machines (`sgc-conformance`) and prints `{"traces", "matched", "steps",
//! "observations", "mismatches": [{"file", "trace", "diff"}]}`. Exit status 0 when every trace
//! matched, 1 on any mismatch, 2 when `DIR` cannot be read.
//!
//! `sgc conformance replay DIR --live [--work W] [--max-traces N] [--json]`: replays every `evs`
//! trace of `DIR` on live daemons (this executable's `sgc daemon`, controlled mode; the harness
//! of `sgc_conformance::harness` is their network and clock) and prints `{"traces",
//! "replayed", "matched", "steps", "observations", "counts": {"packets_released",
//! "packets_dropped", "datagrams", "timers_fired", "submits", "processes", "crashes"},
//! "excluded": [{"file", "trace", "reason"}], "mismatches": [...]}`. Same exit statuses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sgc_conformance::replay_dir;

use crate::CliError;

/// `sgc conformance` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConformanceCommand {
    /// Replay every trace in DIR into the machines and compare every observation.
    Replay(ReplayArgs),
    /// Replay every daemon recording (`record-*.bin`) under DIR into fresh ring machines and
    /// check the EVS properties over what the daemons did.
    Live(LiveArgs),
    /// A seeded random fault run on a recording local cluster, then `live` on its recordings.
    Fuzz(crate::fuzz::FuzzArgs),
}

/// Options of `sgc conformance live`.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// A cluster directory (`sgc cluster up --record --dir DIR`) or any directory of recordings.
    dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Options of `sgc conformance replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Directory of `*.json` traces (written by `sgc check <model> --export-traces DIR`).
    dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Replay on live daemon processes (controlled mode) instead of the machines.
    #[arg(long)]
    live: bool,
    /// With --live: working directory for the daemons' files (default: a fresh directory
    /// under the system's temporary directory, removed afterwards).
    #[arg(long)]
    work: Option<PathBuf>,
    /// With --live: replay at most N traces (the others are listed as excluded).
    #[arg(long, default_value_t = 1000)]
    max_traces: usize,
}

/// Runs `sgc conformance`.
pub fn run(cmd: &ConformanceCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ConformanceCommand::Replay(args) => replay(args),
        ConformanceCommand::Live(args) => live(args),
        ConformanceCommand::Fuzz(args) => crate::fuzz::run(args),
    }
}

fn live(args: &LiveArgs) -> Result<ExitCode, CliError> {
    let r =
        sgc_conformance::replay::live::replay_dir(&args.dir).map_err(|e| CliError::Usage(e.to_string()))?;
    if args.json {
        out!(
            "{}",
            serde_json::to_string(&r).map_err(|e| CliError::Output(e.to_string()))?
        );
    } else {
        out!(
            "recordings {}  steps {}  deliveries {}  views {}  mismatches {}",
            r.recordings.len(),
            r.steps,
            r.deliveries,
            r.configurations,
            r.mismatches
        );
        for p in &r.properties {
            out!("  {:<14} {}", p.name, if p.holds { "holds" } else { "VIOLATED" });
        }
        for rec in &r.recordings {
            if let Some(m) = &rec.mismatch {
                out!("MISMATCH {} ({})", rec.pid, rec.file.display());
                for l in m.to_string().lines() {
                    out!("  {l}");
                }
            }
        }
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn replay_live(args: &ReplayArgs) -> Result<ExitCode, CliError> {
    let program = std::env::current_exe().map_err(|e| CliError::Output(e.to_string()))?;
    let (work, temporary) = match &args.work {
        Some(w) => (w.clone(), false),
        None => (
            std::env::temp_dir().join(format!("sgc-live-replay-{}", std::process::id())),
            true,
        ),
    };
    let mut opts = sgc_conformance::harness::LiveOptions::new(program, work.clone());
    opts.max_traces = args.max_traces;
    let sum = sgc_conformance::harness::replay_dir_live(&args.dir, &opts);
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let sum = sum.map_err(|e| CliError::Usage(e.to_string()))?;
    if args.json {
        out!(
            "{}",
            serde_json::to_string(&sum).map_err(|e| CliError::Output(e.to_string()))?
        );
    } else {
        let c = &sum.counts;
        out!(
            "traces {}  replayed live {}  matched {}  steps {}  observations {}  packets released {}  timers fired {}  excluded {}  mismatches {}",
            sum.traces,
            sum.replayed,
            sum.matched,
            sum.steps,
            sum.observations,
            c.packets_released,
            c.timers_fired,
            sum.excluded.len(),
            sum.mismatches.len()
        );
        for x in &sum.excluded {
            out!("EXCLUDED {} ({}): {}", x.trace, x.file, x.reason);
        }
        for m in &sum.mismatches {
            out!("MISMATCH {} ({})", m.trace, m.file);
            for l in m.diff.lines() {
                out!("  {l}");
            }
        }
    }
    Ok(if sum.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn replay(args: &ReplayArgs) -> Result<ExitCode, CliError> {
    if args.live {
        return replay_live(args);
    }
    let sum = replay_dir(&args.dir).map_err(|e| CliError::Usage(e.to_string()))?;
    if args.json {
        out!(
            "{}",
            serde_json::to_string(&sum).map_err(|e| CliError::Output(e.to_string()))?
        );
    } else {
        out!(
            "traces {}  matched {}  steps {}  observations {}  mismatches {}",
            sum.traces,
            sum.matched,
            sum.steps,
            sum.observations,
            sum.mismatches.len()
        );
        for m in &sum.mismatches {
            out!("MISMATCH {} ({})", m.trace, m.file);
            for l in m.diff.lines() {
                out!("  {l}");
            }
        }
    }
    Ok(if sum.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
