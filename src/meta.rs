//! The `meta` keyspace at open: the magic bytes and the format version, checked (or, in a
//! fresh engine, written) before anything else is read.

use std::path::Path;

use crate::backend::{Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::keys::{self, Keyspace};

fn not_a_store(path: &Path, reason: &str) -> Error {
    Error::NotAStore {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

/// [`check_with`] for any store but a migration's target (the engine tests).
#[cfg(test)]
pub(crate) fn check(engine: &dyn Engine, path: &Path, must_exist: bool) -> Result<bool> {
    check_with(engine, path, must_exist, false)
}

/// Checks (or, in a fresh engine, writes) the magic and format version. Returns whether it
/// created the store. The engine has already refused a directory that holds another
/// program's data. With `migrating` (`jidstore migrate`'s target), a store it creates gets the
/// [`keys::META_MIGRATING`] marker in the same batch as its magic bytes, and a store that
/// holds the marker opens. Without it, a store holding the marker is refused: an
/// interrupted migration never passes for a complete store.
pub(crate) fn check_with(
    engine: &dyn Engine,
    path: &Path,
    must_exist: bool,
    migrating: bool,
) -> Result<bool> {
    let format = || keys::u64_value(u64::from(keys::FORMAT_VERSION));
    match engine.get(Keyspace::Meta, keys::META_MAGIC)? {
        Some(magic) if magic.as_slice() == keys::MAGIC => {
            if !migrating && engine.get(Keyspace::Meta, keys::META_MIGRATING)?.is_some() {
                return Err(not_a_store(
                    path,
                    "it holds an incomplete migration (`jidstore migrate` was interrupted); \
                     run the same migrate again, which starts the copy over",
                ));
            }
            let raw = engine
                .get(Keyspace::Meta, keys::META_FORMAT)?
                .ok_or_else(|| not_a_store(path, "format version missing"))?;
            let found = keys::read_u64_value(Keyspace::Meta, keys::META_FORMAT, &raw)?;
            let found = u32::try_from(found).unwrap_or(u32::MAX);
            if !(keys::OLDEST_FORMAT..=keys::FORMAT_VERSION).contains(&found) {
                return Err(Error::UnsupportedVersion {
                    found,
                    supported: keys::FORMAT_VERSION,
                });
            }
            if found < keys::FORMAT_VERSION {
                // Every older format is a subset of this one: only the version changes, so
                // an older build refuses the store once it may hold what that build cannot
                // read.
                engine.insert(Keyspace::Meta, keys::META_FORMAT, &format())?;
                engine.flush()?;
            }
            Ok(false)
        }
        Some(_) => Err(not_a_store(path, "wrong magic bytes")),
        None => {
            if must_exist {
                return Err(not_a_store(path, "no store has been created here"));
            }
            let mut batch = WriteBatch::default();
            batch.insert(
                Keyspace::Meta,
                keys::META_MAGIC.to_vec(),
                keys::MAGIC.to_vec(),
            );
            batch.insert(
                Keyspace::Meta,
                keys::META_FORMAT.to_vec(),
                format().to_vec(),
            );
            if migrating {
                batch.insert(Keyspace::Meta, keys::META_MIGRATING.to_vec(), Vec::new());
            }
            engine.apply(&batch)?;
            engine.flush()?;
            Ok(true)
        }
    }
}
