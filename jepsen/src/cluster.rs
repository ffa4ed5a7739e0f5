//! The cluster runner: 3 or 5 `ecommerce serve` processes run by `ecommerce-testkit`, one per
//! slot of the [`Net`], plus what only this suite does to them.
//!
//! testkit starts, signals, restarts and reaps the nodes and forms the cluster (node 1
//! bootstraps, the others `--join` its peer port; peers always talk mutual TLS with
//! certificates the node binary makes in `<out>/certs`; with `--tls` clients reach REST over
//! HTTPS too). Each node leads its own process group, so a signal reaches it and nothing
//! else, and runs under the net's launcher (`ip netns exec` when namespaces are used). What
//! lives here: a slot keeps its addresses for the whole run, and after a membership change
//! hosts a node with a NEW id (removed ids are refused forever) on a fresh data directory;
//! wall clocks skewed with libfaketime, disks slowed with cgroup blkio, and the crashes seen.
//! On drop every node is SIGKILLed (after a SIGCONT, in case it was paused), disk throttles
//! are lifted and the network is torn down; the runner also reaps what a SIGKILLed earlier run
//! left (see `net::reap_stale`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ecommerce_testkit::{self as testkit, Layout, Node, Slot, Timing};

use crate::net::Net;

/// Settings every node gets (through `ECOMMERCE_*`), chosen so faults show
/// within a short run: a short request deadline, frequent snapshots (so a
/// restarted node often catches up by snapshot install), a fast payment
/// worker and a sandbox slow card that is slow but not 30 s slow.
const NODE_ENV: &[(&str, &str)] = &[
    // Every client of the suite signs in from one address.
    ("ECOMMERCE_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "1000000"),
    ("ECOMMERCE_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "1000000"),
    ("ECOMMERCE_HTTP__REQUEST_TIMEOUT_MS", "3000"),
    ("ECOMMERCE_PAYMENTS__SANDBOX_DELAY_MS", "4000"),
    ("ECOMMERCE_PAYMENTS__TIMEOUT_MS", "2000"),
    ("ECOMMERCE_PAYMENTS__POLL_INTERVAL_MS", "200"),
    ("ECOMMERCE_COMMERCE__SWEEP_INTERVAL_MS", "500"),
];

/// How the runner waits for nodes: a minute to come up or form, a poll every 200 ms.
pub const TIMING: Timing = Timing {
    timeout: Duration::from_secs(60),
    interval: Duration::from_millis(200),
    request: Duration::from_secs(2),
};

/// libfaketime, when installed (Debian package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The nodes and their network.
pub struct Cluster {
    /// The nodes, by slot.
    pub kit: testkit::Cluster,
    /// Slots whose id was removed from the membership and not (yet) replaced.
    removed: BTreeSet<usize>,
    next_id: u64,
    pub faketime: bool,
    /// Unexpected exits seen.
    pub crashes: Vec<String>,
    // Declared last: dropped after the nodes are killed.
    pub net: Net,
}

impl Cluster {
    /// Lays out `size` nodes on `net` in `out` (certificates in `<out>/certs`, slot `s` in
    /// `<out>/n<s>` with its `node.log`); starts nothing.
    pub fn prepare(
        net: Net,
        size: usize,
        bin: &Path,
        out: &Path,
        tls: bool,
        snapshot_logs: u64,
    ) -> anyhow::Result<Cluster> {
        let mut settings = testkit::Settings {
            client_tls: tls,
            own_process_group: true,
            timing: TIMING,
            ..testkit::Settings::new(bin)
        }
        .operator_token(crate::auth::OPERATOR_TOKEN)
        .args(["--snapshot-logs".to_string(), snapshot_logs.to_string()]);
        if !tls {
            // Namespace addresses are not loopback.
            settings = settings.arg("--insecure-plaintext");
        }
        for (key, value) in NODE_ENV {
            settings = settings.env(*key, *value);
        }
        let layout = Layout {
            root: Some(out.to_path_buf()),
            slots: (1..=size)
                .map(|slot| Slot {
                    addrs: net.addrs(slot),
                    launcher: net.exec_prefix(slot),
                })
                .collect(),
        };
        let mut kit = testkit::Cluster::prepare(settings, layout)?;
        let faketime = Path::new(LIBFAKETIME).exists();
        if faketime {
            for node in kit.nodes_mut() {
                let file = faketime_file(node);
                std::fs::write(&file, "+0\n")?;
                // Wall clock only: the monotonic clock (Raft timers) stays true.
                node.set_env("LD_PRELOAD", LIBFAKETIME);
                node.set_env("FAKETIME_TIMESTAMP_FILE", file.display().to_string());
                node.set_env("FAKETIME_CACHE_DURATION", "1");
                node.set_env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                node.set_env("FAKETIME_DONT_RESET", "1");
            }
        }
        Ok(Cluster {
            kit,
            removed: BTreeSet::new(),
            next_id: size as u64 + 1,
            faketime,
            crashes: Vec::new(),
            net,
        })
    }

    /// Starts the nodes and waits until all are voters under one leader.
    pub async fn form(&mut self) -> anyhow::Result<()> {
        self.kit.form().await
    }

    pub fn len(&self) -> usize {
        self.kit.nodes().len()
    }

    pub fn slot(&self, slot: usize) -> &Node {
        self.kit.slot(slot)
    }

    pub fn slot_mut(&mut self, slot: usize) -> &mut Node {
        self.kit.slot_mut(slot)
    }

    /// (slot, node) of every slot.
    pub fn slots(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.kit.nodes().iter().enumerate().map(|(i, n)| (i + 1, n))
    }

    pub fn urls(&self) -> Vec<String> {
        self.kit.urls()
    }

    pub fn is_removed(&self, slot: usize) -> bool {
        self.removed.contains(&slot)
    }

    pub fn set_removed(&mut self, slot: usize, removed: bool) {
        if removed {
            self.removed.insert(slot);
        } else {
            self.removed.remove(&slot);
        }
    }

    /// Gives `slot` a new node id on an empty data dir (after its old id was
    /// removed from the membership); returns the new id.
    pub fn replace_id(&mut self, slot: usize) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.kit.reassign(slot, id)?;
        Ok(id)
    }

    /// Notes nodes that exited without being killed (a crash is an anomaly).
    pub fn reap_crashed(&mut self) {
        for (i, node) in self.kit.nodes_mut().iter_mut().enumerate() {
            if let Some(status) = node.reap() {
                self.crashes.push(format!(
                    "node {} (slot {}) exited by itself: {status}; see {}",
                    node.id(),
                    i + 1,
                    node.log_path().display()
                ));
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
            faketime_file(self.slot(slot)),
            format!("{sign}{}\n", secs.abs()),
        )?;
        Ok(())
    }
}

/// The file libfaketime reads the node's clock offset from.
fn faketime_file(node: &Node) -> PathBuf {
    node.dir().join("faketime")
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
        let dev = std::fs::metadata(node.dir())?.dev();
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
        for slot in 1..=self.len() {
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
        self.kit.kill_all();
        self.unslow_disks();
    }
}
