//! A real network partition between daemons in Linux network namespaces.
//!
//! Runs only as root with a working `ip netns`; otherwise it prints that it was skipped and
//! passes. Topology (every name carries this process's id, so parallel runs do not collide, and
//! nothing outside the four namespaces it creates is touched):
//!
//! ```text
//!   ns sgc{pid}a ─ eth0 10.77.X.1 ─┐
//!   ns sgc{pid}b ─ eth0 10.77.X.2 ─┼─ v0 / v1 / v2 ─ bridge br0 in ns sgc{pid}s
//!   ns sgc{pid}c ─ eth0 10.77.X.3 ─┘
//! ```
//!
//! One daemon per namespace (`ip netns exec NS sgc daemon --config FILE`: ring on eth0, admin on
//! 127.0.0.1 inside the namespace, reached with `ip netns exec NS sgc admin ...`). The test waits
//! for one ring of three, sets c's bridge port down (a real cut, not the admin `partition`
//! hook), waits for rings {d0,d1} and {d2}, sets it up again and waits for one ring of three.
//! Every wait is bounded (20 s); a guard kills the daemons and deletes the namespaces (with
//! them the veth pairs and the bridge), also when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sgc_daemon::DaemonConfig;
use sgc_daemon::admin::Status;

const SGC: &str = env!("CARGO_BIN_EXE_sgc");
const WAIT: Duration = Duration::from_secs(20);
const PORT: u16 = 7000;

/// Namespaces, daemons and files of one run; dropping it removes them all.
struct Net {
    /// Daemon namespaces a, b, c.
    ns: Vec<String>,
    /// The switch namespace holding the bridge.
    sw: String,
    /// Namespaces created so far (deleted on drop).
    created: Vec<String>,
    daemons: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.daemons {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.created {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("daemon logs kept in {}", self.dir.display());
        }
    }
}

/// Run `ip ARGS`; the error carries stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl Net {
    fn new() -> Self {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("sgc-test-{pid}-netns"));
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            ns: ["a", "b", "c"].iter().map(|s| format!("sgc{pid}{s}")).collect(),
            sw: format!("sgc{pid}s"),
            created: Vec::new(),
            daemons: Vec::new(),
            dir,
        }
    }

    fn addr(i: usize) -> String {
        format!("10.77.{}.{}", std::process::id() % 250, i + 1)
    }

    /// Namespaces, bridge and veth pairs. An error here means the environment cannot run the test.
    fn build(&mut self) -> Result<(), String> {
        let all: Vec<String> = self.ns.iter().chain([&self.sw]).cloned().collect();
        for ns in &all {
            ip(&["netns", "add", ns])?;
            self.created.push(ns.clone());
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let sw = self.sw.as_str();
        ip(&["-n", sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", sw, "link", "set", "br0", "up"])?;
        for (i, ns) in self.ns.iter().enumerate() {
            let v = format!("v{i}");
            ip(&[
                "-n", sw, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ])?;
            ip(&["-n", sw, "link", "set", &v, "master", "br0"])?;
            ip(&["-n", sw, "link", "set", &v, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", Self::addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    fn start_daemons(&mut self) {
        for i in 0..3u16 {
            let mut cfg = DaemonConfig::local("sgc-netns", 3, i, PORT);
            for p in &mut cfg.peers {
                p.addr = format!("{}:{PORT}", Self::addr(usize::from(p.id)))
                    .parse()
                    .expect("peer address");
            }
            cfg.daemon.listen = cfg.peers[usize::from(i)].addr;
            cfg.daemon.admin = format!("127.0.0.1:{}", PORT + 1).parse().expect("admin");
            cfg.daemon.client = format!("127.0.0.1:{}", PORT + 2).parse().expect("client");
            cfg.validate().expect("valid config");
            let ddir = self.dir.join(&cfg.daemon.name);
            std::fs::create_dir_all(&ddir).expect("daemon dir");
            let cfg_path = ddir.join("config.toml");
            std::fs::write(&cfg_path, cfg.to_toml()).expect("write config");
            let log = std::fs::File::create(ddir.join("daemon.log")).expect("log");
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.ns[usize::from(i)],
                    SGC,
                    "daemon",
                    "--config",
                ])
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start daemon");
            self.daemons.push(child);
        }
    }

    fn status(&self, i: usize) -> Option<Status> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns[i], SGC, "admin", "--timeout", "2"])
            .args(["--daemon", &format!("127.0.0.1:{}", PORT + 1), "status", "--json"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Wait until each group of daemon indices is one operational ring with exactly those members.
    fn wait_rings(&mut self, groups: &[&[usize]]) {
        let deadline = Instant::now() + WAIT;
        loop {
            for (i, c) in self.daemons.iter_mut().enumerate() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("daemon d{i} exited: {st}");
                }
            }
            let mut seen = Vec::new();
            let ok = groups.iter().all(|g| {
                let names: Vec<String> = g.iter().map(|i| format!("d{i}")).collect();
                let st: Vec<Option<Status>> = g.iter().map(|i| self.status(*i)).collect();
                let good = st.iter().all(|s| {
                    s.as_ref().is_some_and(|s| {
                        s.phase == "Operational"
                            && s.ring.members == names
                            && st[0].as_ref().is_some_and(|f| f.ring.id == s.ring.id)
                    })
                });
                seen.extend(
                    st.into_iter()
                        .flatten()
                        .map(|s| format!("{} {} {} {:?}", s.daemon, s.phase, s.ring.id, s.ring.members)),
                );
                good
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rings {groups:?} not formed in {WAIT:?}: {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn n10_bridge_port_down_splits_the_ring_and_up_merges_it() {
    if !is_root() {
        println!("netns test skipped: not running as root");
        return;
    }
    if ip(&["netns", "list"]).is_err() {
        println!("netns test skipped: `ip netns` does not work here");
        return;
    }
    let mut net = Net::new();
    if let Err(e) = net.build() {
        println!("netns test skipped: cannot build the namespaces: {e}");
        return;
    }
    let t0 = Instant::now();
    net.start_daemons();
    net.wait_rings(&[&[0, 1, 2]]);
    let formed = t0.elapsed();

    let port = "v2";
    ip(&["-n", &net.sw, "link", "set", port, "down"]).expect("cut d2 off");
    let t1 = Instant::now();
    net.wait_rings(&[&[0, 1], &[2]]);
    let split = t1.elapsed();

    ip(&["-n", &net.sw, "link", "set", port, "up"]).expect("restore d2");
    let t2 = Instant::now();
    net.wait_rings(&[&[0, 1, 2]]);
    let merged = t2.elapsed();
    println!(
        "netns: ring of 3 in {formed:.2?}; port down -> two rings in {split:.2?}; \
         port up -> one ring in {merged:.2?}"
    );
}
