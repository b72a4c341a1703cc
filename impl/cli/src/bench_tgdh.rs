//! `sgc bench tgdh`: what one TGDH event costs, per event kind and group size, with real
//! cryptography: rounds, messages, exponentiations, signatures and verifications (serial =
//! summed over the protocol's phases of the busiest member; total = all members), and the
//! wall-clock and thread CPU time of the serial critical path (CPU time is the robust figure on a
//! shared, loaded machine: it excludes time spent preempted). One JSON line per (event, size) with `--json`.
//!
//! Groups are *dealt* (the tree joins would build, with keys computed by a dealer) so that a
//! 100-member group costs 3n exponentiations to set up instead of 100 joins; the measured event
//! then runs the real protocol among all members, in one process, one member at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use cpu_time::ThreadTime;
use serde::Serialize;
use sgc_crypto::{FfdhProvider, GroupChoice, X25519Provider};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::TgdhCrypto;
use sgc_model::tgdh::sim::{EventStats, Meter, SimGroup};

use crate::CliError;

/// Options of `sgc bench tgdh`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// DH group: ffdhe2048, ffdhe3072, modp2048 or x25519.
    #[arg(long, default_value = "ffdhe2048")]
    group: String,
    /// Group sizes, comma separated.
    #[arg(long, default_value = "2,4,8,16,32,64,100", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Events to measure, comma separated: join, leave, merge, partition, refresh.
    #[arg(
        long,
        default_value = "join,leave,merge,partition,refresh",
        value_delimiter = ','
    )]
    events: Vec<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// One measured (event, size).
#[derive(Debug, Serialize)]
struct Row {
    event: String,
    group: String,
    /// Members after the event.
    n: usize,
    /// Tree height after the event.
    height: u32,
    rounds: u32,
    messages: u32,
    exps_serial: u32,
    exps_total: u32,
    signatures_serial: u32,
    signatures_total: u32,
    verifications_serial: u32,
    verifications_total: u32,
    /// Wall-clock milliseconds of the serial critical path.
    ms_serial: f64,
    /// Wall-clock milliseconds of all members' work.
    ms_total: f64,
    /// Thread CPU milliseconds of the serial critical path (robust to a loaded machine).
    cpu_ms_serial: f64,
    /// Every member ended with the same key.
    agreed: bool,
}

/// Per phase and member: wall-clock time, thread CPU time.
type Times = BTreeMap<u32, BTreeMap<MemberId, (Duration, Duration)>>;

/// Times every step, per phase and member, in wall-clock and thread CPU time.
#[derive(Default)]
struct Clock {
    phases: Times,
}

impl Meter for Clock {
    fn step<R>(&mut self, member: &MemberId, phase: u32, f: impl FnOnce() -> R) -> R {
        let (wall, cpu) = (Instant::now(), ThreadTime::now());
        let r = f();
        let t = self
            .phases
            .entry(phase)
            .or_default()
            .entry(member.clone())
            .or_default();
        t.0 += wall.elapsed();
        t.1 += cpu.elapsed();
        r
    }
}

impl Clock {
    /// Per phase the busiest member, summed, in milliseconds.
    fn serial_ms(&self, pick: fn(&(Duration, Duration)) -> Duration) -> f64 {
        let per_phase = self
            .phases
            .values()
            .map(|m| m.values().map(pick).max().unwrap_or_default());
        per_phase.sum::<Duration>().as_secs_f64() * 1e3
    }

    fn total_ms(&self) -> f64 {
        self.phases
            .values()
            .flat_map(|m| m.values())
            .map(|t| t.0)
            .sum::<Duration>()
            .as_secs_f64()
            * 1e3
    }
}

const EVENTS: [&str; 5] = ["join", "leave", "merge", "partition", "refresh"];

/// Runs `sgc bench tgdh`.
pub fn run(args: &BenchArgs) -> Result<ExitCode, CliError> {
    let choice: GroupChoice = args.group.parse().map_err(|e| CliError::Usage(format!("{e}")))?;
    for e in &args.events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(CliError::Usage(format!(
                "unknown event {e:?}; known: {}",
                EVENTS.join(", ")
            )));
        }
    }
    if let Some(bad) = args.sizes.iter().find(|&&n| !(2..=1024).contains(&n)) {
        return Err(CliError::Usage(format!(
            "group sizes must be 2..=1024, got {bad}"
        )));
    }
    // Partition runs deal a third more members than they keep: name enough identities.
    let largest = 2 * args.sizes.iter().copied().max().unwrap_or(2);
    if !args.json {
        out!(
            "{:9} {:>4} {:>2} {:>6} {:>4} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
            "event",
            "n",
            "h",
            "rounds",
            "msgs",
            "exps ser",
            "exps tot",
            "sigs ser",
            "verif ser",
            "ms serial",
            "cpu ms"
        );
    }
    match choice.ffdh_group() {
        Some(g) => sweep(&FfdhProvider::deterministic(g, largest), choice, args),
        None => sweep(&X25519Provider::deterministic(largest), choice, args),
    }
}

fn sweep<C: TgdhCrypto>(crypto: &C, choice: GroupChoice, args: &BenchArgs) -> Result<ExitCode, CliError>
where
    C::Secret: Clone + Eq,
    C::Public: Clone + Eq + Serialize,
{
    let mut all_agreed = true;
    for event in &args.events {
        for &n in &args.sizes {
            let row = measure(crypto, choice, event, n)?;
            all_agreed &= row.agreed;
            if args.json {
                out!(
                    "{}",
                    serde_json::to_string(&row).map_err(|e| CliError::Output(e.to_string()))?
                );
            } else {
                out!(
                    "{:9} {:>4} {:>2} {:>6} {:>4} {:>9} {:>9} {:>9} {:>10} {:>9.2} {:>9.2}",
                    row.event,
                    row.n,
                    row.height,
                    row.rounds,
                    row.messages,
                    row.exps_serial,
                    row.exps_total,
                    row.signatures_serial,
                    row.verifications_serial,
                    row.ms_serial,
                    row.cpu_ms_serial
                );
            }
        }
    }
    Ok(if all_agreed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn names(range: std::ops::Range<usize>) -> Vec<MemberId> {
    range.map(|i| MemberId::new(format!("m{i}"))).collect()
}

fn dealt<C: TgdhCrypto>(crypto: &C, members: &[MemberId]) -> Result<SimGroup<C>, CliError>
where
    C::Secret: Clone + Eq,
    C::Public: Clone + Eq + Serialize,
{
    SimGroup::dealt(crypto, "bench", members).map_err(|e| CliError::Crypto(e.to_string()))
}

fn measure<C: TgdhCrypto>(crypto: &C, choice: GroupChoice, event: &str, n: usize) -> Result<Row, CliError>
where
    C::Secret: Clone + Eq,
    C::Public: Clone + Eq + Serialize,
{
    let mut clock = Clock::default();
    let (group, stats): (SimGroup<C>, EventStats) = match event {
        "join" => {
            let mut g = dealt(crypto, &names(0..n - 1))?;
            g.install_view(crypto, names(0..n).into_iter().collect(), &mut clock);
            let s = g.run(crypto, &mut clock);
            (g, s)
        }
        "leave" => {
            let mut g = dealt(crypto, &names(0..n + 1))?;
            let stay: BTreeSet<MemberId> = names(0..n + 1)
                .into_iter()
                .filter(|m| m.0 != format!("m{}", n / 2))
                .collect();
            g.install_view(crypto, stay, &mut clock);
            let s = g.run(crypto, &mut clock);
            (g, s)
        }
        "merge" => {
            let half = n / 2;
            let mut g = dealt(crypto, &names(0..half))?;
            let other = dealt(crypto, &names(half..n))?;
            g.merge(crypto, vec![other], &mut clock);
            let s = g.run(crypto, &mut clock);
            (g, s)
        }
        "partition" => {
            // A quarter of the group (every fourth member) splits off; the rest is measured.
            let total = n + n.div_ceil(3);
            let mut g = dealt(crypto, &names(0..total))?;
            let leaving: BTreeSet<MemberId> = names(0..total).into_iter().skip(1).step_by(4).collect();
            let mut leaving: BTreeSet<MemberId> = leaving.into_iter().take(total - n).collect();
            if leaving.is_empty() {
                leaving = names(1..2).into_iter().collect();
            }
            let _other = g.split(crypto, &leaving, &mut clock);
            let s = g.run(crypto, &mut clock);
            (g, s)
        }
        _ => {
            let mut g = dealt(crypto, &names(0..n))?;
            g.request_refresh(crypto, &MemberId::new("m0"));
            let s = g.run(crypto, &mut clock);
            (g, s)
        }
    };
    Ok(Row {
        event: event.to_owned(),
        group: choice.name().to_owned(),
        n: group.members.len(),
        height: group.height(),
        rounds: stats.rounds,
        messages: stats.messages,
        exps_serial: stats.exps_serial,
        exps_total: stats.exps_total,
        signatures_serial: stats.signatures_serial,
        signatures_total: stats.signatures_total,
        verifications_serial: stats.verifications_serial,
        verifications_total: stats.verifications_total,
        ms_serial: clock.serial_ms(|t| t.0),
        cpu_ms_serial: clock.serial_ms(|t| t.1),
        ms_total: clock.total_ms(),
        agreed: group.agreed() && stats.rejected == 0,
    })
}
