//! Incoming node-to-node RPCs: openraft's messages, forwarded writes,
//! read-index requests, membership changes, joining and blob transfer.
//!
//! Served only on the peer listener, over mutual TLS with the cluster CA.
//! Every method first admits its caller (`peer_auth`): a node certificate
//! of this cluster, and membership for everything but `Identify` and
//! `Join`. A refused call changes nothing.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::membership::JoinRequest;
use crate::network::{decode, encode};
use crate::node::{MembershipOp, RaftNode, WireError};
use crate::peer_auth::{Access, PeerGuard, PeerIdentity};
use crate::proto::raft_service_server::{RaftService, RaftServiceServer};
use crate::proto::Payload;
use crate::types::TypeConfig;
use ecommerce_domains::command::Applied;
use ecommerce_domains::Envelope;

/// Where the peer service reads the blobs other nodes fetch: the node's
/// blob store, provided by the layer that owns it.
pub trait BlobSource: Send + Sync + 'static {
    /// The bytes stored under `hash` (hex SHA-256) as a stream of chunks,
    /// or `None` when this node does not have them.
    fn open(&self, hash: &str) -> std::io::Result<Option<BlobStream>>;
}

/// A blob's bytes, in chunks.
pub type BlobStream = Pin<Box<dyn Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static>>;

/// Where the peer service reads the cluster's data keys, wrapped by the
/// KEK, for a node that joins: provided by the layer that holds them.
pub trait KeySource: Send + Sync + 'static {
    fn wrapped_keys(&self) -> Vec<u8>;
}

/// The gRPC service a node serves to its peers.
#[derive(Clone)]
pub struct RaftGrpc {
    node: Arc<RaftNode>,
    guard: PeerGuard,
    blobs: Option<Arc<dyn BlobSource>>,
    keys: Option<Arc<dyn KeySource>>,
}

impl RaftGrpc {
    pub fn new(node: Arc<RaftNode>) -> Self {
        let guard = PeerGuard {
            cluster_id: node.cluster_id.clone(),
        };
        Self {
            node,
            guard,
            blobs: None,
            keys: None,
        }
    }

    /// Serves `FetchKeys` from `keys`.
    pub fn with_keys(mut self, keys: Arc<dyn KeySource>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Serves `FetchBlob` from `blobs`.
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobSource>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Admits the caller of `request` for `access`, or refuses it.
    fn admit<T>(&self, request: &Request<T>, access: Access) -> Result<PeerIdentity, Status> {
        let identity = PeerIdentity::of_request(request)?;
        let is_member = self.node.is_member(identity.node_id);
        let admitted = self
            .guard
            .admit(&identity, access, is_member, self.node.knows_membership());
        if let Err(refusal) = &admitted {
            metrics::counter!("raft_peer_calls_refused_total").increment(1);
            tracing::warn!(peer = %identity, reason = refusal.message(), "peer call refused");
        }
        admitted.map(|()| identity)
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

type BlobReply = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    type FetchBlobStream = BlobReply;

    async fn append_entries(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        reply(&self.node.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        let rpc = decode(request.get_ref())?;
        reply(&self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        reply(&self.node.raft().install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        // A peer forwards one client command: never a batch (only the
        // leader builds those) and never more than one entry may carry.
        let envelope = Envelope::decode_checked(&request.get_ref().data)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The sender checked its own disk; a nearly full leader refuses
        // before its log grows (housekeeping it proposes itself goes on).
        if self.node.disk_low() {
            return reply(&Err::<Applied, _>(WireError::InsufficientStorage));
        }
        reply(&self.node.write_local(envelope).await)
    }

    async fn read_index(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        reply(&self.node.read_index_local().await)
    }

    async fn change_membership(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        let op: MembershipOp = decode(request.get_ref())?;
        reply(&self.node.change_membership_local(op).await)
    }

    async fn campaign(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Member)?;
        let result: Result<(), WireError> = self
            .node
            .campaign()
            .await
            .map_err(|e| WireError::Other(e.to_string()));
        reply(&result)
    }

    async fn identify(&self, request: Request<Payload>) -> Reply {
        self.admit(&request, Access::Cluster)?;
        reply(&Ok::<_, WireError>(PeerIdentity {
            node_id: self.node.id,
            cluster_id: self.node.cluster_id.clone(),
        }))
    }

    async fn join(&self, request: Request<Payload>) -> Reply {
        let caller = self.admit(&request, Access::Cluster)?;
        let join: JoinRequest = decode(request.get_ref())?;
        reply(&self.node.join_local(caller.node_id, join).await)
    }

    async fn fetch_keys(&self, request: Request<Payload>) -> Reply {
        // A node of this cluster that is joining is not a member yet.
        self.admit(&request, Access::Cluster)?;
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this node serves no keys"))?;
        reply(&keys.wrapped_keys())
    }

    async fn fetch_blob(
        &self,
        request: Request<Payload>,
    ) -> Result<Response<Self::FetchBlobStream>, Status> {
        self.admit(&request, Access::Member)?;
        let hash: String = decode(request.get_ref())?;
        let blobs = self
            .blobs
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this node serves no blobs"))?;
        let stream = blobs
            .open(&hash)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::not_found(format!("no blob {hash} on this node")))?;
        let chunks = futures::StreamExt::map(stream, |chunk| match chunk {
            Ok(data) => Ok(Payload {
                data: data.to_vec(),
            }),
            Err(e) => Err(Status::internal(e.to_string())),
        });
        Ok(Response::new(Box::pin(chunks)))
    }
}
