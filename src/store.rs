//! The [`Store`] handle: opens sled and every keyspace, checks the format, and guards writes
//! against a concurrent erasure.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::{IVec, Transactional};

use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ext;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::witness::Witness;

/// Archive ids cached at most (one small entry per account appending).
const ARCHIVE_ID_CACHE: usize = 100_000;

/// The archive time of the newest message of each archive appended to since open (`None`:
/// empty), keyed by records keyspace and record-key prefix. Only archive appends and removals
/// (under [`Store::archive_appender`]) read or change it.
#[derive(Default)]
pub(crate) struct ArchiveTails(HashMap<(Keyspace, Vec<u8>), Option<i64>>);

impl ArchiveTails {
    /// The cached newest archive time of an archive, if cached.
    #[expect(
        clippy::option_option,
        reason = "not cached / cached as empty / cached time"
    )]
    pub(crate) fn get(&self, ks: Keyspace, prefix: &[u8]) -> Option<Option<i64>> {
        self.0.get(&(ks, prefix.to_vec())).copied()
    }

    /// Records the newest archive time of an archive after a write.
    pub(crate) fn set(&mut self, ks: Keyspace, prefix: Vec<u8>, at: Option<i64>) {
        if self.0.len() >= ARCHIVE_ID_CACHE {
            self.0.clear();
        }
        self.0.insert((ks, prefix), at);
    }

    /// Forgets an archive (after a removal of one of its messages).
    pub(crate) fn forget(&mut self, ks: Keyspace, prefix: &[u8]) {
        self.0.remove(&(ks, prefix.to_vec()));
    }
}

/// A range of a keyspace that an erasure committed to deleting: every key of `ks` starting
/// with `prefix`. Until the sweep after the commit has deleted the range, reads treat it as
/// gone and a write into it first finishes that sweep (see [`crate::gdpr`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tombstone {
    /// The keyspace.
    pub(crate) ks: Keyspace,
    /// The key prefix of the range.
    pub(crate) prefix: Vec<u8>,
    /// The erased subject, to tell its rows from other users' in the receipt.
    pub(crate) subject: BareJid,
}

impl Tombstone {
    fn covers(&self, ks: Keyspace, key: &[u8]) -> bool {
        self.ks == ks && key.starts_with(&self.prefix)
    }
}

/// The prefixes of one keyspace hidden by pending tombstones (empty: nothing hidden).
type Hidden = Vec<Vec<u8>>;

fn hides(hidden: &Hidden, key: &[u8]) -> bool {
    hidden.iter().any(|p| key.starts_with(p))
}

/// A handle on an open store. Cheap to clone; all clones share one sled database.
///
/// ```
/// use jidstore::{BareJid, Store};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path().join("data"))?;
/// let alice = BareJid::parse("alice@example.org")?;
/// store.accounts().create(&alice, "secret")?;
/// store.vcard().set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")?;
/// assert!(store.vcard().get(&alice)?.is_some());
/// # Ok::<(), jidstore::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Writers of owner data hold the read side; an erasure holds the write side from
    /// collecting keys to commit, so no write can slip in between.
    erase_lock: RwLock<()>,
    /// Held by archive appends from taking a seq to writing it, so that within one archive
    /// seq order is write order and archive time is non-decreasing in seq. Holds the archive
    /// time of the newest message of each archive appended to since open.
    archive_lock: Mutex<ArchiveTails>,
    /// Archive id of each account an archive append has looked up, so that appends do not
    /// decode the account (its SCRAM verifiers) every time. Filled only by holders of
    /// [`Store::writer`] and emptied by [`Store::eraser`], so an erased account's archive id
    /// never outlives the erasure.
    archive_ids: Mutex<HashMap<BareJid, u64>>,
    path: PathBuf,
    /// A [`Config::temporary`] store: `path` is the system temp directory, not its own.
    temporary: bool,
    /// The free-space reserve as configured (`None`: the default for the filesystem), which
    /// copies of the store ([`crate::maintenance`]) keep too.
    min_free: Option<u64>,
    scram_iterations: u32,
    space: SpaceGuard,
    /// The flush witness ([`crate::witness`]); held from taking a generation to recording it.
    witness: Mutex<Witness>,
    /// Whether a write ran since the last recorded flush (the last handle then records one).
    dirty: std::sync::atomic::AtomicBool,
    /// Ranges committed for deletion and not yet swept, mirrored from the `sweep` keyspace.
    tombstones: RwLock<Vec<Tombstone>>,
    /// `tombstones.len()`, read without the lock: zero on the hot path of every read.
    pending: std::sync::atomic::AtomicUsize,
    /// Held while a range is swept, so that one range is swept by one thread at a time and
    /// a writer waiting for a range waits for its sweep to end.
    sweep_lock: Mutex<()>,
    /// Last, so that it drops after sled's handles: gives the files sled wrote to the
    /// directory's owner.
    owner: GiveBack,
}

/// Gives every file in a foreign-owned data directory back to its owner when dropped.
struct GiveBack(PathBuf, Option<crate::owner::Owner>);

impl Drop for GiveBack {
    fn drop(&mut self) {
        if let Some(owner) = self.1 {
            crate::owner::give(&self.0, owner);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = flush_recorded(&self.db, &self.witness);
        }
    }
}

/// Writes the next flush generation into `meta`, flushes sled, then records the generation
/// in the witness file.
fn flush_recorded(db: &sled::Db, witness: &Mutex<Witness>) -> Result<()> {
    let mut w = witness.lock().unwrap_or_else(PoisonError::into_inner);
    let generation = w.next();
    db.open_tree(Keyspace::Meta.name())?
        .insert(keys::META_FLUSHED, &keys::u64_value(generation))?;
    db.flush()?;
    w.record(generation);
    Ok(())
}

/// Refuses new data while the filesystem holding the store has less free space than the
/// reserve, so that sled never runs out of space in the middle of its own writes: an erasure,
/// the archive sweep, sled's log and snapshots, and the recovery at the next open still have
/// room. sled 0.34 that hit ENOSPC while writing its log refused to reopen the store as
/// damaged in 5 of 7 runs; with the reserve no ingest reaches that point.
///
/// `statvfs` is called at most every [`SpaceGuard::RELAXED`] while free space is over
/// [`SpaceGuard::NEAR`] times the reserve, and before every write below that.
struct SpaceGuard {
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

    fn new(reserve: u64) -> Self {
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
    fn check(&self, path: &Path, extra: u64) -> Result<()> {
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

/// Bytes sled may write per logical byte of a large batch (see [`Store::check_space_for`]).
const SLED_WRITE_FACTOR: u64 = 4;

/// The default reserve for a filesystem of `total` bytes: 5 %, at least 4 MiB (a chunk of
/// [`crate::ext::mam::Mam::append_bulk`] and a few sled segments) and at most 64 MiB.
pub(crate) fn default_reserve(total: u64) -> u64 {
    (total / 20).clamp(4 << 20, 64 << 20)
}

fn reserve_for(path: &Path, configured: Option<u64>) -> u64 {
    configured.unwrap_or_else(|| {
        rustix::fs::statvfs(path).map_or(0, |s| {
            default_reserve(s.f_blocks.saturating_mul(s.f_frsize))
        })
    })
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Files sled keeps in its directory; anything else means the directory is not ours.
fn looks_like_sled_dir(path: &Path) -> io::Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(path)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        empty = false;
        if name == "conf" || name == "db" {
            return Ok(true);
        }
    }
    Ok(empty)
}

fn not_a_store(path: PathBuf, reason: &str) -> Error {
    Error::NotAStore {
        path,
        reason: reason.to_owned(),
    }
}

/// Below this many free bytes the filesystem counts as full when sled fails to open a store:
/// sled writes (a segment tail, a snapshot) while it recovers, and reports a failed write
/// there as corruption or an I/O error.
const FULL_BELOW: u64 = 512 * 1024;

/// Whether the filesystem holding `path` has (almost) no space left for an unprivileged
/// writer.
fn filesystem_full(path: &Path) -> bool {
    rustix::fs::statvfs(path).is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) < FULL_BELOW)
}

fn map_open_error(path: &Path, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(_) | sled::Error::Corruption { .. } if filesystem_full(path) => {
            Error::StorageFull {
                path: Some(path.to_path_buf()),
            }
        }
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            Error::Locked(path.to_path_buf())
        }
        sled::Error::Io(io) if crate::error::is_storage_full(&io) => Error::StorageFull {
            path: Some(path.to_path_buf()),
        },
        sled::Error::Io(io) => Error::Path {
            action: "open data directory",
            path: path.to_path_buf(),
            source: io,
        },
        sled::Error::Corruption { at, .. } => {
            let whereabouts = at.map_or_else(String::new, |at| format!(" (at {at})"));
            not_a_store(
                path.to_path_buf(),
                &format!("sled found damaged data in its files{whereabouts}; restore a backup"),
            )
        }
        sled::Error::Unsupported(what) => {
            not_a_store(path.to_path_buf(), &format!("sled: unsupported: {what}"))
        }
        other => Error::Storage(other),
    }
}

impl Store {
    /// Opens (or creates) the store in `path` with the default [`Config`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Config::new(path).open()
    }

    /// A store in a temporary directory, removed when the last handle is dropped.
    pub fn temporary() -> Result<Store> {
        Config::temporary().open()
    }

    #[expect(
        clippy::needless_pass_by_value,
        reason = "the builder is consumed by open(), as in sled and fjall"
    )]
    pub(crate) fn open_with(config: Config) -> Result<Store> {
        if config.scram_iterations == 0 {
            return Err(Error::InvalidInput(
                "scram iterations must be at least 1".into(),
            ));
        }
        let path = config.path.clone();
        let owner = if config.temporary {
            None
        } else {
            crate::owner::check(&path, config.allow_foreign_owner)?
        };
        // Dropped last, also on the error paths below, after sled wrote its files.
        let owner = GiveBack(path.clone(), owner);
        if !config.temporary {
            check_dir(&path, config.read_only_check, config.incomplete_copy)?;
        }
        if !config.temporary {
            discard_partial_snapshots(&path)?;
        }
        let mut sled_config = sled::Config::new()
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(config.flush_every_ms);
        sled_config = if config.temporary {
            sled_config.temporary(true)
        } else {
            sled_config.path(&path)
        };
        // sled panics on some damaged files instead of returning an error; a damaged data
        // directory must give a message, not abort the process.
        let deadline = std::time::Instant::now() + config.lock_timeout;
        let opened = loop {
            // Quiet: sled's panic message would print before the one-line error.
            let res = quiet_panics(|| sled_config.open());
            match res {
                Ok(Err(e)) => match map_open_error(&path, e) {
                    Error::Locked(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    err => return Err(err),
                },
                other => break other,
            }
        };
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(map_open_error(&path, e)),
            Err(what) => {
                return Err(not_a_store(
                    path,
                    &format!("sled panicked while opening it ({what})"),
                ));
            }
        };
        if check_meta(&db, &path, config.read_only_check)? && !config.temporary {
            restrict(&path).map_err(|source| Error::Path {
                action: "make owner-only the new data directory",
                path: path.clone(),
                source,
            })?;
        }
        if !config.temporary {
            restrict_sled_files(&path);
        }
        if let Some(o) = owner.1 {
            crate::owner::give(&path, o);
        }
        let witness = if config.temporary {
            Witness::none()
        } else {
            check_witness(&db, &path)?
        };
        let trees = Keyspace::ALL
            .iter()
            .map(|ks| db.open_tree(ks.name()))
            .collect::<sled::Result<Vec<_>>>()?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                trees,
                erase_lock: RwLock::new(()),
                archive_lock: Mutex::new(ArchiveTails::default()),
                archive_ids: Mutex::new(HashMap::new()),
                space: SpaceGuard::new(reserve_for(&path, config.min_free)),
                witness: Mutex::new(witness),
                dirty: std::sync::atomic::AtomicBool::new(false),
                tombstones: RwLock::new(Vec::new()),
                pending: std::sync::atomic::AtomicUsize::new(0),
                sweep_lock: Mutex::new(()),
                owner,
                path,
                temporary: config.temporary,
                min_free: config.min_free,
                scram_iterations: config.scram_iterations,
            }),
        };
        crate::gdpr::resume_sweeps(&store)?;
        Ok(store)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether this is a [`Config::temporary`] store (its [`Store::path`] is not its own).
    pub(crate) fn is_temporary(&self) -> bool {
        self.inner.temporary
    }

    /// The free-space reserve as configured ([`Config::min_free`]), `None` for the default.
    pub(crate) fn configured_min_free(&self) -> Option<u64> {
        self.inner.min_free
    }

    /// Makes every write so far durable, and records that in the flush witness
    /// ([`crate::witness`]): should sled later recover an earlier state, opening the store
    /// fails with [`Error::EarlierState`].
    pub fn flush(&self) -> Result<()> {
        self.inner
            .dirty
            .store(false, std::sync::atomic::Ordering::Relaxed);
        flush_recorded(&self.inner.db, &self.inner.witness)
    }

    /// Makes sled's snapshot and blob files owner-only (see [`restrict_sled_files`]).
    pub(crate) fn restrict_files(&self) {
        restrict_sled_files(&self.inner.path);
        if let Some(owner) = self.inner.owner.1 {
            crate::owner::give(&self.inner.path, owner);
        }
    }

    /// Bytes the store occupies on disk, as sled reports it.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.inner.db.size_on_disk()?)
    }

    pub(crate) fn scram_iterations(&self) -> u32 {
        self.inner.scram_iterations
    }

    /// The names of every tree sled holds, including ones this build does not know.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the registry tests only")
    )]
    pub(crate) fn tree_names(&self) -> Vec<IVec> {
        self.inner.db.tree_names()
    }

    pub(crate) fn tree(&self, ks: Keyspace) -> &sled::Tree {
        // `trees` is built from Keyspace::ALL in order, so every index exists.
        #[expect(clippy::indexing_slicing, reason = "trees has one entry per Keyspace")]
        &self.inner.trees[ks.index()]
    }

    /// The sled tree of one keyspace, bypassing every check and index.
    ///
    /// For tests and tools only (e.g. damaging an entry to see [`crate::verify`] report it):
    /// writes through it can break the invariants the typed APIs keep.
    #[doc(hidden)]
    pub fn raw_tree(&self, ks: Keyspace) -> &sled::Tree {
        self.tree(ks)
    }

    /// A unique, monotonically increasing id (survives restarts; carried over by
    /// [`crate::maintenance::copy_into`]).
    pub(crate) fn generate_id(&self) -> Result<u64> {
        Ok(self.inner.db.generate_id()?)
    }

    /// Held by every writer that adds owner data: fails with [`Error::LowSpace`] when the
    /// filesystem is down to the reserve (see [`Config::min_free`](crate::Config::min_free)).
    pub(crate) fn writer(&self) -> Result<RwLockReadGuard<'_, ()>> {
        self.check_space()?;
        Ok(self.remover())
    }

    fn mark_dirty(&self) {
        self.inner
            .dirty
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Held by every writer that only removes owner data (never refused for lack of space:
    /// removing is how space comes back).
    pub(crate) fn remover(&self) -> RwLockReadGuard<'_, ()> {
        self.mark_dirty();
        self.inner
            .erase_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Error::LowSpace`] when less than the reserve is free.
    pub(crate) fn check_space(&self) -> Result<()> {
        self.inner.space.check(&self.inner.path, 0)
    }

    /// [`Error::LowSpace`] unless the reserve stays free after a write of `logical` bytes of
    /// keys and values (bulk appends, copies). sled writes several times the logical size
    /// (page rewrites, log framing): measured up to 4x on a 2,000-message chunk, so that is
    /// what is asked for.
    pub(crate) fn check_space_for(&self, logical: u64) -> Result<()> {
        self.inner
            .space
            .check(&self.inner.path, logical.saturating_mul(SLED_WRITE_FACTOR))
    }

    /// Applies a batch to one keyspace atomically.
    pub(crate) fn apply_batch(&self, ks: Keyspace, batch: Batch) -> Result<()> {
        if self.pending_count() > 0 {
            for key in &batch.inserted {
                self.sweep_before_write(ks, key)?;
            }
        }
        self.tree(ks).apply_batch(batch.batch)?;
        Ok(())
    }

    /// Held by archive appends (1-1 and room) from taking a seq to the write; gives the
    /// cached newest archive time of each archive.
    pub(crate) fn archive_appender(&self) -> MutexGuard<'_, ArchiveTails> {
        self.inner
            .archive_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Held by an erasure from key collection to commit. Forgets every cached archive id:
    /// no writer runs while this is held, so none can be cached again before the commit.
    pub(crate) fn eraser(&self) -> RwLockWriteGuard<'_, ()> {
        self.mark_dirty();
        let guard = self
            .inner
            .erase_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.archive_ids().clear();
        guard
    }

    fn archive_ids(&self) -> MutexGuard<'_, HashMap<BareJid, u64>> {
        self.inner
            .archive_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The archive id of `owner`'s account, or [`Error::NoAccount`]. Call with
    /// [`Store::writer`] held (the cache relies on it).
    pub(crate) fn require_archive(&self, owner: &BareJid) -> Result<u64> {
        if let Some(id) = self.archive_ids().get(owner) {
            return Ok(*id);
        }
        let id = self.require_account(owner)?.archive;
        let mut ids = self.archive_ids();
        // A bound on memory for servers with many accounts: start over.
        if ids.len() >= ARCHIVE_ID_CACHE {
            ids.clear();
        }
        ids.insert(owner.clone(), id);
        Ok(id)
    }

    /// Reads and decodes one value.
    pub(crate) fn get<T: DeserializeOwned>(&self, ks: Keyspace, key: &[u8]) -> Result<Option<T>> {
        if self.hidden(ks, key) {
            return Ok(None);
        }
        match self.tree(ks).get(key)? {
            Some(v) => codec::decode(ks, key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` exists in `ks`.
    pub(crate) fn contains(&self, ks: Keyspace, key: &[u8]) -> Result<bool> {
        Ok(!self.hidden(ks, key) && self.tree(ks).contains_key(key)?)
    }

    /// Encodes and writes one value (no index: callers with an index use [`Store::transaction`]).
    pub(crate) fn put<T: Serialize>(&self, ks: Keyspace, key: &[u8], value: &T) -> Result<()> {
        self.sweep_before_write(ks, key)?;
        self.tree(ks).insert(key, codec::encode(value))?;
        Ok(())
    }

    /// The entries of `ks` under `prefix`, without those hidden by a pending tombstone (none
    /// at all when `prefix` itself lies in a hidden range).
    fn visible(
        &self,
        ks: Keyspace,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = sled::Result<(IVec, IVec)>> + use<> {
        let hidden = self.hidden_in(ks);
        let tree = self.tree(ks);
        let iter = if hides(&hidden, prefix) {
            tree.range(prefix.to_vec()..prefix.to_vec())
        } else {
            tree.scan_prefix(prefix)
        };
        iter.filter(move |e| e.as_ref().map_or(true, |(k, _)| !hides(&hidden, k)))
    }

    /// Lazily decodes every entry whose key starts with `prefix`, in key order.
    pub(crate) fn scan<T: DeserializeOwned>(
        &self,
        ks: Keyspace,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, T)>> + use<T> {
        self.visible(ks, prefix).map(move |entry| {
            let (k, v) = entry?;
            let value = codec::decode(ks, &k, &v)?;
            Ok((k, value))
        })
    }

    /// Keys only (index scans and erasure).
    pub(crate) fn scan_keys(
        &self,
        ks: Keyspace,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<IVec>> + use<> {
        self.visible(ks, prefix).map(|entry| Ok(entry?.0))
    }

    /// Whether `key` lies in a range an erasure committed to deleting (then it is gone for
    /// every read, though the sweep may not have deleted it yet).
    pub(crate) fn hidden(&self, ks: Keyspace, key: &[u8]) -> bool {
        self.pending_count() > 0 && hides(&self.hidden_in(ks), key)
    }

    fn pending_count(&self) -> usize {
        self.inner
            .pending
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn tombstone_list(&self) -> std::sync::RwLockReadGuard<'_, Vec<Tombstone>> {
        self.inner
            .tombstones
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The prefixes hidden in `ks` now.
    fn hidden_in(&self, ks: Keyspace) -> Hidden {
        if self.pending_count() == 0 {
            return Vec::new();
        }
        self.tombstone_list()
            .iter()
            .filter(|t| t.ks == ks)
            .map(|t| t.prefix.clone())
            .collect()
    }

    /// Whether `t` is still pending.
    pub(crate) fn is_pending(&self, t: &Tombstone) -> bool {
        self.pending_count() > 0 && self.tombstone_list().iter().any(|p| p == t)
    }

    /// Hides the ranges of `added` from every read (those already pending stay once).
    pub(crate) fn add_tombstones(&self, added: &[Tombstone]) {
        let mut list = self
            .inner
            .tombstones
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for t in added {
            if !list.contains(t) {
                list.push(t.clone());
            }
        }
        self.inner
            .pending
            .store(list.len(), std::sync::atomic::Ordering::Release);
    }

    /// Forgets a tombstone whose range is deleted (or whose commit did not happen).
    pub(crate) fn drop_tombstone(&self, t: &Tombstone) {
        let mut list = self
            .inner
            .tombstones
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        list.retain(|p| p != t);
        self.inner
            .pending
            .store(list.len(), std::sync::atomic::Ordering::Release);
    }

    /// Held while sweeping a range.
    pub(crate) fn sweeper(&self) -> MutexGuard<'_, ()> {
        self.inner
            .sweep_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Before a write of `key`: if it lies in a range an erasure committed to deleting,
    /// finishes that range's sweep first, so the new value is neither hidden nor swept (a
    /// name registered again after an erasure starts from nothing).
    fn sweep_before_write(&self, ks: Keyspace, key: &[u8]) -> Result<()> {
        if self.pending_count() == 0 {
            return Ok(());
        }
        let covering: Vec<Tombstone> = self
            .tombstone_list()
            .iter()
            .filter(|t| t.covers(ks, key))
            .cloned()
            .collect();
        for t in covering {
            crate::gdpr::sweep_range(self, &t)?;
        }
        Ok(())
    }

    /// Fails with [`Error::NoAccount`] unless `owner` has an account. Call with
    /// [`Store::writer`] held so the answer stays true until the write lands.
    pub(crate) fn require_account(&self, owner: &BareJid) -> Result<ext::accounts::Account> {
        self.get(Keyspace::Accounts, &keys::owner(owner))?
            .ok_or_else(|| Error::NoAccount(owner.to_string()))
    }

    /// [`Store::transaction`], made durable before it returns and recorded in the flush
    /// witness (a GDPR erasure's commit: should sled ever recover a state before it, the
    /// store refuses to open instead of bringing erased data back).
    pub(crate) fn recorded_transaction<A>(
        &self,
        spaces: &[Keyspace],
        f: impl Fn(&Tx<'_>) -> ConflictableTransactionResult<A, Error>,
    ) -> Result<A> {
        let mut witness = self
            .inner
            .witness
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let generation = witness.next();
        let mut all = spaces.to_vec();
        all.push(Keyspace::Meta);
        all.sort();
        all.dedup();
        let out = self.transaction(&all, |tx| {
            let a = f(tx)?;
            tx.put_raw(
                Keyspace::Meta,
                keys::META_FLUSHED,
                &keys::u64_value(generation),
            )?;
            tx.flush();
            Ok(a)
        })?;
        witness.record(generation);
        Ok(out)
    }

    /// Runs `f` atomically over the named keyspaces. `f` may be retried, so it must have no
    /// side effects. Plain tree calls inside `f` deadlock; use only the [`Tx`] it is given.
    ///
    /// A write into a range an erasure committed to deleting aborts the attempt; the range
    /// is swept, then `f` runs again.
    pub(crate) fn transaction<A>(
        &self,
        spaces: &[Keyspace],
        f: impl Fn(&Tx<'_>) -> ConflictableTransactionResult<A, Error>,
    ) -> Result<A> {
        let trees: Vec<sled::Tree> = spaces.iter().map(|ks| self.tree(*ks).clone()).collect();
        loop {
            let hidden: Vec<(Keyspace, Hidden)> = spaces
                .iter()
                .map(|ks| (*ks, self.hidden_in(*ks)))
                .filter(|(_, h)| !h.is_empty())
                .collect();
            let hit = RefCell::new(None);
            let res = trees.as_slice().transaction(|txs| {
                f(&Tx {
                    spaces,
                    trees: txs,
                    hidden: &hidden,
                    hit: &hit,
                })
            });
            if let Some((ks, key)) = hit.take() {
                self.sweep_before_write(ks, &key)?;
                continue;
            }
            return match res {
                Ok(a) => Ok(a),
                Err(TransactionError::Abort(e)) => Err(e),
                Err(TransactionError::Storage(e)) => Err(e.into()),
            };
        }
    }
}

/// The trees of one transaction, addressed by keyspace.
pub(crate) struct Tx<'a> {
    spaces: &'a [Keyspace],
    trees: &'a [TransactionalTree],
    /// Ranges hidden by pending tombstones when the transaction started.
    hidden: &'a [(Keyspace, Hidden)],
    /// Set by a write into a hidden range (the transaction then aborts, and is retried
    /// after the sweep).
    hit: &'a RefCell<Option<(Keyspace, Vec<u8>)>>,
}

type TxResult<T> = ConflictableTransactionResult<T, Error>;

impl Tx<'_> {
    fn tree(&self, ks: Keyspace) -> TxResult<&TransactionalTree> {
        self.spaces
            .iter()
            .position(|s| *s == ks)
            .and_then(|i| self.trees.get(i))
            .ok_or_else(|| {
                ConflictableTransactionError::Abort(Error::InvalidInput(format!(
                    "internal: keyspace {} not part of this transaction",
                    ks.name()
                )))
            })
    }

    /// Aborts when `key` lies in a hidden range (see [`Store::transaction`]).
    fn check_write(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        let hidden = self
            .hidden
            .iter()
            .any(|(h, prefixes)| *h == ks && hides(prefixes, key));
        if hidden {
            *self.hit.borrow_mut() = Some((ks, key.to_vec()));
            return abort(Error::InvalidInput(
                "internal: write into a range being swept".into(),
            ));
        }
        Ok(())
    }

    /// Inserts an encoded value.
    pub(crate) fn put<T: Serialize>(&self, ks: Keyspace, key: &[u8], value: &T) -> TxResult<()> {
        self.check_write(ks, key)?;
        self.tree(ks)?.insert(key, codec::encode(value))?;
        Ok(())
    }

    /// Inserts raw bytes (index markers, integers).
    pub(crate) fn put_raw(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.check_write(ks, key)?;
        self.tree(ks)?.insert(key, value)?;
        Ok(())
    }

    /// Inserts an index marker.
    pub(crate) fn mark(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.put_raw(ks, key, &codec::marker())
    }

    /// Reads and decodes a value.
    pub(crate) fn get<T: DeserializeOwned>(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<T>> {
        match self.tree(ks)?.get(key)? {
            Some(v) => Ok(Some(
                codec::decode(ks, key, &v).map_err(ConflictableTransactionError::Abort)?,
            )),
            None => Ok(None),
        }
    }

    /// Reads raw bytes (integers written with `put_raw`).
    pub(crate) fn get_raw(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<IVec>> {
        Ok(self.tree(ks)?.get(key)?)
    }

    /// Whether a key exists.
    pub(crate) fn contains(&self, ks: Keyspace, key: &[u8]) -> TxResult<bool> {
        Ok(self.tree(ks)?.get(key)?.is_some())
    }

    /// Applies a batch to one keyspace, inside the transaction.
    pub(crate) fn apply_batch(&self, ks: Keyspace, batch: &Batch) -> TxResult<()> {
        for key in &batch.inserted {
            self.check_write(ks, key)?;
        }
        self.tree(ks)?.apply_batch(&batch.batch)?;
        Ok(())
    }

    /// Removes a key.
    pub(crate) fn remove(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.tree(ks)?.remove(key)?;
        Ok(())
    }

    /// Makes the transaction durable before it returns.
    pub(crate) fn flush(&self) {
        if let Some(t) = self.trees.first() {
            t.flush();
        }
    }
}

/// Writes to one keyspace, applied atomically by [`Store::apply_batch`] or [`Tx::apply_batch`].
#[derive(Default)]
pub(crate) struct Batch {
    batch: sled::Batch,
    /// The keys inserted (cheap clones), checked against pending tombstones.
    inserted: Vec<IVec>,
}

impl Batch {
    /// Inserts (or overwrites) a key.
    pub(crate) fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        let key = key.into();
        self.inserted.push(key.clone());
        self.batch.insert(key, value);
    }

    /// Removes a key.
    pub(crate) fn remove(&mut self, key: impl Into<IVec>) {
        self.batch.remove(key);
    }
}

/// Aborts a transaction with a jidstore error.
pub(crate) fn abort<T>(e: Error) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// The checks before sled touches `path`: a directory holding a store or nothing, or (unless
/// `must_exist`) missing, then created owner-only.
fn check_dir(path: &Path, must_exist: bool, incomplete_copy: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => return Err(not_a_store(path.to_path_buf(), "not a directory")),
        Ok(_) => {
            let marker = crate::maintenance::INCOMPLETE_COPY;
            if !incomplete_copy && std::fs::symlink_metadata(path.join(marker)).is_ok() {
                return Err(not_a_store(
                    path.to_path_buf(),
                    &format!(
                        "it is an incomplete copy (a `jidstore backup` or `compact` that did \
                         not finish left its {marker} file); delete it and take the backup again"
                    ),
                ));
            }
            let ours = looks_like_sled_dir(path).map_err(|source| Error::Path {
                action: "read data directory",
                path: path.to_path_buf(),
                source,
            })?;
            if !ours && !incomplete_copy {
                return Err(not_a_store(
                    path.to_path_buf(),
                    "it holds files that are not sled's",
                ));
            }
            // sled would create an empty `db` next to the old snapshot and report the store
            // as damaged. A store that ever held data has a snapshot or the flush witness.
            let has = |name: &str| std::fs::symlink_metadata(path.join(name)).is_ok();
            let written = has(crate::witness::FILE_NAME)
                || std::fs::read_dir(path).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("snap."))
                });
            if !has("db") && written {
                let db = path.join("db");
                return Err(not_a_store(
                    path.to_path_buf(),
                    &format!(
                        "{} (sled's data file) is missing; restore a backup",
                        db.display()
                    ),
                ));
            }
            // An empty directory: sled would create its files in it before the check
            // below could refuse, so a command that must not create a store stops here.
            let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
            if empty && must_exist {
                return Err(not_a_store(
                    path.to_path_buf(),
                    "no store has been created here",
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(old) = crate::maintenance::interrupted_compact(path) {
                let reason = format!(
                    "it is missing, but {} exists: a `jidstore compact` was interrupted; \
                         rename that directory (or a complete `.compact-*` sibling) back to \
                         this path",
                    old.display()
                );
                return Err(not_a_store(path.to_path_buf(), &reason));
            }
            if must_exist {
                return Err(Error::Path {
                    action: "open data directory",
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            create_private_dir(path)?;
        }
        Err(_) => {}
    }
    Ok(())
}

/// Creates a missing data directory (and missing parents) owner-only (0700), before sled
/// creates its files in it.
fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| Error::Path {
        action: "create data directory",
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a data directory that was just turned into a store owner-only: the directory and
/// its subdirectories 0700, sled's files (created under the umask, usually 0644) 0600. Files
/// sled creates later inherit nothing, but sit inside the 0700 directory.
fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if mode != 0o700 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            }
            for entry in std::fs::read_dir(path)? {
                restrict(&entry?.path())?;
            }
        } else if meta.is_file() && mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// sled creates its snapshots (`snap.*`, written while it opens a store) and blob files with
/// the process umask (0666 under umask 0), unlike the `db` file: take the group and other
/// bits off them. Done at every open and after a copy; best effort (a file owned by someone
/// else stays as it is), and the directory's own mode, the operator's choice, is left alone.
fn restrict_sled_files(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fix = |p: &Path| {
            if let Ok(meta) = std::fs::symlink_metadata(p) {
                let mode = meta.permissions().mode();
                if meta.is_file() && mode & 0o077 != 0 {
                    let _ =
                        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o700));
                }
            }
        };
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("snap.") {
                fix(&entry.path());
            }
        }
        for entry in std::fs::read_dir(path.join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            fix(&entry.path());
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Removes the snapshots sled had not finished writing (`snap.<lsn>.generating`) when its
/// process was killed. sled 0.34 writes a snapshot to that name, syncs it, renames it to
/// `snap.<lsn>` and only then deletes older ones, so a `.generating` file is always partial
/// and never the only copy of anything; but sled's own recovery takes it as the newest
/// snapshot and, finding its checksum wrong, refuses the store as damaged (seen once in 600
/// SIGKILLs of `unregister`, killed while sled wrote its start-up snapshot).
fn discard_partial_snapshots(path: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Path {
                action: "read data directory",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let partial = name
            .strip_prefix("snap.")
            .and_then(|rest| rest.strip_suffix(".generating"))
            .is_some_and(|lsn| lsn.len() == 16 && lsn.bytes().all(|b| b.is_ascii_hexdigit()));
        if partial && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).map_err(|source| Error::Path {
                action: "remove the partial snapshot",
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Reads the flush witness and refuses a store that sled recovered to a state older than the
/// newest flush the witness recorded.
fn check_witness(db: &sled::Db, path: &Path) -> Result<Witness> {
    let (mut witness, recorded) = Witness::read(path).map_err(|source| Error::Path {
        action: "read the flush witness of",
        path: path.join(crate::witness::FILE_NAME),
        source,
    })?;
    let found = match db
        .open_tree(Keyspace::Meta.name())?
        .get(keys::META_FLUSHED)?
    {
        Some(raw) => keys::read_u64_value(Keyspace::Meta, keys::META_FLUSHED, &raw)?,
        None => 0,
    };
    if found < recorded {
        return Err(Error::EarlierState {
            path: path.to_path_buf(),
            recorded,
            found,
        });
    }
    witness.saw(found);
    Ok(witness)
}

/// Checks (or, on a fresh directory, writes) the magic and format version. Returns whether
/// it created the store.
fn check_meta(db: &sled::Db, path: &Path, must_exist: bool) -> Result<bool> {
    let meta = db.open_tree(Keyspace::Meta.name())?;
    match meta.get(keys::META_MAGIC)? {
        Some(magic) if magic.as_ref() == keys::MAGIC => {
            let raw = meta
                .get(keys::META_FORMAT)?
                .ok_or_else(|| not_a_store(path.to_path_buf(), "format version missing"))?;
            let found = keys::read_u64_value(Keyspace::Meta, keys::META_FORMAT, &raw)?;
            let found = u32::try_from(found).unwrap_or(u32::MAX);
            if !(keys::OLDEST_FORMAT..=keys::FORMAT_VERSION).contains(&found) {
                return Err(Error::UnsupportedVersion {
                    found,
                    supported: keys::FORMAT_VERSION,
                });
            }
            if found < keys::FORMAT_VERSION {
                // Every older format is a subset of this one: only the version changes, so
                // an older build refuses the store once it may hold what that build cannot
                // read.
                meta.insert(
                    keys::META_FORMAT,
                    &keys::u64_value(u64::from(keys::FORMAT_VERSION)),
                )?;
                meta.flush()?;
            }
            Ok(false)
        }
        Some(_) => Err(not_a_store(path.to_path_buf(), "wrong magic bytes")),
        None => {
            // A fresh sled directory has only the default tree (empty) and our meta tree.
            let foreign = db.tree_names().iter().any(|n| {
                n.as_ref() != b"__sled__default" && n.as_ref() != Keyspace::Meta.name().as_bytes()
            }) || !db.is_empty();
            if foreign {
                return Err(not_a_store(
                    path.to_path_buf(),
                    "a sled database without jidstore's magic (another program's store?)",
                ));
            }
            if must_exist {
                return Err(not_a_store(
                    path.to_path_buf(),
                    "no store has been created here",
                ));
            }
            meta.insert(keys::META_MAGIC, keys::MAGIC)?;
            meta.insert(
                keys::META_FORMAT,
                &keys::u64_value(u64::from(keys::FORMAT_VERSION)),
            )?;
            meta.flush()?;
            Ok(true)
        }
    }
}

thread_local! {
    /// Set while this thread runs [`quiet_panics`]: the panic hook stays silent.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Runs `f`, catching a panic and returning its message instead. While it runs, panics on
/// this thread print nothing (the previous hook still serves every other thread and time),
/// so the caller's one-line error is all that reaches stderr.
pub(crate) fn quiet_panics<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let res = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    res.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic")
            .to_owned()
    })
}
