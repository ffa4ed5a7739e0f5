//! The Raft log and vote, in the `raft_log` and `raft_meta` column families.
//!
//! Durability argument: `save_vote` and `truncate` are fsynced before they
//! return. `append` writes the entries to RocksDB (readable at once) and hands
//! the flush callback to the flusher thread, which fsyncs the write-ahead log
//! and only then reports the entries as persisted. Several appends waiting at
//! once share one fsync (group commit). Because every column family shares one
//! write-ahead log, an fsync also makes all earlier writes durable, in order.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;

use ecommerce_storage::{codec, keys, Durability, Storage, CF_RAFT_LOG, CF_RAFT_META};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend};

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

pub(crate) fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn read_logs_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_logs_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// Log storage over the node's RocksDB instance. Clones share the flusher.
#[derive(Clone)]
pub struct LogStore {
    storage: Storage,
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    pub fn new(storage: Storage) -> Self {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let flush_storage = storage.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(flush_storage, rx))
            .expect("spawn the log flusher thread");
        Self {
            storage,
            flusher: tx,
        }
    }

    fn meta<V: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<V>, StorageError> {
        self.storage
            .get_value(CF_RAFT_META, key)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }
}

/// Group commit: waits for appends, fsyncs once for all that are waiting, then
/// reports them persisted.
fn flush_loop(storage: Storage, rx: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        // One failure for every waiter: shared, so each gets the cause.
        let result = storage.sync_wal().map_err(std::sync::Arc::new);
        metrics::counter!("raft_log_fsyncs_total").increment(1);
        metrics::histogram!("raft_log_fsync_batch_size").record(waiting.len() as f64);
        for callback in waiting {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(std::sync::Arc::clone(e))),
            };
            callback.log_io_completed(outcome);
        }
    }
}

fn bound_index(b: Bound<&u64>, start: bool) -> Option<u64> {
    match (b, start) {
        (Bound::Included(i), _) => Some(*i),
        (Bound::Excluded(i), true) => Some(i + 1),
        (Bound::Excluded(i), false) => Some(i.saturating_sub(1)).filter(|_| *i > 0),
        (Bound::Unbounded, true) => Some(0),
        (Bound::Unbounded, false) => Some(u64::MAX),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (Some(start), Some(end)) = (
            bound_index(range.start_bound(), true),
            bound_index(range.end_bound(), false),
        ) else {
            return Ok(Vec::new());
        };
        if start > end {
            return Ok(Vec::new());
        }
        let (from, to) = (keys::u64_key(start), keys::u64_key(end));
        let rows = self
            .storage
            .scan(
                CF_RAFT_LOG,
                (Bound::Included(&from[..]), Bound::Included(&to[..])),
                usize::MAX,
            )
            .map_err(read_logs_err)?;
        rows.iter()
            .map(|(_, v)| codec::decode::<Entry>(v).map_err(read_logs_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.meta(KEY_LAST_PURGED)?;
        let last = match self.storage.last(CF_RAFT_LOG).map_err(read_logs_err)? {
            Some((_, v)) => Some(codec::decode::<Entry>(&v).map_err(read_logs_err)?.log_id),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let err = |e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e);
        let mut batch = self.storage.batch();
        batch
            .put(CF_RAFT_META, KEY_VOTE, &codec::encode(vote).map_err(err)?)
            .map_err(err)?;
        self.storage.write(batch, Durability::Sync).map_err(err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let err = |e| io_err(ErrorSubject::Store, ErrorVerb::Write, e);
        let mut batch = self.storage.batch();
        batch
            .put(
                CF_RAFT_META,
                KEY_COMMITTED,
                &codec::encode(&committed).map_err(err)?,
            )
            .map_err(err)?;
        self.storage.write(batch, Durability::Buffered).map_err(err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.storage.batch();
        for entry in entries {
            let value = codec::encode(&entry).map_err(write_logs_err)?;
            batch
                .put(CF_RAFT_LOG, &keys::u64_key(entry.log_id.index), &value)
                .map_err(write_logs_err)?;
        }
        self.storage
            .write(batch, Durability::Buffered)
            .map_err(write_logs_err)?;
        self.flusher
            .send(callback)
            .map_err(|_| write_logs_err(std::io::Error::other("log flusher stopped")))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = self.storage.batch();
        batch
            .delete_range(
                CF_RAFT_LOG,
                &keys::u64_key(log_id.index),
                &keys::u64_key(u64::MAX),
            )
            .map_err(write_logs_err)?;
        self.storage
            .write(batch, Durability::Sync)
            .map_err(write_logs_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = self.storage.batch();
        batch
            .put(
                CF_RAFT_META,
                KEY_LAST_PURGED,
                &codec::encode(&log_id).map_err(write_logs_err)?,
            )
            .map_err(write_logs_err)?;
        batch
            .delete_range(
                CF_RAFT_LOG,
                &keys::u64_key(0),
                &keys::u64_key(log_id.index + 1),
            )
            .map_err(write_logs_err)?;
        self.storage
            .write(batch, Durability::Buffered)
            .map_err(write_logs_err)
    }
}
