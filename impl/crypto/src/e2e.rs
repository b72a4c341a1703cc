//! End-to-end client message encryption with the group key `K(g, v)` (Integrated VS and
//! Optimized EVS, `docs/protocol.md` §11): AES-256-GCM under a key derived from the group key,
//! a random 96-bit nonce, and a small clear header carrying the group key's id.
//!
//! ```text
//!  0      1              9                 21
//!  | 0xE2 | key_id (u64 LE) | nonce (12 B) | ciphertext | tag (16 B)
//! ```
//!
//! The AES key is `HKDF-SHA256(salt = "sgc e2e v1", ikm = K(g, v), info = "aes-256-gcm")`.
//! The associated data binds the message to its context: `"sgc e2e v1"`, the group name, the
//! sender's private name (each length-prefixed, u32 BE), `mess_type` (i16 LE) and the 21 header
//! bytes. So a ciphertext moved to another group, sender or type, or with another key id in
//! its header, does not open.
//!
//! Random nonces: the probability of a repeated nonce stays below 2^-32 for up to 2^32
//! messages under one key; every view, refresh and group has its own key.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use zeroize::Zeroize;

use sgc_model::keys::{MessageContext, MessageCrypto, Undecryptable};

use crate::group_key::{GroupKey, HmacGroupKeys};
use crate::kdf::{hkdf_32, push_length_prefixed};

/// First byte of an encrypted message body.
pub const E2E_MAGIC: u8 = 0xE2;
/// Bytes of the clear header (magic, key id, nonce).
pub const E2E_HEADER_LEN: usize = 21;
/// Bytes of the GCM tag at the end.
pub const E2E_TAG_LEN: usize = 16;
/// Bytes an encrypted body adds to the plaintext.
pub const E2E_OVERHEAD: usize = E2E_HEADER_LEN + E2E_TAG_LEN;

const LABEL: &[u8] = b"sgc e2e v1";

/// Why a message body could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// The body has no end-to-end header (plaintext, or shorter than header and tag).
    #[error("not an encrypted message (no end-to-end header)")]
    NotEncrypted,
    /// The header names a key the receiver does not hold for this view.
    #[error("encrypted under key {0:016x}, which is not held for this view")]
    UnknownKey(u64),
    /// The tag does not verify: wrong key, altered bytes or another context.
    #[error("message under key {0:016x} failed authentication")]
    Unauthentic(u64),
    /// The group key is empty.
    #[error("empty group key")]
    BadKey,
    /// The plaintext is beyond AES-GCM's length limit.
    #[error("message too long for AES-GCM")]
    TooLong,
}

/// What a message is bound to besides its key.
#[derive(Clone, Copy, Debug)]
pub struct E2eContext<'a> {
    /// The group it is sent to.
    pub group: &'a str,
    /// The sender's private name (`#user#daemon`).
    pub sender: &'a str,
    /// The application message type.
    pub mess_type: i16,
}

/// The clear key id of an encrypted body, if it has the end-to-end header.
pub fn header_key_id(body: &[u8]) -> Option<u64> {
    if body.len() < E2E_OVERHEAD || body.first() != Some(&E2E_MAGIC) {
        return None;
    }
    let id: [u8; 8] = body.get(1..9)?.try_into().ok()?;
    Some(u64::from_le_bytes(id))
}

/// The AES-256-GCM key of one group key, set up once.
#[derive(Clone)]
pub struct E2eKey {
    key_id: u64,
    gcm: Aes256Gcm,
}

impl std::fmt::Debug for E2eKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "E2eKey({:016x}, ***)", self.key_id)
    }
}

impl E2eKey {
    /// The message key of the group key `key` (any length ≥ 1) whose public id is `key_id`.
    pub fn new(key_id: u64, key: &[u8]) -> Result<Self, E2eError> {
        if key.is_empty() {
            return Err(E2eError::BadKey);
        }
        let mut k = hkdf_32(key, LABEL, b"aes-256-gcm");
        let gcm = Aes256Gcm::new_from_slice(&k).map_err(|_| E2eError::BadKey);
        k.zeroize();
        Ok(Self { key_id, gcm: gcm? })
    }

    /// The group key's public id (in every header this key writes).
    pub const fn key_id(&self) -> u64 {
        self.key_id
    }

    /// Encrypt `plaintext` with a fresh random nonce.
    pub fn seal(&self, ctx: &E2eContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, E2eError> {
        self.seal_with_nonce(ctx, plaintext, rand::random())
    }

    /// Encrypt with the given nonce (known-answer tests; never reuse a nonce under one key).
    pub fn seal_with_nonce(
        &self,
        ctx: &E2eContext<'_>,
        plaintext: &[u8],
        nonce: [u8; 12],
    ) -> Result<Vec<u8>, E2eError> {
        let mut out = Vec::with_capacity(plaintext.len() + E2E_OVERHEAD);
        out.push(E2E_MAGIC);
        out.extend_from_slice(&self.key_id.to_le_bytes());
        out.extend_from_slice(&nonce);
        let aad = aad(ctx, &out);
        out.extend_from_slice(plaintext);
        let (_, pt) = out.split_at_mut(E2E_HEADER_LEN);
        let tag = self
            .gcm
            .encrypt_inout_detached(&nonce.into(), &aad, InOutBuf::from(pt))
            .map_err(|_| E2eError::TooLong)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypt a body this key (same key id) sealed in the same context.
    pub fn open(&self, ctx: &E2eContext<'_>, body: &[u8]) -> Result<Vec<u8>, E2eError> {
        let id = header_key_id(body).ok_or(E2eError::NotEncrypted)?;
        if id != self.key_id {
            return Err(E2eError::UnknownKey(id));
        }
        let (header, rest) = body.split_at(E2E_HEADER_LEN);
        let (ct, tag) = rest.split_at(rest.len() - E2E_TAG_LEN);
        let nonce: [u8; 12] = header
            .get(9..)
            .and_then(|n| n.try_into().ok())
            .ok_or(E2eError::NotEncrypted)?;
        let tag: [u8; E2E_TAG_LEN] = tag.try_into().map_err(|_| E2eError::NotEncrypted)?;
        let aad = aad(ctx, header);
        let mut out = ct.to_vec();
        self.gcm
            .decrypt_inout_detached(&nonce.into(), &aad, InOutBuf::from(&mut out[..]), &tag.into())
            .map_err(|_| E2eError::Unauthentic(id))?;
        Ok(out)
    }
}

/// Open `body` with whichever of `keys` its header names.
pub fn open_with<'k>(
    keys: impl IntoIterator<Item = &'k E2eKey>,
    ctx: &E2eContext<'_>,
    body: &[u8],
) -> Result<(u64, Vec<u8>), E2eError> {
    let id = header_key_id(body).ok_or(E2eError::NotEncrypted)?;
    let key = keys
        .into_iter()
        .find(|k| k.key_id == id)
        .ok_or(E2eError::UnknownKey(id))?;
    key.open(ctx, body).map(|pt| (id, pt))
}

/// The Optimized EVS fix of one message: open `body` with `old` (the key its header names) and
/// seal the plaintext under `current` with `nonce` (fresh; never reused under one key), in the
/// same context. A body already under `current` is returned unchanged.
pub fn reseal(
    old: &E2eKey,
    current: &E2eKey,
    ctx: &E2eContext<'_>,
    body: &[u8],
    nonce: [u8; 12],
) -> Result<Vec<u8>, E2eError> {
    if header_key_id(body) == Some(current.key_id) {
        return Ok(body.to_vec());
    }
    let mut plain = old.open(ctx, body)?;
    let out = current.seal_with_nonce(ctx, &plain, nonce);
    plain.zeroize();
    out
}

fn aad(ctx: &E2eContext<'_>, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + ctx.group.len() + ctx.sender.len());
    push_length_prefixed(&mut a, LABEL);
    push_length_prefixed(&mut a, ctx.group.as_bytes());
    push_length_prefixed(&mut a, ctx.sender.as_bytes());
    a.extend_from_slice(&ctx.mess_type.to_le_bytes());
    a.extend_from_slice(header);
    a
}

/// The daemon's side of Optimized EVS (`sgc_model::keys::evs`): the engine reads key ids and
/// re-encrypts old-key messages with the real format.
impl MessageCrypto<GroupKey> for HmacGroupKeys {
    fn message_key_id(&self, body: &[u8]) -> Option<u64> {
        header_key_id(body)
    }

    fn reseal(
        &self,
        old: (&GroupKey, u64),
        current: (&GroupKey, u64),
        ctx: &MessageContext<'_>,
        body: &[u8],
        nonce: [u8; 12],
    ) -> Result<Vec<u8>, Undecryptable> {
        let key = |(k, id): (&GroupKey, u64)| E2eKey::new(id, k.as_bytes());
        let (Ok(old), Ok(current)) = (key(old), key(current)) else {
            return Err(Undecryptable::KeyNotHeld);
        };
        let sender = ctx.sender.to_string();
        let ctx = E2eContext {
            group: ctx.group.as_str(),
            sender: &sender,
            mess_type: ctx.mess_type,
        };
        reseal(&old, &current, &ctx, body, nonce).map_err(|e| match e {
            E2eError::NotEncrypted => Undecryptable::NotEncrypted,
            E2eError::UnknownKey(_) | E2eError::BadKey => Undecryptable::KeyNotHeld,
            _ => Undecryptable::Unauthentic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: E2eContext<'static> = E2eContext {
        group: "chat",
        sender: "#alice#d0",
        mess_type: 7,
    };

    fn key(id: u64, b: u8) -> E2eKey {
        E2eKey::new(id, &[b; 32]).expect("key")
    }

    #[test]
    fn round_trip_all_sizes() {
        let k = key(0x1122, 1);
        for n in [0usize, 1, 15, 16, 17, 100, 1000, 10_000] {
            let pt: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let ct = k.seal(&CTX, &pt).expect("seal");
            assert_eq!(ct.len(), n + E2E_OVERHEAD);
            assert_eq!(header_key_id(&ct), Some(0x1122));
            assert_eq!(k.open(&CTX, &ct).expect("open"), pt);
        }
    }

    #[test]
    fn the_daemon_reseals_an_old_key_message_under_the_current_key() {
        use crate::group_key::{GroupKeyAlg, hmac};
        use sgc_model::groups::{GroupName, PrivateName};
        use sgc_model::keys::GroupKeyMac as _;
        let mac = HmacGroupKeys::new(GroupKeyAlg::HmacSha256);
        let (old, cur) = (
            hmac(GroupKeyAlg::HmacSha256, b"servers", b"view 1"),
            hmac(GroupKeyAlg::HmacSha256, b"servers", b"view 2"),
        );
        let (old_id, cur_id) = (mac.key_id(&old), mac.key_id(&cur));
        let group = GroupName::new("chat").expect("name");
        let sender = PrivateName::new(0, "alice", "d0").expect("name");
        let ctx = MessageContext {
            group: &group,
            sender: &sender,
            mess_type: 7,
        };
        let e2e = E2eContext {
            group: "chat",
            sender: "#alice#d0",
            mess_type: 7,
        };
        let body = E2eKey::new(old_id, old.as_bytes())
            .and_then(|k| k.seal(&e2e, b"late message"))
            .expect("seal");
        assert_eq!(mac.message_key_id(&body), Some(old_id));
        let fixed = mac
            .reseal((&old, old_id), (&cur, cur_id), &ctx, &body, [9; 12])
            .expect("reseal");
        assert_eq!(header_key_id(&fixed), Some(cur_id));
        let opened = E2eKey::new(cur_id, cur.as_bytes()).and_then(|k| k.open(&e2e, &fixed));
        assert_eq!(opened.expect("opens under the current key"), b"late message");
        // altered bytes, another sender, or a plaintext body are refused, typed
        let mut bad = body.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        assert_eq!(
            mac.reseal((&old, old_id), (&cur, cur_id), &ctx, &bad, [9; 12]),
            Err(Undecryptable::Unauthentic)
        );
        let mallory = PrivateName::new(0, "mallory", "d0").expect("name");
        let other = MessageContext {
            sender: &mallory,
            ..ctx
        };
        assert_eq!(
            mac.reseal((&old, old_id), (&cur, cur_id), &other, &body, [9; 12]),
            Err(Undecryptable::Unauthentic)
        );
        assert_eq!(
            mac.reseal((&old, old_id), (&cur, cur_id), &ctx, b"plain", [9; 12]),
            Err(Undecryptable::NotEncrypted)
        );
        assert_eq!(mac.message_key_id(b"plain"), None);
    }

    #[test]
    fn nonces_differ() {
        let k = key(1, 1);
        assert_ne!(k.seal(&CTX, b"x").expect("a"), k.seal(&CTX, b"x").expect("b"));
    }

    #[test]
    fn every_change_is_refused() {
        let k = key(5, 9);
        let ct = k.seal_with_nonce(&CTX, b"secret text", [3; 12]).expect("seal");
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(k.open(&CTX, &bad).is_err(), "flip at {i} accepted");
        }
        assert_eq!(k.open(&CTX, &ct[..ct.len() - 1]), Err(E2eError::Unauthentic(5)));
        assert_eq!(k.open(&CTX, &ct[..10]), Err(E2eError::NotEncrypted));
        for other in [
            E2eContext {
                group: "chat2",
                ..CTX
            },
            E2eContext {
                sender: "#bob#d0",
                ..CTX
            },
            E2eContext { mess_type: 8, ..CTX },
        ] {
            assert_eq!(k.open(&other, &ct), Err(E2eError::Unauthentic(5)));
        }
    }

    #[test]
    fn other_key_same_id_fails_other_id_unknown() {
        let ct = key(5, 9).seal(&CTX, b"m").expect("seal");
        assert_eq!(key(5, 8).open(&CTX, &ct), Err(E2eError::Unauthentic(5)));
        assert_eq!(key(6, 9).open(&CTX, &ct), Err(E2eError::UnknownKey(5)));
        let keys = [key(6, 9), key(5, 9)];
        assert_eq!(open_with(&keys, &CTX, &ct).expect("open"), (5, b"m".to_vec()));
        assert_eq!(open_with(&keys[..1], &CTX, &ct), Err(E2eError::UnknownKey(5)));
        assert_eq!(open_with(&keys, &CTX, b"plain"), Err(E2eError::NotEncrypted));
    }

    #[test]
    fn reseal_moves_a_message_to_the_current_key() {
        let (old, cur) = (key(1, 1), key(2, 2));
        let ct = old.seal(&CTX, b"sent under the old key").expect("seal");
        let fixed = reseal(&old, &cur, &CTX, &ct, [1; 12]).expect("reseal");
        assert_eq!(header_key_id(&fixed), Some(2));
        assert_eq!(cur.open(&CTX, &fixed).expect("open"), b"sent under the old key");
        assert_eq!(
            reseal(&cur, &cur, &CTX, &fixed, [2; 12]).expect("same key"),
            fixed
        );
        assert_eq!(
            reseal(&key(3, 3), &cur, &CTX, &ct, [3; 12]),
            Err(E2eError::UnknownKey(1))
        );
        let other = E2eContext {
            sender: "#eve#d1",
            ..CTX
        };
        assert_eq!(
            reseal(&old, &cur, &other, &ct, [4; 12]),
            Err(E2eError::Unauthentic(1))
        );
    }

    #[test]
    fn short_sha1_keys_work_and_debug_is_redacted() {
        let k = E2eKey::new(0xab, &[7; 20]).expect("20-byte key");
        assert_eq!(format!("{k:?}"), "E2eKey(00000000000000ab, ***)");
        assert_eq!(E2eKey::new(1, &[]).err(), Some(E2eError::BadKey));
    }
}
