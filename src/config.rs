//! The store's configuration builder: taken by value, validated by [`Config::open`].

use std::path::{Path, PathBuf};

use crate::database_url::DatabaseUrl;
use crate::error::Result;
use crate::store::Store;

/// Default page cache. sled's own default (1 GiB) is far more than a small deployment needs,
/// and sled's real memory use is a multiple of this setting (it counts on-disk bytes; see
/// sled issues 986 and 1036). Measured here: exporting a 1M-message archive peaked at 180 MB
/// RSS with 64 MiB and 106 MB with 8 MiB, at the same speed.
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Default PBKDF2 iteration count for new SCRAM verifiers (MongooseIM's default).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 10_000;

/// How to open a [`Store`].
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let store = jidstore::Config::new(dir.path().join("data"))
///     .cache_capacity(16 << 20)
///     .open()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent open options, each set by its own builder method"
)]
pub struct Config {
    pub(crate) path: PathBuf,
    pub(crate) temporary: bool,
    pub(crate) cache_capacity: u64,
    pub(crate) flush_every_ms: Option<u64>,
    pub(crate) scram_iterations: u32,
    pub(crate) read_only_check: bool,
    pub(crate) lock_timeout: std::time::Duration,
    pub(crate) min_free: Option<u64>,
    /// Open a copy still being written, despite its incomplete-copy marker
    /// ([`crate::maintenance`] only).
    pub(crate) incomplete_copy: bool,
    /// Open (or create, marked as such) a store that `jidstore migrate` is writing
    /// ([`crate::migrate`] only; see [`crate::keys::META_MIGRATING`]).
    pub(crate) migrating: bool,
    pub(crate) allow_foreign_owner: bool,
    /// Keep everything in memory ([`Config::in_memory`]).
    pub(crate) in_memory: bool,
    /// A PostgreSQL database instead of a directory ([`Config::database`]).
    pub(crate) database: Option<DatabaseUrl>,
}

impl Config {
    /// A configuration for the data directory at `path` (created if missing).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Config {
            path: path.as_ref().to_path_buf(),
            temporary: false,
            cache_capacity: DEFAULT_CACHE_BYTES,
            flush_every_ms: Some(500),
            scram_iterations: DEFAULT_SCRAM_ITERATIONS,
            read_only_check: false,
            lock_timeout: std::time::Duration::ZERO,
            min_free: None,
            incomplete_copy: false,
            migrating: false,
            allow_foreign_owner: false,
            in_memory: false,
            database: None,
        }
    }

    /// A store in a fresh temporary directory, deleted when the last handle drops.
    pub fn temporary() -> Self {
        let mut c = Config::new(std::env::temp_dir());
        c.temporary = true;
        c
    }

    /// A store held in memory only (ordered maps, no files), gone when the last handle drops.
    /// Every API works as on disk, with nothing durable; meant for test suites (a server's
    /// own, and jidstore's property model, which runs against both engines).
    ///
    /// ```
    /// let store = jidstore::Config::in_memory().open()?;
    /// let alice = jidstore::BareJid::parse("alice@example.org")?;
    /// store.accounts().create(&alice, "secret")?;
    /// assert!(store.accounts().get(&alice)?.is_some());
    /// # Ok::<(), jidstore::Error>(())
    /// ```
    pub fn in_memory() -> Self {
        let mut c = Config::temporary();
        c.in_memory = true;
        c
    }

    /// A store in a PostgreSQL database, `postgres://user:password@host:port/dbname` (or
    /// `postgresql://`; a Unix socket directory as the host, percent-encoded, or
    /// `?host=/run/postgresql`). The tables (`jidstore_<keyspace>`) are created in the
    /// connection's current schema if missing. Several processes may open one database at
    /// once. Directory options (cache, flush interval, free-space reserve, owner checks)
    /// do not apply; [`Config::must_exist`] does. The URL is checked when the store opens;
    /// its password never appears in `Debug` output or errors. Without the `postgres`
    /// feature, opening fails with a one-line error.
    ///
    /// TLS is not supported yet: connect over loopback or a Unix socket.
    pub fn database(url: &str) -> Self {
        let mut c = Config::new("");
        c.database = Some(DatabaseUrl::new(url));
        c
    }

    /// Page cache size in bytes.
    #[must_use]
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// How often sled flushes in the background; `None` flushes only on explicit
    /// [`Store::flush`] and on GDPR erasure (which always flushes before it returns).
    #[must_use]
    pub fn flush_every_ms(mut self, ms: Option<u64>) -> Self {
        self.flush_every_ms = ms;
        self
    }

    /// PBKDF2 iterations for new SCRAM verifiers (at least 4096, as RFC 7677 asks).
    #[must_use]
    pub fn scram_iterations(mut self, iterations: u32) -> Self {
        self.scram_iterations = iterations;
        self
    }

    /// Refuse to create a store: opening a directory that holds no store is an error instead.
    /// Used by commands that only read.
    #[must_use]
    pub fn must_exist(mut self, yes: bool) -> Self {
        self.read_only_check = yes;
        self
    }

    /// How long `open` keeps retrying while the directory is locked (default: not at all, so a
    /// directory held by another process fails at once). sled releases the lock a moment
    /// after the last handle of the same process is dropped, when its I/O threads finish, so
    /// code that closes and reopens a store at once sets a short wait.
    #[must_use]
    pub fn lock_timeout(mut self, wait: std::time::Duration) -> Self {
        self.lock_timeout = wait;
        self
    }

    /// Free space to keep on the data directory's filesystem. Writes that add data (every
    /// `set`, `store`, `append`, `publish`, import, ...) fail with
    /// [`Error::LowSpace`](crate::Error::LowSpace) while less than this is free; removals,
    /// GDPR erasure and the archive sweep still run, and so do sled's own log writes and
    /// its recovery at the next open, which is what the reserve is for: sled 0.34 can refuse
    /// to reopen a store whose log ran out of space. Default: 5 % of the filesystem, at least
    /// 4 MiB and at most 64 MiB. `0` turns the reserve off.
    #[must_use]
    pub fn min_free(mut self, bytes: u64) -> Self {
        self.min_free = Some(bytes);
        self
    }

    /// Open a data directory owned by another user. By default that is refused with
    /// [`Error::ForeignOwner`](crate::Error::ForeignOwner) (unless another process holds it:
    /// then [`Error::Locked`](crate::Error::Locked)), because files this process creates
    /// there would lock the owner out. When allowed, every file in the directory is given to
    /// the directory's owner and group at open and when the last handle is dropped.
    #[must_use]
    pub fn allow_foreign_owner(mut self, yes: bool) -> Self {
        self.allow_foreign_owner = yes;
        self
    }

    /// Opens (or creates) the store.
    pub fn open(self) -> Result<Store> {
        Store::open_with(self)
    }
}
