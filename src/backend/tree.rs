//! [`Tree`]: one keyspace of an engine, addressed with the `BTreeMap` words.

use std::ops::{Bound, RangeBounds};

use super::{Bytes, Changed, Engine, KvIter, prefix_range};
use crate::error::Result;
use crate::keys::Keyspace;

/// One keyspace of a store's engine, read and written directly: no tombstone hiding, no
/// index upkeep, no free-space check. The typed extension APIs are what keeps a store
/// consistent; this is for them, for verify and maintenance, and for tests that damage a
/// store on purpose.
#[derive(Clone, Copy)]
pub struct Tree<'a> {
    engine: &'a dyn Engine,
    ks: Keyspace,
}

fn owned<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<'a> Tree<'a> {
    pub(crate) fn new(engine: &'a dyn Engine, ks: Keyspace) -> Self {
        Tree { engine, ks }
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.engine.get(self.ks, key.as_ref())
    }

    /// The values of `keys`, in their order (see [`Engine::get_many`]).
    pub(crate) fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>> {
        self.engine.get_many(self.ks, keys)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Inserts (or overwrites) `key`; returns the previous value.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.engine.insert(self.ks, key.as_ref(), value.as_ref())
    }

    /// Removes `key`; returns the previous value.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.engine.remove(self.ks, key.as_ref())
    }

    /// Sets `key` to `new` if it holds `old` now (see [`Engine::compare_and_swap`]).
    pub(crate) fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Changed>> {
        self.engine.compare_and_swap(self.ks, key, old, new)
    }

    /// The entries in `range`, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> KvIter {
        let r = (owned(range.start_bound()), owned(range.end_bound()));
        self.engine.range(self.ks, r)
    }

    /// The entries in `range`, read so that a long read holds little memory (see
    /// [`Engine::scan`]).
    pub(crate) fn scan<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> KvIter {
        let r = (owned(range.start_bound()), owned(range.end_bound()));
        self.engine.scan(self.ks, r)
    }

    /// The entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> KvIter {
        self.engine.range(self.ks, prefix_range(prefix.as_ref()))
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> KvIter {
        self.engine
            .range(self.ks, (Bound::Unbounded, Bound::Unbounded))
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.iter().next().transpose()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.iter().next_back().transpose()
    }

    /// The number of entries (reads them all).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the keyspace holds nothing.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl IntoIterator for &Tree<'_> {
    type Item = Result<(Bytes, Bytes)>;
    type IntoIter = KvIter;
    fn into_iter(self) -> KvIter {
        self.iter()
    }
}

impl IntoIterator for Tree<'_> {
    type Item = Result<(Bytes, Bytes)>;
    type IntoIter = KvIter;
    fn into_iter(self) -> KvIter {
        self.iter()
    }
}
