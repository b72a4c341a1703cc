//! Shared helpers of the multi-process tests: a local cluster started with `sgc cluster up`,
//! observed and steered through the admin endpoint. Dropping a [`Cluster`] kills its processes.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sgc_daemon::admin::{self, Request, SendService, Status};

pub const SGC: &str = env!("CARGO_BIN_EXE_sgc");
pub const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
pub struct Info {
    pub cluster: String,
    pub daemons: Vec<D>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct D {
    pub name: String,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub client: SocketAddr,
    pub pid: u32,
}

/// A running cluster; dropping it kills every process it started.
pub struct Cluster {
    pub dir: PathBuf,
    pub info: Info,
    pub extra: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in &self.info.daemons {
            kill(d.pid);
        }
        for c in &mut self.extra {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `sgc ARGS` to completion.
pub fn sgc(args: &[&str]) -> Output {
    Command::new(SGC).args(args).output().expect("sgc runs")
}

/// The one JSON object a command printed.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Spawns `sgc user ARGS --daemon ADDR` (ARGS include `--json`): the process, its stdin, and
/// one JSON value per line it prints (a line that is not JSON comes as a string), read by a
/// thread until the process ends.
pub fn spawn_user(
    args: &[&str],
    daemon: SocketAddr,
) -> (Child, ChildStdin, mpsc::Receiver<serde_json::Value>) {
    let mut child = Command::new(SGC)
        .arg("user")
        .args(args)
        .arg("--daemon")
        .arg(daemon.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sgc user");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    (child, stdin, events)
}

pub fn kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sgc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `sgc cluster up --daemons n --json`, retried if ports were taken meanwhile.
pub fn up(name: &str, n: u16) -> Cluster {
    up_with(name, n, &[])
}

/// [`up`] with more `sgc cluster up` options.
pub fn up_with(name: &str, n: u16, extra: &[&str]) -> Cluster {
    let dir = test_dir(name);
    let mut last = String::new();
    for _ in 0..3 {
        let out = Command::new(SGC)
            .args(["cluster", "up", "--daemons", &n.to_string(), "--json", "--dir"])
            .arg(&dir)
            .args(extra)
            .output()
            .expect("run sgc cluster up");
        if out.status.success() {
            let info: Info = serde_json::from_slice(&out.stdout).expect("cluster up --json output");
            assert_eq!(info.daemons.len(), usize::from(n));
            return Cluster {
                dir,
                info,
                extra: Vec::new(),
            };
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
    }
    panic!("sgc cluster up failed: {last}");
}

impl Cluster {
    /// The identity directory `sgc cluster up --security` created for client `who`.
    pub fn identity(&self, who: &str) -> PathBuf {
        self.dir.join("pki").join("clients").join(who)
    }

    /// Comma-separated addresses of every daemon, as `f` picks them.
    pub fn list(&self, f: impl Fn(&D) -> SocketAddr) -> String {
        self.info
            .daemons
            .iter()
            .map(|d| f(d).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn d(&self, name: &str) -> &D {
        self.info
            .daemons
            .iter()
            .find(|d| d.name == name)
            .expect("daemon name")
    }

    pub fn status(&self, name: &str) -> Option<Status> {
        let v = admin::call(self.d(name).admin, &Request::Status, Duration::from_secs(2)).ok()?;
        serde_json::from_value(v).ok()
    }

    pub fn call(&self, name: &str, req: &Request) -> serde_json::Value {
        admin::call(self.d(name).admin, req, Duration::from_secs(5)).expect("admin call")
    }

    /// Wait until each group of names is one operational ring with exactly those members.
    pub fn wait_rings(&self, groups: &[&[&str]]) -> Vec<Status> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut all = Vec::new();
            let ok = groups.iter().all(|g| {
                let st: Vec<Option<Status>> = g.iter().map(|n| self.status(n)).collect();
                let good = st.iter().all(|s| {
                    s.as_ref().is_some_and(|s| {
                        s.phase == "Operational"
                            && s.ring.members == g.iter().map(ToString::to_string).collect::<Vec<_>>()
                    })
                }) && st
                    .windows(2)
                    .all(|w| w[0].as_ref().map(|s| &s.ring.id) == w[1].as_ref().map(|s| &s.ring.id));
                all.extend(st.into_iter().flatten());
                good
            });
            if ok {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "rings {groups:?} not formed in {WAIT:?}: {all:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_delivered(&self, names: &[&str], n: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let counts: Vec<u64> = names
                .iter()
                .map(|d| self.status(d).map_or(0, |s| s.delivered_testing))
                .collect();
            if counts.iter().all(|c| *c >= n) {
                assert!(counts.iter().all(|c| *c == n), "too many deliveries: {counts:?}");
                return;
            }
            assert!(Instant::now() < deadline, "deliveries {counts:?}, want {n}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `k` deliveries of a daemon, as `(id, config)` pairs.
    pub fn log(&self, name: &str, k: usize) -> Vec<(String, String)> {
        let v = self.call(name, &Request::Log { last: Some(k) });
        v["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e["config"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    pub fn send(&self, name: &str, count: u32, service: SendService) {
        self.call(
            name,
            &Request::Send {
                count,
                size: 100,
                service,
            },
        );
    }
}
