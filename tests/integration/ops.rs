//! Operational endpoints of a running node: liveness, readiness, Prometheus
//! metrics, and the OpenAPI document; load shedding, and writes sharing log
//! entries.

use crate::harness::Cluster;

#[tokio::test]
async fn health_ready_metrics_and_openapi() {
    let cluster = Cluster::start(1).await;
    let client = cluster.admin_client(1);
    assert_eq!(
        client.get("/health").await.unwrap().ok("health")["status"],
        "ok"
    );
    let ready = client.get("/ready").await.unwrap().ok("ready");
    assert_eq!(
        (ready["ready"].as_bool(), ready["leader_id"].as_u64()),
        (Some(true), Some(1))
    );

    client
        .put_warehouse("w1", "Main")
        .await
        .unwrap()
        .ok("put warehouse");
    client
        .get("/api/v1/warehouses/w1")
        .await
        .unwrap()
        .ok("get warehouse");
    let metrics = client.get("/metrics").await.unwrap();
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().expect("metrics are text");
    for needle in [
        r#"http_requests_total{method="PUT",route="/api/v1/warehouses/{id}",status="200"} 1"#,
        "http_request_duration_seconds_bucket",
        "raft_term 1",
        "raft_is_leader 1",
        "raft_applied_index",
        "raft_apply_lag 0",
        "raft_log_fsyncs_total",
        "rocksdb_live_data_bytes",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle:?}:\n{text}");
    }

    let doc = client
        .get("/api/v1/openapi.json")
        .await
        .unwrap()
        .ok("openapi");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi version: {}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/warehouses/{id}",
        "/api/v1/inventory/{sku}",
        "/api/v1/events",
        "/cluster/backup",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "OpenAPI document lacks {path}"
        );
    }
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
}

/// A data directory belongs to one node id: starting another id on it fails
/// at once with a message that says whose it is, and the data is untouched.
#[tokio::test]
async fn a_node_refuses_another_nodes_data_dir() {
    let mut cluster = Cluster::start(1).await;
    cluster
        .admin_client(1)
        .put_warehouse("w1", "Main")
        .await
        .unwrap()
        .ok("put warehouse");
    cluster.kill(1);
    let data_dir = cluster.node(1).data_dir();
    let run = tokio::process::Command::new(crate::harness::BIN)
        .args(["serve", "--node-id", "2", "--data-dir"])
        .arg(&data_dir)
        .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("serve on another node's data dir must exit, not serve")
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "serve succeeded on node 1's data dir: {stderr}"
    );
    assert!(stderr.contains("belongs to node 1"), "stderr: {stderr}");

    cluster.restart(1).await;
    cluster
        .admin_client(1)
        .get("/api/v1/warehouses/w1")
        .await
        .unwrap()
        .ok("node 1 still has its data");
}

/// Past `http.max_in_flight` requests a node refuses new ones at once with
/// 503 `overloaded`, keeps serving operators, and admits requests again as
/// soon as the ones it serves finish.
#[tokio::test]
async fn an_overloaded_node_sheds_at_once_and_recovers() {
    use std::time::{Duration, Instant};

    let (_dir, config) = crate::harness::config_file("[http]\nmax_in_flight = 2\n");
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let client = cluster.client(1);

    // Two long-polls for events that do not come hold the two permits (a slow body no
    // longer does: see `slow_clients`).
    let admin = crate::client::Client::with_timeout(cluster.node(1).url(), Duration::from_secs(60))
        .with_bearer(cluster.admin_token());
    let last = admin
        .all_events()
        .await
        .expect("events")
        .last()
        .and_then(|e| e["id"].as_u64())
        .unwrap_or(0);
    // Each holder asks again when its poll ends early: a poll that was itself shed (a
    // probe below held a permit at that moment) would otherwise leave one permit free
    // for good. Bounded: at most 100 polls each, and aborted below.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let admin = admin.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    let _ = admin
                        .get(&format!("/api/v1/events?after={last}&wait_ms=20000"))
                        .await;
                }
            })
        })
        .collect();

    // The next request is refused, and quickly (the server may need a moment
    // to read the held requests' headers).
    let refused = crate::harness::eventually("a shed request", Duration::from_secs(30), || async {
        let started = Instant::now();
        let reply = client
            .get("/api/v1/products")
            .await
            .map_err(|e| e.to_string())?;
        if reply.status.as_u16() == 503 {
            Ok((reply, started.elapsed()))
        } else {
            Err(format!("not shed yet: {reply}"))
        }
    })
    .await;
    let (reply, took) = refused;
    reply.expect_error(503, "overloaded", "a request past the limit");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(took < Duration::from_secs(1), "shedding took {took:?}");

    // Operators still get their answers.
    client
        .get("/health")
        .await
        .unwrap()
        .ok("health while overloaded");
    let metrics = client.get("/metrics").await.unwrap();
    let text = metrics.body.as_str().expect("metrics are text").to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_requests_shed_total ") && !l.ends_with(" 0")),
        "no shed count in the metrics"
    );

    // When the held requests end, the node serves again.
    for poll in held {
        poll.abort();
    }
    crate::harness::eventually("service again", Duration::from_secs(30), || async {
        let reply = client
            .get("/api/v1/products")
            .await
            .map_err(|e| e.to_string())?;
        if reply.status.as_u16() == 200 {
            Ok(())
        } else {
            Err(format!("still refused: {reply}"))
        }
    })
    .await;
}

/// The sum of the samples of Prometheus metric `name` (any labels).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Writes that reach the leader together share log entries (one append, one
/// replication round, one fsync), and each still gets its own result and a
/// version no other write has.
#[tokio::test]
async fn concurrent_writes_share_log_entries_and_keep_their_own_versions() {
    let cluster = Cluster::start(3).await;
    let clients: Vec<_> = (1..=3).map(|id| cluster.admin_client(id)).collect();
    let before = clients[0].get("/metrics").await.unwrap();
    let before = before.body.as_str().expect("metrics are text").to_string();

    const WRITES: usize = 90;
    let writes = (0..WRITES).map(|i| {
        let client = clients[i % 3].clone();
        async move {
            let reply = client
                .put_warehouse(&format!("batch-{i}"), &format!("Warehouse {i}"))
                .await
                .unwrap();
            reply.ok("put warehouse")
        }
    });
    let written = futures::future::join_all(writes).await;
    let mut versions: Vec<u64> = written
        .iter()
        .map(|w| w["version"].as_u64().expect("a version"))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), WRITES, "two writes share a version");

    let after = clients[0].get("/metrics").await.unwrap();
    let after = after.body.as_str().expect("metrics are text").to_string();
    let commands = metric_sum(&after, "raft_applied_commands_total")
        - metric_sum(&before, "raft_applied_commands_total");
    let entries = metric_sum(&after, "raft_applied_entries_total")
        - metric_sum(&before, "raft_applied_entries_total");
    assert!(commands >= WRITES as f64, "{commands} commands applied");
    assert!(
        entries < commands,
        "{WRITES} concurrent writes took {entries} entries for {commands} commands: nothing was batched"
    );
    for (i, client) in clients.iter().enumerate() {
        let listed = client.warehouses().await.unwrap().ok("warehouses");
        let count = listed["items"].as_array().map_or(0, |a| a.len());
        assert!(count >= WRITES, "node {} lists {count} warehouses", i + 1);
    }
}
