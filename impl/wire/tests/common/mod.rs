//! Proptest strategies for every wire value (shared by the wire tests).

#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use sgc_model::groups::{
    Cause, ClientEvent, ClientReq, ClientService, ConnectRefusal, DataMsg, Gid, GroupName, KillReason,
    Membership, Multicast, PrivateName, RejectReason, Target, UndecryptableMsg,
};
use sgc_model::keys::Undecryptable;
use sgc_model::ring::{ConfigId, Pid, RingId};
use sgc_wire::{Accept, Hello, ToClient, ToDaemon, Version};

pub fn group() -> impl Strategy<Value = GroupName> {
    "[$-~]{1,31}".prop_map(|s| GroupName::new(s).expect("valid by construction"))
}

pub fn private() -> impl Strategy<Value = PrivateName> {
    (any::<u16>(), "[$-~]{1,10}", "[$-~]{1,19}")
        .prop_map(|(n, u, d)| PrivateName::new(n, u, d).expect("valid by construction"))
}

pub fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        group().prop_map(Target::Group),
        private().prop_map(Target::Private)
    ]
}

pub fn targets() -> impl Strategy<Value = Vec<Target>> {
    prop_oneof![4 => vec(target(), 1..4), 1 => vec(target(), 1..=100)]
}

pub fn service() -> impl Strategy<Value = ClientService> {
    proptest::sample::select(ClientService::ALL.to_vec())
}

pub fn ring() -> impl Strategy<Value = RingId> {
    (any::<u64>(), any::<u16>(), any::<u32>()).prop_map(|(seq, n, i)| RingId {
        seq,
        rep: Pid::new(n, i),
    })
}

pub fn gid() -> impl Strategy<Value = Gid> {
    let conf = prop_oneof![
        ring().prop_map(ConfigId::Regular),
        (ring(), ring()).prop_map(|(a, b)| ConfigId::Transitional(a, b)),
    ];
    (conf, any::<u32>()).prop_map(|(conf, index)| Gid { conf, index })
}

pub fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..300)
}

pub fn multicast() -> impl Strategy<Value = Multicast> {
    (targets(), service(), any::<bool>(), any::<i16>(), body()).prop_map(
        |(targets, service, self_discard, mess_type, body)| Multicast {
            targets,
            service,
            self_discard,
            mess_type,
            body,
        },
    )
}

pub fn req() -> impl Strategy<Value = ClientReq> {
    prop_oneof![
        group().prop_map(ClientReq::Join),
        group().prop_map(ClientReq::Leave),
        multicast().prop_map(ClientReq::Send),
        Just(ClientReq::Disconnect),
    ]
}

pub fn version() -> impl Strategy<Value = Version> {
    (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(major, minor, patch)| Version { major, minor, patch })
}

pub fn hello() -> impl Strategy<Value = Hello> {
    (version(), any::<bool>(), proptest::option::of("[$-~]{1,10}")).prop_map(|(version, w, user)| Hello {
        version,
        wants_membership: w,
        user,
    })
}

pub fn to_daemon() -> impl Strategy<Value = ToDaemon> {
    prop_oneof![hello().prop_map(ToDaemon::Hello), req().prop_map(ToDaemon::Req)]
}

pub fn data() -> impl Strategy<Value = DataMsg> {
    (private(), targets(), service(), any::<i16>(), body()).prop_map(
        |(sender, targets, service, mess_type, body)| DataMsg {
            sender,
            targets,
            service,
            mess_type,
            body,
        },
    )
}

pub fn cause() -> impl Strategy<Value = Cause> {
    proptest::sample::select(vec![Cause::Join, Cause::Leave, Cause::Disconnect, Cause::Network])
}

pub fn membership() -> impl Strategy<Value = Membership> {
    (
        group(),
        gid(),
        cause(),
        vec(private(), 0..6),
        vec(vec(private(), 0..4), 0..4),
        any::<u32>(),
    )
        .prop_map(|(group, gid, cause, members, vs_sets, my_vs)| Membership {
            group,
            gid,
            cause,
            members,
            vs_sets,
            my_vs: my_vs as usize,
        })
}

pub fn reject_reason() -> impl Strategy<Value = RejectReason> {
    proptest::sample::select(vec![
        RejectReason::TooManyGroups,
        RejectReason::GroupFull,
        RejectReason::Denied,
        RejectReason::UnknownTarget,
    ])
}

pub fn event() -> impl Strategy<Value = ClientEvent> {
    prop_oneof![
        data().prop_map(ClientEvent::Data),
        membership().prop_map(ClientEvent::Membership),
        (group(), gid()).prop_map(|(group, gid)| ClientEvent::Transition { group, gid }),
        group().prop_map(ClientEvent::SelfLeave),
        (reject_reason(), req()).prop_map(|(reason, req)| ClientEvent::Reject { reason, req }),
        (
            group(),
            private(),
            any::<i16>(),
            proptest::option::of(any::<u64>()),
            proptest::sample::select(vec![
                Undecryptable::NotEncrypted,
                Undecryptable::KeyNotHeld,
                Undecryptable::Unauthentic,
            ])
        )
            .prop_map(|(group, sender, mess_type, key_id, reason)| {
                ClientEvent::Undecryptable(UndecryptableMsg {
                    group,
                    sender,
                    mess_type,
                    key_id,
                    reason,
                })
            }),
    ]
}

pub fn refusal() -> impl Strategy<Value = ConnectRefusal> {
    proptest::sample::select(vec![
        ConnectRefusal::NotUnique,
        ConnectRefusal::IllegalName,
        ConnectRefusal::Quota,
        ConnectRefusal::Auth,
        ConnectRefusal::Version,
    ])
}

pub fn to_client() -> impl Strategy<Value = ToClient> {
    prop_oneof![
        (version(), private()).prop_map(|(version, name)| ToClient::Accept(Accept { version, name })),
        refusal().prop_map(ToClient::Refuse),
        event().prop_map(ToClient::Event),
        proptest::sample::select(vec![KillReason::SlowClient, KillReason::ProtocolViolation])
            .prop_map(ToClient::Closing),
    ]
}
