//! `sgc admin --daemon ADDR <command>`: one request to a daemon's admin endpoint (JSON lines over
//! TCP on loopback, see `sgc_daemon::admin`). `partition`, `heal` and `send` are TESTING
//! facilities: they inject packet loss or load inside the daemon.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use sgc_daemon::admin::{self, Request, SendService};

use crate::CliError;

/// Options of `sgc admin`.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The daemon's admin address (`daemon.admin` in its config).
    #[arg(long)]
    daemon: SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    #[command(subcommand)]
    command: AdminCommand,
}

/// Admin commands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Name, phase, ring id and members, delivered count.
    Status {
        /// Print the JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The light-weight groups this daemon knows: name, view id, members (JSON).
    Groups,
    /// The last delivered message ids, oldest first (JSON).
    Log {
        /// How many (default: all kept).
        #[arg(long)]
        last: Option<usize>,
    },
    /// TESTING: drop every packet from and to these daemons (comma-separated names).
    Partition {
        /// Daemon names, e.g. `d1,d2`.
        #[arg(long, value_delimiter = ',', required = true)]
        from: Vec<String>,
    },
    /// TESTING: stop dropping packets.
    Heal,
    /// TESTING: submit N messages of B bytes from this daemon.
    Send {
        /// How many messages.
        #[arg(long)]
        count: u32,
        /// Payload bytes each.
        #[arg(long, default_value_t = 16)]
        size: usize,
        /// Use the Safe service instead of Agreed.
        #[arg(long)]
        safe: bool,
    },
    /// Stop the daemon.
    Shutdown,
}

/// Runs `sgc admin`. Exit status 1 when the daemon cannot be reached or refuses.
pub fn run(args: &AdminArgs) -> Result<ExitCode, CliError> {
    let (req, human_status) = match &args.command {
        AdminCommand::Status { json } => (Request::Status, !json),
        AdminCommand::Groups => (Request::Groups, false),
        AdminCommand::Log { last } => (Request::Log { last: *last }, false),
        AdminCommand::Partition { from } => (Request::Partition { from: from.clone() }, false),
        AdminCommand::Heal => (Request::Heal, false),
        AdminCommand::Send { count, size, safe } => (
            Request::Send {
                count: *count,
                size: *size,
                service: if *safe {
                    SendService::Safe
                } else {
                    SendService::Agreed
                },
            },
            false,
        ),
        AdminCommand::Shutdown => (Request::Shutdown, false),
    };
    let result = match admin::call(args.daemon, &req, Duration::from_secs(args.timeout)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sgc admin: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if human_status {
        let s: admin::Status = serde_json::from_value(result).map_err(|e| CliError::Output(e.to_string()))?;
        println!(
            "{} ({}.{}): {} ring {} members [{}], delivered {}, {} client sessions, {} groups",
            s.daemon,
            s.node,
            s.incarnation,
            s.phase,
            s.ring.id,
            s.ring.members.join(","),
            s.delivered,
            s.clients.sessions,
            s.clients.groups
        );
        if let Some(k) = &s.keys {
            println!(
                "  servers' key: {} epoch {}.{} id {} ({} agreements, {}){}",
                k.tgdh_group,
                k.epoch_view.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                k.epoch_refresh.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                k.key_id.as_deref().unwrap_or("-"),
                k.agreements,
                k.group_key_mac,
                if k.holding { ", holding client events" } else { "" }
            );
        }
    } else {
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| CliError::Output(e.to_string()))?
        );
    }
    Ok(ExitCode::SUCCESS)
}
