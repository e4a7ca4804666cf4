//! Forensic export: one person's GDPR export from a *copied* data directory, without writing
//! a byte into it, and without panicking on a torn or damaged copy.
//!
//! sled has no read-only mode (every open writes into the directory), so [`export`] never
//! opens the source. It walks the source (regular files and directories only), copies it into
//! a private working directory while taking the SHA-256 of every file, opens the working copy,
//! [`verify`]s it, writes the export, hashes the source again and compares, and deletes the
//! working copy on every path out. A copy that sled cannot read, or panics on, or that fails
//! verification, is reported as [`Error::UnusableCopy`]; a source that changed meanwhile as
//! [`Error::SourceChanged`]. In both cases no export file is left behind.
//!
//! ```
//! use jidstore::{BareJid, Config, forensic};
//! let dir = tempfile::tempdir()?;
//! let data = dir.path().join("data");
//! let store = Config::new(&data).scram_iterations(4096).open()?;
//! let alice = BareJid::parse("alice@example.org")?;
//! store.accounts().create(&alice, "pw")?;
//! store.flush()?;
//! drop(store); // a copy must not be written to while it is examined
//!
//! let zip = dir.path().join("alice.zip");
//! let summary = forensic::export(&data, &alice, &zip, &Default::default())?;
//! assert!(summary.manifest.forensic && summary.manifest.source.unchanged);
//! assert_eq!(summary.manifest.export.total_rows(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod source;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::gdpr::{self, ExportOptions, ExportSummary};
use crate::jid::BareJid;
use crate::output;
use crate::paths::FORENSIC_TMP_PREFIX;
use crate::store::{Store, quiet_panics};
use crate::time::Timestamp;
use crate::verify::verify;

pub use source::SourceFile;

/// How a forensic export is written.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ForensicOptions {
    /// The export itself (timestamp, compression, `force`).
    pub export: ExportOptions,
    /// Where the private working directory is created; `None` uses the export file's
    /// directory (same filesystem, and a place already trusted with the personal data). It
    /// may not lie inside the source.
    pub work_dir: Option<PathBuf>,
}

impl ForensicOptions {
    /// Overwrite an existing export file.
    #[must_use]
    pub fn force(mut self, yes: bool) -> Self {
        self.export.force = yes;
        self
    }

    /// Sets [`ForensicOptions::work_dir`].
    #[must_use]
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    /// Sets the export time (see [`ExportOptions::timestamp`]).
    #[must_use]
    pub fn timestamp(mut self, t: Timestamp) -> Self {
        self.export.timestamp = Some(t);
        self
    }
}

/// The source of a forensic export, as recorded in its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRecord {
    /// The source directory, absolute, symbolic links resolved.
    pub path: PathBuf,
    /// When hashing (and copying) the source began (RFC 3339).
    pub hashed_at: String,
    /// When the source was hashed again, after every row was read from the copy.
    pub rechecked_at: String,
    /// The second hashing found the same files with the same sizes and hashes (always true
    /// in a written export: a change fails it).
    pub unchanged: bool,
    /// Bytes over all files.
    pub total_bytes: u64,
    /// Every regular file of the source, in path order.
    pub files: Vec<SourceFile>,
}

/// `manifest.json` of a forensic export: the normal manifest's fields, plus the source.
#[derive(Debug, Clone, Serialize)]
pub struct ForensicManifest {
    /// Every field of a normal export's manifest.
    #[serde(flatten)]
    pub export: ExportSummary,
    /// Always true: marks an export made from a copied data directory.
    pub forensic: bool,
    /// The source and its hashes.
    pub source: SourceRecord,
    /// Entries [`verify`] read (and found clean) in the working copy before exporting.
    pub verified_entries: u64,
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForensicSummary {
    /// The zip written.
    pub path: PathBuf,
    /// Its `manifest.json`.
    pub manifest: ForensicManifest,
}

/// Exports everything `source` (a copied data directory) holds about `subject` into a zip
/// at `path` (or `<path>/<username>.zip` for a directory), in the format of
/// [`gdpr::retrieve_to_path`] with a forensic manifest. See the module documentation for the
/// steps and guarantees; the export file has the same safety (0600, temporary file and
/// rename, no overwrite without `force`).
///
/// Errors: a missing source, or one that is not a directory, holds a symbolic link or a
/// special file, is refused before anything is written; a copy sled cannot use is
/// [`Error::UnusableCopy`]; a subject with no data is [`Error::NoPersonalData`].
pub fn export(
    source: &Path,
    subject: &BareJid,
    path: &Path,
    options: &ForensicOptions,
) -> Result<ForensicSummary> {
    let source = examine_root(source)?;
    let name = format!("{}.zip", subject.node().unwrap_or(subject.as_str()));
    let target = output::resolve(path, &name)?;
    refuse_inside(&source, &parent_of(&target), "the export file")?;
    let work_parent = options
        .work_dir
        .clone()
        .unwrap_or_else(|| parent_of(&target));
    refuse_inside(&source, &work_parent, "the working directory")?;
    output::check_target(&target, options.export.force)?;
    let work = WorkDir::create(&work_parent)?;
    let copy = work.path.join("copy");
    let hashed_at = Timestamp::now();
    let files = source::copy_hashed(&source, &copy)?;
    let mut slot: Option<Store> = None;
    let result = quiet_panics(|| {
        output::write_new(&target, options.export.force, |sink| {
            let store = slot.insert(open_copy(&source, &copy)?);
            let report = verify(store).map_err(|e| unusable(&source, &e))?;
            if let Some(first) = report.problems.first() {
                return Err(Error::UnusableCopy {
                    path: source.clone(),
                    reason: format!(
                        "verify found {} problem(s) in it, the first: {first}",
                        report.problems.len()
                    ),
                });
            }
            let manifest = |summary: &ExportSummary| {
                let rechecked_at = Timestamp::now();
                let again = source::hash_tree(&source)?;
                if let Some(what) = source::difference(&files, &again) {
                    return Err(Error::SourceChanged {
                        path: source.clone(),
                        what,
                    });
                }
                Ok(ForensicManifest {
                    export: summary.clone(),
                    forensic: true,
                    source: SourceRecord {
                        path: source.clone(),
                        hashed_at: hashed_at.to_rfc3339(),
                        rechecked_at: rechecked_at.to_rfc3339(),
                        unchanged: true,
                        total_bytes: files.iter().map(|f| f.bytes).sum(),
                        files: files.clone(),
                    },
                    verified_entries: report.entries,
                })
            };
            let written = gdpr::retrieve_with(store, subject, sink, &options.export, manifest);
            // Closed before the rename: a panic while closing still leaves no export.
            drop(slot.take());
            written.map_err(|e| match e {
                Error::Corrupt { .. } | Error::Storage(_) | Error::NotAStore { .. } => {
                    unusable(&source, &e)
                }
                other => other,
            })
        })
    });
    // After a panic the store was not dropped while unwinding (it lives in `slot`), so a
    // second panic in its drop cannot abort the process; it is caught here.
    let _ = quiet_panics(|| drop(slot.take()));
    drop(work);
    match result {
        Ok(Ok(manifest)) => Ok(ForensicSummary {
            path: target,
            manifest,
        }),
        Ok(Err(e)) => Err(e),
        Err(panic) => Err(Error::UnusableCopy {
            path: source,
            reason: format!("sled panicked while reading it ({panic})"),
        }),
    }
}

/// The source as an absolute, resolved path; it must be a directory (not a symbolic link).
fn examine_root(source: &Path) -> Result<PathBuf> {
    let meta = fs::symlink_metadata(source).map_err(|e| Error::Path {
        action: "examine source",
        path: source.to_path_buf(),
        source: e,
    })?;
    let refuse = |why: &str| Error::Path {
        action: "examine source",
        path: source.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symbolic link (give the directory it points to)",
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("not a directory (give a copied data directory)"));
    }
    source::canonical(source, "examine source")
}

/// Refuses `dir` (an output location) when it lies inside the source.
fn refuse_inside(source: &Path, dir: &Path, what: &str) -> Result<()> {
    let dir = source::canonical(dir, "use directory")?;
    if dir.starts_with(source) {
        return Err(Error::InvalidInput(format!(
            "{what} would be inside the source {} ({}); forensic-export never writes into the \
             source, choose another directory",
            source.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens the working copy: must hold a store, no background flusher (nothing is written).
fn open_copy(source: &Path, copy: &Path) -> Result<Store> {
    Config::new(copy)
        .must_exist(true)
        .flush_every_ms(None)
        .open()
        .map_err(|e| unusable(source, &e))
}

/// The error as [`Error::UnusableCopy`] of `source`, without naming the working copy.
fn unusable(source: &Path, e: &Error) -> Error {
    let reason = match e {
        Error::NotAStore { reason, .. } => reason.clone(),
        Error::Path { source: io, .. } => io.to_string(),
        Error::EarlierState {
            recorded, found, ..
        } => Error::EarlierState {
            path: source.to_path_buf(),
            recorded: *recorded,
            found: *found,
        }
        .to_string(),
        other => other.to_string(),
    };
    Error::UnusableCopy {
        path: source.to_path_buf(),
        reason,
    }
}

/// A private (0700) directory with a random name, deleted with everything in it on drop.
struct WorkDir {
    path: PathBuf,
    /// Removed on SIGINT, SIGTERM or SIGHUP too (a full copy of the source).
    _registered: crate::cleanup::Registered,
}

impl WorkDir {
    fn create(parent: &Path) -> Result<WorkDir> {
        let path = parent.join(format!(
            "{FORENSIC_TMP_PREFIX}{:016x}",
            rand::random::<u64>()
        ));
        let registered = crate::cleanup::register(&path);
        let mut b = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&path).map_err(|source| Error::Path {
            action: "create working directory in",
            path: parent.to_path_buf(),
            source,
        })?;
        Ok(WorkDir {
            path,
            _registered: registered,
        })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // sled's I/O threads may still be finishing for a moment after the store is dropped.
        for _ in 0..50 {
            match fs::remove_dir_all(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => return,
            }
        }
    }
}
