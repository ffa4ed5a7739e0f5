//! Cluster administration: status, membership changes, backups and the
//! digest of the replicated state. Membership changes are forwarded to the
//! leader by the node; the caller (operator or admin) is checked by the
//! transport before these run.

use std::time::Duration;

use ecommerce_domains::DomainError;
use ecommerce_raft::{ClusterStatus, MembershipOp};
use tokio::time::Instant;

use super::{App, AppError, AppResult, Consistency};

impl App {
    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node().id
    }

    /// The cluster as this node sees it.
    pub fn cluster_status(&self) -> ClusterStatus {
        self.node().status()
    }

    /// Records this node's Raft gauges for the metrics endpoint.
    pub fn record_node_gauges(&self) {
        crate::telemetry::record_node_gauges(self.node());
    }

    /// Adds, promotes, removes a node or moves leadership; answers the
    /// cluster as it is afterwards.
    pub async fn change_membership(&self, op: MembershipOp) -> AppResult<ClusterStatus> {
        if let MembershipOp::AddLearner { node_id, info } = &op {
            if *node_id == 0 {
                return Err(DomainError::validation("node_id", "must be at least 1").into());
            }
            check_addr("http_addr", &info.http_addr)?;
            check_addr("peer_addr", &info.peer_addr)?;
        }
        let deadline =
            Instant::now() + Duration::from_millis(self.settings.http.membership_timeout_ms);
        self.node().change_membership(op, deadline).await?;
        Ok(self.node().status())
    }

    /// A consistent snapshot of the whole state, including every write
    /// acknowledged before the call, encrypted (`vault::backup`), as an open
    /// file (already unlinked: the handle keeps the data readable and nothing
    /// is left behind).
    pub async fn backup(&self) -> AppResult<std::fs::File> {
        self.read(Consistency::Linearizable).await?;
        let dir = self.settings.data_dir.join("backups");
        let id = uuid::Uuid::new_v4();
        let snapshot = dir.join(format!("snapshot-{id}.snap"));
        let path = dir.join(format!("backup-{id}.ecbak"));
        let storage = self.node().storage().clone();
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || -> AppResult<std::fs::File> {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::create_dir_all(&dir).map_err(AppError::internal)?;
            let made = ecommerce_raft::write_snapshot(&storage, &snapshot)
                .map_err(AppError::internal)
                .and_then(|_| {
                    let plain = std::fs::File::open(&snapshot).map_err(AppError::internal)?;
                    let out = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(AppError::internal)?;
                    vault
                        .encrypt_backup(
                            std::io::BufReader::new(plain),
                            std::io::BufWriter::new(out),
                        )
                        .map_err(AppError::internal)
                });
            let _ = std::fs::remove_file(&snapshot);
            if let Err(e) = made {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            let file = std::fs::File::open(&path).map_err(AppError::internal)?;
            std::fs::remove_file(&path).map_err(AppError::internal)?;
            Ok(file)
        })
        .await
        .map_err(AppError::internal)?
    }

    /// Which KEK version wraps this node's data keys, and which versions its
    /// KEK file holds.
    pub fn keys_status(&self) -> AppResult<crate::vault::KeysStatus> {
        self.vault.status().map_err(AppError::internal)
    }

    /// Rewraps this node's data keys under KEK version `to`, read from its
    /// KEK file (where the operator added it first). Online: nothing stored
    /// changes, and requests go on. Every node holds its own key file, so a
    /// cluster rotates node by node (`ecommerce keys rotate-kek` does all).
    pub fn rotate_kek(&self, to: u32) -> AppResult<crate::vault::KeysStatus> {
        let have = self.keys_status()?.kek_versions;
        if !have.contains(&to) {
            return Err(DomainError::validation(
                "to",
                format!(
                    "KEK version {to} is not in this node's KEK file (it has {have:?}): \
                     add it there first (ecommerce keys generate-kek)"
                ),
            )
            .into());
        }
        self.vault.rotate_kek(to).map_err(AppError::internal)
    }

    /// The last log index this replica applied.
    pub fn applied_index(&self) -> u64 {
        *self.node().subscribe_applied().borrow()
    }

    /// SHA-256 (hex) of every state-machine table, with the applied index it
    /// reflects, read from one consistent view of this replica.
    pub async fn state_digest(&self) -> AppResult<(Option<u64>, String)> {
        let storage = self.node().storage().clone();
        tokio::task::spawn_blocking(move || {
            ecommerce_raft::state_digest(&storage).map_err(AppError::internal)
        })
        .await
        .map_err(AppError::internal)?
    }
}

fn check_addr(field: &str, addr: &str) -> AppResult<()> {
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| DomainError::validation(field, "must be an ip:port socket address").into())
}
