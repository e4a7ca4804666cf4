//! Store verification: every entry of every keyspace decoded and cross-checked.
//!
//! [`verify`] reads the whole store once: each keyspace is walked once. Each entry's key must
//! parse as its keyspace's layout (see `src/keys.rs`) and its value must decode as the record
//! type stored there. In the same pass, each data class's `Links` checker checks the links
//! between keyspaces both ways (with point lookups, never a second walk): every index entry
//! names a record and every record has its index entry; imported message ids name a message
//! with that id; pubsub items, subscriptions and affiliations belong to an existing node; 1-1
//! archive records belong to an account's archive or to one queued for sweeping.
//!
//! Problems are collected, never fatal: one damaged entry does not hide the next. Only a
//! storage error (sled failing to read) stops the scan. Run it on a quiescent store: a write
//! racing the scan can make a record and its index look out of step.

use std::fmt;

use crate::codec;
use crate::error::{Error, Result};
use crate::ext;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// One damaged or inconsistent entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The keyspace holding the entry.
    pub keyspace: &'static str,
    /// The entry's key, escaped with [`keys::escape_key`].
    pub key: String,
    /// What is wrong with it.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.keyspace, self.key, self.what)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Entries read over all keyspaces.
    pub entries: u64,
    /// Entries per keyspace, in [`Keyspace::ALL`] order.
    pub keyspaces: Vec<(&'static str, u64)>,
    /// Every problem found, in the order found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verified {} entries in {} keyspaces: ",
            self.entries,
            self.keyspaces.len()
        )?;
        if self.is_clean() {
            return writeln!(f, "clean");
        }
        writeln!(f, "{} problem(s)", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Collects problems while the checks run.
#[derive(Default)]
pub(crate) struct Findings {
    problems: Vec<Problem>,
}

impl Findings {
    /// Records a problem with the entry `key` of `ks`.
    pub(crate) fn add(&mut self, ks: Keyspace, key: &[u8], what: impl Into<String>) {
        self.problems.push(Problem {
            keyspace: ks.name(),
            key: keys::escape_key(key),
            what: what.into(),
        });
    }

    /// Checks that a record's index entry exists; reports `missing index entry in <index>` at
    /// the record otherwise. `record` and `index` are (keyspace, key).
    pub(crate) fn require_index(
        &mut self,
        store: &Store,
        record: (Keyspace, &[u8]),
        index: (Keyspace, &[u8]),
    ) -> Result<()> {
        if !store.tree(index.0).contains_key(index.1)? {
            self.add(
                record.0,
                record.1,
                format!("missing index entry in {}", index.0.name()),
            );
        }
        Ok(())
    }

    /// Checks that the record an index entry names exists and, when it decodes, that `agrees`
    /// holds for it. Reports "dangling index entry: no record in ..." or `mismatch` at the
    /// index entry. `index` and `record` are (keyspace, key).
    pub(crate) fn check_target<T: serde::de::DeserializeOwned>(
        &mut self,
        store: &Store,
        index: (Keyspace, &[u8]),
        record: (Keyspace, &[u8]),
        agrees: impl FnOnce(&T) -> bool,
        mismatch: &str,
    ) -> Result<()> {
        match store.tree(record.0).get(record.1)? {
            None => self.add(
                index.0,
                index.1,
                format!("dangling index entry: no record in {}", record.0.name()),
            ),
            Some(v) => {
                if codec::decode::<T>(record.0, record.1, &v).is_ok_and(|r| !agrees(&r)) {
                    self.add(index.0, index.1, mismatch);
                }
            }
        }
        Ok(())
    }

    /// Turns a [`Error::Corrupt`] into a problem; any other error is passed up.
    pub(crate) fn check(&mut self, res: Result<()>) -> Result<()> {
        match res {
            Err(Error::Corrupt {
                keyspace,
                key,
                reason,
            }) => {
                self.problems.push(Problem {
                    keyspace,
                    key,
                    what: reason.to_owned(),
                });
                Ok(())
            }
            other => other,
        }
    }
}

/// Reads every entry of every keyspace and reports what is damaged or inconsistent.
///
/// ```
/// let store = jidstore::Store::temporary()?;
/// let alice = jidstore::BareJid::parse("alice@example.org")?;
/// store.accounts().create(&alice, "secret")?;
/// let report = jidstore::verify(&store)?;
/// assert!(report.is_clean(), "{report}");
/// # Ok::<(), jidstore::Error>(())
/// ```
pub fn verify(store: &Store) -> Result<VerifyReport> {
    let mut found = Findings::default();
    let mut links: Vec<Box<dyn Links>> = ext::EXTENSIONS.iter().filter_map(|c| c.links()).collect();
    let _progress = crate::progress::Phase::start("verify", "entries", None);
    // The system keyspaces first: the link checks learn the sweep queue before they meet
    // the archives it names (accounts come before the archives in `Keyspace::ALL`).
    let order = ext::SYSTEM_KEYSPACES.iter().chain(
        Keyspace::ALL
            .iter()
            .filter(|ks| !ext::SYSTEM_KEYSPACES.contains(ks)),
    );
    let mut counts = std::collections::BTreeMap::new();
    for ks in order {
        let mut n = 0u64;
        for entry in store.tree(*ks) {
            let (key, value) = entry?;
            n += 1;
            crate::progress::advance(1);
            found.check(check_entry(*ks, &key, &value))?;
            for l in &mut links {
                let e = Entry {
                    ks: *ks,
                    key: &key,
                    value: &value,
                };
                l.entry(store, e, &mut found)?;
            }
        }
        counts.insert(*ks, n);
    }
    let keyspaces: Vec<_> = Keyspace::ALL
        .iter()
        .map(|ks| (ks.name(), counts.get(ks).copied().unwrap_or(0)))
        .collect();
    Ok(VerifyReport {
        entries: keyspaces.iter().map(|k| k.1).sum(),
        keyspaces,
        problems: found.problems,
    })
}

/// A data class's check of the links between entries (see `Extension::links`). It sees
/// every entry of every keyspace once, in one pass: the system keyspaces first, then the
/// others in [`Keyspace::ALL`] order. Entries whose key or value does not decode were
/// reported by the entry check and are skipped. It may look up single keys of any
/// keyspace, and keeps what later keyspaces need (the accounts' archive ids, the sweep queue).
pub(crate) trait Links {
    /// Checks one entry's links, reporting into `found`.
    fn entry(&mut self, store: &Store, e: Entry<'_>, found: &mut Findings) -> Result<()>;
}

/// One entry of the pass: its keyspace, key and value.
#[derive(Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub(crate) ks: Keyspace,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// Checks one entry's key layout and value type (decoding the value as the record type its
/// keyspace holds): the system keyspaces here, every other through the data class that owns
/// it (the registry test checks that every keyspace has one). Public for the `value_decode`
/// fuzz target only.
#[doc(hidden)]
pub fn check_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    match ks {
        Keyspace::Meta => check_meta(key, value),
        Keyspace::Audit => crate::gdpr::audit::verify_entry(key, value),
        Keyspace::Sweep => match keys::read_sweep_key(key)? {
            keys::SweepKey::Archive(_) => codec::decode::<()>(ks, key, value),
            keys::SweepKey::Range(..) | keys::SweepKey::Redact(_) => {
                codec::decode::<String>(ks, key, value).map(drop)
            }
        },
        _ => match ext::owner_of(ks) {
            Some(class) => class.verify_entry(ks, key, value),
            None => Err(keys::corrupt(ks, key, "keyspace claimed by no data class")),
        },
    }
}

fn check_meta(key: &[u8], value: &[u8]) -> Result<()> {
    if key == keys::META_MAGIC {
        if value == keys::MAGIC {
            return Ok(());
        }
        return Err(keys::corrupt(Keyspace::Meta, key, "wrong magic bytes"));
    }
    if key == keys::META_FORMAT || key == keys::META_FLUSHED {
        return keys::read_u64_value(Keyspace::Meta, key, value).map(|_| ());
    }
    if key == keys::META_MIGRATING {
        // Only seen by `migrate`'s own check of its copy: every other open refuses it.
        return Ok(());
    }
    if key.starts_with(crate::backend::UNDO_PREFIX) {
        // A live append in flight (a crash leaves none: opening rolls it back).
        return crate::backend::check_undo(key, value);
    }
    Err(keys::corrupt(Keyspace::Meta, key, "unknown meta key"))
}
