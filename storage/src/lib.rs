//! `storage`: the node's one RocksDB instance and everything that names RocksDB.
//!
//! Column families: the Raft log and Raft metadata, the state machine's own
//! metadata, the idempotency table (and its expiry index), the event log, and one
//! column family per domain table (the list comes from `domains`). Above this
//! crate nothing names RocksDB types: callers see [`Storage`], [`Batch`],
//! [`View`], byte keys made with [`keys`] and values made with [`codec`].
//!
//! Snapshots of the state machine are written and read as a stream of records
//! (see [`snapshot`]), never held in memory whole.

pub mod at_rest;
pub mod codec;
pub mod disk;
pub mod snapshot;

/// Order-preserving key encoding (shared with `domains`).
pub use ecommerce_codec::keys;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

pub use at_rest::{Migration, Sealer};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode,
    Options, ReadOptions, SingleThreaded, WriteBatch, WriteOptions,
};

type Db = DBWithThreadMode<SingleThreaded>;

/// Raft log entries, keyed by big-endian log index.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Vote, committed log id, last purged log id.
pub const CF_RAFT_META: &str = "raft_meta";
/// Last applied log id, membership, the state machine clock and counters.
pub const CF_SM_META: &str = "sm_meta";
/// Idempotency records keyed by idempotency key.
pub const CF_IDEMPOTENCY: &str = "idempotency";
/// Expiry index of idempotency records: (created at, key) -> ().
pub const CF_IDEMPOTENCY_EXPIRY: &str = "idempotency_expiry";
/// Domain events keyed by big-endian event id.
pub const CF_EVENTS: &str = "events";

/// Column families owned by the state machine apart from the domain tables:
/// all of them travel in snapshots.
pub const STATE_MACHINE_CFS: &[&str] =
    &[CF_SM_META, CF_IDEMPOTENCY, CF_IDEMPOTENCY_EXPIRY, CF_EVENTS];

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// A snapshot file that cannot be what [`snapshot`] wrote; the source,
    /// when there is one, is the error that revealed it.
    #[error("corrupt snapshot: {what}")]
    CorruptSnapshot {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A key, value or header too long for a snapshot record.
    #[error("a snapshot record of {0} bytes is over 4 GiB")]
    RecordTooLarge(usize),
    #[error("unknown column family {0:?}")]
    UnknownTable(String),
    /// A value of this table that does not open with the data key for its
    /// record: altered on disk, moved to another key, or sealed by a
    /// cluster with other keys.
    #[error(
        "a value in {0} does not open with this cluster's data key (altered, moved or foreign)"
    )]
    Unsealable(String),
    /// [`Storage::seal_at_rest`] called twice.
    #[error("the storage is sealed at rest already")]
    AlreadySealed,
    /// A range read of a blind table, whose keys are hashes.
    #[error("table {0} is read by exact key only (its keys are blind)")]
    BlindScan(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A corrupt snapshot, found without an underlying error.
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Self::CorruptSnapshot {
            what: what.into(),
            source: None,
        }
    }

    /// A corrupt snapshot, revealed by `source`.
    pub(crate) fn corrupt_because(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::CorruptSnapshot {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Whether a write must be on disk (WAL fsynced) before `write` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the write-ahead log before returning.
    Sync,
    /// Written to the WAL (survives a process crash), fsynced later by
    /// [`Storage::sync_wal`] or by any later `Sync` write.
    Buffered,
}

/// Tuning knobs for the RocksDB instance.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Shared LRU block cache for all column families, in bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family, in bytes.
    pub write_buffer_bytes: usize,
    /// Memtables of all column families together, in bytes: past it the
    /// largest is flushed. Without it every one of the ~50 column families
    /// may hold `write_buffer_bytes` (twice, while one flushes) in memory.
    pub memtable_budget_bytes: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 16 << 20,
            memtable_budget_bytes: 64 << 20,
        }
    }
}

/// The node's RocksDB instance. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Db>,
    path: PathBuf,
    domain_tables: Arc<Vec<String>>,
    /// Held for writing while a snapshot import replaces the state-machine
    /// tables, for reading by whoever must not see a half-imported state.
    import_lock: Arc<RwLock<()>>,
    /// How values are sealed, once [`Storage::seal_at_rest`] has run.
    at_rest: Arc<OnceLock<at_rest::AtRest>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("path", &self.path).finish()
    }
}

impl Storage {
    /// Opens (creating if missing) the database at `path` with the fixed column
    /// families plus one per entry of `domain_tables`.
    pub fn open(path: &Path, domain_tables: &[&str], options: &StorageOptions) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let cf_options = || {
            let mut block = BlockBasedOptions::default();
            block.set_block_cache(&cache);
            block.set_bloom_filter(10.0, false);
            block.set_cache_index_and_filter_blocks(true);
            let mut o = Options::default();
            o.set_block_based_table_factory(&block);
            o.set_write_buffer_size(options.write_buffer_bytes);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o
        };
        let mut fixed = vec![CF_RAFT_LOG, CF_RAFT_META];
        fixed.extend_from_slice(STATE_MACHINE_CFS);
        let descriptors = fixed
            .iter()
            .chain(domain_tables.iter())
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options()))
            .collect::<Vec<_>>();
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(2);
        db_options.set_keep_log_file_num(4);
        db_options.set_db_write_buffer_size(options.memtable_budget_bytes);
        let db = Db::open_cf_descriptors(&db_options, path, descriptors)?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_path_buf(),
            domain_tables: Arc::new(domain_tables.iter().map(|s| s.to_string()).collect()),
            import_lock: Arc::new(RwLock::new(())),
            at_rest: Arc::new(OnceLock::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every column family that belongs to the state machine (and so to snapshots).
    pub fn state_machine_tables(&self) -> Vec<String> {
        STATE_MACHINE_CFS
            .iter()
            .map(|s| s.to_string())
            .chain(self.domain_tables.iter().cloned())
            .collect()
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::UnknownTable(name.to_string()))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.cf(cf)?;
        match self.at_rest() {
            None => Ok(self.db.get_cf(handle, key)?),
            Some(at_rest) => {
                let key = at_rest.stored_key(cf, key);
                self.db
                    .get_cf(handle, &key)?
                    .map(|v| at_rest.open(cf, &key, &v))
                    .transpose()
            }
        }
    }

    /// A stored record as callers see it: its value opened.
    fn plain(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        match self.at_rest() {
            None => Ok((key.to_vec(), value.to_vec())),
            Some(at_rest) => Ok((key.to_vec(), at_rest.open(cf, key, value)?)),
        }
    }

    /// Refuses range reads of blind tables.
    fn ranged(&self, cf: &str) -> Result<&rocksdb::ColumnFamily> {
        if self.at_rest().is_some_and(|a| a.is_blind(cf)) {
            return Err(Error::BlindScan(cf.to_string()));
        }
        self.cf(cf)
    }

    /// Reads and decodes one value.
    pub fn get_value<V: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        key: &[u8],
    ) -> Result<Option<V>> {
        self.get(cf, key)?
            .map(|bytes| codec::decode(&bytes))
            .transpose()
    }

    /// Key-value pairs of `cf` within `range`, in key order, at most `limit`.
    pub fn scan(
        &self,
        cf: &str,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = scan_with(
            &self.db,
            self.ranged(cf)?,
            ReadOptions::default(),
            range,
            limit,
        )?;
        match self.at_rest() {
            None => Ok(rows),
            Some(at_rest) => rows
                .into_iter()
                .map(|(k, v)| {
                    let v = at_rest.open(cf, &k, &v)?;
                    Ok((k, v))
                })
                .collect(),
        }
    }

    /// The last (greatest) key-value pair of `cf`.
    pub fn last(&self, cf: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.edge(cf, IteratorMode::End)
    }

    /// The first (smallest) key-value pair of `cf`.
    pub fn first(&self, cf: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.edge(cf, IteratorMode::Start)
    }

    fn edge(&self, cf: &str, mode: IteratorMode<'_>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut it = self.db.iterator_cf(self.ranged(cf)?, mode);
        it.next()
            .transpose()?
            .map(|(k, v)| self.plain(cf, &k, &v))
            .transpose()
    }

    /// The first and last stored keys of `cf`, whatever the table.
    fn stored_key_range(&self, cf: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let handle = self.cf(cf)?;
        let edge = |mode| -> Result<Option<Vec<u8>>> {
            let mut it = self.db.iterator_cf(handle, mode);
            Ok(it.next().transpose()?.map(|(k, _)| k.to_vec()))
        };
        Ok(edge(IteratorMode::Start)?.zip(edge(IteratorMode::End)?))
    }

    /// Starts an atomic write batch.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            storage: self,
            inner: WriteBatch::default(),
        }
    }

    /// Applies `batch` atomically.
    pub fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Sync);
        self.db.write_opt(batch.inner, &options)?;
        Ok(())
    }

    /// fsyncs the write-ahead log: every write made before this call is durable
    /// when it returns.
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Runs `f` over a consistent point-in-time view of the whole database
    /// (waiting for a snapshot import in progress to finish; call it off the
    /// async runtime).
    pub fn with_view<R>(&self, f: impl FnOnce(&View<'_>) -> R) -> R {
        let _complete = self.import_lock.read().unwrap_or_else(|e| e.into_inner());
        let snapshot = self.db.snapshot();
        f(&View {
            storage: self,
            snapshot,
        })
    }

    /// A guard under which reads never see a half-imported snapshot, or `None`
    /// while an import is in progress (never blocks).
    pub fn try_read_complete(&self) -> Option<RwLockReadGuard<'_, ()>> {
        match self.import_lock.try_read() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn lock_for_import(&self) -> RwLockWriteGuard<'_, ()> {
        self.import_lock.write().unwrap_or_else(|e| e.into_inner())
    }

    /// An integer RocksDB property summed over the state machine tables, e.g.
    /// `rocksdb.estimate-live-data-size`; `None` if unknown.
    pub fn property_sum(&self, name: &str) -> Option<u64> {
        let mut sum = 0;
        for table in self
            .state_machine_tables()
            .iter()
            .map(String::as_str)
            .chain([CF_RAFT_LOG])
        {
            let cf = self.cf(table).ok()?;
            sum += self.db.property_int_value_cf(cf, name).ok()??;
        }
        Some(sum)
    }

    /// Removes every key of `cf` (a range tombstone; cheap for large tables).
    fn clear_into(&self, batch: &mut Batch<'_>, cf: &str) -> Result<()> {
        let Some((first, mut last)) = self.stored_key_range(cf)? else {
            return Ok(());
        };
        last.push(0);
        batch.inner.delete_range_cf(self.cf(cf)?, first, last);
        Ok(())
    }
}

fn scan_with(
    db: &Db,
    cf: &rocksdb::ColumnFamily,
    mut options: ReadOptions,
    range: (Bound<&[u8]>, Bound<&[u8]>),
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let start = match range.0 {
        Bound::Included(k) | Bound::Excluded(k) => k.to_vec(),
        Bound::Unbounded => Vec::new(),
    };
    match range.1 {
        Bound::Excluded(k) => options.set_iterate_upper_bound(k.to_vec()),
        Bound::Included(k) => {
            let mut bound = k.to_vec();
            bound.push(0);
            options.set_iterate_upper_bound(bound)
        }
        Bound::Unbounded => {}
    }
    let iter = db.iterator_cf_opt(cf, options, IteratorMode::From(&start, Direction::Forward));
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item?;
        if matches!(range.0, Bound::Excluded(ex) if *k == *ex) {
            continue;
        }
        if out.len() >= limit {
            break;
        }
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

/// An atomic set of writes, applied by [`Storage::write`].
pub struct Batch<'a> {
    storage: &'a Storage,
    inner: WriteBatch,
}

impl Batch<'_> {
    pub fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let handle = self.storage.cf(cf)?;
        match self.storage.at_rest() {
            None => self.inner.put_cf(handle, key, value),
            Some(at_rest) => {
                let key = at_rest.stored_key(cf, key);
                let value = at_rest.seal(cf, &key, value);
                self.inner.put_cf(handle, key, value)
            }
        }
        Ok(())
    }

    /// Puts a record exactly as another replica stored it (a snapshot
    /// import); a record from before encryption is sealed first.
    pub(crate) fn put_stored(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let handle = self.storage.cf(cf)?;
        let (key, value) = match self.storage.at_rest() {
            None => (key, value),
            Some(at_rest) => at_rest.to_stored(cf, key, value),
        };
        self.inner.put_cf(handle, key, value);
        Ok(())
    }

    pub fn delete(&mut self, cf: &str, key: &[u8]) -> Result<()> {
        let handle = self.storage.cf(cf)?;
        match self.storage.at_rest() {
            None => self.inner.delete_cf(handle, key),
            Some(at_rest) => self.inner.delete_cf(handle, at_rest.stored_key(cf, key)),
        }
        Ok(())
    }

    /// Deletes keys in `[from, to)`.
    pub fn delete_range(&mut self, cf: &str, from: &[u8], to: &[u8]) -> Result<()> {
        self.inner
            .delete_range_cf(self.storage.ranged(cf)?, from, to);
        Ok(())
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// A consistent point-in-time view, see [`Storage::with_view`].
pub struct View<'a> {
    storage: &'a Storage,
    snapshot: rocksdb::SnapshotWithThreadMode<'a, Db>,
}

impl View<'_> {
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.storage.cf(cf)?;
        match self.storage.at_rest() {
            None => Ok(self.snapshot.get_cf(handle, key)?),
            Some(at_rest) => {
                let key = at_rest.stored_key(cf, key);
                self.snapshot
                    .get_cf(handle, &key)?
                    .map(|v| at_rest.open(cf, &key, &v))
                    .transpose()
            }
        }
    }

    pub fn get_value<V: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        key: &[u8],
    ) -> Result<Option<V>> {
        self.get(cf, key)?
            .map(|bytes| codec::decode(&bytes))
            .transpose()
    }

    /// Visits every key-value pair of `cf` in key order, values opened
    /// (the keys of a blind table are its stored hashes).
    pub fn for_each(&self, cf: &str, mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        self.for_each_stored(cf, |k, v| match self.storage.at_rest() {
            None => f(k, v),
            Some(at_rest) => f(k, &at_rest.open(cf, k, v)?),
        })
    }

    /// Visits every record of `cf` in key order exactly as stored (sealed).
    pub fn for_each_stored(
        &self,
        cf: &str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        for item in self
            .snapshot
            .iterator_cf(self.storage.cf(cf)?, IteratorMode::Start)
        {
            let (k, v) = item?;
            f(&k, &v)?;
        }
        Ok(())
    }
}
