//! The races that oversell stock elsewhere, on real processes: many customers on different
//! nodes buying the last units at once; a checkout retried with the same `Idempotency-Key` while
//! the leader is killed; a hold that expires while the leader changes.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{retry_write, sign_in, Cluster, STARTUP_TIMEOUT};
use crate::shop::{
    add_to_cart, checkout, checkout_body, level, listing, order_id, stock, wait_for_status,
    warehouse, CARD_OK, CARD_SLOW,
};

/// Units each racing SKU has, per warehouse.
const RACE_STOCK: &[(&str, &str, i64)] = &[("R1", "w1", 5), ("R2", "w1", 2), ("R2", "w2", 1)];
const CUSTOMERS: usize = 24;

#[tokio::test]
async fn racing_checkouts_on_every_node_never_oversell() {
    let mut cluster = Cluster::start(3).await;
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    warehouse(&admin, "w1", 48.0, 0).await;
    warehouse(&admin, "w2", 45.0, 1).await;
    for (sku, wh, units) in RACE_STOCK {
        stock(&admin, sku, wh, *units).await;
    }
    listing(&admin, "R1", 100).await;
    listing(&admin, "R2", 100).await;

    // 24 customers spread over the 3 nodes, each wanting 1 or 2 units of R1 or R2 (or both).
    let ids = cluster.ids();
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let node = ids[i % ids.len()];
        let (client, user) = sign_in(&cluster.client(node), "customer", &format!("racer{i}")).await;
        let mut wants = BTreeMap::new();
        match i % 3 {
            0 => {
                wants.insert("R1", 1 + (i % 2) as i64);
            }
            1 => {
                wants.insert("R2", 1);
            }
            _ => {
                wants.insert("R1", 1);
                wants.insert("R2", 1);
            }
        }
        for (sku, q) in &wants {
            add_to_cart(&client, sku, *q).await.ok("fill cart");
        }
        customers.push((client, user, wants));
    }

    let tasks: Vec<_> = customers
        .iter()
        .enumerate()
        .map(|(i, (client, _, _))| {
            let client = client.clone();
            tokio::spawn(async move {
                let key = format!("race-checkout-{i}");
                retry_write(format!("checkout {i}"), STARTUP_TIMEOUT, |_| {
                    let (client, key) = (client.clone(), key.clone());
                    async move { checkout(&client, &checkout_body(CARD_OK), Some(&key)).await }
                })
                .await
            })
        })
        .collect();
    let mut sold: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut won, mut lost) = (0, 0);
    for (task, (client, user, wants)) in tasks.into_iter().zip(&customers) {
        let reply = task.await.expect("checkout task");
        let orders = client
            .get("/api/v1/orders")
            .await
            .unwrap()
            .ok("list orders");
        let orders = orders["items"].as_array().unwrap();
        match reply.status {
            StatusCode::CREATED => {
                won += 1;
                assert_eq!(
                    orders.len(),
                    1,
                    "{user}: an acknowledged checkout has one order"
                );
                let order = &orders[0];
                assert_eq!(order["id"], reply.body["id"]);
                for (sku, q) in wants {
                    let allocated: u64 = order["allocations"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|a| a["sku"] == *sku)
                        .map(|a| a["quantity"].as_u64().unwrap())
                        .sum();
                    assert_eq!(allocated, *q as u64, "{user}: {sku} has its units");
                    *sold.entry(sku).or_default() += allocated;
                }
            }
            StatusCode::CONFLICT => {
                lost += 1;
                reply.expect_error(409, "insufficient_stock", "lost race");
                assert_eq!(
                    orders.len(),
                    0,
                    "{user}: a refused checkout leaves no order"
                );
            }
            _ => panic!("{user}: unexpected checkout answer {reply}"),
        }
    }
    assert!(
        won > 0 && lost > 0,
        "the race had winners ({won}) and losers ({lost})"
    );

    // An admin pages through every order, newest first, 5 at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..CUSTOMERS {
        let query = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let page = admin
            .get(&format!("/api/v1/orders?limit=5{query}"))
            .await
            .unwrap()
            .ok("page of orders");
        for o in page["items"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), won, "every order once: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    // Every node agrees: reserved = units sold, never more than the stock.
    for id in cluster.running_ids() {
        let client = cluster.client(id);
        for sku in ["R1", "R2"] {
            let body = client
                .get(&format!("/api/v1/inventory/{sku}"))
                .await
                .unwrap()
                .ok("read stock");
            let total: i64 = RACE_STOCK
                .iter()
                .filter(|(s, ..)| *s == sku)
                .map(|(.., u)| u)
                .sum();
            assert_eq!(body["on_hand"], total, "{sku} on node {id}: {body}");
            assert_eq!(
                body["reserved"].as_u64().unwrap(),
                sold.get(sku).copied().unwrap_or(0),
                "{sku} on node {id}: reserved equals what acknowledged orders hold: {body}"
            );
            assert!(
                body["reserved"].as_i64().unwrap() <= total,
                "{sku} oversold: {body}"
            );
        }
    }
}

fn count_events(events: &[Value], kind: &str, pred: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == kind && pred(&e["data"]))
        .count()
}

#[tokio::test]
async fn checkout_retried_across_a_leader_kill_places_one_order() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let (admin, _) = sign_in(&cluster.client(follower), "admin", "root").await;
    warehouse(&admin, "w1", 48.0, 0).await;
    stock(&admin, "K", "w1", 10).await;
    listing(&admin, "K", 700).await;
    let (on_leader, _) = sign_in(&cluster.client(leader), "customer", "kim").await;
    let (on_follower, _) = sign_in(&cluster.client(follower), "customer", "kim").await;
    add_to_cart(&on_leader, "K", 2).await.ok("fill cart");

    // Send the checkout to the leader and kill it while the request is in flight.
    let key = "kim-checkout-1";
    let body = checkout_body(CARD_OK);
    let first = {
        let (client, body) = (on_leader.clone(), body.clone());
        tokio::spawn(async move { checkout(&client, &body, Some(key)).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    cluster.kill(leader);
    let first = first.await.expect("first attempt");

    // The client does not know the outcome; it retries with the same key on another node.
    let reply = retry_write("retried checkout", STARTUP_TIMEOUT, |_| {
        let (client, body) = (on_follower.clone(), body.clone());
        async move { checkout(&client, &body, Some(key)).await }
    })
    .await;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "{reply} (first attempt: {first:?})"
    );
    if let Ok(first) = &first {
        if first.status.as_u16() == 201 {
            assert_eq!(
                first.body["id"], reply.body["id"],
                "the retry replays the first order"
            );
        }
    }
    let orders = on_follower
        .get("/api/v1/orders")
        .await
        .unwrap()
        .ok("orders");
    assert_eq!(
        orders["items"].as_array().unwrap().len(),
        1,
        "exactly one order: {orders}"
    );
    assert_eq!(
        level(&admin, "K", "w1").await,
        (10, 2),
        "exactly one reservation"
    );
    let events = admin.all_events().await.unwrap();
    assert_eq!(count_events(&events, "OrderPlaced", |_| true), 1);

    // Once the old leader is back, it agrees.
    cluster.restart(leader).await;
    let (back, _) = sign_in(&cluster.client(leader), "admin", "root").await;
    assert_eq!(level(&back, "K", "w1").await, (10, 2));
}

#[tokio::test]
async fn an_expired_hold_returns_its_units_once_across_a_leader_change() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let survivor = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let (admin, _) = sign_in(&cluster.client(survivor), "admin", "root").await;
    warehouse(&admin, "w1", 48.0, 0).await;
    stock(&admin, "H", "w1", 4).await;
    listing(&admin, "H", 300).await;
    let (cus, _) = sign_in(&cluster.client(survivor), "customer", "hal").await;
    add_to_cart(&cus, "H", 3).await.ok("fill cart");

    // The slow card keeps the payment pending far longer than the 2 s hold.
    let mut body = checkout_body(CARD_SLOW);
    body["hold_ttl_secs"] = json!(2);
    let placed = checkout(&cus, &body, Some("hal-1")).await.unwrap();
    assert_eq!(placed.status.as_u16(), 201, "{placed}");
    let id = order_id(&placed);
    assert_eq!(level(&admin, "H", "w1").await, (4, 3));
    cluster.kill(leader);

    let order = wait_for_status(&cus, &id, "cancelled", STARTUP_TIMEOUT).await;
    assert_eq!(order["hold"]["state"], "released");
    assert_eq!(
        order["timeline"].as_array().unwrap().last().unwrap()["reason"],
        "reservation expired"
    );
    assert_eq!(level(&admin, "H", "w1").await, (4, 0));
    // Let any straggling expiry run, then count: one reservation, one release.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = admin.all_events().await.unwrap();
    let h = |d: &Value, delta: i64| d["level"]["sku"] == "H" && d["reserved_delta"] == delta;
    assert_eq!(count_events(&events, "StockChanged", |d| h(d, 3)), 1);
    assert_eq!(
        count_events(&events, "StockChanged", |d| h(d, -3)),
        1,
        "released exactly once"
    );
    assert_eq!(level(&admin, "H", "w1").await, (4, 0));

    cluster.restart(leader).await;
    let (back, _) = sign_in(&cluster.client(leader), "admin", "root").await;
    assert_eq!(
        level(&back, "H", "w1").await,
        (4, 0),
        "the old leader agrees"
    );
}
