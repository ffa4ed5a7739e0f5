//! The node's identity file (`identity.json` in the data directory): which
//! node id and which cluster the data belongs to. It stops a node from
//! starting on another node's or another cluster's data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    /// Set when the node creates or joins a cluster.
    pub cluster_id: Option<String>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("identity.json")
}

/// Creates `data_dir` (and its parents) if missing, and makes it readable
/// by its owner only (0700): it holds every record of the shop, the node's
/// private key material and its logs' neighbours. An existing directory with
/// wider permissions is tightened, with a warning.
pub fn create_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    let existed = data_dir.exists();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private (0700)", data_dir.display()))?;
            // A directory made just now had the umask's mode: nothing to say.
            if existed {
                tracing::warn!(
                path = %data_dir.display(),
                was = format!("{mode:o}"),
                "the data directory is now readable by its owner only (0700)"
                );
            }
        }
    }
    Ok(())
}

impl Identity {
    /// Loads the identity, creating it for a fresh data directory; refuses a
    /// directory that belongs to another node id.
    pub fn load_or_create(data_dir: &Path, node_id: u64) -> anyhow::Result<Self> {
        let file = path(data_dir);
        if file.exists() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let identity: Identity = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", file.display()))?;
            if identity.node_id != node_id {
                bail!(
                    "data directory {} belongs to node {}, not node {node_id}; use another --data-dir or --node-id {}",
                    data_dir.display(),
                    identity.node_id,
                    identity.node_id
                );
            }
            return Ok(identity);
        }
        let identity = Identity {
            node_id,
            cluster_id: None,
        };
        identity.save(data_dir)?;
        Ok(identity)
    }

    /// Records the cluster this data belongs to; refuses another one.
    pub fn bind_cluster(&mut self, data_dir: &Path, cluster_id: &str) -> anyhow::Result<()> {
        match &self.cluster_id {
            Some(existing) if existing == cluster_id => Ok(()),
            Some(existing) => bail!(
                "data directory {} belongs to cluster {existing}, not {cluster_id}; start with an empty --data-dir",
                data_dir.display()
            ),
            None => {
                self.cluster_id = Some(cluster_id.to_string());
                self.save(data_dir)
            }
        }
    }

    /// Writes atomically (temp file, fsync, rename).
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let tmp = data_dir.join("identity.json.tmp");
        let file = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&file, self)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path(data_dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_node_and_other_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let mut id = Identity::load_or_create(dir.path(), 1).unwrap();
        id.bind_cluster(dir.path(), "c1").unwrap();
        id.bind_cluster(dir.path(), "c1").unwrap();
        assert!(id.bind_cluster(dir.path(), "c2").is_err());
        assert!(Identity::load_or_create(dir.path(), 2)
            .unwrap_err()
            .to_string()
            .contains("belongs to node 1"));
        assert_eq!(
            Identity::load_or_create(dir.path(), 1)
                .unwrap()
                .cluster_id
                .as_deref(),
            Some("c1")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_data_dir_is_made_private_and_an_open_one_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = root.path().join("a/b/data");
        create_data_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_data_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700, "an existing directory is tightened");
    }
}
