//! `sgc-crypto`: the real cryptographic providers of sgc's TGDH key agreement.
//!
//! The protocol state machine in `sgc-model` is generic over
//! [`TgdhCrypto`](sgc_model::tgdh::crypto::TgdhCrypto); this crate implements it twice:
//!
//! - [`FfdhProvider`]: finite-field DH in a safe-prime group ([`FfdhGroup`]: RFC 7919
//!   `ffdhe2048` / `ffdhe3072`, RFC 3526 2048-bit MODP), 256-bit exponents derived by HKDF,
//!   blinded keys validated with the Legendre symbol ([`jacobi()`]);
//! - [`X25519Provider`]: the same tree over X25519 (6-11× faster), low-order points rejected.
//!
//! Both sign protocol messages with Ed25519 through a shared [`SignatureDirectory`], derive
//! session keys with HKDF-SHA256 ([`SessionKey`]) and keep node secrets in a zeroizing,
//! redacted [`NodeSecret`].
//!
//! ```text
//!   entropy ──HKDF──► share x ──blind──► BK = g^x ─────────► broadcast (signed, Ed25519)
//!                        │                                        │
//!                        └──combine(x, BK_sibling)◄── validate ◄──┘
//!                                │  HKDF(BK_sibling^x; "sgc tgdh v1", "tgdh/node")
//!                                ▼
//!                     parent secret ── … ──► root secret
//!                                              │ HKDF(root; "sgc tgdh session",
//!                                              ▼       group, epoch, label)
//!                                          SessionKey ──► key_id (public, loggable)
//! ```
//!
//! The run-time group selection for the CLI is [`GroupChoice`].
//!
//! [`seal`]: Three-Step packet protection (AES-256-GCM, AES/Blowfish-CBC + HMAC-SHA1,
//! HMAC-SHA1) with per-epoch keys derived from the servers' key and replay windows.
//! [`e2e`]: end-to-end client message encryption with the group keys (AES-256-GCM, key id in a
//! clear header) for Integrated VS and Optimized EVS.
//! [`group_key`]: the HMAC providers of the client group keys `K(g, v)` (integrated security);
//! [`sign_key`]: the daemons' Ed25519 TGDH signing key files.
//!
//! [`pki`]: the deployment CA, daemon and client certificates (rcgen) and the mutual-TLS
//! configurations (rustls) built from them.
//!
//! **Side channels**: the finite-field provider's exponentiations (Montgomery arithmetic on
//! `u64` limbs with a fixed-base table for `g`, cross-checked against num-bigint's `modpow`)
//! are not constant time (see [`ffdh`]); X25519 and Ed25519 (dalek) are.

pub mod choice;
pub mod e2e;
pub mod ffdh;
pub mod group_key;
pub mod groups;
pub mod jacobi;
pub mod pki;
pub mod seal;
pub mod session;
pub mod sign;
pub mod sign_key;
pub mod x25519;

mod bytes_serde;
mod kdf;
mod monty;
mod secret;

pub use choice::GroupChoice;
pub use ed25519_dalek::VerifyingKey;
pub use ffdh::{FfdhProvider, FfdhPublic};
pub use group_key::{GroupKey, GroupKeyAlg, HmacGroupKeys};
pub use groups::{FfdhGroup, FfdhParams, UnknownGroup};
pub use jacobi::jacobi;
pub use secret::NodeSecret;
pub use session::{SessionKey, derive_session_key, key_id};
pub use sign::{Ed25519Signature, Identity, SignatureDirectory, TEST_SEED};
pub use x25519::{X25519Provider, X25519Public};
