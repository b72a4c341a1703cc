//! The protection model checks `cargo test` runs: the bounded configuration exhaustively (state
//! count pinned) and every seeded mutant caught by the property meant to catch it.

use std::collections::BTreeSet;

use super::check::{ProtectionModel, check};
use super::rule::ProtectionMutant;
use crate::check::CheckOptions;

fn assert_all_hold(model: ProtectionModel, expected_states: usize) {
    check(model, CheckOptions::default()).assert_exhaustive_pass(expected_states);
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
        violated.extend(report.assert_caught(mutant.name(), property));
    }
    for name in ["PROT-HELD", "PROT-OPENS", "PROT-CONVERGE"] {
        assert!(violated.contains(name), "no mutant violates {name}");
    }
}
