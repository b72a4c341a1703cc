//! Client sessions against a real daemon (in-process, one-daemon ring on loopback), speaking the
//! wire protocol over real TCP and Unix sockets: connect, join, multicast, leave, a malformed
//! frame that closes only its own connection, a silent client, a refused duplicate name.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sgc_daemon::DaemonConfig;
use sgc_model::groups::{
    Cause, ClientEvent, ClientReq, ClientService, ConnectRefusal, GroupName, KillReason, Membership,
    Multicast, Target,
};
use sgc_wire::{FrameDecoder, Hello, ToClient, encode_hello, encode_req};

struct Daemon {
    cfg: DaemonConfig,
    _rt: std::thread::JoinHandle<()>,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = sgc_daemon::admin::call(
            self.cfg.daemon.admin,
            &sgc_daemon::admin::Request::Shutdown,
            Duration::from_secs(2),
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a one-daemon ring on loopback. Ports come from below the kernel's ephemeral range
/// (so no outgoing connection can hold them) and are retried elsewhere if taken.
fn start(name: &str, slot: u16) -> Daemon {
    let dir = std::env::temp_dir().join(format!("sgc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut last_error = String::new();
    for attempt in 0..20u32 {
        let spread = (std::process::id() + attempt * 7919 + u32::from(slot) * 104_729) % 3000;
        let base = 20_000 + u16::try_from(spread).unwrap() * 4;
        let mut cfg = DaemonConfig::local("clients-test", 1, 0, base);
        cfg.daemon.data_dir = dir.join("data");
        let c = cfg.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let rt = std::thread::spawn(move || {
            let outcome = sgc_daemon::run_blocking(c);
            let _ = tx.send(outcome);
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(cfg.daemon.client).is_ok() {
                return Daemon { cfg, _rt: rt, dir };
            }
            match rx.try_recv() {
                Ok(outcome) => {
                    last_error = format!("daemon on base port {base} stopped: {outcome:?}");
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    last_error = format!("daemon on base port {base} panicked");
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            assert!(Instant::now() < deadline, "daemon did not start in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("daemon did not start: {last_error}");
}

struct Conn<S> {
    s: S,
    dec: FrameDecoder<ToClient>,
}

impl<S: Read + Write> Conn<S> {
    fn hello(mut s: S, user: Option<&str>) -> Self {
        let mut b = Vec::new();
        encode_hello(&Hello::new(user, true), &mut b).unwrap();
        s.write_all(&b).unwrap();
        Self {
            s,
            dec: FrameDecoder::new(),
        }
    }

    fn send(&mut self, req: &ClientReq) {
        let mut b = Vec::new();
        encode_req(req, &mut b).unwrap();
        self.s.write_all(&b).unwrap();
    }

    /// The next frame, or `None` at end of stream.
    fn next(&mut self) -> Option<ToClient> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                return Some(f);
            }
            let n = self.s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.dec.feed(&buf[..n]);
        }
    }

    fn event(&mut self) -> ClientEvent {
        match self.next() {
            Some(ToClient::Event(e)) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

fn tcp(d: &Daemon) -> TcpStream {
    let s = TcpStream::connect(d.cfg.daemon.client).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn g(s: &str) -> GroupName {
    GroupName::new(s).unwrap()
}

#[test]
fn join_send_leave_over_tcp_and_unix() {
    let d = start("join-send", 1);
    let mut a = Conn::hello(tcp(&d), Some("alice"));
    let Some(ToClient::Accept(acc)) = a.next() else {
        panic!("alice not accepted")
    };
    assert_eq!(acc.name.to_string(), "#alice#d0");

    let unix = UnixStream::connect(d.cfg.client_socket()).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = Conn::hello(unix, Some("bob"));
    assert!(matches!(b.next(), Some(ToClient::Accept(_))));

    a.send(&ClientReq::Join(g("chat")));
    let ClientEvent::Membership(m) = a.event() else {
        panic!("no membership")
    };
    assert_eq!((m.cause, m.members.len()), (Cause::Join, 1));
    b.send(&ClientReq::Join(g("chat")));
    let ClientEvent::Membership(ma) = a.event() else {
        panic!("alice: no second membership")
    };
    let ClientEvent::Membership(mb) = b.event() else {
        panic!("bob: no membership")
    };
    assert_eq!(
        ma,
        Membership {
            my_vs: ma.my_vs,
            ..mb.clone()
        }
    );
    assert_eq!(
        mb.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["#alice#d0", "#bob#d0"]
    );

    a.send(&ClientReq::Send(Multicast {
        targets: vec![Target::Group(g("chat"))],
        service: ClientService::Agreed,
        self_discard: false,
        mess_type: 7,
        body: b"hello".to_vec(),
    }));
    for ev in [a.event(), b.event()] {
        let ClientEvent::Data(m) = ev else {
            panic!("no data: {ev:?}")
        };
        assert_eq!(
            (m.sender.to_string().as_str(), m.mess_type, &m.body[..]),
            ("#alice#d0", 7, &b"hello"[..])
        );
    }
    b.send(&ClientReq::Leave(g("chat")));
    assert_eq!(b.event(), ClientEvent::SelfLeave(g("chat")));
    let ClientEvent::Membership(m) = a.event() else {
        panic!("no leave membership")
    };
    assert_eq!((m.cause, m.members.len()), (Cause::Leave, 1));
}

#[test]
fn a_malformed_frame_closes_only_its_connection_and_duplicates_are_refused() {
    let d = start("malformed", 2);
    let mut a = Conn::hello(tcp(&d), Some("alice"));
    assert!(matches!(a.next(), Some(ToClient::Accept(_))));
    a.send(&ClientReq::Join(g("chat")));
    assert!(matches!(a.event(), ClientEvent::Membership(_)));

    let mut dup = Conn::hello(tcp(&d), Some("alice"));
    assert_eq!(dup.next(), Some(ToClient::Refuse(ConnectRefusal::NotUnique)));
    assert_eq!(dup.next(), None, "a refused connection is closed");

    let mut bad = Conn::hello(tcp(&d), Some("mallory"));
    assert!(matches!(bad.next(), Some(ToClient::Accept(_))));
    bad.send(&ClientReq::Join(g("chat")));
    // A frame of an unknown kind: the daemon closes this connection only.
    bad.s.write_all(&[2, 0, 0, 0, 0xEE, 0]).unwrap();
    let mut saw_disconnect = false;
    let mut last = None;
    while let Some(f) = bad.next() {
        last = Some(f);
    }
    assert_eq!(last, Some(ToClient::Closing(KillReason::ProtocolViolation)));
    // alice sees mallory join, then leave with cause disconnect.
    for _ in 0..2 {
        if let ClientEvent::Membership(m) = a.event() {
            saw_disconnect |= m.cause == Cause::Disconnect;
        }
    }
    assert!(saw_disconnect, "mallory's disconnect was not reported");

    // A silent client is dropped after the hello timeout; the daemon still serves others.
    let mut silent = tcp(&d);
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0, "silent client not closed");
    a.send(&ClientReq::Leave(g("chat")));
    assert_eq!(a.event(), ClientEvent::SelfLeave(g("chat")));
}
