//! Packet sealing through the public [`KeyRing`] API: round trips for every suite, tampering,
//! replays, epochs, key rotation under load, and proptests that random input never panics.

use proptest::prelude::*;
use sgc_crypto::seal::{KeyRing, SealError, SealInfo, Suite, WINDOW};

/// A test framing: 4 bytes of clear header, then the 25-byte [`SealInfo`].
const PREFIX: &[u8] = b"HDR!";
const BODY: usize = 4 + SealInfo::LEN;

const K1: &[u8] = b"servers key of epoch one, 32 by!";
const K2: &[u8] = b"servers key of epoch two, 32 by!";

fn seal(ring: &mut KeyRing, epoch: Option<u64>, body: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut buf = PREFIX.to_vec();
    buf.resize(BODY, 0);
    buf.extend_from_slice(body);
    ring.seal(epoch, &mut buf, BODY, |info, h| info.write_to(&mut h[4..]))?;
    Ok(buf)
}

fn open(ring: &mut KeyRing, datagram: &[u8]) -> Result<Vec<u8>, SealError> {
    let info = SealInfo::read_from(datagram.get(4..).ok_or(SealError::Truncated)?)?;
    ring.open(&info, datagram, BODY)
}

fn pair(suite: Suite) -> (KeyRing, KeyRing) {
    let mut a = KeyRing::new(suite, 0x0001_0000_0007);
    let mut b = KeyRing::new(suite, 0x0002_0000_0003);
    a.install(1, K1).expect("a");
    b.install(1, K1).expect("b");
    (a, b)
}

#[test]
fn round_trip_every_suite_and_size() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        for len in [0usize, 1, 15, 16, 17, 100, 1350, 9000] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let d = seal(&mut a, None, &body).expect("seal");
            assert_eq!(d.len(), BODY + len + suite.overhead(len), "{suite}");
            if suite.confidential() && len >= 16 {
                assert!(
                    !d.windows(16).any(|w| w == &body[..16]),
                    "{suite}: plaintext visible"
                );
            }
            assert_eq!(open(&mut b, &d).expect("open"), body, "{suite} {len}");
            // The sender can open its own packets too (same derivation).
            let d2 = seal(&mut b, None, &body).expect("seal");
            assert_eq!(open(&mut a, &d2).expect("open"), body);
        }
    }
}

#[test]
fn tampering_any_byte_fails() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        let d = seal(&mut a, None, &[0x5a; 40]).expect("seal");
        for i in 0..d.len() {
            for flip in [0x01u8, 0x80] {
                let mut t = d.clone();
                t[i] ^= flip;
                let r = open(&mut b, &t);
                assert!(r.is_err(), "{suite}: flipping byte {i} went unnoticed");
            }
        }
        // Truncations and extensions fail too.
        for n in 0..d.len() {
            assert!(open(&mut b, &d[..n]).is_err(), "{suite}: truncated to {n}");
        }
        let mut longer = d.clone();
        longer.push(0);
        assert!(open(&mut b, &longer).is_err());
        // The untouched packet is still accepted (failures did not move the window).
        assert_eq!(open(&mut b, &d).expect("original"), vec![0x5a; 40]);
    }
}

#[test]
fn replays_and_too_old_packets_are_rejected() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        let first = seal(&mut a, None, b"first").expect("seal");
        let mut later = Vec::new();
        for i in 0..(WINDOW + 10) {
            later.push(seal(&mut a, None, &i.to_be_bytes()).expect("seal"));
        }
        // Out of order within the window is fine, each once.
        let last = later.pop().expect("some");
        assert!(open(&mut b, &last).is_ok());
        assert!(matches!(open(&mut b, &last), Err(SealError::Replay { seq, .. }) if seq == WINDOW + 10));
        let mid = &later[later.len() - 5];
        assert!(open(&mut b, mid).is_ok());
        assert!(matches!(open(&mut b, mid), Err(SealError::Replay { .. })));
        // Far behind the newest: too old, even though it was never seen.
        assert!(matches!(
            open(&mut b, &first),
            Err(SealError::TooOld { seq: 0, .. })
        ));
        assert_eq!(SealError::TooOld { sender: 0, seq: 0 }.label(), "too_old");
    }
}

#[test]
fn wrong_epoch_wrong_key_and_wrong_suite_are_rejected() {
    let (mut a, mut b) = pair(Suite::Aes256Gcm);
    // Another key under the same epoch number: unauthentic.
    let mut c = KeyRing::new(Suite::Aes256Gcm, 9);
    c.install(1, K2).expect("c");
    let d = seal(&mut c, None, b"hello").expect("seal");
    assert_eq!(open(&mut b, &d), Err(SealError::Unauthentic));
    // A newer epoch whose key is not installed here yet.
    c.install(5, K2).expect("c5");
    let d = seal(&mut c, None, b"hello").expect("seal");
    assert_eq!(open(&mut b, &d), Err(SealError::FutureEpoch(5)));
    // Epochs older than the previous one are gone.
    let old = seal(&mut a, None, b"epoch 1").expect("seal");
    b.install(2, K2).expect("2");
    b.install(3, K1).expect("3");
    assert_eq!(open(&mut b, &old), Err(SealError::UnknownEpoch(1)));
    // Another suite.
    let mut g = KeyRing::new(Suite::HmacSha1, 4);
    g.install(3, K1).expect("g");
    let d = seal(&mut g, None, b"x").expect("seal");
    assert!(matches!(open(&mut b, &d), Err(SealError::WrongSuite { .. })));
    // No key at all.
    let mut empty = KeyRing::new(Suite::Aes256Gcm, 1);
    assert_eq!(seal(&mut empty, None, b"x"), Err(SealError::NoKey));
    let gcm = seal(&mut a, None, b"x").expect("seal");
    assert_eq!(open(&mut empty, &gcm), Err(SealError::NoKey));
}

#[test]
fn install_rules() {
    let mut r = KeyRing::new(Suite::Aes256Gcm, 1);
    assert_eq!(r.install(1, &[0; 8]), Err(SealError::KeyTooShort(8)));
    r.install(4, K1).expect("4");
    assert_eq!(
        r.install(4, K2),
        Err(SealError::EpochNotNewer { epoch: 4, current: 4 })
    );
    assert_eq!(
        r.install(3, K2),
        Err(SealError::EpochNotNewer { epoch: 3, current: 4 })
    );
    r.install(7, K2).expect("7");
    assert_eq!((r.current(), r.previous()), (Some(7), Some(4)));
    assert!(r.holds(4) && r.holds(7) && !r.holds(5));
    assert_eq!(seal(&mut r, Some(5), b"x"), Err(SealError::UnknownEpoch(5)));
    let shown = format!("{r:?}");
    assert!(!shown.contains("servers key"), "{shown}");
}

/// A key change under load: the receiver installs the new key first, the sender keeps
/// sending under the old one, then switches; packets of both epochs arrive interleaved (as
/// after reordering) and none is lost.
#[test]
fn key_change_under_load_loses_nothing() {
    for suite in Suite::ALL {
        let (mut a, mut b) = pair(suite);
        let mut in_flight = Vec::new();
        for i in 0u32..200 {
            if i == 100 {
                b.install(2, K2).expect("b2");
            }
            if i == 120 {
                a.install(2, K2).expect("a2");
            }
            in_flight.push((i, seal(&mut a, None, &i.to_be_bytes()).expect("seal")));
            // Deliver with a delay of 7 packets: old-epoch packets arrive after the switch.
            if in_flight.len() > 7 {
                let (i, d) = in_flight.remove(0);
                assert_eq!(open(&mut b, &d).expect("open"), i.to_be_bytes(), "{suite} {i}");
            }
        }
        for (i, d) in in_flight {
            assert_eq!(open(&mut b, &d).expect("open"), i.to_be_bytes());
        }
        // Sending under the previous epoch on purpose still works while it is held.
        let d = seal(&mut a, Some(1), b"late").expect("seal");
        assert_eq!(open(&mut b, &d).expect("open"), b"late");
    }
}

#[test]
fn sequence_numbers_are_fresh_per_packet() {
    let (mut a, _) = pair(Suite::Aes256Gcm);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let d = seal(&mut a, None, b"same body").expect("seal");
        let info = SealInfo::read_from(&d[4..]).expect("info");
        assert!(seen.insert(info.seq));
        assert_eq!((info.epoch, info.sender), (1, 0x0001_0000_0007));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random bytes never panic and are never accepted.
    #[test]
    fn random_datagrams_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..200), suite in 0usize..4) {
        let (_, mut b) = pair(Suite::ALL[suite]);
        prop_assert!(open(&mut b, &bytes).is_err());
    }

    /// A genuine header with a random body and random header fields: rejected, no panic.
    #[test]
    fn random_bodies_under_genuine_headers(body in proptest::collection::vec(any::<u8>(), 0..200),
                                           seq in any::<u64>(), epoch in 0u64..4, suite in 0usize..4) {
        let s = Suite::ALL[suite];
        let (_, mut b) = pair(s);
        let info = SealInfo { suite: s, epoch, sender: 0x0001_0000_0007, seq };
        let mut d = PREFIX.to_vec();
        d.resize(BODY, 0);
        info.write_to(&mut d[4..]);
        d.extend_from_slice(&body);
        prop_assert!(open(&mut b, &d).is_err());
    }

    /// Round trip of random bodies, and a random single-byte change is always detected.
    #[test]
    fn random_round_trip_and_flip(body in proptest::collection::vec(any::<u8>(), 0..600),
                                  pos in any::<prop::sample::Index>(), flip in 1u8..=255, suite in 0usize..4) {
        let (mut a, mut b) = pair(Suite::ALL[suite]);
        let d = seal(&mut a, None, &body).expect("seal");
        let mut t = d.clone();
        let i = pos.index(t.len());
        t[i] ^= flip;
        prop_assert!(open(&mut b, &t).is_err());
        prop_assert_eq!(open(&mut b, &d).expect("open"), body);
    }
}
