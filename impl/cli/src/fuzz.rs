//! `sgc conformance fuzz --seed S --duration 60s [--daemons N] [--dir DIR] [--json]`: a bounded,
//! seeded random fault run on a real local cluster whose daemons record their ring machines'
//! inputs and commands (`runtime.record`), then live → model: every recording is replayed into
//! a fresh machine (identical commands expected) and the EVS properties are checked over what
//! the daemons did (`sgc_conformance::replay::live`).
//!
//! Faults, drawn from the seed: messages through the admin `send` hook (Agreed or Safe, 0–2000
//! bytes), partitions of a random subset (the admin `partition` hook on both sides), heals, and
//! crashes (`SIGKILL`) followed by a restart of the same daemon (a new incarnation, a new
//! recording). The run ends by healing, restarting every crashed daemon, waiting for one ring
//! (bounded), and stopping the daemons with the admin `shutdown` so recordings are flushed.
//! Exit status 0 when every replay matched and every property held, 1 otherwise, 2 when the
//! run could not be carried out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sgc_conformance::replay::live::{self, LiveProperty};
use sgc_daemon::admin::{self, Request, SendService};
use sgc_model::check::SplitMix64;

use crate::CliError;
use crate::cluster::{ClusterDaemon, ClusterInfo};

/// Options of `sgc conformance fuzz`.
#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long faults are injected (`60s`, `500ms`, or seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Daemons in the cluster.
    #[arg(long, default_value_t = 3)]
    daemons: u16,
    /// Cluster directory (kept; default: a new temporary directory, removed after a clean run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {s:?} (use ms, s or m)")),
    }
}

/// Faults injected, by kind.
#[derive(Clone, Debug, Default, Serialize)]
struct Injected {
    sends: u32,
    partitions: u32,
    heals: u32,
    crashes: u32,
    restarts: u32,
}

/// A mismatch, as printed.
#[derive(Clone, Debug, Serialize)]
struct FuzzMismatch {
    file: PathBuf,
    pid: String,
    diff: String,
}

/// The summary printed.
#[derive(Clone, Debug, Serialize)]
struct FuzzSummary {
    seed: u64,
    duration_ms: u128,
    daemons: u16,
    events_injected: u32,
    injected: Injected,
    messages: u64,
    recordings: usize,
    steps_replayed: usize,
    deliveries: usize,
    views: usize,
    properties: Vec<LiveProperty>,
    properties_checked: usize,
    mismatches: Vec<FuzzMismatch>,
    dir: PathBuf,
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster under test: its description and the daemons this run restarted.
struct Cluster {
    info: ClusterInfo,
    exe: PathBuf,
    /// Per daemon index, the pid now running it (`None` while crashed).
    pids: Vec<Option<u32>>,
    restarted: Vec<Child>,
}

impl Cluster {
    fn up(exe: &Path, dir: &Path, daemons: u16) -> Result<Self, CliError> {
        let out = Command::new(exe)
            .args(["cluster", "up", "--record", "--json", "--daemons"])
            .arg(daemons.to_string())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| CliError::Output(format!("cannot run sgc cluster up: {e}")))?;
        if !out.status.success() {
            return Err(CliError::Output(format!(
                "sgc cluster up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let info: ClusterInfo = serde_json::from_slice(&out.stdout)
            .map_err(|e| CliError::Output(format!("cluster up output: {e}")))?;
        let pids = info.daemons.iter().map(|d| Some(d.pid)).collect();
        Ok(Self {
            info,
            exe: exe.to_path_buf(),
            pids,
            restarted: Vec::new(),
        })
    }

    fn daemon(&self, i: usize) -> Option<&ClusterDaemon> {
        self.info.daemons.get(i)
    }

    fn live(&self) -> Vec<usize> {
        (0..self.pids.len()).filter(|i| self.pids[*i].is_some()).collect()
    }

    fn call(&self, i: usize, req: &Request) {
        if let Some(d) = self.daemon(i)
            && self.pids.get(i).is_some_and(Option::is_some)
        {
            let _ = admin::call(d.admin, req, ADMIN_TIMEOUT);
        }
    }

    fn crash(&mut self, i: usize) {
        if let Some(Some(pid)) = self.pids.get(i).copied() {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            if let Some(c) = self.restarted.iter_mut().find(|c| c.id() == pid) {
                let _ = c.wait();
            }
            self.pids[i] = None;
        }
    }

    fn restart(&mut self, i: usize) -> Result<(), CliError> {
        let Some(d) = self.daemon(i) else { return Ok(()) };
        let ddir = self.info.dir.join(&d.name);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(ddir.join("daemon.log"))
            .map_err(|e| CliError::Output(format!("daemon log: {e}")))?;
        let log2 = log.try_clone().map_err(|e| CliError::Output(e.to_string()))?;
        let child = Command::new(&self.exe)
            .arg("daemon")
            .arg("--config")
            .arg(ddir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| CliError::Output(format!("cannot restart {}: {e}", d.name)))?;
        let admin_addr = d.admin;
        self.pids[i] = Some(child.id());
        self.restarted.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while admin::call(admin_addr, &Request::Status, ADMIN_TIMEOUT).is_err() {
            if Instant::now() > deadline {
                return Err(CliError::Output("a restarted daemon does not answer".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Every live daemon reports one ring of all daemons (bounded wait).
    fn wait_one_ring(&self, within: Duration) -> bool {
        let n = self.info.daemons.len();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let all = self.info.daemons.iter().all(|d| {
                admin::call(d.admin, &Request::Status, ADMIN_TIMEOUT)
                    .ok()
                    .and_then(|v| v["ring"]["members"].as_array().map(Vec::len))
                    == Some(n)
            });
            if all {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Stops every daemon with `shutdown` (recordings are flushed), then kills stragglers.
    fn stop(&mut self) {
        for i in self.live() {
            self.call(i, &Request::Shutdown);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.restarted {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in self.pids.iter().flatten() {
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_file(self.info.dir.join(crate::cluster::CLUSTER_FILE));
    }
}

/// Runs `sgc conformance fuzz`.
pub fn run(args: &FuzzArgs) -> Result<ExitCode, CliError> {
    if args.daemons < 2 || args.daemons > 8 {
        return Err(CliError::Usage("--daemons must be between 2 and 8".into()));
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Output(format!("cannot find sgc: {e}")))?;
    let temp = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sgc-fuzz-{}-{}", std::process::id(), args.seed))
    });
    let started = Instant::now();
    let mut cluster = Cluster::up(&exe, &dir, args.daemons)?;
    let outcome = inject(&mut cluster, args);
    cluster.stop();
    let (injected, messages) = outcome?;
    let report = live::replay_dir(&cluster.info.dir).map_err(|e| CliError::Output(e.to_string()))?;
    let summary = FuzzSummary {
        seed: args.seed,
        duration_ms: started.elapsed().as_millis(),
        daemons: args.daemons,
        events_injected: injected.sends
            + injected.partitions
            + injected.heals
            + injected.crashes
            + injected.restarts,
        injected,
        messages,
        recordings: report.recordings.len(),
        steps_replayed: report.steps,
        deliveries: report.deliveries,
        views: report.configurations,
        properties_checked: report.properties.len(),
        properties: report.properties.clone(),
        mismatches: report
            .recordings
            .iter()
            .filter_map(|r| {
                r.mismatch.as_ref().map(|m| FuzzMismatch {
                    file: r.file.clone(),
                    pid: r.pid.clone(),
                    diff: m.to_string(),
                })
            })
            .collect(),
        dir: cluster.info.dir.clone(),
    };
    print_summary(&summary, args.json)?;
    if report.ok() {
        if temp {
            let _ = std::fs::remove_dir_all(&cluster.info.dir);
        }
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

fn print_summary(s: &FuzzSummary, json: bool) -> Result<(), CliError> {
    if json {
        out!(
            "{}",
            serde_json::to_string(s).map_err(|e| CliError::Output(e.to_string()))?
        );
        return Ok(());
    }
    out!(
        "seed {}  {} daemons  {} events injected ({} sends, {} partitions, {} heals, {} crashes, {} restarts)",
        s.seed,
        s.daemons,
        s.events_injected,
        s.injected.sends,
        s.injected.partitions,
        s.injected.heals,
        s.injected.crashes,
        s.injected.restarts
    );
    out!(
        "{} recordings, {} steps replayed, {} deliveries, {} views, {} mismatches",
        s.recordings,
        s.steps_replayed,
        s.deliveries,
        s.views,
        s.mismatches.len()
    );
    for p in &s.properties {
        out!("  {:<14} {}", p.name, if p.holds { "holds" } else { "VIOLATED" });
    }
    for m in &s.mismatches {
        out!("MISMATCH {} ({})", m.pid, m.file.display());
        for l in m.diff.lines() {
            out!("  {l}");
        }
    }
    Ok(())
}

/// The fault schedule: one random action, then a random pause, until the duration is over.
fn inject(c: &mut Cluster, args: &FuzzArgs) -> Result<(Injected, u64), CliError> {
    let mut rng = SplitMix64::new(args.seed);
    let mut inj = Injected::default();
    let mut messages = 0u64;
    let n = usize::from(args.daemons);
    let names: Vec<String> = c.info.daemons.iter().map(|d| d.name.clone()).collect();
    let mut crashed_at: BTreeMap<usize, Instant> = BTreeMap::new();
    let end = Instant::now() + args.duration;
    while Instant::now() < end {
        let live = c.live();
        match rng.below(20) {
            0..=11 if !live.is_empty() => {
                let i = live[rng.below(live.len())];
                let count = 1 + u32::try_from(rng.below(20)).unwrap_or(0);
                let service = if rng.below(3) == 0 {
                    SendService::Safe
                } else {
                    SendService::Agreed
                };
                let size = rng.below(2000);
                c.call(i, &Request::Send { count, size, service });
                inj.sends += 1;
                messages += u64::from(count);
            }
            12..=14 => {
                // one side: a random non-empty proper subset
                let side: Vec<usize> = (0..n).filter(|_| rng.below(2) == 0).collect();
                if !side.is_empty() && side.len() < n {
                    for i in 0..n {
                        let from: Vec<String> = (0..n)
                            .filter(|j| side.contains(j) != side.contains(&i))
                            .map(|j| names[j].clone())
                            .collect();
                        c.call(i, &Request::Partition { from });
                    }
                    inj.partitions += 1;
                }
            }
            15..=16 => {
                for i in 0..n {
                    c.call(i, &Request::Heal);
                }
                inj.heals += 1;
            }
            17 if live.len() > 1 => {
                let i = live[rng.below(live.len())];
                c.crash(i);
                crashed_at.insert(i, Instant::now());
                inj.crashes += 1;
            }
            _ => {}
        }
        // restart daemons crashed more than a second ago
        let due: Vec<usize> = crashed_at
            .iter()
            .filter(|(_, t)| t.elapsed() > Duration::from_secs(1))
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            crashed_at.remove(&i);
            c.restart(i)?;
            inj.restarts += 1;
        }
        std::thread::sleep(Duration::from_millis(20 + rng.next_u64() % 300));
    }
    for i in std::mem::take(&mut crashed_at).into_keys() {
        c.restart(i)?;
        inj.restarts += 1;
    }
    for i in 0..n {
        c.call(i, &Request::Heal);
    }
    inj.heals += 1;
    if !c.wait_one_ring(Duration::from_secs(20)) {
        tracing::warn!("the cluster did not form one ring within 20 s after the faults");
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok((inj, messages))
}
