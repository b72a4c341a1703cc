//! The real MAC providers of the Group Keys Engine (`sgc_model::keys`): a client group key is
//! `K(g, v) = HMAC(K_servers, input)`, where `K_servers` is the 32-byte TGDH session key of the
//! daemons ([`SessionKey`]) and `input` the engine's canonical `label || g || view_id`
//! (`sgc_model::keys::mac::key_input`).
//!
//! - [`GroupKeyAlg::HmacSha256`] (the default): 32-byte group keys;
//! - [`GroupKeyAlg::HmacSha1`]: 20-byte group keys, the Secure Spread paper's choice (config
//!   `[security] group_key_mac = "hmac-sha1"`).
//!
//! A group key's public id ([`HmacGroupKeys::key_id`]) is the first 8 bytes (big-endian) of
//! `SHA-256("sgc group key id" ‖ alg name ‖ key)`: safe to log and to show to clients.
//! Group keys are zeroized on drop, compared in constant time and redacted in `Debug`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use sgc_model::keys::GroupKeyMac;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::session::SessionKey;

/// The domain separator of group key ids.
const GROUP_KEY_ID_LABEL: &[u8] = b"sgc group key id";

/// The MAC of `K(g, v)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GroupKeyAlg {
    /// HMAC-SHA-256 (default).
    #[default]
    HmacSha256,
    /// HMAC-SHA1 (paper-faithful).
    HmacSha1,
}

impl GroupKeyAlg {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Self; 2] = [Self::HmacSha256, Self::HmacSha1];

    /// The configuration name: `hmac-sha256` or `hmac-sha1`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha1 => "hmac-sha1",
        }
    }

    /// Length of a group key in bytes (the MAC's output length).
    pub const fn key_len(self) -> usize {
        match self {
            Self::HmacSha256 => 32,
            Self::HmacSha1 => 20,
        }
    }
}

impl fmt::Display for GroupKeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown group key MAC name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown group key MAC {0:?}: use hmac-sha256 or hmac-sha1")]
pub struct UnknownGroupKeyAlg(pub String);

impl FromStr for GroupKeyAlg {
    type Err = UnknownGroupKeyAlg;

    fn from_str(s: &str) -> Result<Self, UnknownGroupKeyAlg> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownGroupKeyAlg(s.to_owned()))
    }
}

/// A client group key: zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct GroupKey(Vec<u8>);

impl GroupKey {
    /// The key bytes (for the member's confidential channel only).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for GroupKey {}

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupKey({} bytes, redacted)", self.0.len())
    }
}

/// `HMAC(key, input)` with `alg`.
pub fn hmac(alg: GroupKeyAlg, key: &[u8], input: &[u8]) -> GroupKey {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    match alg {
        GroupKeyAlg::HmacSha256 => match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(input);
                GroupKey(m.finalize().into_bytes().to_vec())
            }
            Err(_) => GroupKey(Vec::new()),
        },
        GroupKeyAlg::HmacSha1 => match <Hmac<Sha1> as KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(input);
                GroupKey(m.finalize().into_bytes().to_vec())
            }
            Err(_) => GroupKey(Vec::new()),
        },
    }
}

/// The Group Keys Engine's MAC provider over the daemons' TGDH session key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HmacGroupKeys {
    /// The MAC.
    pub alg: GroupKeyAlg,
}

impl HmacGroupKeys {
    /// A provider with `alg`.
    pub const fn new(alg: GroupKeyAlg) -> Self {
        Self { alg }
    }
}

impl GroupKeyMac<SessionKey> for HmacGroupKeys {
    type GroupKey = GroupKey;

    fn group_key(&self, servers: &SessionKey, input: &[u8]) -> GroupKey {
        hmac(self.alg, servers.as_bytes(), input)
    }

    fn key_id(&self, key: &GroupKey) -> u64 {
        let digest = Sha256::new()
            .chain_update(GROUP_KEY_ID_LABEL)
            .chain_update(self.alg.name().as_bytes())
            .chain_update(&key.0)
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::NodeSecret;
    use crate::session::derive_session_key;
    use sgc_model::tgdh::crypto::Epoch;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 4231 (HMAC-SHA-256) and RFC 2202 (HMAC-SHA1) test cases 1 and 2.
    #[test]
    fn known_answers() {
        let key1 = [0x0b; 20];
        assert_eq!(
            hex(hmac(GroupKeyAlg::HmacSha256, &key1, b"Hi There").as_bytes()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(hmac(GroupKeyAlg::HmacSha256, b"Jefe", b"what do ya want for nothing?").as_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(hmac(GroupKeyAlg::HmacSha1, &key1, b"Hi There").as_bytes()),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(hmac(GroupKeyAlg::HmacSha1, b"Jefe", b"what do ya want for nothing?").as_bytes()),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn provider_keys_with_the_session_key_and_ids_differ() {
        let servers = derive_session_key(
            &NodeSecret::from_bytes([3; 32]),
            "g",
            Epoch { view: 1, refresh: 0 },
            "l",
        );
        for alg in GroupKeyAlg::ALL {
            let p = HmacGroupKeys::new(alg);
            let k = p.group_key(&servers, b"input");
            assert_eq!(k.as_bytes().len(), alg.key_len());
            assert_eq!(k, hmac(alg, servers.as_bytes(), b"input"));
            let other = p.group_key(&servers, b"input2");
            assert_ne!(k, other);
            assert_ne!(p.key_id(&k), p.key_id(&other));
            assert_eq!(p.key_id(&k), p.key_id(&k.clone()));
            assert!(!format!("{k:?}").contains(&hex(&k.as_bytes()[..4])));
        }
        // The two algorithms never give the same id for the same input.
        let a = HmacGroupKeys::new(GroupKeyAlg::HmacSha256);
        let b = HmacGroupKeys::new(GroupKeyAlg::HmacSha1);
        assert_ne!(
            a.key_id(&a.group_key(&servers, b"x")),
            b.key_id(&b.group_key(&servers, b"x"))
        );
    }

    #[test]
    fn names_round_trip() {
        for alg in GroupKeyAlg::ALL {
            assert_eq!(alg.name().parse::<GroupKeyAlg>(), Ok(alg));
        }
        assert!("sha1".parse::<GroupKeyAlg>().is_err());
        assert_eq!(GroupKeyAlg::default(), GroupKeyAlg::HmacSha256);
    }
}
