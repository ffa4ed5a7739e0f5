//! Leadership transfer through the CLI, against a running 3-node cluster.

use std::time::Duration;

use crate::harness::{eventually, run_cli, Cluster};

#[tokio::test]
async fn transfer_leader_moves_leadership_and_writes_continue() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let target = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    // Ask through a node that is neither: the request is forwarded to the leader.
    let via = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader && *id != target)
        .expect("a third node");
    // Another follower may win the election race; the node then answers 409
    // "retry", which an operator (or this test) does.
    let mut attempts = Vec::new();
    let mut succeeded = false;
    for _ in 0..5 {
        let output = run_cli([
            "cluster",
            "transfer-leader",
            "--node-id",
            &target.to_string(),
            "--node",
            &cluster.node(via).url(),
        ])
        .await;
        succeeded = output.status.success();
        attempts.push(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
        if succeeded {
            break;
        }
        assert!(
            attempts.last().unwrap().contains("retry"),
            "transfer-leader failed: {attempts:?}"
        );
    }
    assert!(succeeded, "transfer-leader never succeeded: {attempts:?}");
    let client = cluster.admin_client(via);
    eventually(
        format!("every node to see node {target} as leader"),
        Duration::from_secs(15),
        || {
            let views = cluster
                .ids()
                .into_iter()
                .map(|id| cluster.admin_client(id))
                .collect::<Vec<_>>();
            async move {
                for c in views {
                    let body = c.cluster().await.map_err(|e| e.to_string())?.body;
                    if body["leader_id"] != target {
                        return Err(format!("{} reports leader {}", c.base(), body["leader_id"]));
                    }
                }
                Ok(())
            }
        },
    )
    .await;
    client
        .put_warehouse("w1", "After transfer")
        .await
        .unwrap()
        .ok("write after transfer");

    // Transferring to a node that is not a voter is refused with the error shape.
    let refused = run_cli([
        "cluster",
        "transfer-leader",
        "--node-id",
        "99",
        "--node",
        &cluster.node(via).url(),
    ])
    .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("membership_refused"),
        "stderr: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
