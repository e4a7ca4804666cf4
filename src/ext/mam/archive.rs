//! What 1-1 and room archives share: where records, ids and indexes live (the [`Archive`]
//! trait), archive time, and the one-transaction insert and id lookup.

use serde::Serialize;

use crate::codec;
use crate::error::Result;
use crate::jid::{BareJid, Jid};
use crate::keys::{self, Keyspace};
use crate::store::{Store, abort};
use crate::time::Timestamp;

use super::id::{StoredId, duplicate_id, parse_native};
use super::records;
use super::stored::{StoredMuc, StoredPm, peer};

/// Where a `with` filter is answered from.
pub(super) enum WithSource {
    /// Every message matches.
    All,
    /// No message can match.
    Nothing,
    /// A seq-suffixed index range; with `exact`, only `with` entries naming that
    /// full JID.
    Index {
        keyspace: Keyspace,
        prefix: Vec<u8>,
        exact: Option<String>,
    },
}

/// Where the records, ids and indexes of one archive live.
pub(super) trait Archive {
    type Stored: serde::de::DeserializeOwned;
    const RECORDS: Keyspace;
    const IDS: Keyspace;
    fn record_key(&self, seq: u64) -> Vec<u8>;
    /// Prefix of the records; keys go on with the seq.
    fn records_prefix(&self) -> Vec<u8>;
    fn id_key(&self, id: &str) -> Vec<u8>;
    fn stored_id(s: &Self::Stored) -> &StoredId;
    fn timestamp(s: &Self::Stored) -> Timestamp;
    /// Archive time (micros) of a record.
    fn archive_time(s: &Self::Stored) -> i64;
    fn with_source(&self, with: &Jid) -> WithSource;
    fn matches_with(&self, s: &Self::Stored, with: &Jid) -> bool;
}

/// The archive time of the newest message of an archive (`None` when empty): `cached`
/// (what the appenders' tails hold for it, read under their lock), else read from the last
/// record.
#[expect(
    clippy::option_option,
    reason = "not cached / cached as empty / cached time"
)]
pub(super) fn last_archive_time<A: Archive>(
    store: &Store,
    a: &A,
    cached: Option<Option<i64>>,
) -> Result<Option<i64>> {
    let prefix = a.records_prefix();
    if let Some(at) = cached {
        return Ok(at);
    }
    match store.tree(A::RECORDS).scan_prefix(&prefix).next_back() {
        Some(kv) => {
            let (k, v) = kv?;
            let e = codec::entries(A::RECORDS, &k, &v, keys::trailing_seq(A::RECORDS, &k)?)?;
            let last = e.len().saturating_sub(1);
            Ok(Some(A::archive_time(&e.decode::<A::Stored>(last)?.1)))
        }
        None => Ok(None),
    }
}

/// Archive time of a message archived after one at `prev`: never earlier than `prev`.
pub(super) fn archive_time(prev: Option<i64>, ts: Timestamp) -> i64 {
    prev.map_or(ts.as_micros(), |p| p.max(ts.as_micros()))
}

pub(super) struct Pm(pub(super) u64);
pub(super) struct Room<'a>(pub(super) &'a BareJid);

impl Archive for Pm {
    type Stored = StoredPm;
    const RECORDS: Keyspace = Keyspace::MamPm;
    const IDS: Keyspace = Keyspace::MamPmIds;
    fn record_key(&self, seq: u64) -> Vec<u8> {
        keys::archive_seq(self.0, seq)
    }
    fn records_prefix(&self) -> Vec<u8> {
        keys::archive_records(self.0)
    }
    fn id_key(&self, id: &str) -> Vec<u8> {
        keys::archive_foreign_id(self.0, id)
    }
    fn stored_id(s: &StoredPm) -> &StoredId {
        &s.id
    }
    fn timestamp(s: &StoredPm) -> Timestamp {
        s.timestamp.into()
    }
    fn archive_time(s: &StoredPm) -> i64 {
        s.at
    }
    /// A bare JID matches the other party with any resource; a full JID matches exactly.
    fn with_source(&self, with: &Jid) -> WithSource {
        WithSource::Index {
            keyspace: Keyspace::MamPm,
            prefix: keys::archive_with(self.0, with.to_bare().as_str()),
            exact: with.resource().map(|_| with.as_str().to_owned()),
        }
    }
    fn matches_with(&self, s: &StoredPm, with: &Jid) -> bool {
        let p = Jid::from_stored(peer(s.direction, &s.from, &s.to));
        if with.resource().is_some() {
            p == *with
        } else {
            p.to_bare().as_str() == with.as_str()
        }
    }
}

impl Archive for Room<'_> {
    type Stored = StoredMuc;
    const RECORDS: Keyspace = Keyspace::MamMuc;
    const IDS: Keyspace = Keyspace::MamMucIds;
    fn record_key(&self, seq: u64) -> Vec<u8> {
        keys::room_seq(self.0.as_str(), seq)
    }
    fn records_prefix(&self) -> Vec<u8> {
        keys::owner(self.0)
    }
    fn id_key(&self, id: &str) -> Vec<u8> {
        keys::owner_and(self.0, id)
    }
    fn stored_id(s: &StoredMuc) -> &StoredId {
        &s.id
    }
    fn timestamp(s: &StoredMuc) -> Timestamp {
        s.timestamp.into()
    }
    fn archive_time(s: &StoredMuc) -> i64 {
        s.at
    }
    /// `room@service/nick` matches what that occupant nick sent; the bare room JID matches
    /// everything; another bare JID matches what that real JID sent (the by-sender index);
    /// any other full JID matches nothing.
    fn with_source(&self, with: &Jid) -> WithSource {
        let bare = with.to_bare();
        match with.resource() {
            Some(nick) if bare == *self.0 => WithSource::Index {
                keyspace: Keyspace::MamMucNick,
                prefix: keys::room_nick(self.0.as_str(), nick),
                exact: None,
            },
            Some(_) => WithSource::Nothing,
            None if bare == *self.0 => WithSource::All,
            None => WithSource::Index {
                keyspace: Keyspace::MamMucBySender,
                prefix: keys::pair(bare.as_str(), self.0.as_str()),
                exact: None,
            },
        }
    }
    fn matches_with(&self, s: &StoredMuc, with: &Jid) -> bool {
        let bare = with.to_bare();
        match with.resource() {
            Some(nick) => bare == *self.0 && s.nick == nick,
            None => bare == *self.0 || s.sender == bare.as_str(),
        }
    }
}

/// Finds the message named `id`: its seq, whether the id is imported, and the record.
pub(super) fn resolve<A: Archive>(
    store: &Store,
    a: &A,
    id: &str,
) -> Result<Option<(u64, bool, A::Stored)>> {
    if keys::check_component("message id", id).is_err() || id.is_empty() {
        return Ok(None);
    }
    let id_key = a.id_key(id);
    if let Some(v) = store.tree(A::IDS).get(&id_key)? {
        let seq = keys::read_u64_value(A::IDS, &id_key, &v)?;
        // An id mapped to no record is left by a bulk import cut short: absent.
        return Ok(record::<A>(store, a, seq)?.map(|stored| (seq, true, stored)));
    }
    let Some((seq, rand)) = parse_native(id) else {
        return Ok(None);
    };
    Ok(record::<A>(store, a, seq)?
        .filter(|s| matches!(A::stored_id(s), StoredId::Native(r) if *r == rand))
        .map(|s| (seq, false, s)))
}

/// The record numbered `seq` of archive `a`, alone or inside a block.
pub(super) fn record<A: Archive>(store: &Store, a: &A, seq: u64) -> Result<Option<A::Stored>> {
    records::find::<A::Stored>(store, A::RECORDS, &a.records_prefix(), seq)
}

/// An index entry to write with a record: keyspace, key, encoded value.
pub(super) type IndexEntry = (Keyspace, Vec<u8>, Vec<u8>);

/// Writes a record, its imported-id mapping and its index entries in one transaction over
/// only the trees touched. Returns the public id.
pub(super) fn insert<A: Archive, T: Serialize>(
    store: &Store,
    a: &A,
    stored: &T,
    id: &StoredId,
    indexes: &[IndexEntry],
    seq: u64,
) -> Result<String> {
    let key = a.record_key(seq);
    // Bulk-ingested records live in blocks the transaction below cannot look into: check
    // first (the caller holds the archive appenders' lock, so no append races this).
    if let StoredId::Foreign(f) = id
        && resolve(store, a, f)?.is_some()
    {
        return Err(duplicate_id());
    }
    let foreign = match id {
        StoredId::Foreign(f) => Some((a.id_key(f), parse_native(f))),
        StoredId::Native(_) => None,
    };
    // Only the trees this write touches: every extra tree costs the transaction time.
    let mut spaces = vec![A::RECORDS];
    if foreign.is_some() {
        spaces.push(A::IDS);
    }
    spaces.extend(indexes.iter().map(|(ks, _, _)| *ks));
    spaces.sort();
    spaces.dedup();
    store.transaction(&spaces, |tx| {
        if let Some((id_key, native)) = &foreign {
            let taken_native = match native {
                Some((s, r)) => tx
                    .get::<A::Stored>(A::RECORDS, &a.record_key(*s))?
                    .is_some_and(|st| matches!(A::stored_id(&st), StoredId::Native(x) if x == r)),
                None => false,
            };
            let mapped = match tx.get_raw(A::IDS, id_key)? {
                Some(v) => {
                    let s = keys::read_u64_value(A::IDS, id_key, &v)
                        .map_err(crate::backend::TxError::Abort)?;
                    tx.contains(A::RECORDS, &a.record_key(s))?
                }
                None => false,
            };
            if taken_native || mapped {
                return abort(duplicate_id());
            }
            tx.put_raw(A::IDS, id_key, &keys::u64_value(seq))?;
        }
        tx.put(A::RECORDS, &key, stored)?;
        for (ks, k, v) in indexes {
            tx.put_raw(*ks, k, v)?;
        }
        Ok(())
    })?;
    Ok(id.public(seq))
}
