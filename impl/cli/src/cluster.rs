//! `sgc cluster up|down`: a local N-daemon cluster on loopback.
//!
//! `up` writes one generated configuration per daemon (`DIR/d{i}/config.toml`, the embedded
//! default of `DaemonConfig::local`), starts `sgc daemon` for each (logs in `DIR/d{i}/daemon.log`),
//! waits until every admin endpoint answers, records `DIR/cluster.json` and, with `--json`,
//! prints it: `{"dir", "cluster", "daemons": [{"name", "listen", "admin", "client", "pid"}]}`.
//! `down` asks each daemon to shut down, waits, and kills the ones still alive.
//!
//! `up --security MODE` (`docs/security.md`) also creates, in the cluster directory, a CA
//! (`pki/ca.crt`, `pki/ca.key`), each daemon's credentials (`pki/daemons/dN/`, SANs `dN`,
//! `127.0.0.1`, `localhost`), the client identities `alice`, `bob`, `carol` and `mallory`
//! (`pki/clients/NAME/`: `cert.pem`, `key.pem`, `ca.pem`) and `policy.toml`, which lets alice,
//! bob, carol and the current user's uid (`uid:N`, for the local Unix socket) join, send to and
//! receive from every group — mallory has a valid certificate and no rights. The JSON output
//! then has `"security": MODE` and `"identities": {"NAME": DIR, ...}`; an existing CA in the
//! directory is reused. Each daemon's identity directory also holds its Ed25519 TGDH signing
//! key (`sign.key`, 0600, named by `security.sign_key`) and `sign.pub`, which every daemon's
//! configuration lists as `peers[i].sign_pub`; `--refresh-ms` sets `security.refresh_ms`, `--refresh-bytes`
//! `security.refresh_bytes`, `--evs-key-timeout-ms` and `--evs-max-old-keys` the Optimized EVS
//! key expiry.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use sgc_crypto::{pki, sign_key};
use sgc_daemon::DaemonConfig;
use sgc_daemon::admin::{self, Request};
use sgc_daemon::config::{SecurityMode, SecuritySection};

use crate::CliError;

/// File recording a running cluster inside its directory.
pub const CLUSTER_FILE: &str = "cluster.json";

/// `sgc cluster` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Start a local cluster and return once every daemon answers.
    Up(UpArgs),
    /// Stop the cluster recorded in a directory.
    Down(DownArgs),
}

/// Options of `sgc cluster up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Number of daemons.
    #[arg(long, default_value_t = 3)]
    daemons: u16,
    /// Directory for configs, data, logs and cluster.json (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First port (daemon i uses base+3i UDP, base+3i+1 admin, base+3i+2 client); default: a
    /// free range derived from the process id.
    #[arg(long)]
    base_port: Option<u16>,
    /// Cluster name (packets of other clusters are dropped).
    #[arg(long, default_value = "sgc-local")]
    cluster: String,
    /// Print the cluster description as JSON.
    #[arg(long)]
    json: bool,
    /// Security mode: none, three-step, integrated-vs, optimized-evs (all but `none` create a
    /// CA, credentials, client identities and a policy; see docs/security.md).
    #[arg(long, default_value = "none")]
    security: String,
    /// Daemons record their ring machines' inputs and commands (`runtime.record`), for
    /// `sgc conformance live`.
    #[arg(long)]
    record: bool,
    /// With --security: refresh the servers' key every this many milliseconds (0: never;
    /// default: the daemon's, one hour). Each refresh gives every client group a new key,
    /// delivered as an artificial membership change.
    #[arg(long, value_name = "MS")]
    refresh_ms: Option<u64>,
    /// With --security: refresh the servers' key after this many bytes of client data
    /// delivered (0: never; default: the daemon's, 1 GiB): the data-out refresh.
    #[arg(long, value_name = "BYTES")]
    refresh_bytes: Option<u64>,
    /// With --security optimized-evs: an old group key under which no message arrived for this
    /// many milliseconds expires (0: never; default: the daemon's, one minute).
    #[arg(long, value_name = "MS")]
    evs_key_timeout_ms: Option<u64>,
    /// With --security optimized-evs: old keys kept per group (default: the daemon's, 8).
    #[arg(long, value_name = "N")]
    evs_max_old_keys: Option<u32>,
    /// With --security three-step: how daemon↔daemon packets are sealed (`aes-256-gcm`,
    /// `aes128-cbc-hmac-sha1`, `blowfish-cbc-hmac-sha1`, `hmac-sha1`; default: the daemon's).
    #[arg(long, value_name = "SUITE")]
    transport_suite: Option<sgc_daemon::config::TransportSuite>,
    /// Broadcast over IP multicast to this IPv4 group and port (`[network] multicast` in every
    /// configuration); default: unicast to each peer.
    #[arg(long, value_name = "GROUP:PORT")]
    multicast: Option<SocketAddr>,
}

/// Client identities `up --security` creates; the last has no rights in the policy.
pub const CLIENT_IDENTITIES: [&str; 4] = ["alice", "bob", "carol", "mallory"];

/// Options of `sgc cluster down`.
#[derive(Args, Debug)]
pub struct DownArgs {
    /// The directory given to (or printed by) `sgc cluster up`.
    #[arg(long)]
    dir: PathBuf,
}

/// One started daemon.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterDaemon {
    /// Its name.
    pub name: String,
    /// UDP ring address.
    pub listen: SocketAddr,
    /// Admin endpoint.
    pub admin: SocketAddr,
    /// Reserved client endpoint.
    pub client: SocketAddr,
    /// Process id.
    pub pid: u32,
}

/// What `up` records and prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster directory.
    pub dir: PathBuf,
    /// The cluster name.
    pub cluster: String,
    /// The daemons.
    pub daemons: Vec<ClusterDaemon>,
    /// The security mode.
    #[serde(default = "mode_none")]
    pub security: String,
    /// Client identity directories by name (with `--security`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identities: BTreeMap<String, PathBuf>,
}

fn mode_none() -> String {
    SecurityMode::None.name().to_owned()
}

/// Runs `sgc cluster`.
pub fn run(cmd: &ClusterCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Down(a) => down(a),
    }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> CliError {
    let msg = format!("{what} {}", path.display());
    move |e| CliError::Output(format!("{msg}: {e}"))
}

fn up(args: &UpArgs) -> Result<ExitCode, CliError> {
    if args.daemons == 0 || args.daemons > 64 {
        return Err(CliError::Usage("--daemons must be between 1 and 64".into()));
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("sgc-cluster-{}", std::process::id())));
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let dir = dir.canonicalize().map_err(io_err("cannot resolve", &dir))?;
    if let Ok(old) = read_info(&dir)
        && old.daemons.iter().any(|d| alive(d.pid))
    {
        return Err(CliError::Usage(format!(
            "a cluster is already up in {} (sgc cluster down --dir ...)",
            dir.display()
        )));
    }
    let Some(mode) = SecurityMode::from_name(&args.security) else {
        return Err(CliError::Usage(format!(
            "--security {:?}: use none, three-step, integrated-vs or optimized-evs",
            args.security
        )));
    };
    let identities = if mode == SecurityMode::None {
        BTreeMap::new()
    } else {
        make_credentials(&dir, args.daemons)?
    };
    let base = match args.base_port {
        Some(b) => b,
        None => free_base(args.daemons)?,
    };
    if u32::from(base) + 3 * u32::from(args.daemons) > 65_535 {
        return Err(CliError::Usage(
            "--base-port too high for that many daemons".into(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| CliError::Output(format!("cannot find sgc: {e}")))?;
    let mut started: Vec<(ClusterDaemon, Child)> = Vec::new();
    let result = start_all(args, mode, &dir, base, &exe, &mut started);
    if let Err(e) = result {
        for (_, child) in &mut started {
            let _ = child.kill();
            let _ = child.wait();
        }
        return Err(e);
    }
    let info = ClusterInfo {
        dir: dir.clone(),
        cluster: args.cluster.clone(),
        daemons: started.into_iter().map(|(d, _)| d).collect(),
        security: mode.name().to_owned(),
        identities,
    };
    let json = serde_json::to_string(&info).map_err(|e| CliError::Output(e.to_string()))?;
    let file = dir.join(CLUSTER_FILE);
    std::fs::write(&file, &json).map_err(io_err("cannot write", &file))?;
    if args.json {
        println!("{json}");
    } else {
        println!("cluster up in {}", dir.display());
        for d in &info.daemons {
            println!("  {}  pid {}  admin {}  udp {}", d.name, d.pid, d.admin, d.listen);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `up --security` keeps its CA.
const PKI_DIR: &str = "pki";
/// The policy `up --security` writes.
const POLICY_FILE: &str = "policy.toml";

/// The CA, the daemons' credentials, the client identities and the policy of a secure local
/// cluster; existing files are kept. Returns the client identity directories.
fn make_credentials(dir: &Path, daemons: u16) -> Result<BTreeMap<String, PathBuf>, CliError> {
    let fail = |e: pki::PkiError| CliError::Output(e.to_string());
    let ca = dir.join(PKI_DIR);
    if !ca.join(pki::CA_CERT).exists() {
        pki::init_ca(&ca, "sgc local cluster CA").map_err(fail)?;
    }
    let sans = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    for i in 0..daemons {
        let name = format!("d{i}");
        let id = ca.join(pki::Role::Daemon.subdir()).join(&name);
        if !id.join(pki::KEY_FILE).exists() {
            pki::issue(&ca, pki::Role::Daemon, &name, &sans).map_err(fail)?;
        }
        if !id.join(sign_key::SIGN_KEY_FILE).exists() {
            // A CA directory made before daemons had signing keys.
            sign_key::write_signing_key(&id).map_err(fail)?;
        }
    }
    let mut identities = BTreeMap::new();
    for name in CLIENT_IDENTITIES {
        let id = ca.join(pki::Role::Client.subdir()).join(name);
        if !id.join(pki::KEY_FILE).exists() {
            pki::issue(&ca, pki::Role::Client, name, &[]).map_err(fail)?;
        }
        identities.insert(name.to_owned(), id);
    }
    // The owner of the directory we just created is this process's effective uid.
    let uid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&ca).map_err(io_err("cannot stat", &ca))?.uid()
    };
    let mut allowed: Vec<String> = CLIENT_IDENTITIES[..3].iter().map(|s| (*s).to_owned()).collect();
    allowed.push(format!("uid:{uid}"));
    let policy = dir.join(POLICY_FILE);
    std::fs::write(&policy, sgc_daemon::policy::allow_all_text(&allowed))
        .map_err(io_err("cannot write", &policy))?;
    Ok(identities)
}

/// `[security]` of daemon `name`, with paths relative to its config file (`DIR/name/`).
fn security_section(mode: SecurityMode, name: &str, args: &UpArgs) -> SecuritySection {
    if mode == SecurityMode::None {
        return SecuritySection::default();
    }
    let up = Path::new("..");
    let id = up.join(PKI_DIR).join(pki::Role::Daemon.subdir()).join(name);
    let default = SecuritySection::default();
    SecuritySection {
        mode,
        ca: Some(up.join(PKI_DIR).join(pki::CA_CERT)),
        cert: Some(id.join(pki::CERT_FILE)),
        key: Some(id.join(pki::KEY_FILE)),
        policy: Some(up.join(POLICY_FILE)),
        sign_key: Some(id.join(sign_key::SIGN_KEY_FILE)),
        refresh_ms: args.refresh_ms.unwrap_or(default.refresh_ms),
        refresh_bytes: args.refresh_bytes.unwrap_or(default.refresh_bytes),
        evs_key_timeout_ms: args.evs_key_timeout_ms.unwrap_or(default.evs_key_timeout_ms),
        evs_max_old_keys: args.evs_max_old_keys.unwrap_or(default.evs_max_old_keys),
        transport_suite: args.transport_suite.unwrap_or_default(),
        ..default
    }
}

/// Every daemon's TGDH verifying key, listed in the peers of each configuration.
fn list_sign_keys(cfg: &mut DaemonConfig, dir: &Path) -> Result<(), CliError> {
    for p in &mut cfg.peers {
        let file = dir
            .join(PKI_DIR)
            .join(pki::Role::Daemon.subdir())
            .join(&p.name)
            .join(sign_key::SIGN_PUB_FILE);
        let key = sign_key::read_public_key(&file).map_err(|e| CliError::Output(e.to_string()))?;
        p.sign_pub = Some(sign_key::to_hex(&key));
    }
    Ok(())
}

fn start_all(
    args: &UpArgs,
    mode: SecurityMode,
    dir: &Path,
    base: u16,
    exe: &Path,
    started: &mut Vec<(ClusterDaemon, Child)>,
) -> Result<(), CliError> {
    for i in 0..args.daemons {
        let mut cfg = DaemonConfig::local(&args.cluster, args.daemons, i, base);
        cfg.security = security_section(mode, &cfg.daemon.name, args);
        cfg.runtime.record = args.record;
        cfg.network.multicast = args.multicast;
        if mode != SecurityMode::None {
            list_sign_keys(&mut cfg, dir)?;
        }
        if args.multicast.is_some() {
            cfg.validate()
                .map_err(|e| CliError::Usage(format!("--multicast: {e}")))?;
        }
        let ddir = dir.join(&cfg.daemon.name);
        std::fs::create_dir_all(&ddir).map_err(io_err("cannot create", &ddir))?;
        let cfg_path = ddir.join("config.toml");
        std::fs::write(&cfg_path, cfg.to_toml()).map_err(io_err("cannot write", &cfg_path))?;
        let log_path = ddir.join("daemon.log");
        let log = std::fs::File::create(&log_path).map_err(io_err("cannot create", &log_path))?;
        let log2 = log.try_clone().map_err(io_err("cannot open", &log_path))?;
        let mut cmd = Command::new(exe);
        cmd.arg("daemon")
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| CliError::Output(format!("cannot start sgc daemon: {e}")))?;
        started.push((
            ClusterDaemon {
                name: cfg.daemon.name.clone(),
                listen: cfg.daemon.listen,
                admin: cfg.daemon.admin,
                client: cfg.daemon.client,
                pid: child.id(),
            },
            child,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (d, child) in started.iter_mut() {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join(&d.name).join("daemon.log")).unwrap_or_default();
                return Err(CliError::Output(format!(
                    "daemon {} exited ({status}) during start:\n{}",
                    d.name,
                    log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
                )));
            }
            if admin::call(d.admin, &Request::Status, Duration::from_millis(500)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(CliError::Output(format!(
                    "daemon {} did not answer on {}",
                    d.name, d.admin
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// A base port whose whole range is free right now, derived from the process id.
pub(crate) fn free_base(n: u16) -> Result<u16, CliError> {
    let span = 3 * u32::from(n);
    let pid = std::process::id();
    for attempt in 0..64u32 {
        let slot = (pid.wrapping_mul(7919).wrapping_add(attempt.wrapping_mul(104_729))) % 1000;
        let base = 20_000 + slot * 40;
        if base + span > 60_000 {
            continue;
        }
        let ok = (0..n).all(|i| {
            let p = |k: u32| u16::try_from(base + 3 * u32::from(i) + k).unwrap_or(0);
            UdpSocket::bind(("127.0.0.1", p(0))).is_ok()
                && TcpListener::bind(("127.0.0.1", p(1))).is_ok()
                && TcpListener::bind(("127.0.0.1", p(2))).is_ok()
        });
        if ok {
            return u16::try_from(base).map_err(|e| CliError::Output(e.to_string()));
        }
    }
    Err(CliError::Output(
        "no free port range found; pass --base-port".into(),
    ))
}

fn read_info(dir: &Path) -> Result<ClusterInfo, CliError> {
    let file = dir.join(CLUSTER_FILE);
    let text = std::fs::read_to_string(&file).map_err(io_err("cannot read", &file))?;
    serde_json::from_str(&text).map_err(|e| CliError::Output(format!("{}: {e}", file.display())))
}

/// Whether a process is alive (Linux: present in /proc and not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn down(args: &DownArgs) -> Result<ExitCode, CliError> {
    let info = read_info(&args.dir)?;
    for d in &info.daemons {
        if alive(d.pid) {
            let _ = admin::call(d.admin, &Request::Shutdown, Duration::from_millis(500));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while info.daemons.iter().any(|d| alive(d.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut killed = 0;
    for d in &info.daemons {
        if alive(d.pid) {
            let _ = Command::new("kill").arg("-KILL").arg(d.pid.to_string()).status();
            killed += 1;
        }
    }
    let file = args.dir.join(CLUSTER_FILE);
    std::fs::remove_file(&file).map_err(io_err("cannot remove", &file))?;
    println!(
        "cluster down: {} daemons stopped ({killed} killed)",
        info.daemons.len()
    );
    Ok(ExitCode::SUCCESS)
}
