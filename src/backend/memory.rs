//! The in-memory engine: one `BTreeMap` per keyspace behind one lock. For tests (the property
//! model and the GDPR checker run against it as well as sled) and for servers' own test
//! suites; nothing survives the last handle.
//!
//! Iterators hold no lock between steps: each step looks up the next key after the last one
//! it yielded, so a long scan never blocks writers and sees writes behind its cursor.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    Bytes, Changed, Durability, Engine, KeyRange, KvIter, TxBody, TxError, TxResult, TxView,
    WriteBatch,
};
use crate::error::{Error, Result};
use crate::keys::Keyspace;

type Map = BTreeMap<Vec<u8>, Bytes>;

/// A transaction's writes, by keyspace and key (`None`: removed).
type Staging = BTreeMap<(Keyspace, Vec<u8>), Option<Vec<u8>>>;

/// The in-memory engine.
pub(crate) struct MemoryEngine {
    maps: Arc<RwLock<Vec<Map>>>,
    next_id: AtomicU64,
}

impl MemoryEngine {
    pub(crate) fn new() -> Self {
        MemoryEngine {
            maps: Arc::new(RwLock::new(
                Keyspace::ALL.iter().map(|_| Map::new()).collect(),
            )),
            next_id: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Map>> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Map>> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn iter(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        Box::new(Cursor {
            maps: Arc::clone(&self.maps),
            ks,
            lo: range.0,
            hi: range.1,
        })
    }
}

fn map(maps: &[Map], ks: Keyspace) -> Result<&Map> {
    maps.get(ks.index()).ok_or_else(|| missing(ks))
}

fn map_mut(maps: &mut [Map], ks: Keyspace) -> Result<&mut Map> {
    maps.get_mut(ks.index()).ok_or_else(|| missing(ks))
}

fn missing(ks: Keyspace) -> Error {
    Error::InvalidInput(format!("internal: keyspace {} is not open", ks.name()))
}

impl Engine for MemoryEngine {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(map(&self.read(), ks)?.get(key).cloned())
    }

    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<Option<Bytes>> {
        Ok(map_mut(&mut self.write(), ks)?.insert(key.to_vec(), Bytes::from(value)))
    }

    fn remove(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(map_mut(&mut self.write(), ks)?.remove(key))
    }

    fn compare_and_swap(
        &self,
        ks: Keyspace,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Changed>> {
        let mut maps = self.write();
        let m = map_mut(&mut maps, ks)?;
        let current = m.get(key);
        if current.map(Bytes::as_slice) != old {
            return Ok(Err(Changed {
                current: current.cloned(),
            }));
        }
        match new {
            Some(v) => m.insert(key.to_vec(), Bytes::from(v)),
            None => m.remove(key),
        };
        Ok(Ok(()))
    }

    fn range(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        self.iter(ks, range)
    }

    fn scan(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        self.iter(ks, range)
    }

    fn apply(&self, batch: &WriteBatch) -> Result<()> {
        let mut maps = self.write();
        // Check every keyspace first, so that a bad one changes nothing.
        for ks in batch.keyspaces() {
            map(&maps, ks)?;
        }
        for (ks, key, value) in &batch.ops {
            let m = map_mut(&mut maps, *ks)?;
            match value {
                Some(v) => m.insert(key.clone(), Bytes::from(v.as_slice())),
                None => m.remove(key),
            };
        }
        Ok(())
    }

    fn transaction(
        &self,
        spaces: &[Keyspace],
        _durability: Durability,
        body: &TxBody<'_>,
    ) -> Result<()> {
        // The write lock for the whole transaction: no other write lands in between.
        let mut maps = self.write();
        loop {
            let view = Staged {
                maps: &maps,
                spaces,
                writes: Mutex::new(BTreeMap::new()),
            };
            match body(&view) {
                Ok(()) => {
                    let writes = view
                        .writes
                        .into_inner()
                        .unwrap_or_else(PoisonError::into_inner);
                    for ((ks, key), value) in writes {
                        let m = map_mut(&mut maps, ks)?;
                        match value {
                            Some(v) => m.insert(key, Bytes::from(v)),
                            None => m.remove(&key),
                        };
                    }
                    return Ok(());
                }
                Err(TxError::Conflict) => {}
                Err(TxError::Abort(e)) => return Err(e),
            }
        }
    }

    fn generate_id(&self) -> Result<u64> {
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(0)
    }

    fn keyspace_names(&self) -> Result<Vec<Vec<u8>>> {
        Ok(Keyspace::ALL
            .iter()
            .map(|ks| ks.name().as_bytes().to_vec())
            .collect())
    }

    fn check_space(&self, _logical: u64) -> Result<()> {
        Ok(())
    }
}

/// A transaction's view, under the engine's write lock: reads see the maps and the staged
/// writes, which apply when the body returns.
struct Staged<'a> {
    maps: &'a [Map],
    spaces: &'a [Keyspace],
    writes: Mutex<Staging>,
}

impl Staged<'_> {
    fn check(&self, ks: Keyspace) -> TxResult<()> {
        if self.spaces.contains(&ks) {
            Ok(())
        } else {
            Err(TxError::Abort(Error::InvalidInput(format!(
                "internal: keyspace {} not part of this transaction",
                ks.name()
            ))))
        }
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Staging> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TxView for Staged<'_> {
    fn get(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<Bytes>> {
        self.check(ks)?;
        if let Some(v) = self.staged().get(&(ks, key.to_vec())) {
            return Ok(v.as_deref().map(Bytes::from));
        }
        Ok(map(self.maps, ks)?.get(key).cloned())
    }

    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.check(ks)?;
        self.staged()
            .insert((ks, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.check(ks)?;
        self.staged().insert((ks, key.to_vec()), None);
        Ok(())
    }
}

/// A range iterator that re-seeks at every step (see the module docs).
struct Cursor {
    maps: Arc<RwLock<Vec<Map>>>,
    ks: Keyspace,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
}

impl Cursor {
    fn step(&mut self, back: bool) -> Option<Result<(Bytes, Bytes)>> {
        if super::empty_range(&self.lo, &self.hi) {
            return None;
        }
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let m = match map(&maps, self.ks) {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        let mut r = m.range::<[u8], _>((as_slice(&self.lo), as_slice(&self.hi)));
        let (k, v) = if back { r.next_back() } else { r.next() }?;
        let (k, v) = (Bytes::from(k.as_slice()), v.clone());
        if back {
            self.hi = Bound::Excluded(k.to_vec());
        } else {
            self.lo = Bound::Excluded(k.to_vec());
        }
        Some(Ok((k, v)))
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Iterator for Cursor {
    type Item = Result<(Bytes, Bytes)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for Cursor {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}
