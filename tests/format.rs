//! The committed on-disk format fixtures (issue 14, item 4): real stores written by a format 1
//! and a format 2 build (`tests/fixtures/format1`, `format2`; how they were made is in
//! `tests/fixtures/README.md`). Every build must open them, verify them clean and read back
//! exactly what was put in, through the library and the binary. Each test unpacks its own
//! copy: the committed zips are never opened in place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jidstore::__internal::keys::{Keyspace, META_FORMAT};
use jidstore::ext::generic::Query as GenericQuery;
use jidstore::ext::last::LastActivity;
use jidstore::ext::mam::Direction::{Incoming as In, Outgoing as Out};
use jidstore::ext::mam::{ArchivedMessage, Direction, PageFrom, Query};
use jidstore::ext::privacy::{PrivacyAction, PrivacyType};
use jidstore::ext::pubsub::{Affiliation, NodeType, SubState};
use jidstore::ext::roster::{Ask, Subscription};
use jidstore::ext::scram::Mechanism;
use jidstore::{Config, Store, Timestamp};
use tempfile::TempDir;

use crate::util::{TestResult, bare, full, jidstore, retrieve_to, unpack, unzip};

/// One committed fixture and what is specific to it (its build's random native-id halves).
struct Fixture {
    /// Directory under `tests/fixtures`.
    dir: &'static str,
    /// Entries `verify` reads.
    entries: u64,
    /// Native ids of alice's four live 1-1 messages, oldest first.
    alice_pm: [&'static str; 4],
    /// Native ids of the room's first three messages (the fourth is imported: `muc-imp-1`).
    room: [&'static str; 3],
    /// Written by a format 2 build: also holds blocks (bob's bulk import) and generic data.
    format2: bool,
}

const FORMAT1: Fixture = Fixture {
    dir: "format1",
    entries: 86,
    alice_pm: [
        "00000000000000032a8bbdd1cd9b145a",
        "000000000000000576d6fd87648d8ac3",
        "000000000000000717250489c47236a8",
        "00000000000000097fb77350f4991031",
    ],
    room: [
        "000000000000000fac51637b25e92901",
        "0000000000000010ed280623390f76b9",
        "0000000000000011425b157ed5350cf7",
    ],
    format2: false,
};

const FORMAT2: Fixture = Fixture {
    dir: "format2",
    entries: 103,
    alice_pm: [
        "00000000000000031a417c1c49ff2acf",
        "00000000000000051e66d5aa56facbad",
        "0000000000000007a3fa68e71b17f1f1",
        "000000000000000959fac2463703c44f",
    ],
    room: [
        "000000000000000fc85370d72ea87f6d",
        "00000000000000105620544694ca7da2",
        "00000000000000111d4e7917192d0f61",
    ],
    format2: true,
};

/// 2026-01-01T00:00:00Z plus `minutes`: every time the generator wrote.
fn at(minutes: i64) -> Timestamp {
    Timestamp::from_micros(1_767_225_600_000_000 + minutes * 60_000_000)
}

fn chat(from: &str, to: &str, id: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='{from}' to='{to}' id='{id}' type='chat'><body>{body}</body></message>"
    )
}

fn groupchat(nick: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='room@muc.localhost/{nick}' type='groupchat'><body>{body}</body></message>"
    )
}

/// A private copy of the fixture's data directory: (its temp dir, the data dir).
fn copy_of(f: &Fixture) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let zip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(f.dir)
        .join("store.zip");
    unpack(&zip, dir.path());
    let data = dir.path().join("data");
    (dir, data)
}

fn open(data: &Path) -> Store {
    Config::new(data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .expect("open fixture")
}

/// The format version recorded in `meta`.
fn format_version(store: &Store) -> Option<Vec<u8>> {
    store
        .raw_tree(Keyspace::Meta)
        .get(META_FORMAT)
        .expect("read meta")
        .map(|v| v.to_vec())
}

/// The bodies' messages as the archive returns them: (id, stanza).
fn ids_and_stanzas(page: &[ArchivedMessage]) -> Vec<(String, String)> {
    page.iter()
        .map(|m| (m.id.clone(), m.stanza.clone()))
        .collect()
}

/// The four live 1-1 messages between alice and bob: (from alice, stanza).
fn live_chat() -> [(bool, String); 4] {
    let (a, b) = ("alice@localhost/phone", "bob@localhost/laptop");
    [
        (true, chat(a, b, "m0", "Hi Bob, lunch today?")),
        (false, chat(b, a, "m1", "Sure, 12:30")),
        (true, chat(a, b, "m2", "Great, see you there")),
        (
            false,
            chat(
                b,
                a,
                "m3",
                "Bringing the report, with commas, quotes &quot; and\nnewlines",
            ),
        ),
    ]
}

fn kate_imports() -> [(String, String); 2] {
    let (k, a) = ("kate@localhost/tab", "alice@localhost/phone");
    [
        ("imp-1".into(), chat(k, a, "imp-1", "Old news")),
        ("imp-2".into(), chat(k, a, "imp-2", "Older reply")),
    ]
}

#[test]
fn format1_fixture_is_marked_2_when_opened_and_still_verifies() -> TestResult {
    let (_dir, data) = copy_of(&FORMAT1);
    let store = open(&data);
    assert_eq!(format_version(&store), Some(2u64.to_be_bytes().to_vec()));
    let report = jidstore::verify(&store)?;
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.entries, FORMAT1.entries);
    drop(store);
    // The mark is on disk: a second open reads 2 and the content is still there.
    let store = open(&data);
    assert_eq!(format_version(&store), Some(2u64.to_be_bytes().to_vec()));
    assert_eq!(store.mam().count(&bare("alice@localhost"))?, 6);
    Ok(())
}

#[test]
fn format2_fixture_keeps_format_2() {
    let (_dir, data) = copy_of(&FORMAT2);
    let store = open(&data);
    assert_eq!(format_version(&store), Some(2u64.to_be_bytes().to_vec()));
}

fn verifies_clean_with_the_binary(f: &Fixture) {
    let (_dir, data) = copy_of(f);
    let run = jidstore(&data, &["verify"]);
    assert_eq!(run.code, 0, "{}: {}{}", f.dir, run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with(&format!("verified {} entries in ", f.entries))
            && run.stdout.trim_end().ends_with(": clean"),
        "{}: {}",
        f.dir,
        run.stdout
    );
}

#[test]
fn format_fixtures_verify_clean_with_the_binary() {
    verifies_clean_with_the_binary(&FORMAT1);
    verifies_clean_with_the_binary(&FORMAT2);
}

/// Runs `check` on a fresh copy of each fixture, opened through the library.
fn on_each_fixture(check: impl Fn(&Store, &Fixture) -> TestResult) -> TestResult {
    for f in [&FORMAT1, &FORMAT2] {
        let (_dir, data) = copy_of(f);
        let store = open(&data);
        check(&store, f).map_err(|e| format!("{}: {e}", f.dir))?;
    }
    Ok(())
}

/// Accounts and rosters, as the generator wrote them.
fn accounts_and_roster(store: &Store, _: &Fixture) -> TestResult {
    let (alice, bob, kate) = (
        bare("alice@localhost"),
        bare("bob@localhost"),
        bare("kate@localhost"),
    );

    let accounts = store.accounts();
    assert_eq!(
        accounts.list("localhost")?,
        [alice.clone(), bob.clone(), kate.clone()]
    );
    let info = accounts.get(&alice)?.ok_or("no account alice")?;
    assert_eq!(info.created_at, at(-1440));
    assert_eq!(info.mechanisms, [Mechanism::Sha1, Mechanism::Sha256]);
    assert!(accounts.check_password(&kate, "kate-pw")?);
    assert!(!accounts.check_password(&kate, "alice-pw")?);
    let v = accounts
        .verifier(&bob, Mechanism::Sha256)?
        .ok_or("no SHA-256 verifier")?;
    assert_eq!((v.salt, v.iterations), (vec![2u8; 16], 4096));

    let roster: Vec<_> = store
        .roster()
        .list(&alice)?
        .into_iter()
        .map(|i| (i.jid.to_string(), i.name, i.subscription, i.ask, i.groups))
        .collect();
    assert_eq!(
        roster,
        [
            (
                "bob@localhost".to_owned(),
                Some("Bob".to_owned()),
                Subscription::Both,
                Ask::None,
                vec!["Friends".to_owned(), "Work, mostly".to_owned()]
            ),
            (
                "kate@localhost".to_owned(),
                Some("Kate".to_owned()),
                Subscription::None,
                Ask::Out,
                vec![]
            ),
        ]
    );
    let pending = store.roster().pending_inbound(&kate)?;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].askmessage.as_deref(), Some("Hi, it's Alice"));
    Ok(())
}

/// vCard, private XML, offline messages, last activity, privacy lists and the blocklist.
fn single_record_classes(store: &Store, _: &Fixture) -> TestResult {
    let (alice, bob, kate) = (
        bare("alice@localhost"),
        bare("bob@localhost"),
        bare("kate@localhost"),
    );
    assert_eq!(
        store.vcard().get(&bob)?.as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")
    );
    assert_eq!(
        store.private().list(&alice)?,
        [(
            "storage:bookmarks".to_owned(),
            "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' autojoin='true'><nick>alice</nick></conference></storage>".to_owned()
        )]
    );

    let offline = store.offline().list(&kate)?;
    let offline: Vec<_> = offline
        .iter()
        .map(|m| {
            (
                m.from.to_string(),
                m.timestamp,
                m.expires,
                m.stanza.as_str(),
            )
        })
        .collect();
    let (b, k) = ("bob@localhost/laptop", "kate@localhost");
    assert_eq!(
        offline,
        [
            (
                b.to_owned(),
                at(20),
                None,
                chat(b, k, "o0", "Are you there?").as_str()
            ),
            (
                b.to_owned(),
                at(21),
                Some(at(100_000)),
                chat(b, k, "o1", "Call me back").as_str()
            ),
        ]
    );

    assert_eq!(
        store.last().get(&alice)?,
        Some(LastActivity {
            seconds: 1_767_225_000,
            status: "Gone to lunch".into()
        })
    );
    assert_eq!(store.privacy().list_names(&alice)?, ["work"]);
    assert_eq!(
        store.privacy().default_list(&alice)?.as_deref(),
        Some("work")
    );
    // (order, type, value, action, [message, iq, presence-in, presence-out])
    let items: Vec<_> = store
        .privacy()
        .get_list(&alice, "work")?
        .ok_or("no list work")?
        .into_iter()
        .map(|i| {
            let flags = [i.message, i.iq, i.presence_in, i.presence_out];
            (i.order, i.kind, i.value, i.action, flags)
        })
        .collect();
    let spam = Some("spam@bad.example".to_owned());
    assert_eq!(
        items,
        [
            (
                1,
                Some(PrivacyType::Jid),
                spam,
                PrivacyAction::Deny,
                [true, false, false, false]
            ),
            (2, None, None, PrivacyAction::Allow, [false; 4]),
        ]
    );
    assert_eq!(
        store.blocklist().list(&alice)?,
        [full("spam@bad.example"), full("troll@bad.example")]
    );
    Ok(())
}

#[test]
fn format_fixtures_read_back_accounts_and_rosters() -> TestResult {
    on_each_fixture(accounts_and_roster)
}

#[test]
fn format_fixtures_read_back_vcard_private_offline_last_privacy_blocklist() -> TestResult {
    on_each_fixture(single_record_classes)
}

/// Both 1-1 archives: every message, in order, and MAM pages.
fn one_to_one_archives(store: &Store, f: &Fixture) -> TestResult {
    let (alice, bob) = (bare("alice@localhost"), bare("bob@localhost"));

    // alice's archive: four live messages (native ids), then two imported from kate.
    let mut expected: Vec<(String, String)> = f
        .alice_pm
        .iter()
        .zip(live_chat())
        .map(|(id, (_, stanza))| ((*id).to_owned(), stanza))
        .collect();
    expected.extend(kate_imports());
    let list = store.mam().list(&alice)?;
    assert_eq!(ids_and_stanzas(&list), expected);
    let directions: Vec<Direction> = list.iter().map(|m| m.direction).collect();
    assert_eq!(directions, [Out, In, Out, In, In, In]);
    let times: Vec<Timestamp> = list.iter().map(|m| m.timestamp).collect();
    assert_eq!(times, [at(0), at(1), at(2), at(3), at(10), at(11)]);
    assert_eq!(list[1].origin_id.as_deref(), Some("m1"));
    assert_eq!(
        store.mam().get(&alice, f.alice_pm[2])?.map(|m| m.stanza),
        Some(expected[2].1.clone())
    );

    // MAM pages: two from the start, the two after, the last one, and `with`.
    let page = |q: Query| store.mam().query(&alice, &q);
    let first = page(Query {
        max: Some(2),
        count: true,
        ..Query::default()
    })?;
    assert_eq!(ids_and_stanzas(&first.messages), expected[..2]);
    assert_eq!((first.complete, first.count), (false, Some(6)));
    let next = page(Query {
        max: Some(2),
        page: PageFrom::After(f.alice_pm[1].to_owned()),
        ..Query::default()
    })?;
    assert_eq!(ids_and_stanzas(&next.messages), expected[2..4]);
    let tail = page(Query {
        max: Some(1),
        page: PageFrom::Before(None),
        ..Query::default()
    })?;
    assert_eq!(ids_and_stanzas(&tail.messages), expected[5..]);
    let with_kate = page(Query {
        with: Some(full("kate@localhost")),
        ..Query::default()
    })?;
    assert_eq!(ids_and_stanzas(&with_kate.messages), expected[4..]);

    // bob's archive: the same four live messages (other ids), then, in format 2, ten bulk ones.
    let bob_list = store.mam().list(&bob)?;
    let bob_live: Vec<String> = live_chat().into_iter().map(|(_, s)| s).collect();
    let got: Vec<String> = bob_list.iter().take(4).map(|m| m.stanza.clone()).collect();
    assert_eq!(got, bob_live);
    assert_eq!(bob_list.len(), if f.format2 { 14 } else { 4 });
    Ok(())
}

/// The room archive and both inboxes.
fn room_archive_and_inboxes(store: &Store, f: &Fixture) -> TestResult {
    let (alice, bob) = (bare("alice@localhost"), bare("bob@localhost"));
    // The room: three live messages and an imported one, with their senders and nicks.
    let room = bare("room@muc.localhost");
    let muc: Vec<_> = store
        .muc()
        .list(&room)?
        .into_iter()
        .map(|m| (m.id, m.sender.to_string(), m.nick, m.stanza, m.timestamp))
        .collect();
    let row = |id: &str, sender: &str, nick: &str, body: &str, minute| {
        (
            id.to_owned(),
            sender.to_owned(),
            nick.to_owned(),
            groupchat(nick, body),
            at(minute),
        )
    };
    assert_eq!(
        muc,
        [
            row(f.room[0], "alice@localhost", "alice", "Morning all", 30),
            row(f.room[1], "bob@localhost", "bob", "Hi Room!", 31),
            row(
                f.room[2],
                "carol@remote.example",
                "carol",
                "Hello from afar",
                32
            ),
            row("muc-imp-1", "alice@localhost", "alice", "Standup in 5", 33),
        ]
    );
    let by_alice: Vec<String> = store
        .muc()
        .by_sender(&alice)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(by_alice, [f.room[0], "muc-imp-1"]);

    // Inboxes: alice's moved to "archive", bob's muted; listing does not reset unread.
    let inbox: Vec<_> = store
        .inbox()
        .list(&alice)?
        .into_iter()
        .map(|e| {
            (
                e.remote,
                e.msg_id,
                e.unread,
                e.timestamp,
                e.mailbox,
                e.muted_until,
            )
        })
        .collect();
    assert_eq!(
        inbox,
        [(
            bob.clone(),
            Some("m3".to_owned()),
            1,
            at(3),
            "archive".to_owned(),
            None
        )]
    );
    let bobs = store.inbox().list(&bob)?;
    assert_eq!(bobs.len(), 1);
    assert_eq!(
        (&bobs[0].remote, bobs[0].unread, bobs[0].muted_until),
        (&alice, 0, Some(at(600)))
    );
    assert_eq!(bobs[0].content, live_chat()[3].1);
    Ok(())
}

/// Pubsub: nodes, items, subscriptions and affiliations.
fn pubsub(store: &Store, _: &Fixture) -> TestResult {
    let (alice, bob, kate) = (
        bare("alice@localhost"),
        bare("bob@localhost"),
        bare("kate@localhost"),
    );
    // Pubsub: nodes, items, subscriptions and affiliations.
    let service = bare("pubsub.localhost");
    let news = store
        .pubsub()
        .get_node(&service, "news")?
        .ok_or("no node news")?;
    assert_eq!(
        (
            news.owner,
            news.kind,
            news.access_model.as_str(),
            news.created_at
        ),
        (alice.clone(), NodeType::Flat, "open", at(40))
    );
    assert_eq!(
        news.config,
        [("pubsub#max_items".to_owned(), "10".to_owned())]
    );
    let pep = store
        .pubsub()
        .get_node(&alice, "urn:xmpp:avatar:metadata")?
        .ok_or("no PEP node")?;
    assert_eq!(
        (pep.kind, pep.access_model.as_str()),
        (NodeType::Pep, "presence")
    );
    let items = store.pubsub().items(&service, "news")?;
    assert_eq!(items.len(), 1);
    assert_eq!(
        (
            items[0].id.as_str(),
            &items[0].publisher,
            items[0].published_at
        ),
        ("release-1", &bob, at(43))
    );
    assert_eq!(
        items[0].payload,
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>jidstore 0.1</title></entry>"
    );
    let push = store
        .pubsub()
        .get_item(&bare("push.localhost"), "alice-phone", "n1")?
        .ok_or("no push item")?;
    assert_eq!((push.publisher, push.published_at), (bob.clone(), at(42)));
    let subs: Vec<_> = store
        .pubsub()
        .subscriptions(&service, "news")?
        .into_iter()
        .map(|s| (s.subscriber, s.state))
        .collect();
    assert_eq!(
        subs,
        [
            (alice.clone(), SubState::Subscribed),
            (kate, SubState::Pending)
        ]
    );
    assert_eq!(
        store.pubsub().affiliations(&service, "news")?,
        [(alice, Affiliation::Owner), (bob, Affiliation::Publisher)]
    );
    Ok(())
}

#[test]
fn format_fixtures_read_back_the_1_1_archives_and_mam_pages() -> TestResult {
    on_each_fixture(one_to_one_archives)
}

#[test]
fn format_fixtures_read_back_the_room_archive_and_inboxes() -> TestResult {
    on_each_fixture(room_archive_and_inboxes)
}

#[test]
fn format_fixtures_read_back_pubsub() -> TestResult {
    on_each_fixture(pubsub)
}

#[test]
fn format2_fixture_reads_back_blocks_and_the_generic_class() -> TestResult {
    let (_dir, data) = copy_of(&FORMAT2);
    let store = open(&data);
    let (alice, bob) = (bare("alice@localhost"), bare("bob@localhost"));

    // bob's bulk import with kate: ten messages in blocks, in order, found by id and paged.
    let bulk: Vec<(String, String)> = (0..10)
        .map(|i| {
            let (from, to) = if i % 2 == 0 {
                ("bob@localhost/laptop", "kate@localhost/tab")
            } else {
                ("kate@localhost/tab", "bob@localhost/laptop")
            };
            let id = format!("bulk-{i}");
            let stanza = chat(from, to, &id, &format!("Bulk message {i}"));
            (id, stanza)
        })
        .collect();
    let with_kate = store.mam().query(
        &bob,
        &Query {
            with: Some(full("kate@localhost")),
            count: true,
            ..Query::default()
        },
    )?;
    assert_eq!(ids_and_stanzas(&with_kate.messages), bulk);
    assert_eq!(with_kate.count, Some(10));
    let times: Vec<Timestamp> = with_kate.messages.iter().map(|m| m.timestamp).collect();
    assert_eq!(times, (50..60).map(at).collect::<Vec<_>>());
    let page = store.mam().query(
        &bob,
        &Query {
            with: Some(full("kate@localhost/tab")),
            max: Some(3),
            page: PageFrom::After("bulk-3".into()),
            ..Query::default()
        },
    )?;
    assert_eq!(ids_and_stanzas(&page.messages), bulk[4..7]);
    assert!(!page.complete);
    assert_eq!(
        store
            .mam()
            .get(&bob, "bulk-8")?
            .map(|m| (m.direction, m.stanza)),
        Some((Direction::Outgoing, bulk[8].1.clone()))
    );

    // The generic class: a key-value record and an archive.
    assert_eq!(
        store.generic().get(&alice, "cloud_notify")?.as_deref(),
        Some("<push jid='push.localhost' node='alice-phone'/>")
    );
    let all = store
        .generic()
        .find(&alice, "muc_log", &GenericQuery::default())?
        .ok_or("no page")?;
    let items: Vec<_> = all
        .items
        .iter()
        .map(|i| (i.id.as_str(), i.when, i.with.as_deref(), i.value.as_str()))
        .collect();
    assert_eq!(
        items,
        [
            ("g1", at(70), Some("bob@localhost"), "<item>first</item>"),
            ("g2", at(71), None, "<item>second</item>"),
            ("g3", at(72), Some("bob@localhost"), "<item>third</item>"),
        ]
    );
    let with_bob = store
        .generic()
        .find(
            &alice,
            "muc_log",
            &GenericQuery {
                with: Some("bob@localhost".into()),
                ..GenericQuery::default()
            },
        )?
        .ok_or("no page")?;
    let ids: Vec<&str> = with_bob.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!((ids, with_bob.total), (vec!["g1", "g3"], 2));
    assert_eq!(
        store.generic().owners("localhost", "muc_log", true)?,
        [alice]
    );
    Ok(())
}

/// alice's export (`retrieve_personal_data` through the binary): every CSV file, exactly.
fn exports_alice(f: &Fixture) {
    let (dir, data) = copy_of(f);
    let out = dir.path().join("alice.zip");
    let run = retrieve_to(&data, "alice", &out);
    assert_eq!(run.code, 0, "{}: {}", f.dir, run.stderr);
    let files = unzip(&out);

    let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut mam_pm = String::from("id,from,message,timestamp,to,direction\n");
    let (a, b) = ("alice@localhost/phone", "bob@localhost/laptop");
    for (i, (id, (from_alice, stanza))) in f.alice_pm.iter().zip(live_chat()).enumerate() {
        let (from, to, dir) = if from_alice {
            (a, b, "outgoing")
        } else {
            (b, a, "incoming")
        };
        let _ = writeln!(
            mam_pm,
            "{id},{from},{},2026-01-01T00:0{i}:00.000000Z,{to},{dir}",
            quoted(&stanza)
        );
    }
    for (i, (id, stanza)) in kate_imports().iter().enumerate() {
        let _ = writeln!(
            mam_pm,
            "{id},kate@localhost/tab,{stanza},2026-01-01T00:1{i}:00.000000Z,{a},incoming"
        );
    }
    let mam_muc = format!(
        "id,message,room,timestamp,nick\n\
         {},{},room@muc.localhost,2026-01-01T00:30:00.000000Z,alice\n\
         muc-imp-1,{},room@muc.localhost,2026-01-01T00:33:00.000000Z,alice\n",
        f.room[0],
        groupchat("alice", "Morning all"),
        groupchat("alice", "Standup in 5"),
    );
    let inbox = format!(
        "jid,content,unread_count,timestamp,box,muted_until\n\
         bob@localhost,{},1,2026-01-01T00:03:00.000000Z,archive,\n",
        quoted(&live_chat()[3].1)
    );
    let (generic_kv, generic_archive) = if f.format2 {
        (
            "store,value\ncloud_notify,<push jid='push.localhost' node='alice-phone'/>\n",
            "store,id,timestamp,with,value\n\
             muc_log,g1,2026-01-01T01:10:00.000000Z,bob@localhost,<item>first</item>\n\
             muc_log,g2,2026-01-01T01:11:00.000000Z,,<item>second</item>\n\
             muc_log,g3,2026-01-01T01:12:00.000000Z,bob@localhost,<item>third</item>\n",
        )
    } else {
        ("store,value\n", "store,id,timestamp,with,value\n")
    };
    let expected: BTreeMap<&str, String> = [
        ("accounts.csv", "jid,created_at,mechanisms\nalice@localhost,2025-12-31T00:00:00.000000Z,SCRAM-SHA-1 SCRAM-SHA-256\n"),
        ("blocklist.csv", "jid\nspam@bad.example\ntroll@bad.example\n"),
        ("generic_archive.csv", generic_archive),
        ("generic_kv.csv", generic_kv),
        ("inbox.csv", &inbox),
        ("last.csv", "jid,timestamp,status\nalice@localhost,2025-12-31T23:50:00.000000Z,Gone to lunch\n"),
        ("mam_muc.csv", &mam_muc),
        ("mam_pm.csv", &mam_pm),
        ("offline.csv", "timestamp,from,to,packet,expires\n"),
        ("privacy.csv", "list,is_default,order,type,value,action,match\nwork,true,1,jid,spam@bad.example,deny,message\nwork,true,2,,,allow,\n"),
        ("private.csv", "ns,xml\nstorage:bookmarks,<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' autojoin='true'><nick>alice</nick></conference></storage>\n"),
        ("pubsub_affiliations.csv", "service_jid,node_id,jid,affiliation\nalice@localhost,urn:xmpp:avatar:metadata,alice@localhost,owner\npubsub.localhost,news,alice@localhost,owner\npush.localhost,alice-phone,alice@localhost,owner\n"),
        ("pubsub_items.csv", "node_id,item_id,publisher_jid,payload,service_jid,published_at\nurn:xmpp:avatar:metadata,avatar1,alice@localhost,<metadata xmlns='urn:xmpp:avatar:metadata'><info id='avatar1' bytes='1024' type='image/png'/></metadata>,alice@localhost,2026-01-01T00:41:00.000000Z\nalice-phone,n1,bob@localhost,<notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data'/></notification>,push.localhost,2026-01-01T00:42:00.000000Z\n"),
        ("pubsub_nodes.csv", "node_id,access_model,service_jid,type\nurn:xmpp:avatar:metadata,presence,alice@localhost,pep\nnews,open,pubsub.localhost,flat\nalice-phone,whitelist,push.localhost,push\n"),
        ("pubsub_subscriptions.csv", "service_jid,node_id,subscriber_jid,state\npubsub.localhost,news,alice@localhost,subscribed\n"),
        ("roster.csv", "jid,name,subscription,ask,groups,askmessage,xs,groups_json\nbob@localhost,Bob,both,none,\"Friends, Work, mostly\",,,\"[\"\"Friends\"\",\"\"Work, mostly\"\"]\"\nkate@localhost,Kate,none,out,,,,[]\n"),
        ("vcard.csv", "jid,vcard\nalice@localhost,<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><EMAIL><USERID>alice@example.org</USERID></EMAIL></vCard>\n"),
    ]
    .into_iter()
    .map(|(name, text)| (name, text.to_owned()))
    .collect();
    let csv: BTreeMap<&str, String> = files
        .iter()
        .filter(|(name, _)| *name != "manifest.json" && *name != "index.html")
        .map(|(name, text)| (name.as_str(), text.replace("\r\n", "\n")))
        .collect();
    assert_eq!(csv, expected, "{}", f.dir);
    assert!(files.contains_key("manifest.json"), "{}", f.dir);
}

#[test]
fn format_fixtures_export_exactly_what_was_put_in() {
    exports_alice(&FORMAT1);
    exports_alice(&FORMAT2);
}

/// A MAM page through the binary, then erasing alice leaves a store that verifies clean.
fn binary_pages_and_erases(f: &Fixture) {
    let (_dir, data) = copy_of(f);
    let run = jidstore(
        &data,
        &[
            "mam",
            "query",
            "alice",
            "localhost",
            "--max",
            "2",
            "--after",
            f.alice_pm[1],
        ],
    );
    assert_eq!(run.code, 0, "{}: {}", f.dir, run.stderr);
    let ids: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(
        ids,
        [
            f.alice_pm[2],
            f.alice_pm[3],
            &format!(
                "first={} last={} complete=false count=6",
                f.alice_pm[2], f.alice_pm[3]
            ),
        ],
        "{}",
        f.dir
    );
    let run = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(run.code, 0, "{}: {}", f.dir, run.stderr);
    let run = jidstore(&data, &["verify"]);
    assert_eq!(run.code, 0, "{}: {}{}", f.dir, run.stdout, run.stderr);
    let store = open(&data);
    assert!(
        !store
            .accounts()
            .exists(&bare("alice@localhost"))
            .unwrap_or(true)
    );
    let bob = store.mam().count(&bare("bob@localhost"));
    assert_eq!(bob.ok(), Some(if f.format2 { 14 } else { 4 }), "{}", f.dir);
}

#[test]
fn format_fixtures_page_through_the_binary_and_erase_cleanly() {
    binary_pages_and_erases(&FORMAT1);
    binary_pages_and_erases(&FORMAT2);
}
