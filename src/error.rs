//! The crate's error type: one enum, each variant a sentence carrying its data.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The result type used throughout jidstore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a jidstore operation can fail.
///
/// Absence is not an error: lookups return `Ok(None)`. Variants name the keyspace, key, JID
/// or path involved so that one line on stderr is enough to act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error outside sled (export files, directories).
    Io(io::Error),
    /// An I/O error on a named path.
    Path {
        /// What was being done, e.g. "create export file".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The storage engine reported an error (the message says what and what to do).
    Storage(String),
    /// Another process holds the data directory.
    Locked(PathBuf),
    /// The data directory belongs to another user (see
    /// [`Config::allow_foreign_owner`](crate::Config::allow_foreign_owner)).
    ForeignOwner {
        /// The data directory.
        path: PathBuf,
        /// Its owner, `name (uid N)`.
        owner: String,
        /// The user this process runs as, `name (uid N)`.
        user: String,
    },
    /// The directory holds something that is not a usable jidstore store.
    NotAStore {
        /// The data directory.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The store was written by a format version this build does not read.
    UnsupportedVersion {
        /// Version found in the `meta` keyspace.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// Bytes read from disk failed to decode or failed their checksum.
    Corrupt {
        /// The keyspace (sled tree) holding the bad entry.
        keyspace: &'static str,
        /// The key of the bad entry, escaped for display.
        key: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A JID failed to parse or normalise.
    InvalidJid {
        /// The text as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A write for a JID that has no account.
    NoAccount(String),
    /// An account with that JID exists already.
    AccountExists(String),
    /// The store holds nothing about that JID: what both retrieval and erasure of a JID the
    /// store knows nothing of fail with.
    NoPersonalData(String),
    /// A named record does not exist (e.g. a pubsub node, an archive id).
    NotFound(String),
    /// An argument was rejected (empty, out of range, malformed).
    InvalidInput(String),
    /// The output path exists and overwriting was not asked for.
    OutputExists(PathBuf),
    /// [`crate::maintenance::compact`] refused: the copy of the store failed verification.
    CompactRefused {
        /// The data directory (unchanged).
        path: PathBuf,
        /// Problems [`crate::verify()`] found in the copy.
        problems: usize,
    },
    /// [`crate::forensic::export`]: the copied data directory cannot be read as a store
    /// (torn or damaged copy; sled failed or panicked on it).
    UnusableCopy {
        /// The copied data directory given as the source.
        path: PathBuf,
        /// Why, in one line.
        reason: String,
    },
    /// [`crate::forensic::export`]: a file of the source changed, appeared or disappeared
    /// between hashing and the re-check after the export (no export was written).
    SourceChanged {
        /// The copied data directory given as the source.
        path: PathBuf,
        /// What changed.
        what: String,
    },
    /// [`crate::migrate`] refused its target, or its check of the copy failed (the target
    /// then stays marked as an incomplete migration).
    Migrate {
        /// The target: a database URL without its password, or a directory.
        target: String,
        /// Why, in one line.
        reason: String,
    },
    /// Writing CSV failed.
    Csv(String),
    /// Writing the zip container failed.
    Zip(String),
    /// The filesystem holding the data directory is full (or over quota). sled stops
    /// accepting writes from this process after the first failed write; free space and open
    /// the store again.
    StorageFull {
        /// The data directory, when known where the error was raised.
        path: Option<PathBuf>,
    },
    /// sled recovered the store to an earlier state than the newest flush recorded in its
    /// flush witness (see `src/witness.rs`): its log was damaged and sled dropped writes
    /// made durable after the damage, possibly acknowledged messages or a GDPR erasure.
    EarlierState {
        /// The data directory.
        path: PathBuf,
        /// The newest flush generation the witness recorded.
        recorded: u64,
        /// The flush generation sled recovered.
        found: u64,
    },
    /// The filesystem holding the data directory is down to the free-space reserve
    /// ([`Config::min_free`](crate::Config::min_free)): the write was refused before
    /// anything was written. Removals and erasure still work; the store needs no repair.
    LowSpace {
        /// The data directory.
        path: PathBuf,
        /// Free bytes when the write was refused.
        free: u64,
        /// The reserve.
        reserve: u64,
    },
}

impl Error {
    /// Whether this is a full filesystem: [`Error::StorageFull`] (a write failed) or
    /// [`Error::LowSpace`] (a write was refused to keep the reserve).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::StorageFull { .. } | Error::LowSpace { .. })
    }
}

impl fmt::Display for Error {
    #[expect(
        clippy::too_many_lines,
        reason = "one message per variant, read as one table"
    )]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Path {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Error::Storage(e) => write!(f, "storage error: {e}"),
            Error::ForeignOwner { path, owner, user } => write!(
                f,
                "data directory {} belongs to {owner}, not to {user} running this: run jidstore \
                 as its owner, or pass --allow-foreign-owner (files created are then given to the owner)",
                path.display()
            ),
            Error::Locked(p) => write!(
                f,
                "data directory {} is locked by another process (is a server or another jidstore running?)",
                p.display()
            ),
            Error::NotAStore { path, reason } => write!(
                f,
                "{} is not a jidstore data directory: {reason}",
                path.display()
            ),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "store format version {found} is not supported (this build reads version {supported})"
            ),
            Error::Corrupt {
                keyspace,
                key,
                reason,
            } => write!(
                f,
                "corrupt record in keyspace '{keyspace}' at key {key}: {reason}"
            ),
            Error::InvalidJid { input, reason } => {
                write!(f, "invalid JID '{}': {reason}", Shortened(input))
            }
            Error::NoAccount(j) => write!(f, "user {j} does not exist"),
            Error::AccountExists(j) => write!(f, "user {j} already exists"),
            Error::NoPersonalData(j) => write!(f, "no personal data held for {j}"),
            Error::NotFound(what) => write!(f, "{what} not found"),
            Error::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            Error::OutputExists(p) => write!(
                f,
                "{} already exists (use --force to overwrite)",
                p.display()
            ),
            Error::CompactRefused { path, problems } => write!(
                f,
                "compaction of {} refused: its copy failed verification with {problems} \
                 problem(s); the store is unchanged (run `jidstore verify` on it)",
                path.display()
            ),
            Error::Migrate { target, reason } => write!(f, "migrate to {target}: {reason}"),
            Error::UnusableCopy { path, reason } => {
                write!(f, "the copy at {} is unusable: {reason}", path.display())
            }
            Error::SourceChanged { path, what } => write!(
                f,
                "the source {} changed during the forensic export ({what}); no export was \
                 written (examine a copy nothing writes to, e.g. one made by `jidstore backup`)",
                path.display()
            ),
            Error::Csv(e) => write!(f, "CSV error: {e}"),
            Error::Zip(e) => write!(f, "zip error: {e}"),
            Error::StorageFull { path } => {
                write!(f, "no space left on device")?;
                if let Some(p) = path {
                    write!(f, " for data directory {}", p.display())?;
                }
                write!(
                    f,
                    ": the write failed and the store accepts no more writes from this process; \
                     free space, then run the command again"
                )
            }
            Error::EarlierState {
                path,
                recorded,
                found,
            } => write!(
                f,
                "the data directory {} holds an earlier state than its last recorded flush \
                 (flush {found} of {recorded}): sled's log is damaged and writes made durable \
                 after the damage were dropped (acknowledged messages, or an erasure, may be \
                 missing); restore a backup, or move {} out of the directory to open what is \
                 left",
                path.display(),
                crate::witness::FILE_NAME
            ),
            Error::LowSpace {
                path,
                free,
                reserve,
            } => write!(
                f,
                "no space left on device for data directory {}: {} free, below the {} \
                 jidstore keeps free so that erasure and recovery can still write; nothing was \
                 written and the store is intact; free space (or lower the reserve, JIDSTORE_MIN_FREE \
                 for the command line), then run the command again",
                path.display(),
                mib(*free),
                mib(*reserve)
            ),
        }
    }
}

/// Typed text echoed in a message, cut after [`Shortened::MAX`] characters so that a huge
/// argument gives a readable line.
struct Shortened<'a>(&'a str);

impl Shortened<'_> {
    const MAX: usize = 80;
}

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(Self::MAX) {
            Some((cut, _)) => write!(
                f,
                "{}... ({} bytes)",
                self.0.get(..cut).unwrap_or_default(),
                self.0.len()
            ),
            None => f.write_str(self.0),
        }
    }
}

impl Error {
    /// Maps an I/O error on `path` to [`Error::Path`], for `map_err`: one constructor for
    /// every module that names the path it failed on.
    pub(crate) fn on_path(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Path {
            action,
            path,
            source,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::Path { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Bytes as MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a rounded figure for a message")]
    let m = bytes as f64 / f64::from(1u32 << 20);
    format!("{m:.2} MiB")
}

/// Whether an I/O error means the filesystem is full or the quota is used up (sled wraps
/// the OS error in one of its own, keeping the kind).
pub(crate) fn is_storage_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122))
}

impl From<csv::Error> for Error {
    fn from(e: csv::Error) -> Self {
        if e.is_io_error() {
            let text = e.to_string();
            return match e.into_kind() {
                csv::ErrorKind::Io(io) => Error::Io(io),
                _ => Error::Io(io::Error::other(text)),
            };
        }
        Error::Csv(e.to_string())
    }
}

impl From<zip::result::ZipError> for Error {
    fn from(e: zip::result::ZipError) -> Self {
        match e {
            zip::result::ZipError::Io(io) => Error::Io(io),
            other => Error::Zip(other.to_string()),
        }
    }
}
