//! KEYED_MEMBERSHIP (0x25, protocol 1.1): round trip, limits on the key, the key redacted in
//! `Debug`, and what a 1.0 peer needs (the version rule).

use sgc_model::groups::{Cause, Gid, GroupName, Membership, PrivateName};
use sgc_model::ring::{ConfigId, Pid, RingId};
use sgc_wire::{
    Frame, GroupKeyInfo, PROTOCOL_VERSION, ToClient, Version, WireError, decode_frame,
    encode_keyed_membership,
};

fn ring(seq: u64) -> RingId {
    RingId {
        seq,
        rep: Pid::new(0, 3),
    }
}

fn membership() -> Membership {
    let a = PrivateName::new(0, "alice", "d0").unwrap();
    let b = PrivateName::new(1, "bob", "d1").unwrap();
    Membership {
        group: GroupName::new("chat").unwrap(),
        gid: Gid {
            conf: ConfigId::Regular(ring(4)),
            index: 2,
        },
        cause: Cause::Join,
        members: vec![a, b.clone()],
        vs_sets: vec![vec![b]],
        my_vs: 0,
    }
}

fn key(len: usize) -> GroupKeyInfo {
    GroupKeyInfo {
        ring: ring(4),
        refresh: 1,
        key_id: 0x0123_4567_89ab_cdef,
        artificial: true,
        key: vec![0xa7; len],
    }
}

#[test]
fn keyed_membership_round_trips() {
    for len in [20, 32, 64] {
        let f = ToClient::KeyedMembership(membership(), key(len));
        let mut v = Vec::new();
        f.encode(&mut v).unwrap();
        assert_eq!(v[4], 0x25);
        assert_eq!(decode_frame::<ToClient>(&v).unwrap().unwrap(), (f, v.len()));
    }
}

#[test]
fn bad_keys_are_refused_both_ways() {
    let mut v = Vec::new();
    assert!(encode_keyed_membership(&membership(), &key(0), &mut v).is_err());
    assert!(encode_keyed_membership(&membership(), &key(65), &mut v).is_err());
    assert!(v.is_empty());
    encode_keyed_membership(&membership(), &key(32), &mut v).unwrap();
    // The key length byte is the 33rd byte from the end; the flags byte 60 from the end.
    let n = v.len();
    let mut long = v.clone();
    long[n - 33] = 33;
    assert!(decode_frame::<ToClient>(&long).is_err());
    let mut flags = v.clone();
    flags[n - 33 - 8 - 4 - 14 - 1] = 2;
    assert!(matches!(
        decode_frame::<ToClient>(&flags),
        Err(WireError::BadValue {
            what: "key flags",
            ..
        })
    ));
}

#[test]
fn debug_never_shows_the_key() {
    let shown = format!("{:?}", key(32));
    assert!(shown.contains("0123456789abcdef"), "{shown}");
    assert!(!shown.contains("a7"), "{shown}");
}

#[test]
fn only_1_1_peers_accept_keys() {
    assert!(PROTOCOL_VERSION.accepts_keys());
    let old = Version {
        major: 1,
        minor: 0,
        patch: 0,
    };
    assert!(!old.accepts_keys());
}
