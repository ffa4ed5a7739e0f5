//! The cluster under measurement: `ecommerce serve` processes on loopback,
//! each on free ports and its own data directory in a temp dir, fsync on (the
//! node's default: every Raft log append is a synced RocksDB write).
//!
//! Node 1 bootstraps, the others `--join` its peer port (mutual TLS with
//! certificates from `ecommerce certs init`), as `jepsen/src/cluster.rs` does
//! (without its network namespaces, clock skew and faults: nothing here
//! should slow a node down). Each node leads its own process group and is
//! SIGKILLed on drop. RSS is read from `/proc/<pid>/status`.

use std::fs::File;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::api::OPERATOR_TOKEN;

/// Settings every node gets (through `ECOMMERCE_*`). Everything else is the
/// shipped default, fsync included.
const NODE_ENV: &[(&str, &str)] = &[
    ("ECOMMERCE_AUTH__OPERATOR_TOKEN", OPERATOR_TOKEN),
    // Every benchmark client signs in from one address, within a minute.
    ("ECOMMERCE_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "1000000"),
    ("ECOMMERCE_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "1000000"),
    // Tokens are taken once, before the runs; a long run must not outlive them.
    ("ECOMMERCE_AUTH__ACCESS_TOKEN_TTL_SECS", "86400"),
];

pub struct Node {
    pub id: u64,
    pub url: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Resident set size of process `pid` in KiB, if it is alive.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// RSS in KiB of each process in `pids` (`None`: not running).
pub fn rss_of(pids: &[Option<u32>]) -> Rss {
    Rss(pids.iter().map(|p| p.and_then(rss_kib)).collect())
}

/// User and system CPU time of process `pid` in seconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks of 1/100 s: Linux's
/// `USER_HZ` on every architecture we run on).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// User plus system CPU seconds in the text of a `/proc/<pid>/stat`.
fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// What the processes used during a step.
#[derive(Clone, Debug)]
pub struct Usage {
    /// Peak RSS of every node.
    pub rss: Rss,
    /// CPU cores used on average by each node, then by the load generator.
    pub cores: Vec<Option<f64>>,
}

impl Usage {
    /// "a / b / c / g": cores used by each node and the load generator.
    pub fn cores_text(&self) -> String {
        self.cores
            .iter()
            .map(|c| c.map_or("-".into(), |c| format!("{c:.2}")))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// RSS of every node in KiB (`None`: the process is gone).
#[derive(Clone, Debug)]
pub struct Rss(pub Vec<Option<u64>>);

impl Rss {
    /// Cells of a table row: MiB per node.
    pub fn cells(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|k| k.map_or("-".into(), |k| (k / 1024).to_string()))
            .collect()
    }

    /// The larger of the two per node.
    fn max(&mut self, other: &Rss) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = match (*mine, *theirs) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
}

impl std::fmt::Display for Rss {
    /// "a / b / c" in MiB.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cells().join(" / "))
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    // Dropped after the nodes are killed (fields drop in order, after `Drop`).
    dir: Option<tempfile::TempDir>,
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    /// Starts `size` nodes of `bin` and waits until all are voters under one
    /// leader. With `keep`, the data directories and logs outlive the run.
    /// `env` is set on every node after [`NODE_ENV`] (a benchmark's own settings).
    pub async fn start(
        bin: &Path,
        size: usize,
        keep: bool,
        http: &reqwest::Client,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("ecommerce-bench-")
            .tempdir()?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir: Some(dir),
        };
        let root = cluster.root().to_path_buf();
        let certs = root.join("certs");
        let ids: Vec<String> = (1..=size).map(|id| id.to_string()).collect();
        let made = Command::new(bin)
            .args(["certs", "init", "--nodes", &ids.join(","), "--dir"])
            .arg(&certs)
            .output()
            .with_context(|| format!("running {} certs init", bin.display()))?;
        if !made.status.success() {
            bail!("certs init: {}", String::from_utf8_lossy(&made.stderr));
        }
        let mut first_peer: Option<String> = None;
        for id in 1..=size as u64 {
            let node_dir = root.join(format!("n{id}"));
            std::fs::create_dir_all(&node_dir)?;
            let http_port = free_port()?;
            let grpc_port = free_port()?;
            let peer_addr = format!("127.0.0.1:{}", free_port()?);
            let mut cmd = Command::new(bin);
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ECOMMERCE_") {
                    cmd.env_remove(key);
                }
            }
            cmd.envs(NODE_ENV.iter().copied())
                .envs(env.iter().copied())
                .arg("serve")
                .args(["--node-id", &id.to_string()])
                .arg("--data-dir")
                .arg(node_dir.join("data"))
                .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
                .args(["--grpc-addr", &format!("127.0.0.1:{grpc_port}")])
                .args(["--peer-addr", &peer_addr])
                .arg("--certs")
                .arg(&certs);
            match &first_peer {
                Some(join) => {
                    cmd.args(["--join", join]);
                }
                None => first_peer = Some(peer_addr),
            }
            let log = File::create(node_dir.join("node.log"))?;
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0);
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            cluster.nodes.push(Node {
                id,
                url: format!("http://127.0.0.1:{http_port}"),
                dir: node_dir,
                child: Some(child),
            });
            let first = cluster.nodes[0].url.clone();
            let log = cluster.nodes[id as usize - 1].dir.join("node.log");
            let ok = if id == 1 {
                wait_for(http, &first, |v| v["leader_id"] == 1).await
            } else {
                wait_for(http, &first, |v| voters(v).contains(&id)).await
            };
            // The temp dir goes with the error: quote the log's end.
            ok.with_context(|| format!("node {id} did not start; its log ends:\n{}", tail(&log)))?;
        }
        if keep {
            let dir = cluster.dir.take().map(tempfile::TempDir::keep);
            if let Some(dir) = dir {
                println!("node data and logs kept in {}", dir.display());
            }
        }
        Ok(cluster)
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or_else(|| Path::new("/"))
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The REST URL of the current leader.
    pub async fn leader_url(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let view = wait_for(http, &self.nodes[0].url, |v| v["leader_id"].is_u64()).await?;
        let leader = view["leader_id"].as_u64().unwrap_or(1);
        self.nodes
            .iter()
            .find(|n| n.id == leader)
            .map(|n| n.url.clone())
            .context("the leader is not one of our nodes")
    }

    /// RSS of every node now.
    pub fn rss(&self) -> Rss {
        rss_of(&self.pids())
    }

    /// Every node's process id (`None`: not running).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.nodes.iter().map(Node::pid).collect()
    }

    /// Runs `work` while sampling every node's RSS every 100 ms; returns
    /// its output, the peak RSS of each node meanwhile, and the CPU each
    /// node and this process (the load generator) used.
    pub async fn observe<T>(&self, work: impl Future<Output = T>) -> (T, Usage) {
        let started = Instant::now();
        let cpu_before = self.cpu_secs();
        let mut peak = self.rss();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tokio::pin!(work);
        let out = loop {
            tokio::select! {
                out = &mut work => {
                    peak.max(&self.rss());
                    break out;
                }
                _ = tick.tick() => peak.max(&self.rss()),
            }
        };
        let wall = started.elapsed().as_secs_f64();
        let cores = cpu_before
            .iter()
            .zip(self.cpu_secs())
            .map(|(a, b)| Some((b? - (*a)?) / wall))
            .collect();
        (out, Usage { rss: peak, cores })
    }

    /// CPU seconds used so far by each node, then by this process.
    fn cpu_secs(&self) -> Vec<Option<f64>> {
        self.nodes
            .iter()
            .map(|n| n.pid().and_then(cpu_secs))
            .chain([cpu_secs(std::process::id())])
            .collect()
    }

    /// Fails if a node exited by itself.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(exit) = self.exited().into_iter().next() {
            bail!("{exit}");
        }
        Ok(())
    }

    /// The nodes that exited by themselves, each as "node N exited (status);
    /// its log ends: ...". Empty while all run.
    pub fn exited(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    gone.push(format!(
                        "node {} exited during the run ({status}); its log ends:\n{}",
                        node.id,
                        tail(&node.dir.join("node.log"))
                    ));
                }
            }
        }
        gone
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // The node leads its own process group: end the whole group.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .output();
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Ids of the voters in a `GET /cluster` body.
fn voters(view: &Value) -> Vec<u64> {
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

/// Polls `GET {url}/cluster` until `ok(body)`, for up to a minute.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    ok: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match http
            .get(format!("{url}/cluster"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(reply) => match reply.json::<Value>().await {
                Ok(v) if ok(&v) => return Ok(v),
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("timed out polling {url}/cluster; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{stat_cpu_secs, Rss};

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        let stat = "4242 (tokio rt) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(stat_cpu_secs(stat), Some(3.0));
        assert_eq!(stat_cpu_secs("garbage"), None);
    }

    #[test]
    fn peak_rss_keeps_the_larger_value_per_node() {
        let mut peak = Rss(vec![Some(2048), None, Some(4096)]);
        peak.max(&Rss(vec![Some(1024), Some(3072), None]));
        assert_eq!(peak.cells(), ["2", "3", "4"]);
    }
}
