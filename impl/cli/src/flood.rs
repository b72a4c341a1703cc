//! `sgc flood`: end-to-end client benchmarks through real daemons, like Spread's `spflooder`.
//!
//! Every mode uses the async [`sgc_client::Client`] (batched writes, zero-copy receive) over the
//! daemons' client endpoints (`ip:port` or a Unix socket path), all in this one process, so one
//! monotonic clock timestamps sends and deliveries.
//!
//! - **Throughput** (default): `--receivers R` connections (default one per daemon given) join
//!   `--group` and wait until each sees a membership holding all of them; then `--senders N`
//!   connections (round-robin over the daemons, not members: groups are open) multicast
//!   `--count C` messages of `--size B` bytes each as fast as the client lets them (a sender
//!   waits when its outbox is full, i.e. back-pressure). Each payload starts with the send time
//!   (ns since the run's start), the sender's index and its sequence number; every receiver
//!   checks per-sender FIFO order, counts, and records send → delivery latency. The run ends when
//!   every receiver got N×C messages; `--timeout-s` bounds it (an error, exit status 1).
//! - **`--pingpong K`**: one member sends, waits for its own delivery, K times (round trip).
//! - **`--join-latency K`**: one connection joins, waits for its own membership, leaves, waits
//!   for its self-leave, K times (join → own membership).
//! - **`--scale-clients N`**: N connections to the first daemon, each joining its own group; the
//!   daemon's resident memory (`--daemon-pid`, `/proc/PID/status` `VmRSS`) idle and loaded,
//!   join latency idle and loaded, then a flood phase (`--flood-s`): one connection sends
//!   `--size`-byte messages as fast as it can to a group nobody joined, while the call durations
//!   (blocked sends: back-pressure) and the daemon's memory are sampled.
//!
//! - **`--compare-e2e`** (throughput): two runs in this one process, first plaintext, then with
//!   Integrated VS end-to-end encryption (`sgc_crypto::e2e`, AES-256-GCM under the group key
//!   the daemon hands with the membership: daemons with security on, Unix-socket or TLS
//!   endpoints). In both runs the senders are members too (a key goes to members only) and send
//!   with self-discard; the encrypted run seals every payload (timestamp inside) and every
//!   receiver opens it. Output: `{"mode":"e2e_compare","size","plain":{throughput},
//!   "integrated_vs":{throughput, "undecryptable"},"ratio"}`, `ratio` = encrypted / plain
//!   messages per second. **`--e2e-only`**: only the encrypted run (throughput JSON with
//!   `"undecryptable"`), for `optimized-evs` clusters, which report plaintext group messages as
//!   undecryptable.
//!
//! Output: one JSON object with `--json`, one readable line otherwise. Throughput JSON:
//! `{"mode":"throughput","senders","receivers","size","count","service","messages_per_s",
//! "mb_per_s","latency_us":{"p50","p90","p99","max"},"elapsed_s","delivered","order_errors"}`.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;
use sgc_client::{Client, ClientError, Endpoint, EventRef};
use sgc_crypto::e2e::{E2eContext, E2eError, E2eKey};
use sgc_model::groups::{ClientEvent, ClientService, GroupName, PrivateName, Target};
use tokio::task::JoinSet;

use crate::CliError;

/// Message type of flood payloads (`"FL"`).
const FLOOD_TYPE: i16 = 0x464c;
/// Bytes of the payload header: send time (u64 ns), sender index (u32), sequence (u32).
const HEADER: usize = 16;
/// A send call longer than this counts as blocked (back-pressure) in the scale mode.
const BLOCKED: Duration = Duration::from_millis(1);

/// Options of `sgc flood`.
#[derive(Args, Debug)]
pub struct FloodArgs {
    /// Client endpoints of the daemons: `ip:port`, `unix:PATH` or a socket path, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    daemon: Vec<String>,
    /// Sending connections (round-robin over the daemons).
    #[arg(long, default_value_t = 1)]
    senders: u32,
    /// Receiving connections (round-robin over the daemons); default: one per daemon given.
    #[arg(long)]
    receivers: Option<u32>,
    /// Payload bytes per message (at least 16: the timestamp header).
    #[arg(long, default_value_t = 1000)]
    size: usize,
    /// Messages per sender.
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    /// Delivery service: unreliable, reliable, fifo, causal, agreed, safe.
    #[arg(long, default_value = "agreed")]
    service: String,
    /// Group name.
    #[arg(long, default_value = "flood")]
    group: String,
    /// Bound on the whole run, seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Ping-pong mode: K rounds of send → own delivery.
    #[arg(long, conflicts_with_all = ["join_latency", "scale_clients"])]
    pingpong: Option<u32>,
    /// Join-latency mode: K rounds of join → own membership (then leave → self-leave).
    #[arg(long, conflicts_with = "scale_clients")]
    join_latency: Option<u32>,
    /// Scale mode: N connections to the first daemon, one group each.
    #[arg(long)]
    scale_clients: Option<u32>,
    /// Scale mode: the first daemon's process id, for its resident memory.
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Scale mode: join rounds measured idle and loaded.
    #[arg(long, default_value_t = 50)]
    join_rounds: u32,
    /// Scale mode: seconds of the back-pressure flood (0: skip it).
    #[arg(long, default_value_t = 5)]
    flood_s: u64,
    /// Throughput mode: a plaintext run, then an Integrated VS (end-to-end AES-256-GCM) run,
    /// senders as members in both; reports both and the ratio (needs daemons with security on).
    #[arg(long, conflicts_with_all = ["pingpong", "join_latency", "scale_clients"])]
    compare_e2e: bool,
    /// Throughput mode: only the end-to-end encrypted run of `--compare-e2e` (an
    /// `optimized-evs` cluster reports plaintext group messages as undecryptable, so it has no
    /// plaintext run).
    #[arg(long, conflicts_with_all = ["pingpong", "join_latency", "scale_clients", "compare_e2e"])]
    e2e_only: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// How a throughput run's senders take part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Senders {
    /// Not members (open group), plaintext.
    Outside,
    /// Members sending with self-discard, with or without end-to-end encryption.
    Members {
        /// Encrypt with the group key (Integrated VS).
        e2e: bool,
    },
}

/// Why a flood run failed.
#[derive(Debug, thiserror::Error)]
enum FloodError {
    /// A client call failed.
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: &'static str,
        /// The client error.
        source: ClientError,
    },
    /// The run did not finish in time.
    #[error("timed out after {0:?} ({1})")]
    Timeout(Duration, String),
    /// A task ended abnormally.
    #[error("task failed: {0}")]
    Task(String),
    /// End-to-end encryption is impossible.
    #[error("end-to-end encryption: {0}")]
    E2e(String),
}

fn client_err(what: &'static str) -> impl FnOnce(ClientError) -> FloodError {
    move |source| FloodError::Client { what, source }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of samples in nanoseconds.
    fn of(mut ns: Vec<u64>) -> Self {
        if ns.is_empty() {
            return Self::default();
        }
        ns.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: ceil(q·n) − 1, within bounds.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1;
            us(ns.get(i).copied().unwrap_or_default())
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: us(ns.last().copied().unwrap_or_default()),
        }
    }
}

/// Nanoseconds as microseconds with one decimal.
#[allow(clippy::cast_precision_loss)]
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Checked options shared by the modes.
struct Params {
    eps: Vec<Endpoint>,
    group: GroupName,
    service: ClientService,
    timeout: Duration,
}

/// Runs `sgc flood`.
pub fn run(args: &FloodArgs) -> Result<ExitCode, CliError> {
    let eps = args
        .daemon
        .iter()
        .map(|s| {
            s.parse::<Endpoint>()
                .map_err(|e| CliError::Usage(format!("--daemon: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if eps.is_empty() {
        return Err(CliError::Usage("--daemon: give at least one endpoint".into()));
    }
    let service = ClientService::from_name(&args.service)
        .ok_or_else(|| CliError::Usage(format!("--service: unknown service {:?}", args.service)))?;
    let group = GroupName::new(args.group.as_str()).map_err(|e| CliError::Usage(format!("--group: {e}")))?;
    if args.size < HEADER {
        return Err(CliError::Usage(format!("--size must be at least {HEADER}")));
    }
    if args.senders == 0 || args.count == 0 || args.receivers == Some(0) {
        return Err(CliError::Usage(
            "--senders, --count and --receivers must be positive".into(),
        ));
    }
    let p = Params {
        eps,
        group,
        service,
        timeout: Duration::from_secs(args.timeout_s.max(1)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Output(e.to_string()))?;
    let result = rt.block_on(async {
        let work = async {
            if let Some(k) = args.pingpong {
                pingpong(&p, args.size, k.max(1)).await
            } else if let Some(k) = args.join_latency {
                join_latency(&p, k.max(1)).await
            } else if let Some(n) = args.scale_clients {
                scale(&p, args, n.max(1)).await
            } else if args.compare_e2e {
                compare_e2e(&p, args).await
            } else if args.e2e_only {
                throughput(&p, args, Senders::Members { e2e: true }).await
            } else {
                throughput(&p, args, Senders::Outside).await
            }
        };
        tokio::time::timeout(p.timeout, work)
            .await
            .unwrap_or_else(|_| Err(FloodError::Timeout(p.timeout, "the whole run".into())))
    });
    // Tasks still blocked on a socket must not hold the process.
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(v) => {
            if args.json {
                out!("{v}");
            } else {
                out!("{}", human(&v));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sgc flood: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One readable line of a result.
fn human(v: &serde_json::Value) -> String {
    let lat = |k: &str| {
        let l = &v[k];
        format!(
            "p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
            l["p50"], l["p90"], l["p99"], l["max"]
        )
    };
    match v["mode"].as_str() {
        Some("throughput") => format!(
            "{} senders × {} msgs of {} B ({}) → {} receivers: {:.0} msgs/s, {:.2} MB/s in {:.3} s; latency {}",
            v["senders"],
            v["count"],
            v["size"],
            v["service"].as_str().unwrap_or_default(),
            v["receivers"],
            v["messages_per_s"].as_f64().unwrap_or_default(),
            v["mb_per_s"].as_f64().unwrap_or_default(),
            v["elapsed_s"].as_f64().unwrap_or_default(),
            lat("latency_us")
        ),
        Some("e2e_compare") => format!(
            "{} B: plaintext {:.0} msgs/s, Integrated VS (AES-256-GCM) {:.0} msgs/s, ratio {:.3}",
            v["size"],
            v["plain"]["messages_per_s"].as_f64().unwrap_or_default(),
            v["integrated_vs"]["messages_per_s"].as_f64().unwrap_or_default(),
            v["ratio"].as_f64().unwrap_or_default()
        ),
        Some("pingpong") => format!("{} ping-pong rounds: round trip {}", v["rounds"], lat("rtt_us")),
        Some("join_latency") => format!(
            "{} join rounds: join {}; leave {}",
            v["rounds"],
            lat("join_us"),
            lat("leave_us")
        ),
        _ => v.to_string(),
    }
}

/// The payload header: send time, sender index, sequence number.
fn stamp(body: &mut [u8], t_ns: u64, sender: u32, seq: u32) {
    if let Some(h) = body.get_mut(..HEADER) {
        h[..8].copy_from_slice(&t_ns.to_le_bytes());
        h[8..12].copy_from_slice(&sender.to_le_bytes());
        h[12..16].copy_from_slice(&seq.to_le_bytes());
    }
}

fn read_stamp(body: &[u8]) -> Option<(u64, u32, u32)> {
    let t = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let s = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let q = u32::from_le_bytes(body.get(12..16)?.try_into().ok()?);
    Some((t, s, q))
}

/// Wait for a membership of `group` that holds every name of `names`.
async fn await_members(
    c: &mut Client,
    group: &GroupName,
    names: &BTreeSet<PrivateName>,
) -> Result<(), FloodError> {
    loop {
        let ev = c.recv().await.map_err(client_err("waiting for the membership"))?;
        if let ClientEvent::Membership(m) = ev
            && m.group == *group
            && names.iter().all(|n| m.members.contains(n))
        {
            return Ok(());
        }
    }
}

/// What a receiver saw.
struct Received {
    client: Client,
    got: u64,
    order_errors: u64,
    undecryptable: u64,
    lat_ns: Vec<u64>,
    done: Instant,
}

/// The end-to-end key of a run and the group its context names.
type RunKey = Option<(Arc<E2eKey>, GroupName)>;

async fn receive(
    mut client: Client,
    want: u64,
    senders: u32,
    base: Instant,
    key: RunKey,
) -> Result<Received, FloodError> {
    let mut next = vec![0u32; usize::try_from(senders).unwrap_or(0)];
    let mut lat_ns = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    let (mut got, mut order_errors, mut undecryptable) = (0u64, 0u64, 0u64);
    while got < want {
        // None: not a flood message; Some(None): a flood message that does not open
        let stamp = client
            .recv_with(|ev| match ev {
                EventRef::Data(d) if d.mess_type == FLOOD_TYPE => Some(match &key {
                    None => read_stamp(d.body),
                    Some((k, g)) => {
                        let sender = format!("#{}#{}", d.sender.user, d.sender.daemon);
                        let ctx = E2eContext {
                            group: g.as_str(),
                            sender: &sender,
                            mess_type: FLOOD_TYPE,
                        };
                        k.open(&ctx, d.body).ok().and_then(|pt| read_stamp(&pt))
                    }
                }),
                EventRef::Data(_) | EventRef::Other(_) => None,
            })
            .await
            .map_err(client_err("receiving"))?;
        let Some(stamp) = stamp else { continue };
        let Some((t, s, q)) = stamp else {
            got += 1;
            undecryptable += 1;
            continue;
        };
        lat_ns.push(nanos(base.elapsed()).saturating_sub(t));
        got += 1;
        match next.get_mut(usize::try_from(s).unwrap_or(usize::MAX)) {
            Some(n) if *n == q => *n += 1,
            Some(n) => {
                order_errors += 1;
                *n = q.saturating_add(1);
            }
            None => order_errors += 1,
        }
    }
    Ok(Received {
        client,
        got,
        order_errors,
        undecryptable,
        lat_ns,
        done: Instant::now(),
    })
}

/// What one sender sends.
struct SendPlan {
    group: GroupName,
    service: ClientService,
    size: usize,
    count: u32,
    idx: u32,
    senders: Senders,
    key: RunKey,
}

async fn send_all(client: Client, plan: SendPlan, base: Instant) -> Result<Client, FloodError> {
    let targets = [Target::Group(plan.group)];
    let me = client.private_name().to_string();
    let mut body = vec![0u8; plan.size];
    for seq in 0..plan.count {
        stamp(&mut body, nanos(base.elapsed()), plan.idx, seq);
        let sealed = match &plan.key {
            Some((k, g)) => {
                let ctx = E2eContext {
                    group: g.as_str(),
                    sender: &me,
                    mess_type: FLOOD_TYPE,
                };
                Some(
                    k.seal(&ctx, &body)
                        .map_err(|e: E2eError| FloodError::E2e(e.to_string()))?,
                )
            }
            None => None,
        };
        let msg = sealed.as_deref().unwrap_or(&body);
        let sent = if plan.senders == Senders::Outside {
            client.multicast(&targets, plan.service, FLOOD_TYPE, msg).await
        } else {
            client
                .multicast_self_discard(&targets, plan.service, FLOOD_TYPE, msg)
                .await
        };
        sent.map_err(client_err("sending"))?;
    }
    client.flush().await.map_err(client_err("flushing"))?;
    Ok(client)
}

async fn join_task<T: 'static>(set: &mut JoinSet<Result<T, FloodError>>) -> Option<Result<T, FloodError>> {
    set.join_next()
        .await
        .map(|r| r.map_err(|e| FloodError::Task(e.to_string())).and_then(|x| x))
}

/// The end-to-end key of a client's current view of `group` (the one holding every member).
fn run_key(c: &Client, group: &GroupName, e2e: bool) -> Result<RunKey, FloodError> {
    if !e2e {
        return Ok(None);
    }
    let k = c.group_key(group).ok_or_else(|| {
        FloodError::E2e("the daemon handed no group key (security on, Unix or TLS endpoint?)".into())
    })?;
    let key = E2eKey::new(k.key_id, &k.key).map_err(|e| FloodError::E2e(e.to_string()))?;
    Ok(Some((Arc::new(key), group.clone())))
}

/// A plaintext and an end-to-end encrypted throughput run, in this order, on two groups.
async fn compare_e2e(p: &Params, args: &FloodArgs) -> Result<serde_json::Value, FloodError> {
    let on = |suffix: &str| -> Result<Params, FloodError> {
        let name = format!("{}-{suffix}", p.group.as_str());
        Ok(Params {
            eps: p.eps.clone(),
            group: GroupName::new(name.as_str()).map_err(|e| FloodError::Task(e.to_string()))?,
            service: p.service,
            timeout: p.timeout,
        })
    };
    let plain = throughput(&on("p")?, args, Senders::Members { e2e: false }).await?;
    let e2e = throughput(&on("e")?, args, Senders::Members { e2e: true }).await?;
    let ratio = e2e["messages_per_s"].as_f64().unwrap_or_default()
        / plain["messages_per_s"].as_f64().unwrap_or(1.0).max(1e-9);
    Ok(json!({
        "mode": "e2e_compare",
        "size": args.size,
        "plain": plain,
        "integrated_vs": e2e,
        "ratio": (ratio * 1000.0).round() / 1000.0,
    }))
}

async fn throughput(p: &Params, args: &FloodArgs, mode: Senders) -> Result<serde_json::Value, FloodError> {
    let n_rx = args
        .receivers
        .unwrap_or_else(|| u32::try_from(p.eps.len()).unwrap_or(u32::MAX));
    let n_tx = args.senders;
    let want = u64::from(n_tx) * u64::from(args.count);
    // Receivers join first and wait until the group holds all of them.
    let mut receivers = Vec::new();
    for (i, ep) in p.eps.iter().cycle().take(n_rx as usize).enumerate() {
        let c = Client::connect(ep, None, true)
            .await
            .map_err(client_err("connecting a receiver"))?;
        c.join(&p.group).await.map_err(client_err("joining"))?;
        receivers.push((i, c));
    }
    let members = mode != Senders::Outside;
    let mut senders = Vec::new();
    for ep in p.eps.iter().cycle().take(n_tx as usize) {
        let c = Client::connect(ep, None, members)
            .await
            .map_err(client_err("connecting a sender"))?;
        if members {
            c.join(&p.group).await.map_err(client_err("joining"))?;
        }
        senders.push(c);
    }
    let mut names: BTreeSet<PrivateName> = receivers.iter().map(|(_, c)| c.private_name().clone()).collect();
    if members {
        names.extend(senders.iter().map(|c| c.private_name().clone()));
    }
    for (_, c) in &mut receivers {
        await_members(c, &p.group, &names).await?;
    }
    let e2e = mode == Senders::Members { e2e: true };
    if members {
        for c in &mut senders {
            await_members(c, &p.group, &names).await?;
        }
    }
    let base = Instant::now();
    let mut rx_set = JoinSet::new();
    for (_, c) in receivers {
        let key = run_key(&c, &p.group, e2e)?;
        rx_set.spawn(receive(c, want, n_tx, base, key));
    }
    let mut tx_set = JoinSet::new();
    for (idx, c) in (0u32..).zip(senders) {
        let plan = SendPlan {
            group: p.group.clone(),
            service: p.service,
            size: args.size,
            count: args.count,
            idx,
            senders: mode,
            key: run_key(&c, &p.group, e2e)?,
        };
        tx_set.spawn(send_all(c, plan, base));
    }
    let mut done_senders = Vec::new();
    while let Some(r) = join_task(&mut tx_set).await {
        done_senders.push(r?);
    }
    let (mut delivered, mut order_errors, mut undecryptable, mut lat, mut last) =
        (0u64, 0u64, 0u64, Vec::new(), base);
    let mut rx_clients = Vec::new();
    while let Some(r) = join_task(&mut rx_set).await {
        let r = r?;
        delivered += r.got;
        order_errors += r.order_errors;
        undecryptable += r.undecryptable;
        lat.extend(r.lat_ns);
        last = last.max(r.done);
        rx_clients.push(r.client);
    }
    let elapsed = last.duration_since(base).as_secs_f64().max(1e-9);
    for c in done_senders.into_iter().chain(rx_clients) {
        let _ = c.disconnect().await;
    }
    #[allow(clippy::cast_precision_loss)]
    let mps = want as f64 / elapsed;
    #[allow(clippy::cast_precision_loss)]
    let mbps = mps * args.size as f64 / 1e6;
    let mut out = json!({
        "mode": "throughput",
        "senders": n_tx,
        "receivers": n_rx,
        "size": args.size,
        "count": args.count,
        "service": p.service.name(),
        "messages_per_s": (mps * 10.0).round() / 10.0,
        "mb_per_s": (mbps * 100.0).round() / 100.0,
        "latency_us": Percentiles::of(lat),
        "elapsed_s": (elapsed * 1e4).round() / 1e4,
        "delivered": delivered,
        "order_errors": order_errors,
    });
    if let (true, serde_json::Value::Object(o)) = (e2e, &mut out) {
        o.insert("undecryptable".to_owned(), json!(undecryptable));
    }
    Ok(out)
}

async fn pingpong(p: &Params, size: usize, k: u32) -> Result<serde_json::Value, FloodError> {
    let ep = p
        .eps
        .first()
        .ok_or_else(|| FloodError::Task("no endpoint".into()))?;
    let mut c = Client::connect(ep, None, true)
        .await
        .map_err(client_err("connecting"))?;
    c.join(&p.group).await.map_err(client_err("joining"))?;
    let me: BTreeSet<PrivateName> = [c.private_name().clone()].into();
    await_members(&mut c, &p.group, &me).await?;
    let targets = [Target::Group(p.group.clone())];
    let mut body = vec![0u8; size];
    let base = Instant::now();
    let mut rtt = Vec::with_capacity(k as usize);
    for seq in 0..k {
        stamp(&mut body, nanos(base.elapsed()), 0, seq);
        let t0 = Instant::now();
        c.multicast(&targets, p.service, FLOOD_TYPE, &body)
            .await
            .map_err(client_err("sending"))?;
        loop {
            let mine = c
                .recv_with(|ev| match ev {
                    EventRef::Data(d) if d.mess_type == FLOOD_TYPE => {
                        read_stamp(d.body).is_some_and(|(_, s, q)| s == 0 && q == seq)
                    }
                    EventRef::Data(_) | EventRef::Other(_) => false,
                })
                .await
                .map_err(client_err("receiving"))?;
            if mine {
                break;
            }
        }
        rtt.push(nanos(t0.elapsed()));
    }
    let _ = c.disconnect().await;
    Ok(json!({
        "mode": "pingpong",
        "service": p.service.name(),
        "size": size,
        "rounds": k,
        "rtt_us": Percentiles::of(rtt),
    }))
}

/// K rounds of join → own membership, leave → self-leave on one connection.
async fn join_rounds(c: &mut Client, group: &GroupName, k: u32) -> Result<(Vec<u64>, Vec<u64>), FloodError> {
    let me = c.private_name().clone();
    let (mut join, mut leave) = (Vec::new(), Vec::new());
    for _ in 0..k {
        let t0 = Instant::now();
        c.join(group).await.map_err(client_err("joining"))?;
        loop {
            match c.recv().await.map_err(client_err("waiting for the membership"))? {
                ClientEvent::Membership(m) if m.group == *group && m.members.contains(&me) => break,
                _ => {}
            }
        }
        join.push(nanos(t0.elapsed()));
        let t1 = Instant::now();
        c.leave(group).await.map_err(client_err("leaving"))?;
        loop {
            match c.recv().await.map_err(client_err("waiting for the self-leave"))? {
                ClientEvent::SelfLeave(g) if g == *group => break,
                _ => {}
            }
        }
        leave.push(nanos(t1.elapsed()));
    }
    Ok((join, leave))
}

async fn join_latency(p: &Params, k: u32) -> Result<serde_json::Value, FloodError> {
    let ep = p
        .eps
        .first()
        .ok_or_else(|| FloodError::Task("no endpoint".into()))?;
    let mut c = Client::connect(ep, None, true)
        .await
        .map_err(client_err("connecting"))?;
    let (join, leave) = join_rounds(&mut c, &p.group, k).await?;
    let _ = c.disconnect().await;
    Ok(json!({
        "mode": "join_latency",
        "rounds": k,
        "join_us": Percentiles::of(join),
        "leave_us": Percentiles::of(leave),
    }))
}

/// `VmRSS` of a process in KiB, if readable.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn scale(p: &Params, args: &FloodArgs, n: u32) -> Result<serde_json::Value, FloodError> {
    let ep = p
        .eps
        .first()
        .ok_or_else(|| FloodError::Task("no endpoint".into()))?;
    let rounds = args.join_rounds.max(1);
    let mut probe = Client::connect(ep, None, true)
        .await
        .map_err(client_err("connecting the probe"))?;
    let probe_group = GroupName::new(format!("{}-probe", p.group))
        .map_err(|e| FloodError::Task(format!("group name: {e}")))?;
    let (idle_join, _) = join_rounds(&mut probe, &probe_group, rounds).await?;
    let rss_idle = rss_kib(args.daemon_pid);
    // N connections, one group each; a task per connection drains its events.
    let joined = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(tokio::sync::Notify::new());
    let t_connect = Instant::now();
    let mut conns = JoinSet::new();
    let mut senders = Vec::new();
    for i in 0..n {
        let c = Client::connect(ep, None, true)
            .await
            .map_err(client_err("connecting a scale client"))?;
        let g = GroupName::new(format!("{}-{i}", p.group))
            .map_err(|e| FloodError::Task(format!("group name: {e}")))?;
        c.join(&g).await.map_err(client_err("joining"))?;
        let (tx, mut rx) = c.split();
        senders.push(tx);
        let (joined, seen) = (Arc::clone(&joined), Arc::clone(&seen));
        conns.spawn(async move {
            let mut counted = false;
            loop {
                match rx.recv().await {
                    Ok(ClientEvent::Membership(m)) if m.group == g && !counted => {
                        counted = true;
                        joined.fetch_add(1, Ordering::Relaxed);
                        seen.notify_one();
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    }
    while joined.load(Ordering::Relaxed) < u64::from(n) {
        let _ = tokio::time::timeout(Duration::from_millis(100), seen.notified()).await;
    }
    let setup_s = t_connect.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_loaded = rss_kib(args.daemon_pid);
    let (loaded_join, _) = join_rounds(&mut probe, &probe_group, rounds).await?;
    let backpressure = if args.flood_s > 0 {
        Some(flood_phase(ep, p, args).await?)
    } else {
        None
    };
    let rss_after = rss_kib(args.daemon_pid);
    for s in &senders {
        let _ = s.disconnect().await;
    }
    conns.abort_all();
    let _ = probe.disconnect().await;
    let idle = Percentiles::of(idle_join);
    let loaded = Percentiles::of(loaded_join);
    let per_client = match (rss_idle, rss_loaded) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / f64::from(n)),
        _ => None,
    };
    Ok(json!({
        "mode": "scale",
        "clients": n,
        "groups": n,
        "setup_s": (setup_s * 1000.0).round() / 1000.0,
        "rss_idle_kib": rss_idle,
        "rss_loaded_kib": rss_loaded,
        "rss_per_client_kib": per_client.map(|x| (x * 10.0).round() / 10.0),
        "rss_after_flood_kib": rss_after,
        "join_idle_us": idle,
        "join_loaded_us": loaded,
        "join_p50_ratio": if idle.p50 > 0.0 { ((loaded.p50 / idle.p50) * 100.0).round() / 100.0 } else { 0.0 },
        "backpressure": backpressure,
    }))
}

/// One connection sends as fast as it can for `--flood-s` seconds to a group nobody joined;
/// call durations show back-pressure, the daemon's memory is sampled every 100 ms.
async fn flood_phase(ep: &Endpoint, p: &Params, args: &FloodArgs) -> Result<serde_json::Value, FloodError> {
    let c = Client::connect(ep, None, false)
        .await
        .map_err(client_err("connecting the flooder"))?;
    let g = GroupName::new(format!("{}-bp", p.group))
        .map_err(|e| FloodError::Task(format!("group name: {e}")))?;
    let targets = [Target::Group(g)];
    let body = vec![0u8; args.size];
    let rss_before = rss_kib(args.daemon_pid);
    let pid = args.daemon_pid;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut max = 0u64;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            max
        })
    };
    let dur = Duration::from_secs(args.flood_s);
    let t0 = Instant::now();
    let (mut sent, mut blocked_calls, mut blocked) = (0u64, 0u64, Duration::ZERO);
    let mut max_call = Duration::ZERO;
    while t0.elapsed() < dur {
        let t = Instant::now();
        c.multicast(&targets, p.service, FLOOD_TYPE, &body)
            .await
            .map_err(client_err("flooding"))?;
        let d = t.elapsed();
        sent += 1;
        max_call = max_call.max(d);
        if d > BLOCKED {
            blocked_calls += 1;
            blocked += d;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let rss_max = sampler.await.map_err(|e| FloodError::Task(e.to_string()))?;
    // Let the ring drain what was accepted before measuring the memory again.
    c.flush().await.map_err(client_err("flushing"))?;
    let _ = c.disconnect().await;
    #[allow(clippy::cast_precision_loss)]
    let rate = sent as f64 / secs;
    Ok(json!({
        "seconds": (secs * 1000.0).round() / 1000.0,
        "size": args.size,
        "messages_sent": sent,
        "accepted_per_s": rate.round(),
        "blocked_calls": blocked_calls,
        "blocked_s": (blocked.as_secs_f64() * 1000.0).round() / 1000.0,
        "max_call_ms": (max_call.as_secs_f64() * 1e5).round() / 100.0,
        "rss_before_kib": rss_before,
        "rss_max_kib": rss_max,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let p = Percentiles::of((1..=100).map(|x| x * 1000).collect());
        assert!((p.p50 - 50.0).abs() < 1e-9, "{p:?}");
        assert!((p.p90 - 90.0).abs() < 1e-9, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 1e-9, "{p:?}");
        assert!((p.max - 100.0).abs() < 1e-9, "{p:?}");
        let one = Percentiles::of(vec![1500]);
        assert!((one.p50 - 1.5).abs() < 1e-9 && (one.max - 1.5).abs() < 1e-9);
        assert!(Percentiles::of(Vec::new()).max.abs() < 1e-9);
    }

    #[test]
    fn stamp_round_trips() {
        let mut b = vec![0u8; 20];
        stamp(&mut b, 123_456_789, 7, 42);
        assert_eq!(read_stamp(&b), Some((123_456_789, 7, 42)));
        assert_eq!(read_stamp(&b[..10]), None);
    }
}
