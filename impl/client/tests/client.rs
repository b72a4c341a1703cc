//! The client library against the in-process fake daemon: handshake (accept, assigned name,
//! refusal), join → membership, multicast → data, self-discard, leave, limits, batching, daemon
//! gone, closing, Unix sockets and the blocking client.

mod fake_daemon;

use fake_daemon::{Mode, spawn_tcp, spawn_unix};
use sgc_client::{Client, ClientError, Endpoint};
use sgc_model::groups::{
    ClientEvent, ClientReq, ClientService, ConnectRefusal, GroupName, KillReason, Target,
};

fn grp(s: &str) -> GroupName {
    GroupName::new(s).unwrap()
}

#[tokio::test]
async fn t10_connect_accept_and_assigned_name() {
    let d = spawn_tcp(Mode::Serve).await;
    let c = Client::connect(&d.ep, Some("alice"), true).await.unwrap();
    assert_eq!(c.private_name().to_string(), "#alice#fake");
    assert_eq!(c.daemon_version(), sgc_wire::PROTOCOL_VERSION);
    let c2 = Client::connect(&d.ep, None, false).await.unwrap();
    assert_eq!(c2.private_name().to_string(), "#u1#fake");
}

#[tokio::test]
async fn t11_refusal_carries_spreads_code() {
    let d = spawn_tcp(Mode::Refuse(ConnectRefusal::NotUnique)).await;
    let e = Client::connect(&d.ep, Some("alice"), true).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Refused(ConnectRefusal::NotUnique)),
        "{e:?}"
    );
    assert_eq!(e.code(), Some(-6));
}

#[tokio::test]
async fn t12_illegal_user_name_is_caught_before_connecting() {
    let ep: Endpoint = "127.0.0.1:1".parse().unwrap();
    let e = Client::connect(&ep, Some("much-too-long"), true)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::LimitHit(_)), "{e:?}");
}

#[tokio::test]
async fn t20_join_gives_membership_and_leave_self_leave() {
    let mut d = spawn_tcp(Mode::Serve).await;
    let mut c = Client::connect(&d.ep, Some("alice"), true).await.unwrap();
    c.join(&grp("chat")).await.unwrap();
    match c.recv().await.unwrap() {
        ClientEvent::Membership(m) => {
            assert_eq!(m.group, grp("chat"));
            assert_eq!(m.members, vec![c.private_name().clone()]);
        }
        other => panic!("expected a membership, got {other:?}"),
    }
    c.leave(&grp("chat")).await.unwrap();
    assert_eq!(c.recv().await.unwrap(), ClientEvent::SelfLeave(grp("chat")));
    assert_eq!(d.requests.recv().await, Some(ClientReq::Join(grp("chat"))));
    assert_eq!(d.requests.recv().await, Some(ClientReq::Leave(grp("chat"))));
}

#[tokio::test]
async fn t21_multicast_gives_data_and_self_discard_none() {
    let d = spawn_tcp(Mode::Serve).await;
    let mut c = Client::connect(&d.ep, Some("alice"), true).await.unwrap();
    let to = [
        Target::Group(grp("chat")),
        Target::Private(c.private_name().clone()),
    ];
    c.multicast_self_discard(&to, ClientService::Agreed, 7, b"not back")
        .await
        .unwrap();
    c.multicast(&to, ClientService::Safe, -3, b"hello").await.unwrap();
    match c.recv().await.unwrap() {
        ClientEvent::Data(m) => {
            assert_eq!(m.body, b"hello");
            assert_eq!(m.mess_type, -3);
            assert_eq!(m.service, ClientService::Safe);
            assert_eq!(m.targets, to.to_vec());
            assert_eq!(&m.sender, c.private_name());
        }
        other => panic!("expected data, got {other:?}"),
    }
}

#[tokio::test]
async fn t23_zero_copy_receive() {
    let d = spawn_tcp(Mode::Serve).await;
    let mut c = Client::connect(&d.ep, Some("alice"), true).await.unwrap();
    c.join(&grp("g")).await.unwrap();
    let to = [Target::Group(grp("g"))];
    c.multicast(&to, ClientService::Agreed, 5, b"borrowed")
        .await
        .unwrap();
    let first = c
        .recv_with(|ev| matches!(ev, sgc_client::EventRef::Other(ClientEvent::Membership(_))))
        .await;
    assert!(first.unwrap());
    let (len, sender) = c
        .recv_with(|ev| match ev {
            sgc_client::EventRef::Data(d) => {
                assert_eq!(
                    d.targets.iter().map(|t| t.to_owned()).collect::<Vec<_>>(),
                    to.to_vec()
                );
                (d.body.len(), d.sender.to_owned())
            }
            other => panic!("{other:?}"),
        })
        .await
        .unwrap();
    assert_eq!(len, 8);
    assert_eq!(&sender, c.private_name());
}

#[tokio::test]
async fn t22_limit_violations_leave_the_connection_usable() {
    let d = spawn_tcp(Mode::Serve).await;
    let mut c = Client::connect(&d.ep, None, true).await.unwrap();
    let many: Vec<Target> = (0..101).map(|_| Target::Group(grp("g"))).collect();
    let e = c.multicast(&many, ClientService::Fifo, 0, b"").await.unwrap_err();
    assert!(
        matches!(e, ClientError::LimitHit(sgc_wire::WireError::TooManyTargets(101))),
        "{e:?}"
    );
    let big = vec![0; sgc_wire::MAX_MESSAGE + 1];
    let e = c
        .multicast(&many[..1], ClientService::Fifo, 0, &big)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(-17));
    c.multicast(&many[..1], ClientService::Fifo, 0, b"ok")
        .await
        .unwrap();
    assert!(matches!(c.recv().await.unwrap(), ClientEvent::Data(m) if m.body == b"ok"));
}

#[tokio::test]
async fn t30_fast_sends_are_batched() {
    let mut d = spawn_tcp(Mode::Serve).await;
    let (tx, mut rx) = Client::connect(&d.ep, None, false).await.unwrap().split();
    let to = [Target::Group(grp("bench"))];
    let n = 20_000u32;
    let body = [0u8; 100];
    for i in 0..n {
        tx.multicast_self_discard(&to, ClientService::Agreed, (i % 1000) as i16, &body)
            .await
            .unwrap();
    }
    tx.flush().await.unwrap();
    for i in 0..n {
        match d.requests.recv().await.unwrap() {
            ClientReq::Send(m) => assert_eq!(m.mess_type, (i % 1000) as i16),
            other => panic!("{other:?}"),
        }
    }
    let writes = tx.write_batches();
    assert!(writes * 100 < u64::from(n), "{writes} writes for {n} messages");
    tx.disconnect().await.unwrap();
    assert!(matches!(rx.recv().await, Err(ClientError::DaemonGone)));
}

#[tokio::test]
async fn t31_senders_wait_when_the_daemon_stops_reading() {
    let d = spawn_tcp(Mode::Stall).await;
    let c = Client::connect(&d.ep, None, false).await.unwrap();
    let to = [Target::Group(grp("g"))];
    let body = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let stalled = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            c.multicast(&to, ClientService::Agreed, 0, &body).await.unwrap();
            sent += body.len();
        }
    })
    .await;
    assert!(stalled.is_err(), "multicast never blocked");
    // The outbox bound plus what the kernel's socket buffers hold.
    assert!(sent >= sgc_client::outbox::HIGH_WATER, "blocked early: {sent}");
    assert!(
        sent < sgc_client::outbox::HIGH_WATER + (48 << 20),
        "unbounded: {sent}"
    );
}

#[tokio::test]
async fn t40_daemon_gone() {
    let d = spawn_tcp(Mode::CloseAfterAccept).await;
    let mut c = Client::connect(&d.ep, None, true).await.unwrap();
    let e = c.recv().await.unwrap_err();
    assert!(matches!(e, ClientError::DaemonGone), "{e:?}");
    assert_eq!(e.code(), Some(-8));
}

#[tokio::test]
async fn t41_closing_frame_names_the_reason() {
    let d = spawn_tcp(Mode::KillAfter(1)).await;
    let mut c = Client::connect(&d.ep, None, true).await.unwrap();
    c.join(&grp("g")).await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), ClientEvent::Membership(_)));
    let e = c.recv().await.unwrap_err();
    assert!(matches!(e, ClientError::Closed(KillReason::SlowClient)), "{e:?}");
    assert!(matches!(c.recv().await, Err(ClientError::DaemonGone)));
}

#[tokio::test]
async fn t42_connect_to_nothing_is_io() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = Endpoint::Tcp(l.local_addr().unwrap());
    drop(l);
    let e = Client::connect(&ep, None, true).await.unwrap_err();
    assert!(matches!(e, ClientError::Io(_)), "{e:?}");
}

#[tokio::test]
async fn t50_unix_socket() {
    let path = std::env::temp_dir().join(format!("sgc-client-test-{}.sock", std::process::id()));
    let d = spawn_unix(Mode::Serve, path.clone()).await;
    let mut c = Client::connect(&d.ep, Some("bob"), true).await.unwrap();
    c.join(&grp("g")).await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), ClientEvent::Membership(_)));
    c.disconnect().await.unwrap();
    let _ = std::fs::remove_file(path);
}

#[test]
fn t60_blocking_client() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let d = rt.block_on(spawn_tcp(Mode::Serve));
    let mut c = sgc_client::blocking::Client::connect(&d.ep, Some("carol"), true).unwrap();
    assert_eq!(c.private_name().to_string(), "#carol#fake");
    c.join(&grp("g")).unwrap();
    assert!(matches!(c.recv().unwrap(), ClientEvent::Membership(_)));
    c.multicast(&[Target::Group(grp("g"))], ClientService::Fifo, 1, b"x")
        .unwrap();
    assert!(matches!(c.recv().unwrap(), ClientEvent::Data(m) if m.body == b"x"));
    assert_eq!(
        c.recv_timeout(std::time::Duration::from_millis(20)).unwrap(),
        None
    );
    c.disconnect().unwrap();
}

#[test]
fn t70_endpoints_parse() {
    assert_eq!(
        "unix:/tmp/s".parse::<Endpoint>().unwrap(),
        Endpoint::Unix("/tmp/s".into())
    );
    assert_eq!(
        "/tmp/s".parse::<Endpoint>().unwrap(),
        Endpoint::Unix("/tmp/s".into())
    );
    assert_eq!(
        "127.0.0.1:4803".parse::<Endpoint>().unwrap(),
        Endpoint::Tcp("127.0.0.1:4803".parse().unwrap())
    );
    assert!("nonsense".parse::<Endpoint>().is_err());
    assert_eq!(Endpoint::Unix("/x".into()).to_string(), "unix:/x");
}
