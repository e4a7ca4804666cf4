//! The storage interface: the few operations every layer above uses, each with its contract,
//! and the engines behind it ([`sled_engine`], the default, and [`memory`]).
//!
//! Everything above this module (the store, the extensions, GDPR, verify, maintenance) reads
//! and writes through [`Engine`] and never names an engine's own types. An engine holds one
//! ordered map of byte keys to byte values per [`Keyspace`]; keys sort as unsigned bytes.
//!
//! Contracts every engine keeps (checked for each by the tests in `tests.rs`):
//! - **Ordering.** [`Engine::range`] and [`Engine::scan`] yield entries in ascending key order
//!   from the front and descending from the back, and never yield a key outside the range.
//! - **Atomicity.** A [`WriteBatch`] and a [`Engine::transaction`] are all-or-nothing, also
//!   across keyspaces and across a crash: after a restart either every write of it is there
//!   or none is. Single-key operations are atomic.
//! - **Isolation.** A transaction's reads see the state before it plus its own writes, and no
//!   other write lands between its first read and its commit (engines retry or serialise).
//!   Reads outside transactions see every write that returned, but iterators are not
//!   snapshots: an entry written while one runs may or may not be yielded.
//! - **Durability.** A write that returned is durable once [`Engine::flush`] returns, or, in
//!   the background, within the engine's flush interval. A transaction run with
//!   [`Durability::Flushed`] is durable when it returns, and the engine records that: should it
//!   ever recover to a state before it, opening fails instead of resurrecting erased data.
//! - **Ids.** [`Engine::generate_id`] never returns the same id twice in the life of a store,
//!   also across restarts; ids increase.

mod bytes;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sled_engine;
#[cfg(test)]
mod tests;
mod tree;

use std::ops::Bound;

pub use bytes::Bytes;
pub(crate) use sled_engine::undo::{PREFIX as UNDO_PREFIX, check as check_undo};
pub use tree::Tree;

use crate::error::{Error, Result};
use crate::keys::Keyspace;

/// A lazy, fallible iterator over the entries of a key range, usable from both ends.
pub type KvIter = Box<dyn DoubleEndedIterator<Item = Result<(Bytes, Bytes)>> + Send>;

/// A key range: lower and upper bound.
pub(crate) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The keys starting with `prefix`, as a range.
pub(crate) fn prefix_range(prefix: &[u8]) -> KeyRange {
    let hi = match crate::keys::prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), hi)
}

/// Whether no key lies between `lo` and `hi` (ordered maps refuse such a range).
pub(crate) fn empty_range(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// When a transaction must be durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Like any write: durable at the next flush.
    Buffered,
    /// Durable, and recorded as such, when the transaction returns (an erasure's commit).
    Flushed,
}

/// Writes over one or several keyspaces, applied all-or-nothing by [`Engine::apply`].
#[derive(Default, Debug)]
pub(crate) struct WriteBatch {
    /// In order; a later write of the same key wins.
    pub(crate) ops: Vec<(Keyspace, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// Inserts (or overwrites) a key.
    pub(crate) fn insert(&mut self, ks: Keyspace, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((ks, key, Some(value)));
    }

    /// Removes a key.
    pub(crate) fn remove(&mut self, ks: Keyspace, key: Vec<u8>) {
        self.ops.push((ks, key, None));
    }

    /// The keyspaces written, sorted, each once.
    pub(crate) fn keyspaces(&self) -> Vec<Keyspace> {
        let mut spaces: Vec<Keyspace> = self.ops.iter().map(|(ks, _, _)| *ks).collect();
        spaces.sort();
        spaces.dedup();
        spaces
    }

    /// Applies every write, in order, through a transaction's view: how an engine without
    /// a native multi-keyspace batch makes one atomic (run it inside [`Engine::transaction`]
    /// over [`WriteBatch::keyspaces`]).
    pub(crate) fn replay(&self, view: &dyn TxView) -> TxResult<()> {
        for (ks, key, value) in &self.ops {
            match value {
                Some(v) => view.insert(*ks, key, v)?,
                None => view.remove(*ks, key)?,
            }
        }
        Ok(())
    }
}

/// Why a transaction attempt stopped.
#[derive(Debug)]
pub(crate) enum TxError {
    /// Another writer got in the way: the engine runs the closure again.
    Conflict,
    /// The closure gave up: the transaction writes nothing and returns this error.
    Abort(Error),
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Abort(e)
    }
}

/// The result of one step inside a transaction.
pub(crate) type TxResult<T> = std::result::Result<T, TxError>;

/// The keyspaces of one transaction. Every method fails with an aborting error for a keyspace
/// the transaction was not opened over.
pub(crate) trait TxView {
    /// The value of `key` as this transaction sees it.
    fn get(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<Bytes>>;
    /// Inserts (or overwrites) `key`.
    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> TxResult<()>;
    /// Removes `key` (nothing if absent).
    fn remove(&self, ks: Keyspace, key: &[u8]) -> TxResult<()>;
}

/// The body of a transaction. It may run several times (after a [`TxError::Conflict`]), so it
/// must have no side effects beyond its writes through the view; while it runs, any other
/// call on the same engine from the same thread may deadlock.
pub(crate) type TxBody<'a> = dyn Fn(&dyn TxView) -> TxResult<()> + 'a;

/// A value changed under a compare-and-swap: what was found instead.
#[derive(Debug)]
pub(crate) struct Changed {
    /// The current value (`None`: absent).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the contract tests"))]
    pub(crate) current: Option<Bytes>,
}

/// A lock an engine holds for the store until it is dropped ([`Engine::erase_lock`]).
pub(crate) trait Held {}

/// A storage engine: one ordered map of bytes to bytes per [`Keyspace`], with the contracts
/// in the module docs.
pub(crate) trait Engine: Send + Sync {
    /// The value of `key`.
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>>;

    /// The values of `keys`, in the order of `keys`: one result per key (`None`: absent), a
    /// key given twice answered twice, an empty list answered with an empty list. Each value
    /// is what [`Engine::get`] would return; no snapshot across the keys is promised. For
    /// engines where a read is a round trip, one round trip (or a few, for a long list).
    fn get_many(&self, ks: Keyspace, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>> {
        keys.iter().map(|k| self.get(ks, k)).collect()
    }

    /// Inserts (or overwrites) `key`; returns the previous value.
    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<Option<Bytes>>;

    /// Removes `key`; returns the previous value.
    fn remove(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>>;

    /// Sets `key` to `new` (`None`: removes it) if its value is `old` now (`None`: absent),
    /// atomically; otherwise changes nothing and says what is there.
    fn compare_and_swap(
        &self,
        ks: Keyspace,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Changed>>;

    /// The entries in `range`, for short reads (a page of an archive, one lookup).
    fn range(&self, ks: Keyspace, range: KeyRange) -> KvIter;

    /// The entries in `range`, for long reads (a whole archive, a whole keyspace): the engine
    /// keeps the memory such a read holds bounded, at some cost per entry.
    fn scan(&self, ks: Keyspace, range: KeyRange) -> KvIter;

    /// Applies every write of `batch`, all or nothing, also across keyspaces.
    fn apply(&self, batch: &WriteBatch) -> Result<()>;

    /// Applies `batch` like [`Engine::apply`] (all or nothing, also across a crash and
    /// across keyspaces) when every key it writes is new: absent before it, and written by
    /// no one else until it returns (each key holds a fresh id, as a live append's do).
    /// Readers may see its writes one by one, in batch order, before it returns. An engine
    /// may use it to skip costly batch machinery (sled: see `sled_engine/undo.rs`).
    fn apply_new(&self, batch: &WriteBatch) -> Result<()> {
        self.apply(batch)
    }

    /// Runs `body` as one transaction over `spaces` (sorted, each once): its writes commit
    /// together, or not at all if it aborts. `durability` says when it is durable.
    fn transaction(
        &self,
        spaces: &[Keyspace],
        durability: Durability,
        body: &TxBody<'_>,
    ) -> Result<()>;

    /// A new id, greater than every id this store returned before.
    fn generate_id(&self) -> Result<u64>;

    /// Makes every later [`Engine::generate_id`] return at least `floor` (a migration carries
    /// the source's ids over). Never lowers the next id.
    fn advance_ids(&self, floor: u64) -> Result<()> {
        while self.generate_id()? < floor {}
        Ok(())
    }

    /// Removes every entry of `ks` (a migration starting over), in batches of bounded size.
    fn clear(&self, ks: Keyspace) -> Result<()> {
        loop {
            let mut batch = WriteBatch::default();
            for entry in self
                .scan(ks, (Bound::Unbounded, Bound::Unbounded))
                .take(10_000)
            {
                batch.remove(ks, entry?.0.to_vec());
            }
            if batch.ops.is_empty() {
                return Ok(());
            }
            self.apply(&batch)?;
        }
    }

    /// On an engine that keeps the bytes of deleted entries in its files until a vacuum
    /// (PostgreSQL): reclaims them in place, in every table of the store; with `full`,
    /// rewrites each table into new files. Returns how many tables it vacuumed. Engines
    /// without one (sled is compacted by copying its directory) refuse.
    fn vacuum(&self, _full: bool) -> Result<usize> {
        Err(Error::InvalidInput(
            "this engine has no vacuum (compact copies a data directory instead)".into(),
        ))
    }

    /// Makes every write that returned durable (and records it: see the module docs).
    fn flush(&self) -> Result<()>;

    /// Bytes the store occupies on disk (0 in memory).
    fn size_on_disk(&self) -> Result<u64>;

    /// The names of every keyspace the engine holds, including ones this build does not know.
    fn keyspace_names(&self) -> Result<Vec<Vec<u8>>>;

    /// [`Error::LowSpace`] unless a write of `logical` bytes of keys and values leaves the
    /// engine's free-space reserve intact (`0`: any write that adds data).
    fn check_space(&self, logical: u64) -> Result<()>;

    /// Whether several processes may have this store open at once (PostgreSQL): then what a
    /// process caches about accounts can go stale under another's erasure.
    fn shared_by_processes(&self) -> bool {
        false
    }

    /// On an engine several processes share: the store-wide erase lock across processes,
    /// shared for a writer that adds owner data, exclusive for an erasure (from collecting
    /// its keys to the end of its sweep), held until the guard drops. `None` (sled, memory):
    /// one process has the store, and the store's in-process lock is enough.
    fn erase_lock(&self, _exclusive: bool) -> Result<Option<Box<dyn Held>>> {
        Ok(None)
    }

    /// Called once, after the store's format was written into a fresh engine.
    fn created(&self) -> Result<()> {
        Ok(())
    }

    /// After a copy into this engine (backup, compact): makes its files owner-only again.
    fn restrict_files(&self) {}
}
