//! `ecommerce restore`: seeds an empty data directory from a backup file so
//! that `ecommerce serve` on it starts a new single-node cluster holding the
//! backed-up state (then grow it with `--join`).

use std::path::Path;

use anyhow::{bail, Context};
use ecommerce_raft::NodeInfo;
use ecommerce_storage::{Storage, StorageOptions};

use crate::identity::Identity;

pub fn restore(backup: &Path, data_dir: &Path, node_id: u64, info: NodeInfo) -> anyhow::Result<()> {
    if !backup.is_file() {
        bail!("backup file {} does not exist", backup.display());
    }
    if data_dir.join("identity.json").exists() || data_dir.join("db").exists() {
        bail!(
            "{} already holds a node's data; restore into an empty directory",
            data_dir.display()
        );
    }
    crate::identity::create_data_dir(data_dir)?;
    let storage = Storage::open(
        &data_dir.join("db"),
        ecommerce_domains::TABLES,
        &StorageOptions::default(),
    )?;
    let meta = ecommerce_raft::restore_into(&storage, backup, node_id, info)
        .with_context(|| format!("restoring {}", backup.display()))?;
    let identity = Identity {
        node_id,
        cluster_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    identity.save(data_dir)?;
    println!(
        "restored state up to log index {} into {} (node {node_id}, new cluster {})",
        meta.last_log_id.map_or(0, |l| l.index),
        data_dir.display(),
        identity.cluster_id.as_deref().unwrap_or_default()
    );
    Ok(())
}
