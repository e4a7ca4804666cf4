//! The extensions' in-memory caches, held by the store as one opaque value.
//!
//! The store names no class: it keeps a [`Caches`] and calls [`Caches::forget_erased`] when
//! an erasure takes its lock, and each class reaches its own cache through
//! [`crate::store::Store::caches`]. A cache holds nothing the store does not also hold.

use super::mam::cache::ArchiveIds;

/// Every extension's cache.
#[derive(Default)]
pub(crate) struct Caches {
    /// The 1-1 archive id of each account that appended (see [`ArchiveIds`]).
    pub(crate) archive_ids: ArchiveIds,
}

impl Caches {
    /// Forgets whatever an erasure may make stale. Called with the erase lock held for
    /// writing, so no writer fills a cache again before the erasure commits.
    pub(crate) fn forget_erased(&self) {
        self.archive_ids.clear();
    }
}
