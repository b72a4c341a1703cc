//! The keys model checks `cargo test` runs: bounded configurations exhaustively (state counts
//! pinned, so a silent cut-off or a model change is noticed), and every seeded mutant caught
//! with a counterexample by the property meant to catch it.

use std::collections::BTreeSet;

use super::check::{KeysModel, check};
use super::engine::KeysMutant;
use crate::check::CheckOptions;

fn assert_all_hold(model: KeysModel, expected_states: usize) {
    check(model, CheckOptions::default()).assert_exhaustive_pass(expected_states);
}

#[test]
fn two_daemons_three_clients_one_group_satisfy_every_property() {
    assert_all_hold(KeysModel::bounded(None), 55_591);
}

#[test]
fn two_daemons_two_groups_satisfy_every_property() {
    assert_all_hold(
        KeysModel {
            groups: 2,
            sends: 0,
            ..KeysModel::bounded(None)
        },
        35_169,
    );
}

#[test]
fn three_daemons_satisfy_every_property() {
    assert_all_hold(
        KeysModel {
            daemons: 3,
            clients: vec![0, 1, 2],
            sends: 0,
            ..KeysModel::bounded(None)
        },
        57_477,
    );
}

#[test]
#[ignore = "longer run (about 5 min): cargo test -p sgc-model keys -- --ignored"]
fn three_daemons_two_groups_three_requests_satisfy_every_property() {
    assert_all_hold(
        KeysModel {
            daemons: 3,
            clients: vec![0, 1, 2],
            groups: 2,
            requests: 3,
            sends: 0,
            ..KeysModel::bounded(None)
        },
        3_181_222,
    );
}

/// Which property each mutant must violate (it may violate others too).
const CATCHES: [(KeysMutant, &str); 6] = [
    (KeysMutant::ReleaseBeforeAgreement, "KEY-ORDER"),
    (KeysMutant::KeyInputOmitsView, "KEY-FRESH"),
    (KeysMutant::LeaverGetsNextKey, "KEY-MEMBERONLY"),
    (KeysMutant::RefreshKeepsView, "KEY-AGREE"),
    (KeysMutant::EvsDeliversStale, "KEY-EVS-CURRENT"),
    (KeysMutant::EvsForgetsOldKeys, "KEY-EVS-KEPT"),
];

#[test]
fn every_mutant_is_caught_with_a_counterexample() {
    assert_eq!(
        CATCHES.len(),
        KeysMutant::ALL.len(),
        "every mutant needs an expected catch"
    );
    let mut violated = BTreeSet::new();
    for (mutant, property) in CATCHES {
        let report = check(KeysModel::bounded(Some(mutant)), CheckOptions::default());
        violated.extend(report.assert_caught(mutant.name(), property));
    }
    // Every `always` property is violated by some mutant: none of them is vacuous.
    let report = check(
        KeysModel::bounded(None),
        CheckOptions {
            max_states: 10,
            ..CheckOptions::default()
        },
    );
    for p in report.properties.iter().filter(|p| p.expectation == "always") {
        assert!(violated.contains(&p.name), "no mutant violates {}", p.name);
    }
}

#[test]
fn the_leaver_mutant_violates_forward_secrecy_and_the_view_mutant_backward_secrecy() {
    let leaver = check(
        KeysModel::bounded(Some(KeysMutant::LeaverGetsNextKey)),
        CheckOptions::default(),
    );
    assert!(!leaver.property("KEY-FORWARD").is_some_and(|p| p.holds));
    let view = check(
        KeysModel::bounded(Some(KeysMutant::KeyInputOmitsView)),
        CheckOptions::default(),
    );
    assert!(!view.property("KEY-BACKWARD").is_some_and(|p| p.holds));
}
