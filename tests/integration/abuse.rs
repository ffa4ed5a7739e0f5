//! Abuse limits as clients meet them: clients are counted by network (an
//! IPv4 address, an IPv6 /64), named by `X-Forwarded-For` only when the TCP
//! peer is a trusted proxy; a password guesser cannot lock the owner out;
//! guests start carts and write to them within a quota.

use serde_json::json;

use crate::client::{Client, Reply};
use crate::harness::{config_file, Cluster};
use crate::shop::{listing, stock, warehouse};

const PASSWORD: &str = "a long enough password";
const WRONG: &str = "not the password!!";

async fn login_from(client: &Client, from: &str, email: &str, password: &str) -> Reply {
    client
        .clone()
        .with_header("x-forwarded-for", from)
        .post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
        .expect("POST /auth/login")
}

#[tokio::test]
async fn a_guesser_is_slowed_per_network_and_the_owner_still_signs_in() {
    // The tests reach the node from 127.0.0.1: here that is a trusted proxy,
    // so `X-Forwarded-For` names the client.
    let (_dir, config) = config_file(
        "[auth]\nattempts_per_account_per_minute = 3\nattempts_per_ip_per_minute = 100\n\
         [http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);
    let registered = client
        .post(
            "/auth/register",
            &json!({"email": "owner@example.test", "password": PASSWORD, "name": "Owner"}),
        )
        .await
        .unwrap();
    assert_eq!(registered.status, 201, "{registered}");

    // Three wrong guesses from one /64, then every address in it waits.
    for i in 1..=3 {
        login_from(
            &client,
            &format!("2001:db8:bad:1::{i}"),
            "owner@example.test",
            WRONG,
        )
        .await
        .expect_error(401, "invalid_credentials", "a guess");
    }
    let limited = login_from(&client, "2001:db8:bad:1::99", "owner@example.test", WRONG).await;
    limited.expect_error(429, "rate_limited", "a fourth guess from the same /64");
    assert!(limited.header("retry-after").is_some(), "{limited}");

    // The owner, from home, is not locked out; nor is the account from
    // another network.
    let owner = login_from(&client, "198.51.100.7", "owner@example.test", PASSWORD).await;
    owner.ok("the owner signs in while the guesser waits");
    login_from(&client, "2001:db8:bad:2::1", "owner@example.test", WRONG)
        .await
        .expect_error(401, "invalid_credentials", "another /64 has its own quota");
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // No trusted proxy (the default): 127.0.0.1 is the client, whatever
    // address it writes in `X-Forwarded-For`.
    let (_dir, config) = config_file("[auth]\nattempts_per_account_per_minute = 3\n");
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);
    for i in 1..=3 {
        login_from(
            &client,
            &format!("203.0.113.{i}"),
            "victim@example.test",
            WRONG,
        )
        .await
        .expect_error(401, "invalid_credentials", "a guess");
    }
    login_from(&client, "203.0.113.200", "victim@example.test", WRONG)
        .await
        .expect_error(429, "rate_limited", "a spoofed address buys no new quota");
    let forwarded = client
        .clone()
        .with_header("forwarded", "for=198.51.100.9")
        .post(
            "/auth/login",
            &json!({"email": "victim@example.test", "password": WRONG}),
        )
        .await
        .unwrap();
    forwarded.expect_error(429, "rate_limited", "nor does a spoofed Forwarded");
}

#[tokio::test]
async fn guests_start_carts_and_write_to_them_within_a_quota() {
    let (_dir, config) = config_file(
        "[commerce]\nguest_carts_per_network_per_minute = 2\n\
         guest_writes_per_network_per_minute = 4\n\
         [http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let admin = cluster.admin_client(1);
    warehouse(&admin, "wh-1", 48.0, 1).await;
    listing(&admin, "sku-1", 500).await;
    stock(&admin, "sku-1", "wh-1", 100).await;
    let guest = |from: &str| cluster.client(1).with_header("x-forwarded-for", from);

    // New carts: a token, or a first line without one; two per network.
    let a = guest("203.0.113.10");
    a.post("/api/v1/cart/token", &json!({}))
        .await
        .unwrap()
        .ok("a first cart token");
    let first_line = a
        .post(
            "/api/v1/cart/lines",
            &json!({"sku": "sku-1", "quantity": 1}),
        )
        .await
        .unwrap();
    let token = first_line.header("x-cart-token").map(str::to_string);
    first_line.ok("a first line starts a second cart");
    let third = a.post("/api/v1/cart/token", &json!({})).await.unwrap();
    third.expect_error(429, "rate_limited", "a third cart from one network");
    assert!(third.header("retry-after").is_some(), "{third}");
    guest("203.0.113.11")
        .post("/api/v1/cart/token", &json!({}))
        .await
        .unwrap()
        .ok("another network starts its own");

    // Writes to a guest cart: four per network (the first line was one).
    let token = token.expect("the first line hands out the cart's token");
    let cart = a.with_header("x-cart-token", &token);
    for quantity in 2..=4 {
        cart.put("/api/v1/cart/lines/sku-1", &json!({ "quantity": quantity }))
            .await
            .unwrap()
            .ok("a guest write within the quota");
    }
    cart.put("/api/v1/cart/lines/sku-1", &json!({"quantity": 5}))
        .await
        .unwrap()
        .expect_error(429, "rate_limited", "a fifth guest write from one network");

    // A signed-in customer of that network is not a guest.
    let (customer, _) = crate::harness::sign_in(&cluster.client(1), "customer", "shopper").await;
    let customer = customer.with_header("x-forwarded-for", "203.0.113.10");
    crate::shop::add_to_cart(&customer, "sku-1", 1)
        .await
        .ok("a customer's cart is not a guest's");
}
