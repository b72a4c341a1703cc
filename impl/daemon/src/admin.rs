//! The admin endpoint: newline-delimited JSON over TCP on loopback.
//!
//! Each request is one JSON object on one line, tagged by `cmd`; each answer is one line,
//! `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. Requests:
//!
//! | request | result |
//! |---|---|
//! | `{"cmd":"status"}` | [`Status`] |
//! | `{"cmd":"groups"}` | `{"groups": [{"name","view","members"}...]}`, the group table |
//! | `{"cmd":"log","last":K}` | `{"delivered": n, "entries": [{"id","sender","config"}...]}`, oldest first |
//! | `{"cmd":"partition","from":["d2"]}` | TESTING: drop every packet from/to those daemons |
//! | `{"cmd":"heal"}` | TESTING: stop dropping |
//! | `{"cmd":"send","count":N,"size":B,"service":"agreed"}` | TESTING: submit N messages of B bytes |
//! | `{"cmd":"shutdown"}` | the daemon exits after answering |
//! | `{"cmd":"fire_timer","timer":"TokenLoss"}` | TESTING, controlled mode: fire an armed timer |
//! | `{"cmd":"submit","n":N,"service":"Agreed","payload":"hex","incarnation":I}` | TESTING, controlled mode: submit message `m{node}.{inc}#{N}` |
//! | `{"cmd":"controlled"}` | TESTING, controlled mode: `controlled::Drained` (inputs handled, their commands, armed timers) |
//!
//! `partition`, `heal` and `send` are testing facilities (fault injection and load), not part of
//! the client service. The server only parses and forwards requests to the runtime loop, which
//! answers them (see `runtime.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Largest request line accepted (bytes).
pub const MAX_REQUEST: usize = 64 * 1024;

/// Delivery service named in a `send` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendService {
    /// Agreed (total order).
    #[default]
    Agreed,
    /// Safe.
    Safe,
}

/// An admin request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The daemon's status.
    Status,
    /// The light-weight groups known to this daemon.
    Groups,
    /// The last `last` delivered messages, oldest first.
    Log {
        /// How many (default: all kept).
        #[serde(default)]
        last: Option<usize>,
    },
    /// TESTING: drop packets from and to these daemons (replaces any earlier partition).
    Partition {
        /// Daemon names.
        from: Vec<String>,
    },
    /// TESTING: stop dropping packets.
    Heal,
    /// TESTING: submit `count` messages of `size` bytes from this daemon.
    Send {
        /// How many.
        count: u32,
        /// Payload bytes each.
        #[serde(default)]
        size: usize,
        /// Service.
        #[serde(default)]
        service: SendService,
    },
    /// Stop the daemon.
    Shutdown,
    /// TESTING, controlled mode (`crate::controlled`): fire this armed timer.
    FireTimer {
        /// The timer.
        timer: sgc_model::ring::TimerKind,
    },
    /// TESTING, controlled mode: submit message number `n` of this daemon's incarnation.
    Submit {
        /// Message number.
        n: u32,
        /// Service.
        service: sgc_model::ring::Service,
        /// Payload, hex.
        #[serde(default)]
        payload: String,
        /// The incarnation the submitter expects (refused if another).
        #[serde(default)]
        incarnation: Option<u32>,
    },
    /// TESTING, controlled mode: the machine inputs handled and their commands since the last
    /// such request.
    Controlled,
}

/// The answer line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success.
    pub fn ok(result: serde_json::Value) -> Self {
        Self {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A failure.
    pub fn err(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(error.into()),
        }
    }
}

/// The ring part of a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingStatus {
    /// Ring id as text, `R{seq}@{node}.{incarnation}`.
    pub id: String,
    /// Ring sequence.
    pub seq: u64,
    /// Member names, by node id.
    pub members: Vec<String>,
    /// Member pids, `node.incarnation`.
    pub pids: Vec<String>,
}

/// The answer to `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This daemon's name.
    pub daemon: String,
    /// Node id.
    pub node: u16,
    /// Current incarnation.
    pub incarnation: u32,
    /// Membership phase: `Gather`, `Commit`, `Recovery` or `Operational`.
    pub phase: String,
    /// The last installed (regular) ring.
    pub ring: RingStatus,
    /// Messages delivered since start (client traffic and group-layer control messages).
    pub delivered: u64,
    /// Of those, the messages of the admin `send` testing hook.
    #[serde(default)]
    pub delivered_testing: u64,
    /// Configuration changes delivered since start (regular and transitional).
    pub configs: u64,
    /// Client messages submitted here and not yet broadcast.
    pub pending: usize,
    /// TESTING: daemons this one drops packets from and to.
    pub partitioned_from: Vec<String>,
    /// Runtime counters (dropped datagrams by reason, packets sent and received...).
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The ring machine's counters of ignored input.
    pub machine: serde_json::Value,
    /// Client sessions and groups.
    pub clients: ClientsStatus,
    /// Integrated security: the servers' key (epoch, id; never the key) and group keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<crate::keys::KeysStatus>,
    /// Daemon↔daemon packet protection (security on): policy, epochs, who is sealed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<crate::protection::ProtectionStatus>,
}

/// The client part of a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsStatus {
    /// Connected sessions.
    pub sessions: usize,
    /// Groups with at least one member anywhere.
    pub groups: usize,
    /// Group-layer phase (`Boot`, `Op`, `Trans`, `Gather`, `GatherTrans`).
    pub phase: String,
    /// Client messages on the ring not yet delivered back.
    pub backlog: u32,
    /// Whether client requests are not being read (back-pressure).
    pub blocked: bool,
    /// Group-layer and session counters.
    pub counters: serde_json::Value,
}

/// A request waiting for the runtime loop's answer.
pub type Pending = (Request, oneshot::Sender<Response>);

/// Serve the admin endpoint until the runtime's channel closes.
pub async fn serve(listener: TcpListener, to_runtime: mpsc::Sender<Pending>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !peer.ip().is_loopback() {
            tracing::warn!(%peer, "admin connection from a non-loopback address refused");
            continue;
        }
        let tx = to_runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, tx).await {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, tx: mpsc::Sender<Pending>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX) + 1;
        if (&mut reader).take(limit).read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let too_long = line.len() > MAX_REQUEST;
        let resp = if too_long {
            Response::err("request too long")
        } else {
            match serde_json::from_slice::<Request>(line.trim_ascii()) {
                Ok(req) => ask(&tx, req).await,
                Err(_) if line.trim_ascii().is_empty() => continue,
                Err(e) => Response::err(format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        out.push(b'\n');
        write.write_all(&out).await?;
        if too_long {
            return Ok(());
        }
    }
}

async fn ask(tx: &mpsc::Sender<Pending>, req: Request) -> Response {
    let (reply, rx) = oneshot::channel();
    if tx.send((req, reply)).await.is_err() {
        return Response::err("daemon is stopping");
    }
    rx.await.unwrap_or_else(|_| Response::err("daemon is stopping"))
}

/// Errors of the blocking admin client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("admin {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The answer is not a response line.
    #[error("admin {addr}: bad answer: {message}")]
    BadAnswer {
        /// The endpoint.
        addr: SocketAddr,
        /// What was wrong.
        message: String,
    },
    /// The daemon refused the request.
    #[error("admin {addr}: {message}")]
    Refused {
        /// The endpoint.
        addr: SocketAddr,
        /// The daemon's error.
        message: String,
    },
}

/// Send one request to a daemon and return its result (blocking; for the CLI and tests).
pub fn call(addr: SocketAddr, req: &Request, timeout: Duration) -> Result<serde_json::Value, ClientError> {
    let io = |source| ClientError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::BadAnswer {
        addr,
        message: e.to_string(),
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    let resp: Response = serde_json::from_str(&answer).map_err(|e| ClientError::BadAnswer {
        addr,
        message: e.to_string(),
    })?;
    if resp.ok {
        Ok(resp.result.unwrap_or(serde_json::Value::Null))
    } else {
        Err(ClientError::Refused {
            addr,
            message: resp.error.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shapes() {
        let r: Request = serde_json::from_str(r#"{"cmd":"partition","from":["d0","d1"]}"#).expect("parse");
        assert_eq!(
            r,
            Request::Partition {
                from: vec!["d0".into(), "d1".into()]
            }
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"send","count":3}"#).expect("parse");
        assert_eq!(
            r,
            Request::Send {
                count: 3,
                size: 0,
                service: SendService::Agreed
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Status).expect("json"),
            r#"{"cmd":"status"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
    }
}
