//! The GDPR layer: retrieval of everything held about a person, and erasure.
//!
//! Both walk the one extension registry ([`crate::ext`]), so neither can miss a keyspace.
//!
//! **Erasure** ([`remove`]) has one commit point: a single sled transaction that removes the
//! account and every small record of the subject, and queues the subject's 1-1 archive for
//! deletion. The archive is addressed by an id held only in the account record, so once the
//! commit lands the archive is unreachable for every read, and a name registered again gets
//! a fresh archive. The queued archive is then deleted in bounded chunks ([`SWEEP_CHUNK`]
//! keys per batch); if the process dies first, the next [`crate::Store`] open finishes it.
//! Writers of the subject's data hold the store's erase lock for reading, and erasure holds
//! it for writing from collecting keys to commit, so no write can slip in between and
//! survive the erasure.

mod receipt;
mod retrieve;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::ext::{EXTENSIONS, RemovalPlan};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

pub use receipt::Receipt;
pub(crate) use retrieve::retrieve_with;
pub use retrieve::{
    CsvEscaping, ExportOptions, ExportSummary, FileSummary, retrieve, retrieve_to_path,
};

/// Keys deleted per batch when sweeping an erased archive (up to 8,000 messages in blocks):
/// bounded memory.
pub const SWEEP_CHUNK: usize = 1_000;

/// Erases `subject`: removes the account and everything DESIGN.md marks as removed, keeps
/// group-chat history and what other users hold, and returns a receipt.
///
/// Durable and atomic: when this returns, the erasure is on disk; after a crash at any point
/// the subject is wholly present or wholly gone. Fails with [`Error::NoAccount`] when the store
/// holds nothing about `subject` at all. If the commit succeeded but deleting the archive
/// records after it failed (a full disk), returns the receipt with
/// [`Receipt::sweep_error`] set: the subject is erased, and the deletion resumes on the
/// next open. An error means the commit may not have been made durable.
pub fn remove(store: &Store, subject: &BareJid) -> Result<Receipt> {
    let mut receipt = commit(store, subject)?;
    let started = Instant::now();
    let _progress = (!receipt.pending_sweeps.is_empty())
        .then(|| crate::progress::Phase::start("archive sweep", "entries", None));
    let mut pending = std::mem::take(&mut receipt.pending_sweeps).into_iter();
    while let Some(archive) = pending.next() {
        match sweep(store, archive) {
            Ok(n) => *receipt.removed.entry("mam_pm").or_default() += n,
            Err(e) => {
                // Committed and durable: the subject is erased; only the sweep is left.
                receipt.sweep_error = Some(e.to_string());
                receipt.pending_sweeps.push(archive);
                receipt.pending_sweeps.extend(pending);
                break;
            }
        }
    }
    receipt.sweep_time = started.elapsed();
    Ok(receipt)
}

/// The commit point of [`remove`] alone: after it returns the subject is gone for every read,
/// and the archive sweep is queued (it runs on the next open if not run here). Exposed so
/// benchmarks can time the commit apart from the sweep; call [`finish_sweeps`] to complete.
pub fn commit(store: &Store, subject: &BareJid) -> Result<Receipt> {
    let started = Instant::now();
    let _guard = store.eraser();
    let mut plan = RemovalPlan::default();
    for ext in EXTENSIONS {
        ext.plan_removal(store, subject, &mut plan)?;
    }
    if plan.removes.is_empty() && plan.sweeps.is_empty() {
        if plan.kept.is_empty() {
            return Err(Error::NoAccount(subject.to_string()));
        }
        return Ok(Receipt::new(subject.clone(), plan, started.elapsed()));
    }
    let mut spaces: Vec<Keyspace> = plan.removes.iter().map(|(ks, _)| *ks).collect();
    spaces.push(Keyspace::Sweep);
    spaces.sort();
    spaces.dedup();
    store.recorded_transaction(&spaces, |tx| {
        for (ks, key) in &plan.removes {
            tx.remove(*ks, key)?;
        }
        for archive in &plan.sweeps {
            tx.mark(Keyspace::Sweep, &keys::archive(*archive))?;
        }
        Ok(())
    })?;
    Ok(Receipt::new(subject.clone(), plan, started.elapsed()))
}

/// Deletes every record and index entry of an erased 1-1 archive in chunks (all keyed by
/// archive id first), then its sweep marker. Idempotent. Returns the number of messages
/// deleted (index entries are not counted).
fn sweep(store: &Store, archive: u64) -> Result<u64> {
    let prefix = keys::archive(archive);
    let mut messages = 0u64;
    for ks in [Keyspace::MamPm, Keyspace::MamPmIds] {
        loop {
            let mut batch = crate::store::Batch::default();
            let (mut n, mut values) = (0usize, 0u64);
            // Short sled ranges from the archive prefix again (the batch before was deleted),
            // so sled can evict what the sweep read (see `records`).
            crate::ext::mam::records::for_each_entry(store, ks, &prefix, |key, value| {
                // An entry holds one value or a block of them (records, `with` entries).
                let held = crate::codec::entry_count(value);
                values += held;
                // `mam_pm` holds the records and their `with` entries: count records only.
                if ks == Keyspace::MamPm && key.get(8) == Some(&keys::PM_RECORD) {
                    messages += held;
                }
                batch.remove(key);
                n += 1;
                Ok(n < SWEEP_CHUNK)
            })?;
            if n == 0 {
                break;
            }
            store.apply_batch(ks, batch)?;
            crate::progress::advance(values);
        }
    }
    store.tree(Keyspace::Sweep).remove(prefix)?;
    store.flush()?;
    Ok(messages)
}

/// Finishes every queued archive sweep. Run by [`Store`] on open, so an erasure interrupted
/// by a crash completes before the store is used again.
pub fn finish_sweeps(store: &Store) -> Result<u64> {
    let mut total = 0;
    let pending: Vec<_> = store
        .scan_keys(Keyspace::Sweep, &[])
        .collect::<Result<_>>()?;
    for key in pending {
        let mut r = keys::KeyReader::new(Keyspace::Sweep, &key);
        let archive = r.u64()?;
        r.end()?;
        total += sweep(store, archive)?;
    }
    Ok(total)
}

pub(crate) fn resume_sweeps(store: &Store) -> Result<()> {
    finish_sweeps(store).map(|_| ())
}
