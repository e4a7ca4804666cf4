//! Verification of the archive query indexes (`mam_pm_with`, `mam_pm_time`, `mam_muc_nick`,
//! `mam_muc_time`): every key parses, every value decodes, and index and records agree both
//! ways. Used by [`crate::verify()`].
//!
//! Invariants checked: every index entry names an existing record; a `with` entry names the
//! record's peer and the archive time of its time entry; a nick entry names the record's nick;
//! every record has its `with` (1-1) or nick (room) entry; each archive has exactly one time
//! entry per record, at or after the record's timestamp, and in time-index order the seqs
//! strictly increase (archive time never goes backwards in archive order).

use std::collections::BTreeMap;

use crate::codec::decode;
use crate::error::Result;
use crate::ext::mam::{StoredMuc, StoredPm, WithEntry, parse_pm_key, parse_room_key, peer};
use crate::jid::Jid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::Store;
use crate::verify::{Archives, Findings};

/// `archive with \0 seq`.
fn parse_with_key(key: &[u8]) -> Result<(u64, &str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamPmWith, key);
    let (archive, with, seq) = (r.u64()?, r.part()?, r.u64()?);
    r.end()?;
    Ok((archive, with, seq))
}

/// `archive time seq`, time already decoded.
fn parse_pm_time_key(key: &[u8]) -> Result<(u64, i64, u64)> {
    let mut r = KeyReader::new(Keyspace::MamPmTime, key);
    let archive = r.u64()?;
    r.u64()?;
    let seq = r.u64()?;
    r.end()?;
    let at = keys::time_of(Keyspace::MamPmTime, 8, key)?;
    Ok((archive, at, seq))
}

/// `room \0 nick \0 seq`.
fn parse_nick_key(key: &[u8]) -> Result<(&str, &str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucNick, key);
    let (room, nick, seq) = (r.part()?, r.part()?, r.u64()?);
    r.end()?;
    Ok((room, nick, seq))
}

/// `room \0 time seq`, time already decoded.
fn parse_room_time_key(key: &[u8]) -> Result<(&str, i64, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucTime, key);
    let room = r.part()?;
    r.u64()?;
    let seq = r.u64()?;
    r.end()?;
    let at = keys::time_of(Keyspace::MamMucTime, room.len() + 1, key)?;
    Ok((room, at, seq))
}

/// Checks one entry's key layout and value type.
pub(crate) fn verify_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    match ks {
        Keyspace::MamPmWith => {
            parse_with_key(key)?;
            decode::<WithEntry>(ks, key, value).map(drop)
        }
        Keyspace::MamPmTime => {
            parse_pm_time_key(key)?;
            decode::<()>(ks, key, value)
        }
        Keyspace::MamMucNick => {
            parse_nick_key(key)?;
            decode::<()>(ks, key, value)
        }
        _ => {
            parse_room_time_key(key)?;
            decode::<()>(ks, key, value)
        }
    }
}

/// Per archive (or room): the time entries seen, and the last seq in time-index order.
#[derive(Default)]
struct TimeWalk {
    entries: u64,
    last_seq: Option<u64>,
}

impl TimeWalk {
    /// Returns false when `seq` does not increase along the time index.
    fn step(&mut self, seq: u64) -> bool {
        self.entries += 1;
        let ordered = self.last_seq.is_none_or(|last| seq > last);
        self.last_seq = Some(seq);
        ordered
    }
}

/// Cross-checks the query indexes against the records. Archives being swept are skipped:
/// the sweep deletes records before their index entries.
pub(crate) fn verify_links(store: &Store, archives: &Archives, found: &mut Findings) -> Result<()> {
    verify_pm(store, archives, found)?;
    verify_rooms(store, found)
}

fn verify_pm(store: &Store, archives: &Archives, found: &mut Findings) -> Result<()> {
    let (with_ks, time_ks) = (Keyspace::MamPmWith, Keyspace::MamPmTime);
    let mut walks: BTreeMap<u64, TimeWalk> = BTreeMap::new();
    for key in store.scan_keys(time_ks, &[]) {
        let key = key?;
        let Ok((archive, at, seq)) = parse_pm_time_key(&key) else {
            continue;
        };
        if archives.swept.contains(&archive) {
            continue;
        }
        if !walks.entry(archive).or_default().step(seq) {
            found.add(
                time_ks,
                &key,
                "archive time goes backwards in archive order",
            );
        }
        found.check_target(
            store,
            (time_ks, &key),
            (Keyspace::MamPm, &keys::archive_seq(archive, seq)),
            |s: &StoredPm| s.timestamp.as_micros() <= at,
            "archive time earlier than the message's time",
        )?;
    }
    for entry in store.tree(with_ks) {
        let (key, value) = entry?;
        let (Ok((archive, with, seq)), Ok(w)) = (
            parse_with_key(&key),
            decode::<WithEntry>(with_ks, &key, &value),
        ) else {
            continue;
        };
        if archives.swept.contains(&archive) {
            continue;
        }
        let record = keys::archive_seq(archive, seq);
        let Some(v) = store.tree(Keyspace::MamPm).get(&record)? else {
            found.add(with_ks, &key, "dangling index entry: no record in mam_pm");
            continue;
        };
        if let Ok(s) = decode::<StoredPm>(Keyspace::MamPm, &record, &v) {
            let p = peer(s.direction, &s.from, &s.to);
            if p != w.with || Jid::from_stored(p).to_bare().as_str() != with {
                found.add(
                    with_ks,
                    &key,
                    "with entry names another peer than its message",
                );
            }
        }
        if !store
            .tree(time_ks)
            .contains_key(keys::archive_time_seq(archive, w.at, seq))?
        {
            found.add(with_ks, &key, "with entry's archive time has no time entry");
        }
    }
    let mut records: BTreeMap<u64, u64> = BTreeMap::new();
    for entry in store.tree(Keyspace::MamPm) {
        let (key, value) = entry?;
        let (Ok((archive, seq)), Ok(s)) = (
            parse_pm_key(&key),
            decode::<StoredPm>(Keyspace::MamPm, &key, &value),
        ) else {
            continue;
        };
        if archives.swept.contains(&archive) {
            continue;
        }
        *records.entry(archive).or_default() += 1;
        let p = Jid::from_stored(peer(s.direction, &s.from, &s.to));
        let with_key = keys::archive_with_seq(archive, p.to_bare().as_str(), seq);
        found.require_index(store, (Keyspace::MamPm, &key), (with_ks, &with_key))?;
    }
    compare_counts(time_ks, &records, &walks, |a| keys::archive(*a), found);
    Ok(())
}

fn verify_rooms(store: &Store, found: &mut Findings) -> Result<()> {
    let (nick_ks, time_ks) = (Keyspace::MamMucNick, Keyspace::MamMucTime);
    let mut walks: BTreeMap<String, TimeWalk> = BTreeMap::new();
    for key in store.scan_keys(time_ks, &[]) {
        let key = key?;
        let Ok((room, at, seq)) = parse_room_time_key(&key) else {
            continue;
        };
        if !walks.entry(room.to_owned()).or_default().step(seq) {
            found.add(
                time_ks,
                &key,
                "archive time goes backwards in archive order",
            );
        }
        found.check_target(
            store,
            (time_ks, &key),
            (Keyspace::MamMuc, &keys::room_seq(room, seq)),
            |s: &StoredMuc| s.timestamp.as_micros() <= at,
            "archive time earlier than the message's time",
        )?;
    }
    for key in store.scan_keys(nick_ks, &[]) {
        let key = key?;
        let Ok((room, nick, seq)) = parse_nick_key(&key) else {
            continue;
        };
        found.check_target(
            store,
            (nick_ks, &key),
            (Keyspace::MamMuc, &keys::room_seq(room, seq)),
            |s: &StoredMuc| s.nick == nick,
            "nick entry names another nick than its message",
        )?;
    }
    let mut records: BTreeMap<String, u64> = BTreeMap::new();
    for entry in store.tree(Keyspace::MamMuc) {
        let (key, value) = entry?;
        let (Ok((room, seq)), Ok(s)) = (
            parse_room_key(&key),
            decode::<StoredMuc>(Keyspace::MamMuc, &key, &value),
        ) else {
            continue;
        };
        *records.entry(room.to_owned()).or_default() += 1;
        found.require_index(
            store,
            (Keyspace::MamMuc, &key),
            (nick_ks, &keys::room_nick_seq(room, &s.nick, seq)),
        )?;
    }
    compare_counts(time_ks, &records, &walks, |r| r.as_bytes().to_vec(), found);
    Ok(())
}

/// One time entry per record, per archive or room.
fn compare_counts<K: Ord>(
    time_ks: Keyspace,
    records: &BTreeMap<K, u64>,
    walks: &BTreeMap<K, TimeWalk>,
    prefix: impl Fn(&K) -> Vec<u8>,
    found: &mut Findings,
) {
    for (k, n) in records {
        let entries = walks.get(k).map_or(0, |w| w.entries);
        if entries != *n {
            found.add(
                time_ks,
                &prefix(k),
                format!("{entries} time entries for {n} messages"),
            );
        }
    }
    for (k, w) in walks {
        if !records.contains_key(k) {
            found.add(
                time_ks,
                &prefix(k),
                format!("{} time entries for no messages", w.entries),
            );
        }
    }
}
