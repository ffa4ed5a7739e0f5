//! The public gRPC API against a real node: standard health checking, cluster
//! status, and the event-log stream (history from a checkpoint, then live events).

use std::time::Duration;

use ecommerce::grpc::proto::cluster_service_client::ClusterServiceClient;
use ecommerce::grpc::proto::event_service_client::EventServiceClient;
use ecommerce::grpc::proto::{ClusterStatusRequest, EventMessage, SubscribeRequest};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::harness::Cluster;

#[tokio::test]
async fn health_cluster_status_and_event_stream_over_grpc() {
    let cluster = Cluster::start(1).await;
    let node = cluster.node(1);
    let client = cluster.admin_client(1);
    let endpoint = format!("http://{}", node.grpc_addr);

    let channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect gRPC");
    let mut health = HealthClient::new(channel);
    for service in ["", "ecommerce.v1.ClusterService"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check of {service:?}: {e}"))
            .into_inner();
        assert_eq!(
            reply.status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }

    let status = ClusterServiceClient::connect(endpoint.clone())
        .await
        .expect("connect cluster service")
        .status(ClusterStatusRequest {})
        .await
        .expect("cluster status")
        .into_inner();
    assert_eq!(
        (status.node_id, status.leader_id, status.members.len()),
        (1, Some(1), 1)
    );
    assert_eq!(status.members[0].role, "voter");
    assert!(!status.cluster_id.is_empty());

    // Without a token, and with a customer's, the event stream is refused.
    let mut anonymous = EventServiceClient::connect(endpoint.clone())
        .await
        .expect("connect event service");
    let refused = anonymous
        .subscribe(SubscribeRequest { after: 0 })
        .await
        .expect_err("an anonymous subscription must be refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let customer = crate::harness::access_token(&client, "customer", "grpc-c").await;
    let refused = anonymous
        .subscribe(with_bearer(SubscribeRequest { after: 0 }, &customer.token))
        .await
        .expect_err("a customer's subscription must be refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let mut tampered = cluster.admin_token().to_string();
    tampered.pop();
    let refused = anonymous
        .subscribe(with_bearer(SubscribeRequest { after: 0 }, &tampered))
        .await
        .expect_err("a tampered token must be refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // History first: two events before subscribing (after the events of the cluster's own
    // account set-up).
    let before_writes = client
        .events(None, Some(1000))
        .await
        .unwrap()
        .ok("events before the writes")["last_id"]
        .as_u64()
        .expect("last_id");
    client
        .put_warehouse("w1", "Main")
        .await
        .unwrap()
        .ok("put warehouse");
    client
        .set_stock("SKU-1", "w1", 5)
        .await
        .unwrap()
        .ok("set stock");
    let mut events = EventServiceClient::connect(endpoint)
        .await
        .expect("connect event service")
        .subscribe(with_bearer(
            SubscribeRequest {
                after: before_writes,
            },
            cluster.admin_token(),
        ))
        .await
        .expect("subscribe")
        .into_inner();
    let first = next(&mut events).await;
    let second = next(&mut events).await;
    let base = before_writes;
    assert_eq!(
        (first.id, first.r#type.as_str()),
        (base + 1, "WarehouseUpserted")
    );
    assert_eq!(
        (second.id, second.r#type.as_str()),
        (base + 2, "StockChanged")
    );
    assert!(second.log_index > first.log_index);

    // Then live: a write made after subscribing is delivered.
    client
        .adjust("SKU-1", "w1", 3, "restock", None)
        .await
        .unwrap()
        .ok("adjust");
    let third = next(&mut events).await;
    assert_eq!(
        (third.id, third.r#type.as_str()),
        (base + 3, "StockChanged")
    );
    let data: serde_json::Value = serde_json::from_str(&third.data_json).expect("data is JSON");
    assert_eq!(data["delta"], 3);
    assert_eq!(data["level"]["on_hand"], 8);
}

fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata value"),
    );
    request
}

async fn next(events: &mut tonic::Streaming<EventMessage>) -> EventMessage {
    tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("an event within 10 s")
        .expect("stream error")
        .expect("stream ended")
}
