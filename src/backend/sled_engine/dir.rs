//! The data directory as sled keeps it: the checks before sled opens it, the mapping of
//! sled's open errors to jidstore's, file modes, partial snapshots and the flush witness.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::keys::{self, Keyspace};
use crate::witness::Witness;

/// Files sled keeps in its directory; anything else means the directory is not ours.
fn looks_like_sled_dir(path: &Path) -> io::Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(path)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        empty = false;
        if name == "conf" || name == "db" {
            return Ok(true);
        }
    }
    Ok(empty)
}

pub(crate) fn not_a_store(path: PathBuf, reason: &str) -> Error {
    Error::NotAStore {
        path,
        reason: reason.to_owned(),
    }
}

/// Below this many free bytes the filesystem counts as full when sled fails to open a store:
/// sled writes (a segment tail, a snapshot) while it recovers, and reports a failed write
/// there as corruption or an I/O error.
const FULL_BELOW: u64 = 512 * 1024;

/// Whether the filesystem holding `path` has (almost) no space left for an unprivileged
/// writer.
fn filesystem_full(path: &Path) -> bool {
    rustix::fs::statvfs(path).is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) < FULL_BELOW)
}

pub(super) fn map_open_error(path: &Path, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(_) | sled::Error::Corruption { .. } if filesystem_full(path) => {
            Error::StorageFull {
                path: Some(path.to_path_buf()),
            }
        }
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            Error::Locked(path.to_path_buf())
        }
        sled::Error::Io(io) if crate::error::is_storage_full(&io) => Error::StorageFull {
            path: Some(path.to_path_buf()),
        },
        sled::Error::Io(io) => Error::Path {
            action: "open data directory",
            path: path.to_path_buf(),
            source: io,
        },
        sled::Error::Corruption { at, .. } => {
            let whereabouts = at.map_or_else(String::new, |at| format!(" (at {at})"));
            not_a_store(
                path.to_path_buf(),
                &format!("sled found damaged data in its files{whereabouts}; restore a backup"),
            )
        }
        sled::Error::Unsupported(what) => {
            not_a_store(path.to_path_buf(), &format!("sled: unsupported: {what}"))
        }
        other => Error::from(other),
    }
}
/// The checks before sled touches `path`: a directory holding a store or nothing, or (unless
/// `must_exist`) missing, then created owner-only.
pub(super) fn check_dir(path: &Path, must_exist: bool, incomplete_copy: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => return Err(not_a_store(path.to_path_buf(), "not a directory")),
        Ok(_) => {
            let marker = crate::paths::INCOMPLETE_COPY;
            if !incomplete_copy && std::fs::symlink_metadata(path.join(marker)).is_ok() {
                return Err(not_a_store(
                    path.to_path_buf(),
                    &format!(
                        "it is an incomplete copy (a `jidstore backup` or `compact` that did \
                         not finish left its {marker} file); delete it and take the backup again"
                    ),
                ));
            }
            let ours = looks_like_sled_dir(path).map_err(|source| Error::Path {
                action: "read data directory",
                path: path.to_path_buf(),
                source,
            })?;
            if !ours && !incomplete_copy {
                return Err(not_a_store(
                    path.to_path_buf(),
                    "it holds files that are not sled's",
                ));
            }
            // sled would create an empty `db` next to the old snapshot and report the store
            // as damaged. A store that ever held data has a snapshot or the flush witness.
            let has = |name: &str| std::fs::symlink_metadata(path.join(name)).is_ok();
            let written = has(crate::paths::FLUSH_WITNESS)
                || std::fs::read_dir(path).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("snap."))
                });
            if !has("db") && written {
                let db = path.join("db");
                return Err(not_a_store(
                    path.to_path_buf(),
                    &format!(
                        "{} (sled's data file) is missing; restore a backup",
                        db.display()
                    ),
                ));
            }
            // An empty directory: sled would create its files in it before the check
            // below could refuse, so a command that must not create a store stops here.
            let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
            if empty && must_exist {
                return Err(not_a_store(
                    path.to_path_buf(),
                    "no store has been created here",
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(old) = crate::maintenance::interrupted_compact(path) {
                let reason = format!(
                    "it is missing, but {} exists: a `jidstore compact` was interrupted; \
                         rename that directory (or a complete `.compact-*` sibling) back to \
                         this path",
                    old.display()
                );
                return Err(not_a_store(path.to_path_buf(), &reason));
            }
            if must_exist {
                return Err(Error::Path {
                    action: "open data directory",
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            create_private_dir(path)?;
        }
        Err(_) => {}
    }
    Ok(())
}

/// Creates a missing data directory (and missing parents) owner-only (0700), before sled
/// creates its files in it.
fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| Error::Path {
        action: "create data directory",
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a data directory that was just turned into a store owner-only: the directory and
/// its subdirectories 0700, sled's files (created under the umask, usually 0644) 0600. Files
/// sled creates later inherit nothing, but sit inside the 0700 directory.
pub(super) fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if mode != 0o700 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            }
            for entry in std::fs::read_dir(path)? {
                restrict(&entry?.path())?;
            }
        } else if meta.is_file() && mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// sled creates its snapshots (`snap.*`, written while it opens a store) and blob files with
/// the process umask (0666 under umask 0), unlike the `db` file: take the group and other
/// bits off them. Done at every open and after a copy; best effort (a file owned by someone
/// else stays as it is), and the directory's own mode, the operator's choice, is left alone.
pub(super) fn restrict_sled_files(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fix = |p: &Path| {
            if let Ok(meta) = std::fs::symlink_metadata(p) {
                let mode = meta.permissions().mode();
                if meta.is_file() && mode & 0o077 != 0 {
                    let _ =
                        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o700));
                }
            }
        };
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("snap.") {
                fix(&entry.path());
            }
        }
        for entry in std::fs::read_dir(path.join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            fix(&entry.path());
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
/// Removes the snapshots sled had not finished writing (`snap.<lsn>.generating`) when its
/// process was killed. sled 0.34 writes a snapshot to that name, syncs it, renames it to
/// `snap.<lsn>` and only then deletes older ones, so a `.generating` file is always partial
/// and never the only copy of anything; but sled's own recovery takes it as the newest
/// snapshot and, finding its checksum wrong, refuses the store as damaged (seen once in 600
/// SIGKILLs of `unregister`, killed while sled wrote its start-up snapshot).
pub(super) fn discard_partial_snapshots(path: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Path {
                action: "read data directory",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let partial = name
            .strip_prefix("snap.")
            .and_then(|rest| rest.strip_suffix(".generating"))
            .is_some_and(|lsn| lsn.len() == 16 && lsn.bytes().all(|b| b.is_ascii_hexdigit()));
        if partial && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).map_err(|source| Error::Path {
                action: "remove the partial snapshot",
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Reads the flush witness and refuses a store that sled recovered to a state older than the
/// newest flush the witness recorded.
pub(super) fn check_witness(db: &sled::Db, path: &Path) -> Result<Witness> {
    let (mut witness, recorded) = Witness::read(path).map_err(|source| Error::Path {
        action: "read the flush witness of",
        path: path.join(crate::paths::FLUSH_WITNESS),
        source,
    })?;
    let found = match db
        .open_tree(Keyspace::Meta.name())?
        .get(keys::META_FLUSHED)?
    {
        Some(raw) => keys::read_u64_value(Keyspace::Meta, keys::META_FLUSHED, &raw)?,
        None => 0,
    };
    if found < recorded {
        return Err(Error::EarlierState {
            path: path.to_path_buf(),
            recorded,
            found,
        });
    }
    witness.saw(found);
    Ok(witness)
}
