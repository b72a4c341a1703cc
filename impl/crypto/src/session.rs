//! Session keys: what TGDH hands to the data path, derived from the root (group) secret.
//!
//! `SessionKey = HKDF-SHA256(IKM = root secret, salt = "sgc tgdh session",
//! info = lp(group) ‖ view (u64 BE) ‖ refresh (u32 BE) ‖ lp(label))`, where `lp` is a `u32`
//! big-endian length prefix. The root secret itself never leaves the provider.
//!
//! [`key_id`] names a session key publicly: the first 8 bytes of `SHA-256("sgc key id" ‖ key)`,
//! safe to log and to show (it reveals nothing useful about the key).

use std::fmt;
use std::hash::{Hash, Hasher};

use sgc_model::tgdh::crypto::Epoch;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::kdf::{hkdf_32, push_length_prefixed};
use crate::secret::{NodeSecret, ct_eq};

/// The HKDF salt of session keys.
const SESSION_SALT: &[u8] = b"sgc tgdh session";
/// The domain separator of key identifiers.
const KEY_ID_LABEL: &[u8] = b"sgc key id";

/// A 32-byte session key: zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key bytes (for the data-path cipher and MAC key derivation).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for SessionKey {}

impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey(id {:016x})", key_id(self))
    }
}

/// Derives the session key of `group` in `epoch` for `label` from the root secret.
pub fn derive_session_key(root: &NodeSecret, group: &str, epoch: Epoch, label: &str) -> SessionKey {
    let mut info = Vec::with_capacity(group.len() + label.len() + 20);
    push_length_prefixed(&mut info, group.as_bytes());
    info.extend_from_slice(&epoch.view.to_be_bytes());
    info.extend_from_slice(&epoch.refresh.to_be_bytes());
    push_length_prefixed(&mut info, label.as_bytes());
    SessionKey(hkdf_32(root.expose(), SESSION_SALT, &info))
}

/// The public identifier of a session key: the first 8 bytes (big-endian) of
/// `SHA-256("sgc key id" ‖ key)`.
pub fn key_id(key: &SessionKey) -> u64 {
    let digest = Sha256::new()
        .chain_update(KEY_ID_LABEL)
        .chain_update(key.0)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(view: u64, refresh: u32) -> Epoch {
        Epoch { view, refresh }
    }

    #[test]
    fn keys_differ_per_group_epoch_and_label() {
        let root = NodeSecret::from_bytes([7; 32]);
        let base = derive_session_key(&root, "g", epoch(1, 0), "data");
        assert_eq!(base, derive_session_key(&root, "g", epoch(1, 0), "data"));
        let others = [
            derive_session_key(&root, "h", epoch(1, 0), "data"),
            derive_session_key(&root, "g", epoch(2, 0), "data"),
            derive_session_key(&root, "g", epoch(1, 1), "data"),
            derive_session_key(&root, "g", epoch(1, 0), "mac"),
            derive_session_key(&NodeSecret::from_bytes([8; 32]), "g", epoch(1, 0), "data"),
            // Length prefixes: moving bytes between group and label changes the key.
            derive_session_key(&root, "gd", epoch(1, 0), "ata"),
        ];
        for (i, k) in others.iter().enumerate() {
            assert_ne!(&base, k, "variant {i}");
            assert_ne!(key_id(&base), key_id(k), "variant {i}");
        }
    }

    #[test]
    fn key_id_is_stable() {
        let key = SessionKey([0; 32]);
        // SHA-256("sgc key id" ‖ 0^32), first 8 bytes (computed with Python's hashlib): pinned
        // so that the id shown in logs never silently changes.
        assert_eq!(key_id(&key), 0x524d_3aae_6b94_6a0c);
        assert_eq!(key_id(&key), key_id(&key.clone()));
    }

    #[test]
    fn debug_shows_only_the_id() {
        let key = SessionKey([0x5a; 32]);
        let shown = format!("{key:?}");
        assert!(shown.starts_with("SessionKey(id "));
        assert!(!shown.contains("5a5a"));
    }
}
