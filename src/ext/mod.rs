//! The extension registry: one entry per data class, walked by both retrieval and erasure.
//!
//! Each entry claims the keyspaces it owns, names its CSV tables, streams the rows it holds
//! about a subject, and plans what erasing that subject removes and keeps. Because
//! `EXTENSIONS` is the single list that `gdpr` iterates, and a test checks that every tree
//! the store opens is claimed here, no keyspace can be forgotten by export or erase.

use std::collections::BTreeMap;

use crate::backend::Bytes;

use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

pub(crate) use caches::Caches;

pub mod accounts;
pub mod blocklist;
mod caches;
pub mod generic;
pub mod inbox;
pub mod last;
pub mod mam;
pub mod offline;
mod owner_keyed;
pub mod privacy;
pub mod private;
pub mod pubsub;
pub mod roster;
pub mod scram;
pub(crate) mod stored_enum;
pub(crate) mod stored_time;
pub mod vcard;

/// One CSV file of an export: its name and header row.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// File name inside the zip, e.g. `roster.csv`.
    pub file: &'static str,
    /// What a person calls it: the heading of its section of the export's `index.html`.
    pub title: &'static str,
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

/// Whether an entry (keyspace, key) counts as erased (see `Extension::count_kept`).
pub(crate) type Gone<'a> = &'a dyn Fn(Keyspace, &[u8]) -> bool;

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

/// Rows of other users that an erasure removed because they depended on the subject's data
/// (e.g. their subscriptions to the subject's PEP nodes), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consequence {
    /// The table (CSV file stem) the rows belong to.
    pub class: &'static str,
    /// How many rows were removed.
    pub rows: u64,
    /// Why they went with the subject.
    pub reason: &'static str,
    /// Whether the rows are also counted under the subject's removed rows (they were part
    /// of the subject's export too, like other users' items on the subject's PEP nodes).
    pub counted_as_subjects: bool,
}

/// What erasing a subject will do: keys removed in the commit, ranges and archives swept
/// afterwards, and the receipt's counts.
///
/// The commit stays small whatever the subject holds: a class with unbounded per-subject
/// data names the key ranges that hold it (`RemovalPlan::sweep_range`); the commit writes
/// one tombstone per range, and the sweep after it deletes and counts the range's entries
/// (`Extension::swept`).
#[derive(Debug, Default)]
pub struct RemovalPlan {
    /// Keys removed by the one atomic commit.
    pub(crate) removes: Vec<(Keyspace, Bytes)>,
    /// 1-1 archive ids whose records are deleted after the commit, in bounded chunks.
    pub(crate) sweeps: Vec<u64>,
    /// Key ranges (keyspace, prefix) deleted after the commit, in bounded chunks.
    pub(crate) ranges: Vec<(Keyspace, Vec<u8>)>,
    /// Rows removed per table (CSV file stem).
    pub removed: BTreeMap<&'static str, u64>,
    /// What is kept, and why.
    pub kept: Vec<Kept>,
}

impl RemovalPlan {
    /// Schedules one key for removal in the commit.
    pub(crate) fn remove(&mut self, ks: Keyspace, key: impl Into<Bytes>) {
        self.removes.push((ks, key.into()));
    }

    /// Schedules every key of `ks` under `prefix` for deletion by the sweep after the commit
    /// (a tombstone in the commit hides them from then on), if there is one.
    pub(crate) fn sweep_range(
        &mut self,
        store: &Store,
        ks: Keyspace,
        prefix: Vec<u8>,
    ) -> Result<()> {
        if store.scan_keys(ks, &prefix).next().transpose()?.is_some() {
            self.ranges.push((ks, prefix));
        }
        Ok(())
    }

    /// Counts `n` removed rows of `class`.
    pub(crate) fn count(&mut self, class: &'static str, n: u64) {
        *self.removed.entry(class).or_default() += n;
    }

    /// Records that rows of `class` are kept.
    pub(crate) fn keep(&mut self, class: &'static str, rows: Option<u64>, reason: &'static str) {
        self.kept.push(Kept {
            class,
            rows,
            reason,
        });
    }
}

/// What the sweep of one range found: rows per table, and keys in other keyspaces that go
/// with the swept entries (index entries).
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// The subject's rows removed, per table (CSV file stem).
    pub(crate) removed: BTreeMap<&'static str, u64>,
    /// Other users' rows removed with the subject's data, per (table, reason, counted as
    /// the subject's too).
    pub(crate) others: BTreeMap<(&'static str, &'static str, bool), u64>,
    /// Keys of other keyspaces to delete with the entries of this chunk.
    pub(crate) also: Vec<(Keyspace, Vec<u8>)>,
}

impl Swept {
    /// Counts `n` of the subject's rows of `class`.
    pub(crate) fn count(&mut self, class: &'static str, n: u64) {
        *self.removed.entry(class).or_default() += n;
    }

    /// Counts a row of another user removed as a consequence.
    pub(crate) fn consequence(&mut self, class: &'static str, reason: &'static str, counted: bool) {
        *self.others.entry((class, reason, counted)).or_default() += 1;
    }
}

/// A data class: what it stores, how it is exported and how it is erased.
pub(crate) trait Extension: Sync {
    /// The class name used in receipts and docs.
    fn name(&self) -> &'static str;
    /// The keyspaces this class owns. Every keyspace is owned by exactly one class.
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
    /// Runs before the commit, under the erase lock: it reads no more than a few keys per
    /// range it plans to sweep, so the commit stays small.
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()>;
    /// Called by the sweep for every entry of a range this class planned (`ks` is one of its
    /// keyspaces): counts the rows the entry held and names keys elsewhere that go with it.
    /// By default an entry is one row of the class's first table.
    fn swept(
        &self,
        ks: Keyspace,
        key: &[u8],
        value: &[u8],
        subject: &BareJid,
        out: &mut Swept,
    ) -> Result<()> {
        let _ = (ks, key, value, subject);
        if let Some(t) = self.tables().first() {
            out.count(stem(t.file), 1);
        }
        Ok(())
    }
    /// Checks one stored entry of `ks` (one of this class's keyspaces): the key parses as the
    /// keyspace's layout and the value decodes as its record type. [`crate::verify()`] calls it
    /// for every entry, reading each keyspace once.
    fn verify_entry(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()>;
    /// The checker of the links between this class's keyspaces (every index entry names its
    /// record and the reverse) and to other classes', or `None` when there are none.
    /// [`crate::verify()`] hands it every entry of the one pass over the store, so no class
    /// walks a keyspace again.
    fn links(&self) -> Option<Box<dyn crate::verify::Links>> {
        None
    }
    /// For a class that queues whole archives for the sweep ([`RemovalPlan`]`::sweeps`: ids
    /// whose entries are all keyed by the id first, marked in the `sweep` keyspace by id
    /// alone): deletes archive `id`'s entries in bounded chunks, or with `dry_run` only counts
    /// them, and returns (table, rows removed). `None` for a class that queues no archives;
    /// at most one class does (the marker names no class), the 1-1 archive.
    fn sweep_archive(
        &self,
        store: &Store,
        id: u64,
        dry_run: bool,
    ) -> Option<Result<(&'static str, u64)>> {
        let _ = (store, id, dry_run);
        None
    }
    /// For `backup` and `compact`: copies keyspace `ks` (one of this class's) of `src` in its
    /// own way, handing each batch to `write` with its logical bytes and the entries read, and
    /// returns (entries read, bytes read); `None` when entries are copied as they are (the
    /// default). The 1-1 archive repacks its records into blocks here.
    fn repack(
        &self,
        ks: Keyspace,
        src: &Store,
        write: &mut dyn FnMut(crate::store::Batch, u64, u64) -> Result<()>,
    ) -> Option<Result<(u64, u64)>> {
        let _ = (ks, src, write);
        None
    }
    /// `unregister --redact-kept`: moves the rows of this class that an erasure keeps about
    /// `subject` (under its JID) to the pseudonym `p`, in the records and in every index, in
    /// chunks of [`crate::gdpr::REDACT_CHUNK`] rows per transaction; with `count_only`
    /// (a dry run) only counts them, skipping entries it calls gone (as `count_kept`). Rows
    /// in ranges an erasure is sweeping are left to the sweep. Idempotent: it rewrites what
    /// is still under the JID. Returns rows per table (CSV file stem).
    fn redact_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        p: &crate::gdpr::Pseudonym,
        count_only: Option<Gone<'_>>,
    ) -> Result<Vec<(&'static str, u64)>> {
        let _ = (store, subject, p, count_only);
        Ok(Vec::new())
    }
    /// After the sweep: counts the rows the erasure kept where that needs a scan (kept too
    /// large to count before the commit). `gone(ks, key)` says whether an entry is erased
    /// though still on disk (a pending sweep, or the ranges a dry run would sweep).
    fn count_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        gone: Gone<'_>,
        kept: &mut Vec<Kept>,
    ) -> Result<()> {
        let _ = (store, subject, gone, kept);
        Ok(())
    }
}

/// The chunked scan of the sweeps: every entry of a keyspace under a prefix, in key order,
/// until the callback returns `false`.
pub(crate) use mam::records::for_each_entry;

/// Sweeps (or with `dry_run` counts) the erased archive `id` through the class that queues
/// archives; returns (table, rows).
pub(crate) fn sweep_archive(store: &Store, id: u64, dry_run: bool) -> Result<(&'static str, u64)> {
    EXTENSIONS
        .iter()
        .find_map(|e| e.sweep_archive(store, id, dry_run))
        .unwrap_or_else(|| {
            Err(crate::keys::corrupt(
                Keyspace::Sweep,
                &crate::keys::archive(id),
                "archive sweep queued but no data class sweeps archives",
            ))
        })
}

/// The class that owns `ks` (`None` for a system keyspace).
pub(crate) fn owner_of(ks: Keyspace) -> Option<&'static dyn Extension> {
    EXTENSIONS
        .iter()
        .copied()
        .find(|e| e.keyspaces().contains(&ks))
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

/// The keyspaces of the data class called `name` (`"mam"`, `"pubsub"`, ...).
///
/// # Panics
/// If no class has that name (a caller's typo).
pub(crate) fn keyspaces_of(name: &str) -> &'static [Keyspace] {
    EXTENSIONS
        .iter()
        .find(|e| e.name() == name)
        .unwrap_or_else(|| panic!("no data class {name:?}"))
        .keyspaces()
}

/// Keyspaces that hold no personal data: store identity, the sweep queue (archive ids) and
/// the audit log (subjects only as keyed hashes).
pub(crate) const SYSTEM_KEYSPACES: &[Keyspace] =
    &[Keyspace::Meta, Keyspace::Sweep, Keyspace::Audit];

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

    /// Every keyspace the engine holds after opening a store is a known keyspace, and every keyspace
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
        for name in store.tree_names().unwrap() {
            let name = std::str::from_utf8(&name).unwrap();
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
