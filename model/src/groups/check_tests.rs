//! Checker tests of the group layer: the pinned scenarios, every seeded mutant caught with a
//! counterexample, and every always-property shown to fail under some mutant.

use std::collections::BTreeSet;

use super::check::*;
use super::config::GroupMutant;
use crate::check::CheckReport;

fn failed(r: &CheckReport) -> Vec<&str> {
    r.properties
        .iter()
        .filter(|p| p.expectation == "always" && !p.holds)
        .map(|p| p.name.as_str())
        .collect()
}

/// Pinned unique-state counts of the default scenarios: a change means the model or the
/// protocol changed, or a run was silently cut.
const SPLIT_MERGE_STATES: usize = 892_450;
const STEADY_STATES: usize = 318_257;
const MERGE_CRASH_STATES: usize = 227_119;
const PARTITION_MERGE_DEPTH_12_STATES: usize = 273_312;

#[test]
fn g10_default_check_satisfies_every_property_and_reaches_every_scenario() {
    let pins = [
        SPLIT_MERGE_STATES,
        STEADY_STATES,
        MERGE_CRASH_STATES,
        PARTITION_MERGE_DEPTH_12_STATES,
    ];
    let mut reports = Vec::new();
    for (cfg, n) in GroupsModelCfg::all(None).into_iter().zip(pins) {
        let name = cfg.name;
        let r = check_cfg(cfg, false);
        assert!(r.complete, "{name}");
        assert_eq!(failed(&r), Vec::<&str>::new(), "{name}: {r:#?}");
        assert_eq!(r.states, n, "{name}");
        reports.push(r);
    }
    let r = merge_reports(reports).expect("four reports");
    assert_eq!(r.states, pins.iter().sum::<usize>());
    for p in r.properties.iter().filter(|p| p.expectation == "sometimes") {
        assert!(p.holds, "scenario {} not reached", p.name);
    }
}

/// Partition-merge four actions deeper than the default check (1.39 million states, about
/// 90 s and 4 GB in release): `cargo test --release -p sgc-model -- --ignored g11`.
#[test]
#[ignore = "heavier run: cargo test --release -p sgc-model -- --ignored g11"]
fn g11_partition_merge_to_depth_16_satisfies_every_property() {
    let r = check_cfg(GroupsModelCfg::partition_merge_to_depth(None, 16), false);
    assert!(r.complete);
    assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
    assert_eq!(r.states, 1_387_549);
}

/// The property each mutant is caught by.
const CAUGHT_BY: [(GroupMutant, &str); 9] = [
    (GroupMutant::StaleExchangeTag, "GRP-SAMEVIEW"),
    (GroupMutant::NoTransition, "GRP-TRANS"),
    (GroupMutant::NoHoldInGather, "GRP-QUIET"),
    (GroupMutant::MergeOneVsSet, "GRP-VSSET"),
    (GroupMutant::GidPerGroup, "GRP-VIEWAGREE"),
    (GroupMutant::LeaverGetsView, "GRP-SELFINC"),
    (GroupMutant::IgnoreSelfDiscard, "GRP-SELF"),
    (GroupMutant::DuplicatePerGroup, "GRP-NODUP"),
    (GroupMutant::EarlyLocalDelivery, "GRP-SAMEVIEW"),
];

/// Further properties violated by the same first counterexample.
const ALSO_CAUGHT_BY: [(GroupMutant, &str); 2] = [
    (GroupMutant::GidPerGroup, "GRP-GIDUNIQ"),
    (GroupMutant::DuplicatePerGroup, "GRP-ORDER"),
];

#[test]
fn g30_further_properties_fail_under_the_same_mutants() {
    for (m, p) in ALSO_CAUGHT_BY {
        let r = check(Some(m));
        assert!(failed(&r).contains(&p), "{} does not violate {p}", m.name());
    }
}

fn assert_caught(m: GroupMutant) -> Vec<String> {
    let property = CAUGHT_BY
        .iter()
        .find(|x| x.0 == m)
        .map(|x| x.1)
        .unwrap_or_default();
    let r = check(Some(m));
    let f = failed(&r);
    assert!(
        f.contains(&property),
        "{} not caught by {property}: {f:?} after {} states",
        m.name(),
        r.states
    );
    let p = r.property(property).and_then(|p| p.counterexample.as_ref());
    assert!(p.is_some_and(|c| !c.is_empty()), "no counterexample trace");
    f.into_iter().map(str::to_owned).collect()
}

#[test]
fn g20_stale_exchange_tag_is_caught() {
    assert_caught(GroupMutant::StaleExchangeTag);
}

#[test]
fn g21_no_transition_is_caught() {
    assert_caught(GroupMutant::NoTransition);
}

#[test]
fn g22_no_hold_in_gather_is_caught() {
    assert_caught(GroupMutant::NoHoldInGather);
}

#[test]
fn g23_merge_one_vs_set_is_caught() {
    assert_caught(GroupMutant::MergeOneVsSet);
}

#[test]
fn g24_gid_per_group_is_caught() {
    assert_caught(GroupMutant::GidPerGroup);
}

#[test]
fn g25_leaver_gets_view_is_caught() {
    assert_caught(GroupMutant::LeaverGetsView);
}

#[test]
fn g26_ignore_self_discard_is_caught() {
    assert_caught(GroupMutant::IgnoreSelfDiscard);
}

#[test]
fn g27_duplicate_per_group_is_caught() {
    assert_caught(GroupMutant::DuplicatePerGroup);
}

#[test]
fn g28_early_local_delivery_is_caught() {
    assert_caught(GroupMutant::EarlyLocalDelivery);
}

#[test]
fn g29_every_always_property_is_violated_by_some_mutant() {
    let always: BTreeSet<String> = check_cfg(GroupsModelCfg::steady(None), false)
        .properties
        .iter()
        .filter(|p| p.expectation == "always")
        .map(|p| p.name.clone())
        .collect();
    let shown: BTreeSet<String> = CAUGHT_BY
        .iter()
        .chain(ALSO_CAUGHT_BY.iter())
        .map(|(_, p)| (*p).to_owned())
        .collect();
    assert_eq!(always, shown);
}
