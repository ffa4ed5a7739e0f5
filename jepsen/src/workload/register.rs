//! The register workload: per key (a stock level's `on_hand` of SKU `R<k>`),
//! linearizable reads (`GET /api/v1/inventory/{sku}`, the default read mode)
//! and compare-and-set writes (`PUT .../warehouses/w1` with
//! `expected_version`; 409 `version_conflict` is a definite failure). Every
//! write writes a value never written before in the run, which is what lets
//! `checker::register` treat a CAS on a version as a CAS on a value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::stock::complete;
use super::{think, Ctx, WAREHOUSE};
use crate::auth::Actor;
use crate::client::Outcome;

/// Source of never-repeated values.
pub type Values = Arc<AtomicI64>;

/// `(on_hand, version)` of `warehouse` in a `GET /api/v1/inventory/{sku}` body.
fn level_of(body: &Value) -> Option<(i64, u64)> {
    body["warehouses"]
        .as_array()?
        .iter()
        .find(|l| l["warehouse_id"] == WAREHOUSE)
        .and_then(|l| Some((l["on_hand"].as_i64()?, l["version"].as_u64()?)))
}

pub async fn run(ctx: Ctx, process: usize, keys: Vec<String>, values: Values) {
    let name = format!("register-{process}");
    let mut rng = ctx.rng(&name);
    let slot = process % ctx.urls.len() + 1;
    let url = ctx.url(slot).to_string();
    let admin = Actor::admin();
    // What this client last saw per key: (value, version).
    let mut seen: HashMap<String, (i64, u64)> = HashMap::new();
    while ctx.running() {
        let key = keys.choose(&mut rng).expect("keys").clone();
        let known = seen.get(&key).copied();
        match known {
            Some((from, version)) if rng.gen_bool(0.5) => {
                let to = values.fetch_add(1, Ordering::SeqCst);
                let p = ctx.rec.invoke(
                    &name,
                    "cas",
                    Some(slot),
                    json!({"key": key, "from": from, "to": to, "expected_version": version}),
                );
                let out = ctx
                    .client
                    .call(
                        &url,
                        Method::PUT,
                        &format!("/api/v1/inventory/{key}/warehouses/{WAREHOUSE}"),
                        Some(&json!({"on_hand": to, "expected_version": version})),
                        &admin,
                        None,
                    )
                    .await;
                let version = match &out {
                    Outcome::Ok { body, .. } => body["version"].as_u64(),
                    _ => None,
                };
                match version {
                    Some(v) => {
                        seen.insert(key.clone(), (to, v));
                    }
                    None => {
                        seen.remove(&key);
                    }
                }
                complete(&ctx.rec, p, &out, json!({"version": version}));
            }
            _ => {
                let p = ctx
                    .rec
                    .invoke(&name, "read", Some(slot), json!({"key": key}));
                let out = ctx
                    .client
                    .get(&url, &format!("/api/v1/inventory/{key}"), &admin)
                    .await;
                let value = match &out {
                    Outcome::Ok { body, .. } => match level_of(body) {
                        Some((v, version)) => {
                            seen.insert(key.clone(), (v, version));
                            json!({"value": v, "version": version})
                        }
                        None => json!({"value": null}),
                    },
                    _ => Value::Null,
                };
                complete(&ctx.rec, p, &out, value);
            }
        }
        think(&mut rng).await;
    }
}
