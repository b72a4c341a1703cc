//! Per-operation timings of the finite-field provider, next to num-bigint's `modpow` on the same
//! inputs (the reference the provider is cross-checked against).
//!
//! `cargo run --release -p sgc-crypto --example ffdh_ops -- [ROUNDS] [GROUP]` prints the median
//! and minimum microseconds of each operation; the operations run interleaved, round by round,
//! so that a shared machine's load affects them alike.

use std::hint::black_box;
use std::time::Instant;

use num_bigint::BigUint;
use sgc_crypto::{FfdhGroup, FfdhProvider, NodeSecret, jacobi};
use sgc_model::tgdh::crypto::TgdhCrypto;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let group: FfdhGroup = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(FfdhGroup::Ffdhe2048);
    let provider = FfdhProvider::deterministic(group, 0);
    let params = provider.params().clone();
    // Random 256-bit exponents, as node secrets and as numbers for the num-bigint reference.
    let draw = || {
        let bytes: [u8; 32] = rand::random();
        (NodeSecret::from_bytes(bytes), BigUint::from_bytes_be(&bytes))
    };
    // Warm up (builds the fixed-base table).
    let warm = Instant::now();
    black_box(provider.blind(&draw().0));
    let warm_ms = warm.elapsed().as_secs_f64() * 1e3;

    let names = [
        "blind (provider)",
        "g^x modpow (num-bigint)",
        "combine (provider)",
        "BK^x modpow (num-bigint)",
        "validate_public",
        "jacobi",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    for _ in 0..rounds {
        let (own, x) = draw();
        let other = provider.blind(&draw().0);
        let bk = BigUint::from_bytes_be(other.as_bytes());
        let mut time = |k: usize, f: &mut dyn FnMut()| {
            let t = Instant::now();
            f();
            samples[k].push(t.elapsed().as_secs_f64() * 1e6);
        };
        time(0, &mut || drop(black_box(provider.blind(black_box(&own)))));
        time(1, &mut || {
            drop(black_box(params.g.modpow(black_box(&x), &params.p)))
        });
        time(2, &mut || {
            drop(black_box(provider.combine(black_box(&own), &other)))
        });
        time(3, &mut || drop(black_box(bk.modpow(black_box(&x), &params.p))));
        time(4, &mut || {
            drop(black_box(provider.validate_public(black_box(&other))))
        });
        time(5, &mut || {
            black_box(jacobi(black_box(&bk), &params.p));
        });
    }
    println!("{group}, {rounds} rounds, first blind (table build) {warm_ms:.2} ms");
    println!("{:<28} {:>10} {:>10}", "operation", "median µs", "min µs");
    for (name, mut s) in names.iter().zip(samples) {
        s.sort_by(f64::total_cmp);
        println!("{name:<28} {:>10.1} {:>10.1}", s[s.len() / 2], s[0]);
    }
}
