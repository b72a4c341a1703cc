//! `sgc check <model>` (`tgdh`, `evs`, `groups`, `vs`, `keys`, `protection`): runs the Stateright checker on a protocol model and prints the report
//! (`{model, mutant, states, complete, properties: [{name, expectation, holds,
//! counterexample}]}` with `--json`). Exit status 0 only when every property holds.
//! `--export-traces DIR` also writes the run's discoveries and random walks as traces
//! (`sgc-conformance`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use sgc_conformance::export::{ExportOptions, evs_traces, tgdh_traces};
use sgc_conformance::trace::{Trace, TraceError, write_traces};
use sgc_model::check::{CheckOptions, CheckReport};
use sgc_model::groups::GroupMutant;
use sgc_model::keys::KeysMutant;
use sgc_model::keys::check::KeysModel;
use sgc_model::protection::ProtectionMutant;
use sgc_model::protection::check::ProtectionModel;
use sgc_model::ring::RingMutant;
use sgc_model::tgdh::check::{TgdhModel, check};
use sgc_model::tgdh::member::Mutant;
use sgc_model::vs::VsMutant;

use crate::CliError;

/// The models `sgc check` knows.
#[derive(Subcommand, Debug)]
pub enum CheckModel {
    /// TGDH key agreement: tree invariants, agreement, liveness, key independence, freshness,
    /// backward and forward secrecy, epoch hygiene.
    Tgdh(TgdhArgs),
    /// The daemon ring: Totem-style total order and EVS membership (3 daemons, bounded).
    Evs(EvsArgs),
    /// The daemon's light-weight group layer over an abstract EVS oracle (2 daemons, scripted
    /// clients, partition, merge and crash scenarios).
    Groups(GroupsArgs),
    /// The flush layer: view synchrony over EVS group views (2–3 clients, scripted changes).
    Vs(VsArgs),
    /// Integrated security's key engines: servers' TGDH before client keys, group keys
    /// `HMAC(K_servers, g || view_id)` (agreement, freshness, members only, order, forward and
    /// backward secrecy) over the group layer and an abstract EVS oracle.
    Keys(KeysArgs),
    /// Three-Step packet protection's per-destination rule: seal only under a key the peer
    /// holds, no packet lost to a key change, every pair sealed under the newest key once
    /// quiet (daemons in a ring, reordering network).
    Protection(ProtectionArgs),
}

/// Options of `sgc check protection`.
#[derive(Args, Debug)]
pub struct ProtectionArgs {
    /// Daemons in the ring (2 or 3).
    #[arg(long, default_value_t = 2)]
    daemons: usize,
    /// Servers' key epochs each daemon installs (1 or 2).
    #[arg(long, default_value_t = 2)]
    epochs: u64,
    /// Packets each daemon sends to its ring successor.
    #[arg(long, default_value_t = 1)]
    sends: u8,
    #[command(flatten)]
    common: CommonArgs,
}

/// Options every model shares.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Check with this seeded bug (see --list-mutants); stops at its first counterexample.
    #[arg(long)]
    mutant: Option<String>,
    /// List the seeded bugs and exit.
    #[arg(long)]
    list_mutants: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write the run's discoveries and a few random walks as JSON traces into DIR
    /// (`evs`, `tgdh`; see docs/conformance.md).
    #[arg(long, value_name = "DIR")]
    export_traces: Option<std::path::PathBuf>,
}

/// Options of `sgc check evs`.
#[derive(Args, Debug)]
pub struct EvsArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of `sgc check keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    /// Daemons (2 or 3), one client each plus a second client at daemon 1 when 2.
    #[arg(long, default_value_t = 2)]
    daemons: usize,
    /// Client groups (1 or 2).
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// Client joins and leaves explored on every path (plus one partition, one merge, one
    /// refresh).
    #[arg(long, default_value_t = 2)]
    requests: u8,
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of `sgc check vs`.
#[derive(Args, Debug)]
pub struct VsArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of `sgc check groups`.
#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of `sgc check tgdh`.
#[derive(Args, Debug)]
pub struct TgdhArgs {
    /// Principals that may be members (3 or 4 check in seconds; 5 takes long).
    #[arg(long, default_value_t = 4)]
    members: usize,
    /// Membership events and refreshes explored on every path.
    #[arg(long, default_value_t = 3)]
    events: u8,
    /// Adversarial replays of old messages explored on every path.
    #[arg(long, default_value_t = 1)]
    replays: u8,
    #[command(flatten)]
    common: CommonArgs,
}

/// A model's seeded bugs: command-line name, description, value.
type MutantTable<M> = Vec<(&'static str, &'static str, M)>;

/// Handles `--list-mutants` (returns `None`: nothing left to do) or resolves `--mutant`.
fn select_mutant<M: Copy>(args: &CommonArgs, all: &MutantTable<M>) -> Result<Option<Option<M>>, CliError> {
    let names: Vec<&str> = all.iter().map(|m| m.0).collect();
    if args.list_mutants {
        if args.json {
            out!(
                "{}",
                serde_json::to_string(&names).map_err(|e| CliError::Output(e.to_string()))?
            );
        } else {
            all.iter().for_each(|(name, what, _)| out!("{name:28} {what}"));
        }
        return Ok(None);
    }
    match &args.mutant {
        None => Ok(Some(None)),
        Some(name) => all
            .iter()
            .find(|m| m.0 == name)
            .map(|m| Some(Some(m.2)))
            .ok_or_else(|| CliError::Usage(format!("unknown mutant {name:?}; known: {}", names.join(", ")))),
    }
}

/// Prints the report; exit status 0 only when every property holds.
fn finish(report: &CheckReport, json: bool) -> Result<ExitCode, CliError> {
    print_report(report, json)?;
    Ok(if report.all_hold() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `sgc check`.
pub fn run(model: CheckModel) -> Result<ExitCode, CliError> {
    match model {
        CheckModel::Tgdh(args) => tgdh(&args),
        CheckModel::Evs(args) => evs(&args),
        CheckModel::Groups(args) => groups(&args),
        CheckModel::Vs(args) => vs(&args),
        CheckModel::Keys(args) => keys(&args),
        CheckModel::Protection(args) => protection(&args),
    }
}

fn protection(args: &ProtectionArgs) -> Result<ExitCode, CliError> {
    let all = ProtectionMutant::ALL
        .iter()
        .map(|&m| (m.name(), m.describe(), m))
        .collect();
    let Some(mutant) = select_mutant(&args.common, &all)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.common.export_traces.is_some() {
        return Err(CliError::Usage(
            "--export-traces is not supported for protection yet (evs, tgdh)".into(),
        ));
    }
    if !(2..=3).contains(&args.daemons) || !(1..=2).contains(&args.epochs) {
        return Err(CliError::Usage(format!(
            "--daemons must be 2 or 3 and --epochs 1 or 2, got {} and {}",
            args.daemons, args.epochs
        )));
    }
    let model = ProtectionModel {
        daemons: args.daemons,
        epochs: args.epochs,
        sends: args.sends,
        mutant,
    };
    let opts = CheckOptions {
        stop_at_first_failure: mutant.is_some(),
        ..CheckOptions::default()
    };
    finish(
        &sgc_model::protection::check::check(model, opts),
        args.common.json,
    )
}

fn keys(args: &KeysArgs) -> Result<ExitCode, CliError> {
    let all = KeysMutant::ALL
        .iter()
        .map(|&m| (m.name(), m.describe(), m))
        .collect();
    let Some(mutant) = select_mutant(&args.common, &all)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.common.export_traces.is_some() {
        return Err(CliError::Usage(
            "--export-traces is not supported for keys yet (evs, tgdh)".into(),
        ));
    }
    let clients = match args.daemons {
        2 => vec![0, 1, 1],
        3 => vec![0, 1, 2],
        n => return Err(CliError::Usage(format!("--daemons must be 2 or 3, got {n}"))),
    };
    if !(1..=2).contains(&args.groups) {
        return Err(CliError::Usage(format!(
            "--groups must be 1 or 2, got {}",
            args.groups
        )));
    }
    let model = KeysModel {
        daemons: args.daemons,
        clients,
        groups: args.groups,
        requests: args.requests,
        ..KeysModel::bounded(mutant)
    };
    let opts = CheckOptions {
        stop_at_first_failure: mutant.is_some(),
        ..CheckOptions::default()
    };
    finish(&sgc_model::keys::check::check(model, opts), args.common.json)
}

fn vs(args: &VsArgs) -> Result<ExitCode, CliError> {
    let all = VsMutant::ALL
        .iter()
        .map(|&m| (m.name(), m.describe(), m))
        .collect();
    let Some(mutant) = select_mutant(&args.common, &all)? else {
        return Ok(ExitCode::SUCCESS);
    };
    finish(&sgc_model::vs::check::check(mutant), args.common.json)
}

fn groups(args: &GroupsArgs) -> Result<ExitCode, CliError> {
    let all = GroupMutant::ALL
        .iter()
        .map(|&m| (m.name(), m.describe(), m))
        .collect();
    let Some(mutant) = select_mutant(&args.common, &all)? else {
        return Ok(ExitCode::SUCCESS);
    };
    finish(&sgc_model::groups::check::check(mutant), args.common.json)
}

fn evs(args: &EvsArgs) -> Result<ExitCode, CliError> {
    let all = RingMutant::ALL
        .iter()
        .map(|&m| (m.name(), m.describe(), m))
        .collect();
    let Some(mutant) = select_mutant(&args.common, &all)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let report = match &args.common.export_traces {
        None => sgc_model::ring::check::check(mutant),
        Some(dir) => {
            let (cfg, search, budget) = sgc_model::ring::check::check_plan(mutant);
            export_traces(dir, evs_traces(&cfg, search, budget, &ExportOptions::default()))?
        }
    };
    finish(&report, args.common.json)
}

/// Writes the traces of an export to `dir` (one line on stderr) and returns the run's report.
fn export_traces(
    dir: &std::path::Path,
    exported: Result<(CheckReport, Vec<Trace>), TraceError>,
) -> Result<CheckReport, CliError> {
    let (report, traces) = exported.map_err(|e| CliError::Usage(format!("--export-traces: {e}")))?;
    let files = write_traces(dir, &traces).map_err(|e| CliError::Usage(format!("--export-traces: {e}")))?;
    eprintln!("sgc: wrote {} traces to {}", files.len(), dir.display());
    Ok(report)
}

fn tgdh(args: &TgdhArgs) -> Result<ExitCode, CliError> {
    let all = Mutant::ALL.iter().map(|&m| (m.name(), m.describe(), m)).collect();
    let Some(mutant) = select_mutant(&args.common, &all)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if !(2..=6).contains(&args.members) {
        return Err(CliError::Usage(format!(
            "--members must be 2..=6, got {}",
            args.members
        )));
    }
    let model = TgdhModel {
        universe: args.members,
        initial: args.members - 1,
        max_events: args.events,
        max_replays: args.replays,
        mutant,
    };
    let opts = CheckOptions {
        stop_at_first_failure: mutant.is_some(),
        ..CheckOptions::default()
    };
    let report = match &args.common.export_traces {
        None => check(model, opts),
        Some(dir) => export_traces(dir, tgdh_traces(&model, opts, &ExportOptions::default()))?,
    };
    finish(&report, args.common.json)
}

/// Prints a report as JSON or as a readable table.
pub fn print_report(report: &CheckReport, json: bool) -> Result<(), CliError> {
    if json {
        out!(
            "{}",
            serde_json::to_string(report).map_err(|e| CliError::Output(e.to_string()))?
        );
        return Ok(());
    }
    let mutant = report.mutant.as_deref().unwrap_or("none");
    out!(
        "model {}  mutant {mutant}  states {}  complete {}",
        report.model,
        report.states,
        report.complete
    );
    for p in &report.properties {
        let verdict = if p.holds { "ok" } else { "FAILED" };
        out!("  {verdict:6} {:9} {}", p.expectation, p.name);
        if let Some(path) = &p.counterexample {
            for step in path.lines() {
                out!("           {step}");
            }
        }
    }
    Ok(())
}
