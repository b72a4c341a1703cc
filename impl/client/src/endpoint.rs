//! [`Endpoint`]: where a daemon listens for clients (TCP address or Unix socket path), and
//! opening a byte stream to it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};

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
        }
    }
}

impl Endpoint {
    /// Connect; TCP gets `TCP_NODELAY` (the client batches writes itself).
    pub(crate) async fn open(&self) -> std::io::Result<(ReadHalf, WriteHalf)> {
        match self {
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
            Self::Unix(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unix sockets are not available on this platform",
            )),
        }
    }
}
