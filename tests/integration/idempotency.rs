//! `Idempotency-Key` on a 3-node cluster: a replay returns the stored response with
//! `Idempotent-Replayed: true` and does not apply twice (checked with relative adjustments, so
//! a double apply would show in the stock), a reused key with another body is refused with 422,
//! and replays work on any node, also after the leader was killed and replaced. Keys belong to
//! their caller: the same key from two users or two guest carts is two independent requests.

use reqwest::Method;
use serde_json::json;

use crate::client::{Client, Consistency, Reply};
use crate::harness::{retry_write, sign_in, test_account, Cluster, STARTUP_TIMEOUT};

const SKU: &str = "idem-1";
const WH: &str = "wh-i";

/// Panics unless `replay` is a replay of `original`: same status and body, replay header set.
#[track_caller]
fn assert_replay(replay: &Reply, original: &Reply, what: &str) {
    assert_eq!(
        (replay.status, &replay.body),
        (original.status, &original.body),
        "{what}: replay (left) differs from the original response (right)"
    );
    assert_eq!(
        replay.header("idempotent-replayed"),
        Some("true"),
        "{what}: a replay must carry Idempotent-Replayed: true; got {replay}"
    );
}

/// Reads the stock of [`SKU`] linearizably on every client and checks `on_hand`.
async fn assert_on_hand_everywhere(clients: &[Client], on_hand: i64, what: &str) {
    for client in clients {
        client
            .get_stock(SKU, Consistency::Linearizable)
            .await
            .expect("GET stock")
            .expect_stock(SKU, on_hand, &format!("{what} (read on {})", client.base()));
    }
}

#[tokio::test]
async fn idempotent_writes_apply_once_and_replay_on_any_node_across_failover() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let everyone: Vec<Client> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.admin_client(id))
        .collect();
    let on_leader = cluster.admin_client(leader);
    on_leader
        .put_warehouse(WH, "Main")
        .await
        .expect("PUT warehouse")
        .ok("create warehouse");
    on_leader
        .set_stock(SKU, WH, 10)
        .await
        .expect("PUT stock")
        .expect_stock(SKU, 10, "initial stock");

    let key = "adjust-idem-1-0001";
    let first = on_leader
        .adjust(SKU, WH, -3, "damaged", Some(key))
        .await
        .expect("POST adjustment");
    first.expect_stock(SKU, 7, "first adjustment with a key");
    assert_ne!(
        first.header("idempotent-replayed"),
        Some("true"),
        "the first request is not a replay: {first}"
    );

    let second = on_leader
        .adjust(SKU, WH, -3, "damaged", Some(key))
        .await
        .expect("POST adjustment");
    assert_replay(&second, &first, "same key, same body, same node");
    assert_on_hand_everywhere(&everyone, 7, "the replayed adjustment must not apply again").await;

    on_leader
        .adjust(SKU, WH, -4, "damaged", Some(key))
        .await
        .expect("POST adjustment")
        .expect_error(422, "idempotency_key_reused", "same key, different delta");
    on_leader
        .adjust(SKU, WH, -3, "stolen", Some(key))
        .await
        .expect("POST adjustment")
        .expect_error(422, "idempotency_key_reused", "same key, different reason");
    assert_on_hand_everywhere(&everyone, 7, "a refused key reuse must not apply").await;

    // A second key, first used on a follower, then replayed on the other follower.
    let key2 = "adjust-idem-1-0002";
    let first2 = cluster
        .admin_client(followers[0])
        .adjust(SKU, WH, 5, "found", Some(key2))
        .await
        .expect("POST adjustment");
    first2.expect_stock(SKU, 12, "adjustment with a key sent to a follower");
    let second2 = cluster
        .admin_client(followers[1])
        .adjust(SKU, WH, 5, "found", Some(key2))
        .await
        .expect("POST adjustment");
    assert_replay(&second2, &first2, "key2 replayed on the other follower");

    // The first key replays its stored response (on_hand 7) although the stock is now 12.
    let third = cluster
        .admin_client(followers[1])
        .adjust(SKU, WH, -3, "damaged", Some(key))
        .await
        .expect("POST adjustment");
    assert_replay(
        &third,
        &first,
        "first key replayed on a follower after later writes",
    );
    assert_on_hand_everywhere(&everyone, 12, "replays on followers must not apply").await;

    // Same key on an absolute write too.
    let put_key = "put-idem-1-0001";
    let put_first = on_leader
        .set_stock_with("idem-2", WH, json!({"on_hand": 4}), Some(put_key))
        .await
        .expect("PUT stock");
    put_first.expect_stock("idem-2", 4, "PUT with a key");
    let put_again = cluster
        .admin_client(followers[0])
        .set_stock_with("idem-2", WH, json!({"on_hand": 4}), Some(put_key))
        .await
        .expect("PUT stock");
    assert_replay(&put_again, &put_first, "PUT replayed on a follower");
    assert_eq!(
        put_again.version(),
        put_first.version(),
        "a replayed PUT must not create a new log entry"
    );

    // Kill the leader; the survivors elect a new one and still know every key.
    cluster.kill(leader);
    let survivors: Vec<Client> = followers
        .iter()
        .map(|id| cluster.admin_client(*id))
        .collect();
    let after = retry_write(
        "replay after killing the leader",
        STARTUP_TIMEOUT,
        |attempt| {
            let client = survivors[attempt as usize % survivors.len()].clone();
            async move { client.adjust(SKU, WH, -3, "damaged", Some(key)).await }
        },
    )
    .await;
    assert_replay(&after, &first, "first key replayed after leader failover");
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader, "the killed node cannot be the leader");
    let on_new = cluster.admin_client(new_leader);
    let after2 = on_new
        .adjust(SKU, WH, 5, "found", Some(key2))
        .await
        .expect("POST adjustment");
    assert_replay(&after2, &first2, "key2 replayed on the new leader");
    on_new
        .adjust(SKU, WH, 6, "found", Some(key2))
        .await
        .expect("POST adjustment")
        .expect_error(
            422,
            "idempotency_key_reused",
            "key2 with another delta after failover",
        );
    assert_on_hand_everywhere(&survivors, 12, "replays after failover must not apply").await;

    // A fresh key still applies exactly once under the new leader.
    let key3 = "adjust-idem-1-0003";
    let first3 = on_new
        .adjust(SKU, WH, -2, "damaged", Some(key3))
        .await
        .expect("POST adjustment");
    first3.expect_stock(SKU, 10, "fresh key under the new leader");
    let other = survivors
        .iter()
        .find(|c| c.base() != on_new.base())
        .expect("another survivor");
    let second3 = other
        .adjust(SKU, WH, -2, "damaged", Some(key3))
        .await
        .expect("POST adjustment");
    assert_replay(&second3, &first3, "key3 replayed on the other survivor");
    assert_on_hand_everywhere(&survivors, 10, "key3 applied once").await;
}

/// A follower that was down while a keyed write happened and the log behind
/// it was purged learns the idempotency record from the snapshot: once it
/// leads, a retry of that request is replayed, not applied again.
#[tokio::test]
async fn a_record_travels_in_the_snapshot_to_a_node_that_missed_the_write() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    let leader = cluster.leader().await;
    let behind = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.kill(behind);
    let client = cluster.admin_client(leader);
    client
        .put_warehouse(WH, "Idempotency")
        .await
        .expect("PUT")
        .ok("warehouse");
    let original = client
        .adjust(SKU, WH, 7, "keyed", Some("snap-key"))
        .await
        .expect("POST");
    original.expect_stock(SKU, 7, "keyed adjustment");
    let keyed_index = original.version();
    for i in 0..60 {
        client
            .set_stock(&format!("filler-{i}"), WH, i)
            .await
            .expect("PUT")
            .ok("filler write");
    }
    crate::harness::eventually(
        "the leader to purge its log past the keyed write",
        STARTUP_TIMEOUT,
        || {
            let c = client.clone();
            async move {
                let body = c.cluster().await.map_err(|e| e.to_string())?.body;
                match body["purged_index"].as_u64() {
                    Some(p) if p >= keyed_index => Ok(()),
                    _ => Err(body.to_string()),
                }
            }
        },
    )
    .await;

    cluster.restart(behind).await;
    let (_, applied) = cluster.leader_applied().await;
    cluster.wait_applied(behind, applied).await;
    let view = cluster.view(behind).await;
    assert!(
        view.raw["snapshot_index"]
            .as_u64()
            .is_some_and(|s| s >= keyed_index),
        "node {behind} should have caught up by snapshot: {}",
        view.raw
    );

    // Make the node that only saw the snapshot the leader, then retry there.
    let mut led = false;
    for _ in 0..5 {
        let reply = client
            .post("/cluster/transfer-leader", &json!({ "node_id": behind }))
            .await
            .expect("POST");
        if reply.status == 200 {
            led = true;
            break;
        }
    }
    assert!(led, "could not make node {behind} the leader");
    let retry = retry_write("the keyed retry on the new leader", STARTUP_TIMEOUT, |_| {
        let c = cluster.admin_client(behind);
        async move { c.adjust(SKU, WH, 7, "keyed", Some("snap-key")).await }
    })
    .await;
    assert_replay(
        &retry,
        &original,
        "retry on a node that learned the key from a snapshot",
    );
    assert_on_hand_everywhere(&[cluster.admin_client(behind)], 7, "after the replay").await;
}

/// `PATCH /api/v1/users/me` with `body` and `Idempotency-Key: key`.
async fn patch_me(client: &Client, body: &serde_json::Value, key: &str) -> Reply {
    client
        .send(Method::PATCH, "/api/v1/users/me", Some(body), Some(key))
        .await
        .expect("PATCH /api/v1/users/me")
}

/// `POST /api/v1/cart/lines` with `body` and `Idempotency-Key: key`.
async fn add_line(client: &Client, body: &serde_json::Value, key: &str) -> Reply {
    client
        .send(Method::POST, "/api/v1/cart/lines", Some(body), Some(key))
        .await
        .expect("POST /api/v1/cart/lines")
}

/// Panics unless `reply` is a first answer (200, not marked as a replay).
#[track_caller]
fn assert_fresh(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 200, "{what}: {reply}");
    assert_eq!(
        reply.header("idempotent-replayed"),
        None,
        "{what}: must not be a replay: {reply}"
    );
}

/// The same `Idempotency-Key` (with the same body) from two callers is two requests: each is
/// applied and answered with the caller's own data, each replays only to its own caller, and
/// nobody can squat another caller's key. Users, guest carts (by token) alike.
#[tokio::test]
async fn one_key_used_by_two_callers_gives_two_independent_outcomes() {
    let cluster = Cluster::start(1).await;
    let node = cluster.client(1);
    let admin = cluster.admin_client(1);
    crate::shop::warehouse(&admin, "w1", 48.0, 0).await;
    crate::shop::stock(&admin, "A", "w1", 100).await;
    crate::shop::listing(&admin, "A", 1250).await;
    let (ann, ann_id) = sign_in(&node, "customer", "ann").await;
    let (bob, bob_id) = sign_in(&node, "customer", "bob").await;
    let (eve, _) = sign_in(&node, "customer", "eve").await;

    // A profile: both send the same key and body; each gets their own account back.
    let key = "profile-0001";
    let profile = json!({
        "name": "Same Name",
        "shipping_address": {"line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}
    });
    let ann_first = patch_me(&ann, &profile, key).await;
    assert_fresh(&ann_first, "ann's profile update");
    assert_eq!(ann_first.body["id"], ann_id.as_str());
    let bob_first = patch_me(&bob, &profile, key).await;
    assert_fresh(&bob_first, "bob's profile update with ann's key and body");
    assert_eq!(
        (&bob_first.body["id"], &bob_first.body["email"]),
        (&json!(bob_id), &json!(test_account("customer", "bob").0)),
        "bob must get his own account, not ann's: {bob_first}"
    );
    let bob_now = bob.get("/api/v1/users/me").await.expect("GET").ok("bob");
    assert_eq!(
        (&bob_now["name"], &bob_now["shipping_address"]["city"]),
        (&json!("Same Name"), &json!("Paris")),
        "bob's own write must have been applied"
    );
    // Retries replay to their own caller only.
    assert_replay(
        &patch_me(&ann, &profile, key).await,
        &ann_first,
        "ann's retry",
    );
    assert_replay(
        &patch_me(&bob, &profile, key).await,
        &bob_first,
        "bob's retry",
    );
    // Another body under one's own key is still refused...
    patch_me(&ann, &json!({"name": "Other"}), key)
        .await
        .expect_error(422, "idempotency_key_reused", "ann reuses her key");
    // ...but a key somebody else used is not taken from anyone.
    let eve_first = patch_me(&eve, &json!({"name": "Eve"}), key).await;
    assert_fresh(&eve_first, "eve, with a key ann and bob used");
    assert_eq!(eve_first.body["name"], "Eve");

    // A cart line: the same key and body add to each caller's own cart.
    let key = "cart-0001";
    let line = json!({"sku": "A", "quantity": 2});
    let ann_cart = add_line(&ann, &line, key).await;
    assert_fresh(&ann_cart, "ann adds A");
    let bob_cart = add_line(&bob, &line, key).await;
    assert_fresh(&bob_cart, "bob adds A with ann's key and body");
    assert_replay(
        &add_line(&ann, &line, key).await,
        &ann_cart,
        "ann's cart retry",
    );
    assert_replay(
        &add_line(&bob, &line, key).await,
        &bob_cart,
        "bob's cart retry",
    );
    for (who, client) in [("ann", &ann), ("bob", &bob)] {
        let cart = client.get("/api/v1/cart").await.expect("GET").ok(who);
        assert_eq!(cart["item_count"], 2, "{who}'s cart, added once: {cart}");
    }

    // Two guests, each with their own cart token: independent too.
    let mut guests = Vec::new();
    for _ in 0..2 {
        let token = node
            .post("/api/v1/cart/token", &json!({}))
            .await
            .expect("POST /api/v1/cart/token")
            .ok("cart token")["cart_token"]
            .as_str()
            .expect("cart_token")
            .to_string();
        guests.push(node.clone().with_header("x-cart-token", &token));
    }
    let line = json!({"sku": "A", "quantity": 3});
    let firsts = [
        add_line(&guests[0], &line, key).await,
        add_line(&guests[1], &line, key).await,
    ];
    for (guest, first) in guests.iter().zip(&firsts) {
        assert_fresh(first, "a guest adds A with a key another caller used");
        assert_replay(&add_line(guest, &line, key).await, first, "guest retry");
        let cart = guest
            .get("/api/v1/cart")
            .await
            .expect("GET")
            .ok("guest cart");
        assert_eq!(cart["item_count"], 3, "guest cart, added once: {cart}");
    }
}

/// Routes that cannot honour an `Idempotency-Key` refuse it rather than ignore it.
#[tokio::test]
async fn routes_that_cannot_honour_a_key_refuse_it() {
    let cluster = Cluster::start(1).await;
    let node = cluster.client(1);
    let (email, password) = test_account("customer", "kim");
    let login = json!({"email": email, "password": password});
    node.send(Method::POST, "/auth/login", Some(&login), Some("login-1"))
        .await
        .expect("POST /auth/login")
        .expect_error(400, "invalid_header", "login with a key");
    let register = json!({"email": email, "password": password, "name": "Kim"});
    node.send(
        Method::POST,
        "/auth/register",
        Some(&register),
        Some("reg-1"),
    )
    .await
    .expect("POST /auth/register")
    .expect_error(400, "invalid_header", "register with a key");
    // Nothing was done: the account does not exist yet.
    node.send(Method::POST, "/auth/login", Some(&login), None)
        .await
        .expect("POST /auth/login")
        .expect_error(401, "invalid_credentials", "no account was registered");
    // Membership changes are not commands with a stored outcome.
    let operator = cluster.admin_client(1);
    let learner = json!({"node_id": 9, "http_addr": "127.0.0.1:1", "peer_addr": "127.0.0.1:2"});
    let node_1 = json!({"node_id": 1});
    for (path, body) in [
        ("/cluster/learners", &learner),
        ("/cluster/promote", &node_1),
        ("/cluster/remove", &node_1),
        ("/cluster/transfer-leader", &node_1),
    ] {
        operator
            .send(Method::POST, path, Some(body), Some("membership-1"))
            .await
            .expect(path)
            .expect_error(400, "invalid_header", path);
    }
}
