//! The domains' [`Store`] traits over RocksDB.
//!
//! [`Reader`] serves queries straight from the database. [`ApplyTx`] is what
//! commands write through while the state machine applies a run of entries:
//! writes are staged in memory (so later entries of the same run read them)
//! and land in one RocksDB write batch together with the last-applied id.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use ecommerce_domains::store::decode;
use ecommerce_domains::store::{KeyPart, Savepoint, Store, StoreFault, StoreMut};
use ecommerce_domains::{Event, EventRecord};
use ecommerce_storage::{keys, Batch, Storage, CF_EVENTS};

/// Encodes a domain key with the storage layer's order-preserving encoding.
pub fn encode_key(parts: &[KeyPart<'_>]) -> Vec<u8> {
    keys::encode(parts)
}

/// A storage error while `what`ing (reading, scanning) `table`, as the domains see it.
fn fault<'a>(
    what: &'a str,
    table: &'a str,
) -> impl FnOnce(ecommerce_storage::Error) -> StoreFault + 'a {
    move |e| StoreFault::new(format!("{what} {table}"), e)
}

/// Read-only access for queries; never sees a half-installed snapshot.
pub struct Reader<'a> {
    storage: &'a Storage,
    _complete: std::sync::RwLockReadGuard<'a, ()>,
}

impl<'a> Reader<'a> {
    /// `None` while a snapshot install is replacing the state.
    pub fn new(storage: &'a Storage) -> Option<Self> {
        let guard = storage.try_read_complete()?;
        Some(Self {
            storage,
            _complete: guard,
        })
    }
}

/// The byte range of a prefix scan starting after `after`.
fn scan_range(
    prefix: &[KeyPart<'_>],
    after: Option<&[KeyPart<'_>]>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let p = encode_key(prefix);
    let end = keys::prefix_end(&p).map_or(Bound::Unbounded, Bound::Excluded);
    let start = match after {
        Some(a) => Bound::Excluded(encode_key(a)),
        None => Bound::Included(p),
    };
    (start, end)
}

fn as_ref_range(r: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (
        r.0.as_ref().map(Vec::as_slice),
        r.1.as_ref().map(Vec::as_slice),
    )
}

impl Store for Reader<'_> {
    fn get_raw(
        &self,
        table: &'static str,
        key: &[KeyPart<'_>],
    ) -> Result<Option<Vec<u8>>, StoreFault> {
        self.storage
            .get(table, &encode_key(key))
            .map_err(fault("reading", table))
    }

    fn scan_raw(
        &self,
        table: &'static str,
        prefix: &[KeyPart<'_>],
        after: Option<&[KeyPart<'_>]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreFault> {
        let range = scan_range(prefix, after);
        let rows = self
            .storage
            .scan(table, as_ref_range(&range), limit)
            .map_err(fault("scanning", table))?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }
}

/// A staged value: `None` is a deletion.
type Staged = Option<Vec<u8>>;

/// Staged writes of one apply run.
pub struct ApplyTx<'a> {
    storage: &'a Storage,
    /// table -> encoded key -> value (`None`: deleted).
    pending: HashMap<&'static str, BTreeMap<Vec<u8>, Staged>>,
    /// Events emitted by the entry being applied, drained by the state machine.
    pub events: Vec<Event>,
    /// Each staged write's table, key and what was staged there before
    /// (`None`: nothing), newest last, for [`StoreMut::rollback_to`].
    undo: Vec<(&'static str, Vec<u8>, Option<Staged>)>,
    /// The id of the newest event in the log before the command being
    /// applied (set by the state machine before each command).
    pub event_seq: u64,
}

impl<'a> ApplyTx<'a> {
    pub fn new(storage: &'a Storage) -> Self {
        Self {
            storage,
            pending: HashMap::new(),
            events: Vec::new(),
            undo: Vec::new(),
            event_seq: 0,
        }
    }

    /// Stages a raw write to any column family (state-machine metadata, events).
    pub fn put_bytes(&mut self, table: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.stage(table, key, Some(value));
    }

    fn stage(&mut self, table: &'static str, key: Vec<u8>, value: Staged) {
        let previous = self
            .pending
            .entry(table)
            .or_default()
            .insert(key.clone(), value);
        self.undo.push((table, key, previous));
    }

    /// Moves every staged write into `batch`.
    pub fn into_batch(self, batch: &mut Batch<'_>) -> ecommerce_storage::Result<()> {
        for (table, rows) in self.pending {
            for (key, value) in rows {
                match value {
                    Some(v) => batch.put(table, &key, &v)?,
                    None => batch.delete(table, &key)?,
                }
            }
        }
        Ok(())
    }
}

impl Store for ApplyTx<'_> {
    fn get_raw(
        &self,
        table: &'static str,
        key: &[KeyPart<'_>],
    ) -> Result<Option<Vec<u8>>, StoreFault> {
        let key = encode_key(key);
        if let Some(staged) = self.pending.get(table).and_then(|t| t.get(&key)) {
            return Ok(staged.clone());
        }
        self.storage
            .get(table, &key)
            .map_err(fault("reading", table))
    }

    fn scan_raw(
        &self,
        table: &'static str,
        prefix: &[KeyPart<'_>],
        after: Option<&[KeyPart<'_>]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreFault> {
        let range = scan_range(prefix, after);
        let staged = self.pending.get(table);
        let staged_in_range = || staged.into_iter().flat_map(|t| t.range(range.clone()));
        // Read `limit` plus as many disk rows as staged deletions could hide.
        // If the disk read is cut short at key D, at least `limit` live keys are
        // <= D, so the first `limit` live keys of the merge are exact.
        let deletions = staged_in_range().filter(|(_, v)| v.is_none()).count();
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .storage
            .scan(table, as_ref_range(&range), limit.saturating_add(deletions))
            .map_err(fault("scanning", table))?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for (k, v) in staged_in_range() {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged.into_values().flatten().take(limit).collect())
    }
}

impl StoreMut for ApplyTx<'_> {
    fn put_raw(&mut self, table: &'static str, key: &[KeyPart<'_>], value: Vec<u8>) {
        self.stage(table, encode_key(key), Some(value));
    }

    fn delete_raw(&mut self, table: &'static str, key: &[KeyPart<'_>]) {
        self.stage(table, encode_key(key), None);
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    fn compact_events(&mut self, before_ms: u64, keep: u64, max: u64) -> Result<u64, StoreFault> {
        // Ids are consecutive and only ever removed from the oldest, so the
        // events from id `i` to the newest number `event_seq - i + 1`;
        // times never go backwards along the log. The scan sees the staged
        // writes of this run, so every replica removes the same events
        // however its apply runs were cut.
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        let oldest = self.scan_raw(CF_EVENTS, &[], None, limit)?;
        let mut removed = 0;
        for bytes in oldest {
            let record: EventRecord = decode(&bytes)?;
            let left = self.event_seq.saturating_sub(record.id).saturating_add(1);
            if record.timestamp_ms >= before_ms && left <= keep {
                break;
            }
            self.stage(CF_EVENTS, keys::u64_key(record.id).to_vec(), None);
            removed += 1;
        }
        Ok(removed)
    }

    fn savepoint(&mut self) -> Savepoint {
        Savepoint {
            writes: self.undo.len(),
            events: self.events.len(),
        }
    }

    fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.writes {
            let Some((table, key, previous)) = self.undo.pop() else {
                break;
            };
            let rows = self.pending.entry(table).or_default();
            match previous {
                Some(staged) => rows.insert(key, staged),
                None => rows.remove(&key),
            };
        }
        self.events.truncate(savepoint.events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_storage::StorageOptions;

    const TABLE: &str = ecommerce_domains::listing::LISTINGS;

    fn event() -> Event {
        Event::OrderStatusChanged {
            order_id: 1,
            customer_id: "u".into(),
            from: "a".into(),
            to: "b".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn rolling_back_restores_what_reads_saw_on_disk_and_staged() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(
            &dir.path().join("db"),
            ecommerce_domains::TABLES,
            &StorageOptions::default(),
        )
        .unwrap();
        let key = |k: &'static str| [KeyPart::Str(k)];
        let mut batch = storage.batch();
        for k in ["disk", "disk-deleted"] {
            batch.put(TABLE, &encode_key(&key(k)), &[0]).unwrap();
        }
        storage
            .write(batch, ecommerce_storage::Durability::Sync)
            .unwrap();

        let mut tx = ApplyTx::new(&storage);
        tx.put_raw(TABLE, &key("staged"), vec![1]);
        tx.emit(event());
        let mark = tx.savepoint();
        tx.put_raw(TABLE, &key("staged"), vec![2]);
        tx.put_raw(TABLE, &key("disk"), vec![2]);
        tx.put_raw(TABLE, &key("disk"), vec![3]);
        tx.delete_raw(TABLE, &key("disk-deleted"));
        tx.put_raw(TABLE, &key("new"), vec![2]);
        tx.emit(event());
        assert_eq!(tx.get_raw(TABLE, &key("disk")).unwrap(), Some(vec![3]));
        assert_eq!(tx.scan_raw(TABLE, &[], None, 10).unwrap().len(), 3);
        tx.rollback_to(mark);

        assert_eq!(tx.get_raw(TABLE, &key("staged")).unwrap(), Some(vec![1]));
        assert_eq!(tx.get_raw(TABLE, &key("disk")).unwrap(), Some(vec![0]));
        assert_eq!(
            tx.get_raw(TABLE, &key("disk-deleted")).unwrap(),
            Some(vec![0])
        );
        assert_eq!(tx.get_raw(TABLE, &key("new")).unwrap(), None);
        assert_eq!(tx.scan_raw(TABLE, &[], None, 10).unwrap().len(), 3);
        assert_eq!(tx.events.len(), 1);
        // What reaches the disk is what was staged before the savepoint.
        let mut batch = storage.batch();
        tx.into_batch(&mut batch).unwrap();
        storage
            .write(batch, ecommerce_storage::Durability::Sync)
            .unwrap();
        let on_disk = |k| storage.get(TABLE, &encode_key(&key(k))).unwrap();
        assert_eq!(on_disk("staged"), Some(vec![1]));
        assert_eq!(on_disk("disk"), Some(vec![0]));
        assert_eq!(on_disk("new"), None);
    }
}
