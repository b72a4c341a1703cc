//! The TGDH model checks `cargo test` runs: the bounded configurations exhaustively (state
//! counts pinned, so a silent cut-off or a model change is noticed), and every seeded mutant
//! caught by the property meant to catch it.

use super::check::{TgdhModel, check, verdicts};
use super::member::Mutant;
use crate::check::CheckOptions;

fn assert_all_hold(model: TgdhModel, expected_states: usize) {
    check(model, CheckOptions::default()).assert_exhaustive_pass(expected_states);
}

#[test]
fn four_members_with_three_events_satisfy_every_property() {
    assert_all_hold(
        TgdhModel {
            universe: 4,
            initial: 3,
            max_events: 3,
            max_replays: 1,
            mutant: None,
        },
        54_127,
    );
}

#[test]
fn three_members_grown_from_one_satisfy_every_property() {
    assert_all_hold(
        TgdhModel {
            universe: 3,
            initial: 1,
            max_events: 3,
            max_replays: 1,
            mutant: None,
        },
        4_149,
    );
}

#[test]
#[ignore = "longer run (about 15 s in release): cargo test -- --ignored"]
fn four_members_with_four_events_satisfy_every_property() {
    assert_all_hold(
        TgdhModel {
            universe: 4,
            initial: 2,
            max_events: 4,
            max_replays: 1,
            mutant: None,
        },
        412_117,
    );
}

/// Which property each mutant must violate (it may violate others too).
const CATCHES: [(Mutant, &str); 6] = [
    (Mutant::JoinNoRefresh, "tgdh-key-independence"),
    (Mutant::LeaveNoRefresh, "tgdh-freshness"),
    (Mutant::InsertAtRoot, "tgdh-tree"),
    (Mutant::AcceptOtherEpoch, "tgdh-epoch-hygiene"),
    (Mutant::PartitionKeepsLastLeaver, "tgdh-forward-secrecy"),
    (Mutant::KeepStalePathKeys, "tgdh-path-secrets"),
];

#[test]
fn every_mutant_is_caught_with_a_counterexample() {
    assert_eq!(
        CATCHES.len(),
        Mutant::ALL.len(),
        "every mutant needs an expected catch"
    );
    for (mutant, property) in CATCHES {
        let model = TgdhModel {
            universe: 4,
            initial: 3,
            max_events: 3,
            max_replays: 1,
            mutant: Some(mutant),
        };
        let report = check(
            model,
            CheckOptions {
                stop_at_first_failure: false,
                ..CheckOptions::default()
            },
        );
        let p = report.property(property).expect("property exists");
        assert!(
            !p.holds,
            "{} not caught by {property}: {:?}",
            mutant.name(),
            verdicts(&report)
        );
        assert!(
            p.counterexample.as_ref().is_some_and(|c| !c.is_empty()),
            "no counterexample path"
        );
    }
}

/// Every `always` property is violated by at least one mutant: none of them is vacuous.
#[test]
fn every_safety_property_is_violated_by_some_mutant() {
    let mut violated = std::collections::BTreeSet::new();
    for mutant in Mutant::ALL {
        let model = TgdhModel {
            universe: 4,
            initial: 3,
            max_events: 3,
            max_replays: 1,
            mutant: Some(mutant),
        };
        let report = check(model, CheckOptions::default());
        violated.extend(
            report
                .properties
                .iter()
                .filter(|p| !p.holds)
                .map(|p| p.name.clone()),
        );
    }
    let model = TgdhModel::bounded(4, None);
    let report = check(
        model,
        CheckOptions {
            max_states: 10,
            ..CheckOptions::default()
        },
    );
    for p in report.properties.iter().filter(|p| p.expectation == "always") {
        assert!(violated.contains(&p.name), "no mutant violates {}", p.name);
    }
}
