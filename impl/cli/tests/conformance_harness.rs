//! Model → live: checker traces replayed on real daemon processes in controlled mode
//! (`sgc conformance replay DIR --live`, `sgc_conformance::harness`), the harness being their
//! network (every datagram goes through its UDP sockets) and their clock (timers fire on its
//! admin requests).
//!
//! - h10: a bounded set — the traces `sgc check evs --mutant agreed-as-safe --export-traces`
//!   writes (the mutant's counterexample, an example, three walks: the daemons run the seeded
//!   bug too), seeded walks of a model with a crash, a partition and a loss (crash = SIGKILL,
//!   restart = the same data directory), a walk of daemons that boot instead of starting
//!   installed, and one `tgdh` trace that must be listed as excluded — all replay with every
//!   observation equal.
//! - h20: the same trace with one expected observation edited is reported as a mismatch with
//!   a readable diff, and the exit status is 1.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{SGC, json};
use sgc_conformance::export::{ExportOptions, evs_traces};
use sgc_conformance::trace::{
    EvsEvent, EvsObs, Origin, OriginKind, Run, TgdhConfig, TgdhRun, Trace, write_traces,
};
use sgc_model::ring::check::{RingModelCfg, Search};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sgc-harness-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn replay_live(dir: &Path, work: &Path) -> (std::process::Output, serde_json::Value) {
    let out = std::process::Command::new(SGC)
        .args(["conformance", "replay"])
        .arg(dir)
        .args(["--live", "--json", "--work"])
        .arg(work)
        .output()
        .expect("sgc runs");
    let v = json(&out);
    (out, v)
}

/// Walks with every kind of fault (as `conformance/tests/replay.rs`), kept when they crash
/// a daemon, at most `n`.
fn crash_walks(n: usize) -> Vec<Trace> {
    let faulty = RingModelCfg {
        crashes: 1,
        partitions: 1,
        drops: 1,
        max_ring_seq: 3,
        ..RingModelCfg::small()
    };
    let walks = ExportOptions {
        walks: 12,
        walk_steps: 80,
        seed: 100,
    };
    let (_, t) = evs_traces(&faulty, Search::Hunt, 1_000, &walks).expect("export");
    let crashes = |t: &Trace| match &t.run {
        Run::Evs(r) => r
            .steps
            .iter()
            .flat_map(|s| &s.events)
            .any(|e| matches!(e, EvsEvent::Restart { .. })),
        Run::Tgdh(_) => false,
    };
    let mut out: Vec<Trace> = t
        .into_iter()
        .filter(|t| t.origin.kind == OriginKind::Walk && crashes(t))
        .take(n)
        .collect();
    for t in &mut out {
        t.name = format!("{}-crash", t.name);
    }
    out
}

fn boot_walk() -> Vec<Trace> {
    let cfg = RingModelCfg {
        boot: true,
        ..RingModelCfg::small()
    };
    let walks = ExportOptions {
        walks: 1,
        walk_steps: 60,
        seed: 7,
    };
    let (_, t) = evs_traces(&cfg, Search::Hunt, 200, &walks).expect("export");
    let mut out: Vec<Trace> = t
        .into_iter()
        .filter(|t| t.origin.kind == OriginKind::Walk)
        .collect();
    for t in &mut out {
        t.name = format!("{}-boot", t.name);
    }
    out
}

fn tgdh_stub() -> Trace {
    Trace::new(
        "tgdh-stub".into(),
        Origin {
            kind: OriginKind::Walk,
            property: None,
            mutant: None,
            seed: Some(1),
        },
        Run::Tgdh(TgdhRun {
            config: TgdhConfig {
                universe: 2,
                group: "g".into(),
                provider: "symbolic".into(),
                mutant: None,
            },
            steps: Vec::new(),
        }),
    )
}

#[test]
fn h10_checker_traces_replay_on_live_daemons() {
    let t0 = Instant::now();
    let dir = temp_dir("h10");
    let out = std::process::Command::new(SGC)
        .args(["check", "evs", "--mutant", "agreed-as-safe", "--export-traces"])
        .arg(&dir)
        .output()
        .expect("sgc runs");
    assert_eq!(out.status.code(), Some(1), "the mutant is caught");
    let crashes = crash_walks(2);
    assert!(!crashes.is_empty(), "some walk crashes and restarts a daemon");
    let mut extra = crashes;
    extra.extend(boot_walk());
    extra.push(tgdh_stub());
    write_traces(&dir, &extra).expect("write");
    let (out, v) = replay_live(&dir, &dir.join("work"));
    let evs = 5 + extra.len() - 1;
    assert_eq!(v["traces"], evs + 1, "{v}");
    assert_eq!(v["replayed"], evs, "{v}");
    assert_eq!(v["matched"], evs, "{v:#}");
    assert_eq!(v["mismatches"].as_array().map(Vec::len), Some(0), "{v:#}");
    let excluded = v["excluded"].as_array().expect("excluded");
    assert_eq!(excluded.len(), 1, "{v}");
    assert_eq!(excluded[0]["trace"], "tgdh-stub");
    assert!(excluded[0]["reason"].as_str().is_some_and(|r| r.contains("tgdh")));
    let c = &v["counts"];
    for k in [
        "packets_released",
        "timers_fired",
        "submits",
        "crashes",
        "datagrams",
    ] {
        assert!(c[k].as_u64().is_some_and(|n| n > 0), "{k}: {v}");
    }
    assert!(v["observations"].as_u64().is_some_and(|n| n > 50), "{v}");
    assert_eq!(out.status.code(), Some(0));
    eprintln!("h10: {v} in {:?}", t0.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn h20_an_edited_observation_is_a_readable_mismatch() {
    let dir = temp_dir("h20");
    let out = std::process::Command::new(SGC)
        .args(["check", "evs", "--mutant", "agreed-as-safe", "--export-traces"])
        .arg(&dir)
        .output()
        .expect("sgc runs");
    assert_eq!(out.status.code(), Some(1), "the mutant is caught");
    let file = dir.join("evs-agreed-as-safe-evs-safe.json");
    let mut t = Trace::load(&file).expect("counterexample trace");
    let Run::Evs(run) = &mut t.run else {
        panic!("an evs trace")
    };
    // Move the first delivery of the trace to another daemon.
    let (step, obs) = run
        .steps
        .iter_mut()
        .enumerate()
        .find_map(|(i, s)| {
            s.expect
                .iter_mut()
                .find(|o| matches!(o, EvsObs::Deliver { .. }))
                .map(|o| (i, o))
        })
        .expect("a delivery");
    let EvsObs::Deliver { node, .. } = obs else {
        unreachable!()
    };
    *node = (*node + 1) % 3;
    let only = temp_dir("h20-edited");
    t.name = "edited".into();
    write_traces(&only, &[t]).expect("write");
    let (out, v) = replay_live(&only, &only.join("work"));
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(
        (v["replayed"].as_u64(), v["matched"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    let diff = v["mismatches"][0]["diff"].as_str().expect("diff").to_owned();
    assert!(
        diff.starts_with(&format!("step {step}: observations differ")),
        "{diff}"
    );
    assert!(diff.contains("(- expected, + actual)"), "{diff}");
    assert!(diff.lines().any(|l| l.trim_start().starts_with("- d")), "{diff}");
    assert!(diff.lines().any(|l| l.trim_start().starts_with("+ d")), "{diff}");
    eprintln!("h20:\n{diff}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&only);
}
