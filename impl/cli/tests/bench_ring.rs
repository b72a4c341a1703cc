//! `sgc bench ring`: a short run prints its JSON lines and stops every daemon it started;
//! bad flags are usage errors.

use std::process::Command;

const SGC: &str = env!("CARGO_BIN_EXE_sgc");

#[test]
fn b10_short_ring_bench_prints_json_lines_and_cleans_up() {
    let dir = std::env::temp_dir().join(format!("sgc-test-{}-bench-ring", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(SGC)
        .args([
            "bench", "ring", "--sizes", "100,3000", "--count", "300", "--runs", "1",
        ])
        .args(["--senders", "2", "--json", "--dir"])
        .arg(&dir)
        .output()
        .expect("run sgc bench ring");
    assert!(
        out.status.success(),
        "sgc bench ring failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (row, size) in lines.iter().zip([100, 3000]) {
        assert_eq!(row["bench"], "ring");
        assert_eq!(row["daemons"], 3);
        assert_eq!(row["senders"], 2);
        assert_eq!(row["size"], size);
        assert_eq!(row["count"], 300);
        assert_eq!(row["max_datagram"], 1472);
        assert_eq!(row["dropped_oversize"], 0, "a datagram above 1472 B: {row}");
        assert!(row["msgs_per_s"].as_f64().is_some_and(|x| x > 0.0), "{row}");
        for k in ["mb_per_s", "cpu_us_per_msg", "seconds"] {
            assert!(row[k].as_f64().is_some(), "{k} missing: {row}");
        }
    }
    assert_eq!(lines[2]["bench"], "ring-rotation");
    assert!(lines[2]["idle_rotations_per_s"].as_f64().is_some_and(|x| x > 0.0));
    assert_eq!(lines[3]["bench"], "ring-failover");
    assert!(lines[3]["seconds"].as_f64().is_some_and(|x| x > 0.0 && x < 20.0));
    // Every daemon is gone and the cluster record removed.
    assert!(!dir.join("cluster.json").exists());
    for d in ["d0", "d1", "d2"] {
        let cfg = dir.join(d).join("config.toml");
        assert!(cfg.exists(), "{} missing", cfg.display());
        let text = std::fs::read_to_string(&cfg).expect("config");
        assert!(text.contains("max_datagram = 1472"), "{text}");
    }
    let pids = String::from_utf8(
        Command::new("pgrep")
            .args(["-f", &dir.join("d0").join("config.toml").to_string_lossy()])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert!(pids.trim().is_empty(), "daemons still running: {pids}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn b20_bad_flags_are_usage_errors() {
    for args in [
        &["--senders", "4"][..],
        &["--daemons", "1"],
        &["--sizes", "0"],
        &["--max-datagram", "100"],
        &["--runs", "0"],
    ] {
        let out = Command::new(SGC)
            .args(["bench", "ring"])
            .args(args)
            .output()
            .expect("run sgc");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
