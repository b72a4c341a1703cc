//! End-to-end encryption for EVS clients (Optimized EVS, `docs/security.md`): a client seals each
//! multicast to one group under its current key of that group ([`seal`]) and opens what the
//! daemon delivers ([`open`]). In `optimized-evs` mode the daemon re-encrypts a message sent
//! under an older key before delivering it, so a message always opens with the receiver's current
//! key; one that cannot be fixed arrives as [`ClientEvent::Undecryptable`] instead (from the
//! daemon, or from [`open`] when the body does not authenticate).
//!
//! The format is the one VS clients use (`sgc_crypto::e2e`, `docs/protocol.md` §11): AES-256-GCM
//! under the group key, the key id in a 21-byte clear header, bound to group, sender and type.

use sgc_crypto::e2e::{E2eContext, E2eError, E2eKey, header_key_id};
use sgc_model::groups::{ClientEvent, DataMsg, GroupName, PrivateName, Target, UndecryptableMsg};
use sgc_model::keys::Undecryptable;
use sgc_model::vs::MIN_APP_TYPE;

use crate::GroupKeyInfo;

/// `plaintext` sealed under `key` (the sender's current key of `group`).
pub fn seal(
    key: &GroupKeyInfo,
    group: &GroupName,
    sender: &PrivateName,
    mess_type: i16,
    plaintext: &[u8],
) -> Result<Vec<u8>, E2eError> {
    let sender = sender.to_string();
    let ctx = E2eContext {
        group: group.as_str(),
        sender: &sender,
        mess_type,
    };
    E2eKey::new(key.key_id, &key.key)?.seal(&ctx, plaintext)
}

/// A received event with its data opened: a message to one group whose key the client holds
/// (`key_of`) comes back as [`ClientEvent::Data`] with the plaintext, or as
/// [`ClientEvent::Undecryptable`] if it does not open under that key. Other events, and
/// messages of groups without a key (security off), are returned unchanged.
pub fn open<'k>(key_of: impl FnOnce(&GroupName) -> Option<&'k GroupKeyInfo>, ev: ClientEvent) -> ClientEvent {
    let ClientEvent::Data(mut d) = ev else {
        return ev;
    };
    let group = match d.targets.as_slice() {
        [Target::Group(g)] if d.mess_type >= MIN_APP_TYPE => g.clone(),
        _ => return ClientEvent::Data(d),
    };
    let Some(key) = key_of(&group) else {
        return ClientEvent::Data(d);
    };
    let sender = d.sender.to_string();
    let ctx = E2eContext {
        group: group.as_str(),
        sender: &sender,
        mess_type: d.mess_type,
    };
    let opened = E2eKey::new(key.key_id, &key.key).and_then(|k| k.open(&ctx, &d.body));
    match opened {
        Ok(plain) => {
            d.body = plain;
            ClientEvent::Data(d)
        }
        Err(e) => unreadable(group, d, &e),
    }
}

fn unreadable(group: GroupName, d: DataMsg, e: &E2eError) -> ClientEvent {
    let reason = match e {
        E2eError::NotEncrypted => Undecryptable::NotEncrypted,
        E2eError::UnknownKey(_) | E2eError::BadKey => Undecryptable::KeyNotHeld,
        _ => Undecryptable::Unauthentic,
    };
    ClientEvent::Undecryptable(UndecryptableMsg {
        group,
        key_id: header_key_id(&d.body),
        sender: d.sender,
        mess_type: d.mess_type,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use sgc_model::groups::ClientService;
    use sgc_model::ring::{Pid, RingId};

    use super::*;

    fn key(id: u64, byte: u8) -> GroupKeyInfo {
        GroupKeyInfo {
            ring: RingId {
                seq: 1,
                rep: Pid::new(0, 1),
            },
            refresh: 0,
            key_id: id,
            artificial: false,
            key: vec![byte; 32],
        }
    }

    fn data(group: &GroupName, sender: &PrivateName, body: Vec<u8>) -> ClientEvent {
        ClientEvent::Data(DataMsg {
            sender: sender.clone(),
            targets: vec![Target::Group(group.clone())],
            service: ClientService::Agreed,
            mess_type: 0,
            body,
        })
    }

    #[test]
    fn sealed_under_the_current_key_opens_and_anything_else_is_reported() {
        let g = GroupName::new("g").expect("name");
        let alice = PrivateName::new(0, "alice", "d0").expect("name");
        let (k1, k2) = (key(1, 7), key(2, 9));
        let body = seal(&k1, &g, &alice, 0, b"hi").expect("seal");
        assert!(!body.windows(2).any(|w| w == b"hi"), "no plaintext on the wire");
        match open(|_| Some(&k1), data(&g, &alice, body.clone())) {
            ClientEvent::Data(d) => assert_eq!(d.body, b"hi"),
            other => panic!("{other:?}"),
        }
        let wrong = open(|_| Some(&k2), data(&g, &alice, body.clone()));
        assert!(
            matches!(&wrong, ClientEvent::Undecryptable(u) if u.reason == Undecryptable::KeyNotHeld && u.key_id == Some(1)),
            "{wrong:?}"
        );
        let mut altered = body;
        if let Some(b) = altered.last_mut() {
            *b ^= 1;
        }
        let bad = open(|_| Some(&k1), data(&g, &alice, altered));
        assert!(matches!(&bad, ClientEvent::Undecryptable(u) if u.reason == Undecryptable::Unauthentic));
        let plain = open(|_| Some(&k1), data(&g, &alice, b"clear".to_vec()));
        assert!(matches!(&plain, ClientEvent::Undecryptable(u) if u.reason == Undecryptable::NotEncrypted));
        // no key (security off): unchanged
        let none = open(|_| None, data(&g, &alice, b"clear".to_vec()));
        assert!(matches!(&none, ClientEvent::Data(d) if d.body == b"clear"));
    }
}
