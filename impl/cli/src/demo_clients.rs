//! The second part of `sgc demo`: a local secure cluster of 3 daemons (`sgc cluster up --security
//! three-step`: mutual TLS for clients, access control, the servers' key agreed with TGDH after
//! every configuration change, daemon↔daemon packets sealed under it), two clients on different
//! daemons that join a group and talk, an identity without rights that is refused, a partition
//! that separates the clients (transitional signal, then a network membership) and the heal
//! that merges them again — printed as a timeline with every group key id and the daemons'
//! servers' key ids. Every wait is bounded; the cluster is stopped at the end, also after a
//! failure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sgc_client::Endpoint;
use sgc_client::blocking::Client;
use sgc_daemon::admin::{self, Request};
use sgc_model::groups::{ClientEvent, ClientService, GroupName, Target};

use crate::user_script::event_text;

/// Longest wait for one expected event.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
struct Info {
    daemons: Vec<DaemonInfo>,
    #[serde(default)]
    identities: BTreeMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct DaemonInfo {
    admin: std::net::SocketAddr,
    client: std::net::SocketAddr,
}

/// Run the clients part; `Err` carries what went wrong (the cluster is stopped either way).
pub fn run() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find sgc: {e}"))?;
    let dir: PathBuf = std::env::temp_dir().join(format!("sgc-demo-{}", std::process::id()));
    let out = Command::new(&exe)
        .args([
            "cluster",
            "up",
            "--daemons",
            "3",
            "--security",
            "three-step",
            "--json",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .map_err(|e| format!("cannot run sgc cluster up: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cluster up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let result = serde_json::from_slice::<Info>(&out.stdout)
        .map_err(|e| format!("cluster up output: {e}"))
        .and_then(|info| story(&info));
    let _ = Command::new(&exe)
        .args(["cluster", "down", "--dir"])
        .arg(&dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

struct Clock(Instant);

impl Clock {
    fn say(&self, who: &str, what: &str) {
        let ms = self.0.elapsed().as_secs_f64() * 1e3;
        out!("[{ms:8.1} ms] {who:6} {what}");
    }
}

/// Print `c`'s events until one satisfies `done`.
fn until(
    clock: &Clock,
    who: &str,
    c: &mut Client,
    done: impl Fn(&ClientEvent) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv_timeout(left).map_err(|e| format!("{who}: {e}"))? {
            Some(ev) => {
                let mut text = event_text(&ev);
                if let ClientEvent::Membership(m) = &ev
                    && let Some(k) = c.group_key(&m.group)
                {
                    let kind = if k.artificial { ", refreshed" } else { "" };
                    text.push_str(&format!(" — group key id {:016x}{kind}", k.key_id));
                }
                clock.say(who, &text);
                if done(&ev) {
                    return Ok(());
                }
            }
            None => return Err(format!("{who}: expected event not seen within {WAIT:?}")),
        }
    }
}

fn members_are(ev: &ClientEvent, n: usize) -> bool {
    matches!(ev, ClientEvent::Membership(m) if m.members.len() == n)
}

fn admin_all(info: &Info, req: impl Fn(usize) -> Request) -> Result<(), String> {
    for (i, d) in info.daemons.iter().enumerate() {
        admin::call(d.admin, &req(i), Duration::from_secs(5)).map_err(|e| format!("admin: {e}"))?;
    }
    Ok(())
}

/// Print each daemon's servers' key id and the peers it seals to, once every daemon holds the
/// key of its ring and seals to every peer of its ring (bounded).
fn servers_keys(clock: &Clock, info: &Info) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut lines = Vec::new();
        let mut settled = true;
        for (i, d) in info.daemons.iter().enumerate() {
            let s = admin::call(d.admin, &Request::Status, Duration::from_secs(5))
                .map_err(|e| format!("admin: {e}"))?;
            let me = format!("d{i}");
            let others: Vec<String> = s["ring"]["members"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str())
                        .filter(|n| *n != me)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let sealed: Vec<String> = s["protection"]["sealed_to"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_u64())
                        .map(|n| format!("d{n}"))
                        .filter(|n| others.contains(n))
                        .collect()
                })
                .unwrap_or_default();
            let key = s["keys"]["key_id"].as_str().unwrap_or("none").to_owned();
            settled &= s["keys"]["holding"] == false && others.iter().all(|o| sealed.contains(o));
            lines.push(format!(
                "d{i}: ring {} servers' key id {key}, sealing to ring peers [{}]",
                s["ring"]["id"].as_str().unwrap_or("?"),
                sealed.join(", ")
            ));
        }
        if settled {
            for l in lines {
                clock.say("daemon", &l);
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("servers' keys did not settle: {lines:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn story(info: &Info) -> Result<(), String> {
    let clock = Clock(Instant::now());
    let [d0, _, d2] = info.daemons.as_slice() else {
        return Err("expected 3 daemons".into());
    };
    out!("");
    out!("sgc demo, part 2: clients of a local secure 3-daemon cluster (d0, d1, d2 on loopback, three-step)");
    servers_keys(&clock, info)?;
    let connect = |addr, name: &str| {
        let identity = info
            .identities
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no identity {name}"))?;
        Client::connect(&Endpoint::Tls { addr, identity }, Some(name), true)
            .map_err(|e| format!("{name}: {e}"))
    };
    let mut alice = connect(d0.client, "alice")?;
    let mut bob = connect(d2.client, "bob")?;
    clock.say("alice", &format!("connected to d0 as {}", alice.private_name()));
    clock.say("bob", &format!("connected to d2 as {}", bob.private_name()));
    let chat = GroupName::new("chat").map_err(|e| e.to_string())?;
    alice.join(&chat).map_err(|e| e.to_string())?;
    until(&clock, "alice", &mut alice, |e| members_are(e, 1))?;
    bob.join(&chat).map_err(|e| e.to_string())?;
    until(&clock, "bob", &mut bob, |e| members_are(e, 2))?;
    until(&clock, "alice", &mut alice, |e| members_are(e, 2))?;
    let mut mallory = connect(d0.client, "mallory")?;
    clock.say(
        "mallory",
        "valid certificate, no rights in the policy: tries to join chat",
    );
    mallory.join(&chat).map_err(|e| e.to_string())?;
    until(&clock, "mallory", &mut mallory, |e| {
        matches!(e, ClientEvent::Reject { .. })
    })?;
    drop(mallory);
    let to = [Target::Group(chat.clone())];
    alice
        .multicast(&to, ClientService::Agreed, 0, b"hello bob")
        .map_err(|e| e.to_string())?;
    until(&clock, "bob", &mut bob, |e| matches!(e, ClientEvent::Data(_)))?;
    bob.multicast(&to, ClientService::Safe, 0, b"hi alice, safely")
        .map_err(|e| e.to_string())?;
    until(
        &clock,
        "alice",
        &mut alice,
        |e| matches!(e, ClientEvent::Data(d) if d.body == b"hi alice, safely"),
    )?;

    clock.say(
        "admin",
        "partition: {d0,d1} | {d2} (testing hook: packets dropped)",
    );
    admin_all(info, |i| Request::Partition {
        from: if i == 2 {
            vec!["d0".into(), "d1".into()]
        } else {
            vec!["d2".into()]
        },
    })?;
    until(&clock, "alice", &mut alice, |e| members_are(e, 1))?;
    until(&clock, "bob", &mut bob, |e| members_are(e, 1))?;
    servers_keys(&clock, info)?;
    clock.say("admin", "heal");
    admin_all(info, |_| Request::Heal)?;
    until(&clock, "alice", &mut alice, |e| members_are(e, 2))?;
    until(&clock, "bob", &mut bob, |e| members_are(e, 2))?;
    servers_keys(&clock, info)?;
    bob.multicast(&to, ClientService::Agreed, 0, b"together again")
        .map_err(|e| e.to_string())?;
    until(&clock, "alice", &mut alice, |e| matches!(e, ClientEvent::Data(_)))?;
    alice.disconnect().map_err(|e| e.to_string())?;
    until(&clock, "bob", &mut bob, |e| members_are(e, 1))?;
    bob.disconnect().map_err(|e| e.to_string())?;
    out!("clients: every expected event arrived; cluster stopped");
    Ok(())
}
