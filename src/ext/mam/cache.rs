//! The archives' in-memory caches, which the store holds for this extension without
//! looking inside: the archive id of each account that appended, and the newest archive
//! time of each archive appended to since open. Neither is ever the only copy of anything:
//! both are read back from the store when missing, and both are bounded.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Entries each cache holds at most (one small entry per archive appending); a full cache
/// starts over.
const LIMIT: usize = 100_000;

/// The archive time of the newest message of each archive appended to since open (`None`:
/// empty), keyed by records keyspace and record-key prefix. Only archive appends and removals
/// (under [`Store::archive_appender`] or [`Store::archive_appender_for`]) read or change it.
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
        if self.0.len() >= LIMIT {
            self.0.clear();
        }
        self.0.insert((ks, prefix), at);
    }

    /// Forgets an archive (after a removal of one of its messages).
    pub(crate) fn forget(&mut self, ks: Keyspace, prefix: &[u8]) {
        self.0.remove(&(ks, prefix.to_vec()));
    }
}

/// The archive id of each account an archive append has looked up, so that appends do not
/// decode the account (its SCRAM verifiers) every time. Filled only by holders of
/// [`Store::writer`] and emptied by [`Store::eraser`] (through [`crate::ext::Caches`]), so
/// an erased account's archive id never outlives the erasure.
#[derive(Default)]
pub(crate) struct ArchiveIds(Mutex<HashMap<BareJid, u64>>);

impl ArchiveIds {
    fn lock(&self) -> MutexGuard<'_, HashMap<BareJid, u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every archive id.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// The archive id of `owner`'s account, or [`crate::Error::NoAccount`]. Call with
/// [`Store::writer`] held (the cache relies on it).
pub(super) fn archive_id(store: &Store, owner: &BareJid) -> Result<u64> {
    // Another process's erasure does not empty this process's cache: no cache then.
    if store.shared_by_processes() {
        return Ok(store.require_account(owner)?.archive);
    }
    let ids = &store.caches().archive_ids;
    if let Some(id) = ids.lock().get(owner) {
        return Ok(*id);
    }
    let id = store.require_account(owner)?.archive;
    let mut ids = ids.lock();
    if ids.len() >= LIMIT {
        ids.clear();
    }
    ids.insert(owner.clone(), id);
    Ok(id)
}
