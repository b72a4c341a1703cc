//! Live → model on real processes: `sgc conformance fuzz` runs a seeded fault run (sends,
//! partitions, crashes and restarts) on a recording 3-daemon cluster and replays every
//! recording into fresh ring machines; then one recorded command is altered and `sgc
//! conformance live` must report the mismatch.

mod common;

use std::path::{Path, PathBuf};

use common::{json, sgc};
use sgc_model::ring::record::{self, Recorder};

/// The largest recording under `dir`.
fn largest_recording(dir: &Path) -> PathBuf {
    let mut files = Vec::new();
    for d in std::fs::read_dir(dir).unwrap().flatten() {
        let data = d.path().join("data");
        if let Ok(entries) = std::fs::read_dir(&data) {
            for e in entries.flatten() {
                let p = e.path();
                if p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("record-"))
                {
                    files.push((std::fs::metadata(&p).unwrap().len(), p));
                }
            }
        }
    }
    files.into_iter().max().expect("a recording").1
}

#[test]
fn a_fault_run_replays_identically_and_an_altered_recording_does_not() {
    let dir = std::env::temp_dir().join(format!("sgc-live-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let out = sgc(&[
        "conformance",
        "fuzz",
        "--seed",
        "3",
        "--duration",
        "8s",
        "--dir",
        d,
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["mismatches"].as_array().map(Vec::len), Some(0), "{v}");
    assert!(v["recordings"].as_u64().is_some_and(|n| n >= 3), "{v}");
    assert!(v["events_injected"].as_u64().is_some_and(|n| n > 5), "{v}");
    assert!(v["deliveries"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["views"].as_u64().is_some_and(|n| n >= 3), "{v}");
    assert_eq!(v["properties_checked"], 8);
    assert!(
        v["properties"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["holds"] == true),
        "{v}"
    );

    // Drop one command from one step of the largest recording: the replay must differ there.
    let file = largest_recording(&dir);
    let mut rec = record::read(&std::fs::read(&file).unwrap()).unwrap();
    let step = rec.steps.iter().rposition(|s| !s.commands.is_empty()).unwrap();
    rec.steps[step].commands.pop();
    let mut bytes = Vec::new();
    let mut w = Recorder::new(&mut bytes, &rec.header).unwrap();
    for s in &rec.steps {
        w.step(&s.event, &s.commands).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    std::fs::write(&file, bytes).unwrap();
    let out = sgc(&["conformance", "live", d, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["mismatches"], 1, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
    let out = sgc(&["conformance", "live", d]);
    assert_eq!(out.status.code(), Some(2), "a missing directory is a usage error");
}
