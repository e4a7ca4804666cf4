//! Store verification: a clean store is clean; damaged values, unparsable keys, dangling
//! and missing index entries and orphaned records are each reported by keyspace and key,
//! through the library and through `jidstore verify`.

use jidstore::__internal::keys::{self, Keyspace};
use jidstore::__internal::sample;
use jidstore::ext::inbox::DEFAULT_BOX;
use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::{BareJid, Store, Timestamp, VerifyReport};

use crate::util::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// A time (seconds) after every message of the sample, which starts at 0 and spans an hour.
const LATER: i64 = 10_000;

/// The sample deployment (`jidstore::__internal::sample`, what `jidstore demo` builds:
/// every data class) plus what it leaves out, so that every keyspace holds an entry: an
/// audit log entry, 1-1 and room messages with imported ids, and a sweep-queue marker (as
/// an erasure interrupted before its sweep leaves it). The pubsub cases below use bob's
/// node `bob-blog` on `pubsub.localhost`, where alice (publish-only, subscribed) has the
/// item `guest-post`. Returns (alice, bob).
pub fn populate(store: &Store) -> (BareJid, BareJid) {
    let s = sample::populate(store, at(0)).unwrap();
    // The audit log: an entry and its hash key.
    jidstore::gdpr::audit::record(
        store,
        jidstore::gdpr::audit::Action::Retrieve,
        Some(&s.alice),
        &[("rows", 1)],
        jidstore::gdpr::audit::Outcome::Ok,
    )
    .unwrap();
    assert_eq!(
        store
            .inbox()
            .get(&s.alice, &s.bob)
            .unwrap()
            .unwrap()
            .mailbox,
        DEFAULT_BOX
    );
    imported(store, &s.alice, &s.room);
    store
        .raw_tree(Keyspace::Sweep)
        .insert(
            keys::archive(u64::MAX),
            jidstore::__internal::codec::marker(),
        )
        .unwrap();
    (s.alice, s.bob)
}

/// A 1-1 and a room message with imported ids, after the sample's own.
fn imported(store: &Store, alice: &BareJid, room: &BareJid) {
    store
        .mam()
        .append(
            alice,
            &PmMessage {
                id: Some("imported-1".to_owned()),
                timestamp: at(LATER),
                from: full("alice@localhost/a"),
                to: full("bob@localhost"),
                direction: Direction::Outgoing,
                origin_id: None,
                stanza: "<message><body>x</body></message>".into(),
            },
        )
        .unwrap();
    store
        .muc()
        .append(
            room,
            &MucMessage {
                id: Some("room-imported-1".to_owned()),
                timestamp: at(LATER),
                sender: alice.clone(),
                nick: "alice".into(),
                stanza: "<message type='groupchat'/>".into(),
            },
        )
        .unwrap();
}

/// The problems naming `ks` and the escaped `key`.
fn problems_at(report: &VerifyReport, ks: Keyspace, key: &[u8]) -> Vec<String> {
    let key = keys::escape_key(key);
    report
        .problems
        .iter()
        .filter(|p| p.keyspace == ks.name() && p.key == key)
        .map(|p| p.what.clone())
        .collect()
}

fn first_entry(
    store: &Store,
    ks: Keyspace,
) -> (jidstore::__internal::Bytes, jidstore::__internal::Bytes) {
    store
        .raw_tree(ks)
        .iter()
        .next()
        .unwrap_or_else(|| panic!("{} is empty", ks.name()))
        .unwrap()
}

#[test]
fn clean_store_is_clean() -> TestResult {
    let (_dir, store) = store();
    let empty = jidstore::verify(&store)?;
    assert!(empty.is_clean(), "{empty}");
    populate(&store);
    let report = jidstore::verify(&store)?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.keyspaces.len(), Keyspace::ALL.len());
    for (name, n) in &report.keyspaces {
        assert!(
            *n > 0,
            "{name} is empty: populate() must reach every keyspace"
        );
    }
    assert_eq!(
        report.entries,
        report.keyspaces.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert!(report.to_string().ends_with("clean\n"), "{report}");
    Ok(())
}

#[test]
fn erased_user_leaves_a_clean_store() -> TestResult {
    let (dir, store) = store();
    let (alice, bob) = populate(&store);
    jidstore::gdpr::remove(&store, &alice)?;
    let report = jidstore::verify(&store)?;
    assert!(report.is_clean(), "{report}");
    jidstore::gdpr::remove(&store, &bob)?;
    let store = reopen(&dir, store);
    let report = jidstore::verify(&store)?;
    assert!(report.is_clean(), "{report}");
    Ok(())
}

/// Truncating any value, and flipping a byte of any checksummed value, is reported at that
/// keyspace and key; the rest of the store is still checked (no stop at the first problem).
#[test]
fn damaged_value_in_any_keyspace_is_reported() -> TestResult {
    let (_dir, store) = store();
    populate(&store);
    let mut damaged = Vec::new();
    for ks in Keyspace::ALL {
        let (key, value) = first_entry(&store, *ks);
        let mut bad = value.to_vec();
        bad.pop();
        store.raw_tree(*ks).insert(&key, bad)?;
        damaged.push((*ks, key, value));
    }
    let report = jidstore::verify(&store)?;
    for (ks, key, _) in &damaged {
        assert!(
            !problems_at(&report, *ks, key).is_empty(),
            "truncated {} {} not reported:\n{report}",
            ks.name(),
            keys::escape_key(key)
        );
    }
    for (ks, key, value) in damaged {
        store.raw_tree(ks).insert(&key, value)?;
    }
    assert!(jidstore::verify(&store)?.is_clean());

    let raw = [
        Keyspace::Meta,
        Keyspace::MamPmIds,
        Keyspace::MamMucIds,
        Keyspace::Sweep,
    ];
    for ks in Keyspace::ALL.iter().filter(|k| !raw.contains(k)) {
        let (key, value) = first_entry(&store, *ks);
        let mut bad = value.to_vec();
        bad[1] ^= 0x40;
        store.raw_tree(*ks).insert(&key, bad)?;
        let report = jidstore::verify(&store)?;
        assert_eq!(
            problems_at(&report, *ks, &key),
            vec!["checksum mismatch".to_owned()],
            "{report}"
        );
        store.raw_tree(*ks).insert(&key, value)?;
    }
    Ok(())
}

#[test]
fn vcard_flip_names_keyspace_and_key() -> TestResult {
    let (_dir, store) = store();
    let (alice, _) = populate(&store);
    let key = keys::owner(&alice);
    let mut v = store.raw_tree(Keyspace::Vcard).get(&key)?.unwrap().to_vec();
    let mid = v.len() / 2;
    v[mid] ^= 1;
    store.raw_tree(Keyspace::Vcard).insert(&key, v)?;
    let report = jidstore::verify(&store)?;
    assert_eq!(report.problems.len(), 1, "{report}");
    let p = &report.problems[0];
    assert_eq!(p.keyspace, "vcard");
    assert_eq!(p.key, "alice@localhost\\x00");
    assert!(report.to_string().contains("vcard alice@localhost\\x00"));
    Ok(())
}

#[test]
fn unparsable_keys_are_reported() -> TestResult {
    let (_dir, store) = store();
    populate(&store);
    let marker = jidstore::__internal::codec::marker();
    let cases: [(Keyspace, &[u8]); 6] = [
        (Keyspace::PubsubItems, b"no separators"),
        (Keyspace::MamPm, b"short"),
        (Keyspace::Offline, b"alice@localhost\0abc"),
        (Keyspace::Roster, b"alice@localhost\0Xbob@localhost"),
        (Keyspace::Meta, b"other"),
        (Keyspace::Sweep, b"123456789"),
    ];
    for (ks, key) in cases {
        store.raw_tree(ks).insert(key, marker.clone())?;
    }
    let report = jidstore::verify(&store)?;
    for (ks, key) in cases {
        assert!(
            !problems_at(&report, ks, key).is_empty(),
            "{} {:?}: {report}",
            ks.name(),
            key
        );
    }
    Ok(())
}

/// For each record keyspace and its index: deleting the index entry is reported on the
/// record as a missing index entry, deleting the record on the index entry as dangling.
#[test]
fn missing_and_dangling_index_entries_are_reported() -> TestResult {
    let (_dir, store) = store();
    let (alice, _) = populate(&store);
    let service = bare("pubsub.localhost");
    let s = service.as_str();
    let a = alice.as_str();
    let muc_key = first_entry(&store, Keyspace::MamMuc).0;
    let mut r = keys::KeyReader::new(Keyspace::MamMuc, &muc_key);
    let room = r.part()?.to_owned();
    let seq = r.u64()?;
    let pairs: Vec<(Keyspace, Vec<u8>, Keyspace, Vec<u8>)> = vec![
        (
            Keyspace::MamMuc,
            muc_key.to_vec(),
            Keyspace::MamMucBySender,
            keys::sender_room_seq(a, &room, seq),
        ),
        (
            Keyspace::PubsubNodes,
            keys::pair_tail(s, "bob-blog"),
            Keyspace::PubsubNodesByOwner,
            keys::triple_tail("bob@localhost", s, "bob-blog"),
        ),
        (
            Keyspace::PubsubItems,
            keys::triple_tail(s, "bob-blog", "guest-post"),
            Keyspace::PubsubItemsByPublisher,
            keys::quad_tail(a, s, "bob-blog", "guest-post"),
        ),
        (
            Keyspace::PubsubSubs,
            keys::triple_tail(s, "bob-blog", a),
            Keyspace::PubsubSubsBySubscriber,
            keys::triple_tail(a, s, "bob-blog"),
        ),
        (
            Keyspace::PubsubAffs,
            keys::triple_tail(s, "bob-blog", a),
            Keyspace::PubsubAffsByJid,
            keys::triple_tail(a, s, "bob-blog"),
        ),
    ];
    for (rec_ks, rec, idx_ks, idx) in &pairs {
        let saved = store.raw_tree(*idx_ks).remove(idx)?.expect("index entry");
        let report = jidstore::verify(&store)?;
        assert_eq!(
            problems_at(&report, *rec_ks, rec),
            vec![format!("missing index entry in {}", idx_ks.name())],
            "{report}"
        );
        assert_eq!(report.problems.len(), 1, "{report}");
        store.raw_tree(*idx_ks).insert(idx, saved)?;

        let saved = store.raw_tree(*rec_ks).remove(rec)?.expect("record");
        let report = jidstore::verify(&store)?;
        assert_eq!(
            problems_at(&report, *idx_ks, idx),
            vec![format!(
                "dangling index entry: no record in {}",
                rec_ks.name()
            )],
            "{report}"
        );
        store.raw_tree(*rec_ks).insert(rec, saved)?;
    }
    assert!(jidstore::verify(&store)?.is_clean());
    Ok(())
}

#[test]
fn imported_ids_orphans_and_nodeless_records_are_reported() -> TestResult {
    let (_dir, store) = store();
    let (alice, _) = populate(&store);
    // An imported id whose message is gone.
    for (ids, records) in [
        (Keyspace::MamPmIds, Keyspace::MamPm),
        (Keyspace::MamMucIds, Keyspace::MamMuc),
    ] {
        let (id_key, seq) = first_entry(&store, ids);
        let target: Vec<u8> = store
            .raw_tree(records)
            .iter()
            .map(|kv| kv.unwrap().0)
            .find(|k| k.ends_with(&seq))
            .expect("message of the imported id")
            .to_vec();
        let saved = store.raw_tree(records).remove(&target)?.unwrap();
        let report = jidstore::verify(&store)?;
        assert_eq!(
            problems_at(&report, ids, &id_key),
            vec![format!(
                "dangling index entry: no record in {}",
                records.name()
            )],
            "{report}"
        );
        store.raw_tree(records).insert(&target, saved.clone())?;
        store.raw_tree(ids).remove(&id_key)?;
        let report = jidstore::verify(&store)?;
        assert_eq!(
            problems_at(&report, records, &target),
            vec![format!("missing index entry in {}", ids.name())],
            "{report}"
        );
        store.raw_tree(ids).insert(&id_key, seq)?;
    }
    assert!(jidstore::verify(&store)?.is_clean());

    // A 1-1 message in an archive nobody holds.
    let (_, value) = first_entry(&store, Keyspace::MamPm);
    let orphan = keys::archive_seq(u64::MAX - 1, 1);
    store.raw_tree(Keyspace::MamPm).insert(&orphan, value)?;
    let report = jidstore::verify(&store)?;
    let at_orphan = problems_at(&report, Keyspace::MamPm, &orphan);
    assert!(
        at_orphan
            .iter()
            .any(|w| w.starts_with("message of an archive that no account holds")),
        "{report}"
    );
    store.raw_tree(Keyspace::MamPm).remove(&orphan)?;

    // Items, subscriptions and affiliations of a node record that is gone.
    let (srv, a) = ("pubsub.localhost", alice.as_str());
    store
        .raw_tree(Keyspace::PubsubNodes)
        .remove(keys::pair_tail(srv, "bob-blog"))?;
    let report = jidstore::verify(&store)?;
    for (ks, key, what) in [
        (
            Keyspace::PubsubItems,
            keys::triple_tail(srv, "bob-blog", "guest-post"),
            "item",
        ),
        (
            Keyspace::PubsubSubs,
            keys::triple_tail(srv, "bob-blog", a),
            "subscription",
        ),
        (
            Keyspace::PubsubAffs,
            keys::triple_tail(srv, "bob-blog", a),
            "affiliation",
        ),
    ] {
        assert!(
            problems_at(&report, ks, &key)
                .contains(&format!("{what} of a node that does not exist")),
            "{report}"
        );
    }
    Ok(())
}

#[test]
fn cli_verify_exit_codes_and_damaged_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let store = jidstore::Config::new(&data).scram_iterations(16).open()?;
    let (alice, _) = populate(&store);
    store.flush()?;
    drop(store);
    let r = jidstore_settled(&data, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("clean"), "{}", r.stdout);

    let store = jidstore::Config::new(&data).scram_iterations(16).open()?;
    let key = keys::owner(&alice);
    let mut v = store.raw_tree(Keyspace::Last).get(&key)?.unwrap().to_vec();
    v[2] ^= 0xff;
    store.raw_tree(Keyspace::Last).insert(&key, v)?;
    store
        .raw_tree(Keyspace::MamMucBySender)
        .remove(first_entry(&store, Keyspace::MamMucBySender).0)?;
    store.flush()?;
    drop(store);
    let r = jidstore_settled(&data, &["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("last alice@localhost\\x00: checksum mismatch"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("mam_muc ") && r.stdout.contains("missing index entry"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("2 problem(s)"), "{}", r.stderr);

    let missing = dir.path().join("nowhere");
    let r = jidstore(&missing, &["verify"]);
    assert_eq!(r.code, 1);
    assert!(!missing.exists(), "verify must not create a data dir");
    Ok(())
}

/// The archive query indexes and archive times: a removed `with` or nick entry, and records
/// whose archive time goes backwards in archive order, are each reported.
#[test]
fn query_index_damage_is_reported() -> TestResult {
    let (_dir, store) = store();
    let (alice, _) = populate(&store);
    let whats = |store: &Store| -> Vec<String> {
        jidstore::verify(store)
            .unwrap()
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.keyspace, p.what))
            .collect()
    };
    assert!(whats(&store).is_empty());
    // The first `with` entry of mam_pm (tag `w` after the archive id) and a nick entry.
    let with_entry = store
        .raw_tree(Keyspace::MamPm)
        .iter()
        .map(Result::unwrap)
        .find(|(k, _)| k[8] == keys::PM_WITH)
        .unwrap();
    for (ks, (key, value), expected) in [
        (
            Keyspace::MamPm,
            with_entry,
            "mam_pm: missing index entry in mam_pm",
        ),
        (
            Keyspace::MamMucNick,
            first_entry(&store, Keyspace::MamMucNick),
            "mam_muc: missing index entry in mam_muc_nick",
        ),
    ] {
        store.raw_tree(ks).remove(&key)?;
        let found = whats(&store);
        assert!(found.iter().any(|w| w == expected), "{ks:?}: {found:?}");
        store.raw_tree(ks).insert(key, value)?;
        assert!(whats(&store).is_empty());
    }
    // Two later messages, then swap their records: archive time would go backwards along
    // archive order (the binary search of start/end relies on it never doing so).
    for secs in [LATER + 10, LATER + 20] {
        store.mam().append(
            &alice,
            &PmMessage::new(
                at(secs),
                full("alice@localhost/a"),
                full("bob@localhost"),
                Direction::Outgoing,
                "<message><body>y</body></message>",
            ),
        )?;
    }
    assert!(whats(&store).is_empty());
    let t = store.raw_tree(Keyspace::MamPm);
    let records: Vec<_> = t
        .iter()
        .map(Result::unwrap)
        .filter(|(k, _)| k[8] == keys::PM_RECORD)
        .collect();
    let (earlier, later) = (&records[records.len() - 2], &records[records.len() - 1]);
    t.insert(&earlier.0, later.1.clone())?;
    t.insert(&later.0, earlier.1.clone())?;
    let found = whats(&store);
    assert_eq!(
        found,
        vec!["mam_pm: archive time goes backwards in archive order".to_owned()]
    );
    Ok(())
}

/// Blocks of bulk-ingested records: a damaged block is reported at its key, and an entry
/// that overlaps the one before it (which would hide messages from queries) is reported.
#[test]
fn archive_block_damage_and_overlap_are_reported() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    store.mam().append_bulk(
        &alice,
        (0..20).map(|i| {
            PmMessage::new(
                at(i),
                full("bob@localhost/a"),
                full("alice@localhost"),
                Direction::Incoming,
                format!("<message><body>{i}</body></message>"),
            )
        }),
    )?;
    assert!(jidstore::verify(&store)?.is_clean());
    let t = store.raw_tree(Keyspace::MamPm);
    let (key, value) = first_entry(&store, Keyspace::MamPm);
    assert_eq!(value.first(), Some(&2), "the first record entry is a block");
    // The same block once more, one seq lower: it overlaps the block at `key`.
    let seq = keys::trailing_seq(Keyspace::MamPm, &key)?;
    let mut lower = key.to_vec();
    let at_seq = lower.len() - 8;
    lower.truncate(at_seq);
    lower.extend_from_slice(&(seq - 1).to_be_bytes());
    t.insert(&lower, value.clone())?;
    let report = jidstore::verify(&store)?;
    let at_key = problems_at(&report, Keyspace::MamPm, &key);
    assert!(
        at_key.contains(&"entry overlaps the entry before it".to_owned()),
        "{report}"
    );
    t.remove(&lower)?;
    // One flipped byte in the block: reported at the block's key, nothing else decodes it.
    let mut bad = value.to_vec();
    bad[20] ^= 0x40;
    t.insert(&key, bad)?;
    let report = jidstore::verify(&store)?;
    assert!(
        problems_at(&report, Keyspace::MamPm, &key)
            .iter()
            .any(|w| w.contains("checksum mismatch")),
        "{report}"
    );
    assert!(
        store.mam().list(&alice).is_err(),
        "a damaged block is an error, not a gap"
    );
    t.insert(&key, value)?;
    assert!(jidstore::verify(&store)?.is_clean());
    Ok(())
}
