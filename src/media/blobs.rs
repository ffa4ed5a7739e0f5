//! [`BlobStore`]: this node's content-addressed files under `<data_dir>/blobs`.
//!
//! ```text
//! blobs/sha256/ab/cd/abcd…           the bytes whose SHA-256 is abcd…
//! blobs/thumbnails/256/ab/cd/abcd…   a derived thumbnail (cache; rebuilt if lost)
//! blobs/tmp/                         files being written (emptied at start)
//! ```
//!
//! A file is written to `tmp/`, fsynced, renamed into place and its directory
//! fsynced, so a crash leaves either no file or a whole one. A blob is
//! verified against its name whenever it is read: a damaged file is removed
//! and counts as missing, so the node fetches it again from a peer.
//!
//! Blocking I/O: call from `spawn_blocking`. Nothing here knows about Raft or
//! HTTP.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ecommerce_domains::media::ContentHash;
use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes` as a [`ContentHash`].
pub fn digest(bytes: &[u8]) -> ContentHash {
    ContentHash::from_digest(&Sha256::digest(bytes).into())
}

/// A node's blob directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: Arc<PathBuf>,
}

impl BlobStore {
    /// Opens (creating) `<data_dir>/blobs` and removes unfinished writes.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        let _ = fs::remove_dir_all(root.join("tmp"));
        for dir in ["sha256", "thumbnails", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        Ok(Self {
            root: Arc::new(root),
        })
    }

    /// Where the blob `hash` lives: `sha256/<2 hex>/<2 hex>/<hash>`, so no
    /// directory holds more than 256 entries per level above the files.
    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        self.fanned("sha256", hash)
    }

    /// Where the thumbnail of `hash` at `size` pixels lives.
    pub fn thumbnail_path(&self, hash: &ContentHash, size: u32) -> PathBuf {
        self.fanned(&format!("thumbnails/{size}"), hash)
    }

    fn fanned(&self, area: &str, hash: &ContentHash) -> PathBuf {
        let h = hash.as_str();
        self.root.join(area).join(&h[0..2]).join(&h[2..4]).join(h)
    }

    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.path(hash).is_file()
    }

    /// The blobs stored here whose file was last written before `before`
    /// (files not named by a hash are skipped).
    pub fn stored_before(&self, before: std::time::SystemTime) -> io::Result<Vec<ContentHash>> {
        let mut found = Vec::new();
        for first in fs::read_dir(self.root.join("sha256"))? {
            for second in fs::read_dir(first?.path())? {
                for file in fs::read_dir(second?.path())? {
                    let file = file?;
                    let old = file.metadata()?.modified()? < before;
                    let hash = file
                        .file_name()
                        .to_str()
                        .and_then(|n| ContentHash::parse(n).ok());
                    if let (true, Some(hash)) = (old, hash) {
                        found.push(hash);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes blob `hash` and its cached thumbnails.
    pub fn remove(&self, hash: &ContentHash) -> io::Result<()> {
        match fs::remove_file(self.path(hash)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Ok(sizes) = fs::read_dir(self.root.join("thumbnails")) {
            for size in sizes.flatten() {
                let h = hash.as_str();
                let _ = fs::remove_file(size.path().join(&h[0..2]).join(&h[2..4]).join(h));
            }
        }
        Ok(())
    }

    /// Stores `bytes` as the blob `hash`, refusing bytes of another hash.
    /// Storing a blob that is already present (and intact) does nothing.
    pub fn put(&self, hash: &ContentHash, bytes: &[u8]) -> Result<(), BlobError> {
        let actual = digest(bytes);
        if &actual != hash {
            return Err(BlobError::Mismatch {
                expected: hash.clone(),
                actual,
            });
        }
        if self.get(hash)?.is_some() {
            // Stored again: not an orphan for the next hour (see
            // `fetch::remove_orphans`), even if its record is yet to commit.
            File::options()
                .write(true)
                .open(self.path(hash))?
                .set_modified(std::time::SystemTime::now())?;
            return Ok(());
        }
        self.write_atomically(&self.path(hash), bytes)?;
        Ok(())
    }

    /// The verified bytes of blob `hash`, or `None` if this node lacks them.
    /// A file whose content does not match its name is removed (and logged).
    pub fn get(&self, hash: &ContentHash) -> Result<Option<Bytes>, BlobError> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let actual = digest(&bytes);
        if &actual != hash {
            tracing::error!(path = %path.display(), %actual, "blob damaged on disk; removing it to fetch it again");
            metrics::counter!("media_blobs_damaged_total").increment(1);
            fs::remove_file(&path)?;
            return Ok(None);
        }
        Ok(Some(Bytes::from(bytes)))
    }

    /// The cached thumbnail, if any. Thumbnails are derived data: not
    /// verified, and rebuilt from the blob when missing.
    pub fn get_thumbnail(&self, hash: &ContentHash, size: u32) -> io::Result<Option<Bytes>> {
        match fs::read(self.thumbnail_path(hash, size)) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn put_thumbnail(&self, hash: &ContentHash, size: u32, bytes: &[u8]) -> io::Result<()> {
        self.write_atomically(&self.thumbnail_path(hash, size), bytes)
    }

    /// Temp file, fsync, rename, fsync of the directory (and of the new
    /// directories above it, so the rename itself is durable).
    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = target.parent().expect("blob paths have a parent");
        let created = missing_ancestors(dir, &self.root);
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(target).map_err(|e| e.error)?;
        sync_dir(dir)?;
        for parent in created.iter().filter_map(|d| d.parent()) {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

/// Directories between `root` and `dir` (inclusive) that do not exist yet.
fn missing_ancestors(dir: &Path, root: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| *d != root)
        .filter(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("expected bytes with SHA-256 {expected}, got {actual}")]
    Mismatch {
        expected: ContentHash,
        actual: ContentHash,
    },
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_fanned_out_by_their_hash_and_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let bytes = b"hello blobs";
        let hash = digest(bytes);
        let h = hash.as_str();
        assert_eq!(
            store.path(&hash),
            dir.path()
                .join(format!("blobs/sha256/{}/{}/{h}", &h[..2], &h[2..4]))
        );
        assert_eq!(
            store.thumbnail_path(&hash, 64),
            dir.path()
                .join(format!("blobs/thumbnails/64/{}/{}/{h}", &h[..2], &h[2..4]))
        );
        assert!(!store.contains(&hash));
        assert_eq!(store.get(&hash).unwrap(), None);
        store.put(&hash, bytes).unwrap();
        store.put(&hash, bytes).unwrap();
        assert!(store.contains(&hash));
        assert_eq!(store.get(&hash).unwrap().as_deref(), Some(&bytes[..]));
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn bytes_of_another_hash_are_refused_and_damage_is_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let hash = digest(b"the real bytes");
        let err = store.put(&hash, b"other bytes").unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }), "{err}");
        assert!(!store.contains(&hash));

        store.put(&hash, b"the real bytes").unwrap();
        fs::write(store.path(&hash), b"the real bytez").unwrap();
        assert_eq!(store.get(&hash).unwrap(), None, "damage counts as missing");
        assert!(!store.contains(&hash), "the damaged file is removed");
        store.put(&hash, b"the real bytes").unwrap();
        assert!(store.get(&hash).unwrap().is_some());
    }

    #[test]
    fn unfinished_writes_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        BlobStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("blobs/tmp/.tmpXYZ"), b"half").unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn storing_known_bytes_again_restarts_the_orphan_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let bytes = b"an upload whose registration may be on its way";
        let hash = digest(bytes);
        store.put(&hash, bytes).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        File::options()
            .write(true)
            .open(store.path(&hash))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(
            store.stored_before(an_hour_ago).unwrap(),
            vec![hash.clone()]
        );
        store.put(&hash, bytes).unwrap();
        assert!(store.stored_before(an_hour_ago).unwrap().is_empty());
        store.put_thumbnail(&hash, 64, b"thumb").unwrap();
        store.remove(&hash).unwrap();
        assert!(!store.contains(&hash));
        assert!(
            store.get_thumbnail(&hash, 64).unwrap().is_none(),
            "thumbnails go too"
        );
        store.remove(&hash).unwrap();
    }
}
