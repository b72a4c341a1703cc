//! The zero-copy DATA path agrees with the owned one: same values on valid frames, and the same
//! accept/refuse verdict (and value) on mutated and random frames.

mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use sgc_model::groups::ClientEvent;
use sgc_wire::frame::kind;
use sgc_wire::{Frame, FrameDecoder, ToClient, ToClientRef, split_frame};

fn both(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(Some(raw)) = split_frame(bytes, sgc_wire::MAX_TO_CLIENT_FRAME) else {
        return Ok(());
    };
    let owned = ToClient::decode_body(raw.kind, raw.body);
    let borrowed = ToClientRef::decode_body(raw.kind, raw.body).map(ToClientRef::into_owned);
    prop_assert_eq!(owned.is_ok(), borrowed.is_ok(), "{:?} vs {:?}", owned, borrowed);
    if let (Ok(a), Ok(b)) = (owned, borrowed) {
        prop_assert_eq!(a, b);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn borrowed_data_matches_owned(d in data(), at in any::<prop::sample::Index>(), x in any::<u8>()) {
        let f = ToClient::Event(ClientEvent::Data(d));
        let mut v = Vec::new();
        f.encode(&mut v).unwrap();
        both(&v)?;
        let mut dec = FrameDecoder::<ToClient>::new();
        dec.feed(&v);
        let got = dec.next_frame_ref(|fr| fr.into_owned()).unwrap();
        prop_assert_eq!(got, Some(f));
        let i = 5 + at.index(v.len() - 5);
        v[i] ^= x | 1;
        both(&v)?;
    }

    #[test]
    fn random_data_bodies_agree(body in vec(any::<u8>(), 0..120)) {
        let mut v = ((body.len() + 1) as u32).to_le_bytes().to_vec();
        v.push(kind::DATA);
        v.extend_from_slice(&body);
        both(&v)?;
    }

    #[test]
    fn other_frames_pass_through(f in to_client()) {
        let mut v = Vec::new();
        f.encode(&mut v).unwrap();
        both(&v)?;
    }
}
