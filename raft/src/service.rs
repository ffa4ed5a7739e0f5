//! Incoming node-to-node RPCs: openraft's messages, forwarded writes,
//! read-index requests and membership changes.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::network::{decode, encode};
use crate::node::{MembershipOp, RaftNode, WireError};
use crate::proto::raft_service_server::{RaftService, RaftServiceServer};
use crate::proto::Payload;
use crate::types::TypeConfig;
use ecommerce_domains::Envelope;

/// The gRPC service a node serves to its peers.
#[derive(Clone)]
pub struct RaftGrpc {
    node: Arc<RaftNode>,
}

impl RaftGrpc {
    pub fn new(node: Arc<RaftNode>) -> Self {
        Self { node }
    }

    /// The tonic service, ready to be added to a server.
    pub fn into_server(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(crate::network::MAX_MESSAGE)
            .max_encoding_message_size(crate::network::MAX_MESSAGE)
    }
}

type Reply = Result<Response<Payload>, Status>;

fn reply<T: serde::Serialize>(value: &T) -> Reply {
    Ok(Response::new(encode(value)?))
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(&self, request: Request<Payload>) -> Reply {
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        reply(&self.node.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Payload>) -> Reply {
        let rpc = decode(request.get_ref())?;
        reply(&self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Payload>) -> Reply {
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        reply(&self.node.raft().install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<Payload>) -> Reply {
        // A peer forwards one client command: never a batch (only the
        // leader builds those) and never more than one entry may carry.
        let envelope = Envelope::decode_checked(&request.get_ref().data)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        reply(&self.node.write_local(envelope).await)
    }

    async fn read_index(&self, _request: Request<Payload>) -> Reply {
        reply(&self.node.read_index_local().await)
    }

    async fn change_membership(&self, request: Request<Payload>) -> Reply {
        let op: MembershipOp = decode(request.get_ref())?;
        reply(&self.node.change_membership_local(op).await)
    }

    async fn campaign(&self, _request: Request<Payload>) -> Reply {
        let result: Result<(), WireError> = self
            .node
            .campaign()
            .await
            .map_err(|e| WireError::Other(e.to_string()));
        reply(&result)
    }
}
