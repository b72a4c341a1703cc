//! [`Endpoint`]: where a daemon listens for clients (TCP address, TCP with mutual TLS, or Unix
//! socket path), and opening a byte stream to it.
//!
//! [`Endpoint::Tls`] names an *identity directory* made by `sgc ca issue --client NAME` (or
//! `sgc cluster up --security MODE`): `cert.pem`, `key.pem` (mode 0600) and `ca.pem`. The
//! client presents that certificate, trusts only that CA, and checks that the daemon's
//! certificate names the address's IP (`docs/security.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::ClientError;

/// The read half of a connection.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Sync + Unpin>;
/// The write half of a connection.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Sync + Unpin>;

/// A daemon's client endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix domain socket.
    Unix(PathBuf),
    /// TCP with TLS 1.3 and a client certificate (mutual TLS).
    Tls {
        /// The daemon's client port.
        addr: SocketAddr,
        /// The identity directory (`cert.pem`, `key.pem`, `ca.pem`).
        identity: PathBuf,
    },
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Self::Tcp(a)
    }
}

impl From<PathBuf> for Endpoint {
    fn from(p: PathBuf) -> Self {
        Self::Unix(p)
    }
}

/// An endpoint string that is neither `host:port`-style socket address nor a Unix path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither ip:port, unix:PATH nor an absolute path")]
pub struct EndpointParseError(String);

impl FromStr for Endpoint {
    type Err = EndpointParseError;
    /// `127.0.0.1:4803`, `[::1]:4803`, `unix:/run/sgc.sock` or `/run/sgc.sock`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Ok(Self::Unix(p.into()));
        }
        if s.starts_with('/') {
            return Ok(Self::Unix(s.into()));
        }
        s.parse()
            .map(Self::Tcp)
            .map_err(|_| EndpointParseError(s.to_owned()))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tls { addr, identity } => write!(f, "tls:{addr} (identity {})", identity.display()),
        }
    }
}

impl Endpoint {
    /// This endpoint with TLS and the identity directory `identity`; a Unix socket stays as
    /// it is (local clients are identified by their uid).
    pub fn with_identity(self, identity: PathBuf) -> Self {
        match self {
            Self::Tcp(addr) | Self::Tls { addr, .. } => Self::Tls { addr, identity },
            unix @ Self::Unix(_) => unix,
        }
    }

    /// Connect; TCP gets `TCP_NODELAY` (the client batches writes itself); TLS loads the
    /// identity and runs the handshake.
    pub(crate) async fn open(&self) -> Result<(ReadHalf, WriteHalf), ClientError> {
        match self {
            Self::Tls { addr, identity } => {
                let creds = sgc_crypto::pki::Credentials::load_dir(identity)?;
                let cfg: Arc<_> = sgc_crypto::pki::client_config(&creds)?;
                let s = tokio::net::TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, s)
                    .await
                    .map_err(ClientError::from_io)?;
                let (r, w) = tokio::io::split(tls);
                Ok((Box::new(r), Box::new(w)))
            }
            Self::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await?;
                s.set_nodelay(true)?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            #[cfg(unix)]
            Self::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await?;
                let (r, w) = s.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            #[cfg(not(unix))]
            Self::Unix(_) => Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unix sockets are not available on this platform",
            ))),
        }
    }
}
