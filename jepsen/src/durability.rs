//! Durability under total failure: send a batch of concurrent writes, and the
//! moment the acknowledgements are in, SIGKILL every node; restart them all
//! and read back every acknowledged write (linearizably). Repeated for a
//! bounded number of rounds. An acknowledged write that is missing or holds
//! another value is an anomaly; writes without an acknowledgement are not
//! checked (their outcome is unknown).

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

use crate::auth::Actor;
use crate::checker::Report;
use crate::cluster::{Cluster, TIMING};
use crate::workload::{read_any, Ctx, WAREHOUSE};

/// Runs `rounds` rounds of `batch` writes each.
pub async fn run(
    ctx: &Ctx,
    cluster: &Arc<Mutex<Cluster>>,
    rounds: usize,
    batch: usize,
) -> anyhow::Result<Report> {
    let mut report = Report::new("durability (kill -9 all)");
    let n = ctx.urls.len();
    let mut total_acked = 0;
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for i in 0..batch {
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                let sku = format!("D{round}-{i}");
                let value = (round * 1000 + i + 1) as i64;
                let out = ctx
                    .client
                    .call(
                        ctx.url(i % n + 1),
                        Method::PUT,
                        &format!("/api/v1/inventory/{sku}/warehouses/{WAREHOUSE}"),
                        Some(&json!({"on_hand": value})),
                        &Actor::admin(),
                        None,
                    )
                    .await;
                (sku, value, out.is_ok())
            }));
        }
        let mut acked = Vec::new();
        for t in tasks {
            let (sku, value, ok) = t.await?;
            if ok {
                acked.push((sku, value));
            }
        }
        // Every node dies at once, right after the acknowledgements.
        let first = {
            let mut c = cluster.lock().await;
            for slot in 1..=n {
                c.slot_mut(slot).kill();
            }
            for slot in 1..=n {
                c.slot_mut(slot).respawn()?;
            }
            c.slot(1).probe().clone()
        };
        first
            .wait_for("a leader after the restart", TIMING, |v| {
                v.leader_id.is_some()
            })
            .await?;
        for (sku, value) in &acked {
            let body = read_any(ctx, &format!("/api/v1/inventory/{sku}")).await;
            let got = body.as_ref().ok().and_then(|b| {
                b["warehouses"]
                    .as_array()?
                    .iter()
                    .find(|l| l["warehouse_id"] == WAREHOUSE)?["on_hand"]
                    .as_i64()
            });
            if got != Some(*value) {
                report.anomaly(format!(
                    "round {round}: acknowledged {sku} = {value} reads back as {got:?} after kill -9 of every node"
                ));
            }
        }
        total_acked += acked.len();
    }
    report.note(format!(
        "{rounds} rounds, {total_acked} acknowledged writes of {} checked",
        rounds * batch
    ));
    Ok(report)
}
