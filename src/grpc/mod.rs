//! The public gRPC API (service clients): standard health checking, cluster
//! status and the event-log stream (here), and the commerce operations of the
//! REST API ([`Commerce`]: `carts`, `orders`, `inventory` with listings).
//! Served on the client gRPC listener (the peer protocol has its own).
//!
//! Architecture invariant: a commerce RPC is an adapter over a use case of
//! `app/`, as its REST twin is. It reads credentials, cart token and
//! idempotency key through `call` (with the application layer's functions),
//! converts its message into the use case's request (the type both
//! transports fingerprint), calls `App`, and builds its reply from the
//! domain's types; no rule lives here, and nothing here reaches into `api/`.

mod call;
mod carts;
mod inventory;
mod orders;

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use ecommerce_domains::money::Money;

use crate::app::App;

pub mod proto {
    //! Generated code of `proto/ecommerce/v1/api.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ecommerce.v1");
}

use proto::cart_service_server::CartServiceServer;
use proto::cluster_service_server::{ClusterService, ClusterServiceServer};
use proto::event_service_server::{EventService, EventServiceServer};
use proto::inventory_service_server::InventoryServiceServer;
use proto::listing_service_server::ListingServiceServer;
use proto::order_service_server::OrderServiceServer;

#[derive(Clone)]
pub struct PublicGrpc {
    pub state: App,
}

impl PublicGrpc {
    pub fn cluster_service(&self) -> ClusterServiceServer<Self> {
        ClusterServiceServer::new(self.clone())
    }
    pub fn event_service(&self) -> EventServiceServer<Self> {
        EventServiceServer::new(self.clone())
    }
}

/// The commerce services: carts, checkout and orders, inventory, listings.
#[derive(Clone)]
pub struct Commerce {
    state: App,
}

impl Commerce {
    pub fn new(state: App) -> Self {
        Self { state }
    }
    pub fn cart_service(&self) -> CartServiceServer<Self> {
        CartServiceServer::new(self.clone())
    }
    pub fn order_service(&self) -> OrderServiceServer<Self> {
        OrderServiceServer::new(self.clone())
    }
    pub fn inventory_service(&self) -> InventoryServiceServer<Self> {
        InventoryServiceServer::new(self.clone())
    }
    pub fn listing_service(&self) -> ListingServiceServer<Self> {
        ListingServiceServer::new(self.clone())
    }
}

fn money(m: Money) -> proto::Money {
    proto::Money {
        amount: m.amount,
        currency: m.currency.as_str().to_string(),
    }
}

/// The value of a proto enum whose names are `prefix` + a REST name in upper
/// case (`paid` → `ORDER_STATUS_PAID`); 0 (unspecified) for an unknown name.
fn enum_value<E: Into<i32>>(rest: &str, prefix: &str, from_name: fn(&str) -> Option<E>) -> i32 {
    from_name(&format!("{prefix}{}", rest.to_ascii_uppercase())).map_or(0, Into::into)
}

/// The REST name of a proto enum's name (`ORDER_STATUS_PAID` → `paid`).
fn enum_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

#[tonic::async_trait]
impl ClusterService for PublicGrpc {
    async fn status(
        &self,
        _request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusReply>, Status> {
        let s = self.state.cluster_status();
        Ok(Response::new(proto::ClusterStatusReply {
            node_id: s.node_id,
            leader_id: s.leader_id,
            term: s.term,
            last_log_index: s.last_log_index,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            cluster_id: self.state.cluster_id.clone(),
            state: s.state,
            members: s
                .members
                .into_iter()
                .map(|m| proto::Member {
                    node_id: m.node_id,
                    http_addr: m.http_addr,
                    peer_addr: m.peer_addr,
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
        let node = self.state.clone();
        let mut after = request.into_inner().after;
        let mut applied = node.subscribe_applied();
        let stream = async_stream(move |tx| async move {
            loop {
                let records = match node.events_after(after, PAGE) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(call::status(e))).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_domains::order::OrderStatus;

    #[test]
    fn every_rest_name_has_its_proto_enum_value() {
        for name in [
            "draft",
            "confirmed",
            "paid",
            "shipped",
            "delivered",
            "cancelled",
        ] {
            let value = enum_value(name, "ORDER_STATUS_", proto::OrderStatus::from_str_name);
            assert_ne!(value, 0, "{name}");
            let proto_name = proto::OrderStatus::try_from(value).unwrap().as_str_name();
            let back = enum_name(proto_name, "ORDER_STATUS_");
            assert_eq!(
                OrderStatus::parse(&back).map(OrderStatus::as_str),
                Some(name)
            );
        }
        for name in ["held", "committed", "consumed", "released"] {
            assert_ne!(
                enum_value(name, "HOLD_STATE_", proto::HoldState::from_str_name),
                0
            );
        }
        for name in [
            "pending",
            "authorized",
            "captured",
            "declined",
            "failed",
            "voided",
            "refunded",
            "action_failed",
        ] {
            let value = enum_value(name, "PAYMENT_STATUS_", proto::PaymentStatus::from_str_name);
            assert_ne!(value, 0, "{name}");
        }
        for name in ["priority", "nearest", "highest_stock"] {
            let value = proto::AllocationStrategy::from_str_name(&format!(
                "ALLOCATION_STRATEGY_{}",
                name.to_ascii_uppercase()
            ));
            let back = enum_name(value.unwrap().as_str_name(), "ALLOCATION_STRATEGY_");
            assert!(
                ecommerce_domains::allocation::Strategy::parse(&back).is_some(),
                "{name}"
            );
        }
        assert_eq!(
            enum_value(
                "unknown",
                "ORDER_STATUS_",
                proto::OrderStatus::from_str_name
            ),
            0
        );
    }
}
