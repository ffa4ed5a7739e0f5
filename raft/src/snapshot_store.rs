//! Snapshot files on disk: `current.snap` is the latest complete snapshot;
//! `building-*` and `incoming-*` are being written. A file becomes
//! `current.snap` by an atomic rename after it was fsynced.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ecommerce_storage::{codec, snapshot};

use crate::types::SnapshotMeta;

pub struct SnapshotStore {
    dir: PathBuf,
    publish: Mutex<()>,
    seq: AtomicU64,
}

impl SnapshotStore {
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            publish: Mutex::new(()),
            seq: AtomicU64::new(0),
        })
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join("current.snap")
    }

    /// A fresh path for a snapshot being written (`kind` is building or incoming).
    pub fn temp_path(&self, kind: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{kind}-{}-{n}.snap", std::process::id()))
    }

    /// Removes leftovers of snapshots that were being written when the process
    /// stopped, except `keep`.
    pub fn remove_temporaries(&self, keep: Option<&Path>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if Some(path.as_path()) != keep && path != self.current_path() {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// fsyncs the directory, making renames and new files in it durable.
    pub fn sync_dir(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// The metadata of the current snapshot, if there is one.
    pub fn current_meta(&self) -> Result<Option<SnapshotMeta>, ecommerce_storage::Error> {
        match snapshot::read_header(&self.current_path()) {
            Ok(header) => Ok(Some(codec::decode(&header)?)),
            Err(ecommerce_storage::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the fsynced file at `path` the current snapshot unless the current
    /// one is newer. Returns whether it did.
    pub fn publish(
        &self,
        path: &Path,
        meta: &SnapshotMeta,
    ) -> Result<bool, ecommerce_storage::Error> {
        let _guard = self.publish.lock().expect("snapshot publish lock");
        if let Some(current) = self.current_meta()? {
            if current.last_log_id > meta.last_log_id {
                std::fs::remove_file(path)?;
                return Ok(false);
            }
        }
        std::fs::rename(path, self.current_path())?;
        self.sync_dir()?;
        Ok(true)
    }
}

/// Seals the records of the current snapshot in `dir` as `storage` stores
/// them (after a database from before encryption at rest was sealed), so
/// that no plaintext copy of the state stays in the snapshot directory.
pub fn reseal_current_snapshot(
    storage: &ecommerce_storage::Storage,
    dir: &std::path::Path,
) -> Result<(), ecommerce_storage::Error> {
    let store = SnapshotStore::open(dir.to_path_buf())?;
    let current = store.current_path();
    if !current.exists() {
        return Ok(());
    }
    let temp = store.temp_path("resealing");
    storage.reseal_snapshot(&current, &temp)?;
    std::fs::rename(&temp, &current)?;
    store.sync_dir()?;
    Ok(())
}
