//! Three-Step packet protection of daemon↔daemon datagrams (`security.mode = "three-step"`,
//! `docs/security.md`): the protected datagram formats (transport version 2) and the rule that
//! picks, per destination, how a packet is protected.
//!
//! ```text
//!  sealed  0      4    5    6              14                         39
//!          | SGCR | 2  | 1  | cluster (u64) | SealInfo: suite, epoch,  | ciphertext ‖ tag
//!                                           | sender, seq (25 bytes)   |
//!  signed  0      4    5    6              14     16          20      28
//!          | SGCR | 2  | 2  | cluster (u64) | node | incarnation | seq  | postcard(Packet) ‖ Ed25519 (64)
//! ```
//!
//! A sealed datagram's sender id is `node << 32 | incarnation`; the whole datagram, header
//! included, is authenticated (AEAD associated data, or the HMAC input). A signed datagram's
//! signature covers every byte before it.
//!
//! `held` is the sender's announcement of the epochs whose keys it holds (current, previous;
//! [`Held`]), authenticated with the rest of the header.
//!
//! **Which format, per destination** ([`Protection::wire_for`]; the decision, and when to
//! announce, is the model's [`EpochRule`] (`model/src/protection/rule.rs`), model-checked by
//! `sgc check protection`, `spec/protection.md`), under the `seal` policy (`three-step`):
//! 1. *sealed* under the newest epoch that this daemon holds **and** that the destination
//!    announced holding in its newest datagram (of its newest incarnation). A daemon therefore
//!    switches to a new servers' key only once the peer has shown it can open packets under it,
//!    and keeps sealing under the previous key until then: a key change loses no packet.
//! 2. else *signed* with this daemon's Ed25519 key, if one is set (bootstrap, a daemon that
//!    joins before the new key is agreed, a restarted daemon, the other side of a healed
//!    partition): authenticated, not confidential;
//! 3. else *plaintext* version 1, only while no signing key is set.
//!
//! Under the `sign-membership` policy (`integrated-vs`, `optimized-evs`: client data is
//! encrypted end to end, the daemons only authenticate who may change the ring) join messages
//! and commit tokens are *signed*, every other packet is plaintext version 1.
//!
//! **Accepted**: sealed packets under the current or previous epoch (replay window per sender
//! and epoch); signed packets from daemons whose verifying key is known (replay window per
//! daemon and incarnation); plaintext packets only while this daemon has no signing key, or,
//! under `sign-membership`, when they carry neither a join nor a commit token.
//! Every refusal is a typed [`DecodeError`], counted by the runtime as `dropped_<label>`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sgc_crypto::seal::{KeyRing, ReplayWindow, SealError, SealInfo, Suite};
use sgc_crypto::sign_key;
use sgc_model::protection::EpochRule;
pub use sgc_model::protection::{ANNOUNCE_EVERY, Held, Policy, Wire};
use sgc_model::ring::{NodeId, Packet, Pid, RingId};

use zeroize::Zeroizing;

use crate::config::{ConfigError, DaemonConfig, SecurityMode};
use crate::keys::ServersKeyHook;
use crate::transport::{Codec, DecodeError, HEADER_LEN, MAGIC, VERSION, decode_body};

/// Transport version of protected datagrams.
pub const VERSION_PROTECTED: u8 = 2;
/// Mode byte of a sealed datagram.
pub const MODE_SEALED: u8 = 1;
/// Mode byte of a signed datagram.
pub const MODE_SIGNED: u8 = 2;
/// Mode byte of an announcement: a signed datagram without a packet, telling a peer which
/// epochs the sender holds.
pub const MODE_ANNOUNCE: u8 = 3;
/// Header of a sealed datagram: prefix, [`SealInfo`], [`Held`].
pub const SEALED_HEADER_LEN: usize = 14 + SealInfo::LEN + HELD_LEN;
/// Header of a signed datagram: prefix, node, incarnation, sequence number, [`Held`].
pub const SIGNED_HEADER_LEN: usize = 14 + 2 + 4 + 8 + HELD_LEN;
/// An Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes a protected datagram adds, at most, to the plaintext (version 1) one: the signed
/// format's header and signature (89), above the sealed one's.
pub const PROTECTION_OVERHEAD: usize = SIGNED_HEADER_LEN - HEADER_LEN + SIGNATURE_LEN;

/// Encoded length of [`Held`] (a flags byte, bit 0 = current present, bit 1 = previous
/// present, then both epochs as big-endian u64, zero when absent).
pub const HELD_LEN: usize = 17;

fn write_held(h: &Held, out: &mut [u8]) {
    if let Some(o) = out.get_mut(..HELD_LEN) {
        o[0] = u8::from(h.current.is_some()) | u8::from(h.previous.is_some()) << 1;
        o[1..9].copy_from_slice(&h.current.unwrap_or(0).to_be_bytes());
        o[9..17].copy_from_slice(&h.previous.unwrap_or(0).to_be_bytes());
    }
}

fn read_held(bytes: &[u8]) -> Result<Held, DecodeError> {
    let b = bytes.get(..HELD_LEN).ok_or(DecodeError::Truncated(bytes.len()))?;
    let u = |at: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[at..at + 8]);
        u64::from_be_bytes(x)
    };
    match b[0] {
        0..=3 => Ok(Held {
            current: (b[0] & 1 != 0).then(|| u(1)),
            previous: (b[0] & 2 != 0).then(|| u(9)),
        }),
        _ => Err(DecodeError::BadMode(b[0])),
    }
}

/// The sender id of a pid in sealed headers.
pub const fn sender_id(pid: Pid) -> u64 {
    ((pid.node as u64) << 32) | pid.inc as u64
}

fn pid_of(sender: u64) -> Option<Pid> {
    let node = u16::try_from(sender >> 32).ok()?;
    Some(Pid::new(node, (sender & 0xffff_ffff) as u32))
}

/// The protection epoch of a servers' key: ring sequence (32 bits), ring representative's
/// node (16 bits), refresh count (16 bits, saturating). Increasing at one daemon (its rings'
/// sequences increase, refreshes count up within a ring) and distinct for the keys of
/// concurrent rings of a partitioned cluster (different representatives).
pub fn epoch_label(ring: RingId, refresh: u32) -> u64 {
    let seq = ring.seq.min(u64::from(u32::MAX));
    seq << 32 | u64::from(ring.rep.node) << 16 | u64::from(refresh.min(0xffff))
}

fn is_membership(pkt: &Packet) -> bool {
    matches!(pkt, Packet::Join(_) | Packet::Commit(_))
}

/// Keys and replay state of one daemon's packet protection.
pub struct Protection {
    codec: Codec,
    me: Pid,
    ring: KeyRing,
    /// Every decision (which format per destination, announcements): the model's machine.
    rule: EpochRule,
    signer: Option<SigningKey>,
    peers: BTreeMap<NodeId, VerifyingKey>,
    signed_seq: u64,
    signed_windows: BTreeMap<NodeId, (u32, ReplayWindow)>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("me", &self.me)
            .field("ring", &self.ring)
            .field("rule", &self.rule)
            .field("signer", &self.signer.is_some())
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// `three-step` protection for daemon `me` of the codec's cluster, sealing with `suite`;
    /// no key yet.
    pub fn new(codec: Codec, me: Pid, suite: Suite) -> Self {
        Self {
            codec,
            me,
            ring: KeyRing::new(suite, sender_id(me)),
            rule: EpochRule::new(me, Policy::Seal),
            signer: None,
            peers: BTreeMap::new(),
            signed_seq: 0,
            signed_windows: BTreeMap::new(),
        }
    }

    /// The same with another policy.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.rule.policy = policy;
        self
    }

    /// The policy.
    pub const fn policy(&self) -> Policy {
        self.rule.policy
    }

    /// The suite.
    pub const fn suite(&self) -> Suite {
        self.ring.suite()
    }

    /// The current and previous epochs held.
    pub fn epochs(&self) -> (Option<u64>, Option<u64>) {
        (self.ring.current(), self.ring.previous())
    }

    fn held(&self) -> Held {
        self.rule.held
    }

    /// Install the servers' key of a newer `epoch`: packets of this and the previous epoch
    /// are accepted at once; packets to a peer are sealed under it once that peer announces
    /// holding it (see the module doc).
    pub fn install_key(&mut self, epoch: u64, servers_key: &[u8]) -> Result<(), SealError> {
        self.ring.install(epoch, servers_key)?;
        self.rule.install(epoch);
        Ok(())
    }

    /// Sign packets with this key; from now on plaintext join messages and commit tokens (and,
    /// under the `seal` policy, every plaintext packet) are refused.
    pub fn set_signing_key(&mut self, key: SigningKey) {
        self.signer = Some(key);
        self.rule.signer = true;
    }

    /// The verifying key of daemon `node` for its signed packets.
    pub fn add_peer_key(&mut self, node: NodeId, key: VerifyingKey) {
        self.peers.insert(node, key);
        self.rule.add_peer(node);
    }

    /// How `pkt` to `dest` is protected (see the module doc).
    pub fn wire_for(&self, dest: NodeId, pkt: &Packet) -> Wire {
        self.rule.wire_for(dest, is_membership(pkt))
    }

    /// Whether announcements are waiting for [`Protection::take_announcements`].
    pub fn has_announcements(&self) -> bool {
        self.rule.has_announcements()
    }

    /// The announcements to send now: destination and signed datagram.
    pub fn take_announcements(&mut self) -> Vec<(NodeId, Vec<u8>)> {
        let to = self.rule.take_announcements();
        to.into_iter()
            .filter_map(|n| self.signed(MODE_ANNOUNCE, None).ok().map(|d| (n, d)))
            .collect()
    }

    /// Encode `pkt` from this daemon in format `wire`.
    pub fn encode(&mut self, wire: Wire, pkt: &Packet) -> Result<Vec<u8>, SealError> {
        match wire {
            Wire::Plain => Ok(self.codec.encode(self.me, pkt)),
            Wire::Sealed(epoch) => {
                let mut buf =
                    self.protected_header(MODE_SEALED, SEALED_HEADER_LEN, matches!(pkt, Packet::Data(_)));
                write_held(&self.held(), &mut buf[14 + SealInfo::LEN..]);
                postcard_into(pkt, &mut buf);
                self.ring
                    .seal(Some(epoch), &mut buf, SEALED_HEADER_LEN, |info, h| {
                        if let Some(slot) = h.get_mut(14..) {
                            info.write_to(slot);
                        }
                    })?;
                Ok(buf)
            }
            Wire::Signed => self.signed(MODE_SIGNED, Some(pkt)),
        }
    }

    /// A signed datagram of `mode` carrying `pkt` (none for an announcement).
    fn signed(&mut self, mode: u8, pkt: Option<&Packet>) -> Result<Vec<u8>, SealError> {
        let Some(key) = &self.signer else {
            return Err(SealError::NoKey);
        };
        let mut buf = self.protected_header(mode, SIGNED_HEADER_LEN, matches!(pkt, Some(Packet::Data(_))));
        buf[14..16].copy_from_slice(&self.me.node.to_be_bytes());
        buf[16..20].copy_from_slice(&self.me.inc.to_be_bytes());
        buf[20..28].copy_from_slice(&self.signed_seq.to_be_bytes());
        write_held(&self.held(), &mut buf[28..]);
        self.signed_seq = self
            .signed_seq
            .checked_add(1)
            .ok_or(SealError::SequenceExhausted)?;
        if let Some(pkt) = pkt {
            postcard_into(pkt, &mut buf);
        }
        let sig = key.sign(&buf);
        buf.extend_from_slice(&sig.to_bytes());
        Ok(buf)
    }

    fn protected_header(&self, mode: u8, len: usize, data: bool) -> Vec<u8> {
        let mut buf = Vec::with_capacity(if data { 1600 } else { 192 });
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION_PROTECTED);
        buf.push(mode);
        buf.extend_from_slice(&self.codec.cluster.to_be_bytes());
        buf.resize(len, 0);
        buf
    }

    /// Check and decode a datagram: the packet, or `None` for an announcement (which only
    /// updates what its sender holds). `admit` is asked about the claimed sender before any
    /// cryptography is spent on it (the runtime checks its source address).
    pub fn decode(
        &mut self,
        bytes: &[u8],
        admit: impl FnOnce(Pid) -> bool,
    ) -> Result<Option<(Pid, Packet)>, DecodeError> {
        if bytes.len() > self.codec.max_datagram {
            return Err(DecodeError::Oversize(bytes.len()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Truncated(bytes.len()));
        }
        if bytes[0..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        match bytes[4] {
            VERSION => {
                let (pid, pkt) = self.codec.decode(bytes)?;
                if !self.rule.accepts_plaintext(is_membership(&pkt)) {
                    return Err(DecodeError::Plaintext);
                }
                if !admit(pid) {
                    return Err(DecodeError::UnknownSender);
                }
                self.rule.on_plaintext(pid);
                Ok(Some((pid, pkt)))
            }
            VERSION_PROTECTED => {
                let (pid, held, pkt, sealed) = self.decode_protected(bytes, admit)?;
                self.rule.on_datagram(pid, held, sealed, pkt.is_some());
                Ok(pkt.map(|p| (pid, p)))
            }
            v => Err(DecodeError::BadVersion(v)),
        }
    }

    fn decode_protected(
        &mut self,
        bytes: &[u8],
        admit: impl FnOnce(Pid) -> bool,
    ) -> Result<(Pid, Held, Option<Packet>, Option<u64>), DecodeError> {
        let mut c = [0u8; 8];
        c.copy_from_slice(&bytes[6..14]);
        let cluster = u64::from_be_bytes(c);
        if cluster != self.codec.cluster {
            return Err(DecodeError::WrongCluster(cluster));
        }
        match bytes[5] {
            MODE_SEALED => {
                let info = SealInfo::read_from(&bytes[14..])?;
                let held = read_held(bytes.get(14 + SealInfo::LEN..).unwrap_or_default())?;
                let pid = pid_of(info.sender).ok_or(DecodeError::UnknownSender)?;
                if !admit(pid) {
                    return Err(DecodeError::UnknownSender);
                }
                let body = self.ring.open(&info, bytes, SEALED_HEADER_LEN)?;
                Ok((pid, held, Some(decode_body(&body)?), Some(info.epoch)))
            }
            mode @ (MODE_SIGNED | MODE_ANNOUNCE) => {
                if bytes.len() < SIGNED_HEADER_LEN + SIGNATURE_LEN {
                    return Err(DecodeError::Truncated(bytes.len()));
                }
                let node = u16::from_be_bytes([bytes[14], bytes[15]]);
                let inc = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
                let mut s = [0u8; 8];
                s.copy_from_slice(&bytes[20..28]);
                let seq = u64::from_be_bytes(s);
                let held = read_held(&bytes[28..])?;
                let pid = Pid::new(node, inc);
                if !admit(pid) {
                    return Err(DecodeError::UnknownSender);
                }
                let key = self.peers.get(&node).ok_or(DecodeError::BadSignature)?;
                let (signed, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
                let sig = Signature::from_slice(sig).map_err(|_| DecodeError::BadSignature)?;
                let fresh = match self.signed_windows.get(&node) {
                    Some((i, w)) if *i == inc => w.check(seq).is_ok(),
                    Some((i, _)) => inc > *i,
                    None => true,
                };
                if !fresh {
                    return Err(DecodeError::Seal(SealError::Replay {
                        sender: sender_id(pid),
                        seq,
                    }));
                }
                key.verify_strict(signed, &sig)
                    .map_err(|_| DecodeError::BadSignature)?;
                let body = &signed[SIGNED_HEADER_LEN..];
                let pkt = match mode {
                    MODE_SIGNED => Some(decode_body(body)?),
                    _ if body.is_empty() => None,
                    _ => return Err(DecodeError::BadMode(mode)),
                };
                let entry = self
                    .signed_windows
                    .entry(node)
                    .or_insert_with(|| (inc, ReplayWindow::new()));
                if entry.0 != inc {
                    *entry = (inc, ReplayWindow::new());
                }
                // Checked fresh above; a failure here cannot happen, and would only drop.
                entry.1.accept(seq).map_err(|_| {
                    DecodeError::Seal(SealError::Replay {
                        sender: sender_id(pid),
                        seq,
                    })
                })?;
                Ok((pid, held, pkt, None))
            }
            m => Err(DecodeError::BadMode(m)),
        }
    }
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Servers' keys agreed by the keys engine and not yet installed: filled by the hook the
/// keys driver calls ([`AgreedKeys::hook`]), emptied by [`Protection::install_agreed`] right
/// after the delivery that completed the agreement.
#[derive(Clone, Default)]
pub struct AgreedKeys(Arc<Mutex<Vec<AgreedKey>>>);

/// A protection epoch and its servers' key.
type AgreedKey = (u64, Zeroizing<[u8; 32]>);

impl AgreedKeys {
    /// The hook for [`crate::sessions::Sessions::set_servers_key_hook`].
    pub fn hook(&self) -> ServersKeyHook {
        let queue = self.clone();
        Box::new(move |ring, epoch, key| {
            if let Ok(mut q) = queue.0.lock() {
                q.push((epoch_label(ring, epoch.refresh), Zeroizing::new(*key)));
            }
        })
    }

    fn take(&self) -> Vec<AgreedKey> {
        self.0
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}

/// `status.protection` of the admin status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionStatus {
    /// `seal` (three-step) or `sign-membership`.
    pub policy: String,
    /// The sealing suite (three-step).
    pub suite: String,
    /// The current epoch (hex), if a servers' key is installed.
    pub current: Option<String>,
    /// The previous epoch (hex), still accepted.
    pub previous: Option<String>,
    /// The daemons this one seals to now (they announced a key it holds).
    pub sealed_to: Vec<NodeId>,
}

impl Protection {
    /// The protection `[security]` asks for: `three-step` seals (suite
    /// `security.transport_suite`), `integrated-vs` and `optimized-evs` sign membership
    /// packets; both sign with `security.sign_key` and verify with the peers' `sign_pub`.
    /// `None` with security off.
    pub fn from_config(cfg: &DaemonConfig, codec: Codec, me: Pid) -> Result<Option<Self>, ConfigError> {
        let policy = match cfg.security.mode {
            SecurityMode::None => return Ok(None),
            SecurityMode::ThreeStep => Policy::Seal,
            _ => Policy::SignMembership,
        };
        let mut p = Self::new(codec, me, cfg.security.transport_suite.suite()).with_policy(policy);
        let path = cfg
            .security
            .sign_key
            .as_ref()
            .ok_or_else(|| invalid("security.sign_key", "required when security is on"))?;
        let secret =
            sign_key::read_signing_key(path).map_err(|e| invalid("security.sign_key", e.to_string()))?;
        p.set_signing_key(SigningKey::from_bytes(&secret));
        for (i, peer) in cfg.peers.iter().enumerate() {
            let key = peer
                .sign_pub
                .as_deref()
                .and_then(sign_key::from_hex)
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .ok_or_else(|| invalid(format!("peers[{i}].sign_pub"), "not an Ed25519 public key"))?;
            p.add_peer_key(peer.id, key);
        }
        Ok(Some(p))
    }

    /// Install the keys agreed since the last call (see [`AgreedKeys`]); each epoch with the
    /// outcome.
    pub fn install_agreed(&mut self, agreed: &AgreedKeys) -> Vec<(u64, Result<(), SealError>)> {
        agreed
            .take()
            .into_iter()
            .map(|(epoch, key)| (epoch, self.install_key(epoch, &key[..])))
            .collect()
    }

    /// The admin status.
    pub fn status(&self) -> ProtectionStatus {
        let mine = self.held();
        ProtectionStatus {
            policy: match self.rule.policy {
                Policy::Seal => "seal",
                Policy::SignMembership => "sign-membership",
            }
            .to_owned(),
            suite: self.suite().name().to_owned(),
            current: mine.current.map(|e| format!("{e:016x}")),
            previous: mine.previous.map(|e| format!("{e:016x}")),
            sealed_to: self
                .rule
                .announced
                .iter()
                .filter(|(_, (_, h))| {
                    [mine.current, mine.previous]
                        .into_iter()
                        .flatten()
                        .any(|e| h.contains(e))
                })
                .map(|(n, _)| *n)
                .filter(|_| self.rule.policy == Policy::Seal)
                .collect(),
        }
    }
}

fn postcard_into(pkt: &Packet, buf: &mut Vec<u8>) {
    // Serializing an in-memory packet into a Vec cannot fail; on the impossible error the
    // body stays empty and peers reject the datagram.
    let body = std::mem::take(buf);
    *buf = postcard::to_extend(pkt, body).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use sgc_model::ring::{Join, RingId};

    use super::*;

    const KEY: &[u8] = b"the servers' key of epoch 7 ....";
    const OTHER: &[u8] = b"another cluster's key, 32 bytes!";

    fn prot(node: u16, suite: Suite) -> Protection {
        Protection::new(Codec::new("test", 65_507), Pid::new(node, 3), suite)
    }

    fn join() -> Packet {
        Packet::Join(Join {
            proc_set: BTreeSet::from([Pid::new(0, 3), Pid::new(1, 3)]),
            fail_set: BTreeSet::new(),
            ring_seq: 9,
        })
    }

    fn any_sender(_: Pid) -> bool {
        true
    }

    fn token() -> Packet {
        Packet::Token(sgc_model::ring::Token {
            ring: RingId {
                seq: 9,
                rep: Pid::new(0, 3),
            },
            token_seq: 4,
            seq: 0,
            aru: 0,
            aru_id: None,
            rtr: BTreeSet::new(),
            fcc: 0,
            backlog: 0,
            rtx_pending: BTreeSet::new(),
            done: BTreeSet::new(),
            installed: None,
        })
    }

    /// `from` sends `to` a packet in the format `from` picks; `to` decodes it.
    fn exchange(from: &mut Protection, to: &mut Protection) -> Result<Option<(Pid, Packet)>, DecodeError> {
        let w = from.wire_for(to.me.node, &join());
        let d = from.encode(w, &join()).expect("encode");
        to.decode(&d, any_sender)
    }

    #[test]
    fn same_key_exchanges_sealed_packets_other_key_is_rejected() {
        for suite in Suite::ALL {
            let (mut a, mut b, mut c) = (prot(0, suite), prot(1, suite), prot(2, suite));
            a.install_key(7, KEY).expect("a");
            b.install_key(7, KEY).expect("b");
            c.install_key(7, OTHER).expect("c");
            // Nothing announced yet: no sealing (and no signing key: plaintext).
            assert_eq!(a.wire_for(1, &join()), Wire::Plain);
            let d = a.encode(Wire::Sealed(7), &join()).expect("seal");
            assert_eq!(&d[..6], &[b'S', b'G', b'C', b'R', VERSION_PROTECTED, MODE_SEALED]);
            assert_eq!(
                b.decode(&d, any_sender),
                Ok(Some((Pid::new(0, 3), join()))),
                "{suite}"
            );
            // b learnt from that datagram that a holds epoch 7.
            assert_eq!(b.wire_for(0, &join()), Wire::Sealed(7));
            // The third daemon, under another key, is rejected both ways.
            let e = c.decode(&d, any_sender).expect_err("other key");
            assert_eq!(e.label(), "seal_unauthentic");
            let from_c = c.encode(Wire::Sealed(7), &join()).expect("seal");
            assert_eq!(
                b.decode(&from_c, any_sender).expect_err("c").label(),
                "seal_unauthentic"
            );
            // Plaintext is still accepted here (no signing key set: bootstrap), protected
            // datagrams are not confused with it.
            let plain = a.encode(Wire::Plain, &join()).expect("plain");
            assert!(b.decode(&plain, any_sender).is_ok());
        }
    }

    #[test]
    fn replayed_and_tampered_datagrams_are_dropped() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        a.install_key(7, KEY).expect("a");
        b.install_key(7, KEY).expect("b");
        let d = a.encode(Wire::Sealed(7), &join()).expect("seal");
        assert!(b.decode(&d, any_sender).is_ok());
        assert_eq!(
            b.decode(&d, any_sender).expect_err("replay").label(),
            "seal_replay"
        );
        let d = a.encode(Wire::Sealed(7), &join()).expect("seal");
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x40;
            assert!(b.decode(&t, any_sender).is_err(), "byte {i}");
        }
        // The address check comes first: no cryptography for an unknown sender.
        assert_eq!(b.decode(&d, |_| false), Err(DecodeError::UnknownSender));
        assert!(b.decode(&d, any_sender).is_ok());
    }

    #[test]
    fn a_new_key_is_used_only_once_the_peer_announces_it() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        a.install_key(7, KEY).expect("a7");
        b.install_key(7, KEY).expect("b7");
        // Sealed first datagrams (as after an earlier exchange) announce epoch 7 both ways.
        let d = a.encode(Wire::Sealed(7), &join()).expect("a seals");
        b.decode(&d, any_sender).expect("a→b");
        let d = b.encode(Wire::Sealed(7), &join()).expect("b seals");
        a.decode(&d, any_sender).expect("b→a");
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(7));
        // a agrees on epoch 8 first: it keeps sealing under 7 until b shows it holds 8.
        a.install_key(8, OTHER).expect("a8");
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(7));
        assert_eq!(
            exchange(&mut a, &mut b).map(|o| o.map(|(p, _)| p)),
            Ok(Some(Pid::new(0, 3)))
        );
        // b sealing under 7 is accepted by a (previous epoch).
        exchange(&mut b, &mut a).expect("b→a under 7");
        b.install_key(8, OTHER).expect("b8");
        // b learnt from a's last datagram that a holds 8.
        assert_eq!(b.wire_for(0, &join()), Wire::Sealed(8));
        exchange(&mut b, &mut a).expect("b→a under 8");
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(8));
        // Sealing ahead of the peer is refused by it as a future epoch.
        a.install_key(9, KEY).expect("a9");
        let ahead = a.encode(Wire::Sealed(9), &join()).expect("seal 9");
        assert_eq!(
            b.decode(&ahead, any_sender).expect_err("future").label(),
            "seal_future_epoch"
        );
        assert_eq!(
            a.wire_for(1, &join()),
            Wire::Sealed(8),
            "a holds 9 and 8, b holds 8 and 7"
        );
        a.install_key(10, OTHER).expect("a10");
        assert_eq!(a.wire_for(1, &join()), Wire::Plain, "nothing in common any more");
        assert_eq!(a.epochs(), (Some(10), Some(9)));
    }

    #[test]
    fn a_stale_announcement_is_corrected_by_the_peers_next_datagram() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        let (ka, kb) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        a.set_signing_key(ka.clone());
        b.set_signing_key(kb.clone());
        a.add_peer_key(1, kb.verifying_key());
        b.add_peer_key(0, ka.verifying_key());
        a.install_key(7, KEY).expect("a7");
        b.install_key(7, KEY).expect("b7");
        exchange(&mut b, &mut a).expect("b→a");
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(7));
        // A partition: b agrees on two keys a never sees, forgetting epoch 7.
        b.install_key(8, OTHER).expect("b8");
        b.install_key(9, OTHER).expect("b9");
        let stale = a.encode(a.wire_for(1, &join()), &join()).expect("seal");
        assert_eq!(
            b.decode(&stale, any_sender).expect_err("forgotten").label(),
            "seal_unknown_epoch"
        );
        // The partition heals: b's first datagram (signed, nothing in common) corrects a.
        assert_eq!(b.wire_for(0, &join()), Wire::Signed);
        exchange(&mut b, &mut a).expect("signed b→a");
        assert_eq!(a.wire_for(1, &join()), Wire::Signed);
        assert!(exchange(&mut a, &mut b).is_ok());
    }

    fn signing_pair() -> (Protection, Protection) {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        let (ka, kb) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        for p in [&mut a, &mut b] {
            p.add_peer_key(0, ka.verifying_key());
            p.add_peer_key(1, kb.verifying_key());
        }
        a.set_signing_key(ka);
        b.set_signing_key(kb);
        (a, b)
    }

    #[test]
    fn a_new_key_is_announced_to_the_peers_and_an_unaware_sender_is_answered() {
        let (mut a, mut b) = signing_pair();
        a.install_key(7, KEY).expect("a7");
        b.install_key(7, KEY).expect("b7");
        // Installing queues one announcement per peer (not to itself).
        let from_b = b.take_announcements();
        assert_eq!(from_b.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [0]);
        assert_eq!(&from_b[0].1[4..6], &[VERSION_PROTECTED, MODE_ANNOUNCE]);
        assert_eq!(a.decode(&from_b[0].1, any_sender), Ok(None), "no packet");
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(7));
        assert!(!b.has_announcements());
        // b's view of a is unknown (a's announcement was lost): b signs to a; a, which knows
        // b holds epoch 7, answers with an announcement, once.
        let _ = a.take_announcements();
        assert_eq!(b.wire_for(0, &join()), Wire::Signed);
        exchange(&mut b, &mut a).expect("signed");
        let answer = a.take_announcements();
        assert_eq!(answer.len(), 1);
        exchange(&mut b, &mut a).expect("signed again");
        assert!(!a.has_announcements(), "not again for the next datagram");
        b.decode(&answer[0].1, any_sender).expect("announcement");
        assert_eq!(b.wire_for(0, &join()), Wire::Sealed(7));
        // A replayed announcement is refused.
        assert_eq!(
            b.decode(&answer[0].1, any_sender).expect_err("replay").label(),
            "seal_replay"
        );
    }

    #[test]
    fn a_reordered_older_datagram_does_not_undo_an_announcement() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        a.install_key(7, KEY).expect("a7");
        b.install_key(7, KEY).expect("b7");
        let older = b.encode(Wire::Sealed(7), &join()).expect("old");
        b.install_key(8, OTHER).expect("b8");
        a.install_key(8, OTHER).expect("a8");
        let newer = b.encode(Wire::Sealed(8), &join()).expect("new");
        a.decode(&newer, any_sender).expect("new");
        a.decode(&older, any_sender).expect("old, previous epoch");
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(8));
    }

    #[test]
    fn a_restarted_daemon_is_no_longer_a_holder() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        a.install_key(7, KEY).expect("a");
        b.install_key(7, KEY).expect("b");
        let d = b.encode(Wire::Sealed(7), &join()).expect("seal");
        assert!(a.decode(&d, any_sender).is_ok());
        assert_eq!(a.wire_for(1, &join()), Wire::Sealed(7));
        // Daemon 1 restarts (incarnation 4): it has no key; its first datagram is plaintext.
        let mut b4 = Protection::new(Codec::new("test", 65_507), Pid::new(1, 4), Suite::Aes256Gcm);
        let plain = b4.encode(b4.wire_for(0, &join()), &join()).expect("plain");
        assert_eq!(
            a.decode(&plain, any_sender).map(|o| o.map(|(p, _)| p)),
            Ok(Some(Pid::new(1, 4)))
        );
        assert_eq!(
            a.wire_for(1, &join()),
            Wire::Plain,
            "no sealing to an incarnation without the key"
        );
        // A late datagram of the old incarnation does not bring the key back.
        let late = b.encode(Wire::Sealed(7), &join()).expect("seal");
        assert!(a.decode(&late, any_sender).is_ok());
        assert_eq!(a.wire_for(1, &join()), Wire::Plain);
    }

    #[test]
    fn sign_membership_signs_joins_and_commits_only() {
        let membership = |n: u16| prot(n, Suite::Aes256Gcm).with_policy(Policy::SignMembership);
        let (mut a, mut b) = (membership(0), membership(1));
        let ka = SigningKey::from_bytes(&[1; 32]);
        a.set_signing_key(ka.clone());
        b.set_signing_key(SigningKey::from_bytes(&[2; 32]));
        b.add_peer_key(0, ka.verifying_key());
        assert_eq!(a.wire_for(1, &join()), Wire::Signed);
        assert_eq!(a.wire_for(1, &token()), Wire::Plain);
        let j = a.encode(Wire::Signed, &join()).expect("sign");
        assert_eq!(b.decode(&j, any_sender), Ok(Some((Pid::new(0, 3), join()))));
        let t = a.encode(Wire::Plain, &token()).expect("plain");
        assert_eq!(b.decode(&t, any_sender), Ok(Some((Pid::new(0, 3), token()))));
        // A forged, unsigned join is refused.
        let forged = a.encode(Wire::Plain, &join()).expect("plain");
        assert_eq!(b.decode(&forged, any_sender), Err(DecodeError::Plaintext));
    }

    #[test]
    fn signed_bootstrap_packets() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        let ka = SigningKey::from_bytes(&[1; 32]);
        let kb = SigningKey::from_bytes(&[2; 32]);
        a.set_signing_key(ka.clone());
        b.set_signing_key(kb);
        assert_eq!(a.wire_for(1, &join()), Wire::Signed);
        let d = a.encode(Wire::Signed, &join()).expect("sign");
        // Unknown signer: refused.
        assert_eq!(b.decode(&d, any_sender), Err(DecodeError::BadSignature));
        b.add_peer_key(0, ka.verifying_key());
        assert_eq!(b.decode(&d, any_sender), Ok(Some((Pid::new(0, 3), join()))));
        assert_eq!(
            b.decode(&d, any_sender).expect_err("replay").label(),
            "seal_replay"
        );
        let d = a.encode(Wire::Signed, &join()).expect("sign");
        for i in 0..d.len() {
            let mut t = d.clone();
            t[i] ^= 0x08;
            assert!(b.decode(&t, any_sender).is_err(), "byte {i}");
        }
        // With a signing key set, plaintext is refused.
        let mut p = prot(0, Suite::Aes256Gcm);
        let plain = p.encode(Wire::Plain, &join()).expect("plain");
        assert_eq!(b.decode(&plain, any_sender), Err(DecodeError::Plaintext));
        // A datagram of the old incarnation after a newer one: refused.
        let mut a4 = Protection::new(Codec::new("test", 65_507), Pid::new(0, 4), Suite::Aes256Gcm);
        a4.set_signing_key(ka);
        let d4 = a4.encode(Wire::Signed, &join()).expect("sign");
        assert!(b.decode(&d4, any_sender).is_ok());
        assert!(b.decode(&d, any_sender).is_err());
    }

    #[test]
    fn sealed_data_packets_fit_the_overhead_bound() {
        use sgc_model::ring::{Body, Chunk, DataPkt, MsgId, Service};
        let big = Pid::new(u16::MAX, u32::MAX);
        let ring = RingId {
            seq: u64::MAX,
            rep: big,
        };
        let chunk = Chunk {
            id: MsgId {
                origin: big,
                n: u32::MAX,
            },
            frag: u32::MAX,
            last: true,
            bytes: vec![0xa5; 1350 - 22],
        };
        let pkt = Packet::Data(DataPkt {
            ring,
            seq: u64::MAX,
            sender: big,
            round: u64::MAX,
            service: Service::Safe,
            body: Body::Chunks(vec![chunk]),
        });
        let plain = Codec::new("test", 65_507).encode(big, &pkt).len();
        for suite in Suite::ALL {
            let mut p = Protection::new(Codec::new("test", 65_507), big, suite);
            p.install_key(1, KEY).expect("key");
            p.set_signing_key(SigningKey::from_bytes(&[3; 32]));
            for wire in [Wire::Sealed(1), Wire::Signed] {
                let n = p.encode(wire, &pkt).expect("encode").len();
                assert!(
                    n <= plain + PROTECTION_OVERHEAD,
                    "{suite} {wire:?}: {n} > {plain} + overhead"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random datagrams, also behind a genuine protected prefix: errors, never a panic.
        #[test]
        fn random_datagrams_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300), mode in 0u8..4) {
            let mut b = prot(1, Suite::Aes256Gcm);
            b.install_key(7, KEY).expect("b");
            b.add_peer_key(0, SigningKey::from_bytes(&[1; 32]).verifying_key());
            let _ = b.decode(&tail, any_sender);
            let mut d = MAGIC.to_vec();
            d.push(VERSION_PROTECTED);
            d.push(mode);
            d.extend_from_slice(&Codec::new("test", 1).cluster.to_be_bytes());
            d.extend_from_slice(&tail);
            prop_assert!(b.decode(&d, any_sender).is_err());
        }
    }
}
