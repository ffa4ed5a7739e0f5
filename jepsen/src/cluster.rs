//! The cluster runner: starts 3 or 5 `ecommerce serve` processes, one per
//! slot of the [`Net`], and kills, pauses, restarts and replaces them.
//!
//! Node 1 bootstraps; the others `--join` its peer port. Peers always talk
//! mutual TLS with certificates from a CA the runner makes with the node
//! binary (`ecommerce certs init`, in `<out>/certs`); with `--tls` clients
//! reach REST over HTTPS too. A slot keeps its addresses for
//! the whole run; after a membership change it hosts a node with a NEW id
//! (removed ids are refused forever) on a fresh data directory. Each node runs
//! in its own process group, so a signal reaches it and nothing else. On drop
//! every node is SIGKILLed (after a SIGCONT, in case it was paused) and the
//! network is torn down; the runner also reaps what a SIGKILLed earlier run
//! left (see `net::reap_stale`).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::net::{Addrs, Net};

/// Settings every node gets (through `ECOMMERCE_*`), chosen so faults show
/// within a short run: a short request deadline, frequent snapshots (so a
/// restarted node often catches up by snapshot install), a fast payment
/// worker and a sandbox slow card that is slow but not 30 s slow.
const NODE_ENV: &[(&str, &str)] = &[
    ("ECOMMERCE_HTTP__REQUEST_TIMEOUT_MS", "3000"),
    ("ECOMMERCE_PAYMENTS__SANDBOX_DELAY_MS", "4000"),
    ("ECOMMERCE_PAYMENTS__TIMEOUT_MS", "2000"),
    ("ECOMMERCE_PAYMENTS__POLL_INTERVAL_MS", "200"),
    ("ECOMMERCE_COMMERCE__SWEEP_INTERVAL_MS", "500"),
];

/// libfaketime, when installed (Debian package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One slot of the cluster.
pub struct NodeProc {
    pub slot: usize,
    /// The Raft id of the node the slot hosts now.
    pub id: u64,
    pub url: String,
    pub addrs: Addrs,
    dir: PathBuf,
    child: Option<Child>,
    pub paused: bool,
    /// Removed from the membership and not (yet) replaced.
    pub removed: bool,
    /// The peer address the node was first told to `--join`; kept for
    /// restarts (joining is idempotent), so a wiped node never bootstraps a
    /// cluster of its own.
    join: Option<std::net::SocketAddr>,
}

impl NodeProc {
    fn data_dir(&self) -> PathBuf {
        self.dir.join(format!("data-{}", self.id))
    }

    pub fn faketime_file(&self) -> PathBuf {
        self.dir.join("faketime")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// The nodes and their network.
pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    bin: PathBuf,
    /// The CA and node certificates (`certs init` / `certs issue`).
    certs: PathBuf,
    /// Clients use HTTPS.
    tls: bool,
    next_id: u64,
    snapshot_logs: u64,
    pub faketime: bool,
    /// Unexpected exits seen (slot, id, status).
    pub crashes: Vec<String>,
    // Declared last: dropped after the nodes are killed.
    pub net: Net,
}

fn signal(pid: u32, sig: &str) {
    // The node leads its own process group: signal the group.
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pid}")])
        .output();
}

impl Cluster {
    /// Creates the cluster CA and the certificates of nodes `1..=size` in
    /// `<out>/certs` with the node binary; returns the directory (its
    /// `ca.pem` is what HTTPS clients trust).
    pub fn init_certs(bin: &Path, out: &Path, net: &Net, size: usize) -> anyhow::Result<PathBuf> {
        let dir = out.join("certs");
        let nodes: Vec<String> = (1..=size).map(|id| id.to_string()).collect();
        let hosts: Vec<String> = (1..=size)
            .map(|slot| net.addrs(slot).http.ip().to_string())
            .collect();
        certs(
            bin,
            &[
                "init",
                "--dir",
                &dir.to_string_lossy(),
                "--nodes",
                &nodes.join(","),
                "--hosts",
                &hosts.join(","),
            ],
        )?;
        Ok(dir)
    }

    /// Starts `size` nodes and waits until all are voters under one leader.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        net: Net,
        size: usize,
        bin: &Path,
        out: &Path,
        certs: &Path,
        tls: bool,
        snapshot_logs: u64,
        http: &reqwest::Client,
    ) -> anyhow::Result<Cluster> {
        let faketime = Path::new(LIBFAKETIME).exists();
        let scheme = if tls { "https" } else { "http" };
        let mut nodes = Vec::new();
        for slot in 1..=size {
            let addrs = net.addrs(slot);
            let dir = out.join(format!("n{slot}"));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("faketime"), "+0\n")?;
            nodes.push(NodeProc {
                slot,
                id: slot as u64,
                url: format!("{scheme}://{}", addrs.http),
                addrs,
                dir,
                child: None,
                paused: false,
                removed: false,
                join: None,
            });
        }
        let mut cluster = Cluster {
            nodes,
            bin: bin.to_path_buf(),
            certs: certs.to_path_buf(),
            tls,
            next_id: size as u64 + 1,
            snapshot_logs,
            faketime,
            crashes: Vec::new(),
            net,
        };
        cluster.spawn(1, None)?;
        let first = cluster.nodes[0].url.clone();
        let first_peer = cluster.nodes[0].addrs.peer;
        wait_for(http, &first, Duration::from_secs(60), |v| {
            v["leader_id"] == 1
        })
        .await
        .context("node 1 did not bootstrap")?;
        for slot in 2..=size {
            cluster.spawn(slot, Some(first_peer))?;
            let id = slot as u64;
            wait_for(http, &first, Duration::from_secs(60), move |v| {
                voters(v).contains(&id)
            })
            .await
            .with_context(|| format!("node {slot} did not join"))?;
        }
        Ok(cluster)
    }

    pub fn slot(&self, slot: usize) -> &NodeProc {
        &self.nodes[slot - 1]
    }

    pub fn slot_mut(&mut self, slot: usize) -> &mut NodeProc {
        &mut self.nodes[slot - 1]
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// Starts the node of `slot` on its data dir, joining through the peer
    /// port `join` (or the one it joined through before).
    pub fn spawn(&mut self, slot: usize, join: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
        let prefix = self.net.exec_prefix(slot);
        let faketime = self.faketime;
        let certs = self.certs.clone();
        let tls = self.tls;
        let snapshot_logs = self.snapshot_logs.to_string();
        let bin = self.bin.clone();
        let node = self.slot_mut(slot);
        if node.child.is_some() {
            bail!("slot {slot} is already running");
        }
        let data_dir = node.data_dir();
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.env(
            "ECOMMERCE_AUTH__OPERATOR_TOKEN",
            crate::auth::OPERATOR_TOKEN,
        )
        // Every client of the suite signs in from one address.
        .env("ECOMMERCE_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "1000000")
        .env("ECOMMERCE_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "1000000")
        .arg("serve")
        .args(["--node-id", &node.id.to_string()])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--http-addr", &node.addrs.http.to_string()])
        .args(["--grpc-addr", &node.addrs.grpc.to_string()])
        .args(["--peer-addr", &node.addrs.peer.to_string()])
        .arg("--certs")
        .arg(&certs)
        .args(["--snapshot-logs", &snapshot_logs]);
        if tls {
            cmd.arg("--tls-cert")
                .arg(certs.join(format!("node-{}.pem", node.id)))
                .arg("--tls-key")
                .arg(certs.join(format!("node-{}.key", node.id)));
        } else {
            // Namespace addresses are not loopback.
            cmd.arg("--insecure-plaintext");
        }
        if join.is_some() {
            node.join = join;
        }
        if let Some(join) = node.join {
            cmd.args(["--join", &join.to_string()]);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ECOMMERCE_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(NODE_ENV.iter().copied());
        if faketime {
            // Wall clock only: the monotonic clock (Raft timers) stays true.
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", node.faketime_file())
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_DONT_RESET", "1");
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log_path())?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {bin:?}"))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// SIGKILLs the node of `slot` (no-op if not running).
    pub fn kill(&mut self, slot: usize) {
        let node = self.slot_mut(slot);
        if let Some(mut child) = node.child.take() {
            signal(child.id(), "-CONT");
            signal(child.id(), "-KILL");
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    pub fn pause(&mut self, slot: usize) {
        let node = self.slot_mut(slot);
        if let Some(pid) = node.pid() {
            signal(pid, "-STOP");
            node.paused = true;
        }
    }

    pub fn resume(&mut self, slot: usize) {
        let node = self.slot_mut(slot);
        if let Some(pid) = node.pid() {
            signal(pid, "-CONT");
        }
        node.paused = false;
    }

    /// Gives `slot` a new node id on an empty data dir (after its old id was
    /// removed from the membership); returns the new id.
    pub fn replace_id(&mut self, slot: usize) -> anyhow::Result<u64> {
        self.kill(slot);
        let id = self.next_id;
        self.next_id += 1;
        let host = self.slot(slot).addrs.http.ip().to_string();
        certs(
            &self.bin,
            &[
                "issue",
                "--dir",
                &self.certs.to_string_lossy(),
                "--node-id",
                &id.to_string(),
                "--hosts",
                &host,
            ],
        )?;
        let node = self.slot_mut(slot);
        let old = node.data_dir();
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        node.id = id;
        Ok(id)
    }

    /// Notes nodes that exited without being killed (a crash is an anomaly).
    pub fn reap_crashed(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.crashes.push(format!(
                        "node {} (slot {}) exited by itself: {status}; see {}",
                        node.id,
                        node.slot,
                        node.log_path().display()
                    ));
                    node.child = None;
                }
            }
        }
    }

    /// Sets the wall-clock offset of `slot`'s node (libfaketime), in seconds.
    pub fn skew_clock(&self, slot: usize, secs: i64) -> anyhow::Result<()> {
        if !self.faketime {
            bail!("libfaketime is not installed (apt-get install faketime)");
        }
        let sign = if secs < 0 { "-" } else { "+" };
        std::fs::write(
            self.slot(slot).faketime_file(),
            format!("{sign}{}\n", secs.abs()),
        )?;
        Ok(())
    }
}

/// Where cgroup v1 block-I/O throttling lives, when the host has it.
const BLKIO: &str = "/sys/fs/cgroup/blkio";

impl Cluster {
    fn blkio_group(&self, slot: usize) -> PathBuf {
        Path::new(BLKIO).join(format!("jp{}s{slot}", std::process::id()))
    }

    /// Throttles the node's block I/O (cgroup v1 blkio): `iops` writes and
    /// reads per second on the device holding its data, so every fsync of the
    /// Raft log is slow.
    pub fn slow_disk(&mut self, slot: usize, iops: u64) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let node = self.slot(slot);
        let pid = node.pid().context("node not running")?;
        let dev = std::fs::metadata(&node.dir)?.dev();
        let (major, minor) = (
            ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            (dev & 0xff) | ((dev >> 12) & !0xff),
        );
        if major == 0 || !Path::new(BLKIO).exists() {
            bail!("no cgroup v1 blkio throttling for device {major}:{minor}");
        }
        let group = self.blkio_group(slot);
        std::fs::create_dir_all(&group)?;
        for file in [
            "blkio.throttle.write_iops_device",
            "blkio.throttle.read_iops_device",
        ] {
            std::fs::write(group.join(file), format!("{major}:{minor} {iops}"))?;
        }
        std::fs::write(group.join("cgroup.procs"), pid.to_string())?;
        Ok(())
    }

    /// Ends every disk throttle (moves the nodes back, removes the groups).
    pub fn unslow_disks(&mut self) {
        for slot in 1..=self.nodes.len() {
            let group = self.blkio_group(slot);
            if !group.exists() {
                continue;
            }
            if let Ok(pids) = std::fs::read_to_string(group.join("cgroup.procs")) {
                for pid in pids.split_whitespace() {
                    let _ = std::fs::write(Path::new(BLKIO).join("cgroup.procs"), pid);
                }
            }
            let _ = std::fs::remove_dir(&group);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for slot in 1..=self.nodes.len() {
            self.kill(slot);
        }
        self.unslow_disks();
    }
}

/// Ids of the voters in a `GET /cluster` body.
pub fn voters(view: &Value) -> Vec<u64> {
    view["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == "voter")
                .filter_map(|m| m["node_id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `<bin> certs <args>`.
fn certs(bin: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("certs")
        .args(args)
        .output()
        .with_context(|| format!("running {bin:?} certs"))?;
    if !out.status.success() {
        bail!(
            "{bin:?} certs {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Polls `GET {url}/cluster` until `ok(body)` or `timeout`.
pub async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match cluster_view(http, url).await {
            Ok(v) if ok(&v) => return Ok(v),
            Ok(v) => v.to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} polling {url}/cluster; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET {url}/cluster`.
pub async fn cluster_view(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let reply = http
        .get(format!("{url}/cluster"))
        .timeout(Duration::from_secs(2))
        .send()
        .await?;
    Ok(reply.json().await?)
}
