//! Encryption at rest: every value this crate stores (Raft log entries, Raft
//! and state-machine metadata, idempotency records, events and every domain
//! table) is sealed by a [`Sealer`] the node provides, bound to its column
//! family and key; the keys of *blind* tables (looked up only by exact key,
//! such as e-mail addresses) are replaced by a keyed hash.
//!
//! A stored value is `FORMAT_SEALED_V1 | sealed bytes`: the first byte is the
//! format version, so a later change of cipher or codec can be read beside
//! the old one (docs/security.md, "Formats"). The sealed bytes are opaque
//! here; the node's vault makes and opens them with a data key that every
//! replica holds, so values travel unchanged in snapshots.
//!
//! A database written before encryption is sealed in place the first time
//! [`Storage::seal_at_rest`] runs on it (idempotent, resumable), then
//! compacted so that no plaintext stays in its files.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use rocksdb::{CompactOptions, IteratorMode};

use crate::{Durability, Error, Result, Storage};

/// First byte of a value sealed by the [`Sealer`] (format version 1).
pub const FORMAT_SEALED_V1: u8 = 0xE1;
/// Key, in RocksDB's default column family, recording that every value of
/// this database is sealed.
const MARKER: &[u8] = b"sealed_at_rest";
/// Size at which the migration writes its batch.
const MIGRATE_BATCH_BYTES: usize = 4 << 20;

/// Seals and opens values, and hashes the keys of blind tables, with data
/// keys this crate never sees.
pub trait Sealer: Send + Sync + 'static {
    /// `plaintext`, sealed and bound to `aad`.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8>;
    /// What [`Sealer::seal`] sealed with the same `aad`; `None` when `sealed`
    /// does not open (another record's value, altered bytes, another key).
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>>;
    /// The key stored for `key` in blind table `table`: equal keys give
    /// equal results, and nobody without the key can tell which key it is.
    fn blind(&self, table: &str, key: &[u8]) -> Vec<u8>;
}

/// The sealer and the blind tables of a sealed database.
pub(crate) struct AtRest {
    sealer: Arc<dyn Sealer>,
    blind: HashSet<String>,
}

/// What sealing a database in place did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Values found in plain text and sealed.
    pub sealed: u64,
    /// Whether the database had been sealed before (nothing to do).
    pub already: bool,
}

/// The associated data binding a value to where it is stored.
fn aad(cf: &str, stored_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + cf.len() + stored_key.len());
    aad.extend_from_slice(b"ecommerce/at-rest/v1\0");
    aad.extend_from_slice(&(cf.len() as u32).to_be_bytes());
    aad.extend_from_slice(cf.as_bytes());
    aad.extend_from_slice(stored_key);
    aad
}

impl AtRest {
    pub(crate) fn is_blind(&self, cf: &str) -> bool {
        self.blind.contains(cf)
    }

    /// The key as stored: itself, or its keyed hash in a blind table.
    pub(crate) fn stored_key<'k>(&self, cf: &str, key: &'k [u8]) -> Cow<'k, [u8]> {
        if self.is_blind(cf) {
            Cow::Owned(self.sealer.blind(cf, key))
        } else {
            Cow::Borrowed(key)
        }
    }

    pub(crate) fn seal(&self, cf: &str, stored_key: &[u8], value: &[u8]) -> Vec<u8> {
        let sealed = self.sealer.seal(&aad(cf, stored_key), value);
        let mut out = Vec::with_capacity(1 + sealed.len());
        out.push(FORMAT_SEALED_V1);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a stored value, or `None` when it is not a value
    /// sealed for this record.
    pub(crate) fn try_open(&self, cf: &str, stored_key: &[u8], stored: &[u8]) -> Option<Vec<u8>> {
        match stored.split_first() {
            Some((&FORMAT_SEALED_V1, sealed)) => self.sealer.open(&aad(cf, stored_key), sealed),
            _ => None,
        }
    }

    pub(crate) fn open(&self, cf: &str, stored_key: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
        self.try_open(cf, stored_key, stored)
            .ok_or_else(|| Error::Unsealable(cf.to_string()))
    }

    /// A record as it must be stored: unchanged when it is stored already
    /// (sealed for this key), else the plain record sealed (and its key
    /// blinded). Lets an import take snapshots from before encryption.
    pub(crate) fn to_stored(&self, cf: &str, key: Vec<u8>, value: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        if self.try_open(cf, &key, &value).is_some() {
            return (key, value);
        }
        self.seal_plain(cf, &key, &value)
    }

    /// A plain record sealed (and its key blinded), as it must be stored.
    fn seal_plain(&self, cf: &str, key: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let key = self.stored_key(cf, key).into_owned();
        let value = self.seal(cf, &key, value);
        (key, value)
    }
}

impl Storage {
    pub(crate) fn at_rest(&self) -> Option<&AtRest> {
        self.at_rest.get()
    }

    /// Whether every value of this database is sealed (set once by
    /// [`Storage::seal_at_rest`]; such a database cannot be read without it).
    pub fn is_sealed_at_rest(&self) -> Result<bool> {
        Ok(self.db.get(MARKER)?.is_some())
    }

    /// From now on seals every value written and opens every value read with
    /// `sealer`, and blinds the keys of `blind_tables` (read only by exact
    /// key). Seals in place whatever is still plain text (a database from
    /// before encryption, or an interrupted earlier run), then compacts every
    /// file. Call it once, before the storage is used; when it sealed
    /// anything, close and open the storage again before use: RocksDB then
    /// starts a new MANIFEST (the old one names the plain keys that bounded
    /// the old files) and deletes the write-ahead logs of before.
    pub fn seal_at_rest(
        &self,
        sealer: Arc<dyn Sealer>,
        blind_tables: &[&str],
    ) -> Result<Migration> {
        let at_rest = AtRest {
            sealer,
            blind: blind_tables.iter().map(|t| t.to_string()).collect(),
        };
        if self.at_rest.set(at_rest).is_err() {
            return Err(Error::AlreadySealed);
        }
        if self.is_sealed_at_rest()? {
            return Ok(Migration {
                sealed: 0,
                already: true,
            });
        }
        let at_rest = self.at_rest().unwrap_or_else(|| unreachable!("set above"));
        let mut sealed = 0u64;
        for cf in self.all_tables() {
            let handle = self.cf(&cf)?;
            let mut batch = self.batch();
            let mut bytes = 0usize;
            for item in self.db.iterator_cf(handle, IteratorMode::Start) {
                let (key, value) = item?;
                if at_rest.try_open(&cf, &key, &value).is_some() {
                    continue;
                }
                let (stored_key, stored) = at_rest.seal_plain(&cf, &key, &value);
                if stored_key != *key {
                    batch.inner.delete_cf(handle, &key);
                }
                bytes += stored_key.len() + stored.len();
                batch.inner.put_cf(handle, stored_key, stored);
                sealed += 1;
                if bytes >= MIGRATE_BATCH_BYTES {
                    self.write(
                        std::mem::replace(&mut batch, self.batch()),
                        Durability::Buffered,
                    )?;
                    bytes = 0;
                }
            }
            self.write(batch, Durability::Buffered)?;
        }
        let mut done = self.batch();
        done.inner.put(MARKER, [FORMAT_SEALED_V1]);
        self.write(done, Durability::Sync)?;
        if sealed > 0 {
            self.compact_all()?;
        }
        Ok(Migration {
            sealed,
            already: false,
        })
    }

    /// Flushes every memtable and rewrites every file of every column
    /// family, so that values overwritten or deleted before are gone from
    /// disk (as far as the file system lets go of them).
    pub fn compact_all(&self) -> Result<()> {
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for cf in self.all_tables() {
            let handle = self.cf(&cf)?;
            self.db.flush_cf(handle)?;
            self.db
                .compact_range_cf_opt(handle, None::<&[u8]>, None::<&[u8]>, &options);
        }
        // The default column family holds the marker.
        self.db.flush()?;
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Every column family this crate made: the Raft log and metadata and
    /// the state machine's tables.
    fn all_tables(&self) -> Vec<String> {
        [crate::CF_RAFT_LOG, crate::CF_RAFT_META]
            .iter()
            .map(|s| s.to_string())
            .chain(self.state_machine_tables())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageOptions;
    use std::ops::Bound;
    use std::path::Path;

    /// A toy sealer for this crate's tests: XOR with a byte and a checksum
    /// over the associated data (the real one is AES-256-GCM in the node).
    struct Xor;

    impl Sealer for Xor {
        fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
            let mut out: Vec<u8> = plaintext.iter().map(|b| b ^ 0x5A).collect();
            out.extend_from_slice(&checksum(aad, plaintext).to_be_bytes());
            out
        }
        fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
            let (body, sum) = sealed.split_at(sealed.len().checked_sub(8)?);
            let plain: Vec<u8> = body.iter().map(|b| b ^ 0x5A).collect();
            (checksum(aad, &plain).to_be_bytes() == sum).then_some(plain)
        }
        fn blind(&self, table: &str, key: &[u8]) -> Vec<u8> {
            let mut out = b"blind:".to_vec();
            out.extend_from_slice(&checksum(table.as_bytes(), key).to_be_bytes());
            out
        }
    }

    fn checksum(a: &[u8], b: &[u8]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (a, b).hash(&mut h);
        h.finish()
    }

    fn open(dir: &Path) -> Storage {
        Storage::open(dir, &["stock", "by_email"], &StorageOptions::default()).unwrap()
    }

    fn raw(s: &Storage, cf: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        s.db.iterator_cf(s.cf(cf).unwrap(), IteratorMode::Start)
            .map(|i| i.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }

    #[test]
    fn plain_data_is_sealed_in_place_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            let mut b = s.batch();
            b.put("stock", b"sku-1", b"secret stock").unwrap();
            b.put("by_email", b"ada@example.com", b"user-1").unwrap();
            b.put(crate::CF_RAFT_LOG, &7u64.to_be_bytes(), b"entry")
                .unwrap();
            s.write(b, Durability::Sync).unwrap();
        }
        let s = open(dir.path());
        assert!(!s.is_sealed_at_rest().unwrap());
        let m = s.seal_at_rest(Arc::new(Xor), &["by_email"]).unwrap();
        assert_eq!(m.sealed, 3);
        assert!(s.is_sealed_at_rest().unwrap());
        for cf in ["stock", "by_email", crate::CF_RAFT_LOG] {
            for (k, v) in raw(&s, cf) {
                assert_eq!(v[0], FORMAT_SEALED_V1, "{cf}");
                assert!(!k.starts_with(b"ada"), "the e-mail is still a key");
            }
        }
        assert_eq!(
            s.get("stock", b"sku-1").unwrap().as_deref(),
            Some(&b"secret stock"[..])
        );
        assert_eq!(
            s.get("by_email", b"ada@example.com").unwrap().as_deref(),
            Some(&b"user-1"[..])
        );
        assert_eq!(s.get("by_email", b"bob@example.com").unwrap(), None);
        let log = s.last(crate::CF_RAFT_LOG).unwrap().unwrap();
        assert_eq!(log, (7u64.to_be_bytes().to_vec(), b"entry".to_vec()));

        // A value moved to another key no longer opens.
        let (_, sealed) = raw(&s, "stock").remove(0);
        let mut b = s.batch();
        b.inner.put_cf(s.cf("stock").unwrap(), b"sku-2", &sealed);
        s.write(b, Durability::Sync).unwrap();
        assert!(matches!(
            s.get("stock", b"sku-2"),
            Err(Error::Unsealable(cf)) if cf == "stock"
        ));
    }

    /// A snapshot or backup from before encryption (plain values, plain
    /// keys) is sealed as it is imported, and a snapshot file resealed holds
    /// no plaintext and imports alike.
    #[test]
    fn a_plain_snapshot_is_sealed_on_import_and_on_reseal() {
        let dir = tempfile::tempdir().unwrap();
        let plain = open(&dir.path().join("plain"));
        let mut b = plain.batch();
        b.put("stock", b"sku-1", b"secret stock").unwrap();
        b.put("by_email", b"ada@example.com", b"user-1").unwrap();
        plain.write(b, Durability::Sync).unwrap();
        let file = dir.path().join("legacy.snap");
        let tables = plain.state_machine_tables();
        plain
            .with_view(|v| v.export(&tables, b"h", std::fs::File::create(&file).unwrap()))
            .unwrap();

        let sealed = open(&dir.path().join("sealed"));
        sealed.seal_at_rest(Arc::new(Xor), &["by_email"]).unwrap();
        sealed.import(&file, |_| Ok(())).unwrap();
        let read = |s: &Storage| {
            (
                s.get("stock", b"sku-1").unwrap(),
                s.get("by_email", b"ada@example.com").unwrap(),
            )
        };
        let expected = (Some(b"secret stock".to_vec()), Some(b"user-1".to_vec()));
        assert_eq!(read(&sealed), expected);
        for cf in ["stock", "by_email"] {
            for (k, v) in raw(&sealed, cf) {
                assert_eq!(v[0], FORMAT_SEALED_V1, "{cf}");
                assert!(!k.starts_with(b"ada"), "the e-mail is still a key");
            }
        }

        let resealed = dir.path().join("resealed.snap");
        sealed.reseal_snapshot(&file, &resealed).unwrap();
        let bytes = std::fs::read(&resealed).unwrap();
        for secret in [&b"secret stock"[..], b"ada@example.com"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
        }
        let again = open(&dir.path().join("again"));
        again.seal_at_rest(Arc::new(Xor), &["by_email"]).unwrap();
        again.import(&resealed, |_| Ok(())).unwrap();
        assert_eq!(read(&again), expected);
    }

    #[test]
    fn sealing_again_is_a_no_op_and_new_writes_are_sealed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            s.seal_at_rest(Arc::new(Xor), &["by_email"]).unwrap();
            let mut b = s.batch();
            b.put("stock", b"a", b"1").unwrap();
            b.put("by_email", b"x@example.com", b"u").unwrap();
            s.write(b, Durability::Sync).unwrap();
            assert!(matches!(
                s.seal_at_rest(Arc::new(Xor), &[]),
                Err(Error::AlreadySealed)
            ));
        }
        let s = open(dir.path());
        let m = s.seal_at_rest(Arc::new(Xor), &["by_email"]).unwrap();
        assert!(m.already);
        let rows = s
            .scan("stock", (Bound::Unbounded, Bound::Unbounded), 10)
            .unwrap();
        assert_eq!(rows, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(
            s.get("by_email", b"x@example.com").unwrap().as_deref(),
            Some(&b"u"[..])
        );
        let mut b = s.batch();
        b.delete("by_email", b"x@example.com").unwrap();
        s.write(b, Durability::Sync).unwrap();
        assert!(raw(&s, "by_email").is_empty());
        assert!(matches!(
            s.scan("by_email", (Bound::Unbounded, Bound::Unbounded), 10),
            Err(Error::BlindScan(_))
        ));
    }
}
