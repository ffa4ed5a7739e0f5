//! Pricing over HTTP: promotions shape cart and order prices with an explanation, and a coupon's
//! usage limit holds when customers on every node of a 3-node cluster redeem it at once.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{retry_write, sign_in, Cluster, STARTUP_TIMEOUT};
use crate::shop::{add_to_cart, checkout, checkout_body, listing, stock, warehouse, CARD_OK};

#[tokio::test]
async fn promotions_and_a_coupon_limit_under_concurrency() {
    let cluster = Cluster::start(3).await;
    let (admin, _) = sign_in(&cluster.client(1), "admin", "root").await;
    warehouse(&admin, "w1", 48.0, 0).await;
    stock(&admin, "P", "w1", 1000).await;
    listing(&admin, "P", 1000).await;
    admin
        .put(
            "/api/v1/promotions/sale",
            &json!({"name": "Winter sale", "sale_price": {"amount": 900, "currency": "EUR"}, "sku": "P"}),
        )
        .await
        .unwrap()
        .ok("sale promotion");
    admin
        .put(
            "/api/v1/promotions/ten",
            &json!({"name": "Ten percent", "percent_bp": 1000, "all": true, "stackable": true}),
        )
        .await
        .unwrap()
        .ok("stackable promotion");
    admin
        .put(
            "/api/v1/promotions/bad",
            &json!({"name": "Bad", "percent_bp": 20000, "all": true}),
        )
        .await
        .unwrap()
        .expect_error(422, "validation_failed", "over 100 %");
    let (cus, _) = sign_in(&cluster.client(2), "customer", "zed").await;
    cus.put(
        "/api/v1/promotions/mine",
        &json!({"name": "Mine", "percent_bp": 9000, "all": true}),
    )
    .await
    .unwrap()
    .expect_error(403, "forbidden", "customers make no promotions");

    // 2 × P: sale 900 each = 1800, then 10 % = 1620.
    let cart = add_to_cart(&cus, "P", 2).await.ok("cart");
    let line = &cart["lines"][0];
    assert_eq!(line["list_price"]["amount"], 1000);
    assert_eq!(line["unit_price"]["amount"], 900);
    assert_eq!(line["line_total"]["amount"], 1620, "{cart}");
    let rules: Vec<&str> = line["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["list_price", "sale_price", "percent"]);

    // A coupon for 5 redemptions, 100 off, raced by 12 customers on 3 nodes.
    admin
        .put(
            "/api/v1/coupons/five-only",
            &json!({"amount_off": {"amount": 100, "currency": "EUR"}, "usage_limit": 5, "per_customer_limit": 1}),
        )
        .await
        .unwrap()
        .ok("coupon");
    let mut racers = Vec::new();
    for i in 0..12 {
        let node = 1 + (i % 3) as u64;
        let (client, _) = sign_in(&cluster.client(node), "customer", &format!("c{i}")).await;
        add_to_cart(&client, "P", 1).await.ok("cart");
        racers.push(client);
    }
    let tasks: Vec<_> = racers
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut body = checkout_body(CARD_OK);
                body["coupon"] = json!("FIVE-ONLY");
                let key = format!("coupon-race-{i}");
                retry_write("checkout with coupon", STARTUP_TIMEOUT, |_| {
                    let (client, body, key) = (client.clone(), body.clone(), key.clone());
                    async move { checkout(&client, &body, Some(&key)).await }
                })
                .await
            })
        })
        .collect();
    let mut redeemed = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => {
                redeemed += 1;
                let order = &reply.body;
                assert_eq!(order["coupon"], "FIVE-ONLY");
                // 900 − 10 % = 810, minus the coupon's 100.
                assert_eq!(order["totals"]["subtotal"]["amount"], 810);
                assert_eq!(order["totals"]["discount"]["amount"], 100);
                assert_eq!(order["totals"]["total"]["amount"], 710);
                assert_eq!(order["payment"]["amount"]["amount"], 710);
            }
            StatusCode::CONFLICT => {
                reply.expect_error(409, "coupon_not_applicable", "over the limit")
            }
            _ => panic!("unexpected {reply}"),
        }
    }
    assert_eq!(redeemed, 5, "exactly the usage limit");
    let coupon = admin
        .get("/api/v1/coupons/five-only")
        .await
        .unwrap()
        .ok("coupon after the race");
    assert_eq!(coupon["used"], 5);
    // The per-customer limit: a winner cannot use it again even after the limit is raised.
    admin
        .put(
            "/api/v1/coupons/FIVE-ONLY",
            &json!({"amount_off": {"amount": 100, "currency": "EUR"}, "usage_limit": 100, "per_customer_limit": 1}),
        )
        .await
        .unwrap()
        .ok("raise limit");
    let unknown = {
        let mut body = checkout_body(CARD_OK);
        body["coupon"] = json!("NOPE-123");
        checkout(&racers[0], &body, None).await.unwrap()
    };
    assert!(
        unknown.code() == "coupon_not_found" || unknown.code() == "cart_empty",
        "{unknown}"
    );
}
