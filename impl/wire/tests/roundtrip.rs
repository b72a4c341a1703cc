//! Round trips: every frame type encodes and decodes to itself, into `Vec<u8>` and `BytesMut`
//! alike, and a stream of frames cut at arbitrary points comes out whole from [`FrameDecoder`].

mod common;

use bytes::BytesMut;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use sgc_wire::{Frame, FrameDecoder, ToClient, ToDaemon, decode_frame, encode_data, encode_send};

fn round_trip<F: Frame + PartialEq + std::fmt::Debug>(f: &F) -> Result<(), TestCaseError> {
    let mut v = Vec::new();
    f.encode(&mut v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut b = BytesMut::new();
    f.encode(&mut b).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&v[..], &b[..]);
    let (back, used) = decode_frame::<F>(&v)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .unwrap();
    prop_assert_eq!(used, v.len());
    prop_assert_eq!(&back, f);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn to_daemon_round_trips(f in to_daemon()) {
        round_trip(&f)?;
    }

    #[test]
    fn to_client_round_trips(f in to_client()) {
        round_trip(&f)?;
    }

    #[test]
    fn send_fast_path_matches_generic(m in multicast()) {
        let mut a = Vec::new();
        encode_send(&mut a, &m.targets, m.service, m.self_discard, m.mess_type, &m.body).unwrap();
        let mut b = Vec::new();
        ToDaemon::Req(sgc_model::groups::ClientReq::Send(m)).encode(&mut b).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn data_fast_path_matches_generic(d in data()) {
        let mut a = Vec::new();
        encode_data(&mut a, &d.sender, &d.targets, d.service, d.mess_type, &d.body).unwrap();
        let mut b = Vec::new();
        ToClient::Event(sgc_model::groups::ClientEvent::Data(d)).encode(&mut b).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn streams_split_anywhere(frames in vec(to_client(), 1..8), cuts in vec(any::<prop::sample::Index>(), 0..6)) {
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode(&mut bytes).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut dec = FrameDecoder::<ToClient>::new();
        let mut out = Vec::new();
        for w in points.windows(2) {
            dec.feed(&bytes[w[0]..w[1]]);
            while let Some(f) = dec.next_frame().unwrap() {
                out.push(f);
            }
        }
        prop_assert_eq!(out, frames);
        prop_assert_eq!(dec.buffered(), 0);
    }
}

#[test]
fn full_size_payload_round_trips() {
    use sgc_model::groups::{ClientReq, ClientService, GroupName, Multicast, Target};
    let targets: Vec<Target> = (0..100)
        .map(|i| Target::Group(GroupName::new(format!("{i:0>31}")).unwrap()))
        .collect();
    let m = Multicast {
        targets,
        service: ClientService::Safe,
        self_discard: true,
        mess_type: -1,
        body: vec![7; sgc_wire::MAX_MESSAGE],
    };
    let f = ToDaemon::Req(ClientReq::Send(m));
    let mut v = Vec::new();
    f.encode(&mut v).unwrap();
    assert!(v.len() - 4 <= sgc_wire::MAX_TO_DAEMON_FRAME);
    assert_eq!(decode_frame::<ToDaemon>(&v).unwrap().unwrap().0, f);
}
