//! The driver with real providers: three daemons agree on one servers' key; a forged or
//! undecodable TGDH message is refused and counted, never a panic.

use sgc_crypto::{GroupKeyAlg, X25519Provider};
use sgc_model::keys::RefreshPolicy;
use sgc_model::ring::{Pid, RingId};
use sgc_model::tgdh::message::Signed;

use super::*;

fn ring(seq: u64) -> ConfigId {
    ConfigId::Regular(RingId {
        seq,
        rep: Pid::new(0, 1),
    })
}

fn drivers(n: u16) -> Vec<Driver<X25519Provider>> {
    let all = test_signatures(n);
    (0..n)
        .map(|i| {
            let me = sgc_model::keys::engine::server_member(i);
            let sigs = Arc::new(all.restricted_to(&me));
            Driver::new(
                X25519Provider::new(sigs),
                HmacGroupKeys::new(GroupKeyAlg::HmacSha256),
                KeysConfig::new(i, RefreshPolicy::default()),
                GroupChoice::X25519,
            )
        })
        .collect()
}

/// Deliver `queue` (origin, payload) in order to every driver, with what they broadcast in turn
/// appended, until nothing is left (bounded).
fn deliver_all(ds: &mut [Driver<X25519Provider>], config: ConfigId, mut queue: Vec<(NodeId, Vec<u8>)>) {
    for _ in 0..100 {
        if queue.is_empty() {
            return;
        }
        let (origin, payload) = queue.remove(0);
        let body = payload.get(1..).unwrap_or_default();
        for (i, d) in ds.iter_mut().enumerate() {
            for a in d.handle(DriverIn::Tgdh { origin, config, body }) {
                if let KeysAction::Ring(p) = a {
                    queue.push((u16::try_from(i).unwrap_or(0), p));
                }
            }
        }
    }
    panic!("no quiescence");
}

fn configure(ds: &mut [Driver<X25519Provider>], seq: u64) -> Vec<(NodeId, Vec<u8>)> {
    let mut queue = Vec::new();
    for (i, d) in ds.iter_mut().enumerate() {
        let members = vec![0, 1, 2];
        for a in d.handle(DriverIn::Ring(RingDelivery::Regular {
            id: ring(seq),
            members,
        })) {
            if let KeysAction::Ring(p) = a {
                assert_eq!(p.first(), Some(&KEYS_TAG));
                queue.push((u16::try_from(i).unwrap_or(0), p));
            }
        }
    }
    queue
}

#[test]
fn three_daemons_agree_and_forged_messages_are_counted() {
    let mut ds = drivers(3);
    let queue = configure(&mut ds, 1);
    assert!(!queue.is_empty());
    assert!(ds.iter().all(ServersKeys::holding));
    deliver_all(&mut ds, ring(1), queue);
    let ids: Vec<_> = ds.iter().map(|d| d.status().key_id).collect();
    assert!(ids[0].is_some(), "{:?}", ds[0].status());
    assert!(ids.iter().all(|k| *k == ids[0]), "{ids:?}");
    assert!(ds.iter().all(|d| !d.holding()));

    // A new configuration: forge daemon 0's first message three ways before the real one.
    let queue = configure(&mut ds, 2);
    let (origin, real) = queue.first().cloned().expect("a broadcast");
    let body = real.get(1..).unwrap_or_default();
    let msg: Signed<sgc_crypto::X25519Public, Ed25519Signature> =
        postcard::from_bytes(body).expect("decodes");
    // 1. a flipped signature bit
    let mut sig = msg.signature.to_bytes();
    sig[7] ^= 1;
    let forged = Signed {
        message: msg.message.clone(),
        signature: Ed25519Signature::from_bytes(sig),
    };
    // 2. signed with a key that is not daemon 0's
    let stranger = SignatureDirectory::deterministic(1);
    let bytes = msg.message.signing_bytes().expect("encodes");
    let impostor = Signed {
        message: msg.message.clone(),
        signature: stranger
            .sign(&sgc_model::tgdh::MemberId::new("m0"), &bytes)
            .expect("signs"),
    };
    for bad in [forged, impostor] {
        let b = postcard::to_allocvec(&bad).expect("encodes");
        for d in &mut ds[1..] {
            let out = d.handle(DriverIn::Tgdh {
                origin,
                config: ring(2),
                body: &b,
            });
            assert!(out.is_empty(), "{out:?}");
        }
    }
    // 3. garbage
    for d in &mut ds[1..] {
        assert!(
            d.handle(DriverIn::Tgdh {
                origin,
                config: ring(2),
                body: &[1, 2, 3],
            })
            .is_empty()
        );
    }
    for d in &ds[1..] {
        let s = d.status();
        assert_eq!(s.rejected.get("bad_signature"), Some(&2), "{s:?}");
        assert_eq!(s.rejected.get("undecodable"), Some(&1), "{s:?}");
        assert!(s.holding);
    }
    // The real messages still lead to one new key.
    deliver_all(&mut ds, ring(2), queue);
    let ids2: Vec<_> = ds.iter().map(|d| d.status().key_id).collect();
    assert!(ids2.iter().all(|k| *k == ids2[0] && k.is_some()), "{ids2:?}");
    assert_ne!(ids2[0], ids[0]);
    assert!(ds.iter().all(|d| !d.holding()));
}

#[test]
fn the_hook_gets_every_servers_key() {
    let mut ds = drivers(3);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    ds[1].set_hook(Box::new(move |r, epoch, key| {
        if let Ok(mut v) = s2.lock() {
            assert_eq!(ConfigId::Regular(r), ring(5));
            v.push((epoch, *key));
        }
    }));
    let queue = configure(&mut ds, 5);
    deliver_all(&mut ds, ring(5), queue);
    let v = seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, Epoch { view: 5, refresh: 0 });
    assert_eq!(ds[1].engine.servers_key().map(|k| *k.as_bytes()), Some(v[0].1));
}
