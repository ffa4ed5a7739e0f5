//! Replication tests of a real 3-node (and briefly 4-node) cluster: linearizable reads on
//! every node, leader crash and re-election, catch-up from the log and from a snapshot,
//! durability across a crash of every node, and membership changes (learner join, promote,
//! remove, refusal of a removed id). Only the public REST API and process signals are used.

use reqwest::StatusCode;
use serde_json::json;

use crate::client::{Client, Consistency};
use crate::harness::{eventually, retry_write, Cluster, STARTUP_TIMEOUT};

/// Creates warehouse `id` through `client`, panicking unless 200.
async fn seed_warehouse(client: &Client, id: &str) {
    client
        .put_warehouse(id, "Main")
        .await
        .expect("PUT warehouse")
        .ok(&format!("create warehouse {id} on {}", client.base()));
}

/// The first node id in `ids` that is not `leader`.
fn follower_of(ids: &[u64], leader: u64) -> u64 {
    *ids.iter()
        .find(|id| **id != leader)
        .expect("a cluster with more than one node")
}

#[tokio::test]
async fn writes_on_any_node_are_linearizable_on_every_node() {
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();

    for &id in &ids {
        let client = cluster.admin_client(id);
        eventually(
            format!("GET /ready on node {id} to be 200"),
            STARTUP_TIMEOUT,
            || {
                let client = client.clone();
                async move {
                    match client.get("/ready").await {
                        Ok(r) if r.status == StatusCode::OK && r.body["ready"] == json!(true) => {
                            Ok(())
                        }
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await;
    }

    seed_warehouse(&cluster.admin_client(1), "wh-lin").await;
    for (i, &writer) in ids.iter().enumerate() {
        let reader = ids[(i + 1) % ids.len()];
        let sku = format!("lin-{writer}");
        let on_hand = 10 * writer as i64 + 1;
        let written = cluster
            .admin_client(writer)
            .set_stock(&sku, "wh-lin", on_hand)
            .await
            .expect("PUT stock");
        written.expect_stock(&sku, on_hand, &format!("set {sku} on node {writer}"));
        assert_eq!(written.body["warehouse_id"], json!("wh-lin"), "{written}");
        let version = written.version();

        // No waiting: a linearizable read on another node right after the ack must see it.
        for consistency in [Consistency::Default, Consistency::Linearizable] {
            let read = cluster
                .admin_client(reader)
                .get_stock(&sku, consistency)
                .await
                .expect("GET stock");
            let what = format!(
                "{consistency:?} read of {sku} on node {reader} after write on node {writer}"
            );
            read.expect_stock(&sku, on_hand, &what);
            assert_eq!(
                read.body["warehouses"],
                json!([written.body]),
                "{what}: per-warehouse levels should be exactly the acknowledged write (version {version})"
            );
        }
    }

    let leader = cluster.leader().await;
    let follower = follower_of(&ids, leader);
    let sku = format!("lin-{follower}");
    let before = 10 * follower as i64 + 1;
    cluster
        .admin_client(follower)
        .adjust(&sku, "wh-lin", -4, "damaged", None)
        .await
        .expect("POST adjustment")
        .expect_stock(
            &sku,
            before - 4,
            &format!("adjust {sku} on follower {follower}"),
        );
    for &id in &ids {
        cluster
            .admin_client(id)
            .get_stock(&sku, Consistency::Linearizable)
            .await
            .expect("GET stock")
            .expect_stock(
                &sku,
                before - 4,
                &format!("read {sku} on node {id} after adjustment"),
            );
        // The linearizable read above made this node apply everything, the warehouse included.
        let wh = cluster
            .admin_client(id)
            .get_warehouse("wh-lin")
            .await
            .expect("GET warehouse")
            .ok(&format!("GET warehouse wh-lin on node {id}"));
        assert_eq!(
            (&wh["id"], &wh["name"], &wh["priority"]),
            (&json!("wh-lin"), &json!("Main"), &json!(0)),
            "warehouse on node {id}: {wh}"
        );
    }
}

#[tokio::test]
async fn killing_the_leader_elects_a_new_one_and_writes_continue() {
    let mut cluster = Cluster::start(3).await;
    let old_leader = cluster.leader().await;
    let old_term = cluster
        .view(old_leader)
        .await
        .term
        .expect("term in /cluster");
    let client = cluster.admin_client(old_leader);
    seed_warehouse(&client, "wh-f").await;
    client
        .set_stock("before-crash", "wh-f", 5)
        .await
        .expect("PUT stock")
        .expect_stock("before-crash", 5, "write before the crash");

    cluster.kill(old_leader);
    let survivors: Vec<Client> = cluster
        .running_ids()
        .into_iter()
        .map(|id| cluster.admin_client(id))
        .collect();
    assert_eq!(survivors.len(), 2, "two nodes should survive");

    // Absolute write + Idempotency-Key: safe to retry whatever the fate of earlier attempts.
    let reply = retry_write(
        "write after killing the leader",
        STARTUP_TIMEOUT,
        |attempt| {
            let client = survivors[attempt as usize % survivors.len()].clone();
            async move {
                client
                    .set_stock_with(
                        "after-crash",
                        "wh-f",
                        json!({"on_hand": 7}),
                        Some("failover-write-1"),
                    )
                    .await
            }
        },
    )
    .await;
    reply.expect_stock("after-crash", 7, "first write after the leader crash");

    let new_leader = cluster.leader().await;
    assert_ne!(
        new_leader, old_leader,
        "the killed node cannot still be the leader"
    );
    let new_term = cluster
        .view(new_leader)
        .await
        .term
        .expect("term in /cluster");
    assert!(
        new_term > old_term,
        "a new election must raise the term: was {old_term}, now {new_term}"
    );

    for id in cluster.running_ids() {
        let c = cluster.admin_client(id);
        let sku = format!("post-election-{id}");
        c.set_stock(&sku, "wh-f", id as i64)
            .await
            .expect("PUT stock")
            .expect_stock(
                &sku,
                id as i64,
                &format!("write on node {id} under the new leader"),
            );
    }
    for id in cluster.running_ids() {
        let c = cluster.admin_client(id);
        for (sku, on_hand) in [("before-crash", 5), ("after-crash", 7)] {
            c.get_stock(sku, Consistency::Linearizable)
                .await
                .expect("GET stock")
                .expect_stock(
                    sku,
                    on_hand,
                    &format!("read {sku} on node {id} after failover"),
                );
        }
    }

    // The old leader comes back as a follower and catches up.
    cluster.restart(old_leader).await;
    let (leader, applied) = cluster.leader_applied().await;
    assert_ne!(
        leader, old_leader,
        "a node that missed entries cannot win the election"
    );
    cluster.wait_applied(old_leader, applied).await;
    let c = cluster.admin_client(old_leader);
    for (sku, on_hand) in [("before-crash", 5), ("after-crash", 7)] {
        c.get_stock(sku, Consistency::Stale)
            .await
            .expect("GET stock")
            .expect_stock(
                sku,
                on_hand,
                &format!("stale read of {sku} on restarted old leader"),
            );
    }
}

#[tokio::test]
async fn restarted_follower_catches_up_from_the_log() {
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    let leader = cluster.leader().await;
    let follower = follower_of(&ids, leader);
    let client = cluster.admin_client(leader);
    seed_warehouse(&client, "wh-c").await;

    cluster.kill(follower);
    for i in 0..30i64 {
        let sku = format!("catchup-{i}");
        client
            .set_stock(&sku, "wh-c", i + 1)
            .await
            .expect("PUT stock")
            .expect_stock(
                &sku,
                i + 1,
                &format!("write {i} while node {follower} is down"),
            );
    }
    let (leader, applied) = cluster.leader_applied().await;

    // Restart with the same --join flag a supervisor would pass: joining must be idempotent.
    cluster.restart_with_join(follower, leader).await;
    cluster.wait_applied(follower, applied).await;

    let lagger = cluster.admin_client(follower);
    for i in 0..30i64 {
        let sku = format!("catchup-{i}");
        let stale = lagger
            .get_stock(&sku, Consistency::Stale)
            .await
            .expect("GET stock");
        stale.expect_stock(
            &sku,
            i + 1,
            &format!("stale read of {sku} on restarted node {follower}"),
        );
        let on_leader = client
            .get_stock(&sku, Consistency::Linearizable)
            .await
            .expect("GET stock");
        assert_eq!(
            stale.body, on_leader.body,
            "{sku}: restarted follower differs from leader"
        );
    }
    let view = cluster.wait_voters(leader, &ids).await;
    assert!(
        view.learners().is_empty(),
        "restart with --join must not add a learner or demote: members {:?}",
        view.members
    );
}

#[tokio::test]
async fn follower_behind_a_purged_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20"]).await;
    let ids = cluster.ids();
    let leader = cluster.leader().await;
    let lagging = follower_of(&ids, leader);
    let client = cluster.admin_client(leader);
    seed_warehouse(&client, "wh-s").await;

    let lagging_applied = cluster
        .view(lagging)
        .await
        .applied_index
        .expect("applied_index of the node about to be killed");
    cluster.kill(lagging);
    // 150 entries: several snapshots at 20 entries each, so the log the lagging node needs is
    // purged on the leader. 30 SKUs written 5 times; the last value of sku k is 120 + k.
    for i in 0..150i64 {
        let sku = format!("snap-{}", i % 30);
        client
            .set_stock(&sku, "wh-s", i)
            .await
            .expect("PUT stock")
            .expect_stock(&sku, i, &format!("write {i} while node {lagging} is down"));
    }
    client
        .adjust("snap-0", "wh-s", 3, "found", None)
        .await
        .expect("POST adjustment")
        .expect_stock("snap-0", 123, "adjustment while the node is down");
    let (leader, applied) = cluster.leader_applied().await;

    // `purged_index` is not in the contract's /cluster fields; when the node exposes it, prove
    // the entries the lagging node misses are gone from the leader's log, so only a snapshot
    // can bring it up to date.
    if cluster.view(leader).await.raw.get("purged_index").is_some() {
        let leader_client = cluster.admin_client(leader);
        eventually(
            format!("leader {leader} to purge its log past index {lagging_applied}"),
            STARTUP_TIMEOUT,
            || {
                let c = leader_client.clone();
                async move {
                    let view = crate::harness::cluster_view(&c).await?;
                    match view.raw["purged_index"].as_u64() {
                        Some(purged) if purged > lagging_applied => Ok(()),
                        _ => Err(format!(
                            "purged_index {} snapshot_index {} applied_index {:?}",
                            view.raw["purged_index"],
                            view.raw["snapshot_index"],
                            view.applied_index
                        )),
                    }
                }
            },
        )
        .await;
    } else {
        eprintln!("/cluster has no purged_index; cannot verify the log was purged");
    }

    cluster.restart(lagging).await;
    cluster.wait_applied(lagging, applied).await;

    let lagger = cluster.admin_client(lagging);
    for k in 0..30i64 {
        let sku = format!("snap-{k}");
        let expected = if k == 0 { 123 } else { 120 + k };
        let stale = lagger
            .get_stock(&sku, Consistency::Stale)
            .await
            .expect("GET stock");
        stale.expect_stock(
            &sku,
            expected,
            &format!("stale read of {sku} on node {lagging} after snapshot"),
        );
        let on_leader = client
            .get_stock(&sku, Consistency::Linearizable)
            .await
            .expect("GET stock");
        assert_eq!(
            stale.body, on_leader.body,
            "{sku}: node {lagging} differs from leader {leader}"
        );
    }
    assert_eq!(
        lagger
            .warehouses()
            .await
            .expect("GET warehouses")
            .ok("warehouses on lagging node"),
        client
            .warehouses()
            .await
            .expect("GET warehouses")
            .ok("warehouses on leader"),
        "warehouse lists differ after snapshot install"
    );
    let events_lagging = lagger.all_events().await.expect("events on lagging node");
    let events_leader = client.all_events().await.expect("events on leader");
    assert_eq!(
        events_lagging.len(),
        events_leader.len(),
        "event count differs after snapshot install"
    );
    assert_eq!(
        events_lagging, events_leader,
        "events differ after snapshot install"
    );

    // And it keeps replicating normally afterwards.
    client
        .set_stock("snap-after", "wh-s", 9)
        .await
        .expect("PUT stock")
        .expect_stock("snap-after", 9, "write after snapshot install");
    lagger
        .get_stock("snap-after", Consistency::Linearizable)
        .await
        .expect("GET stock")
        .expect_stock(
            "snap-after",
            9,
            "linearizable read on the node restored from snapshot",
        );
}

#[tokio::test]
async fn acknowledged_writes_survive_killing_every_node() {
    let mut cluster = Cluster::start(3).await;
    let ids = cluster.ids();
    seed_warehouse(&cluster.admin_client(1), "wh-d").await;

    let mut acknowledged = Vec::new();
    for i in 0..45i64 {
        let via = ids[i as usize % ids.len()];
        let sku = format!("durable-{i}");
        cluster
            .admin_client(via)
            .set_stock(&sku, "wh-d", 100 + i)
            .await
            .expect("PUT stock")
            .expect_stock(&sku, 100 + i, &format!("write {i} via node {via}"));
        acknowledged.push((sku, 100 + i));
    }
    cluster.kill_all();

    cluster.restart_all().await;
    cluster.leader().await;
    for &id in &ids {
        let c = cluster.admin_client(id);
        for (sku, on_hand) in &acknowledged {
            c.get_stock(sku, Consistency::Linearizable)
                .await
                .expect("GET stock")
                .expect_stock(
                    sku,
                    *on_hand,
                    &format!("acknowledged {sku} on node {id} after full crash"),
                );
        }
    }
    cluster
        .admin_client(ids[1])
        .set_stock("durable-after", "wh-d", 1)
        .await
        .expect("PUT stock")
        .expect_stock("durable-after", 1, "write after full-cluster restart");
}

#[tokio::test]
async fn learner_joins_is_promoted_a_voter_is_removed_and_its_id_is_refused() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = follower_of(&cluster.ids(), leader);
    seed_warehouse(&cluster.admin_client(leader), "wh-m").await;
    cluster
        .admin_client(leader)
        .set_stock("member-0", "wh-m", 3)
        .await
        .expect("PUT stock")
        .expect_stock("member-0", 3, "write before membership changes");

    // Join through a follower: admin writes on a follower are forwarded to the leader.
    cluster.add_node(4, follower, true).await;
    let leader_client = cluster.admin_client(leader);
    eventually("node 4 to be listed as a learner", STARTUP_TIMEOUT, || {
        let c = leader_client.clone();
        async move {
            let view = crate::harness::cluster_view(&c).await?;
            if view.learners() == [4] && view.voters() == [1, 2, 3] {
                Ok(())
            } else {
                Err(format!("members {:?}", view.members))
            }
        }
    })
    .await;
    // Node 4 learns its membership from the replicated log, a moment after the leader.
    let learner_client = cluster.admin_client(4);
    eventually("node 4 to see itself as a learner", STARTUP_TIMEOUT, || {
        let c = learner_client.clone();
        async move {
            let own = crate::harness::cluster_view(&c).await?;
            if own.node_id == Some(4) && own.members.contains(&(4, "learner".to_string())) {
                Ok(())
            } else {
                Err(format!(
                    "node_id {:?}, members {:?}",
                    own.node_id, own.members
                ))
            }
        }
    })
    .await;
    let (_, applied) = cluster.leader_applied().await;
    cluster.wait_applied(4, applied).await;
    cluster
        .admin_client(4)
        .get_stock("member-0", Consistency::Stale)
        .await
        .expect("GET stock")
        .expect_stock("member-0", 3, "stale read on the learner");

    let promoted = cluster
        .admin_client(follower)
        .post("/cluster/promote", &json!({"node_id": 4}))
        .await
        .expect("POST /cluster/promote");
    assert_eq!(
        promoted.status,
        StatusCode::OK,
        "promote 4 via follower {follower}: {promoted}"
    );
    cluster.wait_voters(leader, &[1, 2, 3, 4]).await;

    let leader = cluster.leader().await;
    let victim = *[1u64, 2, 3]
        .iter()
        .rev()
        .find(|id| **id != leader)
        .expect("a non-leader among 1..=3");
    let removed = cluster
        .admin_client(leader)
        .post("/cluster/remove", &json!({"node_id": victim}))
        .await
        .expect("POST /cluster/remove");
    assert_eq!(
        removed.status,
        StatusCode::OK,
        "remove node {victim}: {removed}"
    );
    let remaining: Vec<u64> = [1u64, 2, 3, 4]
        .into_iter()
        .filter(|id| *id != victim)
        .collect();
    cluster.wait_voters(leader, &remaining).await;
    cluster.kill(victim);

    let leader = cluster.leader().await;
    assert!(
        remaining.contains(&leader),
        "leader {leader} is not a remaining voter"
    );
    for &id in &remaining {
        let sku = format!("member-{id}");
        cluster
            .admin_client(id)
            .set_stock(&sku, "wh-m", 10 * id as i64)
            .await
            .expect("PUT stock")
            .expect_stock(
                &sku,
                10 * id as i64,
                &format!("write via node {id} after removing {victim}"),
            );
    }
    for &reader in &remaining {
        for &id in &remaining {
            let sku = format!("member-{id}");
            cluster
                .admin_client(reader)
                .get_stock(&sku, Consistency::Linearizable)
                .await
                .expect("GET stock")
                .expect_stock(
                    &sku,
                    10 * id as i64,
                    &format!("read {sku} on node {reader}"),
                );
        }
    }

    let node = cluster.node(victim);
    let readd = json!({
        "node_id": victim,
        "http_addr": node.http_addr().to_string(),
        "peer_addr": node.peer_addr().to_string(),
    });
    let other = follower_of(&remaining, leader);
    for via in [leader, other] {
        cluster
            .admin_client(via)
            .post("/cluster/learners", &readd)
            .await
            .expect("POST /cluster/learners")
            .expect_error(
                409,
                "node_id_removed",
                &format!("re-add removed node {victim} via node {via}"),
            );
    }
    let view = cluster.wait_voters(leader, &remaining).await;
    assert!(
        view.members.iter().all(|(id, _)| *id != victim),
        "refused re-add must leave membership unchanged: {:?}",
        view.members
    );
}
