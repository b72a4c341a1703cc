//! End-to-end client tests of `sgc flood` and `sgc monitor` against a real cluster of three
//! daemons on loopback (`sgc cluster up`):
//!
//! - a small flood (2 senders × 200 messages of 100 B, agreed, 3 receivers, one per daemon):
//!   every receiver got everything in per-sender order, the JSON has every documented field;
//! - ping-pong and join-latency runs of a few rounds give positive percentiles;
//! - `sgc monitor --count 2 --json` prints 2 parseable objects describing the 3 daemons.
//!
//! Every wait is bounded (`--timeout-s`, a deadline for the ring); a guard kills the daemons.

mod common;

use std::process::Command;

use common::{Cluster, SGC};

/// A cluster of three daemons that formed one ring.
fn up(name: &str) -> Cluster {
    let c = common::up(name, 3);
    c.wait_rings(&[&["d0", "d1", "d2"]]);
    c
}

fn sgc_json(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(SGC).args(args).output().expect("run sgc");
    assert!(
        out.status.success(),
        "sgc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn positive_percentiles(v: &serde_json::Value) {
    for k in ["p50", "p90", "p99", "max"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {v}");
    }
    assert!(v["p50"].as_f64() <= v["p99"].as_f64() && v["p99"].as_f64() <= v["max"].as_f64());
}

#[test]
fn flood_pingpong_join_and_monitor_against_three_daemons() {
    let c = up("flood");
    let clients = c.list(|d| d.client);
    let admins = c.list(|d| d.admin);

    let runs = sgc_json(&[
        "flood",
        "--daemon",
        &clients,
        "--senders",
        "2",
        "--count",
        "200",
        "--size",
        "100",
        "--service",
        "agreed",
        "--timeout-s",
        "30",
        "--json",
    ]);
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    for k in [
        "senders",
        "receivers",
        "size",
        "count",
        "service",
        "messages_per_s",
        "mb_per_s",
        "latency_us",
        "elapsed_s",
    ] {
        assert!(r.get(k).is_some(), "field {k} missing in {r}");
    }
    assert_eq!(r["senders"], 2);
    assert_eq!(r["receivers"], 3);
    assert_eq!(r["size"], 100);
    assert_eq!(r["service"], "agreed");
    // Every receiver got all 2 × 200 messages, in per-sender order.
    assert_eq!(r["delivered"], 3 * 2 * 200);
    assert_eq!(r["order_errors"], 0);
    assert!(r["messages_per_s"].as_f64().is_some_and(|x| x > 0.0));
    positive_percentiles(&r["latency_us"]);

    let pp = sgc_json(&[
        "flood",
        "--daemon",
        &clients,
        "--pingpong",
        "20",
        "--size",
        "100",
        "--group",
        "pp",
        "--timeout-s",
        "20",
        "--json",
    ]);
    assert_eq!(pp[0]["rounds"], 20);
    positive_percentiles(&pp[0]["rtt_us"]);

    let jl = sgc_json(&[
        "flood",
        "--daemon",
        &clients,
        "--join-latency",
        "10",
        "--group",
        "jl",
        "--timeout-s",
        "20",
        "--json",
    ]);
    assert_eq!(jl[0]["rounds"], 10);
    positive_percentiles(&jl[0]["join_us"]);

    let polls = sgc_json(&[
        "monitor",
        "--daemon",
        &admins,
        "--count",
        "2",
        "--interval-ms",
        "200",
        "--json",
    ]);
    assert_eq!(polls.len(), 2, "{polls:?}");
    for (i, p) in polls.iter().enumerate() {
        assert_eq!(p["poll"], i + 1);
        let ds = p["daemons"].as_array().expect("daemons");
        assert_eq!(ds.len(), 3);
        for d in ds {
            assert!(d.get("error").is_none(), "{d}");
            assert_eq!(d["ring"]["members"].as_array().map(Vec::len), Some(3), "{d}");
            assert!(d["delivered"].as_u64().is_some_and(|n| n >= 400), "{d}");
            assert!(d["clients"]["sessions"].is_u64(), "{d}");
        }
    }
    assert!(polls[0]["daemons"][0]["delivered_per_s"].is_null());
    assert!(polls[1]["daemons"][0]["delivered_per_s"].is_f64());
}
