//! Losing the quorum: a node that can no longer commit must still answer, with 503
//! `no_leader` (and `Retry-After`) or 504 `timeout`, within about its request deadline
//! (10 s by default), never hang; local (`stale`) reads keep working; and writes resume once
//! a quorum is back. One test for a surviving leader, one for a surviving follower.

use std::time::{Duration, Instant};

use crate::client::{Client, Consistency, Reply};
use crate::harness::{retry_write, Cluster, STARTUP_TIMEOUT};

/// Longer than the node's 10 s default request deadline, so a timeout here means the node
/// itself never answered.
const PATIENCE: Duration = Duration::from_secs(25);

/// Panics unless `reply` is a definite "cannot do that now": 503 `no_leader` with
/// `Retry-After`, or 504 `timeout`.
#[track_caller]
fn assert_unavailable(reply: &Reply, what: &str) {
    match reply.status.as_u16() {
        503 => {
            reply.expect_error(503, "no_leader", what);
            assert!(
                reply.header("retry-after").is_some(),
                "{what}: 503 without Retry-After: {reply}"
            );
        }
        504 => reply.expect_error(504, "timeout", what),
        _ => panic!("{what}: expected 503 no_leader or 504 timeout, got {reply}"),
    }
}

/// Seeds `sku` = 5 in warehouse `wh-q` through `client`.
async fn seed(client: &Client, sku: &str) {
    client
        .put_warehouse("wh-q", "Main")
        .await
        .expect("PUT warehouse")
        .ok("create warehouse");
    client
        .set_stock(sku, "wh-q", 5)
        .await
        .expect("PUT stock")
        .expect_stock(sku, 5, "seed stock");
}

/// Runs the no-quorum checks against the one surviving node `survivor`, then restarts
/// `revive` and checks writes resume.
async fn check_survivor(cluster: &mut Cluster, survivor: u64, revive: u64, sku: &str) {
    let patient = Client::with_timeout(cluster.node(survivor).url(), PATIENCE)
        .with_bearer(cluster.admin_token());
    let what = format!("write on node {survivor}, the only node left");
    let started = Instant::now();
    let reply = patient
        .set_stock(sku, "wh-q", 6)
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer within {PATIENCE:?}: {e:#}"));
    assert_unavailable(&reply, &format!("{what} (after {:?})", started.elapsed()));

    let what = format!("linearizable read on node {survivor} without a quorum");
    let reply = patient
        .get_stock(sku, Consistency::Linearizable)
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer within {PATIENCE:?}: {e:#}"));
    assert_unavailable(&reply, &what);

    patient
        .get_stock(sku, Consistency::Stale)
        .await
        .expect("GET stock")
        .expect_stock(
            sku,
            5,
            &format!("stale read on node {survivor} without a quorum"),
        );

    cluster.restart(revive).await;
    let reply = retry_write("write once a quorum is back", STARTUP_TIMEOUT, |_| {
        let client = patient.clone();
        async move { client.set_stock(sku, "wh-q", 7).await }
    })
    .await;
    reply.expect_stock(sku, 7, "write once a quorum is back");
    cluster.leader().await;
    cluster
        .admin_client(revive)
        .get_stock(sku, Consistency::Linearizable)
        .await
        .expect("GET stock")
        .expect_stock(sku, 7, &format!("read on revived node {revive}"));
}

#[tokio::test]
async fn leader_without_a_quorum_answers_503_or_504_and_recovers() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    seed(&cluster.admin_client(leader), "quorum-l").await;
    let followers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    for &id in &followers {
        cluster.kill(id);
    }
    check_survivor(&mut cluster, leader, followers[0], "quorum-l").await;
}

#[tokio::test]
async fn follower_without_a_quorum_answers_503_or_504_and_recovers() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    seed(&cluster.admin_client(leader), "quorum-f").await;
    let ids = cluster.ids();
    let survivor = *ids.iter().find(|id| **id != leader).expect("a follower");
    // The survivor must have applied the seed before its peers die, for the stale read.
    let (_, applied) = cluster.leader_applied().await;
    cluster.wait_applied(survivor, applied).await;
    cluster.kill(leader);
    let other = *ids
        .iter()
        .find(|id| **id != leader && **id != survivor)
        .expect("a second follower");
    cluster.kill(other);
    check_survivor(&mut cluster, survivor, leader, "quorum-f").await;
}
