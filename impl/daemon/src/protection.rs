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
//! **Which format, per destination** ([`Protection::wire_for`]):
//! 1. *sealed* under the newest installed epoch whose key the destination holds (the holders
//!    are given with the key: the daemons that agreed on it);
//! 2. else *signed* with this daemon's Ed25519 key, if one is set (bootstrap, and a daemon
//!    that joins before the new key is agreed): authenticated, not confidential;
//! 3. else *plaintext* version 1, only while no signing key is set (the status before the
//!    keys engine provides daemon identities).
//!
//! **Accepted**: sealed packets under the current or previous epoch (replay window per sender
//! and epoch); signed packets from daemons whose verifying key is known (replay window per
//! daemon and incarnation); plaintext packets only while this daemon has no signing key.
//! Every refusal is a typed [`DecodeError`], counted by the runtime as `dropped_<label>`.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sgc_crypto::seal::{KeyRing, ReplayWindow, SealError, SealInfo, Suite};
use sgc_model::ring::{NodeId, Packet, Pid};

use crate::transport::{Codec, DecodeError, HEADER_LEN, MAGIC, VERSION, decode_body};

/// Transport version of protected datagrams.
pub const VERSION_PROTECTED: u8 = 2;
/// Mode byte of a sealed datagram.
pub const MODE_SEALED: u8 = 1;
/// Mode byte of a signed datagram.
pub const MODE_SIGNED: u8 = 2;
/// Header of a sealed datagram.
pub const SEALED_HEADER_LEN: usize = 14 + SealInfo::LEN;
/// Header of a signed datagram.
pub const SIGNED_HEADER_LEN: usize = 14 + 2 + 4 + 8;
/// An Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes a protected datagram adds, at most, to the plaintext (version 1) one: the signed
/// format's 8 header bytes and signature (72), above the sealed one's 19 + 36.
pub const PROTECTION_OVERHEAD: usize = SIGNED_HEADER_LEN - HEADER_LEN + SIGNATURE_LEN;

/// How a datagram to one destination is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wire {
    /// Sealed under this epoch's key.
    Sealed(u64),
    /// Signed with this daemon's Ed25519 key.
    Signed,
    /// Plaintext version 1 (only while no signing key is set).
    Plain,
}

/// The sender id of a pid in sealed headers.
pub const fn sender_id(pid: Pid) -> u64 {
    ((pid.node as u64) << 32) | pid.inc as u64
}

fn pid_of(sender: u64) -> Option<Pid> {
    let node = u16::try_from(sender >> 32).ok()?;
    Some(Pid::new(node, (sender & 0xffff_ffff) as u32))
}

/// Keys and replay state of one daemon's packet protection.
pub struct Protection {
    codec: Codec,
    me: Pid,
    ring: KeyRing,
    /// The daemons (node and incarnation) holding each installed epoch's key.
    holders: BTreeMap<u64, BTreeSet<Pid>>,
    /// The newest incarnation of each daemon seen in an accepted datagram.
    seen: BTreeMap<NodeId, u32>,
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
            .field("holders", &self.holders)
            .field("signer", &self.signer.is_some())
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// Protection for daemon `me` of the codec's cluster, sealing with `suite`; no key yet.
    pub fn new(codec: Codec, me: Pid, suite: Suite) -> Self {
        Self {
            codec,
            me,
            ring: KeyRing::new(suite, sender_id(me)),
            holders: BTreeMap::new(),
            seen: BTreeMap::new(),
            signer: None,
            peers: BTreeMap::new(),
            signed_seq: 0,
            signed_windows: BTreeMap::new(),
        }
    }

    /// The suite.
    pub const fn suite(&self) -> Suite {
        self.ring.suite()
    }

    /// The current and previous epochs held.
    pub fn epochs(&self) -> (Option<u64>, Option<u64>) {
        (self.ring.current(), self.ring.previous())
    }

    /// Install the servers' key of a newer `epoch`, agreed by `holders` (the daemons, as
    /// node and incarnation, of the configuration that agreed on it): packets to them are
    /// sealed under it from now on, as long as they run that incarnation (a restarted daemon
    /// has lost the key); packets of this and the previous epoch are accepted.
    pub fn install_key(
        &mut self,
        epoch: u64,
        servers_key: &[u8],
        holders: impl IntoIterator<Item = Pid>,
    ) -> Result<(), SealError> {
        self.ring.install(epoch, servers_key)?;
        self.holders.insert(epoch, holders.into_iter().collect());
        let ring = &self.ring;
        self.holders.retain(|e, _| ring.holds(*e));
        Ok(())
    }

    /// Sign bootstrap packets with this key; from now on plaintext packets are refused.
    pub fn set_signing_key(&mut self, key: SigningKey) {
        self.signer = Some(key);
    }

    /// The verifying key of daemon `node` for its signed packets.
    pub fn add_peer_key(&mut self, node: NodeId, key: VerifyingKey) {
        self.peers.insert(node, key);
    }

    /// How a packet to `dest` is protected (see the module doc). `dest` holds an epoch's key
    /// if it is among the holders in the newest incarnation seen from it (or, before any
    /// datagram from it was accepted, in any incarnation).
    pub fn wire_for(&self, dest: NodeId) -> Wire {
        let seen = self.seen.get(&dest).copied();
        let holds = |h: &BTreeSet<Pid>| match seen {
            Some(inc) => h.contains(&Pid::new(dest, inc)),
            None => h.iter().any(|p| p.node == dest),
        };
        let sealed = self
            .holders
            .iter()
            .rev()
            .find(|(_, h)| holds(h))
            .map(|(e, _)| Wire::Sealed(*e));
        sealed.unwrap_or(if self.signer.is_some() {
            Wire::Signed
        } else {
            Wire::Plain
        })
    }

    /// Encode `pkt` from this daemon in format `wire`.
    pub fn encode(&mut self, wire: Wire, pkt: &Packet) -> Result<Vec<u8>, SealError> {
        match wire {
            Wire::Plain => Ok(self.codec.encode(self.me, pkt)),
            Wire::Sealed(epoch) => {
                let mut buf = self.protected_header(MODE_SEALED, SEALED_HEADER_LEN, pkt);
                postcard_into(pkt, &mut buf);
                self.ring
                    .seal(Some(epoch), &mut buf, SEALED_HEADER_LEN, |info, h| {
                        if let Some(slot) = h.get_mut(14..) {
                            info.write_to(slot);
                        }
                    })?;
                Ok(buf)
            }
            Wire::Signed => {
                let Some(key) = &self.signer else {
                    return Err(SealError::NoKey);
                };
                let mut buf = self.protected_header(MODE_SIGNED, SIGNED_HEADER_LEN, pkt);
                buf[14..16].copy_from_slice(&self.me.node.to_be_bytes());
                buf[16..20].copy_from_slice(&self.me.inc.to_be_bytes());
                buf[20..28].copy_from_slice(&self.signed_seq.to_be_bytes());
                self.signed_seq = self
                    .signed_seq
                    .checked_add(1)
                    .ok_or(SealError::SequenceExhausted)?;
                postcard_into(pkt, &mut buf);
                let sig = key.sign(&buf);
                buf.extend_from_slice(&sig.to_bytes());
                Ok(buf)
            }
        }
    }

    fn protected_header(&self, mode: u8, len: usize, pkt: &Packet) -> Vec<u8> {
        let cap = match pkt {
            Packet::Data(_) => 1600,
            _ => 192,
        };
        let mut buf = Vec::with_capacity(cap);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION_PROTECTED);
        buf.push(mode);
        buf.extend_from_slice(&self.codec.cluster.to_be_bytes());
        buf.resize(len, 0);
        buf
    }

    /// Check and decode a datagram. `admit` is asked about the claimed sender before any
    /// cryptography is spent on it (the runtime checks its source address).
    pub fn decode(
        &mut self,
        bytes: &[u8],
        admit: impl FnOnce(Pid) -> bool,
    ) -> Result<(Pid, Packet), DecodeError> {
        let (pid, pkt) = self.decode_unrecorded(bytes, admit)?;
        let inc = self.seen.entry(pid.node).or_insert(pid.inc);
        *inc = (*inc).max(pid.inc);
        Ok((pid, pkt))
    }

    fn decode_unrecorded(
        &mut self,
        bytes: &[u8],
        admit: impl FnOnce(Pid) -> bool,
    ) -> Result<(Pid, Packet), DecodeError> {
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
            VERSION if self.signer.is_none() => {
                let (pid, pkt) = self.codec.decode(bytes)?;
                if admit(pid) {
                    Ok((pid, pkt))
                } else {
                    Err(DecodeError::UnknownSender)
                }
            }
            VERSION => Err(DecodeError::Plaintext),
            VERSION_PROTECTED => self.decode_protected(bytes, admit),
            v => Err(DecodeError::BadVersion(v)),
        }
    }

    fn decode_protected(
        &mut self,
        bytes: &[u8],
        admit: impl FnOnce(Pid) -> bool,
    ) -> Result<(Pid, Packet), DecodeError> {
        let mut c = [0u8; 8];
        c.copy_from_slice(&bytes[6..14]);
        let cluster = u64::from_be_bytes(c);
        if cluster != self.codec.cluster {
            return Err(DecodeError::WrongCluster(cluster));
        }
        match bytes[5] {
            MODE_SEALED => {
                let info = SealInfo::read_from(&bytes[14..])?;
                let pid = pid_of(info.sender).ok_or(DecodeError::UnknownSender)?;
                if !admit(pid) {
                    return Err(DecodeError::UnknownSender);
                }
                let body = self.ring.open(&info, bytes, SEALED_HEADER_LEN)?;
                Ok((pid, decode_body(&body)?))
            }
            MODE_SIGNED => {
                if bytes.len() < SIGNED_HEADER_LEN + SIGNATURE_LEN {
                    return Err(DecodeError::Truncated(bytes.len()));
                }
                let node = u16::from_be_bytes([bytes[14], bytes[15]]);
                let inc = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
                let mut s = [0u8; 8];
                s.copy_from_slice(&bytes[20..28]);
                let seq = u64::from_be_bytes(s);
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
                let pkt = decode_body(&signed[SIGNED_HEADER_LEN..])?;
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
                Ok((pid, pkt))
            }
            m => Err(DecodeError::BadMode(m)),
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

    #[test]
    fn same_key_exchanges_sealed_packets_other_key_is_rejected() {
        for suite in Suite::ALL {
            let (mut a, mut b, mut c) = (prot(0, suite), prot(1, suite), prot(2, suite));
            a.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
                .expect("a");
            b.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
                .expect("b");
            c.install_key(7, OTHER, [Pid::new(0, 3), Pid::new(1, 3), Pid::new(2, 3)])
                .expect("c");
            assert_eq!(a.wire_for(1), Wire::Sealed(7));
            let d = a.encode(Wire::Sealed(7), &join()).expect("seal");
            assert_eq!(&d[..6], &[b'S', b'G', b'C', b'R', VERSION_PROTECTED, MODE_SEALED]);
            assert_eq!(b.decode(&d, any_sender), Ok((Pid::new(0, 3), join())), "{suite}");
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
        a.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("a");
        b.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("b");
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
    fn key_rotation_keeps_the_previous_epoch_and_picks_by_holders() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        a.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3), Pid::new(2, 3)])
            .expect("a7");
        b.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3), Pid::new(2, 3)])
            .expect("b7");
        let old = a.encode(Wire::Sealed(7), &join()).expect("old");
        // A new key agreed by 0 and 1 only (2 left or is not there yet).
        a.install_key(8, OTHER, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("a8");
        assert_eq!(a.wire_for(1), Wire::Sealed(8));
        assert_eq!(a.wire_for(2), Wire::Sealed(7));
        assert_eq!(a.wire_for(5), Wire::Plain);
        let new = a.encode(Wire::Sealed(8), &join()).expect("new");
        assert_eq!(
            b.decode(&new, any_sender).expect_err("future").label(),
            "seal_future_epoch"
        );
        b.install_key(8, OTHER, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("b8");
        assert!(b.decode(&new, any_sender).is_ok());
        assert!(
            b.decode(&old, any_sender).is_ok(),
            "previous epoch still accepted"
        );
        a.install_key(9, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("a9");
        assert_eq!(a.wire_for(2), Wire::Plain, "epoch 7 is gone");
        assert_eq!(a.epochs(), (Some(9), Some(8)));
    }

    #[test]
    fn a_restarted_daemon_is_no_longer_a_holder() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        a.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("a");
        b.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)])
            .expect("b");
        let d = b.encode(Wire::Sealed(7), &join()).expect("seal");
        assert!(a.decode(&d, any_sender).is_ok());
        assert_eq!(a.wire_for(1), Wire::Sealed(7));
        // Daemon 1 restarts (incarnation 4): it has no key; its first datagram is plaintext.
        let mut b4 = Protection::new(Codec::new("test", 65_507), Pid::new(1, 4), Suite::Aes256Gcm);
        let plain = b4.encode(b4.wire_for(0), &join()).expect("plain");
        assert_eq!(a.decode(&plain, any_sender).map(|(p, _)| p), Ok(Pid::new(1, 4)));
        assert_eq!(
            a.wire_for(1),
            Wire::Plain,
            "no sealing to an incarnation without the key"
        );
        // A late datagram of the old incarnation does not bring the key back.
        let late = b.encode(Wire::Sealed(7), &join()).expect("seal");
        assert!(a.decode(&late, any_sender).is_ok());
        assert_eq!(a.wire_for(1), Wire::Plain);
    }

    #[test]
    fn signed_bootstrap_packets() {
        let (mut a, mut b) = (prot(0, Suite::Aes256Gcm), prot(1, Suite::Aes256Gcm));
        let ka = SigningKey::from_bytes(&[1; 32]);
        let kb = SigningKey::from_bytes(&[2; 32]);
        a.set_signing_key(ka.clone());
        b.set_signing_key(kb);
        assert_eq!(a.wire_for(1), Wire::Signed);
        let d = a.encode(Wire::Signed, &join()).expect("sign");
        // Unknown signer: refused.
        assert_eq!(b.decode(&d, any_sender), Err(DecodeError::BadSignature));
        b.add_peer_key(0, ka.verifying_key());
        assert_eq!(b.decode(&d, any_sender), Ok((Pid::new(0, 3), join())));
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
            p.install_key(1, KEY, [big]).expect("key");
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
            b.install_key(7, KEY, [Pid::new(0, 3), Pid::new(1, 3)]).expect("b");
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
