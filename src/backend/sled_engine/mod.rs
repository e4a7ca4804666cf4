//! The sled engine: the only module that names `sled`. It also owns what sled needs from
//! the data directory: the checks before opening it ([`dir`]), the flush witness
//! ([`crate::witness`]), the free-space reserve ([`space`]) and the long scans that let
//! sled evict ([`scan`]).

mod dir;
mod scan;
mod space;
pub(crate) mod undo;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use super::{
    Bytes, Changed, Durability, Engine, KeyRange, KvIter, TxBody, TxError, TxResult, TxView,
    WriteBatch,
};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::{self, Keyspace};
use crate::witness::Witness;
use space::SpaceGuard;

pub(crate) use dir::not_a_store;

/// sled's value type, held inside [`Bytes`] without a copy.
pub(crate) type Value = sled::IVec;

/// A store on sled 0.34: one sled tree per keyspace.
pub(crate) struct SledEngine {
    db: sled::Db,
    /// One per [`Keyspace::ALL`], in order.
    trees: Vec<sled::Tree>,
    path: PathBuf,
    space: SpaceGuard,
    /// Held from taking a flush generation to recording it.
    witness: Mutex<Witness>,
    /// Whether a write ran since the last recorded flush (then dropping the engine records one).
    dirty: AtomicBool,
    /// Numbers the undo records of [`Engine::apply_new`].
    undo: undo::Counter,
}

impl Drop for SledEngine {
    fn drop(&mut self) {
        if self.dirty.load(Ordering::Relaxed) {
            let _ = self.flush_recorded();
        }
    }
}

impl SledEngine {
    /// Opens (or creates) the sled store `config` names, after checking its directory.
    pub(crate) fn open(config: &Config) -> Result<SledEngine> {
        let path = config.path.clone();
        if !config.temporary {
            dir::check_dir(&path, config.read_only_check, config.incomplete_copy)?;
            dir::discard_partial_snapshots(&path)?;
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
            let res = crate::store::quiet_panics(|| sled_config.open());
            match res {
                Ok(Err(e)) => match dir::map_open_error(&path, e) {
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
            Ok(Err(e)) => return Err(dir::map_open_error(&path, e)),
            Err(what) => {
                return Err(not_a_store(
                    path,
                    &format!("sled panicked while opening it ({what})"),
                ));
            }
        };
        refuse_foreign(&db, &path)?;
        if !config.temporary {
            dir::restrict_sled_files(&path);
        }
        let witness = if config.temporary {
            Witness::none()
        } else {
            dir::check_witness(&db, &path)?
        };
        let trees = Keyspace::ALL
            .iter()
            .map(|ks| db.open_tree(ks.name()))
            .collect::<sled::Result<Vec<_>>>()?;
        let engine = SledEngine {
            db,
            trees,
            space: SpaceGuard::new(space::reserve_for(&path, config.min_free)),
            path,
            witness: Mutex::new(witness),
            dirty: AtomicBool::new(false),
            undo: undo::Counter::default(),
        };
        undo::roll_back(engine.tree(Keyspace::Meta)?, |ks| engine.tree(ks))?;
        Ok(engine)
    }

    fn tree(&self, ks: Keyspace) -> Result<&sled::Tree> {
        self.trees.get(ks.index()).ok_or_else(|| {
            Error::InvalidInput(format!("internal: keyspace {} is not open", ks.name()))
        })
    }

    fn wrote(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the next flush generation into `meta`, flushes sled, then records the
    /// generation in the witness file.
    fn flush_recorded(&self) -> Result<()> {
        let mut w = self.witness.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = w.next();
        self.tree(Keyspace::Meta)?
            .insert(keys::META_FLUSHED, &keys::u64_value(generation))?;
        self.db.flush()?;
        w.record(generation);
        Ok(())
    }
}

/// Refuses a sled database that is not a jidstore store: no magic in `meta`, and trees or
/// data of its own (a fresh sled directory has only its empty default tree and `meta`).
fn refuse_foreign(db: &sled::Db, path: &std::path::Path) -> Result<()> {
    let meta = db.open_tree(Keyspace::Meta.name())?;
    if meta.get(keys::META_MAGIC)?.is_some() {
        return Ok(());
    }
    let foreign = db.tree_names().iter().any(|n| {
        n.as_ref() != b"__sled__default" && n.as_ref() != Keyspace::Meta.name().as_bytes()
    }) || !db.is_empty();
    if foreign {
        return Err(not_a_store(
            path.to_path_buf(),
            "a sled database without jidstore's magic (another program's store?)",
        ));
    }
    Ok(())
}

fn bytes(v: Option<sled::IVec>) -> Option<Bytes> {
    v.map(Bytes::from_sled)
}

fn pair(kv: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(Bytes, Bytes)> {
    let (k, v) = kv?;
    Ok((Bytes::from_sled(k), Bytes::from_sled(v)))
}

impl Engine for SledEngine {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(bytes(self.tree(ks)?.get(key)?))
    }

    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<Option<Bytes>> {
        self.wrote();
        Ok(bytes(self.tree(ks)?.insert(key, value)?))
    }

    fn remove(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>> {
        self.wrote();
        Ok(bytes(self.tree(ks)?.remove(key)?))
    }

    fn compare_and_swap(
        &self,
        ks: Keyspace,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Changed>> {
        self.wrote();
        Ok(self
            .tree(ks)?
            .compare_and_swap(key, old, new)?
            .map_err(|e| Changed {
                current: bytes(e.current),
            }))
    }

    fn range(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        match self.tree(ks) {
            Ok(tree) => Box::new(tree.range(range).map(pair)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn scan(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        match self.tree(ks) {
            Ok(tree) => Box::new(scan::Scan::new(tree.clone(), range)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn apply(&self, batch: &WriteBatch) -> Result<()> {
        self.wrote();
        let spaces = batch.keyspaces();
        if spaces.is_empty() {
            return Ok(());
        }
        if let [ks] = spaces.as_slice() {
            let mut b = sled::Batch::default();
            for (_, key, value) in &batch.ops {
                match value {
                    Some(v) => b.insert(key.as_slice(), v.as_slice()),
                    None => b.remove(key.as_slice()),
                }
            }
            return Ok(self.tree(*ks)?.apply_batch(b)?);
        }
        self.transaction(&spaces, Durability::Buffered, &|tx| batch.replay(tx))
    }

    fn apply_new(&self, batch: &WriteBatch) -> Result<()> {
        self.wrote();
        if batch.ops.is_empty() {
            return Ok(());
        }
        undo::apply(self.tree(Keyspace::Meta)?, &self.undo, batch, |ks| {
            self.tree(ks).cloned()
        })
    }

    fn transaction(
        &self,
        spaces: &[Keyspace],
        durability: Durability,
        body: &TxBody<'_>,
    ) -> Result<()> {
        self.wrote();
        let flushed = durability == Durability::Flushed;
        let mut all = spaces.to_vec();
        if flushed {
            all.push(Keyspace::Meta);
            all.sort();
            all.dedup();
        }
        if all.is_empty() {
            // sled panics on a transaction over no tree; the body can only read nothing.
            let view = SledTx {
                spaces,
                all: &all,
                trees: &[],
            };
            return body(&view).map_err(|e| match e {
                TxError::Conflict => {
                    Error::InvalidInput("internal: conflict over no keyspace".into())
                }
                TxError::Abort(e) => e,
            });
        }
        let trees = all
            .iter()
            .map(|ks| self.tree(*ks).cloned())
            .collect::<Result<Vec<_>>>()?;
        let mut witness =
            flushed.then(|| self.witness.lock().unwrap_or_else(PoisonError::into_inner));
        let generation = witness.as_mut().map_or(0, |w| w.next());
        let res = trees.as_slice().transaction(|txs| {
            let view = SledTx {
                spaces,
                all: &all,
                trees: txs,
            };
            body(&view).map_err(|e| match e {
                TxError::Conflict => ConflictableTransactionError::Conflict,
                TxError::Abort(e) => ConflictableTransactionError::Abort(e),
            })?;
            if flushed {
                view.tree(Keyspace::Meta)
                    .map_err(|e| match e {
                        TxError::Conflict => ConflictableTransactionError::Conflict,
                        TxError::Abort(e) => ConflictableTransactionError::Abort(e),
                    })?
                    .insert(keys::META_FLUSHED, &keys::u64_value(generation))?;
                if let Some(t) = txs.first() {
                    t.flush();
                }
            }
            Ok(())
        });
        match res {
            Ok(()) => {
                if let Some(w) = witness.as_mut() {
                    w.record(generation);
                }
                Ok(())
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn generate_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    fn flush(&self) -> Result<()> {
        self.dirty.store(false, Ordering::Relaxed);
        self.flush_recorded()
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn keyspace_names(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .db
            .tree_names()
            .into_iter()
            .filter(|n| n.as_ref() != b"__sled__default" || !self.db.is_empty())
            .map(|n| n.to_vec())
            .collect())
    }

    fn check_space(&self, logical: u64) -> Result<()> {
        self.space
            .check(&self.path, logical.saturating_mul(space::SLED_WRITE_FACTOR))
    }

    fn created(&self) -> Result<()> {
        dir::restrict(&self.path).map_err(|source| Error::Path {
            action: "make owner-only the new data directory",
            path: self.path.clone(),
            source,
        })
    }

    fn restrict_files(&self) {
        dir::restrict_sled_files(&self.path);
    }
}

/// The trees of one sled transaction, addressed by keyspace.
struct SledTx<'a> {
    /// The keyspaces the caller opened the transaction over.
    spaces: &'a [Keyspace],
    /// Those plus `meta` for a flushed transaction, in the order of `trees`.
    all: &'a [Keyspace],
    trees: &'a [TransactionalTree],
}

impl SledTx<'_> {
    fn tree(&self, ks: Keyspace) -> TxResult<&TransactionalTree> {
        self.all
            .iter()
            .position(|s| *s == ks)
            .and_then(|i| self.trees.get(i))
            .ok_or_else(|| not_in(ks))
    }

    fn caller_tree(&self, ks: Keyspace) -> TxResult<&TransactionalTree> {
        if self.spaces.contains(&ks) {
            self.tree(ks)
        } else {
            Err(not_in(ks))
        }
    }
}

fn not_in(ks: Keyspace) -> TxError {
    TxError::Abort(Error::InvalidInput(format!(
        "internal: keyspace {} not part of this transaction",
        ks.name()
    )))
}

impl From<UnabortableTransactionError> for TxError {
    fn from(e: UnabortableTransactionError) -> Self {
        match e {
            UnabortableTransactionError::Conflict => TxError::Conflict,
            UnabortableTransactionError::Storage(e) => TxError::Abort(e.into()),
        }
    }
}

impl TxView for SledTx<'_> {
    fn get(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<Bytes>> {
        Ok(bytes(self.caller_tree(ks)?.get(key)?))
    }

    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.caller_tree(ks)?.insert(key, value)?;
        Ok(())
    }

    fn remove(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.caller_tree(ks)?.remove(key)?;
        Ok(())
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) if crate::error::is_storage_full(&io) => {
                Error::StorageFull { path: None }
            }
            // After open, the files sled opens are blobs: a missing one is damage.
            sled::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => Error::Storage(format!(
                "a file of the store is missing (sled keeps large values in blobs/): {io}; \
                 restore a backup"
            )),
            sled::Error::Io(io) => Error::Io(io),
            sled::Error::Corruption { at, .. } => Error::Storage(damaged(at)),
            other => Error::Storage(other.to_string()),
        }
    }
}

/// The message for damage sled found, with where if it says.
fn damaged(at: Option<sled::DiskPtr>) -> String {
    let whereabouts = at.map_or_else(String::new, |at| format!(" (at {at})"));
    format!("sled found damaged data in its files{whereabouts}; restore a backup")
}
