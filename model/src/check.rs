//! Running a Stateright model and reporting the outcome in the shape every `sgc check <model>`
//! command prints: `{model, mutant, states, complete, properties: [{name, expectation, holds,
//! counterexample}]}`.
//!
//! An `always` property holds when no counterexample was found; a `sometimes` property holds
//! when an example was found (it proves the scenario is reachable, so that the `always`
//! properties are not vacuous).
//!
//! Trace capture (for `sgc check <model> --export-traces`, see `docs/conformance.md`):
//! [`run_with_paths`] also returns every discovery's path (states and actions), and
//! [`random_walk`] draws a seeded random path through a model. The conversion of paths into
//! trace files lives in `sgc-conformance`.

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

    /// Test helper: every property holds, the bounded space was exhausted, and it has exactly
    /// `expected_states` unique states (pinned, so a cut-off or a model change is noticed).
    #[cfg(test)]
    pub(crate) fn assert_exhaustive_pass(&self, expected_states: usize) {
        let failing: Vec<_> = self.properties.iter().filter(|p| !p.holds).collect();
        assert!(failing.is_empty(), "failing properties: {failing:#?}");
        assert!(self.complete, "the bounded space must be exhausted");
        assert_eq!(
            self.states, expected_states,
            "state count changed: update the pin if intended"
        );
    }

    /// Test helper: the seeded bug `mutant` is caught by `property` with a counterexample
    /// path; returns the names of every `always` property it violates.
    #[cfg(test)]
    pub(crate) fn assert_caught(&self, mutant: &str, property: &str) -> Vec<String> {
        let p = self.property(property).expect("property exists");
        assert!(!p.holds, "{mutant} not caught by {property}");
        assert!(
            p.counterexample.as_ref().is_some_and(|c| !c.is_empty()),
            "{mutant}: no counterexample path"
        );
        self.properties
            .iter()
            .filter(|p| !p.holds && p.expectation == "always")
            .map(|p| p.name.clone())
            .collect()
    }
}

/// A path of a model: each state with the action taken from it (`None` on the last state).
pub type PathSteps<M> = Vec<(<M as Model>::State, Option<<M as Model>::Action>)>;

/// One property's discovery: an example of a `sometimes` property or a counterexample of an
/// `always` one, with the path that reaches it.
pub struct Discovery<M: Model> {
    /// Property name.
    pub property: &'static str,
    /// `always` (the path is a counterexample) or `sometimes` (the path is an example).
    pub expectation: &'static str,
    /// The path, from an initial state.
    pub path: PathSteps<M>,
}

/// Checks `model` exhaustively (depth-first, bounded by the model's own boundary) and reports.
pub fn run<M>(name: &str, mutant: Option<&str>, model: M, opts: CheckOptions) -> CheckReport
where
    M: Model + Send + Sync + 'static,
    M::State: std::hash::Hash + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    M::Action: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    run_with_paths(name, mutant, model, opts).0
}

/// As [`run`], also returning every discovery's path (in property order).
pub fn run_with_paths<M>(
    name: &str,
    mutant: Option<&str>,
    model: M,
    opts: CheckOptions,
) -> (CheckReport, Vec<Discovery<M>>)
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
    let mut discoveries = Vec::new();
    let reports = properties
        .iter()
        .map(|p| {
            let found = checker.discovery(p.name);
            let (expectation, holds) = match p.expectation {
                Expectation::Always => ("always", found.is_none()),
                Expectation::Eventually => ("eventually", found.is_none()),
                Expectation::Sometimes => ("sometimes", found.is_some()),
            };
            if let Some(path) = &found {
                discoveries.push(Discovery {
                    property: p.name,
                    expectation: if matches!(p.expectation, Expectation::Sometimes) {
                        "sometimes"
                    } else {
                        "always"
                    },
                    path: path.clone().into_vec(),
                });
            }
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
    let report = CheckReport {
        model: name.to_owned(),
        mutant: mutant.map(str::to_owned),
        states,
        complete: !(cut_off || failed && opts.stop_at_first_failure),
        properties: reports,
    };
    (report, discoveries)
}

/// A small deterministic generator (SplitMix64): the model takes no OS randomness, so random
/// walks are reproducible from their seed.
#[derive(Clone, Copy, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`; slightly biased, which a walk does not mind).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n.max(1) as u64).unwrap_or(0)
    }
}

/// A random path of at most `max_steps` actions from the model's first initial state: at each
/// state one enabled action (whose next state exists and is within the model's boundary) is
/// drawn with [`SplitMix64`] seeded by `seed`. The walk ends early where no action is enabled.
pub fn random_walk<M>(model: &M, seed: u64, max_steps: usize) -> PathSteps<M>
where
    M: Model,
    M::Action: Clone,
{
    let mut rng = SplitMix64::new(seed);
    let Some(mut state) = model.init_states().into_iter().next() else {
        return Vec::new();
    };
    let mut path = Vec::new();
    for _ in 0..max_steps {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let mut enabled: Vec<(M::Action, M::State)> = actions
            .into_iter()
            .filter_map(|a| {
                let next = model.next_state(&state, a.clone())?;
                model.within_boundary(&next).then_some((a, next))
            })
            .collect();
        if enabled.is_empty() {
            break;
        }
        let (action, next) = enabled.swap_remove(rng.below(enabled.len()));
        path.push((state, Some(action)));
        state = next;
    }
    path.push((state, None));
    path
}
