//! The cluster under measurement, and what its processes use.
//!
//! The nodes are `ecommerce serve` processes run by `ecommerce-testkit` on loopback, each
//! on free ports and its own data directory in a temp dir, fsync on (the node's default:
//! every Raft log append is a synced RocksDB write). Node 1 bootstraps, the others `--join`
//! its peer port (mutual TLS with certificates from `ecommerce certs init`); each node leads
//! its own process group and is SIGKILLed on drop. Unlike jepsen/, nothing here slows a node
//! down. What lives here is the measuring: RSS from `/proc/<pid>/status`, CPU time from
//! `/proc/<pid>/stat`, sampled while a step runs ([`Cluster::observe`]).

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use ecommerce_testkit::{self as testkit, Layout, Node};

use crate::api::OPERATOR_TOKEN;

/// Settings every node gets (through `ECOMMERCE_*`), after the operator token.
/// Everything else is the shipped default, fsync included.
const NODE_ENV: &[(&str, &str)] = &[
    // Every benchmark client signs in from one address, within a minute.
    ("ECOMMERCE_AUTH__ATTEMPTS_PER_IP_PER_MINUTE", "1000000"),
    ("ECOMMERCE_AUTH__ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "1000000"),
    // Tokens are taken once, before the runs; a long run must not outlive them.
    ("ECOMMERCE_AUTH__ACCESS_TOKEN_TTL_SECS", "86400"),
];

/// Lines of a node's log quoted when it exits during a run.
const LOG_TAIL_LINES: usize = 20;

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
    nodes: testkit::Cluster,
}

impl Cluster {
    /// Starts `size` nodes of `bin` and waits until all are voters under one
    /// leader. With `keep`, the data directories and logs outlive the run.
    /// `env` is set on every node after [`NODE_ENV`] (a benchmark's own settings).
    pub async fn start(
        bin: &Path,
        size: usize,
        keep: bool,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Cluster> {
        let mut settings = testkit::Settings {
            own_process_group: true,
            keep: match keep {
                true => testkit::Keep::Always,
                false => testkit::Keep::Never,
            },
            ..testkit::Settings::new(bin)
        }
        .operator_token(OPERATOR_TOKEN);
        for (key, value) in NODE_ENV.iter().chain(env) {
            settings = settings.env(*key, *value);
        }
        let nodes = testkit::Cluster::start(settings, Layout::loopback(size)?).await?;
        if keep {
            println!("node data and logs kept in {}", nodes.root().display());
        }
        Ok(Cluster { nodes })
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.urls()
    }

    /// The REST URL of the current leader (once every node names the same one).
    pub async fn leader_url(&mut self) -> anyhow::Result<String> {
        let leader = self.nodes.leader().await?;
        Ok(self.nodes.node(leader).url())
    }

    /// RSS of every node now.
    pub fn rss(&self) -> Rss {
        rss_of(&self.pids())
    }

    /// Every node's process id (`None`: not running).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.nodes.nodes().iter().map(Node::pid).collect()
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
        self.pids()
            .into_iter()
            .map(|pid| pid.and_then(cpu_secs))
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
    /// its log ends: ...". Empty while all run; asking again gives the same answer.
    pub fn exited(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        for node in self.nodes.nodes_mut() {
            if let Some(status) = node.exit_status() {
                gone.push(format!(
                    "node {} exited during the run ({status}); its log ends:\n{}",
                    node.id(),
                    node.log_tail(LOG_TAIL_LINES)
                ));
            }
        }
        gone
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
