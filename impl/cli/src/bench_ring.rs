//! `sgc bench ring`: throughput and CPU of a local ring of real daemons, failure detection and
//! re-formation time, and the idle token rotation.
//!
//! The bench starts its own cluster on loopback (configurations of `DaemonConfig::local`, the
//! ones `sgc cluster up` writes, with `runtime.max_datagram` set from `--max-datagram`, 1472 by
//! default), waits for one ring of all daemons, then for each payload size makes one daemon (or
//! the first `--senders` daemons) submit `--count` messages through the admin `send` testing hook
//! and polls `status` until every daemon's `delivered` has grown by the total. One JSON line per
//! size with `--json`:
//!
//! ```json
//! {"bench":"ring","daemons":3,"senders":1,"size":1000,"count":20000,"msgs_per_s":...,
//!  "mb_per_s":...,"cpu_us_per_msg":...,"seconds":...,"max_datagram":1472,...}
//! ```
//!
//! CPU is the sum over the daemons of `utime + stime` from `/proc/PID/stat` (clock ticks of
//! `getconf CLK_TCK`, 100 if that fails) after minus before, divided by the messages each daemon
//! delivered. Then `{"bench":"ring-rotation",...}` (idle token rotation, from the machines'
//! `tokens` counters) and `{"bench":"ring-failover","seconds":...}` (SIGKILL one daemon,
//! until the others are one operational ring without it). The daemons are stopped at the end,
//! also on error (a guard shuts them down and kills the survivors).
//!
//! **Datagram size.** The ring machine packs and fragments client messages into data packets of
//! at most `window.packet_payload` bytes of chunks; the bench sets it to `--max-datagram` minus
//! the worst-case headers (`DATA_PACKET_OVERHEAD`, 122 B: 1350 B for the default 1472), so no
//! datagram exceeds `--max-datagram` whatever the message size. The receive bound
//! `runtime.max_datagram` is the check: any larger datagram is dropped and counted as
//! `dropped_oversize`, which each line reports. `--max-messages`, `--window-size` and
//! `--max-gap` override the `[window]` defaults of every daemon.
//!
//! **Token rotations** come from the machine's `tokens` counter (regular tokens accepted) in
//! `status`: its growth summed over the daemons and divided by their number is the number of
//! rotations during the run, reported as `rotations_per_s` and `packets_per_visit` (data packets
//! the senders sent per token visit, from `datagrams_out`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sgc_daemon::DaemonConfig;
use sgc_daemon::admin::{self, Request, SendService, Status};
use sgc_daemon::config::DATA_PACKET_OVERHEAD;

use crate::CliError;
use crate::cluster::{CLUSTER_FILE, ClusterDaemon, ClusterInfo};

/// Bounded wait for a ring to form or re-form.
const RING_WAIT: Duration = Duration::from_secs(20);
/// Period of `status` polls while messages flow.
const POLL: Duration = Duration::from_millis(10);

/// Options of `sgc bench ring`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Number of daemons.
    #[arg(long, default_value_t = 3)]
    daemons: u16,
    /// Payload sizes in bytes, comma separated.
    #[arg(long, default_value = "100,1000,10000", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Messages each sender submits per run (default: 20,000,000 / size, clamped to 2000..=50000).
    #[arg(long)]
    count: Option<u32>,
    /// How many daemons submit (d0, d1, ...): 1 up to --daemons.
    #[arg(long, default_value_t = 1)]
    senders: u16,
    /// Runs per size; the line reports the median run (by msgs/s) and the range.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Use the Safe service instead of Agreed.
    #[arg(long)]
    safe: bool,
    /// `runtime.max_datagram` of every daemon (512..=65507); larger datagrams are dropped.
    #[arg(long, default_value_t = 1472)]
    max_datagram: usize,
    /// `window.max_messages` of every daemon (packets per token visit; default: the daemon's).
    #[arg(long)]
    max_messages: Option<u32>,
    /// `window.window_size` of every daemon (packets per rotation; default: the daemon's).
    #[arg(long)]
    window_size: Option<u32>,
    /// `window.max_gap` of every daemon (default: the daemon's).
    #[arg(long)]
    max_gap: Option<u64>,
    /// Skip the failover measurement (which kills one daemon).
    #[arg(long)]
    no_failover: bool,
    /// Broadcast over IP multicast (`[network] multicast`): group 239.255.83.71, port the
    /// first one after the daemons' range (base + 3 × daemons), on loopback.
    #[arg(long)]
    multicast: bool,
    /// Directory for configs and logs (default: a new temporary directory, removed on success).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First port (daemon i uses base+3i UDP, base+3i+1 admin, base+3i+2 client).
    #[arg(long)]
    base_port: Option<u16>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// One throughput line.
#[derive(Debug, Serialize)]
struct Row {
    bench: &'static str,
    daemons: u16,
    senders: u16,
    service: &'static str,
    size: usize,
    /// Messages each sender submitted.
    count: u32,
    msgs_per_s: f64,
    mb_per_s: f64,
    cpu_us_per_msg: f64,
    /// Share of that CPU spent in the kernel (stime), percent.
    cpu_sys_pct: f64,
    seconds: f64,
    runs: u32,
    msgs_per_s_min: f64,
    msgs_per_s_max: f64,
    max_datagram: usize,
    /// Datagrams dropped as larger than `max_datagram`, all daemons, during the run.
    dropped_oversize: u64,
    /// Packets re-broadcast on retransmission requests, all daemons, during the run.
    retransmitted: u64,
    /// Whether the ring changed during the run (the figure is then not a steady-state one).
    ring_changed: bool,
    /// `window.packet_payload` of every daemon.
    packet_payload: usize,
    /// `window.max_messages` of every daemon.
    max_messages: u32,
    /// Token rotations per second during the run (machine `tokens` counter / daemons).
    rotations_per_s: f64,
    /// Datagrams sent per token visit, all daemons (2 per data packet with 3 daemons, 1 with
    /// multicast, plus 1 for the token itself).
    datagrams_per_visit: f64,
    /// Broadcasts went to an IP multicast group.
    multicast: bool,
    /// `sendmmsg` calls per token visit, all daemons.
    send_calls_per_visit: f64,
}

/// The daemons of the bench; dropping it stops them.
struct Bench {
    dir: PathBuf,
    remove_dir: bool,
    daemons: Vec<ClusterDaemon>,
    children: Vec<Option<Child>>,
    clk_tck: f64,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for (d, c) in self.daemons.iter().zip(&self.children) {
            if c.is_some() {
                let _ = admin::call(d.admin, &Request::Shutdown, Duration::from_millis(300));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for c in self.children.iter_mut().flatten() {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join(CLUSTER_FILE));
        if self.remove_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn out_err(e: impl std::fmt::Display) -> CliError {
    CliError::Output(e.to_string())
}

/// Runs `sgc bench ring`.
pub fn run(args: &BenchArgs) -> Result<ExitCode, CliError> {
    if args.daemons < 2 || args.daemons > 64 {
        return Err(CliError::Usage("--daemons must be between 2 and 64".into()));
    }
    if args.senders == 0 || args.senders > args.daemons {
        return Err(CliError::Usage(
            "--senders must be between 1 and --daemons".into(),
        ));
    }
    if args.sizes.is_empty() || args.sizes.iter().any(|s| *s == 0 || *s > 1 << 20) {
        return Err(CliError::Usage("--sizes must be between 1 and 1048576".into()));
    }
    if args.runs == 0 || args.count == Some(0) {
        return Err(CliError::Usage("--runs and --count must be positive".into()));
    }
    if !(512..=65_507).contains(&args.max_datagram) {
        return Err(CliError::Usage(
            "--max-datagram must be between 512 and 65507".into(),
        ));
    }
    if args.max_messages == Some(0) || args.window_size == Some(0) || args.max_gap == Some(0) {
        return Err(CliError::Usage(
            "--max-messages, --window-size and --max-gap must be positive".into(),
        ));
    }
    let mut bench = start(args)?;
    let result = measure(args, &mut bench);
    if result.is_err() {
        bench.remove_dir = false;
        eprintln!("sgc bench ring: logs kept in {}", bench.dir.display());
    }
    result
}

fn measure(args: &BenchArgs, bench: &mut Bench) -> Result<ExitCode, CliError> {
    let names: Vec<String> = bench.daemons.iter().map(|d| d.name.clone()).collect();
    bench.wait_ring(&names)?;
    for &size in &args.sizes {
        let count = args
            .count
            .unwrap_or_else(|| u32::try_from((20_000_000 / size).clamp(2000, 50_000)).unwrap_or(2000));
        let mut rows = Vec::new();
        for _ in 0..args.runs {
            rows.push(bench.throughput(args, size, count)?);
        }
        rows.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
        let (lo, hi) = (rows[0].msgs_per_s, rows[rows.len() - 1].msgs_per_s);
        let mut row = rows.swap_remove(rows.len() / 2);
        row.msgs_per_s_min = lo;
        row.msgs_per_s_max = hi;
        print_row(args.json, &row)?;
    }
    let (rot_per_s, window) = bench.idle_rotation()?;
    let ms = if rot_per_s > 0.0 { 1000.0 / rot_per_s } else { 0.0 };
    print_value(
        args.json,
        &serde_json::json!({"bench": "ring-rotation", "daemons": args.daemons,
            "idle_rotations_per_s": round(rot_per_s, 1), "ms_per_rotation": round(ms, 3),
            "seconds": round(window, 2)}),
        &format!("idle token rotation: {rot_per_s:.0} rotations/s ({ms:.2} ms each)"),
    )?;
    if !args.no_failover {
        let secs = bench.failover()?;
        print_value(
            args.json,
            &serde_json::json!({"bench": "ring-failover", "daemons": args.daemons,
                "seconds": round(secs, 3)}),
            &format!(
                "failover: one daemon killed, ring of {} after {secs:.3} s",
                args.daemons - 1
            ),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn print_row(json: bool, row: &Row) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string(row).map_err(out_err)?);
    } else {
        println!(
            "ring {} daemons, {} sender(s), {} B x {}: {:.0} msgs/s ({:.0}..{:.0}), {:.2} MB/s, \
             {:.1} us CPU/msg, {:.3} s{}",
            row.daemons,
            row.senders,
            row.size,
            row.count,
            row.msgs_per_s,
            row.msgs_per_s_min,
            row.msgs_per_s_max,
            row.mb_per_s,
            row.cpu_us_per_msg,
            row.seconds,
            if row.ring_changed { " (ring changed!)" } else { "" }
        );
    }
    Ok(())
}

fn print_value(json: bool, v: &serde_json::Value, human: &str) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string(v).map_err(out_err)?);
    } else {
        println!("{human}");
    }
    Ok(())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the Linux value, if that fails).
fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `(utime, stime)` of a process in clock ticks (fields 14 and 15 of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> Result<(u64, u64), CliError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(out_err)?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    match (num(11), num(12)) {
        (Some(u), Some(s)) => Ok((u, s)),
        _ => Err(CliError::Output(format!("cannot parse /proc/{pid}/stat"))),
    }
}

fn start(args: &BenchArgs) -> Result<Bench, CliError> {
    let (dir, remove_dir) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("sgc-bench-ring-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(out_err)?;
    let dir = dir.canonicalize().map_err(out_err)?;
    let base = match args.base_port {
        Some(b) => b,
        None => crate::cluster::free_base(args.daemons)?,
    };
    if u32::from(base) + 3 * u32::from(args.daemons) > 65_535 {
        return Err(CliError::Usage(
            "--base-port too high for that many daemons".into(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Output(format!("cannot find sgc: {e}")))?;
    let mut bench = Bench {
        dir: dir.clone(),
        remove_dir,
        daemons: Vec::new(),
        children: Vec::new(),
        clk_tck: clk_tck(),
    };
    for i in 0..args.daemons {
        let mut cfg = DaemonConfig::local("sgc-bench", args.daemons, i, base);
        cfg.runtime.max_datagram = args.max_datagram;
        cfg.window.packet_payload = args.max_datagram - DATA_PACKET_OVERHEAD;
        if let Some(m) = args.max_messages {
            cfg.window.max_messages = m;
        }
        if let Some(w) = args.window_size {
            cfg.window.window_size = w;
        }
        if let Some(g) = args.max_gap {
            cfg.window.max_gap = g;
        }
        if args.multicast {
            let port = base + 3 * args.daemons;
            cfg.network.multicast = Some(SocketAddr::from(([239, 255, 83, 71], port)));
        }
        cfg.validate().map_err(out_err)?;
        let ddir = dir.join(&cfg.daemon.name);
        std::fs::create_dir_all(&ddir).map_err(out_err)?;
        let cfg_path = ddir.join("config.toml");
        std::fs::write(&cfg_path, cfg.to_toml()).map_err(out_err)?;
        let child = spawn(&exe, &cfg_path, &ddir.join("daemon.log"))?;
        bench.daemons.push(ClusterDaemon {
            name: cfg.daemon.name.clone(),
            listen: cfg.daemon.listen,
            admin: cfg.daemon.admin,
            client: cfg.daemon.client,
            pid: child.id(),
        });
        bench.children.push(Some(child));
    }
    // Recorded like `sgc cluster up` does, so `sgc cluster down --dir` can stop a bench that
    // was itself killed.
    let info = ClusterInfo {
        dir: dir.clone(),
        cluster: "sgc-bench".into(),
        daemons: bench.daemons.clone(),
        security: "none".into(),
        identities: std::collections::BTreeMap::new(),
    };
    let json = serde_json::to_string(&info).map_err(out_err)?;
    std::fs::write(dir.join(CLUSTER_FILE), json).map_err(out_err)?;
    Ok(bench)
}

fn spawn(exe: &Path, cfg: &Path, log: &Path) -> Result<Child, CliError> {
    let log = std::fs::File::create(log).map_err(out_err)?;
    let log2 = log.try_clone().map_err(out_err)?;
    Command::new(exe)
        .arg("daemon")
        .arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| CliError::Output(format!("cannot start sgc daemon: {e}")))
}

impl Bench {
    fn status(&self, admin: SocketAddr) -> Result<Status, CliError> {
        let v = admin::call(admin, &Request::Status, Duration::from_secs(2)).map_err(out_err)?;
        serde_json::from_value(v).map_err(out_err)
    }

    fn live(&self) -> impl Iterator<Item = &ClusterDaemon> {
        self.daemons
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(d, _)| d)
    }

    fn statuses(&self) -> Result<Vec<Status>, CliError> {
        self.live().map(|d| self.status(d.admin)).collect()
    }

    /// Wait until the live daemons are one operational ring with exactly `names`.
    fn wait_ring(&mut self, names: &[String]) -> Result<Vec<Status>, CliError> {
        let deadline = Instant::now() + RING_WAIT;
        loop {
            self.check_children()?;
            let st: Vec<Status> = self.live().filter_map(|d| self.status(d.admin).ok()).collect();
            if st.len() == names.len()
                && st.iter().all(|s| {
                    s.phase == "Operational" && s.ring.members == names && s.ring.id == st[0].ring.id
                })
            {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = st
                    .iter()
                    .map(|s| format!("{}: {} {} {:?}", s.daemon, s.phase, s.ring.id, s.ring.members))
                    .collect();
                return Err(CliError::Output(format!(
                    "no ring of {names:?} within {RING_WAIT:?}: {seen:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Fail if a daemon the bench did not kill has exited.
    fn check_children(&mut self) -> Result<(), CliError> {
        for (d, c) in self.daemons.iter().zip(self.children.iter_mut()) {
            if let Some(child) = c
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(CliError::Output(format!("daemon {} exited ({status})", d.name)));
            }
        }
        Ok(())
    }

    /// Summed `(utime, stime)` of the live daemons, in ticks.
    fn cpu(&self) -> Result<(u64, u64), CliError> {
        let mut sum = (0, 0);
        for d in self.live() {
            let (u, s) = cpu_ticks(d.pid)?;
            sum = (sum.0 + u, sum.1 + s);
        }
        Ok(sum)
    }

    fn throughput(&mut self, args: &BenchArgs, size: usize, count: u32) -> Result<Row, CliError> {
        let before = self.statuses()?;
        let total = u64::from(count) * u64::from(args.senders);
        let cpu0 = self.cpu()?;
        let t0 = Instant::now();
        let service = if args.safe {
            SendService::Safe
        } else {
            SendService::Agreed
        };
        for d in self.daemons.iter().take(usize::from(args.senders)) {
            admin::call(
                d.admin,
                &Request::Send { count, size, service },
                Duration::from_secs(10),
            )
            .map_err(out_err)?;
        }
        // Generous bound: 200 messages/s or 1 MB/s at the least, plus 20 s.
        let budget = (total as f64 / 200.0).max((total as f64 * size as f64) / 1e6) + 20.0;
        let deadline = t0 + Duration::from_secs_f64(budget);
        let after = loop {
            std::thread::sleep(POLL);
            let st = self.statuses()?;
            if st
                .iter()
                .zip(&before)
                .all(|(a, b)| a.delivered >= b.delivered + total)
            {
                break st;
            }
            self.check_children()?;
            if Instant::now() > deadline {
                let got: Vec<u64> = st
                    .iter()
                    .zip(&before)
                    .map(|(a, b)| a.delivered - b.delivered)
                    .collect();
                return Err(CliError::Output(format!(
                    "{size} B: delivered {got:?} of {total} within {budget:.0} s"
                )));
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        let cpu1 = self.cpu()?;
        let (user, sys) = (cpu1.0.saturating_sub(cpu0.0), cpu1.1.saturating_sub(cpu0.1));
        let cpu_ticks = user + sys;
        let counter = |s: &[Status], k: &str| -> u64 {
            s.iter().map(|x| x.counters.get(k).copied().unwrap_or(0)).sum()
        };
        let machine =
            |s: &[Status], k: &str| -> u64 { s.iter().map(|x| x.machine[k].as_u64().unwrap_or(0)).sum() };
        let rate = total as f64 / secs;
        let visits = machine(&after, "tokens").saturating_sub(machine(&before, "tokens"));
        let dgrams = counter(&after, "datagrams_out").saturating_sub(counter(&before, "datagrams_out"));
        let calls = counter(&after, "send_calls").saturating_sub(counter(&before, "send_calls"));
        let rotations = visits as f64 / f64::from(args.daemons);
        let probe = DaemonConfig::local("sgc-bench", args.daemons, 0, 1);
        Ok(Row {
            bench: "ring",
            daemons: args.daemons,
            senders: args.senders,
            service: if args.safe { "safe" } else { "agreed" },
            size,
            count,
            msgs_per_s: round(rate, 0),
            mb_per_s: round(rate * size as f64 / 1e6, 2),
            cpu_us_per_msg: round(cpu_ticks as f64 * 1e6 / self.clk_tck / total as f64, 2),
            cpu_sys_pct: if cpu_ticks == 0 {
                0.0
            } else {
                round(100.0 * sys as f64 / cpu_ticks as f64, 0)
            },
            seconds: round(secs, 3),
            runs: args.runs,
            msgs_per_s_min: 0.0,
            msgs_per_s_max: 0.0,
            max_datagram: args.max_datagram,
            dropped_oversize: counter(&after, "dropped_oversize") - counter(&before, "dropped_oversize"),
            retransmitted: machine(&after, "retransmitted") - machine(&before, "retransmitted"),
            ring_changed: after.iter().zip(&before).any(|(a, b)| a.ring.id != b.ring.id),
            packet_payload: args.max_datagram - DATA_PACKET_OVERHEAD,
            max_messages: args.max_messages.unwrap_or(probe.window.max_messages),
            rotations_per_s: round(rotations / secs, 0),
            datagrams_per_visit: if visits == 0 {
                0.0
            } else {
                round(dgrams as f64 / visits as f64, 2)
            },
            multicast: args.multicast,
            send_calls_per_visit: if visits == 0 {
                0.0
            } else {
                round(calls as f64 / visits as f64, 2)
            },
        })
    }

    /// Idle token rotations per second: the machine's `tokens` counter (regular tokens
    /// accepted) summed over the daemons and divided by their number.
    fn idle_rotation(&self) -> Result<(f64, f64), CliError> {
        std::thread::sleep(Duration::from_millis(200));
        let tokens =
            |s: &[Status]| -> u64 { s.iter().map(|x| x.machine["tokens"].as_u64().unwrap_or(0)).sum() };
        let a = self.statuses()?;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let b = self.statuses()?;
        let secs = t0.elapsed().as_secs_f64();
        let n = b.len().max(1) as f64;
        Ok((tokens(&b).saturating_sub(tokens(&a)) as f64 / n / secs, secs))
    }

    /// SIGKILL the last daemon; seconds until the others are one operational ring without it.
    fn failover(&mut self) -> Result<f64, CliError> {
        let Some(last) = self.children.iter().rposition(Option::is_some) else {
            return Err(CliError::Output("no daemon left".into()));
        };
        let t0 = Instant::now();
        if let Some(mut c) = self.children[last].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let names: Vec<String> = self.live().map(|d| d.name.clone()).collect();
        self.wait_ring(&names)?;
        Ok(t0.elapsed().as_secs_f64())
    }
}
