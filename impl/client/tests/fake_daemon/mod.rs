//! An in-process fake daemon for the client tests: it speaks the wire protocol on a TCP or Unix
//! listener, answers the hello as its [`Mode`] says, and plays a one-daemon group layer just
//! far enough for the tests (join → membership, leave → self-leave, send → data back to the
//! sender unless self-discarded). Every request it receives is forwarded to the test.

#![allow(dead_code)]

use sgc_client::Endpoint;
use sgc_model::groups::{
    Cause, ClientEvent, ClientReq, ConnectRefusal, DataMsg, Gid, KillReason, Membership, PrivateName,
};
use sgc_model::ring::{ConfigId, Pid, RingId};
use sgc_wire::{Accept, FrameDecoder, PROTOCOL_VERSION, ToClient, ToDaemon};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How the fake daemon treats a connection.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Accept and serve.
    Serve,
    /// Refuse the hello.
    Refuse(ConnectRefusal),
    /// Accept, then close the socket at once.
    CloseAfterAccept,
    /// Accept, then after this many requests send `Closing(SlowClient)` and close.
    KillAfter(usize),
    /// Accept, then never read again (a daemon that stopped reading clients).
    Stall,
}

/// A running fake daemon.
pub struct FakeDaemon {
    /// Where it listens.
    pub ep: Endpoint,
    /// Every request it received, in order.
    pub requests: mpsc::UnboundedReceiver<ClientReq>,
}

/// Start a fake daemon on 127.0.0.1 (a free port).
pub async fn spawn_tcp(mode: Mode) -> FakeDaemon {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = Endpoint::Tcp(l.local_addr().unwrap());
    let (tx, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, mode, tx.clone()));
        }
    });
    FakeDaemon { ep, requests }
}

/// Start a fake daemon on a Unix socket at `path`.
pub async fn spawn_unix(mode: Mode, path: std::path::PathBuf) -> FakeDaemon {
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let (tx, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, mode, tx.clone()));
        }
    });
    FakeDaemon {
        ep: Endpoint::Unix(path),
        requests,
    }
}

fn gid(index: u32) -> Gid {
    Gid {
        conf: ConfigId::Regular(RingId {
            seq: 1,
            rep: Pid::new(1, 1),
        }),
        index,
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, f: &ToClient) {
    let mut buf = Vec::new();
    f.encode_into(&mut buf);
    let _ = w.write_all(&buf).await;
}

trait EncodeInto {
    fn encode_into(&self, buf: &mut Vec<u8>);
}

impl EncodeInto for ToClient {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        sgc_wire::Frame::encode(self, buf).unwrap();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    mode: Mode,
    tx: mpsc::UnboundedSender<ClientReq>,
) {
    let mut dec = FrameDecoder::<ToDaemon>::new();
    let mut count = 0;
    let mut name = None;
    let mut wants_membership = false;
    let mut index = 0;
    loop {
        let frame = loop {
            match dec.next_frame() {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => return,
            }
            match s.read_buf(dec.buffer_mut()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        match frame {
            ToDaemon::Hello(h) => {
                if let Mode::Refuse(why) = mode {
                    send(&mut s, &ToClient::Refuse(why)).await;
                    return;
                }
                let user = h.user.unwrap_or_else(|| "u1".to_owned());
                let me = PrivateName::new(1, user, "fake").unwrap();
                wants_membership = h.wants_membership;
                send(
                    &mut s,
                    &ToClient::Accept(Accept {
                        version: PROTOCOL_VERSION,
                        name: me.clone(),
                    }),
                )
                .await;
                name = Some(me);
                match mode {
                    Mode::CloseAfterAccept => return,
                    Mode::Stall => {
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        return;
                    }
                    _ => {}
                }
            }
            ToDaemon::Req(req) => {
                let Some(me) = name.clone() else { return };
                count += 1;
                let _ = tx.send(req.clone());
                let ev = match req {
                    ClientReq::Join(group) => {
                        index += 1;
                        wants_membership.then(|| {
                            ClientEvent::Membership(Membership {
                                group,
                                gid: gid(index),
                                cause: Cause::Join,
                                members: vec![me.clone()],
                                vs_sets: vec![vec![me.clone()]],
                                my_vs: 0,
                            })
                        })
                    }
                    ClientReq::Leave(group) => Some(ClientEvent::SelfLeave(group)),
                    ClientReq::Send(m) => (!m.self_discard).then(|| {
                        ClientEvent::Data(DataMsg {
                            sender: me.clone(),
                            targets: m.targets,
                            service: m.service,
                            mess_type: m.mess_type,
                            body: m.body,
                        })
                    }),
                    ClientReq::Disconnect => return,
                };
                if let Some(ev) = ev {
                    send(&mut s, &ToClient::Event(ev)).await;
                }
                if let Mode::KillAfter(n) = mode
                    && count >= n
                {
                    send(&mut s, &ToClient::Closing(KillReason::SlowClient)).await;
                    return;
                }
            }
        }
    }
}
