//! Safe creation of export files: temporary file in the target directory, owner-only
//! (0600), fsynced, renamed into place; never overwrites without `force`; leaves nothing
//! behind on failure. Shared by the GDPR zip and the XEP-0227 export.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Resolves an output path: an existing directory gets `<dir>/<default_name>`. The parent
/// directory must exist (it is not created).
pub(crate) fn resolve(path: &Path, default_name: &str) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidInput("output path is empty".into()));
    }
    let target = if path.is_dir() {
        path.join(default_name)
    } else {
        path.to_path_buf()
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match fs::metadata(&parent) {
        Ok(m) if m.is_dir() => Ok(target),
        Ok(_) => Err(Error::Path {
            action: "write into",
            path: parent,
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        }),
        Err(e) => Err(Error::Path {
            action: "write into directory",
            path: parent,
            source: e,
        }),
    }
}

/// Refuses an existing `target` that is not a regular file, with or without `force`: a
/// device node, a FIFO, a socket or a directory is never replaced (as root, `--force` would
/// otherwise turn `/dev/null` into a zip). A symbolic link is not followed: with `force` the
/// link itself is replaced, its target untouched. Any other existing `target` is refused
/// with [`Error::OutputExists`] unless `force`.
pub(crate) fn check_target(target: &Path, force: bool) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if kind.is_file() || kind.is_symlink() {
        return if force {
            Ok(())
        } else {
            Err(Error::OutputExists(target.to_path_buf()))
        };
    }
    let what = if kind.is_dir() {
        "a directory"
    } else {
        special_kind(kind)
    };
    Err(Error::Path {
        action: "write to",
        path: target.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("it is {what}, not a regular file (never replaced, even with --force)"),
        ),
    })
}

#[cfg(unix)]
fn special_kind(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: fs::FileType) -> &'static str {
    "a special file"
}

/// Refuses an output `target` inside the data directory `data`, however either is spelt
/// (`..`, symbolic links): a file there could replace one of the store's own (`db`, `conf`)
/// and anything else in it is deleted by `compact`. The target (a file to create, or an
/// existing directory) or its parent must exist.
pub(crate) fn refuse_inside_store(data: &Path, target: &Path, what: &str) -> Result<()> {
    // A directory (or a link to one) is resolved whole; a file's name is kept as it is, as
    // an output file that is a symbolic link is replaced, not followed.
    let real = match target.file_name() {
        Some(name) if !target.is_dir() => {
            let parent = match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fs::canonicalize(parent)
                .map_err(Error::on_path("write into", parent))?
                .join(name)
        }
        _ => fs::canonicalize(target).map_err(Error::on_path("write into", target))?,
    };
    let real_data = fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    if real.starts_with(&real_data) {
        return Err(Error::InvalidInput(format!(
            "{what} {} cannot be inside the data directory {}",
            target.display(),
            data.display()
        )));
    }
    Ok(())
}

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).read(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Creates `target` with what `write` writes, so that a reader never sees a partial file.
///
/// The content goes to a temporary file in the target's directory, created owner-only
/// (0600); it is flushed, fsynced and renamed into place, and the directory is synced. An
/// existing `target` is refused as [`check_target`] says (checked before and again just
/// before the rename). On any failure the temporary file is removed.
pub(crate) fn write_new<T>(
    target: &Path,
    force: bool,
    write: impl FnOnce(&mut io::BufWriter<&File>) -> Result<T>,
) -> Result<T> {
    check_target(target, force)?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = target
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let registered = crate::cleanup::register(&tmp);
    let file = create_private(&tmp).map_err(|source| Error::Path {
        action: "create export file in",
        path: dir.clone(),
        source,
    })?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let write_err = |source: io::Error| Error::Path {
        action: "write export file",
        path: target.to_path_buf(),
        source,
    };
    let mut buffered = io::BufWriter::new(&file);
    let out = write(&mut buffered).map_err(|e| match e {
        Error::Io(source) => write_err(source),
        other => other,
    })?;
    buffered.flush().map_err(write_err)?;
    crate::cleanup::test_pause("export-tmp");
    drop(buffered);
    file.sync_all().map_err(write_err)?;
    drop(file);
    check_target(target, force)?;
    registered
        .commit(|| fs::rename(&tmp, target))
        .map_err(write_err)?;
    guard.0 = None;
    // Make the rename itself durable.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}
