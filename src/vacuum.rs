//! Physical erasure on PostgreSQL: [`vacuum`], what `compact` and `unregister --purge` run
//! there instead of copying a data directory.
//!
//! An erasure's sweep deletes rows; PostgreSQL keeps a deleted row's tuple in the table's
//! pages (a dead tuple) until a vacuum removes it. `unregister --purge` runs a plain
//! `VACUUM` of the store's tables: it removes the dead tuples and their index entries
//! without blocking readers or writers, so it is safe on a live store. `compact` runs
//! `VACUUM (FULL)`: every table is written into new files and the old files deleted, so
//! the space returns to the filesystem and no byte of a removed row stays in the table's
//! files; it locks each table against reads and writes while that table is rewritten, as
//! sled's compaction needs its directory to itself. Where erased bytes still live after
//! either (WAL, standbys, base backups, dumps) is in the README ("Physical erasure on
//! PostgreSQL").

use crate::error::Result;
use crate::store::Store;

/// What [`vacuum`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VacuumSummary {
    /// `VACUUM (FULL)` (tables rewritten into new files) rather than a plain `VACUUM`.
    pub full: bool,
    /// Tables vacuumed.
    pub tables: usize,
    /// Bytes of the store's tables (with indexes and TOAST) before.
    pub size_before: u64,
    /// Bytes of the store's tables after.
    pub size_after: u64,
}

impl std::fmt::Display for VacuumSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.full {
            "VACUUM (FULL): rewritten into new files"
        } else {
            "VACUUM: dead rows removed in place"
        };
        write!(
            f,
            "vacuumed {} tables ({how}); size on disk {} -> {} bytes",
            self.tables, self.size_before, self.size_after
        )
    }
}

/// Vacuums every table of a store on PostgreSQL (`full`: `VACUUM (FULL)`; see the module
/// docs for which and why). Refused on other engines.
pub fn vacuum(store: &Store, full: bool) -> Result<VacuumSummary> {
    let size_before = store.size_on_disk()?;
    // Finished sweeps first: rows still queued for deletion are not dead yet.
    crate::gdpr::finish_sweeps(store)?;
    let tables = store.engine().vacuum(full)?;
    let size_after = store.size_on_disk()?;
    Ok(VacuumSummary {
        full,
        tables,
        size_before,
        size_after,
    })
}
