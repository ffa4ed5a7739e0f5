//! The snapshot file: a stream of records holding every state-machine table.
//!
//! ```text
//! magic "ECSNAP01" | u32 header length | header bytes
//! { 0x01 u32 len table-name | 0x02 u32 len key u32 len value }*
//! 0x00 | sha256 of every byte before this tag
//! ```
//!
//! Writing and reading stream through a buffer: a multi-gigabyte state is never
//! held in memory. The header is opaque here (the Raft layer stores the snapshot
//! metadata in it). Records are copied as stored: sealed at rest
//! ([`crate::at_rest`]) with data keys every replica holds, so a snapshot
//! is no more readable than the database it came from.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Batch, Durability, Error, Result, Storage, View};

const MAGIC: &[u8; 8] = b"ECSNAP01";
const TAG_END: u8 = 0;
const TAG_TABLE: u8 = 1;
const TAG_ENTRY: u8 = 2;
/// Largest key, value or header a snapshot record may hold; a larger length
/// can only come from a corrupt file and is refused before allocating.
const MAX_RECORD: usize = 256 << 20;
/// Size at which an import flushes its write batch.
const IMPORT_BATCH_BYTES: usize = 4 << 20;

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)?;
        Ok(())
    }

    fn put_len_prefixed(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| Error::RecordTooLarge(bytes.len()))?;
        self.put(&len.to_le_bytes())?;
        self.put(bytes)
    }
}

impl View<'_> {
    /// Writes every table in `tables` to `out` in the snapshot format and
    /// returns the number of bytes written.
    pub fn export(&self, tables: &[String], header: &[u8], out: impl Write) -> Result<u64> {
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, out),
            hasher: Sha256::new(),
            written: 0,
        };
        w.put(MAGIC)?;
        w.put_len_prefixed(header)?;
        for table in tables {
            w.put(&[TAG_TABLE])?;
            w.put_len_prefixed(table.as_bytes())?;
            self.for_each_stored(table, |k, v| {
                w.put(&[TAG_ENTRY])?;
                w.put_len_prefixed(k)?;
                w.put_len_prefixed(v)
            })?;
        }
        w.put(&[TAG_END])?;
        let digest = w.hasher.finalize_reset();
        w.inner.write_all(&digest)?;
        w.inner.flush()?;
        Ok(w.written + digest.len() as u64)
    }
}

impl View<'_> {
    /// SHA-256 over every record of `tables` in this view, in the snapshot
    /// format's framing (table name, then each key and value, length-prefixed),
    /// so two replicas with equal state have equal digests. Streams; nothing is
    /// held in memory.
    pub fn digest(&self, tables: &[String]) -> Result<[u8; 32]> {
        let mut hasher = Sha256::new();
        let mut put = |tag: u8, bytes: &[&[u8]]| {
            hasher.update([tag]);
            for b in bytes {
                hasher.update((b.len() as u64).to_le_bytes());
                hasher.update(b);
            }
        };
        for table in tables {
            put(TAG_TABLE, &[table.as_bytes()]);
            self.for_each(table, |k, v| {
                put(TAG_ENTRY, &[k, v]);
                Ok(())
            })?;
        }
        put(TAG_END, &[]);
        Ok(hasher.finalize().into())
    }
}

/// One decoded record of a snapshot file.
enum Record {
    Table(String),
    Entry(Vec<u8>, Vec<u8>),
}

/// Streams the records of a snapshot file, checking the checksum at the end.
struct Reader<R> {
    inner: R,
    hasher: Sha256,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Reads the magic and header.
    fn open(inner: R) -> Result<(Self, Vec<u8>)> {
        let mut r = Self {
            inner,
            hasher: Sha256::new(),
            done: false,
        };
        let mut magic = [0u8; 8];
        r.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(Error::corrupt("not a snapshot file (bad magic)"));
        }
        let header = r.take_len_prefixed()?;
        Ok((r, header))
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Error::corrupt_because("truncated snapshot file", e)
            }
            _ => Error::Io(e),
        })?;
        self.hasher.update(&*buf);
        Ok(())
    }

    fn take_len_prefixed(&mut self) -> Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.take(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD {
            return Err(Error::corrupt(format!("record of {len} bytes")));
        }
        let mut buf = vec![0u8; len];
        self.take(&mut buf)?;
        Ok(buf)
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.take(&mut tag)?;
        match tag[0] {
            TAG_TABLE => {
                let name = String::from_utf8(self.take_len_prefixed()?)
                    .map_err(|e| Error::corrupt_because("table name is not UTF-8", e))?;
                Ok(Some(Record::Table(name)))
            }
            TAG_ENTRY => Ok(Some(Record::Entry(
                self.take_len_prefixed()?,
                self.take_len_prefixed()?,
            ))),
            TAG_END => {
                let expected = self.hasher.finalize_reset();
                let mut actual = [0u8; 32];
                self.inner
                    .read_exact(&mut actual)
                    .map_err(|e| Error::corrupt_because("truncated checksum", e))?;
                if expected.as_slice() != actual {
                    return Err(Error::corrupt("checksum mismatch"));
                }
                if self.inner.read(&mut [0u8; 1])? != 0 {
                    return Err(Error::corrupt("bytes after the checksum"));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(Error::corrupt(format!("unknown record tag {other}"))),
        }
    }
}

fn open_file(path: &Path) -> Result<(Reader<BufReader<File>>, Vec<u8>)> {
    Reader::open(BufReader::with_capacity(1 << 20, File::open(path)?))
}

/// Reads only the header of a snapshot file.
pub fn read_header(path: &Path) -> Result<Vec<u8>> {
    Ok(open_file(path)?.1)
}

/// Reads only the header from an open snapshot file (from its current position).
pub fn read_header_from(file: impl Read) -> Result<Vec<u8>> {
    Ok(Reader::open(BufReader::new(file))?.1)
}

/// Reads the whole file, checking its structure and checksum; returns the header.
pub fn verify(path: &Path) -> Result<Vec<u8>> {
    let (mut reader, header) = open_file(path)?;
    while reader.next_record()?.is_some() {}
    Ok(header)
}

impl Storage {
    /// Copies the snapshot file `src` to `dst` with every record as this
    /// storage stores it: a snapshot written before encryption at rest comes
    /// out sealed; a sealed one comes out unchanged.
    pub fn reseal_snapshot(&self, src: &Path, dst: &Path) -> Result<()> {
        let (mut reader, header) = open_file(src)?;
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, File::create(dst)?),
            hasher: Sha256::new(),
            written: 0,
        };
        w.put(MAGIC)?;
        w.put_len_prefixed(&header)?;
        let mut table: Option<String> = None;
        while let Some(record) = reader.next_record()? {
            match record {
                Record::Table(name) => {
                    w.put(&[TAG_TABLE])?;
                    w.put_len_prefixed(name.as_bytes())?;
                    table = Some(name);
                }
                Record::Entry(k, v) => {
                    let cf = table
                        .as_deref()
                        .ok_or_else(|| Error::corrupt("entry before table"))?;
                    let (k, v) = match self.at_rest() {
                        Some(at_rest) => at_rest.to_stored(cf, k, v),
                        None => (k, v),
                    };
                    w.put(&[TAG_ENTRY])?;
                    w.put_len_prefixed(&k)?;
                    w.put_len_prefixed(&v)?;
                }
            }
        }
        w.put(&[TAG_END])?;
        let digest = w.hasher.finalize_reset();
        w.inner.write_all(&digest)?;
        w.inner.flush()?;
        w.inner.get_ref().sync_all()?;
        Ok(())
    }

    /// Replaces every state-machine table with the contents of the snapshot
    /// file at `path` (verify it first with [`verify`]). The tables are cleared
    /// and loaded in several batches, so a crash in the middle leaves a partial
    /// state: callers must record that an import is in progress and redo it on
    /// start-up. `finish` adds the last writes (e.g. clearing that record) to
    /// the final batch, which is fsynced.
    pub fn import(
        &self,
        path: &Path,
        finish: impl FnOnce(&mut Batch<'_>) -> Result<()>,
    ) -> Result<()> {
        let _exclusive = self.lock_for_import();
        let tables = self.state_machine_tables();
        let mut batch = self.batch();
        for table in &tables {
            self.clear_into(&mut batch, table)?;
        }
        self.write(batch, Durability::Buffered)?;

        let (mut reader, _header) = open_file(path)?;
        let mut batch = self.batch();
        let mut batch_bytes = 0usize;
        let mut table: Option<String> = None;
        while let Some(record) = reader.next_record()? {
            match record {
                Record::Table(name) => {
                    if !tables.contains(&name) {
                        return Err(Error::UnknownTable(name));
                    }
                    table = Some(name);
                }
                Record::Entry(k, v) => {
                    let cf = table
                        .as_deref()
                        .ok_or_else(|| Error::corrupt("entry before table"))?;
                    batch_bytes += k.len() + v.len();
                    batch.put_stored(cf, k, v)?;
                    if batch_bytes >= IMPORT_BATCH_BYTES {
                        self.write(
                            std::mem::replace(&mut batch, self.batch()),
                            Durability::Buffered,
                        )?;
                        batch_bytes = 0;
                    }
                }
            }
        }
        finish(&mut batch)?;
        self.write(batch, Durability::Sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StorageOptions, CF_EVENTS, CF_SM_META};

    fn open(dir: &Path) -> Storage {
        Storage::open(dir, &["stock"], &StorageOptions::default()).unwrap()
    }

    #[test]
    fn export_then_import_reproduces_tables_and_drops_old_keys() {
        let src_dir = tempfile::tempdir().unwrap();
        let src = open(src_dir.path());
        let mut b = src.batch();
        for i in 0..1000u64 {
            b.put("stock", &i.to_be_bytes(), format!("v{i}").as_bytes())
                .unwrap();
        }
        b.put(CF_SM_META, b"applied", b"7").unwrap();
        src.write(b, Durability::Sync).unwrap();
        let file = src_dir.path().join("snap");
        let tables = src.state_machine_tables();
        src.with_view(|v| v.export(&tables, b"hdr", File::create(&file).unwrap()))
            .unwrap();
        assert_eq!(verify(&file).unwrap(), b"hdr");

        let dst_dir = tempfile::tempdir().unwrap();
        let dst = open(dst_dir.path());
        let mut b = dst.batch();
        b.put(CF_EVENTS, b"stale", b"x").unwrap();
        b.put("stock", &5000u64.to_be_bytes(), b"stale").unwrap();
        dst.write(b, Durability::Sync).unwrap();
        dst.import(&file, |b| b.put(CF_SM_META, b"done", b"1"))
            .unwrap();

        assert_eq!(dst.get(CF_EVENTS, b"stale").unwrap(), None);
        assert_eq!(dst.get("stock", &5000u64.to_be_bytes()).unwrap(), None);
        assert_eq!(
            dst.get("stock", &999u64.to_be_bytes()).unwrap().as_deref(),
            Some(&b"v999"[..])
        );
        assert_eq!(
            dst.get(CF_SM_META, b"done").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        let all = dst
            .scan(
                "stock",
                (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
                usize::MAX,
            )
            .unwrap();
        assert_eq!(all.len(), 1000);
    }

    #[test]
    fn corrupted_or_truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let mut b = s.batch();
        b.put("stock", b"k", b"v").unwrap();
        s.write(b, Durability::Sync).unwrap();
        let file = dir.path().join("snap");
        let tables = s.state_machine_tables();
        s.with_view(|v| v.export(&tables, b"h", File::create(&file).unwrap()))
            .unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let n = bytes.len();
        bytes[n - 40] ^= 0xFF;
        std::fs::write(&file, &bytes).unwrap();
        assert!(matches!(verify(&file), Err(Error::CorruptSnapshot { .. })));
        std::fs::write(&file, &bytes[..n / 2]).unwrap();
        assert!(matches!(verify(&file), Err(Error::CorruptSnapshot { .. })));
        std::fs::write(&file, b"garbage!garbage").unwrap();
        assert!(matches!(verify(&file), Err(Error::CorruptSnapshot { .. })));
    }
}
