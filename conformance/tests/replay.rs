//! Export a bounded set of checker traces into a temporary directory through the library
//! API, replay them all into the machines (every one must match), and show that altered
//! traces are reported as mismatches with a readable diff (the check can fail).

use std::collections::BTreeSet;
use std::path::PathBuf;

use sgc_conformance::export::{ExportOptions, evs_traces, tgdh_traces};
use sgc_conformance::trace::{EvsEvent, EvsObs, OriginKind, Run, TgdhObs, Trace, TraceError, write_traces};
use sgc_conformance::{replay, replay_dir};
use sgc_model::check::CheckOptions;
use sgc_model::ring::RingMutant;
use sgc_model::ring::check::{RingModelCfg, Search, hunting_cfg};
use sgc_model::tgdh::check::TgdhModel;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sgc-traces-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A configuration with every kind of fault, explored by random walks only.
fn faulty() -> RingModelCfg {
    RingModelCfg {
        crashes: 1,
        partitions: 1,
        drops: 1,
        max_ring_seq: 3,
        ..RingModelCfg::small()
    }
}

/// The bounded set: ring examples (a 30,000-state breadth-first run), a ring mutant's
/// counterexample, ring walks with crashes, partitions and losses, and the TGDH examples of
/// the exhaustive 3-member check.
fn bounded_set() -> Vec<Trace> {
    let mut all = Vec::new();
    let (r, t) = evs_traces(
        &RingModelCfg::small(),
        Search::Hunt,
        30_000,
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(r.safe());
    all.extend(t);
    let (r, t) = evs_traces(
        &hunting_cfg(RingMutant::AgreedAsSafe),
        Search::Hunt,
        300_000,
        &ExportOptions {
            walks: 1,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    assert!(!r.safe(), "the mutant must be caught");
    all.extend(t);
    let walks = ExportOptions {
        walks: 6,
        walk_steps: 80,
        seed: 100,
    };
    let (_, t) = evs_traces(&faulty(), Search::Hunt, 1_000, &walks).unwrap();
    all.extend(t.into_iter().filter(|t| t.origin.kind == OriginKind::Walk));
    let (r, t) = tgdh_traces(
        &TgdhModel::bounded(3, None),
        CheckOptions::default(),
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(r.all_hold());
    all.extend(t);
    all
}

fn evs_event_kinds(traces: &[Trace]) -> BTreeSet<&'static str> {
    let mut kinds = BTreeSet::new();
    for t in traces {
        let Run::Evs(r) = &t.run else { continue };
        for e in r.steps.iter().flat_map(|s| &s.events) {
            kinds.insert(match e {
                EvsEvent::Start { .. } => "start",
                EvsEvent::Submit { .. } => "submit",
                EvsEvent::Deliver { .. } => "deliver",
                EvsEvent::Lose { .. } => "lose",
                EvsEvent::Timer { .. } => "timer",
                EvsEvent::Crash { .. } => "crash",
                EvsEvent::Restart { .. } => "restart",
                EvsEvent::Partition { .. } => "partition",
                EvsEvent::Heal => "heal",
            });
        }
    }
    kinds
}

#[test]
fn t10_exported_traces_all_replay() {
    let traces = bounded_set();
    let dir = temp_dir("all");
    let files = write_traces(&dir, &traces).unwrap();
    assert_eq!(files.len(), traces.len(), "trace names must be unique");
    let sum = replay_dir(&dir).unwrap();
    assert_eq!(sum.traces, traces.len());
    assert!(sum.mismatches.is_empty(), "{:#?}", sum.mismatches);
    assert_eq!(sum.matched, traces.len());
    assert!(
        sum.observations > 100,
        "too few observations compared: {}",
        sum.observations
    );
    let kinds = evs_event_kinds(&traces);
    for k in [
        "start",
        "submit",
        "deliver",
        "lose",
        "timer",
        "crash",
        "restart",
        "partition",
        "heal",
    ] {
        assert!(kinds.contains(k), "no {k} event in the bounded set: {kinds:?}");
    }
    let counterexamples = traces
        .iter()
        .filter(|t| t.origin.kind == OriginKind::Counterexample)
        .count();
    assert_eq!(counterexamples, 1);
    println!(
        "{} traces, {} steps, {} observations",
        sum.traces, sum.steps, sum.observations
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn example(model_traces: Vec<Trace>, name: &str) -> Trace {
    model_traces.into_iter().find(|t| t.name == name).unwrap()
}

fn evs_example() -> Trace {
    let (_, t) = evs_traces(
        &RingModelCfg::small(),
        Search::Hunt,
        30_000,
        &ExportOptions::default(),
    )
    .unwrap();
    example(t, "evs-correct-s-all-delivered")
}

#[test]
fn t20_altered_observation_is_a_mismatch_with_a_diff() {
    let mut t = evs_example();
    let Run::Evs(r) = &mut t.run else { unreachable!() };
    let (at, obs) = r
        .steps
        .iter_mut()
        .enumerate()
        .find_map(|(i, s)| {
            s.expect
                .iter_mut()
                .find(|o| matches!(o, EvsObs::Deliver { .. }))
                .map(|o| (i, o))
        })
        .unwrap();
    let EvsObs::Deliver { node, .. } = obs else {
        unreachable!()
    };
    *node += 1;
    let o = replay(&t);
    let m = o.mismatch.expect("an altered trace must not match");
    assert_eq!(m.step, at);
    let text = m.to_string();
    println!("{text}");
    assert!(text.contains("observations differ"));
    assert!(text.lines().any(|l| l.trim_start().starts_with("- d")), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("+ d")), "{text}");
    // the same through a directory, as `sgc conformance replay` sees it
    let dir = temp_dir("altered");
    write_traces(&dir, &[t]).unwrap();
    let sum = replay_dir(&dir).unwrap();
    assert_eq!((sum.traces, sum.matched, sum.mismatches.len()), (1, 0, 1));
    assert!(sum.mismatches[0].diff.contains("observations differ"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn t21_a_packet_never_sent_cannot_be_delivered() {
    let mut t = evs_example();
    let Run::Evs(r) = &mut t.run else { unreachable!() };
    let step = r
        .steps
        .iter_mut()
        .find(|s| matches!(s.events.first(), Some(EvsEvent::Deliver { .. })))
        .unwrap();
    let Some(EvsEvent::Deliver { to, .. }) = step.events.first_mut() else {
        unreachable!()
    };
    *to = (*to + 1) % 3;
    let m = replay(&t).mismatch.expect("must not apply");
    assert!(m.reason.contains("not in flight"), "{m}");
}

#[test]
fn t22_altered_key_id_is_a_mismatch() {
    let (_, ts) = tgdh_traces(
        &TgdhModel::bounded(3, None),
        CheckOptions::default(),
        &ExportOptions::default(),
    )
    .unwrap();
    let mut t = example(ts, "tgdh-correct-reach-merge");
    let Run::Tgdh(r) = &mut t.run else { unreachable!() };
    let last = r.steps.iter_mut().rev().find(|s| !s.expect.is_empty()).unwrap();
    let TgdhObs::Key { key_id, .. } = &mut last.expect[0];
    *key_id ^= 1;
    let m = replay(&t).mismatch.expect("must not match");
    let text = m.to_string();
    println!("{text}");
    assert!(text.contains("- m") && text.contains("+ m"), "{text}");
}

#[test]
fn t30_other_versions_are_refused() {
    let t = evs_example();
    let text = t.to_json().replacen("\"version\": 1", "\"version\": 2", 1);
    assert!(matches!(
        Trace::from_json(&text),
        Err(TraceError::Version { version: 2, .. })
    ));
    assert_eq!(Trace::from_json(&t.to_json()).unwrap(), t);
}
