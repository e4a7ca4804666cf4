//! The extension registry: one entry per data class, walked by both retrieval and erasure.
//!
//! Each entry claims the keyspaces it owns, names its CSV tables, streams the rows it holds
//! about a subject, and plans what erasing that subject removes and keeps. Because
//! `EXTENSIONS` is the single list that `gdpr` iterates, and a test checks that every tree
//! the store opens is claimed here, no keyspace can be forgotten by export or erase.

use std::collections::BTreeMap;

use sled::IVec;

use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

pub mod accounts;
pub mod blocklist;
pub mod generic;
pub mod inbox;
pub mod last;
pub mod mam;
pub(crate) mod mam_indexes;
pub mod offline;
pub mod privacy;
pub mod private;
pub mod pubsub;
pub mod roster;
pub mod scram;
pub mod vcard;

/// One CSV file of an export: its name and header row.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// File name inside the zip, e.g. `roster.csv`.
    pub file: &'static str,
    /// The header row: MongooseIM's columns first, then jidstore's.
    pub header: &'static [&'static str],
}

/// One CSV row, cells in header order.
pub type Row = Vec<String>;

/// Receives rows as they are read, so exports never hold a whole class in memory.
pub type Emit<'a> = &'a mut dyn FnMut(Row) -> Result<()>;

/// Hands an owned row to a cell receiver.
pub(crate) fn emit_owned(emit: EmitCells<'_>, row: &Row) -> Result<()> {
    let cells: Vec<&str> = row.iter().map(String::as_str).collect();
    emit(&cells)
}

/// Receives rows as borrowed cells (see `Extension::cells`).
pub type EmitCells<'a> = &'a mut dyn FnMut(&[&str]) -> Result<()>;

/// Something erasure keeps, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The table (CSV file stem) the rows belong to.
    pub class: &'static str,
    /// How many rows are kept, when known without a full scan.
    pub rows: Option<u64>,
    /// Why they are kept.
    pub reason: &'static str,
}

/// What erasing a subject will do: keys removed in the commit, archives swept afterwards,
/// and the receipt's counts.
#[derive(Debug, Default)]
pub struct RemovalPlan {
    /// Keys removed by the one atomic commit.
    pub(crate) removes: Vec<(Keyspace, IVec)>,
    /// 1-1 archive ids whose records are deleted after the commit, in bounded chunks.
    pub(crate) sweeps: Vec<u64>,
    /// Rows removed per table (CSV file stem).
    pub removed: BTreeMap<&'static str, u64>,
    /// What is kept, and why.
    pub kept: Vec<Kept>,
}

impl RemovalPlan {
    /// Schedules one key for removal in the commit.
    pub(crate) fn remove(&mut self, ks: Keyspace, key: impl Into<IVec>) {
        self.removes.push((ks, key.into()));
    }

    /// Counts `n` removed rows of `class`.
    pub(crate) fn count(&mut self, class: &'static str, n: u64) {
        *self.removed.entry(class).or_default() += n;
    }

    /// Records that rows of `class` are kept.
    #[allow(
        dead_code,
        reason = "used by the mam and pubsub classes, built on another branch"
    )]
    pub(crate) fn keep(&mut self, class: &'static str, rows: Option<u64>, reason: &'static str) {
        self.kept.push(Kept {
            class,
            rows,
            reason,
        });
    }
}

/// A data class: what it stores, how it is exported and how it is erased.
pub(crate) trait Extension: Sync {
    /// The class name used in receipts and docs.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the registry tests only")
    )]
    fn name(&self) -> &'static str;
    /// The keyspaces this class owns. Every keyspace is owned by exactly one class.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the registry tests only")
    )]
    fn keyspaces(&self) -> &'static [Keyspace];
    /// The CSV tables this class exports.
    fn tables(&self) -> &'static [Table];
    /// Streams the rows of `tables()[table]` held about `subject`, in a deterministic order.
    fn rows(&self, store: &Store, subject: &BareJid, table: usize, emit: Emit<'_>) -> Result<()>;
    /// The same rows as [`Extension::rows`], as borrowed cells: what the export writes. A
    /// class with large tables overrides it to hand out cells straight from the stored bytes
    /// (the 1-1 archive does), instead of a `String` per cell.
    fn cells(
        &self,
        store: &Store,
        subject: &BareJid,
        table: usize,
        emit: EmitCells<'_>,
    ) -> Result<()> {
        self.rows(store, subject, table, &mut |row| emit_owned(emit, &row))
    }
    /// Adds to `plan` everything erasing `subject` removes from this class, and what it keeps.
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()>;
}

/// Every data class. Export writes their tables in this order; erasure plans over all of them.
pub(crate) static EXTENSIONS: &[&dyn Extension] = &[
    &accounts::Class,
    &roster::Class,
    &vcard::Class,
    &private::Class,
    &offline::Class,
    &inbox::Class,
    &mam::Class,
    &pubsub::Class,
    &last::Class,
    &privacy::Class,
    &blocklist::Class,
    &generic::Class,
];

/// Keyspaces that hold no personal data: store identity and the sweep queue (archive ids).
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "read by the registry tests only")
)]
pub(crate) const SYSTEM_KEYSPACES: &[Keyspace] = &[Keyspace::Meta, Keyspace::Sweep];

/// Every table of every class, in export order.
pub fn tables() -> impl Iterator<Item = Table> {
    EXTENSIONS.iter().flat_map(|e| e.tables().iter().copied())
}

/// Strips `.csv` from a table's file name.
pub(crate) fn stem(file: &'static str) -> &'static str {
    file.strip_suffix(".csv").unwrap_or(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyspace_claimed_exactly_once() {
        let mut claimed: Vec<Keyspace> = EXTENSIONS
            .iter()
            .flat_map(|e| e.keyspaces().iter().copied())
            .chain(SYSTEM_KEYSPACES.iter().copied())
            .collect();
        claimed.sort();
        let before = claimed.len();
        claimed.dedup();
        assert_eq!(before, claimed.len(), "a keyspace is claimed twice");
        let mut all = Keyspace::ALL.to_vec();
        all.sort();
        assert_eq!(claimed, all);
    }

    /// Every tree sled holds after opening a store is a known keyspace, and every keyspace
    /// is claimed by an extension or is a system keyspace.
    #[test]
    fn every_opened_tree_is_claimed() {
        let store = Store::temporary().unwrap();
        let claimed: Vec<&str> = EXTENSIONS
            .iter()
            .flat_map(|e| e.keyspaces().iter())
            .chain(SYSTEM_KEYSPACES)
            .map(|k| k.name())
            .collect();
        for name in store.tree_names() {
            let name = std::str::from_utf8(&name).unwrap();
            if name == "__sled__default" {
                continue;
            }
            assert!(claimed.contains(&name), "tree {name} is not claimed");
        }
        assert!(EXTENSIONS.iter().all(|e| !e.name().is_empty()));
    }

    #[test]
    fn table_names_unique_and_headers_nonempty() {
        let mut files: Vec<_> = tables().map(|t| t.file).collect();
        assert!(tables().all(|t| {
            !t.header.is_empty()
                && std::path::Path::new(t.file)
                    .extension()
                    .is_some_and(|e| e == "csv")
        }));
        files.sort_unstable();
        let n = files.len();
        files.dedup();
        assert_eq!(n, files.len());
    }
}
