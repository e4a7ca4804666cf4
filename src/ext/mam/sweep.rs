//! The sweep of an erased 1-1 archive (the registry's `Extension::sweep_archive` duty): its
//! records, `with` entries and imported ids, all keyed by archive id first, deleted in
//! bounded chunks after the erasure's commit, or counted for a dry run.

use crate::error::Result;
use crate::keys::{self, Keyspace};
use crate::store::Store;

use super::records::for_each_entry;

/// Deletes every record and index entry of archive `archive` in chunks of
/// [`crate::gdpr::SWEEP_CHUNK`] keys. Idempotent. Returns the number of messages deleted
/// (index entries are not counted).
pub(super) fn sweep(store: &Store, archive: u64) -> Result<u64> {
    let prefix = keys::archive(archive);
    let mut messages = 0u64;
    for ks in [Keyspace::MamPm, Keyspace::MamPmIds] {
        loop {
            let mut batch = crate::store::Batch::default();
            let (mut n, mut values) = (0usize, 0u64);
            // Short sled ranges from the archive prefix again (the batch before was deleted),
            // so sled can evict what the sweep read (see `records`).
            for_each_entry(store, ks, &prefix, |key, value| {
                // An entry holds one value or a block of them (records, `with` entries).
                let held = crate::codec::entry_count(value);
                values += held;
                // `mam_pm` holds the records and their `with` entries: count records only.
                if ks == Keyspace::MamPm && key.get(8) == Some(&keys::PM_RECORD) {
                    messages += held;
                }
                batch.remove(key);
                n += 1;
                Ok(n < crate::gdpr::SWEEP_CHUNK)
            })?;
            if n == 0 {
                break;
            }
            store.apply_batch(ks, batch)?;
            crate::maintenance::kill_point("erase:swept-chunk");
            crate::progress::advance(values);
        }
    }
    Ok(messages)
}

/// The messages the sweep of archive `archive` would count (records only, a block counting
/// every message it holds).
pub(super) fn count(store: &Store, archive: u64) -> Result<u64> {
    let mut messages = 0u64;
    let prefix = keys::archive(archive);
    for_each_entry(store, Keyspace::MamPm, &prefix, |key, value| {
        if key.get(8) == Some(&keys::PM_RECORD) {
            messages += crate::codec::entry_count(value);
        }
        Ok(true)
    })?;
    Ok(messages)
}
