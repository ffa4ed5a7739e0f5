//! The stock workload: checkouts of few SKUs with little stock (approved,
//! declined, and slow-card orders whose short hold expires), restocks, and
//! cancellations of earlier orders. Each checkout is by a fresh customer, so
//! an order names the checkout it came from (see `checker::stock`).

use std::sync::{Arc, Mutex};

use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::{address, card, think, Ctx, CUSTOMER_PREFIX, STOCK_SKUS};
use crate::auth::Actor;
use crate::checker::stock::DECLINED_CARD;
use crate::client::Outcome;
use crate::history::{Kind, Recorder};

const APPROVED_CARD: &str = "tok_visa";
const SLOW_CARD: &str = "tok_sandbox_slow";

/// Orders acknowledged so far, for cancellations.
pub type Orders = Arc<Mutex<Vec<String>>>;

/// Records `outcome` as the completion of `pending`, with `value` for `ok`.
pub fn complete(rec: &Recorder, pending: crate::history::Pending, outcome: &Outcome, value: Value) {
    let kind = match outcome {
        Outcome::Ok { .. } => Kind::Ok,
        Outcome::Fail { .. } => Kind::Fail,
        Outcome::Info { .. } => Kind::Info,
    };
    let value = if kind == Kind::Ok { value } else { Value::Null };
    rec.complete(pending, kind, value, outcome.error());
}

pub async fn run(ctx: Ctx, process: usize, orders: Orders) {
    let name = format!("stock-{process}");
    let mut rng = ctx.rng(&name);
    let slot = process % ctx.urls.len() + 1;
    let url = ctx.url(slot).to_string();
    let admin = Actor::admin();
    let mut k = 0u64;
    while ctx.running() {
        k += 1;
        let roll: f64 = rng.gen();
        if roll < 0.6 {
            let customer = format!("{CUSTOMER_PREFIX}s{process}-{k}");
            let actor = Actor::customer(&customer);
            let sku = *STOCK_SKUS.choose(&mut rng).expect("skus");
            let quantity: i64 = rng.gen_range(1..=2);
            let p = ctx.rec.invoke(
                &name,
                "cart",
                Some(slot),
                json!({"customer": customer, "sku": sku, "quantity": quantity}),
            );
            let cart = ctx
                .client
                .call(
                    &url,
                    Method::PUT,
                    &format!("/api/v1/cart/lines/{sku}"),
                    Some(&json!({"quantity": quantity})),
                    &actor,
                    None,
                )
                .await;
            complete(&ctx.rec, p, &cart, json!({}));
            if matches!(cart, Outcome::Fail { .. }) {
                think(&mut rng).await;
                continue;
            }
            let c: f64 = rng.gen();
            let (number, ttl) = if c < 0.8 {
                (APPROVED_CARD, None)
            } else if c < 0.9 {
                (DECLINED_CARD, None)
            } else {
                // Slower than the payment timeout: the short hold expires first.
                (SLOW_CARD, Some(2))
            };
            let key = format!("{customer}-checkout");
            let mut body = json!({"shipping_address": address(), "payment": card(number)});
            if let Some(ttl) = ttl {
                body["hold_ttl_secs"] = json!(ttl);
            }
            let p = ctx.rec.invoke(
                &name,
                "checkout",
                Some(slot),
                json!({"customer": customer, "sku": sku, "quantity": quantity, "card": number, "key": key}),
            );
            let out = ctx
                .client
                .call(
                    &url,
                    Method::POST,
                    "/api/v1/checkout",
                    Some(&body),
                    &actor,
                    Some(&key),
                )
                .await;
            let value = match &out {
                Outcome::Ok { body, .. } => {
                    let id = body["id"].as_str().unwrap_or("").to_string();
                    orders
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(id.clone());
                    json!({"order_id": id, "status": body["status"]})
                }
                _ => Value::Null,
            };
            complete(&ctx.rec, p, &out, value);
        } else if roll < 0.8 {
            let sku = *STOCK_SKUS.choose(&mut rng).expect("skus");
            let wh = *["w1", "w2"].choose(&mut rng).expect("warehouses");
            let delta: i64 = rng.gen_range(1..=2);
            let key = format!("restock-{process}-{k}");
            let p = ctx.rec.invoke(
                &name,
                "restock",
                Some(slot),
                json!({"sku": sku, "warehouse": wh, "delta": delta, "key": key}),
            );
            let out = ctx
                .client
                .call(
                    &url,
                    Method::POST,
                    &format!("/api/v1/inventory/{sku}/warehouses/{wh}/adjustments"),
                    Some(&json!({"delta": delta, "reason": "restock"})),
                    &admin,
                    Some(&key),
                )
                .await;
            complete(&ctx.rec, p, &out, json!({}));
        } else {
            let id = {
                let known = orders.lock().unwrap_or_else(|e| e.into_inner());
                known.choose(&mut rng).cloned()
            };
            let Some(id) = id else { continue };
            let p = ctx
                .rec
                .invoke(&name, "cancel", Some(slot), json!({"order_id": id}));
            let out = ctx
                .client
                .call(
                    &url,
                    Method::POST,
                    &format!("/api/v1/orders/{id}/cancel"),
                    Some(&json!({"reason": "jepsen"})),
                    &admin,
                    None,
                )
                .await;
            let status = match &out {
                Outcome::Ok { body, .. } => body["status"].clone(),
                _ => Value::Null,
            };
            complete(&ctx.rec, p, &out, json!({"status": status}));
        }
        think(&mut rng).await;
    }
}
