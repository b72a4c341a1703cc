//! Hostile input: truncations, random bytes, mutated frames and every limit. Decoding must
//! return an error (never panic, never allocate past the limits) and name the right violation.

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use sgc_model::groups::{
    ClientReq, ClientService, ConnectRefusal, GroupName, Multicast, NameError, PrivateName, Target,
};
use sgc_wire::frame::kind;
use sgc_wire::{
    Frame, FrameDecoder, Hello, MAX_MESSAGE, MAX_TO_CLIENT_FRAME, MAX_TO_DAEMON_FRAME, PROTOCOL_VERSION,
    ToClient, ToDaemon, Version, WireError, decode_frame, encode_hello, encode_send,
};

/// A frame with an arbitrary kind and body, length patched to match.
fn raw(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    v.push(kind);
    v.extend_from_slice(body);
    v
}

fn body_of(f: &impl Frame) -> (u8, Vec<u8>) {
    let mut v = Vec::new();
    f.encode(&mut v).unwrap();
    (v[4], v[5..].to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = decode_frame::<ToDaemon>(&bytes);
        let _ = decode_frame::<ToClient>(&bytes);
        let mut d = FrameDecoder::<ToClient>::new();
        d.feed(&bytes);
        while let Ok(Some(_)) = d.next_frame() {}
    }

    #[test]
    fn random_bodies_of_every_kind_never_panic(k in any::<u8>(), body in vec(any::<u8>(), 0..200)) {
        let f = raw(k, &body);
        let _ = decode_frame::<ToDaemon>(&f);
        let _ = decode_frame::<ToClient>(&f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_truncation_fails_cleanly(f in to_client(), g in to_daemon()) {
        for (k, body) in [body_of(&f), body_of(&g)] {
            let whole = raw(k, &body);
            // Cut streams wait for more bytes.
            for cut in 0..whole.len() {
                prop_assert_eq!(decode_frame::<ToClient>(&whole[..cut]).unwrap_or(None), None);
                prop_assert_eq!(decode_frame::<ToDaemon>(&whole[..cut]).unwrap_or(None), None);
            }
            // A frame whose body is cut short (length patched) is an error.
            for cut in 0..body.len() {
                let short = raw(k, &body[..cut]);
                prop_assert!(decode_frame::<ToClient>(&short).is_err());
                prop_assert!(decode_frame::<ToDaemon>(&short).is_err());
            }
        }
    }

    #[test]
    fn mutated_frames_never_panic(f in to_client(), g in to_daemon(), at in any::<prop::sample::Index>(), x in any::<u8>()) {
        for mut v in [{ let mut v = Vec::new(); f.encode(&mut v).unwrap(); v }, { let mut v = Vec::new(); g.encode(&mut v).unwrap(); v }] {
            let i = at.index(v.len());
            v[i] ^= x | 1;
            let _ = decode_frame::<ToClient>(&v);
            let _ = decode_frame::<ToDaemon>(&v);
        }
    }

    #[test]
    fn trailing_bytes_are_refused(f in to_client(), extra in vec(any::<u8>(), 1..8)) {
        let (k, mut body) = body_of(&f);
        body.extend_from_slice(&extra);
        prop_assert_eq!(decode_frame::<ToClient>(&raw(k, &body)).unwrap_err(), WireError::TrailingBytes(extra.len()));
    }
}

#[test]
fn length_limits() {
    let too_long = ((MAX_TO_DAEMON_FRAME + 1) as u32).to_le_bytes();
    assert_eq!(
        decode_frame::<ToDaemon>(&too_long).unwrap_err(),
        WireError::FrameTooLong {
            len: MAX_TO_DAEMON_FRAME + 1,
            max: MAX_TO_DAEMON_FRAME
        }
    );
    let too_long = ((MAX_TO_CLIENT_FRAME + 1) as u32).to_le_bytes();
    assert!(matches!(
        decode_frame::<ToClient>(&too_long),
        Err(WireError::FrameTooLong { .. })
    ));
    assert_eq!(
        decode_frame::<ToClient>(&[0, 0, 0, 0]).unwrap_err(),
        WireError::EmptyFrame
    );
    // A frame at the limit that has not arrived yet is simply incomplete.
    let at_limit = (MAX_TO_DAEMON_FRAME as u32).to_le_bytes();
    assert_eq!(decode_frame::<ToDaemon>(&at_limit).unwrap(), None);
}

#[test]
fn decoder_is_poisoned_after_an_error() {
    let mut d = FrameDecoder::<ToDaemon>::new();
    d.feed(&raw(0x7e, &[]));
    d.feed(&raw(kind::DISCONNECT, &[]));
    assert_eq!(d.next_frame().unwrap_err(), WireError::UnknownKind(0x7e));
    assert_eq!(d.next_frame().unwrap_err(), WireError::UnknownKind(0x7e));
}

#[test]
fn kinds_of_the_other_direction_are_unknown() {
    assert_eq!(
        decode_frame::<ToDaemon>(&raw(kind::CLOSING, &[1])).unwrap_err(),
        WireError::UnknownKind(kind::CLOSING)
    );
    assert_eq!(
        decode_frame::<ToClient>(&raw(kind::DISCONNECT, &[])).unwrap_err(),
        WireError::UnknownKind(kind::DISCONNECT)
    );
}

fn g(s: &str) -> Target {
    Target::Group(GroupName::new(s).unwrap())
}

/// A send body with `n` targets named "g".
fn send_body(n: u8, body_len: u32) -> Vec<u8> {
    let mut b = vec![0x10, 0, 0, n];
    for _ in 0..n {
        b.extend_from_slice(&[0, 1, b'g']);
    }
    b.extend_from_slice(&body_len.to_le_bytes());
    b
}

#[test]
fn target_and_payload_limits() {
    let mut v = Vec::new();
    let many: Vec<Target> = (0..101).map(|_| g("g")).collect();
    assert_eq!(
        encode_send(&mut v, &many, ClientService::Agreed, false, 0, b""),
        Err(WireError::TooManyTargets(101))
    );
    assert_eq!(
        encode_send(&mut v, &[], ClientService::Agreed, false, 0, b""),
        Err(WireError::NoTargets)
    );
    let big = vec![0; MAX_MESSAGE + 1];
    assert_eq!(
        encode_send(&mut v, &many[..1], ClientService::Agreed, false, 0, &big),
        Err(WireError::MessageTooLong(MAX_MESSAGE + 1))
    );
    assert!(v.is_empty(), "failed encodes leave the buffer unchanged");

    assert_eq!(
        decode_frame::<ToDaemon>(&raw(kind::SEND, &send_body(101, 0))).unwrap_err(),
        WireError::TooManyTargets(101)
    );
    assert_eq!(
        decode_frame::<ToDaemon>(&raw(kind::SEND, &send_body(0, 0))).unwrap_err(),
        WireError::NoTargets
    );
    assert_eq!(
        decode_frame::<ToDaemon>(&raw(kind::SEND, &send_body(1, MAX_MESSAGE as u32 + 1))).unwrap_err(),
        WireError::MessageTooLong(MAX_MESSAGE + 1)
    );
    // A body length larger than the bytes present is a truncation, found before allocating.
    assert_eq!(
        decode_frame::<ToDaemon>(&raw(kind::SEND, &send_body(1, 1000))).unwrap_err(),
        WireError::Truncated { what: "body" }
    );
    // Two service bits, or none, is not a service.
    let mut b = send_body(1, 0);
    b[0] = 0x30;
    assert!(matches!(
        decode_frame::<ToDaemon>(&raw(kind::SEND, &b)),
        Err(WireError::BadValue { what: "service", .. })
    ));
}

#[test]
fn lying_counts_do_not_allocate() {
    // A membership claiming 4 billion members in a few bytes.
    let mut b = vec![1, b'g', 0];
    b.extend_from_slice(&[0; 14]); // ring id
    b.extend_from_slice(&1u32.to_le_bytes()); // index
    b.push(1); // cause
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_frame::<ToClient>(&raw(kind::MEMBERSHIP, &b)).unwrap_err(),
        WireError::Truncated { what: "members" }
    );
}

#[test]
fn names_are_validated() {
    let bad_group = raw(kind::JOIN, &[3, b'a', b' ', b'b']);
    assert!(matches!(
        decode_frame::<ToDaemon>(&bad_group),
        Err(WireError::Name(NameError::Character { .. }))
    ));
    let long_group = raw(
        kind::JOIN,
        &[{ 32 }].into_iter().chain([b'a'; 32]).collect::<Vec<u8>>(),
    );
    assert!(matches!(
        decode_frame::<ToDaemon>(&long_group),
        Err(WireError::Name(NameError::Length { .. }))
    ));
    let empty_group = raw(kind::JOIN, &[0]);
    assert!(matches!(
        decode_frame::<ToDaemon>(&empty_group),
        Err(WireError::Name(NameError::Length { .. }))
    ));
    let not_utf8 = raw(kind::JOIN, &[2, 0xc3, 0x28]);
    assert!(matches!(
        decode_frame::<ToDaemon>(&not_utf8),
        Err(WireError::NotUtf8 { .. })
    ));
    // An invalid private name cannot be encoded.
    let p = PrivateName {
        node: 1,
        user: "way-too-long-user".into(),
        daemon: "d".into(),
    };
    let mut v = Vec::new();
    assert!(encode_send(&mut v, &[Target::Private(p)], ClientService::Fifo, false, 0, b"").is_err());
}

#[test]
fn hello_checks() {
    let mut v = Vec::new();
    encode_hello(&Hello::new(Some("alice"), true), &mut v).unwrap();
    // Bad magic.
    let mut bad = v.clone();
    bad[5] = b'X';
    assert_eq!(decode_frame::<ToDaemon>(&bad).unwrap_err(), WireError::BadMagic);
    // An illegal user name maps to REJECT_ILLEGAL_NAME.
    let mut body = b"SGC1".to_vec();
    body.extend_from_slice(&[1, 0, 0, 1, 3, b'a', b'#', b'b']);
    let e = decode_frame::<ToDaemon>(&raw(kind::HELLO, &body)).unwrap_err();
    assert_eq!(e.refusal(), Some(ConnectRefusal::IllegalName));
    let mut body = b"SGC1".to_vec();
    body.extend_from_slice(&[1, 0, 0, 1, 11]);
    body.extend_from_slice(b"elevenchars");
    assert_eq!(
        decode_frame::<ToDaemon>(&raw(kind::HELLO, &body))
            .unwrap_err()
            .refusal(),
        Some(ConnectRefusal::IllegalName)
    );
    assert!(encode_hello(&Hello::new(Some("elevenchars"), true), &mut Vec::new()).is_err());
    // Name length 0 asks for an assigned name; unknown flag bits are ignored.
    let mut body = b"SGC1".to_vec();
    body.extend_from_slice(&[1, 2, 3, 0xf0, 0]);
    let (f, _) = decode_frame::<ToDaemon>(&raw(kind::HELLO, &body))
        .unwrap()
        .unwrap();
    assert_eq!(
        f,
        ToDaemon::Hello(Hello {
            version: Version {
                major: 1,
                minor: 2,
                patch: 3
            },
            wants_membership: false,
            user: None
        })
    );
    // Versions: equal major is compatible.
    assert!(
        Version::check_compatible(Version {
            major: 1,
            minor: 9,
            patch: 9
        })
        .is_ok()
    );
    let e = Version::check_compatible(Version {
        major: 2,
        minor: 0,
        patch: 0,
    })
    .unwrap_err();
    assert_eq!(e.refusal(), Some(ConnectRefusal::Version));
    assert_eq!(PROTOCOL_VERSION.major, 1);
}

#[test]
fn refusal_codes_are_spreads() {
    use sgc_wire::{refusal_code, refusal_from_code};
    for (r, c) in [
        (ConnectRefusal::Quota, -3),
        (ConnectRefusal::IllegalName, -5),
        (ConnectRefusal::NotUnique, -6),
        (ConnectRefusal::Version, -7),
        (ConnectRefusal::Auth, -9),
    ] {
        assert_eq!(refusal_code(r), c);
        assert_eq!(refusal_from_code(c), Ok(r));
        let f = raw(kind::REFUSE, &[c as u8]);
        assert_eq!(
            decode_frame::<ToClient>(&f).unwrap().unwrap().0,
            ToClient::Refuse(r)
        );
    }
    assert!(decode_frame::<ToClient>(&raw(kind::REFUSE, &[(-4i8) as u8])).is_err());
}

#[test]
fn reject_event_keeps_the_request() {
    let req = ClientReq::Send(Multicast {
        targets: vec![g("a"), g("b")],
        service: ClientService::Safe,
        self_discard: true,
        mess_type: 42,
        body: b"hi".to_vec(),
    });
    let f = ToClient::Event(sgc_model::groups::ClientEvent::Reject {
        reason: sgc_model::groups::RejectReason::Denied,
        req,
    });
    let mut v = Vec::new();
    f.encode(&mut v).unwrap();
    assert_eq!(decode_frame::<ToClient>(&v).unwrap().unwrap().0, f);
}
