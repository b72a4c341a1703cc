//! `sgc`: the command line of the sgc secure group communication system.
//!
//! Subcommands so far:
//! - `sgc check tgdh [--members N] [--mutant NAME] [--list-mutants] [--json]`: model-check TGDH;
//! - `sgc check evs [--mutant NAME] [--list-mutants] [--json]`: model-check the daemon ring (EVS);
//! - `sgc check groups [--mutant NAME] [--list-mutants] [--json]`: model-check the group layer;
//! - `sgc check vs [--mutant NAME] [--list-mutants] [--json]`: model-check the flush layer (VS);
//! - `sgc check keys [--daemons 2|3] [--mutant NAME] [--list-mutants] [--json]`: model-check the key engines;
//! - `sgc bench tgdh [--group G] [--sizes 2,4,...] [--json]`: TGDH costs per event and size;
//! - `sgc bench ring [--daemons 3] [--sizes 100,1000,10000] [--count N] [--senders S] [--json]`:
//!   throughput, CPU per message, idle token rotation and failover of a local ring of daemons;
//! - `sgc bench seal [--suite S] [--size B] [--json]`: Three-Step packet protection cost per suite;
//! - `sgc demo`: a TGDH walk-through with real cryptography (join, leave, partition, merge,
//!   refresh), printed as a timeline;
//! - `sgc daemon --config FILE`: run one daemon (`--example-config` prints a configuration);
//! - `sgc cluster up --daemons N [--dir DIR] [--json]` / `sgc cluster down --dir DIR`: a local
//!   cluster on loopback;
//! - `sgc admin --daemon ADDR status|log|partition|heal|send|shutdown`: the admin endpoint;
//! - `sgc conformance replay DIR [--json]`: replay checker traces into the machines;
//! - `sgc ca init --dir DIR` / `sgc ca issue --dir DIR --daemon NAME | --client NAME`: the
//!   deployment CA and its certificates (`docs/security.md`).
//! - `sgc flood --daemon ADDR[,..] ...`: end-to-end client throughput, latency, scale;
//! - `sgc monitor --daemon ADMIN[,..] [--count K] [--json]`: poll daemons' status and groups.
//!
//! Exit status: 0 on success; 1 when a checked property fails; 2 on bad usage.

/// `println!` that ends the process quietly when stdout is closed (`sgc ... | head`), instead
/// of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod admin_cmd;
mod bench_ring;
mod bench_seal;
mod bench_tgdh;
mod ca_cmd;
mod check_cmd;
mod cluster;
mod conformance_cmd;
mod daemon_cmd;
mod demo;
mod demo_clients;
mod flood;
mod fuzz;
mod monitor;
mod user_cmd;
mod user_script;
mod user_vs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sgc: secure group communication with formally checked protocols.
#[derive(Parser, Debug)]
#[command(name = "sgc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Model-check a protocol and report every property.
    Check {
        #[command(subcommand)]
        model: check_cmd::CheckModel,
    },
    /// Run a benchmark and print its figures.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Walk through TGDH with real cryptography: members join, leave, split and merge.
    Demo(demo::DemoArgs),
    /// Run one daemon in the foreground.
    Daemon(daemon_cmd::DaemonArgs),
    /// Start or stop a local cluster of daemons on loopback.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCommand,
    },
    /// Query or steer a running daemon through its admin endpoint.
    Admin(admin_cmd::AdminArgs),
    /// An interactive, scriptable client: join, leave, send, print events.
    User(user_cmd::UserArgs),
    /// The deployment certificate authority: create it, issue daemon and client certificates.
    Ca {
        #[command(subcommand)]
        cmd: ca_cmd::CaCommand,
    },
    /// Replay checker traces and compare every observation.
    Conformance {
        #[command(subcommand)]
        cmd: conformance_cmd::ConformanceCommand,
    },
    /// Flood daemons through clients: throughput, latency, ping-pong, join latency, scale.
    Flood(flood::FloodArgs),
    /// Poll daemons' admin status and groups, one line (or JSON object) per interval.
    Monitor(monitor::MonitorArgs),
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// TGDH costs (rounds, messages, exponentiations, signatures, time) per event and size.
    Tgdh(bench_tgdh::BenchArgs),
    /// Ring throughput, CPU per message, token rotation and failover of a local cluster.
    Ring(bench_ring::BenchArgs),
    /// Three-Step packet protection: seal and open cost per suite, against plain encode/decode.
    Seal(bench_seal::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Daemon(_)) {
        "info"
    } else {
        "error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Check { model } => check_cmd::run(model),
        Command::Bench {
            what: BenchWhat::Tgdh(args),
        } => bench_tgdh::run(&args),
        Command::Bench {
            what: BenchWhat::Ring(args),
        } => bench_ring::run(&args),
        Command::Bench {
            what: BenchWhat::Seal(args),
        } => bench_seal::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Daemon(args) => daemon_cmd::run(&args),
        Command::Cluster { cmd } => cluster::run(&cmd),
        Command::Admin(args) => admin_cmd::run(&args),
        Command::User(args) => user_cmd::run(&args),
        Command::Ca { cmd } => ca_cmd::run(&cmd),
        Command::Conformance { cmd } => conformance_cmd::run(&cmd),
        Command::Flood(args) => flood::run(&args),
        Command::Monitor(args) => monitor::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sgc: {e}");
            ExitCode::from(2)
        }
    }
}

/// Errors of the command line (bad usage or a failed run).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag's value is not acceptable.
    #[error("{0}")]
    Usage(String),
    /// Output could not be written or encoded.
    #[error("output: {0}")]
    Output(String),
    /// A cryptographic provider failed (a bug or a bad configuration).
    #[error("crypto: {0}")]
    Crypto(String),
}
