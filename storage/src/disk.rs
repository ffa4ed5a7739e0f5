//! Free space on the data directory's filesystem, watched so that writes
//! can be refused *before* RocksDB runs out of room (a failed write of the
//! Raft log or the state machine stops the replica; a refused request does
//! not).
//!
//! The watermark is the smaller of `min_free_bytes` and `min_free_percent`
//! of the filesystem: 1 GiB or 5 % by default, so a large disk keeps 1 GiB
//! free and a small one 5 %. Below it the watch reads "low" until the free
//! space is back above it by a margin (a tenth of the watermark), so a
//! node hovering around the line does not flap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The free-space state of one directory's filesystem, updated by
/// [`DiskWatch::refresh`] and read lock-free by every write.
#[derive(Debug)]
pub struct DiskWatch {
    path: PathBuf,
    min_free_bytes: u64,
    min_free_percent: u8,
    low: AtomicBool,
    free: AtomicU64,
    total: AtomicU64,
}

/// What a [`DiskWatch::refresh`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    pub total: u64,
    /// The free space below which writes are refused.
    pub watermark: u64,
    pub low: bool,
}

impl DiskWatch {
    /// A watch of `path`'s filesystem (not yet read: it reads "not low").
    pub fn new(path: impl Into<PathBuf>, min_free_bytes: u64, min_free_percent: u8) -> Self {
        Self {
            path: path.into(),
            min_free_bytes,
            min_free_percent: min_free_percent.min(100),
            low: AtomicBool::new(false),
            free: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
        }
    }

    /// True when the free space was below the watermark at the last refresh.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Free bytes at the last refresh.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the filesystem's free space and updates the state.
    pub fn refresh(&self) -> std::io::Result<DiskSpace> {
        let stats = fs4::statvfs(&self.path)?;
        let space = self.judge(stats.available_space(), stats.total_space());
        self.free.store(space.free, Ordering::Relaxed);
        self.total.store(space.total, Ordering::Relaxed);
        self.low.store(space.low, Ordering::Relaxed);
        Ok(space)
    }

    /// Whether `free` of `total` bytes is low, given the previous state.
    fn judge(&self, free: u64, total: u64) -> DiskSpace {
        let percent = total / 100 * u64::from(self.min_free_percent);
        let watermark = self.min_free_bytes.min(percent);
        let low = if self.is_low() {
            free < watermark.saturating_add(watermark / 10)
        } else {
            free < watermark
        };
        DiskSpace {
            free,
            total,
            watermark,
            low,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_watermark_is_the_smaller_of_the_two_and_leaving_it_needs_a_margin() {
        let watch = DiskWatch::new("/", GIB, 5);
        // A 1 TB disk keeps 1 GiB; a 10 GiB disk keeps 5 %.
        assert_eq!(watch.judge(2 * GIB, 1000 * GIB).watermark, GIB);
        assert_eq!(watch.judge(GIB, 10 * GIB).watermark, 10 * GIB / 100 * 5);

        let set = |low: bool| watch.low.store(low, Ordering::Relaxed);
        set(false);
        assert!(!watch.judge(GIB, 1000 * GIB).low, "at the watermark");
        assert!(watch.judge(GIB - 1, 1000 * GIB).low, "below it");
        set(true);
        assert!(
            watch.judge(GIB + GIB / 20, 1000 * GIB).low,
            "within the margin"
        );
        assert!(
            !watch.judge(GIB + GIB / 10, 1000 * GIB).low,
            "above the margin"
        );
    }

    #[test]
    fn a_real_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DiskWatch::new(dir.path(), 0, 0);
        let space = watch.refresh().unwrap();
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        assert!(!space.low && !watch.is_low());
        let impossible = DiskWatch::new(dir.path(), u64::MAX, 100);
        assert!(
            impossible.refresh().unwrap().low,
            "nobody has a whole disk free"
        );
    }
}
