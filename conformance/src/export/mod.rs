//! Exporting checker paths as traces: one trace per discovery of a run (the example of each
//! reached `sometimes` property, the counterexample of each violated `always` property) plus
//! seeded random walks.
//!
//! - [`evs_traces`]: the ring model (`sgc check evs --export-traces DIR`);
//! - [`tgdh_traces`]: the TGDH model (`sgc check tgdh --export-traces DIR`).

pub mod evs;
pub mod tgdh;

use sgc_model::check::{CheckOptions, CheckReport, random_walk, run_with_paths};
use sgc_model::ring::check::{RingModelCfg, Search, check_with_paths};
use sgc_model::tgdh::check::TgdhModel;
use sgc_model::tgdh::member::Mutant;

use crate::trace::{Origin, OriginKind, Run, Trace, TraceError};

/// What to export besides the discoveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// Number of random walks.
    pub walks: u32,
    /// Steps per walk (at most; a walk ends where no action is enabled).
    pub walk_steps: usize,
    /// Seed of the first walk (walk `k` uses `seed + k`).
    pub seed: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            walks: 3,
            walk_steps: 60,
            seed: 1,
        }
    }
}

/// A file-name-safe slug: lowercase letters, digits and dashes.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn discovery_trace(model: &str, mutant: Option<&str>, property: &str, expectation: &str, run: Run) -> Trace {
    let kind = if expectation == "sometimes" {
        OriginKind::Example
    } else {
        OriginKind::Counterexample
    };
    let name = format!(
        "{model}-{}-{}",
        mutant.map_or_else(|| "correct".to_owned(), slug),
        slug(property)
    );
    Trace::new(
        name,
        Origin {
            kind,
            property: Some(property.to_owned()),
            mutant: mutant.map(str::to_owned),
            seed: None,
        },
        run,
    )
}

fn walk_trace(model: &str, mutant: Option<&str>, seed: u64, run: Run) -> Trace {
    let name = format!(
        "{model}-{}-walk-{seed}",
        mutant.map_or_else(|| "correct".to_owned(), slug)
    );
    Trace::new(
        name,
        Origin {
            kind: OriginKind::Walk,
            property: None,
            mutant: mutant.map(str::to_owned),
            seed: Some(seed),
        },
        run,
    )
}

/// Runs the ring checker on `cfg` (as `ring::check::check_with`) and returns its report and
/// the traces of its discoveries and of `opts.walks` random walks.
pub fn evs_traces(
    cfg: &RingModelCfg,
    search: Search,
    max_states: usize,
    opts: &ExportOptions,
) -> Result<(CheckReport, Vec<Trace>), TraceError> {
    let (report, found) = check_with_paths(cfg.clone(), search, max_states);
    let mutant = cfg.mutant.map(|m| m.name());
    let mut traces = Vec::new();
    for d in &found {
        let run = Run::Evs(evs::run(cfg, &d.path)?);
        traces.push(discovery_trace("evs", mutant, d.property, d.expectation, run));
    }
    let model = evs::model(cfg);
    for k in 0..opts.walks {
        let seed = opts.seed.wrapping_add(u64::from(k));
        let path = random_walk(&model, seed, opts.walk_steps);
        traces.push(walk_trace("evs", mutant, seed, Run::Evs(evs::run(cfg, &path)?)));
    }
    Ok((report, traces))
}

/// Runs the TGDH checker on `model` (as `tgdh::check::check`) and returns its report and the
/// traces of its discoveries and of `opts.walks` random walks.
pub fn tgdh_traces(
    model: &TgdhModel,
    check: CheckOptions,
    opts: &ExportOptions,
) -> Result<(CheckReport, Vec<Trace>), TraceError> {
    let mutant = model.mutant.map(Mutant::name);
    let (report, found) = run_with_paths("tgdh", mutant, model.clone(), check);
    let mut traces = Vec::new();
    for d in &found {
        let run = Run::Tgdh(tgdh::run(model, &d.path)?);
        traces.push(discovery_trace("tgdh", mutant, d.property, d.expectation, run));
    }
    for k in 0..opts.walks {
        let seed = opts.seed.wrapping_add(u64::from(k));
        let path = random_walk(model, seed, opts.walk_steps);
        traces.push(walk_trace(
            "tgdh",
            mutant,
            seed,
            Run::Tgdh(tgdh::run(model, &path)?),
        ));
    }
    Ok((report, traces))
}
