//! Golden bytes of the on-disk format (issue 14, item 4): every key layout of [`crate::keys`]
//! and every stored value schema, pinned as the exact bytes of a known example. A change to
//! a layout, to a stored record's fields (order, types, an added one) or to the codec's
//! framing fails here, and such a change is a new format version (see README "On-disk
//! format"), never an edit of these literals. The committed stores in `tests/fixtures/`
//! check the other direction: that what older builds wrote is still read.
//!
//! Values are pinned as a class writes them, through the public API into a fresh temporary
//! store, then read raw from each keyspace: what is pinned is what reaches the disk, private
//! record types included. Inputs are fixed (times, salts, imported ids). Ids drawn from the
//! store's generator (archive ids, seqs) are deterministic in a fresh store: a build that
//! draws them in another order moves those bytes only, which is no format change. The
//! random half of a native archive id is masked (and the CRC over it, checked first).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a failure is a failed test"
)]

use std::fmt::Write as _;

use crate::codec;
use crate::ext::mam::{Direction, MucMessage, PmMessage};
use crate::ext::offline::OfflineMessage;
use crate::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};
use crate::ext::pubsub::{Affiliation, Node, NodeType, SubState};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::ext::scram::{Mechanism, Verifier};
use crate::keys::{self, Keyspace};
use crate::{BareJid, Jid, Store, Timestamp};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn j(s: &str) -> BareJid {
    BareJid::parse(s).unwrap()
}

fn full(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

/// 2001-09-09T01:46:40Z: 10^9 seconds, a time whose varint is easy to read.
const T: Timestamp = Timestamp::from_secs(1_000_000_000);

/// A fresh store with one account (`alice@x`, fixed verifier and creation time): every
/// owner-keyed class needs one.
fn store_with_alice() -> Store {
    let store = Store::temporary().unwrap();
    let verifier = Verifier {
        mechanism: Mechanism::Sha256,
        salt: vec![0x5a; 4],
        iterations: 4096,
        stored_key: vec![0xaa; 4],
        server_key: vec![0xbb; 4],
    };
    store
        .accounts()
        .create_with_verifiers(&j("alice@x"), vec![verifier], T)
        .unwrap();
    store
}

/// Every entry of `ks` as (key hex, value hex), in key order; a native archive id's random
/// half and the CRC over it are masked (`r`, `c`) once the CRC is checked.
fn dump(store: &Store, ks: Keyspace) -> Vec<(String, String)> {
    store
        .tree(ks)
        .iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (hex(&k), mask_native(ks, &v))
        })
        .collect()
}

fn mask_native(ks: Keyspace, v: &[u8]) -> String {
    let native = matches!(ks, Keyspace::MamPm | Keyspace::MamMuc)
        && v.len() > 15
        && v[..3] == [codec::VALUE_VERSION, 0, 0xfd];
    if !native {
        return hex(v);
    }
    let (body, crc) = v.split_at(v.len() - 4);
    assert_eq!(
        crc32fast::hash(body).to_be_bytes(),
        crc,
        "CRC of a native record"
    );
    format!(
        "{}{}{}{}",
        hex(&v[..3]),
        "r".repeat(16),
        hex(&v[11..v.len() - 4]),
        "c".repeat(8)
    )
}

/// Compares (label, hex) pairs with the pinned ones; on a mismatch prints what was found,
/// one pair a line.
fn pinned(what: &str, got: &[(String, String)], want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if got != want {
        let mut s = String::new();
        for (k, v) in got {
            let _ = writeln!(s, "    (\"{k}\", \"{v}\"),");
        }
        panic!("{what}: other bytes than pinned:\n{s}");
    }
}

/// Compares the entries of `spaces` with the pinned ones: ("keyspace key-hex", value hex).
fn check(store: &Store, spaces: &[Keyspace], expected: &[(&str, &str)]) {
    let got: Vec<(String, String)> = spaces
        .iter()
        .flat_map(|ks| {
            dump(store, *ks)
                .into_iter()
                .map(|(k, v)| (format!("{} {k}", ks.name()), v))
        })
        .collect();
    pinned("stored entries", &got, expected);
}

#[test]
fn keyspace_names_and_constants() {
    let names: Vec<&str> = Keyspace::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "meta",
            "accounts",
            "roster",
            "vcard",
            "private",
            "offline",
            "inbox",
            "mam_pm",
            "mam_pm_ids",
            "mam_muc",
            "mam_muc_ids",
            "mam_muc_by_sender",
            "mam_muc_nick",
            "pubsub_nodes",
            "pubsub_nodes_by_owner",
            "pubsub_items",
            "pubsub_items_by_publisher",
            "pubsub_subs",
            "pubsub_subs_by_subscriber",
            "pubsub_affs",
            "pubsub_affs_by_jid",
            "last",
            "privacy",
            "blocklist",
            "generic_kv",
            "generic_archive",
            "sweep",
            "audit",
        ]
    );
    assert_eq!(keys::MAGIC, b"jidstore");
    assert_eq!(keys::META_MAGIC, b"magic");
    assert_eq!(keys::META_FORMAT, b"format");
    assert_eq!(keys::META_FLUSHED, b"flushed");
    assert_eq!((keys::FORMAT_VERSION, keys::OLDEST_FORMAT), (2, 1));
    assert_eq!((keys::PM_RECORD, keys::PM_WITH), (b'm', b'w'));
    assert_eq!(keys::SWEEP_RANGE, b"\xffrange\0");
    assert_eq!((codec::VALUE_VERSION, codec::BLOCK_TAG), (1, 2));
}

#[test]
fn key_layouts() {
    let a = j("al@x");
    let cases: [(&str, Vec<u8>); 24] = [
        ("owner", keys::owner(&a)),
        ("owner_and", keys::owner_and(&a, "ns")),
        ("owner_tag", keys::owner_tag(&a, b'I')),
        ("owner_tag_and", keys::owner_tag_and(&a, b'I', "bo@x")),
        ("owner_seq", keys::owner_seq(&a, 0x0102)),
        ("owner_part", keys::owner_part(&a, "st")),
        ("owner_part_seq", keys::owner_part_seq(&a, "st", 3)),
        ("archive", keys::archive(0x0a0b)),
        ("sweep_range", keys::sweep_range(Keyspace::Vcard, b"al@x\0")),
        ("archive_records", keys::archive_records(7)),
        ("archive_seq", keys::archive_seq(7, 9)),
        ("archive_foreign_id", keys::archive_foreign_id(7, "id1")),
        ("pair", keys::pair("s@x", "n")),
        ("pair_tail", keys::pair_tail("s@x", "n")),
        ("triple_tail", keys::triple_tail("s@x", "n", "i")),
        ("quad_tail", keys::quad_tail("p@x", "s@x", "n", "i")),
        ("room_seq", keys::room_seq("r@m", 5)),
        ("sender_room_seq", keys::sender_room_seq("al@x", "r@m", 5)),
        ("archive_with", keys::archive_with(7, "bo@x")),
        ("archive_with_seq", keys::archive_with_seq(7, "bo@x", 9)),
        ("room_nick", keys::room_nick("r@m", "ni")),
        ("room_nick_seq", keys::room_nick_seq("r@m", "ni", 5)),
        ("prefix_seq", keys::prefix_seq(b"pf", 1)),
        ("u64_value", keys::u64_value(0x0102_0304).to_vec()),
    ];
    let expected = [
        ("owner", "616c407800"),
        ("owner_and", "616c4078006e73"),
        ("owner_tag", "616c40780049"),
        ("owner_tag_and", "616c40780049626f4078"),
        ("owner_seq", "616c4078000000000000000102"),
        ("owner_part", "616c407800737400"),
        ("owner_part_seq", "616c4078007374000000000000000003"),
        ("archive", "0000000000000a0b"),
        ("sweep_range", "ff72616e676500766361726400616c407800"),
        ("archive_records", "00000000000000076d"),
        ("archive_seq", "00000000000000076d0000000000000009"),
        ("archive_foreign_id", "0000000000000007696431"),
        ("pair", "734078006e00"),
        ("pair_tail", "734078006e"),
        ("triple_tail", "734078006e0069"),
        ("quad_tail", "70407800734078006e0069"),
        ("room_seq", "72406d000000000000000005"),
        ("sender_room_seq", "616c40780072406d000000000000000005"),
        ("archive_with", "000000000000000777626f407800"),
        (
            "archive_with_seq",
            "000000000000000777626f4078000000000000000009",
        ),
        ("room_nick", "72406d006e6900"),
        ("room_nick_seq", "72406d006e69000000000000000005"),
        ("prefix_seq", "70660000000000000001"),
        ("u64_value", "0000000001020304"),
    ];
    let got: Vec<(String, String)> = cases
        .iter()
        .map(|(n, k)| ((*n).to_owned(), hex(k)))
        .collect();
    pinned("key layouts", &got, &expected);
}

#[test]
fn codec_frames() {
    let got = [
        // A single value: version, bincode payload, CRC-32 BE of both.
        ("value", codec::encode(&"ab")),
        // An index marker: no payload.
        ("marker", codec::marker()),
        // A block: tag, count u16, (seq u64, len u32) per item, payloads, CRC-32 BE.
        ("block", codec::encode_block(&[(3, &"a"), (7, &"bc")])),
        // One value as a block: a plain value.
        ("block of one", codec::encode_block(&[(3, &"a")])),
        // A one-item block frame (`with` entries in blocks).
        (
            "block frame of one",
            codec::encode_block_frame(&[(3, &"a")]),
        ),
    ];
    let got: Vec<(String, String)> = got.iter().map(|(n, v)| ((*n).to_owned(), hex(v))).collect();
    pinned(
        "codec frames",
        &got,
        &[
            ("value", "0102616245263685"),
            ("marker", "01a505df1b"),
            (
                "block",
                "02000200000000000000030000000200000000000000070000000301610262633fe465c3",
            ),
            ("block of one", "010161dd2dd3aa"),
            (
                "block frame of one",
                "0200010000000000000003000000020161b5ea14ee",
            ),
        ],
    );
}

#[test]
fn meta_and_accounts() {
    let store = store_with_alice();
    let meta: Vec<(String, String)> = dump(&store, Keyspace::Meta)
        .into_iter()
        .filter(|(k, _)| *k != hex(keys::META_FLUSHED))
        .collect();
    pinned(
        "meta",
        &meta,
        &[
            ("666f726d6174", "0000000000000002"),
            ("6d61676963", "6a696473746f7265"),
        ],
    );
    check(
        &store,
        &[Keyspace::Accounts],
        &[(
            "accounts 616c696365407800",
            "01fd00008d49fd1a07000101045a5a5a5afb001004aaaaaaaa04bbbbbbbb00ccc8b0a1",
        )],
    );
}

#[test]
fn roster_vcard_private_last() {
    let store = store_with_alice();
    let alice = j("alice@x");
    store
        .roster()
        .set(
            &alice,
            &RosterItem {
                jid: j("bob@x"),
                name: Some("Bob".into()),
                subscription: Subscription::Both,
                ask: Ask::Out,
                groups: vec!["G".into()],
                askmessage: Some("hi".into()),
            },
        )
        .unwrap();
    store.vcard().set(&alice, "<vCard/>").unwrap();
    store
        .private()
        .set(&alice, "ns", "<q xmlns='ns'/>")
        .unwrap();
    store.last().set(&alice, 1000, "away").unwrap();
    check(
        &store,
        &[
            Keyspace::Roster,
            Keyspace::Vcard,
            Keyspace::Private,
            Keyspace::Last,
        ],
        &[
            (
                "roster 616c69636540780049626f624078",
                "010103426f62030101014701026869d4262120",
            ),
            ("roster 616c69636540780056", "01012fc51328"),
            ("vcard 616c696365407800", "01083c76436172642f3e9a410a61"),
            (
                "private 616c6963654078006e73",
                "010f3c7120786d6c6e733d276e73272f3e2ba60a58",
            ),
            ("last 616c696365407800", "01fbd0070461776179972ee001"),
        ],
    );
}

#[test]
fn offline_inbox_privacy_blocklist() {
    let store = store_with_alice();
    let alice = j("alice@x");
    store
        .offline()
        .store(
            &alice,
            &OfflineMessage {
                from: full("bob@x/r"),
                to: full("alice@x"),
                timestamp: T,
                expires: Some(T),
                stanza: "<message/>".into(),
            },
        )
        .unwrap();
    store
        .inbox()
        .on_message(&alice, &j("bob@x"), "<message/>", Some("m1"), T, true)
        .unwrap();
    store
        .inbox()
        .set_muted(&alice, &j("bob@x"), Some(T))
        .unwrap();
    store
        .privacy()
        .set_list(
            &alice,
            "l",
            &[PrivacyItem {
                order: 1,
                kind: Some(PrivacyType::Group),
                value: Some("G".into()),
                action: PrivacyAction::Deny,
                message: true,
                iq: false,
                presence_in: true,
                presence_out: false,
            }],
        )
        .unwrap();
    store.privacy().set_default(&alice, Some("l")).unwrap();
    store.blocklist().block(&alice, &[full("eve@x")]).unwrap();
    check(
        &store,
        &[
            Keyspace::Offline,
            Keyspace::Inbox,
            Keyspace::Privacy,
            Keyspace::Blocklist,
        ],
        &[
            (
                "offline 616c6963654078000000000000000001",
                "0107626f6240782f7207616c6963654078fd00008d49fd1a070001fd00008d49fd1a07000a3c6d6573736167652f3ec628901d",
            ),
            (
                "inbox 616c696365407800626f624078",
                "010a3c6d6573736167652f3e01026d3101fd00008d49fd1a070005696e626f7801fd00008d49fd1a0700d871fa2b",
            ),
            ("privacy 616c69636540780044", "01016ca39caf17"),
            (
                "privacy 616c6963654078004c6c",
                "0101010101010147010100010094373dbf",
            ),
            ("blocklist 616c6963654078006576654078", "01a505df1b"),
        ],
    );
}

fn pm(id: Option<&str>, minute: i64) -> PmMessage {
    PmMessage {
        id: id.map(str::to_owned),
        timestamp: Timestamp::from_secs(1_000_000_000 + minute * 60),
        from: full("bob@x/r"),
        to: full("alice@x/s"),
        direction: Direction::Incoming,
        origin_id: Some("o".into()),
        stanza: "<message/>".into(),
    }
}

#[test]
fn one_to_one_archive() {
    let store = store_with_alice();
    let alice = j("alice@x");
    // A live append with a native id, one with an imported id, then a bulk import: records
    // and `with` entries in blocks.
    store.mam().append(&alice, &pm(None, 0)).unwrap();
    store.mam().append(&alice, &pm(Some("f1"), 1)).unwrap();
    store
        .mam()
        .append_bulk(&alice, [pm(Some("b1"), 2), pm(Some("b2"), 3)])
        .unwrap();
    check(
        &store,
        &[Keyspace::MamPm, Keyspace::MamPmIds],
        &[
            (
                "mam_pm 00000000000000006d0000000000000001",
                "0100fdrrrrrrrrrrrrrrrrfd00008d49fd1a0700fd00008d49fd1a070007626f6240782f7209616c69636540782f730001016f0a3c6d6573736167652f3ecccccccc",
            ),
            (
                "mam_pm 00000000000000006d0000000000000002",
                "0101026631fd000eb450fd1a0700fd000eb450fd1a070007626f6240782f7209616c69636540782f730001016f0a3c6d6573736167652f3e6a98352a",
            ),
            (
                "mam_pm 00000000000000006d0000000000000003",
                "02000200000000000000030000003700000000000000040000003701026231fd001cdb57fd1a0700fd001cdb57fd1a070007626f6240782f7209616c69636540782f730001016f0a3c6d6573736167652f3e01026232fd002a025ffd1a0700fd002a025ffd1a070007626f6240782f7209616c69636540782f730001016f0a3c6d6573736167652f3ea95a618e",
            ),
            (
                "mam_pm 000000000000000077626f624078000000000000000001",
                "0107626f6240782f72902f8432",
            ),
            (
                "mam_pm 000000000000000077626f624078000000000000000002",
                "0107626f6240782f72902f8432",
            ),
            (
                "mam_pm 000000000000000077626f624078000000000000000003",
                "02000200000000000000030000000900000000000000040000000907626f6240782f720307626f6240782f7203ea9cdc3c",
            ),
            ("mam_pm_ids 00000000000000006231", "0000000000000003"),
            ("mam_pm_ids 00000000000000006232", "0000000000000004"),
            ("mam_pm_ids 00000000000000006631", "0000000000000002"),
        ],
    );
}

#[test]
fn room_archive() {
    let store = Store::temporary().unwrap();
    let room = j("r@m");
    for id in [None, Some("f1")] {
        store
            .muc()
            .append(
                &room,
                &MucMessage {
                    id: id.map(str::to_owned),
                    timestamp: T,
                    sender: j("al@x"),
                    nick: "ni".into(),
                    stanza: "<message/>".into(),
                },
            )
            .unwrap();
    }
    check(
        &store,
        &[
            Keyspace::MamMuc,
            Keyspace::MamMucIds,
            Keyspace::MamMucBySender,
            Keyspace::MamMucNick,
        ],
        &[
            (
                "mam_muc 72406d000000000000000000",
                "0100fdrrrrrrrrrrrrrrrrfd00008d49fd1a0700fd00008d49fd1a070004616c4078026e690a3c6d6573736167652f3ecccccccc",
            ),
            (
                "mam_muc 72406d000000000000000001",
                "0101026631fd00008d49fd1a0700fd00008d49fd1a070004616c4078026e690a3c6d6573736167652f3e1a7c0557",
            ),
            ("mam_muc_ids 72406d006631", "0000000000000001"),
            (
                "mam_muc_by_sender 616c40780072406d000000000000000000",
                "01a505df1b",
            ),
            (
                "mam_muc_by_sender 616c40780072406d000000000000000001",
                "01a505df1b",
            ),
            ("mam_muc_nick 72406d006e69000000000000000000", "01a505df1b"),
            ("mam_muc_nick 72406d006e69000000000000000001", "01a505df1b"),
        ],
    );
}

#[test]
fn pubsub() {
    let store = store_with_alice();
    let (service, owner, bob) = (j("s@x"), j("alice@x"), j("bo@x"));
    let ps = store.pubsub();
    ps.create_node(&Node {
        service: service.clone(),
        node: "n".into(),
        owner: owner.clone(),
        kind: NodeType::Flat,
        access_model: "open".into(),
        config: vec![("k".into(), "v".into())],
        created_at: T,
    })
    .unwrap();
    ps.publish(&service, "n", "i", &bob, "<p/>", T).unwrap();
    ps.subscribe(&service, "n", &bob, SubState::Pending)
        .unwrap();
    ps.set_affiliation(&service, "n", &bob, Some(Affiliation::Member))
        .unwrap();
    check(
        &store,
        crate::ext::keyspaces_of("pubsub"),
        &[
            (
                "pubsub_nodes 734078006e",
                "0107616c696365407802046f70656e01016b0176fd00008d49fd1a07005233799f",
            ),
            (
                "pubsub_nodes_by_owner 616c696365407800734078006e",
                "01a505df1b",
            ),
            (
                "pubsub_items 734078006e0069",
                "0104626f4078043c702f3efd00008d49fd1a07004afa7eb9",
            ),
            (
                "pubsub_items_by_publisher 626f407800734078006e0069",
                "01a505df1b",
            ),
            ("pubsub_subs 734078006e00626f4078", "01012fc51328"),
            (
                "pubsub_subs_by_subscriber 626f407800734078006e",
                "01a505df1b",
            ),
            ("pubsub_affs 734078006e00616c6963654078", "010058c223be"),
            ("pubsub_affs 734078006e00626f4078", "0103c1cb7204"),
            (
                "pubsub_affs_by_jid 616c696365407800734078006e",
                "01a505df1b",
            ),
            ("pubsub_affs_by_jid 626f407800734078006e", "01a505df1b"),
        ],
    );
}

#[test]
fn generic() {
    let store = store_with_alice();
    let alice = j("alice@x");
    store.generic().set(&alice, "kv", Some("<v/>")).unwrap();
    store
        .generic()
        .append(&alice, "ar", Some("i1"), T, Some("bob@x"), "<v/>")
        .unwrap();
    check(
        &store,
        &[Keyspace::GenericKv, Keyspace::GenericArchive],
        &[
            ("generic_kv 616c6963654078006b76", "01043c762f3eb6e2a2fb"),
            (
                "generic_archive 616c6963654078006172000000000000000000",
                "01026931fd00008d49fd1a07000105626f624078043c762f3e61c65036",
            ),
        ],
    );
}

/// The `audit` keyspace: the hash key, log entries as [`crate::gdpr::audit::record`] writes
/// them (at a fixed time; one with a subject, one without) and an erasure-ledger entry as an
/// erasure's commit writes it ([`crate::gdpr::ledger`]). The hash key is set to a fixed value
/// first, so the subject's keyed hash in both is a known one.
#[test]
fn audit_log_and_ledger() {
    use crate::gdpr::audit::{self, Action, Outcome};
    use crate::gdpr::ledger;
    let store = store_with_alice();
    let alice = j("alice@x");
    store
        .put(Keyspace::Audit, keys::AUDIT_SECRET, &vec![0x5a_u8; 32])
        .unwrap();
    let counts = [("removed", 3), ("kept", 1)];
    audit::record_at(&store, T, Action::Erase, Some(&alice), &counts, Outcome::Ok).unwrap();
    audit::record_at(&store, T, Action::Expire, None, &[], Outcome::Failed).unwrap();
    check(
        &store,
        &[Keyspace::Audit],
        &[
            (
                "audit 650000000000000001",
                concat!(
                    "01fd00008d49fd1a07000101403662656538643430623962613935376636663661353166",
                    "306430653534626535336139363066386134353638633331376530373662396333636537",
                    "343731363202046b657074010772656d6f766564030095e3087c",
                ),
            ),
            (
                "audit 650000000000000002",
                "01fd00008d49fd1a070004000002ab659269",
            ),
            (
                "audit 6b",
                concat!(
                    "01205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
                    "8527b8b7",
                ),
            ),
        ],
    );
    let (key, value) = ledger::entry(&store, &alice, T).unwrap();
    ledger::verify_entry(&key, &value).unwrap();
    pinned(
        "erasure ledger entry",
        &[(hex(&key), hex(&value))],
        &[(
            concat!(
                "6c3662656538643430623962613935376636663661353166306430653534626535",
                "33613936306638613435363863333137653037366239633363653734373136",
                "32",
            ),
            "01fd00008d49fd1a0700b6c064a0",
        )],
    );
}

/// What an erasure's commit leaves in `sweep` until the sweep runs: a marker for each 1-1
/// archive, and a range tombstone (keyspace and prefix in the key, the subject in the value)
/// for each range it deletes later.
#[test]
fn sweep_entries() {
    let store = store_with_alice();
    let alice = j("alice@x");
    store.mam().append(&alice, &pm(Some("f1"), 0)).unwrap();
    store.blocklist().block(&alice, &[full("eve@x")]).unwrap();
    let receipt = crate::gdpr::commit(&store, &alice).unwrap();
    assert_eq!(
        (receipt.pending_sweeps.len(), receipt.pending_ranges.len()),
        (1, 1)
    );
    check(
        &store,
        &[Keyspace::Sweep],
        &[
            ("sweep 0000000000000000", "01a505df1b"),
            (
                "sweep ff72616e676500626c6f636b6c69737400616c696365407800",
                "0107616c6963654078f44a7395",
            ),
        ],
    );
}

/// The flush witness file beside sled's (see [`crate::witness`]): two 16-byte slots, each
/// `"jsw1"`, a generation u64 BE and the CRC-32 BE of both; the newest valid slot counts.
#[test]
fn flush_witness_file() {
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let six = "6a73773100000000000000061acc99b1";
    let seven = "6a73773100000000000000076dcba927";
    assert_eq!(crate::witness::newest(&unhex(&format!("{six}{seven}"))), 7);
    let torn = format!("{six}{}", seven.replace("27", "28"));
    assert_eq!(crate::witness::newest(&unhex(&torn)), 6);
}
