//! Backup and restore through the shipped CLI: `ecommerce backup FILE --node URL` against a
//! running 3-node cluster, `ecommerce restore FILE ...` into a fresh data dir, `serve` on it,
//! and a field-by-field comparison of stock, warehouses and events between the two clusters.

use serde_json::Value;

use crate::client::{Client, Consistency};
use crate::harness::{
    cluster_view, eventually, retry_write, run_cli, Cluster, Node, STARTUP_TIMEOUT,
};

/// Panics with the command's output unless it exited successfully.
#[track_caller]
fn assert_success(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `ecommerce restore FILE --kek-file KEK` into `node`'s (empty) data dir,
/// under its id and addresses.
async fn restore(file: &str, node: &Node, kek: &std::path::Path) {
    let output = restore_output(file, &node.data_dir(), node, Some(kek)).await;
    assert_success(&output, "ecommerce restore");
}

async fn restore_output(
    file: &str,
    data_dir: &std::path::Path,
    node: &Node,
    kek: Option<&std::path::Path>,
) -> std::process::Output {
    let mut args = vec![
        "restore".to_string(),
        file.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--node-id".into(),
        node.id().to_string(),
        "--http-addr".into(),
        node.http_addr().to_string(),
        "--peer-addr".into(),
        node.peer_addr().to_string(),
    ];
    if let Some(kek) = kek {
        args.extend(["--kek-file".into(), kek.display().to_string()]);
    }
    run_cli(args).await
}

/// What `restore` refuses: a backup without its KEK, under a KEK that lacks
/// its version, altered or cut short; each time nothing is left behind.
async fn restore_refusals(file: &std::path::Path, node: &Node, kek: &std::path::Path) {
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    let file_arg = file.display().to_string();
    let refused = |out: &std::process::Output, what: &str, needle: &str| {
        assert!(!out.status.success(), "{what}: restored");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{what}: {stderr}");
        assert!(
            !data.join("db").exists(),
            "{what}: a database was left behind"
        );
    };
    let out = restore_output(&file_arg, &data, node, None).await;
    refused(&out, "no KEK", "--kek-file");

    let other = work.path().join("other-kek");
    ecommerce::vault::kek::append_new_version(&other, Some(7)).unwrap();
    let out = restore_output(&file_arg, &data, node, Some(&other)).await;
    refused(&out, "another KEK", "KEK version 1");

    let bytes = std::fs::read(file).unwrap();
    let mut flipped = bytes.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    let tampered = work.path().join("tampered");
    std::fs::write(&tampered, &flipped).unwrap();
    let out = restore_output(&tampered.display().to_string(), &data, node, Some(kek)).await;
    refused(&out, "a flipped bit", "altered or truncated");

    std::fs::write(&tampered, &bytes[..bytes.len() - 100]).unwrap();
    let out = restore_output(&tampered.display().to_string(), &data, node, Some(kek)).await;
    refused(&out, "a truncated backup", "altered or truncated");
}

/// 200 body of `GET path` on `client`.
async fn get_ok(client: &Client, path: &str) -> Value {
    client
        .get(path)
        .await
        .expect("GET")
        .ok(&format!("GET {path} on {}", client.base()))
}

#[tokio::test]
async fn backup_of_a_running_cluster_restores_into_an_identical_new_cluster() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let old = cluster.admin_client(leader);
    for (id, name) in [("bk-main", "Main"), ("bk-east", "East")] {
        old.put_warehouse(id, name)
            .await
            .expect("PUT warehouse")
            .ok(&format!("create warehouse {id}"));
    }
    let skus: Vec<String> = (0..12).map(|i| format!("bk-{i}")).collect();
    for (i, sku) in skus.iter().enumerate() {
        let wh = if i % 2 == 0 { "bk-main" } else { "bk-east" };
        old.set_stock(sku, wh, 10 + i as i64)
            .await
            .expect("PUT stock")
            .expect_stock(sku, 10 + i as i64, &format!("stock {sku}"));
    }
    // bk-0 lives in both warehouses; bk-1 gets a positive adjustment.
    old.set_stock("bk-0", "bk-east", 4)
        .await
        .expect("PUT stock")
        .ok("stock bk-0 in bk-east");
    old.adjust("bk-0", "bk-main", -3, "damaged", None)
        .await
        .expect("POST adjustment")
        .expect_stock("bk-0", 7, "adjust bk-0 in bk-main");
    old.adjust("bk-1", "bk-east", 5, "found", None)
        .await
        .expect("POST adjustment")
        .expect_stock("bk-1", 16, "adjust bk-1");

    // Back up from a follower that has applied everything.
    let (leader, applied) = cluster.leader_applied().await;
    let source = *cluster
        .ids()
        .iter()
        .find(|id| **id != leader)
        .expect("a follower");
    cluster.wait_applied(source, applied).await;
    let work = tempfile::tempdir().expect("temp dir for the backup file");
    let file = work.path().join("cluster.backup");
    let file_arg = file.display().to_string();
    let output = run_cli(["backup", &file_arg, "--node", &cluster.node(source).url()]).await;
    assert_success(&output, "ecommerce backup");
    let size = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("backup file {file_arg} missing after success: {e}"))
        .len();
    assert!(size > 0, "backup file {file_arg} is empty");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600, "the backup is the owner's only");
        let data_dir = cluster.node(source).data_dir();
        assert_eq!(mode(&data_dir), 0o700, "so is a node's data directory");
    }

    let kek = cluster.certs_dir().join("kek");
    let mut restored = Node::new(1, &[]);
    restore_refusals(&file, &restored, &kek).await;
    restore(&file_arg, &restored, &kek).await;
    restored.start(None, false).await;
    let new = crate::harness::sign_in(&restored.client(), "admin", crate::harness::ADMIN_USER)
        .await
        .0;
    let view = eventually(
        "the restored node to lead its own single-node cluster",
        STARTUP_TIMEOUT,
        || {
            let c = new.clone();
            async move {
                let view = cluster_view(&c).await?;
                if view.leader_id == Some(1) && view.voters() == [1] && view.learners().is_empty() {
                    Ok(view)
                } else {
                    Err(view.raw.to_string())
                }
            }
        },
    )
    .await;
    assert_eq!(
        view.members.len(),
        1,
        "restored cluster members: {:?}",
        view.members
    );

    for sku in &skus {
        let before = old
            .get_stock(sku, Consistency::Linearizable)
            .await
            .expect("GET stock");
        let after = new
            .get_stock(sku, Consistency::Linearizable)
            .await
            .expect("GET stock");
        assert_eq!(
            (after.status, &after.body),
            (before.status, &before.body),
            "stock of {sku}: restored (left) differs from original (right)"
        );
    }
    assert_eq!(
        get_ok(&new, "/api/v1/warehouses").await,
        get_ok(&old, "/api/v1/warehouses").await,
        "warehouse list: restored (left) differs from original (right)"
    );
    for id in ["bk-main", "bk-east"] {
        let path = format!("/api/v1/warehouses/{id}");
        assert_eq!(
            get_ok(&new, &path).await,
            get_ok(&old, &path).await,
            "warehouse {id}"
        );
    }
    let events_new = new.all_events().await.expect("events on restored node");
    let events_old = old.all_events().await.expect("events on original cluster");
    assert!(
        events_old.len() >= 15,
        "expected at least 15 events for 15 stock writes, original has {}",
        events_old.len()
    );
    assert_eq!(
        events_new, events_old,
        "events: restored (left) differs from original (right)"
    );

    // The two clusters are independent from now on.
    new.set_stock("bk-new", "bk-main", 1)
        .await
        .expect("PUT stock")
        .expect_stock("bk-new", 1, "write on the restored cluster");
    old.get_stock("bk-new", Consistency::Linearizable)
        .await
        .expect("GET stock")
        .expect_error(
            404,
            "sku_not_found",
            "a write on the restored cluster must not reach the original",
        );
    old.set_stock("bk-old", "bk-main", 2)
        .await
        .expect("PUT stock")
        .expect_stock(
            "bk-old",
            2,
            "write on the original cluster after the backup",
        );
}

/// A backup taken after a failover (log ids of a later term, led by another
/// node) restored under a node id the old cluster never had: the new cluster
/// must commit writes, and versions keep growing past the backup's.
#[tokio::test]
async fn restore_after_failover_under_a_new_node_id_accepts_writes() {
    let mut cluster = Cluster::start(3).await;
    let first = cluster.leader().await;
    cluster
        .admin_client(first)
        .put_warehouse("w1", "Main")
        .await
        .expect("PUT")
        .ok("warehouse");
    cluster.kill(first);
    let second = cluster.leader().await;
    assert_ne!(first, second);
    let leader_client = cluster.admin_client(second);
    let before = retry_write("stock on the new leader", STARTUP_TIMEOUT, |_| {
        let c = leader_client.clone();
        async move { c.set_stock("fo-1", "w1", 3).await }
    })
    .await;
    before.expect_stock("fo-1", 3, "stock after failover");
    let backup_version = before.version();

    let work = tempfile::tempdir().expect("temp dir");
    let file = work
        .path()
        .join("after-failover.backup")
        .display()
        .to_string();
    assert_success(
        &run_cli(["backup", &file, "--node", &cluster.node(second).url()]).await,
        "backup",
    );
    let mut restored = Node::new(5, &[]);
    restore(&file, &restored, &cluster.certs_dir().join("kek")).await;
    restored.start(None, false).await;
    let new = crate::harness::sign_in(&restored.client(), "admin", crate::harness::ADMIN_USER)
        .await
        .0;
    let after = retry_write("a write on the restored cluster", STARTUP_TIMEOUT, |_| {
        let c = new.clone();
        async move { c.adjust("fo-1", "w1", 2, "restock", None).await }
    })
    .await;
    after.expect_stock("fo-1", 5, "write on the restored cluster");
    assert!(
        after.version() > backup_version,
        "version {} must exceed the backup's {backup_version}",
        after.version()
    );
}
