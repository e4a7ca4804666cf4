//! The audit log: one entry per retrieval, erasure, import and compaction, kept in the
//! store's `audit` keyspace, which no erasure touches. Actions that failed before doing
//! anything (bad input, an unknown subject) add none: an error writes nothing.
//!
//! An entry holds no personal data: the time, the action, counts, the outcome, and the
//! subject (if any) only as a keyed hash, HMAC-SHA-256 of its normalised bare JID under a
//! random 32-byte key kept in the same keyspace. Whoever holds the store can check whether
//! an entry concerns a JID they name ([`subject_hash`]), but cannot read a JID out of the
//! log. Copies (`backup`, `compact`) carry the log and its key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ext::stored_enum::stored_enum;
use crate::ext::stored_time::StoredTimestamp;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// A GDPR export (`retrieve_personal_data`).
    Retrieve,
    /// An erasure (`unregister`).
    Erase,
    /// A XEP-0227 import.
    Import,
    /// A compaction (`compact`, `unregister --purge`).
    Compact,
    /// Retention applied (`expire`); no subject.
    Expire,
    /// Archived messages deleted on request (`mam delete`).
    Delete,
    /// A backup restored (`restore`), with the erasures re-applied.
    Restore,
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Done.
    Ok,
    /// An erasure that found only data erasure keeps.
    NothingErased,
    /// Done in part: an import in which some users failed, an erasure committed whose
    /// sweep failed (the reason is not kept: error messages name JIDs and paths).
    Failed,
}

impl Action {
    /// The name printed by `jidstore audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retrieve => "retrieve",
            Action::Erase => "erase",
            Action::Import => "import",
            Action::Compact => "compact",
            Action::Expire => "expire",
            Action::Delete => "delete",
            Action::Restore => "restore",
        }
    }
}

impl Outcome {
    /// The name printed by `jidstore audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NothingErased => "nothing-erased",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// When it was recorded.
    pub time: Timestamp,
    /// What was done.
    pub action: Action,
    /// The subject as a keyed hash (lower-case hex), if the action had one.
    pub subject: Option<String>,
    /// Counts (rows exported or removed, users imported, sizes), by name.
    pub counts: BTreeMap<String, u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// An [`Entry`] as stored (value of an `audit` entry key): the on-disk layout, the same
/// field and variant order the public types had when they were written directly. Field order
/// and variant order change only with a format version bump.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    time: StoredTimestamp,
    action: StoredAction,
    subject: Option<String>,
    counts: BTreeMap<String, u64>,
    outcome: StoredOutcome,
}

stored_enum! {
    /// The on-disk form of an [`Action`]: the variant index is written. Change only with a
    /// format version bump.
    enum StoredAction mirrors Action { Retrieve, Erase, Import, Compact, Expire, Delete, Restore }
}

stored_enum! {
    /// The on-disk form of an [`Outcome`]: the variant index is written. Change only with a
    /// format version bump.
    enum StoredOutcome mirrors Outcome { Ok, NothingErased, Failed }
}

impl From<StoredEntry> for Entry {
    fn from(e: StoredEntry) -> Self {
        Entry {
            time: e.time.into(),
            action: e.action.into(),
            subject: e.subject,
            counts: e.counts,
            outcome: e.outcome.into(),
        }
    }
}

/// Serialises the creation of the hash key (one process holds a store at a time).
static SECRET: Mutex<()> = Mutex::new(());

/// The store's audit hash key, created on first use.
fn secret(store: &Store) -> Result<Vec<u8>> {
    let _once = SECRET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(key) = store.get::<Vec<u8>>(Keyspace::Audit, keys::AUDIT_SECRET)? {
        return Ok(key);
    }
    let mut key = vec![0u8; 32];
    rand::fill(&mut key[..]);
    store.put(Keyspace::Audit, keys::AUDIT_SECRET, &key)?;
    Ok(key)
}

/// The keyed hash that stands for `subject` in this store's audit log (lower-case hex of
/// HMAC-SHA-256 of the normalised bare JID): look a JID up in the log with it.
pub fn subject_hash(store: &Store, subject: &BareJid) -> Result<String> {
    keyed_hex(&secret(store)?, b"", subject)
}

/// The keyed hash of `subject` under this store's key with `tag` prepended to the JID
/// (domain separation: a tagged hash cannot be matched against [`subject_hash`]). Creates
/// the key when `create`, else `Ok(None)` when the store has none yet (a dry run writes
/// nothing).
pub(crate) fn tagged_hash(
    store: &Store,
    tag: &[u8],
    subject: &BareJid,
    create: bool,
) -> Result<Option<String>> {
    let key = if create {
        Some(secret(store)?)
    } else {
        store.get::<Vec<u8>>(Keyspace::Audit, keys::AUDIT_SECRET)?
    };
    key.map(|k| keyed_hex(&k, tag, subject)).transpose()
}

/// Lower-case hex of HMAC-SHA-256 under `key` of `tag` then the JID.
fn keyed_hex(key: &[u8], tag: &[u8], subject: &BareJid) -> Result<String> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| Error::InvalidInput("audit hash key of a wrong length".into()))?;
    mac.update(tag);
    mac.update(subject.as_str().as_bytes());
    let mut hex = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

/// Appends an entry (now) and flushes it.
pub fn record(
    store: &Store,
    action: Action,
    subject: Option<&BareJid>,
    counts: &[(&str, u64)],
    outcome: Outcome,
) -> Result<()> {
    record_at(store, Timestamp::now(), action, subject, counts, outcome)
}

/// [`record`] at a given time (the golden-byte tests pin an entry of a fixed time).
pub(crate) fn record_at(
    store: &Store,
    time: Timestamp,
    action: Action,
    subject: Option<&BareJid>,
    counts: &[(&str, u64)],
    outcome: Outcome,
) -> Result<()> {
    let entry = StoredEntry {
        time: time.into(),
        action: action.into(),
        subject: subject.map(|s| subject_hash(store, s)).transpose()?,
        counts: counts.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
        outcome: outcome.into(),
    };
    let seq = store.generate_id()?;
    store.put(Keyspace::Audit, &keys::audit_entry(seq), &entry)?;
    store.flush()
}

/// Appends the entry of a committed erasure (its receipt's counts, removed and kept rows;
/// outcome `failed` when its sweep failed, `nothing-erased` when only kept data was held):
/// what every caller of [`super::remove`] that keeps the log records (the CLI's
/// `unregister`, the Prosody driver's purge).
pub fn record_erasure(store: &Store, subject: &BareJid, receipt: &super::Receipt) -> Result<()> {
    let outcome = if receipt.sweep_error.is_some() {
        Outcome::Failed
    } else if receipt.total_removed() > 0 {
        Outcome::Ok
    } else {
        Outcome::NothingErased
    };
    let kept = receipt.kept.iter().filter_map(|k| k.rows).sum();
    let mut counts = vec![("removed", receipt.total_removed()), ("kept", kept)];
    // `unregister --redact-kept`: the kept rows moved to the pseudonym.
    if let Some(p) = &receipt.pseudonymised {
        counts.push(("pseudonymised", p.total()));
    }
    record(store, Action::Erase, Some(subject), &counts, outcome)
}

/// The entries recorded at or after `since` (all without it), oldest first, read lazily.
pub fn entries(
    store: &Store,
    since: Option<Timestamp>,
) -> impl Iterator<Item = Result<Entry>> + use<> {
    store
        .scan::<StoredEntry>(Keyspace::Audit, &[keys::AUDIT_ENTRY])
        .filter_map(move |e| match e {
            Ok((_, entry)) if since.is_some_and(|t| Timestamp::from(entry.time) < t) => None,
            Ok((_, entry)) => Some(Ok(Entry::from(entry))),
            Err(e) => Some(Err(e)),
        })
}

/// Checks one stored entry of the `audit` keyspace (for [`crate::verify()`]).
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    if key.first() == Some(&keys::AUDIT_LEDGER) {
        return super::ledger::verify_entry(key, value);
    }
    if keys::read_audit_key(key)?.is_some() {
        return crate::codec::decode::<StoredEntry>(Keyspace::Audit, key, value).map(drop);
    }
    let secret: Vec<u8> = crate::codec::decode(Keyspace::Audit, key, value)?;
    if secret.len() == 32 {
        Ok(())
    } else {
        Err(keys::corrupt(
            Keyspace::Audit,
            key,
            "audit hash key of a wrong length",
        ))
    }
}
