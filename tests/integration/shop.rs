//! Commerce helpers shared by the commerce tests: setting up warehouses, stock and listings
//! as an admin, filling carts, checking out, and waiting for an order's status. Everything goes
//! through the public REST API.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::client::{Client, Reply};
use crate::harness::eventually;

/// The sandbox's test cards.
pub const CARD_OK: &str = "tok_visa";
pub const CARD_DECLINED: &str = "tok_chargeDeclined";
pub const CARD_SLOW: &str = "tok_sandbox_slow";

/// Creates warehouse `id` at (`lat`, 2.0) with `priority`.
pub async fn warehouse(admin: &Client, id: &str, lat: f64, priority: i32) {
    let body = json!({"name": id, "location": {"lat": lat, "lon": 2.0}, "priority": priority});
    admin
        .put(&format!("/api/v1/warehouses/{id}"), &body)
        .await
        .expect("PUT warehouse")
        .ok("create warehouse");
}

/// Sets the on-hand stock of `sku` in `wh`.
pub async fn stock(admin: &Client, sku: &str, wh: &str, on_hand: i64) {
    admin
        .put(
            &format!("/api/v1/inventory/{sku}/warehouses/{wh}"),
            &json!({ "on_hand": on_hand }),
        )
        .await
        .expect("PUT stock")
        .ok("set stock");
}

/// Lists `sku` for sale at `price` EUR cents.
pub async fn listing(admin: &Client, sku: &str, price: i64) {
    admin
        .put(
            &format!("/api/v1/listings/{sku}"),
            &json!({"name": format!("Product {sku}"), "price": {"amount": price, "currency": "EUR"}}),
        )
        .await
        .expect("PUT listing")
        .ok("create listing");
}

pub async fn add_to_cart(client: &Client, sku: &str, quantity: i64) -> Reply {
    client
        .post(
            "/api/v1/cart/lines",
            &json!({"sku": sku, "quantity": quantity}),
        )
        .await
        .expect("POST cart line")
}

pub fn checkout_body(token: &str) -> Value {
    json!({
        "shipping_address": {
            "name": "Ada Lovelace", "line1": "1 Rue de Rivoli", "city": "Paris",
            "postal_code": "75001", "country": "FR", "location": {"lat": 48.86, "lon": 2.35}
        },
        "payment": {"token": token}
    })
}

/// `POST /api/v1/checkout` with `body` and an optional `Idempotency-Key`.
pub async fn checkout(client: &Client, body: &Value, key: Option<&str>) -> anyhow::Result<Reply> {
    client
        .send(Method::POST, "/api/v1/checkout", Some(body), key)
        .await
}

/// Polls `GET /api/v1/orders/{id}` on `client` until the order has `status`; returns it.
pub async fn wait_for_status(client: &Client, id: &str, status: &str, timeout: Duration) -> Value {
    let (client, id, status) = (client.clone(), id.to_string(), status.to_string());
    eventually(format!("order {id} to become {status}"), timeout, || {
        let (client, id, status) = (client.clone(), id.clone(), status.clone());
        async move {
            let reply = client
                .get(&format!("/api/v1/orders/{id}"))
                .await
                .map_err(|e| format!("{e:#}"))?;
            if reply.status == StatusCode::OK && reply.body["status"] == status.as_str() {
                Ok(reply.body)
            } else {
                Err(reply.to_string())
            }
        }
    })
    .await
}

/// `(on_hand, reserved)` of `sku` in `wh`, read linearizably.
pub async fn level(client: &Client, sku: &str, wh: &str) -> (u64, u64) {
    let body = client
        .get(&format!("/api/v1/inventory/{sku}"))
        .await
        .expect("GET stock")
        .ok("read stock");
    let level = body["warehouses"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["warehouse_id"] == wh))
        .unwrap_or_else(|| panic!("no level of {sku} in {wh}: {body}"));
    (
        level["on_hand"].as_u64().expect("on_hand"),
        level["reserved"].as_u64().expect("reserved"),
    )
}

/// The order id of a checkout reply.
#[track_caller]
pub fn order_id(reply: &Reply) -> String {
    reply.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no order id in {reply}"))
        .to_string()
}
