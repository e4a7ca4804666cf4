//! Message archives: 1-1 and group chat, ids, the by-sender index, GDPR cases R12-R14, D10.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use crate::util::*;
use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::gdpr::ExportOptions;
use jidstore::{BareJid, Error, Store, Timestamp};

/// One CSV of an export: header and data rows.
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Exports `subject` and parses every CSV; empty when the store holds nothing about it.
pub fn export(store: &Store, subject: &BareJid) -> BTreeMap<String, Csv> {
    let mut sink = Cursor::new(Vec::new());
    match jidstore::gdpr::retrieve(store, subject, &mut sink, &ExportOptions::default()) {
        Ok(_) => {}
        Err(Error::NoPersonalData(_)) => return BTreeMap::new(),
        Err(e) => panic!("export failed: {e}"),
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(sink.into_inner())).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        if std::path::Path::new(&name)
            .extension()
            .is_none_or(|e| e != "csv")
        {
            continue;
        }
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let header = rdr.headers().unwrap().iter().map(str::to_owned).collect();
        let rows = rdr
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        out.insert(name, Csv { header, rows });
    }
    out
}

/// Data rows of one table (none when the file or the whole export is absent).
pub fn rows(export: &BTreeMap<String, Csv>, file: &str) -> Vec<Vec<String>> {
    export.get(file).map(|c| c.rows.clone()).unwrap_or_default()
}

fn pm(from: &str, to: &str, dir: Direction, secs: i64, body: &str) -> PmMessage {
    PmMessage::new(
        Timestamp::from_secs(secs),
        full(from),
        full(to),
        dir,
        format!("<message type='chat'><body>{body}</body></message>"),
    )
}

fn muc(sender: &BareJid, nick: &str, secs: i64, body: &str) -> MucMessage {
    MucMessage::new(
        Timestamp::from_secs(secs),
        sender.clone(),
        nick.to_owned(),
        format!("<message type='groupchat'><body>{body}</body></message>"),
    )
}

/// Every room message has exactly one by-sender index entry, and back: checked through the
/// public API (rooms listed against senders' views) and the store's own index check.
fn assert_muc_index(store: &Store, rooms: &[&BareJid], senders: &[&BareJid]) {
    let mut by_room = BTreeSet::new();
    let mut total = 0;
    for room in rooms {
        for m in store.muc().list(room).unwrap() {
            assert!(by_room.insert((m.room.clone(), m.id.clone(), m.sender.clone())));
            total += 1;
        }
    }
    let mut by_sender = BTreeSet::new();
    for s in senders {
        for m in store.muc().by_sender(s).unwrap() {
            assert_eq!(&m.sender, *s);
            assert!(by_sender.insert((m.room.clone(), m.id.clone(), m.sender.clone())));
        }
    }
    assert_eq!(by_room, by_sender);
    // Every record has its by-sender entry and back (verify checks both ways).
    let report = jidstore::verify(store).unwrap();
    assert!(report.is_clean(), "{report}");
    let stats = jidstore::stats(store).unwrap();
    let entries = |name: &str| {
        stats
            .keyspaces
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .entries
    };
    assert_eq!(entries("mam_muc"), total);
    assert_eq!(entries("mam_muc_by_sender"), total);
}

#[test]
fn pm_append_get_list_remove_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    // Timestamps go backwards: archive order must not follow them.
    let mut ids = vec![];
    for (i, secs) in [300, 200, 100].into_iter().enumerate() {
        let m = pm(
            "alice@localhost/a",
            "bob@localhost",
            Direction::Outgoing,
            secs,
            &format!("m{i}"),
        );
        ids.push(store.mam().append(&alice, &m)?);
    }
    for id in &ids {
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids sort in archive order");
    let distinct: BTreeSet<_> = ids.iter().map(|i| &i[16..]).collect();
    assert_eq!(distinct.len(), 3, "random parts differ");

    let store = reopen(&dir, store);
    let list = store.mam().list(&alice)?;
    assert_eq!(list.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids);
    assert!(list[0].stanza.contains("m0"));
    assert_eq!(list[0].from.as_str(), "alice@localhost/a");
    assert_eq!(list[0].direction, Direction::Outgoing);
    let back: Vec<_> = store.mam().iter(&alice)?.rev().collect::<Result<_, _>>()?;
    assert_eq!(back.first().map(|m| &m.id), ids.last());
    assert_eq!(store.mam().get(&alice, &ids[1])?, Some(list[1].clone()));
    assert_eq!(store.mam().count(&alice)?, 3);

    // Same seq, other random half: not found. Unparseable: not found.
    let forged = format!("{}{:016x}", &ids[1][..16], 0u64);
    assert_eq!(store.mam().get(&alice, &forged)?, None);
    assert_eq!(store.mam().get(&alice, "nope")?, None);
    assert!(!store.mam().remove(&alice, &forged)?);

    assert!(store.mam().remove(&alice, &ids[1])?);
    assert!(!store.mam().remove(&alice, &ids[1])?);
    assert_eq!(store.mam().get(&alice, &ids[1])?, None);
    assert_eq!(store.mam().count(&alice)?, 2);
    Ok(())
}

#[test]
fn range_is_inclusive() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    for secs in [10, 20, 30, 40] {
        let m = pm("bob@x/r", "alice@localhost", Direction::Incoming, secs, "b");
        store.mam().append(&alice, &m)?;
    }
    let range = |start: Option<i64>, end: Option<i64>| -> Vec<i64> {
        let q = jidstore::ext::mam::Query {
            start: start.map(Timestamp::from_secs),
            end: end.map(Timestamp::from_secs),
            ..Default::default()
        };
        let page = store.mam().query(&alice, &q).unwrap();
        page.messages
            .iter()
            .map(|m| m.timestamp.as_secs())
            .collect()
    };
    assert_eq!(range(Some(20), Some(30)), vec![20, 30]);
    assert_eq!(range(None, Some(20)), vec![10, 20]);
    assert_eq!(range(Some(35), None), vec![40]);
    Ok(())
}

#[test]
fn imported_ids_kept_unique_and_removable() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let mut m = pm("bob@x/r", "alice@localhost", Direction::Incoming, 5, "old");
    m.id = Some("imported-1".into());
    assert_eq!(store.mam().append(&alice, &m)?, "imported-1");
    assert!(matches!(
        store.mam().append(&alice, &m),
        Err(Error::InvalidInput(_))
    ));
    // An imported id that looks native is still an imported id.
    let native_looking = "0000000000000001ffffffffffffffff".to_owned();
    m.id = Some(native_looking.clone());
    assert_eq!(store.mam().append(&alice, &m)?, native_looking);
    assert!(store.mam().append(&alice, &m).is_err());
    // A native id of the archive cannot be imported again.
    let native = store
        .mam()
        .append(&alice, &pm("a@b", "c@d", Direction::Incoming, 6, "n"))?;
    m.id = Some(native.clone());
    assert!(matches!(
        store.mam().append(&alice, &m),
        Err(Error::InvalidInput(_))
    ));
    let store = reopen(&dir, store);
    let got = store.mam().get(&alice, "imported-1")?.unwrap();
    assert_eq!(got.id, "imported-1");
    assert!(got.stanza.contains("old"));
    assert_eq!(
        store.mam().get(&alice, &native_looking)?.map(|m| m.id),
        Some(native_looking.clone())
    );
    assert_eq!(
        store.mam().list(&alice)?.last().map(|m| m.id.clone()),
        Some(native)
    );
    assert!(store.mam().remove(&alice, "imported-1")?);
    assert_eq!(store.mam().get(&alice, "imported-1")?, None);
    m.id = Some("imported-1".into());
    store.mam().append(&alice, &m)?;
    // The same imported id in another archive is fine.
    let bob = user(&store, "bob@localhost");
    store.mam().append(&bob, &m)?;
    Ok(())
}

#[test]
fn refuses_unknown_owner_and_bad_input() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    let m = pm("a@b", "c@d", Direction::Incoming, 1, "x");
    assert_no_account(store.mam().append(&ghost, &m));
    assert_eq!(store.mam().list(&ghost).unwrap(), vec![]);
    assert_eq!(store.mam().count(&ghost).unwrap(), 0);
    let alice = user(&store, "alice@localhost");
    let mut bad = m.clone();
    bad.stanza = "<message>".into();
    assert!(matches!(
        store.mam().append(&alice, &bad),
        Err(Error::InvalidInput(_))
    ));
    let mut bad = m;
    bad.id = Some("a\0b".into());
    assert!(matches!(
        store.mam().append(&alice, &bad),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn prefix_sharing_jids_never_mix() -> TestResult {
    let (dir, store) = store();
    let names = ["a@h", "a@h.org", "ab@h", "a@hh"];
    let jids: Vec<BareJid> = names.iter().map(|n| user(&store, n)).collect();
    let rooms: Vec<BareJid> = names.iter().map(|n| bare(n)).collect();
    for (i, j) in jids.iter().enumerate() {
        for _ in 0..=i {
            store.mam().append(
                j,
                &pm(j.as_str(), "z@z", Direction::Outgoing, 1, j.as_str()),
            )?;
            // Room named like the user, written by the user.
            store.muc().append(&rooms[i], &muc(j, "n", 1, j.as_str()))?;
        }
    }
    let store = reopen(&dir, store);
    for (i, j) in jids.iter().enumerate() {
        let list = store.mam().list(j)?;
        assert_eq!(list.len(), i + 1, "{j}");
        assert!(list.iter().all(|m| m.from.as_str() == j.as_str()));
        let room = store.muc().list(&rooms[i])?;
        assert_eq!(room.len(), i + 1);
        assert!(room.iter().all(|m| &m.sender == j && m.room == rooms[i]));
        let sent = store.muc().by_sender(j)?;
        assert_eq!(sent.len(), i + 1);
        assert_eq!(store.muc().count(&rooms[i])?, (i + 1) as u64);
    }
    let room_refs: Vec<&BareJid> = rooms.iter().collect();
    let jid_refs: Vec<&BareJid> = jids.iter().collect();
    assert_muc_index(&store, &room_refs, &jid_refs);
    Ok(())
}

#[test]
fn muc_remove_drops_the_message_and_its_index_entries() -> TestResult {
    let (_dir, store) = store();
    let room = bare("room@muc.localhost");
    let alice = bare("alice@localhost");
    let bob = bare("bob@localhost");
    let a1 = store.muc().append(&room, &muc(&alice, "al", 1, "one"))?;
    let b1 = store.muc().append(&room, &muc(&bob, "bo", 2, "two"))?;
    let mut imported = muc(&alice, "al", 3, "imp");
    imported.id = Some("muc-import".into());
    store.muc().append(&room, &imported)?;
    assert!(store.muc().remove(&room, &a1)?);
    assert!(
        !store.muc().remove(&room, &a1)?,
        "a second removal finds nothing"
    );
    assert!(store.muc().remove(&room, "muc-import")?);
    assert!(!store.muc().remove(&room, "no-such-id")?);
    let ids: Vec<String> = store.muc().list(&room)?.into_iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![b1.clone()]);
    assert!(store.muc().by_sender(&alice)?.is_empty());
    assert_eq!(store.muc().by_sender(&bob)?.len(), 1);
    // The imported id is free again, and the indexes agree with the records.
    store.muc().append(&room, &imported)?;
    assert_muc_index(&store, &[&room], &[&alice, &bob]);
    Ok(())
}

#[test]
fn muc_append_get_list_by_sender_reopen() -> TestResult {
    let (dir, store) = store();
    let room = bare("room@muc.localhost");
    let other = bare("other@muc.localhost");
    let alice = bare("alice@localhost");
    let remote = bare("carol@remote.example"); // no account needed
    let a1 = store.muc().append(&room, &muc(&alice, "al", 3, "one"))?;
    let r1 = store.muc().append(&room, &muc(&remote, "ca", 2, "two"))?;
    let a2 = store
        .muc()
        .append(&other, &muc(&alice, "al2", 1, "three"))?;
    let mut imported = muc(&alice, "al", 0, "imp");
    imported.id = Some("muc-import".into());
    assert_eq!(store.muc().append(&room, &imported)?, "muc-import");
    assert!(matches!(
        store.muc().append(&room, &imported),
        Err(Error::InvalidInput(_))
    ));
    store.muc().append(&other, &imported)?;
    let store = reopen(&dir, store);
    let list = store.muc().list(&room)?;
    assert_eq!(
        list.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![a1.as_str(), r1.as_str(), "muc-import"]
    );
    let got = store.muc().get(&room, &a1)?.unwrap();
    assert_eq!((got.nick.as_str(), got.room.clone()), ("al", room.clone()));
    assert_eq!(store.muc().get(&other, &a1)?, None);
    assert_eq!(store.muc().get(&room, "muc-import")?.unwrap().nick, "al");
    let sent: Vec<_> = store
        .muc()
        .by_sender(&alice)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(sent.len(), 4);
    assert!(sent.contains(&a1) && sent.contains(&a2));
    assert_eq!(store.muc().by_sender(&remote)?.len(), 1);
    assert_eq!(store.muc().count(&room)?, 3);
    assert_muc_index(&store, &[&room, &other], &[&alice, &remote]);
    Ok(())
}

/// R12 and D10: both archives hold the conversation; erasing alice leaves bob's copy.
#[test]
fn r12_d10_pm_export_and_erase() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let bob = user(&store, "bob@localhost");
    let a = "alice@localhost/res1";
    let b = "bob@localhost/res1";
    for (from, to, body) in [(a, b, "msg1"), (b, a, "msg2"), (a, b, "msg3")] {
        let out = from == a;
        let dir_a = if out {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        let dir_b = if out {
            Direction::Incoming
        } else {
            Direction::Outgoing
        };
        store.mam().append(&alice, &pm(from, to, dir_a, 1, body))?;
        store.mam().append(&bob, &pm(from, to, dir_b, 1, body))?;
    }
    for who in [&alice, &bob] {
        let ex = export(&store, who);
        assert_eq!(
            ex["mam_pm.csv"].header,
            ["id", "from", "message", "timestamp", "to", "direction"]
        );
        let r = rows(&ex, "mam_pm.csv");
        assert_eq!(r.len(), 3);
        assert_eq!(r[0][1], a);
        assert_eq!(r[1][1], b);
        assert_eq!(r[2][1], a);
        assert!(r[0][2].contains("msg1") && r[2][2].contains("msg3"));
        assert!(r[0][3].ends_with('Z'));
        assert!(rows(&ex, "mam_muc.csv").is_empty());
    }
    assert_eq!(
        rows(&export(&store, &alice), "mam_pm.csv")[0][5],
        "outgoing"
    );
    let mut imported = pm(a, b, Direction::Outgoing, 1, "imp");
    imported.id = Some("imported".into());
    store.mam().append(&alice, &imported)?;

    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed.get("mam_pm"), Some(&4));
    assert!(!store.accounts().exists(&alice)?);
    assert_eq!(store.mam().count(&alice)?, 0);
    let bob_rows = rows(&export(&store, &bob), "mam_pm.csv");
    assert_eq!(bob_rows.len(), 3, "bob keeps all 3 rows");
    // A name registered again starts with an empty archive.
    let alice = user(&store, "alice@localhost");
    assert_eq!(store.mam().count(&alice)?, 0);
    assert_eq!(store.mam().get(&alice, "imported")?, None);
    assert!(rows(&export(&store, &alice), "mam_pm.csv").is_empty());

    // The sweep ran: only bob's 3 messages remain on disk, and no imported-id mapping.
    store.flush()?;
    drop(store);
    let db = sled::open(dir.path().join("data"))?;
    // mam_pm holds records (tag `m` after the archive id) and their `with` entries (`w`).
    let pm = db.open_tree("mam_pm")?;
    let tags: Vec<u8> = pm.iter().keys().map(|k| k.unwrap()[8]).collect();
    assert_eq!(tags, b"mmmwww", "bob's 3 records, then their with entries");
    assert_eq!(db.open_tree("mam_pm_ids")?.len(), 0);
    assert_eq!(db.open_tree("sweep")?.len(), 0);
    Ok(())
}

/// R13: room messages are exported for their senders only; nobody gets 1-1 rows.
/// Erasing alice keeps them (named in the receipt) and they stay retrievable.
#[test]
fn r13_muc_export_and_kept_on_erase() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let kate = user(&store, "kate@localhost");
    let room = bare("room@muc.localhost");
    let ida = store
        .muc()
        .append(&room, &muc(&alice, "Alice", 1, "Hello from alice"))?;
    store
        .muc()
        .append(&room, &muc(&bob, "Bob", 2, "Hi from bob"))?;
    store
        .muc()
        .append(&room, &muc(&alice, "Alice", 3, "Bye from alice"))?;
    let ex = export(&store, &alice);
    assert_eq!(
        ex["mam_muc.csv"].header,
        ["id", "message", "room", "timestamp", "nick"]
    );
    let r = rows(&ex, "mam_muc.csv");
    assert_eq!(r.len(), 2);
    assert_eq!(r[0][0], ida);
    assert!(r[0][1].contains("Hello from alice") && r[1][1].contains("Bye from alice"));
    assert_eq!(
        (r[0][2].as_str(), r[0][4].as_str()),
        ("room@muc.localhost", "Alice")
    );
    assert_eq!(rows(&export(&store, &bob), "mam_muc.csv").len(), 1);
    let kate_ex = export(&store, &kate);
    assert!(rows(&kate_ex, "mam_muc.csv").is_empty());
    for who in [&alice, &bob, &kate] {
        assert!(rows(&export(&store, who), "mam_pm.csv").is_empty());
    }

    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    let kept = receipt.kept.iter().find(|k| k.class == "mam_muc").unwrap();
    assert_eq!(kept.rows, Some(2));
    assert_eq!(receipt.removed.get("mam_muc"), Some(&0));
    assert_eq!(store.muc().count(&room)?, 3);
    assert_eq!(rows(&export(&store, &alice), "mam_muc.csv"), r);
    assert_muc_index(&store, &[&room], &[&alice, &bob, &kate]);
    Ok(())
}

/// R14: a private message through a room lands in both 1-1 archives, not in the room's.
#[test]
fn r14_private_message_through_room() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let room_nick = "room@muc.localhost/alicenick";
    store.mam().append(
        &alice,
        &pm(
            "alice@localhost/res1",
            "room@muc.localhost/bobnick",
            Direction::Outgoing,
            1,
            "psst",
        ),
    )?;
    store.mam().append(
        &bob,
        &pm(
            room_nick,
            "bob@localhost/res1",
            Direction::Incoming,
            1,
            "psst",
        ),
    )?;
    let a = export(&store, &alice);
    let b = export(&store, &bob);
    assert_eq!(rows(&a, "mam_pm.csv")[0][1], "alice@localhost/res1");
    assert_eq!(rows(&b, "mam_pm.csv")[0][1], room_nick);
    assert_eq!(rows(&a, "mam_pm.csv").len(), 1);
    assert_eq!(rows(&b, "mam_pm.csv").len(), 1);
    assert!(rows(&a, "mam_muc.csv").is_empty() && rows(&b, "mam_muc.csv").is_empty());
    Ok(())
}

/// A remote sender without an account has room messages only: export works, erasure keeps
/// them and says so instead of failing.
#[test]
fn remote_sender_without_account() -> TestResult {
    let (_dir, store) = store();
    let carol = bare("carol@remote.example");
    let room = bare("room@muc.localhost");
    store.muc().append(&room, &muc(&carol, "c", 1, "hi"))?;
    assert_eq!(rows(&export(&store, &carol), "mam_muc.csv").len(), 1);
    let receipt = jidstore::gdpr::remove(&store, &carol)?;
    assert_eq!(
        receipt
            .kept
            .iter()
            .find(|k| k.class == "mam_muc")
            .unwrap()
            .rows,
        Some(1)
    );
    assert_eq!(store.muc().count(&room)?, 1);
    Ok(())
}
