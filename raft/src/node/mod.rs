//! [`RaftNode`]: one member of the cluster as the API layer sees it.
//!
//! Writes: a client write may arrive at any node. The leader proposes it; a
//! follower forwards it to the leader over gRPC. A write is retried on another
//! leader only when the first attempt provably had no effect, or when it
//! carries an idempotency key (then the state machine deduplicates it): a
//! `ForwardToLeader` after the entry was appended does not prove it was not
//! committed.
//!
//! Reads: [`RaftNode::linearizable_barrier`] returns once this node's state
//! machine has applied everything committed before the call (read-index: the
//! leader confirms its leadership with a quorum and reports its commit point;
//! a follower waits to apply up to it). Stale reads skip the barrier.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ecommerce_domains::command::Applied;
use ecommerce_domains::Envelope;
use std::ops::Bound;

use ecommerce_domains::EventRecord;
use ecommerce_storage::{codec, keys, Storage, CF_EVENTS, CF_RAFT_META, CF_SM_META};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::network::{decode, encode, Channels, Network, Peer, PeerTls};
use crate::proposals::{self, ProposalBatcher};
use crate::read_index::ReadIndexBatcher;
use crate::types::{LogId, NodeId, NodeInfo, Raft, RaftMetrics};
use crate::{DiskWatch, Error, LogStore, Result, StateMachine};

mod events;
mod read;
mod write;

use read::read_index_round;
use write::client_write;

/// Raft settings of one node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub node_id: NodeId,
    pub info: NodeInfo,
    /// Where snapshot files live.
    pub snapshot_dir: PathBuf,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot every this many applied entries.
    pub snapshot_logs: u64,
    /// Entries kept in the log behind a snapshot, so that a briefly lagging
    /// follower catches up from the log rather than by snapshot.
    pub logs_to_keep: u64,
    pub install_snapshot_timeout_ms: u64,
    /// Batches of proposals handed to Raft before the first is answered.
    pub proposals_in_flight: usize,
    /// This node's credentials on the peer protocol (and so its cluster).
    pub tls: PeerTls,
    /// The data directory's free space: while it is low, this node (as
    /// leader) refuses the writes peers forward to it.
    pub disk: Option<Arc<DiskWatch>>,
}

/// The role of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Voter,
    Learner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub node_id: NodeId,
    pub http_addr: String,
    pub peer_addr: String,
    pub role: Role,
    pub is_leader: bool,
    /// Last log index known replicated to it (reported by the leader only).
    pub matched_index: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    pub state: String,
    pub leader_id: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub members: Vec<MemberStatus>,
}

/// A membership change, executed by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipOp {
    AddLearner {
        node_id: NodeId,
        info: NodeInfo,
    },
    Promote {
        node_id: NodeId,
    },
    Remove {
        node_id: NodeId,
    },
    /// Make another voter the leader.
    TransferLeader {
        node_id: NodeId,
    },
}

/// Errors that cross the wire between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireError {
    /// The node was not the leader, and did nothing.
    NotLeader,
    /// The node proposed the write but lost leadership: the outcome is unknown.
    Ambiguous,
    NodeIdRemoved(NodeId),
    Membership(String),
    /// Another membership change is still being committed; try again shortly.
    MembershipInProgress,
    Other(String),
    /// The leader's disk is nearly full; nothing was proposed.
    InsufficientStorage,
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotLeader => Error::NoLeader,
            WireError::Ambiguous => Error::Timeout,
            WireError::NodeIdRemoved(id) => Error::NodeIdRemoved(id),
            WireError::Membership(m) => Error::Membership(m),
            WireError::MembershipInProgress => {
                Error::Membership("another membership change is in progress".into())
            }
            // The peer failed to answer; only its words crossed the wire.
            WireError::Other(m) => Error::Rpc(tonic::Status::internal(m)),
            WireError::InsufficientStorage => Error::InsufficientStorage,
        }
    }
}

/// One member of the cluster.
pub struct RaftNode {
    pub id: NodeId,
    pub info: NodeInfo,
    /// The cluster this node's certificate belongs to.
    pub cluster_id: String,
    raft: Raft,
    storage: Storage,
    channels: Channels,
    applied: watch::Receiver<u64>,
    reads: ReadIndexBatcher,
    proposals: ProposalBatcher,
    disk: Option<Arc<DiskWatch>>,
}

/// Pause between attempts while the leader is unknown or changing.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);

impl RaftNode {
    /// Starts Raft on `storage` (already open with every domain table).
    pub async fn start(storage: Storage, options: NodeOptions) -> Result<Arc<Self>> {
        let config = openraft::Config {
            cluster_name: "ecommerce".into(),
            heartbeat_interval: options.heartbeat_interval_ms,
            election_timeout_min: options.election_timeout_min_ms,
            election_timeout_max: options.election_timeout_max_ms,
            install_snapshot_timeout: options.install_snapshot_timeout_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_logs),
            max_in_snapshot_log_to_keep: options.logs_to_keep,
            snapshot_max_chunk_size: 1 << 20,
            // An entry may carry up to 1 MiB (a request body, or a batch of
            // proposals), and an AppendEntries message must stay below
            // `network::MAX_MESSAGE`.
            max_payload_entries: 32,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(Error::fatal)?);
        let log_store = LogStore::new(storage.clone());
        let state_machine = StateMachine::open(storage.clone(), options.snapshot_dir.clone())
            .await
            .map_err(|e| Error::Storage(Box::new(e)))?;
        let applied = state_machine.subscribe_applied();
        let cluster_id = options.tls.cluster_id.clone();
        let channels = Channels::new(options.tls);
        let network = Network {
            channels: channels.clone(),
        };
        let raft = Raft::new(options.node_id, config, network, log_store, state_machine)
            .await
            .map_err(Error::fatal)?;
        let limits = proposals::Limits {
            in_flight: options.proposals_in_flight,
            ..proposals::Limits::default()
        };
        let proposals = ProposalBatcher::start(limits, {
            let raft = raft.clone();
            move |entry| {
                let raft = raft.clone();
                async move { client_write(&raft, entry).await }
            }
        });
        Ok(Arc::new(Self {
            id: options.node_id,
            info: options.info,
            cluster_id,
            raft,
            storage,
            channels,
            applied,
            reads: ReadIndexBatcher::default(),
            proposals,
            disk: options.disk,
        }))
    }

    /// True while this node's data directory is nearly full (see
    /// [`DiskWatch`]): it then refuses writes forwarded to it.
    pub fn disk_low(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.is_low())
    }

    /// Whether this node already belongs to a cluster (has any log or membership).
    pub async fn is_initialized(&self) -> Result<bool> {
        self.raft.is_initialized().await.map_err(Error::fatal)
    }

    /// Makes this node a single-node cluster (only on a fresh node).
    pub async fn initialize_single(&self) -> Result<()> {
        let members = BTreeMap::from([(self.id, self.info.clone())]);
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(Error::fatal(e)),
        }
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// Watch the last applied index (for event-log subscribers).
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let info = m.membership_config.membership().get_node(&id).cloned()?;
        Some((id, info))
    }

    /// Whether `id` is in the membership this node knows (voter or learner,
    /// joint configurations included).
    pub fn is_member(&self, id: NodeId) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some()
    }

    /// Whether this node knows any membership (false on a fresh node that
    /// is waiting to be added to a cluster).
    pub fn knows_membership(&self) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .next()
            .is_some()
    }

    /// Waits (until `deadline`) for a leader to be known.
    pub(crate) async fn wait_leader(&self, deadline: Instant) -> Result<(NodeId, NodeInfo)> {
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if Instant::now() + RETRY_PAUSE > deadline {
                return Err(Error::NoLeader);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Proposes on this node, which believes it is the leader, in the next
    /// batch of proposals (see `proposals`).
    pub(crate) async fn write_local(&self, envelope: Envelope) -> Result<Applied, WireError> {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return Err(WireError::NotLeader);
        }
        self.proposals.propose(envelope).await
    }

    /// On the leader: confirms leadership with a quorum (one round shared by
    /// the reads waiting when it starts, see `read_index`); returns the index
    /// a linearizable read must wait for.
    pub(crate) async fn read_index_local(&self) -> Result<u64, WireError> {
        let raft = self.raft.clone();
        self.reads
            .read_index(move || {
                let raft = raft.clone();
                async move { read_index_round(&raft).await }
            })
            .await
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched = m.replication.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, info)| MemberStatus {
                node_id: *id,
                http_addr: info.http_addr.clone(),
                peer_addr: info.peer_addr.clone(),
                role: if voters.contains(id) {
                    Role::Voter
                } else {
                    Role::Learner
                },
                is_leader: m.current_leader == Some(*id),
                matched_index: if *id == m.id && m.state == ServerState::Leader {
                    m.last_log_index
                } else {
                    matched.get(id).cloned().flatten().map(|l: LogId| l.index)
                },
            })
            .collect();
        ClusterStatus {
            node_id: m.id,
            state: format!("{:?}", m.state).to_lowercase(),
            leader_id: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            commit_index: self.committed_index(),
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            members,
        }
    }

    /// The commit index this node last persisted.
    pub fn committed_index(&self) -> Option<u64> {
        self.storage
            .get_value::<Option<LogId>>(CF_RAFT_META, b"committed")
            .ok()
            .flatten()
            .flatten()
            .map(|l| l.index)
    }

    /// Asks this node to start an election now.
    pub async fn campaign(&self) -> Result<()> {
        self.raft.trigger().elect().await.map_err(Error::fatal)
    }

    /// Asks member `id` (at its peer address) to campaign.
    pub async fn ask_to_campaign(&self, id: NodeId, peer_addr: &str) -> Result<()> {
        let reply = self
            .call_peer(Peer::Node(id), peer_addr, PeerCall::Campaign, &(), None)
            .await;
        reply.map_err(status_error)?.map_err(Error::from)
    }

    /// Calls a peer and decodes its `Result<T, WireError>` reply; a transport
    /// failure comes back as the gRPC status.
    pub(crate) async fn call_peer<Req: Serialize, T: DeserializeOwned>(
        &self,
        peer: Peer,
        peer_addr: &str,
        call: PeerCall,
        payload: &Req,
        deadline: Option<Instant>,
    ) -> Result<Result<T, WireError>, tonic::Status> {
        let mut client = self
            .channels
            .client(peer, peer_addr)
            .map_err(client_error)?;
        let mut request = tonic::Request::new(encode(payload)?);
        if let Some(deadline) = deadline {
            request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let reply = match call {
            PeerCall::Forward => client.forward(request).await,
            PeerCall::ReadIndex => client.read_index(request).await,
            PeerCall::ChangeMembership => client.change_membership(request).await,
            PeerCall::Campaign => client.campaign(request).await,
            PeerCall::Identify => client.identify(request).await,
            PeerCall::Join => client.join(request).await,
        }?;
        decode(reply.get_ref())
    }

    /// Streams the blob `hash` (hex SHA-256) from member `id` at
    /// `peer_addr`; `Ok(None)` when that node does not have it.
    pub async fn fetch_blob(
        &self,
        id: NodeId,
        peer_addr: &str,
        hash: &str,
        timeout: Duration,
    ) -> Result<Option<crate::BlobStream>> {
        let mut client = self
            .channels
            .client(Peer::Node(id), peer_addr)
            .map_err(|e| Error::Rpc(client_error(e)))?;
        let mut request = tonic::Request::new(encode(&hash.to_string()).map_err(status_error)?);
        request.set_timeout(timeout);
        let stream = match client.fetch_blob(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => return Err(status_error(status)),
        };
        let chunks = futures::StreamExt::map(stream, |chunk| {
            chunk
                .map(|payload| bytes::Bytes::from(payload.data))
                .map_err(std::io::Error::other)
        });
        Ok(Some(Box::pin(chunks)))
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }
}

/// Milliseconds since the Unix epoch on this node's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The node-to-node calls besides openraft's own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PeerCall {
    Forward,
    ReadIndex,
    ChangeMembership,
    Campaign,
    Identify,
    Join,
}

/// A transport failure as the API layer sees it.
pub(crate) fn status_error(status: tonic::Status) -> Error {
    match status.code() {
        tonic::Code::DeadlineExceeded => Error::Timeout,
        _ => Error::Rpc(status),
    }
}

/// A peer whose client cannot be built (a bad address or TLS setting).
pub(crate) fn client_error(e: tonic::transport::Error) -> tonic::Status {
    let mut status = tonic::Status::unavailable(e.to_string());
    status.set_source(Arc::new(e));
    status
}

/// Whether a gRPC failure happened while connecting (the request never left).
fn is_connect_error(status: &tonic::Status) -> bool {
    let text = format!("{status:?}").to_lowercase();
    text.contains("tcp connect error") || text.contains("connection refused")
}
