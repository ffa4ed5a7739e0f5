//! The replicated state machine: applies committed entries to RocksDB, builds
//! and installs snapshots.
//!
//! Architecture invariant: one `apply` call writes the domain data, emitted
//! events, idempotency records, the state-machine clock, the membership and
//! the last-applied log id in ONE RocksDB write batch, so after a crash the
//! state is exactly that of some applied prefix of the log.
//!
//! Architecture invariant: a command's content never stops a replica. Each
//! envelope is applied under its own savepoint of the staged writes: a refused
//! command's writes and events are taken back (its idempotency record stays),
//! and a command that panics is refused the same way, on every replica alike,
//! and logged. Only a storage fault stops the node.
//!
//! Snapshot install is crash-safe: the incoming file is fsynced and verified,
//! an "installing" marker naming it is fsynced in `raft_meta`, the tables are
//! replaced, and the marker is removed in the last (fsynced) batch. A node that
//! starts with the marker present redoes the import before serving.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use ecommerce_domains::command::{apply_envelope, Applied, ApplyContext};
use ecommerce_domains::store::{StoreFault, StoreMut};
use ecommerce_domains::{DomainError, Envelope, EventRecord};
use ecommerce_storage::{
    codec, keys, snapshot, Durability, Storage, CF_EVENTS, CF_RAFT_META, CF_SM_META,
};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId};
use tokio::io::AsyncSeekExt;
use tokio::sync::watch;

use crate::log_store::io_err;
use crate::snapshot_store::SnapshotStore;
use crate::store_adapter::ApplyTx;
use crate::types::{
    Entry, EntryResponse, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

pub(crate) const KEY_LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
pub(crate) const KEY_CLOCK: &[u8] = b"clock";
pub(crate) const KEY_EVENT_SEQ: &[u8] = b"event_seq";
pub(crate) const KEY_REMOVED_NODES: &[u8] = b"removed_nodes";
pub(crate) const KEY_LAST_VERSION: &[u8] = b"last_version";
const KEY_INSTALLING: &[u8] = b"installing_snapshot";

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e)
}
fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e)
}

/// State-machine metadata kept beside the data.
#[derive(Debug, Clone, Default)]
struct SmMeta {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    clock: u64,
    event_seq: u64,
    removed: BTreeSet<u64>,
    /// The last command's [`ApplyContext::version`].
    last_version: u64,
}

impl SmMeta {
    fn load(storage: &Storage) -> Result<Self, StorageError> {
        fn get<V: serde::de::DeserializeOwned>(
            storage: &Storage,
            key: &[u8],
        ) -> Result<Option<V>, StorageError> {
            storage.get_value(CF_SM_META, key).map_err(sm_read_err)
        }
        Ok(Self {
            last_applied: get::<Option<LogId>>(storage, KEY_LAST_APPLIED)?.flatten(),
            membership: get(storage, KEY_MEMBERSHIP)?.unwrap_or_default(),
            clock: get(storage, KEY_CLOCK)?.unwrap_or(0),
            event_seq: get(storage, KEY_EVENT_SEQ)?.unwrap_or(0),
            removed: get(storage, KEY_REMOVED_NODES)?.unwrap_or_default(),
            last_version: get(storage, KEY_LAST_VERSION)?.unwrap_or(0),
        })
    }

    fn stage(&self, tx: &mut ApplyTx<'_>) -> Result<(), StorageError> {
        fn enc<V: serde::Serialize>(v: &V) -> Result<Vec<u8>, StorageError> {
            codec::encode(v).map_err(sm_write_err)
        }
        tx.put_bytes(
            CF_SM_META,
            KEY_LAST_APPLIED.to_vec(),
            enc(&self.last_applied)?,
        );
        tx.put_bytes(CF_SM_META, KEY_MEMBERSHIP.to_vec(), enc(&self.membership)?);
        tx.put_bytes(CF_SM_META, KEY_CLOCK.to_vec(), enc(&self.clock)?);
        tx.put_bytes(CF_SM_META, KEY_EVENT_SEQ.to_vec(), enc(&self.event_seq)?);
        tx.put_bytes(CF_SM_META, KEY_REMOVED_NODES.to_vec(), enc(&self.removed)?);
        tx.put_bytes(
            CF_SM_META,
            KEY_LAST_VERSION.to_vec(),
            enc(&self.last_version)?,
        );
        Ok(())
    }
}

/// Node ids ever removed from the cluster (replicated; they may not come back).
pub fn removed_nodes(storage: &Storage) -> Result<BTreeSet<u64>, StorageError> {
    Ok(SmMeta::load(storage)?.removed)
}

pub struct StateMachine {
    storage: Storage,
    snapshots: Arc<SnapshotStore>,
    meta: SmMeta,
    receiving: Option<PathBuf>,
    /// Last applied index, for event-log subscribers.
    applied: watch::Sender<u64>,
}

impl StateMachine {
    /// Opens the state machine, first finishing a snapshot install that a crash interrupted.
    pub async fn open(storage: Storage, snapshot_dir: PathBuf) -> Result<Self, StorageError> {
        let snapshots = Arc::new(SnapshotStore::open(snapshot_dir).map_err(sm_read_err)?);
        let installing: Option<PathBuf> = storage
            .get_value(CF_RAFT_META, KEY_INSTALLING)
            .map_err(sm_read_err)?;
        if let Some(marked) = installing {
            // The marked file was published (renamed to current.snap) if the
            // crash came after that step.
            let path = if marked.exists() {
                marked
            } else {
                snapshots.current_path()
            };
            tracing::warn!(path = %path.display(), "finishing an interrupted snapshot install");
            finish_install(&storage, &snapshots, path).await?;
        }
        snapshots.remove_temporaries(None).map_err(sm_write_err)?;
        let meta = SmMeta::load(&storage)?;
        let (applied, _) = watch::channel(meta.last_applied.map_or(0, |l| l.index));
        Ok(Self {
            storage,
            snapshots,
            meta,
            receiving: None,
            applied,
        })
    }

    /// Watch the last applied index (changes after every apply and install).
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn notify(&self) {
        self.applied
            .send_replace(self.meta.last_applied.map_or(0, |l| l.index));
    }
}

/// Applies one envelope with `apply` (production: [`apply_envelope`]) so that
/// nothing in it can stop the replica: a panic takes back everything the
/// envelope staged and refuses it with [`DomainError::Internal`]. The panic
/// depends only on the command and the state, so every replica refuses it
/// alike. No idempotency record is kept for it: a retry runs it again.
/// (Panics must unwind for this: no profile of the workspace sets
/// `panic = "abort"`.)
fn apply_isolated<F>(
    tx: &mut ApplyTx<'_>,
    envelope: &Envelope,
    ctx: &ApplyContext,
    apply: F,
) -> Result<Applied, StorageError>
where
    F: FnOnce(&Envelope, &ApplyContext, &mut dyn StoreMut) -> Result<Applied, StoreFault>,
{
    let mark = tx.savepoint();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply(envelope, ctx, &mut *tx)
    }));
    match result {
        Ok(applied) => applied.map_err(sm_write_err),
        Err(panic) => {
            tx.rollback_to(mark);
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                log_index = ctx.log_index,
                version = ctx.version,
                command = command_kind(&envelope.command),
                panic = %message,
                "applying a command panicked; it is refused and changed nothing"
            );
            metrics::counter!("raft_apply_panics_total").increment(1);
            Ok(Applied {
                outcome: Err(DomainError::Internal),
                replayed: false,
                log_index: ctx.log_index,
            })
        }
    }
}

/// The command's kind for the log (its content may hold personal data).
fn command_kind(command: &ecommerce_domains::Command) -> &'static str {
    use ecommerce_domains::Command as C;
    match command {
        C::Inventory(_) => "inventory",
        C::Listing(_) => "listing",
        C::Cart(_) => "cart",
        C::Order(_) => "order",
        C::System(_) => "system",
        C::Users(_) => "users",
        C::Media(_) => "media",
        C::Catalog(_) => "catalog",
        C::Pricing(_) => "pricing",
        C::Batch(_) => "batch",
    }
}

/// Replaces the state-machine tables with the snapshot at `path`, clearing
/// the install marker in the final batch.
async fn import(storage: Storage, path: PathBuf) -> Result<(), StorageError> {
    tokio::task::spawn_blocking(move || storage.import(&path, |_| Ok(())))
        .await
        .map_err(sm_write_err)?
        .map_err(sm_write_err)
}

/// With the install marker naming `path` already on disk: replaces the tables
/// with the snapshot, publishes the file as the current snapshot, and only
/// then clears the marker. A crash at any step is finished at the next start.
async fn finish_install(
    storage: &Storage,
    snapshots: &SnapshotStore,
    path: PathBuf,
) -> Result<(), StorageError> {
    import(storage.clone(), path.clone()).await?;
    if path != snapshots.current_path() {
        let meta: SnapshotMeta = codec::decode(&snapshot::read_header(&path).map_err(sm_read_err)?)
            .map_err(sm_read_err)?;
        snapshots.publish(&path, &meta).map_err(sm_write_err)?;
    }
    let mut clear = storage.batch();
    clear
        .delete(CF_RAFT_META, KEY_INSTALLING)
        .map_err(sm_write_err)?;
    storage.write(clear, Durability::Sync).map_err(sm_write_err)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.meta.last_applied, self.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let storage = self.storage.clone();
        let mut tx = ApplyTx::new(&storage);
        let mut meta = self.meta.clone();
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            meta.last_applied = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(EntryResponse::default()),
                EntryPayload::Membership(membership) => {
                    let before: BTreeSet<u64> = meta
                        .membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .collect();
                    let after: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
                    meta.removed.extend(before.difference(&after));
                    meta.membership = StoredMembership::new(Some(log_id), membership);
                    responses.push(EntryResponse::default());
                }
                EntryPayload::Normal(envelope) => {
                    meta.clock = meta.clock.max(envelope.now_ms);
                    let mut applied = Vec::with_capacity(envelope.unbatch().len());
                    for command in envelope.unbatch() {
                        // The log index while no batch has pushed the count past it.
                        meta.last_version = (meta.last_version + 1).max(log_id.index);
                        let ctx = ApplyContext {
                            log_index: log_id.index,
                            version: meta.last_version,
                            now_ms: meta.clock,
                        };
                        tx.event_seq = meta.event_seq;
                        applied.push(apply_isolated(&mut tx, command, &ctx, apply_envelope)?);
                        for event in std::mem::take(&mut tx.events) {
                            meta.event_seq += 1;
                            let record = EventRecord {
                                id: meta.event_seq,
                                log_index: log_id.index,
                                timestamp_ms: ctx.now_ms,
                                event,
                            };
                            let value = codec::encode(&record).map_err(sm_write_err)?;
                            tx.put_bytes(CF_EVENTS, keys::u64_key(meta.event_seq).to_vec(), value);
                        }
                    }
                    metrics::counter!("raft_applied_commands_total")
                        .increment(applied.len() as u64);
                    responses.push(EntryResponse(applied));
                }
            }
        }
        meta.stage(&mut tx)?;
        let mut batch = storage.batch();
        tx.into_batch(&mut batch).map_err(sm_write_err)?;
        storage
            .write(batch, Durability::Buffered)
            .map_err(sm_write_err)?;
        self.meta = meta;
        metrics::counter!("raft_applied_entries_total").increment(responses.len() as u64);
        self.notify();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            storage: self.storage.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.snapshots.temp_path("incoming");
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        if let Some(old) = self.receiving.replace(path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let err = |e: &(dyn std::error::Error + 'static)| {
            openraft::StorageIOError::new(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                openraft::AnyError::from_dyn(e, None),
            )
            .into()
        };
        // Normally `snapshot` is the file made by `begin_receiving_snapshot`;
        // if it is another handle (openraft allows that), copy it to a file of ours.
        let received = self.receiving.take();
        let path = match &received {
            Some(p) if same_file(&snapshot, p).await => p.clone(),
            _ => {
                if let Some(p) = &received {
                    let _ = std::fs::remove_file(p);
                }
                let path = self.snapshots.temp_path("incoming");
                let mut source = snapshot;
                source
                    .seek(std::io::SeekFrom::Start(0))
                    .await
                    .map_err(|e| err(&e))?;
                let mut copy = tokio::fs::File::create(&path).await.map_err(|e| err(&e))?;
                tokio::io::copy(&mut source, &mut copy)
                    .await
                    .map_err(|e| err(&e))?;
                path
            }
        };
        // fsync through any descriptor makes the file's data durable.
        let file = tokio::fs::File::open(&path).await.map_err(|e| err(&e))?;
        file.sync_all().await.map_err(|e| err(&e))?;
        let verify_path = path.clone();
        let header = tokio::task::spawn_blocking(move || snapshot::verify(&verify_path))
            .await
            .map_err(|e| err(&e))?
            .map_err(|e| err(&e))?;
        let file_meta: SnapshotMeta = codec::decode(&header).map_err(|e| err(&e))?;
        if file_meta.last_log_id != meta.last_log_id {
            return Err(err(&std::io::Error::other(
                "snapshot file does not match its metadata",
            )));
        }
        // The file's directory entry must be durable before the marker names it.
        self.snapshots.sync_dir().map_err(|e| err(&e))?;
        let mut marker = self.storage.batch();
        let marker_value = codec::encode(&path).map_err(|e| err(&e))?;
        marker
            .put(CF_RAFT_META, KEY_INSTALLING, &marker_value)
            .map_err(|e| err(&e))?;
        self.storage
            .write(marker, Durability::Sync)
            .map_err(|e| err(&e))?;
        finish_install(&self.storage, &self.snapshots, path).await?;
        self.meta = SmMeta::load(&self.storage)?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        metrics::counter!("raft_snapshots_installed_total").increment(1);
        self.notify();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        // One open for both metadata and data: a concurrent publish may
        // replace current.snap, but not under an open handle.
        let mut file = match std::fs::File::open(self.snapshots.current_path()) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(sm_read_err(e)),
        };
        let header = snapshot::read_header_from(&file).map_err(sm_read_err)?;
        let meta: SnapshotMeta = codec::decode(&header).map_err(sm_read_err)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(sm_read_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

/// Whether the open `file` is the file at `path`.
async fn same_file(file: &tokio::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata().await, std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Builds snapshots from a consistent RocksDB view while applies go on.
pub struct SnapshotBuilder {
    storage: Storage,
    snapshots: Arc<SnapshotStore>,
}

/// Writes a snapshot of the current state to `path` (fsynced); returns its metadata.
pub fn write_snapshot(
    storage: &Storage,
    path: &std::path::Path,
) -> Result<SnapshotMeta, StorageError> {
    let tables = storage.state_machine_tables();
    storage.with_view(|view| {
        let last_applied: Option<LogId> = view
            .get_value::<Option<LogId>>(CF_SM_META, KEY_LAST_APPLIED)
            .map_err(sm_read_err)?
            .flatten();
        let membership: StoredMembership = view
            .get_value(CF_SM_META, KEY_MEMBERSHIP)
            .map_err(sm_read_err)?
            .unwrap_or_default();
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, std::process::id()),
            None => format!("0-0-{}", std::process::id()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let header = codec::encode(&meta).map_err(sm_write_err)?;
        let file = std::fs::File::create(path).map_err(sm_write_err)?;
        view.export(&tables, &header, &file).map_err(sm_write_err)?;
        file.sync_all().map_err(sm_write_err)?;
        Ok(meta)
    })
}

/// Every node of the membership the state machine last applied (voters and
/// learners), read straight from `storage`; empty for a fresh store.
pub fn stored_members(storage: &Storage) -> Result<Vec<crate::NodeId>, StorageError> {
    let membership: StoredMembership = storage
        .get_value(CF_SM_META, KEY_MEMBERSHIP)
        .map_err(sm_read_err)?
        .unwrap_or_default();
    Ok(membership.membership().nodes().map(|(id, _)| *id).collect())
}

/// The last applied index and a SHA-256 (hex) of every state-machine table,
/// both read from one consistent view: replicas that applied the same prefix of
/// the log must answer the same pair. Blocks; call it off the async runtime.
pub fn state_digest(storage: &Storage) -> Result<(Option<u64>, String), StorageError> {
    let tables = storage.state_machine_tables();
    storage.with_view(|view| {
        let last_applied: Option<LogId> = view
            .get_value::<Option<LogId>>(CF_SM_META, KEY_LAST_APPLIED)
            .map_err(sm_read_err)?
            .flatten();
        let digest = view.digest(&tables).map_err(sm_read_err)?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok((last_applied.map(|l| l.index), hex))
    })
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (storage, snapshots) = (self.storage.clone(), self.snapshots.clone());
        let started = std::time::Instant::now();
        let (meta, file) = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
            let path = snapshots.temp_path("building");
            let meta = write_snapshot(&storage, &path)?;
            let file = std::fs::File::open(&path).map_err(sm_read_err)?;
            snapshots.publish(&path, &meta).map_err(sm_write_err)?;
            Ok((meta, file))
        })
        .await
        .map_err(sm_write_err)??;
        metrics::histogram!("raft_snapshot_build_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_domains::store::{KeyPart, Store};
    use ecommerce_domains::Command;
    use ecommerce_storage::StorageOptions;

    const TABLE: &str = ecommerce_domains::listing::LISTINGS;

    fn envelope() -> Envelope {
        Envelope {
            now_ms: 1,
            idempotency: None,
            command: Command::System(ecommerce_domains::SystemCommand::ExpireIdempotency {
                ttl_ms: 1,
            }),
        }
    }

    #[test]
    fn a_command_that_panics_is_refused_alone_and_takes_back_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(
            &dir.path().join("db"),
            ecommerce_domains::TABLES,
            &StorageOptions::default(),
        )
        .unwrap();
        let mut tx = ApplyTx::new(&storage);
        let ctx = ApplyContext {
            log_index: 7,
            version: 7,
            now_ms: 1,
        };
        // An earlier envelope of the same run wrote something.
        tx.put_raw(TABLE, &[KeyPart::Str("earlier")], vec![1]);
        let applied = apply_isolated(&mut tx, &envelope(), &ctx, |_, _, store| {
            store.put_raw(TABLE, &[KeyPart::Str("earlier")], vec![2]);
            store.put_raw(TABLE, &[KeyPart::Str("mine")], vec![2]);
            panic!("a bug in apply");
        })
        .unwrap();
        assert_eq!(applied.outcome, Err(DomainError::Internal));
        assert_eq!(applied.log_index, 7);
        assert_eq!(
            tx.get_raw(TABLE, &[KeyPart::Str("earlier")]).unwrap(),
            Some(vec![1])
        );
        assert_eq!(tx.get_raw(TABLE, &[KeyPart::Str("mine")]).unwrap(), None);
        assert!(tx.events.is_empty());
        // The run goes on: the next envelope applies normally.
        let next = apply_isolated(&mut tx, &envelope(), &ctx, apply_envelope).unwrap();
        assert!(next.outcome.is_ok(), "{:?}", next.outcome);
    }
}
