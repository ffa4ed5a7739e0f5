//! Outgoing node-to-node RPCs over tonic gRPC with mutual TLS.
//!
//! One lazily connected HTTP/2 channel per peer (node id and address),
//! shared by Raft replication and by request forwarding, so connections are
//! reused. Every channel presents this node's certificate and verifies that
//! the peer's certificate, issued by the cluster CA, names the node it
//! dials (see `peer_auth`).
//! Payloads are bincode-encoded openraft types; replies carry
//! `Result<response, RaftError>` so a remote refusal is told apart from a
//! transport failure.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecommerce_storage::codec;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::peer_auth::{member_dns_name, node_dns_name};
use crate::proto::raft_service_client::RaftServiceClient;
use crate::proto::Payload;
use crate::types::{NodeId, NodeInfo, TypeConfig};

/// This node's credentials on the peer protocol: the cluster CA, its own
/// node certificate and key (PEM), and the cluster they belong to.
#[derive(Clone)]
pub struct PeerTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub cluster_id: String,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

/// Whom a channel must reach: one node, or any member of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Node(NodeId),
    AnyMember,
}

/// Connection pool of gRPC channels, keyed by peer and address.
#[derive(Clone)]
pub struct Channels {
    tls: Arc<PeerTls>,
    by_peer: Arc<Mutex<HashMap<(Peer, String), Channel>>>,
}

impl Channels {
    pub fn new(tls: PeerTls) -> Self {
        Self {
            tls: Arc::new(tls),
            by_peer: Arc::default(),
        }
    }

    /// A client for `peer` at `addr` (host:port), reusing its channel. The
    /// TLS handshake fails unless the server's certificate names `peer`.
    pub fn client(
        &self,
        peer: Peer,
        addr: &str,
    ) -> Result<RaftServiceClient<Channel>, tonic::transport::Error> {
        let mut map = self
            .by_peer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (peer, addr.to_string());
        if let Some(ch) = map.get(&key) {
            return Ok(RaftServiceClient::new(ch.clone()).max_decoding_message_size(MAX_MESSAGE));
        }
        let name = match peer {
            Peer::Node(id) => node_dns_name(id, &self.tls.cluster_id),
            Peer::AnyMember => member_dns_name(&self.tls.cluster_id),
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.tls.ca_pem))
            .identity(Identity::from_pem(&self.tls.cert_pem, &self.tls.key_pem))
            .domain_name(name);
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        map.insert(key, channel.clone());
        Ok(RaftServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE))
    }
}

/// Largest gRPC message between nodes (a batch of entries or a snapshot chunk).
pub const MAX_MESSAGE: usize = 64 << 20;

pub fn encode<T: Serialize>(value: &T) -> Result<Payload, tonic::Status> {
    codec::encode(value)
        .map(|data| Payload { data })
        .map_err(|e| with_source(tonic::Status::internal(e.to_string()), e))
}

pub fn decode<T: DeserializeOwned>(payload: &Payload) -> Result<T, tonic::Status> {
    codec::decode(&payload.data)
        .map_err(|e| with_source(tonic::Status::invalid_argument(e.to_string()), e))
}

/// `status`, with `source` kept for whoever reads it on this node (the wire
/// carries only the message).
fn with_source(
    mut status: tonic::Status,
    source: impl std::error::Error + Send + Sync + 'static,
) -> tonic::Status {
    status.set_source(std::sync::Arc::new(source));
    status
}

/// Creates the per-peer connections openraft replicates through.
#[derive(Clone)]
pub struct Network {
    pub channels: Channels,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        Connection {
            target,
            addr: node.peer_addr.clone(),
            channels: self.channels.clone(),
        }
    }
}

pub struct Connection {
    target: NodeId,
    addr: String,
    channels: Channels,
}

type RpcErr<E> = RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>;

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self
            .channels
            .client(Peer::Node(self.target), &self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request =
            tonic::Request::new(encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?);
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            Method::AppendEntries => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(reply.get_ref()).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
