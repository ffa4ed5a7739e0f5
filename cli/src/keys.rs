//! `ecommerce keys status|rotate-kek`: a node's key status, and a KEK
//! rotation across every member of the cluster (each node keeps its own
//! wrapped copy of the cluster's data keys, so each one rewraps its own).

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::NodeClient;
use crate::{KeysOnline, NodeOpts};

#[derive(Debug, Deserialize)]
struct Member {
    node_id: u64,
    http_addr: String,
}

#[derive(Debug, Deserialize)]
struct Status {
    members: Vec<Member>,
}

/// Runs an online `ecommerce keys` command and prints what it did.
pub async fn run_keys(command: KeysOnline) -> anyhow::Result<()> {
    match command {
        KeysOnline::Status { node } => {
            for (id, url) in members(&node).await? {
                let keys = json_of(&client_for(&node, &url)?, "/node/keys").await?;
                println!(
                    "node {id}: data keys wrapped under KEK version {}; its KEK file holds {}",
                    keys["kek_version"], keys["kek_versions"]
                );
            }
        }
        KeysOnline::RotateKek { to, node } => {
            // Every node must hold the new version before any switches to it.
            let members = members(&node).await?;
            for (id, url) in &members {
                let keys = json_of(&client_for(&node, url)?, "/node/keys").await?;
                let has = keys["kek_versions"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x.as_u64() == Some(u64::from(to))));
                anyhow::ensure!(
                    has,
                    "node {id} ({url}) has no KEK version {to} in its KEK file: add it to every \
                     node's file first; nothing was rotated"
                );
            }
            for (id, url) in &members {
                let response = client_for(&node, url)?
                    .post("/node/keys/rotate-kek", &json!({ "to": to }))
                    .await
                    .with_context(|| format!("rotating node {id} ({url})"))?;
                let _: Value = response.json().await?;
                println!("node {id}: data keys rewrapped under KEK version {to}");
            }
            println!(
                "backups taken before now still need the old KEK version: keep it until they \
                 expire"
            );
        }
    }
    Ok(())
}

/// Every member's id and REST URL (with the scheme of `--node`).
async fn members(node: &NodeOpts) -> anyhow::Result<Vec<(u64, String)>> {
    let status: Status = NodeClient::new(node)?
        .get("/cluster")
        .await?
        .json()
        .await
        .context("reading the cluster status")?;
    let scheme = if node.node.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mut members: Vec<(u64, String)> = status
        .members
        .into_iter()
        .map(|m| (m.node_id, format!("{scheme}://{}", m.http_addr)))
        .collect();
    members.sort();
    Ok(members)
}

fn client_for(node: &NodeOpts, url: &str) -> anyhow::Result<NodeClient> {
    let mut opts = node.clone();
    opts.node = url.to_string();
    NodeClient::new(&opts)
}

async fn json_of(client: &NodeClient, path: &str) -> anyhow::Result<Value> {
    Ok(client.get(path).await?.json().await?)
}
