//! `jidstore migrate`: a store copied into the other engine, a PostgreSQL database from a
//! sled data directory ([`into_database`]) or a new sled data directory from PostgreSQL
//! ([`into_dir`]), keyspace by keyspace, then checked, so that an operator moves without an
//! export/import round trip.
//!
//! What holds:
//! - **Verbatim, in bounded batches.** Keys and values are copied as bytes (nothing decoded
//!   or repacked), [`COPY_CHUNK`] entries per batch; on PostgreSQL a batch is one
//!   transaction of `unnest` statements of 1000 rows each, never one round trip per key.
//!   Only the engine's own `meta` bookkeeping (sled's flush generation) stays behind.
//! - **Checked.** After the copy, every keyspace is read again on both sides in key order and
//!   must hold the same entries, and [`crate::verify()`] must find nothing on the target;
//!   otherwise the migration fails and the target stays marked incomplete.
//! - **Never complete-looking before it is.** The target is created with the
//!   [`keys::META_MIGRATING`] marker in the same write as its magic bytes, before any entry,
//!   and the marker is deleted last, after the checks. Every open refuses a store holding
//!   it, so a target a kill interrupted is reported as an incomplete migration by `verify`,
//!   `stats` and any server, never opened as a store. Running the same migrate again empties
//!   such a database and starts over. A new data directory is also written under a
//!   temporary sibling name and renamed into place only when complete, as
//!   [`crate::maintenance::copy_into`] does: a kill leaves no directory at the destination.
//! - **Refusals.** A database that holds a store (other than an interrupted migration) or any
//!   row in a jidstore table, and a destination directory that exists, are refused before
//!   anything is written.
//! - **The source is only read**: the copy holds its erase lock exclusively (writers of owner
//!   data wait, also in other processes), finishes queued sweeps first (which only completes
//!   erasures already committed; opening does the same) and takes one id from its generator
//!   to carry ids over (ids never repeat, so that id is simply never used). Other writers
//!   (a running server) must be stopped for the copy to be a consistent one.

use std::fs;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::time::Instant;

use crate::backend::{Bytes, Engine, KvIter, WriteBatch};
use crate::config::Config;
use crate::database_url::DatabaseUrl;
use crate::error::{Error, Result};
use crate::keys::{self, Keyspace};
use crate::maintenance::{self, COPY_CHUNK, CopySummary, KeyspaceCopy, kill_point};
use crate::store::Store;

/// What a migration did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MigrateSummary {
    /// The target: the database URL without its password, or the new data directory.
    pub target: String,
    /// What was copied, per keyspace.
    pub copy: CopySummary,
    /// Entries found identical on both sides by the check after the copy.
    pub checked: u64,
    /// Whether the target held an interrupted migration, emptied first.
    pub restarted: bool,
    /// Seconds per phase: the copy, the comparison of both sides, verify on the target.
    pub phases: Phases,
}

/// Seconds each phase of a migration took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Phases {
    /// Copying every keyspace (and carrying the ids over).
    pub copy: f64,
    /// Reading both sides again and comparing them.
    pub compare: f64,
    /// [`crate::verify()`] on the target.
    pub verify: f64,
}

impl std::fmt::Display for MigrateSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let again = if self.restarted {
            " (an interrupted migration there was emptied and started over)"
        } else {
            ""
        };
        let p = &self.phases;
        write!(
            f,
            "migrated to {}{again}: {}; checked: the same {} entries on both sides, verify \
             clean on the target; copy {:.1} s, compare {:.1} s, verify {:.1} s",
            self.target, self.copy, self.checked, p.copy, p.compare, p.verify
        )
    }
}

fn refused(target: &str, reason: impl Into<String>) -> Error {
    Error::Migrate {
        target: target.to_owned(),
        reason: reason.into(),
    }
}

/// Copies `source` into the PostgreSQL database at `url` (which holds no store, or an
/// interrupted migration), checks the copy, then marks it complete. See the module docs.
pub fn into_database(source: &Store, url: &str) -> Result<MigrateSummary> {
    let config = || {
        let mut c = Config::database(url);
        c.migrating = true;
        c
    };
    // Opened without creating first: tells a fresh database from a store from an
    // interrupted migration.
    let (target, restarted) = match config().must_exist(true).open() {
        Err(Error::NotAStore { .. }) => {
            // Checked before the store (and its marker) is created: a refused database is
            // left as it was, and a later run never empties rows that were not its own.
            let url = DatabaseUrl::new(url);
            let engine = crate::store::open_database(&url, false)?;
            check_empty(&*engine, &url.redacted())?;
            drop(engine);
            (config().open()?, false)
        }
        Err(e) => return Err(e),
        Ok(store) => {
            let shown = store.path().display().to_string();
            if store
                .engine()
                .get(Keyspace::Meta, keys::META_MIGRATING)?
                .is_none()
            {
                return Err(refused(
                    &shown,
                    "the database already holds a jidstore store; migrate only into an empty \
                     database (or drop its jidstore_ tables first)",
                ));
            }
            empty_interrupted(store.engine())?;
            (store, true)
        }
    };
    let shown = target.path().display().to_string();
    let (copy, checked, phases) = copy_checked(source, &target, &shown)?;
    finish(&target)?;
    Ok(MigrateSummary {
        target: shown,
        copy,
        checked,
        restarted,
        phases,
    })
}

/// Copies `source` into a new sled data directory `dest` (which must not exist; its parent
/// must), checks the copy, then puts it in place. See the module docs.
pub fn into_dir(source: &Store, dest: &Path) -> Result<MigrateSummary> {
    let shown = dest.display().to_string();
    if dest.as_os_str().is_empty() {
        return Err(Error::InvalidInput("destination path is empty".into()));
    }
    if fs::symlink_metadata(dest).is_ok() {
        return Err(refused(
            &shown,
            "it already exists; migrate only into a new directory",
        ));
    }
    let name = dest
        .file_name()
        .ok_or_else(|| Error::InvalidInput(format!("{shown} has no final name")))?;
    let parent = maintenance::parent_of(dest);
    if !parent.is_dir() {
        return Err(Error::Path {
            action: "create a store in",
            path: parent,
            source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".migrate-{:016x}", rand::random::<u64>()));
    let tmp = parent.join(tmp_name);
    // A signal removes the partial copy; after SIGKILL its markers keep it from opening.
    let scratch = crate::cleanup::register(&tmp);
    let result = write_dir(source, &tmp, &shown).and_then(|(copy, checked, phases)| {
        maintenance::complete(&tmp)?;
        scratch.commit(|| maintenance::rename_new(&tmp, dest))?;
        maintenance::sync_dir(&parent)?;
        Ok((copy, checked, phases))
    });
    match result {
        Ok((copy, checked, phases)) => Ok(MigrateSummary {
            target: shown,
            copy,
            checked,
            restarted: false,
            phases,
        }),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// The copy into the new directory `tmp`, checked and marked complete inside (the
/// directory's own incomplete-copy marker is the caller's to remove).
fn write_dir(source: &Store, tmp: &Path, shown: &str) -> Result<(CopySummary, u64, Phases)> {
    maintenance::create_private_dir(tmp).map_err(Error::on_path("create a store at", tmp))?;
    maintenance::mark_incomplete(tmp)?;
    let mut config = Config::new(tmp);
    config.incomplete_copy = true;
    config.migrating = true;
    if let Some(bytes) = source.configured_min_free() {
        config = config.min_free(bytes);
    }
    let target = config.open()?;
    let out = copy_checked(source, &target, shown)?;
    target.restrict_files();
    finish(&target)?;
    Ok(out)
}

/// Whether `key` of `ks` is the engine's own bookkeeping or the migration marker: neither
/// copied nor compared.
fn not_copied(ks: Keyspace, key: &[u8]) -> bool {
    ks == Keyspace::Meta && (key == keys::META_FLUSHED || key == keys::META_MIGRATING)
}

/// Whether `key` of `ks` is what a freshly created store holds.
fn fresh(ks: Keyspace, key: &[u8]) -> bool {
    ks == Keyspace::Meta
        && (key == keys::META_MAGIC || key == keys::META_FORMAT || not_copied(ks, key))
}

fn all(engine: &dyn Engine, ks: Keyspace) -> KvIter {
    engine.scan(ks, (Bound::Unbounded, Bound::Unbounded))
}

/// Refuses a target that holds anything but what a fresh store holds (before the store is
/// created in it).
fn check_empty(target: &dyn Engine, shown: &str) -> Result<()> {
    for &ks in Keyspace::ALL {
        for entry in all(target, ks) {
            if !fresh(ks, &entry?.0) {
                return Err(refused(
                    shown,
                    format!(
                        "its keyspace {} is not empty; migrate only into an empty database",
                        ks.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Empties a target that an interrupted migration left: every keyspace but the marked
/// `meta` entries of a fresh store.
fn empty_interrupted(target: &dyn Engine) -> Result<()> {
    for &ks in Keyspace::ALL {
        if ks != Keyspace::Meta {
            target.clear(ks)?;
        }
    }
    let mut batch = WriteBatch::default();
    for entry in all(target, Keyspace::Meta) {
        let (key, _) = entry?;
        if !fresh(Keyspace::Meta, &key) {
            batch.remove(Keyspace::Meta, key.to_vec());
        }
    }
    target.apply(&batch)
}

/// Copies every keyspace, carries ids over, then checks: returns the copy, the number of
/// entries found identical and the time each phase took.
fn copy_checked(source: &Store, target: &Store, shown: &str) -> Result<(CopySummary, u64, Phases)> {
    let mut phases = Phases::default();
    let mut clock = Instant::now();
    let mut lap = |phase: &mut f64| {
        *phase = clock.elapsed().as_secs_f64();
        clock = Instant::now();
    };
    let _exclusive = source.eraser()?;
    crate::gdpr::finish_sweeps(source)?;
    let mut summary = CopySummary::default();
    {
        let _progress = crate::progress::Phase::start("migrate", "entries", None);
        for &ks in Keyspace::ALL {
            summary.keyspaces.push(copy_keyspace(source, target, ks)?);
            kill_point(&format!("migrate:keyspace:{}", ks.name()));
        }
    }
    // Archive ids and message seqs come from the id generator, which lives outside every
    // keyspace: new ones must sort after the copied ones.
    let floor = source.generate_id()?;
    target.engine().advance_ids(floor)?;
    target.flush()?;
    lap(&mut phases.copy);
    kill_point("migrate:copied");
    let mut checked = 0;
    {
        let _progress = crate::progress::Phase::start("check", "entries", None);
        for &ks in Keyspace::ALL {
            checked += compare(source.engine(), target.engine(), ks, shown)?;
        }
    }
    lap(&mut phases.compare);
    let report = crate::verify::verify(target)?;
    lap(&mut phases.verify);

    if !report.is_clean() {
        return Err(refused(
            shown,
            format!(
                "the copy failed verify ({} problem(s)); the target stays marked incomplete",
                report.problems.len()
            ),
        ));
    }
    Ok((summary, checked, phases))
}

fn copy_keyspace(source: &Store, target: &Store, ks: Keyspace) -> Result<KeyspaceCopy> {
    let mut entries = 0u64;
    let mut bytes = 0u64;
    let mut batch = WriteBatch::default();
    let mut batch_bytes = 0u64;
    let flush = |batch: &mut WriteBatch, batch_bytes: &mut u64| -> Result<()> {
        target.check_space_for(*batch_bytes)?;
        target.engine().apply(batch)?;
        crate::progress::advance(batch.ops.len() as u64);
        *batch = WriteBatch::default();
        *batch_bytes = 0;
        kill_point("migrate:batch");
        Ok(())
    };
    for entry in all(source.engine(), ks) {
        let (k, v) = entry?;
        if not_copied(ks, &k) {
            continue;
        }
        let n = (k.len() + v.len()) as u64;
        bytes += n;
        batch_bytes += n;
        entries += 1;
        batch.insert(ks, k.to_vec(), v.to_vec());
        if batch.ops.len() == COPY_CHUNK {
            flush(&mut batch, &mut batch_bytes)?;
        }
    }
    if !batch.ops.is_empty() {
        flush(&mut batch, &mut batch_bytes)?;
    }
    Ok(KeyspaceCopy {
        keyspace: ks.name(),
        entries,
        bytes,
    })
}

/// Reads `ks` on both sides in key order; the number of entries, or an error at the first
/// difference (which names the keyspace and the position, never a key: keys hold JIDs).
fn compare(source: &dyn Engine, target: &dyn Engine, ks: Keyspace, shown: &str) -> Result<u64> {
    let copied = |e: &Result<(Bytes, Bytes)>| !matches!(e, Ok((k, _)) if not_copied(ks, k));
    let mut theirs = all(source, ks).filter(copied);
    let mut ours = all(target, ks).filter(copied);
    let mut equal = 0u64;
    loop {
        match (theirs.next().transpose()?, ours.next().transpose()?) {
            (None, None) => return Ok(equal),
            (Some(left), Some(right)) if left == right => {
                equal += 1;
                crate::progress::advance(1);
            }
            (left, right) => {
                let what = match (left, right) {
                    (Some(_), None) => "the target has fewer entries",
                    (None, Some(_)) => "the target has more entries",
                    _ => "an entry differs",
                };
                return Err(refused(
                    shown,
                    format!(
                        "the check after the copy failed in keyspace {} after {equal} equal \
                         entries: {what} (did something write to the source meanwhile?); \
                         the target stays marked incomplete",
                        ks.name()
                    ),
                ));
            }
        }
    }
}

/// The last write: deletes the migration marker, durably.
fn finish(target: &Store) -> Result<()> {
    kill_point("migrate:checked");
    target
        .engine()
        .remove(Keyspace::Meta, keys::META_MIGRATING)?;
    target.flush()
}

/// Where a `--to` argument points: a PostgreSQL URL, else a directory.
pub fn is_database_url(to: &str) -> bool {
    to.starts_with("postgres://") || to.starts_with("postgresql://")
}
