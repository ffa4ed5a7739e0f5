//! Operational endpoints of a running node: liveness, readiness, Prometheus
//! metrics, and the OpenAPI document.

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
