//! The public gRPC API against a real node: standard health checking, cluster
//! status, the event-log stream (history from a checkpoint, then live events),
//! and the commerce services (cart, checkout, the order workflow, stock,
//! thresholds, listings) with their credentials, idempotency and error codes.

use std::time::Duration;

use ecommerce::grpc::proto::cart_service_client::CartServiceClient;
use ecommerce::grpc::proto::cluster_service_client::ClusterServiceClient;
use ecommerce::grpc::proto::event_service_client::EventServiceClient;
use ecommerce::grpc::proto::inventory_service_client::InventoryServiceClient;
use ecommerce::grpc::proto::listing_service_client::ListingServiceClient;
use ecommerce::grpc::proto::order_service_client::OrderServiceClient;
use ecommerce::grpc::proto::{
    self, payment_input, ClusterStatusRequest, EventMessage, HoldState, OrderStatus, PaymentStatus,
    SubscribeRequest,
};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::harness::{eventually, sign_in, Cluster};
use crate::shop::{stock, warehouse, CARD_OK};

#[tokio::test]
async fn health_cluster_status_and_event_stream_over_grpc() {
    let cluster = Cluster::start(1).await;
    let node = cluster.node(1);
    let client = cluster.admin_client(1);
    let endpoint = format!("http://{}", node.grpc_addr());

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

thread_local! {
    /// Access tokens of this test's users, by (role, user), from [`remember_sign_ins`].
    static TOKENS: std::cell::RefCell<std::collections::HashMap<(String, String), String>> =
        Default::default();
}

/// Signs in (REST, `harness::access_token`) every (role, user) the test's gRPC calls act as.
async fn remember_sign_ins(client: &crate::client::Client, users: &[(&str, &str)]) {
    for (role, user) in users {
        let token = crate::harness::access_token(client, role, user).await.token;
        TOKENS.with(|t| {
            t.borrow_mut()
                .insert((role.to_string(), user.to_string()), token)
        });
    }
}

/// The one place gRPC calls obtain credentials: `message` sent as the user named `user` with
/// `role` (signed in by [`remember_sign_ins`]), with `authorization: Bearer` metadata.
fn signed_in<T>(message: T, role: &str, user: &str) -> Request<T> {
    let token = TOKENS
        .with(|t| {
            t.borrow()
                .get(&(role.to_string(), user.to_string()))
                .cloned()
        })
        .unwrap_or_else(|| panic!("({role}, {user}) was not signed in with remember_sign_ins"));
    with_bearer(message, &token)
}

/// `request` with metadata `name: value` (cart tokens, idempotency keys).
fn with_metadata<T>(mut request: Request<T>, name: &'static str, value: &str) -> Request<T> {
    let value = value.parse().expect("metadata value");
    request.metadata_mut().insert(name, value);
    request
}

/// Asserts a call failed with gRPC `code` and the stable error code `error`.
#[track_caller]
fn expect_error<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
    error: &str,
) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{error}: ")),
        "{status:?}"
    );
    assert_eq!(
        status
            .metadata()
            .get("x-error-code")
            .and_then(|v| v.to_str().ok()),
        Some(error),
        "{status:?}"
    );
}

fn eur(amount: i64) -> Option<proto::Money> {
    Some(proto::Money {
        amount,
        currency: "EUR".into(),
    })
}

fn checkout_request(token: &str) -> proto::CheckoutRequest {
    proto::CheckoutRequest {
        shipping_address: Some(proto::Address {
            name: "Ada Lovelace".into(),
            line1: "1 Rue de Rivoli".into(),
            line2: None,
            city: "Paris".into(),
            postal_code: "75001".into(),
            country: "FR".into(),
            location: None,
        }),
        payment: Some(proto::PaymentInput {
            source: Some(payment_input::Source::Token(token.into())),
        }),
        allocation_strategy: proto::AllocationStrategy::Unspecified as i32,
        hold_ttl_secs: None,
        coupon: None,
    }
}

#[tokio::test]
async fn cart_checkout_and_order_workflow_over_grpc() {
    let cluster = Cluster::start(1).await;
    let node = cluster.node(1);
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    remember_sign_ins(
        &cluster.client(1),
        &[("admin", "root"), ("customer", "ann"), ("customer", "bob")],
    )
    .await;
    warehouse(&admin, "w1", 48.0, 0).await;
    stock(&admin, "A", "w1", 5).await;

    let channel = Channel::from_shared(format!("http://{}", node.grpc_addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect gRPC");
    let mut listings = ListingServiceClient::new(channel.clone());
    let mut carts = CartServiceClient::new(channel.clone());
    let mut orders = OrderServiceClient::new(channel.clone());
    let mut inventory = InventoryServiceClient::new(channel);

    // A listing, put and read back over gRPC; only a signed-in seller may put one.
    let put = proto::PutListingRequest {
        sku: "A".into(),
        name: "Product A".into(),
        price: eur(1250),
        vendor_id: None,
        active: None,
    };
    expect_error(
        listings.put_listing(put.clone()).await,
        Code::Unauthenticated,
        "unauthenticated",
    );
    let listing = listings
        .put_listing(signed_in(put, "admin", "root"))
        .await
        .expect("put listing")
        .into_inner();
    assert_eq!((&listing.price, listing.active), (&eur(1250), true));
    let read = listings
        .get_listing(proto::GetListingRequest {
            sku: "A".into(),
            consistency: proto::Consistency::Stale as i32,
        })
        .await
        .expect("get listing")
        .into_inner();
    assert_eq!(read, listing);

    // A guest cart: the token comes back in the message and the metadata, and is
    // merged into the customer's cart on sign-in.
    let added = carts
        .add_line(proto::AddLineRequest {
            sku: "A".into(),
            quantity: 1,
        })
        .await
        .expect("guest adds A");
    let token = added
        .get_ref()
        .cart_token
        .clone()
        .expect("a new guest cart has a token");
    assert_eq!(
        added
            .metadata()
            .get("x-cart-token")
            .and_then(|v| v.to_str().ok()),
        Some(token.as_str())
    );
    let guest_cart = carts
        .get_cart(with_metadata(
            Request::new(proto::GetCartRequest::default()),
            "x-cart-token",
            &token,
        ))
        .await
        .expect("guest cart")
        .into_inner();
    assert_eq!((guest_cart.item_count, guest_cart.subtotal), (1, eur(1250)));
    assert_eq!(guest_cart.cart_token, None, "the token is handed out once");
    let merge = proto::MergeCartRequest { cart_token: token };
    let merged = carts
        .merge(signed_in(merge, "customer", "ann"))
        .await
        .expect("merge")
        .into_inner();
    assert_eq!(merged.item_count, 1);
    let add = proto::AddLineRequest {
        sku: "A".into(),
        quantity: 1,
    };
    let cart = carts
        .add_line(signed_in(add, "customer", "ann"))
        .await
        .expect("ann adds A")
        .into_inner();
    assert_eq!((cart.item_count, cart.subtotal), (2, eur(2500)));
    assert_eq!(cart.lines[0].unit_price, eur(1250));

    // Checkout: anonymous callers are refused; a retry with the same key places one order.
    expect_error(
        orders.checkout(checkout_request(CARD_OK)).await,
        Code::Unauthenticated,
        "unauthenticated",
    );
    let place = || {
        with_metadata(
            signed_in(checkout_request(CARD_OK), "customer", "ann"),
            "idempotency-key",
            "grpc-ann-checkout-1",
        )
    };
    let placed = orders
        .checkout(place())
        .await
        .expect("checkout")
        .into_inner();
    assert_eq!(placed.status, OrderStatus::Confirmed as i32);
    let (ann_rest, ann_id) = sign_in(&cluster.client(1), "customer", "ann").await;
    assert_eq!(placed.customer_id, ann_id);
    let totals = placed.totals.clone().expect("totals");
    assert_eq!(totals.total, eur(2500));
    let payment = placed.payment.clone().expect("payment");
    assert_eq!(payment.method, "visa •••• 4242");
    assert_eq!(payment.status, PaymentStatus::Pending as i32);
    let replay = orders.checkout(place()).await.expect("checkout retried");
    assert_eq!(
        replay
            .metadata()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(replay.get_ref().id, placed.id, "one order for one key");
    // The key is ann's: the same request over REST finds the same record...
    let rest_body = serde_json::json!({
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Rue de Rivoli", "city": "Paris",
            "postal_code": "75001", "country": "FR"},
        "payment": {"token": CARD_OK}
    });
    let over_rest = crate::shop::checkout(&ann_rest, &rest_body, Some("grpc-ann-checkout-1"))
        .await
        .expect("POST /api/v1/checkout");
    assert_eq!(
        (
            over_rest.status.as_u16(),
            over_rest.header("idempotent-replayed")
        ),
        (201, Some("true")),
        "ann's REST retry of her gRPC checkout: {over_rest}"
    );
    assert_eq!(over_rest.body["id"], placed.id.as_str(), "{over_rest}");
    // ...and bob, with the same key and message, gets his own outcome (his cart is empty).
    let bob_try = with_metadata(
        signed_in(checkout_request(CARD_OK), "customer", "bob"),
        "idempotency-key",
        "grpc-ann-checkout-1",
    );
    let status = orders
        .checkout(bob_try)
        .await
        .expect_err("bob must not get ann's order");
    assert_eq!(
        status.metadata().get("idempotent-replayed"),
        None,
        "{status:?}"
    );
    expect_error(
        Err::<tonic::Response<()>, _>(status),
        Code::InvalidArgument,
        "cart_empty",
    );
    let id = placed.id.clone();

    // The sandbox authorizes the payment in the background.
    let paid = {
        let orders = orders.clone();
        let id = id.clone();
        eventually("the order to be paid", Duration::from_secs(20), move || {
            let (mut orders, id) = (orders.clone(), id.clone());
            async move {
                let get = proto::GetOrderRequest {
                    id,
                    consistency: proto::Consistency::Unspecified as i32,
                };
                let order = orders
                    .get_order(signed_in(get, "customer", "ann"))
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                if order.status == OrderStatus::Paid as i32 {
                    Ok(order)
                } else {
                    Err(format!("status {:?}", order.status()))
                }
            }
        })
        .await
    };
    assert_eq!(
        paid.payment.expect("payment").status,
        PaymentStatus::Authorized as i32
    );
    assert_eq!(paid.hold.expect("hold").state, HoldState::Committed as i32);

    // Another customer neither sees nor ships it.
    let get = proto::GetOrderRequest {
        id: id.clone(),
        consistency: 0,
    };
    expect_error(
        orders.get_order(signed_in(get, "customer", "bob")).await,
        Code::NotFound,
        "order_not_found",
    );
    let ship = proto::ShipOrderRequest {
        id: id.clone(),
        carrier: "La Poste".into(),
        tracking_number: "LP123".into(),
    };
    let shipped = orders
        .ship_order(signed_in(ship, "admin", "root"))
        .await
        .expect("ship")
        .into_inner();
    assert_eq!(shipped.status, OrderStatus::Shipped as i32);
    assert_eq!(
        shipped.hold.expect("hold").state,
        HoldState::Consumed as i32
    );
    assert_eq!(shipped.fulfilment.expect("fulfilment").carrier, "La Poste");
    let deliver = proto::DeliverOrderRequest { id: id.clone() };
    let delivered = orders
        .deliver_order(signed_in(deliver, "admin", "root"))
        .await
        .expect("deliver")
        .into_inner();
    assert_eq!(delivered.status, OrderStatus::Delivered as i32);
    let timeline: Vec<i32> = delivered.timeline.iter().map(|t| t.to).collect();
    assert_eq!(
        timeline,
        [
            OrderStatus::Draft,
            OrderStatus::Confirmed,
            OrderStatus::Paid,
            OrderStatus::Shipped,
            OrderStatus::Delivered
        ]
        .map(|s| s as i32)
    );
    let cancel = proto::CancelOrderRequest {
        id: id.clone(),
        reason: None,
    };
    expect_error(
        orders
            .cancel_order(signed_in(cancel, "customer", "ann"))
            .await,
        Code::FailedPrecondition,
        "invalid_transition",
    );

    // History with a status filter.
    let list = proto::ListOrdersRequest {
        status: OrderStatus::Delivered as i32,
        ..Default::default()
    };
    let page = orders
        .list_orders(signed_in(list, "customer", "ann"))
        .await
        .expect("list orders")
        .into_inner();
    let ids: Vec<&str> = page.items.iter().map(|o| o.id.as_str()).collect();
    assert_eq!((ids, page.next_after), (vec![id.as_str()], None));

    // Stock left the warehouse; what is left is too little for bob's cart.
    let stock = inventory
        .get_stock(proto::GetStockRequest {
            sku: "A".into(),
            consistency: 0,
        })
        .await
        .expect("get stock")
        .into_inner();
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (3, 0, 3));
    let add = proto::AddLineRequest {
        sku: "A".into(),
        quantity: 4,
    };
    carts
        .add_line(signed_in(add, "customer", "bob"))
        .await
        .expect("bob adds A");
    let refused = orders
        .checkout(signed_in(checkout_request(CARD_OK), "customer", "bob"))
        .await;
    let code = refused.as_ref().map_or_else(Status::code, |_| Code::Ok);
    assert!(
        matches!(code, Code::FailedPrecondition | Code::Aborted),
        "{refused:?}"
    );
    expect_error(refused, code, "insufficient_stock");

    // Low-stock thresholds are for admins.
    let threshold = proto::SetThresholdRequest {
        sku: "A".into(),
        threshold: Some(5),
        warehouse_id: None,
    };
    expect_error(
        inventory
            .set_threshold(signed_in(threshold.clone(), "customer", "bob"))
            .await,
        Code::PermissionDenied,
        "forbidden",
    );
    let set = inventory
        .set_threshold(signed_in(threshold, "admin", "root"))
        .await
        .expect("set threshold")
        .into_inner();
    assert_eq!((set.sku.as_str(), set.threshold), ("A", 5));
    let low = inventory
        .list_low_stock(signed_in(
            proto::ListLowStockRequest::default(),
            "admin",
            "root",
        ))
        .await
        .expect("list low stock")
        .into_inner();
    let items: Vec<(&str, u64, u64)> = low
        .items
        .iter()
        .map(|l| (l.sku.as_str(), l.threshold, l.available))
        .collect();
    assert_eq!(items, [("A", 5, 3)]);
}
