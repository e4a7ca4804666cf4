//! The GDPR layer: retrieval of everything held about a person, and erasure.
//!
//! Both walk the one extension registry ([`crate::ext`]), so neither can miss a keyspace.
//!
//! **Erasure** ([`remove`]) has one commit point: a single sled transaction that removes the
//! account and the subject's single records, and writes a tombstone for every key range that
//! holds the rest (roster, offline messages, inbox, private XML, privacy lists, blocklist, the
//! items, subscriptions and affiliations of the subject's PEP and push nodes) and a marker
//! for the 1-1 archive. Its size does not grow with what the subject holds. From the commit on
//! every read treats a tombstoned range as gone, and the archive is unreachable (it is
//! addressed by an id held only in the account record). The ranges and the archive are then
//! deleted in bounded chunks ([`SWEEP_CHUNK`] keys per batch), which also counts the rows for
//! the receipt; if the process dies first, the next [`crate::Store`] open finishes it. A write
//! into a tombstoned range (a name registered again, a new subscription to a recreated node)
//! first finishes that range's sweep, so it is neither hidden nor deleted.
//!
//! Writers of the subject's data hold the store's erase lock for reading, and erasure holds
//! it for writing from planning to commit, so no write can slip in between and survive the
//! erasure.
//!
//! With [`EraseOptions::redact_kept`] ([`remove_with`]), the rows an erasure keeps (the
//! subject's group-chat messages, the items it published on nodes that stay) are then moved
//! from its JID to a stable keyed pseudonym ([`redact`]); the commit records that as
//! pending, so a crash resumes it on the next open like the sweep.

pub mod audit;
mod dry_run;
pub mod html;
mod inspect;
pub mod ledger;
mod receipt;
pub mod redact;
pub mod retention;
mod retrieve;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::ext::{EXTENSIONS, RemovalPlan, Swept};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::{Store, Tombstone};

pub use dry_run::{dry_run, dry_run_with};
pub use inspect::{Inspection, inspect};
pub use receipt::Receipt;
pub use redact::{Pseudonym, Pseudonymised, REDACT_CHUNK};
pub use retention::{ExpiryReport, Retention, expire};
pub(crate) use retrieve::retrieve_with;
pub use retrieve::{
    CsvEscaping, ExportOptions, ExportSummary, FileSummary, retrieve, retrieve_to_path,
};

/// Keys deleted per batch when sweeping an erased archive (up to 8,000 messages in blocks)
/// or range: bounded memory.
pub const SWEEP_CHUNK: usize = 1_000;

/// Chunks between flushes in the sweep of a range.
const FLUSH_CHUNKS: u32 = 4;

/// Erases `subject`: removes the account and everything DESIGN.md marks as removed, keeps
/// group-chat history and what other users hold, and returns a receipt.
///
/// Durable and atomic: when this returns, the erasure is on disk; after a crash at any point
/// the subject is wholly present or wholly gone. Fails with [`Error::NoPersonalData`] (as
/// [`retrieve()`] does) when the store holds nothing about `subject` at all. If the commit succeeded but deleting the records
/// after it failed (a full disk), returns the receipt with [`Receipt::sweep_error`] set (its
/// counts then miss what was not swept): the subject is erased for every read, and the
/// deletion resumes on the next open. An error means the commit may not have been made
/// durable.
pub fn remove(store: &Store, subject: &BareJid) -> Result<Receipt> {
    remove_as(store, subject, Ledger::Record)
}

/// How an erasure treats what it keeps: [`remove_with`], [`dry_run_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EraseOptions {
    pub(crate) redact_kept: bool,
}

impl EraseOptions {
    /// Pseudonymise the rows the erasure keeps (`unregister --redact-kept`, for an upheld
    /// objection to them): the subject's group-chat messages and the items it published on
    /// nodes that stay are moved from its JID (and, in rooms, its nick) to its stable
    /// [`Pseudonym`], in the records, in the stanza and payload text, and in every index;
    /// the receipt's [`Receipt::pseudonymised`] says what. Without it (the default), they
    /// stay under the JID, as [`remove`] keeps them. The subject's flat nodes and its
    /// affiliations with them stay under the JID either way.
    #[must_use]
    pub fn redact_kept(mut self, yes: bool) -> Self {
        self.redact_kept = yes;
        self
    }
}

/// [`remove`] with options. With [`EraseOptions::redact_kept`], the commit also records the
/// pseudonymisation as pending (in the `sweep` keyspace); it runs after the sweep in chunks
/// of [`REDACT_CHUNK`] rows, each one transaction that keeps every index consistent, and if
/// the process dies first, the next open finishes it. A subject with nothing left to remove
/// but kept rows (erased earlier without the option) is pseudonymised too.
pub fn remove_with(store: &Store, subject: &BareJid, options: &EraseOptions) -> Result<Receipt> {
    erase(store, subject, Ledger::Record, options)
}

/// Whether an erasure is written into the erasure ledger ([`ledger`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ledger {
    /// A person's erasure: recorded, so that it sticks.
    Record,
    /// Housekeeping that reuses erasure (an import undoing its own partial write): not an
    /// erasure of the person, so nothing later may refuse them because of it.
    Skip,
}

/// [`remove`], recording it in the ledger or not.
pub(crate) fn remove_as(store: &Store, subject: &BareJid, ledger: Ledger) -> Result<Receipt> {
    erase(store, subject, ledger, &EraseOptions::default())
}

fn erase(
    store: &Store,
    subject: &BareJid,
    ledger: Ledger,
    options: &EraseOptions,
) -> Result<Receipt> {
    // On an engine several processes share: no other process writes from here to the end
    // of the sweep (it does not see this process's tombstones).
    let _across = store.erasing_across_processes()?;
    let mut receipt = commit_as(store, subject, ledger, options)?;
    crate::maintenance::kill_point("erase:committed");
    let started = Instant::now();
    let progress = (!receipt.pending_sweeps.is_empty() || !receipt.pending_ranges.is_empty())
        .then(|| crate::progress::Phase::start("erasure sweep", "entries", None));
    let mut archives = std::mem::take(&mut receipt.pending_sweeps).into_iter();
    let mut ranges = std::mem::take(&mut receipt.pending_ranges).into_iter();
    let failed = loop {
        let res = if let Some(archive) = archives.next() {
            sweep(store, archive).map(|(table, n)| {
                *receipt.removed.entry(table).or_default() += n;
            })
        } else if let Some(t) = ranges.next() {
            sweep_range(store, &t).map(|swept| receipt.add_swept(swept))
        } else {
            break None;
        };
        if let Err(e) = res {
            break Some(e);
        }
    };
    drop(progress);
    if let Some(p) = receipt.pending_redaction.take() {
        let mut done = Pseudonymised {
            pseudonym: Some(p.clone()),
            rows: std::collections::BTreeMap::new(),
        };
        // After the sweep (what it deletes is not rewritten); pending on disk until done.
        if failed.is_none() {
            match redact::run(store, subject, &p) {
                Ok(rows) => done.rows = rows,
                Err(e) => {
                    receipt.sweep_error = Some(format!("pseudonymising the kept rows: {e}"));
                }
            }
        }
        receipt.pseudonymised = Some(done);
    }
    if let Some(e) = failed {
        // Committed and durable: the subject is erased; only the sweep is left.
        receipt.sweep_error = Some(e.to_string());
        receipt.pending_sweeps.extend(archives);
        receipt.pending_ranges.extend(ranges);
    }
    // Committed: a failed count leaves that row count unknown, never fails the erasure.
    for ext in EXTENSIONS {
        let _ = ext.count_kept(
            store,
            subject,
            &|ks, k| store.hidden(ks, k),
            &mut receipt.kept,
        );
    }
    receipt.drop_pseudonymised_kept();
    receipt.sweep_time = started.elapsed();
    Ok(receipt)
}

/// Whether any class keeps rows about `subject` that only a scan finds
/// ([`crate::ext::Extension::count_kept`]).
fn holds_kept(store: &Store, subject: &BareJid) -> Result<bool> {
    let mut kept = Vec::new();
    for ext in EXTENSIONS {
        ext.count_kept(store, subject, &|ks, k| store.hidden(ks, k), &mut kept)?;
        if !kept.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The commit point of [`remove`] alone: after it returns the subject is gone for every read,
/// and the sweep of its ranges and archive is queued (it runs on the next open if not run
/// here). Its receipt counts only what the commit itself removed. Exposed so benchmarks can
/// time the commit apart from the sweep; call [`finish_sweeps`] to complete.
pub fn commit(store: &Store, subject: &BareJid) -> Result<Receipt> {
    commit_as(store, subject, Ledger::Record, &EraseOptions::default())
}

/// [`commit`] with options: with [`EraseOptions::redact_kept`], the commit also records the
/// pseudonymisation as pending; [`finish_sweeps`] (or the next open) runs it.
pub fn commit_with(store: &Store, subject: &BareJid, options: &EraseOptions) -> Result<Receipt> {
    commit_as(store, subject, Ledger::Record, options)
}

fn commit_as(
    store: &Store,
    subject: &BareJid,
    record: Ledger,
    options: &EraseOptions,
) -> Result<Receipt> {
    let started = Instant::now();
    let _guard = store.eraser()?;
    let mut plan = RemovalPlan::default();
    for ext in EXTENSIONS {
        ext.plan_removal(store, subject, &mut plan)?;
    }
    // Only once something is held: an error writes nothing (not even the store's key).
    let pseudonym = || -> Result<Option<Pseudonym>> {
        if options.redact_kept {
            redact::pseudonym(store, subject, true)
        } else {
            Ok(None)
        }
    };
    if plan.removes.is_empty() && plan.sweeps.is_empty() && plan.ranges.is_empty() {
        // Nothing to remove: the store holds nothing about the subject unless it holds kept
        // data, including the kept rows only a scan finds (counted into the receipt by
        // `remove` after the sweep, so only looked at here).
        if plan.kept.is_empty() && !holds_kept(store, subject)? {
            return Err(Error::NoPersonalData(subject.to_string()));
        }
        let pseudonym = pseudonym()?;
        if let Some(p) = &pseudonym {
            redact::queue(store, subject, p)?;
        }
        let mut receipt = Receipt::new(subject.clone(), plan, started.elapsed());
        receipt.pending_redaction = pseudonym;
        return Ok(receipt);
    }
    let pseudonym = pseudonym()?;
    let redaction = pseudonym
        .as_ref()
        .map(|p| redact::pending_entry(subject, p));
    let tombstones: Vec<Tombstone> = plan
        .ranges
        .iter()
        .map(|(ks, prefix)| Tombstone {
            ks: *ks,
            prefix: prefix.clone(),
            subject: subject.clone(),
        })
        .collect();
    let mut spaces: Vec<Keyspace> = plan.removes.iter().map(|(ks, _)| *ks).collect();
    spaces.push(Keyspace::Sweep);
    spaces.push(Keyspace::Audit);
    // The ledger entry (keyed hash, no JID) is part of the commit: see `ledger`.
    let ledger_entry = match record {
        Ledger::Record => Some(ledger::entry(
            store,
            subject,
            crate::time::Timestamp::now(),
        )?),
        Ledger::Skip => None,
    };
    spaces.sort();
    spaces.dedup();
    let subject_value = crate::codec::encode(&subject.as_str());
    // Hidden from reads before the commit lands, so that no reader sees the account gone
    // and the ranges still there; taken back if the commit fails.
    store.add_tombstones(&tombstones);
    let committed = store.recorded_transaction(&spaces, |tx| {
        for (ks, key) in &plan.removes {
            tx.remove(*ks, key)?;
        }
        for archive in &plan.sweeps {
            tx.mark(Keyspace::Sweep, &keys::archive(*archive))?;
        }
        for t in &tombstones {
            tx.put_raw(
                Keyspace::Sweep,
                &keys::sweep_range(t.ks, &t.prefix),
                &subject_value,
            )?;
        }
        if let Some((k, v)) = &ledger_entry {
            tx.put_raw(Keyspace::Audit, k, v)?;
        }
        if let Some((k, v)) = &redaction {
            tx.put_raw(Keyspace::Sweep, k, v)?;
        }
        crate::maintenance::kill_point("erase:in-commit");
        Ok(())
    });
    if let Err(e) = committed {
        for t in &tombstones {
            let on_disk = store
                .tree(Keyspace::Sweep)
                .contains_key(keys::sweep_range(t.ks, &t.prefix))
                .unwrap_or(true);
            if !on_disk {
                store.drop_tombstone(t);
            }
        }
        return Err(e);
    }
    let mut receipt = Receipt::new(subject.clone(), plan, started.elapsed());
    receipt.pending_ranges = tombstones;
    receipt.pending_redaction = pseudonym;
    Ok(receipt)
}

/// Deletes an erased archive through the class that queued it, then its sweep marker.
/// Idempotent. Returns (table, rows deleted).
fn sweep(store: &Store, archive: u64) -> Result<(&'static str, u64)> {
    let swept = crate::ext::sweep_archive(store, archive, false)?;
    store.tree(Keyspace::Sweep).remove(keys::archive(archive))?;
    store.flush()?;
    Ok(swept)
}

/// Deletes the entries of a tombstoned range in chunks, each with the keys elsewhere that
/// go with it (index entries, deleted first: a crash in between leaves entries the tombstone
/// still hides, never an index entry without its record), then the tombstone. Idempotent;
/// returns what the deleted entries held. A range no longer pending was swept already.
pub(crate) fn sweep_range(store: &Store, t: &Tombstone) -> Result<Swept> {
    let _sweeping = store.sweeper();
    let mut out = Swept::default();
    if !store.is_pending(t) {
        return Ok(out);
    }
    let mut chunks = 0u32;
    let class = crate::ext::owner_of(t.ks).ok_or_else(|| {
        keys::corrupt(Keyspace::Sweep, &t.prefix, "tombstone of a system keyspace")
    })?;
    loop {
        let mut batch = crate::store::Batch::default();
        let mut n = 0usize;
        crate::ext::for_each_entry(store, t.ks, &t.prefix, |key, value| {
            class.swept(t.ks, key, value, &t.subject, &mut out)?;
            batch.remove(key);
            n += 1;
            Ok(n < SWEEP_CHUNK)
        })?;
        if n == 0 {
            break;
        }
        let mut also = std::mem::take(&mut out.also);
        also.sort();
        for (ks, group) in also
            .chunk_by(|a, b| a.0 == b.0)
            .map(|g| (g.first().map(|e| e.0), g))
        {
            let Some(ks) = ks else { continue };
            let mut b = crate::store::Batch::default();
            for (_, key) in group {
                b.remove(key.as_slice());
            }
            store.apply_batch(ks, b)?;
        }
        store.apply_batch(t.ks, batch)?;
        crate::maintenance::kill_point("erase:swept-chunk");
        crate::progress::advance(n as u64);
        chunks += 1;
        // sled keeps the pages a removal dirtied in memory until it flushes them: flush
        // every FLUSH_CHUNKS chunks so a sweep of any size stays within a few dozen MB.
        if chunks.is_multiple_of(FLUSH_CHUNKS) {
            store.flush()?;
        }
    }
    store
        .tree(Keyspace::Sweep)
        .remove(keys::sweep_range(t.ks, &t.prefix))?;
    store.drop_tombstone(t);
    store.flush()?;
    Ok(out)
}

/// The tombstones and archive markers queued in the `sweep` keyspace.
fn queued(store: &Store) -> Result<(Vec<u64>, Vec<Tombstone>)> {
    let (mut archives, mut ranges) = (Vec::new(), Vec::new());
    for entry in store.tree(Keyspace::Sweep) {
        let (key, value) = entry?;
        match keys::read_sweep_key(&key)? {
            keys::SweepKey::Archive(a) => archives.push(a),
            // Run after the sweeps, by `finish_sweeps`.
            keys::SweepKey::Redact(_) => {}
            keys::SweepKey::Range(ks, prefix) => {
                let subject: String = crate::codec::decode(Keyspace::Sweep, &key, &value)?;
                ranges.push(Tombstone {
                    ks,
                    prefix,
                    subject: BareJid::from_stored(subject),
                });
            }
        }
    }
    Ok((archives, ranges))
}

/// Finishes every queued sweep (archives and tombstoned ranges), then every pending
/// pseudonymisation ([`EraseOptions::redact_kept`]); returns the rows deleted. Run by
/// [`Store`] on open, so an erasure interrupted by a crash completes before the store is
/// used again.
pub fn finish_sweeps(store: &Store) -> Result<u64> {
    let (archives, ranges) = queued(store)?;
    store.add_tombstones(&ranges);
    let mut total = 0;
    for archive in archives {
        total += sweep(store, archive)?.1;
    }
    for t in &ranges {
        total += sweep_range(store, t)?.removed.values().sum::<u64>();
    }
    redact::finish(store)?;
    Ok(total)
}

pub(crate) fn resume_sweeps(store: &Store) -> Result<()> {
    finish_sweeps(store).map(|_| ())
}
