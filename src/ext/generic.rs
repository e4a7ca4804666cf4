//! Generic per-owner records: what an embedding server stores for which jidstore has no class
//! of its own (the Prosody driver puts each store without a class here), so that retrieval
//! and erasure cover it like any other class and no write is refused as "unsupported".
//!
//! Two kinds, both keyed by owner first and then by the server's store name:
//! - key-value: one opaque text value per owner and store (`generic_kv`);
//! - archives: sequences of items, each with an id, a time, an optional `with` JID and an
//!   opaque text value (`generic_archive`), queried like Prosody's archive stores.
//!
//! The owner is a bare JID: `user@host` for a user's data, or the host alone for data a
//! server keeps for the host itself. The value text is whatever the embedding server
//! serialises (the Prosody driver writes Prosody's own Lua-literal serialisation for
//! key-value stores and the stanza's XML for archives); jidstore does not interpret it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ext::stored_time::StoredTimestamp;
use crate::ext::{Emit, Extension, RemovalPlan, Swept, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

#[derive(Serialize, Deserialize)]
struct StoredValue {
    value: String,
}

#[derive(Serialize, Deserialize)]
struct StoredItem {
    id: String,
    when: StoredTimestamp,
    with: Option<String>,
    value: String,
}

/// One archive item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's id, unique within its archive.
    pub id: String,
    /// When it was stored.
    pub when: Timestamp,
    /// The JID the item is with (the other party of a message), if any.
    pub with: Option<String>,
    /// The value text.
    pub value: String,
}

/// Selects archive items. Filters combine (all must match); `before`/`after` are item ids.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only the item with this id.
    pub id: Option<String>,
    /// Only items with one of these ids.
    pub ids: Option<Vec<String>>,
    /// Only items with this `with`.
    pub with: Option<String>,
    /// Only items stored at or after this time.
    pub start: Option<Timestamp>,
    /// Only items stored at or before this time.
    pub end: Option<Timestamp>,
    /// Items before this id in the result order (with `reverse`: the page starts after it).
    pub before: Option<String>,
    /// Items after this id in the result order (without `reverse`: the page starts after it).
    pub after: Option<String>,
    /// At most this many items.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// The answer to [`Generic::find`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The items, in the order asked for.
    pub items: Vec<Item>,
    /// How many items matched the filters (before `before`, `after` and `limit`).
    pub total: u64,
}

/// Selects archive items to delete (see [`Generic::delete`]).
#[derive(Debug, Clone, Default)]
pub struct Deletion {
    /// Only the item with this id.
    pub id: Option<String>,
    /// Only items with this `with`.
    pub with: Option<String>,
    /// Only items stored at or after this time.
    pub start: Option<Timestamp>,
    /// Only items stored at or before this time.
    pub end: Option<Timestamp>,
    /// Of the matching items, keep this many (the newest, or with `reverse` the oldest).
    pub truncate: Option<usize>,
    /// See `truncate`.
    pub reverse: bool,
}

/// Handle on the generic keyspaces; from [`Store::generic`].
pub struct Generic<'a> {
    store: &'a Store,
}

impl Store {
    /// Generic per-owner key-value records and archives (an embedding server's other stores).
    pub fn generic(&self) -> Generic<'_> {
        Generic { store: self }
    }
}

fn store_name(name: &str) -> Result<&str> {
    if name.is_empty() {
        return Err(Error::InvalidInput("store name must not be empty".into()));
    }
    keys::check_component("store name", name)
}

impl Generic<'_> {
    /// The value `owner` holds in key-value store `name`.
    pub fn get(&self, owner: &BareJid, name: &str) -> Result<Option<String>> {
        let key = keys::owner_and(owner, store_name(name)?);
        Ok(self
            .store
            .get::<StoredValue>(Keyspace::GenericKv, &key)?
            .map(|s| s.value))
    }

    /// Sets (or with `None` removes) the value `owner` holds in key-value store `name`.
    pub fn set(&self, owner: &BareJid, name: &str, value: Option<&str>) -> Result<()> {
        let key = keys::owner_and(owner, store_name(name)?);
        if let Some(value) = value {
            let _w = self.store.writer()?;
            self.store.put(
                Keyspace::GenericKv,
                &key,
                &StoredValue {
                    value: value.to_owned(),
                },
            )
        } else {
            let _w = self.store.remover();
            self.store.tree(Keyspace::GenericKv).remove(key)?;
            Ok(())
        }
    }

    /// The owners on `domain` (user JIDs only) holding a value in key-value store `name`,
    /// or with `archive` an item in archive `name`. A full scan of the keyspace.
    pub fn owners(&self, domain: &str, name: &str, archive: bool) -> Result<Vec<BareJid>> {
        let name = store_name(name)?;
        let ks = if archive {
            Keyspace::GenericArchive
        } else {
            Keyspace::GenericKv
        };
        let mut out: Vec<BareJid> = Vec::new();
        for key in self.store.scan_keys(ks, &[]) {
            let key = key?;
            let mut r = keys::KeyReader::new(ks, &key);
            let owner = r.part()?;
            let store = if archive { r.part()? } else { r.tail()? };
            if store != name {
                continue;
            }
            let jid = BareJid::from_stored(owner.to_owned());
            if jid.node().is_some()
                && jid.domain() == domain
                && out.last().is_none_or(|l| *l != jid)
            {
                out.push(jid);
            }
        }
        Ok(out)
    }

    /// Appends an item to archive `name` of `owner` and returns its id: `id` when given (an
    /// item with that id is replaced), else a new random one.
    pub fn append(
        &self,
        owner: &BareJid,
        name: &str,
        id: Option<&str>,
        when: Timestamp,
        with: Option<&str>,
        value: &str,
    ) -> Result<String> {
        let prefix = keys::owner_part(owner, store_name(name)?);
        let (id, given) = match id {
            Some(id) if !id.is_empty() => (id.to_owned(), true),
            _ => (uuid::Uuid::new_v4().simple().to_string(), false),
        };
        let _w = self.store.writer()?;
        let _seq = self.store.archive_appender();
        let tree = self.store.tree(Keyspace::GenericArchive);
        let mut replaced = None;
        // Only a caller's id can be taken (found by a scan of the archive); a new one cannot.
        if given {
            for entry in self
                .store
                .scan::<StoredItem>(Keyspace::GenericArchive, &prefix)
            {
                let (key, item) = entry?;
                if item.id == id {
                    replaced = Some(key);
                    break;
                }
            }
        }
        let key = if let Some(key) = replaced {
            key.to_vec()
        } else {
            let last = tree.scan_prefix(&prefix).next_back().transpose()?;
            let next = match last {
                Some((key, _)) => {
                    keys::trailing_seq(Keyspace::GenericArchive, &key)?.saturating_add(1)
                }
                None => 0,
            };
            keys::prefix_seq(&prefix, next)
        };
        self.store.put(
            Keyspace::GenericArchive,
            &key,
            &StoredItem {
                id: id.clone(),
                when: when.into(),
                with: with.map(str::to_owned),
                value: value.to_owned(),
            },
        )?;
        Ok(id)
    }

    /// Items of archive `name` of `owner` (oldest first), with their keys.
    fn items(&self, owner: &BareJid, name: &str) -> Result<Vec<(crate::backend::Bytes, Item)>> {
        let prefix = keys::owner_part(owner, store_name(name)?);
        self.store
            .scan::<StoredItem>(Keyspace::GenericArchive, &prefix)
            .map(|entry| {
                let (key, s) = entry?;
                Ok((
                    key,
                    Item {
                        id: s.id,
                        when: s.when.into(),
                        with: s.with,
                        value: s.value,
                    },
                ))
            })
            .collect()
    }

    /// Finds items of archive `name` of `owner`. `Ok(None)` when `before` or `after` names
    /// an item that is not among the matching ones (Prosody's item-not-found). Reads the
    /// owner's whole archive of that store: for small archives (message archives belong in
    /// [`crate::ext::mam`], where a page reads no more than the page).
    pub fn find(&self, owner: &BareJid, name: &str, q: &Query) -> Result<Option<Page>> {
        let mut items: Vec<Item> = self
            .items(owner, name)?
            .into_iter()
            .map(|(_, item)| item)
            .filter(|i| q.id.as_ref().is_none_or(|id| *id == i.id))
            .filter(|i| q.ids.as_ref().is_none_or(|ids| ids.contains(&i.id)))
            .filter(|i| q.with.is_none() || q.with == i.with)
            .filter(|i| q.start.is_none_or(|s| i.when >= s))
            .filter(|i| q.end.is_none_or(|e| i.when <= e))
            .collect();
        let total = items.len() as u64;
        if q.reverse {
            items.reverse();
        }
        let (from, to) = if q.reverse {
            (&q.before, &q.after)
        } else {
            (&q.after, &q.before)
        };
        let position = |id: &String| items.iter().position(|i| i.id == *id);
        let start = match from {
            Some(id) => match position(id) {
                Some(p) => p.saturating_add(1),
                None => return Ok(None),
            },
            None => 0,
        };
        let stop = match to {
            Some(id) => match position(id) {
                Some(p) => p,
                None => return Ok(None),
            },
            None => items.len(),
        };
        let stop = stop.max(start);
        let stop = q.limit.map_or(stop, |l| stop.min(start.saturating_add(l)));
        let items = items.drain(..).skip(start).take(stop - start).collect();
        Ok(Some(Page { items, total }))
    }

    /// Deletes the items of archive `name` of `owner` that `d` selects (all of them for a
    /// default `Deletion`); returns how many were deleted.
    pub fn delete(&self, owner: &BareJid, name: &str, d: &Deletion) -> Result<u64> {
        let _w = self.store.remover();
        let _seq = self.store.archive_appender();
        let mut matching: Vec<crate::backend::Bytes> = self
            .items(owner, name)?
            .into_iter()
            .filter(|(_, i)| d.id.as_ref().is_none_or(|id| *id == i.id))
            .filter(|(_, i)| d.with.is_none() || d.with == i.with)
            .filter(|(_, i)| d.start.is_none_or(|s| i.when >= s))
            .filter(|(_, i)| d.end.is_none_or(|e| i.when <= e))
            .map(|(key, _)| key)
            .collect();
        if let Some(keep) = d.truncate {
            let n = matching.len().saturating_sub(keep);
            if d.reverse {
                // Keep the oldest `keep`: delete the rest.
                matching.drain(..matching.len() - n);
            } else {
                matching.truncate(n);
            }
        }
        let mut batch = crate::store::Batch::default();
        for key in &matching {
            batch.remove(key.clone());
        }
        self.store.apply_batch(Keyspace::GenericArchive, batch)?;
        Ok(matching.len() as u64)
    }
}

/// Checks one stored entry: the key parses as this keyspace's layout and the value decodes
/// as its record type. Used by [`crate::verify()`].
pub(crate) fn verify_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    let mut r = keys::KeyReader::new(ks, key);
    r.part()?;
    if ks == Keyspace::GenericArchive {
        r.part()?;
        r.u64()?;
        r.end()?;
        crate::codec::decode::<StoredItem>(ks, key, value).map(|_| ())
    } else {
        if r.tail()?.is_empty() {
            return Err(keys::corrupt(ks, key, "empty store name"));
        }
        crate::codec::decode::<StoredValue>(ks, key, value).map(|_| ())
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[
    Table {
        file: "generic_kv.csv",
        title: "Other stored data",
        header: &["store", "value"],
    },
    Table {
        file: "generic_archive.csv",
        title: "Other archived data",
        header: &["store", "id", "timestamp", "with", "value"],
    },
];

impl Extension for Class {
    fn verify_entry(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        verify_entry(ks, key, value)
    }

    fn name(&self) -> &'static str {
        "generic"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::GenericKv, Keyspace::GenericArchive]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, table: usize, emit: Emit<'_>) -> Result<()> {
        let prefix = keys::owner(subject);
        if table == 0 {
            for entry in store.scan::<StoredValue>(Keyspace::GenericKv, &prefix) {
                let (key, s) = entry?;
                let mut r = keys::KeyReader::new(Keyspace::GenericKv, &key);
                r.part()?;
                emit(vec![r.tail()?.to_owned(), s.value])?;
            }
        } else {
            for entry in store.scan::<StoredItem>(Keyspace::GenericArchive, &prefix) {
                let (key, s) = entry?;
                let mut r = keys::KeyReader::new(Keyspace::GenericArchive, &key);
                r.part()?;
                let name = r.part()?.to_owned();
                emit(vec![
                    name,
                    s.id,
                    Timestamp::from(s.when).to_rfc3339(),
                    s.with.unwrap_or_default(),
                    s.value,
                ])?;
            }
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        // Both keyspaces are unbounded per owner (a Prosody archive lives here): one
        // tombstone each in the commit, deleted and counted by the sweep.
        let prefix = keys::owner(subject);
        plan.sweep_range(store, Keyspace::GenericKv, prefix.clone())?;
        plan.sweep_range(store, Keyspace::GenericArchive, prefix)
    }
    fn swept(&self, ks: Keyspace, _: &[u8], _: &[u8], _: &BareJid, out: &mut Swept) -> Result<()> {
        out.count(
            if ks == Keyspace::GenericKv {
                "generic_kv"
            } else {
                "generic_archive"
            },
            1,
        );
        Ok(())
    }
}
