//! Message archives (XEP-0313): 1-1 archives per account, group-chat archives per room.
//!
//! Messages are ordered by a store-wide sequence number, not by their timestamps, so archive
//! order survives clock skew and imports. A server-assigned id is 32 lowercase hex digits:
//! the sequence number followed by 64 random bits kept in the record, so ids sort in archive
//! order yet cannot be guessed. An imported id is kept as given and mapped to its sequence
//! number in the `*_ids` keyspace of the archive.
//!
//! Every archive has an index written with its records: by `with` (1-1: the other party's
//! bare JID; rooms: the occupant nick, plus the existing by-sender index). Each record also
//! holds its **archive time**, the message's timestamp or, if later, the archive time of the
//! message archived before it. Archive time never decreases in seq order, so a `start`/`end`
//! range is one seq range, found by binary search over the records ([`query`]): no time
//! index, two keys per 1-1 message.
//!
//! A 1-1 archive's `with` entries live in the records tree (`mam_pm`, tag `w` after the
//! archive id, records tag `m`), so a message and its index entry are one single-tree batch.
//!
//! **Durability.** [`Mam::append`] writes the record and its `with` entry in one atomic
//! batch of new keys (both end in the fresh seq: on sled, single-key writes under an undo
//! record, since a sled batch costs two waited log writes, issue 18; the record goes
//! first, so a `with` entry never names a missing record; with an imported id, a
//! transaction that also checks and maps the id). Appends to different archives run in
//! parallel (module `appenders`); [`MucArchive::append`] writes the record and its index entries in one sled
//! transaction. Both are atomic, and durable at the next background flush (every
//! `flush_every_ms`, 500 ms by default) or on [`Store::flush`]. [`Mam::append_bulk`] writes
//! each chunk of [`BULK_CHUNK`] messages (the id map batch and the batch of records and
//! `with` entries) in one transaction over the two trees: durable on the same terms, and a
//! crash leaves whole chunks only.
//!
//! **Blocks.** [`Mam::append_bulk`] stores records in blocks of consecutive messages and
//! `with` entries in blocks per peer, one sled key each (module `records`), since sled's
//! cost is per key: see README "On-disk format". Every reader takes blocks and single values
//! alike.

mod archive;
mod blocks;
pub(crate) mod cache;
mod gdpr;
mod id;
pub(crate) mod indexes;
pub mod query;
pub(crate) mod records;
mod redact;
mod room;
mod stored;
mod sweep;
mod trim;
mod types;
mod verify;

use std::collections::HashSet;

use crate::codec;
use crate::error::{Error, Result};
use crate::jid::{BareJid, Jid};
use crate::keys::{self, Keyspace};
use crate::store::{Batch, Store};
use crate::xml;

pub use query::{ArchiveEnd, Metadata, Page, PageFrom, Query};
pub use trim::{TRIM_CHUNK, Trim};
pub use types::{ArchivedMessage, ArchivedMucMessage, Direction, MucMessage, PmMessage};

pub(crate) use gdpr::Class;

use archive::{Archive, Pm, WithSource, archive_time, insert, last_archive_time, record, resolve};
use blocks::Packer;
use cache::archive_id;
use id::{StoredId, check_foreign_id, duplicate_id};
use stored::{StoredPm, peer, pm_entries, pm_message, pm_record, with_item};

/// Messages per chunk of [`Mam::append_bulk`]: one atomic batch (or transaction) per chunk.
pub const BULK_CHUNK: usize = 10_000;

/// The records keyspace of 1-1 archives (the key of their cached tails).
const A_PM: Keyspace = Keyspace::MamPm;

/// Handle on 1-1 archives; from [`Store::mam`].
pub struct Mam<'a> {
    store: &'a Store,
}

/// Handle on group-chat archives; from [`Store::muc`].
pub struct MucArchive<'a> {
    store: &'a Store,
}

impl Store {
    /// 1-1 message archives.
    pub fn mam(&self) -> Mam<'_> {
        Mam { store: self }
    }

    /// Group-chat (room) archives.
    pub fn muc(&self) -> MucArchive<'_> {
        MucArchive { store: self }
    }
}

impl Mam<'_> {
    /// The owner's archive id, read from the account (no cache: readers do not hold the
    /// writer lock the cache relies on).
    fn archive_of(&self, owner: &BareJid) -> Result<Option<u64>> {
        Ok(self
            .store
            .get::<crate::ext::accounts::StoredAccount>(Keyspace::Accounts, &keys::owner(owner))?
            .map(|a| a.archive))
    }

    /// Appends a message to the owner's archive (the owner needs an account) and returns its
    /// id. An imported id already present in the archive is refused.
    pub fn append(&self, owner: &BareJid, msg: &PmMessage) -> Result<String> {
        xml::check_element("stanza", &msg.stanza)?;
        if let Some(id) = &msg.id {
            check_foreign_id(id)?;
        }
        let _w = self.store.writer()?;
        let archive = archive_id(self.store, owner)?;
        let a = Pm(archive);
        // This archive's appends only: appends to other archives run in parallel.
        let tails = self.store.archive_appender_for(archive);
        let seq = self.store.generate_id()?;
        let cached = tails.tail(A_PM, &a.records_prefix());
        let at = archive_time(last_archive_time(self.store, &a, cached)?, msg.timestamp);
        let id = StoredId::new(msg.id.as_ref());
        let (stored, index) = pm_entries(archive, msg, id.clone(), seq, at);
        let public = if let StoredId::Native(_) = id {
            // Record and `with` entry share the tree: one atomic batch, no transaction (a
            // native id needs no duplicate check). Both keys end in the fresh seq, so the
            // batch is one of new keys (the cheap path on sled, issue 18); the record goes
            // first, so a reader that finds the `with` entry finds its record.
            let (_, with_key, with_value) = index;
            let mut batch = Batch::default();
            batch.insert(a.record_key(seq), codec::encode(&stored));
            batch.insert(with_key, with_value);
            self.store.apply_new_batch(Keyspace::MamPm, batch)?;
            id.public(seq)
        } else {
            insert(self.store, &a, &stored, &id, &[index], seq)?
        };
        tails.set_tail(A_PM, a.records_prefix(), Some(at));
        Ok(public)
    }

    /// Appends many messages to the owner's archive, for imports; returns how many were
    /// appended. Messages keep the iterator's order. Each chunk of [`BULK_CHUNK`] messages is
    /// checked first (stanza, ids, duplicates) and then written as one atomic batch (a
    /// transaction over records and id map when the chunk carries imported ids; no
    /// transaction per message): a crash leaves whole chunks only; see the module docs for
    /// durability. Each chunk checks the free-space reserve ([`Error::LowSpace`]). On an
    /// error the chunks before the failing one stay archived.
    pub fn append_bulk(
        &self,
        owner: &BareJid,
        messages: impl IntoIterator<Item = PmMessage>,
    ) -> Result<u64> {
        let mut messages = messages.into_iter();
        let mut total = 0u64;
        loop {
            let chunk: Vec<PmMessage> = messages.by_ref().take(BULK_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(total);
            }
            total += self.append_chunk(owner, &chunk)?;
        }
    }

    fn append_chunk(&self, owner: &BareJid, chunk: &[PmMessage]) -> Result<u64> {
        let mut seen = HashSet::new();
        for msg in chunk {
            xml::check_element("stanza", &msg.stanza)?;
            if let Some(id) = &msg.id {
                check_foreign_id(id)?;
                if !seen.insert(id.as_str()) {
                    return Err(duplicate_id());
                }
            }
        }
        let _w = self.store.writer()?;
        let logical: usize = chunk.iter().map(|m| m.stanza.len() + 256).sum();
        self.store.check_space_for(logical as u64)?;
        let archive = archive_id(self.store, owner)?;
        let a = Pm(archive);
        for id in &seen {
            if resolve(self.store, &a, id)?.is_some() {
                return Err(duplicate_id());
            }
        }
        let mut tails = self.store.archive_appender();
        let mut prev = last_archive_time(self.store, &a, tails.get(A_PM, &a.records_prefix()))?;
        let (mut ids, mut records) = (Batch::default(), Batch::default());
        let mut packer = Packer::new(archive);
        for msg in chunk {
            let seq = self.store.generate_id()?;
            let at = archive_time(prev, msg.timestamp);
            prev = Some(at);
            let id = StoredId::new(msg.id.as_ref());
            if let StoredId::Foreign(f) = &id {
                ids.insert(a.id_key(f), keys::u64_value(seq));
            }
            packer.push(seq, pm_record(msg, id, at), &mut records);
        }
        packer.finish(&mut records);
        // A crash leaves the whole chunk or none of it: without imported ids the chunk is one
        // single-tree batch (atomic on its own), with them one transaction over both trees
        // (separate batches could leave ids mapped to no record, which `verify` reports;
        // found by the bulk-ingest crash test). The cached tail is forgotten first: should
        // the write fail, the next append reads the newest record again.
        tails.forget(A_PM, &a.records_prefix());
        if seen.is_empty() {
            self.store.apply_batch(Keyspace::MamPm, records)?;
        } else {
            self.store
                .transaction(&[Keyspace::MamPmIds, Keyspace::MamPm], |tx| {
                    tx.apply_batch(Keyspace::MamPmIds, &ids)?;
                    tx.apply_batch(Keyspace::MamPm, &records)?;
                    Ok(())
                })?;
        }
        tails.set(A_PM, a.records_prefix(), prev);
        Ok(chunk.len() as u64)
    }

    /// One page of the owner's archive (XEP-0313 query with XEP-0059 paging); see
    /// [`Query`]. An id in any id field that names no message of this archive is
    /// [`Error::NotFound`].
    pub fn query(&self, owner: &BareJid, q: &Query) -> Result<Page<ArchivedMessage>> {
        let archive = self
            .archive_of(owner)?
            .ok_or_else(|| Error::NoAccount(owner.to_string()))?;
        query::run(self.store, &Pm(archive), q, pm_message)
    }

    /// First and last message of the owner's archive (XEP-0313 metadata).
    pub fn metadata(&self, owner: &BareJid) -> Result<Metadata> {
        let archive = self
            .archive_of(owner)?
            .ok_or_else(|| Error::NoAccount(owner.to_string()))?;
        query::metadata(self.store, &Pm(archive))
    }

    /// One message by id.
    pub fn get(&self, owner: &BareJid, id: &str) -> Result<Option<ArchivedMessage>> {
        let Some(archive) = self.archive_of(owner)? else {
            return Ok(None);
        };
        Ok(resolve(self.store, &Pm(archive), id)?.map(|(seq, _, s)| pm_message(seq, s)))
    }

    /// The owner's archive in archive order, read lazily (both ends).
    #[expect(
        clippy::iter_not_returning_iterator,
        reason = "the account lookup can fail before iteration starts"
    )]
    pub fn iter(
        &self,
        owner: &BareJid,
    ) -> Result<impl DoubleEndedIterator<Item = Result<ArchivedMessage>> + use<>> {
        let archive = self.archive_of(owner)?;
        let scan = archive.map(|a| {
            records::Scan::<StoredPm>::new(self.store, Keyspace::MamPm, &keys::archive_records(a))
        });
        Ok(scan
            .into_iter()
            .flatten()
            .map(|entry| entry.map(|(seq, s)| pm_message(seq, s))))
    }

    /// The whole archive in archive order.
    pub fn list(&self, owner: &BareJid) -> Result<Vec<ArchivedMessage>> {
        self.iter(owner)?.collect()
    }

    /// Number of messages in the owner's archive.
    pub fn count(&self, owner: &BareJid) -> Result<u64> {
        let Some(archive) = self.archive_of(owner)? else {
            return Ok(0);
        };
        // A whole-archive scan: short sled ranges, values checked but not decoded.
        let (ks, mut n) = (Keyspace::MamPm, 0u64);
        records::for_each_entry(self.store, ks, &keys::archive_records(archive), |k, v| {
            n += codec::entries(ks, k, v, keys::trailing_seq(ks, k)?)?.len() as u64;
            Ok(true)
        })?;
        Ok(n)
    }

    /// Removes one message; returns whether it was there.
    pub fn remove(&self, owner: &BareJid, id: &str) -> Result<bool> {
        let _w = self.store.remover();
        let Some(archive) = self.archive_of(owner)? else {
            return Ok(false);
        };
        let a = Pm(archive);
        let Some((seq, foreign, stored)) = resolve(self.store, &a, id)? else {
            return Ok(false);
        };
        let id_key = foreign.then(|| a.id_key(id));
        let with = Jid::from_stored(peer(stored.direction, &stored.from, &stored.to));
        let spaces = [Keyspace::MamPm, Keyspace::MamPmIds];
        // The newest archive time may change: forget it, under the appenders' lock (which
        // also keeps appends away while the entries holding the message are rewritten).
        let mut tails = self.store.archive_appender();
        tails.forget(A_PM, &a.records_prefix());
        let with_prefix = keys::archive_with(archive, with.to_bare().as_str());
        let mut rewrites = Vec::new();
        for prefix in [a.records_prefix(), with_prefix] {
            // The record and its `with` entry, alone or in blocks: the entry without them.
            let tree = self.store.tree(Keyspace::MamPm);
            if let Some((k, v)) = records::entry_at_or_before(tree, &prefix, seq)? {
                let e = codec::entries(
                    Keyspace::MamPm,
                    &k,
                    &v,
                    keys::trailing_seq(Keyspace::MamPm, &k)?,
                )?;
                if e.position(seq).is_some() {
                    rewrites.push((k.to_vec(), e.without(seq)));
                }
            }
        }
        self.store.transaction(&spaces, |tx| {
            for (k, rest) in &rewrites {
                match rest {
                    Some(v) => tx.put_raw(Keyspace::MamPm, k, v)?,
                    None => tx.remove(Keyspace::MamPm, k)?,
                }
            }
            if let Some(k) = &id_key {
                tx.remove(Keyspace::MamPmIds, k)?;
            }
            Ok(())
        })?;
        Ok(true)
    }
}
