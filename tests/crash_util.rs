//! Helpers shared by the SIGKILL crash tests (`tests/crash.rs`, `tests/crash_ops.rs`).
#![allow(dead_code, reason = "not every crash test uses every helper")]

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Config, Store, Timestamp};

/// Test result: `?` on jidstore and I/O errors alike.
pub type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// An environment variable as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Opens (or creates) the store at `path`, with low SCRAM iterations for test speed.
pub fn open(path: &Path) -> Res<Store> {
    Ok(Config::new(path).scram_iterations(16).open()?)
}

/// Opens the existing store at `path` after a kill (never creates one), waiting a moment for
/// the lock.
pub fn reopen(path: &Path) -> Res<Store> {
    Ok(Config::new(path)
        .scram_iterations(16)
        .must_exist(true)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()?)
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) -> Res {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Parses a bare JID.
pub fn bare(s: &str) -> BareJid {
    BareJid::parse(s).expect("jid")
}

/// The export as bytes (fixed time, so identical data gives identical bytes), or `None` when
/// nothing is held.
pub fn export(store: &Store, who: &BareJid) -> Res<Option<Vec<u8>>> {
    let opts = ExportOptions::default().timestamp(Timestamp::from_secs(1_800_000_000));
    let mut sink = Cursor::new(Vec::new());
    match gdpr::retrieve(store, who, &mut sink, &opts) {
        Ok(_) => Ok(Some(sink.into_inner())),
        Err(jidstore::Error::NoPersonalData(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every CSV of `who`'s export as (file name, text), or `None` when nothing is held.
pub fn export_csvs(store: &Store, who: &BareJid) -> Res<Option<Vec<(String, String)>>> {
    use std::io::Read;
    let Some(bytes) = export(store, who)? else {
        return Ok(None);
    };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))?;
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i)?;
        let name = f.name()?.into_owned();
        if std::path::Path::new(&name)
            .extension()
            .is_some_and(|e| e == "csv")
        {
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            files.push((name, text));
        }
    }
    files.sort();
    Ok(Some(files))
}

/// Entries per keyspace.
///
/// The audit log is left out: the CLI appends its entry after the command's own writes (an
/// erasure's commit, a compaction's rename), so a kill between the two leaves the data
/// wholly changed and the entry missing, which is no torn state of the data.
pub fn entry_counts(store: &Store) -> Res<Vec<(&'static str, u64)>> {
    Ok(jidstore::stats(store)?
        .keyspaces
        .into_iter()
        .filter(|(name, _)| *name != "audit")
        .map(|(name, s)| (name, s.entries))
        .collect())
}

/// `Err` naming the problems unless `verify` is clean.
pub fn verify_clean(store: &Store) -> Res {
    let report = jidstore::verify(store)?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!("verify after reopen: {report}").into())
    }
}

/// A uniform-enough random number below `n` (no RNG crate needed for test timing).
pub fn rand_below(n: u128) -> u128 {
    let seed = std::collections::hash_map::RandomState::new();
    let h = std::hash::BuildHasher::hash_one(&seed, Instant::now());
    u128::from(h) % n.max(1)
}
