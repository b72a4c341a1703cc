//! Checker tests: the pinned bounded configuration, the seeded mutants, bigger runs behind
//! `#[ignore]`.

use super::check::*;
use super::config::RingMutant;

fn failed(r: &CheckReport) -> Vec<&str> {
    r.properties
        .iter()
        .filter(|p| p.expectation == "always" && !p.holds)
        .map(|p| p.name.as_str())
        .collect()
}

fn reached(r: &CheckReport, name: &str) -> bool {
    r.property(name).is_some_and(|p| p.holds)
}

/// Pinned unique-state count of [`RingModelCfg::small`]: a change means the model or the
/// protocol changed, or the run was silently cut.
const SMALL_STATES: usize = 642_383;

#[test]
fn t10_bounded_default_configuration_satisfies_evs() {
    let r = check(None);
    assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
    assert!(r.complete);
    assert_eq!(r.states, SMALL_STATES);
    for s in [
        "S-ALL-DELIVERED",
        "S-TRANS-DELIVERY",
        "S-SAFE-IN-TRANS",
        "S-PHASE-A",
    ] {
        assert!(reached(&r, s), "scenario {s} not reached");
    }
}

/// Pinned unique-state count of the unordered (UDP-like) loss-free configuration.
const UDP_STATES: usize = 155_103;

#[test]
fn t11_unordered_network_satisfies_evs() {
    let cfg = RingModelCfg {
        fifo: false,
        drops: 0,
        ..RingModelCfg::small()
    };
    let r = check_with(cfg, Search::Exhaustive, usize::MAX);
    assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
    assert!(r.complete);
    assert_eq!(r.states, UDP_STATES);
    assert!(reached(&r, "S-ALL-DELIVERED"));
}

fn assert_caught(m: RingMutant, property: &str) {
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
}

#[test]
fn t20_m1_safe_one_visit_is_caught() {
    assert_caught(RingMutant::SafeOneVisit, "EVS-SAFE");
}

#[test]
fn t21_m3_recover_from_own_aru_is_caught() {
    assert_caught(RingMutant::RecoverFromOwnAru, "EVS-VSYNC");
}

#[test]
fn t22_m4_accept_duplicate_token_is_caught() {
    assert_caught(RingMutant::AcceptDuplicateToken, "EVS-SAFE");
}

#[test]
fn t23_agreed_as_safe_is_caught() {
    assert_caught(RingMutant::AgreedAsSafe, "EVS-SAFE");
}

#[test]
fn t24_skip_transitional_is_caught() {
    assert_caught(RingMutant::SkipTransitional, "EVS-AGREED");
}

#[test]
fn t25_m5_trans_by_membership_is_caught() {
    assert_caught(RingMutant::TransByMembership, "EVS-TRANS");
}

#[test]
fn t27_deliver_past_gap_is_caught() {
    assert_caught(RingMutant::DeliverPastGap, "EVS-AGREED");
}

#[test]
fn t26_mutant_names_round_trip() {
    for m in RingMutant::ALL {
        assert_eq!(RingMutant::from_name(m.name()), Some(m));
    }
}

#[test]
#[ignore = "bigger run: one partition and heal, two membership changes (several minutes, truncated)"]
fn t90_partitioned_hunt_finds_no_violation() {
    let r = check_with(RingModelCfg::partitioned(), Search::Hunt, 4_000_000);
    assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
    println!("partitioned: {} states, complete={}", r.states, r.complete);
}

#[test]
#[ignore = "bigger run: 4 daemons (truncated hunt)"]
fn t91_four_daemons_hunt_finds_no_violation() {
    let cfg = RingModelCfg {
        daemons: 4,
        max_token_seq: 12,
        max_in_flight: 10,
        ..RingModelCfg::small()
    };
    let r = check_with(cfg, Search::Hunt, 4_000_000);
    assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
    println!("4 daemons: {} states, complete={}", r.states, r.complete);
}

#[test]
#[ignore = "bigger run: one crash and restart, two membership changes (truncated hunt)"]
fn t92_crash_restart_hunt_finds_no_violation() {
    let cfg = RingModelCfg {
        crashes: 1,
        drops: 0,
        max_ring_seq: 3,
        ..RingModelCfg::small()
    };
    let r = check_with(cfg, Search::HuntDeep, 3_000_000);
    assert_eq!(failed(&r), Vec::<&str>::new(), "{r:#?}");
    assert!(reached(&r, "S-RESTART-REJOIN"));
}
