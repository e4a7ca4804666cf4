//! The free-space reserve: sled must never run out of space in the middle of its own writes.

use std::path::Path;

use crate::error::{Error, Result};

/// Refuses new data while the filesystem holding the store has less free space than the
/// reserve, so that sled never runs out of space in the middle of its own writes: an erasure,
/// the archive sweep, sled's log and snapshots, and the recovery at the next open still have
/// room. sled 0.34 that hit ENOSPC while writing its log refused to reopen the store as
/// damaged in 5 of 7 runs; with the reserve no ingest reaches that point.
///
/// `statvfs` is called at most every [`SpaceGuard::RELAXED`] while free space is over
/// [`SpaceGuard::NEAR`] times the reserve, and before every write below that.
pub(super) struct SpaceGuard {
    /// Bytes kept free (0: no reserve).
    reserve: u64,
    /// Nanoseconds since `epoch` before which the cached answer holds.
    next_check: std::sync::atomic::AtomicU64,
    /// Free bytes at the last check.
    free: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl SpaceGuard {
    /// How long a check holds while space is plentiful.
    const RELAXED: std::time::Duration = std::time::Duration::from_millis(250);
    /// Below this many reserves of free space, every write checks.
    const NEAR: u64 = 16;

    pub(super) fn new(reserve: u64) -> Self {
        SpaceGuard {
            reserve,
            next_check: std::sync::atomic::AtomicU64::new(0),
            free: std::sync::atomic::AtomicU64::new(u64::MAX),
            epoch: std::time::Instant::now(),
        }
    }

    /// Free bytes for an unprivileged writer, or `None` when the filesystem does not say.
    fn free_bytes(path: &Path) -> Option<u64> {
        rustix::fs::statvfs(path)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// `Err(LowSpace)` when less than the reserve plus `extra` bytes is free.
    pub(super) fn check(&self, path: &Path, extra: u64) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.reserve == 0 {
            return Ok(());
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut free = self.free.load(Relaxed);
        if now >= self.next_check.load(Relaxed) {
            free = Self::free_bytes(path).unwrap_or(u64::MAX);
            self.free.store(free, Relaxed);
            let hold = if free / Self::NEAR > self.reserve.saturating_add(extra) {
                u64::try_from(Self::RELAXED.as_nanos()).unwrap_or(u64::MAX)
            } else {
                0
            };
            self.next_check.store(now.saturating_add(hold), Relaxed);
        }
        if free < self.reserve.saturating_add(extra) {
            return Err(Error::LowSpace {
                path: path.to_path_buf(),
                free,
                reserve: self.reserve,
            });
        }
        Ok(())
    }
}

/// Bytes sled may write per logical byte of a large batch (see [`super::SledEngine`]).
pub(super) const SLED_WRITE_FACTOR: u64 = 4;

/// The default reserve for a filesystem of `total` bytes: 5 %, at least 4 MiB (a chunk of
/// [`crate::ext::mam::Mam::append_bulk`] and a few sled segments) and at most 64 MiB.
pub(crate) fn default_reserve(total: u64) -> u64 {
    (total / 20).clamp(4 << 20, 64 << 20)
}

pub(super) fn reserve_for(path: &Path, configured: Option<u64>) -> u64 {
    configured.unwrap_or_else(|| {
        rustix::fs::statvfs(path).map_or(0, |s| {
            default_reserve(s.f_blocks.saturating_mul(s.f_frsize))
        })
    })
}
