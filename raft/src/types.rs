//! The openraft type configuration and the node record kept in membership.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use ecommerce_domains::command::Applied;
use ecommerce_domains::Envelope;

/// A node's id; never reused after the node is removed.
pub type NodeId = u64;

/// What membership records about a node: how to reach it.
///
/// Persisted (in membership log entries, snapshots and backups): bincode
/// stores the two strings in order, so fields are never reordered. The
/// second was named `grpc_addr` while peers and clients shared the gRPC
/// listener; it has always been the address Raft traffic goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// REST address (host:port), for clients and operators.
    pub http_addr: String,
    /// Peer address (host:port): the node-to-node protocol, mutual TLS.
    pub peer_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http={} peer={}", self.http_addr, self.peer_addr)
    }
}

/// The state machine's answer for one log entry: one result per command it
/// carried (see `Envelope::unbatch`), none for blank and membership entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntryResponse(pub Vec<Applied>);

openraft::declare_raft_types!(
    /// Type configuration of the replicated log.
    pub TypeConfig:
        D = Envelope,
        R = EntryResponse,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, NodeInfo>;
