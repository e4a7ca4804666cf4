//! Verification of the mam keyspaces: key layouts, value types, and the links between
//! records, imported ids and the by-sender index.

use std::collections::BTreeSet;

use crate::codec;
use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::verify::Findings;

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

/// Archive ids whose records may exist: held by an account, or queued for sweeping.
pub(crate) struct Archives {
    /// Held by an account.
    pub(crate) held: BTreeSet<u64>,
    /// Queued in `sweep`: their records are being deleted.
    pub(crate) swept: BTreeSet<u64>,
}

pub(crate) fn live_archives(store: &Store) -> Result<Archives> {
    let mut held = BTreeSet::new();
    for entry in store.tree(Keyspace::Accounts) {
        let (key, value) = entry?;
        // A damaged account was reported by the entry pass.
        if let Ok(a) =
            codec::decode::<crate::ext::accounts::Account>(Keyspace::Accounts, &key, &value)
        {
            held.insert(a.archive);
        }
    }
    let mut swept = BTreeSet::new();
    for key in store.scan_keys(Keyspace::Sweep, &[]) {
        if let Ok(keys::SweepKey::Archive(a)) = keys::read_sweep_key(&key?) {
            swept.insert(a);
        }
    }
    Ok(Archives { held, swept })
}
