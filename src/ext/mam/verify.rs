//! Verification of the mam keyspaces: key layouts, value types, and the links between
//! records, imported ids and the by-sender index.

use std::collections::BTreeSet;

use crate::codec;
use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::verify::{Entry, Findings};

use super::archive::{Archive, Pm, Room, record};
use super::id::StoredId;
use super::stored::{
    StoredMuc, StoredPm, corrupt, parse_muc_id_key, parse_pm_id_key, parse_pm_key, parse_room_key,
    parse_sender_entry, pm_key_kind,
};

/// Checks one stored entry of a mam keyspace: key layout and value type. Used by
/// [`crate::verify()`].
pub(crate) fn verify_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    use crate::codec::decode;
    match ks {
        Keyspace::MamPm => {
            if pm_key_kind(key)?.1 == keys::PM_WITH {
                return super::indexes::verify_with_entry(key, value);
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

/// Cross-checks the mam keyspaces, one entry at a time in the pass of [`crate::verify()`]:
/// room messages and their by-sender index both ways, imported ids and their messages both
/// ways, 1-1 messages and the archive that holds them, and the query indexes (see
/// `indexes`). It learns the archives that may hold records from the entries of
/// `accounts` and `sweep`, which the pass reads first.
#[derive(Default)]
pub(crate) struct Links {
    archives: Archives,
    indexes: super::indexes::Walks,
}

impl crate::verify::Links for Links {
    fn entry(&mut self, store: &Store, e: Entry<'_>, found: &mut Findings) -> Result<()> {
        let Entry { ks, key, value } = e;
        let archives = &mut self.archives;
        match ks {
            Keyspace::Accounts => {
                // A damaged account was reported by the entry check.
                if let Ok(a) = codec::decode::<crate::ext::accounts::StoredAccount>(ks, key, value)
                {
                    archives.held.insert(a.archive);
                }
            }
            Keyspace::Sweep => {
                if let Ok(keys::SweepKey::Archive(a)) = keys::read_sweep_key(key) {
                    archives.swept.insert(a);
                }
            }
            Keyspace::MamPm => {
                pm_links(store, archives, key, value, found)?;
                self.indexes.pm_entry(store, archives, key, value, found);
            }
            Keyspace::MamPmIds => pm_id_links(store, archives, key, value, found),
            Keyspace::MamMuc => {
                room_links(store, key, value, found)?;
                self.indexes.room_entry(store, key, value, found)?;
            }
            Keyspace::MamMucBySender => sender_links(store, key, found)?,
            Keyspace::MamMucIds => room_id_links(store, key, value, found),
            Keyspace::MamMucNick => super::indexes::nick_links(store, key, found)?,
            _ => {}
        }
        Ok(())
    }
}

/// A room message has its by-sender index entry and, with an imported id, its id entry.
fn room_links(store: &Store, key: &[u8], value: &[u8], found: &mut Findings) -> Result<()> {
    let (Ok((room, seq)), Ok(s)) = (
        parse_room_key(key),
        codec::decode::<StoredMuc>(Keyspace::MamMuc, key, value),
    ) else {
        return Ok(());
    };
    found.require_index(
        store,
        (Keyspace::MamMuc, key),
        (
            Keyspace::MamMucBySender,
            &keys::sender_room_seq(&s.sender, room, seq),
        ),
    )?;
    if let StoredId::Foreign(id) = &s.id {
        found.require_index(
            store,
            (Keyspace::MamMuc, key),
            (Keyspace::MamMucIds, &keys::pair_tail(room, id)),
        )?;
    }
    Ok(())
}

/// A by-sender entry names a message of that sender.
fn sender_links(store: &Store, key: &[u8], found: &mut Findings) -> Result<()> {
    let Ok((sender, room, seq)) = parse_sender_entry(key) else {
        return Ok(());
    };
    found.check_target(
        store,
        (Keyspace::MamMucBySender, key),
        (Keyspace::MamMuc, &keys::room_seq(room, seq)),
        |s: &StoredMuc| s.sender == sender,
        "index entry names a message from another sender",
    )
}

/// A room's imported id names a message with that id.
fn room_id_links(store: &Store, key: &[u8], value: &[u8], found: &mut Findings) {
    let (Ok((room, id)), Ok(seq)) = (
        parse_muc_id_key(key),
        keys::read_u64_value(Keyspace::MamMucIds, key, value),
    ) else {
        return;
    };
    let room = BareJid::from_stored(room.to_owned());
    verify_id_target(store, found, (key, id), (&Room(&room), seq));
}

/// A 1-1 entry belongs to an archive an account holds or a sweep is queued for, and a
/// record's messages with imported ids have their id entries.
fn pm_links(
    store: &Store,
    archives: &Archives,
    key: &[u8],
    value: &[u8],
    found: &mut Findings,
) -> Result<()> {
    let Ok((archive, tag)) = pm_key_kind(key) else {
        return Ok(());
    };
    if !archives.live(archive) {
        found.add(
            Keyspace::MamPm,
            key,
            "message of an archive that no account holds and no sweep is queued for",
        );
    }
    // Records only; entries that do not parse or decode were reported already.
    if tag != keys::PM_RECORD {
        return Ok(());
    }
    let Ok((_, seq)) = parse_pm_key(key) else {
        return Ok(());
    };
    let Ok(e) = codec::entries(Keyspace::MamPm, key, value, seq) else {
        return Ok(());
    };
    for i in 0..e.len() {
        if let Ok((_, s)) = e.decode::<StoredPm>(i)
            && let StoredId::Foreign(id) = &s.id
        {
            found.require_index(
                store,
                (Keyspace::MamPm, key),
                (Keyspace::MamPmIds, &keys::archive_foreign_id(archive, id)),
            )?;
        }
    }
    Ok(())
}

/// A 1-1 imported id belongs to a live archive and names a message with that id.
fn pm_id_links(store: &Store, archives: &Archives, key: &[u8], value: &[u8], found: &mut Findings) {
    let (Ok((archive, id)), Ok(seq)) = (
        parse_pm_id_key(key),
        keys::read_u64_value(Keyspace::MamPmIds, key, value),
    ) else {
        return;
    };
    if archives.swept.contains(&archive) {
        // Being swept: records go before their ids, so ids may outlive them briefly.
        return;
    }
    if !archives.live(archive) {
        found.add(
            Keyspace::MamPmIds,
            key,
            "imported id of an archive that no account holds",
        );
        return;
    }
    verify_id_target(store, found, (key, id), (&Pm(archive), seq));
}

/// Archive ids whose records may exist: held by an account, or queued for sweeping.
#[derive(Default)]
pub(crate) struct Archives {
    /// Held by an account.
    pub(crate) held: BTreeSet<u64>,
    /// Queued in `sweep`: their records are being deleted.
    pub(crate) swept: BTreeSet<u64>,
}

impl Archives {
    fn live(&self, archive: u64) -> bool {
        self.held.contains(&archive) || self.swept.contains(&archive)
    }
}
