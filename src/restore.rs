//! `restore`: replace a store with a backup, and make every erasure made since stick.
//!
//! A backup taken before an erasure still holds the erased person. Restoring it as a plain
//! copy would bring them back; [`restore`] re-applies every erasure the store's ledger
//! ([`crate::gdpr::ledger`]) records and the backup's does not, before the restored store
//! is swapped in. The ledger holds keyed hashes, not JIDs: the backup's accounts are hashed
//! under the store's key and matched against it.
//!
//! Steps, each safe to interrupt: the backup's files are copied into a scratch directory
//! (the backup itself is never opened, so never written); that copy is copied entry by
//! entry into a sibling `<path>.compact-<random>` (the same incomplete-copy marker and swap
//! as [`crate::maintenance::compact`], so a crash leaves the states its docs list); in that
//! copy the store's audit key is put back, the erasures re-applied, the store's audit log and
//! ledger carried over (they outlive a restore as they outlive an erasure), the id generator
//! moved past the store's (ids handed out since the backup are never given again), and an
//! audit entry `restore` appended; the copy is verified, then swapped in.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::gdpr::{self, audit, ledger};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::maintenance::{self, INCOMPLETE_COPY};
use crate::paths::{COMPACT_OLD_INFIX, COMPACT_TMP_INFIX};
use crate::store::Store;
use crate::time::Timestamp;

/// What [`restore`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreSummary {
    /// Entries copied from the backup.
    pub entries: u64,
    /// Erasures the store's ledger records and the backup's did not.
    pub erasures_since_backup: u64,
    /// Of those, accounts the backup held and that were erased again.
    pub reapplied: u64,
}

/// Replaces the store at `path` (which must exist; no other process may use it) with the
/// backup at `backup` (a directory `jidstore backup` wrote), re-applying every erasure made
/// since (module docs). The backup directory is read, never written. Refused: a backup
/// inside the data directory or the data directory itself, an incomplete backup, a backup
/// that does not verify clean.
pub fn restore(path: &Path, backup: &Path) -> Result<RestoreSummary> {
    let real = fs::canonicalize(path).map_err(Error::on_path("open", path))?;
    let path = real.as_path();
    let backup = fs::canonicalize(backup).map_err(Error::on_path("open the backup", backup))?;
    if backup.starts_with(path) || path.starts_with(&backup) {
        return Err(Error::InvalidInput(format!(
            "the backup {} and the data directory {} overlap",
            backup.display(),
            path.display()
        )));
    }
    if backup.join(INCOMPLETE_COPY).exists() {
        return Err(Error::InvalidInput(format!(
            "{} is an incomplete copy (a backup that was interrupted), not a backup",
            backup.display()
        )));
    }
    let current = maintenance::open_existing(Config::new(path), path)?;
    // The backup's files, copied: opening a store writes to its files.
    let work = maintenance::sibling(path, ".restore-source-")?;
    let _work_cleanup = crate::cleanup::register(&work);
    let removed_work = |e: Error| {
        let _ = fs::remove_dir_all(&work);
        e
    };
    crate::forensic::source::copy_hashed(&backup, &work).map_err(removed_work)?;
    let source = Config::new(&work)
        .must_exist(true)
        .open()
        .map_err(|e| removed_work(refused_backup(&backup, &e)))?;
    let tmp = maintenance::sibling(path, COMPACT_TMP_INFIX)?;
    let scratch = crate::cleanup::register(&tmp);
    let copied = maintenance::copy_open(&source, &tmp);
    drop(source);
    let _ = fs::remove_dir_all(&work);
    let (copy, summary) = copied?;
    let done = reapply(&current, &copy).and_then(|s| {
        let report = crate::verify(&copy)?;
        if report.is_clean() {
            Ok(s)
        } else {
            Err(Error::InvalidInput(format!(
                "the restored copy of {} has {} problem(s) (run jidstore verify on the backup); nothing changed",
                backup.display(),
                report.problems.len()
            )))
        }
    });
    drop(copy);
    drop(current);
    let (since, reapplied) = match done {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    maintenance::complete(&tmp).inspect_err(|_| {
        let _ = fs::remove_dir_all(&tmp);
    })?;
    let old = maintenance::sibling(path, COMPACT_OLD_INFIX)?;
    maintenance::swap_in(path, &tmp, &old, &scratch)?;
    Ok(RestoreSummary {
        entries: summary.total_entries(),
        erasures_since_backup: since,
        reapplied,
    })
}

fn refused_backup(backup: &Path, e: &Error) -> Error {
    Error::InvalidInput(format!("{} is not a usable backup: {e}", backup.display()))
}

/// In `copy` (the restored store): the current store's audit key, the erasures its ledger
/// records that `copy`'s does not, its audit log and ledger, an id generator past its, and
/// the `restore` entry. Returns (erasures since the backup, accounts erased again).
fn reapply(current: &Store, copy: &Store) -> Result<(u64, u64)> {
    let audit_ks = Keyspace::Audit;
    if let Some(secret) = current.tree(audit_ks).get(keys::AUDIT_SECRET)? {
        copy.tree(audit_ks)
            .insert(keys::AUDIT_SECRET, &secret[..])?;
    }
    let known: BTreeMap<String, Timestamp> = ledger::entries(copy).collect::<Result<_>>()?;
    let mut since = HashSet::new();
    for e in ledger::entries(current) {
        let (hash, at) = e?;
        if known.get(&hash).is_none_or(|k| *k < at) {
            since.insert(hash);
        }
    }
    let mut again: Vec<BareJid> = Vec::new();
    if !since.is_empty() {
        for jid in copy.accounts().users(None, None)? {
            let jid = jid?;
            if since.contains(&audit::subject_hash(copy, &jid)?) {
                again.push(jid);
            }
        }
    }
    for jid in &again {
        gdpr::remove(copy, jid)?;
    }
    // The log and the ledger as the store has them (original erasure times included).
    for kv in current.tree(audit_ks).scan_prefix([]) {
        let (k, v) = kv?;
        copy.tree(audit_ks).insert(&k[..], &v[..])?;
    }
    let floor = current.generate_id()?;
    copy.engine().advance_ids(floor)?;
    let counts = [
        ("erasures_since_backup", since.len() as u64),
        ("reapplied", again.len() as u64),
    ];
    audit::record(
        copy,
        audit::Action::Restore,
        None,
        &counts,
        audit::Outcome::Ok,
    )?;
    copy.flush()?;
    Ok((since.len() as u64, again.len() as u64))
}
