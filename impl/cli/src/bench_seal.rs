//! `sgc bench seal`: the cost of Three-Step packet protection, per suite, on data packets of
//! `--size` payload bytes (1350 by default: a full default data packet).
//!
//! For each suite, one daemon's [`Protection`] seals batches of data packets (the daemon's own
//! path: postcard encoding, header, seal) and a second one with the same installed key opens
//! them (check, authenticate, decrypt, decode); every datagram is opened once, so the replay
//! windows see no replays. The baseline is the plaintext codec (`Codec::encode`/`decode`) on
//! the same packets. Also reported: the suite alone on a `--size`-byte body
//! (`KeyRing::seal`/`open`), without packet encoding. One line per suite, or one JSON object
//! per line with `--json`:
//!
//! ```json
//! {"bench":"seal","suite":"aes-256-gcm","size":1350,"datagram":1421,"seal_pkts_per_s":...,
//!  "open_pkts_per_s":...,"seal_open_pkts_per_s":...,"seal_open_mb_per_s":...,
//!  "plain_pkts_per_s":...,"ratio":...,"cipher_seal_mb_per_s":...,"cipher_open_mb_per_s":...}
//! ```
//!
//! `seal_open_pkts_per_s` is packets per second through seal and open one after the other on
//! one core; `plain_pkts_per_s` the same for encode and decode; `ratio` = (seal + open time) /
//! (encode + decode time). MB/s count payload bytes (10^6 B).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sgc_crypto::seal::{KeyRing, SealInfo, Suite};
use sgc_daemon::protection::{Protection, Wire};
use sgc_daemon::transport::Codec;
use sgc_model::ring::{Body, Chunk, DataPkt, MsgId, Packet, Pid, RingId, Service};

use crate::CliError;

/// Packets per timed batch.
const BATCH: usize = 512;

/// Options of `sgc bench seal`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// One suite (aes-256-gcm, aes128-cbc-hmac-sha1, blowfish-cbc-hmac-sha1, hmac-sha1);
    /// all when absent.
    #[arg(long)]
    suite: Option<String>,
    /// Payload bytes per data packet.
    #[arg(long, default_value_t = 1350)]
    size: usize,
    /// Measuring time per suite and operation, milliseconds.
    #[arg(long, default_value_t = 400)]
    millis: u64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// One suite's figures.
#[derive(Debug, Serialize)]
struct Row {
    bench: &'static str,
    suite: &'static str,
    size: usize,
    datagram: usize,
    seal_pkts_per_s: f64,
    open_pkts_per_s: f64,
    seal_open_pkts_per_s: f64,
    seal_open_mb_per_s: f64,
    plain_pkts_per_s: f64,
    plain_mb_per_s: f64,
    ratio: f64,
    cipher_seal_mb_per_s: f64,
    cipher_open_mb_per_s: f64,
}

/// Run the benchmark.
pub fn run(args: &BenchArgs) -> Result<ExitCode, CliError> {
    let suites: Vec<Suite> = match &args.suite {
        None => Suite::ALL.to_vec(),
        Some(s) => vec![Suite::from_name(s).ok_or_else(|| {
            CliError::Usage(format!(
                "unknown suite `{s}` (aes-256-gcm, aes128-cbc-hmac-sha1, blowfish-cbc-hmac-sha1, hmac-sha1)"
            ))
        })?],
    };
    if !(1..=60_000).contains(&args.size) {
        return Err(CliError::Usage("--size must be between 1 and 60000".into()));
    }
    let budget = Duration::from_millis(args.millis.clamp(10, 60_000));
    let (plain_s, plain_n) = plain(args.size, budget)?;
    for suite in suites {
        let row = measure(suite, args.size, budget, plain_s / plain_n as f64)?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&row).map_err(|e| CliError::Output(e.to_string()))?
            );
        } else {
            println!(
                "{:<24} {} B ({} B datagram): seal {:>9.0} pkt/s, open {:>9.0} pkt/s, seal+open {:>9.0} pkt/s = {:>7.1} MB/s; \
                 plain {:>9.0} pkt/s; ratio {:.2}; cipher alone {:.0} / {:.0} MB/s",
                row.suite,
                row.size,
                row.datagram,
                row.seal_pkts_per_s,
                row.open_pkts_per_s,
                row.seal_open_pkts_per_s,
                row.seal_open_mb_per_s,
                row.plain_pkts_per_s,
                row.ratio,
                row.cipher_seal_mb_per_s,
                row.cipher_open_mb_per_s
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn packet(size: usize, n: u64) -> Packet {
    let me = Pid::new(0, 1);
    Packet::Data(DataPkt {
        ring: RingId { seq: 40, rep: me },
        seq: n,
        sender: me,
        round: n / 64,
        service: Service::Agreed,
        body: Body::Chunks(vec![Chunk {
            id: MsgId {
                origin: me,
                n: u32::try_from(n % u64::from(u32::MAX)).unwrap_or(0),
            },
            frag: 0,
            last: true,
            bytes: vec![0xa5; size.saturating_sub(22)],
        }]),
    })
}

/// Seconds and packets of plaintext encode + decode.
fn plain(size: usize, budget: Duration) -> Result<(f64, usize), CliError> {
    let codec = Codec::new("bench", 65_507);
    let me = Pid::new(0, 1);
    let pkts: Vec<Packet> = (0..BATCH as u64).map(|i| packet(size, i)).collect();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        for p in &pkts {
            let d = codec.encode(me, p);
            let back = codec.decode(&d).map_err(|e| CliError::Crypto(e.to_string()))?;
            std::hint::black_box(back);
        }
        n += pkts.len();
    }
    Ok((start.elapsed().as_secs_f64(), n))
}

fn measure(suite: Suite, size: usize, budget: Duration, plain_per_pkt: f64) -> Result<Row, CliError> {
    let key = [0x42u8; 32];
    let codec = Codec::new("bench", 65_507);
    let mut a = Protection::new(codec.clone(), Pid::new(0, 1), suite);
    let mut b = Protection::new(codec, Pid::new(1, 1), suite);
    let err = |e: &dyn std::fmt::Display| CliError::Crypto(e.to_string());
    a.install_key(1, &key).map_err(|e| err(&e))?;
    b.install_key(1, &key).map_err(|e| err(&e))?;
    let pkts: Vec<Packet> = (0..BATCH as u64).map(|i| packet(size, i)).collect();
    let (mut seal_t, mut open_t, mut n) = (Duration::ZERO, Duration::ZERO, 0usize);
    let mut datagram = 0;
    let start = Instant::now();
    while start.elapsed() < budget * 2 {
        let t = Instant::now();
        let mut out = Vec::with_capacity(BATCH);
        for p in &pkts {
            out.push(a.encode(Wire::Sealed(1), p).map_err(|e| err(&e))?);
        }
        seal_t += t.elapsed();
        datagram = out.first().map_or(0, Vec::len);
        let t = Instant::now();
        for d in &out {
            let back = b.decode(d, |_| true).map_err(|e| err(&e))?;
            std::hint::black_box(back);
        }
        open_t += t.elapsed();
        n += BATCH;
    }
    let (cs, co) = cipher_only(suite, size, budget)?;
    let per = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let both = per(seal_t + open_t);
    let mb = |pps: f64| pps * size as f64 / 1e6;
    let plain_pps = 1.0 / plain_per_pkt.max(1e-12);
    Ok(Row {
        bench: "seal",
        suite: suite.name(),
        size,
        datagram,
        seal_pkts_per_s: per(seal_t),
        open_pkts_per_s: per(open_t),
        seal_open_pkts_per_s: both,
        seal_open_mb_per_s: mb(both),
        plain_pkts_per_s: plain_pps,
        plain_mb_per_s: mb(plain_pps),
        ratio: ((seal_t + open_t).as_secs_f64() / n as f64) / plain_per_pkt.max(1e-12),
        cipher_seal_mb_per_s: cs,
        cipher_open_mb_per_s: co,
    })
}

/// MB/s of the suite alone (seal, open) on `size`-byte bodies behind a 25-byte header.
fn cipher_only(suite: Suite, size: usize, budget: Duration) -> Result<(f64, f64), CliError> {
    let err = |e: &dyn std::fmt::Display| CliError::Crypto(e.to_string());
    let mut a = KeyRing::new(suite, 1);
    let mut b = KeyRing::new(suite, 2);
    a.install(1, &[7; 32]).map_err(|e| err(&e))?;
    b.install(1, &[7; 32]).map_err(|e| err(&e))?;
    let body = vec![0x5au8; size];
    let (mut st, mut ot, mut n) = (Duration::ZERO, Duration::ZERO, 0usize);
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        let mut out = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let mut buf = Vec::with_capacity(SealInfo::LEN + size + Suite::MAX_OVERHEAD);
            buf.resize(SealInfo::LEN, 0);
            buf.extend_from_slice(&body);
            let info = a
                .seal(None, &mut buf, SealInfo::LEN, |i, h| i.write_to(h))
                .map_err(|e| err(&e))?;
            out.push((info, buf));
        }
        st += t.elapsed();
        let t = Instant::now();
        for (info, d) in &out {
            let p = b.open(info, d, SealInfo::LEN).map_err(|e| err(&e))?;
            std::hint::black_box(p);
        }
        ot += t.elapsed();
        n += BATCH;
    }
    let mbps = |d: Duration| n as f64 * size as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    Ok((mbps(st), mbps(ot)))
}
