//! Daemon signing keys for the servers' TGDH (integrated security, `docs/security.md`).
//!
//! Every daemon signs its TGDH messages with its own Ed25519 key and verifies its peers' with
//! their public keys. `sgc ca issue --daemon NAME` (see [`crate::pki::issue`]) writes, next to
//! the TLS credentials of the daemon:
//!
//! - `sign.key`: the 32-byte Ed25519 secret as 64 hex digits and a newline, mode 0600
//!   ([`read_signing_key`] refuses a file group or others may access, like the TLS key);
//! - `sign.pub`: the 32-byte verifying key as 64 hex digits, to be listed in every daemon's
//!   configuration (`[[peers]] sign_pub = "..."`).
//!
//! Why not the TLS key: the certificates are ECDSA P-256 and the TGDH providers sign with
//! Ed25519 (`sign.rs`); a separate key also keeps the two uses apart.

use std::path::Path;

use zeroize::Zeroizing;

use crate::pki::{PkiError, check_key_permissions, io_at, write_new};

/// The secret signing key file inside a daemon identity directory.
pub const SIGN_KEY_FILE: &str = "sign.key";
/// The public verifying key file inside a daemon identity directory.
pub const SIGN_PUB_FILE: &str = "sign.pub";

/// Lower-case hex of 32 bytes.
pub fn to_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from exactly 64 hex digits (surrounding whitespace ignored).
pub fn from_hex(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    if t.len() != 64 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Generate a signing key in `dir` (`sign.key` 0600, `sign.pub`); existing files are never
/// overwritten. Returns the public key.
pub fn write_signing_key(dir: &Path) -> Result<[u8; 32], PkiError> {
    let secret = Zeroizing::new(rand::random::<[u8; 32]>());
    let public = ed25519_dalek::SigningKey::from_bytes(&secret)
        .verifying_key()
        .to_bytes();
    let text = Zeroizing::new(format!("{}\n", to_hex(&secret)));
    write_new(&dir.join(SIGN_KEY_FILE), text.as_bytes(), 0o600)?;
    write_new(
        &dir.join(SIGN_PUB_FILE),
        format!("{}\n", to_hex(&public)).as_bytes(),
        0o644,
    )?;
    Ok(public)
}

/// Read a signing key file, refusing loose permissions.
pub fn read_signing_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, PkiError> {
    check_key_permissions(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_at(path))?);
    from_hex(&text)
        .map(Zeroizing::new)
        .ok_or_else(|| PkiError::BadKey {
            path: path.to_owned(),
            why: "expected 64 hex digits (an Ed25519 secret key)",
        })
}

/// Read a public key file (`sign.pub`).
pub fn read_public_key(path: &Path) -> Result<[u8; 32], PkiError> {
    let text = std::fs::read_to_string(path).map_err(io_at(path))?;
    from_hex(&text).ok_or_else(|| PkiError::BadKey {
        path: path.to_owned(),
        why: "expected 64 hex digits (an Ed25519 public key)",
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn written_keys_read_back_and_loose_permissions_are_refused() {
        let dir = std::env::temp_dir().join(format!("sgc-signkey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let public = write_signing_key(&dir).unwrap();
        let secret = read_signing_key(&dir.join(SIGN_KEY_FILE)).unwrap();
        let derived = ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes();
        assert_eq!(derived, public);
        assert_eq!(read_public_key(&dir.join(SIGN_PUB_FILE)).unwrap(), public);
        assert!(matches!(write_signing_key(&dir), Err(PkiError::Exists(_))));
        let key = dir.join(SIGN_KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_signing_key(&key),
            Err(PkiError::LoosePermissions { .. })
        ));
        std::fs::write(dir.join("bad"), "zz").unwrap();
        assert!(matches!(
            read_public_key(&dir.join("bad")),
            Err(PkiError::BadKey { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hex_round_trips() {
        let b = [0xa5; 32];
        assert_eq!(from_hex(&to_hex(&b)), Some(b));
        assert_eq!(from_hex(" 00 "), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
