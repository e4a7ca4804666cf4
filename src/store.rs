//! The [`Store`] handle: opens the storage engine ([`crate::backend`]), checks the format,
//! guards writes against a concurrent erasure and hides ranges an erasure committed to
//! deleting until they are swept.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{
    self, Bytes, Durability, Engine, Held, KvIter, TxError, TxView, WriteBatch,
    memory::MemoryEngine, sled_engine::SledEngine,
};
pub(crate) use crate::backend::{Tree, TxResult};
use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ext;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};

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

/// The PostgreSQL engine for `url`.
#[cfg(feature = "postgres")]
pub(crate) fn open_database(
    url: &crate::database_url::DatabaseUrl,
    must_exist: bool,
) -> Result<Box<dyn Engine>> {
    url.check()?;
    Ok(Box::new(backend::postgres::PgEngine::open(
        url, must_exist,
    )?))
}

/// Without the `postgres` feature: refused.
#[cfg(not(feature = "postgres"))]
pub(crate) fn open_database(
    url: &crate::database_url::DatabaseUrl,
    _must_exist: bool,
) -> Result<Box<dyn Engine>> {
    url.check()?;
    Err(Error::InvalidInput(
        "this jidstore was built without the postgres feature: it cannot open a database URL"
            .into(),
    ))
}

/// What [`Store::writer`] holds: the cross-process erase lock (dropped first), if the
/// engine has one, and the in-process one.
pub(crate) struct WriterGuard<'a> {
    _across: Option<Box<dyn Held>>,
    _local: RwLockReadGuard<'a, ()>,
}

/// What [`Store::eraser`] holds: the cross-process erase lock (dropped first), if the engine
/// has one, and the in-process one.
pub(crate) struct EraserGuard<'a> {
    _across: Option<Box<dyn Held>>,
    _local: RwLockWriteGuard<'a, ()>,
}

/// A handle on an open store. Cheap to clone; all clones share one engine.
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
    engine: Box<dyn Engine>,
    /// Writers of owner data hold the read side; an erasure holds the write side from
    /// collecting keys to commit, so no write can slip in between.
    erase_lock: RwLock<()>,
    /// Held by archive appends from taking a seq to writing it, so that within one archive
    /// seq order is write order and archive time is non-decreasing in seq (see
    /// [`crate::appenders`]). Holds the archive time of the newest message of each archive
    /// appended to since open.
    appenders: crate::appenders::Appenders,
    /// The extensions' caches, emptied of what an erasure makes stale by [`Store::eraser`].
    caches: ext::Caches,
    path: PathBuf,
    /// No directory of its own: a [`Config::temporary`] store (`path` is the system temp
    /// directory) or one on PostgreSQL (`path` is the URL without its password).
    temporary: bool,
    /// The free-space reserve as configured (`None`: the default for the filesystem), which
    /// copies of the store ([`crate::maintenance`]) keep too.
    min_free: Option<u64>,
    scram_iterations: u32,
    /// Ranges committed for deletion and not yet swept, mirrored from the `sweep` keyspace.
    tombstones: RwLock<Vec<Tombstone>>,
    /// `tombstones.len()`, read without the lock: zero on the hot path of every read.
    pending: std::sync::atomic::AtomicUsize,
    /// Held while a range is swept, so that one range is swept by one thread at a time and
    /// a writer waiting for a range waits for its sweep to end.
    sweep_lock: Mutex<()>,
    /// Last, so that it drops after the engine: gives the files the engine wrote to the
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

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
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
        // A store on PostgreSQL has no directory: its "path" is the URL without password,
        // for messages, and it is treated as temporary (no owner checks, no files).
        let dirless = config.temporary || config.database.is_some();
        let path = match &config.database {
            Some(url) => PathBuf::from(url.redacted()),
            None => config.path.clone(),
        };
        let owner = if dirless {
            None
        } else {
            crate::owner::check(&path, config.allow_foreign_owner)?
        };
        // Dropped last, also on the error paths below, after the engine wrote its files.
        let owner = GiveBack(path.clone(), owner);
        let engine: Box<dyn Engine> = match &config.database {
            Some(url) => open_database(url, config.read_only_check)?,
            None if config.in_memory => Box::new(MemoryEngine::new()),
            None => Box::new(SledEngine::open(&config)?),
        };
        if crate::meta::check_with(&*engine, &path, config.read_only_check, config.migrating)?
            && !dirless
        {
            engine.created()?;
        }
        if let Some(o) = owner.1 {
            crate::owner::give(&path, o);
        }
        let store = Store {
            inner: Arc::new(Inner {
                engine,
                erase_lock: RwLock::new(()),
                appenders: crate::appenders::Appenders::default(),
                caches: ext::Caches::default(),
                tombstones: RwLock::new(Vec::new()),
                pending: std::sync::atomic::AtomicUsize::new(0),
                sweep_lock: Mutex::new(()),
                owner,
                path,
                temporary: dirless,
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

    /// Whether this store has no data directory of its own: [`Config::temporary`] (its
    /// [`Store::path`] is the system temp directory) or on PostgreSQL (its path is the URL).
    pub(crate) fn is_temporary(&self) -> bool {
        self.inner.temporary
    }

    /// The free-space reserve as configured ([`Config::min_free`]), `None` for the default.
    pub(crate) fn configured_min_free(&self) -> Option<u64> {
        self.inner.min_free
    }

    /// Makes every write so far durable, and records that in the flush witness
    /// (`src/witness.rs`): should sled later recover an earlier state, opening the store
    /// fails with [`Error::EarlierState`].
    pub fn flush(&self) -> Result<()> {
        self.inner.engine.flush()
    }

    /// Makes the engine's files owner-only again (after a copy into this store).
    pub(crate) fn restrict_files(&self) {
        self.inner.engine.restrict_files();
        if let Some(owner) = self.inner.owner.1 {
            crate::owner::give(&self.inner.path, owner);
        }
    }

    /// The engine, for whole-store operations that work below the typed layer
    /// ([`crate::migrate`]).
    pub(crate) fn engine(&self) -> &dyn Engine {
        &*self.inner.engine
    }

    /// Bytes the store occupies on disk, as the engine reports it (0 in memory).
    pub fn size_on_disk(&self) -> Result<u64> {
        self.inner.engine.size_on_disk()
    }

    pub(crate) fn scram_iterations(&self) -> u32 {
        self.inner.scram_iterations
    }

    /// The names of every keyspace the engine holds, including ones this build does not know.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the registry tests only")
    )]
    pub(crate) fn tree_names(&self) -> Result<Vec<Vec<u8>>> {
        self.inner.engine.keyspace_names()
    }

    /// One keyspace of the engine, with no tombstone hiding or index upkeep.
    pub(crate) fn tree(&self, ks: Keyspace) -> Tree<'_> {
        Tree::new(&*self.inner.engine, ks)
    }

    /// One keyspace of the engine, bypassing every check and index.
    ///
    /// For tests and tools only (e.g. damaging an entry to see [`crate::verify`] report it):
    /// writes through it can break the invariants the typed APIs keep.
    #[doc(hidden)]
    pub fn raw_tree(&self, ks: Keyspace) -> Tree<'_> {
        self.tree(ks)
    }

    /// A unique, monotonically increasing id (survives restarts; carried over by
    /// [`crate::maintenance::copy_into`]).
    pub(crate) fn generate_id(&self) -> Result<u64> {
        self.inner.engine.generate_id()
    }

    /// Held by every writer that adds owner data: fails with [`Error::LowSpace`] when the
    /// filesystem is down to the reserve (see [`Config::min_free`](crate::Config::min_free)).
    /// On an engine several processes share, it also holds the cross-process erase lock
    /// (shared), so no other process's erasure runs between the writer's checks and writes.
    pub(crate) fn writer(&self) -> Result<WriterGuard<'_>> {
        self.check_space()?;
        let local = self.remover();
        let across = self.inner.engine.erase_lock(false)?;
        Ok(WriterGuard {
            _across: across,
            _local: local,
        })
    }

    /// The cross-process erase lock, exclusive (`None` on a one-process engine): held by
    /// [`crate::gdpr::remove`] from its commit to the end of its sweep.
    pub(crate) fn erasing_across_processes(&self) -> Result<Option<Box<dyn Held>>> {
        self.inner.engine.erase_lock(true)
    }

    /// Held by every writer that only removes owner data (never refused for lack of space:
    /// removing is how space comes back).
    pub(crate) fn remover(&self) -> RwLockReadGuard<'_, ()> {
        self.inner
            .erase_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Error::LowSpace`] when less than the reserve is free.
    pub(crate) fn check_space(&self) -> Result<()> {
        self.inner.engine.check_space(0)
    }

    /// [`Error::LowSpace`] unless the reserve stays free after a write of `logical` bytes of
    /// keys and values (bulk appends, copies).
    pub(crate) fn check_space_for(&self, logical: u64) -> Result<()> {
        self.inner.engine.check_space(logical)
    }

    /// Applies a batch to one keyspace atomically.
    pub(crate) fn apply_batch(&self, ks: Keyspace, batch: Batch) -> Result<()> {
        if self.pending_count() > 0 {
            for key in batch.inserted() {
                self.sweep_before_write(ks, key)?;
            }
        }
        self.inner.engine.apply(&batch.into_write_batch(ks))
    }

    /// Applies a batch of new keys to one keyspace atomically: every key it inserts must be
    /// absent and written by no one else until this returns (see [`Engine::apply_new`];
    /// readers may see the writes one by one, in order).
    pub(crate) fn apply_new_batch(&self, ks: Keyspace, batch: Batch) -> Result<()> {
        if self.pending_count() > 0 {
            for key in batch.inserted() {
                self.sweep_before_write(ks, key)?;
            }
        }
        self.inner.engine.apply_new(&batch.into_write_batch(ks))
    }

    /// Held by archive appends (1-1 and room) from taking a seq to the write; gives the
    /// cached newest archive time of each archive.
    pub(crate) fn archive_appender(&self) -> crate::appenders::Exclusive<'_> {
        self.inner.appenders.exclusive()
    }

    /// Held by a live 1-1 append from taking a seq to the write: keeps the other appends to
    /// the same archive away (named by its archive id), and every holder of
    /// [`Store::archive_appender`]; appends to other archives proceed.
    pub(crate) fn archive_appender_for(&self, archive: u64) -> crate::appenders::One<'_> {
        self.inner.appenders.one(archive)
    }

    /// Held by an erasure from key collection to commit. Empties the extensions' caches of
    /// what it may make stale: no writer runs while this is held, so nothing can be cached
    /// again before the commit. On
    /// an engine several processes share, it also holds the cross-process erase lock
    /// (exclusive).
    pub(crate) fn eraser(&self) -> Result<EraserGuard<'_>> {
        let local = self
            .inner
            .erase_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.caches.forget_erased();
        let across = self.inner.engine.erase_lock(true)?;
        Ok(EraserGuard {
            _across: across,
            _local: local,
        })
    }

    /// The extensions' caches (see [`ext::Caches`]).
    pub(crate) fn caches(&self) -> &ext::Caches {
        &self.inner.caches
    }

    /// Whether other processes may use the store at the same time (see
    /// [`backend::Engine::shared_by_processes`]): then no process may cache what another's
    /// erasure could make stale.
    pub(crate) fn shared_by_processes(&self) -> bool {
        self.inner.engine.shared_by_processes()
    }

    /// Reads and decodes one value.
    pub(crate) fn get<T: DeserializeOwned>(&self, ks: Keyspace, key: &[u8]) -> Result<Option<T>> {
        if self.hidden(ks, key) {
            return Ok(None);
        }
        match self.inner.engine.get(ks, key)? {
            Some(v) => codec::decode(ks, key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` exists in `ks`.
    pub(crate) fn contains(&self, ks: Keyspace, key: &[u8]) -> Result<bool> {
        Ok(!self.hidden(ks, key) && self.inner.engine.get(ks, key)?.is_some())
    }

    /// Encodes and writes one value (no index: callers with an index use [`Store::transaction`]).
    pub(crate) fn put<T: Serialize>(&self, ks: Keyspace, key: &[u8], value: &T) -> Result<()> {
        self.sweep_before_write(ks, key)?;
        self.inner.engine.insert(ks, key, &codec::encode(value))?;
        Ok(())
    }

    /// The entries of `ks` under `prefix`, without those hidden by a pending tombstone (none
    /// at all when `prefix` itself lies in a hidden range).
    fn visible(
        &self,
        ks: Keyspace,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(Bytes, Bytes)>> + use<> {
        let hidden = self.hidden_in(ks);
        let iter: KvIter = if hides(&hidden, prefix) {
            Box::new(std::iter::empty())
        } else {
            self.inner.engine.range(ks, backend::prefix_range(prefix))
        };
        iter.filter(move |e| e.as_ref().map_or(true, |(k, _)| !hides(&hidden, k)))
    }

    /// Lazily decodes every entry whose key starts with `prefix`, in key order.
    pub(crate) fn scan<T: DeserializeOwned>(
        &self,
        ks: Keyspace,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(Bytes, T)>> + use<T> {
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
    ) -> impl DoubleEndedIterator<Item = Result<Bytes>> + use<> {
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
    pub(crate) fn require_account(&self, owner: &BareJid) -> Result<ext::accounts::StoredAccount> {
        self.get(Keyspace::Accounts, &keys::owner(owner))?
            .ok_or_else(|| Error::NoAccount(owner.to_string()))
    }

    /// [`Store::transaction`], made durable before it returns and recorded as such (a GDPR
    /// erasure's commit: should the engine ever recover a state before it, the store refuses
    /// to open instead of bringing erased data back).
    pub(crate) fn recorded_transaction<A>(
        &self,
        spaces: &[Keyspace],
        f: impl Fn(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A> {
        self.run_transaction(spaces, Durability::Flushed, f)
    }

    /// Runs `f` atomically over the named keyspaces. `f` may be retried, so it must have no
    /// side effects. Other store calls inside `f` may deadlock; use only the [`Tx`] it is given.
    ///
    /// A write into a range an erasure committed to deleting aborts the attempt; the range
    /// is swept, then `f` runs again.
    pub(crate) fn transaction<A>(
        &self,
        spaces: &[Keyspace],
        f: impl Fn(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A> {
        self.run_transaction(spaces, Durability::Buffered, f)
    }

    fn run_transaction<A>(
        &self,
        spaces: &[Keyspace],
        durability: Durability,
        f: impl Fn(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A> {
        let mut sorted = spaces.to_vec();
        sorted.sort();
        sorted.dedup();
        loop {
            let hidden: Vec<(Keyspace, Hidden)> = sorted
                .iter()
                .map(|ks| (*ks, self.hidden_in(*ks)))
                .filter(|(_, h)| !h.is_empty())
                .collect();
            let hit = RefCell::new(None);
            // The value of the attempt that committed (each attempt overwrites it).
            let out = RefCell::new(None);
            let res = self.inner.engine.transaction(&sorted, durability, &|view| {
                let a = f(&Tx {
                    view,
                    hidden: &hidden,
                    hit: &hit,
                })?;
                *out.borrow_mut() = Some(a);
                Ok(())
            });
            if let Some((ks, key)) = hit.take() {
                self.sweep_before_write(ks, &key)?;
                continue;
            }
            res?;
            return out.into_inner().ok_or_else(|| {
                Error::InvalidInput("internal: a transaction committed without a value".into())
            });
        }
    }
}

/// The keyspaces of one transaction.
pub(crate) struct Tx<'a> {
    view: &'a dyn TxView,
    /// Ranges hidden by pending tombstones when the transaction started.
    hidden: &'a [(Keyspace, Hidden)],
    /// Set by a write into a hidden range (the transaction then aborts, and is retried
    /// after the sweep).
    hit: &'a RefCell<Option<(Keyspace, Vec<u8>)>>,
}

impl Tx<'_> {
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
        self.put_raw(ks, key, &codec::encode(value))
    }

    /// Inserts raw bytes (index markers, integers).
    pub(crate) fn put_raw(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.check_write(ks, key)?;
        self.view.insert(ks, key, value)
    }

    /// Inserts an index marker.
    pub(crate) fn mark(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.put_raw(ks, key, &codec::marker())
    }

    /// Reads and decodes a value.
    pub(crate) fn get<T: DeserializeOwned>(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<T>> {
        match self.view.get(ks, key)? {
            Some(v) => Ok(Some(codec::decode(ks, key, &v)?)),
            None => Ok(None),
        }
    }

    /// Reads raw bytes (integers written with `put_raw`).
    pub(crate) fn get_raw(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<Bytes>> {
        self.view.get(ks, key)
    }

    /// Whether a key exists.
    pub(crate) fn contains(&self, ks: Keyspace, key: &[u8]) -> TxResult<bool> {
        Ok(self.view.get(ks, key)?.is_some())
    }

    /// Applies a batch to one keyspace, inside the transaction.
    pub(crate) fn apply_batch(&self, ks: Keyspace, batch: &Batch) -> TxResult<()> {
        for key in batch.inserted() {
            self.check_write(ks, key)?;
        }
        for (key, value) in &batch.ops {
            match value {
                Some(v) => self.view.insert(ks, key, v)?,
                None => self.view.remove(ks, key)?,
            }
        }
        Ok(())
    }

    /// Removes a key.
    pub(crate) fn remove(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.view.remove(ks, key)
    }
}

/// Writes to one keyspace, applied atomically by [`Store::apply_batch`] or [`Tx::apply_batch`].
#[derive(Default)]
pub(crate) struct Batch {
    /// In order; a later write of the same key wins.
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// Inserts (or overwrites) a key.
    pub(crate) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Removes a key.
    pub(crate) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// The keys inserted, checked against pending tombstones.
    fn inserted(&self) -> impl Iterator<Item = &[u8]> {
        self.ops
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.as_slice())
    }

    fn into_write_batch(self, ks: Keyspace) -> WriteBatch {
        WriteBatch {
            ops: self.ops.into_iter().map(|(k, v)| (ks, k, v)).collect(),
        }
    }
}

/// Aborts a transaction with a jidstore error.
pub(crate) fn abort<T>(e: Error) -> TxResult<T> {
    Err(TxError::Abort(e))
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
