//! `raft`: openraft wired to RocksDB storage and tonic gRPC.
//!
//! Everything that names openraft lives here, so an upgrade touches one
//! crate. Above it, [`RaftNode`] offers what the API layer needs: propose a
//! command (forwarded to the leader when this node is a follower), wait for
//! a linearizable read point, change membership, report status.
//!
//! Version: openraft 0.9.25 (see docs/ARCHITECTURE.md for why).

// openraft's storage traits return its `StorageError` (224 bytes); our helpers
// return the same type rather than box and unbox it at every trait boundary.
#![allow(clippy::result_large_err)]

#[cfg(test)]
mod fuzz;
mod log_store;
mod membership;
mod network;
mod node;
pub mod peer_auth;
mod proposals;
mod read_index;
mod restore;
mod service;
mod snapshot_store;
mod state_machine;
mod store_adapter;
pub mod types;

pub mod proto {
    //! Generated gRPC code of `proto/raft.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ecommerce.raft.v1");
}

/// The data directory's free space, watched by the node (see `storage`).
pub use ecommerce_storage::disk::DiskWatch;
pub use log_store::LogStore;
pub use membership::fetch_keys;
pub use network::{Channels, Network, PeerTls};
pub use node::{ClusterStatus, MemberStatus, MembershipOp, NodeOptions, RaftNode, Role};
pub use restore::restore_into;
pub use service::{BlobSource, BlobStream, KeySource, RaftGrpc};
pub use snapshot_store::reseal_current_snapshot;
pub use state_machine::{state_digest, stored_members, write_snapshot, StateMachine};
pub use store_adapter::Reader;
pub use types::{NodeId, NodeInfo};

/// Errors of the replication layer, as the API layer sees them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No leader is known right now (election in progress, or no quorum).
    #[error("no leader is available")]
    NoLeader,
    /// The request did not finish before its deadline; a write may still take effect.
    #[error("timed out")]
    Timeout,
    /// The node id was removed from the cluster once and may not come back.
    #[error("node id {0} was removed from the cluster and may not be reused")]
    NodeIdRemoved(NodeId),
    /// A membership change was refused (unknown node, in progress, ...). The
    /// reason is text: it is often the leader's, sent over the wire.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// This node's storage failed: a [`ecommerce_storage::Error`], or
    /// openraft's view of one.
    #[error("storage: {0}")]
    Storage(#[source] BoxError),
    /// Raft stopped on this node (shut down or a fatal error).
    #[error("raft stopped: {0}")]
    Fatal(#[source] BoxError),
    /// A call to a peer failed in transport, or the peer failed to answer it.
    #[error("peer rpc failed: {0}")]
    Rpc(#[source] tonic::Status),
    /// This node is installing a snapshot; its state is not readable yet.
    #[error("a snapshot is being installed")]
    Installing,
    /// The leader's disk is nearly full: the write was refused, nothing proposed.
    #[error("the leader's disk is nearly full")]
    InsufficientStorage,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The source of [`Error::Storage`] and [`Error::Fatal`]: openraft's errors
/// are generic over the type configuration, so they are kept boxed (the
/// concrete type stays reachable with `downcast_ref`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<ecommerce_storage::Error> for Error {
    fn from(e: ecommerce_storage::Error) -> Self {
        Self::Storage(Box::new(e))
    }
}

impl Error {
    /// Raft stopped because of `source`.
    pub(crate) fn fatal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Fatal(Box::new(source))
    }
}
