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
//! batch (one tree; with an imported id, a transaction that also checks and maps the
//! id); [`MucArchive::append`] writes the record and its index entries in one sled
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

pub mod query;
pub(crate) mod records;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sled::IVec;

use crate::codec;

use crate::error::{Error, Result};
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::{BareJid, Jid};
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::{ArchiveTails, Batch, Store, abort};
pub use query::{ArchiveEnd, Metadata, Page, PageFrom, Query};

/// Messages per chunk of [`Mam::append_bulk`]: one atomic batch (or transaction) per chunk.
pub const BULK_CHUNK: usize = 10_000;

/// The records keyspace of 1-1 archives (the key of their cached tails).
const A_PM: Keyspace = Keyspace::MamPm;
use crate::time::Timestamp;
use crate::verify::{Archives, Findings};
use crate::xml;

/// Whether a 1-1 message was received or sent by the archive's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Received by the owner.
    Incoming,
    /// Sent by the owner.
    Outgoing,
}

impl Direction {
    /// `incoming` or `outgoing`, as in the export.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

/// A 1-1 message to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmMessage {
    /// An imported id to keep; `None` lets the store assign one.
    pub id: Option<String>,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// Sender (full JID when known).
    pub from: Jid,
    /// Recipient.
    pub to: Jid,
    /// Seen from the archive's owner.
    pub direction: Direction,
    /// XEP-0359 origin id, when the sender gave one.
    pub origin_id: Option<String>,
    /// The stanza XML.
    pub stanza: String,
}

/// A 1-1 message read back from an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The archive id (XEP-0359 stanza-id).
    pub id: String,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// Sender.
    pub from: Jid,
    /// Recipient.
    pub to: Jid,
    /// Seen from the archive's owner.
    pub direction: Direction,
    /// XEP-0359 origin id.
    pub origin_id: Option<String>,
    /// The stanza XML.
    pub stanza: String,
}

/// A group-chat message to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MucMessage {
    /// An imported id to keep; `None` lets the store assign one.
    pub id: Option<String>,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// The sender's real bare JID.
    pub sender: BareJid,
    /// The sender's nick in the room.
    pub nick: String,
    /// The stanza XML.
    pub stanza: String,
}

/// A group-chat message read back from a room archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMucMessage {
    /// The archive id.
    pub id: String,
    /// The room.
    pub room: BareJid,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// The sender's real bare JID.
    pub sender: BareJid,
    /// The sender's nick in the room.
    pub nick: String,
    /// The stanza XML.
    pub stanza: String,
}

/// How a stored message is named: random half of a native id, or the imported id.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StoredId {
    Native(u64),
    Foreign(String),
}

impl StoredId {
    fn new(given: Option<&String>) -> StoredId {
        match given {
            Some(id) => StoredId::Foreign(id.clone()),
            None => StoredId::Native(rand::random::<u64>()),
        }
    }

    fn public(&self, seq: u64) -> String {
        match self {
            StoredId::Native(r) => {
                let mut id = String::with_capacity(32);
                push_native_id(&mut id, seq, *r);
                id
            }
            StoredId::Foreign(id) => id.clone(),
        }
    }
}

/// Appends the public form of a native id: seq and random half, 16 hex digits each. By
/// hand: one per exported row, and `format!` showed in the export profile.
fn push_native_id(out: &mut String, seq: u64, rand: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for n in [seq, rand] {
        for shift in (0..16).rev() {
            let nibble = (n >> (shift * 4)) & 0xf;
            out.push(char::from(
                HEX.get(nibble as usize).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// [`StoredId`] read in place.
#[derive(Deserialize)]
enum StoredIdRef<'a> {
    Native(u64),
    Foreign(&'a str),
}

/// [`StoredPm`] read in place (the same layout, strings borrowed from the stored bytes): the
/// export's rows, without a copy of each stanza.
#[derive(Deserialize)]
struct StoredPmRef<'a> {
    #[serde(borrow)]
    id: StoredIdRef<'a>,
    timestamp: Timestamp,
    #[expect(
        dead_code,
        reason = "read for the layout; the export does not print it"
    )]
    at: i64,
    from: &'a str,
    to: &'a str,
    direction: Direction,
    #[expect(
        dead_code,
        reason = "read for the layout; the export does not print it"
    )]
    origin_id: Option<&'a str>,
    stanza: &'a str,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredPm {
    id: StoredId,
    pub(super) timestamp: Timestamp,
    /// Archive time (micros): never before `timestamp` nor before the previous message's.
    pub(super) at: i64,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) direction: Direction,
    origin_id: Option<String>,
    stanza: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredMuc {
    id: StoredId,
    pub(super) timestamp: Timestamp,
    /// Archive time (micros), as in [`StoredPm`].
    pub(super) at: i64,
    sender: String,
    pub(super) nick: String,
    stanza: String,
}

/// Splits a native id into (seq, random); `None` for any other string.
fn parse_native(id: &str) -> Option<(u64, u64)> {
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let seq = u64::from_str_radix(id.get(..16)?, 16).ok()?;
    let rand = u64::from_str_radix(id.get(16..)?, 16).ok()?;
    Some((seq, rand))
}

fn check_foreign_id(id: &str) -> Result<()> {
    keys::check_component("message id", id)?;
    if id.is_empty() {
        return Err(Error::InvalidInput("message id must not be empty".into()));
    }
    Ok(())
}

fn corrupt(ks: Keyspace, key: &[u8], reason: &'static str) -> Error {
    Error::Corrupt {
        keyspace: ks.name(),
        key: keys::escape_key(key),
        reason,
    }
}

/// The value of a `with` entry of `mam_pm`: the other party as archived (full JID when known),
/// for exact full-JID `with`.
#[derive(Serialize, Deserialize)]
pub(super) struct WithEntry {
    pub(super) with: String,
}

/// An item of a block of `with` entries (bulk ingest): the other party, and the key seq of
/// the record block that holds the message, so a `with` page reads each record with one
/// direct lookup (record blocks keep their key for life: removals rewrite them in place).
#[derive(Serialize, Deserialize)]
pub(super) struct WithInBlock {
    pub(super) with: String,
    pub(super) block: u64,
}

/// Item `i` of a `with` entry of `mam_pm`: its seq, the other party, and the key seq of the
/// record entry that holds it (the seq itself for a single entry: live appends write single
/// records).
pub(super) fn with_item<'e>(e: &'e codec::Entries<'_>, i: usize) -> Result<(u64, &'e str, u64)> {
    /// [`WithInBlock`] read in place.
    #[derive(Deserialize)]
    struct InBlock<'a> {
        with: &'a str,
        block: u64,
    }
    /// [`WithEntry`] read in place.
    #[derive(Deserialize)]
    struct Single<'a> {
        with: &'a str,
    }
    // Borrowed: a `with` page reads one item per message and needs no copy of the JID.
    if e.is_block() {
        let (seq, w) = e.decode_borrowed::<InBlock<'_>>(i)?;
        Ok((seq, w.with, w.block))
    } else {
        let (seq, w) = e.decode_borrowed::<Single<'_>>(i)?;
        Ok((seq, w.with, seq))
    }
}

/// Where a `with` filter is answered from.
enum WithSource {
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
trait Archive {
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

/// The archive time of the newest message of an archive (`None` when empty): cached in
/// `tails` (held from [`Store::archive_appender`]), else read from the last record.
fn last_archive_time<A: Archive>(
    store: &Store,
    a: &A,
    tails: &ArchiveTails,
) -> Result<Option<i64>> {
    let prefix = a.records_prefix();
    if let Some(at) = tails.get(A::RECORDS, &prefix) {
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
fn archive_time(prev: Option<i64>, ts: Timestamp) -> i64 {
    prev.map_or(ts.as_micros(), |p| p.max(ts.as_micros()))
}

/// The other party of a 1-1 message, as the archive's owner sees it.
pub(super) fn peer(direction: Direction, from: &str, to: &str) -> String {
    match direction {
        Direction::Incoming => from.to_owned(),
        Direction::Outgoing => to.to_owned(),
    }
}

struct Pm(u64);
struct Room<'a>(&'a BareJid);

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
        s.timestamp
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
        s.timestamp
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
fn resolve<A: Archive>(store: &Store, a: &A, id: &str) -> Result<Option<(u64, bool, A::Stored)>> {
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
fn record<A: Archive>(store: &Store, a: &A, seq: u64) -> Result<Option<A::Stored>> {
    records::find::<A::Stored>(store, A::RECORDS, &a.records_prefix(), seq)
}

/// An index entry to write with a record: keyspace, key, encoded value.
type IndexEntry = (Keyspace, Vec<u8>, Vec<u8>);

fn duplicate_id() -> Error {
    Error::InvalidInput("message id already exists in this archive".into())
}

/// Writes a record, its imported-id mapping and its index entries in one transaction over
/// only the trees touched. Returns the public id.
fn insert<A: Archive, T: Serialize>(
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
                        .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
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

fn pm_message(seq: u64, s: StoredPm) -> ArchivedMessage {
    ArchivedMessage {
        id: s.id.public(seq),
        timestamp: s.timestamp,
        from: Jid::from_stored(s.from),
        to: Jid::from_stored(s.to),
        direction: s.direction,
        origin_id: s.origin_id,
        stanza: s.stanza,
    }
}

/// The record of a 1-1 message and its `with` index entry.
fn pm_entries(
    archive: u64,
    msg: &PmMessage,
    id: StoredId,
    seq: u64,
    at: i64,
) -> (StoredPm, IndexEntry) {
    let with = peer(msg.direction, msg.from.as_str(), msg.to.as_str());
    let with_key = keys::archive_with_seq(
        archive,
        Jid::from_stored(with.clone()).to_bare().as_str(),
        seq,
    );
    let with_value = codec::encode(&WithEntry { with });
    (
        pm_record(msg, id, at),
        (Keyspace::MamPm, with_key, with_value),
    )
}

/// The stored form of a 1-1 message.
fn pm_record(msg: &PmMessage, id: StoredId, at: i64) -> StoredPm {
    StoredPm {
        id,
        timestamp: msg.timestamp,
        at,
        from: msg.from.as_str().to_owned(),
        to: msg.to.as_str().to_owned(),
        direction: msg.direction,
        origin_id: msg.origin_id.clone(),
        stanza: msg.stanza.clone(),
    }
}

/// Packs the records of one 1-1 archive, in seq order, into blocks of consecutive records
/// and blocks of `with` entries per peer (README "On-disk format"): for bulk ingest and for
/// the repacking copy of `compact` and `backup`.
struct Packer {
    archive: u64,
    block: Vec<(u64, StoredPm)>,
    block_bytes: usize,
    withs: std::collections::BTreeMap<String, Vec<(u64, WithInBlock)>>,
}

impl Packer {
    fn new(archive: u64) -> Self {
        Packer {
            archive,
            block: Vec::new(),
            block_bytes: 0,
            withs: std::collections::BTreeMap::new(),
        }
    }

    /// Adds the next record (seqs must increase); full blocks go into `out`.
    fn push(&mut self, seq: u64, stored: StoredPm, out: &mut Batch) {
        let with = peer(stored.direction, &stored.from, &stored.to);
        let bare = Jid::from_stored(with.clone()).to_bare().as_str().to_owned();
        let block = self.block.first().map_or(seq, |(s, _)| *s);
        let entries = self.withs.entry(bare.clone()).or_default();
        entries.push((seq, WithInBlock { with, block }));
        if entries.len() >= records::WITH_PER_BLOCK {
            let full = std::mem::take(entries);
            self.put_withs(&bare, &full, out);
        }
        self.block_bytes += stored.stanza.len();
        self.block.push((seq, stored));
        if self.block.len() >= records::RECORDS_PER_BLOCK
            || self.block_bytes >= records::BLOCK_BYTES
        {
            self.put_block(out);
        }
    }

    fn put_block(&mut self, out: &mut Batch) {
        if let Some((first, _)) = self.block.first() {
            let refs: Vec<(u64, &StoredPm)> = self.block.iter().map(|(s, r)| (*s, r)).collect();
            out.insert(
                keys::archive_seq(self.archive, *first),
                codec::encode_block(&refs),
            );
        }
        self.block.clear();
        self.block_bytes = 0;
    }

    fn put_withs(&self, bare: &str, entries: &[(u64, WithInBlock)], out: &mut Batch) {
        if let Some((first, _)) = entries.first() {
            let refs: Vec<(u64, &WithInBlock)> = entries.iter().map(|(s, w)| (*s, w)).collect();
            out.insert(
                keys::archive_with_seq(self.archive, bare, *first),
                codec::encode_block_frame(&refs),
            );
        }
    }

    /// Writes what is left into `out`.
    fn finish(&mut self, out: &mut Batch) {
        self.put_block(out);
        for (bare, entries) in std::mem::take(&mut self.withs) {
            self.put_withs(&bare, &entries, out);
        }
    }
}

/// Reads every 1-1 archive of `src` and hands `write` its entries repacked into blocks, as
/// `append_bulk` writes them: records are decoded and packed in seq order, and the `with` entries are
/// rebuilt from the records (the source's are skipped; `compact` runs only on a store that
/// verifies, where the two agree). Archives appended one message at a time shrink from two
/// keys per message to about 0.16. `write` receives batches of about [`BULK_CHUNK`] records
/// and their logical size. Returns the source's entries and bytes read.
pub(crate) fn repack(
    src: &Store,
    mut write: impl FnMut(Batch, u64, u64) -> Result<()>,
) -> Result<(u64, u64)> {
    let ks = Keyspace::MamPm;
    let (mut entries, mut bytes) = (0u64, 0u64);
    let (mut batch, mut in_batch, mut batch_bytes, mut read) =
        (Batch::default(), 0usize, 0u64, 0u64);
    let mut packer: Option<Packer> = None;
    records::for_each_entry(src, ks, &[], |k, v| {
        entries += 1;
        read += 1;
        bytes += (k.len() + v.len()) as u64;
        let (archive, tag) = pm_key_kind(k)?;
        if tag != keys::PM_RECORD {
            return Ok(true);
        }
        let p = match &mut packer {
            Some(p) if p.archive == archive => p,
            other => {
                if let Some(done) = other {
                    done.finish(&mut batch);
                }
                other.insert(Packer::new(archive))
            }
        };
        let e = codec::entries(ks, k, v, keys::trailing_seq(ks, k)?)?;
        for i in 0..e.len() {
            let (seq, stored) = e.decode::<StoredPm>(i)?;
            batch_bytes += (stored.stanza.len() + 256) as u64;
            p.push(seq, stored, &mut batch);
            in_batch += 1;
        }
        if in_batch >= BULK_CHUNK {
            write(
                std::mem::take(&mut batch),
                batch_bytes,
                std::mem::take(&mut read),
            )?;
            (in_batch, batch_bytes) = (0, 0);
        }
        Ok(true)
    })?;
    if let Some(p) = &mut packer {
        p.finish(&mut batch);
    }
    write(batch, batch_bytes, read)?;
    Ok((entries, bytes))
}

impl Mam<'_> {
    /// The owner's archive id, read from the account (no cache: readers do not hold the
    /// writer lock the cache relies on).
    fn archive_of(&self, owner: &BareJid) -> Result<Option<u64>> {
        Ok(self
            .store
            .get::<crate::ext::accounts::Account>(Keyspace::Accounts, &keys::owner(owner))?
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
        let archive = self.store.require_archive(owner)?;
        let a = Pm(archive);
        let mut tails = self.store.archive_appender();
        let seq = self.store.generate_id()?;
        let at = archive_time(last_archive_time(self.store, &a, &tails)?, msg.timestamp);
        let id = StoredId::new(msg.id.as_ref());
        let (stored, index) = pm_entries(archive, msg, id.clone(), seq, at);
        let public = if let StoredId::Native(_) = id {
            // Record and `with` entry share the tree: one atomic batch, no transaction (a
            // native id needs no duplicate check).
            let (_, with_key, with_value) = index;
            let mut batch = Batch::default();
            batch.insert(with_key, with_value);
            batch.insert(a.record_key(seq), codec::encode(&stored));
            self.store.apply_batch(Keyspace::MamPm, batch)?;
            id.public(seq)
        } else {
            insert(self.store, &a, &stored, &id, &[index], seq)?
        };
        tails.set(A_PM, a.records_prefix(), Some(at));
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
        let archive = self.store.require_archive(owner)?;
        let a = Pm(archive);
        for id in &seen {
            if resolve(self.store, &a, id)?.is_some() {
                return Err(duplicate_id());
            }
        }
        let mut tails = self.store.archive_appender();
        let mut prev = last_archive_time(self.store, &a, &tails)?;
        let (mut ids, mut records) = (Batch::default(), Batch::default());
        let mut packer = Packer::new(archive);
        for msg in chunk {
            let seq = self.store.generate_id()?;
            let at = archive_time(prev, msg.timestamp);
            prev = Some(at);
            let id = StoredId::new(msg.id.as_ref());
            if let StoredId::Foreign(f) = &id {
                ids.insert(a.id_key(f), &keys::u64_value(seq));
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

fn muc_message(room: BareJid, seq: u64, s: StoredMuc) -> ArchivedMucMessage {
    ArchivedMucMessage {
        id: s.id.public(seq),
        room,
        timestamp: s.timestamp,
        sender: BareJid::from_stored(s.sender),
        nick: s.nick,
        stanza: s.stanza,
    }
}

/// Reads a by-sender index key back into (room, seq).
fn parse_sender_key(key: &[u8]) -> Result<(BareJid, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucBySender, key);
    r.part()?;
    let room = r.part()?.to_owned();
    let seq = r.u64()?;
    r.end()?;
    Ok((BareJid::from_stored(room), seq))
}

impl MucArchive<'_> {
    /// Appends a message to a room's archive (rooms need no account) and indexes it by the
    /// sender's real JID, in one transaction. Returns its id.
    pub fn append(&self, room: &BareJid, msg: &MucMessage) -> Result<String> {
        xml::check_element("stanza", &msg.stanza)?;
        if let Some(id) = &msg.id {
            check_foreign_id(id)?;
        }
        keys::check_component("nick", &msg.nick)?;
        let _w = self.store.writer()?;
        let a = Room(room);
        let mut tails = self.store.archive_appender();
        let seq = self.store.generate_id()?;
        let at = archive_time(last_archive_time(self.store, &a, &tails)?, msg.timestamp);
        let id = StoredId::new(msg.id.as_ref());
        let stored = StoredMuc {
            id: id.clone(),
            timestamp: msg.timestamp,
            at,
            sender: msg.sender.as_str().to_owned(),
            nick: msg.nick.clone(),
            stanza: msg.stanza.clone(),
        };
        let marker = codec::marker();
        let indexes = [
            (
                Keyspace::MamMucBySender,
                keys::sender_room_seq(msg.sender.as_str(), room.as_str(), seq),
                marker.clone(),
            ),
            (
                Keyspace::MamMucNick,
                keys::room_nick_seq(room.as_str(), &msg.nick, seq),
                marker,
            ),
        ];
        let public = insert(self.store, &a, &stored, &id, &indexes, seq)?;
        tails.set(Keyspace::MamMuc, a.records_prefix(), Some(at));
        Ok(public)
    }

    /// One page of a room's archive; see [`Query`] for the filters. `with` on a room: `room@service/nick` matches what that occupant nick
    /// sent; the bare room JID matches every message; another bare JID matches what that
    /// real JID sent (for moderators; the server decides who may ask); any other full JID
    /// matches nothing.
    pub fn query(&self, room: &BareJid, q: &Query) -> Result<Page<ArchivedMucMessage>> {
        query::run(self.store, &Room(room), q, |seq, s| {
            muc_message(room.clone(), seq, s)
        })
    }

    /// First and last message of a room's archive.
    pub fn metadata(&self, room: &BareJid) -> Result<Metadata> {
        query::metadata(self.store, &Room(room))
    }

    /// One message of a room by id.
    pub fn get(&self, room: &BareJid, id: &str) -> Result<Option<ArchivedMucMessage>> {
        Ok(resolve(self.store, &Room(room), id)?
            .map(|(seq, _, s)| muc_message(room.clone(), seq, s)))
    }

    /// A room's whole archive in archive order.
    pub fn list(&self, room: &BareJid) -> Result<Vec<ArchivedMucMessage>> {
        self.store
            .scan::<StoredMuc>(Keyspace::MamMuc, &keys::owner(room))
            .map(|entry| {
                let (k, s) = entry?;
                let mut r = KeyReader::new(Keyspace::MamMuc, &k);
                r.part()?;
                let seq = r.u64()?;
                r.end()?;
                Ok(muc_message(room.clone(), seq, s))
            })
            .collect()
    }

    /// Lazily, every group-chat message `sender` sent, by room then archive order.
    fn iter_by_sender(
        &self,
        sender: &BareJid,
    ) -> impl Iterator<Item = Result<ArchivedMucMessage>> + use<'_> {
        self.store
            .scan_keys(Keyspace::MamMucBySender, &keys::owner(sender))
            .map(|key| {
                let key: IVec = key?;
                let (room, seq) = parse_sender_key(&key)?;
                let s = self
                    .store
                    .get::<StoredMuc>(Keyspace::MamMuc, &keys::room_seq(room.as_str(), seq))?
                    .ok_or_else(|| {
                        corrupt(
                            Keyspace::MamMucBySender,
                            &key,
                            "index entry without message",
                        )
                    })?;
                Ok(muc_message(room, seq, s))
            })
    }

    /// Every group-chat message `sender` sent, in any room, by room then archive order.
    pub fn by_sender(&self, sender: &BareJid) -> Result<Vec<ArchivedMucMessage>> {
        self.iter_by_sender(sender).collect()
    }

    /// Removes one message of a room, with its index entries; returns whether it was there
    /// (an embedding server's archive expiry and deletions; erasure never removes these).
    pub fn remove(&self, room: &BareJid, id: &str) -> Result<bool> {
        let _w = self.store.remover();
        let a = Room(room);
        let Some((seq, foreign, stored)) = resolve(self.store, &a, id)? else {
            return Ok(false);
        };
        let mut tails = self.store.archive_appender();
        tails.forget(Keyspace::MamMuc, &a.records_prefix());
        let record = a.record_key(seq);
        let sender = keys::sender_room_seq(&stored.sender, room.as_str(), seq);
        let nick = keys::room_nick_seq(room.as_str(), &stored.nick, seq);
        let id_key = foreign.then(|| a.id_key(id));
        let spaces = [
            Keyspace::MamMuc,
            Keyspace::MamMucIds,
            Keyspace::MamMucBySender,
            Keyspace::MamMucNick,
        ];
        self.store.transaction(&spaces, |tx| {
            tx.remove(Keyspace::MamMuc, &record)?;
            tx.remove(Keyspace::MamMucBySender, &sender)?;
            tx.remove(Keyspace::MamMucNick, &nick)?;
            if let Some(k) = &id_key {
                tx.remove(Keyspace::MamMucIds, k)?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Number of messages in a room's archive.
    pub fn count(&self, room: &BareJid) -> Result<u64> {
        let mut n = 0;
        for k in self.store.scan_keys(Keyspace::MamMuc, &keys::owner(room)) {
            k?;
            n += 1;
        }
        Ok(n)
    }
}

/// Reads `archive m seq` (a record of `mam_pm`) back.
pub(super) fn parse_pm_key(key: &[u8]) -> Result<(u64, u64)> {
    let mut r = KeyReader::new(Keyspace::MamPm, key);
    let archive = r.u64()?;
    if r.byte()? != keys::PM_RECORD {
        return Err(corrupt(Keyspace::MamPm, key, "not a message record"));
    }
    let seq = r.u64()?;
    r.end()?;
    Ok((archive, seq))
}

/// The archive id and tag (record or `with` entry) that start a `mam_pm` key.
pub(super) fn pm_key_kind(key: &[u8]) -> Result<(u64, u8)> {
    let mut r = KeyReader::new(Keyspace::MamPm, key);
    let archive = r.u64()?;
    match r.byte()? {
        t @ (keys::PM_RECORD | keys::PM_WITH) => Ok((archive, t)),
        _ => Err(corrupt(Keyspace::MamPm, key, "unknown entry tag")),
    }
}

pub(super) fn parse_room_key(key: &[u8]) -> Result<(&str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMuc, key);
    let room = r.part()?;
    let seq = r.u64()?;
    r.end()?;
    Ok((room, seq))
}

/// Reads `archive foreign-id` (1-1) back; the id must not be empty.
fn parse_pm_id_key(key: &[u8]) -> Result<(u64, &str)> {
    let mut r = KeyReader::new(Keyspace::MamPmIds, key);
    let archive = r.u64()?;
    let id = r.tail()?;
    if id.is_empty() {
        return Err(corrupt(Keyspace::MamPmIds, key, "empty message id"));
    }
    Ok((archive, id))
}

/// Reads `room \0 foreign-id` back; the id must not be empty.
fn parse_muc_id_key(key: &[u8]) -> Result<(&str, &str)> {
    let mut r = KeyReader::new(Keyspace::MamMucIds, key);
    let room = r.part()?;
    let id = r.tail()?;
    if id.is_empty() {
        return Err(corrupt(Keyspace::MamMucIds, key, "empty message id"));
    }
    Ok((room, id))
}

/// Reads `sender \0 room \0 seq` back.
fn parse_sender_entry(key: &[u8]) -> Result<(&str, &str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucBySender, key);
    let sender = r.part()?;
    let room = r.part()?;
    let seq = r.u64()?;
    r.end()?;
    Ok((sender, room, seq))
}

/// Checks one stored entry of a mam keyspace: key layout and value type. Used by
/// [`crate::verify()`].
pub(crate) fn verify_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    use crate::codec::decode;
    match ks {
        Keyspace::MamPm => {
            if pm_key_kind(key)?.1 == keys::PM_WITH {
                return crate::ext::mam_indexes::verify_with_entry(key, value);
            }
            let (_, seq) = parse_pm_key(key)?;
            let e = crate::codec::entries(ks, key, value, seq)?;
            (0..e.len()).try_for_each(|i| e.decode::<StoredPm>(i).map(drop))
        }
        Keyspace::MamPmIds => {
            parse_pm_id_key(key)?;
            keys::read_u64_value(ks, key, value).map(drop)
        }
        Keyspace::MamMuc => {
            parse_room_key(key)?;
            decode::<StoredMuc>(ks, key, value).map(drop)
        }
        Keyspace::MamMucIds => {
            parse_muc_id_key(key)?;
            keys::read_u64_value(ks, key, value).map(drop)
        }
        Keyspace::MamMucBySender => {
            parse_sender_entry(key)?;
            decode::<()>(ks, key, value)
        }
        other => Err(corrupt(other, key, "not a mam keyspace")),
    }
}

/// Checks that an imported-id entry names a message stored with that id.
fn verify_id_target<A: Archive>(
    store: &Store,
    found: &mut Findings,
    (id_key, id): (&[u8], &str),
    (a, seq): (&A, u64),
) {
    match record(store, a, seq) {
        Ok(None) => found.add(
            A::IDS,
            id_key,
            format!("dangling index entry: no record in {}", A::RECORDS.name()),
        ),
        // A record that does not decode was reported already.
        Err(_) => {}
        Ok(Some(s)) => {
            if !matches!(A::stored_id(&s), StoredId::Foreign(f) if f == id) {
                found.add(
                    A::IDS,
                    id_key,
                    "imported id names a message with another id",
                );
            }
        }
    }
}

/// Cross-checks the mam keyspaces: room messages and their by-sender index both ways,
/// imported ids and their messages both ways, 1-1 messages and the archive that holds them.
/// Entries whose key or value does not decode were reported already and are skipped.
pub(crate) fn verify_links(store: &Store, archives: &Archives, found: &mut Findings) -> Result<()> {
    verify_room_links(store, found)?;
    verify_pm_links(store, archives, found)
}

/// Room messages against their by-sender index and imported ids, both ways.
fn verify_room_links(store: &Store, found: &mut Findings) -> Result<()> {
    use crate::codec::decode;
    let muc_ids = store.tree(Keyspace::MamMucIds);
    for entry in store.tree(Keyspace::MamMuc) {
        let (key, value) = entry?;
        let (Ok((room, seq)), Ok(s)) = (
            parse_room_key(&key),
            decode::<StoredMuc>(Keyspace::MamMuc, &key, &value),
        ) else {
            continue;
        };
        found.require_index(
            store,
            (Keyspace::MamMuc, &key),
            (
                Keyspace::MamMucBySender,
                &keys::sender_room_seq(&s.sender, room, seq),
            ),
        )?;
        if let StoredId::Foreign(id) = &s.id {
            found.require_index(
                store,
                (Keyspace::MamMuc, &key),
                (Keyspace::MamMucIds, &keys::pair_tail(room, id)),
            )?;
        }
    }
    for key in store.scan_keys(Keyspace::MamMucBySender, &[]) {
        let key = key?;
        let Ok((sender, room, seq)) = parse_sender_entry(&key) else {
            continue;
        };
        found.check_target(
            store,
            (Keyspace::MamMucBySender, &key),
            (Keyspace::MamMuc, &keys::room_seq(room, seq)),
            |s: &StoredMuc| s.sender == sender,
            "index entry names a message from another sender",
        )?;
    }
    for entry in muc_ids {
        let (key, value) = entry?;
        let (Ok((room, id)), Ok(seq)) = (
            parse_muc_id_key(&key),
            keys::read_u64_value(Keyspace::MamMucIds, &key, &value),
        ) else {
            continue;
        };
        let room = BareJid::from_stored(room.to_owned());
        let a = Room(&room);
        verify_id_target(store, found, (&key, id), (&a, seq));
    }
    Ok(())
}

/// 1-1 messages against the archives that may hold them, and against imported ids both ways.
fn verify_pm_links(store: &Store, archives: &Archives, found: &mut Findings) -> Result<()> {
    let pm_ids = store.tree(Keyspace::MamPmIds);
    let live = |a: &u64| archives.held.contains(a) || archives.swept.contains(a);
    for entry in store.tree(Keyspace::MamPm) {
        let (key, value) = entry?;
        let Ok((archive, tag)) = pm_key_kind(&key) else {
            continue;
        };
        if !live(&archive) {
            found.add(
                Keyspace::MamPm,
                &key,
                "message of an archive that no account holds and no sweep is queued for",
            );
        }
        // Records only; entries that do not parse or decode were reported already.
        if tag != keys::PM_RECORD {
            continue;
        }
        let Ok((_, seq)) = parse_pm_key(&key) else {
            continue;
        };
        let Ok(e) = codec::entries(Keyspace::MamPm, &key, &value, seq) else {
            continue;
        };
        for i in 0..e.len() {
            if let Ok((_, s)) = e.decode::<StoredPm>(i)
                && let StoredId::Foreign(id) = &s.id
            {
                found.require_index(
                    store,
                    (Keyspace::MamPm, &key),
                    (Keyspace::MamPmIds, &keys::archive_foreign_id(archive, id)),
                )?;
            }
        }
    }
    for entry in pm_ids {
        let (key, value) = entry?;
        let (Ok((archive, id)), Ok(seq)) = (
            parse_pm_id_key(&key),
            keys::read_u64_value(Keyspace::MamPmIds, &key, &value),
        ) else {
            continue;
        };
        if archives.swept.contains(&archive) {
            // Being swept: records go before their ids, so ids may outlive them briefly.
            continue;
        }
        if !live(&archive) {
            found.add(
                Keyspace::MamPmIds,
                &key,
                "imported id of an archive that no account holds",
            );
            continue;
        }
        verify_id_target(store, found, (&key, id), (&Pm(archive), seq));
    }
    Ok(())
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[
    Table {
        file: "mam_pm.csv",
        header: &["id", "from", "message", "timestamp", "to", "direction"],
    },
    Table {
        file: "mam_muc.csv",
        header: &["id", "message", "room", "timestamp", "nick"],
    },
];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "mam"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[
            Keyspace::MamPm,
            Keyspace::MamPmIds,
            Keyspace::MamMuc,
            Keyspace::MamMucIds,
            Keyspace::MamMucBySender,
            Keyspace::MamMucNick,
        ]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    /// The 1-1 table straight from the stored bytes (one reused id buffer, cells borrowed);
    /// the same rows as [`Extension::rows`] (a test compares them).
    fn cells(
        &self,
        store: &Store,
        subject: &BareJid,
        table: usize,
        emit: crate::ext::EmitCells<'_>,
    ) -> Result<()> {
        if table != 0 {
            return self.rows(store, subject, table, &mut |row| {
                crate::ext::emit_owned(emit, &row)
            });
        }
        let Some(archive) = store.mam().archive_of(subject)? else {
            return Ok(());
        };
        let ks = Keyspace::MamPm;
        let mut id = String::with_capacity(32);
        records::for_each_entry(store, ks, &keys::archive_records(archive), |k, v| {
            let e = codec::entries(ks, k, v, keys::trailing_seq(ks, k)?)?;
            for i in 0..e.len() {
                let (seq, m) = e.decode_borrowed::<StoredPmRef<'_>>(i)?;
                id.clear();
                match m.id {
                    StoredIdRef::Native(r) => push_native_id(&mut id, seq, r),
                    StoredIdRef::Foreign(f) => id.push_str(f),
                }
                let ts = m.timestamp.to_rfc3339();
                emit(&[&id, m.from, m.stanza, &ts, m.to, m.direction.as_str()])?;
            }
            Ok(true)
        })
    }

    fn rows(&self, store: &Store, subject: &BareJid, table: usize, emit: Emit<'_>) -> Result<()> {
        if table == 0 {
            for m in store.mam().iter(subject)? {
                let m = m?;
                emit(vec![
                    m.id,
                    m.from.into_string(),
                    m.stanza,
                    m.timestamp.to_rfc3339(),
                    m.to.into_string(),
                    m.direction.as_str().to_owned(),
                ])?;
            }
        } else {
            for m in store.muc().iter_by_sender(subject) {
                let m = m?;
                emit(vec![
                    m.id,
                    m.stanza,
                    m.room.to_string(),
                    m.timestamp.to_rfc3339(),
                    m.nick,
                ])?;
            }
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        // The sweep deletes the archive and counts its messages after the commit.
        if let Some(archive) = store.mam().archive_of(subject)? {
            plan.sweeps.push(archive);
        }
        // Counted after the sweep (`count_kept`): a scan of every message sent is no part
        // of the commit.
        let by_sender = keys::owner(subject);
        if store
            .scan_keys(Keyspace::MamMucBySender, &by_sender)
            .next()
            .transpose()?
            .is_some()
        {
            plan.keep("mam_muc", None, MUC_KEPT);
        }
        Ok(())
    }
    fn count_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        kept: &mut Vec<crate::ext::Kept>,
    ) -> Result<()> {
        if let Some(k) = kept.iter_mut().find(|k| k.reason == MUC_KEPT) {
            let mut sent = 0u64;
            for key in store.scan_keys(Keyspace::MamMucBySender, &keys::owner(subject)) {
                key?;
                sent += 1;
            }
            k.rows = Some(sent);
        }
        Ok(())
    }
}

/// Why an erasure keeps the subject's group-chat messages.
const MUC_KEPT: &str = "group-chat history belongs to every participant";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The export's borrowed cells of the 1-1 table are exactly the owned rows: native and
    /// imported ids, blocks (bulk) and single records (live), a removal inside a block.
    #[test]
    fn cells_are_the_rows() {
        let store = Store::temporary().unwrap();
        let alice = BareJid::parse("alice@localhost").unwrap();
        store.accounts().create(&alice, "pw").unwrap();
        let msg = |i: i64| PmMessage {
            id: (i % 5 == 0).then(|| format!("imported-{i}")),
            timestamp: Timestamp::from_secs(1_700_000_000 + i),
            from: Jid::parse(if i % 2 == 0 {
                "bob@localhost/a"
            } else {
                "alice@localhost/b"
            })
            .unwrap(),
            to: Jid::parse(if i % 2 == 0 {
                "alice@localhost"
            } else {
                "bob@localhost"
            })
            .unwrap(),
            direction: if i % 2 == 0 {
                Direction::Incoming
            } else {
                Direction::Outgoing
            },
            origin_id: (i % 3 == 0).then(|| format!("o{i}")),
            stanza: format!("<message><body>\"{i}\", ok</body></message>"),
        };
        store.mam().append_bulk(&alice, (0..30).map(msg)).unwrap();
        for i in 30..35 {
            store.mam().append(&alice, &msg(i)).unwrap();
        }
        let third = store.mam().list(&alice).unwrap()[3].id.clone();
        assert!(store.mam().remove(&alice, &third).unwrap());
        let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
        Class
            .rows(&store, &alice, 0, &mut |row| {
                owned.push(row);
                Ok(())
            })
            .unwrap();
        Class
            .cells(&store, &alice, 0, &mut |cells| {
                borrowed.push(cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
                Ok(())
            })
            .unwrap();
        assert_eq!(owned.len(), 34);
        assert_eq!(owned, borrowed);
    }
}
