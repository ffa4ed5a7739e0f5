//! The idempotency workload: one checkout per `Idempotency-Key`, retried with
//! the same key and body on the next node after every unknown outcome
//! (timeouts and 5xx, typically while its node is killed, paused or cut off),
//! and sometimes replayed once more after success. `checker::idempotency`
//! checks that each key placed exactly one order.

use std::time::Duration;

use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::stock::complete;
use super::{address, card, put_cart_line, think, Ctx, CUSTOMER_PREFIX, IDEM_SKU};
use crate::auth::Actor;
use crate::client::Outcome;

/// Attempts per key (bounded, so a long outage ends a key's story as unknown).
const MAX_ATTEMPTS: usize = 8;

pub async fn run(ctx: Ctx, process: usize) {
    let name = format!("idem-{process}");
    let mut rng = ctx.rng(&name);
    let n = ctx.urls.len();
    let mut k = 0u64;
    while ctx.running() {
        k += 1;
        let customer = format!("{CUSTOMER_PREFIX}i{process}-{k}");
        let actor = Actor::customer(&customer);
        let key = format!("jepsen-{}-{process}-{k}", ctx.seed);
        let mut slot = (process + k as usize) % n + 1;
        // The cart line is an absolute write: retrying it is harmless.
        let mut carted = false;
        for _ in 0..MAX_ATTEMPTS {
            if put_cart_line(&ctx, &name, slot, &actor, &customer, IDEM_SKU).await {
                carted = true;
                break;
            }
            slot = slot % n + 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !carted {
            continue;
        }
        let body = json!({"shipping_address": address(), "payment": card("tok_visa")});
        let mut replay_once = rng.gen_bool(0.3);
        for _ in 0..MAX_ATTEMPTS {
            let p = ctx.rec.invoke(
                &name,
                "checkout",
                Some(slot),
                json!({"customer": customer, "key": key, "sku": IDEM_SKU, "quantity": 1, "card": "tok_visa"}),
            );
            let out = ctx
                .client
                .call(
                    ctx.url(slot),
                    Method::POST,
                    "/api/v1/checkout",
                    Some(&body),
                    &actor,
                    Some(&key),
                )
                .await;
            let value = match &out {
                Outcome::Ok { body, replayed, .. } => {
                    json!({"order_id": body["id"], "replayed": replayed})
                }
                _ => Value::Null,
            };
            complete(&ctx.rec, p, &out, value);
            slot = slot % n + 1;
            match out {
                Outcome::Ok { .. } if replay_once => replay_once = false,
                Outcome::Ok { .. } | Outcome::Fail { .. } => break,
                Outcome::Info { .. } => {
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(200..600))).await
                }
            }
            if !ctx.running() {
                break;
            }
        }
        think(&mut rng).await;
    }
}
