//! `GET /cluster/digest`: every replica that applied the same log prefix reports the same
//! digest of its state, also one that caught up by installing a snapshot, and the digest
//! moves when the state does. This is what the consistency suite (`jepsen/`) relies on to
//! check that replicas converge after faults heal.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::client::Client;
use crate::harness::{eventually, Cluster, STARTUP_TIMEOUT};

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
    let clients: Vec<(u64, Client)> = ids.iter().map(|&id| (id, cluster.client(id))).collect();
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
