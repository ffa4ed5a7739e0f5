//! The coupon workload: concurrent checkouts on every node redeeming coupons
//! that allow only [`LIMIT`] redemptions each, so many checkouts race for the
//! last redemption of a coupon while faults strike.
//!
//! Coupons come one after another (`COUPON-0`, `COUPON-1`, ...): every client
//! redeems the current one; the first client refused with
//! `coupon_not_applicable` (the limit is reached) moves everyone on to the
//! next and creates it, and a client that finds the next one missing
//! (`coupon_not_found`, its creation not applied yet) creates it too (the
//! write is absolute and keeps the redemption count, so creating twice is
//! harmless). Each checkout is by a fresh customer (ids start with
//! [`CUSTOMER_PREFIX`]) and is sent once, so one `redeem` op is one possible
//! redemption; a fifth of them pay with the declined card, whose order is
//! cancelled but keeps its redemption. The customer signs in and fills the
//! cart through another node; the redemption always goes to the client's own
//! node, faulty or not, so many meet a fault (`info`: it may apply late, or
//! never).
//!
//! Ops: `cart` (the one line), `redeem` (the checkout with the coupon, input
//! `{customer, coupon, key, sku, card}`, output `{order_id, coupon,
//! discount}`), `coupon` (a creation, input `{coupon}`). After the run,
//! [`final_counts`] reads each coupon's redemption count together with every
//! order, for `checker::coupon::check_coupons`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::bail;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::stock::complete;
use super::{address, all_orders, card, ensure, put_cart_line, think, Ctx};
use crate::auth::Actor;
use crate::checker::stock::{FinalOrder, DECLINED_CARD};
use crate::client::Outcome;

/// Redemptions each coupon allows.
pub const LIMIT: u64 = 3;
/// The SKU every coupon checkout buys (plenty of stock: the limit is the
/// scarce thing here).
pub const SKU: &str = "C0";
/// Customer ids of this workload start with this; `checker::coupon` owns
/// their orders (the stock checker's `js-` customers are others).
pub const CUSTOMER_PREFIX: &str = "jc-";

const APPROVED_CARD: &str = "tok_visa";

/// The code of the `i`-th coupon (codes are stored upper case).
pub fn code(i: usize) -> String {
    format!("COUPON-{i}")
}

/// The body that creates (or re-creates) a coupon: 10 % off, [`LIMIT`] uses.
fn coupon_body() -> Value {
    json!({"percent_bp": 1000, "usage_limit": LIMIT})
}

/// The index of the coupon clients redeem now, shared by every client.
pub type Current = Arc<AtomicUsize>;

/// Creates the first coupon (before the clock starts).
pub async fn setup(ctx: &Ctx) -> anyhow::Result<()> {
    ensure(
        ctx,
        Method::PUT,
        &format!("/api/v1/coupons/{}", code(0)),
        coupon_body(),
    )
    .await?;
    Ok(())
}

/// Creates coupon `i` once, on `slot`, recording it.
async fn create(ctx: &Ctx, name: &str, slot: usize, i: usize) {
    let code = code(i);
    let p = ctx
        .rec
        .invoke(name, "coupon", Some(slot), json!({"coupon": code}));
    let out = ctx
        .client
        .call(
            ctx.url(slot),
            Method::PUT,
            &format!("/api/v1/coupons/{code}"),
            Some(&coupon_body()),
            &Actor::admin(),
            None,
        )
        .await;
    complete(&ctx.rec, p, &out, json!({}));
}

pub async fn run(ctx: Ctx, process: usize, current: Current) {
    let name = format!("coupon-{process}");
    let mut rng = ctx.rng(&name);
    let slot = process % ctx.urls.len() + 1;
    let url = ctx.url(slot).to_string();
    let mut k = 0u64;
    while ctx.running() {
        k += 1;
        let customer = format!("{CUSTOMER_PREFIX}{process}-{k}");
        let actor = Actor::customer(&customer);
        // Signing in and the cart line (an absolute write) go through the
        // other nodes, from the next one on, so that the redemption, always
        // sent to this client's node, is the op that meets its faults.
        let n = ctx.urls.len();
        let mut carted = false;
        for hop in 1..=n {
            let at = (slot - 1 + hop) % n + 1;
            if put_cart_line(&ctx, &name, at, &actor, &customer, SKU).await {
                carted = true;
                break;
            }
            if !ctx.running() {
                break;
            }
        }
        if !carted {
            think(&mut rng).await;
            continue;
        }
        let i = current.load(Ordering::SeqCst);
        let code = code(i);
        let number = if rng.gen_bool(0.8) {
            APPROVED_CARD
        } else {
            DECLINED_CARD
        };
        let key = format!("{customer}-checkout");
        let p = ctx.rec.invoke(
            &name,
            "redeem",
            Some(slot),
            json!({"customer": customer, "coupon": code, "key": key, "sku": SKU, "card": number}),
        );
        let body = json!({"shipping_address": address(), "payment": card(number), "coupon": code});
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
            Outcome::Ok { body, .. } => json!({
                "order_id": body["id"],
                "coupon": body["coupon"],
                "discount": body["totals"]["discount"]["amount"],
            }),
            _ => Value::Null,
        };
        complete(&ctx.rec, p, &out, value);
        let refused = match &out {
            Outcome::Fail { code, .. } => code.as_str(),
            _ => "",
        };
        if refused == "coupon_not_applicable" {
            // Used up: the first to notice moves everyone on and creates the next.
            let first = current
                .compare_exchange(i, i + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if first {
                create(&ctx, &name, slot, i + 1).await;
            }
        } else if refused == "coupon_not_found" {
            // Its creation has not applied (or was lost to a fault): create it here.
            create(&ctx, &name, slot, i).await;
        }
        think(&mut rng).await;
    }
}

/// Each coupon's redemption count (`None` when no node answered), read
/// between two reads of every order that agree, so counts and orders
/// describe one moment. A coupon that does not exist has 0 redemptions.
pub async fn final_counts(
    ctx: &Ctx,
    coupons: usize,
) -> anyhow::Result<(BTreeMap<String, Option<u64>>, Vec<FinalOrder>)> {
    for _ in 0..10 {
        let before = all_orders(ctx).await?;
        let mut used = BTreeMap::new();
        for i in 0..coupons {
            let code = code(i);
            let n = read_used(ctx, &code).await;
            used.insert(code, n);
        }
        let after = all_orders(ctx).await?;
        let key = |os: &[FinalOrder]| -> Vec<(String, String)> {
            os.iter()
                .map(|o| (o.id.clone(), o.status.clone()))
                .collect()
        };
        if key(&before) == key(&after) {
            return Ok((used, after));
        }
    }
    bail!("orders kept changing while reading the coupons")
}

/// `used` of one coupon, asked of every node in turn for up to 60 s.
async fn read_used(ctx: &Ctx, code: &str) -> Option<u64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let path = format!("/api/v1/coupons/{code}");
    let mut attempt = 0;
    while std::time::Instant::now() < deadline {
        let url = ctx.url(attempt % ctx.urls.len() + 1);
        match ctx.client.get(url, &path, &Actor::admin()).await {
            Outcome::Ok { body, .. } => return body["used"].as_u64(),
            Outcome::Fail { status: 404, .. } => return Some(0),
            _ => {}
        }
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    None
}
