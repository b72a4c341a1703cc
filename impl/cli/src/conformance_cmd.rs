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
    }
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
