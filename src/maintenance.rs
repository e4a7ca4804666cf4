//! Store maintenance: a consistent copy ([`copy_into`], the way to take a backup) and
//! compaction ([`compact`]), which rewrites the store so that erased data leaves sled's files.
//!
//! sled 0.34 does not rewrite its files when keys are removed: measured on 0.34.7, every byte
//! of a removed value was still in the data directory after `remove` + flush (6.6 % still
//! after 1.4 M further writes and reopens). A copy into a fresh store holds only live
//! entries, so erasure followed by [`compact`] removes a person's data from the disk too.
//! (sled's own `Db::export`/`import` leaves nothing behind either, but holds the whole store
//! in memory and panics on I/O errors; [`copy_into`] copies in bounded batches.)
//!
//! # Crash safety of [`compact`]
//!
//! [`compact`] copies into a sibling `<path>.compact-<random>`, verifies the copy, then
//! renames `<path>` to `<path>.old-<random>`, renames the copy to `<path>`, syncs the parent
//! directory and deletes the old directory. A crash leaves one of these states:
//!
//! 1. during the copy or verification: the old store at `<path>`, plus a stale
//!    `<path>.compact-*` directory that can be deleted (it holds the incomplete-copy marker
//!    [`copy_into`] describes, so it never opens as a store);
//! 2. between the two renames: nothing at `<path>`, the old store at `<path>.old-*` and the
//!    verified copy at `<path>.compact-*`. Opening `<path>` then fails with an error naming
//!    the `.old-*` directory (it never creates an empty store there); rename either directory
//!    to `<path>` to continue (the `.old-*` one still holds the erased bytes);
//! 3. after the second rename: the new store at `<path>`, plus a `<path>.old-*` directory
//!    that still holds the erased bytes and must be deleted.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::Keyspace;
use crate::paths::{COMPACT_OLD_INFIX, COMPACT_TMP_INFIX};
use crate::store::Store;
use crate::verify::verify;

/// The file a copy of a store holds while it is written ([`copy_into`], [`compact`]): a
/// directory that holds it never opens as a store, so a copy that a crash or a kill
/// interrupted cannot pass for a good one. Written and synced before the first entry is
/// copied, deleted once every file of the copy is synced.
pub(crate) use crate::paths::INCOMPLETE_COPY;
pub use crate::restore::{RestoreSummary, restore};

/// [`copy_into`] writes into `.<dest name>` + this + `<random hex>` next to `<dest>`.
pub use crate::paths::BACKUP_TMP_INFIX;

/// Entries per batch (and per tree pass) when copying: bounded memory.
pub const COPY_CHUNK: usize = 10_000;

/// What [`copy_into`] copied from one keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceCopy {
    /// The keyspace (sled tree) name.
    pub keyspace: &'static str,
    /// Entries copied.
    pub entries: u64,
    /// Key plus value bytes copied.
    pub bytes: u64,
}

/// What [`copy_into`] copied, per keyspace in [`Keyspace::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopySummary {
    /// One entry per keyspace.
    pub keyspaces: Vec<KeyspaceCopy>,
}

impl CopySummary {
    /// Entries copied over all keyspaces.
    pub fn total_entries(&self) -> u64 {
        self.keyspaces.iter().map(|k| k.entries).sum()
    }

    /// Key plus value bytes copied over all keyspaces.
    pub fn total_bytes(&self) -> u64 {
        self.keyspaces.iter().map(|k| k.bytes).sum()
    }
}

impl std::fmt::Display for CopySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "copied {} entries ({} bytes of keys and values) in {} keyspaces",
            self.total_entries(),
            self.total_bytes(),
            self.keyspaces.len()
        )
    }
}

/// What [`compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactSummary {
    /// What was copied into the new store.
    pub copy: CopySummary,
    /// Bytes of every file under the data directory before compaction.
    pub size_before: u64,
    /// Bytes of every file under the data directory after compaction.
    pub size_after: u64,
}

impl std::fmt::Display for CompactSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compacted: {}; size on disk {} -> {} bytes",
            self.copy, self.size_before, self.size_after
        )
    }
}

/// Copies every keyspace of `store` into a fresh store created at `dest`, which must not
/// exist, and flushes it. Keys and values are copied verbatim (no decoding), in batches of
/// [`COPY_CHUNK`] entries.
///
/// The copy is written into a temporary sibling `.<name>`[`BACKUP_TMP_INFIX`]`<random>`
/// that holds an incomplete-copy marker file until the end; once every entry is copied,
/// every file and directory of it is synced, the marker deleted, and the directory renamed
/// to `dest` (never replacing anything there) and the parent synced. A crash or kill leaves
/// either no `dest` at all or a complete one; a leftover temporary directory is refused by
/// every open (it names the marker) and can be deleted. The free-space reserve is the
/// source's as configured ([`Config::min_free`]), or the default for `dest`'s filesystem.
///
/// The copy is consistent: it holds the store's erase lock exclusively throughout, so no
/// writer of owner data (nor an erasure) changes anything mid-copy; writers wait until it is
/// done. Queued archive sweeps are finished first, so erased archives are not carried over.
/// The new store's id generator is advanced past the source's, so archive ids and message
/// sequence numbers stay unique and ordered in the copy. On failure the partial copy is
/// deleted. 1-1 archives are repacked into blocks (records in blocks of consecutive
/// messages, `with` entries rebuilt from them), so the copy of `mam_pm` has fewer entries
/// than the source; the summary counts the source's. Only the keyspaces this build knows
/// ([`Keyspace::ALL`]) are copied (opening a
/// store never creates others). `dest`'s parent must exist, and `dest` may not lie inside
/// the data directory. The copy is created owner-only, as every new store is.
pub fn copy_into(store: &Store, dest: &Path) -> Result<CopySummary> {
    check_dest(store, dest)?;
    let mut name = OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(format!("{BACKUP_TMP_INFIX}{:016x}", rand::random::<u64>()));
    let tmp = parent_of(dest).join(name);
    // A signal before the rename removes the partial copy (SIGKILL cannot: the marker then
    // keeps it from ever opening as a store).
    let scratch = crate::cleanup::register(&tmp);
    let (copy, summary) = copy_open(store, &tmp).map_err(|e| shown_at(e, &tmp, dest))?;
    drop(copy);
    crate::cleanup::test_pause("backup-copied");
    let placed = complete(&tmp).and_then(|()| {
        kill_point("backup:completed");
        scratch.commit(|| rename_new(&tmp, dest))
    });
    if let Err(e) = placed {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    kill_point("backup:renamed");
    sync_dir(&parent_of(dest))?;
    Ok(summary)
}

/// A free-space refusal on the temporary copy `tmp` names `shown` (the path the user gave).
fn shown_at(e: Error, tmp: &Path, shown: &Path) -> Error {
    match e {
        Error::LowSpace {
            path,
            free,
            reserve,
        } if path == tmp => Error::LowSpace {
            path: shown.to_path_buf(),
            free,
            reserve,
        },
        other => other,
    }
}

/// Test hook for the crash tests: with `JIDSTORE_TEST_KILL_AT=<point>` in its environment
/// the process kills itself with SIGKILL on reaching `point`, so that a test interrupts a
/// copy at a chosen step rather than after a guessed delay.
pub(crate) fn kill_point(point: &str) {
    if std::env::var_os("JIDSTORE_TEST_KILL_AT").is_some_and(|p| p == point) {
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
    }
}

/// Makes a finished copy durable, then marks it complete: every file and directory in it
/// synced, the [`INCOMPLETE_COPY`] marker deleted, the directory synced again.
pub(crate) fn complete(dir: &Path) -> Result<()> {
    sync_tree(dir)?;
    let marker = dir.join(INCOMPLETE_COPY);
    fs::remove_file(&marker).map_err(Error::on_path("remove", &marker))?;
    sync_dir(dir)
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(Error::on_path("read directory", dir))? {
        let entry = entry.map_err(Error::on_path("read directory", dir))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(Error::on_path("read metadata of", &path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(Error::on_path("sync", &path))?;
        }
    }
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::on_path("sync directory", dir))
}

/// Renames `from` to `to`, never replacing anything at `to` (atomically on Linux; elsewhere,
/// or where the filesystem lacks `RENAME_NOREPLACE`, checked just before).
pub(crate) fn rename_new(from: &Path, to: &Path) -> Result<()> {
    let failed = Error::on_path("move the finished copy to", to);
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e != Errno::INVAL && e != Errno::NOSYS => return Err(failed(e.into())),
            Err(_) => {}
        }
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(failed(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it already exists",
        )));
    }
    fs::rename(from, to).map_err(failed)
}

/// Refuses a copy destination that is empty, exists, has no existing parent directory, or
/// lies inside the store's data directory.
fn check_dest(store: &Store, dest: &Path) -> Result<()> {
    if dest.as_os_str().is_empty() {
        return Err(Error::InvalidInput("destination path is empty".into()));
    }
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Path {
            action: "create a copy at",
            path: dest.to_path_buf(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "it already exists"),
        });
    }
    // The parent must exist (nothing else is created), and the copy may not land inside the
    // store, however the path is spelt (`..`, symlinks): compare the resolved paths.
    let name = dest
        .file_name()
        .ok_or_else(|| Error::InvalidInput(format!("{} has no final name", dest.display())))?;
    let parent = parent_of(dest);
    let real_parent =
        fs::canonicalize(&parent).map_err(Error::on_path("create a copy in", &parent))?;
    if !real_parent.is_dir() {
        return Err(Error::Path {
            action: "create a copy in",
            path: parent,
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let real_store = fs::canonicalize(store.path()).unwrap_or_else(|_| store.path().to_path_buf());
    if !store.is_temporary() && real_parent.join(name).starts_with(&real_store) {
        return Err(Error::InvalidInput(format!(
            "the copy {} cannot be inside the data directory {}",
            dest.display(),
            store.path().display()
        )));
    }
    Ok(())
}

/// Copies `store` into a new store at `dest` (checked by [`check_dest`]), which keeps the
/// [`INCOMPLETE_COPY`] marker; returns the new store still open.
pub(crate) fn copy_open(store: &Store, dest: &Path) -> Result<(Store, CopySummary)> {
    check_dest(store, dest)?;
    create_private_dir(dest).map_err(Error::on_path("create a copy at", dest))?;
    let opened = mark_incomplete(dest).and_then(|()| {
        kill_point("copy:created");
        let mut config = Config::new(dest);
        config.incomplete_copy = true;
        if let Some(bytes) = store.configured_min_free() {
            config = config.min_free(bytes);
        }
        config.open()
    });
    let copy = match opened {
        Ok(copy) => copy,
        Err(e) => {
            // It did not exist a moment ago: whatever is there now is this attempt's.
            let _ = fs::remove_dir_all(dest);
            return Err(e);
        }
    };
    // sled created the copy's blob files with the process umask: owner-only, as at open.
    match copy_entries(store, &copy).inspect(|_| copy.restrict_files()) {
        Ok(summary) => Ok((copy, summary)),
        Err(e) => {
            drop(copy);
            let _ = fs::remove_dir_all(dest);
            Err(e)
        }
    }
}

pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Writes the [`INCOMPLETE_COPY`] marker into `dir` and makes it durable.
pub(crate) fn mark_incomplete(dir: &Path) -> Result<()> {
    let marker = dir.join(INCOMPLETE_COPY);
    let text = "This directory is a jidstore copy that is still being written, or whose \
                writing was interrupted. It is not a usable store: delete it.\n";
    fs::write(&marker, text)
        .and_then(|()| fs::File::open(&marker)?.sync_all())
        .map_err(Error::on_path("create", &marker))?;
    sync_dir(dir)
}

fn copy_entries(store: &Store, copy: &Store) -> Result<CopySummary> {
    let _exclusive = store.eraser()?;
    crate::gdpr::finish_sweeps(store)?;
    let mut summary = CopySummary::default();
    let _progress = crate::progress::Phase::start("copy", "entries", None);
    for &ks in Keyspace::ALL {
        let mut write = |batch, logical, read| {
            copy.check_space_for(logical)?;
            copy.apply_batch(ks, batch)?;
            crate::progress::advance(read);
            Ok(())
        };
        let repacked = crate::ext::owner_of(ks).and_then(|c| c.repack(ks, store, &mut write));
        if let Some(repacked) = repacked {
            let (entries, bytes) = repacked?;
            summary.keyspaces.push(KeyspaceCopy {
                keyspace: ks.name(),
                entries,
                bytes,
            });
            kill_point(&format!("copy:keyspace:{}", ks.name()));
            continue;
        }
        let mut entries = 0u64;
        let mut bytes = 0u64;
        let mut batch = crate::store::Batch::default();
        let mut in_batch = 0usize;
        let mut batch_bytes = 0u64;
        for entry in store.tree(ks) {
            let (k, v) = entry?;
            bytes += (k.len() + v.len()) as u64;
            entries += 1;
            batch_bytes += (k.len() + v.len()) as u64;
            batch.insert(k, v);
            in_batch += 1;
            if in_batch == COPY_CHUNK {
                copy.check_space_for(batch_bytes)?;
                batch_bytes = 0;
                copy.apply_batch(ks, std::mem::take(&mut batch))?;
                crate::progress::advance(in_batch as u64);
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            copy.check_space_for(batch_bytes)?;
            copy.apply_batch(ks, batch)?;
            crate::progress::advance(in_batch as u64);
        }
        summary.keyspaces.push(KeyspaceCopy {
            keyspace: ks.name(),
            entries,
            bytes,
        });
        kill_point(&format!("copy:keyspace:{}", ks.name()));
    }
    // sled's id generator lives outside every tree: carry it over, or a new account could
    // get an existing archive id and new messages would sort before old ones.
    let floor = store.generate_id()?;
    while copy.generate_id()? < floor {}
    copy.flush()?;
    kill_point("copy:flushed");
    Ok(summary)
}

/// Bytes of every file under `path` (recursively).
fn dir_size(path: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(path).map_err(Error::on_path("read directory", path))? {
        let entry = entry.map_err(Error::on_path("read directory", path))?;
        let meta = entry
            .metadata()
            .map_err(Error::on_path("read metadata of", &entry.path()))?;
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

/// `<parent>/<name><suffix><random hex>`: a sibling on the same filesystem.
pub(crate) fn sibling(path: &Path, suffix: &str) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidInput(format!("{} has no final name", path.display())))?;
    let mut sib = OsString::from(name);
    sib.push(format!("{suffix}{:016x}", rand::random::<u64>()));
    Ok(parent_of(path).join(sib))
}

pub(crate) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens an existing store, waiting up to 5 s while the directory is locked: sled's
/// background threads can hold the lock for a moment after the last handle of the same
/// process is dropped (e.g. right after an erasure in `unregister --purge`).
pub(crate) fn open_existing(mut config: Config, path: &Path) -> Result<Store> {
    config.path = path.to_path_buf();
    config
        .must_exist(true)
        .lock_timeout(Duration::from_secs(5))
        .open()
}

/// Rewrites the store at `path` (which must exist) so that its files hold only live data:
/// [`copy_into`] a sibling `<path>.compact-<random>`, [`verify`] the copy (a copy with any
/// problem is deleted and compaction refused), then swap the directories (see the module
/// documentation for what a crash can leave). No other process may have the store open
/// (sled's lock enforces it). A symlinked `path` is resolved first: the directory it points
/// to is compacted and the link is kept.
pub fn compact(path: &Path) -> Result<CompactSummary> {
    compact_with(Config::new(path))
}

/// [`compact`] the store at `config`'s path, opened with `config` (which must not be
/// [`Config::temporary`]); the copy keeps its free-space reserve ([`Config::min_free`]).
pub fn compact_with(config: Config) -> Result<CompactSummary> {
    if config.temporary {
        return Err(Error::InvalidInput(
            "a temporary store cannot be compacted".into(),
        ));
    }
    let path = config.path.clone();
    let path = path.as_path();
    // Through a symlink, the renames would replace the link and leave the real directory,
    // erased bytes and all, where it is: work on the directory the link points to.
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = real.as_path();
    // Measured before opening: opening writes to sled's files.
    let size_before = dir_size(path);
    let store = open_existing(config, path)?;
    let size_before = size_before?;
    let tmp = sibling(path, COMPACT_TMP_INFIX)?;
    let scratch = crate::cleanup::register(&tmp);
    let (copy, summary) = copy_open(&store, &tmp).map_err(|e| shown_at(e, &tmp, path))?;
    let report = match verify(&copy) {
        Ok(r) => r,
        Err(e) => {
            drop(copy);
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    drop(copy);
    drop(store);
    if !report.is_clean() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::CompactRefused {
            path: path.to_path_buf(),
            problems: report.problems.len(),
        });
    }
    if let Err(e) = complete(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = sibling(path, COMPACT_OLD_INFIX)?;
    crate::cleanup::test_pause("compact-swap");
    swap_in(path, &tmp, &old, &scratch)?;
    let size_after = dir_size(path)?;
    Ok(CompactSummary {
        copy: summary,
        size_before,
        size_after,
    })
}

/// Swaps the complete, verified copy `tmp` in at `path`: `path` renamed to `old`, `tmp` to
/// `path`, the parent synced, `old` deleted (see the module docs for what a crash leaves).
/// `scratch` is `tmp`'s cleanup registration, released once the copy is in place.
pub(crate) fn swap_in(
    path: &Path,
    tmp: &Path,
    old: &Path,
    scratch: &crate::cleanup::Registered,
) -> Result<()> {
    // A signal waits for both renames: it never finds `path` missing, and never removes the
    // copy once it is in place.
    scratch.commit(|| {
        if let Err(e) = fs::rename(path, old) {
            let _ = fs::remove_dir_all(tmp);
            return Err(Error::on_path("move aside", path)(e));
        }
        fs::rename(tmp, path).map_err(Error::on_path("move the new copy into", path))
    })?;
    // The old store holds erased bytes: removed on a signal too.
    let _old = crate::cleanup::register(old);
    let parent = parent_of(path);
    fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(Error::on_path("sync directory", &parent))?;
    fs::remove_dir_all(old).map_err(Error::on_path("delete the old store", old))
}

/// When `path` is missing: the `<path>.old-*` sibling an interrupted [`compact`] left, if any.
pub(crate) fn interrupted_compact(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let prefix = format!("{name}{COMPACT_OLD_INFIX}");
    fs::read_dir(parent_of(path))
        .ok()?
        .filter_map(std::result::Result::ok)
        .find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
}
