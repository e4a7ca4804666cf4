//! The archive appenders' locks: one append per archive at a time, and whole-store
//! exclusion for the few writers that need every append kept away.
//!
//! Invariants: within one archive, an append holds its archive's stripe from taking a seq
//! to writing the record, so seq order is write order and archive time never decreases in
//! seq order. An exclusive holder ([`Appenders::exclusive`]: bulk appends, removals, room
//! and generic archives, account removal) holds the whole-store lock for writing, which no
//! per-archive append holds at the same time. Lock order: the whole-store lock, then a
//! stripe, then the cached tails (held only to read or update them).
//!
//! Before issue 18 every append held one store-wide mutex; with stripes, live appends to
//! different archives run in parallel.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::ext::mam::cache::ArchiveTails;
use crate::keys::Keyspace;

/// Stripes of per-archive locks (archives hash onto them).
const STRIPES: usize = 64;

/// The locks, and the cached newest archive time of each archive.
pub(crate) struct Appenders {
    all: RwLock<()>,
    stripes: [Mutex<()>; STRIPES],
    tails: Mutex<ArchiveTails>,
}

impl Default for Appenders {
    fn default() -> Self {
        Appenders {
            all: RwLock::new(()),
            stripes: std::array::from_fn(|_| Mutex::new(())),
            tails: Mutex::new(ArchiveTails::default()),
        }
    }
}

/// Every append kept away until dropped; derefs to the cached tails.
pub(crate) struct Exclusive<'a> {
    _all: RwLockWriteGuard<'a, ()>,
    tails: MutexGuard<'a, ArchiveTails>,
}

impl std::ops::Deref for Exclusive<'_> {
    type Target = ArchiveTails;
    fn deref(&self) -> &ArchiveTails {
        &self.tails
    }
}

impl std::ops::DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut ArchiveTails {
        &mut self.tails
    }
}

/// One archive's appends kept away until dropped (others proceed).
pub(crate) struct One<'a> {
    _all: RwLockReadGuard<'a, ()>,
    _stripe: MutexGuard<'a, ()>,
    tails: &'a Mutex<ArchiveTails>,
}

impl One<'_> {
    /// The cached newest archive time of the archive (see [`ArchiveTails::get`]).
    #[expect(
        clippy::option_option,
        reason = "not cached / cached as empty / cached time"
    )]
    pub(crate) fn tail(&self, ks: Keyspace, prefix: &[u8]) -> Option<Option<i64>> {
        lock(self.tails).get(ks, prefix)
    }

    /// Records the newest archive time of the archive after a write.
    pub(crate) fn set_tail(&self, ks: Keyspace, prefix: Vec<u8>, at: Option<i64>) {
        lock(self.tails).set(ks, prefix, at);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Appenders {
    /// Keeps every archive append away.
    pub(crate) fn exclusive(&self) -> Exclusive<'_> {
        let all = self.all.write().unwrap_or_else(PoisonError::into_inner);
        Exclusive {
            _all: all,
            tails: lock(&self.tails),
        }
    }

    /// Keeps the appends to archive `archive` (any number naming it, the same for every
    /// append to it) away, and every exclusive holder.
    pub(crate) fn one(&self, archive: u64) -> One<'_> {
        let all = self.all.read().unwrap_or_else(PoisonError::into_inner);
        // Archive ids come from a counter: the low bits spread them over the stripes.
        let i = usize::try_from(archive % STRIPES as u64).unwrap_or(0);
        let [first, ..] = &self.stripes;
        let stripe = lock(self.stripes.get(i).unwrap_or(first));
        One {
            _all: all,
            _stripe: stripe,
            tails: &self.tails,
        }
    }
}
