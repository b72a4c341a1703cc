//! `sgc user --daemon ADDR --name NAME [--json]`: an interactive and scriptable client, like
//! Spread's `spuser`. It reads commands from stdin (see [`crate::user_script`]) and prints every
//! event: one JSON object per line with `--json`, readable lines otherwise. The first line is the
//! session's own name (`{"event":"connected","name":"#NAME#daemon"}`). End of input or `quit`
//! disconnects; a vanished daemon ends the program with status 1.
//!
//! `--identity DIR` connects with mutual TLS using an identity directory (`cert.pem`, `key.pem`,
//! `ca.pem`; made by `sgc ca issue --client NAME` or listed by `sgc cluster up --security`).
//! On a daemon's Unix socket no identity is needed: the daemon identifies the user by uid.
//!
//! `--vs` runs the session through the flush layer instead ([`crate::user_vs`]: closed groups,
//! VS views, `flush_request` events; `--manual-flush` leaves the answer to `flush_ok G`).
//! With integrated security on, every membership event also shows the id of the group key of
//! its view (`"key_id": "16 hex digits"`, and `"artificial": true` for a servers' key refresh
//! delivered as an artificial membership change); the key itself is never printed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use sgc_client::{Client, ClientError, Endpoint, GroupKeyInfo, evs};
use sgc_model::groups::{ClientEvent, ClientReq, ConnectRefusal, Multicast, Target};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::CliError;
use crate::user_script::{HELP, ScriptCmd, event_json, event_text, parse_line};

/// Options of `sgc user`.
#[derive(Args, Debug)]
pub struct UserArgs {
    /// The daemon's client endpoint: `ip:port`, `unix:PATH` or an absolute socket path.
    #[arg(long)]
    daemon: String,
    /// User name (1–10 characters `$`..`~`); default: assigned by the daemon.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Print one JSON object per event.
    #[arg(long)]
    pub(crate) json: bool,
    /// Virtual synchrony: closed groups through the flush layer (VS views, flush requests).
    #[arg(long)]
    pub(crate) vs: bool,
    /// With --vs: do not answer flush requests automatically; the `flush_ok G` command does.
    #[arg(long, requires = "vs")]
    pub(crate) manual_flush: bool,
    /// Identity directory (cert.pem, key.pem, ca.pem): connect to a TCP endpoint with mutual TLS.
    #[arg(long, value_name = "DIR")]
    identity: Option<std::path::PathBuf>,
    /// Encrypt end to end (Optimized EVS): seal every multicast to one group under the current
    /// group key and open the messages delivered (needs a secure cluster; a group without a key
    /// is an error, nothing is sent in clear).
    #[arg(long, conflicts_with = "vs")]
    pub(crate) e2e: bool,
}

/// Run `sgc user`.
pub fn run(args: &UserArgs) -> Result<ExitCode, CliError> {
    let ep: Endpoint = args
        .daemon
        .parse()
        .map_err(|e| CliError::Usage(format!("--daemon: {e}")))?;
    let ep = match (&args.identity, ep) {
        (None, ep) => ep,
        (Some(_), Endpoint::Unix(_)) => {
            return Err(CliError::Usage(
                "--identity is for TCP endpoints; on the Unix socket the daemon identifies you by uid".into(),
            ));
        }
        (Some(id), ep) => ep.with_identity(id.clone()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Output(e.to_string()))?;
    if args.vs {
        rt.block_on(crate::user_vs::session(&ep, args))
    } else {
        rt.block_on(session(&ep, args))
    }
}

/// Prints events and notes, as JSON lines or readable lines.
pub(crate) struct Printer {
    /// One JSON object per line.
    pub(crate) json: bool,
}

impl Printer {
    /// Print an event; a membership shows the id of the group key that came with it (with
    /// security on), never the key.
    fn event(&self, ev: &ClientEvent, key: Option<&GroupKeyInfo>, decrypted: bool) {
        let key = key.filter(|_| matches!(ev, ClientEvent::Membership(_)));
        if self.json {
            let mut v = event_json(ev);
            if let (Some(k), Some(obj)) = (key, v.as_object_mut()) {
                obj.insert("key_id".into(), format!("{:016x}", k.key_id).into());
                obj.insert("artificial".into(), k.artificial.into());
            }
            if let (true, Some(obj)) = (decrypted, v.as_object_mut()) {
                obj.insert("decrypted".into(), true.into());
            }
            out!("{v}");
        } else {
            match key {
                Some(k) => out!(
                    "{} key {:016x}{}",
                    event_text(ev),
                    k.key_id,
                    if k.artificial { " (refresh)" } else { "" }
                ),
                None => out!("{}", event_text(ev)),
            }
        }
    }

    pub(crate) fn note(&self, kind: &str, text: &str) {
        if self.json {
            out!("{}", json!({"event": kind, "text": text}));
        } else {
            out!("{kind}: {text}");
        }
    }
}

async fn session(ep: &Endpoint, args: &UserArgs) -> Result<ExitCode, CliError> {
    let p = Printer { json: args.json };
    let mut client = match Client::connect(ep, args.name.as_deref(), true).await {
        Ok(c) => c,
        Err(e) => return Ok(connect_failed(&p, ep, args, &e)),
    };
    let me = client.private_name().to_string();
    if p.json {
        out!("{}", json!({"event": "connected", "name": me}));
    } else {
        out!("connected as {me} (type `help` for commands)");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pause: Option<tokio::time::Instant> = None;
    loop {
        let wake = pause;
        tokio::select! {
            ev = client.recv() => match ev {
                Ok(ev) => {
                    let decrypted = args.e2e && matches!(&ev, ClientEvent::Data(_));
                    let ev = if args.e2e { evs::open(|g| client.group_key(g), ev) } else { ev };
                    let decrypted = decrypted && matches!(&ev, ClientEvent::Data(_));
                    let key = match &ev {
                        ClientEvent::Membership(m) => client.group_key(&m.group),
                        _ => None,
                    };
                    p.event(&ev, key, decrypted);
                }
                Err(e) => return Ok(gone(&p, &e)),
            },
            () = async { if let Some(t) = wake { tokio::time::sleep_until(t).await } }, if wake.is_some() => {
                pause = None;
            }
            line = lines.next_line(), if pause.is_none() => {
                let Ok(Some(line)) = line else { break };
                match parse_line(&line) {
                    Ok(ScriptCmd::Quit) => break,
                    Ok(ScriptCmd::Sleep(ms)) => {
                        pause = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
                    }
                    Ok(ScriptCmd::Help) => p.note("help", HELP),
                    Ok(ScriptCmd::Nothing) => {}
                    Ok(ScriptCmd::Flush(_)) => p.note("error", "flush needs VS mode (--vs)"),
                    Ok(cmd @ ScriptCmd::Send { .. }) if args.e2e => match sealed(&client, cmd) {
                        Ok(m) => {
                            if let Err(e) = client.request(&ClientReq::Send(m)).await {
                                return Ok(gone(&p, &e));
                            }
                        }
                        Err(e) => p.note("error", &e),
                    },
                    Ok(cmd) => {
                        if let Err(e) = execute(&client, cmd).await {
                            if matches!(e, ClientError::LimitHit(_)) {
                                p.note("error", &e.to_string());
                            } else {
                                return Ok(gone(&p, &e));
                            }
                        }
                    }
                    Err(e) => p.note("error", &e),
                }
            }
        }
    }
    if let Err(e) = client.disconnect().await {
        return Ok(gone(&p, &e));
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--e2e`: the multicast of a send, its text sealed under the current key of its one
/// target group.
fn sealed(client: &Client, cmd: ScriptCmd) -> Result<Multicast, String> {
    let ScriptCmd::Send {
        targets,
        service,
        mess_type,
        text,
    } = cmd
    else {
        return Err("not a send".to_owned());
    };
    let [target] = targets.as_slice() else {
        return Err("--e2e: a message goes to exactly one group".to_owned());
    };
    let Target::Group(g) = target.to_target() else {
        return Err("--e2e: a message goes to a group, not a private name".to_owned());
    };
    let key = client
        .group_key(&g)
        .ok_or_else(|| format!("--e2e: no key for group {g} (join it on a secure cluster first)"))?;
    let body = evs::seal(key, &g, client.private_name(), mess_type, text.as_bytes())
        .map_err(|e| format!("--e2e: {e}"))?;
    Ok(Multicast {
        targets: vec![Target::Group(g)],
        service,
        self_discard: false,
        mess_type,
        body,
    })
}

async fn execute(client: &Client, cmd: ScriptCmd) -> Result<(), ClientError> {
    match cmd {
        ScriptCmd::Join(g) => client.join(&g).await,
        ScriptCmd::Leave(g) => client.leave(&g).await,
        ScriptCmd::Send {
            targets,
            service,
            mess_type,
            text,
        } => {
            let m = Multicast {
                targets: targets.iter().map(|t| t.to_target()).collect(),
                service,
                self_discard: false,
                mess_type,
                body: text.into_bytes(),
            };
            client.request(&ClientReq::Send(m)).await
        }

        ScriptCmd::Flush(_)
        | ScriptCmd::Sleep(_)
        | ScriptCmd::Quit
        | ScriptCmd::Help
        | ScriptCmd::Nothing => Ok(()),
    }
}

/// Report a failed connection (stderr, and a `refused` event with `--json`); exit status 1.
pub(crate) fn connect_failed(p: &Printer, ep: &Endpoint, args: &UserArgs, e: &ClientError) -> ExitCode {
    eprintln!("sgc user: cannot connect to {ep}: {e}");
    if matches!(e, ClientError::Refused(ConnectRefusal::Auth)) && args.identity.is_none() {
        eprintln!(
            "sgc user: this daemon requires authentication: pass --identity DIR (a TLS client \
             certificate, see `sgc ca issue`) or use its local Unix socket"
        );
    }
    if p.json {
        out!(
            "{}",
            json!({"event": "refused", "text": e.to_string(), "code": e.code()})
        );
    }
    ExitCode::from(1)
}

/// Report a broken session; exit status 1.
pub(crate) fn gone(p: &Printer, e: &ClientError) -> ExitCode {
    p.note("error", &e.to_string());
    eprintln!("sgc user: {e}");
    ExitCode::from(1)
}
