//! One live daemon of the harness: its configuration and controlled-mode setup files, its
//! process (`sgc daemon --config`, SIGKILLed for a crash and started again on the same data
//! directory for a restart) and the admin requests of the controlled mode.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sgc_daemon::DaemonConfig;
use sgc_daemon::admin::{self, Request};
use sgc_daemon::controlled::{Drained, Formed, Setup};
use sgc_model::ring::{NodeId, Pid, RingConfig};

use super::HarnessError;

/// Admin request timeout.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Addresses of one daemon.
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    /// Ring UDP socket.
    pub listen: SocketAddr,
    /// Admin endpoint.
    pub admin: SocketAddr,
    /// Client endpoint (bound, unused).
    pub client: SocketAddr,
}

/// A daemon of the harness.
#[derive(Debug)]
pub struct LiveNode {
    /// Node id.
    pub id: NodeId,
    /// Addresses.
    pub addrs: Addrs,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// Whether it was started once (`start`).
    pub started: bool,
    /// Its pid once it reported (per process).
    pub me: Option<Pid>,
    /// Inputs the current process reported handled.
    pub inputs: u64,
    /// The deliveries the current process reported (`id`, `config` as the admin `log` shows
    /// them).
    pub delivered: Vec<(String, String)>,
}

impl LiveNode {
    /// Writes the configuration of daemon `id`: its peers are the harness's sockets `peers`
    /// (`peers[p]` is where it sends to `p`; its own entry, the loopback, goes in the setup).
    pub fn prepare(
        dir: &Path,
        id: NodeId,
        addrs: Addrs,
        peers: &[(NodeId, SocketAddr)],
        ring: &RingConfig,
        formed: Option<Formed>,
    ) -> Result<Self, HarnessError> {
        let io = |e: std::io::Error| HarnessError::Io(dir.display().to_string(), e.to_string());
        std::fs::create_dir_all(dir).map_err(io)?;
        let n = u16::try_from(peers.len()).map_err(|_| HarnessError::Setup("too many daemons".into()))?;
        let mut cfg = DaemonConfig::local("conformance", n, 0, 20_000);
        cfg.peers = peers
            .iter()
            .map(|&(p, addr)| sgc_daemon::config::Peer {
                id: p,
                name: format!("d{p}"),
                addr: if p == id { addrs.listen } else { addr },
                sign_pub: None,
            })
            .collect();
        cfg.daemon.id = id;
        cfg.daemon.name = format!("d{id}");
        cfg.daemon.listen = addrs.listen;
        cfg.daemon.admin = addrs.admin;
        cfg.daemon.client = addrs.client;
        cfg.daemon.data_dir = dir.join("data");
        cfg.runtime.controlled = true;
        cfg.runtime.controlled_setup = Some(dir.join("setup.json"));
        cfg.runtime.socket_buffer = 0;
        let loopback = peers
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, a)| *a)
            .ok_or_else(|| HarnessError::Setup(format!("no loopback socket for d{id}")))?;
        let setup = Setup {
            ring: ring.clone(),
            formed,
            loopback,
        };
        let setup = serde_json::to_string_pretty(&setup).map_err(|e| HarnessError::Setup(e.to_string()))?;
        std::fs::write(dir.join("setup.json"), setup).map_err(io)?;
        let config = dir.join("daemon.toml");
        std::fs::write(&config, cfg.to_toml()).map_err(io)?;
        Ok(Self {
            id,
            addrs,
            dir: dir.to_owned(),
            config,
            child: None,
            started: false,
            me: None,
            inputs: 0,
            delivered: Vec::new(),
        })
    }

    /// Whether its process runs.
    pub const fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process (first start or restart from its data directory).
    pub fn spawn(&mut self, program: &Path) -> Result<(), HarnessError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .map_err(|e| HarnessError::Io(self.dir.display().to_string(), e.to_string()))?;
        let child = Command::new(program)
            .arg("daemon")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| HarnessError::Spawn(program.display().to_string(), e.to_string()))?;
        self.child = Some(child);
        self.started = true;
        self.me = None;
        self.inputs = 0;
        self.delivered.clear();
        Ok(())
    }

    /// SIGKILL and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Why the process is gone, if it exited on its own.
    pub fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => Some(format!(
                "d{} exited ({status}); see {}",
                self.id,
                self.dir.join("daemon.log").display()
            )),
            _ => None,
        }
    }

    /// One admin request (the daemon may still be starting: refused connections are retried
    /// until `deadline`).
    pub fn call(&self, req: &Request, deadline: Instant) -> Result<serde_json::Value, String> {
        loop {
            match admin::call(self.addrs.admin, req, ADMIN_TIMEOUT) {
                Ok(v) => return Ok(v),
                Err(admin::ClientError::Refused { message, .. }) => return Err(message),
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(e.to_string());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// The daemon's delivery log (admin `log`): `(id, config)` oldest first.
    pub fn log(&self, deadline: Instant) -> Result<Vec<(String, String)>, String> {
        let v = self.call(&Request::Log { last: None }, deadline)?;
        let entries = v["entries"].as_array().ok_or("no log entries in the answer")?;
        Ok(entries
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (s("id"), s("config"))
            })
            .collect())
    }

    /// The reports since the last drain.
    pub fn drain(&mut self, deadline: Instant) -> Result<Drained, String> {
        let v = self.call(&Request::Controlled, deadline)?;
        let d: Drained = serde_json::from_value(v).map_err(|e| format!("bad controlled answer: {e}"))?;
        self.me = Some(d.me);
        Ok(d)
    }
}

impl Drop for LiveNode {
    fn drop(&mut self) {
        self.kill();
    }
}
