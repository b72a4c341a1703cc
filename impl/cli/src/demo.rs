//! `sgc demo`: a readable TGDH timeline with real cryptography. Members join one by one, the
//! group refreshes its key, splits in two, grows on one side, merges back and loses a member;
//! after every event all members agree on a new group key, shown by its public key id.
//!
//! The group runs in one process over the deterministic in-memory agreed-order channel of
//! `sgc_model::tgdh::sim` (members' shares come from a counter there: a demonstration of the
//! protocol, not a deployment). Later issues turn this into the secure cluster demo.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use sgc_crypto::{FfdhProvider, GroupChoice, Identity, SignatureDirectory, X25519Provider};
use sgc_model::tgdh::MemberId;
use sgc_model::tgdh::crypto::TgdhCrypto;
use sgc_model::tgdh::member::GROUP_KEY_LABEL;
use sgc_model::tgdh::sim::{NoMeter, SimGroup};

use crate::CliError;

/// Options of `sgc demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// DH group: ffdhe2048, ffdhe3072, modp2048 or x25519.
    #[arg(long, default_value = "ffdhe2048")]
    group: String,
    /// Skip part 2 (a local 3-daemon cluster with clients).
    #[arg(long)]
    no_cluster: bool,
}

const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Runs `sgc demo`.
pub fn run(args: &DemoArgs) -> Result<ExitCode, CliError> {
    let choice: GroupChoice = args.group.parse().map_err(|e| CliError::Usage(format!("{e}")))?;
    let mut directory = SignatureDirectory::new();
    for p in PEOPLE {
        directory.add_identity(Identity::generate(MemberId::new(p)));
    }
    let directory = Arc::new(directory);
    out!("sgc demo: TGDH key agreement over {choice}, Ed25519-signed messages, agreed-order delivery");
    let code = match choice.ffdh_group() {
        Some(g) => timeline(&FfdhProvider::new(g, directory)),
        None => timeline(&X25519Provider::new(directory)),
    }?;
    if args.no_cluster || code != ExitCode::SUCCESS {
        return Ok(code);
    }
    match crate::demo_clients::run() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            out!("clients: FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn who(names: &[&str]) -> BTreeSet<MemberId> {
    names.iter().map(|n| MemberId::new(*n)).collect()
}

fn timeline<C: TgdhCrypto>(crypto: &C) -> Result<ExitCode, CliError>
where
    C::Secret: Clone + Eq,
    C::Public: Clone + Eq + Serialize,
{
    let start = Instant::now();
    let mut ok = true;
    let mut g = SimGroup::<C>::new("demo", None);
    for n in 1..=4 {
        g.install_view(crypto, who(&PEOPLE[..n]), &mut NoMeter);
        let s = g.run(crypto, &mut NoMeter);
        ok &= report(
            crypto,
            &g,
            start,
            &format!("{} joins", PEOPLE[n - 1]),
            s.rounds,
            s.messages,
        );
    }
    g.request_refresh(crypto, &MemberId::new("dave"));
    let s = g.run(crypto, &mut NoMeter);
    ok &= report(
        crypto,
        &g,
        start,
        "dave asks for a key refresh",
        s.rounds,
        s.messages,
    );

    let mut other = g.split(crypto, &who(&["carol", "dave"]), &mut NoMeter);
    let s = g.run(crypto, &mut NoMeter);
    let t = other.run(crypto, &mut NoMeter);
    ok &= report(
        crypto,
        &g,
        start,
        "network partition: this side",
        s.rounds,
        s.messages,
    );
    ok &= report(
        crypto,
        &other,
        start,
        "network partition: other side",
        t.rounds,
        t.messages,
    );

    other.install_view(crypto, who(&["carol", "dave", "erin"]), &mut NoMeter);
    let t = other.run(crypto, &mut NoMeter);
    ok &= report(
        crypto,
        &other,
        start,
        "erin joins carol and dave",
        t.rounds,
        t.messages,
    );

    g.merge(crypto, vec![other], &mut NoMeter);
    let s = g.run(crypto, &mut NoMeter);
    ok &= report(
        crypto,
        &g,
        start,
        "the partition heals: merge",
        s.rounds,
        s.messages,
    );

    g.install_view(crypto, who(&["alice", "carol", "dave", "erin"]), &mut NoMeter);
    let s = g.run(crypto, &mut NoMeter);
    ok &= report(crypto, &g, start, "bob leaves", s.rounds, s.messages);

    out!("every step: all members hold the same key; each key is new (forward and backward secrecy)");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn report<C: TgdhCrypto>(
    crypto: &C,
    g: &SimGroup<C>,
    start: Instant,
    what: &str,
    rounds: u32,
    msgs: u32,
) -> bool
where
    C::Secret: Clone + Eq,
    C::Public: Clone + Eq + Serialize,
{
    let members: Vec<&str> = g.members.keys().map(|m| m.0.as_str()).collect();
    let key_id = g.members.values().next().and_then(|m| {
        let epoch = m.epoch?;
        let key = crypto.session_key(m.root_key()?, &g.group, epoch, GROUP_KEY_LABEL);
        Some((epoch, crypto.key_id(&key)))
    });
    let agreed = g.agreed();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    match key_id {
        Some((epoch, id)) if agreed => out!(
            "[{ms:8.1} ms] {what:32} view {epoch:5} members {:32} key {id:016x}  ({rounds} rounds, {msgs} messages)",
            members.join(",")
        ),
        _ => out!(
            "[{ms:8.1} ms] {what:32} members {}: NO AGREED KEY",
            members.join(",")
        ),
    }
    agreed
}
