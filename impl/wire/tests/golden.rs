//! The byte examples of `docs/protocol.md` §9, checked both ways (encode gives exactly these
//! bytes, decode gives back the value), so the document and the code cannot drift apart.

use sgc_model::groups::{ClientReq, ClientService, ConnectRefusal, GroupName, KillReason, Multicast, Target};
use sgc_wire::{Frame, Hello, ToClient, ToDaemon, decode_frame};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .filter(|t| *t != "|")
        .map(|t| u8::from_str_radix(t, 16).unwrap())
        .collect()
}

fn check<F: Frame + PartialEq + std::fmt::Debug>(f: F, doc: &str) {
    let mut v = Vec::new();
    f.encode(&mut v).unwrap();
    assert_eq!(v, hex(doc), "{f:?}");
    assert_eq!(decode_frame::<F>(&v).unwrap().unwrap(), (f, v.len()));
}

#[test]
fn documented_examples() {
    check(
        ToDaemon::Req(ClientReq::Join(GroupName::new("chat").unwrap())),
        "06 00 00 00 | 10 | 04 63 68 61 74",
    );
    check(
        ToDaemon::Hello(Hello::new(Some("alice"), true)),
        "0f 00 00 00 | 01 | 53 47 43 31 | 01 02 00 | 01 | 05 61 6c 69 63 65",
    );
    check(
        ToClient::Refuse(ConnectRefusal::NotUnique),
        "02 00 00 00 | 03 | fa",
    );
    check(
        ToDaemon::Req(ClientReq::Send(Multicast {
            targets: vec![Target::Group(GroupName::new("g").unwrap())],
            service: ClientService::Agreed,
            self_discard: true,
            mess_type: 7,
            body: b"hi".to_vec(),
        })),
        "0e 00 00 00 | 12 | 50 | 07 00 | 01 | 00 01 67 | 02 00 00 00 | 68 69",
    );
    check(ToClient::Closing(KillReason::SlowClient), "02 00 00 00 | 2f | 01");
}
