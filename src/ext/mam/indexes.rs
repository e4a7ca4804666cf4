//! Verification of the archive query indexes (the `with` entries of `mam_pm`, `mam_muc_nick`)
//! and of the
//! archive times kept in the records: every key parses, every value decodes, and index and
//! records agree both ways. Used by [`crate::verify()`].
//!
//! Invariants checked: every index entry names an existing record; a `with` entry names the
//! record's peer; a nick entry names the record's nick; every record has its `with` (1-1) or
//! nick (room) entry; every record's archive time is at or after its timestamp, and along
//! archive (seq) order archive time never decreases, which the binary search of `start`/`end`
//! relies on.

use super::records;
use super::stored::{
    StoredMuc, StoredPm, parse_pm_key, parse_room_key, peer, pm_key_kind, with_item,
};
use crate::codec::{self, Entries, decode};
use crate::error::Result;
use crate::jid::Jid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;
use crate::verify::Findings;

use super::verify::Archives;

/// `archive w with \0 seq` (a `with` entry of `mam_pm`).
fn parse_with_key(key: &[u8]) -> Result<(u64, &str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamPm, key);
    let archive = r.u64()?;
    if r.byte()? != keys::PM_WITH {
        return Err(keys::corrupt(Keyspace::MamPm, key, "not a with entry"));
    }
    let (with, seq) = (r.part()?, r.u64()?);
    r.end()?;
    Ok((archive, with, seq))
}

/// Checks a `with` entry of `mam_pm`: key layout and value type.
pub(crate) fn verify_with_entry(key: &[u8], value: &[u8]) -> Result<()> {
    let (_, _, seq) = parse_with_key(key)?;
    let e = codec::entries(Keyspace::MamPm, key, value, seq)?;
    (0..e.len()).try_for_each(|i| with_item(&e, i).map(drop))
}

/// `room \0 nick \0 seq`.
fn parse_nick_key(key: &[u8]) -> Result<(&str, &str, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucNick, key);
    let (room, nick, seq) = (r.part()?, r.part()?, r.u64()?);
    r.end()?;
    Ok((room, nick, seq))
}

/// Checks one `mam_muc_nick` entry's key layout and value type.
pub(crate) fn verify_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    parse_nick_key(key)?;
    decode::<()>(ks, key, value)
}

/// Archive times along one keyspace of records, in key (archive, then seq) order.
#[derive(Default)]
struct TimeWalk<K> {
    last: Option<(K, i64)>,
}

impl<K: PartialEq> TimeWalk<K> {
    /// Checks one record's archive time against its timestamp and the previous record of
    /// the same archive.
    fn step(
        &mut self,
        ks: Keyspace,
        key: &[u8],
        archive: K,
        at: i64,
        ts: Timestamp,
        found: &mut Findings,
    ) {
        if at < ts.as_micros() {
            found.add(ks, key, "archive time earlier than the message's time");
        }
        if let Some((prev_archive, prev_at)) = &self.last
            && *prev_archive == archive
            && at < *prev_at
        {
            found.add(ks, key, "archive time goes backwards in archive order");
        }
        self.last = Some((archive, at));
    }
}

/// The state the index checks carry from one record to the next in the pass of
/// [`crate::verify()`]: archive times along each keyspace of records, and the last seq of
/// the `mam_pm` entry before (entries under one prefix must not overlap, or queries would
/// miss messages).
#[derive(Default)]
pub(crate) struct Walks {
    pm: TimeWalk<u64>,
    /// The prefix (key without its seq) and last seq of the `mam_pm` entry before.
    prev: Option<(Vec<u8>, u64)>,
    rooms: TimeWalk<String>,
}

impl Walks {
    /// Checks one `mam_pm` entry against the query indexes. Archives being swept are
    /// skipped: the sweep deletes records before their index entries.
    pub(crate) fn pm_entry(
        &mut self,
        store: &Store,
        archives: &Archives,
        key: &[u8],
        value: &[u8],
        found: &mut Findings,
    ) {
        let ks = Keyspace::MamPm;
        let Ok((archive, tag)) = pm_key_kind(key) else {
            return;
        };
        if archives.swept.contains(&archive) {
            return;
        }
        // Entries that do not parse or decode were reported by the entry check.
        let Ok(key_seq) = keys::trailing_seq(ks, key) else {
            return;
        };
        let Ok(e) = codec::entries(ks, key, value, key_seq) else {
            return;
        };
        let prefix = key.get(..key.len().saturating_sub(8)).unwrap_or_default();
        if let Some((p, last)) = &self.prev
            && p.as_slice() == prefix
            && key_seq <= *last
        {
            found.add(ks, key, "entry overlaps the entry before it");
        }
        self.prev = e.bounds().map(|(_, last)| (prefix.to_vec(), last));
        if tag == keys::PM_WITH {
            verify_with_target(store, key, &e, found);
            return;
        }
        if parse_pm_key(key).is_err() {
            return;
        }
        for i in 0..e.len() {
            let Ok((seq, s)) = e.decode::<StoredPm>(i) else {
                continue;
            };
            self.pm
                .step(ks, key, archive, s.at, s.timestamp.into(), found);
            let p = Jid::from_stored(peer(s.direction, &s.from, &s.to));
            let with_prefix = keys::archive_with(archive, p.to_bare().as_str());
            if let Ok(false) = records::holds(store, ks, &with_prefix, seq) {
                found.add(ks, key, "missing index entry in mam_pm");
            }
        }
    }

    /// Checks one room message's archive time and its nick entry.
    pub(crate) fn room_entry(
        &mut self,
        store: &Store,
        key: &[u8],
        value: &[u8],
        found: &mut Findings,
    ) -> Result<()> {
        let (Ok((room, seq)), Ok(s)) = (
            parse_room_key(key),
            decode::<StoredMuc>(Keyspace::MamMuc, key, value),
        ) else {
            return Ok(());
        };
        self.rooms.step(
            Keyspace::MamMuc,
            key,
            room.to_owned(),
            s.at,
            s.timestamp.into(),
            found,
        );
        found.require_index(
            store,
            (Keyspace::MamMuc, key),
            (
                Keyspace::MamMucNick,
                &keys::room_nick_seq(room, &s.nick, seq),
            ),
        )
    }
}

/// A `with` entry names an existing record whose peer it names.
fn verify_with_target(store: &Store, key: &[u8], e: &Entries<'_>, found: &mut Findings) {
    let ks = Keyspace::MamPm;
    let Ok((archive, with, _)) = parse_with_key(key) else {
        return;
    };
    let prefix = keys::archive_records(archive);
    for i in 0..e.len() {
        let Ok((seq, w, block)) = with_item(e, i) else {
            continue;
        };
        // Where the entry says the record is, the way queries read it.
        let at = keys::prefix_seq(&prefix, block);
        match records::find_at::<StoredPm>(store, ks, &at, seq) {
            Ok(None) => found.add(ks, key, "dangling with entry: no record in mam_pm"),
            // A record that does not decode was reported already.
            Err(_) => {}
            Ok(Some(s)) => {
                let p = peer(s.direction, &s.from, &s.to);
                if p != w || Jid::from_stored(p).to_bare().as_str() != with {
                    found.add(ks, key, "with entry names another peer than its message");
                }
            }
        }
    }
}

/// A nick entry names a message with that nick.
pub(crate) fn nick_links(store: &Store, key: &[u8], found: &mut Findings) -> Result<()> {
    let Ok((room, nick, seq)) = parse_nick_key(key) else {
        return Ok(());
    };
    found.check_target(
        store,
        (Keyspace::MamMucNick, key),
        (Keyspace::MamMuc, &keys::room_seq(room, seq)),
        |s: &StoredMuc| s.nick == nick,
        "nick entry names another nick than its message",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::codec;
    use crate::ext::mam::{Direction, PmMessage};
    use crate::jid::BareJid;

    /// A record whose archive time is before its own timestamp is reported.
    #[test]
    fn archive_time_before_timestamp_is_reported() {
        let store = Store::temporary().unwrap();
        let alice = BareJid::parse("alice@localhost").unwrap();
        store.accounts().create(&alice, "pw").unwrap();
        store
            .mam()
            .append(
                &alice,
                &PmMessage {
                    id: None,
                    timestamp: Timestamp::from_secs(100),
                    from: Jid::parse("alice@localhost/a").unwrap(),
                    to: Jid::parse("bob@localhost").unwrap(),
                    direction: Direction::Outgoing,
                    origin_id: None,
                    stanza: "<message/>".into(),
                },
            )
            .unwrap();
        assert!(crate::verify(&store).unwrap().problems.is_empty());
        let tree = store.tree(Keyspace::MamPm);
        let (k, v) = tree.iter().next().unwrap().unwrap();
        let mut s: StoredPm = decode(Keyspace::MamPm, &k, &v).unwrap();
        s.at -= 1;
        tree.insert(&k, codec::encode(&s)).unwrap();
        let found: Vec<String> = crate::verify(&store)
            .unwrap()
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.keyspace, p.what))
            .collect();
        assert_eq!(
            found,
            vec!["mam_pm: archive time earlier than the message's time".to_owned()]
        );
    }
}
