//! `sgc conformance live DIR [--json]` replays daemon recordings (live → model) and
//! `sgc conformance fuzz ...` runs a seeded fault run first (`fuzz.rs`).
//!
//! `sgc conformance replay DIR [--json]`: replays every checker trace of `DIR` into the
//! sans-IO machines (`sgc-conformance`) and prints `{"traces", "matched", "steps",
//! "observations", "mismatches": [{"file", "trace", "diff"}]}`. Exit status 0 when every trace
//! matched, 1 on any mismatch, 2 when `DIR` cannot be read.

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

fn replay(args: &ReplayArgs) -> Result<ExitCode, CliError> {
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
