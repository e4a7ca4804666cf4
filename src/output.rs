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
/// existing `target` is refused with [`Error::OutputExists`] unless `force` (checked before
/// and again just before the rename). On any failure the temporary file is removed.
pub(crate) fn write_new<T>(
    target: &Path,
    force: bool,
    write: impl FnOnce(&mut io::BufWriter<&File>) -> Result<T>,
) -> Result<T> {
    if !force && fs::symlink_metadata(target).is_ok() {
        return Err(Error::OutputExists(target.to_path_buf()));
    }
    if target.is_dir() {
        return Err(Error::Path {
            action: "overwrite",
            path: target.to_path_buf(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        });
    }
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
        Error::Io(source) | Error::Zip(zip::result::ZipError::Io(source)) => write_err(source),
        Error::Csv(e) if e.is_io_error() => {
            let text = e.to_string();
            match e.into_kind() {
                csv::ErrorKind::Io(source) => write_err(source),
                _ => write_err(io::Error::other(text)),
            }
        }
        other => other,
    })?;
    buffered.flush().map_err(write_err)?;
    crate::cleanup::test_pause("export-tmp");
    drop(buffered);
    file.sync_all().map_err(write_err)?;
    drop(file);
    if !force && fs::symlink_metadata(target).is_ok() {
        return Err(Error::OutputExists(target.to_path_buf()));
    }
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
