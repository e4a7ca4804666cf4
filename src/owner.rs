//! Who owns a data directory: a directory owned by another user is refused (as `postgres`
//! refuses a data directory it does not own), because files this process creates there
//! (sled's snapshots, owner-only) would lock the owner out. When the caller allows it anyway
//! ([`crate::Config::allow_foreign_owner`]), every file in the directory is given back to the
//! directory's owner and group.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The owner and group to give files to, when the directory is another user's and that is
/// allowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    uid: u32,
    gid: u32,
}

/// Checks the owner of the data directory at `path` (a missing one is created by this
/// process, so it is ours). `Ok(None)`: ours. A foreign directory is [`Error::Locked`] when
/// another process holds it (a server running as its owner: the command can go to its admin
/// socket), else [`Error::ForeignOwner`] unless `allow`.
pub(crate) fn check(path: &Path, allow: bool) -> Result<Option<Owner>> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(None);
    };
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() == me {
        return Ok(None);
    }
    if allow {
        return Ok(Some(Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        }));
    }
    if locked(path) {
        return Err(Error::Locked(path.to_path_buf()));
    }
    Err(Error::ForeignOwner {
        path: path.to_path_buf(),
        owner: user_name(meta.uid()),
        user: user_name(me),
    })
}

/// Whether another process holds sled's lock on the store (an exclusive `flock` on `db`).
/// Probed on a read-only descriptor, so nothing is created or changed.
fn locked(path: &Path) -> bool {
    fs::File::open(path.join("db"))
        .is_ok_and(|f| matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)))
}

/// `name (uid N)` from the password database, or `uid N`.
fn user_name(uid: u32) -> String {
    let name = fs::read_to_string("/etc/passwd").ok().and_then(|text| {
        text.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id: u32 = fields.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_owned())
        })
    });
    match name {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// Gives every entry under `path` (not following symlinks) that is not `owner`'s to
/// `owner` and its group. Best effort: an entry that vanished meanwhile is skipped.
pub(crate) fn give(path: &Path, owner: Owner) {
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.uid() != owner.uid || meta.gid() != owner.gid {
            let _ = std::os::unix::fs::lchown(entry.path(), Some(owner.uid), Some(owner.gid));
        }
        if meta.is_dir() {
            give(&entry.path(), owner);
        }
    }
}
