//! The network the nodes run on, and the faults made in it.
//!
//! As root ([`Net::namespaces`]): one network namespace per node slot, each
//! with a veth pair whose host end is enslaved to a bridge that also carries
//! the runner's own address (`.254`), so clients reach every node directly.
//! A partition is made at the network level by blackhole routes inside the
//! namespaces of both sides (packets to the other side are dropped, silently,
//! like a cut cable); a slow link is a `tc tbf` rate limit on the node's veth.
//! Nothing here calls into a node.
//!
//! Without root ([`Net::loopback`]): every node listens on 127.0.0.1 with its
//! own ports. Partitions and slow links are not available there: a node
//! advertises ONE gRPC address to all its peers, so a proxy in front of it
//! cannot tell which peer a connection comes from, and a per-link cut cannot
//! be made without root. The nemesis refuses those faults in that mode.
//!
//! Everything created is named `jp<runner pid>...` and removed on drop;
//! [`reap_stale`] removes what a runner killed with SIGKILL left behind.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use anyhow::{bail, Context};
use ecommerce_testkit::{free_port, Addrs};

/// Where the nodes live.
pub struct Net {
    mode: Mode,
    /// Cut links, as (lower slot, higher slot).
    cuts: BTreeSet<(usize, usize)>,
    slowed: BTreeSet<usize>,
}

enum Mode {
    Namespaces {
        prefix: String,
        subnet: u8,
        slots: usize,
    },
    Loopback {
        /// (http, grpc, peer) per slot.
        ports: Vec<[u16; 3]>,
    },
}

/// Runs `ip`/`tc` with `args`, failing with its stderr.
fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Like [`run`], ignoring failure (for teardown and idempotent undo).
fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).output();
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Removes namespaces and bridges of runners that no longer exist (a runner
/// killed with SIGKILL cannot clean up after itself), and the node processes
/// still running inside those namespaces.
pub fn reap_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let mut dead = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("jp") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('n') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
            for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                run_quiet("kill", &["-9", p]);
            }
        }
        run_quiet("ip", &["netns", "del", name]);
        dead.insert(pid);
    }
    for pid in dead {
        run_quiet("ip", &["link", "del", &format!("jp{pid}br")]);
    }
}

impl Net {
    /// One namespace per slot on a private bridge (needs root).
    pub fn namespaces(slots: usize) -> anyhow::Result<Net> {
        let pid = std::process::id();
        let prefix = format!("jp{pid}");
        // A /24 of 10.231.0.0/16 picked from the pid, so concurrent runners
        // on one machine rarely share one; `ip` refuses a duplicate bridge.
        let subnet = (pid % 200) as u8 + 20;
        let net = Net {
            mode: Mode::Namespaces {
                prefix: prefix.clone(),
                subnet,
                slots,
            },
            cuts: BTreeSet::new(),
            slowed: BTreeSet::new(),
        };
        let bridge = format!("{prefix}br");
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.231.{subnet}.254/24"),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for slot in 1..=slots {
            let ns = format!("{prefix}n{slot}");
            let host = format!("{prefix}h{slot}");
            let inner = format!("{prefix}c{slot}");
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            )?;
            run("ip", &["link", "set", &inner, "netns", &ns])?;
            run("ip", &["link", "set", &host, "master", &bridge])?;
            run("ip", &["link", "set", &host, "up"])?;
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("10.231.{subnet}.{slot}/24"),
                    "dev",
                    &inner,
                ],
            )?;
            run("ip", &["-n", &ns, "link", "set", &inner, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Loopback ports, no network faults.
    pub fn loopback(slots: usize) -> anyhow::Result<Net> {
        let mut ports = Vec::new();
        for _ in 0..slots {
            ports.push([free_port()?, free_port()?, free_port()?]);
        }
        Ok(Net {
            mode: Mode::Loopback { ports },
            cuts: BTreeSet::new(),
            slowed: BTreeSet::new(),
        })
    }

    pub fn supports_network_faults(&self) -> bool {
        matches!(self.mode, Mode::Namespaces { .. })
    }

    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Namespaces { prefix, subnet, .. } => {
                format!("network namespaces {prefix}n* on bridge {prefix}br, 10.231.{subnet}.0/24")
            }
            Mode::Loopback { .. } => "loopback (no network faults)".into(),
        }
    }

    /// (REST, gRPC) address of the node in `slot` (1-based).
    pub fn addrs(&self, slot: usize) -> Addrs {
        let (ip, [http, grpc, peer]) = match &self.mode {
            Mode::Namespaces { subnet, .. } => (
                IpAddr::V4(Ipv4Addr::new(10, 231, *subnet, slot as u8)),
                [8080, 50051, 50052],
            ),
            Mode::Loopback { ports } => (IpAddr::V4(Ipv4Addr::LOCALHOST), ports[slot - 1]),
        };
        Addrs {
            http: SocketAddr::new(ip, http),
            grpc: SocketAddr::new(ip, grpc),
            peer: SocketAddr::new(ip, peer),
        }
    }

    /// The command prefix that runs a program inside `slot`'s namespace.
    pub fn exec_prefix(&self, slot: usize) -> Vec<String> {
        match &self.mode {
            Mode::Namespaces { prefix, .. } => vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                format!("{prefix}n{slot}"),
            ],
            Mode::Loopback { .. } => Vec::new(),
        }
    }

    fn ns(&self, slot: usize) -> anyhow::Result<(String, Ipv4Addr)> {
        match &self.mode {
            Mode::Namespaces { prefix, subnet, .. } => Ok((
                format!("{prefix}n{slot}"),
                Ipv4Addr::new(10, 231, *subnet, slot as u8),
            )),
            Mode::Loopback { .. } => bail!("network faults need root (network namespaces)"),
        }
    }

    /// Cuts the link between slots `a` and `b` in both directions.
    pub fn cut(&mut self, a: usize, b: usize) -> anyhow::Result<()> {
        let (ns_a, ip_a) = self.ns(a)?;
        let (ns_b, ip_b) = self.ns(b)?;
        run(
            "ip",
            &[
                "-n",
                &ns_a,
                "route",
                "replace",
                "blackhole",
                &format!("{ip_b}/32"),
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                &ns_b,
                "route",
                "replace",
                "blackhole",
                &format!("{ip_a}/32"),
            ],
        )?;
        self.cuts.insert((a.min(b), a.max(b)));
        Ok(())
    }

    /// Restores every cut link.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        let cuts: Vec<_> = std::mem::take(&mut self.cuts).into_iter().collect();
        for (a, b) in cuts {
            let (ns_a, ip_a) = self.ns(a)?;
            let (ns_b, ip_b) = self.ns(b)?;
            run_quiet(
                "ip",
                &[
                    "-n",
                    &ns_a,
                    "route",
                    "del",
                    "blackhole",
                    &format!("{ip_b}/32"),
                ],
            );
            run_quiet(
                "ip",
                &[
                    "-n",
                    &ns_b,
                    "route",
                    "del",
                    "blackhole",
                    &format!("{ip_a}/32"),
                ],
            );
        }
        Ok(())
    }

    /// Slows the link of `slot`: a token bucket of `kbit` kbit/s that queues
    /// up to 300 ms (`netem` delays would be nicer; this kernel lacks them).
    pub fn slow(&mut self, slot: usize, kbit: u64) -> anyhow::Result<()> {
        let (ns, _) = self.ns(slot)?;
        let dev = self.inner_dev(slot);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "tc",
                "qdisc",
                "replace",
                "dev",
                &dev,
                "root",
                "tbf",
                "rate",
                &format!("{kbit}kbit"),
                "burst",
                "16kbit",
                "latency",
                "300ms",
            ],
        )?;
        self.slowed.insert(slot);
        Ok(())
    }

    pub fn unslow_all(&mut self) {
        for slot in std::mem::take(&mut self.slowed) {
            if let Ok((ns, _)) = self.ns(slot) {
                let dev = self.inner_dev(slot);
                run_quiet(
                    "ip",
                    &[
                        "netns", "exec", &ns, "tc", "qdisc", "del", "dev", &dev, "root",
                    ],
                );
            }
        }
    }

    fn inner_dev(&self, slot: usize) -> String {
        match &self.mode {
            Mode::Namespaces { prefix, .. } => format!("{prefix}c{slot}"),
            Mode::Loopback { .. } => String::new(),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Mode::Namespaces { prefix, slots, .. } = &self.mode {
            for slot in 1..=*slots {
                let ns = format!("{prefix}n{slot}");
                if let Ok(pids) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                    for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                        run_quiet("kill", &["-9", p]);
                    }
                }
                run_quiet("ip", &["netns", "del", &ns]);
            }
            run_quiet("ip", &["link", "del", &format!("{prefix}br")]);
        }
    }
}
