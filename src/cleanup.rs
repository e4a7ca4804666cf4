//! Process-wide cleanup on SIGINT, SIGTERM and SIGHUP: temporary files and directories that
//! hold personal data (an export's `.tmp` file, a forensic working copy, a compaction's
//! scratch store) are removed before the process exits.
//!
//! Code that creates a temporary path [`register`]s it *before* creating it and keeps the
//! returned [`Registered`] guard while the path is temporary. Dropping the guard only forgets
//! the path: the code that created it deletes it on failure, as before. The rename that moves
//! it into place runs inside [`Registered::commit`], which holds signal cleanup off meanwhile,
//! so a signal never removes half of a directory that is then renamed into place, and never
//! removes a result.
//!
//! A binary calls [`install`] once at start: a thread then waits for the signals and, when one
//! comes, removes every registered path and exits with 128 + the signal number (130 for
//! SIGINT, 143 for SIGTERM, 129 for SIGHUP). The registry lock stays held until the exit, so
//! no guard can be dropped (and its path renamed into place) in between. A server that
//! handles signals itself calls [`remove_registered`] from its own handler instead. The
//! registry holds paths only (random temporary names next to the user's chosen output), and
//! nothing is logged.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let tmp = dir.path().join(".scratch");
//! let guard = jidstore::cleanup::register(&tmp); // before creating it
//! std::fs::create_dir(&tmp)?;
//! // ... a signal now removes `tmp` and exits ...
//! guard.commit(|| std::fs::rename(&tmp, dir.path().join("done")))?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static REGISTRY: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A registered temporary path; dropping it unregisters the path (without deleting it).
#[derive(Debug)]
#[must_use = "the path is unregistered when the guard is dropped"]
pub struct Registered(u64);

impl Registered {
    /// Runs `f`, the renames that move the path into place, with signal cleanup held off
    /// (a signal meanwhile waits for `f`); on `Ok` the path is forgotten, on `Err` it stays
    /// registered. `f` must not register or drop other guards (the registry lock is held).
    pub fn commit<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut paths = registry();
        let out = f()?;
        paths.remove(&self.0);
        Ok(out)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry().remove(&self.0);
    }
}

fn registry() -> MutexGuard<'static, BTreeMap<u64, PathBuf>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `path` (a file or a directory) for removal if the process is stopped by a
/// signal while the guard lives.
pub fn register(path: impl AsRef<Path>) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().insert(id, path.as_ref().to_path_buf());
    Registered(id)
}

/// Removes every registered path now and forgets them (for a server's own signal handler).
pub fn remove_registered() {
    let mut paths = registry();
    remove_all(&paths);
    paths.clear();
}

fn remove_all(paths: &BTreeMap<u64, PathBuf>) {
    for path in paths.values() {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                // sled's threads may still add a file while the tree is removed.
                for _ in 0..20 {
                    match fs::remove_dir_all(path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {}
                        _ => break,
                    }
                }
            }
            Ok(_) => {
                let _ = fs::remove_file(path);
            }
            Err(_) => {}
        }
    }
}

/// Starts the thread that, on SIGINT, SIGTERM or SIGHUP, removes every registered path and
/// exits with 128 + the signal number. Call it once, at the start of a program.
pub fn install() -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("jidstore-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Held until the exit: no guard is dropped, no path renamed into place, after
                // the removal.
                let paths = registry();
                remove_all(&paths);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// Test hook: when `JIDSTORE_TEST_PAUSE` names `point`, prints `jidstore: paused at <point>`
/// on stderr and waits for a signal, so a test can stop the process at a known moment.
pub(crate) fn test_pause(point: &str) {
    if std::env::var_os("JIDSTORE_TEST_PAUSE").is_some_and(|p| p == point) {
        eprintln!("jidstore: paused at {point}");
        loop {
            std::thread::park();
        }
    }
}
