//! The public gRPC API (service clients): standard health checking, cluster
//! status, and the event-log stream. Served on the same port as the
//! node-to-node Raft service.

use std::pin::Pin;

use ecommerce_raft::RaftNode;
use futures::Stream;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub mod proto {
    //! Generated code of `proto/ecommerce/v1/api.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ecommerce.v1");
}

use proto::cluster_service_server::{ClusterService, ClusterServiceServer};
use proto::event_service_server::{EventService, EventServiceServer};

#[derive(Clone)]
pub struct PublicGrpc {
    pub node: Arc<RaftNode>,
    pub cluster_id: String,
}

impl PublicGrpc {
    pub fn cluster_service(&self) -> ClusterServiceServer<Self> {
        ClusterServiceServer::new(self.clone())
    }
    pub fn event_service(&self) -> EventServiceServer<Self> {
        EventServiceServer::new(self.clone())
    }
}

#[tonic::async_trait]
impl ClusterService for PublicGrpc {
    async fn status(
        &self,
        _request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusReply>, Status> {
        let s = self.node.status();
        Ok(Response::new(proto::ClusterStatusReply {
            node_id: s.node_id,
            leader_id: s.leader_id,
            term: s.term,
            last_log_index: s.last_log_index,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            cluster_id: self.cluster_id.clone(),
            state: s.state,
            members: s
                .members
                .into_iter()
                .map(|m| proto::Member {
                    node_id: m.node_id,
                    http_addr: m.http_addr,
                    grpc_addr: m.grpc_addr,
                    role: format!("{:?}", m.role).to_lowercase(),
                    is_leader: m.is_leader,
                    matched_index: m.matched_index,
                })
                .collect(),
        }))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::EventMessage, Status>> + Send>>;

/// Events are read in pages of this size while streaming.
const PAGE: usize = 256;

#[tonic::async_trait]
impl EventService for PublicGrpc {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let node = self.node.clone();
        let mut after = request.into_inner().after;
        let mut applied = node.subscribe_applied();
        let stream = async_stream(move |tx| async move {
            loop {
                let records = match node.events_after(after, PAGE) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                if records.is_empty() {
                    if applied.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                for r in records {
                    after = r.id;
                    let message = proto::EventMessage {
                        id: r.id,
                        log_index: r.log_index,
                        timestamp_ms: r.timestamp_ms,
                        r#type: r.event.kind().to_string(),
                        data_json: r.event.data().to_string(),
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return; // the client went away
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a bounded channel (backpressure: the task
/// waits while the client is slow; it ends when the client disconnects).
fn async_stream<F, Fut>(produce: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<proto::EventMessage, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
    tokio::spawn(produce(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
