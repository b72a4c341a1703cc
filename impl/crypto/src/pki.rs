//! Deployment PKI: a certificate authority, daemon and client certificates, and the TLS 1.3
//! configurations (mutual TLS) built from them.
//!
//! ```text
//!  sgc ca init --dir DIR ──► DIR/ca.key (0600), DIR/ca.crt          self-signed, ECDSA P-256
//!  sgc ca issue --dir DIR --client alice
//!        └─► DIR/clients/alice/{key.pem (0600), cert.pem, ca.pem}   CN = SAN = alice, signed by ca.key
//!  sgc ca issue --dir DIR --daemon d0 [--san 127.0.0.1 ...]
//!        └─► DIR/daemons/d0/{key.pem (0600), cert.pem, ca.pem}      CN = d0, SAN = d0 + --san values
//!                           + {sign.key (0600), sign.pub}             Ed25519 TGDH signing key (sign_key.rs)
//! ```
//!
//! An *identity directory* (`clients/NAME`, `daemons/NAME`) holds everything one party needs:
//! its key, its certificate and the CA certificate that verifies its peers. Keys are ECDSA P-256
//! (`rcgen` with the `ring` backend); TLS is rustls 0.23 with the `ring` provider, TLS 1.3 only.
//!
//! Private key files are written with mode 0600 and [`read_private_key`] refuses a key file
//! that group or others may read or write ([`PkiError::LoosePermissions`]).
//!
//! A peer's identity is the subject common name of its verified certificate ([`common_name`]).
//! Certificates carry rcgen's default validity (no practical expiry); rotation and revocation
//! are not implemented.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
pub use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The CA certificate in a CA directory.
pub const CA_CERT: &str = "ca.crt";
/// The CA private key in a CA directory.
pub const CA_KEY: &str = "ca.key";
/// An identity's certificate inside its identity directory.
pub const CERT_FILE: &str = "cert.pem";
/// An identity's private key inside its identity directory.
pub const KEY_FILE: &str = "key.pem";
/// The CA certificate copied into an identity directory.
pub const CA_FILE: &str = "ca.pem";

/// Errors of the PKI: files, permissions, encoding, TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A private key file may be read or written by group or others.
    #[error(
        "{path}: private key file has mode {mode:04o}; group and others must have no access (chmod 600 {path})"
    )]
    LoosePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Refusing to overwrite existing credentials.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// A file holds no usable PEM object of the expected kind.
    #[error("{path}: no {what} found")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected (`certificate`, `private key`).
        what: &'static str,
    },
    /// A name unusable for an identity.
    #[error("identity name {0:?}: use 1-64 characters A-Z a-z 0-9 . _ -, not starting with `.` or `-`")]
    BadName(String),
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Cert(String),
    /// A key file's content is not what it should be.
    #[error("{path}: {why}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
    /// The TLS configuration could not be built from the credentials.
    #[error("tls configuration: {0}")]
    Tls(String),
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert_err(e: rcgen::Error) -> PkiError {
    PkiError::Cert(e.to_string())
}

/// Which kind of party a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A daemon: server authentication (and client authentication, for daemon-to-daemon use).
    Daemon,
    /// A client: client authentication.
    Client,
}

impl Role {
    /// The subdirectory of the CA directory holding identities of this role.
    pub const fn subdir(self) -> &'static str {
        match self {
            Self::Daemon => "daemons",
            Self::Client => "clients",
        }
    }
}

/// Whether `name` is acceptable as an identity name (and a directory name).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Write `data` to a new file with `mode`; an existing file is an error.
pub(crate) fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::Exists(path.to_owned())
            } else {
                PkiError::Io {
                    path: path.to_owned(),
                    source: e,
                }
            }
        })?;
    // The umask may have narrowed the mode, never widened it; make it exact anyway.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_at(path))?;
    f.write_all(data).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

/// The files of a freshly created CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFiles {
    /// The self-signed certificate.
    pub cert: PathBuf,
    /// The private key (0600).
    pub key: PathBuf,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "sgc deployment");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Create a CA in `dir` (created if missing): a P-256 key pair and a self-signed certificate
/// with subject CN `cn`. Refuses to overwrite an existing CA.
pub fn init_ca(dir: &Path, cn: &str) -> Result<CaFiles, PkiError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let files = CaFiles {
        cert: dir.join(CA_CERT),
        key: dir.join(CA_KEY),
    };
    for f in [&files.key, &files.cert] {
        if f.exists() {
            return Err(PkiError::Exists(f.clone()));
        }
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let cert = ca_params(cn).self_signed(&key).map_err(cert_err)?;
    write_new(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&files.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(files)
}

/// Issue credentials for `name` with the CA in `ca_dir`: a new P-256 key pair and a certificate
/// (CN = `name`, SAN = `name` and `extra_sans`, IP addresses recognized) signed by the CA,
/// written with a copy of the CA certificate to `ca_dir/{daemons|clients}/name/`. Returns that
/// identity directory.
pub fn issue(ca_dir: &Path, role: Role, name: &str, extra_sans: &[String]) -> Result<PathBuf, PkiError> {
    if !valid_name(name) {
        return Err(PkiError::BadName(name.to_owned()));
    }
    let ca_cert_path = ca_dir.join(CA_CERT);
    let ca_pem = std::fs::read_to_string(&ca_cert_path).map_err(io_at(&ca_cert_path))?;
    let ca_key_path = ca_dir.join(CA_KEY);
    check_key_permissions(&ca_key_path)?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_at(&ca_key_path))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(cert_err)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(cert_err)?;

    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    let mut sans = vec![SanType::DnsName(name.try_into().map_err(cert_err)?)];
    for s in extra_sans {
        sans.push(match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.as_str().try_into().map_err(cert_err)?),
        });
    }
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = match role {
        Role::Daemon => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;

    let dir = ca_dir.join(role.subdir()).join(name);
    if dir.join(KEY_FILE).exists() {
        return Err(PkiError::Exists(dir.join(KEY_FILE)));
    }
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    write_new(&dir.join(KEY_FILE), key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&dir.join(CERT_FILE), cert.pem().as_bytes(), 0o644)?;
    write_new(&dir.join(CA_FILE), ca_pem.as_bytes(), 0o644)?;
    if role == Role::Daemon {
        crate::sign_key::write_signing_key(&dir)?;
    }
    Ok(dir)
}

/// Refuse a key file that group or others may access.
pub fn check_key_permissions(path: &Path) -> Result<(), PkiError> {
    let meta = std::fs::metadata(path).map_err(io_at(path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PkiError::LoosePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Read a PEM private key (PKCS#8, SEC1 or PKCS#1), refusing loose permissions.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    check_key_permissions(path)?;
    let bytes = std::fs::read(path).map_err(io_at(path))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| PkiError::Pem {
        path: path.to_owned(),
        what: "private key",
    })
}

/// Read every PEM certificate of a file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bytes = std::fs::read(path).map_err(io_at(path))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::Pem {
            path: path.to_owned(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The subject common name of a DER certificate (the identity of a TLS peer).
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = x509.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// One party's credentials: its certificate chain, its key and the CA certificates it trusts.
#[derive(Debug)]
pub struct Credentials {
    /// Own certificate (first) and any intermediates.
    pub certs: Vec<CertificateDer<'static>>,
    /// Own private key.
    pub key: PrivateKeyDer<'static>,
    /// Trusted CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
}

impl Credentials {
    /// Load from three files.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, PkiError> {
        Ok(Self {
            roots: read_certs(ca)?,
            certs: read_certs(cert)?,
            key: read_private_key(key)?,
        })
    }

    /// Load an identity directory (`cert.pem`, `key.pem`, `ca.pem`).
    pub fn load_dir(dir: &Path) -> Result<Self, PkiError> {
        Self::load(&dir.join(CA_FILE), &dir.join(CERT_FILE), &dir.join(KEY_FILE))
    }

    /// The identity these credentials prove (own certificate's CN).
    pub fn identity(&self) -> Option<String> {
        self.certs.first().and_then(common_name)
    }

    fn root_store(&self) -> Result<RootCertStore, PkiError> {
        let mut roots = RootCertStore::empty();
        for c in &self.roots {
            roots
                .add(c.clone())
                .map_err(|e| PkiError::Tls(format!("CA certificate: {e}")))?;
        }
        Ok(roots)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Tls(e.to_string())
}

/// A TLS 1.3 server configuration that requires a client certificate issued by one of the
/// credentials' CAs (mutual TLS).
pub fn server_config(creds: &Credentials) -> Result<Arc<ServerConfig>, PkiError> {
    let p = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(creds.root_store()?), p.clone())
        .build()
        .map_err(tls_err)?;
    let cfg = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.certs.clone(), creds.key.clone_key())
        .map_err(tls_err)?;
    Ok(Arc::new(cfg))
}

/// A TLS 1.3 client configuration presenting the credentials' certificate and trusting only
/// the credentials' CAs.
pub fn client_config(creds: &Credentials) -> Result<Arc<ClientConfig>, PkiError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(creds.root_store()?)
        .with_client_auth_cert(creds.certs.clone(), creds.key.clone_key())
        .map_err(tls_err)?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgc-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn ca_issue_load_and_identity() {
        let dir = tmp("issue");
        let ca = init_ca(&dir, "test CA").expect("ca");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&ca.key), 0o600);
        assert!(matches!(init_ca(&dir, "again"), Err(PkiError::Exists(_))));
        let alice = issue(&dir, Role::Client, "alice", &[]).expect("issue");
        assert_eq!(mode(&alice.join(KEY_FILE)), 0o600);
        let d0 = issue(
            &dir,
            Role::Daemon,
            "d0",
            &["127.0.0.1".into(), "localhost".into()],
        )
        .expect("issue");
        let a = Credentials::load_dir(&alice).expect("load");
        assert_eq!(a.identity().as_deref(), Some("alice"));
        let d = Credentials::load_dir(&d0).expect("load");
        assert_eq!(d.identity().as_deref(), Some("d0"));
        server_config(&d).expect("server config");
        client_config(&a).expect("client config");
        assert!(matches!(
            issue(&dir, Role::Client, "alice", &[]),
            Err(PkiError::Exists(_))
        ));
        assert!(matches!(
            issue(&dir, Role::Client, "../x", &[]),
            Err(PkiError::BadName(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn loose_key_permissions_are_refused() {
        let dir = tmp("perm");
        let ca = init_ca(&dir, "test CA").expect("ca");
        let alice = issue(&dir, Role::Client, "alice", &[]).expect("issue");
        let key = alice.join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = Credentials::load_dir(&alice).unwrap_err();
        assert!(matches!(e, PkiError::LoosePermissions { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&ca.key, std::fs::Permissions::from_mode(0o604)).expect("chmod");
        assert!(matches!(
            issue(&dir, Role::Client, "bob", &[]),
            Err(PkiError::LoosePermissions { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names() {
        for ok in ["alice", "svc-1", "d0", "a.b_c"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "uid:0", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn garbage_files_are_typed_errors() {
        let dir = tmp("garbage");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("x.pem");
        std::fs::write(&f, "not pem").expect("write");
        assert!(matches!(read_certs(&f), Err(PkiError::Pem { .. })));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(read_private_key(&f), Err(PkiError::Pem { .. })));
        assert!(matches!(
            read_certs(&dir.join("missing")),
            Err(PkiError::Io { .. })
        ));
        assert_eq!(common_name(&CertificateDer::from(vec![1, 2, 3])), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
