//! `sgc ca init|issue`: the deployment certificate authority (`docs/security.md`).
//!
//! - `sgc ca init --dir DIR [--name CN]`: a P-256 key pair (`DIR/ca.key`, mode 0600) and a
//!   self-signed CA certificate (`DIR/ca.crt`);
//! - `sgc ca issue --dir DIR --daemon NAME | --client NAME [--san HOST_OR_IP]...`: a key pair and
//!   a certificate signed by the CA (CN = SAN = NAME, plus the `--san` values), written with a
//!   copy of the CA certificate to the identity directory `DIR/daemons/NAME/` or
//!   `DIR/clients/NAME/` (`cert.pem`, `key.pem` 0600, `ca.pem`).
//!
//! Existing files are never overwritten. `--json` prints the written paths as one object.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use sgc_crypto::pki::{self, Role};

use crate::CliError;

/// `sgc ca` subcommands.
#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a deployment CA: key pair and self-signed certificate.
    Init(InitArgs),
    /// Issue a daemon's or a client's key pair and certificate, signed by the CA.
    Issue(IssueArgs),
}

/// Options of `sgc ca init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The CA directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// The CA certificate's common name.
    #[arg(long, default_value = "sgc deployment CA")]
    name: String,
    /// Print the written paths as JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `sgc ca issue`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["daemon", "client"])))]
pub struct IssueArgs {
    /// The CA directory (made by `sgc ca init`).
    #[arg(long)]
    dir: PathBuf,
    /// Issue a daemon certificate (server and client authentication) for NAME.
    #[arg(long, value_name = "NAME")]
    daemon: Option<String>,
    /// Issue a client certificate for NAME (the client's identity in the access policy).
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Extra subject alternative names (DNS names or IP addresses), e.g. the address clients
    /// connect to a daemon at.
    #[arg(long, value_name = "HOST_OR_IP")]
    san: Vec<String>,
    /// Print the written paths as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `sgc ca`.
pub fn run(cmd: &CaCommand) -> Result<ExitCode, CliError> {
    match cmd {
        CaCommand::Init(a) => {
            let files = pki::init_ca(&a.dir, &a.name).map_err(|e| CliError::Output(e.to_string()))?;
            if a.json {
                out!("{}", json!({"cert": files.cert, "key": files.key}));
            } else {
                out!(
                    "CA created: certificate {}, key {} (keep it secret)",
                    files.cert.display(),
                    files.key.display()
                );
            }
        }
        CaCommand::Issue(a) => {
            let (role, name) = match (&a.daemon, &a.client) {
                (Some(n), None) => (Role::Daemon, n),
                (None, Some(n)) => (Role::Client, n),
                _ => {
                    return Err(CliError::Usage(
                        "give one of --daemon NAME or --client NAME".into(),
                    ));
                }
            };
            let dir = pki::issue(&a.dir, role, name, &a.san).map_err(|e| CliError::Output(e.to_string()))?;
            if a.json {
                out!(
                    "{}",
                    json!({
                        "identity": dir,
                        "cert": dir.join(pki::CERT_FILE),
                        "key": dir.join(pki::KEY_FILE),
                        "ca": dir.join(pki::CA_FILE),
                    })
                );
            } else {
                out!("issued {name}: identity directory {}", dir.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
