//! The command language of `sgc user` (one command per line on stdin, as typed interactively or
//! piped from a script) and the JSON form of the events it prints with `--json`.
//!
//! Commands: `join G`, `leave G`, `send T[,T...] [--service S] [--type N] TEXT`, `flush_ok G`
//! (alias `flush G`; VS mode), `sleep MS`, `quit`, `help`. A target `T` is a group name or a
//! private name `#user#daemon`.
//! Events: `{"event":"membership","group","view","members","cause","vs_set"}`, `{"event":"transition",
//! "group","view"}`, `{"event":"message","group","groups","sender","service","type","payload"}`,
//! `{"event":"self_leave","group"}`, `{"event":"reject","reason","request"}`, plus the VS layer's
//! `{"event":"flush_request","group"}`.

use serde_json::{Value, json};
use sgc_model::groups::{
    ClientEvent, ClientReq, ClientService, GroupName, Membership, PrivateName, RejectReason, Target,
};

/// Longest `sleep` a script may ask for (a bound on every loop, in milliseconds).
pub const MAX_SLEEP_MS: u64 = 600_000;

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptCmd {
    /// Join a group.
    Join(GroupName),
    /// Leave a group.
    Leave(GroupName),
    /// Multicast a text.
    Send {
        /// Groups and private names, in the order given.
        targets: Vec<TargetName>,
        /// Service (default agreed).
        service: ClientService,
        /// Application message type (default 0).
        mess_type: i16,
        /// The text, sent as UTF-8 bytes.
        text: String,
    },
    /// Answer a flush request (VS mode).
    Flush(GroupName),
    /// Wait, still printing events.
    Sleep(u64),
    /// Disconnect and exit.
    Quit,
    /// Print the command list.
    Help,
    /// An empty line or a comment.
    Nothing,
}

/// A target as typed: private names carry only the daemon's name, the daemon resolves its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetName {
    /// A group.
    Group(GroupName),
    /// `#user#daemon`.
    Private {
        /// User part.
        user: String,
        /// Daemon name.
        daemon: String,
    },
}

impl TargetName {
    fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with('#') {
            let (user, daemon) = PrivateName::parse_parts(s).map_err(|e| e.to_string())?;
            Ok(Self::Private {
                user: user.to_owned(),
                daemon: daemon.to_owned(),
            })
        } else {
            GroupName::new(s).map(Self::Group).map_err(|e| e.to_string())
        }
    }

    /// The wire target; a private name's node is left 0 for the daemon to resolve by name.
    pub fn to_target(&self) -> Target {
        match self {
            Self::Group(g) => Target::Group(g.clone()),
            Self::Private { user, daemon } => Target::Private(PrivateName {
                node: 0,
                user: user.clone(),
                daemon: daemon.clone(),
            }),
        }
    }
}

/// The help text printed by `help`.
pub const HELP: &str = "commands:\n  join GROUP\n  leave GROUP\n  send TARGET[,TARGET..] [--service \
unreliable|reliable|fifo|causal|agreed|safe] [--type N] TEXT\n  flush GROUP   (VS mode: answer a flush \
request)\n  sleep MS\n  quit";

/// Parse one line.
pub fn parse_line(line: &str) -> Result<ScriptCmd, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with("//") {
        return Ok(ScriptCmd::Nothing);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim_start();
    let group = |what: &str| -> Result<GroupName, String> {
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!("usage: {what} GROUP"));
        }
        GroupName::new(rest).map_err(|e| e.to_string())
    };
    match word {
        "join" | "j" => group("join").map(ScriptCmd::Join),
        "leave" | "l" => group("leave").map(ScriptCmd::Leave),
        "flush" | "f" => group("flush").map(ScriptCmd::Flush),
        "flush_ok" => group("flush_ok").map(ScriptCmd::Flush),
        "sleep" => {
            let ms: u64 = rest.parse().map_err(|_| "usage: sleep MS".to_owned())?;
            if ms > MAX_SLEEP_MS {
                return Err(format!("sleep is bounded by {MAX_SLEEP_MS} ms"));
            }
            Ok(ScriptCmd::Sleep(ms))
        }
        "quit" | "q" | "exit" => Ok(ScriptCmd::Quit),
        "help" | "?" => Ok(ScriptCmd::Help),
        "send" | "s" => parse_send(rest),
        other => Err(format!("unknown command `{other}` (try `help`)")),
    }
}

fn parse_send(mut rest: &str) -> Result<ScriptCmd, String> {
    const USAGE: &str = "usage: send TARGET[,TARGET..] [--service S] [--type N] TEXT";
    let (first, tail) = rest.split_once(char::is_whitespace).ok_or(USAGE)?;
    let targets = first
        .split(',')
        .map(TargetName::parse)
        .collect::<Result<Vec<_>, _>>()?;
    rest = tail.trim_start();
    let (mut service, mut mess_type) = (ClientService::Agreed, 0i16);
    loop {
        let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let (value, after) = after
            .trim_start()
            .split_once(char::is_whitespace)
            .unwrap_or((after.trim_start(), ""));
        match flag {
            "--service" => {
                service =
                    ClientService::from_name(value).ok_or_else(|| format!("unknown service `{value}`"))?;
            }
            "--type" => mess_type = value.parse().map_err(|_| format!("bad message type `{value}`"))?,
            _ => break,
        }
        rest = after.trim_start();
    }
    if rest.is_empty() {
        return Err(USAGE.to_owned());
    }
    Ok(ScriptCmd::Send {
        targets,
        service,
        mess_type,
        text: rest.to_owned(),
    })
}

fn names(v: &[PrivateName]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn target_name(t: &Target) -> String {
    match t {
        Target::Group(g) => g.to_string(),
        Target::Private(p) => p.to_string(),
    }
}

/// The JSON object printed for a membership.
pub fn membership_json(m: &Membership) -> Value {
    json!({
        "event": "membership",
        "group": m.group.as_str(),
        "view": m.gid.to_string(),
        "members": names(&m.members),
        "cause": m.cause.name(),
        "vs_set": m.vs_sets.get(m.my_vs).map(|s| names(s)).unwrap_or_default(),
    })
}

const fn reject_name(r: &RejectReason) -> &'static str {
    match r {
        RejectReason::TooManyGroups => "too_many_groups",
        RejectReason::GroupFull => "group_full",
        RejectReason::Denied => "denied",
        RejectReason::UnknownTarget => "unknown_target",
    }
}

fn request_text(r: &ClientReq) -> String {
    match r {
        ClientReq::Join(g) => format!("join {g}"),
        ClientReq::Leave(g) => format!("leave {g}"),
        ClientReq::Send(m) => format!(
            "send {}",
            m.targets.iter().map(target_name).collect::<Vec<_>>().join(",")
        ),
        ClientReq::Disconnect => "disconnect".to_owned(),
    }
}

/// The JSON object printed for an event (`--json`).
pub fn event_json(ev: &ClientEvent) -> Value {
    match ev {
        ClientEvent::Membership(m) => membership_json(m),
        ClientEvent::Transition { group, gid } => {
            json!({"event": "transition", "group": group.as_str(), "view": gid.to_string()})
        }
        ClientEvent::Data(d) => {
            let groups: Vec<String> = d.targets.iter().map(target_name).collect();
            json!({
                "event": "message",
                "group": groups.first(),
                "groups": groups,
                "sender": d.sender.to_string(),
                "service": d.service.name(),
                "type": d.mess_type,
                "payload": String::from_utf8_lossy(&d.body),
            })
        }
        ClientEvent::SelfLeave(g) => json!({"event": "self_leave", "group": g.as_str()}),
        ClientEvent::Reject { reason, req } => {
            json!({"event": "reject", "reason": reject_name(reason), "request": request_text(req)})
        }
        ClientEvent::Undecryptable(u) => json!({
            "event": "undecryptable",
            "group": u.group.as_str(),
            "sender": u.sender.to_string(),
            "type": u.mess_type,
            "key_id": u.key_id.map(|id| format!("{id:016x}")),
            "reason": u.reason.name(),
        }),
    }
}

/// The human-readable line printed for an event (interactive mode).
pub fn event_text(ev: &ClientEvent) -> String {
    match ev {
        ClientEvent::Membership(m) => format!(
            "membership {} view {} cause {}: members [{}], came with me [{}]",
            m.group,
            m.gid,
            m.cause.name(),
            names(&m.members).join(", "),
            m.vs_sets
                .get(m.my_vs)
                .map(|s| names(s).join(", "))
                .unwrap_or_default()
        ),
        ClientEvent::Transition { group, gid } => format!("transition {group} (view {gid})"),
        ClientEvent::Data(d) => format!(
            "message from {} to {} ({}, type {}): {}",
            d.sender,
            d.targets.iter().map(target_name).collect::<Vec<_>>().join(","),
            d.service.name(),
            d.mess_type,
            String::from_utf8_lossy(&d.body)
        ),
        ClientEvent::SelfLeave(g) => format!("left {g}"),
        ClientEvent::Reject { reason, req } => {
            format!("rejected ({}): {}", reject_name(reason), request_text(req))
        }
        ClientEvent::Undecryptable(u) => format!(
            "undecryptable message from {} to {} (type {}, key {}): {}",
            u.sender,
            u.group,
            u.mess_type,
            u.key_id.map_or_else(|| "-".to_owned(), |id| format!("{id:016x}")),
            u.reason
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> GroupName {
        GroupName::new(s).unwrap()
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(parse_line("join chat"), Ok(ScriptCmd::Join(g("chat"))));
        assert_eq!(parse_line("  leave chat "), Ok(ScriptCmd::Leave(g("chat"))));
        assert_eq!(parse_line("flush chat"), Ok(ScriptCmd::Flush(g("chat"))));
        assert_eq!(parse_line("flush_ok chat"), Ok(ScriptCmd::Flush(g("chat"))));
        assert_eq!(parse_line("sleep 250"), Ok(ScriptCmd::Sleep(250)));
        assert_eq!(parse_line("quit"), Ok(ScriptCmd::Quit));
        assert_eq!(parse_line(""), Ok(ScriptCmd::Nothing));
        assert_eq!(
            parse_line("send chat hello  world"),
            Ok(ScriptCmd::Send {
                targets: vec![TargetName::Group(g("chat"))],
                service: ClientService::Agreed,
                mess_type: 0,
                text: "hello  world".into(),
            })
        );
        assert_eq!(
            parse_line("send a,#bob#d1 --service safe --type -7 hi"),
            Ok(ScriptCmd::Send {
                targets: vec![
                    TargetName::Group(g("a")),
                    TargetName::Private {
                        user: "bob".into(),
                        daemon: "d1".into()
                    }
                ],
                service: ClientService::Safe,
                mess_type: -7,
                text: "hi".into(),
            })
        );
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        for bad in [
            "join",
            "join a b",
            "join #x",
            "send chat",
            "send chat --service fast hi",
            "send chat --type 99999 hi",
            "sleep forever",
            "sleep 999999999",
            "dance",
            "send #nodaemon hi",
        ] {
            let err = parse_line(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
    }
}
