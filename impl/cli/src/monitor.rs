//! `sgc monitor`: watch running daemons through their admin endpoints, like Spread's `spmonitor`.
//!
//! Every `--interval-ms` it asks each daemon for `status` and `groups` and prints, per daemon, the
//! ring (id, members), the membership phase, messages delivered and the delivery rate since the
//! previous poll, and the client side (sessions, groups, group-layer phase, ring backlog,
//! whether client input is blocked). With `--json` each poll is one object:
//!
//! ```json
//! {"poll": 1, "t_s": 0.0, "daemons": [{"admin": "127.0.0.1:20001", "daemon": "d0",
//!   "phase": "Operational", "ring": {"id": "R2@0.1", "members": ["d0","d1","d2"]},
//!   "delivered": 120, "delivered_per_s": null, "pending": 0,
//!   "clients": {"sessions": 3, "groups": 1, "phase": "Op", "backlog": 0, "blocked": false},
//!   "groups": 1, "group_members": 3}]}
//! ```
//!
//! `delivered_per_s` is `null` on the first poll. A daemon that does not answer is
//! `{"admin": ..., "error": "..."}` and the monitor goes on. `--count K` stops after K polls
//! (default: until interrupted).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use sgc_daemon::admin::{self, Request, Status};

use crate::CliError;

/// Options of `sgc monitor`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Admin endpoints of the daemons (`daemon.admin`), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    daemon: Vec<SocketAddr>,
    /// Milliseconds between polls.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Stop after this many polls (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 2)]
    timeout: u64,
    /// Print one JSON object per poll.
    #[arg(long)]
    json: bool,
}

/// What the previous poll saw of one daemon (for rates).
#[derive(Clone, Copy)]
struct Prev {
    at: Instant,
    delivered: u64,
}

/// Runs `sgc monitor`.
pub fn run(args: &MonitorArgs) -> Result<ExitCode, CliError> {
    if args.interval_ms == 0 {
        return Err(CliError::Usage("--interval-ms must be positive".into()));
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    let interval = Duration::from_millis(args.interval_ms);
    let start = Instant::now();
    let mut prev: Vec<Option<Prev>> = vec![None; args.daemon.len()];
    let mut poll = 0u64;
    loop {
        poll += 1;
        let began = Instant::now();
        let mut rows = Vec::new();
        for (addr, prev) in args.daemon.iter().zip(prev.iter_mut()) {
            rows.push(one(*addr, timeout, prev));
        }
        if args.json {
            let t = (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
            out!("{}", json!({"poll": poll, "t_s": t, "daemons": rows}));
        } else {
            for r in &rows {
                out!("{}", line(r));
            }
        }
        if args.count.is_some_and(|k| poll >= k) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(interval.saturating_sub(began.elapsed()));
    }
}

/// Poll one daemon; update its previous sample.
fn one(addr: SocketAddr, timeout: Duration, prev: &mut Option<Prev>) -> Value {
    let status = admin::call(addr, &Request::Status, timeout)
        .and_then(|v| serde_json::from_value::<Status>(v).map_err(|e| bad(addr, &e)));
    let s = match status {
        Ok(s) => s,
        Err(e) => {
            *prev = None;
            return json!({"admin": addr.to_string(), "error": e.to_string()});
        }
    };
    let now = Instant::now();
    let rate = prev.map(|p| {
        let dt = now.duration_since(p.at).as_secs_f64().max(1e-6);
        #[allow(clippy::cast_precision_loss)]
        let r = s.delivered.saturating_sub(p.delivered) as f64 / dt;
        (r * 10.0).round() / 10.0
    });
    *prev = Some(Prev {
        at: now,
        delivered: s.delivered,
    });
    let (groups, members) = match admin::call(addr, &Request::Groups, timeout) {
        Ok(v) => {
            let list = v["groups"].as_array().cloned().unwrap_or_default();
            let members: usize = list
                .iter()
                .map(|g| g["members"].as_array().map_or(0, Vec::len))
                .sum();
            (Some(list.len()), Some(members))
        }
        Err(_) => (None, None),
    };
    json!({
        "admin": addr.to_string(),
        "daemon": s.daemon,
        "phase": s.phase,
        "ring": {"id": s.ring.id, "members": s.ring.members},
        "delivered": s.delivered,
        "delivered_per_s": rate,
        "pending": s.pending,
        "clients": {
            "sessions": s.clients.sessions,
            "groups": s.clients.groups,
            "phase": s.clients.phase,
            "backlog": s.clients.backlog,
            "blocked": s.clients.blocked,
        },
        "groups": groups,
        "group_members": members,
    })
}

fn bad(addr: SocketAddr, e: &serde_json::Error) -> admin::ClientError {
    admin::ClientError::BadAnswer {
        addr,
        message: e.to_string(),
    }
}

/// One readable line of a daemon's row.
fn line(r: &Value) -> String {
    if let Some(e) = r["error"].as_str() {
        return format!("{}: unreachable: {e}", r["admin"].as_str().unwrap_or_default());
    }
    let c = &r["clients"];
    let members: Vec<&str> = r["ring"]["members"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rate = r["delivered_per_s"]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"));
    format!(
        "{} {} ring {} [{}] delivered {} ({}/s) | clients {} groups {} ({} members) phase {} backlog {}{}",
        r["daemon"].as_str().unwrap_or_default(),
        r["phase"].as_str().unwrap_or_default(),
        r["ring"]["id"].as_str().unwrap_or_default(),
        members.join(","),
        r["delivered"],
        rate,
        c["sessions"],
        c["groups"],
        r["group_members"],
        c["phase"].as_str().unwrap_or_default(),
        c["backlog"],
        if c["blocked"].as_bool() == Some(true) {
            " BLOCKED"
        } else {
            ""
        },
    )
}
