//! `sgc user --vs [--manual-flush]`: the `sgc user` session through the flush layer
//! ([`sgc_client::vs::VsClient`]): closed groups with virtual synchrony. Same stdin commands as
//! the plain mode, plus `flush_ok G` (alias `flush G`); the events it prints are VS events:
//! memberships are VS views, messages carry the `view` they are delivered in, and a view change
//! is announced by `{"event":"flush_request","group":G}`. By default a flush request is
//! answered at once (after printing it); with `--manual-flush` the `flush_ok G` command does it.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use sgc_client::vs::{VsClient, VsError, VsEvent, VsUndecryptable, VsView};
use sgc_client::{ClientError, Endpoint};
use sgc_crypto::e2e::E2eError;
use sgc_model::groups::{ClientEvent, Membership, Multicast};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::CliError;
use crate::user_cmd::{Printer, UserArgs, connect_failed, gone};
use crate::user_script::{HELP, ScriptCmd, event_json, event_text, parse_line};

/// The group-layer form of a VS view (for the shared printers).
fn as_membership(v: &VsView) -> Membership {
    Membership {
        group: v.group.clone(),
        gid: v.view,
        cause: v.cause,
        members: v.members.clone(),
        vs_sets: vec![v.vs_set.clone()],
        my_vs: 0,
    }
}

/// The JSON object printed for a VS event.
pub fn vs_event_json(ev: &VsEvent) -> Value {
    match ev {
        VsEvent::View(v) => event_json(&ClientEvent::Membership(as_membership(v))),
        VsEvent::FlushRequest(g) => json!({"event": "flush_request", "group": g.as_str()}),
        VsEvent::Data(d) => {
            let mut v = event_json(&ClientEvent::Data(d.msg.clone()));
            if let Value::Object(o) = &mut v {
                o.insert(
                    "view".to_owned(),
                    d.view.map_or(Value::Null, |g| Value::String(g.to_string())),
                );
                o.insert("decrypted".to_owned(), Value::Bool(d.decrypted));
            }
            v
        }
        VsEvent::Undecryptable(u) => undecryptable_json(u),
        VsEvent::Transition { group, view } => event_json(&ClientEvent::Transition {
            group: group.clone(),
            gid: *view,
        }),
        VsEvent::SelfLeave(g) => event_json(&ClientEvent::SelfLeave(g.clone())),
        VsEvent::Rejected { reason, req } => event_json(&ClientEvent::Reject {
            reason: reason.clone(),
            req: req.clone(),
        }),
    }
}

/// The human-readable line printed for a VS event.
pub fn vs_event_text(ev: &VsEvent) -> String {
    match ev {
        VsEvent::View(v) => format!("vs {}", event_text(&ClientEvent::Membership(as_membership(v)))),
        VsEvent::FlushRequest(g) => format!("flush request {g}"),
        VsEvent::Data(d) => format!(
            "{} (view {})",
            event_text(&ClientEvent::Data(d.msg.clone())),
            d.view.map_or_else(|| "-".to_owned(), |g| g.to_string())
        ),
        VsEvent::Undecryptable(u) => format!(
            "undecryptable message from {} (view {}, type {}): {}",
            u.msg.sender,
            u.view.map_or_else(|| "-".to_owned(), |g| g.to_string()),
            u.msg.mess_type,
            u.error
        ),
        VsEvent::Transition { group, view } => event_text(&ClientEvent::Transition {
            group: group.clone(),
            gid: *view,
        }),
        VsEvent::SelfLeave(g) => event_text(&ClientEvent::SelfLeave(g.clone())),
        VsEvent::Rejected { reason, req } => event_text(&ClientEvent::Reject {
            reason: reason.clone(),
            req: req.clone(),
        }),
    }
}

/// The reason and key id (16 hex digits, or null) of an undecryptable message, for JSON.
pub fn undecryptable_fields(e: &E2eError) -> (&'static str, Value) {
    let hex = |id: &u64| Value::String(format!("{id:016x}"));
    match e {
        E2eError::NotEncrypted => ("not_encrypted", Value::Null),
        E2eError::UnknownKey(id) => ("unknown_key", hex(id)),
        E2eError::Unauthentic(id) => ("unauthentic", hex(id)),
        _ => ("bad_key", Value::Null),
    }
}

/// `{"event":"undecryptable",...}`: a message that does not open (never printed as data).
fn undecryptable_json(u: &VsUndecryptable) -> Value {
    let (reason, key_id) = undecryptable_fields(&u.error);
    let group = u.msg.targets.iter().find_map(|t| match t {
        sgc_model::groups::Target::Group(g) => Some(g.as_str().to_owned()),
        sgc_model::groups::Target::Private(_) => None,
    });
    json!({
        "event": "undecryptable",
        "group": group,
        "sender": u.msg.sender.to_string(),
        "type": u.msg.mess_type,
        "view": u.view.map(|g| g.to_string()),
        "key_id": key_id,
        "reason": reason,
        "bytes": u.msg.body.len(),
    })
}

fn print(p: &Printer, ev: &VsEvent) {
    if p.json {
        out!("{}", vs_event_json(ev));
    } else {
        out!("{}", vs_event_text(ev));
    }
}

/// A failed call: a refusal of the flush layer or a limit is printed and the session goes on;
/// a broken connection ends it.
fn refused(p: &Printer, e: VsError) -> Result<(), ClientError> {
    match e {
        VsError::Connection(ClientError::LimitHit(w)) => {
            p.note("error", &ClientError::LimitHit(w).to_string());
            Ok(())
        }
        VsError::Connection(c) => Err(c),
        other => {
            p.note("error", &other.to_string());
            Ok(())
        }
    }
}

/// Run the VS session.
pub async fn session(ep: &Endpoint, args: &UserArgs) -> Result<ExitCode, CliError> {
    let p = Printer { json: args.json };
    let mut vs = match VsClient::connect(ep, args.name.as_deref()).await {
        Ok(c) => c,
        Err(VsError::Connection(e)) => return Ok(connect_failed(&p, ep, args, &e)),
        Err(e) => return Err(CliError::Output(e.to_string())),
    };
    let me = vs.private_name().to_string();
    if p.json {
        out!("{}", json!({"event": "connected", "name": me}));
    } else {
        out!("connected as {me}, virtual synchrony (type `help` for commands)");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pause: Option<tokio::time::Instant> = None;
    loop {
        let wake = pause;
        tokio::select! {
            ev = vs.recv() => match ev {
                Ok(ev) => {
                    print(&p, &ev);
                    if let (VsEvent::FlushRequest(g), false) = (&ev, args.manual_flush)
                        && let Err(e) = vs.flush_ok(g).await
                        && let Err(e) = refused(&p, e)
                    {
                        return Ok(gone(&p, &e));
                    }
                }
                Err(VsError::Connection(e)) => return Ok(gone(&p, &e)),
                Err(e) => p.note("error", &e.to_string()),
            },
            () = async { if let Some(t) = wake { tokio::time::sleep_until(t).await } }, if wake.is_some() => {
                pause = None;
            }
            line = lines.next_line(), if pause.is_none() => {
                let Ok(Some(line)) = line else { break };
                let r = match parse_line(&line) {
                    Ok(ScriptCmd::Quit) => break,
                    Ok(ScriptCmd::Sleep(ms)) => {
                        pause = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
                        Ok(())
                    }
                    Ok(ScriptCmd::Help) => {
                        p.note("help", HELP);
                        Ok(())
                    }
                    Ok(ScriptCmd::Nothing) => Ok(()),
                    Ok(cmd) => execute(&mut vs, cmd).await,
                    Err(e) => {
                        p.note("error", &e);
                        Ok(())
                    }
                };
                if let Err(e) = r
                    && let Err(e) = refused(&p, e)
                {
                    return Ok(gone(&p, &e));
                }
            }
        }
    }
    match vs.disconnect().await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(VsError::Connection(e)) => Ok(gone(&p, &e)),
        Err(e) => Err(CliError::Output(e.to_string())),
    }
}

async fn execute(vs: &mut VsClient, cmd: ScriptCmd) -> Result<(), VsError> {
    match cmd {
        ScriptCmd::Join(g) => vs.join(&g).await,
        ScriptCmd::Leave(g) => vs.leave(&g).await,
        ScriptCmd::Flush(g) => vs.flush_ok(&g).await,
        ScriptCmd::Send {
            targets,
            service,
            mess_type,
            text,
        } => {
            vs.send(Multicast {
                targets: targets.iter().map(|t| t.to_target()).collect(),
                service,
                self_discard: false,
                mess_type,
                body: text.into_bytes(),
            })
            .await
        }
        ScriptCmd::Sleep(_) | ScriptCmd::Quit | ScriptCmd::Help | ScriptCmd::Nothing => Ok(()),
    }
}
