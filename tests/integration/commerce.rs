//! The commerce flow as a client sees it: a guest cart merged on sign-in, checkout with a price
//! snapshot and stock split across warehouses, payment by the sandbox, shipping, delivery, the
//! workflow's refusals, order history and visibility, payment decline, and low-stock alerts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::client::Client;
use crate::harness::{sign_in, Cluster};
use crate::shop::{
    add_to_cart, checkout, checkout_body, level, listing, order_id, stock, wait_for_status,
    warehouse, CARD_DECLINED, CARD_OK,
};

const WAIT: Duration = Duration::from_secs(20);

fn statuses(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["to"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn cart_to_delivered_across_a_three_node_cluster() {
    let cluster = Cluster::start(3).await;
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    // The far warehouse has the better priority; "nearest" must still pick the near one first.
    warehouse(&admin, "near", 48.0, 2).await;
    warehouse(&admin, "far", 10.0, 1).await;
    stock(&admin, "A", "near", 3).await;
    stock(&admin, "A", "far", 3).await;
    stock(&admin, "B", "near", 5).await;
    listing(&admin, "A", 1250).await;
    listing(&admin, "B", 500).await;

    // A guest fills a cart on node 2.
    let guest = cluster.client(2);
    let first = add_to_cart(&guest, "A", 4).await;
    let body = first.clone().ok("guest adds A");
    let token = body["cart_token"]
        .as_str()
        .expect("a new guest cart has a token")
        .to_string();
    assert_eq!(first.header("x-cart-token"), Some(token.as_str()));
    let guest = guest.with_header("x-cart-token", &token);
    add_to_cart(&guest, "B", 1).await.ok("guest adds B");
    let cart = guest.get("/api/v1/cart").await.unwrap().ok("guest cart");
    // A guest retrying with a key must bring a token: a replay could not hand out a new one.
    let anonymous = cluster.client(2);
    anonymous
        .send(
            reqwest::Method::POST,
            "/api/v1/cart/lines",
            Some(&json!({"sku": "A", "quantity": 1})),
            Some("guest-add-1"),
        )
        .await
        .unwrap()
        .expect_error(
            422,
            "validation_failed",
            "guest add with a key and no token",
        );
    let minted = anonymous
        .post("/api/v1/cart/token", &json!({}))
        .await
        .unwrap()
        .ok("mint token");
    let keyed = anonymous.with_header("x-cart-token", minted["cart_token"].as_str().unwrap());
    for attempt in 0..2 {
        let reply = keyed
            .send(
                reqwest::Method::POST,
                "/api/v1/cart/lines",
                Some(&json!({"sku": "A", "quantity": 1})),
                Some("guest-add-1"),
            )
            .await
            .unwrap();
        assert_eq!(
            reply.clone().ok("keyed guest add")["item_count"],
            1,
            "attempt {attempt}"
        );
    }
    assert_eq!(
        cart["subtotal"],
        json!({"amount": 5500, "currency": "EUR"}),
        "{cart}"
    );
    assert!(
        cart.get("cart_token").is_none(),
        "the token is only handed out once"
    );

    // Signing in on node 3 and merging moves the lines to the customer's cart.
    let (ann, ann_id) = sign_in(&cluster.client(3), "customer", "ann").await;
    let merged = ann
        .post("/api/v1/cart/merge", &json!({ "cart_token": token }))
        .await
        .unwrap()
        .ok("merge");
    assert_eq!(merged["item_count"], 5, "{merged}");
    let emptied = guest
        .get("/api/v1/cart")
        .await
        .unwrap()
        .ok("guest cart after merge");
    assert_eq!(emptied["item_count"], 0, "{emptied}");

    let mut body = checkout_body(CARD_OK);
    body["allocation_strategy"] = json!("nearest");
    let placed = checkout(&ann, &body, Some("ann-checkout-1")).await.unwrap();
    assert_eq!(placed.status.as_u16(), 201, "{placed}");
    let id = order_id(&placed);
    let order = &placed.body;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["customer_id"], ann_id.as_str());
    assert_eq!(
        order["totals"]["total"],
        json!({"amount": 5500, "currency": "EUR"})
    );
    assert_eq!(
        order["payment"]["method"], "visa •••• 4242",
        "only the last digits are kept"
    );
    let allocations: Vec<(String, String, u64)> = order["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["sku"].as_str().unwrap().into(),
                a["warehouse_id"].as_str().unwrap().into(),
                a["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        allocations,
        vec![
            ("A".into(), "near".into(), 3),
            ("A".into(), "far".into(), 1),
            ("B".into(), "near".into(), 1)
        ],
        "A is split, nearest warehouse first"
    );
    let cart = ann
        .get("/api/v1/cart")
        .await
        .unwrap()
        .ok("cart after checkout");
    assert_eq!(cart["item_count"], 0, "checkout empties the cart");

    // A later price change does not touch the order's snapshot.
    listing(&admin, "A", 9999).await;
    let (ann_on_2, _) = sign_in(&cluster.client(2), "customer", "ann").await;
    let paid = wait_for_status(&ann_on_2, &id, "paid", WAIT).await;
    assert_eq!(paid["totals"]["total"]["amount"], 5500);
    assert_eq!(paid["payment"]["status"], "authorized");
    assert_eq!(paid["hold"]["state"], "committed");

    let ship = json!({"carrier": "UPS", "tracking_number": "1Z999"});
    let shipped = admin
        .post(&format!("/api/v1/orders/{id}/ship"), &ship)
        .await
        .unwrap()
        .ok("ship");
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(shipped["fulfilment"]["tracking_number"], "1Z999");
    assert_eq!(
        level(&admin, "A", "near").await,
        (0, 0),
        "shipped units left the warehouse"
    );
    assert_eq!(level(&admin, "A", "far").await, (2, 0));
    // Shipping again is a no-op; cancelling a shipped order is refused.
    let again = admin
        .post(&format!("/api/v1/orders/{id}/ship"), &ship)
        .await
        .unwrap()
        .ok("ship again");
    assert_eq!(statuses(&again), statuses(&shipped));
    assert_eq!(level(&admin, "A", "far").await, (2, 0), "not shipped twice");
    ann.post(&format!("/api/v1/orders/{id}/cancel"), &json!({}))
        .await
        .unwrap()
        .expect_error(409, "invalid_transition", "cancel after ship");
    // Customers cannot ship.
    ann.post(&format!("/api/v1/orders/{id}/deliver"), &json!({}))
        .await
        .unwrap()
        .expect_error(403, "forbidden", "customer delivers");

    let delivered = admin
        .post(&format!("/api/v1/orders/{id}/deliver"), &json!({}))
        .await
        .unwrap()
        .ok("deliver");
    assert_eq!(
        statuses(&delivered),
        ["draft", "confirmed", "paid", "shipped", "delivered"]
    );
    let captured = wait_for_status(&ann, &id, "delivered", WAIT).await;
    assert!(
        matches!(
            captured["payment"]["status"].as_str(),
            Some("authorized" | "captured")
        ),
        "{captured}"
    );

    // History: the customer sees the order; another customer sees nothing.
    let mine = ann.get("/api/v1/orders").await.unwrap().ok("list orders");
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    let none = ann
        .get("/api/v1/orders?status=cancelled")
        .await
        .unwrap()
        .ok("filtered list");
    assert_eq!(none["items"], json!([]));
    let (eve, _) = sign_in(&cluster.client(1), "customer", "eve").await;
    eve.get(&format!("/api/v1/orders/{id}"))
        .await
        .unwrap()
        .expect_error(404, "order_not_found", "another customer's order");
    let eves = eve.get("/api/v1/orders").await.unwrap().ok("eve's orders");
    assert_eq!(eves["items"], json!([]));
    let all = admin
        .get("/api/v1/orders")
        .await
        .unwrap()
        .ok("admin lists all");
    assert_eq!(all["items"][0]["id"], id.as_str());
    Client::new(cluster.node(1).url())
        .get("/api/v1/orders")
        .await
        .unwrap()
        .expect_error(401, "unauthenticated", "anonymous order list");
}

#[tokio::test]
async fn refusals_declines_and_low_stock_alerts() {
    let cluster = Cluster::start(1).await;
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    let (bob, _) = sign_in(&cluster.client(1), "customer", "bob").await;
    warehouse(&admin, "w1", 48.0, 0).await;
    stock(&admin, "L", "w1", 5).await;
    listing(&admin, "L", 100).await;
    listing(&admin, "NONE", 100).await;
    admin
        .put("/api/v1/inventory/L/threshold", &json!({"threshold": 3}))
        .await
        .unwrap()
        .ok("set threshold");

    add_to_cart(&bob, "GHOST", 1)
        .await
        .expect_error(422, "sku_not_for_sale", "unknown sku");
    add_to_cart(&bob, "L", 0)
        .await
        .expect_error(422, "validation_failed", "zero units");
    checkout(&bob, &checkout_body(CARD_OK), None)
        .await
        .unwrap()
        .expect_error(422, "cart_empty", "empty cart");
    checkout(
        &Client::new(cluster.node(1).url()),
        &checkout_body(CARD_OK),
        None,
    )
    .await
    .unwrap()
    .expect_error(401, "unauthenticated", "anonymous checkout");

    // Not enough of either line: both are named, nothing is reserved.
    add_to_cart(&bob, "L", 6).await.ok("add L");
    add_to_cart(&bob, "NONE", 1).await.ok("add NONE");
    let short = checkout(&bob, &checkout_body(CARD_OK), None).await.unwrap();
    short.expect_error(409, "insufficient_stock", "short checkout");
    assert_eq!(
        short.body["details"]["lines"],
        json!([{"sku": "L", "requested": 6, "available": 5},
               {"sku": "NONE", "requested": 1, "available": 0}])
    );
    assert_eq!(level(&admin, "L", "w1").await, (5, 0));
    checkout(&bob, &checkout_body("tok_unknown"), None)
        .await
        .unwrap()
        .expect_error(422, "invalid_card", "a token the provider does not know");
    // Card data is refused wherever it is, before anything is kept or
    // echoed (the key is not recorded either: each retry is refused afresh).
    let mut raw = checkout_body(CARD_OK);
    raw["payment"] = json!({"card": {"number": "4242424242424242", "exp_month": 12,
        "exp_year": 2035, "cvc": "123"}});
    let mut hidden = checkout_body(CARD_OK);
    hidden["shipping_address"]["line2"] = json!("card 4000 0566 5566 5556");
    let mut as_token = checkout_body("5555555555554444");
    as_token["payment"] = json!({"token": "5555-5555-5555-4444"});
    for (body, what) in [
        (raw, "a card object"),
        (hidden, "in the address"),
        (as_token, "as a token"),
    ] {
        let refused = checkout(&bob, &body, Some("bob-raw-card")).await.unwrap();
        refused.expect_error(422, "raw_card_data_refused", what);
        assert!(!refused.to_string().contains("4242"), "echoed: {refused}");
    }

    // A declined card cancels the order and releases its hold.
    bob.send(
        reqwest::Method::DELETE,
        "/api/v1/cart/lines/NONE",
        None,
        None,
    )
    .await
    .unwrap()
    .ok("remove line");
    bob.put("/api/v1/cart/lines/L", &json!({"quantity": 3}))
        .await
        .unwrap()
        .ok("set quantity");
    let placed = checkout(&bob, &checkout_body(CARD_DECLINED), None)
        .await
        .unwrap();
    assert_eq!(placed.status.as_u16(), 201, "{placed}");
    let id = order_id(&placed);
    let low = admin
        .get("/api/v1/inventory/low-stock")
        .await
        .unwrap()
        .ok("low stock");
    // The declined authorization races this read: once it releases the hold, L is
    // back above its threshold. Either the alert is up, or the order is already
    // cancelled (the event log below proves the alert fired and cleared, in order).
    if low["items"][0]["sku"] != "L" {
        let order = bob
            .get(&format!("/api/v1/orders/{id}"))
            .await
            .unwrap()
            .ok("order");
        assert_eq!(order["status"], "cancelled", "2 available < 3: {low}");
    }
    let cancelled = wait_for_status(&bob, &id, "cancelled", WAIT).await;
    assert_eq!(cancelled["payment"]["status"], "declined");
    assert_eq!(cancelled["payment"]["reason"], "card_declined");
    assert_eq!(cancelled["hold"]["state"], "released");
    assert!(
        cancelled["timeline"].as_array().unwrap().last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("declined"),
        "{cancelled}"
    );
    assert_eq!(
        level(&admin, "L", "w1").await,
        (5, 0),
        "the hold was released"
    );
    let metrics = cluster.client(1).get("/metrics").await.unwrap();
    let metrics = metrics.body.as_str().unwrap_or_default();
    assert!(
        metrics.contains(r#"payment_tasks_total{op="authorize",outcome="declined"} 1"#),
        "{metrics}"
    );
    let low = admin
        .get("/api/v1/inventory/low-stock")
        .await
        .unwrap()
        .ok("low stock");
    assert_eq!(low["items"], json!([]), "back above the threshold");
    let events = admin.all_events().await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| matches!(*t, "StockLow" | "BackInStock"))
        .collect();
    assert_eq!(kinds, ["StockLow", "BackInStock"]);

    // A vendor lists its own SKU and sees only its lines of an order that holds them.
    let (v1, v1_id) = sign_in(&cluster.client(1), "vendor", "v1").await;
    let (v2, v2_id) = sign_in(&cluster.client(1), "vendor", "v2").await;
    let vendor_listing = |vendor: &str| json!({"name": "Vendor thing", "price": {"amount": 700, "currency": "EUR"}, "vendor_id": vendor});
    v1.put("/api/v1/listings/VX", &vendor_listing(&v1_id))
        .await
        .unwrap()
        .ok("vendor lists its SKU");
    v2.put("/api/v1/listings/VX", &vendor_listing(&v2_id))
        .await
        .unwrap()
        .expect_error(403, "forbidden", "another vendor takes the SKU");
    stock(&admin, "VX", "w1", 2).await;
    add_to_cart(&bob, "VX", 1).await.ok("add VX");
    add_to_cart(&bob, "L", 1).await.ok("add L");
    let mixed = checkout(&bob, &checkout_body(CARD_OK), None).await.unwrap();
    let mixed_id = order_id(&mixed);
    let seen = v1
        .get(&format!("/api/v1/orders/{mixed_id}"))
        .await
        .unwrap()
        .ok("vendor reads the order");
    assert_eq!(seen["lines"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["lines"][0]["sku"], "VX");
    assert_eq!(
        seen["totals"]["total"]["amount"], 700,
        "only its lines count"
    );
    assert_eq!(
        seen["payment"]["method"], "",
        "no payment details for vendors"
    );
    let listed = v1
        .get("/api/v1/orders")
        .await
        .unwrap()
        .ok("vendor lists orders");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    v2.get(&format!("/api/v1/orders/{mixed_id}"))
        .await
        .unwrap()
        .expect_error(404, "order_not_found", "a vendor with no line in it");
    wait_for_status(&bob, &mixed_id, "paid", WAIT).await;
    v1.post(
        &format!("/api/v1/orders/{mixed_id}/ship"),
        &json!({"carrier": "x", "tracking_number": "y"}),
    )
    .await
    .unwrap()
    .expect_error(
        403,
        "forbidden",
        "a vendor cannot ship another vendor's lines",
    );

    bob.get("/api/v1/inventory/low-stock")
        .await
        .unwrap()
        .expect_error(403, "forbidden", "customers cannot list low stock");
    bob.post(
        &format!("/api/v1/orders/{id}/ship"),
        &json!({"carrier": "x", "tracking_number": "y"}),
    )
    .await
    .unwrap()
    .expect_error(403, "forbidden", "a customer cannot ship");
    admin
        .post(
            &format!("/api/v1/orders/{id}/ship"),
            &json!({"carrier": "x", "tracking_number": "y"}),
        )
        .await
        .unwrap()
        .expect_error(409, "invalid_transition", "ship a cancelled order");
}

/// A node configured with short cart expiry and payment timeouts.
#[tokio::test]
async fn idle_carts_expire_and_unanswered_payments_cancel_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "[commerce]\ncart_idle_secs = 1\nsweep_interval_ms = 200\n\
         [payments]\ntimeout_ms = 200\nmax_attempts = 2\nretry_backoff_ms = 50\n",
    )
    .unwrap();
    let cluster = Cluster::start_with(1, &["--config", config.to_str().unwrap()]).await;
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    listing(&admin, "C", 100).await;
    warehouse(&admin, "w1", 48.0, 0).await;
    stock(&admin, "C", "w1", 9).await;

    // The slow card never answers within 200 ms: after two attempts the payment has failed,
    // and the order is cancelled with its stock back.
    let (dee, _) = sign_in(&cluster.client(1), "customer", "dee").await;
    add_to_cart(&dee, "C", 4).await.ok("fill cart");
    let placed = checkout(&dee, &checkout_body(crate::shop::CARD_SLOW), None)
        .await
        .unwrap();
    let id = order_id(&placed);
    let failed = wait_for_status(&dee, &id, "cancelled", WAIT).await;
    assert_eq!(failed["payment"]["status"], "failed", "{failed}");
    assert_eq!(level(&admin, "C", "w1").await, (9, 0));

    let (cy, _) = sign_in(&cluster.client(1), "customer", "cy").await;
    add_to_cart(&cy, "C", 2).await.ok("fill cart");
    let guest = add_to_cart(&cluster.client(1), "C", 1)
        .await
        .ok("guest cart");
    let guest = cluster
        .client(1)
        .with_header("x-cart-token", guest["cart_token"].as_str().unwrap());
    for (who, client) in [("customer", &cy), ("guest", &guest)] {
        crate::harness::eventually(format!("the {who} cart to expire"), WAIT, || {
            let client = client.clone();
            async move {
                let cart = client
                    .get("/api/v1/cart")
                    .await
                    .map_err(|e| e.to_string())?;
                if cart.body["item_count"] == 0 {
                    Ok(())
                } else {
                    Err(cart.to_string())
                }
            }
        })
        .await;
    }
}
