//! `sgc daemon --config FILE`: run one daemon in the foreground (logs on stderr with `tracing`,
//! `RUST_LOG` filter, `info` by default); `sgc daemon --example-config` prints the embedded
//! default configuration (daemon `d0` of a 3-daemon loopback cluster).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sgc_daemon::DaemonConfig;

use crate::CliError;

/// Options of `sgc daemon`.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// The daemon's TOML configuration (see docs/daemon.md).
    #[arg(long, required_unless_present = "example_config")]
    config: Option<PathBuf>,
    /// Print an example configuration and exit.
    #[arg(long)]
    example_config: bool,
}

/// Runs `sgc daemon`. Exit status 2 on a bad configuration, 1 if the daemon fails.
pub fn run(args: &DaemonArgs) -> Result<ExitCode, CliError> {
    if args.example_config {
        print!("{}", DaemonConfig::local("sgc-local", 3, 0, 7100).to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = &args.config else {
        return Err(CliError::Usage("--config FILE is required".into()));
    };
    let cfg = DaemonConfig::load(path).map_err(|e| CliError::Usage(e.to_string()))?;
    match sgc_daemon::run_blocking(cfg) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("sgc daemon: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
