//! The stored forms of archived messages and `with` entries, and the key layouts of the mam
//! keyspaces read back.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::ext::stored_enum::stored_enum;
use crate::ext::stored_time::StoredTimestamp;
use crate::jid::Jid;
use crate::keys::{self, KeyReader, Keyspace};

use super::archive::IndexEntry;
use super::id::{StoredId, StoredIdRef};
use super::types::{ArchivedMessage, Direction, PmMessage};

/// [`StoredPm`] read in place (the same layout, strings borrowed from the stored bytes): the
/// export's rows, without a copy of each stanza.
#[derive(Deserialize)]
pub(super) struct StoredPmRef<'a> {
    #[serde(borrow)]
    pub(super) id: StoredIdRef<'a>,
    pub(super) timestamp: StoredTimestamp,
    #[expect(
        dead_code,
        reason = "read for the layout; the export does not print it"
    )]
    pub(super) at: i64,
    pub(super) from: &'a str,
    pub(super) to: &'a str,
    pub(super) direction: StoredDirection,
    #[expect(
        dead_code,
        reason = "read for the layout; the export does not print it"
    )]
    pub(super) origin_id: Option<&'a str>,
    pub(super) stanza: &'a str,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredPm {
    pub(super) id: StoredId,
    pub(super) timestamp: StoredTimestamp,
    /// Archive time (micros): never before `timestamp` nor before the previous message's.
    pub(super) at: i64,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) direction: StoredDirection,
    pub(super) origin_id: Option<String>,
    pub(super) stanza: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredMuc {
    pub(super) id: StoredId,
    pub(super) timestamp: StoredTimestamp,
    /// Archive time (micros), as in [`StoredPm`].
    pub(super) at: i64,
    pub(super) sender: String,
    pub(super) nick: String,
    pub(super) stanza: String,
}

stored_enum! {
    /// The on-disk form of a [`Direction`] in [`StoredPm`]: the variant index is written.
    /// Change only with a format version bump.
    pub(super) enum StoredDirection mirrors Direction { Incoming, Outgoing }
}

pub(super) fn corrupt(ks: Keyspace, key: &[u8], reason: &'static str) -> Error {
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

/// The other party of a 1-1 message, as the archive's owner sees it.
pub(super) fn peer(direction: impl Into<Direction>, from: &str, to: &str) -> String {
    match direction.into() {
        Direction::Incoming => from.to_owned(),
        Direction::Outgoing => to.to_owned(),
    }
}

pub(super) fn pm_message(seq: u64, s: StoredPm) -> ArchivedMessage {
    ArchivedMessage {
        id: s.id.public(seq),
        timestamp: s.timestamp.into(),
        from: Jid::from_stored(s.from),
        to: Jid::from_stored(s.to),
        direction: s.direction.into(),
        origin_id: s.origin_id,
        stanza: s.stanza,
    }
}

/// The record of a 1-1 message and its `with` index entry.
pub(super) fn pm_entries(
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
pub(super) fn pm_record(msg: &PmMessage, id: StoredId, at: i64) -> StoredPm {
    StoredPm {
        id,
        timestamp: msg.timestamp.into(),
        at,
        from: msg.from.as_str().to_owned(),
        to: msg.to.as_str().to_owned(),
        direction: msg.direction.into(),
        origin_id: msg.origin_id.clone(),
        stanza: msg.stanza.clone(),
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
pub(super) fn parse_pm_id_key(key: &[u8]) -> Result<(u64, &str)> {
    let mut r = KeyReader::new(Keyspace::MamPmIds, key);
    let archive = r.u64()?;
    let id = r.tail()?;
    if id.is_empty() {
        return Err(corrupt(Keyspace::MamPmIds, key, "empty message id"));
    }
    Ok((archive, id))
}

/// Reads `room \0 foreign-id` back; the id must not be empty.
pub(super) fn parse_muc_id_key(key: &[u8]) -> Result<(&str, &str)> {
    let mut r = KeyReader::new(Keyspace::MamMucIds, key);
    let room = r.part()?;
    let id = r.tail()?;
    if id.is_empty() {
        return Err(corrupt(Keyspace::MamMucIds, key, "empty message id"));
    }
    Ok((room, id))
}

/// Reads `sender \0 room \0 seq` back.
pub(super) fn parse_sender_entry(key: &[u8]) -> Result<(&str, &str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucBySender, key);
    let sender = r.part()?;
    let room = r.part()?;
    let seq = r.u64()?;
    r.end()?;
    Ok((sender, room, seq))
}
