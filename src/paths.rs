//! The names of the files jidstore creates in and beside a data directory (sled's own files
//! aside): the one place to look them up, so that the modules that create them and those
//! that must recognise them (a forensic copy skips the admin socket, `open` refuses an
//! incomplete copy) agree without importing each other.

/// The admin socket, inside the data directory; also `crate::admin::SOCKET_NAME`.
pub const ADMIN_SOCKET: &str = "admin.sock";

/// Start of the private directory, inside the data directory, in which the admin socket is
/// bound before it is renamed into place; a random suffix follows.
#[cfg(all(unix, feature = "cli"))]
pub(crate) const ADMIN_TMP_PREFIX: &str = ".admin-";

/// The flush witness, inside the data directory (see [`crate::witness`]); also
/// `crate::witness::FILE_NAME`.
pub const FLUSH_WITNESS: &str = "flush-witness";

/// The marker in a directory that `backup` or `compact` is still copying: a directory that
/// holds it never opens as a store, so a copy that a crash or a kill interrupted cannot pass
/// for a good one.
pub(crate) const INCOMPLETE_COPY: &str = "jidstore-incomplete-copy";

/// A backup is written into `.<dest name>` + this + `<random hex>` next to `<dest>`; also
/// `crate::maintenance::BACKUP_TMP_INFIX`.
pub const BACKUP_TMP_INFIX: &str = ".jidstore-backup-tmp-";

/// `compact` writes its copy into `<path>` + this + `<random hex>` next to the store.
pub(crate) const COMPACT_TMP_INFIX: &str = ".compact-";

/// `compact` moves the old store to `<path>` + this + `<random hex>` while it swaps the copy
/// in; one left over means a compaction was interrupted between its two renames.
pub(crate) const COMPACT_OLD_INFIX: &str = ".old-";

/// Start of the working copy `forensic` makes next to its output; a random suffix follows.
pub(crate) const FORENSIC_TMP_PREFIX: &str = ".jidstore-forensic-";
