//! Multi-process tests of client authentication and access control (`docs/security.md`): real
//! `sgc` daemons started by `sgc cluster up --security three-step`, clients through the client
//! library (mutual TLS), through `sgc user`, and a raw rustls client.
//!
//! - s10: alice (on d0) and bob (on d1) join a group and exchange a message over mutual TLS;
//!   mallory's certificate is accepted but her join and send are denied (reject events, logged);
//!   a plaintext client and a TLS client without a certificate are refused; a certificate from
//!   another CA is refused; a client on the local Unix socket is identified by its uid.
//! - s20: `sgc ca init|issue` write 0600 keys and refuse to overwrite; a daemon whose key file
//!   is group-readable does not start and names `security.key`.
//!
//! Every wait is bounded; a guard kills every started process, even when a test fails.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sgc_client::blocking::Client;
use sgc_client::{ClientError, Endpoint};
use sgc_model::groups::{
    ClientEvent, ClientReq, ClientService, ConnectRefusal, GroupName, RejectReason, Target,
};

const SGC: &str = env!("CARGO_BIN_EXE_sgc");
const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
struct Info {
    daemons: Vec<D>,
    security: String,
    identities: BTreeMap<String, PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
struct D {
    name: String,
    client: std::net::SocketAddr,
    pid: u32,
}

/// A running cluster; dropping it kills every daemon.
struct Cluster {
    dir: PathBuf,
    info: Info,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in &self.info.daemons {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(d.pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sgc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn up(name: &str) -> Cluster {
    let dir = test_dir(name);
    let mut last = String::new();
    for _ in 0..3 {
        let out = Command::new(SGC)
            .args([
                "cluster",
                "up",
                "--daemons",
                "2",
                "--security",
                "three-step",
                "--json",
                "--dir",
            ])
            .arg(&dir)
            .output()
            .expect("run sgc cluster up");
        if out.status.success() {
            let info: Info = serde_json::from_slice(&out.stdout).expect("cluster up --json output");
            return Cluster { dir, info };
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
    }
    panic!("sgc cluster up failed: {last}");
}

impl Cluster {
    fn d(&self, name: &str) -> &D {
        self.info.daemons.iter().find(|d| d.name == name).expect("daemon")
    }
    fn identity(&self, name: &str) -> PathBuf {
        self.info.identities.get(name).expect("identity listed").clone()
    }
    fn tls(&self, daemon: &str, who: &str) -> Endpoint {
        Endpoint::Tls {
            addr: self.d(daemon).client,
            identity: self.identity(who),
        }
    }
    fn log(&self, daemon: &str) -> String {
        std::fs::read_to_string(self.dir.join(daemon).join("daemon.log")).unwrap_or_default()
    }
}

/// Connect, retrying while the daemons are still forming their ring (bounded).
fn connect(ep: &Endpoint, user: &str) -> Client {
    let deadline = Instant::now() + WAIT;
    loop {
        match Client::connect(ep, Some(user), true) {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < deadline, "{user} cannot connect to {ep}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first event `pick` accepts, within [`WAIT`].
fn wait_for<T>(c: &mut Client, what: &str, mut pick: impl FnMut(&ClientEvent) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match c.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(ev)) => {
                if let Some(t) = pick(&ev) {
                    return t;
                }
                seen.push(ev);
            }
            Ok(None) => {}
            Err(e) => panic!("waiting for {what}: {e}; seen {seen:#?}"),
        }
    }
    panic!("no {what} within {WAIT:?}; seen {seen:#?}");
}

fn members_of(ev: &ClientEvent, group: &GroupName) -> Option<Vec<String>> {
    match ev {
        ClientEvent::Membership(m) if &m.group == group => {
            Some(m.members.iter().map(ToString::to_string).collect())
        }
        _ => None,
    }
}

#[test]
fn s10_mutual_tls_identities_and_access_control() {
    let c = up("sec10");
    assert_eq!(c.info.security, "three-step");
    for who in ["alice", "bob", "carol", "mallory"] {
        let id = c.identity(who);
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            assert!(id.join(f).is_file(), "{who}: {f} missing in {}", id.display());
        }
        let mode = std::fs::metadata(id.join("key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{who}'s key mode");
    }
    let chat = GroupName::new("chat").expect("group name");

    // alice on d0 and bob on d1 exchange a message over mutual TLS.
    let mut alice = connect(&c.tls("d0", "alice"), "alice");
    let mut bob = connect(&c.tls("d1", "bob"), "bob");
    alice.join(&chat).expect("alice joins");
    bob.join(&chat).expect("bob joins");
    let both = vec!["#alice#d0".to_owned(), "#bob#d1".to_owned()];
    wait_for(&mut alice, "alice sees bob join", |ev| {
        members_of(ev, &chat).filter(|m| *m == both)
    });
    wait_for(&mut bob, "bob sees both", |ev| {
        members_of(ev, &chat).filter(|m| *m == both)
    });
    bob.multicast(
        &[Target::Group(chat.clone())],
        ClientService::Agreed,
        7,
        b"hello over mTLS",
    )
    .expect("bob sends");
    let (sender, body) = wait_for(&mut alice, "bob's message at alice", |ev| match ev {
        ClientEvent::Data(d) => Some((d.sender.to_string(), d.body.clone())),
        _ => None,
    });
    assert_eq!(sender, "#bob#d1");
    assert_eq!(body, b"hello over mTLS");

    // mallory: TLS accepts her certificate, the policy denies her join and her send.
    let mut mallory = connect(&c.tls("d0", "mallory"), "mallory");
    mallory.join(&chat).expect("request sent");
    let denied = wait_for(&mut mallory, "mallory's join rejected", |ev| match ev {
        ClientEvent::Reject { reason, req } => Some((reason.clone(), req.clone())),
        _ => None,
    });
    assert_eq!(denied, (RejectReason::Denied, ClientReq::Join(chat.clone())));
    mallory
        .multicast(&[Target::Group(chat.clone())], ClientService::Agreed, 0, b"spam")
        .expect("request sent");
    let reason = wait_for(&mut mallory, "mallory's send rejected", |ev| match ev {
        ClientEvent::Reject {
            reason,
            req: ClientReq::Send(_),
        } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason, RejectReason::Denied);
    // Nothing of mallory's reached the group: alice's next event is carol's join, not spam.
    let carol = connect(&c.tls("d0", "carol"), "carol");
    carol.join(&chat).expect("carol joins");
    let next = wait_for(&mut alice, "alice's next event", |ev| Some(ev.clone()));
    assert!(
        members_of(&next, &chat)
            .is_some_and(|m| m.contains(&"#carol#d0".to_owned()) && !m.iter().any(|n| n.contains("mallory"))),
        "{next:?}"
    );
    let log = c.log("d0");
    assert!(
        log.contains("request denied by the access policy"),
        "d0 log: {log}"
    );
    assert!(
        log.contains("mallory lacks the Join permission on group chat"),
        "d0 log: {log}"
    );

    // Over mutual TLS the name is the certificate's: alice's certificate cannot claim "bob"
    // (REJECT_AUTH), and without a name she is "alice".
    match Client::connect(&c.tls("d0", "alice"), Some("bob"), true) {
        Err(e @ ClientError::Refused(ConnectRefusal::Auth)) => assert_eq!(e.code(), Some(-9)),
        other => panic!("a client claiming another identity must be refused, got {other:?}"),
    }
    let unnamed = Client::connect(&c.tls("d1", "alice"), None, true).expect("alice without a name");
    assert_eq!(unnamed.private_name().to_string(), "#alice#d1");
    drop(unnamed);
    assert!(
        c.log("d0").contains("not its certificate's identity"),
        "the refusal is logged"
    );

    // A plaintext client on the TLS port is refused with REJECT_AUTH (−9).
    let plain = Endpoint::Tcp(c.d("d0").client);
    match Client::connect(&plain, Some("anon"), true) {
        Err(e @ ClientError::Refused(ConnectRefusal::Auth)) => assert_eq!(e.code(), Some(-9)),
        other => panic!("a plaintext client must be refused, got {other:?}"),
    }
    // ... and `sgc user` without --identity says why.
    let out = Command::new(SGC)
        .args(["user", "--json", "--daemon"])
        .arg(c.d("d0").client.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run sgc user");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--identity"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"code\":-9"));

    // A TLS client without a certificate never gets an ACCEPT.
    tls_without_certificate(&c.dir.join("pki").join("ca.crt"), c.d("d0").client);

    // A certificate from another CA is refused by the TLS handshake.
    let other = c.dir.join("other-ca");
    sgc(&["ca", "init", "--dir"], &other);
    sgc(&["ca", "issue", "--client", "eve", "--dir"], &other);
    let eve = Endpoint::Tls {
        addr: c.d("d0").client,
        identity: other.join("clients").join("eve"),
    };
    match Client::connect(&eve, Some("eve"), true) {
        Err(e @ ClientError::Tls(_)) => assert!(e.to_string().contains("UnknownIssuer"), "{e}"),
        other => panic!("another CA's client must be refused, got {other:?}"),
    }
    // Even with our CA as its trust anchor (so it accepts the daemon), eve is refused.
    let mixed = c.dir.join("mixed");
    std::fs::create_dir_all(&mixed).expect("mkdir");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(other.join("clients/eve").join(f), mixed.join(f)).expect("copy");
    }
    std::fs::copy(c.dir.join("pki/ca.crt"), mixed.join("ca.pem")).expect("copy");
    let eve2 = Endpoint::Tls {
        addr: c.d("d0").client,
        identity: mixed,
    };
    match Client::connect(&eve2, Some("eve"), true) {
        Err(ClientError::Tls(_) | ClientError::DaemonGone) => {}
        other => panic!("a foreign certificate must be refused, got {other:?}"),
    }
    let log = c.log("d0");
    assert!(log.contains("TLS handshake failed"), "d0 log: {log}");

    // A local client on the Unix socket is identified by its uid, which the policy allows.
    let uid = std::fs::metadata(&c.dir).expect("dir").uid();
    let sock = c.dir.join("d0").join("data").join("client.sock");
    let mut local = connect(&Endpoint::Unix(sock), "local");
    local.join(&chat).expect("local joins");
    wait_for(&mut local, "the local client's join", |ev| {
        members_of(ev, &chat).filter(|m| m.contains(&"#local#d0".to_owned()))
    });
    let log = c.log("d0");
    assert!(
        log.lines()
            .any(|l| l.contains("client authenticated") && l.contains(&format!("uid:{uid}"))),
        "d0 log: {log}"
    );
    for cl in [alice, bob, carol, mallory, local] {
        let _ = cl.disconnect();
    }
}

fn sgc(args: &[&str], dir: &Path) {
    let out = Command::new(SGC).args(args).arg(dir).output().expect("run sgc");
    assert!(
        out.status.success(),
        "sgc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rustls client that trusts the cluster CA but has no certificate: the handshake or the
/// first read fails, and no byte of an ACCEPT frame arrives.
fn tls_without_certificate(ca: &Path, addr: std::net::SocketAddr) {
    let roots = sgc_crypto::pki::read_certs(ca).expect("CA");
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).expect("client connection");
    let sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut hello = Vec::new();
    sgc_wire::encode_hello(&sgc_wire::Hello::new(Some("nocert"), true), &mut hello).expect("hello");
    let wrote = tls.write_all(&hello).and_then(|()| tls.flush());
    let mut buf = [0u8; 64];
    let read = wrote.and_then(|()| tls.read(&mut buf));
    match read {
        Ok(0) => {}
        Ok(n) => panic!("a client without a certificate got {n} bytes: {:?}", &buf[..n]),
        Err(e) => assert!(
            e.to_string().contains("CertificateRequired") || e.kind() == std::io::ErrorKind::ConnectionReset,
            "unexpected error: {e}"
        ),
    }
}

#[test]
fn s20_ca_commands_and_refused_key_permissions() {
    let dir = test_dir("sec20");
    let ca = dir.join("ca");
    sgc(&["ca", "init", "--dir"], &ca);
    let key = ca.join("ca.key");
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    let out = Command::new(SGC)
        .args(["ca", "init", "--dir"])
        .arg(&ca)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    let out = Command::new(SGC)
        .args([
            "ca",
            "issue",
            "--json",
            "--daemon",
            "d0",
            "--san",
            "127.0.0.1",
            "--dir",
        ])
        .arg(&ca)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = PathBuf::from(v["identity"].as_str().expect("identity"));
    assert_eq!(id, ca.join("daemons").join("d0"));
    let out = Command::new(SGC)
        .args(["ca", "issue", "--dir"])
        .arg(&ca)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "--daemon or --client is required");

    // A daemon whose key is group-readable does not start, and says which key and why.
    let mut cfg = sgc_daemon::DaemonConfig::local("sec20", 1, 0, 20_000);
    cfg.security = sgc_daemon::config::SecuritySection {
        mode: sgc_daemon::config::SecurityMode::ThreeStep,
        ca: Some(ca.join("ca.crt")),
        cert: Some(id.join("cert.pem")),
        key: Some(id.join("key.pem")),
        policy: Some(dir.join("policy.toml")),
        sign_key: Some(id.join("sign.key")),
        ..sgc_daemon::config::SecuritySection::default()
    };
    let sign_pub = std::fs::read_to_string(id.join("sign.pub")).expect("sign.pub");
    cfg.peers[0].sign_pub = Some(sign_pub.trim().to_owned());
    std::fs::write(dir.join("policy.toml"), "").expect("policy");
    let cfg_path = dir.join("config.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).expect("config");
    std::fs::set_permissions(id.join("key.pem"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = Command::new(SGC)
        .args(["daemon", "--config"])
        .arg(&cfg_path)
        .output()
        .expect("run daemon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("security.key") && err.contains("0640"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
