//! Workloads: concurrent clients, each bound to one node, that record every
//! operation in the history; plus the set-up before and the final reads after
//! a run. Every request goes through [`crate::client`] (public REST only) as
//! an actor named by [`crate::auth`].

pub mod coupon;
pub mod idempotency;
pub mod register;
pub mod stock;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth::Actor;
use crate::checker::stock::{Final, FinalOrder, Level};
use crate::client::{Client, Outcome};
use crate::history::Recorder;

/// Which workloads run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    Stock,
    Register,
    Idempotency,
    /// Concurrent checkouts redeeming coupons with a small usage limit.
    Coupon,
}

/// What every client task shares.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub rec: Recorder,
    /// REST URL per slot (slot i at index i-1); stable for the whole run.
    pub urls: Arc<Vec<String>>,
    pub until: Instant,
    pub seed: u64,
}

impl Ctx {
    /// A deterministic random source for `process`.
    pub fn rng(&self, process: &str) -> StdRng {
        let h = process.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        StdRng::seed_from_u64(self.seed ^ h)
    }

    pub fn url(&self, slot: usize) -> &str {
        &self.urls[(slot - 1) % self.urls.len()]
    }

    pub fn running(&self) -> bool {
        Instant::now() < self.until
    }
}

/// The stock-accounted SKUs, their initial levels and the register keys.
pub struct Setup {
    /// (sku, warehouse, on_hand) set at the start.
    pub levels: Vec<(&'static str, &'static str, i64)>,
    pub register_keys: Vec<String>,
}

pub const WAREHOUSE: &str = "w1";
/// SKUs the stock workload sells: few, with little stock, split over two warehouses.
pub const STOCK_SKUS: &[&str] = &["S0", "S1"];
/// The idempotency workload's SKU (plenty of stock: it tests duplicates, not shortage).
pub const IDEM_SKU: &str = "I0";
pub const REGISTER_KEYS: usize = 3;
/// Customer ids of the stock and idempotency workloads start with this (the
/// coupon workload's start with [`coupon::CUSTOMER_PREFIX`]).
pub const CUSTOMER_PREFIX: &str = "js-";

impl Setup {
    pub fn new() -> Setup {
        Setup {
            levels: vec![
                ("S0", "w1", 4),
                ("S0", "w2", 2),
                ("S1", "w1", 3),
                ("S1", "w2", 3),
                (IDEM_SKU, "w1", 1_000_000),
                (coupon::SKU, "w1", 1_000_000),
            ],
            register_keys: (0..REGISTER_KEYS).map(|k| format!("R{k}")).collect(),
        }
    }

    /// On hand per accounted SKU at the start.
    pub fn initial_stock(&self) -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for (sku, _, q) in &self.levels {
            *m.entry(sku.to_string()).or_default() += q;
        }
        m
    }

    pub fn initial_registers(&self) -> BTreeMap<String, i64> {
        self.register_keys.iter().map(|k| (k.clone(), 0)).collect()
    }

    /// Creates warehouses, listings and levels (absolute writes, retried
    /// until acknowledged).
    pub async fn apply(&self, ctx: &Ctx) -> anyhow::Result<()> {
        for (i, wh) in ["w1", "w2"].iter().enumerate() {
            ensure(
                ctx,
                Method::PUT,
                &format!("/api/v1/warehouses/{wh}"),
                json!({"name": wh, "location": {"lat": 52.5, "lon": 13.4 + i as f64}, "priority": i}),
            )
            .await?;
        }
        for sku in STOCK_SKUS.iter().chain([&IDEM_SKU, &coupon::SKU]) {
            ensure(
                ctx,
                Method::PUT,
                &format!("/api/v1/listings/{sku}"),
                json!({"name": format!("Item {sku}"), "price": {"amount": 1000, "currency": "EUR"}}),
            )
            .await?;
        }
        for (sku, wh, q) in &self.levels {
            ensure(
                ctx,
                Method::PUT,
                &format!("/api/v1/inventory/{sku}/warehouses/{wh}"),
                json!({"on_hand": q}),
            )
            .await?;
        }
        for key in &self.register_keys {
            ensure(
                ctx,
                Method::PUT,
                &format!("/api/v1/inventory/{key}/warehouses/{WAREHOUSE}"),
                json!({"on_hand": 0}),
            )
            .await?;
        }
        Ok(())
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets `customer`'s cart to one unit of `sku` through node `slot` (an
/// absolute write: retrying it is harmless), recorded as a `cart` op of
/// `process`; whether it was acknowledged.
pub async fn put_cart_line(
    ctx: &Ctx,
    process: &str,
    slot: usize,
    actor: &Actor,
    customer: &str,
    sku: &str,
) -> bool {
    let p = ctx.rec.invoke(
        process,
        "cart",
        Some(slot),
        json!({"customer": customer, "sku": sku, "quantity": 1}),
    );
    let out = ctx
        .client
        .call(
            ctx.url(slot),
            Method::PUT,
            &format!("/api/v1/cart/lines/{sku}"),
            Some(&json!({"quantity": 1})),
            actor,
            None,
        )
        .await;
    stock::complete(&ctx.rec, p, &out, json!({}));
    out.is_ok()
}

/// Sends an absolute write as admin, on any node, until it is acknowledged.
pub async fn ensure(ctx: &Ctx, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        let url = ctx.url(attempt % ctx.urls.len() + 1);
        match ctx
            .client
            .call(
                url,
                method.clone(),
                path,
                Some(&body),
                &Actor::admin(),
                None,
            )
            .await
        {
            Outcome::Ok { body, .. } => return Ok(body),
            Outcome::Fail { status, code, .. } if status != 0 => {
                bail!("{method} {path} refused: {status} {code}")
            }
            other => {
                if Instant::now() > deadline {
                    bail!("{method} {path}: no answer within 60 s ({other:?})");
                }
            }
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A read as admin, tried on every node in turn until one answers.
pub async fn read_any(ctx: &Ctx, path: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        let url = ctx.url(attempt % ctx.urls.len() + 1);
        match ctx.client.get(url, path, &Actor::admin()).await {
            Outcome::Ok { body, .. } => return Ok(body),
            other if Instant::now() > deadline => bail!("GET {path}: {other:?}"),
            _ => {}
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every order (admin view, all pages).
pub async fn all_orders(ctx: &Ctx) -> anyhow::Result<Vec<FinalOrder>> {
    let mut orders = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let path = match &after {
            Some(a) => format!("/api/v1/orders?limit=100&after={a}"),
            None => "/api/v1/orders?limit=100".to_string(),
        };
        let page = read_any(ctx, &path).await?;
        for o in page["items"].as_array().cloned().unwrap_or_default() {
            orders.push(FinalOrder {
                id: o["id"].as_str().unwrap_or("").to_string(),
                customer: ctx
                    .client
                    .auth()
                    .actor_name(o["customer_id"].as_str().unwrap_or("")),
                status: o["status"].as_str().unwrap_or("").to_string(),
                lines: o["lines"]
                    .as_array()
                    .map(|ls| {
                        ls.iter()
                            .map(|l| {
                                (
                                    l["sku"].as_str().unwrap_or("").to_string(),
                                    l["quantity"].as_i64().unwrap_or(0),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                coupon: o["coupon"].as_str().map(str::to_string),
            });
        }
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => return Ok(orders),
        }
    }
    bail!("more than a million orders?")
}

/// Stock levels of `skus`.
pub async fn levels(ctx: &Ctx, skus: &[String]) -> anyhow::Result<Vec<Level>> {
    let mut out = Vec::new();
    for sku in skus {
        let body = read_any(ctx, &format!("/api/v1/inventory/{sku}")).await?;
        for l in body["warehouses"].as_array().cloned().unwrap_or_default() {
            out.push(Level {
                sku: sku.clone(),
                warehouse: l["warehouse_id"].as_str().unwrap_or("").to_string(),
                on_hand: l["on_hand"].as_i64().unwrap_or(-1),
                reserved: l["reserved"].as_i64().unwrap_or(-1),
                available: l["available"].as_i64().unwrap_or(-1),
            });
        }
    }
    Ok(out)
}

/// The final state: waits (bounded) until no order is still `confirmed`
/// (holds expire, payments settle), then reads orders, levels and orders
/// again until the two order reads agree, so levels and orders describe one
/// moment.
pub async fn final_state(ctx: &Ctx, skus: &[String]) -> anyhow::Result<(Final, bool)> {
    let quiet_deadline = Instant::now() + Duration::from_secs(45);
    let mut quiescent = false;
    while Instant::now() < quiet_deadline {
        let orders = all_orders(ctx).await?;
        if orders.iter().all(|o| o.status != "confirmed") {
            quiescent = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for _ in 0..10 {
        let before = all_orders(ctx).await?;
        let lv = levels(ctx, skus).await?;
        let after = all_orders(ctx).await?;
        let key = |os: &[FinalOrder]| -> Vec<(String, String)> {
            os.iter()
                .map(|o| (o.id.clone(), o.status.clone()))
                .collect()
        };
        if key(&before) == key(&after) {
            return Ok((
                Final {
                    levels: lv,
                    orders: after,
                },
                quiescent,
            ));
        }
    }
    bail!("orders kept changing while reading the final state")
}

/// The shipping address every suite checkout uses.
pub fn address() -> Value {
    json!({"name": "Jepsen", "line1": "1 Test St", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

/// A sandbox payment body: a test token standing for a card.
pub fn card(token: &str) -> Value {
    json!({"token": token})
}

/// A short random pause between two operations of one client.
pub async fn think(rng: &mut StdRng) {
    use rand::Rng;
    tokio::time::sleep(Duration::from_millis(rng.gen_range(20..120))).await;
}
