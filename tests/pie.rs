//! XEP-0227 import and export: the real Openfire/M-Link samples, v1.1 fixtures (SCRAM, PEP,
//! MAM, privacy), all-or-nothing users, file safety, round trip, and the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};
use jidstore::ext::pubsub::{Node, NodeType};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::pie::{self, BadTimestamps, ImportOptions};
use jidstore::{Store, Timestamp};

use crate::util::*;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/xep0227");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/xep0227");

/// The shared samples (`JIDSTORE_XEP0227_SAMPLES` overrides where), or `None` (with a
/// message) when `shared/` is not beside the crate.
pub fn samples() -> Option<PathBuf> {
    let p = std::env::var_os("JIDSTORE_XEP0227_SAMPLES")
        .map_or_else(|| PathBuf::from(SAMPLES), PathBuf::from);
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipped: XEP-0227 samples not found at {SAMPLES}");
        None
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn opts() -> ImportOptions {
    ImportOptions::default()
}

fn items(report: &pie::ImportReport) -> Vec<(&'static str, u64)> {
    report.items.iter().map(|(k, v)| (*k, *v)).collect()
}

fn export_string(store: &Store, user: &jidstore::BareJid) -> String {
    let mut out = Vec::new();
    pie::export(store, user, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn openfire_single_imports_java_dates_with_their_real_times() {
    let Some(dir) = samples() else { return };
    let (_d, store) = crate::util::store();
    let file = dir.join("openfire-single/test-xepp227-import.xml");
    // The default (--bad-timestamps reject) imports everything: Java's Date.toString()
    // stamps are converted, not refused (issue 13, item 17).
    let r = pie::import_file(&store, &file, &opts()).unwrap();
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.imported.len(), 4);
    assert_eq!(
        items(&r),
        [
            ("accounts", 4),
            ("offline", 34),
            ("roster", 2),
            ("vcard", 1)
        ]
    );
    // 34 converted stamps and 2 empty <group/>s, each with file and line.
    assert_eq!(r.problems.len(), 36);
    assert!(r.problems.iter().all(|p| p.file == file && p.line > 0));
    let first = r.problems[0].to_string();
    assert!(first.ends_with(
        "test-xepp227-import.xml:9: offline message delay: Java date 'Thu Jan 21 14:17:35 CET 2016' converted to 2016-01-21T13:17:35.000000Z (read as UTC+01:00)"
    ), "{first}");
    let anno = bare("anno@openfire.xmpp.test");
    assert!(store.accounts().check_password(&anno, "anno").unwrap());
    let item = store
        .roster()
        .get(&anno, &bare("test1@openfire.xmpp.test"))
        .unwrap()
        .unwrap();
    assert_eq!(item.name.as_deref(), Some("Tester Een"));
    assert!(item.groups.is_empty(), "empty <group/> dropped");
    let offline = store.offline().list(&anno).unwrap();
    assert_eq!(offline.len(), 8);
    let admin = store
        .offline()
        .list(&bare("admin@openfire.xmpp.test"))
        .unwrap();
    assert_eq!(
        admin[0].timestamp.to_rfc3339(),
        "2016-01-21T13:17:35.000000Z"
    );
    // The stanza's delay stamp is rewritten to the converted time, so the record is
    // consistent.
    assert!(admin[0].stanza.contains("2016-01-21T13:17:35.000000Z"));
    assert!(!offline[0].stanza.contains("CEST"));

    // --bad-timestamps now and skip change nothing here: every stamp converts.
    for policy in [BadTimestamps::Now, BadTimestamps::Skip] {
        let (_d2, store2) = crate::util::store();
        let r = pie::import_file(&store2, &file, &opts().bad_timestamps(policy)).unwrap();
        assert_eq!(r.imported.len(), 4);
        assert_eq!(items(&r)[1], ("offline", 34));
    }
}

#[test]
fn openfire_xinclude_missing_targets_fail_before_any_write() {
    let Some(dir) = samples() else { return };
    let (_d, store) = crate::util::store();
    let file = dir.join("openfire-xinclude/test-import.xml");
    let err = pie::import_file(&store, &file, &opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("5 XInclude target(s) missing"), "{err}");
    for href in [
        "sub/61/admin.xml",
        "sub/6a/ju001.xml",
        "sub/6a/ju0011.xml",
        "sub/6a/ju0012.xml",
        "sub/74/test2.xml",
    ] {
        assert!(err.contains(href), "{href} not named in {err}");
    }
    assert!(err.contains("test-import.xml:3:"), "{err}");
    assert!(store.accounts().list("sub").unwrap().is_empty());
}

#[test]
fn openfire_xinclude_imports_what_exists_with_skip_missing_includes() {
    let Some(dir) = samples() else { return };
    let (_d, store) = crate::util::store();
    let file = dir.join("openfire-xinclude/test-import.xml");
    let r = pie::import_file(&store, &file, &opts().skip_missing_includes(true)).unwrap();
    assert_eq!(r.imported, ["anno@sub", "ju00122@sub", "test1@sub"]);
    assert!(r.failed.is_empty());
    assert_eq!(r.missing_includes, 5);
    assert!(!r.is_complete());
    assert_eq!(
        items(&r),
        [
            ("accounts", 3),
            ("offline", 5),
            ("private", 5),
            ("roster", 11),
            ("vcard", 3)
        ]
    );
    // 5 missing includes + 2 users without credentials.
    assert_eq!(r.problems.len(), 7, "{:#?}", r.problems);
    assert!(
        r.problems
            .iter()
            .any(|p| p.file.ends_with("sub/6a/ju00122.xml")
                && p.line == 2
                && p.message.contains("no password or SCRAM credentials"))
    );

    let anno = bare("anno@sub");
    assert!(store.accounts().check_password(&anno, "anno").unwrap());
    // Two jabber:iq:private queries merge: one item per namespace.
    let private = store.private().list(&anno).unwrap();
    let ns: Vec<&str> = private.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(ns, ["mlink-wtmp-auth", "storage:bookmarks"]);
    assert!(
        private[1]
            .1
            .starts_with("<storage xmlns='storage:bookmarks'>")
    );
    assert_eq!(store.roster().version(&anno).unwrap(), 37);
    let t1 = store
        .roster()
        .get(&anno, &bare("test1@mlink.xmpp.test"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (t1.ask, t1.groups.clone()),
        (Ask::Out, vec!["testgroup".to_owned()])
    );

    // Pending presences become roster items with ask In; test1 asked anno (not in roster).
    let ju = bare("ju00122@sub");
    let pending = store.roster().pending_inbound(&ju).unwrap();
    let from: Vec<&str> = pending.iter().map(|i| i.jid.as_str()).collect();
    assert_eq!(from, ["anno@mlink.xmpp.test", "test1@mlink.xmpp.test"]);
    assert!(
        store
            .accounts()
            .get(&ju)
            .unwrap()
            .unwrap()
            .mechanisms
            .is_empty()
    );
    // Offline chat states without a delay get the import time.
    assert_eq!(store.offline().count(&bare("test1@sub")).unwrap(), 3);
    assert_eq!(store.roster().version(&bare("test1@sub")).unwrap(), 28);
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one fixture, every class checked in turn"
)]
fn v11_fixture_scram_pep_mam_privacy() {
    let (_d, store) = crate::util::store();
    let r = pie::import_file(&store, &fixture("v11.xml"), &opts()).unwrap();
    assert_eq!(r.imported, ["juliet@example.org"]);
    assert_eq!(r.failed.len(), 1, "tybalt has a bad MAM stamp");
    assert!(
        r.failed[0]
            .1
            .contains("v11.xml:88: archived message: timestamp 'yesterday'"),
        "{:?}",
        r.failed
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.line == 99
                && p.message == "unknown element {urn:example:gossip}gossip skipped")
    );
    assert_eq!(
        items(&r),
        [
            ("accounts", 1),
            ("mam_pm", 2),
            ("offline", 1),
            ("privacy_lists", 2),
            ("private", 1),
            ("pubsub_items", 2),
            ("pubsub_nodes", 2),
            ("roster", 3),
            ("vcard", 1)
        ]
    );
    let j = bare("juliet@example.org");
    // SCRAM verifiers stored as given (RFC 7677's vector): the password checks.
    assert!(store.accounts().check_password(&j, "pencil").unwrap());
    let info = store.accounts().get(&j).unwrap().unwrap();
    assert_eq!(info.mechanisms.len(), 2);
    assert_eq!(store.roster().version(&j).unwrap(), 42);
    let nurse = store
        .roster()
        .get(&j, &bare("nurse@example.org"))
        .unwrap()
        .unwrap();
    assert_eq!(nurse.ask, Ask::Both);
    let ben = store
        .roster()
        .get(&j, &bare("benvolio@example.net"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (ben.ask, ben.askmessage.as_deref()),
        (Ask::In, Some("Hi, it is Ben"))
    );
    assert_eq!(
        store.privacy().default_list(&j).unwrap().as_deref(),
        Some("public")
    );
    let private = store.privacy().get_list(&j, "private").unwrap().unwrap();
    assert_eq!(private[0].kind, Some(PrivacyType::Subscription));
    assert!(private[0].message && private[0].presence_in && !private[0].iq);
    let meta = store
        .pubsub()
        .get_node(&j, "urn:xmpp:avatar:metadata")
        .unwrap()
        .unwrap();
    assert_eq!(
        (meta.kind, meta.access_model.as_str()),
        (NodeType::Pep, "open")
    );
    assert_eq!(
        meta.config,
        [("pubsub#max_items".to_owned(), "1".to_owned())]
    );
    let tune = store
        .pubsub()
        .get_node(&j, "http://jabber.org/protocol/tune")
        .unwrap()
        .unwrap();
    assert_eq!(tune.access_model, "presence");
    let mam = store.mam().list(&j).unwrap();
    let ids: Vec<&str> = mam.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["28482-98726-73623", "5d398-28273-f7382"]);
    assert_eq!(mam[1].direction, Direction::Outgoing);
    assert_eq!(mam[1].origin_id.as_deref(), Some("8a54s"));
    assert_eq!(
        mam[0].timestamp,
        Timestamp::parse_rfc3339("2010-07-10T23:08:25Z").unwrap()
    );
    let off = store.offline().list(&j).unwrap();
    assert_eq!(
        off[0].timestamp,
        Timestamp::parse_rfc3339("2010-07-10T23:08:25Z").unwrap()
    );
    assert!(
        !store
            .accounts()
            .exists(&bare("tybalt@example.org"))
            .unwrap()
    );

    // With skip, tybalt is imported without the undated message.
    let (_d2, store2) = crate::util::store();
    let r = pie::import_file(
        &store2,
        &fixture("v11.xml"),
        &opts().bad_timestamps(BadTimestamps::Skip),
    )
    .unwrap();
    assert!(r.is_complete());
    let ty = store2.mam().list(&bare("tybalt@example.org")).unwrap();
    assert_eq!(ty.len(), 1);
    assert_eq!(ty[0].id, "t2");
}

#[test]
fn existing_account_refused_others_continue() {
    let (_d, store) = crate::util::store();
    let j = user(&store, "juliet@example.org");
    store
        .vcard()
        .set(&j, "<vCard xmlns='vcard-temp'><FN>Mine</FN></vCard>")
        .unwrap();
    let r = pie::import_file(
        &store,
        &fixture("v11.xml"),
        &opts().bad_timestamps(BadTimestamps::Now),
    )
    .unwrap();
    assert_eq!(r.imported, ["tybalt@example.org"]);
    assert_eq!(r.failed[0].0, "juliet@example.org");
    assert!(r.failed[0].1.contains("exists already"));
    // The existing user is untouched.
    assert!(store.vcard().get(&j).unwrap().unwrap().contains("Mine"));
    assert!(store.mam().list(&j).unwrap().is_empty());
    assert!(store.accounts().check_password(&j, "password").unwrap());
}

#[test]
fn dry_run_and_old_namespace() {
    let (_d, store) = crate::util::store();
    let r = pie::import_file(&store, &fixture("old-namespace.xml"), &opts().dry_run(true)).unwrap();
    assert_eq!(r.imported, ["mercutio@old.example"]);
    assert!(
        !store
            .accounts()
            .exists(&bare("mercutio@old.example"))
            .unwrap()
    );
    let r = pie::import_file(&store, &fixture("old-namespace.xml"), &opts()).unwrap();
    assert!(r.is_complete() && r.problems.is_empty());
    let m = bare("mercutio@old.example");
    let item = store
        .roster()
        .get(&m, &bare("romeo@example.net"))
        .unwrap()
        .unwrap();
    assert_eq!(item.subscription, Subscription::To);
}

#[test]
fn xinclude_relative_to_including_file_and_under_user() {
    let (_d, store) = crate::util::store();
    let r = pie::import_file(&store, &fixture("include/host.xml"), &opts()).unwrap();
    assert_eq!(r.imported, ["paris@inc.example"]);
    // The include that is a child of <user> is followed, relative to the user's file
    // (XEP-0227: importers MUST); see issue 13, item 14.
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let v = store
        .vcard()
        .get(&bare("paris@inc.example"))
        .unwrap()
        .unwrap();
    assert!(v.contains("followed from an include under user"), "{v}");
}

#[test]
fn malformed_xml_is_an_error_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.xml");
    std::fs::write(
        &f,
        "<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='x'>\n<user name='a'></host>",
    )
    .unwrap();
    let (_d, store) = crate::util::store();
    let err = pie::import_file(&store, &f, &opts())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.xml:3:") && err.contains("not well-formed"),
        "{err}"
    );
    for input in [
        &b""[..],
        b"<",
        b"<user xmlns='urn:xmpp:pie:0'/>",
        b"\xff\xfe<a>",
        b"<a b='&x;'/>",
    ] {
        let _ = pie::validate_bytes(input, &opts());
    }
}

/// A store holding every class the export writes, built through the API (not an import).
#[expect(clippy::too_many_lines, reason = "one record of every class")]
fn rich_store() -> (tempfile::TempDir, Store, jidstore::BareJid) {
    let (d, store) = crate::util::store();
    let a = user(&store, "alice@example.org");
    user(&store, "bob@example.org");
    let r = store.roster();
    let item = |jid: &str, ask, groups: &[&str]| RosterItem {
        jid: bare(jid),
        name: Some("N & <M>".into()),
        subscription: Subscription::Both,
        ask,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        askmessage: None,
    };
    r.set(&a, &item("bob@example.org", Ask::None, &["Work", "Home"]))
        .unwrap();
    r.set(&a, &item("carol@example.net", Ask::Out, &[]))
        .unwrap();
    r.set(&a, &item("gone@example.net", Ask::None, &[]))
        .unwrap();
    r.remove(&a, &bare("gone@example.net")).unwrap();
    r.set(
        &a,
        &RosterItem {
            jid: bare("dave@example.net"),
            name: None,
            subscription: Subscription::None,
            ask: Ask::In,
            groups: vec![],
            askmessage: Some("let me in".into()),
        },
    )
    .unwrap();
    store
        .vcard()
        .set(&a, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        .unwrap();
    store
        .private()
        .set(
            &a,
            "storage:rosternotes",
            "<storage xmlns='storage:rosternotes'/>",
        )
        .unwrap();
    store.offline().store(&a, &OfflineMessage {
        from: full("bob@example.org/x"),
        to: full("alice@example.org"),
        timestamp: Timestamp::from_secs(1_600_000_000),
        expires: None,
        stanza: "<message from='bob@example.org/x' to='alice@example.org'><body>hi</body></message>".into(),
    })
    .unwrap();
    store
        .privacy()
        .set_list(
            &a,
            "l",
            &[PrivacyItem {
                order: 3,
                kind: Some(PrivacyType::Group),
                value: Some("Work".into()),
                action: PrivacyAction::Deny,
                message: false,
                iq: true,
                presence_in: false,
                presence_out: true,
            }],
        )
        .unwrap();
    store.privacy().set_default(&a, Some("l")).unwrap();
    store
        .pubsub()
        .create_node(&Node {
            service: a.clone(),
            node: "urn:xmpp:microblog:0".into(),
            owner: a.clone(),
            kind: NodeType::Pep,
            access_model: "open".into(),
            config: vec![
                ("pubsub#title".into(), "Blog".into()),
                ("pubsub#children".into(), "x".into()),
                ("pubsub#children".into(), "y".into()),
            ],
            created_at: Timestamp::from_secs(1),
        })
        .unwrap();
    store
        .pubsub()
        .publish(
            &a,
            "urn:xmpp:microblog:0",
            "p1",
            &bare("bob@example.org"),
            "<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry>",
            Timestamp::from_secs(2),
        )
        .unwrap();
    for (i, id) in [(0i64, Some("imported-1")), (1, None)] {
        store.mam().append(&a, &PmMessage {
            id: id.map(str::to_owned),
            timestamp: Timestamp::from_micros(1_600_000_000_123_456 + i),
            from: full("alice@example.org/phone"),
            to: full("bob@example.org"),
            direction: Direction::Outgoing,
            origin_id: None,
            stanza: "<message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org'><body>x</body></message>".into(),
        })
        .unwrap();
    }
    (d, store, a)
}

#[test]
fn round_trip_export_import_export_is_identical() {
    let (_d, store, a) = rich_store();
    let first = export_string(&store, &a);
    assert!(
        first.contains("<archive xmlns=\"urn:xmpp:pie:0#mam\">"),
        "{first}"
    );
    assert!(first.contains("id=\"imported-1\""));
    assert!(first.contains("<presence xmlns=\"jabber:client\" type=\"subscribe\" from=\"dave@example.net\"><status>let me in</status></presence>"));
    assert!(!first.contains("password"));
    assert!(
        first.contains("stamp='2020-09-13T12:26:40.000000Z'"),
        "offline delay added"
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("alice.xml");
    std::fs::write(&f, &first).unwrap();
    let (_d2, empty) = crate::util::store();
    let r = pie::import_file(&empty, &f, &opts()).unwrap();
    assert!(
        r.is_complete() && r.problems.is_empty(),
        "{r} {:?}",
        r.problems
    );
    let second = export_string(&empty, &a);
    assert_eq!(first, second);
    assert!(empty.accounts().check_password(&a, "password").unwrap());

    // The v1.1 fixture, imported then exported, also survives a second trip unchanged.
    let (_d3, s3) = crate::util::store();
    pie::import_file(&s3, &fixture("v11.xml"), &opts()).unwrap();
    let j = bare("juliet@example.org");
    let one = export_string(&s3, &j);
    std::fs::write(&f, &one).unwrap();
    let (_d4, s4) = crate::util::store();
    assert!(pie::import_file(&s4, &f, &opts()).unwrap().is_complete());
    assert_eq!(one, export_string(&s4, &j));
}

#[test]
fn export_to_path_is_private_atomic_and_refuses_overwrite() {
    let (_d, store, a) = rich_store();
    let dir = tempfile::tempdir().unwrap();
    let (path, counts) = pie::export_to_path(&store, &a, dir.path(), false).unwrap();
    assert_eq!(path, dir.path().join("alice.xml"));
    assert_eq!(counts["mam_pm"], 2);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let err = pie::export_to_path(&store, &a, &path, false).unwrap_err();
    assert!(matches!(err, jidstore::Error::OutputExists(_)));
    pie::export_to_path(&store, &a, &path, true).unwrap();
    let err =
        pie::export_to_path(&store, &bare("nobody@example.org"), dir.path(), false).unwrap_err();
    assert!(matches!(err, jidstore::Error::NoAccount(_)));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["alice.xml"], "no temporary files left behind");
}

#[test]
fn cli_import_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(
        jidstore(&data, &["register", "--user", "x", "localhost", "pw"]).code,
        0
    );
    let v11 = fixture("v11.xml");
    let r = jidstore(&data, &["import", v11.to_str().unwrap()]);
    assert_eq!(r.code, 1, "tybalt refused: {}", r.stderr);
    assert!(
        r.stdout
            .starts_with("users imported: 1, failed: 1, problems reported: 2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("v11.xml:99: unknown element {urn:example:gossip}gossip skipped"),
        "{}",
        r.stderr
    );
    let r = jidstore(
        &data,
        &["import", "--bad-timestamps", "skip", v11.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "juliet exists now");
    assert!(
        r.stdout.starts_with("users imported: 1, failed: 1"),
        "{}",
        r.stdout
    );
    let out = dir.path().join("j.xml");
    let r = export_to(&data, "export-xep0227", "juliet", "example.org", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("mam_pm 2"), "{}", r.stdout);
    let r = export_to(&data, "export-xep0227", "juliet", "example.org", &out);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"));
    let data2 = dir.path().join("data2");
    assert_eq!(
        jidstore(&data2, &["register", "--user", "x", "localhost", "pw"]).code,
        0
    );
    let r = jidstore(&data2, &["import", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    if let Some(s) = samples() {
        let inc = s.join("openfire-xinclude/test-import.xml");
        let r = jidstore(&data2, &["import", inc.to_str().unwrap()]);
        assert_eq!(r.code, 1);
        assert!(
            r.stderr
                .contains("5 XInclude target(s) missing, nothing imported"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1);
        let r = jidstore(
            &data2,
            &["import", "--skip-missing-includes", inc.to_str().unwrap()],
        );
        assert_eq!(r.code, 1);
        assert!(
            r.stdout.starts_with(
                "users imported: 3, failed: 0, problems reported: 7 (missing includes: 5)"
            ),
            "{}",
            r.stdout
        );
    }
}
