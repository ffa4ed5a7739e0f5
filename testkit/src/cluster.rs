//! A set of [`Node`]s forming one Raft cluster, laid out in one directory: `certs/` (the
//! cluster CA and node certificates, made by the binary) and `n<slot>/` per node.
//!
//! Nodes are addressed by id ([`Cluster::node`]) or by slot ([`Cluster::slot`], 1-based
//! position, fixed addresses; jepsen gives a slot a new id after a membership change).
//! Formation is what an operator does: node 1 bootstraps a single-node cluster, the others
//! `--join` its peer port one at a time (the node asks to be added as a learner and promoted),
//! each awaited as a voter, and finally every node must agree on one leader. The nodes are
//! killed before the directory goes ([`Keep`] decides whether it goes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::{poll, Addrs, Certs, ClusterView, Keep, Node, NodeSpec, Probe, Settings};

/// Where one slot's node listens and how it is launched.
#[derive(Clone, Debug)]
pub struct Slot {
    pub addrs: Addrs,
    /// A command the binary runs under, e.g. `ip netns exec <ns>`.
    pub launcher: Vec<String>,
}

/// Where a cluster lives.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The directory (created if missing); `None`: a temp dir.
    pub root: Option<PathBuf>,
    pub slots: Vec<Slot>,
}

impl Layout {
    /// `size` slots on free loopback ports, in a temp dir.
    pub fn loopback(size: usize) -> anyhow::Result<Layout> {
        let slots = (0..size)
            .map(|_| {
                Ok(Slot {
                    addrs: Addrs::loopback()?,
                    launcher: Vec::new(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Layout { root: None, slots })
    }
}

/// The nodes of one cluster, their certificates and their directory.
pub struct Cluster {
    settings: Arc<Settings>,
    certs: Certs,
    /// In slot order. Declared before `root`: killed and dropped before it is removed.
    nodes: Vec<Node>,
    root: PathBuf,
    temp: Option<TempDir>,
}

impl Cluster {
    /// [`Cluster::prepare`] then [`Cluster::form`].
    pub async fn start(settings: Settings, layout: Layout) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster::prepare(settings, layout)?;
        cluster.form().await?;
        Ok(cluster)
    }

    /// Makes the directory and the certificates of nodes `1..=slots` (naming every slot's
    /// IP address, for HTTPS); starts nothing, so a caller can still set a node's
    /// environment ([`Node::set_env`]) or read the CA before [`Cluster::form`].
    pub fn prepare(settings: Settings, layout: Layout) -> anyhow::Result<Cluster> {
        if layout.slots.is_empty() {
            bail!("a cluster has at least one node");
        }
        let (root, temp) = match layout.root {
            Some(root) => {
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("creating {}", root.display()))?;
                (root.canonicalize()?, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("ecommerce-cluster-")
                    .tempdir()
                    .context("creating the cluster temp dir")?;
                match settings.keep {
                    Keep::Always => (temp.keep(), None),
                    _ => (temp.path().to_path_buf(), Some(temp)),
                }
            }
        };
        let ids: Vec<u64> = (1..=layout.slots.len() as u64).collect();
        let hosts: BTreeSet<String> = layout
            .slots
            .iter()
            .map(|s| s.addrs.http.ip().to_string())
            .collect();
        let hosts: Vec<String> = hosts.into_iter().collect();
        let certs = Certs::init(&settings.bin, &root.join("certs"), &ids, &hosts)?;
        let settings = Arc::new(settings);
        let nodes = layout
            .slots
            .into_iter()
            .zip(&ids)
            .map(|(slot, &id)| {
                let spec = NodeSpec {
                    id,
                    addrs: slot.addrs,
                    dir: Some(root.join(format!("n{id}"))),
                    certs: Some(certs.clone()),
                    launcher: slot.launcher,
                };
                Node::new(settings.clone(), spec)
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Cluster {
            settings,
            certs,
            nodes,
            root,
            temp,
        })
    }

    /// Starts slot 1 alone and waits until it leads a single-node cluster; then every other
    /// slot with `--join <slot 1's peer address>`, each time waiting until slot 1 lists it as a
    /// voter; finally waits until all agree on a leader.
    pub async fn form(&mut self) -> anyhow::Result<()> {
        let timing = self.settings.timing;
        let first = &mut self.nodes[0];
        let (id1, peer1) = (first.id(), first.peer_addr());
        first.start(None, false).await?;
        first
            .probe()
            .wait_for(
                &format!("node {id1} to bootstrap as the leader of a single-node cluster"),
                timing,
                |v| v.leader_id == Some(id1) && v.voters() == [id1],
            )
            .await?;
        for slot in 1..self.nodes.len() {
            let node = &mut self.nodes[slot];
            let id = node.id();
            node.start(Some(peer1), false).await?;
            let mut expected: Vec<u64> = self.nodes[..=slot].iter().map(Node::id).collect();
            expected.sort_unstable();
            if let Err(e) = self.wait_voters(id1, &expected).await {
                let tail = self.nodes[slot].log_tail(20);
                return Err(e.context(format!("node {id} did not join; its log ends:\n{tail}")));
            }
        }
        self.leader().await?;
        Ok(())
    }

    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// The cluster's directory (`certs/`, `n<slot>/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The nodes in slot order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// The node of `slot` (1-based).
    ///
    /// # Panics
    /// When there is no such slot: a mistake in the caller.
    pub fn slot(&self, slot: usize) -> &Node {
        &self.nodes[slot - 1]
    }

    pub fn slot_mut(&mut self, slot: usize) -> &mut Node {
        &mut self.nodes[slot - 1]
    }

    /// The node with `id`.
    ///
    /// # Panics
    /// When no node has that id: a mistake in the caller.
    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id() == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// Ids of every node, running or not, sorted.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.nodes.iter().map(Node::id).collect();
        ids.sort_unstable();
        ids
    }

    /// REST URLs in slot order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Ids of the started nodes, sorted; an error (with its log's end) if one of them
    /// exited by itself.
    pub fn running_ids(&mut self) -> anyhow::Result<Vec<u64>> {
        for node in &mut self.nodes {
            if let Some(status) = node.reap() {
                bail!(
                    "node {} exited unexpectedly with {status}; its log ends:\n{}",
                    node.id(),
                    node.log_tail(60)
                );
            }
        }
        let mut ids: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::id)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Starts a new node `id` on loopback (in a new slot) joining through node `via`'s peer
    /// address, as a learner when asked, issuing its certificate if needed; waits until its
    /// REST API is up, not for the membership change.
    pub async fn add_node(&mut self, id: u64, via: u64, as_learner: bool) -> anyhow::Result<()> {
        if self.nodes.iter().any(|n| n.id() == id) {
            bail!("node {id} already exists");
        }
        let join = self.node(via).peer_addr();
        let addrs = Addrs::loopback()?;
        self.certs.ensure(id, &[addrs.http.ip().to_string()])?;
        let slot = self.nodes.len() + 1;
        let spec = NodeSpec {
            id,
            addrs,
            dir: Some(self.root.join(format!("n{slot}"))),
            certs: Some(self.certs.clone()),
            launcher: Vec::new(),
        };
        self.nodes.push(Node::new(self.settings.clone(), spec)?);
        self.slot_mut(slot).start(Some(join), as_learner).await
    }

    /// Gives `slot` node id `id` on an empty data dir (after its old id was removed from
    /// the membership): kills it, issues the certificate (naming the slot's IP address) and
    /// wipes its data. Start it with [`Node::spawn`] and a `--join`.
    pub fn reassign(&mut self, slot: usize, id: u64) -> anyhow::Result<()> {
        let node = self.slot_mut(slot);
        node.kill();
        let host = node.http_addr().ip().to_string();
        self.certs.ensure(id, &[host])?;
        self.slot_mut(slot).reassign(id)
    }

    /// SIGKILLs every node, in slot order, as fast as possible.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Waits until every running node names the same leader, and that leader is one of
    /// them; returns its id. A node that exited by itself is an error.
    pub async fn leader(&mut self) -> anyhow::Result<u64> {
        let running = self.running_ids()?;
        let probes: Vec<(u64, Probe)> = running
            .iter()
            .map(|&id| (id, self.node(id).probe().clone()))
            .collect();
        let probes = &probes;
        poll(
            "all running nodes to agree on a running leader",
            self.settings.timing,
            || async move {
                let mut views = Vec::new();
                for (id, probe) in probes {
                    let view = probe
                        .view()
                        .await
                        .map_err(|e| format!("node {id}: {e:#}"))?;
                    views.push((*id, view));
                }
                let leaders: BTreeSet<Option<u64>> =
                    views.iter().map(|(_, v)| v.leader_id).collect();
                match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                    [Some(leader)] if views.iter().any(|(id, _)| id == leader) => Ok(*leader),
                    _ => Err(views
                        .iter()
                        .map(|(id, v)| {
                            format!("node {id}: leader {:?} term {:?}", v.leader_id, v.term)
                        })
                        .collect::<Vec<_>>()
                        .join("; ")),
                }
            },
        )
        .await
    }

    /// Waits until node `via` lists exactly `expected` (sorted) as voters.
    pub async fn wait_voters(&self, via: u64, expected: &[u64]) -> anyhow::Result<ClusterView> {
        self.node(via)
            .probe()
            .wait_for(
                &format!("node {via} to list voters {expected:?}"),
                self.settings.timing,
                |v| v.voters() == expected,
            )
            .await
    }

    /// Waits until node `id` has applied at least log index `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) -> anyhow::Result<()> {
        self.node(id)
            .probe()
            .wait_for(
                &format!("node {id} to apply log index {index}"),
                self.settings.timing,
                |v| v.applied_index.is_some_and(|applied| applied >= index),
            )
            .await
            .map(drop)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() && self.settings.keep == Keep::OnPanic {
            if let Some(dir) = self.temp.take() {
                eprintln!("kept cluster dir {}", dir.keep().display());
            }
        }
    }
}
