//! The protection model checks `cargo test` runs: the bounded configuration exhaustively (state
//! count pinned) and every seeded mutant caught by the property meant to catch it.

use std::collections::BTreeSet;

use super::check::{ProtectionModel, check};
use super::rule::ProtectionMutant;
use crate::check::CheckOptions;

fn assert_all_hold(model: ProtectionModel, expected_states: usize) {
    let report = check(model, CheckOptions::default());
    let failing: Vec<_> = report.properties.iter().filter(|p| !p.holds).collect();
    assert!(failing.is_empty(), "failing properties: {failing:#?}");
    assert!(report.complete, "the bounded space must be exhausted");
    assert_eq!(
        report.states, expected_states,
        "state count changed: update the pin if intended"
    );
}

#[test]
fn two_daemons_two_epochs_satisfy_every_property() {
    assert_all_hold(ProtectionModel::bounded(None), 83_353);
}

#[test]
fn three_daemons_one_epoch_satisfy_every_property() {
    assert_all_hold(
        ProtectionModel {
            daemons: 3,
            epochs: 1,
            ..ProtectionModel::bounded(None)
        },
        864_920,
    );
}

#[test]
#[ignore = "longer run: cargo test -p sgc-model protection -- --ignored"]
fn three_daemons_two_epochs_satisfy_every_property() {
    let report = check(
        ProtectionModel {
            daemons: 3,
            ..ProtectionModel::bounded(None)
        },
        CheckOptions {
            max_states: 100_000_000,
            ..CheckOptions::default()
        },
    );
    let failing: Vec<_> = report.properties.iter().filter(|p| !p.holds).collect();
    assert!(failing.is_empty(), "failing properties: {failing:#?}");
    assert!(report.complete, "the bounded space must be exhausted");
}

/// Which property each mutant must violate (it may violate others too).
const CATCHES: [(ProtectionMutant, &str); 3] = [
    (ProtectionMutant::SealNewest, "PROT-HELD"),
    (ProtectionMutant::NoAnnounce, "PROT-CONVERGE"),
    (ProtectionMutant::OlderOverwrites, "PROT-CONVERGE"),
];

#[test]
fn every_mutant_is_caught_with_a_counterexample() {
    assert_eq!(CATCHES.len(), ProtectionMutant::ALL.len());
    let mut violated = BTreeSet::new();
    for (mutant, property) in CATCHES {
        let report = check(ProtectionModel::bounded(Some(mutant)), CheckOptions::default());
        let p = report.property(property).expect("property exists");
        assert!(!p.holds, "{} not caught by {property}", mutant.name());
        assert!(
            p.counterexample.as_ref().is_some_and(|c| !c.is_empty()),
            "no counterexample path"
        );
        violated.extend(
            report
                .properties
                .iter()
                .filter(|p| !p.holds && p.expectation == "always")
                .map(|p| p.name.clone()),
        );
    }
    for name in ["PROT-HELD", "PROT-OPENS", "PROT-CONVERGE"] {
        assert!(violated.contains(name), "no mutant violates {name}");
    }
}
