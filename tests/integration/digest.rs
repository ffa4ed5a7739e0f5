//! `GET /cluster/digest`: every replica that applied the same log prefix reports the same
//! digest of its state, also one that caught up by installing a snapshot, and the digest
//! moves when the state does. This is what the consistency suite (`jepsen/`) relies on to
//! check that replicas converge after faults heal. It hashes the whole state, so only
//! admins and the operator may ask, and one applied index is hashed once.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::client::Client;
use crate::harness::{eventually, sign_in, Cluster, STARTUP_TIMEOUT, TEST_OPERATOR_TOKEN};

/// A client of node `id` that presents the operator token.
fn operator(cluster: &Cluster, id: u64) -> Client {
    cluster
        .client(id)
        .with_header("x-operator-token", TEST_OPERATOR_TOKEN)
}

/// `(applied_index, digest)` of one node.
async fn digest(client: &Client) -> Result<(u64, String), String> {
    let reply = client
        .get("/cluster/digest")
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != reqwest::StatusCode::OK {
        return Err(reply.to_string());
    }
    let index = reply.body["applied_index"]
        .as_u64()
        .ok_or_else(|| format!("no applied_index in {}", reply.body))?;
    let digest = reply.body["digest"]
        .as_str()
        .filter(|d| d.len() == 64)
        .ok_or_else(|| format!("no 64-hex-digit digest in {}", reply.body))?
        .to_string();
    Ok((index, digest))
}

/// Waits until every node in `ids` reports the same applied index, and returns the digests.
async fn converged(cluster: &Cluster, ids: &[u64]) -> BTreeMap<u64, (u64, String)> {
    let clients: Vec<(u64, Client)> = ids.iter().map(|&id| (id, operator(cluster, id))).collect();
    eventually(
        "every node to reach the same applied index",
        STARTUP_TIMEOUT,
        || {
            let clients = clients.clone();
            async move {
                let mut seen = BTreeMap::new();
                for (id, client) in &clients {
                    seen.insert(*id, digest(client).await?);
                }
                let indexes: Vec<u64> = seen.values().map(|(i, _)| *i).collect();
                if indexes.windows(2).all(|w| w[0] == w[1]) {
                    Ok(seen)
                } else {
                    Err(format!("{seen:?}"))
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn replicas_at_the_same_index_have_the_same_digest_also_after_a_snapshot() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    let leader = cluster.leader().await;
    let lagging = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let writer = cluster.admin_client(leader);
    writer
        .put_warehouse("wh-digest", "Main")
        .await
        .expect("PUT warehouse")
        .ok("create warehouse");

    let before = converged(&cluster, &cluster.ids()).await;
    let first: Vec<&String> = before.values().map(|(_, d)| d).collect();
    assert!(
        first.windows(2).all(|w| w[0] == w[1]),
        "equal applied index, different digests: {before:?}"
    );

    // One follower misses enough writes that it must catch up from a snapshot.
    cluster.kill(lagging);
    for i in 0..50 {
        writer
            .set_stock(&format!("digest-{}", i % 5), "wh-digest", i)
            .await
            .expect("PUT stock")
            .ok("set stock");
    }
    cluster.restart(lagging).await;
    let after = converged(&cluster, &cluster.ids()).await;
    let digests: Vec<&String> = after.values().map(|(_, d)| d).collect();
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "equal applied index, different digests after a snapshot install: {after:?}"
    );
    assert_ne!(
        before[&leader].1, after[&leader].1,
        "the digest must change when the state changes"
    );
    let body: Value = writer
        .get("/api/v1/openapi.json")
        .await
        .expect("GET openapi")
        .ok("openapi");
    assert!(
        body["paths"]["/cluster/digest"].is_object(),
        "the digest route is documented in the OpenAPI document"
    );
}

/// How many digests node `client` has computed (`cluster_digest_computations_total`).
async fn computations(client: &Client) -> u64 {
    let reply = client.get("/metrics").await.expect("GET /metrics");
    let text = reply.body.as_str().expect("metrics are text").to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("cluster_digest_computations_total "))
        .map_or(0, |v| v.trim().parse::<f64>().expect("a number") as u64)
}

#[tokio::test]
async fn the_digest_is_for_admins_and_hashed_once_per_applied_index() {
    let cluster = Cluster::start(1).await;
    let anonymous = cluster.client(1);
    anonymous
        .get("/cluster/digest")
        .await
        .expect("GET digest")
        .expect_error(401, "unauthenticated", "digest without credentials");
    let (customer, _) = sign_in(&anonymous, "customer", "digest-customer").await;
    customer
        .get("/cluster/digest")
        .await
        .expect("GET digest")
        .expect_error(403, "forbidden", "digest as a customer");
    let admin = cluster.admin_client(1);
    let operator = operator(&cluster, 1);

    // Two calls at one applied index give one digest, hashed at most once (the first
    // call may itself be answered from the cache). Background work may apply an entry
    // between two calls; then try again.
    let mut checked = false;
    for _ in 0..20 {
        let before = computations(&anonymous).await;
        let (i1, d1) = digest(&admin).await.expect("digest as admin");
        let (i2, d2) = digest(&operator).await.expect("digest as operator");
        let after = computations(&anonymous).await;
        if i1 == i2 {
            assert_eq!(d1, d2, "one applied index ({i1}), two digests");
            assert!(
                after - before <= 1,
                "two calls at applied index {i1} hashed the state {} times",
                after - before
            );
            checked = true;
            break;
        }
    }
    assert!(checked, "the applied index never held still for two calls");

    // Calls at once share one computation: a write moves the index, then eight callers ask.
    let mut shared = false;
    for attempt in 0..5 {
        admin
            .put_warehouse(&format!("wh-digest-cache-{attempt}"), "Main")
            .await
            .expect("PUT warehouse")
            .ok("create warehouse");
        let before = computations(&anonymous).await;
        let replies = futures::future::join_all((0..8).map(|_| {
            let admin = admin.clone();
            async move { digest(&admin).await.expect("concurrent digest") }
        }))
        .await;
        let after = computations(&anonymous).await;
        if replies.windows(2).all(|w| w[0].0 == w[1].0) {
            assert!(
                replies.windows(2).all(|w| w[0].1 == w[1].1),
                "one applied index, different digests: {replies:?}"
            );
            assert_eq!(
                after - before,
                1,
                "eight calls at one new applied index must share one computation"
            );
            shared = true;
            break;
        }
    }
    assert!(shared, "the applied index never held still for eight calls");
}
