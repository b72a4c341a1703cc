//! Running a Stateright model and reporting the outcome in the shape every `sgc check <model>`
//! command prints: `{model, mutant, states, complete, properties: [{name, expectation, holds,
//! counterexample}]}`.
//!
//! An `always` property holds when no counterexample was found; a `sometimes` property holds
//! when an example was found (it proves the scenario is reachable, so that the `always`
//! properties are not vacuous).

use serde::{Deserialize, Serialize};
use stateright::{Checker, Expectation, HasDiscoveries, Model};

/// How to run the checker.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Stop after about this many generated states (the run is then not `complete`).
    pub max_states: usize,
    /// Stop at the first counterexample of an `always` property (for hunting mutants).
    pub stop_at_first_failure: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            max_states: 5_000_000,
            stop_at_first_failure: false,
        }
    }
}

/// One property's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyReport {
    /// Property name (the same ID as in `spec/`).
    pub name: String,
    /// `always` or `sometimes`.
    pub expectation: String,
    /// Whether it holds (always: no counterexample; sometimes: an example was found).
    pub holds: bool,
    /// The failing path for a violated `always` property, one action per line.
    pub counterexample: Option<String>,
}

/// The outcome of a model-checking run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Model name (`tgdh`, `evs`, ...).
    pub model: String,
    /// The seeded bug, if one was selected.
    pub mutant: Option<String>,
    /// Unique states explored.
    pub states: usize,
    /// Whether the bounded state space was exhausted (no cut-off, no early stop).
    pub complete: bool,
    /// Per-property outcomes.
    pub properties: Vec<PropertyReport>,
}

impl CheckReport {
    /// Whether every property holds.
    pub fn all_hold(&self) -> bool {
        self.properties.iter().all(|p| p.holds)
    }

    /// Whether every `always` property holds (sometimes-properties may be unreached).
    pub fn safe(&self) -> bool {
        self.properties
            .iter()
            .filter(|p| p.expectation == "always")
            .all(|p| p.holds)
    }

    /// The outcome of the property `name`.
    pub fn property(&self, name: &str) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// Checks `model` exhaustively (depth-first, bounded by the model's own boundary) and reports.
pub fn run<M>(name: &str, mutant: Option<&str>, model: M, opts: CheckOptions) -> CheckReport
where
    M: Model + Send + Sync + 'static,
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    let properties = model.properties();
    let mut builder = model.checker().target_state_count(opts.max_states);
    if opts.stop_at_first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let checker = builder.spawn_dfs().join();
    let mut failed = false;
    let reports = properties
        .iter()
        .map(|p| {
            let found = checker.discovery(p.name);
            let (expectation, holds) = match p.expectation {
                Expectation::Always => ("always", found.is_none()),
                Expectation::Eventually => ("eventually", found.is_none()),
                Expectation::Sometimes => ("sometimes", found.is_some()),
            };
            let counterexample = match (&p.expectation, &found) {
                (Expectation::Sometimes, _) | (_, None) => None,
                (_, Some(path)) => {
                    failed = true;
                    Some(
                        path.clone()
                            .into_actions()
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                }
            };
            PropertyReport {
                name: p.name.to_owned(),
                expectation: expectation.to_owned(),
                holds,
                counterexample,
            }
        })
        .collect();
    let states = checker.unique_state_count();
    let cut_off = checker.state_count() >= opts.max_states;
    CheckReport {
        model: name.to_owned(),
        mutant: mutant.map(str::to_owned),
        states,
        complete: !(cut_off || failed && opts.stop_at_first_failure),
        properties: reports,
    }
}
